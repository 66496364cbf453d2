"""torch's creation functions: sizes as varargs or one sequence, `dtype=`, `device=` (see
`_device`), `requires_grad=`, `generator=`; dtypes inferred as torch infers them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agnostic import dtypes, ops
from agnostic.random import Generator
from agnostic.tensor import Tensor

from ._device import resolve

__all__ = [
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like", "arange",
    "linspace", "eye", "tensor", "as_tensor", "from_numpy", "randn", "rand", "randint", "randn_like",
    "rand_like", "randint_like", "randperm",
]  # fmt: skip


def _size(size: tuple[Any, ...], op: str) -> tuple[int, ...]:
    """`zeros(2, 3)` and `zeros((2, 3))` alike."""
    if len(size) == 1 and isinstance(size[0], Sequence):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}: size must be ints (or one sequence of ints), got {size!r}")
    return tuple(int(s) for s in size)


def _grad(t: Tensor, requires_grad: bool) -> Tensor:
    return t.requires_grad_() if requires_grad else t


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _grad(ops.zeros(_size(size, "zeros"), dtype=dtype, device=resolve(device)), requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _grad(ops.ones(_size(size, "ones"), dtype=dtype, device=resolve(device)), requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Zero-filled (agnostic never exposes uninitialized memory)."""
    return _grad(ops.empty(_size(size, "empty"), dtype=dtype, device=resolve(device)), requires_grad)


def full(
    size: Sequence[int], fill_value: bool | float, *, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """dtype from the value when not given: bool, int64 or float32, as torch."""
    return _grad(
        ops.full(_size((size,), "full"), fill_value, dtype=dtype, device=resolve(device)), requires_grad
    )


def _like(input: Tensor, device: Any) -> Any:
    return input.device if device is None else resolve(device)


def zeros_like(
    input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _grad(ops.zeros_like(input, dtype=dtype, device=_like(input, device)), requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _grad(ops.ones_like(input, dtype=dtype, device=_like(input, device)), requires_grad)


def empty_like(
    input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _grad(ops.empty_like(input, dtype=dtype, device=_like(input, device)), requires_grad)


def full_like(
    input: Tensor, fill_value: bool | float, *, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    out = ops.full_like(input, fill_value, dtype=dtype, device=_like(input, device))
    return _grad(out, requires_grad)


def arange(
    start: float, end: float | None = None, step: float = 1, *, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """[start, end) by step; `arange(end)` counts from 0; int64 for integer arguments, else float32."""
    return _grad(ops.arange(start, end, step, dtype=dtype, device=resolve(device)), requires_grad)


def linspace(
    start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    return _grad(ops.linspace(start, end, steps, dtype=dtype, device=resolve(device)), requires_grad)


def eye(
    n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _grad(ops.eye(n, m, dtype=dtype, device=resolve(device)), requires_grad)


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A copy of `data` (nested lists, scalars, NumPy arrays, tensors, native arrays)."""
    dev = data.device if isinstance(data, Tensor) and device is None else resolve(device)
    return ops.asarray(data, dtype=dtype, device=dev, copy=True, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """`data` as a tensor, without a copy where it already is one."""
    dev = data.device if isinstance(data, Tensor) and device is None else resolve(device)
    return ops.asarray(data, dtype=dtype, device=dev)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor of the default backend from a NumPy array."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    return ops.asarray(ndarray)


def randn(
    *size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """Standard normal samples from agnostic's seed stream (`manual_seed`): the same numbers on every
    backend, not torch's."""
    t = resolve(device).randn(_size(size, "randn"), generator=generator, dtype=dtype)
    return _grad(t, requires_grad)


def rand(
    *size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """Uniform [0, 1) samples from agnostic's seed stream."""
    t = resolve(device).rand(_size(size, "rand"), generator=generator, dtype=dtype)
    return _grad(t, requires_grad)


def randint(
    *args: Any, size: Any = None, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """`randint(high, size)` or `randint(low, high, size)`: integers in [low, high), int64."""
    if size is None and args:
        *args, size = args
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    return resolve(device).randint(
        int(low), int(high), _size((size,), "randint"), generator=generator, dtype=dtype
    )


def randn_like(input: Tensor, *, dtype: Any = None, device: Any = None) -> Tensor:
    return _like(input, device).randn(input.shape, dtype=input.dtype if dtype is None else dtype)


def rand_like(input: Tensor, *, dtype: Any = None, device: Any = None) -> Tensor:
    return _like(input, device).rand(input.shape, dtype=input.dtype if dtype is None else dtype)


def randint_like(input: Tensor, low: int = 0, high: int | None = None, *, dtype: Any = None,
                 device: Any = None) -> Tensor:  # fmt: skip
    """`randint_like(x, high)` or `randint_like(x, low, high)`, in x's dtype unless given."""
    if high is None:
        low, high = 0, low
    return _like(input, device).randint(low, high, input.shape, dtype=input.dtype if dtype is None else dtype)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None) -> Tensor:
    """A random permutation of 0..n-1 (int64): the argsort of uniform samples."""
    dev = resolve(device)
    out = ops.argsort(dev.rand((n,), generator=generator, dtype=dtypes.float64), axis=0)
    return out if dtype is None else ops.astype(out, dtype)
