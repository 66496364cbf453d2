"""torch.nn models exported with torch.onnx.export load with `agnostic.onnx.load` and compute
what torch computes, on every backend: a small CNN with BatchNorm and MaxPool, and a two-layer
TransformerEncoder; the CNN then fine-tunes with torch's gradients."""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import optim
from agnostic.onnx import load

torch = pytest.importorskip("torch")

BACKENDS = available_backends()


class _CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)  # after the ReLU: kept as a BatchNormalization node
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.bn(torch.relu(self.conv(x)))), 1))


def _export(model, example, dynamic_batch: bool) -> bytes:
    """The legacy (TorchScript) exporter: it needs no onnxscript."""
    f = io.BytesIO()
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), f, dynamo=False, input_names=["x"], output_names=["y"], dynamic_axes=axes
        )
    return f.getvalue()


@functools.cache
def _cnn() -> tuple[object, bytes]:
    torch.manual_seed(0)
    model = _CNN()
    with torch.no_grad():  # running statistics that are not the defaults
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    return model, _export(model, torch.randn(2, 1, 8, 8), dynamic_batch=True)


@functools.cache
def _transformer() -> tuple[object, bytes]:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    return model, _export(model, torch.randn(2, 5, 16), dynamic_batch=False)


def _input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize(
    "which, shape", [("cnn", (6, 1, 8, 8)), ("transformer", (2, 5, 16))], ids=["cnn", "transformer"]
)
def test_an_exported_torch_model_matches_torch(
    backend: ag.Device, which: str, shape: tuple[int, ...]
) -> None:
    torch_model, data = {"cnn": _cnn, "transformer": _transformer}[which]()
    x = _input(shape)
    with torch.no_grad():
        expected = torch_model(torch.tensor(x)).numpy()
    got = load(data, backend=backend)(backend.tensor(x))
    assert got.device == backend and got.dtype == ag.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_the_exported_cnn_keeps_its_batchnorm_and_torchs_parameter_names() -> None:
    torch_model, data = _cnn()
    model = load(data)
    ops = {node.op_type for node, _, _ in model._graph.steps}
    assert {"Conv", "BatchNormalization", "MaxPool", "Gemm"} <= ops
    assert set(torch_model.state_dict()) - {"bn.num_batches_tracked"} == set(model.state_dict())
    assert {n for n, _ in torch_model.named_parameters()} == {n for n, _ in model.named_parameters()}
    assert {"bn.running_mean", "bn.running_var"} <= {n for n, _ in model.named_buffers()}
    for name, value in torch_model.state_dict().items():
        if name in model.state_dict():
            np.testing.assert_array_equal(model.state_dict()[name].numpy(), value.numpy())


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_an_exported_cnn_fine_tunes_with_torchs_gradients(backend: ag.Device) -> None:
    torch_model, data = _cnn()
    model = load(data, backend=backend)
    x = _input((6, 1, 8, 8))
    y = np.array([0, 1, 2, 0, 1, 2])
    loss = ag.cross_entropy(model(backend.tensor(x)), backend.tensor(y))
    loss.backward()
    torch_model.zero_grad()
    ref = torch.nn.functional.cross_entropy(torch_model(torch.tensor(x)), torch.tensor(y))
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    named = dict(model.named_parameters())
    for name, p in torch_model.named_parameters():
        np.testing.assert_allclose(
            named[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name
        )

    opt = optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = ag.cross_entropy(model(backend.tensor(x)), backend.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name in ("torch", "jax")], ids=lambda b: b.name)
@pytest.mark.parametrize("which", ["cnn", "transformer"])
def test_an_exported_torch_model_compiles(backend: ag.Device, which: str) -> None:
    """torch's export computes shapes at run time (Shape, Gather, Concat before a Reshape): they stay
    on the host, so the compiled step is static."""
    torch_model, data = {"cnn": _cnn, "transformer": _transformer}[which]()
    x = _input((6, 1, 8, 8) if which == "cnn" else (2, 5, 16))
    model = load(data, backend=backend)
    compiled = ag.compile(lambda x: model(x))
    with torch.no_grad():
        expected = torch_model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(compiled(backend.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
