"""agnostic: write a network once, run it on NumPy, CuPy, JAX or PyTorch.

`import agnostic as ag` imports numpy alone; a backend's library is imported when the backend is
first asked for (`ag.backend("torch")`). The module is an Array API namespace (2023.12): tensors
return it from `__array_namespace__()`.
"""

from __future__ import annotations

import math as _math

from agnostic import amp, fft, functional, io, linalg, nn, optim, random
from agnostic.autocast import autocast, get_autocast_dtype, is_autocast_enabled
from agnostic.autodiff import (
    enable_grad,
    grad,
    gradients,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    value_and_grad,
    vjp,
)
from agnostic.backends import BackendUnavailable, DeviceUnavailable, backend_names, register_backend
from agnostic.backends.base import OutOfMemoryError
from agnostic.compilation import CompileError, RecompileWarning, compile
from agnostic.device import Device, backend, default_backend, get_default_backend
from agnostic.dtypes import (
    DType,
    bfloat16,
    bool,
    can_cast,
    complex64,
    complex128,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    isdtype,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from agnostic.einsum import einsum
from agnostic.functional import (
    cross_entropy,
    gelu,
    log_softmax,
    relu,
    silu,
    softmax,
)
from agnostic.io import CheckpointError, load, save
from agnostic.ops import *
from agnostic.ops import TENSOR_METHODS
from agnostic.random import Generator, manual_seed
from agnostic.tensor import Tensor
from agnostic.threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"
__array_api_version__ = "2023.12"

e = _math.e
pi = _math.pi
inf = _math.inf
nan = _math.nan
newaxis = None


def tensor(data: object, dtype: object = None, requires_grad: bool = False, device: object = None) -> Tensor:
    """A tensor holding a copy of `data` on `device` (a Device from ag.backend, or a backend name;
    default: the current default backend)."""
    from agnostic.device import as_device

    return as_device(device).tensor(data, dtype=dtype, requires_grad=requires_grad)


class _NamespaceInfo:
    """Array API inspection (`ag.__array_namespace_info__()`), answered for the default backend.
    Default dtypes and dtypes are the same on every device (one promotion table); a `device` is
    checked, so a bad one fails here as anywhere else."""

    _STANDARD = (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
        "float64", "complex64", "complex128",
    )  # fmt: skip

    def capabilities(self) -> dict:
        return {
            "boolean indexing": True,
            "data-dependent shapes": True,
            "max dimensions": get_default_backend().ops.max_dims,
        }

    def default_device(self) -> Device:
        return get_default_backend()

    def default_dtypes(self, *, device: object = None) -> dict:
        _info_device(device)
        return {
            "real floating": float32,
            "complex floating": complex64,
            "integral": int64,
            "indexing": int64,
        }

    def devices(self) -> list[Device]:
        dev = get_default_backend()
        return [backend(dev.name, d) for d in type(dev.ops).devices()]

    def dtypes(self, *, device: object = None, kind: object = None) -> dict:
        """The standard's dtypes (not float16/bfloat16, which agnostic adds), those of `kind` (a
        kind name, a dtype, or a tuple of them) when given."""
        from agnostic import dtypes as table

        _info_device(device)
        found = {name: getattr(table, name) for name in self._STANDARD}
        return {n: d for n, d in found.items() if kind is None or isdtype(d, kind)}


def _info_device(device: object) -> Device:
    from agnostic.device import as_device

    return get_default_backend() if device is None else as_device(device)


def __array_namespace_info__() -> _NamespaceInfo:
    return _NamespaceInfo()


def __getattr__(name: str) -> object:
    """`ag.onnx` (and `ag.compat`...) import on first use: `import agnostic` imports numpy alone."""
    if name in ("onnx", "compat"):
        import importlib

        return importlib.import_module(f"agnostic.{name}")
    raise AttributeError(f"module 'agnostic' has no attribute {name!r}")


del annotations
