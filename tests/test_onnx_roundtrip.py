"""Round trip: a model exported by agnostic (the file is the same from every backend) loads with
`agnostic.onnx.load` on every backend and gives the eager model's outputs there, for every nn layer
and every model the export tests cover; the loaded model also keeps training (its initializers are
Parameters under the state_dict names the export gave them)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")

from test_onnx_export import LAYERS, MODELS, device, leaves, normal, resized

import agnostic as ag
from agnostic import nn, optim

BACKENDS = ("numpy", "torch", "jax", "cupy")
CASES = [(name, build, inputs, options) for name, build, inputs, options in LAYERS] + [
    (name, build, inputs, {}) for name, build, inputs in MODELS
]


def exported(build: Any, inputs: list[np.ndarray], options: dict[str, Any]) -> tuple[nn.Module, bytes]:
    """The model built on NumPy (seeded, eval mode) and its ONNX file."""
    ag.manual_seed(0)
    with ag.default_backend(ag.backend("numpy")):
        model = build()
    model.eval()
    buf = io.BytesIO()
    ag.onnx.export(model, tuple(ag.asarray(a) for a in inputs), buf, **options)
    return model, buf.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_export_then_load_on_every_backend(case: tuple[Any, ...], backend: str) -> None:
    _, build, make_inputs, options = case
    dev = device(backend)
    inputs = make_inputs()
    model, data = exported(build, inputs, options)
    loaded = ag.onnx.load(data, backend=dev).eval()
    axes = [{0: 3} if a.ndim else {} for a in inputs]
    if "dynamic_axes" in options:
        axes[0] = {a: 3 for a in options["dynamic_axes"].get("input", {0: None})}
    for feed in (inputs, [resized(a, s) for a, s in zip(inputs, axes)]):
        with ag.no_grad():
            want = [t.numpy() for t in leaves(model(*(ag.asarray(a) for a in feed)))]
            got = [t.numpy() for t in leaves(loaded(*(dev.tensor(a) for a in feed)))]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exported_model_fine_tunes_after_loading(backend: str) -> None:
    """Export the digits CNN's kind of network, load it on `backend`, train it with Adam: its
    parameters carry the exported state_dict names and the loss falls as the original's does."""
    dev = device(backend)
    ag.manual_seed(0)
    with ag.default_backend(ag.backend("numpy")):
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
        )
    x = normal(16, 1, 8, 8)
    y = np.random.default_rng(2).integers(0, 3, 16)
    buf = io.BytesIO()
    ag.onnx.export(model, (ag.asarray(x[:2]),), buf)
    loaded = ag.onnx.load(buf.getvalue(), backend=dev)
    assert sorted(loaded.state_dict()) == sorted(model.state_dict())
    opt = optim.Adam(loaded.parameters(), lr=1e-2)
    xs, ys = dev.tensor(x), dev.tensor(y)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = ag.cross_entropy(loaded(xs), ys)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
