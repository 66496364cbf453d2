"""Parameter: the one mutable holder in agnostic.

Tensors are values; a model's weights must change as it trains. A Parameter is a leaf Tensor that
requires grad and whose value can be replaced in place (`assign`), by optimizers and
`load_state_dict`, so the modules holding it see the new value. Ops on a Parameter return plain
Tensors, exactly as ops on any tensor do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agnostic import autodiff, tracing
from agnostic.device import Device, as_device, get_default_backend
from agnostic.ops import asarray, to_device
from agnostic.tensor import Tensor

__all__ = ["Parameter", "fan_in_uniform"]

_GRAD = Tensor.grad  # the slot that holds a tensor's gradient


class Parameter(Tensor):
    """A trainable tensor registered by the Module that holds it."""

    __slots__ = ("_post_accumulate_grad_hooks",)

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        t = data if isinstance(data, Tensor) else asarray(data)
        if requires_grad and not t.dtype.is_inexact:
            raise TypeError(
                f"Parameter: a {t.dtype.name} tensor cannot require grad; pass requires_grad=False"
            )
        self._data, self._device, self._dtype = t._data, t._device, t._dtype
        self._node = None
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient, or None. Reads and writes are reported to a running
        `agnostic.compile` trace, which lifts a gradient that the step reads into its inputs."""
        if (tracer := tracing.active()) is not None:
            tracer.grad_read(self)
        return _GRAD.__get__(self, Parameter)

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if (tracer := tracing.active()) is not None:
            tracer.grad_written(self)
        _GRAD.__set__(self, value)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Parameter], None]) -> _HookHandle:
        """Call `hook(self)` each time `backward()` has accumulated this parameter's gradient into
        `.grad`, during the backward pass, as torch's hook of the same name (data-parallel reduces
        gradients there while the rest of the graph is still differentiated). Returns a handle whose
        `remove()` unregisters it."""
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {hook!r}")
        hooks = getattr(self, "_post_accumulate_grad_hooks", None)
        if hooks is None:
            hooks = self._post_accumulate_grad_hooks = {}
        handle = _HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def assign(self, value: Any) -> None:
        """Replace the value in place (same shape and dtype; moved to this parameter's device).
        Not recorded by autodiff: it is an update of the holder, not an op."""
        v = value if isinstance(value, Tensor) else asarray(value, device=self._device)
        if v.shape != self.shape:
            raise ValueError(
                f"assign: value of shape {v.shape} does not fit a parameter of shape {self.shape}"
            )
        if v.dtype is not self._dtype:
            raise TypeError(
                f"assign: value of dtype {v.dtype.name} does not fit a {self._dtype.name} parameter"
            )
        if v.device is not self._device:
            v = to_device(v.detach(), self._device)
        self._data = v._data
        autodiff.note_assignment(self, "Parameter.assign (an optimizer step, load_state_dict)")

    def _move(self, device: Device | str) -> None:
        """Put the parameter (and its gradient) on another backend or device, in place."""
        dev = as_device(device)
        if dev is self._device:
            return
        moved = to_device(Tensor._make(self._data, self._device), dev)
        self._data, self._device = moved._data, dev
        if self.grad is not None:
            self.grad = to_device(self.grad.detach(), dev)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _HookHandle:
    """Removes one registered hook (torch's RemovableHandle)."""

    _next_id = 0

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = _HookHandle._next_id
        _HookHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def fan_in_uniform(shape: tuple[int, ...], fan_in: int, dtype: Any = None) -> Parameter:
    """PyTorch's default init of Linear, Conv, Bilinear and RNN weights and biases:
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the default backend (the one `Module(..., backend=B)`
    sets), drawn from the global seed stream, so one seed builds the same layer on every backend."""
    bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
    return Parameter(get_default_backend().uniform(shape, -bound, bound, dtype=dtype))
