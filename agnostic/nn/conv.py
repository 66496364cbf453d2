"""Convolution layers with torch.nn's weight layouts, default initialization and repr, so torch
weights load unchanged and one seed builds the same layer on every backend."""

from __future__ import annotations

import math
from typing import Any

import agnostic.functional as F
from agnostic.tensor import Tensor

from .module import Module
from .parameter import fan_in_uniform

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"]


def _ntuple(value: Any, n: int, name: str, layer: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) != n:
        raise ValueError(f"{layer}: {name} needs {n} values, got {value!r}")
    return out


class _ConvNd(Module):
    """Shared by Conv{N}d and ConvTranspose{N}d: argument checks, parameters, init and repr."""

    _dims: int = 0
    _transposed: bool = False

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
        output_padding: Any = 0, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        layer, n = type(self).__name__, self._dims
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"{layer}: in_channels={in_channels} must be divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{layer}: out_channels={out_channels} must be divisible by groups={groups}")
        if padding_mode != "zeros":
            raise ValueError(
                f"{layer}: padding_mode={padding_mode!r} is not supported; only 'zeros' is implemented"
            )
        kernel_ = _ntuple(kernel_size, n, "kernel_size", layer)
        stride_ = _ntuple(stride, n, "stride", layer)
        dilation_ = _ntuple(dilation, n, "dilation", layer)
        if any(v <= 0 for v in kernel_ + stride_ + dilation_):
            raise ValueError(
                f"{layer}: kernel_size, stride and dilation must be positive, got {kernel_}, {stride_}, "
                f"{dilation_}"
            )
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(f"{layer}: padding must be an int or a tuple, got {padding!r}")
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"{layer}: padding must be 'same', 'valid', an int or a tuple, got {padding!r}"
                )
            if padding == "same" and any(s != 1 for s in stride_):
                raise ValueError(f"{layer}: padding='same' is not supported for strided convolutions")
            padding_: Any = padding
        else:
            padding_ = _ntuple(padding, n, "padding", layer)
            if any(p < 0 for p in padding_):
                raise ValueError(f"{layer}: padding must be non-negative, got {padding!r}")
        out_pad = _ntuple(output_padding, n, "output_padding", layer)
        if self._transposed:
            for op, s, dl in zip(out_pad, stride_, dilation_):
                if not 0 <= op < max(s, dl):
                    raise ValueError(
                        f"{layer}: output_padding {out_pad} must be smaller than stride {stride_} or "
                        f"dilation {dilation_}"
                    )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = kernel_, stride_, dilation_
        self.padding, self.output_padding, self.padding_mode = padding_, out_pad, padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + kernel_
        else:
            shape = (out_channels, in_channels // groups) + kernel_
        # torch: kaiming_uniform_(a=sqrt(5)) gives U(+-1/sqrt(fan_in)), fan_in = weight.shape[1] * prod(k)
        fan_in = shape[1] * math.prod(kernel_)
        self.weight = fan_in_uniform(shape, fan_in, dtype)
        self.bias = fan_in_uniform((out_channels,), fan_in, dtype) if bias else None

    def _check_input(self, x: Tensor) -> None:
        n = self._dims
        if x.ndim not in (n + 1, n + 2) or x.shape[-n - 1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected input (N, {self.in_channels}, *{n} spatial) or "
                f"({self.in_channels}, *{n} spatial), got shape {x.shape}"
            )

    def extra_repr(self) -> str:
        n = self._dims
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Conv(_ConvNd):
    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            0, dtype,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
        padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            output_padding, dtype,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv_transpose(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation,
        )  # fmt: skip


class Conv1d(_Conv):
    """torch.nn.Conv1d: weight (out, in/groups, k), input (N, C, L) or (C, L)."""

    _dims = 1


class Conv2d(_Conv):
    """torch.nn.Conv2d: weight (out, in/groups, kh, kw), input (N, C, H, W) or (C, H, W)."""

    _dims = 2


class Conv3d(_Conv):
    """torch.nn.Conv3d: weight (out, in/groups, kd, kh, kw), input (N, C, D, H, W) or (C, D, H, W)."""

    _dims = 3


class ConvTranspose1d(_ConvTranspose):
    """torch.nn.ConvTranspose1d: weight (in, out/groups, k) (the gradient of Conv1d w.r.t. its input)."""

    _dims = 1


class ConvTranspose2d(_ConvTranspose):
    """torch.nn.ConvTranspose2d: weight (in, out/groups, kh, kw)."""

    _dims = 2
