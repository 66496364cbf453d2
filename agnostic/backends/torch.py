"""The PyTorch backend (LibTorch): CPU, CUDA and MPS devices, fused torch.nn.functional overrides.

Only this module imports torch, and only when the backend is first asked for.
"""

from __future__ import annotations

import abc
import contextvars
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agnostic import dtypes, threads
from agnostic.backends import _torch_unsigned as _unsigned
from agnostic.backends._torch_fft import TorchFFT
from agnostic.backends._torch_linalg import TorchLinalg
from agnostic.backends._xp import tanh_at_infinity
from agnostic.backends.base import (
    Array,
    Axes,
    Backend,
    DeviceUnavailable,
    Pairs,
    Shape,
    TraceError,
    distinct,
    int_cast,
    references,
)
from agnostic.dtypes import DType

threads.torch_loaded(torch)  # a thread count the user set (ag.set_num_threads) before torch loaded

_TORCH_DTYPES = {
    dtypes.bool: torch.bool,
    dtypes.int8: torch.int8,
    dtypes.int16: torch.int16,
    dtypes.int32: torch.int32,
    dtypes.int64: torch.int64,
    dtypes.uint8: torch.uint8,
    dtypes.uint16: torch.uint16,
    dtypes.uint32: torch.uint32,
    dtypes.uint64: torch.uint64,
    dtypes.float16: torch.float16,
    dtypes.bfloat16: torch.bfloat16,
    dtypes.float32: torch.float32,
    dtypes.float64: torch.float64,
    dtypes.complex64: torch.complex64,
    dtypes.complex128: torch.complex128,
}
_FROM_TORCH = {v: k for k, v in _TORCH_DTYPES.items()}


def _round(a: Any) -> Any:
    """torch.round; for complex, both parts rounded half to even (torch has no complex kernel)."""
    if a.is_complex():
        return torch.complex(torch.round(a.real), torch.round(a.imag))
    return torch.round(a)


def _expm1(a: Any) -> Any:
    """torch.expm1; for a complex input with an infinite or NaN part, exp(z) - 1, which has the
    Array API's values where torch's complex expm1 gives NaN (expm1(inf + 0j) = inf + 0j)."""
    out = torch.expm1(a)
    if not a.is_complex():
        return out
    out = torch.where(torch.isfinite(a), out, torch.exp(a) - 1)
    return torch.complex(out.real + 0.0, out.imag)  # expm1(-0 + 0j) = +0 + 0j (the standard)


def _log1p(a: Any) -> Any:
    """torch.log1p; for a complex input with an infinite or NaN part, log(1 + z), which has the
    Array API's values where torch's complex log1p gives NaN (log1p(x + inf j) = inf + pi/2 j)."""
    out = torch.log1p(a)
    if not a.is_complex():
        return out
    return torch.where(torch.isfinite(a), out, torch.log(a + 1))


def _tanh(a: Any) -> Any:
    out = torch.tanh(a)
    return torch.complex(*tanh_at_infinity(torch, a, out)) if a.is_complex() else out


def _acos(a: Any) -> Any:
    """torch.acos; for complex inputs the imaginary part gets the sign opposite to the input's, as
    C99 and the Array API say (torch's complex128 kernel gives acos(0j) = pi/2 + 0j, not - 0j)."""
    out = torch.acos(a)
    if not a.is_complex():
        return out
    b = a.imag
    return torch.complex(out.real, torch.where(torch.isnan(b), out.imag, torch.copysign(out.imag.abs(), -b)))


_UNARY = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "expm1": _expm1,
    "log": torch.log, "log1p": _log1p, "log2": torch.log2, "log10": torch.log10, "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt, "square": torch.square, "reciprocal": torch.reciprocal, "sin": torch.sin,
    "cos": torch.cos, "tan": torch.tan, "asin": torch.asin, "acos": _acos, "atan": torch.atan,
    "sinh": torch.sinh, "cosh": torch.cosh, "tanh": _tanh, "asinh": torch.asinh,
    "acosh": torch.acosh, "atanh": torch.atanh, "sigmoid": torch.sigmoid, "erf": torch.erf,
    "floor": torch.floor, "ceil": torch.ceil, "round": _round, "trunc": torch.trunc,
    "isnan": torch.isnan, "isinf": torch.isinf, "isfinite": torch.isfinite, "signbit": torch.signbit,
    "logical_not": torch.logical_not, "bitwise_invert": torch.bitwise_not,
    "conj": torch.conj_physical, "real": torch.real, "imag": torch.imag,
}  # fmt: skip
# ops whose torch function takes a Python scalar for either operand
_BINARY_SCALAR_OK = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.true_divide, "pow": torch.pow,
    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge,
    "bitwise_and": torch.bitwise_and, "bitwise_or": torch.bitwise_or, "bitwise_xor": torch.bitwise_xor,
    "bitwise_left_shift": torch.bitwise_left_shift, "bitwise_right_shift": torch.bitwise_right_shift,
}  # fmt: skip
# ops whose torch function needs tensors on both sides
_BINARY_TENSORS = {
    "maximum": torch.maximum, "minimum": torch.minimum, "atan2": torch.atan2,
    "logaddexp": torch.logaddexp, "hypot": torch.hypot, "copysign": torch.copysign,
    "nextafter": torch.nextafter,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}  # fmt: skip
# methods torch lacks some uint16/32/64 kernels for: on its error they fall back on the exact
# emulation in _torch_unsigned (the table ops above do the same in their closures)
_UNSIGNED_FALLBACKS = (
    "floor_divide", "remainder", "sign", "sum", "prod", "max", "min", "argmax", "argmin", "cumsum",
    "cumprod", "matmul", "clip", "cast", "arange", "take", "take_along_axis", "scatter_add",
    "index_add", "getitem", "flip", "pad", "repeat", "nonzero",
)  # fmt: skip


class TorchBackend(TorchLinalg, TorchFFT, Backend):
    """Primitives on torch tensors, bound to one torch device."""

    name = "torch"
    compiler = "torch.fx"
    max_dims = 64
    dtype_table = _FROM_TORCH

    def __init__(self, device: str | int | None = None) -> None:
        super().__init__(device)
        self._torch_device = torch.device(self.device)

    # ------------------------------------------------------------------ identity and info
    @classmethod
    def canonical_device(cls, device: str | int | None) -> str:
        if device is None or device == "cpu":
            return "cpu"
        if isinstance(device, int):
            device = f"cuda:{device}"
        if device == "cuda":
            device = "cuda:0"
        if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
            if not torch.cuda.is_available():
                raise DeviceUnavailable(
                    f"backend 'torch': device {device!r} requested but torch sees no CUDA device"
                )
            index = int(device.split(":", 1)[1])
            if index >= torch.cuda.device_count():
                raise DeviceUnavailable(
                    f"backend 'torch': no device {device!r}; available: {', '.join(cls.devices())}"
                )
            return device
        if device == "mps":
            if not torch.backends.mps.is_available():
                raise DeviceUnavailable("backend 'torch': device 'mps' requested but MPS is not available")
            return "mps"
        raise ValueError(f"backend 'torch': unknown device {device!r}; available: {', '.join(cls.devices())}")

    @classmethod
    def library_version(cls) -> str:
        return torch.__version__

    @classmethod
    def devices(cls) -> list[str]:
        found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            found.append("mps")
        return found

    def memory_capacity(self) -> int | None:
        kind = self._torch_device.type
        if kind == "cuda":
            return torch.cuda.get_device_properties(self._torch_device).total_memory
        return super().memory_capacity() if kind == "cpu" else None

    def is_out_of_memory(self, exc: BaseException) -> bool:
        # CUDA says torch.OutOfMemoryError; the CPU and MPS allocators a RuntimeError of their own
        return isinstance(exc, (MemoryError, _CUDA_OUT_OF_MEMORY)) or (
            isinstance(exc, RuntimeError) and any(s in str(exc) for s in _OUT_OF_MEMORY_SAYS)
        )

    # ------------------------------------------------------------------ dtypes, shapes, host
    def native_dtype(self, dtype: DType) -> Any:
        return _TORCH_DTYPES[dtype]

    def dtype_of(self, a: Array) -> DType:
        return _FROM_TORCH[a.dtype]

    def shape(self, a: Array) -> Shape:
        return tuple(a.shape)

    def is_native(self, obj: object) -> bool:
        return isinstance(obj, torch.Tensor)

    def from_numpy(self, array: np.ndarray) -> Array:
        array = np.array(array, copy=True, order="C")  # (ascontiguousarray would make 0-d 1-d)
        if array.dtype.name == "bfloat16":  # ml_dtypes' (NumPy has none): torch reads its bits
            t = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(array)
        return t.to(self._torch_device)

    def to_numpy(self, a: Array) -> np.ndarray:
        a = a.detach()
        if a.dtype == torch.bfloat16:
            return a.view(torch.int16).cpu().numpy().view(dtypes.to_numpy_dtype(dtypes.bfloat16))
        host = a.cpu().numpy()
        if host.flags.writeable and a.device.type == "cpu":
            host = host.view()
            host.flags.writeable = False  # shares memory with the tensor: tensors are values
        return host

    def from_dlpack(self, obj: Any) -> Array:
        return torch.from_dlpack(obj).to(self._torch_device)

    # ------------------------------------------------------------------ creation
    def full(self, shape: Shape, value: bool | int | float, dtype: DType) -> Array:
        return torch.full(shape, value, dtype=_TORCH_DTYPES[dtype], device=self._torch_device)

    def arange(self, start: int | float, stop: int | float, step: int | float, dtype: DType) -> Array:
        return torch.arange(start, stop, step, dtype=_TORCH_DTYPES[dtype], device=self._torch_device)

    def eye(self, n: int, m: int, k: int, dtype: DType) -> Array:
        rows = torch.arange(n, device=self._torch_device).unsqueeze(1)
        cols = torch.arange(m, device=self._torch_device).unsqueeze(0)
        return (cols - rows == k).to(_TORCH_DTYPES[dtype])

    def cast(self, a: Array, dtype: DType) -> Array:
        if dtype.is_integer and a.is_floating_point():
            return _saturating_cast(a, dtype)
        return a.to(_TORCH_DTYPES[dtype])

    # ------------------------------------------------------------------ elementwise
    def _tensor_like(self, value: Any, like: Array) -> Array:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)

    def sign(self, a: Array) -> Array:
        if a.is_complex():  # torch.sign refuses complex; torch.sgn is z / |z|
            return _complex_sign(a)
        out = torch.sign(a)  # torch gives sign(nan) = 0; NaN must stay NaN
        return torch.where(torch.isnan(a), a, out) if a.is_floating_point() else out

    def floor_divide(self, a: Array | int | float, b: Array | int | float) -> Array:
        return _by_zero_is_zero(torch.floor_divide, a, b)

    def remainder(self, a: Array | int | float, b: Array | int | float) -> Array:
        return _by_zero_is_zero(torch.remainder, a, b)

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            raise TypeError("where: at least one of a and b must be a tensor")
        return torch.where(cond, a, b)

    def clip(self, a: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        if lo is not None:
            a = torch.maximum(a, lo) if isinstance(lo, torch.Tensor) else torch.clamp_min(a, lo)
        if hi is not None:
            a = torch.minimum(a, hi) if isinstance(hi, torch.Tensor) else torch.clamp_max(a, hi)
        return a

    # ------------------------------------------------------------------ reductions
    # torch reads dim=() as "every dim"; an empty axes tuple must reduce nothing.
    def sum(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.sum(a, dim=axes, keepdim=keepdims, dtype=a.dtype) if axes else a.clone()

    def mean(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.mean(a, dim=axes, keepdim=keepdims) if axes else a.clone()

    def prod(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        for ax in sorted(axes, reverse=True):
            a = torch.prod(a, dim=ax, keepdim=keepdims, dtype=a.dtype)
        return a if axes else a.clone()

    def max(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.amax(a, dim=axes, keepdim=keepdims) if axes else a.clone()

    def min(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.amin(a, dim=axes, keepdim=keepdims) if axes else a.clone()

    def any(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.any(a, dim=axes, keepdim=keepdims) if axes else a.clone()

    def all(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        return torch.all(a, dim=axes, keepdim=keepdims) if axes else a.clone()

    def var(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        if not axes:  # each element alone: 0 / (1 - correction)
            return (a - a) / (1.0 - correction) if correction != 1 else (a - a) * math.nan
        if a.dtype not in (torch.float32, torch.float64):  # low precision: torch's own accumulation
            return torch.var(a, dim=axes, correction=correction, keepdim=keepdims)
        # two passes, as NumPy: torch.var's one-pass kernel is 5-10x slower on the CPU over several
        # axes or a strided one, e.g. BatchNorm's (0, 2, 3) of an (N, C, H, W) batch
        centered = a - torch.mean(a, dim=axes, keepdim=True)
        count = math.prod(a.shape[i] for i in axes)
        return torch.sum(centered * centered, dim=axes, keepdim=keepdims) / max(
            count - correction, 0
        )  # as torch

    def std(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        if not axes:
            return self.var(a, axes, correction, keepdims)
        return torch.sqrt(self.var(a, axes, correction, keepdims))

    def argmax(self, a: Array, axis: int, keepdims: bool) -> Array:
        return torch.argmax(a, dim=axis, keepdim=keepdims)

    def argmin(self, a: Array, axis: int, keepdims: bool) -> Array:
        return torch.argmin(a, dim=axis, keepdim=keepdims)

    def cumsum(self, a: Array, axis: int) -> Array:
        return torch.cumsum(a, dim=axis, dtype=a.dtype)

    def cumprod(self, a: Array, axis: int) -> Array:
        return torch.cumprod(a, dim=axis, dtype=a.dtype)

    def logsumexp(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        if not axes:
            return a.clone()
        return torch.logsumexp(a, dim=axes, keepdim=keepdims)

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a: Array, b: Array) -> Array:
        return torch.matmul(a, b)

    # ------------------------------------------------------------------ shape
    def reshape(self, a: Array, shape: Shape) -> Array:
        return a.reshape(shape)

    def permute(self, a: Array, axes: Axes) -> Array:
        return a.permute(axes)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return torch.broadcast_to(a, shape)

    def squeeze(self, a: Array, axes: Axes) -> Array:
        return torch.squeeze(a, dim=axes) if axes else a

    def expand_dims(self, a: Array, axes: Axes) -> Array:
        for ax in sorted(axes):
            a = a.unsqueeze(ax)
        return a

    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        return torch.cat(list(arrays), dim=axis)

    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        return torch.stack(list(arrays), dim=axis)

    def flip(self, a: Array, axes: Axes) -> Array:
        return torch.flip(a, dims=axes)

    def pad(self, a: Array, widths: Pairs, mode: str, value: float) -> Array:
        if mode == "constant":
            flat = [p for pair in reversed(widths) for p in pair]
            return F.pad(a, flat, mode="constant", value=value)
        # reflect / edge on any axis: gather the source index of every padded position
        for axis, (lo, hi) in enumerate(widths):
            if lo or hi:
                n = a.shape[axis]
                src = np.pad(np.arange(n), (lo, hi), mode=mode)
                a = torch.index_select(a, axis, torch.as_tensor(src, device=a.device))
        return a

    def tile(self, a: Array, reps: Shape) -> Array:
        return a.repeat(reps)

    def repeat(self, a: Array, repeats: int | Array, axis: int) -> Array:
        return torch.repeat_interleave(a, repeats, dim=axis)

    # ------------------------------------------------------------------ indexing
    def _positive_steps(self, a: Array, key: tuple) -> tuple[Array, tuple]:
        """torch slices need positive steps: flip the axes that have negative ones first."""
        if not any(isinstance(k, slice) and k.step is not None and k.step < 0 for k in key):
            return a, key
        n_index = sum(
            1 if not isinstance(k, torch.Tensor) or k.dtype != torch.bool else max(k.ndim, 1)
            for k in key
            if k is not None and k is not Ellipsis
        )
        out, dim = [], 0
        for k in key:
            if k is Ellipsis:
                dim += a.ndim - n_index
            elif k is None:
                pass
            elif isinstance(k, slice) and k.step is not None and k.step < 0:
                n = a.shape[dim]
                start, stop, step = k.indices(n)
                count = len(range(start, stop, step))
                a = torch.flip(a, dims=(dim,))
                first = n - 1 - start
                k = slice(first, first + count * (-step), -step) if count else slice(0, 0)
                dim += 1
            elif isinstance(k, torch.Tensor) and k.dtype == torch.bool:
                dim += max(k.ndim, 1)
            else:
                dim += 1
            out.append(k)
        return a, tuple(out)

    def getitem(self, a: Array, key: tuple) -> Array:
        a, key = self._positive_steps(a, key)
        return a[key]

    def index_add(self, a: Array, key: tuple, values: Array) -> Array:
        out = a.clone()
        if all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in key):
            flipped, key2 = self._positive_steps(out, key)
            if flipped is out:
                out[key2] += values
                return out
        # general keys: the flat position of every selected element, then one index_add
        positions = torch.arange(a.numel(), device=a.device).reshape(a.shape)
        flat = self.getitem(positions, key).reshape(-1)
        out.view(-1).index_add_(0, flat, values.reshape(-1).to(out.dtype))
        return out

    def take(self, a: Array, indices: Array, axis: int) -> Array:
        picked = torch.index_select(a, axis, indices.reshape(-1))
        return picked.reshape(a.shape[:axis] + tuple(indices.shape) + a.shape[axis + 1 :])

    def take_along_axis(self, a: Array, indices: Array, axis: int) -> Array:
        return torch.take_along_dim(a, indices, dim=axis)

    def scatter_add(self, a: Array, axis: int, indices: Array, src: Array) -> Array:
        return a.scatter_add(axis, indices, src)

    def sort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        return torch.sort(a, dim=axis, descending=descending, stable=True).values

    def argsort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        return torch.argsort(a, dim=axis, descending=descending, stable=True)

    def nonzero(self, a: Array) -> tuple[Array, ...]:
        return torch.nonzero(a, as_tuple=True)

    # ------------------------------------------------------------------ convolution and pooling
    @staticmethod
    def _symmetric(padding: Pairs) -> bool:
        return all(lo == hi for lo, hi in padding)

    def conv(self, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
        return self.conv_bias(x, w, None, stride, padding, dilation, groups)

    def conv_bias(
        self, x: Array, w: Array, b: Array | None, stride: Shape, padding: Pairs, dilation: Shape, groups: int
    ) -> Array:
        fn = (F.conv1d, F.conv2d, F.conv3d)[w.ndim - 3]
        if self._symmetric(padding):
            return fn(x, w, b, stride, tuple(lo for lo, _ in padding), dilation, groups)
        x = F.pad(x, [p for pair in reversed(padding) for p in pair])
        return fn(x, w, b, stride, 0, dilation, groups)

    def conv_input_grad(
        self, gy: Array, w: Array, input_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        # torch's own convolution backward (faster than the transposed convolution on the CPU); it
        # reads only the input's shape, so an unfilled tensor stands in. Uneven padding: the
        # gradient for the padded input, cropped back.
        d = w.ndim - 2
        even = self._symmetric(padding)
        shape = list(input_shape[:2]) + [
            n if even else n + lo + hi for n, (lo, hi) in zip(input_shape[2:], padding)
        ]
        like = torch.empty(shape, dtype=gy.dtype, device=gy.device)
        gx, _, _ = torch.ops.aten.convolution_backward(
            gy, like, w, None, list(stride), [lo if even else 0 for lo, _ in padding], list(dilation),
            False, [0] * d, groups, [True, False, False],
        )  # fmt: skip
        if even:
            return gx
        return gx[
            (slice(None), slice(None), *(slice(lo, lo + n) for n, (lo, _) in zip(input_shape[2:], padding)))
        ]

    def conv_weight_grad(
        self, x: Array, gy: Array, weight_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        if not self._symmetric(padding):
            x = F.pad(x, [p for pair in reversed(padding) for p in pair])
            padding = tuple((0, 0) for _ in padding)
        sym = [lo for lo, _ in padding]
        weight = torch.empty(weight_shape, dtype=x.dtype, device=x.device)
        _, gw, _ = torch.ops.aten.convolution_backward(
            gy, x, weight, None, list(stride), sym, list(dilation), False, [0] * len(stride), groups,
            [False, True, False],
        )  # fmt: skip
        return gw

    def conv_bias_grad(
        self, g: Array, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int,
        wanted: tuple[bool, bool, bool],
    ) -> tuple[Array | None, Array | None, Array | None]:  # fmt: skip
        # one convolution_backward for all three, as torch's autograd calls it. Uneven padding:
        # the gradients for the padded input, its gradient cropped back.
        even = self._symmetric(padding)
        if not even:
            x = F.pad(x, [p for pair in reversed(padding) for p in pair])
        d = w.ndim - 2
        gx, gw, gb = torch.ops.aten.convolution_backward(
            g, x, w, [w.shape[0]] if wanted[2] else None, list(stride),
            [lo if even else 0 for lo, _ in padding], list(dilation), False, [0] * d, groups, list(wanted),
        )  # fmt: skip
        if gx is not None and not even:
            gx = gx[
                (slice(None), slice(None), *(slice(lo, n - hi) for n, (lo, hi) in zip(gx.shape[2:], padding)))
            ]
        return gx, gw, gb

    def max_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
    ) -> tuple[Array, Array]:
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(kernel) - 1]
        return fn(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)

    def avg_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool,
        count_include_pad: bool,
    ) -> Array:  # fmt: skip
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(kernel) - 1]
        return fn(x, kernel, stride, padding, ceil_mode, count_include_pad)

    def max_pool_grad(
        self, g: Array, x: Array, indices: Array, kernel: Shape, stride: Shape, padding: Shape,
        dilation: Shape, ceil_mode: bool,
    ) -> Array:  # fmt: skip
        if len(kernel) == 1:  # torch pools 1-d as 2-d with a unit first axis
            g, x, indices = g.unsqueeze(2), x.unsqueeze(2), indices.unsqueeze(2)
            as_2d = ((1, *kernel), (1, *stride), (0, *padding), (1, *dilation))
            return self.max_pool_grad(g, x, indices, *as_2d, ceil_mode).squeeze(2)
        fn = torch.ops.aten.max_pool2d_with_indices_backward
        if len(kernel) == 3:
            fn = torch.ops.aten.max_pool3d_with_indices_backward
        return fn(g, x, list(kernel), list(stride), list(padding), list(dilation), ceil_mode, indices)

    def avg_pool_grad(
        self, gy: Array, input_shape: Shape, kernel: Shape, stride: Shape, padding: Shape,
        ceil_mode: bool, count_include_pad: bool,
    ) -> Array:  # fmt: skip
        # avg_pool is linear: its adjoint is the gradient torch computes for it
        with torch.enable_grad():
            x = torch.zeros(input_shape, dtype=gy.dtype, device=gy.device, requires_grad=True)
            y = self.avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad)
            (gx,) = torch.autograd.grad((y * gy).sum(), x)  # not grad_outputs: see the attention's
        return gx

    # ------------------------------------------------------------------ compilation
    def trace(self, fn: Any, inputs: list[Array], mode: str | None) -> Any:
        """The ATen ops `fn` runs, as a torch.fx graph: traced with fake tensors (no data, nothing
        computed), so the Python of agnostic's layers, autodiff and optimizers is gone from it."""
        from torch.fx.experimental.proxy_tensor import make_fx

        token = _for_inductor.set(mode is not None)
        try:
            traced = make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
        except Exception as exc:
            said = f"{type(exc).__name__}: {exc}"
            if not any(s in said for s in _HOST_READ_ERRORS):
                raise
            raise TraceError(said.split("\n")[0]) from exc
        finally:
            _for_inductor.reset(token)
        _unsigned.check_traced(traced, inputs)  # fake tensors hide torch's missing uint kernels
        return traced

    def compile_traced(self, traced: Any, mode: str | None) -> Any:
        """The graph as it is, or, given a mode, torch.compile's (inductor) build of it."""
        return traced if mode is None else torch.compile(traced, mode=mode, fullgraph=True)

    def in_place(self, traced: Any, updates: Sequence[tuple[int, int]]) -> tuple[Any, tuple[int, ...]]:
        """The graph made to write each new value into its input's buffer, as torch.optim's
        in-place update does: `aten.copy_(input, new)` right after the last read of the input's old
        value (and the last write of the new one), and None output in its place, so the new array
        is freed at once instead of living beside the old one until the step returns. A new value
        that is the input itself (a fused kernel that updated it in place) needs no copy; one that is
        a fresh `clone` of the input, written by a kernel after every read of the input, is replaced
        by the input (the kernel then updates it directly: no second copy of the parameters).
        Kept as it is: a 0-d value (a step count), a new value of another shape, dtype or device,
        one that may share memory with another input, and an input that a result of the step may
        be a view of (that result would change with it). torch.compile (a mode) sees the copies
        as mutations of its inputs and keeps them in the program (checked: inductor writes into
        the inputs; it drops a copy into a 0-d CPU input, hence none)."""
        graph = traced.graph
        nodes = list(graph.nodes)
        order = {n: i for i, n in enumerate(nodes)}
        inputs = [n for n in nodes if n.op == "placeholder"]
        output = next(n for n in reversed(nodes) if n.op == "output")
        outs = list(output.args[0])
        aliases = [_aliases(ph) for ph in inputs]
        taken: list[int] = []
        for k, i in updates:
            new, ph = outs[k], inputs[i]
            if not isinstance(new, torch.fx.Node) or not _same_kind(new, ph) or ph.meta["val"].ndim == 0:
                continue  # (0-d: nothing to save, and torch.compile drops a copy_ into a 0-d CPU input)
            if any(new in a for j, a in enumerate(aliases) if j != i):
                continue  # (may) share memory with another input
            if any(isinstance(o, torch.fx.Node) and o in aliases[i] for j, o in enumerate(outs) if j != k):
                continue  # a result (or another output) may be a view of the input
            readers = [u for a in aliases[i] for u in a.users if u is not output]
            if new in aliases[i]:
                if not _updated(new, ph):
                    continue  # a view of the input, not the input updated
            elif (
                new.target is torch.ops.aten.clone.default
                and new.args[0] is ph
                and ph.meta["val"].is_contiguous()
                and max((order[u] for u in readers if u is not new), default=-1)
                < min((order[u] for u in new.users if u is not output), default=len(nodes))
            ):
                new.replace_all_uses_with(ph)
                graph.erase_node(new)
            else:
                new_readers = [u for a in _aliases(new) for u in a.users if u is not output]
                anchor = max([new, *readers, *new_readers], key=order.__getitem__)
                with graph.inserting_after(anchor):
                    graph.call_function(torch.ops.aten.copy_.default, (ph, new))
            outs[k] = None
            taken.append(i)
            aliases[i] = _aliases(ph)  # (the clone's users are the input's now)
        if taken:
            output.args = (outs,)
            graph.lint()
            traced.recompile()
        return traced, tuple(taken)

    def exclusive(self, a: Array, refs: int) -> bool:
        """Held by `refs` references to this tensor object only (Python's count), its C++ tensor
        by nothing else (a DLPack capsule holds that), its storage by no other tensor (a view, a
        NumPy array from `.numpy()`), and that storage torch's own (not a NumPy array's or another
        library's memory, which torch.from_numpy / from_dlpack wrap: not resizable)."""
        if references(a) - 1 != refs or a._use_count() != 1 or a.requires_grad:
            return False
        storage = a.untyped_storage()
        return storage.resizable() and torch._C._storage_Use_Count(storage._cdata) == 2  # a's and `storage`'s

    def private_copy(self, a: Array) -> Array:
        return a.clone()

    # ------------------------------------------------------------------ fused composites
    def linear(self, x: Array, w: Array, b: Array | None) -> Array:
        return F.linear(x, w, b)

    def softmax(self, a: Array, axis: int) -> Array:
        return torch.softmax(a, dim=axis)

    def log_softmax(self, a: Array, axis: int) -> Array:
        return torch.log_softmax(a, dim=axis)

    def bitcast(self, a: Array, dtype: DType) -> Array:
        # a view of the same storage (any strides: the item size is the same); bool is one byte.
        # A byte read as bool is True where non-zero (see Backend.bitcast), not torch's raw byte.
        if dtype is dtypes.bool:
            return a.view(torch.uint8) != 0
        return a.view(_TORCH_DTYPES[dtype])

    def relu(self, a: Array) -> Array:
        return torch.relu(a)

    def relu_grad(self, g: Array, y: Array) -> Array:
        return torch.ops.aten.threshold_backward(g, y, 0)

    def gelu(self, a: Array, approximate: str) -> Array:
        return F.gelu(a, approximate=approximate)

    def silu(self, a: Array) -> Array:
        return F.silu(a)

    def layer_norm(
        self, a: Array, normalized_ndim: int, weight: Array | None, bias: Array | None, eps: float
    ) -> Array:
        return F.layer_norm(a, tuple(a.shape[a.ndim - normalized_ndim :]), weight, bias, eps)

    def layer_norm_grad(
        self, g: Array, a: Array, normalized_ndim: int, weight: Array | None, bias: Array | None, eps: float
    ) -> tuple[Array, Array | None, Array | None]:
        # the forward again, for the mean and 1/std the fused backward reads (the composite's
        # single output does not carry them)
        shape = list(a.shape[a.ndim - normalized_ndim :])
        _, mean, rstd = torch.ops.aten.native_layer_norm(a, shape, weight, bias, eps)
        wanted = [True, weight is not None, bias is not None]
        return torch.ops.aten.native_layer_norm_backward(g, a, shape, mean, rstd, weight, bias, wanted)

    def batch_norm(
        self, a: Array, mean: Array, var: Array, weight: Array | None, bias: Array | None, eps: float
    ) -> Array:
        return F.batch_norm(a, mean, var, weight, bias, False, 0.0, eps)

    def cross_entropy(
        self, logits: Array, target: Array, weight: Array | None, ignore_index: int,
        label_smoothing: float, reduction: str,
    ) -> Array:  # fmt: skip
        return F.cross_entropy(
            logits, target, weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=label_smoothing,
        )  # fmt: skip

    def cross_entropy_grad(
        self, g: Array, logits: Array, target: Array, weight: Array | None, ignore_index: int,
        label_smoothing: float, reduction: str,
    ) -> Array:  # fmt: skip
        """The base class's closed form in three passes over the logits, as torch's own backward:
        the softmax, scaled in place by each sample's total, and the target classes' share
        scattered in (the base body's one-hot `where` and subtraction take 2.7x torch's time)."""
        class_axis = 1 if logits.ndim > 1 else 0
        num_classes = logits.shape[class_axis]
        valid, safe_target, w = Backend._target_weights(
            self, target, weight, ignore_index, self.dtype_of(logits)
        )
        safe_target = safe_target.unsqueeze(class_axis)
        share = g / w.sum() if reduction == "mean" else g
        hit = share * w * (1.0 - label_smoothing)
        total = hit
        if label_smoothing > 0.0:
            spread = torch.where(valid, share, 0.0) * (label_smoothing / num_classes)
            total = hit + spread * (num_classes if weight is None else weight.sum())
        grad = torch.softmax(logits, class_axis).mul_(total.unsqueeze(class_axis))
        if label_smoothing > 0.0:
            per_class = (num_classes,) + (1,) * (logits.ndim - class_axis - 1)
            spread = spread.unsqueeze(class_axis)
            grad.sub_(spread if weight is None else spread * weight.reshape(per_class))
        return grad.scatter_add_(class_axis, safe_target, -hit.unsqueeze(class_axis))

    def scaled_dot_product_attention(
        self, q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float | None
    ) -> Array:
        if is_causal and mask is not None:  # torch takes one or the other: fold causality into the mask
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            mask = mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, -math.inf)
            is_causal = False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)

    def scaled_dot_product_attention_grad(
        self, g: Array, q: Array, k: Array, v: Array, out: Array, mask: Array | None, is_causal: bool,
        scale: float | None,
    ) -> tuple[Array, Array, Array]:  # fmt: skip
        """torch's own attention backward (the fused flash kernel where torch picks it): the
        forward runs again under autograd, since the fused backward needs what that forward keeps
        (the rows' logsumexp), which the composite's single output does not carry."""
        with torch.enable_grad():
            qkv = [t.detach().requires_grad_() for t in (q, k, v)]
            y = self.scaled_dot_product_attention(*qkv, mask, is_causal, scale)
            # the scalar <y, g> has the gradient g at y, exactly: torch.autograd.grad(y, qkv, g)
            # would import sympy (torch.fx's symbolic shapes) to check g's shape, 30 MB at first use
            return torch.autograd.grad((y * g).sum(), qkv)

    def adam_step(
        self, params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
        exp_avg_sqs: Sequence[Array], max_exp_avg_sqs: Sequence[Array] | None,
        steps: Sequence[int | Array], lr: float | Array, beta1: float, beta2: float, eps: float,
        weight_decay: float, decoupled: bool, maximize: bool,
    ) -> tuple[list[Array], list[Array], list[Array], list[Array] | None]:  # fmt: skip
        """torch.optim's fused Adam/AdamW kernel (one pass per tensor), one call per dtype. It
        works in place, so it gets contiguous copies of the parameters (they are never written)
        and the moments the optimizer owns; it reads memory linearly, so every operand must be
        contiguous. A compiled step's 0-d step counts and learning rate go in as tensors (the
        kernel's tensor-lr form), so the traced graph keeps the one fused call."""
        if self._torch_device.type not in _fused_kernel_devices() or (
            _for_inductor.get() and not self._numbers(lr, steps)
        ):  # inductor has no kernel for the fused op's tensor-lr form: it fuses the default itself
            return super().adam_step(
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps,
                weight_decay, decoupled, maximize,
            )  # fmt: skip
        amsgrad = max_exp_avg_sqs is not None
        lists = [
            [p.clone(memory_format=torch.contiguous_format) for p in params],
            [g.contiguous() for g in grads],
            [m.contiguous() for m in exp_avgs],
            [v.contiguous() for v in exp_avg_sqs],
            [v.contiguous() for v in max_exp_avg_sqs] if amsgrad else [],
        ]
        fused = torch._fused_adamw_ if decoupled else torch._fused_adam_
        by_dtype: dict[Any, list[int]] = {}
        for i, p in enumerate(params):
            by_dtype.setdefault(p.dtype, []).append(i)
        for index in by_dtype.values():
            p, g, m, v, vmax = ([lst[i] for i in index] if lst else [] for lst in lists)
            unique, at = distinct([steps[i] for i in index])  # a shared count converted once
            converted = [  # the kernel's step type (exact to 2**24 steps)
                t.to(torch.float32)
                if isinstance(t, torch.Tensor)
                else torch.tensor(float(t), device=self._torch_device)
                for t in unique
            ]
            counts = [converted[j] for j in at]
            fused(
                p, g, m, v, vmax, counts, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                eps=eps, amsgrad=amsgrad, maximize=maximize,
            )  # fmt: skip
        new_p, _, new_m, new_v, new_max = lists
        return new_p, new_m, new_v, (new_max if amsgrad else None)


def _aliases(node: Any) -> set[Any]:
    """The graph's nodes that may share memory with `node`: it, the views of it and what in-place
    ops on them return (an op whose schema says a result aliases an argument), transitively."""
    found, todo = {node}, [node]
    while todo:
        for user in todo.pop().users:
            if user not in found and user.op == "call_function" and _returns_alias(user.target):
                found.add(user)
                todo.append(user)
    return found


def _returns_alias(target: Any) -> bool:
    if target is operator.getitem:  # an item of a multi-output op's result: a view if those are
        return True
    schema = getattr(target, "_schema", None)
    return schema is None or any(r.alias_info is not None for r in schema.returns)


def _updated(node: Any, placeholder: Any) -> bool:
    """Whether `node` is `placeholder` itself, or what in-place ops on it (`mul_`...) returned."""
    while node is not placeholder:
        schema = getattr(node.target, "_schema", None)
        if not (
            schema is not None
            and len(schema.returns) == 1
            and schema.returns[0].alias_info is not None
            and schema.returns[0].alias_info.is_write
            and node.args
            and isinstance(node.args[0], torch.fx.Node)
        ):
            return False
        node = node.args[0]
    return True


def _same_kind(a: Any, b: Any) -> bool:
    """Whether two graph values have one shape, dtype and device (the fake tensors traced)."""
    va, vb = a.meta.get("val"), b.meta.get("val")
    return (
        isinstance(va, torch.Tensor)
        and isinstance(vb, torch.Tensor)
        and va.shape == vb.shape
        and va.dtype == vb.dtype
        and va.device == vb.device
    )


_for_inductor: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agnostic.torch_for_inductor", default=False
)
"""Set while a step is traced for torch.compile (a mode was given), not to run as a plain graph (in
the tracing thread only)."""

_HOST_READ_ERRORS = ("DataDependent", "data-dependent", "tensor subclasses", "FakeTensor", "fake tensor")
"""How torch says, in a fake-tensor trace, that Python asked for a value (`.item()`, `.numpy()`...)."""


def _fused_kernel_devices() -> list[str]:
    """Device types with torch's fused optimizer kernels (asked of torch: CPU joined in 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return ["cuda"]
    return _get_fused_kernels_supported_devices()


def _unary(name: str, fn: Any) -> Any:
    def op(self: TorchBackend, a: Array) -> Array:
        try:
            return fn(a)
        except (NotImplementedError, RuntimeError) as e:  # uint16/32/64: few kernels
            return _unsigned.emulate(name, op, self, (a,), e)

    return op


def _complex_sign(a: Array) -> Array:
    """z / |z| (0 at 0; NaN + NaN j where a part is NaN, as the Array API says; torch.sgn gives
    NaN + 0j for some)."""
    out = torch.sgn(a)
    parts = a.real + a.imag  # NaN where a part is: NaN + NaN j from the data (a traced graph
    # cannot print a complex NaN constant)
    return torch.where(torch.isnan(parts), torch.complex(parts, parts), out)


_Tensor = torch.Tensor  # (one attribute lookup less per binary op)
_CUDA_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
_OUT_OF_MEMORY_SAYS = ("can't allocate memory", "out of memory")


def _by_zero_is_zero(fn: Any, a: Any, b: Any) -> Array:
    """`fn(a, b)` (floor_divide or remainder) with an integer divisor of 0 giving 0, as the op-set
    says: torch raises ZeroDivisionError for it on the CPU. The zero divisors are replaced by 1 and
    their results selected away, on the device (raising would need the values on the host)."""
    if not isinstance(a, _Tensor):
        a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
    if a.is_floating_point():
        return fn(a, b)
    if not isinstance(b, _Tensor):
        return fn(a, b) if b != 0 else torch.zeros_like(a)
    zero = b == 0
    return fn(a, b.masked_fill(zero, 1)).masked_fill(zero, 0)


def _saturating_cast(a: Array, dtype: DType) -> Array:
    """Float to int as the op-set defines it (see `IntCast`): torch's conversion of NaN, inf and
    out-of-range values is undefined and differs by device."""
    plan, info = int_cast(_FROM_TORCH[a.dtype], dtype), dtypes.iinfo(dtype)
    out = a.clamp(plan.lo, plan.hi).nan_to_num_(0.0).to(_TORCH_DTYPES[dtype])
    if plan.fix_max:
        out.masked_fill_(a > plan.hi, int(info.max))
    if plan.fix_min:
        out.masked_fill_(a < plan.lo, int(info.min))
    return out


def _binary_scalar_ok(name: str, fn: Any) -> Any:
    def op(self: TorchBackend, a: Any, b: Any) -> Array:
        if not isinstance(a, _Tensor):  # torch's functions want a tensor first
            a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
        try:
            return fn(a, b)
        except (NotImplementedError, RuntimeError) as e:  # uint16/32/64: few kernels
            return _unsigned.emulate(name, op, self, (a, b), e)

    return op


def _binary_tensors(name: str, fn: Any) -> Any:
    def op(self: TorchBackend, a: Any, b: Any) -> Array:
        if not isinstance(a, _Tensor):
            a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
        elif not isinstance(b, _Tensor):
            b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
        try:
            return fn(a, b)
        except (NotImplementedError, RuntimeError) as e:  # uint16/32/64: few kernels
            return _unsigned.emulate(name, op, self, (a, b), e)

    return op


for _name, _fn in _UNARY.items():
    setattr(TorchBackend, _name, _unary(_name, _fn))
for _name, _fn in _BINARY_SCALAR_OK.items():
    setattr(TorchBackend, _name, _binary_scalar_ok(_name, _fn))
for _name, _fn in _BINARY_TENSORS.items():
    setattr(TorchBackend, _name, _binary_tensors(_name, _fn))
_unsigned.install(TorchBackend, _UNSIGNED_FALLBACKS)
abc.update_abstractmethods(TorchBackend)
