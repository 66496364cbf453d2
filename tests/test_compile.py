"""`ag.compile` beyond the per-backend conformance checks: torch.compile (inductor) through `mode`,
a transformer with attention and embeddings compiled on every backend, and bad options."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim

BACKENDS = available_backends()


def _transformer_step(
    backend: ag.Device, compiled: bool, mode: str | None = None
) -> tuple[list[float], np.ndarray]:
    ag.manual_seed(0)
    model = nn.Sequential(
        nn.Embedding(50, 16),
        nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True),
        nn.LayerNorm(16),
        nn.Linear(16, 50),
        backend=backend,
    )
    opt = optim.AdamW(model.parameters(), lr=0.01)
    r = np.random.default_rng(0)
    x, y = backend.tensor(r.integers(0, 50, (4, 10))), backend.tensor(r.integers(0, 50, (4, 10)))

    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        loss = ag.cross_entropy(model(x).reshape(-1, 50), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=False)
        opt.step()
        return loss

    fn = ag.compile(step, mode=mode) if compiled else step
    ag.manual_seed(3)
    losses = [fn(x, y).item() for _ in range(3)]
    return losses, model[3].weight.numpy()


@functools.cache
def _eager_numpy() -> tuple[list[float], np.ndarray]:
    """The reference: the eager step on NumPy (the same seeds give the same model everywhere)."""
    return _transformer_step(ag.backend("numpy"), False)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_a_compiled_transformer_step_matches_the_eager_one(backend: ag.Device) -> None:
    eager, compiled = _eager_numpy(), _transformer_step(backend, True)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=2e-5)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=2e-5, atol=1e-6)


def test_torch_compile_mode_builds_the_step_with_inductor() -> None:
    pytest.importorskip("torch", reason="torch.compile needs torch")
    eager = _eager_numpy()
    inductor = _transformer_step(ag.backend("torch"), True, mode="default")
    np.testing.assert_allclose(inductor[0], eager[0], rtol=1e-4)
    np.testing.assert_allclose(inductor[1], eager[1], rtol=1e-4, atol=1e-5)


def test_unknown_mode_is_named() -> None:
    with pytest.raises(ValueError, match="compile: mode 'fastest' is not one of"):
        ag.compile(lambda x: x, mode="fastest")


@pytest.mark.parametrize("limit", [0, -1, 2.5, "8", True])
def test_a_bad_recompile_limit_is_named(limit: object) -> None:
    with pytest.raises(ValueError, match="compile: recompile_limit must be a positive int or None"):
        ag.compile(lambda x: x, recompile_limit=limit)


def test_a_compiled_adam_step_takes_one_step_count_per_group() -> None:
    """The XLA program's inputs: each parameter and its two moments, the batch, the group's
    learning rate and one step count for the group (not one per parameter: each would be an
    input, an output and a scalar kernel of its own)."""
    pytest.importorskip("jax", reason="the program is read from XLA")
    B = ag.backend("jax")
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), backend=B)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = B.tensor(np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32))

    @ag.compile
    def step(x: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step(x)
    (entry,) = [e for entries in step._cache.values() for e in entries]
    program = entry.run.as_text().split("ENTRY")[1]
    assert program.count("parameter(") == 3 * 4 + 1 + 1 + 1, program.count("parameter(")
    states = list(opt.state.values())
    assert all(s["step"] is states[0]["step"] for s in states)
    assert float(states[0]["step"].item()) == 3.0
