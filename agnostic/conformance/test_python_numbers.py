"""Python numbers keep their full precision until the requested dtype applies.

Every path from a Python int or float to a tensor (asarray of scalars and nested lists, the creation
functions, `full`, scalar operands, `clip` bounds, `where` branches, functional updates, `linspace`,
`arange`) is checked with values that float32 would change: 16777217.0 (2**24 + 1), 1e-300 (below
float32's range), 1e300 (above it), 0.1, and for the low-precision dtypes a value that rounds one
way when rounded once and the other way when rounded through float32 first. The reference is the
value itself, rounded once by NumPy (ml_dtypes for bfloat16).
"""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes

COVERS = {"full", "add", "mul", "maximum", "clip", "where", "arange", "cast"}

F64 = dtypes.float64
VALUES = [16777217.0, 1e-300, 1e300, 0.1, -2.5e-310]  # the last is subnormal in float64
BIG_INT = 2**62 + 1  # exact in int64, not in float64
DOUBLE_ROUNDING = 1 + 2**-8 + 2**-30
"""Rounded once to bfloat16 it is 1 + 2**-7; through float32 first it is the tie 1 + 2**-8, which
rounds to even: 1.0. (For float16, 1 + 2**-11 + 2**-30 plays the same part.)"""


def _exact(out: ag.Tensor, value: float | int, dtype: dtypes.DType = F64) -> None:
    assert out.dtype == dtype, f"dtype {out.dtype} != {dtype}"
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf
        want = np.asarray(value).astype(dtypes.to_numpy_dtype(dtype))
    got = out.numpy()
    assert np.array_equal(got, np.broadcast_to(want, got.shape)), f"got {got}, want {want!r}"


@pytest.fixture
def flush_subnormals(backend: ag.Device) -> bool:
    """Whether the backend flushes float64 subnormals to zero in arithmetic (XLA on CPU does)."""
    tiny = backend.full((1,), 2.5e-310, dtype=F64)
    return bool((tiny * 1.0).numpy()[0] == 0.0)


def _skip_flushed(value: float, flushes: bool) -> None:
    if flushes and 0 < abs(value) < np.finfo(np.float64).smallest_normal:
        pytest.skip("the backend flushes float64 subnormals to zero in arithmetic")


@pytest.mark.parametrize("value", VALUES)
def test_asarray_of_a_python_float_keeps_float64_precision(backend: ag.Device, value: float) -> None:
    _exact(ag.asarray(value, dtype=F64, device=backend), value)
    _exact(backend.tensor([[value, -value]], dtype="float64"), [[value, -value]])
    _exact(ag.asarray((value, [value][0]), dtype=F64, device=backend), [value, value])


@pytest.mark.parametrize("value", VALUES)
def test_without_a_dtype_python_floats_become_float32(backend: ag.Device, value: float) -> None:
    _exact(ag.asarray(value, device=backend), value, dtypes.float32)
    _exact(backend.tensor([value, 1]), [value, 1.0], dtypes.float32)


@pytest.mark.parametrize(
    ("dtype", "value"), [("bfloat16", DOUBLE_ROUNDING), ("float16", 1 + 2**-11 + 2**-30)]
)
def test_low_precision_dtypes_round_python_floats_once(backend: ag.Device, dtype: str, value: float) -> None:
    d = dtypes.as_dtype(dtype)
    out = ag.asarray([value], dtype=d, device=backend)
    _exact(out, [value], d)
    assert float(out.numpy()[0]) != 1.0  # rounded through float32 first it would be the tie's even: 1.0
    _exact(backend.full((2,), value, dtype=d), value, d)


def test_python_ints_keep_int64_precision(backend: ag.Device) -> None:
    _exact(ag.asarray(BIG_INT, device=backend), BIG_INT, dtypes.int64)
    _exact(ag.asarray([BIG_INT, -BIG_INT], dtype="int64", device=backend), [BIG_INT, -BIG_INT], dtypes.int64)
    _exact(backend.full((2,), BIG_INT, dtype="int64"), BIG_INT, dtypes.int64)
    _exact(backend.zeros(2, dtype="int64") + BIG_INT, BIG_INT, dtypes.int64)
    _exact(
        backend.arange(BIG_INT, BIG_INT + 3, dtype="int64"), [BIG_INT, BIG_INT + 1, BIG_INT + 2], dtypes.int64
    )
    # an int too big for float32's 24 bits, asked for as float64, is rounded once from the int
    _exact(ag.asarray(2**53 + 1, dtype=F64, device=backend), float(2**53), F64)
    _exact(ag.asarray(16777217, dtype=F64, device=backend), 16777217.0, F64)


def test_python_ints_beyond_int64_are_floats_when_a_float_dtype_is_asked(backend: ag.Device) -> None:
    _exact(ag.asarray(2**70, dtype=F64, device=backend), float(2**70))
    _exact(ag.asarray([2**63, -(2**70)], dtype=F64, device=backend), [float(2**63), -float(2**70)])
    with pytest.raises(OverflowError, match="out of range for int64"):
        ag.asarray([1, 2**70], device=backend)
    with pytest.raises(OverflowError, match="out of range for int64"):
        ag.asarray(2**63, device=backend)


@pytest.mark.parametrize("value", VALUES)
def test_creation_functions_keep_float64_precision(backend: ag.Device, value: float) -> None:
    _exact(backend.full((2, 3), value, dtype=F64), value)
    _exact(ag.full((2,), value, dtype=F64, device=backend), value)
    _exact(ag.full_like(backend.zeros(3, dtype=F64), value), value)
    _exact(backend.linspace(value, value, 3, dtype=F64), [value] * 3)
    _exact(ag.linspace(0.0, value, 2, dtype=F64, device=backend), [0.0, value])


def test_arange_keeps_float64_precision(backend: ag.Device) -> None:
    start = 16777217.0
    _exact(backend.arange(start, start + 3, 1.0, dtype=F64), [start, start + 1, start + 2])
    _exact(ag.arange(1e-300, 3e-300, 1e-300, dtype=F64, device=backend)[:1], [1e-300])


@pytest.mark.parametrize("value", VALUES)
def test_scalar_operands_keep_float64_precision(
    backend: ag.Device, value: float, flush_subnormals: bool
) -> None:
    _skip_flushed(value, flush_subnormals)
    zeros, ones = backend.zeros(3, dtype=F64), backend.ones(3, dtype=F64)
    _exact(zeros + value, value)
    _exact(value + zeros, value)
    _exact(ones * value, value)
    _exact(value * ones, value)
    _exact(ag.maximum(zeros - 1e308, value), value)
    _exact(ag.where(zeros > 0, zeros, value), value)
    _exact(ag.where(zeros == 0, value, zeros), value)


@pytest.mark.parametrize("value", VALUES)
def test_clip_bounds_keep_float64_precision(backend: ag.Device, value: float, flush_subnormals: bool) -> None:
    _skip_flushed(value, flush_subnormals)
    low, high = backend.full((3,), -1e308, dtype=F64), backend.full((3,), 1e308, dtype=F64)
    _exact(ag.clip(low, min=value), value)
    _exact(ag.clip(high, max=value), value)
    _exact(ag.clip(low, value, value), value)


@pytest.mark.parametrize("value", VALUES)
def test_functional_updates_keep_float64_precision(
    backend: ag.Device, value: float, flush_subnormals: bool
) -> None:
    _skip_flushed(value, flush_subnormals)
    x = backend.zeros(3, dtype=F64)
    _exact(x.at[1].set(value)[1], value)
    _exact(x.at[1:].set(value)[1:], value)


def test_an_integer_tensor_with_a_python_float_gives_the_default_float(backend: ag.Device) -> None:
    """int64 with a weak float scalar promotes to float32 (the Array API's mixed-kind case, decided
    as torch and JAX do): the scalar is rounded once, to float32."""
    _exact(backend.zeros(2, dtype="int64") + 16777217.0, 16777216.0, dtypes.float32)


def test_python_sequence_operands_are_weak_like_python_scalars(backend: ag.Device) -> None:
    """`x64 + [0.1, 1e-300]` keeps float64 precision (a list took the default float32 before);
    a NumPy array operand keeps its own dtype."""
    x = backend.zeros(2, dtype=F64)
    _exact(x + [0.1, 1e-300], [0.1, 1e-300])
    _exact([16777217.0, 0.1] * backend.ones(2, dtype=F64), [16777217.0, 0.1])
    _exact(backend.zeros(2, dtype="int32") + [1, 2], [1, 2], dtypes.int32)
    _exact(backend.zeros(2, dtype="int32") + [0.5, 1.5], [0.5, 1.5], dtypes.float32)
    _exact(x + np.array([0.1, 0.2], dtype=np.float32), np.array([0.1, 0.2], dtype=np.float32), F64)
