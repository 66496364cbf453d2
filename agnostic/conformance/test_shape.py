"""Shape ops against NumPy: reshape (-1), permute / transpose / moveaxis, broadcast_to,
squeeze / expand_dims, concat / stack / split / unstack, flip, pad (constant, reflect, edge),
tile, repeat (int and per-element repeats), roll, flatten, tril / triu and meshgrid; in several
dtypes, with 0-d, size-0 and size-1 dimensions, negative axes and non-contiguous inputs; and no op
writes to its input."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "reshape", "permute", "broadcast_to", "squeeze", "expand_dims", "concat", "stack", "flip", "pad",
    "tile", "repeat", "getitem", "where", "le", "ge", "sub", "arange",
}  # fmt: skip

DTYPES = [ag.float32, ag.float64, ag.int64, ag.int8, ag.uint8, ag.bool, ag.float16, ag.bfloat16]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _data(shape: tuple, dtype: dtypes.DType = ag.float32, seed: int = 0) -> np.ndarray:
    a = rng(seed).integers(-50, 50, shape)
    if dtype is ag.bool:
        return a > 0
    if dtype is ag.uint8:
        a = np.abs(a)
    return a.astype(_np(dtype)) if not dtypes.as_dtype(dtype).is_floating else (a / 4).astype(_np(dtype))


def _both(backend: ag.Device, host: np.ndarray, dtype: dtypes.DType | None = None) -> list[ag.Tensor]:
    """A contiguous and a non-contiguous tensor of the same values."""
    return [tensor(backend, host, dtype), noncontiguous(backend, host, dtype)]


# ====================================================================== reshape / flatten
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reshape(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _data((2, 3, 4), dtype)
    for x in _both(backend, a):
        for shape in [(24,), (4, 6), (4, -1), (-1,), (2, -1, 2), (1, 24, 1), (3, 2, 2, 2), (-1, 1)]:
            assert_close(ag.reshape(x, shape), a.reshape(shape), dtype=dtype)
        assert_close(x.reshape(6, 4), a.reshape(6, 4), dtype=dtype)
        assert_close(x.reshape((6, -1)), a.reshape(6, -1), dtype=dtype)
        assert_close(x.reshape(-1), a.reshape(-1), dtype=dtype)
    s = tensor(backend, a[0, 0, 0])
    assert_close(ag.reshape(s, (1, 1)), a[0, 0, 0].reshape(1, 1), dtype=dtype)
    assert_close(ag.reshape(tensor(backend, a[:1, :1, :1]), ()), a[0, 0, 0], dtype=dtype)
    assert_close(ag.reshape(s, -1), a[0, 0, 0].reshape(-1), dtype=dtype)
    z = a[:, :0]
    assert_close(ag.reshape(tensor(backend, z), (0, 4)), z.reshape(0, 4), dtype=dtype)
    assert_close(ag.reshape(tensor(backend, z), (-1, 2)), z.reshape(-1, 2), dtype=dtype)
    assert_close(ag.reshape(tensor(backend, z), (3, 0, 5)), z.reshape(3, 0, 5), dtype=dtype)
    with pytest.raises(ValueError):
        ag.reshape(tensor(backend, a), (5, -1))
    with pytest.raises(ValueError):
        ag.reshape(tensor(backend, a), (-1, -1))


def test_flatten(backend: ag.Device) -> None:
    a = _data((2, 3, 4, 5))
    for x in _both(backend, a):
        assert_close(ag.flatten(x), a.reshape(-1))
        assert_close(x.flatten(1), a.reshape(2, -1))
        assert_close(ag.flatten(x, 1, 2), a.reshape(2, 12, 5))
        assert_close(ag.flatten(x, -3, -2), a.reshape(2, 12, 5))
        assert_close(ag.flatten(x, 2, 2), a)
    assert_close(ag.flatten(tensor(backend, np.float32(3.0))), [3.0])
    assert_close(ag.flatten(tensor(backend, np.zeros((2, 0, 3)))), np.zeros(0), dtype=ag.float64)


# ====================================================================== permute / transpose / moveaxis
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_permute_transpose_moveaxis(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _data((2, 3, 4), dtype)
    for x in _both(backend, a):
        for axes in [(0, 1, 2), (2, 0, 1), (1, 0, 2), (2, 1, 0), (-1, 0, -2)]:
            assert_close(ag.permute_dims(x, axes), np.transpose(a, axes), dtype=dtype)
        assert_close(x.permute(1, 2, 0), a.transpose(1, 2, 0), dtype=dtype)
        assert_close(x.permute((2, 1, 0)), a.transpose(2, 1, 0), dtype=dtype)
        assert_close(ag.permute(x, 0, 2, 1), a.transpose(0, 2, 1), dtype=dtype)
        assert_close(ag.transpose(x, -2, -1), np.swapaxes(a, -1, -2), dtype=dtype)
        assert_close(x.transpose(0, 2), np.swapaxes(a, 0, 2), dtype=dtype)
        assert_close(ag.transpose(x, -3, -1), np.swapaxes(a, 0, 2), dtype=dtype)
        assert_close(ag.moveaxis(x, 0, -1), np.moveaxis(a, 0, -1), dtype=dtype)
        assert_close(x.moveaxis(-1, 0), np.moveaxis(a, -1, 0), dtype=dtype)
        assert_close(ag.moveaxis(x, (0, 1), (2, 0)), np.moveaxis(a, (0, 1), (2, 0)), dtype=dtype)
        assert_close(ag.moveaxis(x, [2, 0], [0, 1]), np.moveaxis(a, [2, 0], [0, 1]), dtype=dtype)
        assert_close(x.mT, np.swapaxes(a, -1, -2), dtype=dtype)
        assert_close(x[0].T, a[0].T, dtype=dtype)
    z = np.zeros((2, 0, 3), _np(dtype))
    assert_close(ag.permute_dims(tensor(backend, z), (2, 0, 1)), z.transpose(2, 0, 1), dtype=dtype)
    s = tensor(backend, a[0, 0, 0])
    assert_close(ag.permute_dims(s, ()), a[0, 0, 0], dtype=dtype)
    with pytest.raises(ValueError):
        ag.permute_dims(tensor(backend, a), (0, 0, 1))
    with pytest.raises(ValueError):
        ag.permute_dims(tensor(backend, a), (0, 1))


# ====================================================================== broadcast_to / squeeze / expand_dims
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_broadcast_to(backend: ag.Device, dtype: dtypes.DType) -> None:
    cases = [
        ((3, 1), (3, 4)),
        ((1, 4), (2, 3, 4)),
        ((), (2, 3)),
        ((4,), (4,)),
        ((1,), (0,)),
        ((1, 3), (0, 3)),
        ((2, 1, 1), (2, 0, 5)),
        ((1, 1), (1, 1, 1)),
    ]
    for src, dst in cases:
        a = _data(src, dtype)
        want = np.broadcast_to(a, dst)
        assert_close(ag.broadcast_to(tensor(backend, a), dst), want, dtype=dtype)
        assert_close(tensor(backend, a).broadcast_to(dst), want, dtype=dtype)
    a = _data((3, 1, 2), dtype)
    assert_close(
        ag.broadcast_to(noncontiguous(backend, a), (4, 3, 5, 2)),
        np.broadcast_to(a, (4, 3, 5, 2)),
        dtype=dtype,
    )
    # a broadcast result behaves like any tensor: further ops read every element
    out = ag.broadcast_to(tensor(backend, a), (2, 3, 4, 2))
    assert_close(ag.flip(out, axis=0)[1], np.broadcast_to(a, (3, 4, 2)), dtype=dtype)
    x, y = ag.broadcast_arrays(tensor(backend, a), tensor(backend, _data((4, 1), dtype)))
    assert x.shape == y.shape == (3, 4, 2)
    for bad in ((3, 2), (3, 3, 3), (2,), (2, 1, 2)):
        with pytest.raises(ValueError):
            ag.broadcast_to(tensor(backend, a), bad)


def test_squeeze_expand_dims(backend: ag.Device) -> None:
    a = _data((1, 3, 1, 2, 1))
    for x in _both(backend, a):
        assert_close(ag.squeeze(x), np.squeeze(a))
        assert_close(ag.squeeze(x, axis=0), np.squeeze(a, 0))
        assert_close(ag.squeeze(x, axis=-1), np.squeeze(a, -1))
        assert_close(x.squeeze((0, 2)), np.squeeze(a, (0, 2)))
        assert_close(ag.squeeze(x, axis=(-1, 0, 2)), np.squeeze(a, (0, 2, 4)))
        assert_close(ag.expand_dims(x, axis=0), a[None])
        assert_close(ag.expand_dims(x, axis=-1), a[..., None])
        assert_close(ag.expand_dims(x, axis=3), np.expand_dims(a, 3))
        assert_close(ag.expand_dims(x, axis=(0, -1)), np.expand_dims(a, (0, -1)))
        assert_close(ag.expand_dims(x, axis=(1, 3)), np.expand_dims(a, (1, 3)))
        assert_close(x.unsqueeze(2), np.expand_dims(a, 2))
    s = np.float32(2.5)
    assert_close(ag.expand_dims(tensor(backend, s), axis=0), [2.5])
    assert_close(ag.squeeze(tensor(backend, np.array([[2.5]], np.float32))), s)
    assert_close(ag.squeeze(tensor(backend, s)), s)
    z = np.zeros((1, 0, 1))
    assert_close(ag.squeeze(tensor(backend, z)), np.zeros(0), dtype=ag.float64)
    assert_close(ag.expand_dims(tensor(backend, z), axis=1), z[:, None], dtype=ag.float64)
    with pytest.raises(ValueError):
        ag.squeeze(tensor(backend, a), axis=1)


# ====================================================================== concat / stack / split / unstack
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_concat(backend: ag.Device, dtype: dtypes.DType) -> None:
    a, b, c = _data((2, 3, 4), dtype, 1), _data((2, 1, 4), dtype, 2), _data((2, 0, 4), dtype, 3)
    ta, tb, tc = tensor(backend, a), noncontiguous(backend, b), tensor(backend, c)
    assert_close(ag.concat([ta, tb, tc], axis=1), np.concatenate([a, b, c], 1), dtype=dtype)
    assert_close(ag.concat([ta, tb], axis=-2), np.concatenate([a, b], -2), dtype=dtype)
    assert_close(ag.concat([ta, ta], axis=0), np.concatenate([a, a], 0), dtype=dtype)
    assert_close(ag.concat([ta, ta], axis=-1), np.concatenate([a, a], -1), dtype=dtype)
    assert_close(ag.concat([ta, tb], axis=None), np.concatenate([a.ravel(), b.ravel()]), dtype=dtype)
    assert_close(ag.concat([ta]), a, dtype=dtype)
    assert_close(ag.concat((tc, tc), axis=1), np.zeros((2, 0, 4), _np(dtype)), dtype=dtype)
    assert_close(ag.concat([tc, tc], axis=0), np.zeros((4, 0, 4), _np(dtype)), dtype=dtype)


def test_concat_promotes(backend: ag.Device) -> None:
    a = np.arange(3, dtype=np.int8)
    f = np.array([0.5, 1.5], dtype=np.float32)
    d = np.array([2.25])
    t = lambda v: tensor(backend, v)  # noqa: E731
    assert_close(ag.concat([t(a), t(f)]), np.concatenate([a, f]), dtype=ag.float32)
    assert_close(ag.concat([t(a), t(f), t(d)]), np.concatenate([a, f, d]), dtype=ag.float64)
    assert_close(ag.concat([t(a), t(np.array([True]))]), [0, 1, 2, 1], dtype=ag.int8)
    assert_close(ag.concat([t(a.astype(np.uint8)), t(a)]), np.concatenate([a, a]), dtype=ag.int16)
    assert_close(ag.stack([t(f), t(f.astype(np.float16))]), np.stack([f, f]), dtype=ag.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stack_and_unstack(backend: ag.Device, dtype: dtypes.DType) -> None:
    a, b = _data((3, 4), dtype, 1), _data((3, 4), dtype, 2)
    ta, tb = tensor(backend, a), noncontiguous(backend, b)
    for axis in (0, 1, 2, -1, -3):
        assert_close(ag.stack([ta, tb, ta], axis=axis), np.stack([a, b, a], axis), dtype=dtype)
    assert_close(ag.stack([ta]), a[None], dtype=dtype)
    s = [tensor(backend, a[0, 0]), tensor(backend, a[1, 1])]
    assert_close(ag.stack(s), np.stack([a[0, 0], a[1, 1]]), dtype=dtype)
    assert_close(ag.stack([ta[:0], tb[:0]], axis=1), np.zeros((0, 2, 4)), dtype=dtype)
    for axis in (0, 1, -1):
        parts = ag.unstack(ta, axis=axis)
        want = [np.take(a, i, axis=axis) for i in range(a.shape[axis])]
        assert len(parts) == len(want)
        for got, w in zip(parts, want):
            assert_close(got, w, dtype=dtype)
    with pytest.raises(ValueError):
        ag.stack([ta, ta[:2]])


def test_split(backend: ag.Device) -> None:
    a = _data((4, 6, 2))
    for x in _both(backend, a):
        for arg, axis in (
            (2, 0),
            (3, 1),
            (1, 2),
            ([1, 3], 1),
            ([0, 2, 2, 6], 1),
            ([2, 5, 9], 1),
            ([], 0),
            (2, -1),
        ):
            got = ag.split(x, **{"sections" if isinstance(arg, int) else "indices": arg}, axis=axis)
            want = np.split(a, arg, axis=axis)
            assert len(got) == len(want), f"split({arg}, axis={axis}): {len(got)} parts, expected {len(want)}"
            for g, w in zip(got, want):
                assert_close(g, w)
    with pytest.raises(ValueError):
        ag.split(tensor(backend, a), sections=4, axis=1)


# ====================================================================== flip / roll
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_flip(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _data((2, 3, 4), dtype)
    for x in _both(backend, a):
        for axis in (None, 0, 1, -1, (0, 2), (-1, -2, 0)):
            assert_close(ag.flip(x, axis=axis), np.flip(a, axis), dtype=dtype)
        assert_close(x.flip(axis=1), np.flip(a, 1), dtype=dtype)
    assert_close(ag.flip(tensor(backend, a[0, 0, 0])), a[0, 0, 0], dtype=dtype)
    assert_close(ag.flip(tensor(backend, a[:, :0]), axis=1), a[:, :0], dtype=dtype)


def test_roll(backend: ag.Device) -> None:
    a = _data((3, 4, 5))
    for x in _both(backend, a):
        for shift, axis in (
            (1, 0),
            (-2, 1),
            (7, 2),
            (0, 1),
            (13, None),
            (-1, None),
            ((1, -2), (0, 2)),
            ((3, 3), (1, 1)),
            (2, -1),
            (-5, -3),
        ):
            assert_close(ag.roll(x, shift, axis=axis), np.roll(a, shift, axis=axis))
        assert_close(x.roll(2, axis=0), np.roll(a, 2, axis=0))
    z = np.zeros((2, 0))
    assert_close(ag.roll(tensor(backend, z), 3, axis=1), z, dtype=ag.float64)
    assert_close(ag.roll(tensor(backend, np.arange(5)), 2), np.roll(np.arange(5), 2), dtype=ag.int64)


# ====================================================================== pad
PAD_CASES = [
    (((1, 2), (0, 3)), "constant", 0.0),
    (((1, 2), (0, 3)), "constant", -1.5),
    (1, "constant", 2.0),
    ((2, 1), "constant", 0.0),
    (((2, 1), (1, 2)), "reflect", 0.0),
    (((0, 0), (3, 3)), "reflect", 0.0),
    (((1, 2), (2, 0)), "edge", 0.0),
    (2, "edge", 0.0),
    (((0, 0), (0, 0)), "constant", 0.0),
    (((3, 3), (0, 0)), "edge", 0.0),
]


@pytest.mark.parametrize("case", PAD_CASES, ids=str)
def test_pad(backend: ag.Device, case: tuple) -> None:
    widths, mode, value = case
    for dtype in (ag.float32, ag.float64, ag.int32, ag.float16):
        a = _data((3, 4), dtype)
        v = int(value) if dtype.is_integer else value
        kw = {"constant_values": v} if mode == "constant" else {}
        want = np.pad(a, widths, mode=mode, **kw)
        for x in _both(backend, a):
            assert_close(ag.pad(x, pad_width=widths, mode=mode, value=v), want, dtype=dtype)
    a3 = _data((2, 3, 4))
    widths3 = ((1, 0), (0, 2), (2, 1))
    for mode in ("constant", "reflect", "edge"):
        assert_close(ag.pad(tensor(backend, a3), widths3, mode=mode), np.pad(a3, widths3, mode=mode))


def test_pad_edge_cases(backend: ag.Device) -> None:
    b = np.array([True, False])
    assert_close(ag.pad(tensor(backend, b), 1), np.pad(b, 1), dtype=ag.bool)
    z = np.zeros((0, 2))
    assert_close(ag.pad(tensor(backend, z), ((1, 1), (0, 0))), np.pad(z, ((1, 1), (0, 0))), dtype=ag.float64)
    assert_close(
        ag.pad(tensor(backend, np.array([1.0, 2.0])), (0, 2), value=np.inf), [1.0, 2.0, np.inf, np.inf]
    )
    a3 = _data((2, 3, 4))
    widths3 = ((1, 0), (0, 2), (2, 1))
    for mode in ("reflect", "edge"):  # `value` is for mode='constant' only; the others ignore it
        assert_close(
            ag.pad(tensor(backend, a3), widths3, mode=mode, value=7.0), np.pad(a3, widths3, mode=mode)
        )
    with pytest.raises(ValueError):
        ag.pad(tensor(backend, np.arange(3.0)), 3, mode="reflect")
    with pytest.raises(ValueError):
        ag.pad(tensor(backend, np.arange(3.0)), 1, mode="wrap")


# ====================================================================== tile / repeat
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tile(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _data((2, 3), dtype)
    for x in _both(backend, a):
        for reps in [(1, 1), (2, 3), (3,), (2, 1, 2), (0, 2), (1, 0), (2, 1, 1, 1)]:
            assert_close(ag.tile(x, reps), np.tile(a, reps), dtype=dtype)
        assert_close(x.tile((2, 2)), np.tile(a, (2, 2)), dtype=dtype)
    assert_close(ag.tile(tensor(backend, a[0, 0]), (3,)), np.tile(a[0, 0], 3), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_repeat(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = _data((2, 3), dtype)
    for x in _both(backend, a):
        for reps, axis in ((2, 0), (3, 1), (1, -1), (0, 0), (2, None)):
            assert_close(ag.repeat(x, reps, axis=axis), np.repeat(a, reps, axis=axis), dtype=dtype)
        for reps, axis in (([1, 0, 2], 1), ([3, 1], 0), ([2], 1), ([0, 0, 0], -1)):
            r = tensor(backend, np.array(reps))
            assert_close(ag.repeat(x, r, axis=axis), np.repeat(a, reps, axis=axis), dtype=dtype)
        r32 = tensor(backend, np.array([1, 2, 0, 1, 1, 3], dtype=np.int32))
        assert_close(ag.repeat(x, r32), np.repeat(a, [1, 2, 0, 1, 1, 3]), dtype=dtype)
        assert_close(x.repeat(2, axis=1), np.repeat(a, 2, axis=1), dtype=dtype)
    with pytest.raises(ValueError):
        ag.repeat(tensor(backend, a), tensor(backend, np.array([1, 2])), axis=1)


# ====================================================================== tril / triu / meshgrid
@pytest.mark.parametrize("dtype", [ag.float32, ag.int64, ag.bool, ag.float64], ids=str)
def test_tril_triu(backend: ag.Device, dtype: dtypes.DType) -> None:
    for shape in [(4, 4), (3, 5), (5, 3), (2, 3, 4), (0, 3), (1, 1)]:
        a = _data(shape, dtype) if dtype is not ag.bool else np.ones(shape, bool)
        for x in _both(backend, a):
            for k in (0, 1, -1, 2, -3, 10, -10):
                assert_close(ag.tril(x, k=k), np.tril(a, k), dtype=dtype)
                assert_close(ag.triu(x, k=k), np.triu(a, k), dtype=dtype)
    nan = np.full((3, 3), np.nan)
    assert_close(ag.tril(tensor(backend, nan)), np.tril(nan))  # zeros replace, even NaN
    with pytest.raises(ValueError):
        ag.tril(tensor(backend, np.arange(3.0)))


@pytest.mark.parametrize("indexing", ["xy", "ij"])
def test_meshgrid(backend: ag.Device, indexing: str) -> None:
    x, y, z = np.arange(3.0), np.array([10, 20], dtype=np.int64), np.array([0.5, 1.5, 2.5, 3.5], np.float32)
    for arrays in ((x,), (x, y), (x, y, z), (x, np.zeros(0))):
        got = ag.meshgrid(*(tensor(backend, a) for a in arrays), indexing=indexing)
        want = np.meshgrid(*arrays, indexing=indexing)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, dtype=dtypes.from_numpy_dtype(w.dtype))
    with pytest.raises(ValueError):
        ag.meshgrid(tensor(backend, x), indexing="xz")


# ====================================================================== inputs stay unchanged
def test_shape_ops_do_not_mutate_inputs(backend: ag.Device) -> None:
    a = _data((2, 3, 4))
    snapshot = a.copy()
    x = tensor(backend, a)
    fns = [
        lambda t: t.reshape(4, 6),
        lambda t: t.permute(2, 0, 1),
        lambda t: ag.broadcast_to(t[:1], (3, 3, 4)),
        lambda t: ag.squeeze(t[:1], axis=0),
        lambda t: ag.expand_dims(t, axis=1),
        lambda t: ag.concat([t, t]),
        lambda t: ag.stack([t, t]),
        lambda t: ag.split(t, sections=3, axis=1),
        lambda t: ag.unstack(t),
        lambda t: ag.flip(t),
        lambda t: ag.pad(t, 1),
        lambda t: ag.pad(t, 1, mode="reflect"),
        lambda t: ag.pad(t, 1, mode="edge"),
        lambda t: ag.tile(t, (2, 1, 1)),
        lambda t: ag.repeat(t, 2, axis=2),
        lambda t: ag.roll(t, 1, axis=1),
        lambda t: ag.moveaxis(t, 0, 2),
        lambda t: ag.flatten(t),
        lambda t: ag.tril(t),
        lambda t: ag.triu(t, k=1),
    ]
    for fn in fns:
        fn(x)
        np.testing.assert_array_equal(x.numpy(), snapshot)
    np.testing.assert_array_equal(a, snapshot)
