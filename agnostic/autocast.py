"""Mixed precision: `ag.autocast(dtype=...)` runs the ops that gain from a low precision in it
(matmul, convolution, attention, linear layers) and keeps the rest in float32. (Being built.)"""

from __future__ import annotations

from typing import Any

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype"]


class autocast:  # noqa: N801 - torch's name
    """`with ag.autocast(dtype="bfloat16"):` (stub: helper A replaces this module)."""

    def __init__(self, dtype: Any = "bfloat16", enabled: bool = True) -> None:
        raise NotImplementedError("autocast is being built")


def is_autocast_enabled() -> bool:
    return False


def get_autocast_dtype() -> Any:
    return None
