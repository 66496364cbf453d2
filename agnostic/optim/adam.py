"""Adam and AdamW (with AMSGrad), as torch.optim computes them (the single-tensor formulas)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import agnostic.ops as ops
from agnostic.tensor import Tensor

from .optimizer import Optimizer, Params

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam; `weight_decay` adds decay * p to the gradient (L2), as torch.optim.Adam."""

    decoupled = False

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(
            params,
            dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize),
        )  # fmt: skip

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        name = type(self).__name__
        b1, b2 = group["betas"]
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{name}: betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0 or group["weight_decay"] < 0:
            raise ValueError(f"{name}: eps and weight_decay must be >= 0")

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd:
            if self.decoupled:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
        if not state:
            state["step"] = 0
            state["exp_avg"] = ops.zeros_like(p)
            state["exp_avg_sq"] = ops.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = ops.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m = state["exp_avg"] = state["exp_avg"] + (1 - b1) * (g - state["exp_avg"])  # torch's lerp
        v = state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = ops.maximum(state["max_exp_avg_sq"], v)
        step_size = lr / (1 - b1**t)
        denom = ops.sqrt(v) / math.sqrt(1 - b2**t) + eps
        return p - step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * decay before the step), default 0.01."""

    decoupled = True

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
