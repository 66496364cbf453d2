"""The op-set: an abstract Backend whose primitives work on native arrays.

A backend maps each primitive to native calls and knows nothing of Tensor, autodiff or modules.
The Tensor layer has already decided dtypes and normalized arguments before it calls a primitive,
so a backend does no promotion of its own. Shapes of elementwise ops and matmul are checked only
when the backend call fails (checking first costs more than a small op): a backend must raise,
with any exception, on shapes it cannot combine, and the Tensor layer then names the problem.

- binary primitives get two native arrays of one dtype, or one native array and a Python scalar
  that does not change that dtype (Python scalars are weak on every library we wrap);
- `axes` is a tuple of non-negative ints, sorted and unique; `axis` a non-negative int;
- `dtype` is an `agnostic.dtypes.DType`; map it with `native_dtype`;
- float-only primitives (exp, div, var, ...) get floating arrays.

Where the libraries disagree and the Array API leaves the answer open, the op-set fixes it, and the
conformance suite holds every backend to it (docs/conformance.md, "Edge cases"), with no warning:

- integer `floor_divide` and `remainder` by zero give 0, and INT_MIN // -1 wraps to INT_MIN;
- integer `pow` with a negative exponent gives the exact result truncated toward zero: 1 for a base
  of 1, -1 or 1 for -1 (odd or even exponent), 0 for any other base (a Python negative exponent
  never reaches a backend: the Tensor layer refuses it);
- `cast` from a float to an integer dtype truncates toward zero and saturates: values beyond the
  integer range, and +-inf, give its max or min, NaN gives 0 (see `IntCast`);
- a result that does not fit in memory raises, never aborts the process or hands back a broken
  array: the Tensor layer checks the size first where it knows it cheaply (`check_allocation`), and
  translates the library's own error otherwise (`allocation_error`). A library that fails later than
  the call (XLA runs jitted ops asynchronously) checks its growing ops itself, before dispatch.

Two tiers. Primitives are abstract: every backend implements them. Composites (softmax,
layer_norm, attention, ...) have a default here written only with `self.<primitive>` calls, so the
same body also runs on Tensors (the autodiff layer differentiates a composite through this very
default); a backend may override a composite with a fused native call, and the conformance suite
checks every override against the default.
"""

from __future__ import annotations

import abc
import functools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from agnostic import dtypes
from agnostic.backends.base_fft import FFTOps
from agnostic.backends.base_linalg import LinalgOps
from agnostic.dtypes import DType

Array = Any
Shape = tuple[int, ...]
Axes = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]

UNARY_OPS: tuple[str, ...] = (
    "neg", "abs", "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "square", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
    "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round", "trunc", "isnan",
    "isinf", "isfinite", "signbit", "logical_not", "bitwise_invert", "conj", "real", "imag",
)  # fmt: skip
"""Elementwise unary primitives: `op(a) -> array`. `conj`, `real` and `imag` get complex arrays
only (the Tensor layer answers them for real dtypes); `real` and `imag` return the parts' real dtype."""

BINARY_OPS: tuple[str, ...] = (
    "add", "sub", "mul", "div", "floor_divide", "remainder", "pow", "maximum", "minimum",
    "atan2", "logaddexp", "hypot", "copysign", "nextafter", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_left_shift", "bitwise_right_shift",
)  # fmt: skip
"""Elementwise binary primitives with broadcasting: `op(a, b) -> array`."""

REDUCTIONS: tuple[str, ...] = ("sum", "prod", "mean", "max", "min", "any", "all")
"""Reductions `op(a, axes, keepdims) -> array`; sum/prod of integers accumulate in the input
dtype (the Tensor layer casts small integers up first)."""


class BackendUnavailable(RuntimeError):
    """A backend cannot run here: its library is missing or it has no device. The message says why."""


class DeviceUnavailable(BackendUnavailable, ValueError):
    """A device the backend knows but this machine lacks ("cuda:0" with no CUDA, "gpu:1" with one
    GPU): like an absent backend, a reason to skip. A ValueError too, as every bad device is; a name
    the backend does not know at all ("cuda:x") stays a plain ValueError, an error to fix."""


class TraceError(RuntimeError):
    """A traced function read a symbolic value on the host (its library's error, translated)."""


class OutOfMemoryError(MemoryError):
    """A result that does not fit in its device's memory. Raised before the library is asked where
    agnostic knows the size (XLA aborts the whole process on some failed allocations), and in place
    of the library's own error (MemoryError, torch's RuntimeError, JAX's RESOURCE_EXHAUSTED)
    otherwise, so one `except ag.OutOfMemoryError` (or MemoryError) works on every backend. The
    attributes say what was asked for: `op`, `shape`, `dtype` and `nbytes`."""

    def __init__(
        self, message: str, *, op: str | None = None, shape: Shape | None = None,
        dtype: DType | None = None, nbytes: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.op, self.shape, self.dtype, self.nbytes = op, shape, dtype, nbytes


class Backend(LinalgOps, FFTOps, abc.ABC):
    """A tensor op-set over one library's native arrays, bound to one device."""

    name: ClassVar[str] = "abstract"
    """The registry name (``"numpy"``, ``"torch"``...)."""

    compiler: ClassVar[str | None] = None
    """The compiler `agnostic.compile` hands traced steps to ("jax.jit", "torch.fx"...); None
    runs them eagerly, and `trace` / `compile_traced` are then never called."""

    max_dims: ClassVar[int | None] = None
    """The most dimensions an array may have (NumPy's and torch's 64); None: no limit the library
    states. `ag.__array_namespace_info__().capabilities()["max dimensions"]` reports it."""

    flushes_subnormals: bool = False
    """Whether the device treats subnormal floats as zero (flush-to-zero, denormals-are-zero), as
    XLA does on CPU for speed. The conformance suite reports this as a skip with the reason, and
    its value checks draw no subnormal inputs on such a backend."""

    def __init__(self, device: str | int | None = None) -> None:
        self.device = self.canonical_device(device)

    # ------------------------------------------------------------------ identity and info
    @classmethod
    def canonical_device(cls, device: str | int | None) -> str:
        """The device's canonical name; raise ValueError listing valid ones for a bad name, and
        DeviceUnavailable for a device of a kind the backend knows that this machine lacks."""
        if device in (None, "cpu"):
            return "cpu"
        raise ValueError(f"backend {cls.name!r}: unknown device {device!r}; available: cpu")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(True, "") when this backend can run here, else (False, the reason and the fix)."""
        return True, ""

    @classmethod
    def library_version(cls) -> str:
        """The version of the wrapped library."""
        return ""

    @classmethod
    def devices(cls) -> list[str]:
        """The devices this backend can use on this machine."""
        return ["cpu"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"

    # ------------------------------------------------------------------ memory
    def memory_capacity(self) -> int | None:
        """The bytes of memory of this backend's device, None where unknown: no array can be larger,
        and the Tensor layer refuses a result that would be with OutOfMemoryError before asking the
        library. The default is the host's physical memory, right for a backend that computes in
        host memory; a backend with device memory gives its size."""
        return host_memory()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by this backend's library, says it ran out of memory (by default:
        it is a MemoryError). The Tensor layer then raises OutOfMemoryError in its place."""
        return isinstance(exc, MemoryError)

    # ------------------------------------------------------------------ dtypes, shapes, host
    @abc.abstractmethod
    def native_dtype(self, dtype: DType) -> Any:
        """The library's dtype object for an agnostic dtype."""

    @abc.abstractmethod
    def dtype_of(self, a: Array) -> DType:
        """The agnostic dtype of a native array."""

    dtype_table: ClassVar[Mapping[Any, DType] | None] = None
    """Optional, for speed: the agnostic dtype of each native dtype object, for a backend whose
    `dtype_of(a)` is `dtype_table[a.dtype]`. Tensors made by an op then look their dtype up here,
    a call less per op. Leave it None where `dtype_of` does anything else."""

    @abc.abstractmethod
    def shape(self, a: Array) -> Shape:
        """The shape of a native array as a tuple of ints."""

    @abc.abstractmethod
    def is_native(self, obj: object) -> bool:
        """Whether `obj` is this library's array type."""

    @abc.abstractmethod
    def from_numpy(self, array: np.ndarray) -> Array:
        """A native array on this backend's device holding a copy of a host array (same dtype)."""

    @abc.abstractmethod
    def to_numpy(self, a: Array) -> np.ndarray:
        """The values on the host as a NumPy array (bfloat16 as ml_dtypes.bfloat16); read-only if shared."""

    def from_dlpack(self, obj: Any) -> Array:
        """A native array from any object with `__dlpack__` (zero-copy where the library allows)."""
        return self.from_numpy(np.from_dlpack(obj))

    def to_dlpack(self, a: Array, **kwargs: Any) -> Any:
        """A DLPack capsule for `a` (the `__dlpack__` protocol)."""
        return a.__dlpack__(**kwargs)

    def dlpack_device(self, a: Array) -> tuple[int, int]:
        """The `__dlpack_device__` pair of `a`."""
        return a.__dlpack_device__()

    # ------------------------------------------------------------------ creation
    @abc.abstractmethod
    def full(self, shape: Shape, value: bool | int | float, dtype: DType) -> Array:
        """An array of `shape` filled with `value`."""

    @abc.abstractmethod
    def arange(self, start: int | float, stop: int | float, step: int | float, dtype: DType) -> Array:
        """Evenly spaced values in [start, stop) (NumPy's arange)."""

    @abc.abstractmethod
    def eye(self, n: int, m: int, k: int, dtype: DType) -> Array:
        """An n x m array with ones on the k-th diagonal."""

    def random_uniform(self, shape: Shape, low: float, high: float, dtype: DType, seed: int) -> Array:
        """Uniform [low, high) samples. Drawn on the host with a counter-based generator (Philox),
        so one seed gives bit-identical values on every backend."""
        gen = np.random.Generator(np.random.Philox(seed))
        host = gen.uniform(low, high, size=shape)
        return self.from_numpy(host.astype(dtypes.to_numpy_dtype(dtype)))

    def random_normal(self, shape: Shape, mean: float, std: float, dtype: DType, seed: int) -> Array:
        """Normal samples, drawn on the host like `random_uniform`."""
        gen = np.random.Generator(np.random.Philox(seed))
        host = gen.normal(mean, std, size=shape)
        return self.from_numpy(host.astype(dtypes.to_numpy_dtype(dtype)))

    def random_bernoulli(self, shape: Shape, p: float, seed: int) -> Array:
        """Boolean samples, True with probability p, drawn on the host like `random_uniform`."""
        gen = np.random.Generator(np.random.Philox(seed))
        return self.from_numpy(gen.random(size=shape) < p)

    def random_integers(self, shape: Shape, low: int, high: int, dtype: DType, seed: int) -> Array:
        """Integers in [low, high), drawn on the host like `random_uniform`."""
        gen = np.random.Generator(np.random.Philox(seed))
        host = gen.integers(low, high, size=shape)
        return self.from_numpy(host.astype(dtypes.to_numpy_dtype(dtype)))

    @abc.abstractmethod
    def cast(self, a: Array, dtype: DType) -> Array:
        """`a` converted to `dtype`. Float to int truncates toward zero and saturates (NaN gives 0,
        see `IntCast`); int to a narrower int wraps (two's complement); a float too large for a
        narrower float becomes +-inf."""

    # ------------------------------------------------------------------ elementwise
    # One abstract method per name in UNARY_OPS and BINARY_OPS; see `_declare_elementwise` below.

    @abc.abstractmethod
    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        """Elementwise `a if cond else b` with broadcasting; `cond` is bool."""

    @abc.abstractmethod
    def clip(self, a: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        """`min(max(a, lo), hi)`; a bound that is None is not applied."""

    # ------------------------------------------------------------------ reductions
    # sum, prod, mean, max, min, any, all: `op(a, axes, keepdims)`, declared below.

    @abc.abstractmethod
    def var(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        """Variance over `axes`, dividing by N - correction."""

    def std(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        """Standard deviation: the square root of `var`."""
        return self.sqrt(self.var(a, axes, correction, keepdims))

    @abc.abstractmethod
    def argmax(self, a: Array, axis: int, keepdims: bool) -> Array:
        """Index (int64) of the first maximum along `axis`; NaN counts as the maximum."""

    @abc.abstractmethod
    def argmin(self, a: Array, axis: int, keepdims: bool) -> Array:
        """Index (int64) of the first minimum along `axis`; NaN counts as the minimum."""

    @abc.abstractmethod
    def cumsum(self, a: Array, axis: int) -> Array:
        """Inclusive cumulative sum along `axis`."""

    @abc.abstractmethod
    def cumprod(self, a: Array, axis: int) -> Array:
        """Inclusive cumulative product along `axis`."""

    # ------------------------------------------------------------------ linear algebra
    @abc.abstractmethod
    def matmul(self, a: Array, b: Array) -> Array:
        """Matrix product with NumPy's rules (1-D promotion, batch broadcasting)."""

    # ------------------------------------------------------------------ shape
    @abc.abstractmethod
    def reshape(self, a: Array, shape: Shape) -> Array:
        """`a` with a new shape of the same size (no -1: the Tensor layer resolves it)."""

    @abc.abstractmethod
    def permute(self, a: Array, axes: Axes) -> Array:
        """`a` with its axes reordered; `axes` is a permutation."""

    @abc.abstractmethod
    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        """`a` broadcast to `shape`."""

    @abc.abstractmethod
    def squeeze(self, a: Array, axes: Axes) -> Array:
        """`a` without the listed axes, each of size 1."""

    @abc.abstractmethod
    def expand_dims(self, a: Array, axes: Axes) -> Array:
        """`a` with new axes of size 1 at `axes` (positions in the result)."""

    @abc.abstractmethod
    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        """Join arrays of one dtype along an existing axis."""

    @abc.abstractmethod
    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        """Join arrays of one dtype and shape along a new axis."""

    @abc.abstractmethod
    def flip(self, a: Array, axes: Axes) -> Array:
        """`a` reversed along `axes`."""

    @abc.abstractmethod
    def pad(self, a: Array, widths: Pairs, mode: str, value: float) -> Array:
        """`a` padded by (before, after) per axis; mode 'constant' (with value), 'reflect' or 'edge'."""

    @abc.abstractmethod
    def tile(self, a: Array, reps: Shape) -> Array:
        """`a` repeated `reps[i]` times along axis i (len(reps) == ndim)."""

    @abc.abstractmethod
    def repeat(self, a: Array, repeats: int | Array, axis: int) -> Array:
        """Each element repeated along `axis` (NumPy's repeat; `repeats` an int or an int64 array)."""

    # ------------------------------------------------------------------ indexing
    @abc.abstractmethod
    def getitem(self, a: Array, key: tuple) -> Array:
        """NumPy indexing with a normalized key: a tuple of ints, slices, None, Ellipsis and native
        int64 or bool arrays."""

    @abc.abstractmethod
    def index_add(self, a: Array, key: tuple, values: Array) -> Array:
        """A copy of `a` with `values` added at `a[key]`; repeated indices accumulate (the adjoint
        of `getitem`). `values` has the shape of `a[key]`."""

    @abc.abstractmethod
    def take(self, a: Array, indices: Array, axis: int) -> Array:
        """Elements of `a` at int64 `indices` along `axis`; result shape
        a.shape[:axis] + indices.shape + a.shape[axis+1:]."""

    @abc.abstractmethod
    def take_along_axis(self, a: Array, indices: Array, axis: int) -> Array:
        """NumPy's take_along_axis (torch.gather): `indices` has a's ndim and broadcasts with it."""

    @abc.abstractmethod
    def scatter_add(self, a: Array, axis: int, indices: Array, src: Array) -> Array:
        """A copy of `a` with `src` added at `indices` along `axis` (torch.scatter_add; `indices`
        and `src` have one shape); repeated indices accumulate."""

    @abc.abstractmethod
    def sort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        """`a` sorted along `axis`; NaN sorts last (first when descending)."""

    @abc.abstractmethod
    def argsort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        """int64 indices that sort `a` along `axis` (stable=True keeps the order of equal elements)."""

    def topk(self, a: Array, k: int, axis: int, largest: bool) -> tuple[Array, Array]:
        """The k largest (or smallest) values along `axis`, sorted, and their int64 indices."""
        idx = self.argsort(a, axis, largest, True)
        idx = self.getitem(idx, (slice(None),) * axis + (slice(0, k),))
        return self.take_along_axis(a, idx, axis), idx

    def nonzero(self, a: Array) -> tuple[Array, ...]:
        """The int64 indices of the non-zero elements, one array per axis (data-dependent size)."""
        return tuple(self.from_numpy(i.astype(np.int64)) for i in np.nonzero(self.to_numpy(a)))

    # ------------------------------------------------------------------ convolution and pooling
    # Layouts are PyTorch's: x (N, C, *spatial), weight (O, C/groups, *kernel). `padding` is a
    # (lo, hi) pair per spatial axis, already resolved from "same"/"valid"/ints.
    @abc.abstractmethod
    def conv(self, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
        """N-d cross-correlation (N = 1, 2, 3), as torch.nn.functional.conv{N}d."""

    @abc.abstractmethod
    def conv_input_grad(
        self, gy: Array, w: Array, input_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        """The gradient of `conv` with respect to x (shape `input_shape`) given the output's
        gradient `gy`; also the transposed convolution."""

    @abc.abstractmethod
    def conv_weight_grad(
        self, x: Array, gy: Array, weight_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        """The gradient of `conv` with respect to the weight (shape `weight_shape`)."""

    @abc.abstractmethod
    def max_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
    ) -> tuple[Array, Array]:
        """N-d max pooling of (N, C, *spatial) as torch's max_pool{N}d(return_indices=True):
        the values and int64 indices flattened over the (unpadded) input's spatial axes."""

    @abc.abstractmethod
    def avg_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool,
        count_include_pad: bool,
    ) -> Array:  # fmt: skip
        """N-d average pooling, as torch's avg_pool{N}d."""

    @abc.abstractmethod
    def avg_pool_grad(
        self, gy: Array, input_shape: Shape, kernel: Shape, stride: Shape, padding: Shape,
        ceil_mode: bool, count_include_pad: bool,
    ) -> Array:  # fmt: skip
        """The gradient of `avg_pool` with respect to its input (the adjoint of avg_pool)."""

    # ------------------------------------------------------------------ compilation
    def trace(self, fn: Callable[..., list[Array]], inputs: list[Array], mode: str | None) -> Any:
        """Trace `fn(*inputs)`, a pure function of native arrays returning a list of them, into
        this library's program form (without running it); raise TraceError when `fn` reads a
        traced value on the host. `mode` is what `compile_traced` will get."""
        raise NotImplementedError(f"backend {self.name!r} has no compiler")

    def compile_traced(self, traced: Any, mode: str | None) -> Callable[..., list[Array]]:
        """Compile what `trace` returned into a function of the same inputs; `mode` is the
        option `agnostic.compile` was given."""
        raise NotImplementedError(f"backend {self.name!r} has no compiler")

    def in_place(self, traced: Any, updates: Sequence[tuple[int, int]]) -> tuple[Any, tuple[int, ...]]:
        """Let the program `trace` returned reuse the memory of inputs it replaces: `updates` are
        (output index, input index) pairs, each output the new value of that input (a parameter,
        buffer or optimizer state the step writes). Returns the program and the input indices it
        may now overwrite or consume: torch writes such an output into the input's buffer (and
        returns None in its place), JAX donates the input's buffer to the output (the input array
        is deleted by the call). The caller passes, at those indices, only arrays that nothing else
        holds (`exclusive`), or private copies (`private_copy`). The default: nothing reused."""
        return traced, ()

    def exclusive(self, a: Array, refs: int) -> bool:
        """Whether the native array `a` is held by exactly `refs` references (the caller's
        containers and variables; not the argument of this call) and nothing else shares its
        memory (a view, a NumPy or DLPack export): only then may a compiled program write into it
        or consume it (`in_place`) without another tensor seeing its value change. The default:
        never (a backend whose `in_place` reuses nothing need not say)."""
        return False

    def private_copy(self, a: Array) -> Array:
        """A copy of `a` in memory of its own (given to a program that writes into its input when
        the caller's array is not `exclusive`)."""
        raise NotImplementedError(f"backend {self.name!r} reuses no input memory")

    def optimization_barrier(self, arrays: Sequence[Array]) -> list[Array]:
        """`arrays` unchanged, but a compiler may not move computations across this point nor
        merge what is computed from the results with what is computed from the inputs
        (jax.lax.optimization_barrier). Activation checkpointing applies it, while tracing, to a
        recomputation's inputs, so the compiler does not fold the recomputation back into the
        forward pass. The default is the identity: a compiler that does no such merging (a torch.fx
        graph run as it is) needs nothing."""
        return list(arrays)

    # ================================================================== composites
    # Defaults use only primitives through `self`, so they also run on Tensors for autodiff.

    def linear(self, x: Array, w: Array, b: Array | None) -> Array:
        """x @ w.T + b over the last axis of x (torch's linear): w is (out, in), b (out,)."""
        y = self.matmul(x, self.permute(w, (1, 0)))
        return y if b is None else self.add(y, b)

    def linear_grad(
        self, g: Array, x: Array, w: Array, wanted: tuple[bool, bool, bool]
    ) -> tuple[Array | None, Array | None, Array | None]:
        """The gradients of `linear` for x, w and b, each only where `wanted` says (else None):
        g @ w; g^T x over the leading axes, laid out as the weight is (out, in), as torch computes
        it (the transpose of x^T g would be a strided view); g summed over the leading axes."""
        shape = self.shape(g)
        n_out, n_in = self.shape(w)
        rows = math.prod(shape[:-1])
        gx = self.matmul(g, w) if wanted[0] else None
        gw = None
        if wanted[1]:
            g2 = self.permute(self.reshape(g, (rows, n_out)), (1, 0))
            gw = self.matmul(g2, self.reshape(x, (rows, n_in)))
        gb = self.sum(g, tuple(range(len(shape) - 1)), False) if wanted[2] else None
        return gx, gw, gb

    def conv_bias(
        self, x: Array, w: Array, b: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int
    ) -> Array:
        """conv(x, w) plus the bias b (out_channels,) on every output position (torch's conv{N}d
        with a bias): one fused call where the library has it."""
        y = self.conv(x, w, stride, padding, dilation, groups)
        w_shape = self.shape(w)
        return self.add(y, self.reshape(b, (1, w_shape[0]) + (1,) * (len(w_shape) - 2)))

    def conv_bias_grad(
        self, g: Array, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int,
        wanted: tuple[bool, bool, bool],
    ) -> tuple[Array | None, Array | None, Array | None]:  # fmt: skip
        """The gradients of `conv_bias` (or `conv`) for the input, the weight and the bias, each
        only where `wanted` says (else None): one fused call where the library has it."""
        args = (stride, padding, dilation, groups)
        gx = self.conv_input_grad(g, w, self.shape(x), *args) if wanted[0] else None
        gw = self.conv_weight_grad(x, g, self.shape(w), *args) if wanted[1] else None
        gb = self.sum(g, (0, *range(2, len(self.shape(g)))), False) if wanted[2] else None
        return gx, gw, gb

    def logsumexp(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        """log(sum(exp(a))) over `axes`, shifted by the maximum for stability."""
        if math.prod(self.shape(a)) == 0:  # max() has no identity; the direct formula gives -inf
            return self.log(self.sum(self.exp(a), axes, keepdims))
        m = self.max(a, axes, True)
        m = self.where(self.isfinite(m), m, 0.0)
        out = self.add(self.log(self.sum(self.exp(self.sub(a, m)), axes, True)), m)
        return out if keepdims else self.squeeze(out, axes)

    def softmax(self, a: Array, axis: int) -> Array:
        """exp(a) / sum(exp(a)) along `axis`."""
        if math.prod(self.shape(a)) == 0:  # nothing to normalize, and max() has no identity
            return self.exp(a)
        e = self.exp(self.sub(a, self.max(a, (axis,), True)))
        return self.div(e, self.sum(e, (axis,), True))

    def log_softmax(self, a: Array, axis: int) -> Array:
        """a - logsumexp(a) along `axis`."""
        return self.sub(a, self.logsumexp(a, (axis,), True))

    def relu(self, a: Array) -> Array:
        """max(a, 0)."""
        return self.maximum(a, 0.0)

    def relu_grad(self, g: Array, y: Array) -> Array:
        """relu's gradient from its output `y`: g where y > 0, else 0 (torch's threshold_backward)."""
        return self.where(self.gt(y, 0.0), g, 0.0)

    def gelu(self, a: Array, approximate: str) -> Array:
        """x * Phi(x), exact ('none') or with the tanh approximation ('tanh')."""
        if approximate == "tanh":
            inner = self.mul(
                self.add(a, self.mul(self.mul(self.mul(a, a), a), 0.044715)), math.sqrt(2 / math.pi)
            )
            return self.mul(self.mul(a, 0.5), self.add(self.tanh(inner), 1.0))
        return self.mul(self.mul(a, 0.5), self.add(self.erf(self.mul(a, 1 / math.sqrt(2))), 1.0))

    def silu(self, a: Array) -> Array:
        """x * sigmoid(x)."""
        return self.mul(a, self.sigmoid(a))

    def one_hot(self, indices: Array, num_classes: int, dtype: DType) -> Array:
        """A new last axis of `num_classes` with 1 at each index (int64 indices)."""
        classes = self.arange(0, num_classes, 1, dtypes.int64)
        hit = self.eq(self.expand_dims(indices, (len(self.shape(indices)),)), classes)
        return self.cast(hit, dtype)

    def bitcast(self, a: Array, dtype: DType) -> Array:
        """Each element's bytes read as `dtype`, a dtype of the same item size (NumPy's
        `ndarray.view(dtype)`, torch's `Tensor.view(dtype)`). A byte read as bool gives True where it
        is non-zero (a bool holds 0 or 1: this is what those bytes mean to every library).

        Unlike the other composites, this default is not written with primitives (no primitive reads
        bytes): it is a round trip through host memory, right on every backend and slow on a device;
        override it with the library's native reinterpretation."""
        host = np.asarray(self.to_numpy(a))  # a view to a dtype of the same size takes any strides
        if dtype is dtypes.bool:
            return self.from_numpy(host.view(np.uint8) != 0)
        return self.from_numpy(host.view(dtypes.to_numpy_dtype(dtype)))

    def layer_norm(
        self, a: Array, normalized_ndim: int, weight: Array | None, bias: Array | None, eps: float
    ) -> Array:
        """Normalize over the last `normalized_ndim` axes, then scale and shift (torch's layer_norm)."""
        nd = len(self.shape(a))
        axes = tuple(range(nd - normalized_ndim, nd))
        mean = self.mean(a, axes, True)
        centered = self.sub(a, mean)
        var = self.mean(self.mul(centered, centered), axes, True)
        out = self.mul(centered, self.rsqrt(self.add(var, eps)))
        if weight is not None:
            out = self.mul(out, weight)
        if bias is not None:
            out = self.add(out, bias)
        return out

    def layer_norm_grad(
        self, g: Array, a: Array, normalized_ndim: int, weight: Array | None, bias: Array | None, eps: float
    ) -> tuple[Array, Array | None, Array | None]:
        """The gradients of `layer_norm` for its input, weight and bias (None for an absent
        weight or bias), in closed form: gx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) with
        gh = g * weight, the normalized axes' means."""
        nd = len(self.shape(a))
        axes = tuple(range(nd - normalized_ndim, nd))
        lead = tuple(range(nd - normalized_ndim))
        mean = self.mean(a, axes, True)
        centered = self.sub(a, mean)
        rstd = self.rsqrt(self.add(self.mean(self.mul(centered, centered), axes, True), eps))
        xhat = self.mul(centered, rstd)
        gh = g if weight is None else self.mul(g, weight)
        inner = self.add(self.mean(gh, axes, True), self.mul(xhat, self.mean(self.mul(gh, xhat), axes, True)))
        gx = self.mul(self.sub(gh, inner), rstd)
        gw = None if weight is None else self.sum(self.mul(g, xhat), lead, False)
        gb = None if bias is None else self.sum(g, lead, False)
        return gx, gw, gb

    def batch_norm(
        self, a: Array, mean: Array, var: Array, weight: Array | None, bias: Array | None, eps: float
    ) -> Array:
        """Normalize (N, C, *) with per-channel `mean` and `var` of shape (C,), then scale and shift."""
        nd = len(self.shape(a))
        per_channel = tuple(i for i in range(nd) if i != 1)

        def channel(v: Array) -> Array:
            return self.expand_dims(v, per_channel)

        out = self.mul(self.sub(a, channel(mean)), channel(self.rsqrt(self.add(var, eps))))
        if weight is not None:
            out = self.mul(out, channel(weight))
        if bias is not None:
            out = self.add(out, channel(bias))
        return out

    def max_pool_grad(
        self, g: Array, x: Array, indices: Array, kernel: Shape, stride: Shape, padding: Shape,
        dilation: Shape, ceil_mode: bool,
    ) -> Array:  # fmt: skip
        """The gradient of `max_pool` for its input `x`: each output's gradient added at the input
        position that won its window (`indices`, flat over the spatial axes, as max_pool gives)."""
        x_shape, g_shape = self.shape(x), self.shape(g)
        n, c = x_shape[:2]
        pooled = (n, c, math.prod(g_shape[2:]))
        base = self.full((n, c, math.prod(x_shape[2:])), 0, self.dtype_of(g))
        spread = self.scatter_add(base, 2, self.reshape(indices, pooled), self.reshape(g, pooled))
        return self.reshape(spread, x_shape)

    def cross_entropy(
        self, logits: Array, target: Array, weight: Array | None, ignore_index: int,
        label_smoothing: float, reduction: str,
    ) -> Array:  # fmt: skip
        """torch's cross_entropy with class-index targets: logits (N, C, *) or (C,), int64 target
        (N, *) or (); optional class weights (C,); reduction 'mean', 'sum' or 'none'."""
        class_axis = 1 if len(self.shape(logits)) > 1 else 0
        logp = self.log_softmax(logits, class_axis)
        valid, safe_target, w = Backend._target_weights(
            self, target, weight, ignore_index, self.dtype_of(logits)
        )
        picked = self.squeeze(
            self.take_along_axis(logp, self.expand_dims(safe_target, (class_axis,)), class_axis),
            (class_axis,),
        )
        loss = self.neg(self.mul(picked, w))
        if label_smoothing > 0.0:
            num_classes = self.shape(logits)[class_axis]
            if weight is not None:
                shape = [1] * len(self.shape(logits))
                shape[class_axis] = num_classes
                smooth = self.sum(self.mul(logp, self.reshape(weight, tuple(shape))), (class_axis,), False)
            else:
                smooth = self.sum(logp, (class_axis,), False)
            smooth = self.where(valid, self.neg(smooth), 0.0)
            loss = self.add(
                self.mul(loss, 1.0 - label_smoothing), self.mul(smooth, label_smoothing / num_classes)
            )
        if reduction == "none":
            return loss
        all_axes = tuple(range(len(self.shape(loss))))
        total = self.sum(loss, all_axes, False)
        if reduction == "sum":
            return total
        return self.div(total, self.sum(w, all_axes, False))

    def cross_entropy_grad(
        self, g: Array, logits: Array, target: Array, weight: Array | None, ignore_index: int,
        label_smoothing: float, reduction: str,
    ) -> Array:  # fmt: skip
        """The gradient of `cross_entropy` for its logits, in closed form (one softmax and one
        pass, where differentiating the default scatters into zeros and goes back through
        log_softmax): with s the label smoothing, C the classes, w_i the target's class weight
        (0 where ignored) and G_i each sample's share of g (g / sum(w) for 'mean'), the loss's
        gradient for the log-probabilities is -a with a = G_i ((1 - s) w_i onehot(t_i) + s / C
        weight), and the logits' is softmax * sum_c(a) - a."""
        shape = self.shape(logits)
        class_axis = 1 if len(shape) > 1 else 0
        num_classes = shape[class_axis]
        per_class = (num_classes,) + (1,) * (len(shape) - class_axis - 1)  # broadcasts along the class axis
        valid, safe_target, w = Backend._target_weights(
            self, target, weight, ignore_index, self.dtype_of(logits)
        )
        share = g
        if reduction == "mean":
            share = self.div(g, self.sum(w, tuple(range(len(self.shape(w)))), False))
        hit = self.mul(self.mul(share, w), 1.0 - label_smoothing)  # on each target class
        classes = self.reshape(self.arange(0, num_classes, 1, dtypes.int64), per_class)
        onehot = self.eq(self.expand_dims(safe_target, (class_axis,)), classes)
        a = self.where(onehot, self.expand_dims(hit, (class_axis,)), 0.0)
        total = hit
        if label_smoothing > 0.0:
            spread = self.mul(self.where(valid, share, 0.0), label_smoothing / num_classes)
            if weight is not None:
                a = self.add(
                    a, self.mul(self.expand_dims(spread, (class_axis,)), self.reshape(weight, per_class))
                )
                total = self.add(total, self.mul(spread, self.sum(weight, (0,), False)))
            else:
                a = self.add(a, self.expand_dims(spread, (class_axis,)))
                total = self.add(total, self.mul(spread, float(num_classes)))
        probs = self.softmax(logits, class_axis)
        return self.sub(self.mul(probs, self.expand_dims(total, (class_axis,))), a)

    def _target_weights(
        self, target: Array, weight: Array | None, ignore_index: int, dtype: DType
    ) -> tuple[Array, Array, Array]:
        """For cross-entropy: which targets count, the targets with ignored ones set to class 0 (a
        valid index), and each target's class weight (1 without weights, 0 where ignored)."""
        valid = self.ne(target, ignore_index)
        safe_target = self.where(valid, target, 0)
        w = (
            self.cast(valid, dtype)
            if weight is None
            else self.where(valid, self.take(weight, safe_target, 0), 0.0)
        )
        return valid, safe_target, w

    def scaled_dot_product_attention(
        self, q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float | None
    ) -> Array:
        """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys. A bool mask
        keeps True positions; a float mask is added; `is_causal` keeps j <= i. A query whose keys are
        all masked attends to nothing and gives zeros (as torch), not NaN."""
        weights = Backend._attention_weights(self, q, k, mask, is_causal, scale)
        return self.matmul(weights, v)

    def scaled_dot_product_attention_grad(
        self, g: Array, q: Array, k: Array, v: Array, out: Array, mask: Array | None, is_causal: bool,
        scale: float | None,
    ) -> tuple[Array, Array, Array]:  # fmt: skip
        """The gradients of `scaled_dot_product_attention` for q, k and v (each in its own shape)
        given the output's gradient `g` and the output `out`: with P the attention weights,
        gv = P^T g, dS = P * (g v^T - rowsum(g * out)), gq = dS k * scale, gk = dS^T q * scale."""
        nd = len(self.shape(q))
        if scale is None:
            scale = 1.0 / math.sqrt(self.shape(q)[-1])
        perm = tuple(range(nd - 2)) + (nd - 1, nd - 2)
        weights = Backend._attention_weights(self, q, k, mask, is_causal, scale)
        gv = self.matmul(self.permute(weights, perm), g)
        rows = self.sum(self.mul(g, out), (nd - 1,), True)
        ds = self.mul(weights, self.sub(self.matmul(g, self.permute(v, perm)), rows))
        gq = self.mul(self.matmul(ds, k), scale)
        gk = self.mul(self.matmul(self.permute(ds, perm), q), scale)
        return tuple(Backend._sum_to(self, grad, self.shape(x)) for grad, x in ((gq, q), (gk, k), (gv, v)))  # type: ignore[return-value]

    def _attention_weights(
        self, q: Array, k: Array, mask: Array | None, is_causal: bool, scale: float | None
    ) -> Array:
        """softmax(q k^T * scale + mask) with the masks applied; a row with every key masked is
        all zeros, not NaN."""
        q_shape, k_shape = self.shape(q), self.shape(k)
        nd = len(q_shape)
        if scale is None:
            scale = 1.0 / math.sqrt(q_shape[-1])
        perm = tuple(range(nd - 2)) + (nd - 1, nd - 2)
        scores = self.mul(self.matmul(q, self.permute(k, perm)), scale)
        if is_causal:
            rows = self.expand_dims(self.arange(0, q_shape[-2], 1, dtypes.int64), (1,))
            cols = self.expand_dims(self.arange(0, k_shape[-2], 1, dtypes.int64), (0,))
            scores = self.where(self.ge(rows, cols), scores, -math.inf)
        if mask is not None:
            if self.dtype_of(mask) is dtypes.bool:
                scores = self.where(mask, scores, -math.inf)
            else:
                scores = self.add(scores, mask)
        m = self.max(scores, (nd - 1,), True)
        e = self.exp(self.sub(scores, self.where(self.isfinite(m), m, 0.0)))
        total = self.sum(e, (nd - 1,), True)
        return self.div(e, self.where(self.eq(total, 0.0), 1.0, total))

    def _sum_to(self, a: Array, shape: Shape) -> Array:
        """`a` summed down to `shape` over the axes broadcasting had stretched."""
        have = self.shape(a)
        if have == tuple(shape):
            return a
        lead = len(have) - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, n in enumerate(shape) if n == 1 and have[i + lead] != 1
        )
        return self.reshape(self.sum(a, axes, False), tuple(shape))

    def adam_step(
        self, params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
        exp_avg_sqs: Sequence[Array], max_exp_avg_sqs: Sequence[Array] | None,
        steps: Sequence[int | Array], lr: float | Array, beta1: float, beta2: float, eps: float,
        weight_decay: float, decoupled: bool, maximize: bool,
    ) -> tuple[list[Array], list[Array], list[Array], list[Array] | None]:  # fmt: skip
        """One Adam (decoupled=False: L2 decay added to the gradient) or AdamW step over lists of
        parameters, as torch.optim computes it; `steps` are the step counts including this one and
        `max_exp_avg_sqs` is None unless AMSGrad. Returns the new (params, exp_avgs, exp_avg_sqs,
        max_exp_avg_sqs). The optimizer owns the moment arrays, so an override may update them in
        place and return them; it never writes `params` or `grads`, which other tensors may share.
        In a compiled step the step counts and `lr` are 0-d arrays (see `_adam_scalars`); overrides fuse
        the eager case and leave that one to this default, which the compiler fuses."""
        new_p, new_m, new_v, new_max = [], [], [], []
        scalars = self._adam_scalars(lr, steps, beta1, beta2, weight_decay, params)
        for i, (p, g, m, v, (step_size, correction, shrink)) in enumerate(
            zip(params, grads, exp_avgs, exp_avg_sqs, scalars)
        ):
            if maximize:
                g = self.neg(g)
            if weight_decay:
                if decoupled:
                    p = self.mul(p, shrink)
                else:
                    g = self.add(g, self.mul(p, weight_decay))
            m = self.add(m, self.mul(self.sub(g, m), 1 - beta1))  # torch's lerp
            v = self.add(self.mul(v, beta2), self.mul(self.mul(g, g), 1 - beta2))
            new_m.append(m)
            new_v.append(v)
            if max_exp_avg_sqs is not None:
                v = self.maximum(max_exp_avg_sqs[i], v)
                new_max.append(v)
            denom = self.add(self.div(self.sqrt(v), correction), eps)
            new_p.append(self.sub(p, self.mul(self.div(m, denom), step_size)))
        return new_p, new_m, new_v, (new_max if max_exp_avg_sqs is not None else None)

    def _adam_scalars(
        self, lr: float | Array, steps: Sequence[int | Array], beta1: float, beta2: float,
        weight_decay: float, like: Sequence[Array],
    ) -> list[tuple[Any, Any, Any]]:  # fmt: skip
        """Per parameter, Adam's step size lr / (1 - beta1^t), bias correction sqrt(1 - beta2^t)
        and decoupled decay factor 1 - lr * weight_decay: Python floats for numbers. The 0-d
        arrays of a compiled step are stacked and computed at once, in float64, then given each
        parameter's dtype: one small vector op for all, not a few scalar ops per parameter (which a
        compiler would run as separate tiny kernels). Parameters whose count is one array (a
        compiled step keeps one per group) share one entry and one cast per dtype."""
        if self._numbers(lr, steps):
            return [(lr / (1 - beta1**t), math.sqrt(1 - beta2**t), 1 - lr * weight_decay) for t in steps]
        f64 = dtypes.float64
        unique, index = distinct(steps)
        ts = self.stack(
            [self.cast(t, f64) if self.is_native(t) else self.full((), t, f64) for t in unique], 0
        )
        lr = self.cast(lr, f64) if self.is_native(lr) else self.full((), lr, f64)
        step_sizes = self.div(lr, self.sub(1.0, self.pow(beta1, ts)))
        corrections = self.sqrt(self.sub(1.0, self.pow(beta2, ts)))
        shrink = self.sub(1.0, self.mul(lr, weight_decay))
        made: dict[tuple[int, Any], tuple[Any, Any, Any]] = {}
        out = []
        for i, p in zip(index, like):
            d = self.dtype_of(p)
            if (i, d) not in made:
                pair = (self.getitem(step_sizes, (i,)), self.getitem(corrections, (i,)))
                made[i, d] = (*(self.cast(a, d) for a in pair), self.cast(shrink, d))
            out.append(made[i, d])
        return out

    def _numbers(self, lr: float | Array, steps: Sequence[int | Array]) -> bool:
        """Whether an optimizer's step counts and learning rate are Python numbers (eager), not the
        0-d arrays of a compiled step."""
        return not self.is_native(lr) and not any(self.is_native(t) for t in steps)


_ADDRESSABLE = 2**63
"""No device holds this many bytes: sizes are int64 in every library (XLA aborts on the overflow)."""


@functools.cache
def host_memory() -> int | None:
    """The host's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes_text(n: int) -> str:
    """`n` bytes in binary units, for messages: "3.6 TiB"."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "bytes" else f"{n} bytes"
        size /= 1024
    return f"{size:.1f} EiB"


def _request(op: str, shape: Shape, dtype: DType, nbytes: int) -> str:
    """The start of an OutOfMemoryError's message: what was asked for."""
    size = f"{nbytes} bytes ({_bytes_text(nbytes)})"
    return f"{op}: a tensor of shape {tuple(shape)} and dtype {dtype.name} needs {size}"


def check_allocation(ops: Backend, op: str, shape: Shape, dtype: DType) -> None:
    """Raise OutOfMemoryError, before anything is allocated, when a result of `shape` and `dtype`
    cannot fit on `ops`'s device: more bytes than the device has (`memory_capacity`), or than any
    device can address. Only bytes that can never fit are refused: a result that fits the device
    but not its free memory is the library's to refuse (`allocation_error` translates that)."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _ADDRESSABLE:
        limit = ops.memory_capacity()
        if limit is None or nbytes <= limit:
            return
        where = f"more than the {_bytes_text(limit)} of memory of backend {ops.name!r} ({ops.device})"
    else:
        where = "more than any device can address (2**63 bytes)"
    raise OutOfMemoryError(
        f"{_request(op, shape, dtype, nbytes)}, {where}; use a smaller shape (a smaller batch, or "
        "the work in chunks) or a device with more memory",
        op=op, shape=tuple(shape), dtype=dtype, nbytes=nbytes,
    )  # fmt: skip


def allocation_error(
    ops: Backend, op: str, shape: Shape, dtype: DType, exc: BaseException
) -> OutOfMemoryError | None:
    """After `ops`'s library failed to make a result of `shape` and `dtype`: the OutOfMemoryError to
    raise in place of `exc` when the result cannot fit or the library says it ran out of memory
    (`is_out_of_memory`), else None (`exc` is about something else)."""
    try:
        check_allocation(ops, op, shape, dtype)
    except OutOfMemoryError as too_big:
        return too_big
    if not ops.is_out_of_memory(exc):
        return None
    nbytes = math.prod(shape) * dtype.itemsize
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OutOfMemoryError(
        f"{_request(op, shape, dtype, nbytes)} and backend {ops.name!r} ({ops.device}) could not "
        f"allocate it ({said}); free memory (drop tensors you no longer need) or use a smaller shape",
        op=op, shape=tuple(shape), dtype=dtype, nbytes=nbytes,
    )  # fmt: skip


class IntCast(NamedTuple):
    """How to cast float to int as the op-set says, in a few vectorized passes on any library:
    clip to [lo, hi], set NaN to 0, convert (exact: both bounds are values of the float dtype inside
    the int's range), then, where `fix_min`, give the int's min to inputs below lo (only -inf can
    be: float16's range is narrower than int32's), and where `fix_max` its max to inputs above hi
    (the int's max is not a value of the float dtype: 2**31 - 1 is not a float32)."""

    lo: float
    hi: float
    fix_min: bool
    fix_max: bool


@functools.cache
def int_cast(src: DType, dst: DType) -> IntCast:
    """The IntCast from float dtype `src` to integer dtype `dst`."""
    info, fi = dtypes.iinfo(dst), dtypes.native_finfo(src)
    largest, digits = float(fi.max), int(fi.nmant) + 1  # significand bits
    end = float(info.max) + 1  # 2**(bits - 1), or 2**bits unsigned: exact in every float dtype
    if end > largest:
        hi = largest
    elif info.max < 2**digits:
        hi = float(info.max)  # exact
    else:
        hi = end - end / 2**digits  # the float just below 2**m: 2**m - 2**(m - digits)
    lo = max(float(info.min), -largest)  # 0, or -2**(bits - 1) when the float reaches it
    return IntCast(lo, hi, lo != info.min, hi != info.max)


def references(obj: Any) -> int:
    """How many references hold `obj`: containers, attributes and the caller's variables; the
    temporary the caller passes as the argument does not count (`references(holder[0])` is 1 for
    an object held by `holder` alone). CPython's reference count, calibrated on an object nothing
    holds, so the count's own references are not included."""
    return sys.getrefcount(obj) - _REFERENCES_OF_THE_CALL


_REFERENCES_OF_THE_CALL = 0
_REFERENCES_OF_THE_CALL = references(object())


def distinct(items: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The distinct objects of `items` (by identity, in first-seen order) and, per item, its
    position among them: work on a compiled step's shared step count is done once, not per
    parameter."""
    unique: list[Any] = []
    seen: dict[int, int] = {}
    index = []
    for x in items:
        if id(x) not in seen:
            seen[id(x)] = len(unique)
            unique.append(x)
        index.append(seen[id(x)])
    return unique, index


def _declare(name: str, doc: str) -> None:
    def primitive(self: Backend, *args: Any) -> Array:
        raise NotImplementedError

    primitive.__name__ = primitive.__qualname__ = name
    primitive.__doc__ = doc
    setattr(Backend, name, abc.abstractmethod(primitive))


for _name in UNARY_OPS:
    _declare(_name, f"Elementwise {_name}(a).")
for _name in BINARY_OPS:
    _declare(_name, f"Elementwise {_name}(a, b) with broadcasting.")
for _name in REDUCTIONS:
    _declare(_name, f"{_name} of `a` over `axes` (keepdims keeps them as size 1).")
abc.update_abstractmethods(Backend)

PRIMITIVES: tuple[str, ...] = tuple(sorted(Backend.__abstractmethods__))
"""Every abstract primitive a backend must implement."""

COMPOSITES: tuple[str, ...] = (
    "linear", "linear_grad", "conv_bias", "conv_bias_grad", "logsumexp", "softmax", "log_softmax", "relu", "relu_grad", "gelu", "silu", "one_hot",
    "bitcast",
    "layer_norm", "layer_norm_grad", "batch_norm", "max_pool_grad", "cross_entropy", "cross_entropy_grad",
    "scaled_dot_product_attention", "scaled_dot_product_attention_grad", "adam_step",
)  # fmt: skip
"""Ops with a default here that a backend may override with a fused native call. The `*_grad`
ones are gradients, which backward runs: a backend with a fused backward kernel gives it there.
`bitcast` is the one default not written with primitives (a host round trip: no primitive reads
bytes); it is not differentiated, and a backend should override it natively."""

DEFAULTS: tuple[str, ...] = (
    "std", "topk", "nonzero", "random_uniform", "random_normal", "random_bernoulli",
    "random_integers", "from_dlpack", "to_dlpack", "dlpack_device", "memory_capacity",
    "is_out_of_memory",
)  # fmt: skip
"""Other methods with a default here that a backend may override (not composites: they are not
differentiated through their default body)."""
