"""The backend registry: names to op-set classes, ours and third parties' alike.

Our backends are registered by import path, so `import agnostic` imports numpy alone; torch, jax and
cupy are imported when their backend is first asked for. Third-party backends register through the
`agnostic.backends` entry-point group (value: "module:Class") or `register_backend`.
"""

from __future__ import annotations

import importlib
import threading
from importlib import metadata

from agnostic.backends.base import Backend, BackendUnavailable, DeviceUnavailable

__all__ = [
    "Backend",
    "BackendUnavailable",
    "DeviceUnavailable",
    "register_backend",
    "backend_names",
    "backend_class",
    "backend_ops",
    "BUILTIN_EXTRAS",
]

BackendSpec = str | type[Backend]

_BUILTIN: dict[str, str] = {
    "numpy": "agnostic.backends.numpy:NumpyBackend",
    "torch": "agnostic.backends.torch:TorchBackend",
    "jax": "agnostic.backends.jax:JaxBackend",
    "cupy": "agnostic.backends.cupy:CupyBackend",
}
BUILTIN_EXTRAS = {"numpy": "", "torch": "agnostic[torch]", "jax": "agnostic[jax]", "cupy": "agnostic[cupy]"}

_registry: dict[str, BackendSpec] = dict(_BUILTIN)
_entry_points_loaded = False
_instances: dict[tuple[str, str], Backend] = {}
_instances_lock = threading.RLock()  # an op-set's constructor may ask for another op-set


def register_backend(name: str, cls: BackendSpec) -> None:
    """Register a Backend subclass (or its "module:Class" path) under `name`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_backend: name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, str) or (isinstance(cls, type) and issubclass(cls, Backend))):
        raise TypeError(f"register_backend: expected a Backend subclass or 'module:Class', got {cls!r}")
    _registry[name] = cls
    for key in [k for k in _instances if k[0] == name]:
        del _instances[key]


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group="agnostic.backends"):
        _registry.setdefault(ep.name, ep.value)


def backend_names() -> list[str]:
    """Every registered backend name: ours first, then third parties'."""
    _load_entry_points()
    return list(_registry)


def backend_class(name: str) -> type[Backend]:
    """The op-set class registered as `name`; a clear error if unknown or its library is missing."""
    _load_entry_points()
    try:
        spec = _registry[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in _registry)
        raise ValueError(
            f"unknown backend {name!r}; known backends: {known}. Install a backend's library with its "
            "extra (pip install 'agnostic[torch]', 'agnostic[jax]' or 'agnostic[cupy]'), or register "
            "one with agnostic.register_backend(name, cls)."
        ) from None
    if isinstance(spec, str):
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            extra = BUILTIN_EXTRAS.get(name)
            fix = f"pip install '{extra}'" if extra else f"install the package that provides {module_name}"
            raise BackendUnavailable(f"backend {name!r} cannot be loaded ({e}); {fix}") from e
        spec = getattr(module, attr)
        _registry[name] = spec
    return spec


def backend_ops(name: str, device: str | int | None = None) -> Backend:
    """The op-set instance for (name, device), created once and cached."""
    cls = backend_class(name)
    ok, why = cls.available()
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is not available: {why}")
    canonical = cls.canonical_device(device)
    key = (name, canonical)
    ops = _instances.get(key)
    if ops is None:
        with _instances_lock:  # one instance per key, also when two threads ask first at once
            ops = _instances.get(key)
            if ops is None:
                ops = _instances[key] = cls(canonical)
    return ops
