"""ONNX converters: elementwise math, logic, activations, reductions, matmul, losses and constants.

ONNX ops take inputs of one dtype and keep it (an int32 ReduceSum is int32, an int Div truncates
toward zero), where agnostic's own ops follow the Array API (sums of small ints widen, `//` floors):
each converter below restores ONNX's dtype and integer semantics, with agnostic's differentiable
ops only, so an imported graph runs and trains on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import agnostic as ag
import agnostic.functional as F
from agnostic import dtypes
from agnostic.dtypes import DType
from agnostic.onnx.dtypes import UnsupportedDType, from_onnx
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, normalize_axis
from agnostic.random import Generator
from agnostic.tensor import Tensor


# ---------------------------------------------------------------------- helpers
def _scalar(x: Tensor, value: float) -> float | int:
    """An attribute constant as a weak Python scalar of x's kind (so it keeps x's dtype)."""
    return float(value) if x.dtype.is_floating else int(value)


def _onnx_dtype(code: int, what: str) -> DType:
    try:
        return from_onnx(int(code))
    except UnsupportedDType as exc:
        raise Unsupported(f"{what}: {exc}") from None


def _keep_dtype(y: Tensor, x: Tensor) -> Tensor:
    return y if y.dtype == x.dtype else y.astype(x.dtype)


# ---------------------------------------------------------------------- unary math
def _unary(fn: Callable[[Tensor], Tensor]) -> Callable[[Node], Run]:
    def build(node: Node) -> Run:
        return lambda ctx, x: fn(ctx.tensor(x))

    return build


_UNARY: dict[str, tuple[int, Callable[[Tensor], Tensor]]] = {
    "Neg": (6, ag.negative), "Abs": (6, ag.abs), "Exp": (6, ag.exp), "Log": (6, ag.log),
    "Sqrt": (6, ag.sqrt), "Reciprocal": (6, ag.reciprocal), "Floor": (6, ag.floor), "Ceil": (6, ag.ceil),
    "Sin": (7, ag.sin), "Cos": (7, ag.cos), "Tan": (7, ag.tan), "Asin": (7, ag.asin), "Acos": (7, ag.acos),
    "Atan": (7, ag.atan), "Sinh": (9, ag.sinh), "Cosh": (9, ag.cosh), "Asinh": (9, ag.asinh),
    "Acosh": (9, ag.acosh), "Atanh": (9, ag.atanh), "Erf": (9, ag.erf), "Sign": (9, ag.sign),
    "Round": (11, ag.round), "IsNaN": (9, ag.isnan), "Sigmoid": (6, ag.sigmoid), "Tanh": (6, ag.tanh),
    "Not": (1, ag.logical_not), "BitwiseNot": (18, ag.bitwise_invert),
    "Softsign": (1, lambda x: x / (ag.abs(x) + 1.0)),
    "Mish": (18, lambda x: x * ag.tanh(F.softplus(x))),
    "HardSwish": (14, lambda x: x * ag.clip(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)),
    "Softplus": (1, lambda x: F.softplus(x)),
}  # fmt: skip
for _op, (_since, _fn) in _UNARY.items():
    converter(_op, since=_since)(_unary(_fn))


@converter("Identity", since=1)
def _identity(node: Node) -> Run:
    return lambda ctx, x: x


@converter("IsInf", since=10)
def _isinf(node: Node) -> Run:
    negative, positive = node.attr("detect_negative", 1), node.attr("detect_positive", 1)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        inf = ag.isinf(x)
        if negative and positive:
            return inf
        if not negative and not positive:
            return ag.zeros(x.shape, dtype=ag.bool, device=x.device)
        return ag.logical_and(inf, x > 0 if positive else x < 0)

    return run


@converter("Relu", since=6)
def _relu(node: Node) -> Run:
    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return F.relu(x) if x.dtype.is_floating else ag.maximum(x, 0)  # ints since opset 14

    return run


# ---------------------------------------------------------------------- activations with attributes
@converter("LeakyRelu", since=6)
def _leaky_relu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 0.01))
    return lambda ctx, x: F.leaky_relu(ctx.tensor(x), alpha)


@converter("Elu", since=6)
def _elu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.0))
    return lambda ctx, x: F.elu(ctx.tensor(x), alpha)


@converter("Selu", since=6)
def _selu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    return lambda ctx, x: F.elu(ctx.tensor(x), alpha) * gamma


@converter("Celu", since=12)
def _celu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return ag.maximum(x, 0.0) + ag.minimum(ag.expm1(x * (1.0 / alpha)) * alpha, 0.0)

    return run


@converter("HardSigmoid", since=6)
def _hard_sigmoid(node: Node) -> Run:
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return lambda ctx, x: ag.clip(ctx.tensor(x) * alpha + beta, 0.0, 1.0)


@converter("ThresholdedRelu", since=10)
def _thresholded_relu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return ag.where(x > alpha, x, ag.zeros_like(x))

    return run


@converter("Shrink", since=9)
def _shrink(node: Node) -> Run:
    bias, lambd = float(node.attr("bias", 0.0)), float(node.attr("lambd", 0.5))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        zero = ag.zeros_like(x)
        b = _scalar(x, bias)
        return ag.where(x < -lambd, x + b, ag.where(x > lambd, x - b, zero))

    return run


@converter("Gelu", since=20)
def _gelu(node: Node) -> Run:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"approximate={approximate!r}: ONNX defines 'none' and 'tanh'")
    return lambda ctx, x: F.gelu(ctx.tensor(x), approximate)


@converter("Swish", since=24)
def _swish(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return F.silu(x) if alpha == 1.0 else x * ag.sigmoid(x * alpha)

    return run


@converter("PRelu", since=7)
def _prelu(node: Node) -> Run:
    def run(ctx: Context, x: Any, slope: Any) -> Tensor:
        x, slope = ctx.tensor(x), ctx.tensor(slope)
        return ag.where(x < 0, x * slope, x)

    return run


# ---------------------------------------------------------------------- binary arithmetic
def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Node], Run]:
    def build(node: Node) -> Run:
        return lambda ctx, a, b: fn(ctx.tensor(a), ctx.tensor(b))

    return build


def _truncated_divide(a: Tensor, b: Tensor) -> Tensor:
    """Integer division rounding toward zero (C's, ONNX's), from agnostic's flooring division."""
    q = ag.floor_divide(a, b)
    inexact = ag.logical_and(ag.remainder(a, b) != 0, ag.logical_xor(a < 0, b < 0))
    return ag.where(inexact, q + 1, q)


def _divide(a: Tensor, b: Tensor) -> Tensor:
    return ag.divide(a, b) if a.dtype.is_floating else _truncated_divide(a, b)


_BINARY: dict[str, tuple[int, Callable[[Tensor, Tensor], Tensor]]] = {
    "Add": (7, ag.add), "Sub": (7, ag.subtract), "Mul": (7, ag.multiply), "Div": (7, _divide),
    "Equal": (7, ag.equal), "Less": (7, ag.less), "Greater": (7, ag.greater),
    "LessOrEqual": (12, ag.less_equal), "GreaterOrEqual": (12, ag.greater_equal),
    "And": (7, ag.logical_and), "Or": (7, ag.logical_or), "Xor": (7, ag.logical_xor),
    "BitwiseAnd": (18, ag.bitwise_and), "BitwiseOr": (18, ag.bitwise_or),
    "BitwiseXor": (18, ag.bitwise_xor),
}  # fmt: skip
for _op, (_since, _fn2) in _BINARY.items():
    converter(_op, since=_since)(_binary(_fn2))


@converter("Pow", since=7)
def _pow(node: Node) -> Run:
    """The result has the base's dtype; the exponent may have another (opset 12 on)."""

    def run(ctx: Context, a: Any, b: Any) -> Tensor:
        a, b = ctx.tensor(a), ctx.tensor(b)
        if a.dtype == b.dtype:
            return ag.pow(a, b)
        if not b.dtype.is_floating:
            return ag.pow(a, b.astype(a.dtype))
        wide = ag.float64 if not a.dtype.is_floating else dtypes.result_type(a.dtype, b.dtype)
        return ag.pow(a.astype(wide), b.astype(wide)).astype(a.dtype)

    return run


@converter("Mod", since=10)
def _mod(node: Node) -> Run:
    fmod = node.attr("fmod", 0)
    if fmod not in (0, 1):
        raise Unsupported(f"fmod={fmod}: ONNX defines 0 (floor) and 1 (truncation)")

    def run(ctx: Context, a: Any, b: Any) -> Tensor:
        a, b = ctx.tensor(a), ctx.tensor(b)
        if not fmod:
            return ag.remainder(a, b)
        if a.dtype.is_floating:  # |a| mod |b| is the same under both roundings; the sign is a's
            return ag.copysign(ag.remainder(ag.abs(a), ag.abs(b)), a)
        r = ag.remainder(a, b)  # the sign of b: move it to the sign of a
        return ag.where(ag.logical_and(r != 0, ag.logical_xor(r < 0, a < 0)), r - b, r)

    return run


@converter("BitShift", since=11)
def _bitshift(node: Node) -> Run:
    """Shifts by a negative amount or by the width or more give what the sign fill alone gives
    (ONNX's rule), the same on every backend."""
    direction = node.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise Unsupported(f"direction={direction!r}: ONNX defines 'LEFT' and 'RIGHT'")

    def run(ctx: Context, x: Any, y: Any) -> Tensor:
        x, y = ctx.tensor(x), ctx.tensor(y)
        bits = dtypes.iinfo(x.dtype).bits
        valid = ag.logical_and(y >= 0, y < bits)
        amount = ag.where(valid, y, ag.zeros_like(y))
        if direction == "LEFT":
            return ag.where(valid, ag.bitwise_left_shift(x, amount), ag.zeros_like(x))
        fill = (
            ag.zeros_like(x)
            if x.dtype.kind == "u"
            else ag.where(x < 0, ag.full_like(x, -1), ag.zeros_like(x))
        )
        return ag.where(valid, ag.bitwise_right_shift(x, amount), fill)

    return run


@converter("Where", since=9)
def _where(node: Node) -> Run:
    def run(ctx: Context, cond: Any, a: Any, b: Any) -> Tensor:
        return ag.where(ctx.tensor(cond), ctx.tensor(a), ctx.tensor(b))

    return run


# ---------------------------------------------------------------------- variadic
def _variadic(fn: Callable[[Tensor, Tensor], Tensor], mean: bool = False) -> Callable[[Node], Run]:
    def build(node: Node) -> Run:
        def run(ctx: Context, *xs: Any) -> Tensor:
            ts = [ctx.tensor(x) for x in xs]
            out = ts[0]
            for t in ts[1:]:
                out = fn(out, t)
            return out / float(len(ts)) if mean and len(ts) > 1 else out

        return run

    return build


converter("Max", since=6)(_variadic(ag.maximum))
converter("Min", since=6)(_variadic(ag.minimum))
converter("Sum", since=6)(_variadic(ag.add))
converter("Mean", since=6)(_variadic(ag.add, mean=True))


@converter("Clip", since=6)
def _clip_6(node: Node) -> Run:
    lo, hi = float(node.attr("min", -3.4028234663852886e38)), float(node.attr("max", 3.4028234663852886e38))
    return lambda ctx, x: ag.clip(ctx.tensor(x), lo, hi)


@converter("Clip", since=11)
def _clip_11(node: Node) -> Run:
    def run(ctx: Context, x: Any, lo: Any = None, hi: Any = None) -> Tensor:
        x = ctx.tensor(x)
        lo = None if lo is None else ctx.tensor(lo, x.dtype)
        hi = None if hi is None else ctx.tensor(hi, x.dtype)
        return ag.clip(x, lo, hi)

    return run


# ---------------------------------------------------------------------- casts and constants
@converter("Cast", since=6)
def _cast(node: Node) -> Run:
    target = _onnx_dtype(node.attr("to"), "cast target")
    node.attr("saturate", 1)  # only for float8 targets, which agnostic has not
    node.attr("round_mode", "up")  # only for float8e8m0
    return lambda ctx, x: ctx.tensor(x).astype(target)


@converter("CastLike", since=15)
def _cast_like(node: Node) -> Run:
    node.attr("saturate", 1)
    node.attr("round_mode", "up")
    return lambda ctx, x, like: ctx.tensor(x).astype(ctx.tensor(like).dtype)


@converter("Constant", since=1)
def _constant(node: Node) -> Run:
    """The value on the host, as any constant (only reached when folding it failed)."""
    forms = {
        "value": None, "sparse_value": None, "value_float": np.float32, "value_floats": np.float32,
        "value_int": np.int64, "value_ints": np.int64, "value_string": None, "value_strings": None,
    }  # fmt: skip
    given = [name for name in forms if node.has(name)]
    if len(given) != 1:
        raise Unsupported(f"needs exactly one value attribute, got {given or 'none'}")
    name = given[0]
    if name in ("value_string", "value_strings"):
        raise Unsupported("string constants have no agnostic dtype")
    value = np.asarray(node.attr(name), dtype=forms[name])
    if value.dtype.kind not in "biuf":
        raise Unsupported(f"a constant of dtype {value.dtype} has no agnostic dtype")
    return lambda ctx: value


@converter("ConstantOfShape", since=9)
def _constant_of_shape(node: Node) -> Run:
    value = node.attr("value", None)
    fill = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(-1)
    if fill.size != 1:
        raise Unsupported(f"value must hold one element, got {fill.size}")
    try:
        dtype = dtypes.as_dtype(fill.dtype)
    except (TypeError, ValueError):
        raise Unsupported(f"a value of dtype {fill.dtype} has no agnostic dtype") from None
    scalar = fill.reshape(()).item()

    def run(ctx: Context, shape: Any) -> Tensor:
        return ag.full(tuple(ctx.host_ints(shape, "shape")), scalar, dtype=dtype, device=ctx.device)

    return run


@converter("EyeLike", since=9)
def _eye_like(node: Node) -> Run:
    code = node.attr("dtype", None)
    target = None if code is None else _onnx_dtype(code, "dtype")
    k = int(node.attr("k", 0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        if x.ndim != 2:
            raise ValueError(f"EyeLike: input must be 2-D, got shape {x.shape}")
        return ag.eye(x.shape[0], x.shape[1], k=k, dtype=target or x.dtype, device=ctx.device)

    return run


@converter("Range", since=11)
def _range(node: Node) -> Run:
    """The length depends on the values: start, limit and delta are read on the host."""
    stash = node.attr("stash_type", 1)
    if stash not in (1, 11):
        raise Unsupported(f"stash_type={stash}: ONNX defines FLOAT (1) and DOUBLE (11)")

    def run(ctx: Context, start: Any, limit: Any, delta: Any) -> Tensor:
        start = ctx.tensor(start)
        d = start.dtype
        lo, hi, step = (ctx.host(v, "range bounds").reshape(()).item() for v in (start, limit, delta))
        if step == 0:
            raise ValueError("Range: delta must not be zero")
        if not d.is_floating:  # exact integer arithmetic: ceil((hi - lo) / step) elements
            n = max(-((lo - hi) // step), 0)
            return ag.arange(lo, lo + n * step, step, dtype=d, device=ctx.device)
        n = max(math.ceil((hi - lo) / step), 0)
        wide = d if d not in (ag.float16, ag.bfloat16) else (ag.float32 if stash == 1 else ag.float64)
        steps = ag.arange(n, dtype=wide, device=ctx.device)
        return (start.astype(wide) + steps * ctx.tensor(delta).astype(wide)).astype(d)

    return run


@converter("OneHot", since=9)
def _one_hot(node: Node) -> Run:
    axis = int(node.attr("axis", -1))

    def run(ctx: Context, indices: Any, depth: Any, values: Any) -> Tensor:
        indices, values = ctx.tensor(indices), ctx.tensor(values)
        n = int(np.asarray(ctx.host(depth, "depth")).reshape(-1)[0])
        ax = normalize_axis(axis, indices.ndim + 1, node)
        indices = ag.where(indices < 0, indices + _scalar(indices, n), indices)
        shape = [1] * (indices.ndim + 1)
        shape[ax] = n
        classes = ag.arange(n, dtype=indices.dtype, device=ctx.device).reshape(shape)
        hit = ag.expand_dims(indices, axis=ax) == classes
        return ag.where(hit, values[1], values[0])

    return run


# ---------------------------------------------------------------------- softmax family
def _hardmax(x: Tensor, axis: int) -> Tensor:
    if x.size == 0:
        return x
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    positions = ag.arange(x.shape[axis], device=x.device).reshape(shape)
    return (positions == ag.argmax(x, axis=axis, keepdims=True)).astype(x.dtype)


_SOFTMAX: dict[str, Callable[[Tensor, int], Tensor]] = {
    "Softmax": lambda x, axis: F.softmax(x, axis),
    "LogSoftmax": lambda x, axis: F.log_softmax(x, axis),
    "Hardmax": _hardmax,
}


def _softmax_2d(fn: Callable[[Tensor, int], Tensor]) -> Callable[[Node], Run]:
    """Opsets 1-12: the input is flattened to 2-D at `axis` and normalized over the second axis."""

    def build(node: Node) -> Run:
        axis = int(node.attr("axis", 1))

        def run(ctx: Context, x: Any) -> Tensor:
            x = ctx.tensor(x)
            ax = normalize_axis(axis, max(x.ndim, 1), node)
            rows = math.prod(x.shape[:ax])
            flat = x.reshape(rows, math.prod(x.shape[ax:]))
            return fn(flat, 1).reshape(x.shape)

        return run

    return build


def _softmax_axis(fn: Callable[[Tensor, int], Tensor]) -> Callable[[Node], Run]:
    """Opset 13 on: normalized along `axis` alone."""

    def build(node: Node) -> Run:
        axis = int(node.attr("axis", -1))

        def run(ctx: Context, x: Any) -> Tensor:
            x = ctx.tensor(x)
            return fn(x, normalize_axis(axis, x.ndim, node))

        return run

    return build


for _op, _sm in _SOFTMAX.items():
    converter(_op, since=1)(_softmax_2d(_sm))
    converter(_op, since=13)(_softmax_axis(_sm))


# ---------------------------------------------------------------------- reductions
def _empty_fill(kind: str, d: DType) -> Any:
    """A reduction's value over no elements (ONNX's reference)."""
    if kind in ("ReduceMax", "ReduceMin"):
        high = kind == "ReduceMin"
        if d == ag.bool:
            return high
        if not d.is_floating:
            info = dtypes.iinfo(d)
            return info.max if high else info.min
        return math.inf if high else -math.inf
    if not d.is_floating:
        return 1 if kind == "ReduceProd" else 0
    return {
        "ReduceProd": 1,
        "ReduceLogSum": -math.inf,
        "ReduceLogSumExp": -math.inf,
        "ReduceMean": math.nan,
    }.get(kind, 0)


def _sum(x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    return _keep_dtype(ag.sum(x, axis=axes, keepdims=keepdims), x) if axes else x


def _reduce(kind: str, x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """ONNX reduction `kind` of x over `axes` (() reduces nothing but still applies the op's
    elementwise part, as ONNX's reference does), in x's dtype."""
    if axes and any(x.shape[a] == 0 for a in axes):
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape) if keepdims or i not in axes)
        return ag.full(shape, _empty_fill(kind, x.dtype), dtype=x.dtype, device=x.device)
    if kind == "ReduceSum":
        return _sum(x, axes, keepdims)
    if kind == "ReduceSumSquare":
        return _sum(x * x, axes, keepdims)
    if kind == "ReduceL1":
        return _sum(ag.abs(x), axes, keepdims)
    if kind == "ReduceL2":
        if not x.dtype.is_floating:
            return ag.sqrt(_sum(x * x, axes, keepdims).astype(ag.float64)).astype(x.dtype)
        return ag.sqrt(_sum(x * x, axes, keepdims))
    if kind == "ReduceLogSum":
        return ag.log(_sum(x, axes, keepdims))
    if kind == "ReduceLogSumExp":
        return ag.logsumexp(x, axis=axes, keepdims=keepdims) if axes else ag.log(ag.exp(x))
    if not axes:
        return x
    if kind == "ReduceMean":
        if x.dtype.is_floating:
            return ag.mean(x, axis=axes, keepdims=keepdims)
        return ag.mean(x.astype(ag.float64), axis=axes, keepdims=keepdims).astype(x.dtype)
    if kind == "ReduceProd":
        return _keep_dtype(ag.prod(x, axis=axes, keepdims=keepdims), x)
    if x.dtype == ag.bool:
        return (ag.any if kind == "ReduceMax" else ag.all)(x, axis=axes, keepdims=keepdims)
    return (ag.max if kind == "ReduceMax" else ag.min)(x, axis=axes, keepdims=keepdims)


def _reduce_attr_axes(kind: str) -> Callable[[Node], Run]:
    """Before opset 13 (ReduceSum) or 18 (the others): axes is an attribute."""

    def build(node: Node) -> Run:
        axes = node.attr("axes", None)
        keepdims = bool(node.attr("keepdims", 1))

        def run(ctx: Context, x: Any) -> Tensor:
            x = ctx.tensor(x)
            ax = tuple(range(x.ndim)) if not axes else _axes(axes, x.ndim, node)
            return _reduce(kind, x, ax, keepdims)

        return run

    return build


def _reduce_input_axes(kind: str) -> Callable[[Node], Run]:
    """From opset 13 (ReduceSum) or 18 (the others): axes is an optional input, and an empty one
    reduces everything unless noop_with_empty_axes is set."""

    def build(node: Node) -> Run:
        keepdims = bool(node.attr("keepdims", 1))
        noop = bool(node.attr("noop_with_empty_axes", 0))

        def run(ctx: Context, x: Any, axes: Any = None) -> Tensor:
            x = ctx.tensor(x)
            given = [] if axes is None else ctx.host_ints(axes, "axes")
            if given:
                ax = _axes(given, x.ndim, node)
            else:
                ax = () if noop else tuple(range(x.ndim))
            return _reduce(kind, x, ax, keepdims)

        return run

    return build


def _axes(axes: Sequence[int], rank: int, node: Node) -> tuple[int, ...]:
    out = tuple(sorted({normalize_axis(int(a), rank, node) for a in axes}))
    if len(out) != len(axes):
        raise ValueError(f"{node.describe()}: axes {list(axes)} repeat an axis")
    return out


for _op, _since in {
    "ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18, "ReduceL1": 18,
    "ReduceL2": 18, "ReduceLogSum": 18, "ReduceLogSumExp": 18, "ReduceSumSquare": 18,
}.items():  # fmt: skip
    converter(_op, since=1)(_reduce_attr_axes(_op))
    converter(_op, since=_since)(_reduce_input_axes(_op))


def _arg_extremum(fn: Callable[..., Tensor]) -> Callable[[Node], Run]:
    def build(node: Node) -> Run:
        axis = int(node.attr("axis", 0))
        keepdims = bool(node.attr("keepdims", 1))
        last = bool(node.attr("select_last_index", 0))

        def run(ctx: Context, x: Any) -> Tensor:
            x = ctx.tensor(x)
            ax = normalize_axis(axis, x.ndim, node)
            if not last:
                return fn(x, axis=ax, keepdims=keepdims)
            return (x.shape[ax] - 1) - fn(ag.flip(x, axis=ax), axis=ax, keepdims=keepdims)

        return run

    return build


converter("ArgMax", since=1)(_arg_extremum(ag.argmax))
converter("ArgMin", since=1)(_arg_extremum(ag.argmin))


def _cumulative(product: bool) -> Callable[[Node], Run]:
    """CumSum and CumProd: inclusive or exclusive (shifted by one), forward or reversed."""

    def build(node: Node) -> Run:
        exclusive = bool(node.attr("exclusive", 0))
        reverse = bool(node.attr("reverse", 0))

        def run(ctx: Context, x: Any, axis: Any) -> Tensor:
            x = ctx.tensor(x)
            (a,) = ctx.host_ints(axis, "axis")
            ax = normalize_axis(a, x.ndim, node)
            y = ag.flip(x, axis=ax) if reverse else x
            if exclusive and y.shape[ax]:
                shape = list(y.shape)
                shape[ax] = 1
                first = ag.full(tuple(shape), 1 if product else 0, dtype=y.dtype, device=y.device)
                head = (slice(None),) * ax + (slice(0, y.shape[ax] - 1),)
                y = ag.concat([first, y[head]], axis=ax)
            y = _keep_dtype((ag.cumprod if product else ag.cumsum)(y, axis=ax), x)
            return ag.flip(y, axis=ax) if reverse else y

        return run

    return build


converter("CumSum", since=11)(_cumulative(product=False))
converter("CumProd", since=26)(_cumulative(product=True))


# ---------------------------------------------------------------------- linear algebra
@converter("MatMul", since=1)
def _matmul(node: Node) -> Run:
    return lambda ctx, a, b: ag.matmul(ctx.tensor(a), ctx.tensor(b))


def _scaled(t: Tensor, factor: float) -> Tensor:
    if factor == 1.0:
        return t
    if t.dtype.is_floating:
        return t * factor
    return (t.astype(ag.float64) * factor).astype(t.dtype)


@converter("Gemm", since=7)
def _gemm(node: Node) -> Run:
    """alpha * A' @ B' + beta * C, with C optional (required before opset 11) and broadcast."""
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))

    def run(ctx: Context, a: Any, b: Any, c: Any = None) -> Tensor:
        a, b = ctx.tensor(a), ctx.tensor(b)
        y = _scaled(ag.matmul(a.T if trans_a else a, b.T if trans_b else b), alpha)
        if c is None or beta == 0.0:
            return y
        return y + _scaled(ctx.tensor(c, y.dtype), beta)

    return run


def _parse_einsum(equation: str, node: Node) -> tuple[list[str], str | None]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    for term in terms + ([rhs] if arrow else []):
        rest = term.replace("...", "", 1)
        if not all(c.isalpha() for c in rest):
            raise Unsupported(f"equation {equation!r}: term {term!r} is not letters and one optional '...'")
    return terms, (rhs if arrow else None)


def _labels(term: str, rank: int, dots: int) -> list[Any]:
    """A term's axis labels: its letters, and ('...', i) for the broadcast axes '...' covers
    (numbered from the right, so that they align across operands)."""
    if "..." not in term:
        return list(term)
    head, tail = term.split("...")
    n = rank - len(head) - len(tail)
    return list(head) + [("...", dots - n + i) for i in range(n)] + list(tail)


def _diagonal(x: Tensor, labels: list[Any]) -> tuple[Tensor, list[Any]]:
    """Each label repeated within one operand becomes its diagonal (one axis, moved last)."""
    while True:
        seen = {}
        for i, lab in enumerate(labels):
            if lab in seen:
                break
            seen[lab] = i
        else:
            return x, labels
        i, j = seen[lab], [k for k, m in enumerate(labels) if m == lab][1]
        n = x.shape[i]
        if x.shape[j] != n:
            raise ValueError(f"Einsum: label {lab!r} has sizes {n} and {x.shape[j]} in one operand")
        rest = [k for k in range(x.ndim) if k not in (i, j)]
        flat = ag.permute_dims(x, rest + [i, j]).reshape(*[x.shape[k] for k in rest], n * n)
        x = ag.take(flat, ag.arange(n, device=x.device) * (n + 1), axis=-1)
        labels = [labels[k] for k in rest] + [lab]


def _einsum(terms: list[str], rhs: str | None, operands: list[Tensor]) -> Tensor:
    if len(terms) != len(operands):
        raise ValueError(f"Einsum: the equation has {len(terms)} terms for {len(operands)} inputs")
    dots = max((x.ndim - len(t.replace("...", "")) for t, x in zip(terms, operands) if "..." in t), default=0)
    labelled = [_diagonal(x, _labels(t, x.ndim, dots)) for t, x in zip(terms, operands)]
    ellipsis = [("...", i) for i in range(dots)]
    if rhs is None:
        counts: dict[Any, int] = {}
        for _, labs in labelled:
            for lab in labs:
                counts[lab] = counts.get(lab, 0) + 1
        out = ellipsis + sorted(lab for lab, c in counts.items() if c == 1 and isinstance(lab, str))
    else:
        head, _, tail = rhs.partition("...")
        out = list(head) + (ellipsis if "..." in rhs else []) + list(tail)

    def needed(start: int) -> set[Any]:
        return set(out).union(*(set(labs) for _, labs in labelled[start:]))

    x, labs = _sum_out(*labelled[0], needed(1))
    for k in range(1, len(labelled)):
        y, ylabs = _sum_out(*labelled[k], needed(k + 1) | set(labs))
        x, labs = _contract(x, labs, y, ylabs, needed(k + 1))
    missing = [lab for lab in out if lab not in labs]
    if missing:
        raise ValueError(f"Einsum: output labels {missing} appear in no input")
    return ag.permute_dims(x, [labs.index(lab) for lab in out])


def _sum_out(x: Tensor, labs: list[Any], keep: set[Any]) -> tuple[Tensor, list[Any]]:
    gone = [i for i, lab in enumerate(labs) if lab not in keep]
    if not gone:
        return x, labs
    return ag.sum(x, axis=tuple(gone)), [lab for i, lab in enumerate(labs) if i not in gone]


def _contract(
    a: Tensor, la: list[Any], b: Tensor, lb: list[Any], needed: set[Any]
) -> tuple[Tensor, list[Any]]:
    """Two labelled operands as one: shared labels still needed are batch axes, the other shared
    ones are summed by a batched matmul."""
    batch = [lab for lab in la if lab in lb and lab in needed]
    summed = [lab for lab in la if lab in lb and lab not in needed]
    only_a = [lab for lab in la if lab not in lb]
    only_b = [lab for lab in lb if lab not in la]
    size = {}
    for t, labs in ((a, la), (b, lb)):
        for lab, n in zip(labs, t.shape):
            size[lab] = max(size.get(lab, 1), n)

    def arrange(t: Tensor, labs: list[Any], order: list[Any]) -> Tensor:
        t = ag.permute_dims(t, [labs.index(lab) for lab in order])
        return ag.broadcast_to(
            t, [size[lab] if lab in batch + summed else s for lab, s in zip(order, t.shape)]
        )

    def prod(labs: list[Any]) -> int:
        return math.prod(size[lab] for lab in labs)

    am = arrange(a, la, batch + only_a + summed).reshape(prod(batch), prod(only_a), prod(summed))
    bm = arrange(b, lb, batch + summed + only_b).reshape(prod(batch), prod(summed), prod(only_b))
    shape = [size[lab] for lab in batch + only_a + only_b]
    return ag.matmul(am, bm).reshape(shape), batch + only_a + only_b


@converter("Einsum", since=12)
def _einsum_op(node: Node) -> Run:
    terms, rhs = _parse_einsum(node.attr("equation"), node)
    return lambda ctx, *xs: _einsum(terms, rhs, [ctx.tensor(x) for x in xs])


def _det(a: Tensor) -> Tensor:
    """Determinants of (..., n, n) by Gaussian elimination with partial pivoting (differentiable;
    a zero pivot gives 0)."""
    n = a.shape[-1]
    if a.ndim < 2 or a.shape[-2] != n:
        raise ValueError(f"Det: input must be (..., n, n), got shape {a.shape}")
    det = ag.ones(a.shape[:-2], dtype=a.dtype, device=a.device)
    rows = ag.arange(n, device=a.device)
    for k in range(n):
        pivot_row = ag.argmax(ag.abs(a[..., k:, k]), axis=-1) + k
        p = ag.expand_dims(pivot_row, axis=-1)
        order = ag.where(rows == k, p, ag.where(rows == p, k, rows))
        a = ag.take_along_axis(a, ag.broadcast_to(ag.expand_dims(order, axis=-1), a.shape), axis=-2)
        pivot = a[..., k, k]
        det = ag.where(pivot_row == k, det, -det) * pivot
        if k + 1 < n:
            safe = ag.where(pivot == 0, ag.ones_like(pivot), pivot)
            factors = a[..., k + 1 :, k] / ag.expand_dims(safe, axis=-1)
            below = a[..., k + 1 :, :] - ag.expand_dims(factors, axis=-1) * a[..., k : k + 1, :]
            a = ag.concat([a[..., : k + 1, :], below], axis=-2)
    return det


@converter("Det", since=11)
def _det_op(node: Node) -> Run:
    return lambda ctx, x: _det(ctx.tensor(x))


# ---------------------------------------------------------------------- dropout
@converter("Dropout", since=7)
def _dropout_7(node: Node) -> Run:
    """Opsets 7-11 have no training mode: inference, the identity (and a mask of ones)."""
    node.attr("ratio", 0.5)
    mask = len(node.outputs) > 1 and node.outputs[1] != ""
    mask_dtype = ag.bool if node.version >= 10 else None

    def run(ctx: Context, x: Any) -> Any:
        if not mask:
            return x
        x = ctx.tensor(x)
        return x, ag.ones(x.shape, dtype=mask_dtype or x.dtype, device=x.device)

    return run


@converter("Dropout", since=12)
def _dropout_12(node: Node) -> Run:
    """Inference unless training_mode is true; training draws the mask with agnostic's random
    ops (from the `seed` attribute's stream when given), not with NumPy's RandomState as ONNX's
    reference does, so its values differ from the reference's."""
    seed = node.attr("seed", None)
    if seed is not None and int(seed) < 0:
        raise Unsupported(f"seed={seed}: agnostic seeds are non-negative")
    generator = None if seed is None else Generator(int(seed))
    mask = len(node.outputs) > 1 and node.outputs[1] != ""

    def run(ctx: Context, x: Any, ratio: Any = None, training: Any = None) -> Any:
        x = ctx.tensor(x)
        train = training is not None and bool(np.asarray(ctx.host(training, "training_mode")).reshape(()))
        p = 0.5 if ratio is None else float(np.asarray(ctx.host(ratio, "ratio")).reshape(()))
        if not train or p == 0.0:
            keep = ag.ones(x.shape, dtype=ag.bool, device=x.device) if mask else None
            y = x
        else:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"Dropout: ratio must be in [0, 1), got {p}")
            keep = x.device.bernoulli(x.shape, 1.0 - p, generator=generator)
            y = ag.where(keep, x * (1.0 / (1.0 - p)), ag.zeros_like(x))
        return (y, keep) if mask else y

    return run


# ---------------------------------------------------------------------- losses
_REDUCTIONS = ("none", "sum", "mean")


def _nll(
    logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int | None, reduction: str
) -> Tensor:
    """ONNX NegativeLogLikelihoodLoss of log-probabilities (N, C, d...) and targets (N, d...)."""
    if logp.ndim < 2 or target.shape != (logp.shape[0],) + logp.shape[2:]:
        raise ValueError(
            f"NegativeLogLikelihoodLoss: input {logp.shape} must be (N, C, d...) and target {target.shape} (N, d...)"
        )
    target = target.astype(ag.int64)
    ignored = None if ignore_index is None else target == ignore_index
    safe = target if ignored is None else ag.where(ignored, ag.zeros_like(target), target)
    loss = -ag.squeeze(ag.take_along_axis(logp, ag.expand_dims(safe, axis=1), axis=1), axis=1)
    w = None
    if weight is not None:
        w = ag.take(weight.astype(logp.dtype), safe.reshape(-1)).reshape(target.shape)
    if ignored is not None:
        w = ag.where(ignored, ag.zeros_like(loss), ag.ones_like(loss) if w is None else w)
    if w is not None:
        loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.ndim == 0:
        return ag.sum(loss)
    return ag.mean(loss) if w is None else ag.sum(loss) / ag.sum(w)


def _loss_attrs(node: Node) -> tuple[int | None, str]:
    ignore = node.attr("ignore_index", None)
    reduction = node.attr("reduction", "mean")
    if reduction not in _REDUCTIONS:
        raise Unsupported(f"reduction={reduction!r}: ONNX defines {', '.join(_REDUCTIONS)}")
    return (None if ignore is None else int(ignore)), reduction


@converter("NegativeLogLikelihoodLoss", since=12)
def _nll_loss(node: Node) -> Run:
    ignore, reduction = _loss_attrs(node)

    def run(ctx: Context, x: Any, target: Any, weight: Any = None) -> Tensor:
        w = None if weight is None else ctx.tensor(weight)
        return _nll(ctx.tensor(x), ctx.tensor(target), w, ignore, reduction)

    return run


@converter("SoftmaxCrossEntropyLoss", since=12)
def _softmax_cross_entropy(node: Node) -> Run:
    ignore, reduction = _loss_attrs(node)
    log_prob = len(node.outputs) > 1 and node.outputs[1] != ""

    def run(ctx: Context, x: Any, target: Any, weight: Any = None) -> Any:
        x = ctx.tensor(x)
        logp = F.log_softmax(x, axis=1)
        w = None if weight is None else ctx.tensor(weight)
        loss = _nll(logp, ctx.tensor(target), w, ignore, reduction)
        return (loss, logp) if log_prob else loss

    return run
