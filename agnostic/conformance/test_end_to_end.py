"""End to end: the same seeded model, trained a few steps, gives the same numbers on every backend.

The NumPy backend is the reference. Initial parameters must be bit-identical (random numbers are
drawn on the host from one counter-based generator); losses after training agree within float32
rounding (documented tolerance: relative 1e-4 after 30 steps).
"""

from __future__ import annotations

import numpy as np

import agnostic as ag
from agnostic import demo

COVERS = {
    "random_uniform",
    "random_normal",
    "random_bernoulli",
    "random_integers",
    "matmul",
    "tanh",
    "cross_entropy",
}

LOSS_RTOL = 1e-4


def _train(backend: ag.Device, steps: int) -> tuple[list[np.ndarray], list[float]]:
    x, y = demo.spirals(64, 0.02, seed=3)
    xt, yt = backend.tensor(x), backend.tensor(y)
    layers = demo.init_mlp(backend, [2, 16, 16, 2], seed=7)
    init = [layer[k].numpy().copy() for layer in layers for k in ("w", "b")]
    step = ag.value_and_grad(demo.loss_fn, argnums=0)
    losses = []
    for _ in range(steps):
        loss, grads = step(layers, xt, yt)
        layers = [{k: p[k] - 0.5 * g[k] for k in p} for p, g in zip(layers, grads)]
        losses.append(loss.item())
    return init, losses


def test_same_seed_gives_bit_identical_random_numbers(backend: ag.Device) -> None:
    ref = ag.backend("numpy")
    for make in (
        lambda b: b.randn(5, 7, seed=11),
        lambda b: b.rand(3, 4, seed=12, dtype=ag.float64),
        lambda b: b.uniform((6,), -2.0, 3.0, seed=13),
        lambda b: b.bernoulli((4, 4), 0.3, seed=14),
        lambda b: b.randint(0, 10, (8,), seed=15),
        lambda b: b.normal((2, 3), 1.0, 2.0, generator=ag.Generator(16), dtype=ag.bfloat16),
    ):
        got, want = make(backend), make(ref)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_same_seeded_network_trains_to_the_same_losses(backend: ag.Device) -> None:
    init, losses = _train(backend, 30)
    ref_init, ref_losses = _train(ag.backend("numpy"), 30)
    for a, b in zip(init, ref_init):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(losses, ref_losses, rtol=LOSS_RTOL)
    assert losses[-1] < losses[0]
