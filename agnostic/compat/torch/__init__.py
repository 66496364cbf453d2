"""`import agnostic.compat.torch as torch`: the names PyTorch model code uses, with torch's
signatures and meanings, over agnostic's own ops (no torch import), so the code runs on every
backend.

Tensors are agnostic tensors (`torch.Tensor` is `ag.Tensor`), dtypes agnostic dtypes
(`torch.long is ag.int64`). `device=` takes a Device, a backend name ("jax", "torch:cuda") or a torch
device string ("cpu", "cuda:0"), which names a device of the default backend (`ag.default_backend`);
without one, creation uses the default backend and ops the backend of their inputs. Random
functions draw from agnostic's seed stream (`manual_seed`): one seed gives the same numbers on every
backend, not torch's numbers.
"""
# ruff: noqa: F401, F403  (a namespace of re-exports)

import builtins

from agnostic import ops as _ag_ops
from agnostic.autocast import autocast as _ag_autocast
from agnostic.autocast import get_autocast_dtype as _get_autocast_dtype
from agnostic.autocast import is_autocast_enabled as _is_autocast_enabled
from agnostic.autodiff import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from agnostic.dtypes import DType as dtype
from agnostic.dtypes import (
    bfloat16,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from agnostic.dtypes import bool as bool
from agnostic.einsum import einsum
from agnostic.functional import relu
from agnostic.ops import (
    abs,
    acos,
    asin,
    atan,
    atan2,
    broadcast_to,
    ceil,
    cos,
    cosh,
    erf,
    exp,
    expm1,
    floor,
    floor_divide,
    isfinite,
    isinf,
    isnan,
    log,
    log1p,
    log2,
    log10,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    pow,
    reciprocal,
    remainder,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sinh,
    sqrt,
    square,
    tan,
    tanh,
    trunc,
)  # fmt: skip
from agnostic.ops import equal as eq
from agnostic.ops import greater as gt
from agnostic.ops import greater_equal as ge
from agnostic.ops import less as lt
from agnostic.ops import less_equal as le
from agnostic.ops import negative as neg
from agnostic.ops import not_equal as ne
from agnostic.random import Generator, manual_seed
from agnostic.tensor import Tensor

from . import return_types
from ._creation import *
from ._device import device
from ._grad_mode import inference_mode
from ._ops import *

float = float32
double = float64
half = float16
short = int16
int = int32
long = int64
negative = neg


def get_default_dtype() -> dtype:
    """float32, on every backend."""
    return float32


def equal(input: Tensor, other: Tensor) -> bool:
    """True when both have one shape and equal elements (torch.equal; `eq` is elementwise)."""
    return input.shape == other.shape and builtins.bool(_ag_ops.all(input == other))


def autocast(
    device_type: str = "cpu", dtype: dtype | None = None, enabled: builtins.bool = True,
    cache_enabled: builtins.bool | None = None,
) -> _ag_autocast:  # fmt: skip
    """torch.autocast: `ag.autocast` with torch's defaults (bfloat16 for "cpu", float16 otherwise);
    `device_type` picks only that default (the tensors' backend decides where ops run)."""
    if dtype is None:
        dtype = bfloat16 if device_type == "cpu" else float16
    return _ag_autocast(dtype, enabled=enabled, cache_enabled=cache_enabled)


def is_autocast_enabled(device_type: str | None = None) -> builtins.bool:
    """Whether autocast is on (one state for every device: `ag.is_autocast_enabled`)."""
    return _is_autocast_enabled()


def get_autocast_dtype(device_type: str | None = None) -> dtype | None:
    """The autocast dtype now, None when off (`ag.get_autocast_dtype`)."""
    return _get_autocast_dtype()


from . import nn, optim, utils  # noqa: E402  (submodules that use the names above)
