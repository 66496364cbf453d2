"""Dynamic loss scaling for float16 training (torch.amp.GradScaler's algorithm). (Being built.)"""

from __future__ import annotations

__all__ = ["GradScaler"]


class GradScaler:
    """Stub: helper G replaces this module."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("GradScaler is being built")
