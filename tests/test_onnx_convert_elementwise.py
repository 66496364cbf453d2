"""The elementwise, reduction, matmul and loss converters beyond ONNX's node suite: gradients flow
through them (checked against finite differences of ONNX's own reference evaluator), older opsets
keep their own semantics (2-D softmax, axes attributes, Clip attributes), the composite ops agnostic
builds itself (Einsum, Det, training Dropout) are right, and a bad attribute value is a load-time
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


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _run(model: onnx.ModelProto, backend, *inputs: np.ndarray) -> np.ndarray:
    return load(model, backend=backend)(*[backend.tensor(x) for x in inputs]).numpy()


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gradients_of_gemm_relu_reducemean_match_finite_differences(backend):
    r = np.random.default_rng(0)
    x, w, b = r.normal(size=(5, 4)), r.normal(size=(3, 4)), r.normal(size=(3,))
    dbl = TensorProto.DOUBLE
    model = _model(
        [
            helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1, alpha=0.7, beta=1.3),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("ReduceMean", ["a"], ["y"], axes=[1], keepdims=0),
        ],
        [_info("x", dbl, [5, 4])],
        [_info("y", dbl, [5])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    imported = load(model, backend=backend)
    xt = backend.tensor(x).requires_grad_()
    loss = imported(xt).sum()
    loss.backward()

    def reference(values: dict[str, np.ndarray], name: str, delta: np.ndarray) -> float:
        inits = {"W": w, "b": b, name: values[name] + delta}
        m = _model(
            list(model.graph.node),
            list(model.graph.input),
            list(model.graph.output),
            [numpy_helper.from_array(inits["W"], "W"), numpy_helper.from_array(inits["b"], "b")],
        )
        feed = x + delta if name == "x" else x
        return float(ReferenceEvaluator(m).run(None, {"x": feed})[0].sum())

    eps = 1e-6
    for name, value, got in (("W", w, imported.W.grad), ("b", b, imported.b.grad), ("x", x, xt.grad)):
        fd = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[i] = eps
            values = {"W": w, "b": b, "x": x}
            fd[i] = (reference(values, name, step) - reference(values, name, -step)) / (2 * eps)
        np.testing.assert_allclose(got.numpy(), fd, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_softmax_before_opset_13_normalizes_the_flattened_2d_input(backend):
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    f = TensorProto.FLOAT
    for opset, expected in (
        (11, np.exp(x) / np.exp(x).reshape(2, 12).sum(1).reshape(2, 1, 1)),
        (13, np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    ):
        model = _model(
            [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
            [_info("x", f, [2, 3, 4])],
            [_info("y", f, None)],
            opset=opset,
        )
        np.testing.assert_allclose(_run(model, backend, x), expected, rtol=1e-5, err_msg=f"opset {opset}")


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_reduce_keeps_the_integer_dtype_and_reads_axes_by_opset(backend):
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 10
    i32 = TensorProto.INT32
    attr_axes = _model(
        [helper.make_node("ReduceSum", ["x"], ["y"], axes=[0, -1], keepdims=0)],
        [_info("x", i32, [2, 3, 4])],
        [_info("y", i32, None)],
        opset=11,
    )
    got = _run(attr_axes, backend, x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, x.sum(axis=(0, 2)))
    noop = _model(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], noop_with_empty_axes=1)],
        [_info("x", i32, [2, 3, 4])],
        [_info("y", i32, None)],
        [numpy_helper.from_array(np.zeros(0, np.int64), "axes")],
        opset=13,
    )
    np.testing.assert_array_equal(_run(noop, backend, x), x)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_integer_division_truncates_and_clip_reads_attributes_before_opset_11(backend):
    a = np.array([-7, 7, -7, 7, -6], np.int64)
    b = np.array([2, -2, -2, 2, 4], np.int64)
    i64, f = TensorProto.INT64, TensorProto.FLOAT
    div = _model(
        [helper.make_node("Div", ["a", "b"], ["q"]), helper.make_node("Mod", ["a", "b"], ["r"], fmod=1)],
        [_info("a", i64, [5]), _info("b", i64, [5])],
        [_info("q", i64, [5]), _info("r", i64, [5])],
    )
    q, r = load(div, backend=backend)(backend.tensor(a), backend.tensor(b))
    np.testing.assert_array_equal(q.numpy(), [-3, -3, 3, 3, -1])
    np.testing.assert_array_equal(r.numpy(), np.fmod(a, b))
    clip = _model(
        [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.25)],
        [_info("x", f, [4])],
        [_info("y", f, [4])],
        opset=10,
    )
    x = np.array([-2.0, -0.1, 0.2, 3.0], np.float32)
    np.testing.assert_allclose(_run(clip, backend, x), np.clip(x, -0.5, 0.25))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_einsum_implicit_output_and_det_with_pivoting(backend):
    r = np.random.default_rng(2)
    a, b = r.normal(size=(2, 3, 4)), r.normal(size=(4, 5))
    dbl = TensorProto.DOUBLE
    einsum = _model(
        [helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,jk")],
        [_info("a", dbl, [2, 3, 4]), _info("b", dbl, [4, 5])],
        [_info("y", dbl, None)],
    )
    got = load(einsum, backend=backend)(backend.tensor(a), backend.tensor(b)).numpy()
    np.testing.assert_allclose(got, np.einsum("bij,jk", a, b), rtol=1e-10)
    # a zero leading pivot needs a row swap; the second matrix is singular
    m = np.stack(
        [
            [[0.0, 2.0, 1.0], [3.0, 1.0, 4.0], [1.0, 5.0, 9.0]],
            [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]],
        ]
    )
    det = _model(
        [helper.make_node("Det", ["m"], ["d"])], [_info("m", dbl, [2, 3, 3])], [_info("d", dbl, None)]
    )
    np.testing.assert_allclose(_run(det, backend, m), np.linalg.det(m), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_dropout_in_training_mode_zeroes_and_rescales_by_its_mask(backend):
    f = TensorProto.FLOAT
    model = _model(
        [helper.make_node("Dropout", ["x", "ratio", "train"], ["y", "mask"], seed=3)],
        [_info("x", f, [64, 64])],
        [_info("y", f, None), _info("mask", TensorProto.BOOL, None)],
        [
            numpy_helper.from_array(np.array(0.25, np.float32), "ratio"),
            numpy_helper.from_array(np.array(True), "train"),
        ],
        opset=13,
    )
    x = np.random.default_rng(3).uniform(1.0, 2.0, size=(64, 64)).astype(np.float32)
    y, mask = (t.numpy() for t in load(model, backend=backend)(backend.tensor(x)))
    assert mask.dtype == np.bool_ and 0.2 < 1.0 - mask.mean() < 0.3
    np.testing.assert_allclose(y, np.where(mask, x / 0.75, 0.0), rtol=1e-6)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (helper.make_node("Gelu", ["x"], ["y"], name="act", approximate="sigmoid"), "Gelu 'act'"),
        (helper.make_node("Mod", ["x", "x"], ["y"], name="rem", fmod=2), "Mod 'rem'"),
        (helper.make_node("Cast", ["x"], ["y"], name="to_text", to=TensorProto.STRING), "Cast 'to_text'"),
        (helper.make_node("ReduceL2", ["x"], ["y"], name="norm", keepdims=1, unknown=3), "ReduceL2 'norm'"),
    ],
)
def test_an_unsupported_attribute_is_a_load_error_naming_the_node(node, message):
    f = TensorProto.FLOAT
    model = _model([node], [_info("x", f, [2])], [_info("y", f, None)], opset=20)
    with pytest.raises(OnnxImportError, match=message):
        load(model)
