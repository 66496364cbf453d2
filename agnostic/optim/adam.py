"""Adam and AdamW (with AMSGrad), as torch.optim computes them; the update is the backend composite
`adam_step`, which a backend may fuse (torch's fused kernel, one jitted XLA call)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import agnostic.ops as ops
from agnostic.nn.parameter import Parameter
from agnostic.tensor import Tensor

from .optimizer import Optimizer, Params, from_real_pairs, native, real_pairs

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam; `weight_decay` adds decay * p to the gradient (L2), as torch.optim.Adam, or decays the
    parameter directly with `decoupled_weight_decay=True` (AdamW). torch's `foreach`, `fused` and
    `capturable` are accepted and change nothing; `differentiable=True` is refused."""

    decoupled = False
    counts_steps = True

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: bool | None = None,
        maximize: bool = False, capturable: bool = False, differentiable: bool = False,
        fused: bool | None = None, decoupled_weight_decay: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(
            params,
            dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                 fused=fused, decoupled_weight_decay=decoupled_weight_decay or self.decoupled),
        )  # fmt: skip

    def _check(self, group: Mapping[str, Any]) -> None:
        super()._check(group)
        name = type(self).__name__
        b1, b2 = group["betas"]
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{name}: betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0 or group["weight_decay"] < 0:
            raise ValueError(f"{name}: eps and weight_decay must be >= 0")

    def _initial_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "exp_avg": ops.zeros_like(p), "exp_avg_sq": ops.zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = ops.zeros_like(p)
        return state

    def _update_many(
        self,
        params: list[Parameter],
        grads: list[Tensor],
        group: Mapping[str, Any],
        states: list[dict[str, Any]],
    ) -> list[Tensor]:
        """One fused `adam_step` over the device's parameters (a backend may override it with a
        native multi-tensor kernel); complex parameters and their moments go through it as real pairs."""
        amsgrad = group["amsgrad"]
        dev = params[0].device
        b1, b2 = group["betas"]
        kinds = [p.dtype if p.dtype.is_complex else None for p in params]  # complex: real pairs, as torch

        def arrays(ts: list[Tensor]) -> list[Any]:
            return [real_pairs(dev.ops, t.data) if k else t.data for t, k in zip(ts, kinds)]

        def tensors(arrs: list[Any]) -> list[Tensor]:
            return [
                Tensor._make(from_real_pairs(dev.ops, a, k) if k else a, dev) for a, k in zip(arrs, kinds)
            ]

        new_p, m, v, vmax = dev.ops.adam_step(
            arrays(params), arrays(grads),
            arrays([s["exp_avg"] for s in states]), arrays([s["exp_avg_sq"] for s in states]),
            arrays([s["max_exp_avg_sq"] for s in states]) if amsgrad else None,
            [native(s["step"]) for s in states], lr=native(group["lr"]), beta1=b1, beta2=b2,
            eps=group["eps"], weight_decay=group["weight_decay"],
            decoupled=bool(group["decoupled_weight_decay"]),
            maximize=group["maximize"],
        )  # fmt: skip
        for state, m_i, v_i in zip(states, tensors(m), tensors(v)):
            state["exp_avg"], state["exp_avg_sq"] = m_i, v_i
        if amsgrad:
            for state, vmax_i in zip(states, tensors(vmax)):
                state["max_exp_avg_sq"] = vmax_i
        return tensors(new_p)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * decay before the step), default 0.01."""

    decoupled = True

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
        foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused,
        )  # fmt: skip
