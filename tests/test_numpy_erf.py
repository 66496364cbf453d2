"""The NumPy backend's own erf (NumPy has none): scipy's erf as the reference at the band edges
of its piecewise formula, on special values and in every float dtype, and what it allocates."""

from __future__ import annotations

import tracemalloc

import ml_dtypes
import numpy as np
import pytest
import scipy.special

import agnostic as ag
from agnostic.backends import _xp_special

EDGES = [0.84375, 1.25, 1 / 0.35, 6.0]


def _values() -> np.ndarray:
    rng = np.random.default_rng(0)
    around = [np.nextafter(e, d) for e in EDGES for d in (0.0, np.inf)] + EDGES
    spread = [rng.normal(size=5000) * s for s in (0.1, 1.0, 3.0, 10.0)]
    return np.concatenate([np.array(around), -np.array(around), *spread, [1e-300, 5e-324, 1e300]])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e300 is inf in 16 bits
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16], ids=str)
def test_erf_matches_scipy(dtype: type) -> None:
    x = _values().astype(dtype)
    got = ag.erf(ag.asarray(x, device="numpy")).numpy()
    assert got.dtype == x.dtype
    want = scipy.special.erf(x.astype(np.float64)).astype(dtype)  # rounded once to the dtype
    ulps = 2 if dtype == np.float64 else 1  # float64: fdlibm's few ulp; narrower: one rounding
    tol = ulps * np.abs(np.spacing(want)).astype(np.float64)
    assert np.all(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= tol)


def test_erf_special_values() -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 6.0, -6.0, 1e30], dtype=np.float32)
    got = ag.erf(ag.asarray(x, device="numpy")).numpy()
    np.testing.assert_array_equal(got, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0, 1.0])
    assert np.signbit(got[1]) and not np.signbit(got[0])


def test_erf_allocates_a_few_copies_of_its_input() -> None:
    """Each element is computed by its own band's formula: the peak is about 10 float32 inputs'
    worth (a float64 |x|, the float64 result, masks, one band's temporaries), where evaluating
    every band everywhere took 26."""
    x = np.random.default_rng(1).normal(size=1_000_000).astype(np.float32) * 2
    tracemalloc.start()
    _xp_special.erf(np, x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 * x.nbytes, peak / x.nbytes
