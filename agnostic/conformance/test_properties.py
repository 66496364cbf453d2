"""Property-based cases (hypothesis): broadcasting of binary ops and reductions over random axes
agree with NumPy for random shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import agnostic as ag
from agnostic.conformance.support import assert_close, tensor

COVERS = {"add", "mul", "maximum", "sub", "sum", "mean", "max", "min", "prod"}

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FLOATS = st.floats(-100, 100, allow_nan=False, width=64)


@st.composite
def broadcastable_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=FLOATS))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=FLOATS))
    return a, b


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "maximum"])
@SETTINGS
@given(pair=broadcastable_pair())
def test_binary_broadcasting_matches_numpy(backend: ag.Device, op: str, pair: tuple) -> None:
    a, b = pair
    out = getattr(ag, op)(tensor(backend, a), tensor(backend, b))
    assert_close(out, getattr(np, op)(a, b))


@st.composite
def array_and_axes(draw: st.DrawFn) -> tuple[np.ndarray, object, bool]:
    a = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4),
                        elements=st.floats(-2, 2, allow_nan=False, width=64)))  # fmt: skip
    axes = draw(
        st.none()
        | st.lists(st.integers(-a.ndim, a.ndim - 1), unique_by=lambda i: i % a.ndim, max_size=a.ndim)
    )
    keepdims = draw(st.booleans())
    return a, (tuple(axes) if axes is not None else None), keepdims


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
@SETTINGS
@given(case=array_and_axes())
def test_reductions_match_numpy(backend: ag.Device, op: str, case: tuple) -> None:
    a, axes, keepdims = case
    out = getattr(ag, op)(tensor(backend, a), axis=axes, keepdims=keepdims)
    assert_close(out, getattr(np, op)(a, axis=axes, keepdims=keepdims), rtol=1e-9, atol=1e-9)
