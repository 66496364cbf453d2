"""Every pair of backends available here agrees: the same seed builds bit-identical parameters, the
same network trained on the same data gives the same losses (float32 rounding: rtol 1e-4 after 30
steps), and tensors move between them with gradients flowing back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import demo

PAIRS = list(itertools.combinations(available_backends(), 2))
ORDERED_PAIRS = list(itertools.permutations(available_backends(), 2))


def _train(backend: ag.Device, steps: int = 30) -> tuple[list[np.ndarray], list[float]]:
    x, y = demo.spirals(64, 0.02, seed=5)
    xt, yt = backend.tensor(x), backend.tensor(y)
    layers = demo.init_mlp(backend, [2, 16, 16, 2], seed=9)
    params = [layer[k].numpy().copy() for layer in layers for k in ("w", "b")]
    step = ag.value_and_grad(demo.loss_fn, argnums=0)
    losses = []
    for _ in range(steps):
        loss, grads = step(layers, xt, yt)
        layers = [{k: p[k] - 0.5 * g[k] for k in p} for p, g in zip(layers, grads)]
        losses.append(loss.item())
    return params, losses


@pytest.mark.skipif(not PAIRS, reason="fewer than two backends can run here")
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0].name}-{p[1].name}")
def test_pair_builds_and_trains_the_same(pair: tuple[ag.Device, ag.Device]) -> None:
    (params_a, losses_a), (params_b, losses_b) = _train(pair[0]), _train(pair[1])
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(losses_a, losses_b, rtol=1e-4)


@pytest.mark.skipif(not PAIRS, reason="fewer than two backends can run here")
@pytest.mark.parametrize("pair", ORDERED_PAIRS, ids=lambda p: f"{p[0].name}-to-{p[1].name}")
def test_move_between_backends_keeps_values_and_gradients(pair: tuple[ag.Device, ag.Device]) -> None:
    src, dst = pair
    x = src.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    moved = x.to(dst)
    assert moved.device is dst
    np.testing.assert_array_equal(moved.numpy(), x.numpy())
    (moved * moved).sum().backward()
    assert x.grad.device is src
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3))
    with pytest.raises(
        ValueError, match=rf"add: tensors are on different backends/devices: .*{src.name}.*{dst.name}"
    ):
        x + moved
    bf = src.tensor([1.5, -2.25], dtype=ag.bfloat16) if src.name != "cupy" and dst.name != "cupy" else None
    if bf is not None:
        np.testing.assert_array_equal(bf.to(dst).numpy().astype(np.float32), [1.5, -2.25])


HOST_BACKENDS = {"numpy", "torch", "jax"}


@pytest.mark.parametrize(
    "pair",
    [p for p in ORDERED_PAIRS if {p[0].name, p[1].name} <= HOST_BACKENDS and p[1].name != "jax"],
    ids=lambda p: f"{p[0].name}-to-{p[1].name}",
)
def test_moves_between_host_backends_share_memory(pair: tuple[ag.Device, ag.Device]) -> None:
    """DLPack zero-copy: numpy and torch take any host buffer. (JAX takes one only when it is
    64-byte aligned, so moves into JAX copy or share depending on where the buffer was allocated.)"""
    src, dst = pair
    x = src.randn(4, 64, seed=3)
    assert np.shares_memory(x.numpy(), x.to(dst).numpy())
    if src.name != "jax":  # a strided slice is a view in numpy and torch (a new array in JAX)
        assert np.shares_memory(x.numpy(), x[:, 8:].to(dst).numpy())
