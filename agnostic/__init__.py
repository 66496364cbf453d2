"""agnostic: write a network once, run it on NumPy, CuPy, JAX or PyTorch.

`import agnostic as ag` imports numpy alone; a backend's library is imported when the backend is
first asked for (`ag.backend("torch")`). The module is an Array API namespace (2023.12): tensors
return it from `__array_namespace__()`.
"""

from __future__ import annotations

import math as _math

from agnostic import functional, io, nn, optim, random
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
    """Array API inspection: `ag.__array_namespace_info__()`."""

    def capabilities(self) -> dict:
        return {"boolean indexing": True, "data-dependent shapes": True}

    def default_device(self) -> Device:
        return get_default_backend()

    def default_dtypes(self, *, device: object = None) -> dict:
        return {"real floating": float32, "integral": int64, "indexing": int64}

    def devices(self) -> list[Device]:
        return [get_default_backend()]

    def dtypes(self, *, device: object = None, kind: object = None) -> dict:
        from agnostic.dtypes import ALL_DTYPES

        return {d.name: d for d in ALL_DTYPES if kind is None or isdtype(d, kind)}


def __array_namespace_info__() -> _NamespaceInfo:
    return _NamespaceInfo()


def __getattr__(name: str) -> object:
    """`ag.onnx` (and `ag.compat`...) import on first use: `import agnostic` imports numpy alone."""
    if name in ("onnx", "compat"):
        import importlib

        return importlib.import_module(f"agnostic.{name}")
    raise AttributeError(f"module 'agnostic' has no attribute {name!r}")


del annotations
