"""RMSprop and Adagrad as torch.optim computes them, and Lion (Chen et al. 2023, "Symbolic
Discovery of Optimization Algorithms"; torch.optim has none, so the paper's update is the reference)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import agnostic.ops as ops
from agnostic.nn.parameter import Parameter
from agnostic.tensor import Tensor

from .optimizer import Optimizer, Params, like

__all__ = ["RMSprop", "Adagrad", "Lion"]


def _nonnegative(name: str, group: Mapping[str, Any], *keys: str) -> None:
    for key in keys:
        if group[key] < 0:
            raise ValueError(f"{name}: {key} must be >= 0, got {group[key]}")


class RMSprop(Optimizer):
    """torch.optim.RMSprop's signature; `capturable` and `foreach` are accepted and change nothing,
    `differentiable=True` is refused (see `agnostic.optim.optimizer`)."""

    complex_as_real = True

    counts_steps = True

    def __init__(
        self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
        weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, capturable: bool = False,
        foreach: bool | None = None, maximize: bool = False, differentiable: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(
            params,
            dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
                 differentiable=differentiable),
        )  # fmt: skip

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        _nonnegative("RMSprop", group, "alpha", "eps", "weight_decay", "momentum")

    def _initial_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0, "square_avg": ops.zeros_like(p)}
        if group["momentum"]:
            state["momentum_buffer"] = ops.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = ops.zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        alpha = group["alpha"]
        sq = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
        if group["centered"]:
            ga = state["grad_avg"] = state["grad_avg"] + (1 - alpha) * (g - state["grad_avg"])
            avg = ops.sqrt(sq - ga * ga) + group["eps"]
        else:
            avg = ops.sqrt(sq) + group["eps"]
        if group["momentum"]:
            buf = state["momentum_buffer"] = group["momentum"] * state["momentum_buffer"] + g / avg
            return p - like(group["lr"], p) * buf
        return p - like(group["lr"], p) * (g / avg)


class Adagrad(Optimizer):
    """torch.optim.Adagrad's signature; `foreach` and `fused` are accepted and change nothing,
    `differentiable=True` is refused (see `agnostic.optim.optimizer`)."""

    complex_as_real = True

    counts_steps = True

    def __init__(
        self, params: Params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach: bool | None = None, *,
        maximize: bool = False, differentiable: bool = False, fused: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            params,
            dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                 initial_accumulator_value=initial_accumulator_value, eps=eps, foreach=foreach,
                 maximize=maximize, differentiable=differentiable, fused=fused),
        )  # fmt: skip

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        _nonnegative("Adagrad", group, "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def _initial_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        value = group["initial_accumulator_value"]  # for each part of a complex one, as torch
        return {"step": 0, "sum": ops.full_like(p, complex(value, value) if p.dtype.is_complex else value)}

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        clr = like(group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"]), p)
        total = state["sum"] = state["sum"] + g * g
        return p - clr * (g / (ops.sqrt(total) + group["eps"]))


class Lion(Optimizer):
    """p <- p * (1 - lr * wd) - lr * sign(b1 * m + (1 - b1) * g);  m <- b2 * m + (1 - b2) * g."""

    complex_as_real = True

    def __init__(
        self, params: Params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0, maximize: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize)
        )

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        b1, b2 = group["betas"]
        if not (0.0 <= b1 <= 1.0 and 0.0 <= b2 <= 1.0):
            raise ValueError(f"Lion: betas must be in [0, 1], got {group['betas']}")
        _nonnegative("Lion", group, "weight_decay")

    def _initial_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        return {"exp_avg": ops.zeros_like(p)}

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        g = -grad if group["maximize"] else grad
        lr, (b1, b2) = like(group["lr"], p), group["betas"]
        m = state["exp_avg"]
        if group["weight_decay"]:
            p = p * (1 - lr * group["weight_decay"])
        p = p - lr * ops.sign(b1 * m + (1 - b1) * g)
        state["exp_avg"] = b2 * m + (1 - b2) * g
        return p
