"""Normalization layers with torch.nn's parameters, buffers (names, dtypes) and repr, so a torch
state_dict loads unchanged, including BatchNorm's running statistics."""

from __future__ import annotations

from typing import Any

import agnostic.functional as F
from agnostic import dtypes, tracing
from agnostic.device import get_default_backend
from agnostic.tensor import Tensor

from .module import Module
from .parameter import Parameter

__all__ = ["LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d"]


def _shape(normalized_shape: Any, layer: str) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"{layer}: normalized_shape must be positive ints, got {normalized_shape!r}")
    return shape


def _filled(shape: tuple[int, ...], value: float, dtype: Any) -> Parameter:
    """A constant parameter on the default backend (the one `Module(..., backend=B)` set)."""
    return Parameter(
        get_default_backend().full(shape, value, dtype=dtypes.default_float if dtype is None else dtype)
    )


class LayerNorm(Module):
    """torch.nn.LayerNorm: normalize over the trailing normalized_shape axes; weight ones, bias zeros."""

    def __init__(
        self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
        dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.normalized_shape = _shape(normalized_shape, "LayerNorm")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = _filled(self.normalized_shape, 1.0, dtype) if elementwise_affine else None
        self.bias = _filled(self.normalized_shape, 0.0, dtype) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.normalized_shape)
        if x.ndim < n or x.shape[x.ndim - n :] != self.normalized_shape:
            raise ValueError(f"LayerNorm: input shape {x.shape} does not end in {self.normalized_shape}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class GroupNorm(Module):
    """torch.nn.GroupNorm: statistics per sample over each group of channels; affine per channel."""

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, dtype: Any = None,
        *, bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        for name, v in (("num_groups", num_groups), ("num_channels", num_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"GroupNorm: {name} must be a positive int, got {v!r}")
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = _filled((num_channels,), 1.0, dtype) if affine else None
        self.bias = _filled((num_channels,), 0.0, dtype) if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected input (N, {self.num_channels}, *), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(Module):
    """torch.nn.RMSNorm: x / rms(x) * weight over the trailing axes; eps=None is the dtype's epsilon."""

    def __init__(
        self, normalized_shape: Any, eps: float | None = None, elementwise_affine: bool = True,
        dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.normalized_shape = _shape(normalized_shape, "RMSNorm")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = _filled(self.normalized_shape, 1.0, dtype) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.normalized_shape)
        if x.ndim < n or x.shape[x.ndim - n :] != self.normalized_shape:
            raise ValueError(f"RMSNorm: input shape {x.shape} does not end in {self.normalized_shape}")
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class _BatchNorm(Module):
    _ranks: tuple[int, ...] = ()

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, dtype: Any = None, *, bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        layer = type(self).__name__
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"{layer}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = _filled((num_features,), 1.0, dtype) if affine else None
        self.bias = _filled((num_features,), 0.0, dtype) if affine and bias else None
        if track_running_stats:
            dev, fdt = get_default_backend(), dtypes.default_float if dtype is None else dtype
            self.register_buffer("running_mean", dev.zeros(num_features, dtype=fdt))
            self.register_buffer("running_var", dev.ones(num_features, dtype=fdt))
            self.register_buffer("num_batches_tracked", dev.full((), 0, dtype=dtypes.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Tensor) -> Tensor:
        layer = type(self).__name__
        if x.ndim not in self._ranks:
            ranks = " or ".join(f"{r}D" for r in self._ranks)
            raise ValueError(f"{layer}: expected {ranks} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{layer}: expected {self.num_features} channels at axis 1, got shape {x.shape}")
        if self.training and self.track_running_stats:
            mean, var = self._update_running_stats(x)
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, self.eps)
        if self.training or self.running_mean is None:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, self.eps)

    def _update_running_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """torch's update with this batch's mean and unbiased variance (see `_blend_running_stats`).
        Returns the mean and the biased variance, differentiable: the batch statistics the output
        is normalized with, computed once (they are the costly part of a training BatchNorm)."""
        axes = tuple(i for i in range(x.ndim) if i != 1)
        n = x.size // x.shape[1]
        if n <= 1:
            raise ValueError(
                f"{type(self).__name__}: need more than 1 value per channel when training, got input {x.shape}"
            )
        mean, var = x.mean(axis=axes), x.var(axis=axes, correction=0.0)
        self._blend_running_stats(mean, var.detach() * (n / (n - 1)))
        return mean, var

    def _blend_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        """torch's update: a momentum-weighted (or, for momentum=None, cumulative) average of the batch
        mean and the unbiased batch variance; values are detached, buffers are reassigned."""
        count = self.num_batches_tracked + 1
        self.num_batches_tracked = count.detach()
        if self.momentum is not None:
            factor: float | Tensor = float(self.momentum)
        else:  # the cumulative average; in a compile trace the count is symbolic
            factor = 1.0 / count if tracing.tracing() else 1.0 / int(count.item())
        rm, rv = self.running_mean, self.running_var
        self.running_mean = (rm * (1.0 - factor) + mean.detach().astype(rm.dtype) * factor).detach()
        self.running_var = (rv * (1.0 - factor) + unbiased_var.detach().astype(rv.dtype) * factor).detach()

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d over (N, C) or (N, C, L)."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d over (N, C, H, W)."""

    _ranks = (4,)
