"""Lowering: one table from op-set names to emitters that write ONNX nodes.

An emitter gets the `Emitter` (which names values, makes constants and shape tensors, and picks the
form of an op for the target opset), the node's output Values and the op's arguments by the names of
the Backend method's parameters; it returns the ONNX name of each output. `since` is the oldest opset
the emitter can write: a composite below it is recorded as the primitives of its default instead
(`supports`), a primitive below it is an error naming the op and that opset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from agnostic import dtypes
from agnostic.onnx.dtypes import to_onnx
from agnostic.onnx.trace import Dim, ExportError, Node, Value

__all__ = ["Emitter", "Lowering", "TABLE", "supports"]

INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


@dataclass(frozen=True)
class Lowering:
    """How one op-set op becomes ONNX: `emit(e, outputs, **params)`, from opset `since` on."""

    emit: Callable[..., Any]
    since: int


TABLE: dict[str, Lowering] = {}
"""op-set name -> its lowering."""


def lowers(*names: str, since: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            TABLE[name] = Lowering(fn, since)
        return fn

    return register


def supports(name: str, opset: int) -> bool:
    """Whether op `name` lowers whole at `opset`."""
    rule = TABLE.get(name)
    return rule is not None and rule.since <= opset


def _np_dtype(v: Value | np.dtype) -> np.dtype:
    return v.dtype if isinstance(v, Value) else np.dtype(v)


def _onnx_type(dtype: np.dtype) -> int:
    return to_onnx(dtypes.numpy_dtype_tables()[1][np.dtype(dtype)])


class Emitter:
    """Builds the nodes and initializers of one graph at one opset."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[int] = set()  # ids of the Values some kept node or output reads
        self._names: dict[int, str] = {}
        self._held: list[Value] = []  # keeps named Values alive, so their ids stay theirs
        self._consts: dict[tuple[Any, ...], str] = {}
        self._dims: dict[Any, str] = {}
        self._count = 0
        self._doc = ""

    # ------------------------------------------------------------------ names
    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def bind(self, v: Value, name: str) -> None:
        self._names[id(v)] = name
        self._held.append(v)

    def name(self, v: Value) -> str:
        """The ONNX name of a Value (a constant becomes an initializer on first use)."""
        found = self._names.get(id(v))
        if found is None:
            if v.live:
                raise ExportError(f"internal: {v!r} is used before it is computed")
            found = self.const(v.value)
            self.bind(v, found)
        return found

    def const(self, array: Any, dtype: Any = None) -> str:
        """An initializer holding `array` (equal constants share one)."""
        a = np.asarray(array, dtype=dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        found = self._consts.get(key)
        if found is None:
            found = self._consts[key] = self.fresh("const")
            self.initializers.append(numpy_helper.from_array(a, found))
        return found

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray([int(v) for v in values], np.int64).reshape(len(values)))

    # ------------------------------------------------------------------ nodes
    def add(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs: Any) -> Any:
        """Append a node; its output name (a list of them when `outputs` > 1)."""
        names = [self.fresh(op_type) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(op_type, list(inputs), names, name=names[0], **attrs)
        node.doc_string = self._doc
        self.nodes.append(node)
        return names if outputs > 1 else names[0]

    def operand(self, x: Any, dtype: Any) -> str:
        """A Value's name, or a Python scalar (or Dim) as a 0-d constant of `dtype`."""
        if isinstance(x, Value):
            return self.name(x)
        if isinstance(x, Dim):
            scalar = self.squeeze(self.dim(x), (0,))
            return scalar if np.dtype(dtype) == np.int64 else self.add("Cast", [scalar], to=_onnx_type(dtype))
        return self.const(np.asarray(x, dtype=_np_dtype(dtype)))

    def dim(self, d: int) -> str:
        """A size as a 1-D int64 tensor of one element, computed in the graph for a Dim."""
        if not isinstance(d, Dim):
            return self.ints([d])
        kind, *parts = d.expr
        key: Any = (kind, id(parts[0]), parts[1]) if kind == "dim" else d.expr
        found = self._dims.get(key)
        if found is not None:
            return found
        if kind == "dim":
            v, axis = parts
            if self.opset >= 15:
                found = self.add("Shape", [self.name(v)], start=axis, end=axis + 1)
            else:
                found = self.add("Gather", [self.add("Shape", [self.name(v)]), self.ints([axis])], axis=0)
        elif kind == "neg":
            found = self.add("Neg", [self.dim(parts[0])])
        else:
            op = {"add": "Add", "sub": "Sub", "mul": "Mul", "floordiv": "Div", "mod": "Mod"}[kind]
            a, b = (self.dim(p) for p in parts)
            if kind == "floordiv":  # sizes are non-negative, where truncating and flooring agree
                found = self.add("Div", [a, b])
            else:
                found = self.add(op, [a, b])
        self._dims[key] = found
        return found

    def shape(self, dims: Sequence[int]) -> str:
        """A shape (ints and Dims) as a 1-D int64 tensor: a constant, or a Concat of computed dims."""
        if not any(isinstance(d, Dim) for d in dims):
            return self.ints(dims)
        parts: list[str] = []
        run: list[int] = []
        for d in dims:
            if isinstance(d, Dim):
                if run:
                    parts.append(self.ints(run))
                    run = []
                parts.append(self.dim(d))
            else:
                run.append(d)
        if run:
            parts.append(self.ints(run))
        return parts[0] if len(parts) == 1 else self.add("Concat", parts, axis=0)

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 13:
            return self.add("Squeeze", [x, self.ints(axes)])
        return self.add("Squeeze", [x], axes=list(axes))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 13:
            return self.add("Unsqueeze", [x, self.ints(axes)])
        return self.add("Unsqueeze", [x], axes=list(axes))

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        """A Reduce* node in the target opset's form (axes an input from 13 for ReduceSum, 18 for
        the others); no axes reduces nothing, as the op-set says."""
        if not axes:
            return self.add("Identity", [x])
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.add(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.add(op_type, [x], axes=list(axes), keepdims=int(keepdims))

    # ------------------------------------------------------------------ one recorded node
    def emit(self, node: Node) -> None:
        """Write the ONNX nodes of one recorded op and bind its outputs."""
        rule = TABLE.get(node.op)
        if rule is None:
            raise ExportError(
                f"{node.line}: op {node.op!r} has no ONNX form in agnostic's exporter; compute it with "
                "other ops, or leave it out of the exported forward"
            )
        if rule.since > self.opset:
            raise ExportError(
                f"{node.line}: op {node.op!r} needs ONNX opset {rule.since} or newer, and opset {self.opset} "
                f"was asked for; export with opset={rule.since} or newer"
            )
        self._doc = f"{node.op} at {node.line}"
        names = rule.emit(self, node.outputs, **node.params)
        names = names if isinstance(names, (list, tuple)) else [names]
        for v, n in zip(node.outputs, names):
            if v is not None and n is not None:
                self.bind(v, n)


# ====================================================================== elementwise
_UNARY = {
    "neg": ("Neg", 6), "abs": ("Abs", 6), "sign": ("Sign", 9), "exp": ("Exp", 6), "log": ("Log", 6),
    "sqrt": ("Sqrt", 6), "reciprocal": ("Reciprocal", 6), "sin": ("Sin", 7), "cos": ("Cos", 7),
    "tan": ("Tan", 7), "asin": ("Asin", 7), "acos": ("Acos", 7), "atan": ("Atan", 7), "sinh": ("Sinh", 9),
    "cosh": ("Cosh", 9), "tanh": ("Tanh", 6), "asinh": ("Asinh", 9), "acosh": ("Acosh", 9),
    "atanh": ("Atanh", 9), "sigmoid": ("Sigmoid", 6), "erf": ("Erf", 9), "floor": ("Floor", 6),
    "ceil": ("Ceil", 6), "round": ("Round", 11), "isnan": ("IsNaN", 9), "isinf": ("IsInf", 10),
    "logical_not": ("Not", 1), "relu": ("Relu", 6),
}  # fmt: skip


def _unary(op_type: str) -> Callable[..., str]:
    return lambda e, out, a: e.add(op_type, [e.name(a)])


for _name, (_op, _since) in _UNARY.items():
    TABLE[_name] = Lowering(_unary(_op), _since)


@lowers("expm1", since=6)
def _expm1(e: Emitter, out: list[Value], a: Value) -> str:
    return e.add("Sub", [e.add("Exp", [e.name(a)]), e.operand(1, a.dtype)])


@lowers("log1p", since=6)
def _log1p(e: Emitter, out: list[Value], a: Value) -> str:
    return e.add("Log", [e.add("Add", [e.name(a), e.operand(1, a.dtype)])])


def _log_base(base: float) -> Callable[..., str]:
    def emit(e: Emitter, out: list[Value], a: Value) -> str:
        return e.add("Div", [e.add("Log", [e.name(a)]), e.operand(math.log(base), a.dtype)])

    return emit


TABLE["log2"], TABLE["log10"] = Lowering(_log_base(2.0), 6), Lowering(_log_base(10.0), 6)


@lowers("rsqrt", since=6)
def _rsqrt(e: Emitter, out: list[Value], a: Value) -> str:
    return e.add("Reciprocal", [e.add("Sqrt", [e.name(a)])])


@lowers("square", since=6)
def _square(e: Emitter, out: list[Value], a: Value) -> str:
    x = e.name(a)
    return e.add("Mul", [x, x])


@lowers("trunc", since=9)
def _trunc(e: Emitter, out: list[Value], a: Value) -> str:
    """floor(|x|) with x's sign, by a multiply: trunc(-0.5) is -0.0, which ONNX Runtime's Where
    would turn into +0.0 (before opset 11, whose Equal takes floats, Where it is)."""
    x = e.name(a)
    if e.opset < 11:
        negative = e.add("Less", [x, e.operand(0, a.dtype)])
        return e.add("Where", [negative, e.add("Ceil", [x]), e.add("Floor", [x])])
    sign = e.add("Where", [_negative(e, x, a.dtype), e.operand(-1, a.dtype), e.operand(1, a.dtype)])
    return e.add("Mul", [e.add("Floor", [e.add("Abs", [x])]), sign])


@lowers("isfinite", since=10)
def _isfinite(e: Emitter, out: list[Value], a: Value) -> str:
    x = e.name(a)
    return e.add("Not", [e.add("Or", [e.add("IsNaN", [x]), e.add("IsInf", [x])])])


_BINARY = {
    "add": ("Add", 7), "sub": ("Sub", 7), "mul": ("Mul", 7), "div": ("Div", 7), "pow": ("Pow", 7),
    "maximum": ("Max", 8), "minimum": ("Min", 8), "eq": ("Equal", 11), "lt": ("Less", 9),
    "gt": ("Greater", 9), "le": ("LessOrEqual", 12), "ge": ("GreaterOrEqual", 12),
    "logical_and": ("And", 7), "logical_or": ("Or", 7), "logical_xor": ("Xor", 7),
}  # fmt: skip


def _is_float(dtype: np.dtype) -> bool:
    """Whether a NumPy dtype is a float one, ml_dtypes' bfloat16 (kind "V") included."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _operands(e: Emitter, a: Any, b: Any) -> tuple[str, str, np.dtype]:
    """Both operands as names: a Python scalar takes the other operand's dtype (weak scalars)."""
    dtype = (a if isinstance(a, Value) else b).dtype
    return e.operand(a, dtype), e.operand(b, dtype), dtype


def _binary(op_type: str) -> Callable[..., str]:
    def emit(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
        x, y, _ = _operands(e, a, b)
        return e.add(op_type, [x, y])

    return emit


for _name, (_op, _since) in _BINARY.items():
    TABLE[_name] = Lowering(_binary(_op), _since)


def _bitwise(op_type: str, on_bool: str) -> Callable[..., str]:
    """A bitwise op: ONNX's Bitwise* (opset 18) on integers, the logical op on bool (opset 7),
    where a carrier would not do (BitwiseNot of 1 is -2, which reads back as True)."""

    def emit(e: Emitter, out: list[Value], a: Any, b: Any = None) -> str:
        args = (a,) if on_bool == "Not" else (a, b)
        dtype = next(x.dtype for x in args if isinstance(x, Value))
        if dtype == np.bool_:
            return e.add(on_bool, [e.operand(x, dtype) for x in args])
        if e.opset < 18:
            raise ExportError(
                f"{e._doc}: integer {op_type} needs ONNX opset 18 or newer; export with opset=18"
            )
        return e.add(op_type, [e.operand(x, dtype) for x in args])

    return emit


for _name, _op, _on_bool in (
    ("bitwise_and", "BitwiseAnd", "And"), ("bitwise_or", "BitwiseOr", "Or"),
    ("bitwise_xor", "BitwiseXor", "Xor"), ("bitwise_invert", "BitwiseNot", "Not"),
):  # fmt: skip
    TABLE[_name] = Lowering(_bitwise(_op, _on_bool), 7)


@lowers("ne", since=11)
def _ne(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    x, y, _ = _operands(e, a, b)
    return e.add("Not", [e.add("Equal", [x, y])])


@lowers("floor_divide", since=10)
def _floor_divide(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    x, y, dtype = _operands(e, a, b)
    if _is_float(dtype):
        return e.add("Floor", [e.add("Div", [x, y])])
    return e.add("Div", [e.add("Sub", [x, e.add("Mod", [x, y], fmod=0)]), y])  # exact: floors


@lowers("remainder", since=10)
def _remainder(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    x, y, dtype = _operands(e, a, b)
    if _is_float(dtype):  # the divisor's sign, as Python's %
        return e.add("Sub", [x, e.add("Mul", [e.add("Floor", [e.add("Div", [x, y])]), y])])
    return e.add("Mod", [x, y], fmod=0)


@lowers("logaddexp", since=8)
def _logaddexp(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    x, y, dtype = _operands(e, a, b)
    high = e.add("Max", [x, y])
    gap = e.add("Neg", [e.add("Abs", [e.add("Sub", [x, y])])])
    return e.add("Add", [high, e.add("Log", [e.add("Add", [e.operand(1, dtype), e.add("Exp", [gap])])])])


@lowers("hypot", since=7)
def _hypot(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    x, y, _ = _operands(e, a, b)
    return e.add("Sqrt", [e.add("Add", [e.add("Mul", [x, x]), e.add("Mul", [y, y])])])


@lowers("atan2", since=11)
def _atan2(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    """IEEE atan2 of y=a, x=b. atan2 is odd in y, so the angle is built for |y| in [0, pi]
    (atan(|y| / x), plus pi where x is negative, -0.0 included; the 0 / 0 and inf / inf cases
    written out) and takes y's sign at the end by a multiply. A Where never picks a -0.0: ONNX
    Runtime's CPU Where turns a -0.0 taken from its second input into +0.0."""
    y, x, dtype = _operands(e, a, b)
    pi, zero = e.operand(math.pi, dtype), e.operand(0, dtype)
    size, neg_x = e.add("Abs", [y]), _negative(e, x, dtype)
    angle = e.add("Atan", [e.add("Div", [size, x])])
    angle = e.add("Where", [neg_x, e.add("Add", [angle, pi]), angle])
    zeros = e.add("And", [e.add("Equal", [x, zero]), e.add("Equal", [size, zero])])
    angle = e.add("Where", [zeros, e.add("Where", [neg_x, pi, zero]), angle])
    infinite = e.add("And", [e.add("IsInf", [x]), e.add("IsInf", [size])])
    corner = e.add("Where", [neg_x, e.operand(3 * math.pi / 4, dtype), e.operand(math.pi / 4, dtype)])
    angle = e.add("Where", [infinite, corner, angle])
    sign = e.add("Where", [_negative(e, y, dtype), e.operand(-1, dtype), e.operand(1, dtype)])
    return e.add("Mul", [angle, sign])


def _negative(e: Emitter, x: str, dtype: np.dtype) -> str:
    """Whether a non-NaN float is negative, -0.0 included (1 / -0.0 is -inf)."""
    zero = e.operand(0, dtype)
    below = e.add("Less", [x, zero])
    negative_zero = e.add("And", [e.add("Equal", [x, zero]), e.add("Less", [e.add("Reciprocal", [x]), zero])])
    return e.add("Or", [below, negative_zero])


_SAME_WIDTH_INT = {2: np.dtype(np.int16), 4: np.dtype(np.int32), 8: np.dtype(np.int64)}


def _bits(e: Emitter, x: str, dtype: np.dtype) -> tuple[str, np.dtype]:
    """A float's bits as a same-width signed integer (BitCast, opset 26)."""
    int_dtype = _SAME_WIDTH_INT[dtype.itemsize]
    return e.add("BitCast", [x], to=_onnx_type(int_dtype)), int_dtype


@lowers("signbit", since=26)
def _signbit(e: Emitter, out: list[Value], a: Value) -> str:
    """The sign bit, NaN's included: the bits read as a signed integer are negative."""
    bits, int_dtype = _bits(e, e.name(a), a.dtype)
    return e.add("Less", [bits, e.const(np.zeros((), int_dtype))])


@lowers("copysign", since=26)
def _copysign(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
    """|a| with b's sign bit, on the bits (exact for NaN and -0.0, which float ops need not keep)."""
    x, y, dtype = _operands(e, a, b)
    (x_bits, int_dtype), (y_bits, _) = _bits(e, x, dtype), _bits(e, y, dtype)
    sign = np.array(np.iinfo(int_dtype).min, int_dtype)
    size = e.add("BitwiseAnd", [x_bits, e.const(~sign)])
    both = e.add("BitwiseOr", [size, e.add("BitwiseAnd", [y_bits, e.const(sign)])])
    return e.add("BitCast", [both], to=_onnx_type(dtype))


def _shift(left: bool) -> Callable[..., str]:
    """x << k, x >> k as the op-set defines them (every backend agrees): a count outside [0, bits)
    gives 0, or for >> of a negative x, -1. Written with ONNX's BitShift, which takes unsigned types
    only, on uint64: a left shift of the two's complement bits, truncated back; an arithmetic right
    shift as ~((~x) >> k) for negative x."""

    def emit(e: Emitter, out: list[Value], a: Any, b: Any) -> str:
        x, k, dtype = _operands(e, a, b)
        u64, t = onnx.TensorProto.UINT64, _onnx_type(dtype)
        k = e.add("Cast", [k], to=onnx.TensorProto.INT64)  # a uint64 count past 2**63 turns negative
        valid = e.add(
            "And",
            [e.add("GreaterOrEqual", [k, e.ints([0])]), e.add("Less", [k, e.ints([8 * dtype.itemsize])])],
        )
        count = e.add("Cast", [e.add("Where", [valid, k, e.ints([0])])], to=u64)
        zero = e.operand(0, dtype)
        if left:
            moved = e.add("BitShift", [e.add("Cast", [x], to=u64), count], direction="LEFT")
            return e.add("Where", [valid, e.add("Cast", [moved], to=t), zero])
        if dtype.kind == "u":
            moved = e.add("BitShift", [e.add("Cast", [x], to=u64), count], direction="RIGHT")
            return e.add("Where", [valid, e.add("Cast", [moved], to=t), zero])
        minus_one = e.operand(-1, dtype)
        negative = e.add("Less", [x, zero])
        magnitude = e.add("Where", [negative, e.add("Sub", [minus_one, x]), x])  # ~x for negative x
        moved = e.add(
            "Cast", [e.add("BitShift", [e.add("Cast", [magnitude], to=u64), count], direction="RIGHT")], to=t
        )
        shifted = e.add("Where", [negative, e.add("Sub", [minus_one, moved]), moved])
        return e.add("Where", [valid, shifted, e.add("Where", [negative, minus_one, zero])])

    return emit


TABLE["bitwise_left_shift"], TABLE["bitwise_right_shift"] = (
    Lowering(_shift(True), 12),
    Lowering(_shift(False), 12),
)


@lowers("where", since=9)
def _where(e: Emitter, out: list[Value], cond: Value, a: Any, b: Any) -> str:
    dtype = out[0].dtype
    return e.add("Where", [e.name(cond), e.operand(a, dtype), e.operand(b, dtype)])


@lowers("clip", since=11)
def _clip(e: Emitter, out: list[Value], a: Value, lo: Any, hi: Any) -> str:
    x = e.name(a)
    if isinstance(lo, Value) or isinstance(hi, Value):  # Clip takes scalar bounds only
        if lo is not None:
            x = e.add("Max", [x, e.operand(lo, a.dtype)])
        return x if hi is None else e.add("Min", [x, e.operand(hi, a.dtype)])
    bounds = ["" if v is None else e.operand(v, a.dtype) for v in (lo, hi)]
    return e.add("Clip", [x, *bounds])


@lowers("cast", since=6)
def _cast(e: Emitter, out: list[Value], a: Value, dtype: Any) -> str:
    return e.add("Cast", [e.name(a)], to=to_onnx(dtype))


@lowers("bitcast", since=26)
def _bitcast(e: Emitter, out: list[Value], a: Value, dtype: Any) -> str:
    if np.dtype(a.dtype) == np.bool_ or dtype is dtypes.bool:
        # a bool's byte is 0 or 1, and a byte read as bool is True where non-zero (agnostic's rule,
        # where ONNX's BitCast keeps the raw byte): a Cast is that reinterpretation
        return e.add("Cast", [e.name(a)], to=to_onnx(dtype))
    return e.add("BitCast", [e.name(a)], to=to_onnx(dtype))


# ====================================================================== creation
@lowers("full", since=9)
def _full(e: Emitter, out: list[Value], shape: Sequence[int], value: Any, dtype: Any) -> str:
    fill = numpy_helper.from_array(np.asarray([value], dtype=out[0].dtype), "value")
    return e.add("ConstantOfShape", [e.shape(shape)], value=fill)


@lowers("arange", since=11)
def _arange(e: Emitter, out: list[Value], start: Any, stop: Any, step: Any, dtype: Any) -> str:
    t = out[0].dtype
    return e.add("Range", [e.operand(start, t), e.operand(stop, t), e.operand(step, t)])


# ====================================================================== reductions
_REDUCE = {
    "sum": "ReduceSum",
    "prod": "ReduceProd",
    "mean": "ReduceMean",
    "max": "ReduceMax",
    "min": "ReduceMin",
}


def _reduction(op_type: str) -> Callable[..., str]:
    return lambda e, out, a, axes, keepdims: e.reduce(op_type, e.name(a), axes, keepdims)


for _name, _op in _REDUCE.items():
    TABLE[_name] = Lowering(_reduction(_op), 1)


def _truth(op_type: str) -> Callable[..., str]:
    """any / all over bools: the max / min of them as int32 (Reduce* take no bools everywhere)."""

    def emit(e: Emitter, out: list[Value], a: Value, axes: Sequence[int], keepdims: bool) -> str:
        as_int = e.add("Cast", [e.name(a)], to=onnx.TensorProto.INT32)
        return e.add("Cast", [e.reduce(op_type, as_int, axes, keepdims)], to=onnx.TensorProto.BOOL)

    return emit


TABLE["any"], TABLE["all"] = Lowering(_truth("ReduceMax"), 6), Lowering(_truth("ReduceMin"), 6)


@lowers("var", since=1)
def _var(
    e: Emitter, out: list[Value], a: Value, axes: Sequence[int], correction: float, keepdims: bool
) -> str:
    x = e.name(a)
    centered = e.add("Sub", [x, e.reduce("ReduceMean", x, axes, True)])
    var = e.reduce("ReduceMean", e.add("Mul", [centered, centered]), axes, keepdims)
    if not correction:
        return var
    n = math.prod(a.dims()[i] for i in axes)
    if not isinstance(n, Dim):
        return e.add("Mul", [var, e.operand(n / (n - correction), a.dtype)])
    count = e.operand(n, a.dtype)
    return e.add("Div", [e.add("Mul", [var, count]), e.add("Sub", [count, e.operand(correction, a.dtype)])])


@lowers("logsumexp", since=1)
def _logsumexp(e: Emitter, out: list[Value], a: Value, axes: Sequence[int], keepdims: bool) -> str:
    return e.reduce("ReduceLogSumExp", e.name(a), axes, keepdims)


def _arg(op_type: str) -> Callable[..., str]:
    def emit(e: Emitter, out: list[Value], a: Value, axis: int, keepdims: bool) -> str:
        return e.add(op_type, [e.name(a)], axis=axis, keepdims=int(keepdims))

    return emit


TABLE["argmax"], TABLE["argmin"] = Lowering(_arg("ArgMax"), 1), Lowering(_arg("ArgMin"), 1)


@lowers("cumsum", since=11)
def _cumsum(e: Emitter, out: list[Value], a: Value, axis: int) -> str:
    return e.add("CumSum", [e.name(a), e.const(np.int64(axis))])


@lowers("cumprod", since=26)
def _cumprod(e: Emitter, out: list[Value], a: Value, axis: int) -> str:
    return e.add("CumProd", [e.name(a), e.const(np.int64(axis))])


@lowers("det", since=11)
def _det(e: Emitter, out: list[Value], a: Value) -> str:
    return e.add("Det", [e.name(a)])


@lowers("matmul", since=1)
def _matmul(e: Emitter, out: list[Value], a: Value, b: Value) -> str:
    return e.add("MatMul", [e.name(a), e.name(b)])


# ====================================================================== shape
@lowers("reshape", since=5)
def _reshape(e: Emitter, out: list[Value], a: Value, shape: Sequence[int]) -> str:
    return e.add("Reshape", [e.name(a), e.shape(shape)])


@lowers("permute", since=1)
def _permute(e: Emitter, out: list[Value], a: Value, axes: Sequence[int]) -> str:
    return e.add("Transpose", [e.name(a)], perm=list(axes))


@lowers("broadcast_to", since=8)
def _broadcast_to(e: Emitter, out: list[Value], a: Value, shape: Sequence[int]) -> str:
    return e.add("Expand", [e.name(a), e.shape(shape)])


@lowers("squeeze", since=1)
def _squeeze(e: Emitter, out: list[Value], a: Value, axes: Sequence[int]) -> str:
    return e.squeeze(e.name(a), axes) if axes else e.add("Identity", [e.name(a)])


@lowers("expand_dims", since=1)
def _expand_dims(e: Emitter, out: list[Value], a: Value, axes: Sequence[int]) -> str:
    return e.unsqueeze(e.name(a), axes) if axes else e.add("Identity", [e.name(a)])


@lowers("concat", since=4)
def _concat(e: Emitter, out: list[Value], arrays: Sequence[Value], axis: int) -> str:
    return e.add("Concat", [e.name(a) for a in arrays], axis=axis)


@lowers("stack", since=4)
def _stack(e: Emitter, out: list[Value], arrays: Sequence[Value], axis: int) -> str:
    return e.add("Concat", [e.unsqueeze(e.name(a), (axis,)) for a in arrays], axis=axis)


@lowers("flip", since=10)
def _flip(e: Emitter, out: list[Value], a: Value, axes: Sequence[int]) -> str:
    n = len(axes)
    inputs = [e.name(a), e.ints([-1] * n), e.ints([INT64_MIN] * n), e.ints(axes), e.ints([-1] * n)]
    return e.add("Slice", inputs)


@lowers("pad", since=11)
def _pad(
    e: Emitter, out: list[Value], a: Value, widths: Sequence[tuple[int, int]], mode: str, value: float
) -> str:
    pads = e.shape([lo for lo, _ in widths] + [hi for _, hi in widths])
    onnx_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    inputs = [e.name(a), pads] + ([e.operand(value, a.dtype)] if mode == "constant" else [])
    return e.add("Pad", inputs, mode=onnx_mode)


@lowers("tile", since=6)
def _tile(e: Emitter, out: list[Value], a: Value, reps: Sequence[int]) -> str:
    return e.add("Tile", [e.name(a), e.shape(reps)])


@lowers("repeat", since=8)
def _repeat(e: Emitter, out: list[Value], a: Value, repeats: Any, axis: int) -> str:
    dims = list(a.dims())
    if isinstance(repeats, Value):
        if repeats.live or isinstance(dims[axis], Dim):
            raise ExportError(f"{e._doc}: repeat by a computed count has a data-dependent shape in ONNX")
        index = np.repeat(np.arange(dims[axis]), repeats.value)
        return e.add("Gather", [e.name(a), e.const(index.astype(np.int64))], axis=axis)
    spread = e.unsqueeze(e.name(a), (axis + 1,))
    wide = e.add("Expand", [spread, e.shape(dims[: axis + 1] + [repeats] + dims[axis + 1 :])])
    return e.add("Reshape", [wide, e.shape(dims[:axis] + [dims[axis] * repeats] + dims[axis + 1 :])])


# ====================================================================== indexing
def _full_slice(k: slice, n: int) -> bool:
    step = 1 if k.step is None else k.step
    if step != 1 or (k.start not in (None, 0) or isinstance(k.start, Dim)):
        return False
    stop = k.stop
    if stop is None:
        return True
    if isinstance(stop, Dim) or isinstance(n, Dim):
        return isinstance(stop, Dim) and isinstance(n, Dim) and (int(stop), stop.shadow) == (int(n), n.shadow)
    return stop >= n


@lowers("getitem", since=11)
def _getitem(e: Emitter, out: list[Value], a: Value, key: tuple) -> str:
    """NumPy basic indexing (slices, ints, None, Ellipsis) and one integer index array, as
    Slice, Gather and Unsqueeze; a constant boolean mask becomes its index array."""
    key = tuple(_mask_index(e, k) for k in key)
    spans = sum(k is not None and k is not Ellipsis for k in key)
    expanded: list[Any] = []
    for k in key:
        expanded += [slice(None)] * (a.value.ndim - spans) if k is Ellipsis else [k]
    expanded += [slice(None)] * (a.value.ndim - sum(k is not None for k in expanded))
    advanced = [
        i
        for i, k in enumerate(expanded)
        if isinstance(k, Value) or (isinstance(k, int) and not isinstance(k, bool))
    ]
    arrays = sum(isinstance(k, Value) for k in expanded)
    if arrays > 1 or (arrays and advanced != list(range(advanced[0], advanced[0] + len(advanced)))):
        raise ExportError(
            f"{e._doc}: indexing with several index arrays (or an index array and ints apart from it) is "
            "not supported by the ONNX exporter; index one axis at a time (ag.take)"
        )
    x, ax, dims = e.name(a), 0, list(a.dims())
    for k in expanded:
        if k is None:
            x = e.unsqueeze(x, (ax,))
            ax += 1
        elif isinstance(k, Value):
            x = e.add("Gather", [x, e.name(k)], axis=ax)
            ax += k.value.ndim
            dims.pop(0)
        elif isinstance(k, slice):
            n = dims.pop(0)
            if not _full_slice(k, n):
                x = _slice(e, x, k, ax)
            ax += 1
        else:
            dims.pop(0)
            x = e.add("Gather", [x, e.operand(k, np.int64)], axis=ax)
    return x


def _mask_index(e: Emitter, k: Any) -> Any:
    if not (isinstance(k, Value) and k.dtype == np.bool_):
        return k
    if k.live or k.value.ndim != 1:
        raise ExportError(
            f"{e._doc}: boolean-mask indexing by a computed mask has a data-dependent shape, which "
            "the ONNX exporter does not support; use ag.where(mask, x, 0) instead"
        )
    index = np.nonzero(k.value)[0].astype(np.int64)
    return Value(index, index, "const")


def _slice(e: Emitter, x: str, k: slice, axis: int) -> str:
    step = 1 if k.step is None else k.step
    start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
    stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
    return e.add("Slice", [x, e.shape([start]), e.shape([stop]), e.ints([axis]), e.shape([step])])


@lowers("take", since=11)
def _take(e: Emitter, out: list[Value], a: Value, indices: Value, axis: int) -> str:
    return e.add("Gather", [e.name(a), e.name(indices)], axis=axis)


@lowers("take_along_axis", since=11)
def _take_along_axis(e: Emitter, out: list[Value], a: Value, indices: Value, axis: int) -> str:
    want = list(out[0].dims())
    x, idx = e.name(a), e.name(indices)
    if indices.value.shape != out[0].value.shape:
        idx = e.add("Expand", [idx, e.shape(want)])
    data = want[:axis] + [a.dims()[axis]] + want[axis + 1 :]
    if a.value.shape != tuple(int(d) for d in data):
        x = e.add("Expand", [x, e.shape(data)])
    return e.add("GatherElements", [x, idx], axis=axis)


@lowers("scatter_add", since=16)
def _scatter_add(e: Emitter, out: list[Value], a: Value, axis: int, indices: Value, src: Value) -> str:
    return e.add("ScatterElements", [e.name(a), e.name(indices), e.name(src)], axis=axis, reduction="add")


def _topk(e: Emitter, a: Value, k: int, axis: int, largest: bool) -> list[str]:
    return e.add("TopK", [e.name(a), e.dim(k)], outputs=2, axis=axis, largest=int(largest), sorted=1)


@lowers("sort", since=11)
def _sort(e: Emitter, out: list[Value], a: Value, axis: int, descending: bool, stable: bool) -> str:
    return _topk(e, a, a.dims()[axis], axis, descending)[0]


@lowers("argsort", since=11)
def _argsort(e: Emitter, out: list[Value], a: Value, axis: int, descending: bool, stable: bool) -> str:
    return _topk(e, a, a.dims()[axis], axis, descending)[1]


@lowers("topk", since=11)
def _topk_op(e: Emitter, out: list[Value], a: Value, k: int, axis: int, largest: bool) -> list[str]:
    return _topk(e, a, k, axis, largest)


# ====================================================================== convolution and pooling
def _conv_attrs(w: Value, stride: Sequence[int], padding: Sequence[tuple[int, int]], dilation: Sequence[int],
                groups: int) -> dict[str, Any]:  # fmt: skip
    return {
        "kernel_shape": list(w.value.shape[2:]),
        "strides": list(stride),
        "pads": [lo for lo, _ in padding] + [hi for _, hi in padding],
        "dilations": list(dilation),
        "group": groups,
    }


@lowers("conv", since=1)
def _conv(e: Emitter, out: list[Value], x: Value, w: Value, stride: Any, padding: Any, dilation: Any,
          groups: int) -> str:  # fmt: skip
    return e.add("Conv", [e.name(x), e.name(w)], **_conv_attrs(w, stride, padding, dilation, groups))


@lowers("conv_bias", since=1)
def _conv_bias(e: Emitter, out: list[Value], x: Value, w: Value, b: Value, stride: Any, padding: Any,
               dilation: Any, groups: int) -> str:  # fmt: skip
    attrs = _conv_attrs(w, stride, padding, dilation, groups)
    return e.add("Conv", [e.name(x), e.name(w), e.name(b)], **attrs)


@lowers("conv_input_grad", since=1)
def _conv_transpose(e: Emitter, out: list[Value], gy: Value, w: Value, input_shape: Any, stride: Any,
                    padding: Any, dilation: Any, groups: int) -> str:  # fmt: skip
    """The gradient of conv for its input is the transposed convolution: output padding makes up
    the rows a strided conv dropped."""
    attrs = _conv_attrs(w, stride, padding, dilation, groups)
    extra = []
    for i, (n_in, n_out) in enumerate(zip(gy.value.shape[2:], out[0].value.shape[2:])):
        k, s, d = w.value.shape[2 + i], stride[i], dilation[i]
        lo, hi = padding[i]
        extra.append(n_out - ((n_in - 1) * s - lo - hi + d * (k - 1) + 1))
    return e.add(
        "ConvTranspose", [e.name(gy), e.name(w)], output_padding=extra if any(extra) else None, **attrs
    )


def _ceil_mode(x: Value, y: Value, kernel: Any, stride: Any, padding: Any, dilation: Any) -> int:
    """1 only where ceil_mode changes the output size (ONNX's rounding rule then applies)."""
    for i, n in enumerate(x.value.shape[2:]):
        floor = (n + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
        if floor != y.value.shape[2 + i]:
            return 1
    return 0


@lowers("max_pool", since=10)
def _max_pool(e: Emitter, out: list[Value], x: Value, kernel: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool) -> list[str | None]:  # fmt: skip
    wants_indices = out[1] is not None and id(out[1]) in e.used
    attrs = {
        "kernel_shape": list(kernel), "strides": list(stride), "pads": list(padding) * 2,
        "dilations": list(dilation), "ceil_mode": _ceil_mode(x, out[0], kernel, stride, padding, dilation),
    }  # fmt: skip
    if not wants_indices:
        return [e.add("MaxPool", [e.name(x)], **attrs), None]
    values, flat = e.add("MaxPool", [e.name(x)], outputs=2, **attrs)
    spatial = math.prod(x.value.shape[2:])  # ONNX's indices run over N and C too
    return [values, e.add("Mod", [flat, e.const(np.int64(spatial))])]


@lowers("avg_pool", since=10)
def _avg_pool(e: Emitter, out: list[Value], x: Value, kernel: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool) -> str:  # fmt: skip
    ceil = _ceil_mode(x, out[0], kernel, stride, padding, (1,) * len(kernel))
    return e.add(
        "AveragePool", [e.name(x)], kernel_shape=list(kernel), strides=list(stride), pads=list(padding) * 2,
        ceil_mode=ceil, count_include_pad=int(count_include_pad),
    )  # fmt: skip


# ====================================================================== composites
@lowers("linear", since=7)
def _linear(e: Emitter, out: list[Value], x: Value, w: Value, b: Value | None) -> str:
    if x.value.ndim == 2:
        return e.add("Gemm", [e.name(x), e.name(w)] + ([e.name(b)] if b is not None else []), transB=1)
    y = e.add("MatMul", [e.name(x), e.add("Transpose", [e.name(w)], perm=[1, 0])])
    return y if b is None else e.add("Add", [y, e.name(b)])


@lowers("softmax", since=13)
def _softmax(e: Emitter, out: list[Value], a: Value, axis: int) -> str:
    return e.add("Softmax", [e.name(a)], axis=axis)


@lowers("log_softmax", since=13)
def _log_softmax(e: Emitter, out: list[Value], a: Value, axis: int) -> str:
    return e.add("LogSoftmax", [e.name(a)], axis=axis)


@lowers("gelu", since=20)
def _gelu(e: Emitter, out: list[Value], a: Value, approximate: str) -> str:
    return e.add("Gelu", [e.name(a)], approximate=approximate)


def _filled(e: Emitter, dims: Sequence[int], value: float, dtype: np.dtype) -> str:
    fill = numpy_helper.from_array(np.asarray([value], dtype=dtype), "value")
    if not any(isinstance(d, Dim) for d in dims):
        return e.const(np.full(tuple(dims), value, dtype=dtype))
    return e.add("ConstantOfShape", [e.shape(dims)], value=fill)


@lowers("layer_norm", since=17)
def _layer_norm(e: Emitter, out: list[Value], a: Value, normalized_ndim: int, weight: Value | None,
                bias: Value | None, eps: float) -> str:  # fmt: skip
    dims = a.dims()[a.value.ndim - normalized_ndim :]
    scale = e.name(weight) if weight is not None else _filled(e, dims, 1.0, a.dtype)
    inputs = [e.name(a), scale] + ([e.name(bias)] if bias is not None else [])
    return e.add("LayerNormalization", inputs, axis=-normalized_ndim, epsilon=float(eps))


@lowers("batch_norm", since=9)
def _batch_norm(e: Emitter, out: list[Value], a: Value, mean: Value, var: Value, weight: Value | None,
                bias: Value | None, eps: float) -> str:  # fmt: skip
    c = mean.value.shape
    scale = e.name(weight) if weight is not None else e.const(np.ones(c, a.dtype))
    shift = e.name(bias) if bias is not None else e.const(np.zeros(c, a.dtype))
    inputs = [e.name(a), scale, shift, e.name(mean), e.name(var)]
    return e.add("BatchNormalization", inputs, epsilon=float(eps))
