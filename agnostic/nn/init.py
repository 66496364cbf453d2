"""Weight initializers with torch.nn.init's names, formulas and fan rules.

Each initializer replaces a Parameter's value in place (`Parameter.assign`) and returns it. Values
are drawn through the device's random methods, or on the host from a seed of the same stream
(`agnostic.random.next_seed`), so one seed initializes a model identically on every backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agnostic.random import Generator, next_seed
from agnostic.tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
]  # fmt: skip

_LINEAR_FNS = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid",
)  # fmt: skip


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain's table)."""
    if nonlinearity in _LINEAR_FNS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _holder(tensor: Any, fn: str, floating: bool = True) -> Tensor:
    """The tensor must be a holder whose value can change in place (a Parameter): Tensors are values.
    Random fills need a float dtype; constants also fit integer (requires_grad=False) parameters."""
    if not isinstance(tensor, Tensor) or not hasattr(tensor, "assign"):
        raise TypeError(f"{fn}: expected a Parameter (a tensor with assign()), got {type(tensor).__name__}")
    if floating and not tensor.dtype.is_floating:
        raise TypeError(f"{fn}: the tensor must be floating-point, got {tensor.dtype.name}")
    return tensor


def _fans(tensor: Tensor, fn: str) -> tuple[int, int]:
    """(fan_in, fan_out) as torch's _calculate_fan_in_and_fan_out: dims 0/1 times the receptive field."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(
            f"{fn}: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
            f"(shape {shape})"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _correct_fan(tensor: Tensor, mode: str, fn: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn}: mode {mode!r} not supported, use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _fans(tensor, fn)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with U(a, b)."""
    t = _holder(tensor, "uniform_")
    t.assign(t.device.uniform(t.shape, a, b, generator=generator, dtype=t.dtype))
    return t


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None
) -> Tensor:
    """Fill with N(mean, std^2)."""
    t = _holder(tensor, "normal_")
    t.assign(t.device.normal(t.shape, mean, std, generator=generator, dtype=t.dtype))
    return t


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
    generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, as torch). Drawn on the host by
    rejection from one seed of the stream, so every backend gets the same values."""
    t = _holder(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - mean) / (std * math.sqrt(2.0))))

    accept = cdf(b) - cdf(a)
    if accept < 1e-4:
        raise ValueError(
            f"trunc_normal_: [a, b] = [{a}, {b}] holds only {accept:.2g} of N({mean}, {std}^2); "
            "rejection sampling would not finish"
        )
    rng = np.random.Generator(np.random.Philox(next_seed(None, generator)))
    n = t.size
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        draw = rng.normal(mean, std, size=int(1.2 * (n - have) / accept) + 16)
        draw = draw[(draw >= a) & (draw <= b)]
        kept.append(draw)
        have += draw.size
    host = np.concatenate(kept)[:n].reshape(t.shape) if n else np.zeros(t.shape)
    t.assign(t.device.tensor(host, dtype=t.dtype))
    return t


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with `val`."""
    t = _holder(tensor, "constant_", floating=False)
    t.assign(t.device.full(t.shape, val, dtype=t.dtype))
    return t


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    t = _holder(tensor, "zeros_", floating=False)
    t.assign(t.device.full(t.shape, 0, dtype=t.dtype))
    return t


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    t = _holder(tensor, "ones_", floating=False)
    t.assign(t.device.full(t.shape, 1, dtype=t.dtype))
    return t


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    t = _holder(tensor, "xavier_uniform_")
    fan_in, fan_out = _fans(t, "xavier_uniform_")
    bound = math.sqrt(3.0) * (gain * math.sqrt(2.0 / float(fan_in + fan_out)))  # torch's rounding
    t.assign(t.device.uniform(t.shape, -bound, bound, generator=generator, dtype=t.dtype))
    return t


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    t = _holder(tensor, "xavier_normal_")
    fan_in, fan_out = _fans(t, "xavier_normal_")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    t.assign(t.device.normal(t.shape, 0.0, std, generator=generator, dtype=t.dtype))
    return t


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015); `a` is leaky_relu's slope."""
    t = _holder(tensor, "kaiming_uniform_")
    fan = _correct_fan(t, mode, "kaiming_uniform_")
    if t.size == 0:  # torch warns and leaves an empty tensor alone
        return t
    bound = math.sqrt(3.0) * (calculate_gain(nonlinearity, a) / math.sqrt(fan))  # torch's rounding
    t.assign(t.device.uniform(t.shape, -bound, bound, generator=generator, dtype=t.dtype))
    return t


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """N(0, std^2), std = gain / sqrt(fan) (He et al., 2015); `a` is leaky_relu's slope."""
    t = _holder(tensor, "kaiming_normal_")
    fan = _correct_fan(t, mode, "kaiming_normal_")
    if t.size == 0:
        return t
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    t.assign(t.device.normal(t.shape, 0.0, std, generator=generator, dtype=t.dtype))
    return t


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix over the tensor flattened to (rows, cols) (Saxe et al., 2013).
    As torch: QR of a normal draw in its taller orientation, signs fixed by diag(R). The draw and the
    QR run on the host in float64 (one seed of the stream), so every backend gets the same matrix."""
    t = _holder(tensor, "orthogonal_")
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got {t.shape}")
    if t.size == 0:
        return t
    rows = t.shape[0]
    cols = t.size // rows
    rng = np.random.Generator(np.random.Philox(next_seed(None, generator)))
    flat = rng.normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    t.assign(t.device.tensor(gain * q.reshape(t.shape), dtype=t.dtype))
    return t
