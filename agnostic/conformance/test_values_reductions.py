"""Reductions, scans, matmul and sorting against float64 NumPy: axes (negative, tuple, None),
keepdims, empty axes, NaN, dtypes of results."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "sum", "prod", "mean", "max", "min", "any", "all", "var", "argmax", "argmin", "cumsum",
    "cumprod", "logsumexp", "matmul", "sort", "argsort", "topk", "one_hot",
}  # fmt: skip

REDUCTIONS = {
    "sum": (ag.sum, np.sum),
    "prod": (ag.prod, np.prod),
    "mean": (ag.mean, np.mean),
    "max": (ag.max, np.max),
    "min": (ag.min, np.min),
}
AXES = [None, 0, -1, (0, 2), (-1, -3), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions(backend: ag.Device, name: str, axis: object, keepdims: bool) -> None:
    fn, ref = REDUCTIONS[name]
    a = rng(5).uniform(0.5, 1.5, (2, 3, 4))
    want = ref(a, axis=axis, keepdims=keepdims)
    assert_close(fn(tensor(backend, a), axis=axis, keepdims=keepdims), want, dtype=ag.float64)
    assert_close(fn(noncontiguous(backend, a.astype(np.float32)), axis=axis, keepdims=keepdims), want,
                 dtype=ag.float32, rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", ["sum", "prod", "mean"])
def test_reductions_over_empty_axes(backend: ag.Device, name: str) -> None:
    fn, ref = REDUCTIONS[name]
    a = np.zeros((0, 3))
    with np.errstate(all="ignore"):
        assert_close(fn(tensor(backend, a), axis=0), ref(a, axis=0))


def test_max_of_empty_axis_is_an_error(backend: ag.Device) -> None:
    with pytest.raises(ValueError, match="max: reduction over an empty axis"):
        ag.max(backend.zeros(0, 3), axis=0)


def test_reduction_dtypes(backend: ag.Device) -> None:
    i8 = tensor(backend, np.array([100, 100, 100], dtype=np.int8))
    assert_close(ag.sum(i8), 300, dtype=ag.int64)  # small integers accumulate in int64
    assert_close(ag.prod(tensor(backend, np.array([2, 3], dtype=np.int32))), 6, dtype=ag.int64)
    assert_close(ag.mean(tensor(backend, np.array([1, 2]))), 1.5, dtype=ag.float32)
    assert_close(ag.sum(tensor(backend, np.array([True, True, False]))), 2, dtype=ag.int64)
    assert_close(ag.max(i8), 100, dtype=ag.int8)
    assert_close(ag.sum(i8, dtype=ag.float64), 300.0, dtype=ag.float64)


def test_max_min_propagate_nan(backend: ag.Device) -> None:
    a = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    assert_close(ag.max(tensor(backend, a), axis=1), [np.nan, 6.0])
    assert_close(ag.min(tensor(backend, a), axis=1), [np.nan, 4.0])
    assert_close(ag.argmax(tensor(backend, a), axis=1), [1, 2], dtype=ag.int64)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_any_all(backend: ag.Device, axis: object) -> None:
    a = np.array([[True, False, True], [True, True, True]])
    assert_close(ag.any(tensor(backend, a), axis=axis), np.any(a, axis=axis), dtype=ag.bool)
    assert_close(ag.all(tensor(backend, a), axis=axis), np.all(a, axis=axis), dtype=ag.bool)
    nums = np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    assert_close(ag.all(tensor(backend, nums), axis=axis), np.all(nums, axis=axis), dtype=ag.bool)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, (1, 2)], ids=str)
def test_var_std(backend: ag.Device, correction: int, axis: object) -> None:
    a = rng(6).standard_normal((3, 4, 5))
    assert_close(
        ag.var(tensor(backend, a), axis=axis, correction=correction), np.var(a, axis=axis, ddof=correction)
    )
    assert_close(ag.std(tensor(backend, a), axis=axis, correction=correction, keepdims=True),
                 np.std(a, axis=axis, ddof=correction, keepdims=True))  # fmt: skip
    assert_close(ag.var(tensor(backend, np.array([1, 2, 4]))), np.var([1, 2, 4]), dtype=ag.float32)


@pytest.mark.parametrize("axis", [None, 0, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argmax_argmin(backend: ag.Device, axis: object, keepdims: bool) -> None:
    a = np.array([[3.0, 7.0, 7.0, 1.0], [1.0, 1.0, 0.0, 0.0], [2.0, 9.0, -1.0, 9.0]])
    for fn, ref in ((ag.argmax, np.argmax), (ag.argmin, np.argmin)):
        want = ref(a, axis=axis, keepdims=keepdims)
        assert_close(fn(tensor(backend, a), axis=axis, keepdims=keepdims), want, dtype=ag.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumulative(backend: ag.Device, axis: int) -> None:
    a = rng(7).uniform(0.5, 1.5, (3, 4))
    assert_close(ag.cumsum(tensor(backend, a), axis=axis), np.cumsum(a, axis=axis))
    assert_close(ag.cumprod(tensor(backend, a), axis=axis), np.cumprod(a, axis=axis))
    assert_close(ag.cumulative_sum(tensor(backend, a), axis=axis, include_initial=True),
                 np.concatenate([np.zeros_like(np.take(a, [0], axis=axis)), np.cumsum(a, axis=axis)], axis=axis))  # fmt: skip
    ints = np.array([1, 2, 3], dtype=np.int8)
    assert_close(ag.cumsum(tensor(backend, ints)), np.cumsum(ints), dtype=ag.int64)


@pytest.mark.parametrize("axis", [None, 1, (0, 1)], ids=str)
def test_logsumexp(backend: ag.Device, axis: object) -> None:
    a = rng(8).standard_normal((3, 4)) * 50
    m = np.max(a, axis=axis, keepdims=True)
    want = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    out = ag.logsumexp(tensor(backend, a), axis=axis, keepdims=True)
    assert_close(out, want)
    assert_close(ag.logsumexp(tensor(backend, np.array([-np.inf, -np.inf]))), -np.inf)
    assert_close(ag.logsumexp(tensor(backend, np.array([np.inf, 1.0]))), np.inf)


MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((0, 4), (4, 3)), ((3, 0), (0, 2))]  # fmt: skip


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(backend: ag.Device, shapes: tuple) -> None:
    r = rng(9)
    a, b = r.standard_normal(shapes[0]), r.standard_normal(shapes[1])
    assert_close(ag.matmul(tensor(backend, a), tensor(backend, b)), np.matmul(a, b))
    assert_close(tensor(backend, a.astype(np.float32)) @ noncontiguous(backend, b.astype(np.float32)),
                 np.matmul(a, b), dtype=ag.float32, rtol=1e-5, atol=1e-5)  # fmt: skip


def test_matmul_integers_and_linalg_helpers(backend: ag.Device) -> None:
    a = np.arange(6).reshape(2, 3)
    b = np.arange(12).reshape(3, 4)
    assert_close(ag.matmul(tensor(backend, a), tensor(backend, b)), a @ b, dtype=ag.int64)
    x = rng(10).standard_normal((2, 3, 4))
    y = rng(11).standard_normal((4, 3, 5))
    assert_close(ag.tensordot(tensor(backend, x), tensor(backend, y), axes=([1, 2], [1, 0])),
                 np.tensordot(x, y, axes=([1, 2], [1, 0])))  # fmt: skip
    assert_close(ag.vecdot(tensor(backend, x), tensor(backend, x)), np.sum(x * x, axis=-1))
    assert_close(ag.matrix_transpose(tensor(backend, x)), np.swapaxes(x, -1, -2))
    assert_close(ag.outer(tensor(backend, x[0, 0]), tensor(backend, x[0, 1])), np.outer(x[0, 0], x[0, 1]))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("axis", [0, -1])
def test_sort_argsort_stable_with_nan(backend: ag.Device, descending: bool, axis: int) -> None:
    a = np.array([[3.0, 1.0, np.nan, 1.0], [2.0, 2.0, -np.inf, 0.0], [np.nan, 5.0, 1.0, 1.0]])
    # NaN sorts last ascending and first descending (it counts as the largest); ties keep their order
    key = np.where(np.isnan(a), -np.inf, -a) if descending else np.where(np.isnan(a), np.inf, a)
    order = np.argsort(key, axis=axis, kind="stable")
    x = tensor(backend, a)
    assert_close(ag.argsort(x, axis=axis, descending=descending), order, dtype=ag.int64)
    assert_close(ag.sort(x, axis=axis, descending=descending), np.take_along_axis(a, order, axis=axis))


def test_argsort_ties_keep_original_order(backend: ag.Device) -> None:
    a = np.array([2, 1, 2, 1, 2, 0])
    assert_close(ag.argsort(tensor(backend, a)), np.argsort(a, kind="stable"))
    assert_close(ag.argsort(tensor(backend, a), descending=True), [0, 2, 4, 1, 3, 5])


@pytest.mark.parametrize("largest", [True, False])
def test_topk(backend: ag.Device, largest: bool) -> None:
    a = rng(12).permutation(20).reshape(4, 5).astype(np.float32)
    values, idx = ag.topk(tensor(backend, a), 3, axis=1, largest=largest)
    order = np.argsort(-a if largest else a, axis=1, kind="stable")[:, :3]
    assert_close(idx, order, dtype=ag.int64)
    assert_close(values, np.take_along_axis(a, order, axis=1), dtype=ag.float32)


def test_one_hot(backend: ag.Device) -> None:
    idx = np.array([[0, 2], [1, 3]])
    assert_close(ag.one_hot(tensor(backend, idx), 4), np.eye(4)[idx], dtype=ag.float32)
    assert_close(
        ag.one_hot(tensor(backend, idx), 4, dtype=ag.int64), np.eye(4, dtype=np.int64)[idx], dtype=ag.int64
    )
