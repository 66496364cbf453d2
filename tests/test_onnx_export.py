"""agnostic.onnx.export: every nn layer, the examples' models and W1-W3 go to ONNX files that pass
onnx.checker and that ONNX Runtime runs to agnostic's eager outputs, at the traced batch size and at
another one, from models on every available backend; what cannot be exported is a clear error."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import agnostic as ag  # noqa: E402
from agnostic import nn  # noqa: E402
from agnostic.backends import BackendUnavailable  # noqa: E402
from agnostic.onnx import ExportError  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
BACKENDS = ("numpy", "torch", "jax", "cupy")


def device(name: str) -> ag.Device:
    try:
        return ag.backend(name)
    except (BackendUnavailable, ImportError, ValueError) as exc:
        pytest.skip(f"backend {name!r} is not available here: {exc}")


def leaves(result: Any) -> list[Any]:
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in leaves(r)]
    return [] if result is None else [result]


def resized(a: np.ndarray, axes: dict[int, int]) -> np.ndarray:
    for axis, n in axes.items():
        a = np.take(a, np.arange(n) % a.shape[axis], axis=axis)
    return a


def check(
    build: Callable[[], nn.Module], inputs: list[np.ndarray], backend: str, *, batch: int = 5,
    axes: list[dict[int, int]] | None = None, **options: Any,
) -> bytes:  # fmt: skip
    """Export `build()` (made on `backend`, seeded) with `inputs`, check the file, and compare ONNX
    Runtime's outputs with the eager model's at the traced sizes and with the dynamic axes resized
    (`axes`: per input {axis: other size}; default axis 0 to `batch`). Returns the file's bytes."""
    dev = device(backend)
    ag.manual_seed(0)
    with ag.default_backend(dev):
        model = build()
    model.eval()
    tensors = [dev.tensor(a) for a in inputs]
    buf = io.BytesIO()
    proto = ag.onnx.export(model, tuple(tensors), buf, **options)
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    axes = axes if axes is not None else [{0: batch} if a.ndim else {} for a in inputs]
    for feed in (inputs, [resized(a, s) for a, s in zip(inputs, axes)]):
        with ag.no_grad():
            want = [t.numpy() for t in leaves(model(*(dev.tensor(a) for a in feed)))]
        got = session.run(None, dict(zip(names, feed)))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    return buf.getvalue()


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def ids(*shape: int, high: int = 10) -> np.ndarray:
    return np.random.default_rng(1).integers(0, high, shape).astype(np.int64)


def with_stats(bn: nn.Module) -> nn.Module:
    """A BatchNorm with running statistics that are not the initial ones."""
    ag.manual_seed(3)
    n = bn.running_mean.shape[0]
    bn.running_mean = ag.asarray(np.linspace(-1, 1, n).astype(np.float32), device=bn.running_mean.device)
    bn.running_var = ag.asarray(np.linspace(0.5, 2, n).astype(np.float32), device=bn.running_var.device)
    return bn


class Attention(nn.Module):
    """MultiheadAttention with a float causal mask and a boolean key padding mask (an input)."""

    def __init__(self, bool_mask: bool = False) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.bool_mask = bool_mask

    def forward(self, x: ag.Tensor, pad: ag.Tensor) -> Any:
        n = x.shape[1]
        if self.bool_mask:
            mask = ag.triu(ag.ones((n, n), dtype=ag.bool, device=x.device), k=1)
        else:
            mask = nn.Transformer.generate_square_subsequent_mask(n, device=x.device)
        return self.mha(x, x, x, key_padding_mask=pad, attn_mask=mask)


class Decoder(nn.Module):
    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(
            8, 2, 16, dropout=0.1, batch_first=True, norm_first=norm_first
        )

    def forward(self, tgt: ag.Tensor, memory: ag.Tensor) -> ag.Tensor:
        return self.layer(
            tgt,
            memory,
            tgt_is_causal=True,
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device),
        )


class BilinearPair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bil = nn.Bilinear(3, 4, 5)

    def forward(self, a: ag.Tensor, b: ag.Tensor) -> ag.Tensor:
        return self.bil(a, b)


# (id, model factory, inputs, export options)
LAYERS: list[tuple[str, Callable[[], nn.Module], Callable[[], list[np.ndarray]], dict[str, Any]]] = [
    ("linear", lambda: nn.Linear(6, 4), lambda: [normal(3, 6)], {}),
    ("linear-3d", lambda: nn.Linear(6, 4, bias=False), lambda: [normal(3, 2, 6)], {}),
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), lambda: [normal(2, 3, 9)], {}),
    ("conv2d", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, dilation=2), lambda: [normal(2, 4, 7, 7)], {}),
    (
        "conv2d-same",
        lambda: nn.Conv2d(2, 3, (2, 3), padding="same", bias=False),
        lambda: [normal(2, 2, 6, 5)],
        {},
    ),
    ("conv3d", lambda: nn.Conv3d(2, 3, 2), lambda: [normal(2, 2, 4, 4, 4)], {}),
    ("conv-transpose1d", lambda: nn.ConvTranspose1d(3, 2, 3, stride=2), lambda: [normal(2, 3, 5)], {}),
    (
        "conv-transpose2d",
        lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
        lambda: [normal(2, 4, 4, 4)],
        {},
    ),
    ("max-pool1d", lambda: nn.MaxPool1d(3, stride=2, padding=1), lambda: [normal(2, 3, 9)], {}),
    ("max-pool2d", lambda: nn.MaxPool2d(2), lambda: [normal(2, 3, 6, 6)], {}),
    (
        "max-pool2d-dilated",
        lambda: nn.MaxPool2d(3, stride=2, dilation=2, padding=1),
        lambda: [normal(2, 2, 9, 9)],
        {},
    ),
    ("max-pool2d-ceil", lambda: nn.MaxPool2d(2, ceil_mode=True), lambda: [normal(2, 3, 5, 5)], {}),
    ("avg-pool2d-ceil", lambda: nn.AvgPool2d(2, ceil_mode=True), lambda: [normal(2, 3, 5, 5)], {}),
    ("identity", lambda: nn.Identity(), lambda: [normal(2, 3)], {}),
    ("avg-pool1d", lambda: nn.AvgPool1d(3, stride=2, padding=1), lambda: [normal(2, 3, 9)], {}),
    (
        "avg-pool2d",
        lambda: nn.AvgPool2d(2, padding=1, count_include_pad=False),
        lambda: [normal(2, 3, 5, 5)],
        {},
    ),
    ("adaptive-avg-pool1d", lambda: nn.AdaptiveAvgPool1d(3), lambda: [normal(2, 3, 7)], {}),
    ("adaptive-avg-pool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: [normal(2, 3, 5, 7)], {}),
    ("batch-norm1d", lambda: with_stats(nn.BatchNorm1d(4)), lambda: [normal(3, 4)], {}),
    ("batch-norm1d-3d", lambda: with_stats(nn.BatchNorm1d(4)), lambda: [normal(3, 4, 5)], {}),
    ("batch-norm2d", lambda: with_stats(nn.BatchNorm2d(3)), lambda: [normal(2, 3, 4, 4)], {}),
    ("layer-norm", lambda: nn.LayerNorm(6), lambda: [normal(3, 2, 6)], {}),
    ("layer-norm-2d", lambda: nn.LayerNorm((2, 6), elementwise_affine=False), lambda: [normal(3, 2, 6)], {}),
    ("group-norm", lambda: nn.GroupNorm(2, 4), lambda: [normal(2, 4, 3, 3)], {}),
    ("rms-norm", lambda: nn.RMSNorm(6), lambda: [normal(3, 6)], {}),
    ("embedding", lambda: nn.Embedding(10, 4), lambda: [ids(3, 5)], {}),
    ("relu", lambda: nn.ReLU(), lambda: [normal(3, 4)], {}),
    ("gelu", lambda: nn.GELU(), lambda: [normal(3, 4)], {}),
    ("gelu-tanh", lambda: nn.GELU(approximate="tanh"), lambda: [normal(3, 4)], {}),
    ("silu", lambda: nn.SiLU(), lambda: [normal(3, 4)], {}),
    ("tanh", lambda: nn.Tanh(), lambda: [normal(3, 4)], {}),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: [normal(3, 4)], {}),
    ("softmax", lambda: nn.Softmax(dim=1), lambda: [normal(3, 4, 2)], {}),
    ("log-softmax", lambda: nn.LogSoftmax(dim=-1), lambda: [normal(3, 4)], {}),
    ("leaky-relu", lambda: nn.LeakyReLU(0.2), lambda: [normal(3, 4)], {}),
    ("elu", lambda: nn.ELU(0.5), lambda: [normal(3, 4)], {}),
    ("softplus", lambda: nn.Softplus(beta=2.0, threshold=1.0), lambda: [normal(3, 4)], {}),
    ("dropout", lambda: nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2)), lambda: [normal(3, 4)], {}),
    ("upsample-nearest", lambda: nn.Upsample(scale_factor=2), lambda: [normal(2, 3, 3, 4)], {}),
    (
        "upsample-bilinear",
        lambda: nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
        lambda: [normal(2, 3, 3, 4)],
        {},
    ),
    ("upsample-linear", lambda: nn.Upsample(scale_factor=1.5, mode="linear"), lambda: [normal(2, 3, 4)], {}),
    ("lstm", lambda: nn.LSTM(3, 4, num_layers=2, batch_first=True), lambda: [normal(2, 5, 3)], {}),
    (
        "lstm-seq-first",
        lambda: nn.LSTM(3, 4, bidirectional=True),
        lambda: [normal(5, 2, 3)],
        {"dynamic_axes": {"input": {1: "batch"}}},
    ),
    ("gru", lambda: nn.GRU(3, 4, batch_first=True), lambda: [normal(2, 5, 3)], {}),
    ("lstm-cell", lambda: nn.LSTMCell(3, 4), lambda: [normal(2, 3)], {}),
    ("gru-cell", lambda: nn.GRUCell(3, 4), lambda: [normal(2, 3)], {}),
    ("attention", lambda: Attention(), lambda: [normal(2, 4, 8), np.array([[False] * 3 + [True]] * 2)], {}),
    (
        "attention-bool-mask",
        lambda: Attention(bool_mask=True),
        lambda: [normal(2, 4, 8), np.array([[False] * 4, [False] * 2 + [True] * 2])],
        {},
    ),
    (
        "encoder-layer",
        lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True),
        lambda: [normal(2, 4, 8)],
        {},
    ),
    (
        "encoder-layer-gelu-pre-norm",
        lambda: nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True, norm_first=True),
        lambda: [normal(4, 2, 8)],
        {"dynamic_axes": {"input": {1: "batch"}}},
    ),
    (
        "decoder-layer",
        lambda: Decoder(norm_first=False),
        lambda: [normal(2, 3, 8), normal(2, 4, 8, seed=1)],
        {},
    ),
    (
        "decoder-layer-pre-norm",
        lambda: Decoder(norm_first=True),
        lambda: [normal(2, 3, 8), normal(2, 4, 8)],
        {},
    ),
    ("bilinear", lambda: BilinearPair(), lambda: [normal(3, 3), normal(3, 4, seed=2)], {}),
    ("flatten", lambda: nn.Flatten(), lambda: [normal(3, 2, 2, 2)], {}),
    ("unflatten", lambda: nn.Unflatten(1, (2, 3)), lambda: [normal(3, 6)], {}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer(case: tuple[Any, ...], backend: str) -> None:
    _, build, inputs, options = case
    arrays = inputs()
    axes = None
    if "dynamic_axes" in options:
        axes = [{a: 3 for a in options["dynamic_axes"].get("input", {0: None})}] + [{0: 3}] * (
            len(arrays) - 1
        )
    check(build, arrays, backend, axes=axes, **options)


# ---------------------------------------------------------------------- the examples' models and W1-W3
ROOT = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__)))


def example(name: str) -> Any:
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        f"onnx_export_{name}", os.path.join(ROOT, "examples", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODELS: list[tuple[str, Callable[[], nn.Module], Callable[[], list[np.ndarray]]]] = [
    ("digits-cnn", lambda: with_stats_all(example("digits_cnn").DigitsCNN()), lambda: [normal(3, 1, 8, 8)]),
    (
        "char-lm",
        lambda: example("char_lm").CharTransformer(vocab_size=12, seq_len=6, d_model=16, num_heads=2),
        lambda: [ids(2, 6, high=12)],
    ),
    (
        "lstm-forecaster",
        lambda: example("lstm_sequence").Forecaster(horizon=3, hidden=8),
        lambda: [normal(2, 6, 1)],
    ),
    ("w1-mlp", lambda: w1(), lambda: [normal(2, 784)]),
    (
        "w2-cnn",
        lambda: nn.Sequential(*__import__("benchmarks.w2_cnn").w2_cnn._layers(nn)),
        lambda: [normal(2, 1, 28, 28)],
    ),
    ("w3-lm", lambda: w3(), lambda: [ids(2, 64, high=256)]),
]


def with_stats_all(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with_stats(m)
    return model


def w1() -> nn.Module:
    from benchmarks.w1_mlp import SIZES

    layers: list[nn.Module] = []
    for a, b in zip(SIZES, SIZES[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def w3() -> nn.Module:
    """W3's model (benchmarks/w3_lm.py) as it is: its positions and causal mask are tensors its
    forward holds in a closure, on the model's backend."""
    from benchmarks.w3_lm import W3, _lm

    dev = ag.get_default_backend()
    mask = nn.Transformer.generate_square_subsequent_mask(W3.seq, device=dev)
    return _lm(nn, ag.arange(W3.seq, device=dev), mask, W3)()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MODELS, ids=[c[0] for c in MODELS])
def test_model(case: tuple[Any, ...], backend: str) -> None:
    _, build, inputs = case
    check(build, inputs(), backend, batch=3)


# ---------------------------------------------------------------------- one file from every backend
def test_same_file_from_every_backend() -> None:
    build = MODELS[1][1]  # the char LM: embeddings, attention, layer norms, a closure-free forward
    inputs = MODELS[1][2]()
    files = {}
    for name in ("numpy", "torch", "jax"):
        try:
            ag.backend(name)
        except (BackendUnavailable, ImportError):
            continue
        ag.manual_seed(0)
        with ag.default_backend(name):
            model = build()
        buf = io.BytesIO()
        ag.onnx.export(model, (ag.asarray(inputs[0], device=name),), buf)
        files[name] = buf.getvalue()
    assert len(files) >= 2, "needs two backends"
    assert len(set(files.values())) == 1, {k: len(v) for k, v in files.items()}


# ---------------------------------------------------------------------- names, dynamic axes, opsets
def dims(info: Any) -> list[Any]:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def test_names_and_dynamic_axes() -> None:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Unflatten(1, (3, 1)))
    x = ag.asarray(normal(2, 4))
    proto = ag.onnx.export(model, x, io.BytesIO(), input_names=["x"], output_names=["y"])
    assert [i.name for i in proto.graph.initializer][:2] == ["0.weight", "0.bias"]
    assert dims(proto.graph.input[0]) == ["batch", 4] and dims(proto.graph.output[0]) == ["batch", 3, 1]
    static = ag.onnx.export(
        model, x, io.BytesIO(), input_names=["x"], output_names=["y"], dynamic_axes={"x": {}}
    )
    assert dims(static.graph.input[0]) == [2, 4] and dims(static.graph.output[0]) == [2, 3, 1]
    listed = ag.onnx.export(model, x, io.BytesIO(), input_names=["x"], output_names=["y"],
                            dynamic_axes={"x": {0: "n"}, "y": [0, 2]})  # fmt: skip
    assert dims(listed.graph.input[0]) == ["n", 4] and dims(listed.graph.output[0]) == ["batch", 3, "y_dim2"]
    with pytest.raises(ValueError, match="neither inputs"):
        ag.onnx.export(model, x, io.BytesIO(), dynamic_axes={"z": [0]})


def test_dynamic_sequence_axis() -> None:
    """A transformer layer with batch and sequence dynamic: attention's reshapes become shape nodes."""
    layer = LAYERS[[c[0] for c in LAYERS].index("encoder-layer")]
    check(layer[1], layer[2](), "numpy", axes=[{0: 3, 1: 7}], dynamic_axes={"input": {0: "batch", 1: "seq"}})


def test_older_opset() -> None:
    """Composites the opset cannot express whole (LayerNormalization needs 17, Softmax's axis 13)
    are exported as their primitives."""
    build = lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.GELU(), nn.Softmax(dim=-1))  # noqa: E731
    for opset in (11, 13, 17):
        check(build, [normal(3, 4)], "numpy", opset=opset)
    proto = ag.onnx.export(build(), ag.asarray(normal(3, 4)), io.BytesIO(), opset=13)
    assert proto.opset_import[0].version == 13
    assert "LayerNormalization" not in {n.op_type for n in proto.graph.node}


def test_too_old_opset_names_the_op_and_its_minimum() -> None:
    with pytest.raises(ExportError, match=r"'take' needs ONNX opset 11 or newer.*opset 9"):
        ag.onnx.export(nn.Embedding(10, 4), ag.asarray(ids(2, 3)), io.BytesIO(), opset=9)
    with pytest.raises(ValueError, match="opset must be an int from 7"):
        ag.onnx.export(nn.ReLU(), ag.asarray(normal(2)), io.BytesIO(), opset=3)


class Bitcasts(nn.Module):
    """Bitcasts of an input, of a parameter and to and from bool."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(ag.asarray([2.0, -0.5, 1.0]))

    def forward(self, x: ag.Tensor) -> Any:
        return (
            ag.bitcast(x * self.scale, ag.int32),
            ag.bitcast(self.scale, ag.int32),
            ag.bitcast(x > 0, ag.uint8),
            ag.bitcast(ag.bitcast(x, ag.int32) & -65536, ag.float32),  # float32 truncated to bfloat16
            ag.bitcast(x.astype(ag.float16), ag.int16),
        )


def _bitcasts_in_numpy(x: np.ndarray) -> list[np.ndarray]:
    scale = np.array([2.0, -0.5, 1.0], np.float32)
    return [
        (x * scale).view(np.int32),
        scale.view(np.int32),
        (x > 0).view(np.uint8),
        (x.view(np.int32) & np.int32(-65536)).view(np.float32),
        x.astype(np.float16).view(np.int16),
    ]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_bitcast_exports_at_opset_26(backend: str) -> None:
    """ONNX has BitCast from opset 26: at the default opset (23) the export says so; at 26 the file
    passes the full checker and ONNX's reference evaluator gives NumPy's views, at two batch sizes,
    as does ONNX Runtime where it implements BitCast (not required: older versions do not)."""
    from onnx.reference import ReferenceEvaluator

    dev = device(backend)
    with ag.default_backend(dev):
        model = Bitcasts()
    x = np.array([[1.0, -0.0, np.nan], [np.inf, -3.5, 1e-30]], np.float32)  # no subnormal: XLA flushes them
    with pytest.raises(
        ExportError, match=r"op 'bitcast' needs ONNX opset 26 or newer, and opset 23 was asked"
    ):
        ag.onnx.export(model, dev.tensor(x), io.BytesIO())
    proto = ag.onnx.export(model, dev.tensor(x), io.BytesIO(), opset=26)
    onnx.checker.check_model(proto, full_check=True)
    assert {"BitCast", "Cast"} <= {n.op_type for n in proto.graph.node}
    runners = [ReferenceEvaluator(proto)]
    try:
        runners.append(ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]))
    except Exception as exc:  # an ONNX Runtime without BitCast (or opset 26)
        assert "BitCast" in str(exc) or "opset" in str(exc).lower(), exc
    for feed, runner in ((f, r) for f in (x, resized(x, {0: 5})) for r in runners):
        want = _bitcasts_in_numpy(feed)
        eager = [t.numpy() for t in model(dev.tensor(feed))]
        got = runner.run(None, {proto.graph.input[0].name: feed})
        assert len(got) == len(want) == len(eager)
        for g, e, w in zip(got, eager, want):
            assert g.dtype == e.dtype == w.dtype and g.shape == e.shape == w.shape, (g, e, w)
            bits = {1: np.uint8, 2: np.uint16, 4: np.uint32}[w.itemsize]
            np.testing.assert_array_equal(np.ascontiguousarray(g).view(bits), w.view(bits))
            np.testing.assert_array_equal(np.ascontiguousarray(e).view(bits), w.view(bits))


# ---------------------------------------------------------------------- what cannot be exported
class Branch(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        if x.sum() > 0:  # BRANCH
            return x * 2
        return x


class ReadsParameter(nn.Module):
    """A host read of a value computed only from parameters is fine: it is a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(ag.asarray([2.0]))

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return x * self.scale if float(self.scale.sum()) > 0 else x


class Cumprod(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return ag.cumprod(x, axis=1)


class Inverse(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return ag.linalg.inv(x)  # INV


class LoopOverRows(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        total = x[:, 0]
        for i in range(1, x.shape[1]):  # LOOP
            total = total + x[:, i]
        return total


class SizeAsFloat(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return x * float(x.shape[0])  # SIZE


class MeanOverBatch(nn.Module):
    """A dynamic size as an operand stays symbolic: computed in the graph."""

    def forward(self, x: ag.Tensor) -> tuple[ag.Tensor, ag.Tensor]:
        return x.sum(axis=0) / x.shape[0], x.reshape(x.shape[0] * 2, -1)[: x.shape[0] + 1].mean(axis=0)


class Random(nn.Module):
    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return x + x.device.randn(*x.shape)  # DRAW


def marked_line(tag: str) -> str:
    with open(__file__) as f:
        line = next(i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# {tag}"))
    return f"test_onnx_export.py:{line}"


def test_branch_on_a_tensor_value_names_the_line() -> None:
    with pytest.raises(ExportError, match=marked_line("BRANCH")):
        ag.onnx.export(Branch(), ag.asarray(normal(2, 3)), io.BytesIO())
    check(ReadsParameter, [normal(2, 1)], "numpy")


def test_unsupported_op_names_the_op_and_line() -> None:
    with pytest.raises(ExportError, match=marked_line("INV") + ": op 'inv' has no ONNX form"):
        ag.onnx.export(Inverse(), ag.asarray(normal(2, 3, 3)), io.BytesIO())


def test_op_newer_than_the_opset_names_the_opset_it_needs() -> None:
    with pytest.raises(
        ExportError, match="op 'cumprod' needs ONNX opset 26 or newer, and opset 23 was asked for"
    ):
        ag.onnx.export(Cumprod(), ag.asarray(normal(2, 3)), io.BytesIO(), opset=23)
    check(Cumprod, [normal(2, 3)], "numpy", opset=26)


def test_graph_that_depends_on_a_dynamic_axis() -> None:
    x = ag.asarray(normal(2, 4))
    with pytest.raises(ExportError, match=r"(?i)axis 1 of input 'input'.*mark the axis static"):
        ag.onnx.export(LoopOverRows(), x, io.BytesIO(), dynamic_axes={"input": [0, 1]})
    check(LoopOverRows, [normal(2, 4)], "numpy")  # a static axis 1 is fine
    with pytest.raises(ExportError, match=r"axis 0 of input 'input'.*" + marked_line("SIZE")):
        ag.onnx.export(SizeAsFloat(), x, io.BytesIO())
    check(MeanOverBatch, [normal(4, 6)], "numpy")
    seq_first = nn.LSTM(3, 4)  # axis 0 is the sequence: the loop runs over it
    with pytest.raises(ExportError, match="axis 0 of input 'input'"):
        ag.onnx.export(seq_first, ag.asarray(normal(5, 2, 3)), io.BytesIO())


def test_random_draw_names_the_line() -> None:
    with pytest.raises(ExportError, match=marked_line("DRAW")):
        ag.onnx.export(Random(), ag.asarray(normal(2, 3)), io.BytesIO())


def test_model_is_restored() -> None:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    model.train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(ExportError):
        ag.onnx.export(nn.Sequential(model, Branch()), ag.asarray(normal(2, 3)), io.BytesIO())
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(
        type(after[k].data) is np.ndarray and np.array_equal(after[k].numpy(), v) for k, v in before.items()
    )
    y = model(ag.asarray(normal(4, 3)))  # still runs eagerly on its backend
    assert y.shape == (4, 3)
