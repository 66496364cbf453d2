"""The op-set on a NumPy-like array namespace, shared by the NumPy and CuPy backends.

NumPy and CuPy agree on nearly every call, so one implementation serves both; a subclass sets `xp`
and overrides the few places where the libraries differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from agnostic import dtypes
from agnostic.backends import _xp_conv, _xp_special
from agnostic.backends._xp_fft import XPFFT
from agnostic.backends._xp_linalg import XPLinalg
from agnostic.backends.base import Array, Axes, Backend, Pairs, Shape, int_cast
from agnostic.dtypes import DType

_UNARY = {
    "neg": "negative",
    "abs": "abs",
    "sign": "sign",
    "exp": "exp",
    "log": "log",
    "log1p": "log1p",
    "log2": "log2",
    "log10": "log10",
    "sqrt": "sqrt",
    "square": "square",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "sinh": "sinh",
    "cosh": "cosh",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "floor": "floor",
    "ceil": "ceil",
    "round": "round",
    "trunc": "trunc",
    "isnan": "isnan",
    "isinf": "isinf",
    "isfinite": "isfinite",
    "signbit": "signbit",
    "logical_not": "logical_not",
    "bitwise_invert": "invert",
    "conj": "conj",
    "real": "real",
    "imag": "imag",
}
_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "div": "true_divide",
    "maximum": "maximum",
    "minimum": "minimum",
    "atan2": "arctan2",
    "logaddexp": "logaddexp",
    "hypot": "hypot",
    "copysign": "copysign",
    "nextafter": "nextafter",
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
    "logical_and": "logical_and",
    "logical_or": "logical_or",
    "logical_xor": "logical_xor",
    "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor",
    "bitwise_left_shift": "left_shift",
    "bitwise_right_shift": "right_shift",
}
_ACCUMULATE = {"sum": "sum", "prod": "prod"}  # accumulate in the input dtype (NumPy widens ints)
_REDUCE = {
    "max": "max",
    "min": "min",
    "any": "any",
    "all": "all",
}


class XPBackend(XPLinalg, XPFFT, Backend):
    """Primitives on `xp` arrays (`xp` is numpy or cupy)."""

    xp: ClassVar[Any] = np
    max_dims = 64

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Bind the table-driven primitives straight to `cls.xp`'s functions (no lookup per call)."""
        super().__init_subclass__(**kwargs)
        cls._native_dtypes, cls.dtype_table = dtypes.numpy_dtype_tables()
        for table, make in (
            (_UNARY, _unary),
            (_BINARY, _binary),
            (_REDUCE, _reduction),
            (_ACCUMULATE, _accumulation),
        ):
            for ours, theirs in table.items():
                if ours not in cls.__dict__:
                    setattr(cls, ours, make(getattr(cls.xp, theirs)))

    def expm1(self, a: Array) -> Array:
        out = self.xp.expm1(a)
        if a.dtype.kind != "c":
            return out
        # NumPy's complex expm1 gives NaN for most infinite and NaN inputs; exp(z) - 1 there has the
        # Array API's values (expm1(inf + 0j) = inf + 0j, expm1(-inf + inf j) = -1 + 0j, ...)
        out = self.xp.where(self.xp.isfinite(a), out, self.xp.exp(a) - 1)
        out.real += 0.0  # expm1(-0 + 0j) is +0 + 0j in the standard (C's expm1(-0) is -0)
        return out

    def tanh(self, a: Array) -> Array:
        out = self.xp.tanh(a)
        if a.dtype.kind != "c":
            return out
        out = self.xp.asarray(out)  # (NumPy gives a scalar for a 0-d input)
        out.real, out.imag = tanh_at_infinity(self.xp, a, out)
        return out

    # ------------------------------------------------------------------ dtypes, shapes, host
    def native_dtype(self, dtype: DType) -> Any:
        return self._native_dtypes[dtype]

    def dtype_of(self, a: Array) -> DType:
        return self.dtype_table[a.dtype]

    def shape(self, a: Array) -> Shape:
        return a.shape

    def is_native(self, obj: object) -> bool:
        return isinstance(obj, self.xp.ndarray)

    def from_numpy(self, array: np.ndarray) -> Array:
        return self.xp.array(array, copy=True)

    def from_dlpack(self, obj: Any) -> Array:
        return self.xp.from_dlpack(obj)

    # ------------------------------------------------------------------ creation
    def full(self, shape: Shape, value: bool | int | float, dtype: DType) -> Array:
        return self.xp.full(shape, value, dtype=self._native_dtypes[dtype])

    def arange(self, start: int | float, stop: int | float, step: int | float, dtype: DType) -> Array:
        return self.xp.arange(start, stop, step, dtype=self._native_dtypes[dtype])

    def eye(self, n: int, m: int, k: int, dtype: DType) -> Array:
        return self.xp.eye(n, m, k, dtype=self._native_dtypes[dtype])

    def cast(self, a: Array, dtype: DType) -> Array:
        source = self.dtype_table[a.dtype]
        if source.is_floating:
            if dtype.is_integer:
                return self._saturating_cast(a, dtype)
            if dtype.is_floating and dtype.itemsize <= source.itemsize and dtype is not source:
                # a value too large for the narrower float becomes inf, without NumPy's warning
                with np.errstate(over="ignore"):
                    return a.astype(self._native_dtypes[dtype])
        elif source.kind in "iu" and dtype.is_floating and dtype.itemsize == 2:
            with np.errstate(over="ignore"):  # an int beyond float16's range becomes inf, silently
                return a.astype(self._native_dtypes[dtype])
        return a.astype(self._native_dtypes[dtype])

    def bitcast(self, a: Array, dtype: DType) -> Array:
        # a view of the same buffer (tensors are values: nothing writes to it); any strides will do,
        # the item size being the same. A byte read as bool is True where non-zero (see Backend).
        if dtype is dtypes.bool:
            return a.view(self._native_dtypes[dtypes.uint8]) != 0
        return a.view(self.native_dtype(dtype))

    def _saturating_cast(self, a: Array, dtype: DType) -> Array:
        """Float to int as the op-set defines it (see `IntCast`): NumPy leaves NaN, inf and
        out-of-range values undefined, with a warning."""
        xp, target, info = self.xp, self._native_dtypes[dtype], dtypes.iinfo(dtype)
        plan = int_cast(self.dtype_table[a.dtype], dtype)
        clipped = xp.asarray(xp.clip(a, _weak(plan.lo, a), _weak(plan.hi, a)))  # a new array
        # in place with copyto: where() with a scalar branch took 10 times as long (1M elements)
        xp.copyto(clipped, 0, where=xp.isnan(clipped))
        out = clipped.astype(target)
        if plan.fix_max:
            xp.copyto(out, target.type(info.max), where=a > plan.hi)
        if plan.fix_min:
            xp.copyto(out, target.type(info.min), where=a < plan.lo)
        return out

    # ------------------------------------------------------------------ elementwise
    def rsqrt(self, a: Array) -> Array:
        return self.xp.reciprocal(self.xp.sqrt(a))

    def reciprocal(self, a: Array) -> Array:
        return self.xp.reciprocal(a)

    def sigmoid(self, a: Array) -> Array:
        if a.dtype.kind == "c":  # complex has no sign to split on: the definition, as torch and JAX
            return 1 / (1 + self.xp.exp(-a))
        # exp of a non-positive number never overflows: the two halves of the logistic function
        e = self.xp.exp(-self.xp.abs(a))
        return self.xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)

    def erf(self, a: Array) -> Array:
        return _xp_special.erf(self.xp, a)

    def floor_divide(self, a: Array | float, b: Array | float) -> Array:
        # NumPy gives the op-set's values (integer x // 0 == 0, INT_MIN // -1 == INT_MIN, IEEE
        # inf and NaN for floats), with a RuntimeWarning that torch and JAX do not give
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.xp.floor_divide(_weak(a, b), _weak(b, a))

    def remainder(self, a: Array | float, b: Array | float) -> Array:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # as floor_divide
            return self.xp.remainder(_weak(a, b), _weak(b, a))

    def pow(self, a: Array | float, b: Array | float) -> Array:
        if getattr(getattr(b, "dtype", None), "kind", "") != "i":  # floats, unsigned, Python ints >= 0
            return self.xp.power(_weak(a, b), _weak(b, a))
        # NumPy raises for any negative integer exponent: those elements get the op-set's value
        xp = self.xp
        negative = b < 0
        out = xp.power(a, xp.where(negative, 0, b))
        odd = (b & 1) == 1
        exact = xp.where(a == 1, 1, xp.where(a == -1, xp.where(odd, -1, 1), 0)).astype(out.dtype)
        return xp.where(negative, exact, out)

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        return self.xp.where(cond, _weak(a, b), _weak(b, a))

    def clip(self, a: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        if lo is not None:
            a = self.xp.maximum(a, _weak(lo, a))
        if hi is not None:
            a = self.xp.minimum(a, _weak(hi, a))
        return a

    # ------------------------------------------------------------------ reductions
    def mean(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.xp.mean(a, axis=axes, keepdims=keepdims, dtype=np.float32).astype(a.dtype)
        return self.xp.mean(a, axis=axes, keepdims=keepdims)

    def var(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.var(a.astype(np.float32), axes, correction, keepdims).astype(a.dtype)
        return self.xp.var(a, axis=axes, ddof=correction, keepdims=keepdims)

    def std(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.std(a.astype(np.float32), axes, correction, keepdims).astype(a.dtype)
        return self.xp.std(a, axis=axes, ddof=correction, keepdims=keepdims)

    def argmax(self, a: Array, axis: int, keepdims: bool) -> Array:
        return self.xp.argmax(a, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)

    def argmin(self, a: Array, axis: int, keepdims: bool) -> Array:
        return self.xp.argmin(a, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)

    def cumsum(self, a: Array, axis: int) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.xp.cumsum(a, axis=axis, dtype=np.float32).astype(a.dtype)
        return self.xp.cumsum(a, axis=axis, dtype=a.dtype)

    def cumprod(self, a: Array, axis: int) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.xp.cumprod(a, axis=axis, dtype=np.float32).astype(a.dtype)
        return self.xp.cumprod(a, axis=axis, dtype=a.dtype)

    def logsumexp(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.logsumexp(a.astype(np.float32), axes, keepdims).astype(a.dtype)
        xp = self.xp
        if a.size == 0:  # max() has no identity; the direct formula gives -inf
            return xp.log(xp.sum(xp.exp(a), axis=axes, keepdims=keepdims))
        m = xp.max(a, axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.sum(xp.exp(a - m), axis=axes, keepdims=True)) + m
        return out if keepdims else xp.squeeze(out, axis=axes)

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a: Array, b: Array) -> Array:
        out = self.xp.matmul(a, b)
        return out if out.dtype == a.dtype else out.astype(a.dtype)  # _keep_dtype, a call less

    # ------------------------------------------------------------------ shape
    def reshape(self, a: Array, shape: Shape) -> Array:
        return a.reshape(shape)

    def permute(self, a: Array, axes: Axes) -> Array:
        return a.transpose(axes)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return self.xp.broadcast_to(a, shape)

    def squeeze(self, a: Array, axes: Axes) -> Array:
        return self.xp.squeeze(a, axis=axes)

    def expand_dims(self, a: Array, axes: Axes) -> Array:
        return self.xp.expand_dims(a, axes)

    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        return self.xp.concatenate(arrays, axis=axis)

    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        return self.xp.stack(arrays, axis=axis)

    def flip(self, a: Array, axes: Axes) -> Array:
        return self.xp.flip(a, axis=axes)

    def pad(self, a: Array, widths: Pairs, mode: str, value: float) -> Array:
        if mode == "constant":
            return self.xp.pad(a, widths, mode="constant", constant_values=value)
        return self.xp.pad(a, widths, mode=mode)

    def tile(self, a: Array, reps: Shape) -> Array:
        return self.xp.tile(a, reps)

    def repeat(self, a: Array, repeats: int | Array, axis: int) -> Array:
        return self.xp.repeat(a, repeats, axis=axis)

    # ------------------------------------------------------------------ indexing
    def getitem(self, a: Array, key: tuple) -> Array:
        return a[key]

    def index_add(self, a: Array, key: tuple, values: Array) -> Array:
        out = self.xp.array(a, copy=True)  # (NumPy reductions may hand back scalars)
        if all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in key):
            out[key] += values  # basic indexing never repeats a position: a strided add suffices
        else:
            self._add_at(out, key, values)
        return out

    def _add_at(self, out: Array, key: tuple, values: Array) -> None:
        """Unbuffered in-place `out[key] += values` (repeated indices accumulate)."""
        self.xp.add.at(out, key, values)

    def take(self, a: Array, indices: Array, axis: int) -> Array:
        return self.xp.take(a, indices, axis=axis)

    def take_along_axis(self, a: Array, indices: Array, axis: int) -> Array:
        return self.xp.take_along_axis(a, indices, axis=axis)

    def scatter_add(self, a: Array, axis: int, indices: Array, src: Array) -> Array:
        xp = self.xp
        out = self.xp.array(a, copy=True)  # (NumPy reductions may hand back scalars)
        grid = list(xp.ogrid[tuple(slice(0, n) for n in indices.shape)])
        grid[axis] = indices
        self._add_at(out, tuple(grid), src)
        return out

    def sort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        if not descending:
            if _is_bfloat16(a):  # ml_dtypes' bfloat16 sort leaves NaNs unordered; float32 is exact
                return self.xp.sort(a.astype(np.float32), axis=axis).astype(a.dtype)
            return self.xp.sort(a, axis=axis)
        return self.take_along_axis(a, self.argsort(a, axis, True, stable), axis)

    def argsort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        xp = self.xp
        if _is_bfloat16(a):  # as in sort: order bfloat16 through its exact float32 values
            a = a.astype(np.float32)
        if not descending:
            return xp.argsort(a, axis=axis, kind="stable" if stable else None).astype(np.int64, copy=False)
        # stable descending: sort the reversed array ascending-stably on negated keys is wrong for
        # NaN and unsigned ints; reverse, stable-argsort ascending, reverse back, and re-map.
        n = a.shape[axis]
        rev = xp.flip(a, axis=axis)
        idx = xp.argsort(rev, axis=axis, kind="stable")
        idx = xp.flip(idx, axis=axis)
        return (n - 1 - idx).astype(np.int64, copy=False)

    def nonzero(self, a: Array) -> tuple[Array, ...]:
        return tuple(i.astype(np.int64, copy=False) for i in self.xp.nonzero(a))

    # ------------------------------------------------------------------ convolution and pooling
    def conv(self, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
        return _keep_dtype(_xp_conv.conv(self.xp, x, w, stride, padding, dilation, groups), x)

    def conv_input_grad(
        self, gy: Array, w: Array, input_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        return _keep_dtype(
            _xp_conv.conv_input_grad(self.xp, gy, w, input_shape, stride, padding, dilation, groups), gy
        )

    def conv_weight_grad(
        self, x: Array, gy: Array, weight_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        return _keep_dtype(
            _xp_conv.conv_weight_grad(self.xp, x, gy, weight_shape, stride, padding, dilation, groups), x
        )

    def max_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
    ) -> tuple[Array, Array]:
        return _xp_conv.max_pool(self.xp, x, kernel, stride, padding, dilation, ceil_mode)

    def avg_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool,
        count_include_pad: bool,
    ) -> Array:  # fmt: skip
        return _xp_conv.avg_pool(self.xp, x, kernel, stride, padding, ceil_mode, count_include_pad)

    def avg_pool_grad(
        self, gy: Array, input_shape: Shape, kernel: Shape, stride: Shape, padding: Shape,
        ceil_mode: bool, count_include_pad: bool,
    ) -> Array:  # fmt: skip
        return _xp_conv.avg_pool_grad(
            self.xp, gy, input_shape, kernel, stride, padding, ceil_mode, count_include_pad
        )

    # ------------------------------------------------------------------ fused composites
    def softmax(self, a: Array, axis: int) -> Array:
        if a.dtype.kind == "V":  # bfloat16: see _accumulation
            return self.softmax(a.astype(np.float32), axis).astype(a.dtype)
        if a.size == 0:  # max() has no identity over an empty axis; there is nothing to normalize
            return a.copy()
        e = self.xp.exp(a - self.xp.max(a, axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        return e

    def log_softmax(self, a: Array, axis: int) -> Array:
        return a - self.logsumexp(a, (axis,), True)

    def adam_step(
        self, params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
        exp_avg_sqs: Sequence[Array], max_exp_avg_sqs: Sequence[Array] | None,
        steps: Sequence[int | Array], lr: float | Array, beta1: float, beta2: float, eps: float,
        weight_decay: float, decoupled: bool, maximize: bool,
    ) -> tuple[list[Array], list[Array], list[Array], list[Array] | None]:  # fmt: skip
        """The default's arithmetic in the same order, with the moments updated in place and one
        scratch array per parameter that becomes its new value (no other allocation)."""
        if not self._numbers(lr, steps):
            return super().adam_step(
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps,
                weight_decay, decoupled, maximize,
            )  # fmt: skip
        xp = self.xp
        new_p, new_m, new_v, new_max = [], [], [], []
        for i, (p, g, m, v, t) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, steps)):
            m, v = _writable(m), _writable(v)
            # a weight's gradient is often a transposed view: in the moments' layout, every pass
            # below reads memory in order (mixed layouts made this step 3.5 times slower)
            g = xp.ascontiguousarray(g) if m.flags.c_contiguous else g
            if maximize:
                g = -g
            if weight_decay:
                if decoupled:
                    p = p * (1 - lr * weight_decay)
                else:
                    g = g + p * weight_decay
            tmp = xp.subtract(g, m)
            tmp *= 1 - beta1
            m += tmp
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - beta2
            v *= beta2
            v += tmp
            new_m.append(m)
            new_v.append(v)
            if max_exp_avg_sqs is not None:
                v = xp.maximum(max_exp_avg_sqs[i], v, out=_writable(max_exp_avg_sqs[i]))
                new_max.append(v)
            xp.sqrt(v, out=tmp)
            tmp /= math.sqrt(1 - beta2**t)
            tmp += eps
            xp.divide(m, tmp, out=tmp)
            tmp *= lr / (1 - beta1**t)
            new_p.append(xp.subtract(p, tmp, out=tmp))
        return new_p, new_m, new_v, (new_max if max_exp_avg_sqs is not None else None)


def _writable(a: Array) -> Array:
    """`a` itself when it may be written in place, else a copy (a read-only view of a file, say)."""
    return a if getattr(a.flags, "writeable", True) else a.copy()


def _keep_dtype(out: Array, like: Array) -> Array:
    """ml_dtypes' bfloat16 matmul returns float32; results keep their inputs' dtype."""
    return out if out.dtype == like.dtype else out.astype(like.dtype)


def tanh_at_infinity(xp: Any, a: Array, out: Array) -> tuple[Array, Array]:
    """The parts of complex tanh with the standard's values where the real part is infinite and the
    imaginary finite: +-1 + 0i, the zero with the imaginary part's sign (NumPy and torch give
    1 + 0 * sin(2b) i, -0 where sin(2b) < 0). `xp` is numpy, cupy or torch."""
    re, im = a.real, a.imag
    at_inf = xp.isinf(re) & xp.isfinite(im)
    return xp.where(at_inf, xp.sign(re), out.real), xp.where(
        at_inf, xp.copysign(xp.zeros_like(im), im), out.imag
    )


def _unary(fn: Any) -> Any:
    def op(self: XPBackend, a: Array) -> Array:
        return fn(a)

    return op


def _is_bfloat16(a: Any) -> bool:
    """Whether `a` is an ml_dtypes bfloat16 array (by name: ml_dtypes loads on first need)."""
    dtype = getattr(a, "dtype", None)
    return dtype is not None and dtype.name == "bfloat16"


def _weak(scalar: Any, like: Any) -> Any:
    """ml_dtypes' bfloat16 promotes a Python float to float32 (NumPy's weak scalars do not reach
    it): give the scalar the array's dtype instead."""
    if type(scalar) is float and _is_bfloat16(like):
        return like.dtype.type(scalar)
    return scalar


def _binary(fn: Any) -> Any:
    def op(self: XPBackend, a: Array, b: Array) -> Array:
        if type(a) is float or type(b) is float:
            return fn(_weak(a, b), _weak(b, a))
        return fn(a, b)

    return op


def _reduction(fn: Any) -> Any:
    def op(self: XPBackend, a: Array, axes: Axes, keepdims: bool) -> Array:
        return fn(a, axis=axes, keepdims=keepdims)

    return op


def _accumulation(fn: Any) -> Any:
    def op(self: XPBackend, a: Array, axes: Axes, keepdims: bool) -> Array:
        if a.dtype.kind == "V":  # ml_dtypes reduces bfloat16 in bfloat16 (4096 ones sum to 256):
            # accumulate in float32 and round once, as torch and JAX do
            return fn(a, axis=axes, keepdims=keepdims, dtype=np.float32).astype(a.dtype)
        return fn(a, axis=axes, keepdims=keepdims, dtype=a.dtype)

    return op
