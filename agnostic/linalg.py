"""`ag.linalg`: the Array API 2023.12 linalg extension on Tensors, differentiable on every backend.

Ten functions are backend primitives (`agnostic.backends.base_linalg`: cholesky, eigh, eigvalsh, qr,
svd, svdvals, solve, inv, det, slogdet); their vector-Jacobian rules are here, written with Tensor
ops (so second derivatives work) and with the conjugate transpose wherever the real formula has a
transpose, so complex inputs get torch's convention (the conjugate Wirtinger derivative: the
gradient of a real loss is dL/dx + i dL/dy). Everything else is composed from ag ops and is
differentiable through them. docs/linalg.md has the table, the dtype rules and the behaviour on
singular matrices.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from agnostic import dtypes, ops
from agnostic.backends.base_linalg import LinAlgError
from agnostic.dtypes import DType
from agnostic.ops import matmul, matrix_transpose, tensordot, vecdot
from agnostic.primitives import _record, _tracking
from agnostic.tensor import Tensor

__all__ = [
    "EighResult", "LinAlgError", "QRResult", "SVDResult", "SlogdetResult", "cholesky", "cross", "det",
    "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm", "matrix_power", "matrix_rank",
    "matrix_transpose", "outer", "pinv", "qr", "slogdet", "solve", "svd", "svdvals", "tensordot",
    "trace", "vecdot", "vector_norm",
]  # fmt: skip

_make = Tensor._make


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


# ====================================================================== argument checks
def _check(x: Any, op: str, *, square: bool = False, half: bool = False) -> Tensor:
    """`x` as a floating tensor of matrices (square ones with `square`); else the clear error.
    float16/bfloat16 are refused by the primitives (no backend library factorizes in half
    precision); `half` lets the composed functions that need no primitive accept them."""
    x = ops._tensor(x, op)
    d = x.dtype
    if not d.is_inexact:
        raise TypeError(
            f"{op}: expected a floating-point tensor (float32, float64, complex64 or complex128), got "
            f"{d.name}; cast it first, e.g. {op}(x.astype(ag.float64))"
        )
    if not half and d in (dtypes.float16, dtypes.bfloat16):
        raise TypeError(
            f"{op}: {d.name} is not supported (NumPy, torch and JAX have no half-precision matrix "
            f"factorizations); compute in float32: {op}(x.astype(ag.float32))"
        )
    if x.ndim < 2:
        raise ValueError(f"{op}: expected a matrix or a stack of matrices (..., m, n), got shape {x.shape}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{op}: expected a square matrix (..., n, n), got shape {x.shape}")
    return x


# ====================================================================== small Tensor helpers
def _mH(x: Tensor) -> Tensor:
    """The conjugate transpose of a stack of matrices."""
    return ops.conj(x.mT)


def _eye(n: int, like: Tensor, dtype: DType | None = None) -> Tensor:
    return ops.eye(n, dtype=dtype or like.dtype, device=like.device)


def _diag_embed(v: Tensor, dtype: DType) -> Tensor:
    """Matrices (..., n, n) with `v` (..., n) on the diagonal, in `dtype`."""
    return ops.astype(ops.expand_dims(v, axis=-1), dtype) * _eye(v.shape[-1], v, dtype)


def _off_diagonal_inverse(d: Tensor) -> Tensor:
    """F with F_ij = 1 / (d_j - d_i) off the diagonal and 0 on it (inf where two d are equal:
    the derivative of a degenerate eigen/singular basis does not exist, as in torch)."""
    n = d.shape[-1]
    e = ops.expand_dims(d, axis=-2) - ops.expand_dims(d, axis=-1)
    on = _eye(n, d, dtypes.bool)
    return ops.where(on, 0.0, 1.0 / ops.where(on, 1.0, e))


def _solve_right(z: Tensor, a: Tensor) -> Tensor:
    """z a^{-H}: the solve of y a^H = z."""
    return _mH(_solve(a, _mH(z)))


def _cx(v: Tensor, like: Tensor) -> Tensor:
    """`v` (real) in `like`'s dtype, for products with complex tensors."""
    return v if v.dtype is like.dtype else ops.astype(v, like.dtype)


# ====================================================================== primitives with their rules
def cholesky(x: Tensor, /, *, upper: bool = False) -> Tensor:
    """The Cholesky factor of Hermitian positive-definite `x`: lower L (x = L L^H), or with `upper`
    U = L^H (x = U^H U). Only the lower triangle of `x` is read; a matrix that is not positive-definite
    raises LinAlgError (NaN inside ag.compile)."""
    x = _check(x, "cholesky", square=True)
    dev = x._device
    low = _make(dev.ops.cholesky(x._data), dev)
    if _tracking(x):
        _record(low, "cholesky", (x,), lambda g, y: (_cholesky_vjp(g, y),), True)
    return _mH(low) if upper else low


def _cholesky_vjp(g: Tensor, low: Tensor) -> Tensor:
    """x^-bar = L^{-H} Phi(L^H g) L^{-1}, Phi taking the lower triangle with the diagonal halved and
    mirroring it (the Hermitian part: only Hermitian perturbations keep x positive-definite)."""
    p = ops.tril(_mH(low) @ g)
    p = 0.5 * (p + _mH(ops.tril(p, k=-1)))
    return _solve_right(_solve(_mH(low), p), _mH(low))


def eigh(x: Tensor, /) -> EighResult:
    """Eigenvalues (ascending, real) and eigenvectors (columns) of Hermitian `x` (lower triangle
    read). Gradients of the eigenvectors are infinite/NaN where eigenvalues repeat (as in torch),
    and only a loss invariant to each eigenvector's sign (phase) has a well-defined gradient."""
    x = _check(x, "eigh", square=True)
    dev = x._device
    w_, v_ = dev.ops.eigh(x._data)
    w, v = _make(w_, dev), _make(v_, dev)
    if _tracking(x):
        _record(w, "eigh", (x,), lambda g, y: (_eigh_vjp(g, None, y, v),), True)
        _record(v, "eigh", (x,), lambda g, y: (_eigh_vjp(None, g, w, y),), True)
    return EighResult(w, v)


def _eigh_vjp(gw: Tensor | None, gv: Tensor | None, w: Tensor, v: Tensor) -> Tensor:
    """The Hermitian part of V (diag(gw) + F o (V^H gv)) V^H, F_ij = 1 / (w_j - w_i): only Hermitian
    perturbations keep the input Hermitian (torch returns the same)."""
    vh = _mH(v)
    if gv is None:
        inner = _diag_embed(gw, v.dtype)
    else:
        inner = (vh @ gv) * _cx(_off_diagonal_inverse(w), v)
        if gw is not None:
            inner = inner + _diag_embed(gw, v.dtype)
    out = v @ inner @ vh
    return 0.5 * (out + _mH(out))


def eigvalsh(x: Tensor, /) -> Tensor:
    """The eigenvalues of Hermitian `x`, ascending, in the real dtype (lower triangle read)."""
    x = _check(x, "eigvalsh", square=True)
    if _tracking(x):
        return eigh(x).eigenvalues
    return _make(x._device.ops.eigvalsh(x._data), x._device)


def qr(x: Tensor, /, *, mode: str = "reduced") -> QRResult:
    """The QR factorization: mode 'reduced' (Q (..., m, k), R (..., k, n), k = min(m, n)) or
    'complete' (Q (..., m, m)). Differentiable where R's columns determine Q: m >= n in 'reduced'
    mode (and square input in either), as in torch; other shapes raise when differentiated."""
    x = _check(x, "qr")
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete', got {mode!r}")
    dev = x._device
    q_, r_ = dev.ops.qr(x._data, mode == "complete")
    q, r = _make(q_, dev), _make(r_, dev)
    if _tracking(x):
        m, n = x.shape[-2:]
        if m < n or (mode == "complete" and m != n):
            rule = _qr_not_differentiable(m, n, mode)
            _record(q, "qr", (x,), rule)
            _record(r, "qr", (x,), rule)
        else:
            _record(q, "qr", (x,), lambda g, y: (_qr_vjp(g, None, y, r),), True)
            _record(r, "qr", (x,), lambda g, y: (_qr_vjp(None, g, q, y),), True)
    return QRResult(q, r)


def _qr_not_differentiable(m: int, n: int, mode: str) -> Any:
    def rule(g: Tensor, y: Tensor) -> tuple[Tensor]:
        raise RuntimeError(
            f"qr: the {mode} QR factorization of a {m} x {n} matrix is not differentiable here (Q is "
            "not determined by the input's columns); gradients need m >= n with mode='reduced', as in "
            "torch: factor the transpose (qr(x.mT)) or use mode='reduced'"
        )

    return rule


def _qr_vjp(gq: Tensor | None, gr: Tensor | None, q: Tensor, r: Tensor) -> Tensor:
    """[gQ + Q (M^H + G)] R^{-H}, M = R gR^H - gQ^H Q, G the lower triangle of M - M^H with its
    diagonal halved (torch's formula for m >= n, with the complex diagonal term)."""
    m_ = 0.0
    if gr is not None:
        m_ = r @ _mH(gr)
    if gq is not None:
        m_ = m_ - _mH(gq) @ q
    k = m_ - _mH(m_)
    g_ = ops.tril(k, k=-1) + 0.5 * _diag_embed(diagonal(k), k.dtype)
    z = q @ (_mH(m_) + g_)
    if gq is not None:
        z = z + gq
    return _solve_right(z, r)


def svd(x: Tensor, /, *, full_matrices: bool = True) -> SVDResult:
    """x = U diag(S) Vh, S descending. Differentiable with full_matrices=False (or square x), as in
    torch; only losses invariant to the singular vectors' joint phase, and distinct singular values,
    have a well-defined gradient."""
    x = _check(x, "svd")
    dev = x._device
    u_, s_, vh_ = dev.ops.svd(x._data, full_matrices)
    u, s, vh = _make(u_, dev), _make(s_, dev), _make(vh_, dev)
    if _tracking(x):
        m, n = x.shape[-2:]
        if full_matrices and m != n:

            def refuse(g: Tensor, y: Tensor) -> tuple[Tensor]:
                raise RuntimeError(
                    f"svd: with full_matrices=True the extra singular vectors of a {m} x {n} matrix are "
                    "not unique, so not differentiable; use svd(x, full_matrices=False) (as torch requires)"
                )

            for t in (u, s, vh):
                _record(t, "svd", (x,), refuse)
        else:
            _record(u, "svd", (x,), lambda g, y: (_svd_vjp(g, None, None, y, s, vh),), True)
            _record(s, "svd", (x,), lambda g, y: (_svd_vjp(None, g, None, u, y, vh),), True)
            _record(vh, "svd", (x,), lambda g, y: (_svd_vjp(None, None, g, u, s, y),), True)
    return SVDResult(u, s, vh)


def _svd_vjp(
    gu: Tensor | None, gs: Tensor | None, gvh: Tensor | None, u: Tensor, s: Tensor, vh: Tensor
) -> Tensor:
    """torch's svd_backward (reduced SVD): the skew-Hermitian parts of U^H gU and V^H gV divided by
    the gaps S_j^2 - S_i^2, the diagonal gS, and the components outside the spans of U or V."""
    m, n = u.shape[-2], vh.shape[-1]
    if gu is None and gvh is None:
        return u @ (_cx(ops.expand_dims(gs, axis=-1), u) * vh)
    v = _mH(vh)
    s_row, s_col = _cx(ops.expand_dims(s, axis=-2), u), _cx(ops.expand_dims(s, axis=-1), u)
    inner = 0.0
    if gu is not None:
        uhgu = _mH(u) @ gu
        uhgu = uhgu - _mH(uhgu)
        inner = uhgu * s_row
    if gvh is not None:
        vhgv = vh @ _mH(gvh)
        vhgv = vhgv - _mH(vhgv)
        inner = inner + s_col * vhgv
    s2 = s * s
    gap = ops.expand_dims(s2, axis=-2) - ops.expand_dims(s2, axis=-1)
    gap = ops.where(_eye(s.shape[-1], s, dtypes.bool), 1.0, gap)
    inner = inner / _cx(gap, u)
    if gs is not None:
        inner = inner + _diag_embed(gs, u.dtype)
    if u.dtype.is_complex and gu is not None:
        inner = inner + _diag_embed(diagonal(uhgu) / _cx(2.0 * s, u), u.dtype)
    if m > n and gu is not None:
        gus = gu / s_row
        return (u @ inner + gus - u @ (_mH(u) @ gus)) @ vh
    if m < n and gvh is not None:
        gvs = _mH(gvh) / s_row
        return u @ (inner @ vh + _mH(gvs) - (_mH(gvs) @ v) @ vh)
    return u @ inner @ vh


def svdvals(x: Tensor, /) -> Tensor:
    """The singular values of `x`, descending, in the real dtype."""
    x = _check(x, "svdvals")
    if _tracking(x):
        return svd(x, full_matrices=False).S
    return _make(x._device.ops.svdvals(x._data), x._device)


def solve(x1: Tensor, x2: Tensor, /) -> Tensor:
    """The solution of x1 @ out = x2. x2 is one vector when 1-D, else a stack of matrices
    (..., n, k) whose batch dimensions broadcast with x1's. A singular x1 raises LinAlgError
    (NaN inside ag.compile)."""
    a = _check(x1, "solve", square=True)
    b = ops._tensor(x2, "solve")
    n = a.shape[-1]
    vector = b.ndim == 1
    if vector:
        b = ops.expand_dims(b, axis=-1)
    if b.shape[-2] != n:
        raise ValueError(
            f"solve: x1 of shape {a.shape} needs x2 of shape ({n},) or (..., {n}, k), got {x2.shape}"
        )
    d = dtypes.promote(a.dtype, b.dtype) if a.dtype is not b.dtype else a.dtype
    a, b = ops.astype(a, d, copy=False), ops.astype(b, d, copy=False)
    batch = ops.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    out = _solve(ops.broadcast_to(a, batch + a.shape[-2:]), ops.broadcast_to(b, batch + b.shape[-2:]))
    return ops.squeeze(out, axis=-1) if vector else out


def _solve(a: Tensor, b: Tensor) -> Tensor:
    """The primitive on same-batch operands: X = A^{-1} B; B-bar = A^{-H} G, A-bar = -B-bar X^H."""
    dev = a._device
    out = _make(dev.ops.solve(a._data, b._data), dev)
    if _tracking(a, b):
        wa, wb = a.requires_grad, b.requires_grad

        def vjp(g: Tensor, y: Tensor) -> list[Tensor]:
            gb = _solve(_mH(a), g)
            return ([-(gb @ _mH(y))] if wa else []) + ([gb] if wb else [])

        _record(out, "solve", tuple(t for t in (a, b) if t.requires_grad), vjp, wa)
    return out


def inv(x: Tensor, /) -> Tensor:
    """The inverse of square `x`; a singular matrix raises LinAlgError (NaN inside ag.compile)."""
    x = _check(x, "inv", square=True)
    dev = x._device
    out = _make(dev.ops.inv(x._data), dev)
    if _tracking(x):
        _record(out, "inv", (x,), lambda g, y: (-(_mH(y) @ g @ _mH(y)),), True)
    return out


def det(x: Tensor, /) -> Tensor:
    """The determinant of square `x` (0 for a singular matrix; its gradient there needs the
    inverse, so differentiating det at an exactly singular matrix raises LinAlgError)."""
    x = _check(x, "det", square=True)
    dev = x._device
    out = _make(dev.ops.det(x._data), dev)
    if _tracking(x):

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
            scale = ops.expand_dims(g * ops.conj(y), axis=(-2, -1))
            return (scale * _mH(inv(x)),)

        _record(out, "det", (x,), vjp, True)
    return out


def slogdet(x: Tensor, /) -> SlogdetResult:
    """(sign, log|det|) of square `x`: sign 0 and logabsdet -inf for a singular matrix; for complex
    input sign is det / |det| and logabsdet real."""
    x = _check(x, "slogdet", square=True)
    dev = x._device
    sign_, logabs_ = dev.ops.slogdet(x._data)
    sign, logabs = _make(sign_, dev), _make(logabs_, dev)
    if _tracking(x):
        # d log|det| = Re tr(x^{-1} dx); for complex x, d sign = sign * i Im tr(x^{-1} dx)
        _record(
            logabs, "slogdet", (x,), lambda g, y: (_cx(ops.expand_dims(g, axis=(-2, -1)), x) * _mH(inv(x)),)
        )
        if x.dtype.is_complex:

            def sign_vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
                k = ops.astype(ops.imag(ops.conj(y) * g), x.dtype) * 1j
                return (ops.expand_dims(k, axis=(-2, -1)) * _mH(inv(x)),)

            _record(sign, "slogdet", (x,), sign_vjp, True)
    return SlogdetResult(sign, logabs)


# ====================================================================== composed functions
def diagonal(x: Tensor, /, *, offset: int = 0) -> Tensor:
    """The `offset`-th diagonal of each matrix (above the main one for offset > 0), shape (..., k)."""
    x = ops._tensor(x, "diagonal")
    if x.ndim < 2:
        raise ValueError(
            f"diagonal: expected a matrix or a stack of matrices (..., m, n), got shape {x.shape}"
        )
    m, n = x.shape[-2:]
    rows = range(builtins.max(0, -offset), builtins.min(m, n - offset))
    index = [i * n + i + offset for i in rows]
    flat = ops.reshape(x, x.shape[:-2] + (m * n,))
    return ops.take(flat, ops.asarray(index, dtype=dtypes.int64, device=x.device), axis=-1)


def trace(x: Tensor, /, *, offset: int = 0, dtype: Any = None) -> Tensor:
    """The sum of the `offset`-th diagonal of each matrix (small integers sum in the default integer
    dtype, as ag.sum does)."""
    x = ops._tensor(x, "trace")
    if x.ndim < 2:
        raise ValueError(f"trace: expected a matrix or a stack of matrices (..., m, n), got shape {x.shape}")
    return ops.sum(diagonal(x, offset=offset), axis=-1, dtype=dtype)


def outer(x1: Tensor, x2: Tensor, /) -> Tensor:
    """The outer product of two vectors, shape (m, n)."""
    return ops.outer(x1, x2)


def cross(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along `axis`, broadcasting the other dimensions."""
    a, b = ops._tensor(x1, "cross"), ops._tensor(x2, "cross")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"cross: expected tensors of 3-vectors, got shapes {a.shape} and {b.shape}")
    if not -builtins.min(a.ndim, b.ndim) <= axis < builtins.min(a.ndim, b.ndim) or (
        a.shape[axis] != 3 or b.shape[axis] != 3
    ):
        raise ValueError(
            f"cross: axis {axis} must have size 3 in both operands, got shapes {a.shape} and {b.shape}"
        )
    axis = axis if axis < 0 else axis - builtins.min(a.ndim, b.ndim)  # counted from the end: broadcasting
    a, b = ops.broadcast_arrays(a, b)
    if a.dtype is dtypes.bool or b.dtype is dtypes.bool:
        raise TypeError("cross: not defined for bool tensors")
    dev = a.device

    def roll(t: Tensor, index: list[int]) -> Tensor:
        return ops.take(t, ops.asarray(index, dtype=dtypes.int64, device=dev), axis=axis)

    first, second = [1, 2, 0], [2, 0, 1]
    return roll(a, first) * roll(b, second) - roll(a, second) * roll(b, first)


def matrix_power(x: Tensor, n: int, /) -> Tensor:
    """`x` multiplied by itself n times (n >= 0, the identity for 0; n < 0 inverts x first)."""
    x = ops._tensor(x, "matrix_power")
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"matrix_power: n must be an int, got {type(n).__name__}")
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"matrix_power: expected a square matrix (..., n, n), got shape {x.shape}")
    if x.dtype is dtypes.bool:
        raise TypeError("matrix_power: not defined for bool tensors")
    if n < 0:
        if not x.dtype.is_inexact:
            raise TypeError(
                f"matrix_power: a negative power needs a floating-point matrix, got {x.dtype.name}; "
                "cast it first, e.g. matrix_power(x.astype(ag.float64), n)"
            )
        x, n = inv(x), -n
    if n == 0:
        return ops.broadcast_to(_eye(x.shape[-1], x), x.shape)
    result = None
    while True:  # binary powering: log2(n) squarings
        if n & 1:
            result = x if result is None else result @ x
        n >>= 1
        if not n:
            return result
        x = x @ x


def _axes_of(axis: Any, ndim: int, op: str) -> tuple[int, ...]:
    axes = tuple(range(ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    norm = tuple(a + ndim if a < 0 else a for a in axes)
    if builtins.any(not 0 <= a < ndim for a in norm) or len(set(norm)) != len(norm):
        raise ValueError(f"{op}: axis {axis} is out of range or repeated for a tensor of {ndim} dimensions")
    return norm


def vector_norm(
    x: Tensor, /, *, axis: int | Sequence[int] | None = None, keepdims: bool = False, ord: float = 2
) -> Tensor:
    """The vector p-norm over `axis` (all axes: the flattened tensor), in the real dtype of x:
    ord inf / -inf the largest / smallest |x|, 0 the count of non-zeros, p: (sum |x|^p)^(1/p)."""
    x = _check_vector(x, "vector_norm")
    axes = _axes_of(axis, x.ndim, "vector_norm")
    a = ops.abs(x)
    if ord == math.inf:
        return ops.max(a, axis=axes, keepdims=keepdims) if a.size else _empty_norm(a, axes, keepdims, 0.0)
    if ord == -math.inf:
        return (
            ops.min(a, axis=axes, keepdims=keepdims) if a.size else _empty_norm(a, axes, keepdims, math.inf)
        )
    if ord == 0:
        return ops.sum(ops.astype(a != 0, a.dtype), axis=axes, keepdims=keepdims)
    if ord == 1:
        return ops.sum(a, axis=axes, keepdims=keepdims)
    if ord == 2:
        return ops.sqrt(ops.sum(a * a, axis=axes, keepdims=keepdims))
    if not isinstance(ord, (int, float)) or isinstance(ord, bool):
        raise ValueError(f"vector_norm: ord must be a number (or inf, -inf), got {ord!r}")
    return ops.sum(a**ord, axis=axes, keepdims=keepdims) ** (1.0 / ord)


def _check_vector(x: Any, op: str) -> Tensor:
    x = ops._tensor(x, op)
    if not x.dtype.is_inexact:
        raise TypeError(
            f"{op}: expected a floating-point tensor, got {x.dtype.name}; cast it first, e.g. "
            f"{op}(x.astype(ag.float64))"
        )
    return x


def _empty_norm(a: Tensor, axes: tuple[int, ...], keepdims: bool, value: float) -> Tensor:
    """The max/min norm over zero elements: 0 for inf (as NumPy), inf for -inf."""
    shape = (
        tuple(1 if i in axes else s for i, s in enumerate(a.shape))
        if keepdims
        else tuple(s for i, s in enumerate(a.shape) if i not in axes)
    )
    return ops.full(shape, value, dtype=a.dtype, device=a.device)


def matrix_norm(x: Tensor, /, *, keepdims: bool = False, ord: Any = "fro") -> Tensor:
    """The matrix norm of each matrix in the real dtype: 'fro' (Frobenius), 'nuc' (sum of singular
    values), 2 / -2 (largest / smallest singular value), 1 / -1 (max / min column sum of |x|),
    inf / -inf (max / min row sum of |x|)."""
    x = _check(x, "matrix_norm", half=ord in ("fro", 1, -1, math.inf, -math.inf))
    if ord == "fro":
        a = ops.abs(x)
        out = ops.sqrt(ops.sum(a * a, axis=(-2, -1)))
    elif ord in ("nuc", 2, -2):
        s = svdvals(x)
        out = (
            ops.sum(s, axis=-1) if ord == "nuc" else ops.max(s, axis=-1) if ord == 2 else ops.min(s, axis=-1)
        )
    elif ord in (1, -1, math.inf, -math.inf):
        sums = ops.sum(ops.abs(x), axis=-2 if ord in (1, -1) else -1)
        out = ops.max(sums, axis=-1) if ord > 0 else ops.min(sums, axis=-1)
    else:
        raise ValueError(f"matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, got {ord!r}")
    return ops.expand_dims(out, axis=(-2, -1)) if keepdims else out


def _default_rtol(x: Tensor) -> float:
    return builtins.max(x.shape[-2:]) * dtypes.finfo(dtypes.real_dtype(x.dtype)).eps


def _cutoff(s: Tensor, x: Tensor, rtol: Any) -> Tensor:
    """rtol * the largest singular value, per matrix, shape (..., 1); rtol a number or a tensor
    broadcasting against the batch shape."""
    if rtol is None:
        rtol = _default_rtol(x)
    elif isinstance(rtol, Tensor):
        rtol = ops.expand_dims(ops.astype(rtol, s.dtype), axis=-1)
    return ops.max(s, axis=-1, keepdims=True) * rtol if s.shape[-1] else s[..., :1]


def matrix_rank(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    """The number of singular values above rtol * the largest (default rtol: max(m, n) * eps of the
    dtype), in the default integer dtype."""
    x = _check(x, "matrix_rank")
    s = svdvals(x)
    if not s.shape[-1]:
        return ops.zeros(x.shape[:-2], dtype=dtypes.default_int, device=x.device)
    return ops.sum(ops.astype(s > _cutoff(s, x, rtol), dtypes.default_int), axis=-1)


def pinv(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    """The Moore-Penrose pseudo-inverse (..., n, m) from the SVD, singular values at or below
    rtol * the largest treated as zero (default rtol: max(m, n) * eps of the dtype)."""
    x = _check(x, "pinv")
    if not builtins.min(x.shape[-2:]):
        return ops.zeros(x.shape[:-2] + (x.shape[-1], x.shape[-2]), dtype=x.dtype, device=x.device)
    u, s, vh = svd(x, full_matrices=False)
    keep = s > _cutoff(s, x, rtol)
    s_inv = ops.where(keep, 1.0 / ops.where(keep, s, 1.0), 0.0)
    return _mH(vh) @ (_cx(ops.expand_dims(s_inv, axis=-1), u) * _mH(u))
