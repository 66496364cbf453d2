"""ONNX converters: the optimizer ops of the ai.onnx.preview.training domain.

Momentum, Adagrad and Adam each update any number of tensors in one node: the inputs are the
learning rate R, the step count T, then every tensor's X, its gradient G and its optimizer state,
grouped by kind (X1..Xn, G1..Gn, V1..Vn, ...); the outputs are the new X's, then the new states,
grouped the same way. Each update is the formula of ONNX's reference, in the tensor's own dtype,
with the step-count branches (T > 0) as `where`, so a graph with a symbolic T still compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import agnostic as ag
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter
from agnostic.tensor import Tensor

_DOMAIN = "ai.onnx.preview.training"

Update = Callable[[Tensor, Tensor, list[Tensor]], list[Tensor]]
"""(r, t, [x, g, *states]) -> [x_new, *states_new], r and t already in x's dtype."""


def _grouped(node: Node, states: int, update: Update) -> Run:
    """A run function applying `update` to every (X, G, states...) group of the node's inputs."""
    per = 2 + states
    if (len(node.inputs) - 2) % per or len(node.inputs) < 2 + per:
        raise Unsupported(
            f"{len(node.inputs)} inputs: expected R, T and then {per} groups of n tensors "
            f"(X, G and {states} state{'s' * (states > 1)} each)"
        )
    n = (len(node.inputs) - 2) // per

    def run(ctx: Context, r: Any, t: Any, *tensors: Any) -> tuple[Tensor, ...]:
        r, t = ctx.tensor(r), ctx.tensor(t)
        if r.ndim or t.ndim:
            raise ValueError(f"{node.describe()}: R {r.shape} and T {t.shape} must be scalars")
        outs: list[list[Tensor]] = [[] for _ in range(1 + states)]
        for i in range(n):
            group = [ctx.tensor(tensors[k * n + i]) for k in range(per)]
            x = group[0]
            if not x.dtype.is_floating:
                raise TypeError(f"{node.describe()}: X{i + 1} has dtype {x.dtype}; it must be floating")
            new = update(r.astype(x.dtype), t, group)
            for slot, value in zip(outs, new):
                slot.append(value.astype(x.dtype))
        return tuple(v for slot in outs for v in slot)

    return run


@converter("Momentum", since=1, domain=_DOMAIN)
def _momentum(node: Node) -> Run:
    """v = alpha * v + beta' * (g + norm * x) (beta' = 1 on the first step, T = 0); standard:
    x -= r * v; nesterov: x -= r * (g_reg + alpha * v)."""
    alpha, beta = float(node.attr("alpha")), float(node.attr("beta"))
    norm, mode = float(node.attr("norm_coefficient")), node.attr("mode")
    if mode not in ("standard", "nesterov"):
        raise Unsupported(f"mode={mode!r}: ONNX defines 'standard' and 'nesterov'")

    def update(r: Tensor, t: Tensor, group: list[Tensor]) -> list[Tensor]:
        x, g, v = group
        g = g + x * norm
        v_new = v * alpha + ag.where(t > 0, beta, 1.0).astype(x.dtype) * g
        step = v_new if mode == "standard" else g + v_new * alpha
        return [x - r * step, v_new]

    return _grouped(node, 1, update)


@converter("Adagrad", since=1, domain=_DOMAIN)
def _adagrad(node: Node) -> Run:
    """h += g_reg^2; x -= r / (1 + t * decay) * g_reg / (sqrt(h) + epsilon), g_reg = g + norm * x."""
    decay, epsilon = float(node.attr("decay_factor", 0.0)), float(node.attr("epsilon", 0.0))
    norm = float(node.attr("norm_coefficient", 0.0))

    def update(r: Tensor, t: Tensor, group: list[Tensor]) -> list[Tensor]:
        x, g, h = group
        g = g + x * norm
        h_new = h + g * g
        rate = r / (t.astype(x.dtype) * decay + 1.0)
        return [x - rate * g / (ag.sqrt(h_new) + epsilon), h_new]

    return _grouped(node, 1, update)


@converter("Adam", since=1, domain=_DOMAIN)
def _adam(node: Node) -> Run:
    """Adam with bias correction from the second step on (T > 0), L2 regularization before it
    (norm_coefficient) and weight decay after it (norm_coefficient_post)."""
    alpha, beta = float(node.attr("alpha", 0.9)), float(node.attr("beta", 0.999))
    epsilon, norm = float(node.attr("epsilon", 0.0)), float(node.attr("norm_coefficient", 0.0))
    post = float(node.attr("norm_coefficient_post", 0.0))

    def update(r: Tensor, t: Tensor, group: list[Tensor]) -> list[Tensor]:
        x, g, v, h = group
        g = g + x * norm
        v_new = v * alpha + g * (1.0 - alpha)
        h_new = h * beta + (g * g) * (1.0 - beta)
        steps = ag.maximum(t, 1).astype(x.dtype)  # the corrected rate is only read where T > 0
        corrected = r * ag.sqrt(1.0 - beta**steps) / (1.0 - alpha**steps)
        rate = ag.where(t > 0, corrected, r)
        x_new = x - rate * (v_new / (ag.sqrt(h_new) + epsilon))
        return [x_new * (1.0 - post), v_new, h_new]

    return _grouped(node, 2, update)
