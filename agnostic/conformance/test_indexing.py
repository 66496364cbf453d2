"""Indexing and data movement against NumPy: basic indexing (ints, negative ints, slices with
positive and negative steps, None, Ellipsis), advanced indexing (integer arrays, negative and
repeated, boolean masks, and their mixtures with basic indices), functional updates
(`x.at[idx].add/set`), take, take_along_axis, scatter_add (repeated indices accumulate),
sort / argsort (stable, descending, NaN last), topk, one_hot, nonzero and where with masks."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "getitem",
    "index_add",
    "take",
    "take_along_axis",
    "scatter_add",
    "sort",
    "argsort",
    "one_hot",
    "where",
    "gt",
    "arange",
    "reshape",
    # overridable defaults of the op-set beyond PRIMITIVES and COMPOSITES
    "topk",
    "nonzero",
}

A = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
DTYPES = [ag.float32, ag.float64, ag.int64, ag.int8, ag.uint8, ag.bool, ag.float16, ag.bfloat16]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _as(dtype: dtypes.DType, a: np.ndarray) -> np.ndarray:
    return (a % 7 > 2) if dtype is ag.bool else a.astype(_np(dtype))


BASIC_KEYS = [
    0,
    -1,
    2,
    (1, 2),
    (-1, -2, -3),
    (0, 1, 4),
    slice(None),
    slice(1, None),
    slice(None, -1),
    slice(None, None, 2),
    slice(None, None, -1),
    slice(-1, 0, -1),
    slice(2, 0, -2),
    slice(5, 10),
    slice(-10, 2),
    slice(3, 1),
    slice(None, None, 3),
    (slice(None), 1),
    (slice(None), slice(None, None, -2), slice(1, 4)),
    (Ellipsis, 0),
    (Ellipsis, slice(None, None, -1)),
    (0, Ellipsis, 2),
    (None,),
    (None, 1),
    (slice(None), None, 2),
    (Ellipsis, None),
    (None, Ellipsis, None),
    (1, slice(None), None, -1),
    (),
    Ellipsis,
    (slice(0, 0),),
    (slice(None), slice(3, 3)),
    (-3, slice(-2, None), slice(None, None, -3)),
]


@pytest.mark.parametrize("key", BASIC_KEYS, ids=repr)
def test_basic_indexing(backend: ag.Device, key: object) -> None:
    for dtype in (ag.float32, ag.int64, ag.bool):
        a = _as(dtype, A)
        want = a[key]
        assert_close(tensor(backend, a)[key], want, dtype=dtype)
        assert_close(noncontiguous(backend, a)[key], want, dtype=dtype)


def test_indexing_0d_and_chained(backend: ag.Device) -> None:
    s = tensor(backend, np.float64(2.5))
    assert_close(s[()], 2.5, dtype=ag.float64)
    assert_close(s[...], 2.5, dtype=ag.float64)
    assert_close(s[None], [2.5], dtype=ag.float64)
    x = tensor(backend, A)
    assert_close(x[1][2][3], A[1][2][3])
    assert_close(x[::-1][:, 1:][..., ::2], A[::-1][:, 1:][..., ::2])
    with pytest.raises(IndexError):
        x[3]
    with pytest.raises(IndexError):
        x[0, -5]
    with pytest.raises(IndexError):
        x[0, 0, 0, 0]
    with pytest.raises(IndexError):
        s[0]


ADVANCED_KEYS = [
    [2, 0, 2],
    [-1, 0, -3],
    [[0, 1], [2, 2]],
    ([0, 2], [1, 3]),
    ([0, 2], slice(None), [4, -1]),
    (slice(None), [3, 0, 3, -1]),
    (Ellipsis, [0, 0, 4]),
    ([[0], [2]], [1, 2, 3]),
    (1, [0, 3], slice(1, 4)),
    ([1, 2], 0),
    (slice(None, None, -1), [1], [[2], [0]]),
    (None, [0, 1], None),
    ([], slice(None)),
    np.array([True, False, True]),
    (slice(None), np.array([False, True, True, False])),
    np.array([[True, False, True, False], [False] * 4, [True] * 4]),
    (A[..., 0] > 20,),
    (np.array([True, False, True]), slice(None, 2), [4, 0]),
    (Ellipsis, np.array([True, False, False, True, True])),
    (1, np.array([True, True, False, False])),
    np.zeros(3, bool),
    (np.array(True),),
    (np.array(False),),
    ([0, 2], np.array([True, False, False, True])),
    (slice(1, None), [[0, 1]], [[4], [3]]),
]


def _idx(backend: ag.Device, key: object, as_tensor: bool) -> object:
    """The key with its arrays as tensors (or left as lists / NumPy arrays)."""
    parts = key if isinstance(key, tuple) else (key,)
    out = tuple(
        tensor(backend, np.asarray(k, dtype=np.int64 if isinstance(k, list) else None))
        if as_tensor and isinstance(k, (list, np.ndarray))
        else k
        for k in parts
    )
    return out if isinstance(key, tuple) else out[0]


@pytest.mark.parametrize("key", ADVANCED_KEYS, ids=lambda k: repr(k).replace("\n", ""))
def test_advanced_indexing(backend: ag.Device, key: object) -> None:
    np_key = tuple(
        np.asarray(k, dtype=np.int64) if isinstance(k, list) else k
        for k in (key if isinstance(key, tuple) else (key,))
    )
    for dtype in (ag.float32, ag.int8, ag.bool):
        a = _as(dtype, A)
        want = a[np_key]
        for as_tensor in (True, False):
            k = _idx(backend, key, as_tensor)
            assert_close(tensor(backend, a)[k], want, dtype=dtype)
        assert_close(noncontiguous(backend, a)[_idx(backend, key, True)], want, dtype=dtype)


def test_index_arrays_of_every_integer_dtype(backend: ag.Device) -> None:
    x = tensor(backend, A)
    for d in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        idx = np.array([2, 0, 1, 2], dtype=d)
        assert_close(x[tensor(backend, idx)], A[idx])
        assert_close(x[:, tensor(backend, idx)], A[:, idx])
    with pytest.raises(IndexError):
        x[tensor(backend, np.array([0, 3]))]
    with pytest.raises(IndexError):
        x[tensor(backend, np.array([-4]))]
    with pytest.raises(IndexError):
        x[tensor(backend, np.array([0.0, 1.0]))]
    with pytest.raises(IndexError):
        x[tensor(backend, np.ones((2, 2), bool))]  # mask shape differs from the indexed dims


# ====================================================================== functional updates
UPDATE_KEYS = [
    1,
    (0, slice(1, 3)),
    (slice(None), slice(None, None, -2)),
    (Ellipsis, 0),
    [0, 2, 0, 0],
    [-1, 1],
    ([0, 0, 2], [1, 1, 3]),
    (A > 30,),
    (slice(None), [3, 3, 0]),
    (None, 1),
    (1, [0, 0], slice(None, None, 2)),
]


@pytest.mark.parametrize("key", UPDATE_KEYS, ids=lambda k: repr(k)[:60])
def test_at_add_and_set(backend: ag.Device, key: object) -> None:
    np_key = tuple(
        np.asarray(k) if isinstance(k, list) else k for k in (key if isinstance(key, tuple) else (key,))
    )
    for dtype in (ag.float32, ag.float64, ag.int32):
        a = A.astype(_np(dtype))
        target_shape = a[np_key].shape
        v = (rng(1).integers(-5, 5, target_shape)).astype(_np(dtype))
        x = tensor(backend, a)
        k = _idx(backend, key, True)
        want = a.copy()
        np.add.at(want, np_key, v)  # repeated indices accumulate
        assert_close(x.at[k].add(tensor(backend, v)), want, dtype=dtype)
        want = a.copy()
        want[np_key] = v  # repeated indices: the last write wins (NumPy assignment)
        assert_close(x.at[k].set(tensor(backend, v)), want, dtype=dtype)
        want = a.copy()
        want[np_key] = 7
        assert_close(x.at[k].set(7), want, dtype=dtype)  # a broadcast scalar
        want = a.copy()
        np.add.at(want, np_key, 2)
        assert_close(x.at[k].add(2), want, dtype=dtype)
        np.testing.assert_array_equal(x.numpy(), a)  # functional: the input is unchanged


def test_at_updates_broadcast_and_check_dtypes(backend: ag.Device) -> None:
    a = np.zeros((3, 4))
    x = tensor(backend, a)
    row = np.array([1.0, 2.0, 3.0, 4.0])
    want = a.copy()
    want[[0, 2]] = row
    assert_close(x.at[[0, 2]].set(tensor(backend, row)), want)
    want = a.copy()
    np.add.at(want, (np.array([1, 1, 1]),), row)
    assert_close(x.at[[1, 1, 1]].add(tensor(backend, row)), want)
    ints = tensor(backend, np.zeros(3, np.int32))
    with pytest.raises(TypeError):
        ints.at[0].set(1.5)  # a float value does not fit an int tensor


def test_item_assignment(backend: ag.Device) -> None:
    """`x[key] = v` gives x the value x.at[key].set(v), as NumPy's assignment; views taken before
    keep their values (no buffer is written)."""
    a = np.arange(12.0).reshape(3, 4)
    x = tensor(backend, a)
    row, before = x[0], x
    want = a.copy()
    for key, v in [
        ((1, slice(None)), np.array([9.0, 8.0, 7.0, 6.0])),
        ((Ellipsis, 0), -1.0),
        (np.array([True, False, True]), 0.5),
        ((np.array([0, 2]), np.array([3, 1])), np.array([40.0, 41.0])),
    ]:
        x[key if not isinstance(key, np.ndarray) else tensor(backend, key)] = (
            tensor(backend, v) if isinstance(v, np.ndarray) else v
        )
        want[key] = v
        assert_close(x, want)
    x[x > 5] = 0.0
    want[want > 5] = 0.0
    assert_close(x, want)
    assert_close(row, a[0])
    assert_close(before, want)  # the same object: the name and every holder see the new value
    assert x.dtype == tensor(backend, a).dtype  # assignment keeps the dtype


def test_item_assignment_gradients(backend: ag.Device) -> None:
    """Gradients flow through the old value (where not overwritten) and the assigned value."""
    w = backend.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    v = backend.tensor(np.array([5.0]), requires_grad=True)
    z = w * 2.0
    z[1] = v[0] * w[0]
    ag.sum(z * z).backward()  # z = [2 w0, v0 w0, 2 w2]
    assert_close(w.grad, [8.0 * 1.0 + 2 * 5.0 * 1.0 * 5.0, 0.0, 8.0 * 3.0])
    assert_close(v.grad, [2 * 5.0 * 1.0 * 1.0])


# ====================================================================== take / take_along_axis / scatter_add
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_take(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _as(dtype, A)
    for x in (tensor(backend, a), noncontiguous(backend, a)):
        for idx, axis in (
            ([2, 0, 2, -1], 0),
            ([[0, 3], [1, 1]], 1),
            ([4, -5, 0], 2),
            ([], 1),
            ([7, 59, -1], None),
            (3, 1),
            ([-1], -1),
        ):
            want = np.take(a, idx, axis=axis)
            assert_close(
                ag.take(x, tensor(backend, np.asarray(idx, dtype=np.int64)), axis=axis), want, dtype=dtype
            )
            assert_close(ag.take(x, idx, axis=axis), want, dtype=dtype)
    assert_close(
        tensor(backend, a).take(tensor(backend, np.array([1], np.int32)), axis=0), a[[1]], dtype=dtype
    )
    with pytest.raises(IndexError):
        ag.take(tensor(backend, a), tensor(backend, np.array([3])), axis=0)
    with pytest.raises(TypeError):
        ag.take(tensor(backend, a), tensor(backend, np.array([0.0])), axis=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_take_along_axis(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _as(dtype, A)
    r = rng(2)
    for axis in (0, 1, 2, -1):
        n = a.shape[axis]
        shape = list(a.shape)
        shape[axis] = 6
        idx = r.integers(-n, n, shape)
        want = np.take_along_axis(a, idx, axis=axis)
        assert_close(
            ag.take_along_axis(tensor(backend, a), tensor(backend, idx), axis=axis), want, dtype=dtype
        )
        assert_close(ag.gather(noncontiguous(backend, a), tensor(backend, idx), axis=axis), want, dtype=dtype)
        # indices broadcast against the other axes
        bshape = [1] * a.ndim
        bshape[axis] = 2
        bidx = r.integers(0, n, bshape)
        want = np.take_along_axis(a, bidx, axis=axis)
        assert_close(
            ag.take_along_axis(tensor(backend, a), tensor(backend, bidx), axis=axis), want, dtype=dtype
        )
    zero = np.zeros((3, 0, 5), np.int64)
    assert_close(ag.take_along_axis(tensor(backend, a), tensor(backend, zero), axis=1), a[:, :0], dtype=dtype)


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64, ag.int64, ag.int32, ag.float16], ids=str)
def test_scatter_add(backend: ag.Device, dtype: dtypes.DType) -> None:
    r = rng(3)
    base = r.integers(-3, 3, (3, 4)).astype(_np(dtype))
    for axis in (0, 1, -1):
        idx_shape = (5, 4) if axis == 0 else (3, 6)
        n = base.shape[axis]
        idx = r.integers(0, n, idx_shape)
        idx[0, 0] = idx[1, 0] = 0  # repeated indices accumulate
        src = r.integers(-4, 5, idx_shape).astype(_np(dtype))
        want = base.astype(np.float64).copy()
        ax = axis % 2
        for i in range(idx_shape[0]):
            for j in range(idx_shape[1]):
                pos = (idx[i, j], j) if ax == 0 else (i, idx[i, j])
                want[pos] += src[i, j]
        got = ag.scatter_add(tensor(backend, base), axis, tensor(backend, idx), tensor(backend, src))
        assert_close(got, want.astype(_np(dtype)), dtype=dtype)
        neg = idx - n  # negative indices count from the end
        got = ag.scatter_add(
            noncontiguous(backend, base), axis, tensor(backend, neg), noncontiguous(backend, src)
        )
        assert_close(got, want.astype(_np(dtype)), dtype=dtype)
    # indices smaller than x on the other axes touch only their part
    small_idx = np.array([[2, 2]])
    got = ag.scatter_add(
        tensor(backend, base), 0, tensor(backend, small_idx), tensor(backend, np.ones((1, 2), _np(dtype)))
    )
    want = base.copy()
    want[2, :2] += 1
    assert_close(got, want, dtype=dtype)
    # a float src is cast to x's dtype
    assert_close(
        ag.scatter_add(
            tensor(backend, np.zeros(3, _np(dtype))),
            0,
            tensor(backend, np.array([1, 1])),
            tensor(backend, np.array([1.0, 2.0])),
        ),
        [0, 3, 0],
        dtype=dtype,
    )


def test_scatter_add_3d_along_the_last_axis(backend: ag.Device) -> None:
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    idx = rng(13).integers(0, 4, (2, 3, 2))
    idx[0, 0] = [1, 1]  # repeated indices accumulate
    src = rng(14).standard_normal((2, 3, 2)).astype(np.float32)
    want = base.astype(np.float64)
    for i, j, k in np.ndindex(*idx.shape):
        want[i, j, idx[i, j, k]] += src[i, j, k]
    got = ag.scatter_add(tensor(backend, base), 2, tensor(backend, idx), tensor(backend, src))
    assert_close(got, want, dtype=ag.float32)


# ====================================================================== sort / argsort / topk
@pytest.mark.parametrize(
    "dtype", [ag.float32, ag.float64, ag.int64, ag.int8, ag.uint8, ag.float16, ag.bool], ids=str
)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_and_argsort(backend: ag.Device, dtype: dtypes.DType, axis: int) -> None:
    a = rng(4).integers(0, 5, (6, 7))  # many ties: stability decides argsort
    a = (a > 2) if dtype is ag.bool else a.astype(_np(dtype))
    for x in (tensor(backend, a), noncontiguous(backend, a)):
        assert_close(ag.sort(x, axis=axis), np.sort(a, axis=axis), dtype=dtype)
        assert_close(ag.argsort(x, axis=axis), np.argsort(a, axis=axis, kind="stable"), dtype=ag.int64)
        # descending and stable: equal elements keep their original order
        key = a.astype(np.int64) if dtype is not ag.float16 else a.astype(np.float64)
        want_idx = np.argsort(-key, axis=axis, kind="stable")
        assert_close(ag.argsort(x, axis=axis, descending=True), want_idx, dtype=ag.int64)
        assert_close(
            ag.sort(x, axis=axis, descending=True), np.take_along_axis(a, want_idx, axis), dtype=dtype
        )
    assert_close(tensor(backend, a).sort(axis=axis), np.sort(a, axis=axis), dtype=dtype)
    assert_close(
        tensor(backend, a).argsort(axis=axis), np.argsort(a, axis=axis, kind="stable"), dtype=ag.int64
    )


def test_sort_nan_inf_and_edge_shapes(backend: ag.Device) -> None:
    a = np.array([3.0, np.nan, -np.inf, 1.0, np.inf, np.nan, -0.0, 2.0])
    for dtype in (ag.float32, ag.float64, ag.float16, ag.bfloat16):
        h = a.astype(_np(dtype))
        x = tensor(backend, h)
        want = np.sort(h.astype(np.float64))  # NaN sorts last
        assert_close(ag.sort(x), want, dtype=dtype)
        assert_close(
            ag.sort(x, descending=True), np.concatenate([want[-2:], want[:-2][::-1]]), dtype=dtype
        )  # NaN first
        idx = ag.argsort(x).numpy()
        np.testing.assert_array_equal(idx, np.argsort(h.astype(np.float64), kind="stable"))
        didx = ag.argsort(x, descending=True).numpy()
        np.testing.assert_array_equal(np.sort(didx[:2]), [1, 5])  # the NaNs lead, in their original order
        np.testing.assert_array_equal(didx[:2], [1, 5])
    # along either axis of a matrix, with ties and NaN: NaN counts as the largest value (last
    # ascending, first descending) and equal elements keep their original order
    m = np.array([[3.0, 1.0, np.nan, 1.0], [2.0, 2.0, -np.inf, 0.0], [np.nan, 5.0, 1.0, 1.0]])
    for axis in (0, -1):
        for descending in (False, True):
            key = np.where(np.isnan(m), -np.inf, -m) if descending else np.where(np.isnan(m), np.inf, m)
            order = np.argsort(key, axis=axis, kind="stable")
            x = tensor(backend, m)
            assert_close(ag.argsort(x, axis=axis, descending=descending), order, dtype=ag.int64)
            assert_close(
                ag.sort(x, axis=axis, descending=descending), np.take_along_axis(m, order, axis=axis)
            )
    assert_close(ag.sort(tensor(backend, np.zeros((2, 0)))), np.zeros((2, 0)), dtype=ag.float64)
    assert_close(
        ag.argsort(tensor(backend, np.zeros((0, 3))), axis=0), np.zeros((0, 3), np.int64), dtype=ag.int64
    )
    assert_close(ag.sort(tensor(backend, np.array([5.0]))), [5.0])
    u = np.array([0, 255, 7, 255, 0], np.uint8)
    assert_close(ag.argsort(tensor(backend, u), descending=True), [1, 3, 2, 0, 4], dtype=ag.int64)
    assert_close(ag.sort(tensor(backend, u), descending=True), [255, 255, 7, 0, 0], dtype=ag.uint8)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_topk(backend: ag.Device, largest: bool, axis: int) -> None:
    a = rng(5).permutation(40).reshape(5, 8).astype(np.float32)  # distinct values
    for k in (0, 1, 3, a.shape[axis]):
        for dtype in (ag.float32, ag.float64, ag.int32):
            h = a.astype(_np(dtype))
            values, indices = ag.topk(tensor(backend, h), k, axis=axis, largest=largest)
            order = np.argsort(-h if largest else h, axis=axis, kind="stable")
            want_idx = np.take(order, np.arange(k), axis=axis)
            assert_close(indices, want_idx, dtype=ag.int64)
            assert_close(values, np.take_along_axis(h, want_idx, axis), dtype=dtype)
    v, i = tensor(backend, a).topk(2)
    assert v.shape == i.shape == (5, 2)
    with pytest.raises(ValueError):
        ag.topk(tensor(backend, a), 9, axis=1)


def test_topk_ties_take_the_first_index(backend: ag.Device) -> None:
    a = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    v, i = ag.topk(tensor(backend, a), 2)
    assert_close(v, [3.0, 3.0])
    assert_close(i, [1, 2], dtype=ag.int64)
    v, i = ag.topk(tensor(backend, a), 2, largest=False)
    assert_close(v, [1.0, 2.0])
    assert_close(i, [0, 3], dtype=ag.int64)


# ====================================================================== one_hot / nonzero / where
@pytest.mark.parametrize("dtype", [None, ag.float64, ag.int64, ag.bool, ag.int8, ag.bfloat16], ids=str)
def test_one_hot(backend: ag.Device, dtype: dtypes.DType | None) -> None:
    want_dtype = ag.float32 if dtype is None else dtype
    for idx in (
        np.array([0, 3, 1, 3]),
        np.array([[2, 0], [1, 1]], np.int32),
        np.array(2, np.uint8),
        np.zeros(0, np.int64),
    ):
        want = np.eye(4, dtype=np.float64)[idx].astype(_np(want_dtype))
        got = ag.one_hot(tensor(backend, idx), 4, dtype=dtype)
        assert_close(got, want, dtype=want_dtype)
        assert_close(ag.functional.one_hot(tensor(backend, idx), 4, dtype=dtype), want, dtype=want_dtype)
    with pytest.raises(ValueError):
        ag.one_hot(tensor(backend, np.array([4])), 4)
    with pytest.raises(TypeError):
        ag.one_hot(tensor(backend, np.array([1.0])), 4)


@pytest.mark.parametrize("dtype", [ag.float32, ag.int64, ag.bool, ag.uint8, ag.float64], ids=str)
def test_nonzero(backend: ag.Device, dtype: dtypes.DType) -> None:
    for shape in [(7,), (3, 4), (2, 3, 4), (0, 3), (1,)]:
        a = rng(6).integers(-1, 2, shape)
        a = (
            (a != 0)
            if dtype is ag.bool
            else np.abs(a).astype(_np(dtype))
            if dtype is ag.uint8
            else a.astype(_np(dtype))
        )
        got = ag.nonzero(tensor(backend, a))
        want = np.nonzero(a)
        assert len(got) == len(want) == a.ndim
        for g, w in zip(got, want):
            assert_close(g, w, dtype=ag.int64)
        got = tensor(backend, a).nonzero(as_tuple=True)
        assert len(got) == a.ndim
    nan = np.array([0.0, np.nan, -0.0, 1.0])
    for g, w in zip(ag.nonzero(tensor(backend, nan)), np.nonzero(nan)):  # NaN is non-zero, -0.0 is zero
        assert_close(g, w, dtype=ag.int64)
    with pytest.raises(ValueError):
        ag.nonzero(tensor(backend, np.float32(1.0)))


def test_masking_idioms(backend: ag.Device) -> None:
    a = rng(7).standard_normal((4, 5))
    x = tensor(backend, a)
    mask = a > 0
    assert_close(x[x > 0], a[mask])
    assert_close(ag.where(x > 0, x, 0.0), np.where(mask, a, 0.0))
    assert_close(ag.where(x > 0, x, -x), np.abs(a))
    rows, cols = ag.nonzero(x > 0)
    assert_close(x[rows, cols], a[mask])
    assert_close(ag.sum(ag.where(x > 0, 1, 0)), mask.sum(), dtype=ag.int64)
    assert_close(x[tensor(backend, np.zeros((4, 5), bool))], np.zeros(0))  # nothing selected: shape (0,)
    keep = [True, False, True, False]
    assert_close(x[keep], a[keep])  # a Python list of bools is a mask, as in NumPy


# ====================================================================== inputs stay unchanged
def test_indexing_ops_do_not_mutate_inputs(backend: ag.Device) -> None:
    a = A.copy()
    x = tensor(backend, a)
    i = tensor(backend, np.array([[0, 1, 1, 2, 0]]))
    fns = [
        lambda t: t[1],
        lambda t: t[:, ::-1],
        lambda t: t[[0, 0, 2]],
        lambda t: t[t > 10],
        lambda t: t.at[0].add(1.0),
        lambda t: t.at[[0, 0]].set(1.0),
        lambda t: t.at[t > 3].set(0.0),
        lambda t: ag.take(t, i, axis=1),
        lambda t: ag.take_along_axis(t[0], i, axis=0),
        lambda t: ag.scatter_add(t[0], 0, i[:, :4], t[1, :1, :4]),
        lambda t: ag.sort(t, axis=0, descending=True),
        lambda t: ag.argsort(t),
        lambda t: ag.topk(t, 2),
        lambda t: ag.nonzero(t),
    ]
    for fn in fns:
        fn(x)
        np.testing.assert_array_equal(x.numpy(), A)
    np.testing.assert_array_equal(a, A)
