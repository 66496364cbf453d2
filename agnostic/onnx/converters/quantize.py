"""ONNX converters: linear quantization and the integer ops of quantized models.

Integer arithmetic runs in float64, where the products and sums of 8- and 16-bit integers are
exact (the way ConvInteger does it), then rounds half to even and saturates as ONNX specifies. The
float computations keep the dtypes of ONNX's reference implementation (the scales' dtype for the
rescale factor, float32 for dequantization), so results match it to the last bit where it matters:
at rounding boundaries. Float8 and the 4- and 2-bit types have no agnostic dtype.
BitCast (`ag.bitcast`) lives here: quantized models use it to reinterpret int8 <-> uint8.
"""

from __future__ import annotations

import math
from typing import Any

import agnostic as ag
from agnostic import dtypes
from agnostic.dtypes import DType
from agnostic.onnx.dtypes import UnsupportedDType, from_onnx
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, lookup, normalize_axis
from agnostic.tensor import Tensor

_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
}  # fmt: skip


def _quantized_dtype(code: int, node: Node, what: str) -> DType:
    try:
        dtype = from_onnx(int(code))
    except UnsupportedDType as exc:
        raise Unsupported(f"{what}: {exc}") from None
    if dtype.name not in _RANGES:
        raise Unsupported(f"{what} {dtype.name}: quantized types agnostic has are {', '.join(_RANGES)}")
    return dtype


def _check_quantized(dtype: DType, node: Node, what: str) -> None:
    if dtype.name not in _RANGES:
        raise TypeError(
            f"{node.describe()}: {what} has dtype {dtype}; quantized values are {', '.join(_RANGES)}"
        )


def _saturate(y: Tensor, dtype: DType) -> Tensor:
    """Round half to even, clip to `dtype`'s range and cast (y holds exact integers plus a fraction)."""
    lo, hi = _RANGES[dtype.name]
    return ag.clip(ag.round(y), lo, hi).astype(dtype)


def _per_axis(v: Tensor, shape: tuple[int, ...], axis: int, block_size: int, what: str, node: Node) -> Tensor:
    """A scale or zero point broadcastable to `shape`: per tensor (one element), per axis (1-D along
    `axis`) or blocked (x's shape with `axis` divided into blocks of `block_size`)."""
    if v.ndim == 0 or math.prod(v.shape) == 1:
        return v.reshape(())
    axis = normalize_axis(axis, len(shape), node)
    if not block_size:
        if v.ndim != 1 or v.shape[0] != shape[axis]:
            raise ValueError(
                f"{node.describe()}: {what} of shape {v.shape} is neither a scalar nor a 1-D tensor of "
                f"length {shape[axis]} (axis {axis} of input shape {shape}); blocked quantization needs "
                "the block_size attribute"
            )
        dims = [1] * len(shape)
        dims[axis] = shape[axis]
        return v.reshape(tuple(dims))
    if block_size < 0:
        raise ValueError(f"{node.describe()}: block_size {block_size} must be positive")
    blocks = -(-shape[axis] // block_size)
    expected = shape[:axis] + (blocks,) + shape[axis + 1 :]
    if tuple(v.shape) != expected:
        raise ValueError(
            f"{node.describe()}: blocked {what} has shape {v.shape}; for input shape {shape}, axis {axis} "
            f"and block_size {block_size} it must be {expected}"
        )
    v = ag.repeat(v, block_size, axis=axis)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, shape[axis])
    return v[tuple(index)]


# ---------------------------------------------------------------------- QuantizeLinear
@converter("QuantizeLinear", since=10)
def _quantize_linear(node: Node) -> Run:
    """y = saturate(round(x / scale) + zero_point); one builder serves every version, as each one only
    adds attributes (axis 13, saturate 19, block_size and output_dtype 21, precision 23) whose
    defaults are the earlier behaviour."""
    axis, block_size = int(node.attr("axis", 1)), int(node.attr("block_size", 0))
    node.attr("saturate", 1)  # only changes float8 outputs, which agnostic has no dtype for
    code, precision = int(node.attr("output_dtype", 0)), int(node.attr("precision", 0))
    out_dtype = _quantized_dtype(code, node, "output_dtype") if code else None
    if precision:
        try:
            precision_dtype = from_onnx(precision)
        except UnsupportedDType as exc:
            raise Unsupported(f"precision: {exc}") from None
        if not precision_dtype.is_floating:
            raise Unsupported(f"precision {precision_dtype}: must be a floating dtype")

    def run(ctx: Context, x: Any, scale: Any, zero: Any = None) -> Tensor:
        x, scale = ctx.tensor(x), ctx.tensor(scale)
        dtype = out_dtype or dtypes.uint8
        if zero is not None:
            zero = ctx.tensor(zero)
            _check_quantized(zero.dtype, node, "y_zero_point")
            if out_dtype is not None and zero.dtype != out_dtype:
                raise TypeError(
                    f"{node.describe()}: output_dtype {out_dtype} differs from y_zero_point's {zero.dtype}"
                )
            dtype = zero.dtype
        if precision:
            compute = precision_dtype
        elif x.dtype.is_floating or scale.dtype.is_floating:
            compute = ag.result_type(x.dtype, scale.dtype)
        else:
            compute = dtypes.float64  # int32 / int32, as NumPy's true division
        s = _per_axis(scale, x.shape, axis, block_size, "y_scale", node).astype(compute)
        y = ag.round(x.astype(compute) / s).astype(ag.float64)
        if zero is not None:
            y = y + _per_axis(zero, x.shape, axis, block_size, "y_zero_point", node).astype(ag.float64)
        return _saturate(y, dtype)

    return run


# ---------------------------------------------------------------------- DequantizeLinear
@converter("DequantizeLinear", since=10)
def _dequantize_linear(node: Node) -> Run:
    """y = (x - zero_point) * scale, computed in float32 (float64 for int32 x) as ONNX's reference
    does and given the scale's dtype (or output_dtype, since 23)."""
    axis, block_size = int(node.attr("axis", 1)), int(node.attr("block_size", 0))
    code = int(node.attr("output_dtype", 0))
    if code:
        try:
            out_dtype = from_onnx(code)
        except UnsupportedDType as exc:
            raise Unsupported(f"output_dtype: {exc}") from None
    else:
        out_dtype = None

    def run(ctx: Context, x: Any, scale: Any, zero: Any = None) -> Tensor:
        x, scale = ctx.tensor(x), ctx.tensor(scale)
        if x.dtype.is_floating or x.dtype == dtypes.bool:
            raise TypeError(f"{node.describe()}: x has dtype {x.dtype}; it must be a quantized integer type")
        compute = dtypes.float64 if x.dtype == dtypes.int32 else ag.result_type(dtypes.float32, scale.dtype)
        y = x.astype(compute)
        if zero is not None:
            zero = ctx.tensor(zero)
            if zero.dtype != x.dtype:
                raise TypeError(f"{node.describe()}: x_zero_point has dtype {zero.dtype}, x has {x.dtype}")
            y = y - _per_axis(zero, x.shape, axis, block_size, "x_zero_point", node).astype(compute)
        y = y * _per_axis(scale, x.shape, axis, block_size, "x_scale", node).astype(compute)
        return y.astype(out_dtype or scale.dtype)

    return run


# ---------------------------------------------------------------------- DynamicQuantizeLinear
@converter("DynamicQuantizeLinear", since=11)
def _dynamic_quantize_linear(node: Node) -> Run:
    """uint8 quantization with a scale and zero point fitted to x's range (extended to hold 0)."""

    def run(ctx: Context, x: Any) -> tuple[Tensor, Tensor, Tensor]:
        x = ctx.tensor(x)
        if x.dtype != dtypes.float32:
            raise TypeError(f"{node.describe()}: x has dtype {x.dtype}; DynamicQuantizeLinear takes float32")
        if math.prod(x.shape) == 0:
            raise ValueError(f"{node.describe()}: x of shape {x.shape} is empty; its range is undefined")
        hi, lo = ag.maximum(ag.max(x), 0.0), ag.minimum(ag.min(x), 0.0)
        scale = ag.where(hi == lo, ag.ones_like(hi), hi - lo) / 255.0
        zero = ag.round(ag.clip(-lo / scale, 0.0, 255.0))
        y = ag.clip(ag.round(x / scale) + zero, 0.0, 255.0)
        return y.astype(dtypes.uint8), scale, zero.astype(dtypes.uint8)

    return run


# ---------------------------------------------------------------------- integer matmul and conv
def _centered(ctx: Context, q: Any, zero: Any, node: Node, what: str, rows: bool) -> Tensor:
    """`q - zero` in float64 (exact); a 1-D zero point of `q`'s row count is per row when `rows`."""
    q = ctx.tensor(q)
    _check_quantized(q.dtype, node, what)
    y = q.astype(ag.float64)
    if zero is None:
        return y
    z = ctx.tensor(zero).astype(ag.float64)
    if rows and z.ndim == 1 and math.prod(z.shape) > 1 and q.ndim >= 2:
        z = z.reshape((-1, 1))
    return y - z


def _rescale(
    ctx: Context,
    acc: Tensor,
    scales: tuple[Any, Any, Any],
    zero: Any,
    dtype: DType,
    shape: tuple[tuple[int, ...], tuple[int, ...]],
) -> Tensor:
    """Requantize an exact integer accumulator: acc * (s_in * s_w / s_out) + zero_point, with the factor
    computed in the scales' dtype (ONNX's reference rounds it there), the rest in float64."""
    s_in, s_w, s_out = (ctx.tensor(s) for s in scales)
    factor = (s_in.reshape(shape[0]) * s_w.reshape(shape[1]) / s_out).astype(ag.float64)
    y = acc * factor
    if zero is not None:
        y = y + ctx.tensor(zero).astype(ag.float64)
    return _saturate(y, dtype)


def _scale_shape(s: Any, node: Node, what: str, axis_shape: tuple[int, ...]) -> tuple[int, ...]:
    """How a scale broadcasts against the accumulator: per tensor, or 1-D along `axis_shape`'s axis."""
    shape = tuple(s.shape)
    if len(shape) == 0 or math.prod(shape) == 1:
        return ()
    if len(shape) != 1:
        raise ValueError(f"{node.describe()}: {what} has shape {shape}; it must be a scalar or 1-D")
    return tuple(shape[0] if d == -1 else 1 for d in axis_shape)


@converter("MatMulInteger", since=10)
def _matmul_integer(node: Node) -> Run:
    """int32 (A - a_zero_point) @ (B - b_zero_point); a 1-D a_zero_point is per row of A, b's per column."""

    def run(ctx: Context, a: Any, b: Any, a_zero: Any = None, b_zero: Any = None) -> Tensor:
        a = _centered(ctx, a, a_zero, node, "A", rows=True)
        b = _centered(ctx, b, b_zero, node, "B", rows=False)
        return ag.matmul(a, b).astype(ag.int32)

    return run


@converter("QLinearMatMul", since=10)
def _qlinear_matmul(node: Node) -> Run:
    """Quantized matmul: the integer product of the centered inputs, requantized to y's scale and
    zero point (whose dtype is the output's; a's without one). A 1-D a_scale is per row, b_scale per
    column (opset 21 adds float16 and bfloat16 scales: same computation)."""

    def run(
        ctx: Context, a: Any, a_scale: Any, a_zero: Any, b: Any, b_scale: Any, b_zero: Any, y_scale: Any,
        y_zero: Any = None,
    ) -> Tensor:  # fmt: skip
        a_t = ctx.tensor(a)
        acc = ag.matmul(
            _centered(ctx, a, a_zero, node, "a", rows=True), _centered(ctx, b, b_zero, node, "b", rows=False)
        )
        dtype = ctx.tensor(y_zero).dtype if y_zero is not None else a_t.dtype
        _check_quantized(dtype, node, "y")
        shapes = (
            _scale_shape(a_scale, node, "a_scale", (-1, 1)),
            _scale_shape(b_scale, node, "b_scale", (-1,)),
        )
        return _rescale(ctx, acc, (a_scale, b_scale, y_scale), y_zero, dtype, shapes)

    return run


@converter("QLinearConv", since=10)
def _qlinear_conv(node: Node) -> Run:
    """Quantized Conv: Conv (every attribute of it) of the centered inputs in float64, plus the int32
    bias, requantized; a 1-D w_zero_point or w_scale is per output channel."""
    conv = lookup("", "Conv", node.version)(node)

    def run(
        ctx: Context, x: Any, x_scale: Any, x_zero: Any, w: Any, w_scale: Any, w_zero: Any, y_scale: Any,
        y_zero: Any = None, bias: Any = None,
    ) -> Tensor:  # fmt: skip
        x_t, w_t = ctx.tensor(x), ctx.tensor(w)
        xc = _centered(ctx, x_t, x_zero, node, "x", rows=False)
        wc = _centered(ctx, w_t, None, node, "w", rows=False)
        if w_zero is not None:
            wz = ctx.tensor(w_zero).astype(ag.float64)
            if wz.ndim == 1 and math.prod(wz.shape) > 1:
                wz = wz.reshape((-1,) + (1,) * (w_t.ndim - 1))
            wc = wc - wz
        b = None if bias is None else ctx.tensor(bias).astype(ag.float64)
        acc = conv(ctx, xc, wc, b)
        dtype = ctx.tensor(y_zero).dtype if y_zero is not None else x_t.dtype
        _check_quantized(dtype, node, "y")
        channel = (1, -1) + (1,) * (acc.ndim - 2)
        shapes = ((), _scale_shape(w_scale, node, "w_scale", channel))
        return _rescale(ctx, acc, (x_scale, w_scale, y_scale), y_zero, dtype, shapes)

    return run


# ---------------------------------------------------------------------- BitCast
@converter("BitCast", since=26)
def _bitcast(node: Node) -> Run:
    """Reinterpret the bytes of x as type `to` of the same width (`ag.bitcast`): every pair of
    agnostic dtypes with equal item sizes (float32 <-> int32, float16 <-> bfloat16 <-> int16,
    bool/int8/uint8...). A byte read as bool is True where it is non-zero (a well-formed byte is 0
    or 1, where this is ONNX's result)."""
    try:
        to = from_onnx(int(node.attr("to")))
    except UnsupportedDType as exc:
        raise Unsupported(f"to: {exc}") from None

    def check(source: DType) -> None:
        if source.itemsize != to.itemsize:
            raise Unsupported(
                f"BitCast from {source.name} ({source.bits} bits) to {to.name} ({to.bits} bits): the "
                "bit widths differ; BitCast reinterprets each element's bytes, so both types must have "
                "the same width"
            )

    if node.input_dtype(0) is not None:
        check(node.input_dtype(0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        check(x.dtype)
        return ag.bitcast(x, to)

    return run
