"""The Array API linalg extension (`ag.linalg`) against float64 NumPy on random, well-conditioned,
batched inputs: values, dtypes and shapes (float32, float64, complex64, complex128), the result
namedtuples, solve and cross broadcasting, every norm order, and the errors (integer and half
dtypes, non-square input, singular and non-positive-definite matrices); gradients of every
primitive and composed function against finite differences, complex ones through the real and
imaginary parts (torch's convention: dL/dx + i dL/dy), with losses invariant to the gauge of
eigenvectors and singular vectors; and a second derivative."""

from __future__ import annotations

import math

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

COVERS = {"cholesky", "eigh", "eigvalsh", "qr", "svd", "svdvals", "solve", "inv", "det", "slogdet", "take"}

L = ag.linalg
TOL = {
    ag.float32: {"rtol": 2e-4, "atol": 2e-5},
    ag.float64: {"rtol": 1e-9, "atol": 1e-11},
    ag.complex64: {"rtol": 2e-4, "atol": 2e-5},
    ag.complex128: {"rtol": 1e-9, "atol": 1e-11},
}
FLOATS = [ag.float32, ag.float64]
ALL = [ag.float32, ag.float64, ag.complex64, ag.complex128]


def _np(d):
    return ag.dtypes.to_numpy_dtype(d)


def _rand(shape, dtype=ag.float64, seed=0):
    r = support.rng(seed)
    a = r.standard_normal(shape)
    if dtype.is_complex:
        a = a + 1j * r.standard_normal(shape)
    return a


def _general(shape, dtype=ag.float64, seed=0):
    """Well-conditioned square matrices: random plus a multiple of the identity."""
    return _rand(shape, dtype, seed) + 3 * np.eye(shape[-1])


def _hpd(shape, dtype=ag.float64, seed=0):
    """Hermitian positive-definite matrices."""
    a = _rand(shape, dtype, seed)
    return a @ np.conj(np.swapaxes(a, -1, -2)) + shape[-1] * np.eye(shape[-1])


def _t(backend, a, dtype):
    return backend.tensor(np.asarray(a).astype(_np(dtype)), dtype=dtype)


def _close(out, want, dtype, real=False):
    d = ag.dtypes.real_dtype(dtype) if real else dtype
    assert out.dtype == d, f"dtype {out.dtype} != {d}"
    want = np.asarray(want)
    assert out.shape == want.shape, f"shape {out.shape} != {want.shape}"
    np.testing.assert_allclose(out.numpy().astype(np.complex128), want, **TOL[dtype])


# ====================================================================== values
@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_factorizations_and_solves(backend, dtype):
    a = _general((2, 3, 4, 4), dtype)
    h = _hpd((2, 4, 4), dtype, seed=1)
    b = _rand((2, 3, 4, 2), dtype, seed=2)
    x, hx = _t(backend, a, dtype), _t(backend, h, dtype)
    _close(L.inv(x), np.linalg.inv(a), dtype)
    _close(L.det(x), np.linalg.det(a), dtype)
    sign, logabs = np.linalg.slogdet(a)
    res = L.slogdet(x)
    _close(res.sign, sign, dtype)
    _close(res.logabsdet, logabs, dtype, real=True)
    _close(L.solve(x, _t(backend, b, dtype)), np.linalg.solve(a, b), dtype)
    _close(L.cholesky(hx), np.linalg.cholesky(h), dtype)
    _close(L.cholesky(hx, upper=True), np.conj(np.swapaxes(np.linalg.cholesky(h), -1, -2)), dtype)
    _close(L.eigvalsh(hx), np.linalg.eigvalsh(h), dtype, real=True)
    w, v = L.eigh(hx)
    _close(w, np.linalg.eigvalsh(h), dtype, real=True)
    # eigenvectors are unique up to a phase: check the decomposition and orthonormality
    vn = v.numpy().astype(np.complex128)
    np.testing.assert_allclose(h @ vn, vn * w.numpy()[..., None, :], **TOL[dtype])
    np.testing.assert_allclose(
        np.conj(np.swapaxes(vn, -1, -2)) @ vn, np.broadcast_to(np.eye(4), vn.shape), **TOL[dtype]
    )


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 5), (2, 3, 5), (4, 4)], ids=str)
def test_svd_and_qr_shapes_and_reconstruction(backend, dtype, shape):
    a = _rand(shape, dtype)
    x = _t(backend, a, dtype)
    m, n = shape[-2:]
    k = min(m, n)
    _close(L.svdvals(x), np.linalg.svd(a, compute_uv=False), dtype, real=True)
    for full in (True, False):
        u, s, vh = L.svd(x, full_matrices=full)
        assert (u.shape[-2:], s.shape[-1], vh.shape[-2:]) == (
            ((m, m if full else k)),
            k,
            (n if full else k, n),
        )
        assert u.dtype == vh.dtype == dtype and s.dtype == ag.dtypes.real_dtype(dtype)
        recon = (u.numpy()[..., :, :k] * s.numpy()[..., None, :]) @ vh.numpy()[..., :k, :]
        np.testing.assert_allclose(recon, a, **TOL[dtype])
    for mode in ("reduced", "complete"):
        q, r = L.qr(x, mode=mode)
        kq = m if mode == "complete" else k
        assert q.shape == shape[:-2] + (m, kq) and r.shape == shape[:-2] + (kq, n)
        assert q.dtype == r.dtype == dtype
        np.testing.assert_allclose(q.numpy() @ r.numpy(), a, **TOL[dtype])
        np.testing.assert_allclose(np.triu(r.numpy()), r.numpy())
        _, r_ref = np.linalg.qr(a, mode=mode)  # R is unique up to the signs of its rows
        np.testing.assert_allclose(np.abs(r.numpy()), np.abs(r_ref), **TOL[dtype])


@pytest.mark.parametrize("dtype", [ag.float64, ag.complex128], ids=str)
def test_hermitian_functions_read_the_lower_triangle(backend, dtype):
    """The upper triangle is ignored (NumPy's and torch's rule; JAX would symmetrize)."""
    h = _hpd((2, 3, 3), dtype)
    messy = h + np.triu(_rand((2, 3, 3), dtype, seed=9), k=1)
    x = _t(backend, messy, dtype)
    _close(L.cholesky(x), np.linalg.cholesky(h), dtype)
    _close(L.eigvalsh(x), np.linalg.eigvalsh(h), dtype, real=True)
    _close(L.eigh(x).eigenvalues, np.linalg.eigvalsh(h), dtype, real=True)


def test_negative_power_of_an_integer_matrix(backend):
    with pytest.raises(
        TypeError, match=r"matrix_power: a negative power needs a floating-point matrix, got int64"
    ):
        L.matrix_power(backend.tensor(np.eye(2, dtype=np.int64)), -1)


def test_result_namedtuples(backend):
    x = _t(backend, _hpd((3, 3)), ag.float64)
    assert type(L.eigh(x)).__name__ == "EighResult" and L.eigh(x)._fields == ("eigenvalues", "eigenvectors")
    assert L.qr(x)._fields == ("Q", "R")
    assert L.svd(x)._fields == ("U", "S", "Vh")
    assert L.slogdet(x)._fields == ("sign", "logabsdet")
    assert isinstance(L.LinAlgError(), np.linalg.LinAlgError) and isinstance(L.LinAlgError(), ValueError)


def test_solve_broadcasting_and_vectors(backend):
    a = _general((2, 1, 3, 3))
    b = _rand((4, 3, 2), seed=1)
    x = L.solve(_t(backend, a, ag.float64), _t(backend, b, ag.float64))
    _close(x, np.linalg.solve(np.broadcast_to(a, (2, 4, 3, 3)), np.broadcast_to(b, (2, 4, 3, 2))), ag.float64)
    v = _rand((3,), seed=2)
    _close(
        L.solve(_t(backend, a, ag.float64), _t(backend, v, ag.float64)),
        np.linalg.solve(a, v[:, None])[..., 0],
        ag.float64,
    )
    # promotion: float32 matrix, float64 right-hand side
    out = L.solve(_t(backend, a[0, 0], ag.float32), _t(backend, v, ag.float64))
    assert out.dtype == ag.float64


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("ord", [2, 1, 0, 3, 0.5, -1, math.inf, -math.inf], ids=str)
@pytest.mark.parametrize("axis", [None, -1, (0, 2), 1], ids=str)
@pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keepdims"])
def test_vector_norm(backend, dtype, ord, axis, keepdims):
    a = _rand((2, 3, 4), dtype)
    a[0, 1, 2] = 0
    with np.errstate(divide="ignore"):  # a negative ord meets the zero: 1 / 0 = inf, as in NumPy
        want = np.linalg.vector_norm(a, ord=ord, axis=axis, keepdims=keepdims)
        out = L.vector_norm(_t(backend, a, dtype), ord=ord, axis=axis, keepdims=keepdims)
    _close(out, want, dtype, real=True)


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf], ids=str)
@pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keepdims"])
def test_matrix_norm(backend, dtype, ord, keepdims):
    a = _rand((2, 3, 4), dtype)
    want = np.linalg.matrix_norm(a, ord=ord, keepdims=keepdims)
    _close(L.matrix_norm(_t(backend, a, dtype), ord=ord, keepdims=keepdims), want, dtype, real=True)


def test_half_precision_norms_compute_without_primitives(backend):
    a = _rand((3, 4))
    for dtype in (ag.float16, ag.bfloat16):
        out = L.vector_norm(_t(backend, a, dtype))
        assert out.dtype == dtype
        np.testing.assert_allclose(out.numpy().astype(np.float64), np.linalg.norm(a), rtol=2e-2)
        assert L.matrix_norm(_t(backend, a, dtype), ord=1).dtype == dtype


@pytest.mark.parametrize("dtype", FLOATS + [ag.complex128], ids=str)
def test_rank_and_pinv(backend, dtype):
    a = _rand((2, 5, 2), dtype) @ _rand((2, 2, 4), dtype, seed=1)  # rank 2
    x = _t(backend, a, dtype)
    r = L.matrix_rank(x)
    assert r.dtype == ag.int64
    np.testing.assert_array_equal(r.numpy(), [2, 2])
    np.testing.assert_array_equal(L.matrix_rank(x, rtol=0.99).numpy(), [1, 1])
    s = np.linalg.svd(a, compute_uv=False)
    rtol = _t(backend, s[:, 1] / s[:, 0] * np.array([1.01, 0.99]), ag.dtypes.real_dtype(dtype))
    np.testing.assert_array_equal(L.matrix_rank(x, rtol=rtol).numpy(), [1, 2])
    tol = {"rtol": 1e-3, "atol": 1e-4} if dtype in (ag.float32,) else TOL[dtype]
    np.testing.assert_allclose(L.pinv(x).numpy(), np.linalg.pinv(a, rcond=1e-10), **tol)
    assert L.pinv(x).shape == (2, 4, 5)
    full = _general((3, 3), dtype)
    _close(L.pinv(_t(backend, full, dtype), rtol=1e-12), np.linalg.inv(full), dtype)


def test_cross_trace_diagonal_outer_power(backend):
    f = ag.float64
    a, b = _rand((2, 1, 3)), _rand((4, 3), seed=1)
    _close(L.cross(_t(backend, a, f), _t(backend, b, f)), np.cross(a, b), f)
    c, d = _rand((3, 2, 4)), _rand((3, 2, 4), seed=1)
    _close(L.cross(_t(backend, c, f), _t(backend, d, f), axis=-3), np.cross(c, d, axis=0), f)
    ints = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    out = L.cross(_t(backend, ints, ag.int32), _t(backend, ints[::-1].copy(), ag.int32))
    assert out.dtype == ag.int32
    np.testing.assert_array_equal(out.numpy(), np.cross(ints, ints[::-1]))
    m = _rand((2, 3, 4))
    for k in (-3, -1, 0, 1, 3, 5):
        _close(L.diagonal(_t(backend, m, f), offset=k), np.diagonal(m, offset=k, axis1=-2, axis2=-1), f)
        _close(L.trace(_t(backend, m, f), offset=k), np.trace(m, offset=k, axis1=-2, axis2=-1), f)
    t = L.trace(_t(backend, np.arange(9, dtype=np.int8).reshape(3, 3), ag.int8))
    assert t.dtype == ag.int64 and int(t.numpy()) == 12
    assert L.trace(_t(backend, m, f), dtype=ag.float32).dtype == ag.float32
    _close(L.outer(_t(backend, a[0, 0], f), _t(backend, b[0], f)), np.outer(a[0, 0], b[0]), f)
    sq = _general((2, 3, 3)) / 3
    for n in (0, 1, 2, 5, -1, -3):
        _close(L.matrix_power(_t(backend, sq, f), n), np.linalg.matrix_power(sq, n), f)
    ip = np.array([[1, 1], [1, 0]], dtype=np.int64)
    np.testing.assert_array_equal(L.matrix_power(_t(backend, ip, ag.int64), 10).numpy(), [[89, 55], [55, 34]])


def test_array_api_aliases(backend):
    a, b = _rand((2, 3, 4)), _rand((2, 4, 3), seed=1)
    x, y = _t(backend, a, ag.float64), _t(backend, b, ag.float64)
    _close(L.matmul(x, y), a @ b, ag.float64)
    _close(L.matrix_transpose(x), np.swapaxes(a, -1, -2), ag.float64)
    _close(L.tensordot(x, y, axes=([1, 2], [2, 1])), np.tensordot(a, b, axes=([1, 2], [2, 1])), ag.float64)
    _close(L.vecdot(x, x), np.sum(a * a, axis=-1), ag.float64)


def test_empty_matrices(backend):
    e = _t(backend, np.zeros((2, 0, 0)), ag.float64)
    assert L.inv(e).shape == (2, 0, 0)
    np.testing.assert_array_equal(L.det(e).numpy(), [1.0, 1.0])
    assert L.matrix_rank(_t(backend, np.zeros((3, 0)), ag.float64)).shape == ()
    assert L.pinv(_t(backend, np.zeros((3, 0)), ag.float64)).shape == (0, 3)


# ====================================================================== errors
def test_errors_name_op_dtype_and_fix(backend):
    ints = backend.tensor(np.eye(3, dtype=np.int64))
    for fn in (L.inv, L.det, L.cholesky, L.eigh, L.svd, L.qr, L.pinv, L.matrix_norm, L.vector_norm):
        name = fn.__name__
        with pytest.raises(TypeError, match=rf"{name}: expected a floating-point tensor.*int64.*astype"):
            fn(ints)
    with pytest.raises(TypeError, match=r"inv: float16 is not supported.*float32"):
        L.inv(_t(backend, np.eye(2), ag.float16))
    with pytest.raises(TypeError, match=r"svdvals: bfloat16"):
        L.svdvals(_t(backend, np.eye(2), ag.bfloat16))
    rect = _t(backend, np.ones((3, 4)), ag.float64)
    for fn in (L.cholesky, L.inv, L.det, L.slogdet, L.eigh, L.eigvalsh):
        with pytest.raises(
            ValueError,
            match=rf"^{fn.__name__}: expected a square matrix \(\.\.\., n, n\), got shape \(3, 4\)$",
        ):
            fn(rect)
    with pytest.raises(
        ValueError, match=r"svd: expected a matrix or a stack of matrices \(\.\.\., m, n\), got shape \(3,\)"
    ):
        L.svd(_t(backend, np.ones(3), ag.float64))
    with pytest.raises(
        ValueError,
        match=r"solve: x1 of shape \(3, 3\) needs x2 of shape \(3,\) or \(\.\.\., 3, k\), got \(4, 2\)",
    ):
        L.solve(_t(backend, np.eye(3), ag.float64), _t(backend, np.ones((4, 2)), ag.float64))
    with pytest.raises(ValueError, match="qr: mode must be 'reduced' or 'complete'"):
        L.qr(rect, mode="r")
    with pytest.raises(ValueError, match="matrix_norm: ord must be"):
        L.matrix_norm(rect, ord=3)
    with pytest.raises(ValueError, match=r"cross: axis -1 must have size 3 in both operands"):
        L.cross(rect, rect)
    with pytest.raises(TypeError, match="matrix_power: n must be an int"):
        L.matrix_power(_t(backend, np.eye(2), ag.float64), 1.5)
    with pytest.raises(TypeError, match="inv: expected a Tensor"):
        L.inv(np.eye(2))


@pytest.mark.parametrize("dtype", FLOATS + [ag.complex128], ids=str)
def test_singular_and_not_positive_definite_raise(backend, dtype):
    sing = np.stack([np.eye(3), np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 1]])])
    x = _t(backend, sing, dtype)
    with pytest.raises(L.LinAlgError, match=r"inv: a matrix of the input is singular.*pinv"):
        L.inv(x)
    with pytest.raises(np.linalg.LinAlgError, match=r"solve: a matrix of the input is singular"):
        L.solve(x, _t(backend, np.ones((2, 3, 1)), dtype))
    with pytest.raises(L.LinAlgError, match=r"cholesky: a matrix of the input is not positive-definite"):
        L.cholesky(_t(backend, -np.eye(3), dtype))
    with pytest.raises(L.LinAlgError, match=r"matrix_power: |inv: a matrix of the input is singular"):
        L.matrix_power(x, -1)
    np.testing.assert_allclose(L.det(x).numpy(), [1.0, 0.0], atol=1e-6)
    sign, logabs = L.slogdet(x)
    assert sign.numpy()[1] == 0 and logabs.numpy()[1] == -np.inf


# ====================================================================== gradients
def _sym(t):
    return t + ag.conj(t.mT)


def _w(shape, seed=7):
    return np.random.default_rng(seed).standard_normal(shape)


def _wt(t, shape, seed=7):
    return t.device.tensor(_w(shape, seed))


GRADIENTS = {
    "inv": ((2, 3, 3), lambda t: L.inv(t + _eye3(t))),
    "det": ((2, 3, 3), lambda t: L.det(t + _eye3(t))),
    "slogdet": ((2, 3, 3), lambda t: L.slogdet(t + _eye3(t)).logabsdet),
    "solve_matrix": ((2, 3, 3), lambda t: L.solve(t + _eye3(t), t[..., :2] * 2.0 + 1.0)),
    "solve_vector": ((3, 3), lambda t: L.solve(t + _eye3(t), t[0])),
    "cholesky": ((2, 3, 3), lambda t: L.cholesky(t @ t.mT + _eye3(t))),
    "cholesky_upper": ((3, 3), lambda t: L.cholesky(t @ t.mT + _eye3(t), upper=True)),
    "eigvalsh": ((2, 3, 3), lambda t: L.eigvalsh(_sym(t))),
    "eigh_vectors": ((2, 3, 3), lambda t: L.eigh(_sym(t)).eigenvectors ** 2 * _wt(t, (2, 3, 3))),
    "eigh_both": (
        (3, 3),
        lambda t: (
            L.eigh(_sym(t)).eigenvalues + ag.sum(L.eigh(_sym(t)).eigenvectors ** 2 * _wt(t, (3, 3)), axis=0)
        ),
    ),
    "qr_tall": ((2, 4, 3), lambda t: ag.concat([ag.reshape(p, (2, -1)) for p in L.qr(t)], axis=-1)),
    "qr_square_complete": (
        (3, 3),
        lambda t: L.qr(t, mode="complete").Q @ L.qr(t, mode="complete").R * _wt(t, (3, 3)),
    ),
    "svdvals": ((2, 4, 3), lambda t: L.svdvals(t)),
    "svd_tall": ((2, 4, 3), lambda t: _svd_invariant(t)),
    "svd_wide": ((2, 3, 4), lambda t: _svd_invariant(t)),
    "svd_square_full": ((3, 3), lambda t: _svd_invariant(t, full=True)),
    "pinv": ((2, 4, 3), lambda t: L.pinv(t)),
    "matrix_rank_free": ((4, 3), lambda t: L.matrix_norm(t, ord="nuc")),
    "matrix_norm_2": ((2, 4, 3), lambda t: L.matrix_norm(t, ord=2, keepdims=True)),
    "matrix_norm_fro": ((2, 4, 3), lambda t: L.matrix_norm(t)),
    "matrix_norm_inf": ((2, 4, 3), lambda t: L.matrix_norm(t, ord=math.inf)),
    "vector_norm_2": ((2, 4), lambda t: L.vector_norm(t, axis=-1)),
    "vector_norm_3": ((2, 4), lambda t: L.vector_norm(t, ord=3, axis=0, keepdims=True)),
    "vector_norm_inf": ((2, 4), lambda t: L.vector_norm(t, ord=math.inf)),
    "cross": ((2, 3), lambda t: L.cross(t, t[::-1] * 2.0)),
    "trace": ((2, 3, 4), lambda t: L.trace(t, offset=1)),
    "diagonal": ((2, 3, 4), lambda t: L.diagonal(t, offset=-1)),
    "matrix_power": ((2, 3, 3), lambda t: L.matrix_power(t / 2.0, 3)),
    "matrix_power_negative": ((3, 3), lambda t: L.matrix_power(t + _eye3(t), -2)),
}


def _eye3(t):
    return ag.eye(t.shape[-1], dtype=t.dtype, device=t.device) * 3.0


def _svd_invariant(t, full=False):
    """A loss of U, S and Vh invariant to the signs (phases) of the singular vectors."""
    u, s, vh = L.svd(t, full_matrices=full)
    k = s.shape[-1]
    parts = [s, ag.abs(u[..., :, :k]) ** 2 * 0.7, ag.abs(vh[..., :k, :]) ** 2 * 1.3]
    return ag.concat([ag.reshape(p, p.shape[:-2] + (-1,)) if p.ndim == t.ndim else p for p in parts], axis=-1)


@pytest.mark.parametrize("name", sorted(GRADIENTS))
def test_gradient_finite_differences(backend, name):
    shape, f = GRADIENTS[name]
    support.check_grad(backend, f, _rand(shape, seed=3), rtol=1e-5, atol=1e-6)


def _complex_fd(backend, loss, a, eps=1e-6):
    """dL/dx + i dL/dy of a real loss by central differences."""
    g = np.zeros_like(a)
    for j in range(a.size):
        for unit in (1.0, 1j):
            plus, minus = a.copy(), a.copy()
            plus.reshape(-1)[j] += eps * unit
            minus.reshape(-1)[j] -= eps * unit
            d = (float(loss(backend.tensor(plus)).numpy()) - float(loss(backend.tensor(minus)).numpy())) / (
                2 * eps
            )
            g.reshape(-1)[j] += d * unit
    return g


COMPLEX_LOSSES = {
    "inv": lambda t: ag.sum(ag.real(L.inv(t + _eye3(t)) * _wt(t, (2, 3, 3)))),
    "det": lambda t: ag.abs(ag.sum(L.det(t + _eye3(t)))) ** 2,
    "slogdet": lambda t: (
        ag.sum(L.slogdet(t + _eye3(t)).logabsdet) + ag.sum(ag.imag(L.slogdet(t + _eye3(t)).sign))
    ),
    "solve": lambda t: ag.sum(ag.imag(L.solve(t + _eye3(t), t[..., :1]))),
    "cholesky": lambda t: ag.sum(ag.real(L.cholesky(t @ ag.conj(t.mT) + _eye3(t)) * _wt(t, (2, 3, 3)))),
    "eigh": lambda t: (
        ag.sum(L.eigh(_sym(t)).eigenvalues * _wt(t, (2, 3)))
        + ag.sum(ag.abs(L.eigh(_sym(t)).eigenvectors) ** 2 * _wt(t, (2, 3, 3)))
    ),
    "qr": lambda t: (
        ag.sum(ag.real(L.qr(t[..., :2]).Q * _wt(t, (2, 3, 2)))) + ag.sum(ag.imag(L.qr(t[..., :2]).R))
    ),
    "svd": lambda t: ag.sum(_svd_invariant(t[..., :2]) * _wt(t, (2, 12))),
    "matrix_norm_nuc": lambda t: ag.sum(L.matrix_norm(t, ord="nuc")),
    "vector_norm": lambda t: ag.sum(L.vector_norm(t, ord=3, axis=-1)),
}


@pytest.mark.parametrize("name", sorted(COMPLEX_LOSSES))
def test_complex_gradient_finite_differences(backend, name):
    loss = COMPLEX_LOSSES[name]
    a = _rand((2, 3, 3), ag.complex128, seed=5)
    got = ag.grad(loss, argnums=0)(backend.tensor(a))
    assert got.dtype == ag.complex128
    np.testing.assert_allclose(got.numpy(), _complex_fd(backend, loss, a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name",
    ["inv", "det", "slogdet", "solve_matrix", "eigvalsh", "eigh_vectors", "cholesky", "qr_tall", "svd_tall"],
)
def test_second_derivative(backend, name):
    """The rules are written with Tensor ops: the gradient is itself differentiable."""
    shape, f = GRADIENTS[name]

    def first(t):
        return ag.grad(lambda u: ag.sum(f(u) * _wt(u, f(u).shape, 11)), argnums=0)(t)

    support.check_grad(backend, first, _rand(shape, seed=4), rtol=1e-4, atol=1e-6, eps=1e-5)


def test_not_differentiable_cases_say_so(backend):
    wide = _t(backend, _rand((2, 4)), ag.float64)
    with pytest.raises(
        RuntimeError, match=r"qr: the reduced QR factorization of a 2 x 4 matrix is not differentiable"
    ):
        ag.grad(lambda t: ag.sum(L.qr(t).R), argnums=0)(wide)
    with pytest.raises(RuntimeError, match=r"svd: with full_matrices=True .* full_matrices=False"):
        ag.grad(lambda t: ag.sum(L.svd(t).S), argnums=0)(wide)
