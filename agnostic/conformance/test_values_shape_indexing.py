"""Shape ops, indexing, creation and the Tensor API against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "reshape", "permute", "broadcast_to", "squeeze", "expand_dims", "concat", "stack", "flip", "pad",
    "tile", "repeat", "getitem", "index_add", "take", "take_along_axis", "scatter_add", "arange",
    "eye", "full", "from_numpy", "to_numpy", "cast",
}  # fmt: skip

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def test_shape_ops(backend: ag.Device) -> None:
    x = tensor(backend, A)
    assert_close(x.reshape(4, -1), A.reshape(4, -1))
    assert_close(ag.reshape(x, (0 + 6, 4)), A.reshape(6, 4))
    assert_close(ag.permute_dims(x, (2, 0, 1)), A.transpose(2, 0, 1))
    assert_close(x.permute(1, 0, 2), A.transpose(1, 0, 2))
    assert_close(ag.transpose(x, 0, 2), np.swapaxes(A, 0, 2))
    assert_close(ag.moveaxis(x, 0, -1), np.moveaxis(A, 0, -1))
    assert_close(ag.broadcast_to(tensor(backend, A[:, :1]), (2, 3, 4)), np.broadcast_to(A[:, :1], (2, 3, 4)))
    assert_close(ag.squeeze(tensor(backend, A[:, :1]), axis=1), A[:, 0])
    assert_close(ag.expand_dims(x, axis=-1), A[..., None])
    assert_close(ag.expand_dims(x, axis=(0, 2)), np.expand_dims(A, (0, 2)))
    assert_close(x.flatten(1), A.reshape(2, 12))
    assert_close(x.mT, np.swapaxes(A, -1, -2))
    assert_close(tensor(backend, A[0]).T, A[0].T)
    assert_close(ag.flip(x, axis=(0, 2)), np.flip(A, (0, 2)))
    assert_close(ag.flip(x), np.flip(A))
    assert_close(ag.roll(x, 2, axis=2), np.roll(A, 2, axis=2))
    assert_close(ag.roll(x, -1), np.roll(A, -1))
    assert_close(ag.tile(tensor(backend, A[0]), (2, 1, 3)), np.tile(A[0], (2, 1, 3)))
    assert_close(ag.repeat(x, 2, axis=1), np.repeat(A, 2, axis=1))
    assert_close(ag.repeat(x, tensor(backend, np.array([1, 0, 2])), axis=1), np.repeat(A, [1, 0, 2], axis=1))
    assert_close(ag.repeat(tensor(backend, A[0]), 2), np.repeat(A[0], 2))
    assert_close(ag.tril(tensor(backend, A[0]), k=1), np.tril(A[0], 1))
    assert_close(ag.triu(x), np.triu(A))


def test_join_and_split(backend: ag.Device) -> None:
    x = tensor(backend, A)
    assert_close(ag.concat([x, x[:, :1]], axis=1), np.concatenate([A, A[:, :1]], axis=1))
    assert_close(ag.concat([x, x], axis=None), np.concatenate([A.ravel(), A.ravel()]))
    assert_close(
        ag.concat([x, tensor(backend, A.astype(np.float64))], axis=-1),
        np.concatenate([A, A], -1),
        dtype=ag.float64,
    )
    assert_close(ag.stack([x, x], axis=-1), np.stack([A, A], -1))
    parts = ag.split(x, [1, 3], axis=2)
    for got, want in zip(parts, np.split(A, [1, 3], axis=2)):
        assert_close(got, want)
    for got, want in zip(ag.split(x, 3, axis=1), np.split(A, 3, axis=1)):
        assert_close(got, want)
    for got, want in zip(ag.unstack(x, axis=1), [A[:, i] for i in range(3)]):
        assert_close(got, want)
    grids = ag.meshgrid(tensor(backend, np.arange(3)), tensor(backend, np.arange(2)))
    for got, want in zip(grids, np.meshgrid(np.arange(3), np.arange(2))):
        assert_close(got, want)
    grids = ag.meshgrid(tensor(backend, np.arange(3)), tensor(backend, np.arange(2)), indexing="ij")
    for got, want in zip(grids, np.meshgrid(np.arange(3), np.arange(2), indexing="ij")):
        assert_close(got, want)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(backend: ag.Device, mode: str) -> None:
    widths = ((1, 0), (0, 2), (2, 1))
    kwargs = {"constant_values": 7.0} if mode == "constant" else {}
    want = np.pad(A, widths, mode=mode, **kwargs)
    assert_close(ag.pad(tensor(backend, A), widths, mode=mode, value=7.0), want)
    assert_close(ag.pad(noncontiguous(backend, A), widths, mode=mode, value=7.0), want)


KEYS = [
    1, -1, (slice(None), 2), (Ellipsis, -1), (slice(None, None, 2),), (slice(None, None, -1), slice(1, None, 2)),
    (slice(3, 0, -2),), (None, 0, Ellipsis, None), (0, slice(None), slice(None, None, -3)),
    (np.array([1, 0, 1]),), (slice(None), np.array([[0, 2], [1, 1]])), (np.array([0, 1]), np.array([2, 0])),
    (np.array([0, 1]), slice(None), np.array([3, -4])), (Ellipsis, np.array([-1, 0])), (slice(5, 9),),
]  # fmt: skip


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_getitem(backend: ag.Device, key: object) -> None:
    x = tensor(backend, A)
    k = (
        tuple(tensor(backend, part) if isinstance(part, np.ndarray) else part for part in key)
        if isinstance(key, tuple)
        else key
    )
    assert_close(x[k], A[key])


def test_boolean_masks(backend: ag.Device) -> None:
    x = tensor(backend, A)
    assert_close(x[x > 10], A[A > 10])
    mask = np.array([True, False, True])
    assert_close(x[:, tensor(backend, mask)], A[:, mask])
    assert_close(x[tensor(backend, np.zeros((2, 3, 4), bool))], np.zeros(0, np.float32))
    assert_close(x[[True, False]], A[[True, False]])


def test_integer_array_with_repeats_and_lists(backend: ag.Device) -> None:
    x = tensor(backend, A)
    assert_close(x[[1, 1, 0]], A[[1, 1, 0]])
    assert_close(x[:, [2, 2], 1:], A[:, [2, 2], 1:])


def test_functional_updates(backend: ag.Device) -> None:
    x = tensor(backend, A[0])
    want = A[0].copy()
    want[1, ::2] = 9.0
    assert_close(x.at[1, ::2].set(9.0), want)
    want = A[0].copy()
    np.add.at(want, (np.array([0, 0, 2]), 1), 5.0)
    assert_close(x.at[tensor(backend, np.array([0, 0, 2])), 1].add(5.0), want)
    want = A[0].copy()
    want[[0, 0]] = [[1.0] * 4, [2.0] * 4]  # repeated index: the last write wins, as in NumPy
    assert_close(x.at[[0, 0]].set(tensor(backend, np.array([[1.0] * 4, [2.0] * 4], np.float32))), want)
    np.testing.assert_array_equal(x.numpy(), A[0])
    with pytest.raises(TypeError, match="item assignment"):
        x[0] = 1.0


def test_take_gather_scatter(backend: ag.Device) -> None:
    x = tensor(backend, A)
    idx = np.array([[2, 0], [1, 1]])
    assert_close(ag.take(x, tensor(backend, idx), axis=2), np.take(A, idx, axis=2))
    assert_close(ag.take(x, tensor(backend, np.array([-1, 0])), axis=0), np.take(A, [-1, 0], axis=0))
    assert_close(ag.take(x, tensor(backend, np.array([5, 23]))), np.take(A, [5, 23]))
    g = rng(13).integers(0, 4, (2, 3, 2))
    assert_close(ag.take_along_axis(x, tensor(backend, g), axis=2), np.take_along_axis(A, g, axis=2))
    src = rng(14).standard_normal((2, 3, 2)).astype(np.float32)
    g[0, 0] = [1, 1]  # repeated indices accumulate
    want = A.copy()
    for i in range(2):
        for j in range(3):
            for k in range(2):
                want[i, j, g[i, j, k]] += src[i, j, k]
    assert_close(ag.scatter_add(x, 2, tensor(backend, g), tensor(backend, src)), want)


def test_creation(backend: ag.Device) -> None:
    assert_close(backend.arange(5), np.arange(5), dtype=ag.int64)
    assert_close(backend.arange(1.0, 2.0, 0.25), np.arange(1.0, 2.0, 0.25), dtype=ag.float32)
    assert_close(backend.arange(5, 0, -2, dtype=ag.int8), np.arange(5, 0, -2), dtype=ag.int8)
    assert_close(backend.eye(3, 4, k=1), np.eye(3, 4, 1), dtype=ag.float32)
    assert_close(backend.linspace(0, 1, 5), np.linspace(0, 1, 5), dtype=ag.float32)
    assert_close(backend.full((2, 2), 7), np.full((2, 2), 7), dtype=ag.int64)
    assert_close(backend.full((2,), 0.5), [0.5, 0.5], dtype=ag.float32)
    assert_close(backend.full((2,), True), [True, True], dtype=ag.bool)
    assert_close(backend.zeros(2, 3), np.zeros((2, 3)), dtype=ag.float32)
    assert_close(backend.ones((0, 3), dtype=ag.int32), np.ones((0, 3)), dtype=ag.int32)
    assert_close(ag.zeros_like(backend.ones(2, dtype=ag.float64)), [0.0, 0.0], dtype=ag.float64)
    assert_close(ag.full_like(backend.ones(2, dtype=ag.int8), 3), [3, 3], dtype=ag.int8)
    assert_close(ag.asarray([1.5, 2], device=backend), [1.5, 2.0], dtype=ag.float32)
    assert_close(ag.asarray([[1, 2]], device=backend), [[1, 2]], dtype=ag.int64)
    assert_close(ag.asarray(np.array([1.5]), device=backend), [1.5], dtype=ag.float64)
    assert_close(ag.asarray(True, device=backend), True, dtype=ag.bool)
    assert_close(backend.tensor([1, 2], dtype=ag.float16), [1.0, 2.0], dtype=ag.float16)


def test_random_reproducible_and_seeded(backend: ag.Device) -> None:
    a, b = backend.randn(1000, seed=5), backend.randn(1000, seed=5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    gen = np.random.Generator(np.random.Philox(5))
    np.testing.assert_array_equal(a.numpy(), gen.normal(0.0, 1.0, 1000).astype(np.float32))
    assert not np.array_equal(a.numpy(), backend.randn(1000, seed=6).numpy())
    ag.manual_seed(3)
    first = backend.rand(10).numpy()
    ag.manual_seed(3)
    np.testing.assert_array_equal(first, backend.rand(10).numpy())
    draws = backend.bernoulli((20000,), 0.3, seed=1).numpy()
    assert draws.dtype == np.bool_ and abs(draws.mean() - 0.3) < 0.02
    u = backend.uniform((5000,), -2.0, 3.0, seed=2).numpy()
    assert u.min() >= -2.0 and u.max() < 3.0
    ints = backend.randint(0, 4, (2000,), seed=3).numpy()
    assert set(np.unique(ints)) == {0, 1, 2, 3}


def test_tensor_api(backend: ag.Device) -> None:
    x = tensor(backend, A)
    assert (x.shape, x.ndim, x.size, x.dtype) == ((2, 3, 4), 3, 24, ag.float32)
    assert x.device is backend and x.backend is backend
    assert x.__array_namespace__() is ag
    assert tensor(backend, np.array(2.5)).item() == 2.5
    assert tensor(backend, A[0, 0]).tolist() == A[0, 0].tolist()
    assert int(tensor(backend, np.array(3))) == 3 and float(tensor(backend, np.array(1.5))) == 1.5
    assert len(x) == 2 and [t.shape for t in x] == [(3, 4), (3, 4)]
    assert "tensor(" in repr(x) and backend.name in repr(x)
    host = x.numpy()
    with pytest.raises(ValueError):
        host[0, 0, 0] = 100.0  # read-only: a tensor is a value
    np.testing.assert_array_equal(np.asarray(x), A)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(x)
    with pytest.raises(ValueError, match="item: tensor has 24 elements"):
        x.item()
    assert_close(
        tensor(backend, np.array([1.5], dtype=ag.dtypes.to_numpy_dtype(ag.bfloat16))),
        [1.5],
        dtype=ag.bfloat16,
    )


def test_dlpack_round_trip(backend: ag.Device) -> None:
    x = tensor(backend, A)
    try:
        host = np.from_dlpack(x)
    except (RuntimeError, BufferError, TypeError) as e:
        pytest.skip(f"DLPack export to NumPy is not possible from this device: {e}")
    np.testing.assert_array_equal(host, A)
    back = ag.from_dlpack(np.arange(3.0), device=backend)
    assert_close(back, [0.0, 1.0, 2.0], dtype=ag.float64)


@pytest.mark.parametrize(
    "op",
    [lambda t: t.reshape(6, 4), lambda t: t.permute(2, 1, 0), lambda t: t[:, 1:], lambda t: t[0],
     lambda t: ag.expand_dims(t, axis=0), lambda t: ag.squeeze(t[:, :1], axis=1), lambda t: t.detach(),
     lambda t: t.astype(ag.float32), lambda t: ag.broadcast_to(t[:1], (2, 3, 4)), lambda t: ag.flip(t, axis=0),
     lambda t: t + 0.0, lambda t: ag.asarray(t)],
)  # fmt: skip
def test_results_do_not_alias_inputs(backend: ag.Device, op: object) -> None:
    """Tensors are values: no result lets a write reach its input (host views are read-only or copies)."""
    x = tensor(backend, A)
    y = op(x)
    host = y.numpy()
    try:
        host[...] = -1.0
    except ValueError:
        pass  # read-only view: the value cannot be changed through it
    np.testing.assert_array_equal(x.numpy(), A)
