"""The neural-network converters beyond ONNX's node suite: imported Conv, LSTM, GRU and
LayerNormalization graphs give torch.nn's numbers with the same weights, recurrent layers honour
uneven sequence lengths, pooling and transposed convolution with uneven padding match
onnxruntime, and gradients flow through an imported Conv+BatchNorm+Relu graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from backends_here import available_backends
from onnx import TensorProto, helper, numpy_helper

from agnostic.onnx import load

BACKENDS = available_backends()
IDS = [b.name for b in BACKENDS]
F32 = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=22) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _outputs(model: onnx.ModelProto, backend, *inputs: np.ndarray) -> list[np.ndarray]:
    out = load(model, backend=backend)(*[backend.tensor(x) for x in inputs])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_conv_with_padding_stride_groups_matches_torch_conv2d(backend):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    x = torch.randn(2, 6, 9, 7)
    model = _model(
        [
            helper.make_node(
                "Conv", ["x", "W", "B"], ["y"], strides=[2, 1], pads=[1, 2, 1, 2], dilations=[1, 2], group=2
            )
        ],
        [_info("x", F32, [2, 6, 9, 7])],
        [_info("y", F32, None)],
        [numpy_helper.from_array(_np(conv.weight), "W"), numpy_helper.from_array(_np(conv.bias), "B")],
    )
    (got,) = _outputs(model, backend, _np(x))
    np.testing.assert_allclose(got, _np(conv(x)), rtol=1e-5, atol=1e-5)


def _lstm_onnx_weights(lstm: torch.nn.LSTM, suffix: str) -> tuple[np.ndarray, ...]:
    """torch's (i, f, g, o) gate rows in ONNX's (i, o, f, c) order."""

    def reorder(a: np.ndarray) -> np.ndarray:
        i, f, g, o = np.split(a, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    w = reorder(_np(getattr(lstm, f"weight_ih_l0{suffix}")))
    r = reorder(_np(getattr(lstm, f"weight_hh_l0{suffix}")))
    b = np.concatenate(
        [
            reorder(_np(getattr(lstm, f"bias_ih_l0{suffix}"))),
            reorder(_np(getattr(lstm, f"bias_hh_l0{suffix}"))),
        ]
    )
    return w, r, b


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_bidirectional_lstm_with_initial_states_matches_torch(backend):
    torch.manual_seed(1)
    seq, batch, inp, hid = 5, 3, 4, 6
    lstm = torch.nn.LSTM(inp, hid, bidirectional=True)
    x, h0, c0 = torch.randn(seq, batch, inp), torch.randn(2, batch, hid), torch.randn(2, batch, hid)
    fwd, bwd = _lstm_onnx_weights(lstm, ""), _lstm_onnx_weights(lstm, "_reverse")
    w, r, b = (np.stack([f, g]) for f, g in zip(fwd, bwd))
    model = _model(
        [
            helper.make_node(
                "LSTM",
                ["x", "W", "R", "B", "", "h0", "c0"],
                ["Y", "Y_h", "Y_c"],
                hidden_size=hid,
                direction="bidirectional",
            )
        ],
        [
            _info("x", F32, [seq, batch, inp]),
            _info("h0", F32, [2, batch, hid]),
            _info("c0", F32, [2, batch, hid]),
        ],
        [_info("Y", F32, None), _info("Y_h", F32, None), _info("Y_c", F32, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")],
    )
    y, y_h, y_c = _outputs(model, backend, _np(x), _np(h0), _np(c0))
    want, (want_h, want_c) = lstm(x, (h0, c0))
    np.testing.assert_allclose(
        y.transpose(0, 2, 1, 3).reshape(seq, batch, 2 * hid), _np(want), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(y_h, _np(want_h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_c, _np(want_c), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gru_linear_before_reset_matches_torch(backend):
    torch.manual_seed(2)
    seq, batch, inp, hid = 4, 2, 3, 5
    gru = torch.nn.GRU(inp, hid, batch_first=True)
    x, h0 = torch.randn(batch, seq, inp), torch.randn(1, batch, hid)

    def reorder(a: np.ndarray) -> np.ndarray:  # torch (r, z, n) -> ONNX (z, r, h)
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    w, r = reorder(_np(gru.weight_ih_l0))[None], reorder(_np(gru.weight_hh_l0))[None]
    b = np.concatenate([reorder(_np(gru.bias_ih_l0)), reorder(_np(gru.bias_hh_l0))])[None]
    model = _model(
        [
            helper.make_node(
                "GRU",
                ["x", "W", "R", "B", "", "h0"],
                ["Y", "Y_h"],
                hidden_size=hid,
                linear_before_reset=1,
                layout=1,
            )
        ],
        [_info("x", F32, [batch, seq, inp]), _info("h0", F32, [batch, 1, hid])],
        [_info("Y", F32, None), _info("Y_h", F32, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")],
    )
    y, y_h = _outputs(model, backend, _np(x), _np(h0).transpose(1, 0, 2))
    want, want_h = gru(x, h0)
    assert y.shape == (batch, seq, 1, hid)
    np.testing.assert_allclose(y[:, :, 0], _np(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_h, _np(want_h).transpose(1, 0, 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_layer_normalization_matches_torch_with_mean_and_inv_std_outputs(backend):
    torch.manual_seed(3)
    norm = torch.nn.LayerNorm((4, 5), eps=1e-3)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 3, 4, 5)
    model = _model(
        [
            helper.make_node(
                "LayerNormalization", ["x", "S", "B"], ["y", "mean", "inv"], axis=-2, epsilon=1e-3
            )
        ],
        [_info("x", F32, [2, 3, 4, 5])],
        [_info("y", F32, None), _info("mean", F32, None), _info("inv", F32, None)],
        [numpy_helper.from_array(_np(norm.weight), "S"), numpy_helper.from_array(_np(norm.bias), "B")],
    )
    y, mean, inv = _outputs(model, backend, _np(x))
    np.testing.assert_allclose(y, _np(norm(x)), rtol=1e-5, atol=1e-5)
    xs = _np(x).astype(np.float64)
    np.testing.assert_allclose(mean, xs.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv, 1 / np.sqrt(xs.var(axis=(2, 3), keepdims=True) + 1e-3), rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_layers_honour_uneven_sequence_lengths_like_onnxruntime(backend, op):
    r = np.random.default_rng(4)
    seq, batch, inp, hid = 5, 3, 2, 3
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    w = r.normal(size=(2, gates * hid, inp)).astype(np.float32)
    rr = r.normal(size=(2, gates * hid, hid)).astype(np.float32)
    b = r.normal(size=(2, 2 * gates * hid)).astype(np.float32)
    x = r.normal(size=(seq, batch, inp)).astype(np.float32)
    lens = np.array([5, 2, 4], dtype=np.int32)
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    model = _model(
        [
            helper.make_node(
                op, ["x", "W", "R", "B", "lens"], outputs, hidden_size=hid, direction="bidirectional"
            )
        ],
        [_info("x", F32, [seq, batch, inp]), _info("lens", TensorProto.INT32, [batch])],
        [_info(o, F32, None) for o in outputs],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(rr, "R"), numpy_helper.from_array(b, "B")],
        opset=14,
    )
    got = _outputs(model, backend, x, lens)
    want = _onnxruntime(model, {"x": x, "lens": lens})
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_pooling_and_conv_transpose_with_uneven_padding_match_onnxruntime(backend):
    r = np.random.default_rng(5)
    x = r.normal(size=(1, 2, 7, 6)).astype(np.float32)
    w = r.normal(size=(2, 3, 3, 2)).astype(np.float32)
    model = _model(
        [
            helper.make_node(
                "MaxPool",
                ["x"],
                ["m", "idx"],
                kernel_shape=[3, 2],
                pads=[0, 1, 2, 0],
                strides=[2, 2],
                ceil_mode=1,
            ),
            helper.make_node(
                "AveragePool",
                ["x"],
                ["a"],
                kernel_shape=[2, 3],
                pads=[1, 0, 0, 2],
                strides=[2, 1],
                count_include_pad=1,
            ),
            helper.make_node(
                "ConvTranspose", ["x", "W"], ["t"], strides=[2, 3], pads=[1, 0, 0, 2], output_padding=[1, 2]
            ),
        ],
        [_info("x", F32, [1, 2, 7, 6])],
        [
            _info("m", F32, None),
            _info("idx", TensorProto.INT64, None),
            _info("a", F32, None),
            _info("t", F32, None),
        ],
        [numpy_helper.from_array(w, "W")],
        opset=17,
    )
    got = _outputs(model, backend, x)
    want = _onnxruntime(model, {"x": x})
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gradients_through_imported_conv_batchnorm_relu_match_finite_differences(backend):
    r = np.random.default_rng(6)
    f64 = TensorProto.DOUBLE
    x = r.normal(size=(2, 2, 5, 5))
    inits = {
        "W": r.normal(size=(3, 2, 3, 3)),
        "Bc": r.normal(size=(3,)),
        "scale": r.normal(size=(3,)),
        "shift": r.normal(size=(3,)),
        "mean": r.normal(size=(3,)),
        "var": r.uniform(0.5, 2.0, size=(3,)),
    }
    model = _model(
        [
            helper.make_node("Conv", ["x", "W", "Bc"], ["c"], pads=[1, 0, 0, 1], strides=[2, 1]),
            helper.make_node(
                "BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], epsilon=1e-3
            ),
            helper.make_node("Relu", ["n"], ["y"]),
        ],
        [_info("x", f64, [2, 2, 5, 5])],
        [_info("y", f64, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    imported = load(model, backend=backend)
    shape = imported(backend.tensor(x)).shape
    weights = np.linspace(-1.0, 1.0, num=int(np.prod(shape))).reshape(shape)

    def loss(x_value: np.ndarray) -> float:
        return float((imported(backend.tensor(x_value)).numpy() * weights).sum())

    xt = backend.tensor(x).requires_grad_()
    (imported(xt) * backend.tensor(weights)).sum().backward()
    grads = {"x": xt.grad.numpy(), "W": imported.W.grad.numpy(), "scale": imported.scale.grad.numpy()}
    eps = 1e-6
    numeric_x = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        numeric_x[i] = (loss(x + d) - loss(x - d)) / (2 * eps)
    np.testing.assert_allclose(grads["x"], numeric_x, rtol=1e-5, atol=1e-6)
    for name in ("W", "scale"):
        param = getattr(imported, name)
        base = param.numpy().copy()
        numeric = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            values = []
            for sign in (1, -1):
                shifted = base.copy()
                shifted[i] += sign * eps
                param.assign(shifted)
                values.append(loss(x))
            numeric[i] = (values[0] - values[1]) / (2 * eps)
        param.assign(base)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-6)
