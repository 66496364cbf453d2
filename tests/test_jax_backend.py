"""What the JAX backend promises beyond the conformance suite: 64-bit types are real (never silently
32-bit), device names map to JAX devices with clear errors, and subnormal flushing is declared."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'agnostic[jax]')")


@pytest.fixture(scope="module")
def J() -> ag.Device:
    return ag.backend("jax")


def test_float64_and_int64_are_not_narrowed(J: ag.Device) -> None:
    x = J.tensor(np.array([1e300, 1.0 + 2**-40]), dtype=ag.float64)
    assert x.dtype is ag.float64 and x._data.dtype == np.float64
    np.testing.assert_array_equal(x.numpy(), [1e300, 1.0 + 2**-40])
    i = J.tensor([2**40 + 1])
    assert i.dtype is ag.int64 and int((i * 2).item()) == 2**41 + 2
    assert J.zeros(2).dtype is ag.float32 and J.zeros(2)._data.dtype == np.float32  # default stays 32-bit


def test_results_are_committed_to_the_backend_device(J: ag.Device) -> None:
    y = ag.softmax(J.randn(3, 4, seed=0), axis=-1)
    assert y._data.devices() == {jax.devices("cpu")[0]}


def test_device_names(J: ag.Device) -> None:
    from agnostic.backends.jax import JaxBackend

    assert JaxBackend.canonical_device(None) == JaxBackend.canonical_device("cpu:0") == "cpu"
    assert JaxBackend.devices()[0] == "cpu"
    if not JaxBackend._platform_devices("gpu"):
        with pytest.raises(ValueError, match=r"unknown device 'gpu:0': JAX sees no GPU .*jax\[cuda12\]"):
            ag.backend("jax", "gpu:0")
        with pytest.raises(ValueError, match=r"unknown device 'gpu:0'"):
            ag.backend("jax", 0)
    with pytest.raises(ValueError, match=r"unknown device 'abacus'; available: cpu"):
        ag.backend("jax", "abacus")
    n = len(JaxBackend._platform_devices("cpu"))
    with pytest.raises(ValueError, match=rf"unknown device 'cpu:{n}': JAX sees {n} CPU device"):
        ag.backend("jax", f"cpu:{n}")


def test_subnormal_flushing_is_declared_where_it_happens(J: ag.Device) -> None:
    tiny = np.finfo(np.float32).tiny / 4
    flushed = float((J.tensor([tiny]) * 1.0).item()) == 0.0
    assert J.ops.flushes_subnormals == flushed


def test_turning_64_bit_mode_off_is_an_error_not_a_silent_float32(J: ag.Device) -> None:
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(TypeError, match=r"asked for float64, JAX made float32: JAX's 64-bit mode"):
            J.tensor([1.0], dtype=ag.float64)
        with pytest.raises(TypeError, match=r"asked for int64, JAX made int32"):
            J.arange(3)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert J.tensor([1.0], dtype=ag.float64).dtype is ag.float64
