"""Upsample: torch.nn.Upsample over `agnostic.functional.interpolate`, with torch's repr."""

from __future__ import annotations

from typing import Any

import agnostic.functional as F
from agnostic.tensor import Tensor

from .module import Module

__all__ = ["Upsample"]


class Upsample(Module):
    """Resizes (N, C, L) or (N, C, H, W) input to `size` or by `scale_factor` (exactly one of them),
    mode 'nearest', 'linear' (3-d) or 'bilinear' (4-d), as torch.nn.Upsample; see F.interpolate."""

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor: Any = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"
