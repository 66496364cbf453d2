"""The rest of the Array API namespace, on each backend, against NumPy: `nextafter` (bit for bit),
DLPack export for every consumer version (legacy 0.x capsules too) and import with `copy` and
`device`, `Tensor.to_device`, `astype(copy=, device=)`, boolean masks on 0-d and zero-size
tensors, `vecdot` (promoted dtype, conjugated x1, unbroadcast contracted axis), `diff`,
`count_nonzero` and `cumulative_sum` / `cumulative_prod` with `include_initial`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, check_grad, noncontiguous, rng, tensor

COVERS = {"nextafter", "from_dlpack", "to_dlpack", "dlpack_device", "getitem", "cumsum", "cumprod"}

FLOATS = [ag.float32, ag.float64, ag.float16, ag.bfloat16]
_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(_BITS[a.dtype.itemsize])


# ---------------------------------------------------------------------- nextafter
@pytest.mark.filterwarnings("ignore:overflow encountered in nextafter")  # NumPy's, on max -> inf
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_nextafter_matches_numpy_bit_for_bit(backend: ag.Device, dtype: dtypes.DType) -> None:
    info = np.finfo(_np(dtype)) if dtype is not ag.bfloat16 else None
    big = float(info.max) if info is not None else float(dtypes.finfo(dtype).max)
    x1 = [1.0, 1.0, -2.5, 3.0, np.inf, -np.inf, big, -big, 0.75, np.nan, 1.0, 7.0]
    x2 = [2.0, 0.0, -np.inf, 3.0, 0.0, 0.0, np.inf, -np.inf, -0.75, 1.0, np.nan, 7.0]
    if not backend.ops.flushes_subnormals:  # steps off zero give subnormals, which XLA flushes
        x1 += [0.0, 0.0, -0.0]
        x2 += [1.0, -1.0, 1.0]
    a, b = np.asarray(x1, dtype=_np(dtype)), np.asarray(x2, dtype=_np(dtype))
    out = ag.nextafter(tensor(backend, a), tensor(backend, b))
    assert out.dtype is dtype and out.shape == a.shape
    with np.errstate(over="ignore"):  # max toward inf is inf
        want = np.nextafter(a, b)
    got = out.numpy()
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(_bits(got)[~nan], _bits(want)[~nan]), (got, want)


def test_nextafter_broadcasts_promotes_and_takes_scalars(backend: ag.Device) -> None:
    a = rng(1).standard_normal((3, 1)).astype(np.float32)
    b = rng(2).standard_normal((1, 4))
    out = ag.nextafter(tensor(backend, a), tensor(backend, b))  # float32 with float64: float64
    assert_close(out, np.nextafter(a.astype(np.float64), b), dtype=ag.float64)
    assert np.array_equal(out.numpy(), np.nextafter(a.astype(np.float64), b))
    up = ag.nextafter(tensor(backend, a), 10.0)  # a weak Python float keeps float32
    assert up.dtype is ag.float32 and np.array_equal(up.numpy(), np.nextafter(a, np.float32(10)))
    down = ag.nextafter(-10.0, tensor(backend, a))
    assert down.dtype is ag.float32
    assert np.array_equal(down.numpy(), np.nextafter(np.float32(-10), a))
    ints = ag.nextafter(tensor(backend, np.array([1, 2], np.int32)), 3)  # as atan2: default float
    assert ints.dtype is ag.float32
    assert np.array_equal(ints.numpy(), np.nextafter(np.float32([1, 2]), np.float32(3)))
    empty = ag.nextafter(backend.zeros((0, 3)), backend.ones((1, 3)))
    assert empty.shape == (0, 3)
    strided = ag.nextafter(noncontiguous(backend, a.T.copy()), 5.0)
    assert np.array_equal(strided.numpy(), np.nextafter(a.T, np.float32(5)))


def test_nextafter_refuses_complex_and_bad_shapes(backend: ag.Device) -> None:
    x = backend.ones((3,), dtype=ag.complex64)
    with pytest.raises(TypeError, match="nextafter"):
        ag.nextafter(x, x)
    with pytest.raises(ValueError, match=r"nextafter.*\(3,\).*\(4,\)"):
        ag.nextafter(backend.ones((3,)), backend.ones((4,)))


def test_nextafter_gradient_is_zero(backend: ag.Device) -> None:
    x = tensor(backend, np.array([1.0, -2.0, 3.0]))
    y = tensor(backend, np.array([2.0, 0.0, 3.0]))
    gx, gy = ag.grad(lambda a, b: ag.sum(ag.nextafter(a, b) * 3.0), argnums=(0, 1))(x, y)
    assert np.array_equal(gx.numpy(), np.zeros(3)) and np.array_equal(gy.numpy(), np.zeros(3))


# ---------------------------------------------------------------------- DLPack
class _Exporter:
    """An array that hands NumPy exactly the capsule `tensor.__dlpack__(**kwargs)` gives, as an old
    consumer would ask for it (no keyword, max_version=None or a 0.x version)."""

    def __init__(self, t: ag.Tensor, **kwargs: Any) -> None:
        self.t, self.kwargs = t, kwargs

    def __dlpack__(self, **ignored: Any) -> Any:
        return self.t.__dlpack__(**self.kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.t.__dlpack_device__()


EXPORTS = [
    {},
    {"max_version": None},
    {"max_version": (0, 0)},
    {"max_version": (0, 8)},
    {"max_version": (1, 0)},
    {"max_version": (2, 0)},
    {"max_version": (1, 0), "copy": True},
    {"max_version": (1, 0), "copy": None},
    {"max_version": (1, 0), "dl_device": (1, 0)},
    {"stream": None},
]


@pytest.mark.parametrize(
    "kwargs", EXPORTS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "none"
)
@pytest.mark.parametrize(
    "dtype", [ag.float32, ag.int64, ag.uint8, ag.bool, ag.complex64], ids=lambda d: d.name
)
def test_dlpack_export_for_every_consumer_version(
    backend: ag.Device, dtype: dtypes.DType, kwargs: dict
) -> None:
    if "dl_device" in kwargs and int(backend.zeros((1,)).__dlpack_device__()[0]) != 1:
        pytest.skip("dl_device=(kDLCPU, 0) asks a device array for a host copy: a CPU backend's case")
    a = (
        (np.arange(6).reshape(2, 3) % 4 - 1.5).astype(_np(dtype))
        if dtype is not ag.bool
        else (np.arange(6).reshape(2, 3) % 3 == 0)
    )
    x = tensor(backend, a)
    got = np.from_dlpack(_Exporter(x, **kwargs)) if int(x.__dlpack_device__()[0]) == 1 else None
    if got is not None:
        assert got.dtype == a.dtype and np.array_equal(got, a)


def test_dlpack_device_is_a_pair_of_ints(backend: ag.Device) -> None:
    for d in [ag.float32, ag.bool, ag.complex128, ag.uint16]:
        kind, index = backend.zeros((3,), dtype=d).__dlpack_device__()
        assert int(kind) in (1, 2, 3, 4, 7, 8, 9, 10, 13, 14) and isinstance(int(index), int)


@pytest.mark.parametrize("copy", [None, True, False])
def test_from_dlpack_copy_and_device(backend: ag.Device, copy: bool | None) -> None:
    host = np.arange(5, dtype=np.float64)
    on_host = int(backend.zeros((1,)).__dlpack_device__()[0]) == 1
    if copy is False and not on_host:
        with pytest.raises(BufferError, match="copy=False"):
            ag.from_dlpack(host, device=backend, copy=False)
        return
    y = ag.from_dlpack(host, device=backend, copy=copy)
    assert y.device is backend and y.dtype is ag.float64
    assert np.array_equal(y.numpy(), np.arange(5.0))
    if copy:
        host[0] = 99.0  # a copy does not see later writes to the source
        assert y.numpy()[0] == 0.0
    x = backend.tensor([1.0, 2.0])
    same = ag.from_dlpack(x, copy=copy)  # an agnostic tensor stays on its device
    assert same.device is x.device and np.array_equal(same.numpy(), [1.0, 2.0])


def test_to_device_and_astype_device(backend: ag.Device) -> None:
    x = tensor(backend, np.array([1.0, -2.0, 3.5], np.float32))
    assert x.to_device(x.device) is x
    host = ag.backend("numpy")
    moved = x.to_device(host)
    assert moved.device is host and np.array_equal(moved.numpy(), x.numpy())
    back = moved.to_device(backend)
    assert back.device is backend and np.array_equal(back.numpy(), x.numpy())
    with pytest.raises(ValueError, match="stream"):
        x.to_device(backend, stream=1)
    assert ag.astype(x, ag.float32, copy=False) is x
    y = ag.astype(x, ag.float64, device=host)
    assert y.device is host and y.dtype is ag.float64
    np.testing.assert_array_equal(y.numpy(), x.numpy().astype(np.float64))
    g = ag.grad(lambda t: ag.sum(t.to_device(host) * 2.0), argnums=0)(tensor(backend, np.ones(3)))
    assert g.device is backend and np.array_equal(g.numpy(), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------------- boolean masks
@pytest.mark.parametrize(
    "dtype", [ag.float32, ag.int64, ag.bool, ag.uint8, ag.complex64], ids=lambda d: d.name
)
def test_zero_d_boolean_masks_as_numpy(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = np.asarray(3, dtype=_np(dtype))
    x = tensor(backend, a)
    b = tensor(backend, np.arange(6).reshape(2, 3).astype(_np(dtype)))
    for m in (True, False):
        for mask in (backend.tensor(m), m):
            assert_close(x[mask], a[np.bool_(m)], dtype=dtype)
            assert_close(b[mask], b.numpy()[np.bool_(m)], dtype=dtype)
            assert_close(b[..., mask], b.numpy()[..., np.bool_(m)], dtype=dtype)
            assert_close(x[mask, None], a[np.bool_(m), None], dtype=dtype)


@pytest.mark.parametrize(
    "shape, mask_shape",
    [((0,), (0,)), ((0, 3), (0, 3)), ((0, 3), (0,)), ((2, 0), (2, 0)), ((2, 3), (0, 3)), ((2, 3), (2, 0)),
     ((2, 3), (0, 0)), ((2, 3, 4), (0, 3))],
)  # fmt: skip
def test_zero_size_boolean_masks_as_numpy(backend: ag.Device, shape: tuple, mask_shape: tuple) -> None:
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    want = a[np.zeros(mask_shape, dtype=bool)]
    assert_close(tensor(backend, a)[backend.zeros(mask_shape, dtype=ag.bool)], want)


def test_bad_boolean_masks_raise_index_error(backend: ag.Device) -> None:
    x = backend.ones((2, 3))
    with pytest.raises(IndexError, match=r"mask of shape \(3,\)"):
        x[backend.ones((3,), dtype=ag.bool)]
    with pytest.raises(IndexError, match="too many indices"):
        backend.tensor(1.0)[backend.ones((1,), dtype=ag.bool)]


def test_zero_d_mask_gradient(backend: ag.Device) -> None:
    check_grad(backend, lambda t: t[backend.tensor(True)] * 3.0, np.array([1.0, 2.0]))
    check_grad(backend, lambda t: ag.sum(t[backend.tensor(False)]) + ag.sum(t), np.array(2.0))


# ---------------------------------------------------------------------- vecdot
@pytest.mark.parametrize(
    "dtype", [ag.uint8, ag.int8, ag.int32, ag.int64, ag.float32, ag.float64], ids=lambda d: d.name
)
def test_vecdot_keeps_the_promoted_dtype(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = (np.arange(12).reshape(3, 4) % 5).astype(_np(dtype))
    b = (np.arange(4) % 3 + 1).astype(_np(dtype))
    out = ag.vecdot(tensor(backend, a), tensor(backend, b))
    want = np.sum(a.astype(np.float64) * b, axis=-1)
    assert_close(out, want.astype(_np(dtype)), dtype=dtype)


def test_vecdot_conjugates_x1(backend: ag.Device) -> None:
    r = rng(3)
    a = (r.standard_normal((2, 3)) + 1j * r.standard_normal((2, 3))).astype(np.complex64)
    b = (r.standard_normal((2, 3)) + 1j * r.standard_normal((2, 3))).astype(np.complex64)
    out = ag.vecdot(tensor(backend, a), tensor(backend, b))
    assert out.dtype is ag.complex64
    np.testing.assert_allclose(out.numpy(), np.sum(np.conj(a) * b, axis=-1), rtol=1e-5)


def test_vecdot_axes_and_broadcasting(backend: ag.Device) -> None:
    a = rng(4).standard_normal((2, 3, 4))
    b = rng(5).standard_normal((3, 4))
    ta, tb = tensor(backend, a), tensor(backend, b)
    assert_close(ag.vecdot(ta, tb), np.sum(a * b, -1), dtype=ag.float64)
    assert_close(ag.vecdot(ta, tb, axis=-2), np.sum(a * b, -2), dtype=ag.float64)
    c = rng(6).standard_normal((2, 1, 4))
    assert_close(ag.vecdot(ta, tensor(backend, c), axis=0), np.sum(a * c, 0), dtype=ag.float64)
    check_grad(backend, lambda x, y: ag.vecdot(x, y, axis=-2), a, b)


def test_vecdot_errors(backend: ag.Device) -> None:
    a, b = backend.ones((2, 3)), backend.ones((2, 1))
    with pytest.raises(ValueError, match=r"vecdot: shapes \(2, 3\) and \(2, 1\).*axis -1.*3 and 1"):
        ag.vecdot(a, b)  # the contracted axis does not broadcast
    with pytest.raises(ValueError, match=r"vecdot: axis -3 .*\(2, 3\) and \(3,\).*-1 to -1"):
        ag.vecdot(a, backend.ones((3,)), axis=-3)
    with pytest.raises(IndexError, match="vecdot: axis 1"):
        ag.vecdot(a, backend.ones((3,)), axis=1)  # ambiguous: the ranks differ
    with pytest.raises(TypeError, match="bool"):
        ag.vecdot(backend.ones((3,), dtype=ag.bool), backend.ones((3,), dtype=ag.bool))


def test_expand_dims_out_of_range_is_an_index_error(backend: ag.Device) -> None:
    x = backend.ones((2, 3))
    for axis in (3, -4, 10):
        with pytest.raises(IndexError, match=rf"expand_dims: axis {axis} .*\(2, 3\).*-3 to 2"):
            ag.expand_dims(x, axis=axis)
    assert ag.expand_dims(x, axis=-3).shape == (1, 2, 3) and ag.expand_dims(x, axis=2).shape == (2, 3, 1)


# ---------------------------------------------------------------------- diff, count_nonzero, cumulative
@pytest.mark.parametrize(
    "shape, axis, n",
    [((5,), -1, 1), ((5,), 0, 2), ((3, 4), 0, 1), ((3, 4), -1, 3), ((3, 4), 1, 0), ((3, 4), 1, 4),
     ((3, 4), 1, 7), ((0, 4), 0, 1), ((2, 3, 4), 1, 2)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [ag.float32, ag.int64, ag.uint8, ag.bool], ids=lambda d: d.name)
def test_diff_matches_numpy(backend: ag.Device, shape: tuple, axis: int, n: int, dtype: dtypes.DType) -> None:
    a = (rng(7).integers(0, 9, shape)).astype(_np(dtype))
    out = ag.diff(tensor(backend, a), axis=axis, n=n)
    assert_close(out, np.diff(a, n=n, axis=axis), dtype=dtype)


def test_diff_prepend_append(backend: ag.Device) -> None:
    a = rng(8).standard_normal((3, 4))
    pre, app = rng(9).standard_normal((3, 2)), rng(10).standard_normal((3, 1))
    t = tensor(backend, a)
    want = np.diff(a, axis=1, prepend=pre, append=app)
    assert_close(ag.diff(t, axis=1, prepend=tensor(backend, pre), append=tensor(backend, app)), want)
    assert_close(ag.diff(t, axis=0, n=2, prepend=0.5), np.diff(a, axis=0, n=2, prepend=0.5))
    assert_close(ag.diff(t, append=-1.0), np.diff(a, append=-1.0))
    check_grad(backend, lambda x, p: ag.diff(x, n=2, axis=1, prepend=p), a, pre)


def test_diff_errors(backend: ag.Device) -> None:
    x = backend.ones((3, 4))
    with pytest.raises(ValueError, match="diff: needs a tensor of at least 1 dimension"):
        ag.diff(backend.tensor(1.0))
    with pytest.raises(ValueError, match="diff: the order n must be non-negative, got -1"):
        ag.diff(x, n=-1)
    with pytest.raises(ValueError, match=r"diff: prepend has shape \(2, 1\).*\(3, 4\).*axis 1"):
        ag.diff(x, prepend=backend.ones((2, 1)))
    with pytest.raises(IndexError, match="diff: axis 2"):
        ag.diff(x, axis=2)


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), ()])
@pytest.mark.parametrize("keepdims", [False, True])
def test_count_nonzero_matches_numpy(backend: ag.Device, axis: Any, keepdims: bool) -> None:
    a = rng(11).integers(-1, 2, (2, 3, 4)).astype(np.float32)
    a[0, 0, 0] = np.nan  # NaN is non-zero
    ints = np.nan_to_num(a, nan=5.0).astype(np.int8)
    for arr in (a, a != 0, ints, (a + 1j * np.roll(a, 1)).astype(np.complex64)):
        want = np.count_nonzero(arr, axis=axis, keepdims=keepdims)
        out = ag.count_nonzero(tensor(backend, arr), axis=axis, keepdims=keepdims)
        assert_close(out, np.asarray(want, dtype=np.int64), dtype=ag.int64)


@pytest.mark.parametrize("include_initial", [False, True])
@pytest.mark.parametrize("dtype", [ag.float32, ag.int32, ag.uint8, ag.bool], ids=lambda d: d.name)
def test_cumulative_with_include_initial(
    backend: ag.Device, include_initial: bool, dtype: dtypes.DType
) -> None:
    a = (rng(12).integers(0, 3, (3, 4))).astype(_np(dtype))
    t = tensor(backend, a)
    for op, ref, first in ((ag.cumulative_sum, np.cumsum, 0), (ag.cumulative_prod, np.cumprod, 1)):
        for axis in (0, 1):
            want = ref(a.astype(np.float64), axis=axis)
            if include_initial:
                shape = list(a.shape)
                shape[axis] = 1
                want = np.concatenate([np.full(shape, first, np.float64), want], axis=axis)
            out = op(t, axis=axis, include_initial=include_initial)
            assert out.shape == want.shape
            np.testing.assert_allclose(out.numpy().astype(np.float64), want)
        flat = op(tensor(backend, a[0]), include_initial=include_initial)
        assert flat.shape == (a.shape[1] + include_initial,)
