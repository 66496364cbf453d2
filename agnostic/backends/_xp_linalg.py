"""The linalg primitives on NumPy and CuPy arrays (`self.xp.linalg`).

NumPy raises its LinAlgError for a singular or non-positive-definite matrix; CuPy (by default)
returns NaN/inf instead, so a non-finite result of finite input is read as the same failure.
Neither is ever traced, so both always raise ours (see `base_linalg`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agnostic.backends.base_linalg import singular_error

Array = Any


class XPLinalg:
    """Mixin of XPBackend: the linalg primitives through `self.xp`."""

    xp: Any

    def _checked(self, op: str, fn: Any, a: Array, *args: Any, what: str = "singular") -> Array:
        """`fn(a, *args)`, with a singular `a` reported as our LinAlgError on NumPy and CuPy alike."""
        try:
            out = fn(a, *args)
        except np.linalg.LinAlgError as exc:
            raise singular_error(op, what) from exc
        xp = self.xp
        if xp is not np and not bool(xp.isfinite(out).all()) and bool(xp.isfinite(a).all()):
            raise singular_error(op, what)
        return out

    def cholesky(self, a: Array) -> Array:
        return self._checked("cholesky", self.xp.linalg.cholesky, a, what="not positive-definite")

    def eigh(self, a: Array) -> tuple[Array, Array]:
        w, v = self.xp.linalg.eigh(a)
        return w, v

    def eigvalsh(self, a: Array) -> Array:
        return self.xp.linalg.eigvalsh(a)

    def qr(self, a: Array, complete: bool) -> tuple[Array, Array]:
        q, r = self.xp.linalg.qr(a, mode="complete" if complete else "reduced")
        return q, r

    def svd(self, a: Array, full_matrices: bool) -> tuple[Array, Array, Array]:
        u, s, vh = self.xp.linalg.svd(a, full_matrices=full_matrices)
        return u, s, vh

    def svdvals(self, a: Array) -> Array:
        return self.xp.linalg.svd(a, compute_uv=False)

    def solve(self, a: Array, b: Array) -> Array:
        return self._checked("solve", self.xp.linalg.solve, a, b)

    def inv(self, a: Array) -> Array:
        return self._checked("inv", self.xp.linalg.inv, a)

    def det(self, a: Array) -> Array:
        return self.xp.asarray(self.xp.linalg.det(a), dtype=a.dtype)

    def slogdet(self, a: Array) -> tuple[Array, Array]:
        sign, logabsdet = self.xp.linalg.slogdet(a)
        return self.xp.asarray(sign, dtype=a.dtype), self.xp.asarray(logabsdet, dtype=logabsdet.dtype)
