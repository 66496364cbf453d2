"""Tensor functions with torch's signatures and meanings (`dim=`, `keepdim=`, torch's split and
squeeze, (values, indices) results), each a conversion of arguments over agnostic's own ops."""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

from agnostic import dtypes, ops
from agnostic import functional as AF
from agnostic.nn.activation import _softmax_dim
from agnostic.random import Generator
from agnostic.tensor import Tensor

from . import return_types

__all__ = [
    "cat", "concat", "concatenate", "stack", "split", "chunk", "unbind", "tril", "triu", "topk", "max",
    "min", "amax", "amin", "argmax", "argmin", "sort", "argsort", "where", "nonzero", "multinomial",
    "softmax", "log_softmax", "matmul", "mm", "bmm", "addmm", "outer", "clamp", "clip", "gather",
    "masked_fill", "flatten", "transpose", "swapaxes", "permute", "reshape", "squeeze", "unsqueeze",
    "allclose", "isclose", "is_tensor", "is_floating_point", "numel", "sum", "mean", "prod", "std", "var", "cumsum",
    "cumprod", "logsumexp", "all", "any", "flip", "roll", "repeat_interleave", "narrow", "index_select",
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "Size",
]  # fmt: skip


class _SizeType(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, tuple) and builtins.all(isinstance(s, int) for s in obj)


class Size(tuple, metaclass=_SizeType):
    """torch.Size: a tuple of dimension sizes. agnostic's shapes (`x.shape`, `x.size()`) are plain
    tuples, so any tuple of ints passes `isinstance(s, torch.Size)`."""

    def numel(self) -> int:
        return math.prod(self)


def _dims(dim: Any) -> Any:
    """torch's `dim` as agnostic's `axis` (None and () mean all axes for reductions)."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return None
    return tuple(dim) if isinstance(dim, (tuple, list)) else dim


# ---------------------------------------------------------------------- joining and splitting
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return ops.concat(list(tensors), axis=dim)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return ops.stack(list(tensors), axis=dim)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """torch's split: an int is the size of each piece (the last may be smaller), a list the sizes
    of the pieces. (`ag.split(x, 12)` alone is ambiguous and raises.)"""
    return tuple(ops.split(tensor, split_size_or_sections=split_size_or_sections, axis=dim))


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """torch's chunk: pieces of ceil(n / chunks) along `dim` (fewer pieces when they run out)."""
    return tuple(ops.chunk(input, chunks, axis=dim))


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    return ops.unstack(input, axis=dim)


# ---------------------------------------------------------------------- triangles, order, extremes
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    return ops.tril(input, k=diagonal)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    return ops.triu(input, k=diagonal)


def topk(
    input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
) -> return_types.topk:
    """The k largest (or smallest) along `dim`, always sorted, with their int64 indices."""
    return return_types.topk(*ops.topk(input, k, axis=dim, largest=largest))


def _extreme(op: str, input: Tensor, dim: Any, keepdim: bool, other: Tensor | None) -> Any:
    if other is not None or isinstance(dim, Tensor):
        return (ops.maximum if op == "max" else ops.minimum)(input, dim if other is None else other)
    reduce, arg = (ops.max, ops.argmax) if op == "max" else (ops.min, ops.argmin)
    if dim is None:
        return reduce(input)
    result = getattr(return_types, op)
    return result(reduce(input, axis=dim, keepdims=keepdim), arg(input, axis=dim, keepdims=keepdim))


def max(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Tensor | None = None) -> Any:
    """`max(x)`: the largest element; `max(x, dim)`: (values, indices); `max(x, y)`: elementwise."""
    return _extreme("max", input, dim, keepdim, other)


def min(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Tensor | None = None) -> Any:
    """`min(x)`: the smallest element; `min(x, dim)`: (values, indices); `min(x, y)`: elementwise."""
    return _extreme("min", input, dim, keepdim, other)


def amax(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return ops.max(input, axis=_dims(dim), keepdims=keepdim)


def amin(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return ops.min(input, axis=_dims(dim), keepdims=keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return ops.argmax(input, axis=dim, keepdims=keepdim and dim is not None)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return ops.argmin(input, axis=dim, keepdims=keepdim and dim is not None)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> return_types.sort:
    """(values, indices) along `dim` (always stable)."""
    return return_types.sort(
        ops.sort(input, axis=dim, descending=descending), ops.argsort(input, axis=dim, descending=descending)
    )


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return ops.argsort(input, axis=dim, descending=descending)


def where(condition: Tensor, input: Any = None, other: Any = None) -> Any:
    """`where(c, x, y)` elementwise; `where(c)` the indices of its true elements, one tensor per dim."""
    if input is None and other is None:
        return ops.nonzero(condition)
    return ops.where(condition, input, other)


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """(N, ndim) int64 indices of the non-zero elements, or one tensor per dim with `as_tuple`."""
    found = ops.nonzero(input)
    return found if as_tuple else ops.stack(list(found), axis=1)


def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *, generator: Generator | None = None
) -> Tensor:
    """int64 category indices drawn with probabilities proportional to the rows of `input` (1-D or
    2-D, non-negative, finite). With replacement: inverse-CDF sampling; without: the Gumbel-top-k
    trick, the same distribution as drawing one at a time. Draws follow agnostic's seed stream."""
    if input.ndim not in (1, 2) or not input.dtype.is_floating:
        raise ValueError(
            f"multinomial: input must be a 1-D or 2-D float tensor, got {input.dtype.name} {input.shape}"
        )
    p = input if input.ndim == 2 else ops.reshape(input, (1, -1))
    n = p.shape[1]
    if num_samples <= 0 or (not replacement and num_samples > n):
        raise ValueError(
            f"multinomial: cannot draw {num_samples} samples from {n} categories"
            + ("" if replacement else " without replacement")
        )
    if not bool(ops.all(ops.isfinite(p) & (p >= 0))) or not bool(ops.all(ops.sum(p, axis=1) > 0)):
        raise ValueError("multinomial: probabilities must be finite, non-negative and have a non-zero sum")
    if not replacement and not bool(ops.all(ops.sum(p > 0, axis=1) >= num_samples)):
        raise ValueError(f"multinomial: fewer than {num_samples} categories of non-zero probability")
    p = ops.astype(p, dtypes.float64)
    u = p.device.rand(
        (p.shape[0], num_samples if replacement else n), generator=generator, dtype=dtypes.float64
    )
    if replacement:
        cdf = ops.cumsum(p / ops.sum(p, axis=1, keepdims=True), axis=1)
        idx = ops.sum(ops.expand_dims(cdf, axis=1) <= ops.expand_dims(u, axis=2), axis=2)
        out = ops.minimum(idx, n - 1)
    else:
        gumbel = -ops.log(-ops.log(ops.clip(u, 1e-300, 1.0 - 1e-16)))
        log_p = ops.where(p > 0, ops.log(ops.where(p > 0, p, 1.0)), -math.inf)
        out = ops.topk(log_p + gumbel, num_samples, axis=1)[1]
    return out if input.ndim == 2 else ops.reshape(out, (num_samples,))


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    x = input if dtype is None else ops.astype(input, dtype)
    return AF.softmax(x, axis=_softmax_dim(dim, x, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    x = input if dtype is None else ops.astype(input, dtype)
    return AF.log_softmax(x, axis=_softmax_dim(dim, x, "log_softmax"))


# ---------------------------------------------------------------------- linear algebra
matmul = ops.matmul
outer = ops.outer


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    if input.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"mm: needs 2-D matrices, got shapes {input.shape} and {mat2.shape}")
    return ops.matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ValueError(
            f"bmm: needs 3-D tensors with one batch size, got shapes {input.shape} and {mat2.shape}"
        )
    return ops.matmul(input, mat2)


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2); input is ignored when beta is 0, as torch."""
    prod_ = mm(mat1, mat2)
    prod_ = prod_ if alpha == 1 else prod_ * alpha
    if beta == 0:
        return prod_
    return prod_ + (input if beta == 1 else input * beta)


# ---------------------------------------------------------------------- elementwise and indexing
def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    return ops.clip(input, min, max)


clip = clamp


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[i][j] = input[i][index[i][j]] along `dim`; `index` may be smaller than `input` in the
    other dims (torch's rule), never larger."""
    if index.ndim != input.ndim:
        raise ValueError(
            f"gather: index of shape {index.shape} needs the input's {input.ndim} dims ({input.shape})"
        )
    d = dim % input.ndim
    for i, (a, b) in enumerate(zip(index.shape, input.shape)):
        if i != d and a > b:
            raise ValueError(f"gather: index {index.shape} is larger than input {input.shape} in dim {i}")
    key = tuple(slice(None) if i == d else slice(0, s) for i, s in enumerate(index.shape))
    return ops.take_along_axis(input[key], index, axis=d)


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """`input` with `value` where the boolean `mask` (broadcast) is True."""
    return input.masked_fill(mask, value)


def add(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return ops.add(input, other if alpha == 1 else other * alpha)


def sub(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return ops.subtract(input, other if alpha == 1 else other * alpha)


subtract = sub
mul = multiply = ops.multiply


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """True division; rounding_mode 'trunc' or 'floor' rounds the quotient (integer inputs keep
    their dtype)."""
    if rounding_mode is None:
        return ops.divide(input, other)
    if rounding_mode == "floor":
        return ops.floor_divide(input, other)
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    q = ops.trunc(ops.divide(input, other))
    ints = [t.dtype for t in (input, other) if isinstance(t, Tensor)]
    if ints and builtins.all(not d.is_floating for d in ints):
        return ops.astype(q, dtypes.result_type(*ints))
    return q


divide = div


# ---------------------------------------------------------------------- shape
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return ops.flatten(input, start_dim, end_dim)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    return ops.transpose(input, dim0, dim1)


swapaxes = transpose


def permute(input: Tensor, dims: Sequence[int]) -> Tensor:
    return ops.permute_dims(input, tuple(dims))


def reshape(input: Tensor, shape: Sequence[int]) -> Tensor:
    return ops.reshape(input, tuple(shape))


def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dims (all, or those of `dim`); a named dim whose size is not 1 stays, as torch."""
    if dim is None:
        return ops.squeeze(input)
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    ones = tuple(d for d in dims if input.shape[d] == 1)
    return ops.squeeze(input, ones) if ones else input


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    return ops.expand_dims(input, axis=dim)


def flip(input: Tensor, dims: Sequence[int]) -> Tensor:
    return ops.flip(input, axis=_dims(dims) if isinstance(dims, (tuple, list)) else dims)


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    return ops.roll(input, shifts, axis=_dims(dims))


def repeat_interleave(input: Tensor, repeats: Any, dim: int | None = None) -> Tensor:
    return ops.repeat(input, repeats, axis=dim)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    d = dim % input.ndim
    start = start % input.shape[d] if start < 0 else start
    if length < 0 or start + length > input.shape[d]:
        raise ValueError(f"narrow: start {start} + length {length} exceeds dim {dim}'s size {input.shape[d]}")
    return input[(slice(None),) * d + (slice(start, start + length),)]


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 0-D or 1-D, got shape {index.shape}")
    return ops.take(input, ops.reshape(index, (-1,)), axis=dim)


# ---------------------------------------------------------------------- reductions
def _accumulator(input: Tensor, dtype: Any) -> Any:
    """torch's accumulation dtype: integers (unsigned ones too) sum in int64, where the Array API
    (agnostic's `ag.sum`) sums unsigned ones in uint64."""
    return dtypes.int64 if dtype is None and input.dtype.kind == "u" and input.dtype.bits < 64 else dtype


def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return ops.sum(input, axis=_dims(dim), keepdims=keepdim, dtype=_accumulator(input, dtype))


def mean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    if not input.dtype.is_floating and dtype is None:
        raise TypeError(
            f"mean: needs a floating-point input or dtype=, got {input.dtype.name} (torch's rule)"
        )
    return ops.mean(input, axis=_dims(dim), keepdims=keepdim, dtype=dtype)


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return ops.prod(input, axis=dim, keepdims=keepdim, dtype=_accumulator(input, dtype))


def _moment(fn: Any, input: Tensor, dim: Any, unbiased: Any, keepdim: bool, correction: Any) -> Tensor:
    if isinstance(dim, bool):  # the legacy `std(x, unbiased)`
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    return fn(input, axis=_dims(dim), correction=correction, keepdims=keepdim)


def std(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:  # fmt: skip
    """Standard deviation with torch's default correction of 1 (Bessel's); agnostic's `ag.std`
    defaults to 0 (the Array API's)."""
    return _moment(ops.std, input, dim, unbiased, keepdim, correction)


def var(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:  # fmt: skip
    """Variance with torch's default correction of 1."""
    return _moment(ops.var, input, dim, unbiased, keepdim, correction)


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return ops.cumulative_sum(input, axis=dim, dtype=_accumulator(input, dtype))


def cumprod(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return ops.cumulative_prod(input, axis=dim, dtype=_accumulator(input, dtype))


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    return ops.logsumexp(input, axis=_dims(dim), keepdims=keepdim)


def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return ops.all(input, axis=_dims(dim), keepdims=keepdim)


def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return ops.any(input, axis=_dims(dim), keepdims=keepdim)


# ---------------------------------------------------------------------- predicates
def isclose(
    input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> Tensor:
    return ops.isclose(input, other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(
    input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> bool:
    return ops.allclose(input, other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.dtype.is_floating


def numel(input: Tensor) -> int:
    return int(input.size)
