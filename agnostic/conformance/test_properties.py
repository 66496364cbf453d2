"""Property-based cases (hypothesis): for random shapes, dtypes and values, broadcasting binary ops,
reductions over random axes, scans and arg-extrema, basic indexing, shape round trips and sorting
agree with NumPy. Each property runs about 30 examples so the suite stays fast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, tensor

COVERS = {
    "add", "sub", "mul", "div", "maximum", "minimum", "atan2", "eq", "lt", "where", "sum", "mean", "max",
    "min", "prod", "var", "any", "all", "argmax", "argmin", "cumsum", "exp", "tanh", "abs", "floor", "sin",
    "getitem", "reshape", "permute", "flip", "concat", "sort", "argsort", "floor_divide", "remainder",
}  # fmt: skip

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FLOATS = st.floats(-100, 100, allow_nan=False, width=64)
SPECIAL_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _as_the_device_reads(backend: ag.Device, a: np.ndarray) -> np.ndarray:
    """`a` with subnormals replaced by (signed) zero where the device flushes them: that difference
    is reported once, by `test_subnormal_floats_are_kept`, not by every value check."""
    if not backend.ops.flushes_subnormals:
        return a
    return np.where(np.abs(a) < np.finfo(a.dtype).tiny, a * 0, a)


@st.composite
def broadcastable(draw: st.DrawFn, n: int = 2, elements: st.SearchStrategy = FLOATS) -> list[np.ndarray]:
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=4, min_side=0, max_side=4)
    )
    return [draw(hnp.arrays(np.float64, s, elements=elements)) for s in shapes.input_shapes]


# ====================================================================== elementwise
BINARY = {
    "add": (ag.add, np.add),
    "subtract": (ag.subtract, np.subtract),
    "multiply": (ag.multiply, np.multiply),
    "maximum": (ag.maximum, np.maximum),
    "minimum": (ag.minimum, np.minimum),
    "atan2": (ag.atan2, np.arctan2),
    "equal": (ag.equal, np.equal),
    "less": (ag.less, np.less),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@SETTINGS
@given(arrays=broadcastable())
def test_binary_broadcasting_matches_numpy(backend: ag.Device, op: str, arrays: list) -> None:
    a, b = (_as_the_device_reads(backend, x) for x in arrays)
    fn, ref = BINARY[op]
    want = ref(a, b)
    assert_close(
        fn(tensor(backend, a), tensor(backend, b)), want, dtype=ag.bool if want.dtype == bool else ag.float64
    )
    a, b = (_as_the_device_reads(backend, x.astype(np.float32)) for x in (a, b))
    assert_close(fn(tensor(backend, a), tensor(backend, b)), ref(a, b), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(arrays=broadcastable(elements=SPECIAL_FLOATS))
def test_binary_ops_with_nan_and_inf_match_numpy(backend: ag.Device, arrays: list) -> None:
    a, b = (_as_the_device_reads(backend, x.astype(np.float32)) for x in arrays)
    ta, tb = tensor(backend, a), tensor(backend, b)
    with np.errstate(all="ignore"):
        for fn, ref in (
            (ag.add, np.add),
            (ag.multiply, np.multiply),
            (ag.maximum, np.maximum),
            (ag.minimum, np.minimum),
            (ag.divide, np.divide),
        ):
            want = ref(a, b)
            got = fn(ta, tb)
            assert_close(got, want, dtype=ag.float32)
            np.testing.assert_array_equal(np.isnan(got.numpy()), np.isnan(want))


@SETTINGS
@given(arrays=broadcastable(n=3))
def test_where_broadcasts_three_ways(backend: ag.Device, arrays: list) -> None:
    c, a, b = arrays
    cond = c > 0
    assert_close(
        ag.where(tensor(backend, cond), tensor(backend, a), tensor(backend, b)), np.where(cond, a, b)
    )


@pytest.mark.parametrize("op", ["exp", "tanh", "abs", "floor", "sin"])
@SETTINGS
@given(
    a=hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), elements=SPECIAL_FLOATS
    )
)
def test_unary_ops_match_numpy_on_any_float(backend: ag.Device, op: str, a: np.ndarray) -> None:
    a = _as_the_device_reads(backend, a)
    with np.errstate(all="ignore"):
        want = getattr(np, op)(a.astype(np.float64))
    got = getattr(ag, op)(tensor(backend, a))
    assert_close(got, want.astype(np.float32), dtype=ag.float32, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
def test_subnormal_floats_are_kept(backend: ag.Device, dtype: dtypes.DType) -> None:
    if backend.ops.flushes_subnormals:
        pytest.skip(
            f"backend {backend.name!r} on {backend.device!r} flushes subnormal floats to zero "
            "(XLA sets flush-to-zero and denormals-are-zero on CPU)"
        )
    tiny = np.finfo(_np(dtype)).tiny
    a = np.array([tiny / 4, -tiny / 8, tiny], _np(dtype))
    t = tensor(backend, a)
    np.testing.assert_array_equal(t.numpy(), a)
    assert_close(t + 0.0, a, dtype=dtype, rtol=0, atol=0)
    assert_close(t * 2.0, a * 2, dtype=dtype, rtol=0, atol=0)
    assert_close(ag.equal(t, 0.0), [False, False, False])
    assert_close(ag.divide(t, t), [1.0, 1.0, 1.0], dtype=dtype, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [ag.int8, ag.int32, ag.int64, ag.uint8], ids=str)
@SETTINGS
@given(data=st.data())
def test_integer_arithmetic_matches_numpy(
    backend: ag.Device, dtype: dtypes.DType, data: st.DataObject
) -> None:
    info = np.iinfo(_np(dtype))
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    ints = st.integers(max(info.min, -1000), min(info.max, 1000))
    a = data.draw(hnp.arrays(_np(dtype), shapes.input_shapes[0], elements=ints))
    b = data.draw(hnp.arrays(_np(dtype), shapes.input_shapes[1], elements=ints.filter(lambda v: v != 0)))
    ta, tb = tensor(backend, a), tensor(backend, b)
    with np.errstate(all="ignore"):
        for fn, ref in (
            (ag.add, np.add),
            (ag.multiply, np.multiply),
            (ag.floor_divide, np.floor_divide),
            (ag.remainder, np.remainder),
            (ag.maximum, np.maximum),
        ):
            assert_close(fn(ta, tb), ref(a, b), dtype=dtype)
    assert_close(ta / tb, a.astype(np.float64) / b, dtype=ag.float32)


# ====================================================================== reductions
@st.composite
def array_and_axes(draw: st.DrawFn, min_side: int = 1) -> tuple[np.ndarray, object, bool]:
    a = draw(
        hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=1, max_dims=4, min_side=min_side, max_side=4),
            elements=st.floats(-2, 2, allow_nan=False, width=64),
        )
    )
    axes = draw(
        st.none()
        | st.integers(-a.ndim, a.ndim - 1)
        | st.lists(st.integers(-a.ndim, a.ndim - 1), unique_by=lambda i: i % a.ndim, max_size=a.ndim).map(
            tuple
        )
    )
    return a, axes, draw(st.booleans())


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod", "var", "any", "all"])
@SETTINGS
@given(case=array_and_axes())
def test_reductions_match_numpy(backend: ag.Device, op: str, case: tuple) -> None:
    a, axes, keepdims = case
    if op in ("any", "all"):
        a = a > 0.5
    want = getattr(np, op)(a, axis=axes, keepdims=keepdims)
    out = getattr(ag, op)(tensor(backend, a), axis=axes, keepdims=keepdims)
    assert_close(out, want, dtype=ag.bool if op in ("any", "all") else ag.float64, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["sum", "prod", "any", "all"])
@SETTINGS
@given(case=array_and_axes(min_side=0))
def test_reductions_over_zero_size_shapes(backend: ag.Device, op: str, case: tuple) -> None:
    a, axes, keepdims = case
    if op in ("any", "all"):
        a = a > 0
    want = getattr(np, op)(a, axis=axes, keepdims=keepdims)
    out = getattr(ag, op)(tensor(backend, a), axis=axes, keepdims=keepdims)
    assert_close(out, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["argmax", "argmin", "cumsum"])
@SETTINGS
@given(data=st.data())
def test_scans_and_arg_extrema_match_numpy(backend: ag.Device, op: str, data: st.DataObject) -> None:
    a = data.draw(
        hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
            elements=st.integers(-3, 3).map(float),
        )
    )
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    want = getattr(np, op)(a, axis=axis)
    assert_close(
        getattr(ag, op)(tensor(backend, a), axis=axis), want, dtype=ag.int64 if op != "cumsum" else ag.float64
    )


# ====================================================================== indexing, shapes, sorting
@SETTINGS
@given(data=st.data())
def test_basic_indexing_matches_numpy(backend: ag.Device, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    assert_close(tensor(backend, a)[key], a[key], dtype=ag.float32)


@SETTINGS
@given(data=st.data())
def test_integer_array_indexing_matches_numpy(backend: ag.Device, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    a = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    idx_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))
    idx = data.draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(-shape[0], shape[0] - 1)))
    assert_close(tensor(backend, a)[tensor(backend, idx)], a[idx], dtype=ag.int64)
    mask = data.draw(hnp.arrays(np.bool_, shape))
    assert_close(tensor(backend, a)[tensor(backend, mask)], a[mask], dtype=ag.int64)


@SETTINGS
@given(data=st.data())
def test_shape_round_trips(backend: ag.Device, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    a = data.draw(hnp.arrays(np.float64, shape, elements=FLOATS))
    x = tensor(backend, a)
    perm = data.draw(st.permutations(range(a.ndim)))
    assert_close(ag.permute_dims(x, perm), np.transpose(a, perm))
    assert_close(ag.reshape(ag.reshape(x, (-1,)), shape), a)
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    assert_close(ag.flip(x, axis=axis), np.flip(a, axis))
    parts = [x, ag.flip(x, axis=axis)]
    assert_close(ag.concat(parts, axis=axis), np.concatenate([a, np.flip(a, axis)], axis=axis))


@SETTINGS
@given(data=st.data())
def test_sort_matches_numpy(backend: ag.Device, data: st.DataObject) -> None:
    a = data.draw(
        hnp.arrays(
            np.float32,
            hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
            elements=st.one_of(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]), SPECIAL_FLOATS),
        )
    )
    a = _as_the_device_reads(backend, a)
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    assert_close(ag.sort(tensor(backend, a), axis=axis), np.sort(a, axis=axis), dtype=ag.float32)
    assert_close(
        ag.argsort(tensor(backend, a), axis=axis), np.argsort(a, axis=axis, kind="stable"), dtype=ag.int64
    )
