"""Creation, conversion, randomness and the Tensor API against NumPy.

Creation functions (full/zeros/ones/arange/linspace/eye and the *_like family), `ag.asarray` of
Python data and NumPy arrays (Python float -> float32, int -> int64, NumPy dtypes kept), the host
round trips (`.numpy()`, `.item()`, `.tolist()`, DLPack), the seeded random draws (bit-identical to
the documented host Philox draw on every backend), and the Tensor's properties and repr.
"""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "full",
    "arange",
    "eye",
    "cast",
    "from_numpy",
    "to_numpy",
    # ops whose results (views, where a backend makes them) must not let a write reach the input
    "reshape",
    "permute",
    "getitem",
    "expand_dims",
    "squeeze",
    "broadcast_to",
    "flip",
    "add",
    # overridable defaults of the op-set beyond PRIMITIVES and COMPOSITES
    "random_uniform",
    "random_normal",
    "random_bernoulli",
    "random_integers",
    "from_dlpack",
    "to_dlpack",
    "dlpack_device",
}

ALL = list(dtypes.ALL_DTYPES)
NUMERIC = [d for d in ALL if d is not ag.bool]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


# ====================================================================== full / zeros / ones / empty
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 3), (2, 3)], ids=str)
def test_zeros_ones_full(backend: ag.Device, dtype: dtypes.DType, shape: tuple) -> None:
    assert_close(backend.zeros(shape, dtype=dtype), np.zeros(shape, _np(dtype)), dtype=dtype)
    assert_close(backend.ones(shape, dtype=dtype), np.ones(shape, _np(dtype)), dtype=dtype)
    assert_close(backend.empty(shape, dtype=dtype), np.zeros(shape, _np(dtype)), dtype=dtype, shape=shape)
    value = True if dtype is ag.bool else (7 if dtype.is_integer else 2.5)
    assert_close(backend.full(shape, value, dtype=dtype), np.full(shape, value, _np(dtype)), dtype=dtype)
    assert_close(ag.full(shape, value, dtype=dtype, device=backend), np.full(shape, value), dtype=dtype)


def test_creation_defaults_and_shape_forms(backend: ag.Device) -> None:
    assert_close(backend.zeros(2, 3), np.zeros((2, 3)), dtype=ag.float32)
    assert_close(backend.ones((2, 3)), np.ones((2, 3)), dtype=ag.float32)
    assert_close(backend.zeros(4), np.zeros(4), dtype=ag.float32)
    assert_close(ag.zeros((1, 2), device=backend), np.zeros((1, 2)), dtype=ag.float32)
    assert_close(ag.ones(3, device=backend), np.ones(3), dtype=ag.float32)
    assert_close(ag.empty((0, 2), device=backend), np.zeros((0, 2)), dtype=ag.float32)
    # full infers the dtype from the Python value: weak scalars take the defaults
    assert_close(backend.full((2,), 3), [3, 3], dtype=ag.int64)
    assert_close(backend.full((2,), 1.5), [1.5, 1.5], dtype=ag.float32)
    assert_close(backend.full((2,), True), [True, True], dtype=ag.bool)
    assert_close(backend.full((2,), float("nan")), [np.nan, np.nan], dtype=ag.float32)
    assert_close(backend.full((2,), -float("inf"), dtype=ag.float64), [-np.inf, -np.inf], dtype=ag.float64)
    assert_close(backend.full((3,), -128, dtype=ag.int8), [-128] * 3, dtype=ag.int8)
    assert_close(backend.full((1,), 255, dtype=ag.uint8), [255], dtype=ag.uint8)
    assert_close(backend.full((1,), 2**62, dtype=ag.int64), [2**62], dtype=ag.int64)


@pytest.mark.parametrize("dtype", [None, ag.int32, ag.float64, ag.bool, ag.bfloat16], ids=str)
def test_like_functions(backend: ag.Device, dtype: dtypes.DType | None) -> None:
    host = rng(1).standard_normal((2, 3)).astype(np.float16)
    x = tensor(backend, host)
    want = ag.float16 if dtype is None else dtype
    nd = _np(want)
    assert_close(ag.zeros_like(x, dtype=dtype), np.zeros((2, 3), nd), dtype=want)
    assert_close(ag.ones_like(x, dtype=dtype), np.ones((2, 3), nd), dtype=want)
    assert_close(ag.empty_like(x, dtype=dtype), np.zeros((2, 3), nd), dtype=want, shape=(2, 3))
    assert_close(ag.full_like(x, 1, dtype=dtype), np.full((2, 3), 1, nd), dtype=want)
    assert ag.zeros_like(x).device is backend
    np.testing.assert_array_equal(x.numpy(), host)  # the source is untouched


# ====================================================================== arange / linspace / eye
ARANGE_CASES = [
    ((5,), {}),
    ((2, 9, 3), {}),
    ((5, 0, -2), {}),
    ((3, 3), {}),
    ((-3, 3), {}),
    ((4, 1), {}),
    ((0.0, 1.0, 0.25), {}),
    ((1.5,), {}),
    ((0, 2, 0.5), {}),
    ((1, -1, -0.5), {}),
    ((5,), {"dtype": ag.float64}),
    ((2, 8, 2), {"dtype": ag.int8}),
    ((10,), {"dtype": ag.float16}),
    ((0.0, 1.0, 0.1), {"dtype": ag.float64}),
    ((3,), {"dtype": ag.uint8}),
]


@pytest.mark.parametrize("case", ARANGE_CASES, ids=str)
def test_arange(backend: ag.Device, case: tuple) -> None:
    args, kw = case
    want_dtype = kw.get("dtype") or ag.result_type(*args)
    assert want_dtype is (ag.int64 if all(isinstance(a, int) for a in args) else ag.float32) or "dtype" in kw
    ref = np.arange(*args).astype(_np(want_dtype))
    out = backend.arange(*args, **kw)
    assert_close(out, ref.astype(np.float64) if want_dtype.is_floating else ref, dtype=want_dtype)
    assert_close(ag.arange(*args, device=backend, **kw), ref, dtype=want_dtype, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("dtype", [None, ag.float64, ag.float16])
def test_linspace(backend: ag.Device, endpoint: bool, dtype: dtypes.DType | None) -> None:
    want = ag.float32 if dtype is None else dtype
    for start, stop, num in ((0.0, 1.0, 5), (-2, 3, 7), (1.0, 1.0, 3), (0, 1, 1), (0, 1, 0), (2.0, -2.0, 4)):
        ref = np.linspace(start, stop, num, endpoint=endpoint)
        out = ag.linspace(start, stop, num, endpoint=endpoint, dtype=dtype, device=backend)
        assert_close(out, ref.astype(_np(want)).astype(np.float64), dtype=want)
        out = backend.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)
        assert_close(out, ref.astype(_np(want)).astype(np.float64), dtype=want)


@pytest.mark.parametrize(
    "n, m, k", [(3, None, 0), (3, 4, 1), (4, 3, -1), (2, 5, 3), (3, 3, -5), (0, 2, 0), (1, 1, 0)]
)
@pytest.mark.parametrize("dtype", [None, ag.float64, ag.int32, ag.bool])
def test_eye(backend: ag.Device, n: int, m: int | None, k: int, dtype: dtypes.DType | None) -> None:
    want = ag.float32 if dtype is None else dtype
    assert_close(ag.eye(n, m, k=k, dtype=dtype, device=backend), np.eye(n, m, k, dtype=_np(want)), dtype=want)
    assert_close(backend.eye(n, m, k, dtype=dtype), np.eye(n, m, k, dtype=_np(want)), dtype=want)


# ====================================================================== asarray and conversion
def test_asarray_python_data_gets_the_defaults(backend: ag.Device) -> None:
    cases = [
        (1.5, ag.float32, ()),
        (3, ag.int64, ()),
        (True, ag.bool, ()),
        ([1.0, 2.0], ag.float32, (2,)),
        ([1, 2, 3], ag.int64, (3,)),
        ([True, False], ag.bool, (2,)),
        ([[1, 2.5], [3, 4]], ag.float32, (2, 2)),
        ([], ag.float32, (0,)),
        ([[]], ag.float32, (1, 0)),
        ([1, True], ag.int64, (2,)),
        ((1, 2), ag.int64, (2,)),
    ]
    for data, want, shape in cases:
        out = ag.asarray(data, device=backend)
        assert out.dtype is want, f"asarray({data!r}) has dtype {out.dtype}, expected {want}"
        assert_close(out, np.asarray(data, dtype=_np(want)), dtype=want, shape=shape)
        t = backend.tensor(data)
        assert t.dtype is want and t.shape == shape
        assert ag.tensor(data, device=backend).dtype is want


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_asarray_keeps_numpy_dtypes(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = (np.arange(6).reshape(2, 3) % 3).astype(_np(dtype))
    out = ag.asarray(host, device=backend)
    assert_close(out, host, dtype=dtype)
    scalar = ag.asarray(host[1, 2], device=backend)  # a NumPy scalar keeps its dtype too
    assert_close(scalar, host[1, 2], dtype=dtype, shape=())
    assert_close(backend.from_numpy(host), host, dtype=dtype)
    assert_close(ag.asarray(host[:, ::2], device=backend), host[:, ::2], dtype=dtype)  # a strided view


def test_asarray_dtype_argument_and_copies(backend: ag.Device) -> None:
    host = np.array([[1.25, -2.5], [3.0, 4.75]])
    assert_close(ag.asarray(host, dtype=ag.float32, device=backend), host, dtype=ag.float32)
    assert_close(ag.asarray(host, dtype="int32", device=backend), host.astype(np.int32), dtype=ag.int32)
    assert_close(ag.asarray([1, 2], dtype=ag.float64, device=backend), [1.0, 2.0], dtype=ag.float64)
    assert_close(ag.asarray([1, 0, 2], dtype=bool, device=backend), [True, False, True], dtype=ag.bool)
    assert_close(ag.asarray(2.5, dtype=float, device=backend), 2.5, dtype=ag.float32)
    assert_close(ag.asarray(-3, dtype=ag.int8, device=backend), -3, dtype=ag.int8)
    assert_close(backend.tensor([1, 2], dtype=ag.float16), [1.0, 2.0], dtype=ag.float16)
    # with copy=True (and always through Device.tensor) the tensor holds a copy: later writes to the
    # host array do not reach it (copy=None may share memory, as the Array API allows)
    x = ag.asarray(host, device=backend, copy=True)
    t = backend.tensor(host)
    host[0, 0] = 99.0
    assert x.numpy()[0, 0] == 1.25 and t.numpy()[0, 0] == 1.25
    host[0, 0] = 1.25
    # a tensor through asarray: same values; with a dtype, converted
    y = ag.asarray(t)
    assert_close(y, [[1.25, -2.5], [3.0, 4.75]], dtype=ag.float64)
    assert_close(ag.asarray(t, dtype=ag.float16), [[1.25, -2.5], [3.0, 4.75]], dtype=ag.float16)
    assert_close(ag.asarray(t, copy=True), t.numpy(), dtype=ag.float64)


def test_astype_and_to(backend: ag.Device) -> None:
    host = np.array([-2.75, -0.5, 0.0, 0.5, 1.5, 300.0])
    x = tensor(backend, host)
    assert_close(x.to(ag.float32), host, dtype=ag.float32)
    assert_close(x.to("float16"), host.astype(np.float16), dtype=ag.float16)
    assert_close(x.to(dtype=ag.int32), host.astype(np.int32), dtype=ag.int32)  # truncates toward zero
    assert_close(x.astype(ag.int64), [-2, 0, 0, 0, 1, 300], dtype=ag.int64)
    assert_close(x.astype(ag.bool), host != 0, dtype=ag.bool)
    assert_close(ag.astype(x, ag.bfloat16), host.astype(_np(ag.bfloat16)), dtype=ag.bfloat16)
    assert_close(x.to(backend), host, dtype=ag.float64)
    assert x.to(backend).device is backend
    same = x.astype(ag.float64)
    assert_close(same, host, dtype=ag.float64)
    assert_close(tensor(backend, np.array([True, False])).astype(ag.float32), [1.0, 0.0], dtype=ag.float32)
    np.testing.assert_array_equal(x.numpy(), host)


# ====================================================================== host round trips
@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_numpy_round_trip(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = (rng(2).standard_normal((3, 4)) * 5).astype(_np(dtype))
    x = tensor(backend, host)
    got = x.numpy()
    assert isinstance(got, np.ndarray)
    assert got.dtype == host.dtype and got.shape == host.shape
    np.testing.assert_array_equal(got, host)
    np.testing.assert_array_equal(np.asarray(x), host)
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(noncontiguous(backend, host).numpy(), host)


def test_numpy_view_cannot_change_the_tensor(backend: ag.Device) -> None:
    """Tensors are values: a write through `.numpy()` either raises (a shared read-only view) or
    lands in a private copy; it never changes the tensor."""
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    for x in (tensor(backend, host), ag.sum(tensor(backend, host), axis=0), tensor(backend, host)[1]):
        before = x.numpy().copy()
        view = x.numpy()
        try:
            view[...] = -1.0
        except ValueError:
            pass
        else:
            np.testing.assert_array_equal(x.numpy(), before, err_msg="writing .numpy() changed the tensor")
        np.testing.assert_array_equal(x.numpy(), before)


def test_numpy_view_of_a_shared_array_is_read_only(backend: ag.Device) -> None:
    x = tensor(backend, np.arange(4.0))
    view = x.numpy()
    if view.flags.writeable:
        # a writable result must be a private copy
        view[0] = 42.0
        assert x.numpy()[0] == 0.0
    else:
        with pytest.raises(ValueError):
            view[0] = 42.0


RESULTS_THAT_MAY_SHARE_MEMORY = {
    "reshape": lambda t: t.reshape(6, 4),
    "permute": lambda t: t.permute(2, 1, 0),
    "slice": lambda t: t[:, 1:],
    "index": lambda t: t[0],
    "expand_dims": lambda t: ag.expand_dims(t, axis=0),
    "squeeze": lambda t: ag.squeeze(t[:, :1], axis=1),
    "detach": lambda t: t.detach(),
    "astype_same_dtype": lambda t: t.astype(ag.float32),
    "broadcast_to": lambda t: ag.broadcast_to(t[:1], (2, 3, 4)),
    "flip": lambda t: ag.flip(t, axis=0),
    "add_zero": lambda t: t + 0.0,
    "asarray": lambda t: ag.asarray(t),
}


def test_numpy_view_of_a_result_cannot_change_its_input(backend: ag.Device) -> None:
    """Views, no-op casts and the like may share the input's memory; a write through the result's
    `.numpy()` either raises (read-only) or lands in a private copy, and never reaches the input."""
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = tensor(backend, host)
    for name, fn in RESULTS_THAT_MAY_SHARE_MEMORY.items():
        view = fn(x).numpy()
        try:
            view[...] = -1.0
        except ValueError:
            pass  # read-only: the value cannot be changed through it
        np.testing.assert_array_equal(x.numpy(), host, err_msg=f"a write through {name}(x).numpy() reached x")


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_item_and_tolist(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = np.array([[0, 1, 2], [3, 0, 5]]).astype(_np(dtype))
    x = tensor(backend, host)
    py = bool if dtype is ag.bool else (int if dtype.is_integer else complex if dtype.is_complex else float)
    lst = x.tolist()
    wide = np.complex128 if dtype.is_complex else np.float64 if dtype.is_floating else host.dtype
    assert lst == host.astype(wide).tolist()
    assert all(type(v) is py for row in lst for v in row), [type(v) for v in lst[0]]
    item = x[1, 2].item()
    assert type(item) is py and item == py(host[1, 2])
    assert tensor(backend, host[0, 1]).tolist() == py(host[0, 1])  # a 0-d tensor gives a scalar
    assert ag.reshape(x[1, 2], (1, 1)).item() == py(host[1, 2])
    if dtype.is_floating:
        assert float(x[1, 2]) == 5.0
    elif dtype.is_complex:
        assert complex(x[1, 2]) == 5.0
        with pytest.raises(TypeError, match=r"float\(x\.real\)"):
            float(x[1, 2])
    elif dtype is not ag.bool:
        assert int(x[1, 2]) == 5 and [0, 1][x[0, 1]] == 1  # __index__
    assert bool(x[0, 1]) is True and bool(x[0, 0]) is False
    with pytest.raises(ValueError):
        x.item()
    with pytest.raises(ValueError):
        bool(x)


def test_tolist_special_values(backend: ag.Device) -> None:
    x = tensor(backend, np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32))
    vals = x.tolist()
    assert np.isnan(vals[0]) and vals[1] == np.inf and vals[2] == -np.inf
    assert vals[3] == 0.0 and np.copysign(1.0, vals[3]) == -1.0
    assert tensor(backend, np.zeros((2, 0))).tolist() == [[], []]


@pytest.mark.parametrize("dtype", [d for d in ALL if d is not ag.bfloat16], ids=str)
def test_dlpack_round_trip(backend: ag.Device, dtype: dtypes.DType) -> None:
    if backend.zeros(1).__dlpack_device__()[0] != 1:  # 1 is DLPack's kDLCPU: host memory
        pytest.skip(f"np.from_dlpack reads host memory only; {backend} is on {backend.device}")
    host = (np.arange(12).reshape(3, 4) % 5).astype(_np(dtype))
    x = tensor(backend, host)
    back = np.from_dlpack(x)
    assert back.dtype == host.dtype and back.shape == host.shape
    np.testing.assert_array_equal(back, host)
    device_type, _ = x.__dlpack_device__()
    assert device_type == 1  # kDLCPU
    y = ag.from_dlpack(host, device=backend)
    assert_close(y, host, dtype=dtype)
    z = backend.from_dlpack(x)
    assert_close(z, host, dtype=dtype)
    assert_close(ag.from_dlpack(np.ascontiguousarray(host.T), device=backend), host.T, dtype=dtype)


def test_tensor_properties(backend: ag.Device) -> None:
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = tensor(backend, host)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, tuple)
    assert all(type(s) is int for s in x.shape)
    assert x.dtype is ag.float32
    assert x.ndim == 3 and x.size == 24 and len(x) == 2
    assert x.device is backend and x.backend is backend
    assert_close(x.mT, np.swapaxes(host, -1, -2))
    assert_close(x[0].T, host[0].T)
    scalar = tensor(backend, np.float64(3.0))
    assert scalar.shape == () and scalar.ndim == 0 and scalar.size == 1
    empty = backend.zeros((3, 0, 2))
    assert empty.size == 0 and empty.ndim == 3 and empty.shape == (3, 0, 2)
    assert [t.shape for t in x] == [(3, 4), (3, 4)]  # iteration over the first axis
    with pytest.raises(ValueError):
        _ = x.T  # .T is for 2-D tensors (Array API)
    with pytest.raises(TypeError):
        len(scalar)


def test_array_namespace_and_info(backend: ag.Device) -> None:
    x = tensor(backend, np.ones(3))
    assert x.__array_namespace__() is ag
    assert x.__array_namespace__(api_version="2023.12") is ag
    with pytest.raises(ValueError):
        x.__array_namespace__(api_version="1999.01")
    info = ag.__array_namespace_info__()
    assert info.default_dtypes()["real floating"] is ag.float32
    assert info.default_dtypes()["integral"] is ag.int64
    standard = {d.name for d in ALL} - {"float16", "bfloat16"}  # the standard's dtypes only
    assert set(info.dtypes()) == standard
    assert set(info.dtypes(kind="real floating")) == {"float32", "float64"}
    assert set(info.dtypes(kind="complex floating")) == {"complex64", "complex128"}


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64, ag.int64, ag.bool, ag.bfloat16, ag.uint8], ids=str)
def test_repr(backend: ag.Device, dtype: dtypes.DType) -> None:
    x = tensor(backend, (np.arange(6).reshape(2, 3) % 4).astype(_np(dtype)))
    text = repr(x)
    assert text.startswith("tensor(") and text.endswith(")")
    assert f"dtype={dtype.name}" in text
    assert repr(backend.name) in text
    # the values are all there: every row's first element appears
    for v in (0, 1, 2, 3) if dtype is not ag.bool else ("True", "False"):
        assert str(v) in text
    assert "..." in repr(backend.zeros(1000)), "large tensors are summarized"
    assert "[]" in repr(backend.zeros((0,)))


# ====================================================================== randomness
def _philox(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(seed))


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64, ag.float16, ag.bfloat16], ids=str)
def test_random_uniform_and_normal_equal_the_host_draw(backend: ag.Device, dtype: dtypes.DType) -> None:
    shape = (3, 5)
    nd = _np(dtype)
    u = backend.rand(*shape, seed=7, dtype=dtype)
    assert_close(u, _philox(7).uniform(0.0, 1.0, shape).astype(nd), dtype=dtype, rtol=0, atol=0)
    u2 = backend.uniform(shape, -2.0, 3.0, seed=8, dtype=dtype)
    assert_close(u2, _philox(8).uniform(-2.0, 3.0, shape).astype(nd), dtype=dtype, rtol=0, atol=0)
    n = backend.randn(*shape, seed=9, dtype=dtype)
    assert_close(n, _philox(9).normal(0.0, 1.0, shape).astype(nd), dtype=dtype, rtol=0, atol=0)
    n2 = backend.normal(shape, 1.5, 0.5, seed=10, dtype=dtype)
    assert_close(n2, _philox(10).normal(1.5, 0.5, shape).astype(nd), dtype=dtype, rtol=0, atol=0)


def test_random_default_dtype_range_and_shapes(backend: ag.Device) -> None:
    u = backend.rand(2000, seed=1)
    assert u.dtype is ag.float32 and u.shape == (2000,)
    vals = u.numpy()
    assert vals.min() >= 0.0 and vals.max() < 1.0
    assert abs(vals.mean() - 0.5) < 0.03
    n = backend.randn((40, 50), seed=2)
    assert n.dtype is ag.float32 and n.shape == (40, 50)
    assert abs(float(n.numpy().mean())) < 0.1 and abs(float(n.numpy().std()) - 1.0) < 0.1
    assert backend.rand(0, 3, seed=3).shape == (0, 3)
    assert backend.randn(seed=3).shape == ()


@pytest.mark.parametrize("dtype", [None, ag.int32, ag.int8, ag.uint8, ag.int64], ids=str)
def test_randint(backend: ag.Device, dtype: dtypes.DType | None) -> None:
    want = ag.int64 if dtype is None else dtype
    out = backend.randint(-3 if want is not ag.uint8 else 0, 5, (4, 6), seed=11, dtype=dtype)
    lo = -3 if want is not ag.uint8 else 0
    ref = _philox(11).integers(lo, 5, size=(4, 6)).astype(_np(want))
    assert_close(out, ref, dtype=want)
    assert out.numpy().min() >= lo and out.numpy().max() < 5


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_bernoulli(backend: ag.Device, p: float) -> None:
    out = backend.bernoulli((50, 40), p, seed=12)
    assert out.dtype is ag.bool and out.shape == (50, 40)
    assert_close(out, _philox(12).random(size=(50, 40)) < p, dtype=ag.bool)
    assert abs(float(out.numpy().mean()) - p) < 0.05, "the mean of Bernoulli(p) draws is about p"


def test_same_seed_same_values_different_seeds_differ(backend: ag.Device) -> None:
    for draw in (
        lambda s: backend.rand(4, 4, seed=s),
        lambda s: backend.randn(4, 4, seed=s),
        lambda s: backend.randint(0, 1000, (4, 4), seed=s),
        lambda s: backend.bernoulli((8, 8), 0.5, seed=s),
    ):
        a, b, c = draw(5).numpy(), draw(5).numpy(), draw(6).numpy()
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c), "different seeds gave the same draw"


def test_manual_seed_and_generators(backend: ag.Device) -> None:
    ag.manual_seed(1234)
    first = [backend.rand(3).numpy(), backend.randn(2, 2).numpy(), backend.randint(0, 9, (5,)).numpy()]
    ag.manual_seed(1234)
    second = [backend.rand(3).numpy(), backend.randn(2, 2).numpy(), backend.randint(0, 9, (5,)).numpy()]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], backend.rand(3).numpy()), "the stream moved on"
    # the seed stream is the documented one: each op takes the next Philox integer of the stream
    stream = _philox(1234)
    s1 = int(stream.integers(0, 2**63 - 1))
    np.testing.assert_array_equal(first[0], _philox(s1).uniform(0, 1, 3).astype(np.float32))
    # an explicit Generator is independent of the global stream
    g1, g2 = ag.Generator(77), ag.Generator(77)
    ag.manual_seed(1)
    a = backend.randn(6, generator=g1).numpy()
    ag.manual_seed(2)
    b = backend.randn(6, generator=g2).numpy()
    np.testing.assert_array_equal(a, b)
    state = g1.get_state()
    c = backend.rand(4, generator=g1).numpy()
    g1.set_state(state)
    np.testing.assert_array_equal(c, backend.rand(4, generator=g1).numpy())
    # dropout follows its seed
    x = backend.ones(100)
    d1 = ag.functional.dropout(x, 0.5, seed=3).numpy()
    d2 = ag.functional.dropout(x, 0.5, seed=3).numpy()
    np.testing.assert_array_equal(d1, d2)
    assert set(np.unique(d1)) <= {0.0, 2.0}
    np.testing.assert_array_equal(d1 == 0.0, ~(_philox(3).random(100) < 0.5))
    np.testing.assert_array_equal(ag.functional.dropout(x, 0.5, training=False).numpy(), np.ones(100))
