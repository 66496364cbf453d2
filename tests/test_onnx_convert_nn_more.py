"""The attention-family and detection converters on graphs of other sizes than ONNX's node suite:
LinearAttention (every update rule, GQA, carried state), CausalConvWithState and FlexAttention
(with score_mod/prob_mod subgraphs) against ONNX's reference evaluator; RoiAlign (including the
value-dependent sampling grid), DeformConv (strides, dilations, groups, offset groups, mask) and
TensorScatter against onnxruntime; and gradients through DeformConv and LinearAttention against
finite differences."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from backends_here import available_backends
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from agnostic.onnx import load

BACKENDS = available_backends()
IDS = [b.name for b in BACKENDS]
F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE


def _model(node, inputs: dict[str, np.ndarray], n_out: int, opset: int, extra=()) -> onnx.ModelProto:
    """One node reading `inputs` (named as the node's inputs), with n_out outputs."""
    elem = {np.dtype(np.float32): F32, np.dtype(np.float64): F64, np.dtype(np.int64): TensorProto.INT64}
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, elem[v.dtype], v.shape) for k, v in inputs.items()],
        [
            helper.make_tensor_value_info(name, elem[next(iter(inputs.values())).dtype], None)
            for name in node.output[:n_out]
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra])


def _agnostic(model: onnx.ModelProto, backend, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    out = load(model, backend=backend)(*[backend.tensor(v) for v in inputs.values()])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ReferenceEvaluator(model).run(None, inputs)


def _onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def _check(got: list[np.ndarray], expected: list[np.ndarray], tol: float) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol)


def _linear_attention_inputs(
    rule: str, r: np.random.Generator, per_head_decay: bool
) -> dict[str, np.ndarray]:
    b, t, hq, hkv, dk, dv = 2, 5, 6, 2, 3, 4
    inputs = {
        "q": r.normal(size=(b, t, hq * dk)),
        "k": r.normal(size=(b, t, hkv * dk)) * 0.5,
        "v": r.normal(size=(b, t, hkv * dv)),
        "past": r.normal(size=(b, hkv, dk, dv)),
    }
    if rule in ("gated", "gated_delta"):
        inputs["decay"] = -r.uniform(0.05, 1.0, size=(b, t, hkv if per_head_decay else hkv * dk))
    if rule in ("delta", "gated_delta"):
        inputs["beta"] = r.uniform(0.1, 0.9, size=(b, t, hkv))
    return {k: v.astype(np.float32) for k, v in inputs.items()}


def _linear_attention_slots(inputs: dict[str, np.ndarray]) -> list[str]:
    """The node's input names: q, k, v, past_state, decay, beta, "" for the ones not given."""
    return [name if name in inputs else "" for name in ("q", "k", "v", "past", "decay", "beta")]


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "rule,per_head_decay", [("linear", False), ("gated", True), ("delta", False), ("gated_delta", False)]
)
def test_linear_attention_matches_onnx_reference(backend, rule, per_head_decay):
    inputs = _linear_attention_inputs(rule, np.random.default_rng(1), per_head_decay)
    node = helper.make_node(
        "LinearAttention", _linear_attention_slots(inputs), ["y", "state"], q_num_heads=6, kv_num_heads=2,
        update_rule=rule, scale=0.7 if rule == "delta" else 0.0,
    )  # fmt: skip
    model = _model(node, inputs, 2, 27)
    _check(_agnostic(model, backend, inputs), _reference(model, inputs), 1e-4)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("activation,past", [("none", True), ("silu", False)])
def test_causal_conv_with_state_matches_onnx_reference(backend, activation, past):
    r = np.random.default_rng(2)
    inputs = {
        "x": r.normal(size=(3, 5, 7)).astype(np.float32),
        "w": r.normal(size=(5, 1, 4)).astype(np.float32),
        "b": r.normal(size=(5,)).astype(np.float32),
    }
    if past:
        inputs["past"] = r.normal(size=(3, 5, 3)).astype(np.float32)
    node = helper.make_node("CausalConvWithState", list(inputs), ["y", "state"], activation=activation)
    model = _model(node, inputs, 2, 27)
    _check(_agnostic(model, backend, inputs), _reference(model, inputs), 1e-5)


def _subgraph(name: str, nodes, consts: dict[str, float]) -> onnx.GraphProto:
    return helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("s", F32, None)],
        [helper.make_tensor_value_info("out", F32, None)],
        initializer=[numpy_helper.from_array(np.array(v, dtype=np.float32), k) for k, v in consts.items()],
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_flex_attention_with_modifier_subgraphs_and_gqa_matches_onnx_reference(backend):
    r = np.random.default_rng(3)
    inputs = {
        "q": r.normal(size=(2, 4, 3, 5)).astype(np.float32),
        "k": r.normal(size=(2, 2, 7, 5)).astype(np.float32),
        "v": r.normal(size=(2, 2, 7, 6)).astype(np.float32),
    }
    score_mod = _subgraph(
        "soft_cap",
        [helper.make_node("Div", ["s", "cap"], ["a"]), helper.make_node("Tanh", ["a"], ["t"]),
         helper.make_node("Mul", ["t", "cap"], ["out"])],
        {"cap": 1.5},
    )  # fmt: skip
    prob_mod = _subgraph("damp", [helper.make_node("Mul", ["s", "half"], ["out"])], {"half": 0.5})
    node = helper.make_node(
        "FlexAttention", list(inputs), ["y"], domain="ai.onnx.preview", scale=0.3, score_mod=score_mod,
        prob_mod=prob_mod,
    )  # fmt: skip
    model = _model(node, inputs, 1, 26, [helper.make_opsetid("ai.onnx.preview", 1)])
    _check(_agnostic(model, backend, inputs), _reference(model, inputs), 1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("mode,ratio", [("avg", 0), ("avg", 3), ("max", 2)])
def test_roi_align_matches_onnxruntime(backend, mode, ratio):
    r = np.random.default_rng(4)
    corners = r.uniform(0, 10, size=(5, 2, 2))
    inputs = {
        "x": r.normal(size=(2, 3, 9, 11)).astype(np.float32),
        "rois": np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1], axis=1).astype(np.float32),
        "idx": np.array([0, 1, 1, 0, 1], dtype=np.int64),
    }
    node = helper.make_node(
        "RoiAlign", list(inputs), ["y"], mode=mode, output_height=3, output_width=4, sampling_ratio=ratio,
        spatial_scale=0.8, coordinate_transformation_mode="half_pixel" if ratio != 2 else "output_half_pixel",
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", F32, inputs["x"].shape),
            helper.make_tensor_value_info("rois", F32, inputs["rois"].shape),
            helper.make_tensor_value_info("idx", TensorProto.INT64, inputs["idx"].shape),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    expected = _onnxruntime(model, inputs) if mode == "avg" else _reference(model, inputs)
    _check(_agnostic(model, backend, inputs), expected, 1e-5)


def _deform_inputs(r: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    # C=4 in 2 groups and 2 offset groups, kernel 2x3, stride (2, 1), dilation (1, 2), pads (1, 0, 0, 2)
    # on 6x7: output (3, 5)
    return {
        "x": r.normal(size=(2, 4, 6, 7)).astype(dtype),
        "w": r.normal(size=(6, 2, 2, 3)).astype(dtype),
        "offset": r.uniform(-1.5, 1.5, size=(2, 2 * 6 * 2, 3, 5)).astype(dtype),
        "b": r.normal(size=(6,)).astype(dtype),
        "mask": r.uniform(0, 1, size=(2, 2 * 6, 3, 5)).astype(dtype),
    }


def _deform_node() -> onnx.NodeProto:
    return helper.make_node(
        "DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], group=2, offset_group=2, strides=[2, 1],
        dilations=[1, 2], pads=[1, 0, 0, 2], kernel_shape=[2, 3],
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_deform_conv_with_groups_offset_groups_and_mask_matches_onnxruntime(backend):
    inputs = _deform_inputs(np.random.default_rng(5), np.float32)
    model = _model(_deform_node(), inputs, 1, 19)
    _check(_agnostic(model, backend, inputs), _onnxruntime(model, inputs), 1e-4)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_matches_onnxruntime(backend, mode):
    r = np.random.default_rng(6)
    inputs = {
        "past": r.normal(size=(3, 2, 6, 4)).astype(np.float32),
        "update": r.normal(size=(3, 2, 3, 4)).astype(np.float32),
        "where": np.array([0, 2, 3 if mode == "linear" else 5], dtype=np.int64),
    }
    node = helper.make_node("TensorScatter", list(inputs), ["y"], mode=mode, axis=2)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("past", F32, inputs["past"].shape),
            helper.make_tensor_value_info("update", F32, inputs["update"].shape),
            helper.make_tensor_value_info("where", TensorProto.INT64, (3,)),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])
    _check(_agnostic(model, backend, inputs), _onnxruntime(model, inputs), 0.0)


def _numeric_grad(loss, values: dict[str, np.ndarray], name: str, eps: float) -> np.ndarray:
    base = values[name]
    out = np.zeros_like(base)
    for i in np.ndindex(base.shape):
        shifted = []
        for sign in (1, -1):
            moved = base.copy()
            moved[i] += sign * eps
            shifted.append(loss({**values, name: moved}))
        out[i] = (shifted[0] - shifted[1]) / (2 * eps)
    return out


def _gradients(model: onnx.ModelProto, backend, inputs: dict[str, np.ndarray], names, eps, tol) -> None:
    """d(sum(y * weights))/d(input) for `names` from agnostic's autodiff against central differences."""
    imported = load(model, backend=backend)
    shape = imported(*[backend.tensor(v) for v in inputs.values()]).shape
    weights = np.linspace(-1.0, 1.0, num=int(np.prod(shape))).reshape(shape)

    def loss(values: dict[str, np.ndarray]) -> float:
        y = imported(*[backend.tensor(v) for v in values.values()]).numpy().astype(np.float64)
        return float((y * weights).sum())

    tensors = {
        k: backend.tensor(v).requires_grad_() if k in names else backend.tensor(v) for k, v in inputs.items()
    }
    y = imported(*tensors.values())
    (y * backend.tensor(weights.astype(inputs[names[0]].dtype))).sum().backward()
    for name in names:
        numeric = _numeric_grad(loss, inputs, name, eps)
        np.testing.assert_allclose(tensors[name].grad.numpy(), numeric, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_deform_conv_gradients_match_finite_differences(backend):
    inputs = _deform_inputs(np.random.default_rng(7), np.float64)
    _gradients(
        _model(_deform_node(), inputs, 1, 19), backend, inputs, ["x", "offset", "mask", "w"], 1e-6, 1e-6
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_linear_attention_gradients_match_finite_differences(backend):
    inputs = _linear_attention_inputs("gated_delta", np.random.default_rng(8), per_head_decay=False)
    node = helper.make_node(
        "LinearAttention", _linear_attention_slots(inputs), ["y"], q_num_heads=6, kv_num_heads=2
    )
    _gradients(_model(node, inputs, 1, 27), backend, inputs, ["q", "k", "decay", "beta"], 1e-2, 2e-2)
