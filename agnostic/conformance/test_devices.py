"""Tensors on a device other than the backend's default: every kind of op runs there, its results
stay there, values equal the default device's, and gradients come back to the device they belong to.

These run where the backend sees a second device (a second GPU; for JAX on a CPU machine, start
Python with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``); elsewhere they are skipped with
that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance.support import assert_close, rng

COVERS: set[str] = set()  # the ops are covered elsewhere; this module checks where results live


@pytest.fixture
def second(backend: ag.Device) -> ag.Device:
    """Another device of the backend under test (skips when it has one device here)."""
    ops = backend.ops
    others = [d for d in type(ops).devices() if ops.canonical_device(d) != backend.device]
    if not others:
        pytest.skip(f"backend {backend.name!r} has one device here ({backend.device!r})")
    return ag.backend(backend.name, others[0])


def _program(device: ag.Device) -> dict[str, ag.Tensor]:
    """One of each kind of op (creation, random, elementwise, reduction, linear algebra, shape,
    indexing, nn composites, convolution and pooling, sorting, a scan, a data-dependent shape)."""
    r = rng(3)
    x = device.tensor(r.standard_normal((2, 3, 6, 6)), dtype=ag.float32)
    w = device.tensor(r.standard_normal((4, 3, 3, 3)), dtype=ag.float32)
    labels = device.tensor([1, 3])
    feats = ag.functional.max_pool2d(ag.relu(ag.functional.conv2d(x, w, padding=1)), 2)
    logits = ag.mean(feats, axis=(2, 3)) @ device.eye(4) + device.arange(4, dtype=ag.float32)
    noise = device.randn(2, 4, seed=7)
    y = device.zeros(5).at[device.tensor([0, 2, 2])].add(device.ones(3))
    return {
        "logits": logits,
        "softmax": ag.softmax(logits + noise, axis=-1),
        "loss": ag.cross_entropy(logits, labels),
        "sorted": ag.sort(ag.reshape(feats, (-1,)), descending=True),
        "cumsum": ag.cumsum(ag.flip(noise, axis=1), axis=1),
        "scatter": y,
        "picked": ag.take(ag.reshape(x, (-1,)), device.tensor([0, 5, 7])),
        "nonzero": ag.nonzero(y > 0)[0],
        "where": ag.where(noise > 0, noise, 0.0),
        "concat": ag.concat([noise, ag.sigmoid(noise)], axis=0),
        "avg": ag.functional.avg_pool2d(x, 3, stride=2),
        "uniform": device.rand(3, seed=11),
    }


def test_ops_on_a_second_device_stay_there_and_match(backend: ag.Device, second: ag.Device) -> None:
    here, there = _program(backend), _program(second)
    for name, t in there.items():
        assert t.device is second, f"{name} is on {t.device}, not {second}"
        assert_close(t, here[name].numpy(), dtype=here[name].dtype, rtol=1e-6, atol=1e-6)


def test_gradients_stay_on_the_second_device(backend: ag.Device, second: ag.Device) -> None:
    r = rng(4)
    w = second.tensor(r.standard_normal((3, 5)), dtype=ag.float64, requires_grad=True)
    x = second.tensor(r.standard_normal((4, 3)), dtype=ag.float64)
    loss = ag.cross_entropy(ag.tanh(x @ w), second.tensor([0, 1, 4, 2]))
    loss.backward()
    assert w.grad is not None and w.grad.device is second
    (g,) = ag.grad(lambda w: ag.cross_entropy(ag.tanh(x @ w), second.tensor([0, 1, 4, 2])))(w.detach())
    assert g.device is second
    assert_close(g, w.grad.numpy(), dtype=ag.float64)


def test_moves_between_devices_carry_values_and_gradients(backend: ag.Device, second: ag.Device) -> None:
    x = backend.tensor([1.0, 2.0, 3.0], dtype=ag.float64, requires_grad=True)
    y = x.to(second)
    assert y.device is second and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.device is backend
    assert_close(x.grad, [2.0, 4.0, 6.0], dtype=ag.float64)
    np.testing.assert_array_equal(y.to(backend).numpy(), x.numpy())


def test_mixing_devices_in_one_op_names_both(backend: ag.Device, second: ag.Device) -> None:
    a, b = backend.ones(3), second.ones(3)
    with pytest.raises(ValueError, match="different backends/devices") as info:
        _ = a + b
    assert str(backend) in str(info.value) and str(second) in str(info.value)
