"""SGD with momentum, dampening, Nesterov and weight decay, as torch.optim.SGD computes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agnostic.tensor import Tensor

from .optimizer import Optimizer, Params, like

__all__ = ["SGD"]


class SGD(Optimizer):
    """torch.optim.SGD's signature; `foreach`, `fused` are accepted and change nothing, and
    `differentiable=True` is refused (see `agnostic.optim.optimizer`)."""

    def __init__(
        self, params: Params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
        foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            params,
            dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                 fused=fused),
        )  # fmt: skip

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        for key in ("momentum", "weight_decay"):
            if group[key] < 0:
                raise ValueError(f"SGD: {key} must be >= 0, got {group[key]}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            buf = g if buf is None else momentum * buf + (1 - group["dampening"]) * g
            state["momentum_buffer"] = buf
            g = g + momentum * buf if group["nesterov"] else buf
        return p - like(group["lr"], p) * g
