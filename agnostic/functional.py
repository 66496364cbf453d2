"""Composite ops with PyTorch's functional names: activations, softmax, norms, losses, attention,
convolution and pooling.

Composites run through the backend (a fused native call where the backend overrides one, the
base-class default otherwise); their gradients come from hand-written rules or from differentiating
the default body on Tensors, so every backend gives the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agnostic import dtypes, tracing
from agnostic import ops as O
from agnostic import primitives as P
from agnostic.autocast import _state as _autocast_on
from agnostic.autocast import cast_inputs as _autocast
from agnostic.random import Generator
from agnostic.tensor import Tensor

__all__ = [
    "group_norm", "rms_norm", "adaptive_avg_pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "linear", "relu", "gelu", "silu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "softmax",
    "log_softmax", "dropout", "layer_norm", "batch_norm", "cross_entropy", "mse_loss",
    "nll_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div",
    "scaled_dot_product_attention", "one_hot", "conv", "conv1d", "conv2d", "conv3d",
    "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "max_pool",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "interpolate",
]  # fmt: skip

sigmoid = O.sigmoid
tanh = O.tanh
one_hot = O.one_hot


def _float(x: Any, op: str, complex_ok: bool = False) -> Tensor:
    """`x` as a float tensor (integers and bools in the default float); complex refused unless the
    op is defined for it (linear), as a cast would drop the imaginary parts."""
    x = O._tensor(x, op)
    if x.dtype.is_floating or (complex_ok and x.dtype.is_complex):
        return x
    if x.dtype.is_complex:
        raise O._no_complex(op, x.dtype)
    return P.cast(x, dtypes.default_float)


# ====================================================================== linear
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias over the last axis of x (torch's linear): weight (out, in), bias (out,)."""
    x = _float(x, "linear", complex_ok=True)
    weight = O._tensor(weight, "linear")
    if _autocast_on.get() is not None:
        x, weight, bias = _autocast("linear", x, weight, bias)
    if weight.dtype.is_complex and not x.dtype.is_complex:
        x = P.cast(x, weight.dtype)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} and weight of shape {weight.shape}: the weight must be "
            "(out_features, in_features) and the input end in in_features"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    return P.linear(x, _same_dtype(x, weight, "linear"), _same_dtype(x, bias, "linear"))


# ====================================================================== activations
def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0). `inplace` is torch's keyword, accepted for ported code: tensors are values, so the
    result is always a new tensor and `x` is unchanged (write `x = F.relu(x, inplace=True)`)."""
    return P.relu(_float(x, "relu"))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x): exact ('none', erf) or the tanh approximation ('tanh'), as torch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return P.composite("gelu", (_float(x, "gelu"),), {"approximate": approximate})


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish). `inplace`: accepted, a new tensor is returned (see `relu`)."""
    x = _float(x, "silu")

    def rule(g: Tensor, y: Tensor) -> tuple[Tensor]:
        s = P.sigmoid(x)
        return (P.mul(g, P.mul(s, P.add(P.mul(x, P.sub(1.0, s)), 1.0))),)

    return P.composite("silu", (x,), {}, rule)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x. `inplace`: accepted, a new tensor is returned (see `relu`)."""
    x = _float(x, "leaky_relu")
    return P.where(P.gt(x, 0.0), x, P.mul(x, negative_slope))


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1). `inplace`: accepted, a new tensor is returned (see `relu`)."""
    x = _float(x, "elu")
    return P.where(P.gt(x, 0.0), x, P.mul(P.expm1(P.minimum(x, 0.0)), alpha))


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear above `threshold` (as torch)."""
    x = _float(x, "softplus")
    bx = P.mul(x, beta)
    # max(bx, 0) + log1p(exp(-|bx|)): exp never overflows (float16 overflowed for 11 < bx <= 20)
    soft = P.div(P.add(P.maximum(bx, 0.0), P.log1p(P.exp(P.neg(P.abs(bx))))), beta)
    return P.where(P.gt(bx, threshold), x, soft)


@O._accepts_dim()
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`."""
    x = _float(x, "softmax")
    if _autocast_on.get() is not None:
        (x,) = _autocast("softmax", x)
    return P.softmax(x, O._axis(axis, x.ndim, "softmax", x.shape))


@O._accepts_dim()
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`."""
    x = _float(x, "log_softmax")
    if _autocast_on.get() is not None:
        (x,) = _autocast("log_softmax", x)
    return P.log_softmax(x, O._axis(axis, x.ndim, "log_softmax", x.shape))


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, seed: int | None = None,
    generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training).
    `inplace`: accepted, a new tensor is returned (see `relu`)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    x = O._tensor(x, "dropout")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return P.mul(x, 0.0)
    keep = x.device.bernoulli(x.shape, 1.0 - p, seed=seed, generator=generator)
    return P.where(keep, P.mul(x, 1.0 / (1.0 - p)), 0.0)


# ====================================================================== normalization
def layer_norm(
    x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
    bias: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:  # fmt: skip
    """Normalize over the trailing `normalized_shape` axes, then scale and shift (torch's layer_norm)."""
    x = _float(x, "layer_norm")
    if _autocast_on.get() is not None:
        (x,) = _autocast("layer_norm", x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} does not match the end of input shape {x.shape}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {t.shape}, expected {shape}")
    weight, bias = _same_dtype(x, weight, "layer_norm"), _same_dtype(x, bias, "layer_norm")
    return P.layer_norm(x, len(shape), weight, bias, float(eps))


def _same_dtype(x: Tensor, t: Tensor | None, op: str) -> Tensor | None:
    """`t` (an optional weight, bias or statistic) cast to `x`'s dtype, on `x`'s device."""
    if t is None:
        return None
    O._same_device(op, (x, O._tensor(t, op)))
    if t.dtype.is_complex and not x.dtype.is_complex:
        raise TypeError(
            f"{op}: a {t.dtype.name} weight or bias with a {x.dtype.name} input would lose its imaginary "
            "parts; make the input complex (x.astype(ag.complex64))"
        )
    return P.cast(t, x.dtype)


def batch_norm(
    x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
    bias: Tensor | None = None, training: bool = False, eps: float = 1e-5,
) -> Tensor:  # fmt: skip
    """Normalize (N, C, *) per channel with the batch statistics (training, or no running stats)
    or the running ones, then scale and shift. Updating running statistics is the module's job."""
    x = _float(x, "batch_norm")
    if _autocast_on.get() is not None:
        (x,) = _autocast("batch_norm", x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, *), got shape {x.shape}")
    c = x.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, expected ({c},) for input {x.shape}")
    if training or running_mean is None or running_var is None:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        if math.prod(x.shape[i] for i in axes) <= 1 and training:
            raise ValueError(
                f"batch_norm: need more than 1 value per channel when training, got input {x.shape}"
            )
        mean, var = P.mean(x, axes, False), P.var(x, axes, 0.0, False)
    else:
        mean, var = _same_dtype(x, running_mean, "batch_norm"), _same_dtype(x, running_var, "batch_norm")
    weight, bias = _same_dtype(x, weight, "batch_norm"), _same_dtype(x, bias, "batch_norm")
    return P.batch_norm(x, mean, var, weight, bias, float(eps))


# ====================================================================== losses
def cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
    reduction: str = "mean", label_smoothing: float = 0.0,
) -> Tensor:  # fmt: skip
    """torch's cross_entropy: logits (N, C, *) or (C,); target class indices (N, *) or class
    probabilities shaped like the logits; optional class weights; label smoothing."""
    logits = _float(input, "cross_entropy")
    if _autocast_on.get() is not None:
        (logits,) = _autocast("cross_entropy", logits)
    target = O._tensor(target, "cross_entropy")
    O._same_device("cross_entropy", (logits, target))
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_axis = 1 if logits.ndim > 1 else 0
    num_classes = logits.shape[class_axis]
    if weight is not None and weight.shape != (num_classes,):
        raise ValueError(f"cross_entropy: weight has shape {weight.shape}, expected ({num_classes},)")
    weight = _same_dtype(logits, weight, "cross_entropy")
    if target.dtype.is_floating:
        if target.shape != logits.shape:
            raise ValueError(
                f"cross_entropy: probability targets must match the logits' shape {logits.shape}, got {target.shape}"
            )
        return _soft_cross_entropy(
            logits, P.cast(target, logits.dtype), weight, reduction, label_smoothing, class_axis
        )
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must hold class indices (integers) or probabilities, got {target.dtype.name}"
        )
    expected = logits.shape[:class_axis] + logits.shape[class_axis + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"cross_entropy: target shape {target.shape} does not match logits {logits.shape} "
            f"(expected {expected}: the logits without the class axis)"
        )
    target = P.cast(target, dtypes.int64)
    if target.size and not tracing.tracing():  # values are symbolic in a compile trace
        host = target.numpy()
        valid = host[host != ignore_index]
        if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
            raise ValueError(
                f"cross_entropy: target values must be in [0, {num_classes}) or ignore_index={ignore_index}, "
                f"got {valid.min()}..{valid.max()}"
            )
    return P.cross_entropy(logits, target, weight, int(ignore_index), float(label_smoothing), reduction)


def _soft_cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None, reduction: str, smoothing: float, axis: int
) -> Tensor:
    c = logits.shape[axis]
    if smoothing:
        target = P.add(P.mul(target, 1.0 - smoothing), smoothing / c)
    logp = P.log_softmax(logits, axis)
    if weight is not None:
        shape = [1] * logits.ndim
        shape[axis] = c
        logp = P.mul(logp, P.reshape(weight, tuple(shape)))
    loss = P.neg(P.sum(P.mul(logp, target), (axis,), False))
    if reduction == "none":
        return loss
    total = P.sum(loss, tuple(range(loss.ndim)), False)
    return total if reduction == "sum" else P.div(total, float(max(loss.size, 1) if loss.ndim else 1))


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error. The target must have the input's shape, as for the other
    pointwise losses: a (N, 1) prediction against (N,) targets would broadcast to (N, N) and give a
    wrong loss without a word (torch only warns)."""
    _check_reduction(reduction, "mse_loss")
    x, t = _loss_pair(input, target, "mse_loss")
    diff = O.subtract(x, t)
    return _reduce_loss(P.mul(diff, diff), reduction)


def _check_reduction(reduction: str, op: str, batchmean: bool = False) -> None:
    allowed = ("mean", "sum", "none", "batchmean") if batchmean else ("mean", "sum", "none")
    if reduction not in allowed:
        names = "'mean', 'batchmean', 'sum' or 'none'" if batchmean else "'mean', 'sum' or 'none'"
        raise ValueError(f"{op}: reduction must be {names}, got {reduction!r}")


def _reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return O.sum(loss) if reduction == "sum" else O.mean(loss)


def _loss_pair(input: Any, target: Any, op: str) -> tuple[Tensor, Tensor]:
    """A float input and a target of the same shape, cast to the input's dtype."""
    x = _float(input, op)
    if _autocast_on.get() is not None:
        (x,) = _autocast(op, x)
    t = O._tensor(target, op)
    O._same_device(op, (x, t))
    if t.shape != x.shape:
        fix = ""
        if t.size == x.size:
            fix = f"; reshape one to the other's shape (e.g. target.reshape({x.shape}))"
        raise ValueError(
            f"{op}: target shape {t.shape} must match input shape {x.shape} (pointwise losses do not "
            f"broadcast: a mismatch is almost always a bug){fix}"
        )
    return x, (t if t.dtype is x.dtype else P.cast(t, x.dtype))


def _loss_weight(x: Tensor, weight: Tensor | None, name: str, op: str) -> Tensor | None:
    """An optional elementwise weight that broadcasts to the input's shape."""
    if weight is None:
        return None
    weight = O._tensor(weight, op)
    try:
        shape = O.broadcast_shapes(weight.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"{op}: {name} of shape {weight.shape} does not broadcast to input shape {x.shape}")
    O._same_device(op, (x, weight))
    return P.cast(weight, x.dtype)


def nll_loss(
    input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """torch's nll_loss: log-probabilities (N, C, *) or (C,), class-index targets (N, *) or ();
    the weighted mean divides by the summed weights of the targets that are not ignored."""
    logp = _float(input, "nll_loss")
    if _autocast_on.get() is not None:
        (logp,) = _autocast("nll_loss", logp)
    target = O._tensor(target, "nll_loss")
    _check_reduction(reduction, "nll_loss")
    if logp.ndim == 0:
        raise ValueError("nll_loss: input must be (N, C, *) or (C,), got a 0-d tensor")
    class_axis = 1 if logp.ndim > 1 else 0
    num_classes = logp.shape[class_axis]
    if weight is not None and tuple(weight.shape) != (num_classes,):
        raise ValueError(f"nll_loss: weight has shape {weight.shape}, expected ({num_classes},)")
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold class indices (integers), got {target.dtype.name}")
    expected = logp.shape[:class_axis] + logp.shape[class_axis + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"nll_loss: target shape {target.shape} does not match input {logp.shape} "
            f"(expected {expected}: the input without the class axis)"
        )
    O._same_device("nll_loss", (logp, target))
    target = P.cast(target, dtypes.int64)
    if target.size and not tracing.tracing():
        host = target.numpy()
        valid_host = host[host != ignore_index]
        if valid_host.size and (valid_host.min() < 0 or valid_host.max() >= num_classes):
            raise ValueError(
                f"nll_loss: target values must be in [0, {num_classes}) or ignore_index={ignore_index}, "
                f"got {valid_host.min()}..{valid_host.max()}"
            )
    valid = O.not_equal(target, int(ignore_index))
    safe = O.where(valid, target, 0)
    picked = O.squeeze(
        O.take_along_axis(logp, O.expand_dims(safe, axis=class_axis), axis=class_axis), axis=class_axis
    )
    if weight is None:
        w = O.where(valid, 1.0, 0.0)
        w = P.cast(w, logp.dtype)
    else:
        taken = O.reshape(
            O.take(_same_dtype(logp, weight, "nll_loss"), O.reshape(safe, (-1,)), axis=0), safe.shape
        )
        w = O.where(valid, taken, 0.0)
    loss = O.where(valid, O.negative(O.multiply(picked, w)), 0.0)
    if reduction == "none":
        return loss
    total = O.sum(loss)
    return total if reduction == "sum" else O.divide(total, O.sum(w))


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or summed) absolute error."""
    _check_reduction(reduction, "l1_loss")
    x, t = _loss_pair(input, target, "l1_loss")
    return _reduce_loss(O.abs(O.subtract(x, t)), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (plain L1 for beta=0), as torch."""
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x, t = _loss_pair(input, target, "smooth_l1_loss")
    z = O.abs(O.subtract(x, t))
    if beta == 0:
        return _reduce_loss(z, reduction)
    loss = O.where(O.less(z, beta), O.multiply(O.multiply(z, z), 0.5 / beta), O.subtract(z, 0.5 * beta))
    return _reduce_loss(loss, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), as torch."""
    _check_reduction(reduction, "huber_loss")
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x, t = _loss_pair(input, target, "huber_loss")
    z = O.abs(O.subtract(x, t))
    loss = O.where(
        O.less(z, delta), O.multiply(O.multiply(z, z), 0.5), O.multiply(O.subtract(z, 0.5 * delta), delta)
    )
    return _reduce_loss(loss, reduction)


def _clamped_log(p: Tensor) -> Tensor:
    """log(p) limited to >= -100 (torch's BCE), with a finite gradient where p == 0."""
    positive = O.greater(p, 0.0)
    return O.where(positive, O.maximum(O.log(O.where(positive, p, 1.0)), -100.0), -100.0)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """-w (t log p + (1 - t) log(1 - p)) for probabilities p, each log clamped to >= -100 (torch)."""
    _check_reduction(reduction, "binary_cross_entropy")
    p, t = _loss_pair(input, target, "binary_cross_entropy")
    weight = _loss_weight(p, weight, "weight", "binary_cross_entropy")
    if p.size:
        host = p.numpy()
        if not ((host >= 0) & (host <= 1)).all():
            raise ValueError("binary_cross_entropy: input values must be probabilities in [0, 1]")
    loss = O.negative(
        O.add(
            O.multiply(t, _clamped_log(p)), O.multiply(O.subtract(1.0, t), _clamped_log(O.subtract(1.0, p)))
        )
    )
    if weight is not None:
        loss = O.multiply(loss, weight)
    return _reduce_loss(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """BCE on sigmoid(logits) in the stable form (1 - t) x + (1 + (pw - 1) t) softplus(-x), as torch;
    `pos_weight` broadcasts along the last (class) axis."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x, t = _loss_pair(input, target, "binary_cross_entropy_with_logits")
    weight = _loss_weight(x, weight, "weight", "binary_cross_entropy_with_logits")
    pos_weight = _loss_weight(x, pos_weight, "pos_weight", "binary_cross_entropy_with_logits")
    softplus_neg = O.logaddexp(O.zeros_like(x), O.negative(x))  # log(1 + exp(-x)), never overflows
    if pos_weight is not None:
        softplus_neg = O.multiply(softplus_neg, O.add(O.multiply(O.subtract(pos_weight, 1.0), t), 1.0))
    loss = O.add(O.multiply(O.subtract(1.0, t), x), softplus_neg)
    if weight is not None:
        loss = O.multiply(loss, weight)
    return _reduce_loss(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Pointwise KL divergence with log-probabilities `input`: t (log t - x), or exp(t) (t - x) when
    `log_target`; 'batchmean' divides the sum by the batch size (the first axis), as torch."""
    _check_reduction(reduction, "kl_div", batchmean=True)
    x, t = _loss_pair(input, target, "kl_div")
    if log_target:
        loss = O.multiply(O.exp(t), O.subtract(t, x))
    else:
        zero = O.equal(t, 0.0)
        xlogy = O.where(zero, 0.0, O.multiply(t, O.log(O.where(zero, 1.0, t))))  # 0 log 0 = 0
        loss = O.subtract(xlogy, O.multiply(t, x))
    if reduction == "batchmean":
        total = O.sum(loss)
        return O.divide(total, float(x.shape[0])) if x.ndim else total
    return _reduce_loss(loss, reduction)


# ====================================================================== attention
def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
    is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
) -> Tensor:  # fmt: skip
    """softmax(q k^T * scale + mask) v for (..., L, E) queries, (..., S, E) keys and (..., S, Ev)
    values, with torch's signature. A bool mask keeps True positions; a float mask is added;
    `is_causal` keeps j <= i; `scale` defaults to 1/sqrt(E). `dropout_p` > 0 drops attention weights
    (scaling the rest by 1/(1-p)) with masks from agnostic's seeded stream, so it applies whenever
    given, as torch's does: pass `dropout_p=p if self.training else 0.0`. `enable_gqa` repeats each
    of the Hkv key/value heads (axis -3) Hq/Hkv times to match the query's Hq heads."""
    op = "scaled_dot_product_attention"
    q = _float(query, op)
    if _autocast_on.get() is not None:
        (q,) = _autocast(op, q)
    k, v = P.cast(O._tensor(key, op), q.dtype), P.cast(O._tensor(value, op), q.dtype)
    O._same_device(op, (q, k, v))
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"{op}: query, key and value need one rank >= 2, got {q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{op}: query {q.shape} and key {k.shape} need one embedding size, "
            f"key and value {v.shape} one sequence length"
        )
    if isinstance(dropout_p, bool) or not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
    if enable_gqa:
        k, v = _repeat_kv_heads(q, k, op), _repeat_kv_heads(q, v, op)
    mask = None
    if attn_mask is not None:
        mask = O._tensor(attn_mask, op)
        O._broadcast_shapes(f"{op} (mask)", mask.shape, q.shape[:-1] + (k.shape[-2],))
        if mask.dtype is not dtypes.bool:
            mask = P.cast(mask, q.dtype)
    scale = None if scale is None else float(scale)
    if dropout_p > 0.0:  # the weights themselves are needed: no backend's fused kernel draws agnostic's masks
        weights = _attention_weights(q, k, mask, bool(is_causal), scale)
        return O.matmul(dropout(weights, dropout_p, training=True), v)
    return P.scaled_dot_product_attention(q, k, v, mask, bool(is_causal), scale)


def _repeat_kv_heads(q: Tensor, kv: Tensor, op: str) -> Tensor:
    """`kv` (..., Hkv, S, E) with each head repeated Hq/Hkv times in place (torch's
    repeat_interleave on axis -3), for grouped-query attention."""
    if q.ndim < 3:
        raise ValueError(f"{op}: enable_gqa needs (..., heads, L, E) inputs, got query {q.shape}")
    hq, hkv = q.shape[-3], kv.shape[-3]
    if hkv == 0 or hq % hkv:
        raise ValueError(
            f"{op}: enable_gqa needs the query's heads ({hq}) to be a multiple of the key's and value's ({hkv})"
        )
    if hq == hkv:
        return kv
    lead, (s, e) = kv.shape[:-3], kv.shape[-2:]
    grown = O.broadcast_to(O.expand_dims(kv, axis=-3), (*lead, hkv, hq // hkv, s, e))
    return O.reshape(grown, (*lead, hq, s, e))


def _attention_weights(
    q: Tensor, k: Tensor, mask: Tensor | None, is_causal: bool, scale: float | None
) -> Tensor:
    """softmax(q k^T * scale + mask) as differentiable Tensor ops, with the backends' rules (the
    base class's `_attention_weights`): a query whose keys are all masked gets all-zero weights."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = P.mul(O.matmul(q, O.matrix_transpose(k)), scale)
    if is_causal:
        rows, cols = q.shape[-2], k.shape[-2]
        scores = P.where(O.tril(O.ones((rows, cols), dtype=dtypes.bool, device=q.device)), scores, -math.inf)
    if mask is not None:
        scores = P.where(mask, scores, -math.inf) if mask.dtype is dtypes.bool else P.add(scores, mask)
    top = O.max(scores.detach(), axis=-1, keepdims=True)  # softmax ignores the shift: no gradient
    e = P.exp(P.sub(scores, P.where(P.isfinite(top), top, 0.0)))
    total = O.sum(e, axis=-1, keepdims=True)
    return P.div(e, P.where(P.eq(total, 0.0), 1.0, total))


# ====================================================================== convolution and pooling
def _tuple(value: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    out = tuple(int(v) for v in value)
    if len(out) != n:
        raise ValueError(f"{op}: {name} needs {n} values for {n}-d input, got {value!r}")
    return out


def _spatial_input(x: Tensor, d: int, op: str) -> tuple[Tensor, bool]:
    """(N, C, *spatial) input, adding a batch axis to an unbatched (C, *spatial) one."""
    x = _float(x, op)
    if x.ndim == d + 1:
        return P.expand_dims(x, (0,)), True
    if x.ndim != d + 2:
        raise ValueError(
            f"{op}: expected a {d + 2}-d (N, C, *spatial) or {d + 1}-d input, got shape {x.shape}"
        )
    return x, False


def _conv_padding(padding: Any, d: int, kernel: tuple[int, ...], dilation: tuple[int, ...],
                  stride: tuple[int, ...], op: str) -> tuple[tuple[int, int], ...]:  # fmt: skip
    if padding == "valid":
        return ((0, 0),) * d
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' needs stride 1 (as torch), got stride {stride}")
        total = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, int):
        pairs = ((padding, padding),) * d
    else:
        items = list(padding)
        if len(items) == d and all(isinstance(p, int) for p in items):
            pairs = tuple((p, p) for p in items)
        elif len(items) == d:
            pairs = tuple((int(lo), int(hi)) for lo, hi in items)
        else:
            raise ValueError(f"{op}: padding needs {d} values (or (lo, hi) pairs), got {padding!r}")
    if any(p < 0 for pair in pairs for p in pair):
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return pairs


def conv(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
    dilation: Any = 1, groups: int = 1,
) -> Tensor:  # fmt: skip
    """N-d convolution (cross-correlation) as torch's conv{N}d; N from the weight's rank."""
    w = O._tensor(weight, "conv")
    d = w.ndim - 2
    op = f"conv{d}d"
    if d not in (1, 2, 3):
        raise ValueError(
            f"conv: weight must be (out, in/groups, *kernel) with 1-3 spatial dims, got {w.shape}"
        )
    x, unbatched = _spatial_input(x, d, op)
    if _autocast_on.get() is not None:
        (x,) = _autocast("conv", x)
    w = P.cast(w, x.dtype)
    O._same_device(op, (x, w))
    stride_, dilation_ = _tuple(stride, d, "stride", op), _tuple(dilation, d, "dilation", op)
    if any(s <= 0 for s in stride_) or any(s <= 0 for s in dilation_):
        raise ValueError(f"{op}: stride and dilation must be positive, got {stride_} and {dilation_}")
    if groups <= 0 or x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(
            f"{op}: groups={groups} must divide input channels {x.shape[1]} and output channels {w.shape[0]}"
        )
    if w.shape[1] * groups != x.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects {w.shape[1] * groups} "
            f"(weight.shape[1] * groups)"
        )
    pads = _conv_padding(padding, d, w.shape[2:], dilation_, stride_, op)
    for i in range(d):
        span = dilation_[i] * (w.shape[2 + i] - 1) + 1
        if x.shape[2 + i] + pads[i][0] + pads[i][1] < span:
            raise ValueError(
                f"{op}: input spatial size {x.shape[2:]} (padded by {pads}) is smaller than the kernel "
                f"{w.shape[2:]} with dilation {dilation_}"
            )
    if bias is None:
        out = P.conv(x, w, stride_, pads, dilation_, groups)
    else:
        bias = _same_dtype(x, bias, "conv")
        if bias.shape != (w.shape[0],):
            raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({w.shape[0]},) (out_channels)")
        out = P.conv_bias(x, w, bias, stride_, pads, dilation_, groups)
    return P.squeeze(out, (0,)) if unbatched else out


def conv_transpose(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1,
) -> Tensor:  # fmt: skip
    """N-d transposed convolution as torch's conv_transpose{N}d (weight (in, out/groups, *kernel))."""
    w = O._tensor(weight, "conv_transpose")
    d = w.ndim - 2
    op = f"conv_transpose{d}d"
    if d not in (1, 2, 3):
        raise ValueError(f"conv_transpose: weight must be (in, out/groups, *kernel), got {w.shape}")
    x, unbatched = _spatial_input(x, d, op)
    if _autocast_on.get() is not None:
        (x,) = _autocast("conv_transpose", x)
    w = P.cast(w, x.dtype)
    O._same_device(op, (x, w))
    stride_, dilation_ = _tuple(stride, d, "stride", op), _tuple(dilation, d, "dilation", op)
    pad_, out_pad = _tuple(padding, d, "padding", op), _tuple(output_padding, d, "output_padding", op)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects {w.shape[0]}")
    if groups <= 0 or w.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide input channels {w.shape[0]}")
    for i in range(d):
        if not 0 <= out_pad[i] < max(stride_[i], dilation_[i]):
            raise ValueError(f"{op}: output_padding {out_pad} must be smaller than stride or dilation")
    spatial = tuple(
        (x.shape[2 + i] - 1) * stride_[i] - 2 * pad_[i] + dilation_[i] * (w.shape[2 + i] - 1) + out_pad[i] + 1
        for i in range(d)
    )
    if any(s <= 0 for s in spatial):
        raise ValueError(f"{op}: output size {spatial} is not positive")
    out_shape = (x.shape[0], w.shape[1] * groups) + spatial
    out = P.conv_input_grad(x, w, out_shape, stride_, tuple((p, p) for p in pad_), dilation_, groups)
    if bias is not None:
        out = P.add(out, P.reshape(_same_dtype(x, bias, "conv_transpose"), (1, out_shape[1]) + (1,) * d))
    return P.squeeze(out, (0,)) if unbatched else out


def _pool_args(x: Tensor, d: int, kernel: Any, stride: Any, padding: Any, op: str) -> tuple[Any, ...]:
    kernel_ = _tuple(kernel, d, "kernel_size", op)
    stride_ = kernel_ if stride is None or stride == () else _tuple(stride, d, "stride", op)
    pad_ = _tuple(padding, d, "padding", op)
    if any(k <= 0 for k in kernel_) or any(s <= 0 for s in stride_):
        raise ValueError(f"{op}: kernel_size and stride must be positive, got {kernel_} and {stride_}")
    if any(2 * p > k for p, k in zip(pad_, kernel_)):
        raise ValueError(f"{op}: padding {pad_} should be at most half of kernel_size {kernel_}")
    return kernel_, stride_, pad_


def max_pool(
    x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
    ceil_mode: bool = False, return_indices: bool = False, *, dims: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
    """N-d max pooling as torch's max_pool{N}d (N from `dims`, or the input's rank - 2)."""
    d = dims if dims is not None else O._tensor(x, "max_pool").ndim - 2
    op = f"max_pool{d}d"
    x, unbatched = _spatial_input(x, d, op)
    kernel_, stride_, pad_ = _pool_args(x, d, kernel_size, stride, padding, op)
    dilation_ = _tuple(dilation, d, "dilation", op)
    for i in range(d):
        if x.shape[2 + i] + 2 * pad_[i] < dilation_[i] * (kernel_[i] - 1) + 1:
            raise ValueError(f"{op}: input spatial size {x.shape[2:]} is smaller than the kernel {kernel_}")
    out, idx = P.max_pool(x, kernel_, stride_, pad_, dilation_, bool(ceil_mode))
    if unbatched:
        out, idx = P.squeeze(out, (0,)), P.squeeze(idx, (0,))
    return (out, idx) if return_indices else out


def avg_pool(
    x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True, *, dims: int | None = None,
) -> Tensor:  # fmt: skip
    """N-d average pooling as torch's avg_pool{N}d."""
    d = dims if dims is not None else O._tensor(x, "avg_pool").ndim - 2
    op = f"avg_pool{d}d"
    x, unbatched = _spatial_input(x, d, op)
    kernel_, stride_, pad_ = _pool_args(x, d, kernel_size, stride, padding, op)
    for i in range(d):
        if x.shape[2 + i] + 2 * pad_[i] < kernel_[i]:
            raise ValueError(f"{op}: input spatial size {x.shape[2:]} is smaller than the kernel {kernel_}")
    out = P.avg_pool(x, kernel_, stride_, pad_, bool(ceil_mode), bool(count_include_pad))
    return P.squeeze(out, (0,)) if unbatched else out


def _fixed_rank(fn: Any, d: int, name: str) -> Any:
    def wrapped(x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if fn in (max_pool, avg_pool):
            return fn(x, *args, dims=d, **kwargs)
        w = args[0] if args else kwargs.get("weight")
        if isinstance(w, Tensor) and w.ndim != d + 2:
            raise ValueError(f"{name}: weight must have {d + 2} dimensions, got shape {w.shape}")
        return fn(x, *args, **kwargs)

    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = f"{name}: see {fn.__name__}."
    return wrapped


conv1d, conv2d, conv3d = (_fixed_rank(conv, d, f"conv{d}d") for d in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _fixed_rank(conv_transpose, d, f"conv_transpose{d}d") for d in (1, 2, 3)
)
max_pool1d, max_pool2d, max_pool3d = (_fixed_rank(max_pool, d, f"max_pool{d}d") for d in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_fixed_rank(avg_pool, d, f"avg_pool{d}d") for d in (1, 2, 3))


# ====================================================================== group/RMS norm, adaptive pooling
def group_norm(
    x: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """torch's group_norm: normalize (N, C, *) over each group of C/num_groups channels and all
    spatial positions (biased variance), then scale and shift per channel. Built from tensor ops,
    so autodiff differentiates it on every backend."""
    x = _float(x, "group_norm")
    if _autocast_on.get() is not None:
        (x,) = _autocast("group_norm", x)
    if x.ndim < 2:
        raise ValueError(f"group_norm: input must be (N, C, *), got shape {x.shape}")
    n, c = x.shape[0], x.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the {c} channels of {x.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"group_norm: {name} has shape {t.shape}, expected ({c},)")
    g = O.reshape(x, (n, num_groups, -1))
    mean = O.mean(g, axis=-1, keepdims=True)
    var = O.var(g, axis=-1, keepdims=True)
    y = O.reshape((g - mean) * O.rsqrt(var + float(eps)), x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * O.reshape(_same_dtype(x, weight, "group_norm"), per_channel)
    if bias is not None:
        y = y + O.reshape(_same_dtype(x, bias, "group_norm"), per_channel)
    return y


def rms_norm(
    x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """torch's rms_norm: x / sqrt(mean(x**2 over the trailing axes) + eps) * weight; eps=None uses
    the machine epsilon of x's dtype, as torch does."""
    x = _float(x, "rms_norm")
    if _autocast_on.get() is not None:
        (x,) = _autocast("rms_norm", x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) > x.ndim or x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"rms_norm: normalized_shape {shape} does not match the end of input shape {x.shape}"
        )
    if weight is not None and weight.shape != shape:
        raise ValueError(f"rms_norm: weight has shape {weight.shape}, expected {shape}")
    e = float(dtypes.finfo(x.dtype).eps) if eps is None else float(eps)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = x * O.rsqrt(O.mean(x * x, axis=axes, keepdims=True) + e)
    return y if weight is None else y * _same_dtype(x, weight, "rms_norm")


def _adaptive_matrix(length: int, out: int) -> Any:
    """(out, length) averaging matrix of torch's adaptive bins [floor(i*L/out), ceil((i+1)*L/out))."""
    m = np.zeros((out, length))
    for i in range(out):
        start, end = (i * length) // out, -((-(i + 1) * length) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: Tensor, output_size: Any, *, dims: int | None = None) -> Tensor:
    """torch's adaptive_avg_pool{N}d. Each spatial axis is averaged by one small matrix product
    with a bin-averaging matrix, which is exact (each bin's mean) and cheaper than slicing every bin;
    gradients come from matmul's. `None` in output_size keeps that axis's size."""
    d = dims if dims is not None else O._tensor(x, "adaptive_avg_pool").ndim - 2
    op = f"adaptive_avg_pool{d}d"
    x, unbatched = _spatial_input(x, d, op)
    sizes = (output_size,) * d if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != d:
        raise ValueError(f"{op}: output_size needs {d} values, got {output_size!r}")
    sizes = tuple(x.shape[2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    if any(s <= 0 for s in sizes):
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    for i in range(d):
        length, out = x.shape[2 + i], sizes[i]
        if length == out:
            continue
        if length == 0:
            raise ValueError(f"{op}: input spatial size {x.shape[2:]} has an empty axis")
        m = O.asarray(_adaptive_matrix(length, out).T, dtype=x.dtype, device=x.device)
        axis = 2 + i
        x = O.moveaxis(O.matmul(O.moveaxis(x, axis, -1), m), -1, axis)
    return P.squeeze(x, (0,)) if unbatched else x


def adaptive_avg_pool1d(x: Tensor, output_size: Any) -> Tensor:
    """adaptive_avg_pool1d: see adaptive_avg_pool."""
    return adaptive_avg_pool(x, output_size, dims=1)


def adaptive_avg_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """adaptive_avg_pool2d: see adaptive_avg_pool."""
    return adaptive_avg_pool(x, output_size, dims=2)


# ====================================================================== interpolation
_INTERP_MODES = {"nearest": (1, 2), "linear": (1,), "bilinear": (2,)}


def _nearest_index(n_in: int, n_out: int, scale: float | None) -> Any:
    """torch's nearest source index: floor(dst * s) capped at n_in - 1, with s = 1/scale_factor when
    a scale factor was given and n_in/n_out otherwise; the product is rounded to float32 before the
    floor, as torch's forward kernel does (floorf)."""
    s = 1.0 / scale if scale is not None and scale > 0 else n_in / n_out
    src = np.floor((s * np.arange(n_out)).astype(np.float32)).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_weights(n_in: int, n_out: int, scale: float | None, align_corners: bool) -> tuple[Any, ...]:
    """torch's linear source indices (i0, i1) and weights (w0, w1) along one axis."""
    dst = np.arange(n_out, dtype=np.float64)
    if n_out == n_in:
        idx = np.arange(n_out)
        return idx, idx, np.ones(n_out), np.zeros(n_out)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        s = 1.0 / scale if scale is not None and scale > 0 else n_in / n_out
        src = np.maximum(s * (dst + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n_in - 1)  # floorf, as torch
    w1 = np.clip(src - i0, 0.0, 1.0)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, 1.0 - w1, w1


def interpolate(
    x: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:  # fmt: skip
    """torch.nn.functional.interpolate for (N, C, L) ('nearest', 'linear') and (N, C, H, W)
    ('nearest', 'bilinear') inputs, with torch's source-index rules (recompute_scale_factor=None:
    a given scale_factor sets both the output size, floor(in * scale), and the index scale,
    1/scale). Written as gathers along each spatial axis and weighted sums, so gradients work on
    every backend."""
    op = "interpolate"
    if mode not in _INTERP_MODES:
        raise ValueError(f"{op}: mode must be one of {sorted(_INTERP_MODES)}, got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(
            f"{op}: align_corners can only be set with the interpolating modes 'linear' and 'bilinear'"
        )
    x = _float(x, op)
    d = x.ndim - 2
    if d not in _INTERP_MODES[mode]:
        want = " or ".join(f"{k + 2}-d" for k in _INTERP_MODES[mode])
        raise ValueError(f"{op}: mode={mode!r} expects a {want} (N, C, *spatial) input, got shape {x.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size or scale_factor must be given")
    in_sizes = x.shape[2:]
    scales: tuple[float | None, ...]
    if size is not None:
        sizes = (size,) * d if isinstance(size, (int, np.integer)) else tuple(size)
        if len(sizes) != d or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"{op}: size must be a positive int or {d} positive ints, got {size!r}")
        out_sizes, scales = tuple(int(s) for s in sizes), (None,) * d
    else:
        num = (int, float, np.integer, np.floating)
        sf = (scale_factor,) * d if isinstance(scale_factor, num) else tuple(scale_factor)
        if len(sf) != d or not all(isinstance(s, num) and s > 0 for s in sf):
            raise ValueError(
                f"{op}: scale_factor must be a positive number or {d} positive numbers, got {scale_factor!r}"
            )
        scales = tuple(float(s) for s in sf)
        out_sizes = tuple(math.floor(float(n) * s) for n, s in zip(in_sizes, scales))
        if any(s <= 0 for s in out_sizes):
            raise ValueError(f"{op}: scale_factor={scale_factor!r} gives an empty output for shape {x.shape}")
    if any(n == 0 for n in in_sizes):
        raise ValueError(f"{op}: input of shape {x.shape} has an empty spatial axis")
    corners = bool(align_corners)
    for i in range(d):
        axis, n_in, n_out = 2 + i, in_sizes[i], out_sizes[i]
        if mode == "nearest":
            x = O.take(x, _nearest_index(n_in, n_out, scales[i]), axis=axis)
            continue
        i0, i1, w0, w1 = _linear_weights(n_in, n_out, scales[i], corners)
        shape = (n_out,) + (1,) * (x.ndim - axis - 1)
        w0_ = O.asarray(w0.reshape(shape), dtype=x.dtype, device=x.device)
        w1_ = O.asarray(w1.reshape(shape), dtype=x.dtype, device=x.device)
        x = O.take(x, i0, axis=axis) * w0_ + O.take(x, i1, axis=axis) * w1_
    return x
