"""Matrix products against float64 NumPy: matmul with NumPy's rules (1-D operands, batch
broadcasting, zero-size dimensions), every dtype that has a product, promotion, non-contiguous
operands, the `@` operator (reflected too), and tensordot / vecdot / outer / matrix_transpose."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {"matmul", "permute", "reshape"}

SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((4,), (2, 4, 3)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 4), (2, 4, 1)),
    ((3, 0), (0, 4)),
    ((0, 3), (3, 2)),
    ((2, 0, 3), (3, 4)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (4,)),
]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
def test_matmul_shapes(backend: ag.Device, shapes: tuple, dtype: dtypes.DType) -> None:
    r = rng(1)
    a = r.standard_normal(shapes[0]).astype(_np(dtype))
    b = r.standard_normal(shapes[1]).astype(_np(dtype))
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype is ag.float32 else {}
    assert_close(ag.matmul(tensor(backend, a), tensor(backend, b)), want, dtype=dtype, **tol)
    assert_close(tensor(backend, a) @ tensor(backend, b), want, dtype=dtype, **tol)
    assert_close(tensor(backend, a).matmul(tensor(backend, b)), want, dtype=dtype, **tol)
    assert_close(noncontiguous(backend, a) @ noncontiguous(backend, b), want, dtype=dtype, **tol)


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8], ids=str)
def test_integer_matmul_keeps_dtype(backend: ag.Device, dtype: dtypes.DType) -> None:
    r = rng(2)
    a = r.integers(0, 4, (2, 3, 4)).astype(_np(dtype))
    b = r.integers(0, 4, (4, 2)).astype(_np(dtype))
    assert_close(
        tensor(backend, a) @ tensor(backend, b), (a.astype(np.int64) @ b).astype(_np(dtype)), dtype=dtype
    )
    v = r.integers(-3, 4, 4).astype(np.int64)
    if dtype.kind == "i":
        vv = v.astype(_np(dtype))
        assert_close(tensor(backend, vv) @ tensor(backend, vv), int((v * v).sum()), dtype=dtype)


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
def test_half_precision_matmul(backend: ag.Device, dtype: dtypes.DType) -> None:
    r = rng(3)
    a = r.uniform(-1, 1, (2, 3, 16)).astype(_np(dtype))
    b = r.uniform(-1, 1, (16, 5)).astype(_np(dtype))
    tol = 3e-2 if dtype is ag.bfloat16 else 5e-3
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert_close(tensor(backend, a) @ tensor(backend, b), want, dtype=dtype, rtol=tol, atol=tol)
    assert_close(tensor(backend, a[0, 0]) @ tensor(backend, b), want[0, 0], dtype=dtype, rtol=tol, atol=tol)


def test_matmul_promotion_and_special_values(backend: ag.Device) -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.int32)
    f = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    d = f.astype(np.float64)
    t = lambda v: tensor(backend, v)  # noqa: E731
    assert_close(t(a) @ t(f), a @ d, dtype=ag.float32)
    assert_close(t(f) @ t(d), d @ d, dtype=ag.float64)
    assert_close(t(a) @ t(a.astype(np.int8)), a @ a, dtype=ag.int32)
    assert_close(t(a.astype(np.uint8)) @ t(a.astype(np.int8)), a @ a, dtype=ag.int16)
    # NaN and inf propagate through the sum of products
    n = np.array([[np.nan, 1.0], [1.0, 1.0]])
    got = (t(n) @ t(np.eye(2))).numpy()
    assert np.isnan(got[0]).sum() >= 1 and np.isfinite(got[1]).all()
    inf = np.array([[np.inf, 1.0]])
    assert_close(t(inf) @ t(np.array([[1.0], [1.0]])), [[np.inf]])
    # an empty inner dimension gives zeros
    assert_close(t(np.zeros((2, 0))) @ t(np.zeros((0, 3))), np.zeros((2, 3)), dtype=ag.float64)


def test_matmul_with_numpy_operands_and_reflection(backend: ag.Device) -> None:
    a = rng(4).standard_normal((3, 4))
    b = rng(5).standard_normal((4, 2))
    assert_close(a @ tensor(backend, b), a @ b, dtype=ag.float64)  # ndarray.__matmul__ defers to the tensor
    assert_close(tensor(backend, a) @ b, a @ b, dtype=ag.float64)
    with pytest.raises(TypeError):
        tensor(backend, a) @ 2.0
    with pytest.raises(ValueError):
        tensor(backend, a) @ tensor(backend, a)
    with pytest.raises(ValueError):
        tensor(backend, np.float64(1.0)) @ tensor(backend, b)


def test_tensordot_vecdot_outer_transpose(backend: ag.Device) -> None:
    r = rng(6)
    a, b = r.standard_normal((2, 3, 4)), r.standard_normal((3, 4, 5))
    t = lambda v: tensor(backend, v)  # noqa: E731
    assert_close(ag.tensordot(t(a), t(b), axes=2), np.tensordot(a, b, axes=2))
    assert_close(ag.tensordot(t(a), t(b), axes=([1], [0])), np.tensordot(a, b, axes=([1], [0])))
    assert_close(ag.tensordot(t(a), t(b), axes=([2, 1], [1, 0])), np.tensordot(a, b, axes=([2, 1], [1, 0])))
    assert_close(ag.tensordot(t(a[0, 0]), t(b[0, 0]), axes=0), np.tensordot(a[0, 0], b[0, 0], axes=0))
    u, v = r.standard_normal((2, 1, 4)), r.standard_normal((3, 4))
    assert_close(ag.vecdot(t(u), t(v)), np.sum(u * v, axis=-1))
    assert_close(ag.vecdot(t(a), t(a), axis=1), np.sum(a * a, axis=1))
    x, y = r.standard_normal(3), r.standard_normal(4)
    assert_close(ag.outer(t(x), t(y)), np.outer(x, y))
    assert_close(ag.matrix_transpose(t(a)), np.swapaxes(a, -1, -2))
    assert_close(t(a).mT @ t(a), np.swapaxes(a, -1, -2) @ a)


def test_matmul_does_not_mutate_inputs(backend: ag.Device) -> None:
    a, b = rng(7).standard_normal((3, 4)), rng(8).standard_normal((4, 5))
    sa, sb = a.copy(), b.copy()
    x, y = tensor(backend, a), tensor(backend, b)
    for fn in (ag.matmul, lambda p, q: ag.tensordot(p, q, axes=1), lambda p, q: p @ q):
        fn(x, y)
        np.testing.assert_array_equal(x.numpy(), sa)
        np.testing.assert_array_equal(y.numpy(), sb)
