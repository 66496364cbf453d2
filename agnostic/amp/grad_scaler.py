"""Dynamic loss scaling for float16 training: torch.amp.GradScaler's algorithm, API and state.

float16 has 5 exponent bits: gradients below ~6e-8 underflow to zero. Multiplying the loss by a large
factor S before `backward()` moves every gradient up by S into float16's range; the gradients are
divided by S again (in float32, on the float32 master weights' gradients) before the optimizer uses
them. S is chosen dynamically: a step whose gradients hold an inf or NaN is skipped and S is
multiplied by `backoff_factor`; after `growth_interval` clean steps in a row S is multiplied by
`growth_factor` (unless that overflows float32). bfloat16 has float32's exponent range and needs
none of this (`Learner(precision="bf16-mixed")` uses no scaler).

What runs where (also under `agnostic.compile`):

- `scale(loss)` multiplies by the scale, a float32 0-d tensor on the loss's backend. The scale is
  held in a `Parameter` (no gradient) that a compiled step lifts into its inputs like a weight, so
  `scaler.scale(loss).backward()` may sit inside a compiled forward/backward and sees every later
  scale without a recompile.
- `unscale_(optimizer)` multiplies each gradient by 1/scale (the reciprocal taken in float64, as
  torch does) and records whether any gradient held an inf or NaN: one flag per device, reduced over
  all of the optimizer's gradients on the device, with no read back to the host.
- `step(optimizer)` reads that flag on the host (one read per device, as torch's `.item()`) and
  calls `optimizer.step()` only when it is clear, so it runs eagerly, between a compiled
  forward/backward and a compiled update (what `Learner(compile=True, precision="16-mixed")` does).
- `update()` computes the next scale on the host from the flags already read (float32 arithmetic as
  torch's `_amp_update_scale_` kernel) and writes it to the device only when it changed.

Errors for calls out of order carry torch's messages; where torch raises `AssertionError` this
module raises `GradScalerError`, which is both a `RuntimeError` and an `AssertionError`, so code
written against either catches it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from agnostic import dtypes, tracing
from agnostic.autodiff import no_grad
from agnostic.device import Device, as_device
from agnostic.nn.parameter import Parameter
from agnostic.optim.optimizer import Optimizer
from agnostic.tensor import Tensor

__all__ = ["GradScaler", "GradScalerError"]

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"  # torch's OptState, per optimizer
_TORCH_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hpu", "xla", "meta")
_FIX = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."


class GradScalerError(RuntimeError, AssertionError):
    """A GradScaler call out of order (torch raises AssertionError for these; either catches it)."""


def _f32(x: float) -> float:
    """`x` rounded to float32, as a Python float: torch keeps the scale in a float32 tensor."""
    with np.errstate(over="ignore"):  # an overflow to inf is the answer (growth is then refused)
        return float(np.float32(x))


def _fresh_state() -> dict[str, Any]:
    return {"stage": _READY, "found_inf_per_device": {}, "found_inf": None}


class GradScaler:
    """Dynamic loss scaling (torch.amp.GradScaler's algorithm, arguments and state_dict keys).

    The training step torch documents works unchanged::

        scaler = ag.amp.GradScaler()
        with ag.autocast(dtype="float16"):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)          # only when the gradients are read (clipping)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)              # skipped when a gradient holds inf/NaN
        scaler.update()
        optimizer.zero_grad()

    `device`: where the scale lives: None (the backend of the first tensor `scale` sees, made at
    that first call, as torch does), or a Device or backend name (made at once: then the first
    `scale` may be inside a compiled step). torch's device-type strings ("cuda", "cpu") are
    accepted for ported code and mean None: the backend is the model's. `enabled=False` makes
    every method a pass-through (`scale` returns its input, `step` calls `optimizer.step()`), so
    one script runs with and without scaling.
    """

    def __init__(
        self,
        device: Device | str | None = None,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"GradScaler: enabled must be a bool, got {enabled!r}")
        self._device: Device | None = None
        if isinstance(device, str) and device.partition(":")[0] in _TORCH_DEVICE_TYPES:
            self._device = None  # torch's device type: the model's backend decides
        elif device is not None:
            self._device = as_device(device)
        self._enabled = enabled
        if enabled:
            _check_positive("init_scale", init_scale)
            _check_growth_factor(growth_factor)
            _check_backoff_factor(backoff_factor)
            _check_growth_interval(growth_interval)
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        # the scale: on the host (a float32 value as a Python float) and on the device (a 0-d float32
        # Parameter without gradient, lifted by compiled steps); both made at the first `scale` call
        self._scale_value: float | None = None
        self._scale: Parameter | None = None
        self._growth_tracker: int | None = None
        self._per_optimizer_states: dict[int, dict[str, Any]] = {}
        if enabled and self._device is not None:  # made now: a compiled step's first call may scale
            self._lazy_init(self._device)

    # ------------------------------------------------------------------ the iteration
    def scale(self, outputs: Any) -> Any:
        """`outputs` times the scale: a Tensor, or lists, tuples and dicts of them (the same
        structure back). Disabled: `outputs` as it is."""
        if not self._enabled:
            return outputs
        return self._apply_scale(outputs)

    def _apply_scale(self, val: Any) -> Any:
        if isinstance(val, Tensor):
            scale = self._scale_on(val.device)
            return val * scale
        if isinstance(val, dict):
            return type(val)((k, self._apply_scale(v)) for k, v in val.items())
        if isinstance(val, tuple) and hasattr(val, "_fields"):  # a namedtuple
            return type(val)(*(self._apply_scale(v) for v in val))
        if isinstance(val, (list, tuple)):
            return type(val)(self._apply_scale(v) for v in val)
        raise ValueError(
            "outputs must be a Tensor or an iterable of Tensors (GradScaler.scale: got "
            f"{type(val).__name__}; lists, tuples and dicts of Tensors are scaled element by element)"
        )

    def _scale_on(self, device: Device) -> Tensor:
        """The scale as a tensor on `device` (made there at the first call, on `self._device` if set)."""
        tracer = tracing.active()
        if self._scale is None:
            if tracer is not None:  # a value made inside a trace is symbolic: it cannot outlive it
                raise RuntimeError(
                    "GradScaler.scale: the scale is made at the first call, and this first call is inside "
                    "an agnostic.compile trace; create the scaler with GradScaler(device=...) (the "
                    "model's backend) or call scaler.scale once outside the compiled step"
                )
            self._lazy_init(self._device or device)
        assert self._scale is not None
        if tracer is not None:
            tracer.uses(self._scale)  # a compiled step takes the scale as an input, never a constant
        if self._scale.device is not device:
            return self._scale.to(device)
        return self._scale

    def _init_on(self, device: Device) -> None:
        """Make the scale on `device` now unless it exists (Learner: before a compiled step traces)."""
        if self._enabled and self._scale is None:
            self._lazy_init(self._device or device)

    def _lazy_init(self, device: Device) -> None:
        self._scale_value = _f32(self._init_scale)
        self._scale = Parameter(_scalar(device, self._scale_value), requires_grad=False)
        self._growth_tracker = self._init_growth_tracker

    def _check_scale_growth_tracker(self, funcname: str) -> None:
        if self._scale is None:
            raise GradScalerError(f"Attempted {funcname} but _scale is None.  " + _FIX)

    def _state_of(self, optimizer: Optimizer) -> dict[str, Any]:
        state = self._per_optimizer_states.get(id(optimizer))
        if state is None:
            state = self._per_optimizer_states[id(optimizer)] = _fresh_state()
        return state

    def unscale_(self, optimizer: Optimizer) -> None:
        """Divide `optimizer`'s gradients by the scale (in place: each `p.grad` is replaced) and record
        whether any holds an inf or NaN. Call it before reading the gradients (clipping); `step`
        calls it otherwise. At most once per optimizer between two `update`s."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._state_of(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = _f32(1.0 / self._scale_value)  # the reciprocal in float64, as torch (exact for 2**k)
        state["found_inf_per_device"] = self._unscale_grads(optimizer, inv_scale)
        state["found_inf"] = None
        state["stage"] = _UNSCALED

    def _unscale_grads(self, optimizer: Optimizer, inv_scale: float) -> dict[Device, Tensor]:
        """Unscale every gradient; per device, one 0-d float32 flag: 1.0 where some gradient of the
        device holds an inf or NaN (an any() over the per-gradient checks: no host read)."""
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"GradScaler: expected an agnostic Optimizer, got {type(optimizer).__name__}")
        by_device: dict[Device, list[Parameter]] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.dtype is dtypes.float16:
                    raise ValueError(
                        "Attempting to unscale FP16 gradients. (GradScaler: the parameters must stay "
                        "float32 master weights; autocast runs the ops in float16, not the model)"
                    )
                by_device.setdefault(g.device, []).append(p)
        found: dict[Device, Tensor] = {}
        with no_grad():
            for device, params in by_device.items():
                inv = _scalar(device, inv_scale)
                flags = []
                for p in params:
                    g = p.grad
                    flags.append((~g.isfinite()).any() if g.ndim else ~g.isfinite())
                    p.grad = g * inv.astype(g.dtype) if g.dtype is not dtypes.float32 else g * inv
                any_flag = flags[0] if len(flags) == 1 else _stack(flags).any()
                found[device] = any_flag.astype(dtypes.float32)
        return found

    def step(self, optimizer: Optimizer, *args: Any, **kwargs: Any) -> Any:
        """`optimizer.step(*args, **kwargs)` unless the (unscaled) gradients hold an inf or NaN;
        its return value, or None when skipped. Unscales first unless `unscale_` was called."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        return self._step_with(optimizer, lambda: optimizer.step(*args, **kwargs))

    def _step_with(self, optimizer: Optimizer, step: Callable[[], Any]) -> Any:
        """`step` in the role of `optimizer.step()` (Learner's compiled update: clipping and the
        step in one program), with `step`'s checks, unscaling and skip decision."""
        self._check_scale_growth_tracker("step")
        state = self._state_of(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        if not state["found_inf_per_device"]:
            raise GradScalerError(
                "No inf checks were recorded for this optimizer. (GradScaler.step: none of its "
                "parameters has a gradient; did backward() run?)"
            )
        retval = None
        if not self._found_inf(state):
            retval = step()
        state["stage"] = _STEPPED
        return retval

    @staticmethod
    def _found_inf(state: dict[str, Any]) -> float:
        """The optimizer's inf/NaN flags summed on the host (read once, then kept)."""
        if state["found_inf"] is None:
            state["found_inf"] = float(sum(float(v.item()) for v in state["found_inf_per_device"].values()))
        return state["found_inf"]

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """The next iteration's scale: times `backoff_factor` if any optimizer's step was skipped
        this iteration (the growth count restarts), times `growth_factor` after `growth_interval`
        clean iterations in a row (kept if that overflows float32). `new_scale` sets it instead."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            value = _new_scale_value(new_scale)
        else:
            states = [s for s in self._per_optimizer_states.values() if s["found_inf_per_device"]]
            if not states:
                raise GradScalerError(
                    "No inf checks were recorded prior to update. (GradScaler.update: call "
                    "scaler.step(optimizer) or scaler.unscale_(optimizer) first)"
                )
            found_inf = sum(self._found_inf(s) for s in states)
            value, self._growth_tracker = _updated_scale(
                self._scale_value,
                self._growth_tracker,
                found_inf,
                self._growth_factor,
                self._backoff_factor,
                self._growth_interval,
            )
        self._set_scale(value)
        self._per_optimizer_states = {}

    def _set_scale(self, value: float) -> None:
        value = _f32(value)
        if value != self._scale_value or math.isnan(value):
            self._scale.assign(_scalar(self._scale.device, value))
        self._scale_value = value

    # ------------------------------------------------------------------ settings and state
    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled); no device read."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale_value is None else self._scale_value

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        _check_growth_factor(new_factor)
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        _check_backoff_factor(new_factor)
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        _check_growth_interval(new_interval)
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else self._growth_tracker

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """torch's keys and types: "scale" and the factors as floats, "growth_interval" and
        "_growth_tracker" as ints; {} when disabled. Take it after `update()`."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._get_growth_tracker(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()` (this class's or torch.amp.GradScaler's). Checked before anything
        changes; a no-op when disabled."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved "
                "from a disabled instance of GradScaler."
            )
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise KeyError(
                f"GradScaler.load_state_dict: missing {missing}; a GradScaler state_dict has {list(keys)}"
            )
        values = {k: _number(state_dict[k], k) for k in keys}
        _check_positive("scale", values["scale"])
        _check_growth_factor(values["growth_factor"])
        _check_backoff_factor(values["backoff_factor"])
        _check_growth_interval(int(values["growth_interval"]))
        tracker = int(values["_growth_tracker"])
        if tracker < 0 or tracker != values["_growth_tracker"]:
            raise ValueError(
                f"GradScaler.load_state_dict: _growth_tracker must be an int >= 0, got {tracker}"
            )
        self._init_scale = float(values["scale"])
        self._growth_factor = float(values["growth_factor"])
        self._backoff_factor = float(values["backoff_factor"])
        self._growth_interval = int(values["growth_interval"])
        self._init_growth_tracker = tracker
        if self._scale is not None:
            self._set_scale(self._init_scale)
            self._growth_tracker = tracker

    def __repr__(self) -> str:
        if not self._enabled:
            return "GradScaler(enabled=False)"
        return (
            f"GradScaler(scale={self.get_scale()}, growth_factor={self._growth_factor}, "
            f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval})"
        )


# ---------------------------------------------------------------------- helpers
def _updated_scale(
    scale: float, tracker: int, found_inf: float, growth: float, backoff: float, interval: int
) -> tuple[float, int]:
    """torch's `_amp_update_scale_` kernel: the float32 scale times a double factor, stored in float32."""
    if found_inf:
        return _f32(scale * backoff), 0
    successful = tracker + 1
    if successful == interval:
        grown = _f32(scale * growth)
        return (grown if math.isfinite(grown) else scale), 0
    return scale, successful


def _new_scale_value(new_scale: Any) -> float:
    reason = (
        "new_scale should be a float or a 1-element tensor with requires_grad=False "
        f"(GradScaler.update: got {type(new_scale).__name__})"
    )
    if isinstance(new_scale, bool):
        raise GradScalerError(reason)
    if isinstance(new_scale, (int, float)):
        return float(new_scale)
    if isinstance(new_scale, Tensor):
        if new_scale.size != 1 or new_scale.requires_grad or not new_scale.dtype.is_inexact:
            raise GradScalerError(reason)
        return float(new_scale.reshape(()).item())
    raise GradScalerError(reason)


def _scalar(device: Device, value: float) -> Tensor:
    return device.tensor(value, dtype=dtypes.float32)


def _stack(flags: list[Tensor]) -> Tensor:
    from agnostic.ops import stack

    return stack(flags)


def _number(value: Any, key: str) -> float:
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # a 0-d tensor or array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"GradScaler.load_state_dict: {key!r} must be a number, got {value!r}")
    return value


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ValueError(f"GradScaler: {name} must be a finite number > 0, got {value!r}")


def _check_growth_factor(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (1.0 < value < math.inf):
        raise ValueError(f"GradScaler: the growth factor must be > 1.0 (and finite), got {value!r}")


def _check_backoff_factor(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < value < 1.0):
        raise ValueError(f"GradScaler: the backoff factor must be in (0, 1), got {value!r}")


def _check_growth_interval(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"GradScaler: growth_interval must be an int >= 1, got {value!r}")
