"""The linalg primitives on JAX arrays (jax.numpy.linalg); imported only by the JAX backend.

JAX never raises on a singular or non-positive-definite matrix. To behave as NumPy and torch (see
`base_linalg`), `solve` and `inv` read the pivots of their LU factorization (an exactly zero pivot
is LAPACK's test) and `cholesky` its NaN: concrete input then raises our LinAlgError, and under
jax.jit (tracers: nothing to read) the failed matrices are NaN.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg

from agnostic.backends.base_linalg import singular_error

Array = Any


def _checked(op: str, out: Array, failed: Array, what: str = "singular") -> Array:
    """`out`, whose matrices where `failed` (batch shape) are NaN already; our error on concrete input."""
    if not isinstance(failed, jax.core.Tracer) and bool(failed.any()):
        raise singular_error(op, what)
    return out


def _lu_solve_nan(a: Array, b: Array) -> tuple[Array, Array]:
    """a^{-1} b through one LU factorization (partial pivoting, as LAPACK), and per matrix whether
    a pivot is exactly zero (LAPACK's test of singularity), those matrices' results set to NaN.
    One jitted program: eager JAX would dispatch each of these ops on its own."""
    lu, pivots, _ = jax.lax.linalg.lu(a)
    failed = (jnp.diagonal(lu, axis1=-2, axis2=-1) == 0).any(axis=-1)
    out = jax.scipy.linalg.lu_solve((lu, pivots), b)
    return jnp.where(failed[..., None, None], jnp.nan, out), failed


_lu_solve = jax.jit(_lu_solve_nan)
_lu_inv = jax.jit(lambda a: _lu_solve_nan(a, jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)))


@jax.jit
def _cholesky(a: Array) -> tuple[Array, Array]:
    """The lower factor (NaN where JAX's factorization failed) and which matrices failed."""
    out = jnp.linalg.cholesky(a, symmetrize_input=False)
    failed = jnp.isnan(out).any(axis=(-2, -1)) & ~jnp.isnan(a).any(axis=(-2, -1))
    return jnp.where(failed[..., None, None], jnp.nan, out), failed


class JaxLinalg:
    """Mixin of JaxBackend: the linalg primitives (run in 64-bit mode as every JaxBackend method)."""

    def cholesky(self, a: Array) -> Array:
        if a.shape[-1] == 0:
            return a
        return _checked("cholesky", *_cholesky(a), "not positive-definite")

    def eigh(self, a: Array) -> tuple[Array, Array]:
        w, v = jnp.linalg.eigh(a, symmetrize_input=False)
        return w, v

    def eigvalsh(self, a: Array) -> Array:
        return jnp.linalg.eigvalsh(a, symmetrize_input=False)

    def qr(self, a: Array, complete: bool) -> tuple[Array, Array]:
        q, r = jnp.linalg.qr(a, mode="complete" if complete else "reduced")
        return q, r

    def svd(self, a: Array, full_matrices: bool) -> tuple[Array, Array, Array]:
        u, s, vh = jnp.linalg.svd(a, full_matrices=full_matrices)
        return u, s, vh

    def svdvals(self, a: Array) -> Array:
        return jnp.linalg.svd(a, compute_uv=False)

    def solve(self, a: Array, b: Array) -> Array:
        if a.shape[-1] == 0:
            return jnp.zeros(b.shape, dtype=a.dtype)
        return _checked("solve", *_lu_solve(a, b))

    def inv(self, a: Array) -> Array:
        if a.shape[-1] == 0:
            return a
        return _checked("inv", *_lu_inv(a))

    def det(self, a: Array) -> Array:
        return jnp.linalg.det(a)

    def slogdet(self, a: Array) -> tuple[Array, Array]:
        sign, logabsdet = jnp.linalg.slogdet(a)
        return sign, logabsdet
