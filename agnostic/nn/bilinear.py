"""Bilinear: y = x1^T A x2 + b with torch.nn.Bilinear's layout, default initialization and repr."""

from __future__ import annotations

from typing import Any

import agnostic.ops as ops
from agnostic.tensor import Tensor

from .module import Module
from .parameter import fan_in_uniform

__all__ = ["Bilinear"]


class Bilinear(Module):
    """y[..., o] = sum_ij x1[..., i] weight[o, i, j] x2[..., j] + bias[o], weight of shape
    (out_features, in1_features, in2_features) as in torch.nn.Bilinear; weight and bias initialized
    U(-1/sqrt(in1_features), 1/sqrt(in1_features)) (PyTorch's default)."""

    def __init__(
        self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, dtype: Any = None
    ) -> None:
        super().__init__()
        for name, v in (("in1_features", in1_features), ("in2_features", in2_features),
                        ("out_features", out_features)):  # fmt: skip
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Bilinear: {name} must be a non-negative int, got {v!r}")
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = fan_in_uniform((out_features, in1_features, in2_features), in1_features, dtype)
        self.bias = fan_in_uniform((out_features,), in1_features, dtype) if bias else None

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        if x1.ndim == 0 or x1.shape[-1] != self.in1_features:
            raise ValueError(
                f"Bilinear: input1 of shape {x1.shape} does not end in in1_features={self.in1_features}"
            )
        if x2.ndim == 0 or x2.shape[-1] != self.in2_features:
            raise ValueError(
                f"Bilinear: input2 of shape {x2.shape} does not end in in2_features={self.in2_features}"
            )
        if x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(
                f"Bilinear: input1 {x1.shape} and input2 {x2.shape} must have the same leading dimensions"
            )
        o, i, j = self.out_features, self.in1_features, self.in2_features
        # (..., i) @ (i, o*j) -> (..., o, j), then contract j with x2
        w = ops.reshape(ops.permute_dims(self.weight, (1, 0, 2)), (i, o * j))
        t = ops.reshape(ops.matmul(x1, w), x1.shape[:-1] + (o, j))
        y = ops.sum(t * ops.expand_dims(x2, axis=-2), axis=-1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )
