"""The pieces behind the edge-case semantics (docs/conformance.md, "Edge cases"): the bounds of the
saturating float -> int cast are exact, and the NumPy backend keeps its warnings quiet with a local
error state, never NumPy's global one."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.backends.base import int_cast

FLOATS = [dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64]
INTS = [dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64, dtypes.uint8]


def _next_up(value: float, d: dtypes.DType) -> float:
    """The next value of float dtype `d` above `value` (inf past the largest)."""
    np_d = dtypes.to_numpy_dtype(d)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np_d.itemsize]
    raw = np.array(value, dtype=np_d).view(bits)
    step = raw + 1 if value >= 0 else raw - 1
    return float(np.array(step, dtype=bits).view(np_d).astype(np.float64))


@pytest.mark.parametrize("src", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("dst", INTS, ids=lambda d: d.name)
def test_the_cast_bounds_are_exact_and_tight(src: dtypes.DType, dst: dtypes.DType) -> None:
    plan, info = int_cast(src, dst), dtypes.iinfo(dst)
    for bound in (plan.lo, plan.hi):  # values of `src`, inside the int range
        assert float(np.array(bound).astype(dtypes.to_numpy_dtype(src)).astype(np.float64)) == bound
        assert info.min <= bound <= info.max
    above = _next_up(plan.hi, src)  # the next float up is past the range (or inf)
    assert above > info.max or math.isinf(above)
    assert plan.fix_max == (plan.hi != info.max) and plan.fix_min == (plan.lo != info.min)
    if plan.fix_min:  # only float16 stops short of the int's min, and only -inf is below it
        assert src is dtypes.float16 and plan.lo == -float(dtypes.finfo(src).max)


def test_numpy_global_error_state_is_left_alone() -> None:
    """The edge cases run under a local np.errstate: a user's global setting (here: raise on
    everything) neither breaks them nor is changed by them."""
    B = ag.backend("numpy")
    before = np.geterr()
    old = np.seterr(all="raise")
    try:
        x, zero = B.tensor([7, -7, 0]), B.tensor([0, 0, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert (x // zero).tolist() == [0, 0, 0] and (x % zero).tolist() == [0, 0, 0]
            f = B.tensor([math.nan, math.inf, -1e30, 1e300], dtype=ag.float64)
            assert f.astype(ag.int32).tolist() == [0, 2**31 - 1, -(2**31), 2**31 - 1]
            assert f.astype(ag.float32).numpy()[3] == np.inf
        assert np.geterr() == {"divide": "raise", "over": "raise", "under": "raise", "invalid": "raise"}
    finally:
        np.seterr(**old)
    assert np.geterr() == before
