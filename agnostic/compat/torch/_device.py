"""torch's `device=` argument, resolved to an agnostic Device.

A Device (from `ag.backend`) is used as it is; a backend name ("numpy", "torch:cuda:0", "jax:gpu")
names one. A torch device string ("cpu", "cuda", "cuda:1", "mps") names a device of the current
default backend (`ag.default_backend(...)`, else AGNOSTIC_BACKEND, else numpy): the model code keeps
its `device="cuda"`, and the choice of library stays with whoever runs it.
"""

from __future__ import annotations

from typing import Any

from agnostic.backends import backend_names
from agnostic.device import Device, backend, get_default_backend

__all__ = ["device", "resolve"]


def resolve(dev: Any) -> Device:
    """The Device for torch's `device=` (None: the default backend)."""
    if dev is None:
        return get_default_backend()
    if isinstance(dev, Device):
        return dev
    if isinstance(dev, int) and not isinstance(dev, bool):
        dev = f"cuda:{dev}"
    if not isinstance(dev, str):
        raise TypeError(f"device: expected a Device, a backend name or a torch device string, got {dev!r}")
    if dev.partition(":")[0] in backend_names():
        return backend(dev)
    default = get_default_backend()
    try:
        return backend(default.name, device=dev)
    except (ValueError, RuntimeError) as exc:
        raise type(exc)(
            f"device {dev!r}: the default backend {default.name!r} has no such device ({exc}); choose a "
            "backend that has one, e.g. `with ag.default_backend('torch'):` or device='torch:cuda'"
        ) from exc


def device(type: Any, index: int | None = None) -> Device:
    """torch.device: `device("cuda", 1)` or `device("cuda:1")`, as an agnostic Device."""
    if index is not None:
        if not isinstance(type, str) or ":" in type:
            raise ValueError(f"device: give the index once, got {type!r} and index={index}")
        type = f"{type}:{index}"
    return resolve(type)
