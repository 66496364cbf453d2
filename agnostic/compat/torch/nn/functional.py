"""`torch.nn.functional`: torch's signatures (`dim=`, `inplace=`, legacy `size_average`/`reduce`)
over `agnostic.functional`, with torch's `pad` and int64 `one_hot`; the functions whose agnostic
signature is torch's already (linear, conv*, pooling, layer_norm, scaled_dot_product_attention...)
are agnostic's own."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from agnostic import dtypes, ops
from agnostic import functional as AF
from agnostic.functional import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    gelu,
    group_norm,
    layer_norm,
    linear,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    scaled_dot_product_attention,
    sigmoid,
    softplus,
    tanh,
)  # fmt: skip
from agnostic.tensor import Tensor

from .._ops import log_softmax, softmax

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cross_entropy", "dropout", "elu",
    "embedding", "gelu", "group_norm", "huber_loss", "interpolate", "kl_div", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool1d", "max_pool2d", "max_pool3d", "mse_loss",
    "nll_loss", "normalize", "one_hot", "pad", "relu", "relu6", "scaled_dot_product_attention",
    "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
]  # fmt: skip


# ---------------------------------------------------------------------- activations
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return AF.relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return ops.clip(input, 0, 6)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return AF.silu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return AF.leaky_relu(input, negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return AF.elu(input, alpha)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Note torch's default `training=True`: the functional form drops also in eval mode unless the
    caller passes `training=self.training`."""
    return AF.dropout(input, p, training)


# ---------------------------------------------------------------------- embedding and norms
def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` at the integer `input`; rows at `padding_idx` get no gradient, as torch."""
    idx = input if isinstance(input, Tensor) else ops.asarray(input, device=weight.device)
    rows = ops.take(weight, idx, axis=0)
    if padding_idx is None:
        return rows
    pad_row = ops.expand_dims(idx == padding_idx % weight.shape[0], axis=-1)
    return ops.where(pad_row, rows.detach(), rows)


def batch_norm(
    input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
    bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:  # fmt: skip
    """Normalize with the running statistics (eval) or the batch's (training). torch would also update
    the running statistics in place while training; tensors are values, so that case raises: use
    nn.BatchNorm*d, which keeps them as buffers."""
    if training and (running_mean is not None or running_var is not None):
        raise ValueError(
            "batch_norm: training=True with running statistics would update them in place, which "
            "agnostic's tensors (values) cannot do; use nn.BatchNorm1d/2d, or pass running_mean=None "
            "and running_var=None to normalize with the batch statistics alone"
        )
    return AF.batch_norm(input, running_mean, running_var, weight, bias, training, eps)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p along dim, eps)."""
    norm = ops.sum(ops.abs(input) ** p, axis=dim, keepdims=True) ** (1.0 / p)
    return input / ops.clip(norm, eps, None)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows, as torch (`ag.one_hot` defaults to float32); num_classes=-1 takes
    max + 1."""
    if num_classes == -1:
        num_classes = int(ops.max(tensor)) + 1 if tensor.size else 0
    return ops.one_hot(tensor, num_classes, dtype=dtypes.int64)


# ---------------------------------------------------------------------- losses
def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's legacy `size_average` / `reduce` flags, mapped to `reduction` as torch maps them."""
    if size_average is None and reduce is None:
        return reduction
    mapped = "none" if reduce is False else "sum" if size_average is False else "mean"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{mapped}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return mapped


def cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:  # fmt: skip
    return AF.cross_entropy(
        input, target, weight, ignore_index, _reduction(size_average, reduce, reduction), label_smoothing
    )


def nll_loss(
    input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
) -> Tensor:  # fmt: skip
    return AF.nll_loss(input, target, weight, ignore_index, _reduction(size_average, reduce, reduction))


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean") -> Tensor:  # fmt: skip
    return AF.mse_loss(input, target, _reduction(size_average, reduce, reduction))


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean") -> Tensor:  # fmt: skip
    return AF.l1_loss(input, target, _reduction(size_average, reduce, reduction))


def smooth_l1_loss(
    input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", beta: float = 1.0,
) -> Tensor:  # fmt: skip
    return AF.smooth_l1_loss(input, target, _reduction(size_average, reduce, reduction), beta)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    return AF.huber_loss(input, target, reduction, delta)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
    reduce: bool | None = None, reduction: str = "mean",
) -> Tensor:  # fmt: skip
    return AF.binary_cross_entropy(input, target, weight, _reduction(size_average, reduce, reduction))


def binary_cross_entropy_with_logits(
    input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
    reduce: bool | None = None, reduction: str = "mean", pos_weight: Tensor | None = None,
) -> Tensor:  # fmt: skip
    return AF.binary_cross_entropy_with_logits(
        input, target, weight, _reduction(size_average, reduce, reduction), pos_weight
    )


def kl_div(
    input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", log_target: bool = False,
) -> Tensor:  # fmt: skip
    return AF.kl_div(input, target, _reduction(size_average, reduce, reduction), log_target)


# ---------------------------------------------------------------------- pooling, resizing, padding
def avg_pool2d(
    input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True, divisor_override: int | None = None,
) -> Tensor:  # fmt: skip
    if divisor_override is not None:
        raise ValueError("avg_pool2d: divisor_override is not supported; scale the result instead")
    return AF.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def interpolate(
    input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
    align_corners: bool | None = None, recompute_scale_factor: bool | None = None, antialias: bool = False,
) -> Tensor:  # fmt: skip
    if recompute_scale_factor or antialias:
        raise ValueError("interpolate: recompute_scale_factor=True and antialias=True are not supported")
    return AF.interpolate(input, size, scale_factor, mode, align_corners)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "circular"}


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """torch's pad: `pad` holds (before, after) pairs from the LAST dimension backwards
    (`(1, 1)` pads the last dim only; `(1, 1, 2, 2)` the last by 1 and the one before by 2);
    negative widths crop. Modes 'constant', 'reflect', 'replicate', 'circular'. (agnostic's
    `ag.pad` is NumPy's: one pair per dimension from the first, and a single pair pads them all.)"""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    widths = [int(w) for w in pad]
    if len(widths) % 2 or len(widths) // 2 > input.ndim:
        raise ValueError(
            f"pad: needs (before, after) pairs for at most {input.ndim} dims of shape {input.shape}, got {tuple(pad)}"
        )
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value is only used with mode='constant', got mode={mode!r}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(widths) // 2):
        pairs[input.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    x = input
    crop = tuple(slice(-lo if lo < 0 else None, hi if hi < 0 else None) for lo, hi in pairs)
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        if mode != "constant":
            raise ValueError(f"pad: negative widths crop only in mode 'constant', got {tuple(pad)}")
        x = x[crop]
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if mode == "circular":
        return _circular(x, grow)
    return ops.pad(x, grow, mode=_PAD_MODES[mode], value=0.0 if value is None else value)


def _circular(x: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    for ax, (lo, hi) in enumerate(pairs):
        n = x.shape[ax]
        if lo > n or hi > n:
            raise ValueError(f"pad: circular padding {(lo, hi)} is larger than dim {ax}'s size {n}")
        if lo or hi:
            head = (slice(None),) * ax
            x = ops.concat([x[head + (slice(n - lo, n),)], x, x[head + (slice(0, hi),)]], axis=ax)
    return x
