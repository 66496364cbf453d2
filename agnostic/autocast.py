"""Mixed precision: `ag.autocast(dtype=...)` runs the ops that gain from a low precision in it
(matrix products, convolution, attention, linear layers) and keeps the ops that need float32's
range or accuracy (reductions, softmax, normalizations, losses) in float32.

One policy table, `POLICY`, maps each op's name to "low" or "float32"; every op not in it runs in
the widest dtype of its inputs (agnostic's promotion table: bfloat16 + float32 -> float32, torch's
"promote" list). An op in the table asks `cast_inputs(name, ...)` for its inputs when autocast is
on; with autocast off the op pays one ContextVar read (`_state.get()`), nothing else.

- "low" ops cast their float32, float16 and bfloat16 tensor inputs to the autocast dtype; float64,
  integer, bool and complex inputs are left alone (torch's eligibility rule: float64 is an explicit
  request for precision and never autocasts). Their result is in the low dtype.
- "float32" ops cast float16 and bfloat16 tensor inputs up to float32; float64 stays float64.
- The casts are the differentiable `P.cast`, so the cotangent of a float32 parameter cast to
  bfloat16 is cast back to float32: parameters stay float32 (master weights) and their gradients
  arrive in float32. Backward rules are written with primitives, which do not autocast: each
  backward op runs in its forward op's dtype, as torch's do.
- A parameter (a float32 leaf that requires grad) is converted once per autocast region, as
  torch caches it: the converted array is kept until the outermost region exits and reused while
  the parameter holds the same array and no update of it was noted since (an optimizer step or
  `assign` gives it a new array; a compiled step that writes into the old one notes it), so a
  stale entry is never read. Each use still gets its own cast node, so the gradients of a weight used
  at every step of a recurrent loop reach it in float32, summed there as without the cache (torch
  sums them in the low dtype at its one cached node), and no node is shared between two backward
  passes. What the cache saves: the conversions, and the low-precision copies of a reused weight
  that each use's matmul would keep for backward (one per time step of an LSTM). `cache_enabled=
  False` turns it off; a compiled step's trace never caches (its compiler merges the casts).
- Inside `ag.compile` the casts are traced like any op; the autocast state is part of a compiled
  step's signature (`state_key()`), so a step compiled outside autocast traces again inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from typing import Any

from agnostic import dtypes, tracing
from agnostic import primitives as P
from agnostic.autodiff import assigned_since, clock
from agnostic.dtypes import DType
from agnostic.tensor import Tensor

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "POLICY", "LOW", "FLOAT32"]

LOW = "low"
FLOAT32 = "float32"

# op name -> where it runs under autocast. Sources: torch's autocast op lists (aten/src/ATen/
# autocast_mode.cpp): "CPU lower_precision_fp" (conv*, matmul, mm, bmm, linear, linalg_vecdot,
# scaled_dot_product_attention, ...), "CUDA lower_precision_fp" (the same products) and the
# "fp32" lists (CPU: the losses, prod, ...; CUDA also softmax, log_softmax, layer_norm, group_norm,
# sum, cumsum, cumprod, logsumexp, ...). Where CPU and CUDA torch differ, agnostic takes the CUDA
# list (one policy on every backend), which the issue asks for: normalizations and softmax in
# float32 whatever the backend.
POLICY: dict[str, str] = {
    # --- matrix products: nearly all of a model's arithmetic, and what low-precision units speed up
    "matmul": LOW,  # torch: matmul, mm, bmm, addmm (CPU and CUDA lower_precision_fp)
    "tensordot": LOW,  # torch reaches mm through it (mm is listed)
    "vecdot": LOW,  # torch CPU: linalg_vecdot
    "einsum": LOW,  # torch reaches bmm through it (bmm is listed)
    "linear": LOW,  # torch: linear (and addmm)
    "conv": LOW,  # torch: conv1d, conv2d, conv3d
    "conv_transpose": LOW,  # torch: conv_transpose1d/2d/3d
    "scaled_dot_product_attention": LOW,  # torch: scaled_dot_product_attention (CPU and CUDA)
    # --- softmax: exp of the largest score needs float32's range (torch CUDA fp32 list)
    "softmax": FLOAT32,
    "log_softmax": FLOAT32,
    # --- normalizations: mean and variance over many elements (torch CUDA fp32: layer_norm,
    # group_norm; rms_norm and batch_norm by the same reasoning: torch runs batch norm's
    # statistics in float32 whatever the input)
    "layer_norm": FLOAT32,
    "group_norm": FLOAT32,
    "rms_norm": FLOAT32,
    "batch_norm": FLOAT32,
    # --- losses: a sum over the batch, and logs near 0 (torch CPU and CUDA fp32 lists)
    "cross_entropy": FLOAT32,
    "nll_loss": FLOAT32,
    "mse_loss": FLOAT32,
    "l1_loss": FLOAT32,
    "smooth_l1_loss": FLOAT32,
    "huber_loss": FLOAT32,
    "binary_cross_entropy": FLOAT32,
    "binary_cross_entropy_with_logits": FLOAT32,
    "kl_div": FLOAT32,
    # --- reductions: sums of many terms lose everything past 8 bits of mantissa in bfloat16
    # (torch CUDA fp32: sum, prod, cumsum, cumprod, logsumexp; mean, var and std are agnostic's
    # additions: torch accumulates them in float32 inside its kernels, not every backend does)
    "sum": FLOAT32,
    "prod": FLOAT32,
    "mean": FLOAT32,
    "var": FLOAT32,
    "std": FLOAT32,
    "cumulative_sum": FLOAT32,
    "cumulative_prod": FLOAT32,
    "logsumexp": FLOAT32,
}

_LOW_DTYPES = (dtypes.float16, dtypes.bfloat16)
_ACCEPTED = {"bfloat16": dtypes.bfloat16, "float16": dtypes.float16}

_state: contextvars.ContextVar[DType | None] = contextvars.ContextVar("agnostic.autocast", default=None)
"""The autocast dtype now (None: off), per thread and asyncio task, as torch keeps it per thread."""

_cache: contextvars.ContextVar[dict[tuple[int, DType], tuple[Any, ...]] | None] = contextvars.ContextVar(
    "agnostic.autocast_cache", default=None
)
"""The parameters converted in this autocast region: (id(parameter), dtype) -> (a weak reference to
the parameter, one to the array converted, the autodiff clock then, the converted array). None: no
caching here."""


def _as_autocast_dtype(dtype: Any) -> DType:
    """bfloat16 or float16, from a name or an agnostic DType; anything else is refused by name."""
    if isinstance(dtype, str) and dtype in _ACCEPTED:
        return _ACCEPTED[dtype]
    if dtype is dtypes.bfloat16 or dtype is dtypes.float16:
        return dtype
    d = None
    if dtype is not None and not isinstance(dtype, bool):  # NumPy's float16, ml_dtypes' bfloat16
        try:
            d = dtypes.as_dtype(dtype)
        except TypeError:
            pass
        if d is dtypes.bfloat16 or d is dtypes.float16:
            return d
    hint = ""
    if isinstance(dtype, str) and dtype in ("cpu", "cuda", "mps", "xpu", "xla"):
        hint = (
            f"; {dtype!r} looks like torch.autocast's device_type: agnostic's autocast takes none "
            "(the tensors' backend decides), so write ag.autocast('bfloat16')"
        )
    elif d is dtypes.float32:
        hint = "; for float32 everywhere turn autocast off: ag.autocast(enabled=False)"
    raise ValueError(
        f"autocast: dtype must be 'bfloat16', 'float16', ag.bfloat16 or ag.float16, got {dtype!r}{hint}"
    )


class autocast(contextlib.ContextDecorator):  # torch's name (lower case)
    """`with ag.autocast("bfloat16"):` runs the ops of `POLICY` in bfloat16 (or float16) or float32,
    in this thread or asyncio task only; `ag.autocast(enabled=False)` turns it off inside. Also a
    decorator (a fresh state per call). On exit the previous state is restored exactly.
    `cache_enabled` (torch's keyword; None: True) keeps each parameter's conversion for the rest
    of the outermost region (see the module's docstring); False converts at every use."""

    def __init__(
        self, dtype: Any = "bfloat16", enabled: bool = True, cache_enabled: bool | None = None
    ) -> None:
        if enabled not in (True, False):
            raise TypeError(f"autocast: enabled must be a bool, got {enabled!r}")
        if cache_enabled not in (None, True, False):
            raise TypeError(f"autocast: cache_enabled must be a bool or None, got {cache_enabled!r}")
        self.dtype = _as_autocast_dtype(dtype)
        self.enabled = bool(enabled)
        self.cache_enabled = cache_enabled is not False
        self._previous: list[tuple[DType | None, dict | None]] = []

    def __enter__(self) -> autocast:
        cache = _cache.get()
        self._previous.append((_state.get(), cache))
        _state.set(self.dtype if self.enabled else None)
        if not self.cache_enabled:
            _cache.set(None)
        elif self.enabled and cache is None:
            _cache.set({})
        return self

    def __exit__(self, *exc: object) -> None:
        state, cache = self._previous.pop()
        _state.set(state)
        _cache.set(cache)

    def _recreate_cm(self) -> autocast:  # a decorated function gets a fresh one per call
        return type(self)(self.dtype, self.enabled, self.cache_enabled)

    def __repr__(self) -> str:
        cache = "" if self.cache_enabled else ", cache_enabled=False"
        return f"autocast(dtype={self.dtype.name!r}, enabled={self.enabled}{cache})"


def is_autocast_enabled() -> bool:
    """Whether ops of `POLICY` autocast now (in this thread or asyncio task)."""
    return _state.get() is not None


def get_autocast_dtype() -> DType | None:
    """The low dtype autocast uses now (ag.bfloat16 or ag.float16), None when it is off."""
    return _state.get()


def state_key() -> str | None:
    """The autocast state as a hashable value, for a compiled step's signature."""
    d = _state.get()
    return None if d is None else d.name


def cast_inputs(op: str, *xs: Any) -> tuple[Any, ...]:
    """`xs` cast for op `op` under the autocast dtype now (called only when autocast is on): to
    the low dtype for a "low" op, float16/bfloat16 up to float32 for a "float32" op. Non-tensors,
    None, float64, integer, bool and complex tensors pass unchanged."""
    low = _state.get()
    if low is None:
        return xs
    policy = POLICY[op]
    out = []
    for x in xs:
        if isinstance(x, Tensor):
            d = x._dtype
            if policy == LOW:
                if d is not low and (d is dtypes.float32 or d in _LOW_DTYPES):
                    x = _cached_cast(x, low) if x.requires_grad and x._node is None else P.cast(x, low)
            elif d in _LOW_DTYPES:
                x = P.cast(x, dtypes.float32)
        out.append(x)
    return tuple(out)


def _cached_cast(p: Tensor, low: DType) -> Tensor:
    """`P.cast(p, low)` for a leaf that requires grad (a parameter), its array converted once per
    region: an entry counts while `p` holds the very array it was converted from and no update was
    noted since (`autodiff.note_assignment`: a compiled step may write into that array)."""
    cache = _cache.get()
    if cache is None or tracing.tracing():
        return P.cast(p, low)
    key = (id(p), low)
    entry = cache.get(key)
    if entry is not None and entry[0]() is p and entry[1]() is p._data and not assigned_since(p, entry[2]):
        return P.cast(p, low, converted=entry[3])
    out = P.cast(p, low)
    try:
        cache[key] = (weakref.ref(p), weakref.ref(p._data), clock(), out._data)
    except TypeError:  # an array type without weak references: no caching
        pass
    return out
