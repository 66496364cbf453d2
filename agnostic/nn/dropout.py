"""Dropout as a layer: active in training mode, the identity after `model.eval()`."""

from __future__ import annotations

import agnostic.functional as F
from agnostic.tensor import Tensor

from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability p and scale the rest by 1/(1-p) while training. Masks follow
    the global seed stream (`ag.manual_seed`), so a seeded run drops the same elements on every
    backend. `inplace=True` is accepted for ported code; tensors are values, so a new tensor is
    returned and the input is unchanged."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p has to be a number in [0, 1], got {p!r}")
        self.p, self.inplace = float(p), inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")
