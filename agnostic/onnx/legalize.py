"""Type legalization: after lowering, run each ONNX node whose input types are refused (by its
schema at the target opset, or by ONNX Runtime's CPU kernels) in a wider type, with Casts around it.

The op-set defines its ops on more dtypes than ONNX does: `add` and `where` on bool, `negative` and
`**` on unsigned integers, `maximum` on int16; and ONNX Runtime, the runtime most exported models
meet, has CPU kernels for few ops in bfloat16. An emitter writes the natural node, and this one
pass, not each emitter, makes the graph run. It walks the nodes in order, knowing each value's
element type: graph inputs and initializers are known, and ONNX's own per-node inference gives each
node's outputs. A type variable bound to a refused type is carried in the first type of
`CARRIERS` that is accepted: the inputs bound to it are cast to the carrier, the outputs bound to
it are cast back. That is exact:
- a carrier that holds every value of the type (bool, 8- and 16-bit integers in int32; 32-bit
  integers in int64; float16 and bfloat16 in float32, rounded once on the way back, as the NumPy
  backend computes them) is exact for every op, as the cast back wraps integers as the op-set's
  integer arithmetic does, and reads a nonzero as True, which is how the op-set defines `add` (or),
  `multiply` (and), `maximum` and `minimum` on bool;
- uint64 in int64 is exact for ops that wrap modulo 2**64 or only move data (`MODULAR`), and,
  shifted by -2**63 (which maps uint64's order onto int64's), for ops that only compare
  (`ORDERING`); a division of uint64 has no exact carrier.
An emitter whose op would not be exact on a carrier writes its own form (bool `bitwise_invert` is
`Not`, not `BitwiseNot` of 0/1). A type the schema refuses with no exact carrier is an ExportError
naming the op; one only the runtime lacks stays as it is (the model is valid ONNX).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import onnx
from onnx import TensorProto, helper, shape_inference

from agnostic.onnx.dtypes import ONNX_NAMES
from agnostic.onnx.trace import ExportError

__all__ = ["legalize", "CARRIERS", "RUNTIME_GAPS", "MODULAR", "ORDERING"]

T = TensorProto
CARRIERS: dict[int, tuple[int, ...]] = {
    T.BOOL: (T.INT32, T.INT64),
    T.INT8: (T.INT32, T.INT64),
    T.INT16: (T.INT32, T.INT64),
    T.UINT8: (T.INT32, T.INT64),
    T.UINT16: (T.INT32, T.INT64),
    T.INT32: (T.INT64,),
    T.UINT32: (T.INT64,),
    T.UINT64: (T.INT64,),
    T.FLOAT16: (T.FLOAT, T.DOUBLE),
    T.BFLOAT16: (T.FLOAT, T.DOUBLE),
    T.FLOAT: (T.DOUBLE,),
}
"""An element type -> the wider types that can carry it through an op, most widely implemented
first."""

MODULAR = frozenset(
    "Add Sub Mul Neg Pow ReduceSum ReduceProd CumSum Where Identity Concat Expand Tile Reshape Transpose "
    "Gather GatherElements ScatterElements Slice Pad Squeeze Unsqueeze".split()
)
"""Ops exact on a same-width signed carrier: they wrap modulo 2**bits or only move data."""

ORDERING = frozenset(
    "Equal Less Greater LessOrEqual GreaterOrEqual Max Min Clip TopK ArgMax ArgMin ReduceMax ReduceMin".split()
)
"""Ops that only compare: uint64 runs them in int64 shifted by -2**63, which keeps the order."""

_BF16 = frozenset({T.BFLOAT16})
_EXOTIC = frozenset({T.BFLOAT16, T.DOUBLE})
RUNTIME_GAPS: dict[tuple[str, str], frozenset[int]] = {
    **{(op, "T"): _BF16 for op in (
        "Abs Ceil Cos Exp Floor Log Neg Reciprocal Round Sigmoid Sin Sqrt Tanh Softmax LogSoftmax "
        "Add Sub Mul Div Mod Pow Equal Less Greater LessOrEqual GreaterOrEqual MatMul Expand Tile "
        "MaxPool".split()
    )},
    **{(op, "T"): _EXOTIC for op in "Acos Acosh Asin Asinh Atan Atanh Cosh Erf Sinh Tan Conv Gelu Det".split()},
    **{(op, "T"): frozenset({T.UINT32, T.UINT64, T.BFLOAT16}) for op in (
        "ReduceSum ReduceProd ReduceMax ReduceMin ReduceMean ReduceLogSumExp CumSum".split()
    )},
    ("Relu", "T"): frozenset({T.INT16, T.INT64, T.BFLOAT16}),
    ("Max", "T"): frozenset({T.INT16, T.UINT16, T.BFLOAT16}),
    ("Min", "T"): frozenset({T.INT16, T.UINT16, T.BFLOAT16}),
    ("Clip", "T"): frozenset({T.INT16, T.UINT16, T.BFLOAT16}),
    ("Pad", "T"): frozenset({T.INT16, T.UINT16}),
    ("Where", "T"): frozenset({T.BOOL, T.INT16, T.UINT16, T.UINT64, T.BFLOAT16}),
    ("TopK", "T"): frozenset({T.UINT16, T.UINT32, T.UINT64}),
    ("ArgMax", "T"): frozenset({T.INT16, T.UINT16, T.UINT32, T.UINT64, T.BFLOAT16}),
    ("ArgMin", "T"): frozenset({T.INT16, T.UINT16, T.UINT32, T.UINT64, T.BFLOAT16}),
    ("Gemm", "T"): frozenset({T.INT32, T.INT64, T.UINT32, T.UINT64, T.BFLOAT16}),
    ("Pow", "T1"): frozenset({T.INT8, T.INT16, T.UINT8, T.UINT16, T.UINT32, T.UINT64, T.BFLOAT16}),
}  # fmt: skip
"""(op, type variable) -> the types ONNX's schema allows there but ONNX Runtime's CPU kernels do
not implement (onnxruntime 1.32, opset 23; tests/test_onnx_legalize.py checks the table against the
installed onnxruntime)."""

_TYPE_STRS = {
    T.FLOAT: "tensor(float)", T.DOUBLE: "tensor(double)", T.FLOAT16: "tensor(float16)",
    T.BFLOAT16: "tensor(bfloat16)", T.BOOL: "tensor(bool)", T.INT8: "tensor(int8)",
    T.INT16: "tensor(int16)", T.INT32: "tensor(int32)", T.INT64: "tensor(int64)",
    T.UINT8: "tensor(uint8)", T.UINT16: "tensor(uint16)", T.UINT32: "tensor(uint32)",
    T.UINT64: "tensor(uint64)", T.COMPLEX64: "tensor(complex64)", T.COMPLEX128: "tensor(complex128)",
}  # fmt: skip
"""ONNX element type -> the type string schemas list."""


def legalize(
    nodes: Iterable[onnx.NodeProto], types: dict[str, int], opset: int, fresh: Callable[[str], str]
) -> list[onnx.NodeProto]:
    """`nodes`, with each node whose input types are refused run on carriers between Casts.

    `types` maps the graph's inputs and initializers to their element types (it is extended with
    every node's outputs); `fresh(hint)` makes a new value name."""
    out: list[onnx.NodeProto] = []
    for node in nodes:
        schema = onnx.defs.get_schema(node.op_type, opset)
        bound = _bindings(schema, node, types)
        carried = {}  # type variable -> (its type, its carrier)
        for var, positions in bound.items():
            elem = types[node.input[positions[0]]]
            carrier = _carrier(schema, node, var, elem, opset)
            if carrier is not None:
                carried[var] = (elem, carrier)
        if not carried:
            _infer(schema, node, types, opset)
            out.append(node)
            continue
        wide = onnx.NodeProto()
        wide.CopyFrom(node)
        bias = None  # uint64 in an ordering op: the carrier is shifted by -2**63
        if any(elem == T.UINT64 for elem, _ in carried.values()) and node.op_type in ORDERING:
            bias = fresh("uint64_bias")
            out.append(_constant(bias, helper.make_tensor(bias, T.INT64, [], [-(2**63)])))
        for var, (elem, carrier) in carried.items():
            for i in bound[var]:
                name = fresh("Cast")
                out.append(helper.make_node("Cast", [wide.input[i]], [name], name=name, to=carrier))
                if bias is not None and elem == T.UINT64:
                    name, cast = fresh("Add"), name
                    out.append(helper.make_node("Add", [cast, bias], [name], name=name))
                types[name] = carrier
                wide.input[i] = name
        back = []
        for j, param in enumerate(schema.outputs[: len(wide.output)]):
            if param.type_str in carried and wide.output[j]:
                name = source = fresh(f"{node.op_type}_carried")
                elem = carried[param.type_str][0]
                if bias is not None and elem == T.UINT64:
                    source = fresh("Add")
                    back.append(helper.make_node("Add", [name, bias], [source], name=source))
                back.append(helper.make_node("Cast", [source], [wide.output[j]], name=fresh("Cast"), to=elem))
                types[wide.output[j]] = elem
                wide.output[j] = name
        _infer(schema, wide, types, opset)
        out.append(wide)
        out.extend(back)
    return out


def _carrier(schema: onnx.defs.OpSchema, node: onnx.NodeProto, var: str, elem: int, opset: int) -> int | None:
    """The carrier of type variable `var`, bound to `elem` in `node`: None when `elem` is accepted
    (or only the runtime refuses it and nothing exact can carry it)."""
    allowed = next(set(c.allowed_type_strs) for c in schema.type_constraints if c.type_param_str == var)
    gaps = RUNTIME_GAPS.get((node.op_type, var), frozenset())
    legal = _TYPE_STRS.get(elem) in allowed
    if legal and elem not in gaps:
        return None
    for c in CARRIERS.get(elem, ()):
        exact = elem != T.UINT64 or node.op_type in MODULAR or node.op_type in ORDERING
        if exact and _TYPE_STRS[c] in allowed and c not in gaps:
            return c
    if legal:
        return None
    raise ExportError(
        f"{node.doc_string or node.op_type}: ONNX {node.op_type} at opset {opset} takes no "
        f"{ONNX_NAMES.get(elem, elem)} input, and no wider type carries it exactly"
    )


def _constant(name: str, value: onnx.TensorProto) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=value)


def _bindings(
    schema: onnx.defs.OpSchema, node: onnx.NodeProto, types: dict[str, int]
) -> dict[str, list[int]]:
    """Each type variable of `node`'s schema -> the input positions bound to it (a variadic last
    formal input binds every position from its own on)."""
    formal = list(schema.inputs)
    variables = {c.type_param_str for c in schema.type_constraints}
    out: dict[str, list[int]] = {}
    for i, name in enumerate(node.input):
        if not name or name not in types or not formal:
            continue
        param = formal[min(i, len(formal) - 1)]
        if param.type_str in variables:
            out.setdefault(param.type_str, []).append(i)
    return out


def _infer(schema: onnx.defs.OpSchema, node: onnx.NodeProto, types: dict[str, int], opset: int) -> None:
    """Record the element types of `node`'s outputs (ONNX's inference; an output it cannot type
    stays unknown, and the nodes reading it are left as they are)."""
    if not all(not x or x in types for x in node.input):
        return
    inputs = {x: helper.make_tensor_type_proto(types[x], None) for x in node.input if x}
    try:
        found = shape_inference.infer_node_outputs(
            schema, node, inputs, opset_imports=[helper.make_opsetid("", opset)]
        )
    except Exception:  # an op whose inference needs values (shapes) it is not given
        return
    for name, proto in found.items():
        if proto.HasField("tensor_type") and proto.tensor_type.elem_type:
            types.setdefault(name, proto.tensor_type.elem_type)
