"""Pooling layers with torch.nn's arguments and repr (they hold no state)."""

from __future__ import annotations

from typing import Any

import agnostic.functional as F
from agnostic.tensor import Tensor

from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d"]


def _check_input(layer: Module, x: Tensor, d: int) -> None:
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(
            f"{type(layer).__name__}: expected a {d + 1}-d or {d + 2}-d input, got shape {x.shape}"
        )


def _check_ints(layer: str, **values: Any) -> None:
    """Reject bad sizes when the layer is built, not at its first call."""
    for name, v in values.items():
        items = v if isinstance(v, tuple | list) else (v,)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise TypeError(f"{layer}: {name} must be an int or a tuple of ints, got {v!r}")
        if name != "padding" and any(i <= 0 for i in items):
            raise ValueError(f"{layer}: {name} must be positive, got {v!r}")
        if name == "padding" and any(i < 0 for i in items):
            raise ValueError(f"{layer}: padding must be non-negative, got {v!r}")


class _MaxPoolNd(Module):
    _dims = 0

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
        return_indices: bool = False, ceil_mode: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        stride = stride if stride is not None else kernel_size
        _check_ints(type(self).__name__, kernel_size=kernel_size, stride=stride, padding=padding,
                    dilation=dilation)  # fmt: skip
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        _check_input(self, x, self._dims)
        return F.max_pool(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices, dims=self._dims,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """torch.nn.MaxPool1d over (N, C, L) or (C, L); stride defaults to kernel_size."""

    _dims = 1


class MaxPool2d(_MaxPoolNd):
    """torch.nn.MaxPool2d over (N, C, H, W) or (C, H, W); stride defaults to kernel_size."""

    _dims = 2


class _AvgPoolNd(Module):
    _dims = 0

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        stride = stride if stride is not None else kernel_size
        _check_ints(type(self).__name__, kernel_size=kernel_size, stride=stride, padding=padding)
        if self._dims == 1:  # torch's AvgPool1d stores (and prints) 1-tuples; AvgPool2d keeps ints
            kernel_size, stride, padding = (
                (v,) if isinstance(v, int) else tuple(v) for v in (kernel_size, stride, padding)
            )
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        _check_input(self, x, self._dims)
        return F.avg_pool(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
            dims=self._dims,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """torch.nn.AvgPool1d over (N, C, L) or (C, L)."""

    _dims = 1


class AvgPool2d(_AvgPoolNd):
    """torch.nn.AvgPool2d over (N, C, H, W) or (C, H, W) (divisor_override is not supported)."""

    _dims = 2


class _AdaptiveAvgPoolNd(Module):
    _dims = 0

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        items = output_size if isinstance(output_size, tuple | list) else (output_size,)
        if not all(
            i is None or (isinstance(i, int) and not isinstance(i, bool) and i > 0) for i in items
        ) or (isinstance(output_size, tuple | list) and len(items) != self._dims):
            raise ValueError(
                f"{type(self).__name__}: output_size must be a positive int (or None) or a tuple of "
                f"{self._dims}, got {output_size!r}"
            )
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        _check_input(self, x, self._dims)
        return F.adaptive_avg_pool(x, self.output_size, dims=self._dims)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool1d: torch's bins [floor(i*L/out), ceil((i+1)*L/out))."""

    _dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool2d: torch's bins per axis; None keeps that axis's size."""

    _dims = 2
