"""The linalg extension of the op-set: the factorizations and solves every backend implements.

Only what needs a library's LAPACK-like kernels is a primitive; norms, rank, pinv, cross, trace,
diagonal and matrix_power are composed from these and the core op-set in `agnostic.linalg`, where
every vector-Jacobian rule lives too. The Tensor layer has already checked the arguments: each
primitive gets arrays of one floating dtype (float32/float64, complex64/complex128), square
matrices where the operation needs them, and the batch dimensions of two operands broadcast to one
shape. Outputs that are real for complex input (eigenvalues, singular values, logabsdet) have the
real dtype of the input.

Singular input, one behaviour on every backend: on concrete values `inv`, `solve` (a matrix of the
batch with an exactly zero LU pivot, as LAPACK reports it) and `cholesky` (a matrix that is not
positive-definite) raise `LinAlgError`; under a compile trace, where values are symbolic, they
return NaN for such a matrix instead (ag.compile cannot raise on a value).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

Array = Any


class LinAlgError(np.linalg.LinAlgError):
    """A matrix a linalg op cannot handle: singular (inv, solve) or not positive-definite
    (cholesky). A subclass of NumPy's LinAlgError (itself a ValueError), so code written against
    NumPy or SciPy that catches that catches this on every backend."""


def singular_error(op: str, what: str = "singular") -> LinAlgError:
    """The one message of a singular (or, for cholesky, not positive-definite) input."""
    fix = {
        "singular": " (an exactly zero pivot in its LU factorization); for a rank-deficient system use "
        "ag.linalg.pinv (pinv(a) @ b is the least-squares solution)",
        "not positive-definite": ": cholesky needs a Hermitian positive-definite matrix (add a "
        "multiple of the identity to regularize, or use ag.linalg.eigh)",
    }[what]
    return LinAlgError(f"{op}: a matrix of the input is {what}{fix}")


class LinalgOps(abc.ABC):
    """The Array API linalg extension's primitives on native arrays (see the module docstring)."""

    @abc.abstractmethod
    def cholesky(self, a: Array) -> Array:
        """The lower Cholesky factor L of Hermitian positive-definite `a` (..., n, n): a = L L^H;
        only the lower triangle of `a` is read."""

    @abc.abstractmethod
    def eigh(self, a: Array) -> tuple[Array, Array]:
        """(eigenvalues ascending (..., n) in the real dtype, eigenvectors (..., n, n) as columns)
        of Hermitian `a`; only the lower triangle of `a` is read."""

    @abc.abstractmethod
    def eigvalsh(self, a: Array) -> Array:
        """The eigenvalues of Hermitian `a`, ascending, in the real dtype (lower triangle read)."""

    @abc.abstractmethod
    def qr(self, a: Array, complete: bool) -> tuple[Array, Array]:
        """(Q, R) of `a` (..., m, n), k = min(m, n): Q (..., m, k) and R (..., k, n), or with
        `complete` Q (..., m, m) and R (..., m, n)."""

    @abc.abstractmethod
    def svd(self, a: Array, full_matrices: bool) -> tuple[Array, Array, Array]:
        """(U, S, Vh) of `a` (..., m, n): a = U diag(S) Vh, S descending in the real dtype; U
        (..., m, k), Vh (..., k, n) with k = min(m, n), or square U and Vh with `full_matrices`."""

    @abc.abstractmethod
    def svdvals(self, a: Array) -> Array:
        """The singular values of `a`, descending, in the real dtype."""

    @abc.abstractmethod
    def solve(self, a: Array, b: Array) -> Array:
        """x with a x = b for `a` (..., n, n) and `b` (..., n, k), one batch shape; raises
        LinAlgError for a singular matrix (NaN under a trace: see the module docstring)."""

    @abc.abstractmethod
    def inv(self, a: Array) -> Array:
        """The inverse of `a` (..., n, n); singular input as `solve`."""

    @abc.abstractmethod
    def det(self, a: Array) -> Array:
        """The determinant of `a` (..., n, n) (0 for a singular matrix, no error)."""

    @abc.abstractmethod
    def slogdet(self, a: Array) -> tuple[Array, Array]:
        """(sign, log|det|) of `a`: sign in a's dtype (0 for a singular matrix, a unit complex
        number for complex input), logabsdet in the real dtype (-inf for a singular matrix)."""
