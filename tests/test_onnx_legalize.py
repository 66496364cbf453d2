"""ONNX export of ops on every dtype agnostic has: each model passes onnx.checker (full check) and
ONNX Runtime runs it to agnostic's values, through `agnostic.onnx.legalize` (Casts to a carrier
where ONNX's schema or ONNX Runtime's CPU kernels refuse a type); the table of ONNX Runtime's gaps
is checked against the installed onnxruntime; unsigned and complex types go both ways."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper  # noqa: E402

import agnostic as ag  # noqa: E402
from agnostic import nn  # noqa: E402
from agnostic.onnx import ExportError  # noqa: E402
from agnostic.onnx.legalize import RUNTIME_GAPS, legalize  # noqa: E402

ort.set_default_logger_severity(4)
RNG = np.random.default_rng(0)
BIG = 2**63 + 5  # a uint64 past int64's range: an int64 carrier must keep its order
DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "bool": (RNG.random((3, 4)) > 0.5, RNG.random((3, 4)) > 0.5),
    "int8": (RNG.integers(-5, 6, (3, 4)).astype(np.int8), RNG.integers(1, 6, (3, 4)).astype(np.int8)),
    "int16": (RNG.integers(-5, 6, (3, 4)).astype(np.int16), RNG.integers(1, 6, (3, 4)).astype(np.int16)),
    "int32": (RNG.integers(-5, 6, (3, 4)).astype(np.int32), RNG.integers(1, 6, (3, 4)).astype(np.int32)),
    "int64": (RNG.integers(-5, 6, (3, 4)), RNG.integers(1, 6, (3, 4))),
    "uint8": (RNG.integers(0, 9, (3, 4)).astype(np.uint8), RNG.integers(1, 6, (3, 4)).astype(np.uint8)),
    "uint16": (RNG.integers(0, 9, (3, 4)).astype(np.uint16), RNG.integers(1, 6, (3, 4)).astype(np.uint16)),
    "uint32": (RNG.integers(0, 9, (3, 4)).astype(np.uint32), RNG.integers(1, 6, (3, 4)).astype(np.uint32)),
    "uint64": (np.array([[0, 1, BIG, 7], [BIG - 9, 3, 2, 8], [5, BIG + 1, 4, 6]], np.uint64), RNG.integers(1, 6, (3, 4)).astype(np.uint64)),
    "float16": (RNG.normal(size=(3, 4)).astype(np.float16), RNG.uniform(0.5, 2, (3, 4)).astype(np.float16)),
    "bfloat16": (RNG.normal(size=(3, 4)).astype(np.float32), RNG.uniform(0.5, 2, (3, 4)).astype(np.float32)),
    "float32": (RNG.normal(size=(3, 4)).astype(np.float32), RNG.uniform(0.5, 2, (3, 4)).astype(np.float32)),
    "float64": (RNG.normal(size=(3, 4)), RNG.uniform(0.5, 2, (3, 4))),
}  # fmt: skip
"""Two operands per dtype; bfloat16's are float32 (ONNX Runtime's Python API takes no bfloat16
arrays), cast to bfloat16 inside the model."""

OPS: dict[str, Callable[[ag.Tensor, ag.Tensor], ag.Tensor]] = {
    **{name: getattr(ag, name) for name in (
        "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "pow", "maximum",
        "minimum", "equal", "not_equal", "less", "greater", "less_equal", "greater_equal",
        "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
        "bitwise_left_shift", "bitwise_right_shift", "atan2",
    )},
    **{name: (lambda x, y, fn=getattr(ag, name): fn(x)) for name in (
        "negative", "abs", "sign", "square", "logical_not", "bitwise_invert", "isnan", "isinf",
        "isfinite", "floor", "ceil", "round", "trunc", "exp", "sqrt", "sigmoid", "tanh", "erf", "atan",
        "sum", "prod", "max", "min", "any", "all", "mean",
    )},
    "where": lambda x, y: ag.where(x > y, x, y),
    "where-bool": lambda x, y: ag.where(x > y, x > 0, y > 1),
    "clip": lambda x, y: ag.clip(x, 1, 4),
    "topk": lambda x, y: ag.topk(x, 2)[0],
    "sort": lambda x, y: ag.sort(x, axis=-1),
    "concat": lambda x, y: ag.concat([x, y]),
    "cumsum": lambda x, y: ag.cumulative_sum(x, axis=1),
    "amax-axis": lambda x, y: ag.max(x, axis=0),
    "argmax": lambda x, y: ag.argmax(x, axis=1),
    "argmin": lambda x, y: ag.argmin(x, axis=0),
    "matmul": lambda x, y: ag.matmul(x, ag.matrix_transpose(y)),
    "tile": lambda x, y: ag.tile(x, (2, 1)),
    "expand": lambda x, y: ag.broadcast_to(x[None], (2, 3, 4)),
    "softmax": lambda x, y: ag.softmax(x, axis=-1),
    "gelu": lambda x, y: ag.gelu(x),
    "isclose": lambda x, y: ag.isclose(x, y, atol=1.0),
}  # fmt: skip

RUNTIME_LACKS = {
    ("float64", "erf"),
    ("float64", "atan"),
    ("float64", "atan2"),
    ("float64", "gelu"),
    ("uint64", "pow"),
    ("uint64", "sum"),
}
"""Where ONNX Runtime, not the file, is wrong. It has no float64 Erf or Atan kernel, and no wider
type carries float64: the file is valid ONNX (checked), and ONNX Runtime refuses it at load. Its
int64 Pow and ReduceSum go through double: past 2**53 they lose the low bits, on int64 inputs alike
(uint64 runs them in int64, exact modulo 2**64 in ONNX's definition)."""


class _Op(nn.Module):
    def __init__(self, fn: Callable[[ag.Tensor, ag.Tensor], ag.Tensor], dtype: str) -> None:
        super().__init__()
        self.fn, self.dtype = fn, dtype

    def forward(self, x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        if self.dtype != "bfloat16":
            return self.fn(x, y)
        out = self.fn(x.astype(ag.bfloat16), y.astype(ag.bfloat16))
        return out.astype(ag.float32) if out.dtype == ag.bfloat16 else out


@pytest.mark.parametrize("dtype", sorted(DATA))
def test_every_op_exports_and_runs_on_every_dtype(dtype: str) -> None:
    """Every op of OPS that agnostic computes on `dtype` exports to a valid file that ONNX Runtime
    runs to agnostic's result (same dtype; integers and bool exactly)."""
    a, b = DATA[dtype]
    wrong, ran = [], 0
    for name, fn in OPS.items():
        model = _Op(fn, dtype)
        try:
            want = model(ag.tensor(a), ag.tensor(b)).numpy()
        except (TypeError, ValueError):
            continue  # agnostic refuses the op on this dtype: nothing to export
        buf = io.BytesIO()
        proto = ag.onnx.export(
            model, (ag.tensor(a), ag.tensor(b)), buf, input_names=["x", "y"], dynamic_axes={"x": {}, "y": {}}
        )
        onnx.checker.check_model(proto, full_check=True)
        try:
            session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # recorded, and compared with the known gaps below
            wrong.append((name, f"ONNX Runtime refuses it: {str(exc)[:160]}"))
            continue
        got = session.run(None, {"x": a, "y": b})[0]
        ran += 1
        if got.dtype != want.dtype:
            wrong.append((name, f"dtype {got.dtype}, agnostic gives {want.dtype}"))
        elif want.dtype.kind in "biu" and not np.array_equal(got, want):
            wrong.append((name, f"{got.ravel()[:6]} != {want.ravel()[:6]}"))
        elif want.dtype.kind == "f":
            tol = 1e-2 if dtype in ("float16", "bfloat16") else 1e-5
            if not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
                wrong.append((name, f"{got.ravel()[:4]} != {want.ravel()[:4]}"))
    assert {(dtype, name) for name, _ in wrong} <= RUNTIME_LACKS, wrong
    assert ran >= 20, ran


def test_a_model_mixing_masks_and_unsigned_arithmetic_runs() -> None:
    """What a user writes: two bool masks combined with & and ~, a where on them, uint8 pixel
    arithmetic; before legalization the file was valid for onnx.checker's type-free view only and
    ONNX Runtime refused it."""

    class Masked(nn.Module):
        def forward(self, pixels: ag.Tensor, keep: ag.Tensor) -> ag.Tensor:
            causal = ag.tril(ag.ones((4, 4), dtype=ag.bool))
            mask = causal & keep[:, None] & ~(pixels == 0)
            inverted = (255 - pixels) ** 1 + pixels * 0  # uint8 wraps as agnostic's arithmetic does
            return ag.where(mask, inverted, ag.zeros_like(inverted)).astype(ag.float32)

    pixels = RNG.integers(0, 256, (4, 4)).astype(np.uint8)
    keep = np.array([True, False, True, True])
    want = Masked()(ag.tensor(pixels), ag.tensor(keep)).numpy()
    buf = io.BytesIO()
    ag.onnx.export(
        Masked(),
        (ag.tensor(pixels), ag.tensor(keep)),
        buf,
        input_names=["p", "k"],
        dynamic_axes={"p": {}, "k": {}},
    )
    got = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"]).run(
        None, {"p": pixels, "k": keep}
    )[0]
    np.testing.assert_array_equal(got, want)


def test_a_legal_graph_gets_no_casts() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    proto = ag.onnx.export(model, ag.zeros((1, 4)), io.BytesIO())
    assert [n.op_type for n in proto.graph.node if n.op_type == "Cast"] == []


def test_a_type_no_carrier_can_hold_is_an_error_naming_the_op() -> None:
    node = helper.make_node("BitwiseAnd", ["a", "b"], ["c"], name="and")
    node.doc_string = "bitwise_and at model.py:12"
    with pytest.raises(
        ExportError, match=r"bitwise_and at model.py:12: ONNX BitwiseAnd at opset 23 takes no FLOAT input"
    ):
        legalize([node], {"a": T.FLOAT, "b": T.FLOAT}, 23, lambda hint: hint + "_1")


def test_a_carried_node_reads_casts_and_its_outputs_are_cast_back() -> None:
    names = iter(range(100))
    nodes = legalize(
        [helper.make_node("Max", ["a", "b"], ["c"]), helper.make_node("Not", ["c"], ["d"])],
        {"a": T.BOOL, "b": T.BOOL},
        23,
        lambda hint: f"{hint}_{next(names)}",
    )
    assert [n.op_type for n in nodes] == ["Cast", "Cast", "Max", "Cast", "Not"]
    assert [a.i for a in nodes[0].attribute] == [T.INT32] and [a.i for a in nodes[3].attribute] == [T.BOOL]
    assert nodes[3].output[0] == "c" and nodes[4].input[0] == "c"


# ---------------------------------------------------------------------- the runtime gaps table
def _single(op: str, elem: int, var: str) -> onnx.ModelProto | None:
    """A one-node model of `op` whose inputs of type variable `var` are `elem`; other inputs are
    what the op needs (int64 axes, k, pads, repeats; a bool condition; a float32 base for Pow)."""
    schema = onnx.defs.get_schema(op, 23)
    ints = {"axes": [1], "axis": 1, "k": [1], "repeats": [1, 2], "shape": [2, 2], "pads": [0, 1, 0, 1]}
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    shape = [1, 1, 2, 2] if op in ("MaxPool", "Conv") else [2, 2]
    inputs, infos, inits = [], [], []
    for formal in schema.inputs:
        name, key = formal.name, formal.name.lower()
        needed = formal.option != optional or op == "Clip" or (key == "axes" and op.startswith("Reduce"))
        if not needed:
            continue
        if key in ints:
            value = ints[key]
            dims = [] if isinstance(value, int) else [len(value)]
            inits.append(
                helper.make_tensor(name, T.INT64, dims, [value] if isinstance(value, int) else value)
            )
        else:
            t = T.BOOL if key == "condition" else elem if formal.type_str == var else T.FLOAT
            dims = [1, 1, 1, 1] if name == "W" else [] if op == "Clip" and name != "input" else shape
            infos.append(helper.make_tensor_value_info(name, t, dims))
        inputs.append(name)
    outputs = [o.name for o in schema.outputs if o.option != optional]
    node = helper.make_node(op, inputs, outputs, **({"kernel_shape": [1, 1]} if op == "MaxPool" else {}))
    types = {i.name: i.type for i in infos} | {
        i.name: helper.make_tensor_type_proto(T.INT64, None) for i in inits
    }
    try:
        found = onnx.shape_inference.infer_node_outputs(schema, node, types)
    except Exception:  # the schema refuses this type: not a runtime gap
        return None
    outs = [helper.make_value_info(o, found[o]) for o in outputs]
    model = helper.make_model(helper.make_graph([node], "g", infos, outs, initializer=inits))
    model.opset_import[0].version, model.ir_version = 23, 10
    return model


def _runs(model: onnx.ModelProto) -> bool:
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # NOT_IMPLEMENTED: no kernel for the type
        return False
    return True


@pytest.mark.parametrize(("op", "var"), sorted(RUNTIME_GAPS), ids=lambda v: str(v))
def test_the_runtime_gaps_table_matches_the_installed_onnxruntime(op: str, var: str) -> None:
    """Each listed type is still refused by ONNX Runtime (else the entry costs a needless Cast), and
    the types the schema allows beside them, common ones at least, still run."""
    for elem in RUNTIME_GAPS[(op, var)]:
        model = _single(op, elem, var)
        assert model is not None, (op, var, elem, "the schema refuses it: not a runtime gap")
        assert not _runs(model), (
            f"onnxruntime {ort.__version__} now runs {op} on {T.DataType.Name(elem)}: drop it from RUNTIME_GAPS"
        )
    model = _single(op, T.FLOAT, var)
    assert model is not None and _runs(model), (op, "float32 should run")


# ---------------------------------------------------------------------- unsigned and complex dtypes
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_unsigned_models_round_trip_through_onnx(dtype: str) -> None:
    a, b = DATA[dtype] if dtype != "uint64" else (DATA["uint64"][0] % 1000, DATA["uint64"][1])
    model = _Op(lambda x, y: (x * y + x) // y, dtype)
    want = model(ag.tensor(a), ag.tensor(b)).numpy()
    buf = io.BytesIO()
    ag.onnx.export(model, (ag.tensor(a), ag.tensor(b)), buf, input_names=["x", "y"])
    loaded = ag.onnx.load(buf.getvalue())
    got = loaded(ag.tensor(a), ag.tensor(b))
    assert got.dtype == getattr(ag, dtype)
    np.testing.assert_array_equal(got.numpy(), want)


# ---------------------------------------------------------------------- lowerings with edge cases
def _run(model: nn.Module, *arrays: np.ndarray, opset: int | None = None) -> np.ndarray:
    buf = io.BytesIO()
    names = [f"in{i}" for i in range(len(arrays))]
    proto = ag.onnx.export(
        model,
        tuple(ag.tensor(a) for a in arrays),
        buf,
        opset=opset,
        input_names=names,
        dynamic_axes={n: {} for n in names},
    )
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, arrays)))[0]


class _Fn(nn.Module):
    def __init__(self, fn: Callable[..., ag.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: ag.Tensor) -> ag.Tensor:
        return self.fn(*xs)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_shifts_match_agnostic_for_every_count(dtype: str) -> None:
    """Counts in range, at the width, past it and negative: 0 for <<, the sign fill for >>, as
    every backend of agnostic gives; the extreme values of the type shift too."""
    info = np.iinfo(dtype)
    bits = info.bits
    values = np.array([info.min, info.min + 1, -7 if info.min else 7, 0, 1, 5, info.max - 1, info.max], dtype)
    counts = [0, 1, 3, bits - 1, bits, bits + 5, 200 % (info.max + 1)] + ([-1, -64] if info.min else [])
    x = np.repeat(values, len(counts))
    k = np.tile(np.array(counts, dtype=dtype), len(values))
    for fn in (ag.bitwise_left_shift, ag.bitwise_right_shift):
        want = fn(ag.tensor(x), ag.tensor(k)).numpy()
        np.testing.assert_array_equal(_run(_Fn(fn), x, k), want, err_msg=fn.__name__)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_atan2_matches_on_signed_zeros_infinities_and_nan(dtype: str) -> None:
    special = np.array([0.0, -0.0, 1.0, -1.0, 1e-30, -2.5, np.inf, -np.inf, np.nan], dtype)
    y, x = (a.ravel() for a in np.meshgrid(special, special))
    want = ag.atan2(ag.tensor(y), ag.tensor(x)).numpy()
    got = _run(_Fn(ag.atan2), y, x)
    np.testing.assert_allclose(got, want, rtol=1e-3 if dtype == "float16" else 1e-6, atol=0)
    numbers = ~np.isnan(want)
    assert np.array_equal(np.signbit(got)[numbers], np.signbit(want)[numbers]), "the sign of a zero result"


def test_signbit_copysign_and_cumprod_export_at_opset_26() -> None:
    """signbit and copysign read the sign bit with BitCast, NaN's included; CumProd is ONNX's op:
    all three from opset 26, and below it an ExportError names the opset."""
    nan = np.float32(np.nan)
    x = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, nan, -nan], np.float32)
    y = np.array([-1.0, 0.0, -0.0, 3.0, -np.inf, nan, -nan, 1.0], np.float32)
    for fn, args in ((lambda a: ag.signbit(a), (x,)), (ag.copysign, (x, y)), (ag.copysign, (y, x))):
        want = fn(*(ag.tensor(a) for a in args)).numpy()
        got = _run(_Fn(fn), *args, opset=26)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        np.testing.assert_array_equal(got, want)
    m = RNG.uniform(0.5, 1.5, (3, 5)).astype(np.float32)
    np.testing.assert_allclose(
        _run(_Fn(lambda a: ag.cumulative_prod(a, axis=1)), m, opset=26), np.cumprod(m, axis=1), rtol=1e-6
    )
    for fn in (ag.signbit, lambda a: ag.cumulative_prod(a, axis=0)):
        with pytest.raises(ExportError, match="needs ONNX opset 26 or newer, and opset 23 was asked for"):
            ag.onnx.export(_Fn(fn), ag.tensor(x), io.BytesIO())


def test_det_exports_as_onnx_det() -> None:
    """float32 runs in ONNX Runtime; float64 gives a valid file that ONNX Runtime refuses (it has
    no float64 Det, and no type carries float64)."""
    m = RNG.normal(size=(4, 3, 3)).astype(np.float32)
    m[1] = [[1, 2, 3], [2, 4, 6], [0, 1, 0]]  # singular: 0
    np.testing.assert_allclose(
        _run(_Fn(ag.linalg.det), m), np.linalg.det(m.astype(np.float64)), rtol=1e-5, atol=1e-5
    )
    proto = ag.onnx.export(_Fn(ag.linalg.det), ag.tensor(m.astype(np.float64)), io.BytesIO())
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Det"]


def test_trunc_keeps_the_sign_of_a_zero_result() -> None:
    x = np.array([-0.5, 0.5, -0.0, 0.0, 2.7, -2.7, np.inf, -np.inf, np.nan, -1e-30], np.float32)
    got, want = _run(_Fn(ag.trunc), x), np.trunc(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got)[:8], np.signbit(want)[:8])
    np.testing.assert_array_equal(np.signbit(got)[9:], np.signbit(want)[9:])
