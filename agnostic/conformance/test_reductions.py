"""Reductions, scans and arg-extrema against float64 NumPy: axis None / int / negative / tuple,
keepdims, 0-d, empty and zero-size inputs (identities, NaN means), NaN propagation, non-contiguous
inputs, and the accumulation dtypes (sum of int8 -> int64, mean of int -> float32)."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "sum", "prod", "mean", "max", "min", "any", "all", "var", "argmax", "argmin", "cumsum", "cumprod",
    "logsumexp", "std",
}  # fmt: skip

FLOAT_REDUCTIONS = {
    "sum": (ag.sum, np.sum),
    "prod": (ag.prod, np.prod),
    "mean": (ag.mean, np.mean),
    "max": (ag.max, np.max),
    "min": (ag.min, np.min),
}
AXES = [None, 0, 1, 2, -1, -3, (0, 2), (-1, 0), (0, 1, 2), ()]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _tol(name: str, dtype: dtypes.DType) -> dict:
    if dtype is ag.float32 and name in ("sum", "mean", "prod"):
        return {"rtol": 1e-5, "atol": 1e-6}
    return {}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(FLOAT_REDUCTIONS))
def test_float_reductions(backend: ag.Device, name: str, axis: object, keepdims: bool) -> None:
    fn, ref = FLOAT_REDUCTIONS[name]
    a = rng(1).uniform(0.5, 1.5, (2, 3, 4)) * rng(2).choice([-1, 1], (2, 3, 4))
    for dtype in (ag.float32, ag.float64):
        host = a.astype(_np(dtype))
        want = ref(host.astype(np.float64), axis=axis, keepdims=keepdims)
        assert_close(
            fn(tensor(backend, host), axis=axis, keepdims=keepdims), want, dtype=dtype, **_tol(name, dtype)
        )
        assert_close(
            fn(noncontiguous(backend, host), axis=axis, keepdims=keepdims),
            want,
            dtype=dtype,
            **_tol(name, dtype),
        )
    method = getattr(tensor(backend, a), name)
    assert_close(method(axis=axis, keepdims=keepdims), ref(a, axis=axis, keepdims=keepdims), dtype=ag.float64)


@pytest.mark.parametrize("name", sorted(FLOAT_REDUCTIONS))
def test_reductions_of_0d_and_size_1(backend: ag.Device, name: str) -> None:
    fn, ref = FLOAT_REDUCTIONS[name]
    s = np.float64(-2.5)
    assert_close(fn(tensor(backend, s)), s, dtype=ag.float64)
    assert_close(fn(tensor(backend, s), axis=()), s, dtype=ag.float64)
    assert_close(fn(tensor(backend, s), keepdims=True), s, dtype=ag.float64)
    one = np.full((1, 3, 1), 1.5)
    for axis in (0, 2, (0, 2), None):
        assert_close(fn(tensor(backend, one), axis=axis), ref(one, axis=axis), dtype=ag.float64)


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(FLOAT_REDUCTIONS))
def test_half_precision_reductions(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref = FLOAT_REDUCTIONS[name]
    host = rng(3).uniform(0.5, 1.5, (3, 8)).astype(_np(dtype))
    tol = {"rtol": 2e-2 if dtype is ag.bfloat16 else 4e-3, "atol": 2e-2 if dtype is ag.bfloat16 else 4e-3}
    if name == "prod":
        tol = {"rtol": 6e-2 if dtype is ag.bfloat16 else 1e-2, "atol": 1e-2}
    for axis in (None, 1, 0):
        assert_close(
            fn(tensor(backend, host), axis=axis), ref(host.astype(np.float64), axis=axis), dtype=dtype, **tol
        )


def test_empty_reductions(backend: ag.Device) -> None:
    e = np.zeros((0, 3))
    x = tensor(backend, e.astype(np.float32))
    assert_close(ag.sum(x, axis=0), np.zeros(3), dtype=ag.float32)
    assert_close(ag.sum(x), 0.0, dtype=ag.float32)
    assert_close(ag.prod(x, axis=0), np.ones(3), dtype=ag.float32)
    assert_close(
        ag.sum(x, axis=1), np.zeros(0), dtype=ag.float32
    )  # reducing a non-empty axis of an empty tensor
    assert_close(ag.max(x, axis=1), np.zeros(0), dtype=ag.float32)
    assert_close(ag.sum(x, axis=0, keepdims=True), np.zeros((1, 3)), dtype=ag.float32)
    mean = ag.mean(x, axis=0)
    assert mean.shape == (3,) and np.isnan(mean.numpy()).all(), "the mean of nothing is NaN"
    assert_close(ag.any(x, axis=0), np.zeros(3, bool), dtype=ag.bool)
    assert_close(ag.all(x, axis=0), np.ones(3, bool), dtype=ag.bool)
    assert_close(ag.sum(tensor(backend, np.zeros((0,), np.int8))), 0, dtype=ag.int64)
    assert_close(ag.logsumexp(x, axis=0), np.full(3, -np.inf), dtype=ag.float32)
    for fn in (ag.max, ag.min):  # no identity: an error that names the op, not a silent -inf / inf
        with pytest.raises(ValueError, match=f"{fn.__name__}: reduction over an empty axis"):
            fn(x, axis=0)
        with pytest.raises(ValueError, match=f"{fn.__name__}: reduction over an empty axis"):
            fn(x)
    for fn in (ag.argmax, ag.argmin):
        with pytest.raises(ValueError):
            fn(x)


def test_nan_and_inf_propagate(backend: ag.Device) -> None:
    a = np.array([[1.0, np.nan, 3.0], [2.0, -np.inf, 1.0], [np.inf, 0.5, -1.0]])
    x = tensor(backend, a)
    for fn, ref in FLOAT_REDUCTIONS.values():
        for axis in (None, 0, 1):
            with np.errstate(invalid="ignore"):
                want = ref(a, axis=axis)
            got = fn(x, axis=axis)
            assert_close(got, want, dtype=ag.float64)
            assert np.array_equal(np.isnan(got.numpy()), np.isnan(want)), f"{fn.__name__}: NaN positions"
    # max and min propagate NaN (torch/NumPy semantics), for every float dtype
    for dtype in (ag.float16, ag.bfloat16, ag.float32):
        h = np.array([0.5, np.nan, 2.0]).astype(_np(dtype))
        assert np.isnan(float(ag.max(tensor(backend, h)).item()))
        assert np.isnan(float(ag.min(tensor(backend, h)).item()))
    inf = tensor(backend, np.array([np.inf, -np.inf]))
    assert np.isnan(ag.sum(inf).item()) and np.isnan(ag.mean(inf).item())


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8, ag.bool], ids=str)
def test_integer_and_bool_reductions(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = (np.arange(24).reshape(2, 3, 4) * 37 % 11).astype(_np(dtype))
    if dtype.kind == "i":
        host = (host.astype(np.int64) - 5).astype(_np(dtype))
    x = tensor(backend, host)
    wide = host.astype(np.int64)
    acc = ag.uint64 if dtype.kind == "u" else ag.int64
    for axis in (None, 1, (0, 2), -1):
        # sum and prod of small integers and bools accumulate in int64, unsigned ones in uint64
        # (the Array API's default integer dtypes: no silent overflow)
        assert_close(ag.sum(x, axis=axis), wide.sum(axis=axis), dtype=acc)
        assert_close(ag.prod(x[:, :2, :2], axis=axis), wide[:, :2, :2].prod(axis=axis), dtype=acc)
        # mean of integers is the default float
        assert_close(ag.mean(x, axis=axis), wide.mean(axis=axis), dtype=ag.float32)
        assert_close(ag.max(x, axis=axis), host.max(axis=axis), dtype=dtype)
        assert_close(ag.min(x, axis=axis, keepdims=True), host.min(axis=axis, keepdims=True), dtype=dtype)
        assert_close(ag.any(x, axis=axis), host.astype(bool).any(axis=axis), dtype=ag.bool)
        assert_close(ag.all(x, axis=axis), host.astype(bool).all(axis=axis), dtype=ag.bool)
    assert_close(ag.sum(x, dtype=ag.float64), float(wide.sum()), dtype=ag.float64)
    assert_close(ag.sum(x, axis=0, dtype=ag.int32), wide.sum(axis=0), dtype=ag.int32)


def test_sum_of_int8_does_not_overflow(backend: ag.Device) -> None:
    host = np.full((300,), 100, dtype=np.int8)
    assert_close(ag.sum(tensor(backend, host)), 30000, dtype=ag.int64)
    assert_close(ag.sum(tensor(backend, np.full(40, 200, np.uint8))), 8000, dtype=ag.uint64)
    assert_close(ag.sum(tensor(backend, np.ones(70000, bool))), 70000, dtype=ag.int64)
    assert_close(ag.mean(tensor(backend, np.array([1, 2], np.int8))), 1.5, dtype=ag.float32)


def test_sum_and_mean_dtype_argument(backend: ag.Device) -> None:
    a = rng(4).standard_normal((3, 4)).astype(np.float32)
    x = tensor(backend, a)
    assert_close(ag.sum(x, axis=1, dtype=ag.float64), a.astype(np.float64).sum(1), dtype=ag.float64)
    assert_close(ag.mean(x, dtype=ag.float64), a.astype(np.float64).mean(), dtype=ag.float64)
    assert_close(ag.prod(x, axis=0, dtype=ag.float64), a.astype(np.float64).prod(0), dtype=ag.float64)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), 1], ids=str)
def test_any_all(backend: ag.Device, axis: object, keepdims: bool) -> None:
    b = rng(5).random((3, 4, 2)) > 0.3
    b[0] = True
    b[1, :, 0] = False
    for host in (b, b.astype(np.float32) * 2.5, np.where(b, np.nan, 0.0)):  # NaN is truthy
        x = tensor(backend, host)
        assert_close(
            ag.any(x, axis=axis, keepdims=keepdims),
            np.any(host != 0, axis=axis, keepdims=keepdims),
            dtype=ag.bool,
        )
        assert_close(
            ag.all(x, axis=axis, keepdims=keepdims),
            np.all(host != 0, axis=axis, keepdims=keepdims),
            dtype=ag.bool,
        )
    assert_close(ag.any(noncontiguous(backend, b), axis=axis), np.any(b, axis=axis), dtype=ag.bool)
    assert_close(tensor(backend, b).all(axis=axis), np.all(b, axis=axis), dtype=ag.bool)


# ====================================================================== var, std
@pytest.mark.parametrize("correction", [0, 1, 0.5])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std(backend: ag.Device, name: str, axis: object, correction: float) -> None:
    fn, ref = getattr(ag, name), getattr(np, name)
    a = rng(6).standard_normal((3, 4, 5)) * 3 + 10  # an offset mean: a naive E[x^2]-E[x]^2 loses digits
    for dtype in (ag.float32, ag.float64):
        host = a.astype(_np(dtype))
        want = ref(host.astype(np.float64), axis=axis, ddof=correction)
        tol = {"rtol": 1e-4, "atol": 1e-5} if dtype is ag.float32 else {}
        assert_close(fn(tensor(backend, host), axis=axis, correction=correction), want, dtype=dtype, **tol)
        for keep in (True, False):
            assert_close(
                fn(noncontiguous(backend, host), axis=axis, correction=correction, keepdims=keep),
                ref(host.astype(np.float64), axis=axis, ddof=correction, keepdims=keep),
                dtype=dtype,
                **tol,
            )
    ints = np.arange(60).reshape(3, 4, 5) % 7
    assert_close(
        fn(tensor(backend, ints), axis=axis, correction=correction),
        ref(ints.astype(np.float64), axis=axis, ddof=correction),
        dtype=ag.float32,
        rtol=1e-5,
    )


def test_var_edge_cases(backend: ag.Device) -> None:
    x = tensor(backend, np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert_close(ag.var(x[:, :1], axis=1), [0.0, 0.0])
    with np.errstate(all="ignore"):
        out = ag.var(x[:, :1], axis=1, correction=1).numpy()  # N - correction = 0: NaN or inf, never a number
    assert not np.isfinite(out).any()
    assert_close(ag.var(tensor(backend, np.array([np.nan, 1.0]))), np.nan)
    assert_close(ag.std(tensor(backend, np.float64(4.0))), 0.0, dtype=ag.float64)


# ====================================================================== argmax, argmin
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(backend: ag.Device, name: str, axis: int | None, keepdims: bool) -> None:
    fn, ref = getattr(ag, name), getattr(np, name)
    a = rng(7).integers(0, 4, (4, 5)).astype(np.float32)  # many ties: the first index wins
    for host in (
        a,
        a.astype(np.float64),
        a.astype(np.int32),
        a.astype(np.uint8),
        a.astype(np.float16),
        a > 1,
    ):
        want = ref(host, axis=axis, keepdims=keepdims)
        assert_close(fn(tensor(backend, host), axis=axis, keepdims=keepdims), want, dtype=ag.int64)
    assert_close(
        fn(noncontiguous(backend, a), axis=axis, keepdims=keepdims),
        ref(a, axis=axis, keepdims=keepdims),
        dtype=ag.int64,
    )
    assert_close(getattr(tensor(backend, a), name)(axis=axis), ref(a, axis=axis), dtype=ag.int64)


def test_arg_extrema_with_nan_inf_and_0d(backend: ag.Device) -> None:
    a = np.array([[1.0, np.nan, 3.0, np.nan], [-np.inf, 2.0, np.inf, 0.0], [5.0, 5.0, -1.0, -1.0]])
    x = tensor(backend, a)
    # NaN counts as the maximum and as the minimum (first NaN wins), as NumPy and torch
    assert_close(ag.argmax(x, axis=1), np.argmax(a, axis=1), dtype=ag.int64)
    assert_close(ag.argmin(x, axis=1), np.argmin(a, axis=1), dtype=ag.int64)
    assert_close(ag.argmax(x, axis=0), np.argmax(a, axis=0), dtype=ag.int64)
    assert_close(ag.argmax(x), np.argmax(a), dtype=ag.int64)
    assert_close(ag.argmin(tensor(backend, a[1:])), np.argmin(a[1:]), dtype=ag.int64)
    assert_close(ag.argmax(tensor(backend, np.float32(3.0))), 0, dtype=ag.int64)
    assert_close(ag.argmax(x, keepdims=True), np.argmax(a, keepdims=True), dtype=ag.int64)


# ====================================================================== scans
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative(backend: ag.Device, name: str) -> None:
    fn, ref = getattr(ag, name), getattr(np, name)
    a = rng(8).uniform(0.5, 1.5, (3, 4, 2)) * rng(9).choice([-1, 1], (3, 4, 2))
    for dtype in (ag.float32, ag.float64):
        host = a.astype(_np(dtype))
        for axis in (0, 1, -1):
            want = ref(host.astype(np.float64), axis=axis)
            assert_close(
                fn(tensor(backend, host), axis=axis),
                want,
                dtype=dtype,
                rtol=1e-5 if dtype is ag.float32 else None,
            )
            assert_close(
                fn(noncontiguous(backend, host), axis=axis),
                want,
                dtype=dtype,
                rtol=1e-5 if dtype is ag.float32 else None,
            )
        assert_close(
            fn(tensor(backend, host)), ref(host.astype(np.float64)), dtype=dtype, rtol=1e-4
        )  # flattened
    assert_close(getattr(tensor(backend, a), name)(axis=1), ref(a, axis=1), dtype=ag.float64)
    # integer and bool scans accumulate in int64, unsigned ones in uint64
    for host, acc in (
        (np.array([[100, 100, 100]], np.int8), ag.int64),
        (np.array([[True, True, False]]), ag.int64),
        (np.array([[3, 4, 5]], np.uint8), ag.uint64),
    ):
        assert_close(fn(tensor(backend, host), axis=1), ref(host.astype(np.int64), axis=1), dtype=acc)
    assert_close(fn(tensor(backend, np.zeros((2, 0))), axis=1), np.zeros((2, 0)), dtype=ag.float64)
    assert_close(fn(tensor(backend, np.array([1.0, np.nan, 2.0])), axis=0), ref(np.array([1.0, np.nan, 2.0])))
    assert_close(
        fn(tensor(backend, a.astype(np.float32)), axis=1, dtype=ag.float64),
        ref(a.astype(np.float32).astype(np.float64), axis=1),
        dtype=ag.float64,
    )


def test_cumulative_sum_include_initial(backend: ag.Device) -> None:
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x = tensor(backend, a)
    for axis in (0, 1, -1):
        assert_close(
            ag.cumulative_sum(x, axis=axis, include_initial=True),
            np.concatenate([np.zeros_like(np.take(a, [0], axis=axis)), a.cumsum(axis)], axis),
        )
    assert_close(
        ag.cumulative_prod(x, axis=0, include_initial=True),
        np.concatenate([np.ones((1, 3)), a.cumprod(0)], 0),
    )
    assert_close(ag.cumulative_sum(tensor(backend, np.array([1, 2, 3], np.int8))), [1, 3, 6], dtype=ag.int64)


# ====================================================================== logsumexp
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), ()], ids=str)
def test_logsumexp(backend: ag.Device, axis: object, keepdims: bool) -> None:
    a = rng(10).standard_normal((3, 4, 5)) * 4
    with np.errstate(all="ignore"):
        for dtype in (ag.float32, ag.float64):
            host = a.astype(_np(dtype))
            h = host.astype(np.float64)
            m = np.max(h, axis=axis, keepdims=True) if axis != () else h
            want = np.log(np.sum(np.exp(h - m), axis=axis, keepdims=True)) + m
            want = want if keepdims or axis == () else np.squeeze(want, axis=axis)
            assert_close(ag.logsumexp(tensor(backend, host), axis=axis, keepdims=keepdims), want, dtype=dtype)
            assert_close(
                ag.logsumexp(noncontiguous(backend, host), axis=axis, keepdims=keepdims), want, dtype=dtype
            )


def test_logsumexp_is_stable_and_handles_infinities(backend: ag.Device) -> None:
    big = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 1.0]])
    for dtype in (ag.float32, ag.float64):
        got = ag.logsumexp(tensor(backend, big.astype(_np(dtype))), axis=1)
        assert_close(got, [1000.0 + np.log(2), -1000.0 + np.log(2), -np.inf, np.inf, np.nan], dtype=dtype)
    assert_close(
        ag.logsumexp(tensor(backend, np.array([1, 2, 3]))), np.log(np.exp([1, 2, 3]).sum()), dtype=ag.float32
    )
    assert_close(ag.logsumexp(tensor(backend, np.array([0.5], np.float16))), 0.5, dtype=ag.float16)


def test_reductions_do_not_mutate_inputs(backend: ag.Device) -> None:
    a = rng(11).standard_normal((3, 4))
    x = tensor(backend, a)
    snapshot = a.copy()
    for fn in (
        ag.sum,
        ag.prod,
        ag.mean,
        ag.max,
        ag.min,
        ag.any,
        ag.all,
        ag.var,
        ag.std,
        ag.argmax,
        ag.argmin,
        ag.logsumexp,
        lambda t: ag.cumsum(t, axis=1),
        lambda t: ag.cumprod(t, axis=0),
        lambda t: ag.sum(t, axis=0, keepdims=True),
    ):
        fn(x)
        np.testing.assert_array_equal(x.numpy(), snapshot)
    np.testing.assert_array_equal(a, snapshot)
