"""Gradient clipping, as torch.nn.utils computes it; activation checkpointing (from the autodiff layer)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import agnostic.ops as ops
from agnostic.autodiff import no_grad
from agnostic.checkpointing import checkpoint, checkpoint_sequential
from agnostic.tensor import Tensor

from .parameter import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_", "checkpoint", "checkpoint_sequential"]


def _with_grads(parameters: Iterable[Parameter] | Parameter) -> list[Parameter]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Parameter] | Parameter, max_norm: float, norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:  # fmt: skip
    """Scale all gradients together so their joint `norm_type` norm is at most `max_norm`; returns
    the norm before clipping (a 0-d tensor on the first parameter's backend)."""
    params = _with_grads(parameters)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not params:
        return ops.asarray(0.0)
    dev = params[0].device
    with no_grad():
        grads = [p.grad.to(dev) for p in params]
        if math.isinf(norm_type):
            norms = [ops.max(ops.abs(g)) for g in grads]
            total = ops.max(ops.stack(norms))
        else:
            norms = [ops.sum(ops.abs(g) ** norm_type) for g in grads]
            total = ops.sum(ops.stack(norms)) ** (1.0 / norm_type)
        if error_if_nonfinite and not math.isfinite(float(total.item())):
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite "
                f"({total.item()}); pass error_if_nonfinite=False to clip anyway"
            )
        coef = ops.clip(max_norm / (total + 1e-6), max=1.0)
        for p in params:
            p.grad = p.grad * coef.astype(p.grad.dtype).to(p.grad.device)
    return total


def clip_grad_value_(parameters: Iterable[Parameter] | Parameter, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    with no_grad():
        for p in _with_grads(parameters):
            p.grad = ops.clip(p.grad, -clip_value, clip_value)
