"""torch's `nn.parallel` name for data-parallel training: `nn.parallel.DistributedDataParallel`.

The class lives in agnostic.distributed.data_parallel. nn sits below agnostic.distributed in the
layers (distributed imports nn, never the reverse), so the name is resolved lazily, on first use,
by the module `__getattr__` below: importing agnostic.nn never imports agnostic.distributed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DistributedDataParallel"]  # noqa: F822 (provided by __getattr__)


def __getattr__(name: str) -> Any:
    if name == "DistributedDataParallel":
        from agnostic.distributed.data_parallel import DistributedDataParallel

        return DistributedDataParallel
    raise AttributeError(f"module 'agnostic.nn.parallel' has no attribute {name!r}")
