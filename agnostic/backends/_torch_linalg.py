"""The linalg primitives on torch tensors (torch.linalg); imported only by the torch backend.

The `*_ex` variants report a singular (or non-positive-definite) matrix in `info` instead of
raising: eagerly we raise our LinAlgError from it, and in a compile trace (fake tensors, nothing to
read) the failed matrices become NaN, as on JAX (see `base_linalg`).
"""

from __future__ import annotations

from typing import Any

import torch

from agnostic import tracing
from agnostic.backends.base_linalg import singular_error

Array = Any


def _checked(op: str, out: Array, info: Array, what: str = "singular") -> Array:
    if tracing.tracing():
        return torch.where((info != 0)[..., None, None], torch.nan, out)
    if bool((info != 0).any()):
        raise singular_error(op, what)
    return out


class TorchLinalg:
    """Mixin of TorchBackend: the linalg primitives."""

    def cholesky(self, a: Array) -> Array:
        out, info = torch.linalg.cholesky_ex(a)
        return _checked("cholesky", out, info, "not positive-definite")

    def eigh(self, a: Array) -> tuple[Array, Array]:
        w, v = torch.linalg.eigh(a)
        return w, v

    def eigvalsh(self, a: Array) -> Array:
        return torch.linalg.eigvalsh(a)

    def qr(self, a: Array, complete: bool) -> tuple[Array, Array]:
        q, r = torch.linalg.qr(a, mode="complete" if complete else "reduced")
        return q, r

    def svd(self, a: Array, full_matrices: bool) -> tuple[Array, Array, Array]:
        u, s, vh = torch.linalg.svd(a, full_matrices=full_matrices)
        return u, s, vh

    def svdvals(self, a: Array) -> Array:
        return torch.linalg.svdvals(a)

    def solve(self, a: Array, b: Array) -> Array:
        out, info = torch.linalg.solve_ex(a, b)
        return _checked("solve", out, info)

    def inv(self, a: Array) -> Array:
        out, info = torch.linalg.inv_ex(a)
        return _checked("inv", out, info)

    def det(self, a: Array) -> Array:
        return torch.linalg.det(a)

    def slogdet(self, a: Array) -> tuple[Array, Array]:
        sign, logabsdet = torch.linalg.slogdet(a)
        return sign, logabsdet
