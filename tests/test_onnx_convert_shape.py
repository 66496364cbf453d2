"""The shape, indexing, resize and control-flow converters beyond ONNX's node suite: gradients reach
a Parameter through Pad/Slice/Gather/Resize/Scatter and through a Loop (checked against finite
differences), shape arithmetic from a dynamic input reshapes at
any batch size, Resize agrees with the reference over mode/coordinate combinations the suite does
not list, subgraphs read the enclosing graph's values, and a bad attribute value is a load-time
OnnxImportError naming the node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from backends_here import available_backends
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from agnostic.onnx import OnnxImportError, load

BACKENDS = available_backends()
IDS = [b.name for b in BACKENDS]
DBL, FLT, I64 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, inits=(), opset=19) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _const(name: str, values, dtype=np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _with_weight(model: onnx.ModelProto, w: np.ndarray) -> onnx.ModelProto:
    """`model` with its initializer W replaced by `w`."""
    inits = [numpy_helper.from_array(w, "W") if t.name == "W" else t for t in model.graph.initializer]
    graph = helper.make_graph(
        list(model.graph.node), "g", list(model.graph.input), list(model.graph.output), inits
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import))


def _check_weight_gradient(model: onnx.ModelProto, backend, w: np.ndarray, x: np.ndarray) -> None:
    """d sum(y * c) / dW from agnostic against central differences of the forward pass (agnostic's:
    ONNX's reference rounds cubic coefficients to float32, too coarse for differences)."""
    imported = load(model, backend=backend)
    y = imported(backend.tensor(x))
    c = np.random.default_rng(7).normal(size=y.shape)
    (y * backend.tensor(c)).sum().backward()

    def loss(weight: np.ndarray) -> float:
        return float(
            (load(_with_weight(model, weight), backend=backend)(backend.tensor(x)).numpy() * c).sum()
        )

    eps = 1e-6
    fd = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[i] = eps
        fd[i] = (loss(w + step) - loss(w - step)) / (2 * eps)
    np.testing.assert_allclose(imported.W.grad.numpy(), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "resize",
    [
        {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
        {"mode": "cubic", "coordinate_transformation_mode": "align_corners", "cubic_coeff_a": -0.5},
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "ceil"},
    ],
    ids=["linear", "cubic", "nearest"],
)
def test_gradients_through_pad_slice_gather_resize_match_finite_differences(backend, resize):
    r = np.random.default_rng(0)
    w, x = r.normal(size=(4, 5)), r.normal(size=(1, 1, 6, 9))
    model = _model(
        [
            helper.make_node("Pad", ["W", "pads"], ["p"], mode="reflect"),  # (7, 6)
            helper.make_node(
                "Slice", ["p", "starts", "ends", "axes", "steps"], ["s"]
            ),  # (3, 6), cols reversed
            helper.make_node("Gather", ["s", "idx"], ["g"], axis=0),  # (3, 6), row 2 twice
            helper.make_node("Reshape", ["g", "shape4"], ["g4"]),
            helper.make_node("Resize", ["g4", "", "scales"], ["z"], **resize),  # (1, 1, 6, 9)
            helper.make_node("Concat", ["z", "x"], ["y"], axis=1),
        ],
        [_info("x", DBL, [1, 1, 6, 9])],
        [_info("y", DBL, None)],
        [
            numpy_helper.from_array(w, "W"),
            _const("pads", [1, 0, 2, 1]),
            _const("starts", [1, -1]),
            _const("ends", [7, -100]),
            _const("axes", [0, 1]),
            _const("steps", [2, -1]),
            _const("idx", [2, 0, 2]),
            _const("shape4", [1, 1, 3, 6]),
            _const("scales", [1, 1, 2, 1.5], np.float32),
        ],
    )
    _check_weight_gradient(model, backend, w, x)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gradients_through_scatter_elements_and_gather_nd_match_finite_differences(backend):
    r = np.random.default_rng(1)
    w, x = r.normal(size=(3, 4)), r.normal(size=(3, 4))
    model = _model(
        [
            # x's rows scattered onto W, a repeated index multiplies twice
            helper.make_node("ScatterElements", ["W", "rows", "x"], ["s"], axis=0, reduction="mul"),
            helper.make_node("GatherND", ["s", "pick"], ["y"]),
        ],
        [_info("x", DBL, [3, 4])],
        [_info("y", DBL, None)],
        [
            numpy_helper.from_array(w, "W"),
            _const("rows", [[0, 2, 1, 0], [0, 0, 1, 2], [1, 2, 2, 0]]),
            _const("pick", [[0, 1], [2, 3], [0, 0], [2, 0], [1, 2]]),
        ],
    )
    _check_weight_gradient(model, backend, w, x)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_reshape_from_shape_gather_concat_runs_at_two_batch_sizes(backend):
    model = _model(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"]),
        ],
        [_info("x", FLT, ["N", 3, 4])],
        [_info("y", FLT, ["N", 12])],
        [_const("zero", 0), _const("zero1", [0]), _const("minus1", [-1])],
        opset=13,
    )
    imported = load(model, backend=backend)
    for n in (2, 5):
        x = np.arange(n * 12, dtype=np.float32).reshape(n, 3, 4)
        got = imported(backend.tensor(x)).numpy()
        assert got.shape == (n, 12)
        np.testing.assert_array_equal(got, x.reshape(n, 12))


RESIZE_SWEEP = [
    ({"mode": "cubic", "coordinate_transformation_mode": "half_pixel_symmetric"}, [1, 1, 1.7, 0.6], None),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel", "antialias": 1}, [1, 1, 0.4, 0.7], None),
    ({"mode": "cubic", "antialias": 1, "exclude_outside": 1}, None, [1, 1, 3, 2]),
    ({"mode": "nearest", "nearest_mode": "round_prefer_ceil", "keep_aspect_ratio_policy": "not_smaller",
      "axes": [3, 2]}, None, [7, 4]),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -3.0,
      "axes": [2, 3]}, None, [5, 6]),
    ({"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "floor"},
     [1, 1, 0.5, 2.5], None),
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("attrs,scales,sizes", RESIZE_SWEEP, ids=[str(i) for i in range(len(RESIZE_SWEEP))])
def test_resize_matches_the_reference_beyond_the_suite(backend, attrs, scales, sizes):
    x = np.random.default_rng(2).normal(size=(2, 3, 5, 7)).astype(np.float32)
    roi = [0.2, -0.1, 0.9, 1.3] if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else []
    inits = [_const("roi", roi, np.float32)]
    inits.append(_const("scales", scales, np.float32) if scales is not None else _const("sizes", sizes))
    model = _model(
        [
            helper.make_node(
                "Resize", ["x", "roi", "scales" if scales else "", "sizes" if sizes else ""], ["y"], **attrs
            )
        ],
        [_info("x", FLT, list(x.shape))],
        [_info("y", FLT, None)],
        inits,
    )
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = load(model, backend=backend)(backend.tensor(x)).numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


_BIG, _SMALL = np.iinfo(np.int64).max, np.iinfo(np.int64).min
ORT_CASES = [
    # ONNX's reference cannot run these (Resize-10) or disagrees with the spec in a corner (a negative
    # step from before the start clamps to element 0): onnxruntime follows the spec
    ("Resize", 10, {"mode": "nearest"}, [1, 1, 0.6, 2.3]),
    ("Resize", 10, {"mode": "linear"}, [1, 1, 1.5, 0.45]),
    ("Upsample", 9, {"mode": "linear"}, [1, 1, 2, 2.3]),
    ("Slice", 13, {}, ([-9, 1, _BIG], [_SMALL, 5, 0], [1, -1, 2], [-1, 2, -2])),
    ("Slice", 13, {}, ([_SMALL, -2], [_BIG, -9], [0, 2], [3, -1])),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "op,opset,attrs,args", ORT_CASES, ids=[f"{c[0]}{c[1]}-{i}" for i, c in enumerate(ORT_CASES)]
)
def test_old_resize_and_slice_clamping_match_onnxruntime(backend, op, opset, attrs, args):
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(5).normal(size=(1, 2, 5, 7)).astype(np.float32)
    if op == "Slice":
        names, inits = ["x", "s", "e", "a", "t"], [_const(n, v) for n, v in zip("seat", args)]
    else:
        names, inits = ["x", "s"], [_const("s", args, np.float32)]
    model = _model(
        [helper.make_node(op, names, ["y"], **attrs)], [_info("x", FLT, list(x.shape))], [_info("y", FLT, None)],
        inits, opset=opset,
    )  # fmt: skip
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = load(model, backend=backend)(backend.tensor(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_loop_and_if_read_the_enclosing_graph_and_gradients_flow_through_the_loop(backend):
    w, x = np.random.default_rng(3).normal(size=(2, 3)), np.random.default_rng(4).normal(size=(2, 3))
    # body: acc <- acc * x + W (x and W are the enclosing graph's), each acc also a scan output; its
    # condition output is false, which ONNX ignores when the Loop has no cond input
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["acc", "x"], ["ax"]),
            helper.make_node("Add", ["ax", "W"], ["acc_out"]),
            helper.make_node("Identity", ["never"], ["cond_out"]),
            helper.make_node("Identity", ["acc_out"], ["scan"]),
        ],
        "body",
        [_info("i", I64, []), _info("cond_in", TensorProto.BOOL, []), _info("acc", DBL, [2, 3])],
        [_info("cond_out", TensorProto.BOOL, []), _info("acc_out", DBL, [2, 3]), _info("scan", DBL, [2, 3])],
    )
    then = helper.make_graph(
        [helper.make_node("Slice", ["scans", "one", "two"], ["picked"])],
        "then",
        [],
        [_info("picked", DBL, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["picked"])], "else", [], [_info("picked", DBL, None)]
    )
    model = _model(
        [
            helper.make_node("Loop", ["trips", "", "W"], ["final", "scans"], body=body),
            helper.make_node("If", ["flag"], ["second"], then_branch=then, else_branch=other),
            helper.make_node("Unsqueeze", ["final", "zero"], ["f"]),
            helper.make_node("Concat", ["f", "second"], ["y"], axis=0),
        ],
        [_info("x", DBL, [2, 3])],
        [_info("y", DBL, None)],
        [
            numpy_helper.from_array(w, "W"),
            _const("trips", 3),
            _const("never", False, np.bool_),
            _const("flag", True, np.bool_),
            _const("one", [1]),
            _const("two", [2]),
            _const("zero", [0]),
        ],
        opset=16,
    )
    accs = [w]
    for _ in range(3):
        accs.append(accs[-1] * x + w)
    got = load(model, backend=backend)(backend.tensor(x)).numpy()
    np.testing.assert_allclose(got, np.stack([accs[3], accs[2]]), rtol=1e-12)
    _check_weight_gradient(model, backend, w, x)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_if_with_a_condition_computed_from_the_input_compiles(backend):
    import agnostic as ag

    then = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["o"], perm=[1, 0])], "t", [], [_info("o", FLT, None)]
    )
    other = helper.make_graph(  # the rows reversed
        [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["o"])], "e", [], [_info("o", FLT, None)]
    )
    model = _model(
        [
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
            helper.make_node("Greater", ["total", "zero"], ["c"]),
            helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
        ],
        [_info("x", FLT, [3, 3])],
        [_info("y", FLT, None)],
        [
            _const("zero", 0.0, np.float32),
            _const("s", [-1]),
            _const("e", [_SMALL]),
            _const("a", [0]),
            _const("t", [-1]),
        ],
        opset=13,
    )
    imported = load(model, backend=backend)
    step = ag.compile(lambda x: imported(x))
    for sign in (1, -1):
        x = sign * np.arange(9, dtype=np.float32).reshape(3, 3)
        np.testing.assert_array_equal(step(backend.tensor(x)).numpy(), x.T if sign > 0 else x[::-1])


@pytest.mark.parametrize(
    "node,opset,needle",
    [
        (helper.make_node("Resize", ["x", "", "s"], ["y"], coordinate_transformation_mode="half_pixel_symmetric"),
         18, "half_pixel_symmetric"),
        (helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap"), 18, "mode='wrap'"),
        (helper.make_node("ScatterND", ["x", "i", "x"], ["y"], reduction="max"), 16, "reduction='max'"),
        (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", antialias=1), 19, "antialias"),
    ],
    ids=["resize-ctm", "pad-wrap", "scatter-max", "resize-antialias-nearest"],
)  # fmt: skip
def test_an_unsupported_attribute_value_is_a_load_time_error_naming_the_node(node, opset, needle):
    node.name = "the_node"
    model = _model(
        [node],
        [_info("x", FLT, [2, 3, 4, 5])],
        [_info("y", FLT, None)],
        [_const("s", [1, 1, 2, 2], np.float32), _const("p", [0] * 8), _const("i", [[0]])],
        opset=opset,
    )
    with pytest.raises(OnnxImportError) as info:
        load(model)
    message = str(info.value)
    assert "the_node" in message and node.op_type in message and needle in message
