"""The Array API namespace beyond the ops (issue 21, part 5): namespace inspection, signatures
as the standard (2023.12, and 2024.12's additions) writes them, DLPack between agnostic and the
libraries themselves (torch and JAX as producers and consumers, every consumer version), device
moves, NumPy's AxisError, and Python floats kept exact by asarray. The per-backend semantics are
in agnostic/conformance/test_namespace.py."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

BACKENDS = [d.name for d in available_backends()]
STANDARD = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
    "float64", "complex64", "complex128",
}  # fmt: skip


# ---------------------------------------------------------------------- inspection
def test_namespace_is_returned_by_every_tensor() -> None:
    for name in BACKENDS:
        x = ag.backend(name).ones((2,))
        assert x.__array_namespace__() is ag and x.__array_namespace__(api_version="2023.12") is ag
    with pytest.raises(ValueError, match=r"unsupported api_version '2099\.01'"):
        ag.ones((1,)).__array_namespace__(api_version="2099.01")
    assert ag.__array_api_version__ == "2023.12"


@pytest.mark.parametrize("name", BACKENDS)
def test_capabilities_and_devices_of_the_default_backend(name: str) -> None:
    dev = ag.backend(name)
    with ag.default_backend(dev):
        info = ag.__array_namespace_info__()
        caps = info.capabilities()
        assert caps["boolean indexing"] is True and caps["data-dependent shapes"] is True
        assert caps["max dimensions"] == {"numpy": 64, "torch": 64, "cupy": 64, "jax": None}[name]
        assert info.default_device() is dev
        devices = info.devices()
        assert dev in devices and all(d.name == name for d in devices)
        assert [d.device for d in devices] == type(dev.ops).devices()


def test_max_dimensions_is_the_library_limit() -> None:
    x = ag.backend("numpy").ones((1,) * 64)
    assert x.ndim == 64
    with pytest.raises(ValueError):
        ag.backend("numpy").ones((1,) * 65)


def test_default_dtypes() -> None:
    info = ag.__array_namespace_info__()
    want = {"real floating": ag.float32, "complex floating": ag.complex64, "integral": ag.int64,
            "indexing": ag.int64}  # fmt: skip
    assert info.default_dtypes() == want
    assert info.default_dtypes(device=ag.backend("numpy")) == want
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        info.default_dtypes(device="nope")


def test_dtypes_lists_the_standard_ones_by_kind() -> None:
    info = ag.__array_namespace_info__()
    every = info.dtypes()
    assert set(every) == STANDARD and all(every[n] is getattr(ag, n) for n in STANDARD)
    assert "float16" not in every and "bfloat16" not in every  # agnostic's additions, not the standard's
    kinds = {
        "bool": {"bool"},
        "signed integer": {"int8", "int16", "int32", "int64"},
        "unsigned integer": {"uint8", "uint16", "uint32", "uint64"},
        "integral": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"},
        "real floating": {"float32", "float64"},
        "complex floating": {"complex64", "complex128"},
        "numeric": STANDARD - {"bool"},
    }
    for kind, names in kinds.items():
        assert set(info.dtypes(kind=kind)) == names, kind
    assert set(info.dtypes(kind=("bool", "complex floating"))) == {"bool", "complex64", "complex128"}
    assert set(info.dtypes(kind=("real floating", ag.int8))) == {"float32", "float64", "int8"}
    assert info.dtypes(kind=()) == {}
    assert set(info.dtypes(device=ag.backend("numpy"))) == STANDARD
    with pytest.raises(ValueError, match="unknown kind 'floating'"):
        info.dtypes(kind="floating")


# ---------------------------------------------------------------------- signatures
SIGNATURES = {
    ag.astype: "(x, dtype, /, *, copy=True, device=None)",
    ag.from_dlpack: "(x, /, *, device=None, copy=None)",
    ag.vecdot: "(x1, x2, /, *, axis=-1)",
    ag.diff: "(x, /, *, axis=-1, n=1, prepend=None, append=None)",
    ag.nextafter: "(x1, x2, /)",
    ag.count_nonzero: "(x, /, *, axis=None, keepdims=False)",
    ag.cumulative_sum: "(x, /, *, axis=None, dtype=None, include_initial=False)",
    ag.cumulative_prod: "(x, /, *, axis=None, dtype=None, include_initial=False)",
    ag.take_along_axis: "(x, indices, /, axis=-1)",
    ag.expand_dims: "(x, /, axis=0)",
    ag.reciprocal: "(x, /)",
    ag.Tensor.to_device: "(self, device, /, *, stream=None)",
    ag.Tensor.__dlpack__: "(self, *, stream=None, max_version=None, dl_device=None, copy=None)",
}


@pytest.mark.parametrize("fn", list(SIGNATURES), ids=lambda f: f.__name__)
def test_signatures_follow_the_standard(fn: object) -> None:
    sig = inspect.signature(fn)
    plain = sig.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    assert str(plain) == SIGNATURES[fn]


# ---------------------------------------------------------------------- DLPack with the libraries
def _capsule_kwargs() -> list[dict]:
    return [{}, {"max_version": None}, {"max_version": (0, 0)}, {"max_version": (0, 8)},
            {"max_version": (1, 0)}, {"max_version": (1, 0), "copy": True}]  # fmt: skip


@pytest.mark.parametrize("name", BACKENDS)
def test_torch_reads_every_capsule_version(name: str) -> None:
    torch = pytest.importorskip("torch")
    x = ag.backend(name).tensor([[1.5, -2.0], [0.0, 4.0]], dtype=ag.float64)
    for kwargs in _capsule_kwargs():
        capsule = x.__dlpack__(**kwargs)
        got = torch.from_dlpack(capsule)
        assert got.dtype is torch.float64 and got.tolist() == [[1.5, -2.0], [0.0, 4.0]], kwargs


def test_jax_producer_gives_a_legacy_capsule_to_old_consumers() -> None:
    """JAX itself refuses max_version below (0, 5); agnostic hands 0.x consumers the legacy capsule."""
    pytest.importorskip("jax")
    x = ag.backend("jax").tensor([1.0, 2.0])
    for version in [(0, 0), (0, 4), (0, 8)]:
        capsule = x.__dlpack__(max_version=version)
        assert repr(capsule).startswith('<capsule object "dltensor"')


@pytest.mark.parametrize("name", BACKENDS)
def test_libraries_import_agnostic_tensors_and_back(name: str) -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    dev = ag.backend(name)
    x = dev.tensor([1, 2, 3], dtype=ag.int32)
    assert torch.from_dlpack(x).tolist() == [1, 2, 3]
    assert jnp.from_dlpack(x).tolist() == [1, 2, 3]
    assert np.from_dlpack(x).tolist() == [1, 2, 3]
    for source in (torch.arange(3.0), jnp.arange(3.0), np.arange(3.0)):
        y = ag.from_dlpack(source, device=dev)
        assert y.device is dev and y.tolist() == [0.0, 1.0, 2.0]
        assert ag.from_dlpack(source, device=dev, copy=True).tolist() == [0.0, 1.0, 2.0]


def test_from_dlpack_without_device_keeps_tensors_where_they_are() -> None:
    for name in BACKENDS:
        x = ag.backend(name).tensor([1.0])
        assert ag.from_dlpack(x).device is x.device
    assert ag.from_dlpack(np.ones(2)).device is ag.get_default_backend()


@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_from_dlpack_moves_bfloat16_tensors_between_backends(source: str, target: str) -> None:
    """DLPack has a bfloat16 code NumPy cannot read: agnostic tensors then go through the host, and
    copy=False, which cannot, says so."""
    src, dst = ag.backend(source), ag.backend(target)
    x = src.tensor([1.5, -2.0], dtype=ag.bfloat16)
    y = ag.from_dlpack(x, device=dst)
    assert y.device is dst and y.dtype is ag.bfloat16 and y.tolist() == [1.5, -2.0]
    if source != target and "numpy" in (source, target):
        with pytest.raises(
            BufferError, match=r"from_dlpack: copy=False, but Device.*cannot view this Tensor"
        ):
            ag.from_dlpack(x, device=dst, copy=False)


def test_a_copy_does_not_share_memory() -> None:
    a = np.arange(4.0)
    view = ag.from_dlpack(a, device="numpy")
    copied = ag.from_dlpack(a, device="numpy", copy=True)
    a[0] = 7.0
    assert view.tolist()[0] == 7.0 and copied.tolist()[0] == 0.0


# ---------------------------------------------------------------------- devices
def test_devices_compare_as_the_standard_needs() -> None:
    for name in BACKENDS:
        dev = ag.backend(name)
        x = dev.ones((2,))
        assert x.device == dev and x.device == ag.backend(name, "cpu") and hash(x.device) == hash(dev)
        assert ag.zeros((1,), device=x.device).device == x.device
        others = [ag.backend(n) for n in BACKENDS if n != name]
        assert all(x.device != o for o in others)


@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_to_device_between_backends_keeps_values_and_gradients(source: str, target: str) -> None:
    src, dst = ag.backend(source), ag.backend(target)
    x = src.tensor([[1.0, -2.0], [3.5, 0.25]], dtype=ag.float64)
    y = x.to_device(dst)
    assert y.device is dst and y.dtype is ag.float64 and y.tolist() == x.tolist()
    g = ag.grad(lambda t: ag.sum(t.to_device(dst) ** 2), argnums=0)(x)
    assert g.device is src and g.tolist() == [[2.0, -4.0], [7.0, 0.5]]
    z = ag.astype(x, ag.float32, device=dst)
    assert z.device is dst and z.dtype is ag.float32 and z.tolist() == x.tolist()


def test_to_device_refuses_a_stream_and_bad_devices() -> None:
    x = ag.ones((2,))
    with pytest.raises(ValueError, match=r"to_device: stream=7.*stream=None"):
        x.to_device(x.device, stream=7)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        x.to_device("nope")


# ---------------------------------------------------------------------- errors and values
def test_axis_errors_are_index_and_value_errors() -> None:
    """NumPy's AxisError: the standard asks IndexError of expand_dims; ValueError stays for callers
    that caught it before."""
    assert issubclass(ag.AxisError, IndexError) and issubclass(ag.AxisError, ValueError)
    x = ag.ones((2, 3))
    with pytest.raises(
        IndexError, match=r"expand_dims: axis 3 is out of range for a tensor of shape \(2, 3\)"
    ):
        ag.expand_dims(x, axis=3)
    with pytest.raises(ValueError, match=r"squeeze: axis 2 is out of range for a tensor of 2 dimensions"):
        ag.squeeze(x, axis=2)
    with pytest.raises(IndexError, match="sum: axis -3"):
        ag.sum(x, axis=-3)
    with pytest.raises(ValueError, match=r"squeeze: axis 1 has size 3, not 1"):
        ag.squeeze(x, axis=1)  # not an axis error: a plain ValueError, as the standard says
    try:
        ag.squeeze(x, axis=1)
    except ValueError as e:
        assert not isinstance(e, IndexError)


def test_item_assignment_rebinds_and_functional_updates_return_new_tensors() -> None:
    x = ag.zeros((3,))
    assert x.at[0].set(1.0).tolist() == [1.0, 0.0, 0.0] and x.tolist() == [0.0, 0.0, 0.0]
    assert x.at[0].add(2.0).tolist() == [2.0, 0.0, 0.0]
    before = x[1:]
    x[1] = 5.0  # the name x holds the new value; a slice taken before keeps the old one
    assert x.tolist() == [0.0, 5.0, 0.0] and before.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", BACKENDS)
def test_python_floats_reach_float64_exactly(name: str) -> None:
    dev = ag.backend(name)
    values = [0.1, 1 / 3, 2.0**-1074, 1e300, -0.0, 123456789.123456789]
    assert ag.asarray(0.1, dtype=ag.float64, device=dev).item() == 0.1
    got = ag.asarray(values, dtype=ag.float64, device=dev).tolist()
    assert got == values and np.signbit(got[4])
    nested = ag.asarray([[0.1, 0.2], [0.3, 1 / 3]], dtype=ag.float64, device=dev).tolist()
    assert nested == [[0.1, 0.2], [0.3, 1 / 3]]
    assert dev.tensor(0.1, dtype=ag.float64).item() == 0.1
    assert ag.full((2,), 0.1, dtype=ag.float64, device=dev).tolist() == [0.1, 0.1]
    assert ag.asarray(0.1, dtype=ag.float32, device=dev).item() == float(np.float32(0.1))
    assert ag.asarray(0.1, device=dev).dtype is ag.float32  # the default float


def test_nextafter_agrees_with_torch_and_jax() -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    a = np.array([1.0, -3.5, 1e30, 0.5], np.float32)
    b = np.array([2.0, -np.inf, 0.0, 0.5], np.float32)
    want = torch.nextafter(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.array_equal(np.asarray(jnp.nextafter(a, b)), want)
    for name in BACKENDS:
        dev = ag.backend(name)
        assert np.array_equal(ag.nextafter(dev.tensor(a), dev.tensor(b)).numpy(), want)


def test_vecdot_agrees_with_torch_for_complex() -> None:
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    a = r.standard_normal((3, 4)) + 1j * r.standard_normal((3, 4))
    b = r.standard_normal((4,)) + 1j * r.standard_normal((4,))
    want = torch.linalg.vecdot(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    for name in BACKENDS:
        dev = ag.backend(name)
        got = ag.vecdot(dev.tensor(a), dev.tensor(b))
        assert got.dtype is ag.complex128
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_new_names_are_in_the_namespace() -> None:
    for name in ("diff", "nextafter", "count_nonzero", "reciprocal", "take_along_axis", "cumulative_sum",
                 "cumulative_prod", "from_dlpack", "astype", "vecdot", "AxisError"):  # fmt: skip
        assert callable(getattr(ag, name)), name
