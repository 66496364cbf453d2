"""What the JAX backend promises beyond the conformance suite: 64-bit types are real (never silently
32-bit), whatever the user's own 64-bit setting (tests/test_global_settings.py checks that agnostic
leaves it alone), device names map to JAX devices with clear errors, and subnormal flushing is
declared."""

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


def test_64_bit_types_stay_real_inside_the_users_32_bit_block(J: ag.Device) -> None:
    import jax.numpy as jnp

    with jax.enable_x64(False):
        x = J.tensor([1.0, 2.0**-40, 2.0**-40], dtype=ag.float64)
        assert x._data.dtype == np.float64 and x.sum().item() == 1.0 + 2.0**-39
        i = J.arange(3)
        assert i._data.dtype == np.int64
        assert (J.tensor([2**40]) + i).numpy().tolist() == [2**40, 2**40 + 1, 2**40 + 2]
        assert (x.astype(ag.int64) + 2**40)._data.dtype == np.int64
        with pytest.raises(ValueError, match="integer"):  # JAX raises inside an op: restored too
            J.ops.take(x._data, x._data, 0)
        # the user's code beside agnostic's keeps the block's 32-bit defaults
        assert not jax.config.jax_enable_x64
        assert jnp.zeros(3).dtype == np.float32 and jnp.arange(3).dtype == np.int32


def test_a_compiled_program_is_called_in_64_bit_mode(J: ag.Device) -> None:
    a = J.tensor(np.int64(2**24 + 1))
    run = J.ops.compile_traced(J.ops.trace(lambda v: [v * 256 + 1], [a._data], None), None)
    with jax.enable_x64(False):
        (out,) = run(np.int64(2**24 + 1))  # a host array: JAX reads it in the calling thread's mode
    assert out.dtype == np.int64 and int(out) == (2**24 + 1) * 256 + 1
