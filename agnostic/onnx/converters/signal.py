"""ONNX converters: DFT, STFT and MelWeightMatrix.

agnostic has no complex dtype and no FFT primitive, so a DFT is two real matmuls by cosine and
sine matrices (ONNX's complex layout, real and imaginary parts in a last axis of 2, maps onto that
directly). The matrices are built in float64 from exact integer phases (j * k mod n), and the
transform runs in float64 before taking the input's dtype back: O(n^2) per axis, exact to rounding,
differentiable, and the same on every backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import agnostic as ag
from agnostic.device import Device
from agnostic.onnx.dtypes import UnsupportedDType, from_onnx
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, normalize_axis
from agnostic.tensor import Tensor


def _phases(rows: int, cols: int, n: int, device: Device) -> tuple[Tensor, Tensor]:
    """cos and sin of 2*pi*j*k/n for j < rows, k < cols, as float64 (rows, cols) matrices."""
    j = ag.arange(rows, dtype=ag.int64, device=device)
    k = ag.arange(cols, dtype=ag.int64, device=device)
    theta = ag.remainder(j[:, None] * k[None, :], n).astype(ag.float64) * (2 * math.pi / n)
    return ag.cos(theta), ag.sin(theta)


def dft(x: Tensor, axis: int, n: int, inverse: bool, onesided: bool, node: Node) -> Tensor:
    """ONNX's DFT of `x` (last axis: 1 for real, 2 for complex values) along `axis` (< x.ndim - 1),
    zero-padded or truncated to length `n`. `onesided` keeps the n // 2 + 1 non-redundant outputs of
    a forward transform; with `inverse` it reads those and returns the real signal (last axis 1)."""
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise ValueError(
            f"{node.describe()}: input of shape {x.shape} must end in an axis of 1 (real) or 2 (complex)"
        )
    if not 0 <= axis < x.ndim - 1:
        raise ValueError(f"{node.describe()}: axis {axis} must name a signal axis of input shape {x.shape}")
    if n < 1:
        raise ValueError(f"{node.describe()}: dft_length {n} must be positive")
    if not x.dtype.is_floating:
        raise TypeError(f"{node.describe()}: input dtype {x.dtype} is not floating")
    parts = [ag.moveaxis(x[..., i].astype(ag.float64), axis, -1) for i in range(x.shape[-1])]
    re, im = parts[0], parts[1] if len(parts) == 2 else None
    # the inverse of a one-sided spectrum reads its first n // 2 + 1 values, the others n
    used = min(re.shape[-1], n // 2 + 1 if inverse and onesided else n)
    re, im = re[..., :used], None if im is None else im[..., :used]
    if inverse and onesided:
        cos, sin = _phases(used, n, n, x.device)
        k = np.arange(used)
        twice = np.where((k == 0) | (2 * k == n), 1.0, 2.0)[:, None]  # the mirrored half
        w = ag.asarray(twice, dtype=ag.float64, device=x.device)
        out = ag.matmul(re, cos * w) if im is None else ag.matmul(re, cos * w) - ag.matmul(im, sin * w)
        return ag.moveaxis(out * (1.0 / n), -1, axis)[..., None].astype(x.dtype)
    cos, sin = _phases(used, n // 2 + 1 if onesided else n, n, x.device)
    sign = 1.0 if inverse else -1.0  # e^(sign * i * theta)
    real = ag.matmul(re, cos)
    imag = ag.matmul(re, sin) * sign
    if im is not None:
        real = real - ag.matmul(im, sin) * sign
        imag = imag + ag.matmul(im, cos)
    if inverse:
        real, imag = real * (1.0 / n), imag * (1.0 / n)
    out = ag.stack([ag.moveaxis(real, -1, axis), ag.moveaxis(imag, -1, axis)], axis=-1)
    return out.astype(x.dtype)


def _dft_node(node: Node, axis: int | None) -> Run:
    inverse, onesided = bool(node.attr("inverse", 0)), bool(node.attr("onesided", 0))

    def run(ctx: Context, x: Any, length: Any = None, axis_input: Any = None) -> Tensor:
        x = ctx.tensor(x)
        a = axis if axis is not None else (-2 if axis_input is None else ctx.host_ints(axis_input, "axis")[0])
        a = normalize_axis(a, x.ndim, node)
        if length is not None:
            (n,) = ctx.host_ints(length, "dft_length")
        elif inverse and onesided:
            n = 2 * (x.shape[a] - 1)
        else:
            n = x.shape[a]
        return dft(x, a, n, inverse, onesided, node)

    return run


@converter("DFT", since=17)
def _dft_17(node: Node) -> Run:
    return _dft_node(node, int(node.attr("axis", 1)))


@converter("DFT", since=20)
def _dft_20(node: Node) -> Run:
    return _dft_node(node, None)  # the axis is an input (default -2)


@converter("STFT", since=17)
def _stft(node: Node) -> Run:
    """Frames of the signal (hop frame_step, zero-padded past its end), weighted by the window, then
    a DFT of frame_length points: output (batch, frames, bins, 2)."""
    onesided = bool(node.attr("onesided", 1))

    def run(ctx: Context, signal: Any, step: Any, window: Any = None, length: Any = None) -> Tensor:
        x = ctx.tensor(signal)
        if x.ndim != 3:
            raise ValueError(f"{node.describe()}: signal of shape {x.shape} must be (batch, length, 1 or 2)")
        (hop,) = ctx.host_ints(step, "frame_step")
        w = None if window is None else ctx.tensor(window)
        if length is not None:
            (n,) = ctx.host_ints(length, "frame_length")
        elif w is not None:
            n = w.shape[0]
        else:
            n = x.shape[1]
        size = n if w is None else w.shape[0]
        if hop < 1 or n < 1 or n > x.shape[1]:
            raise ValueError(
                f"{node.describe()}: frame_step {hop} and frame_length {n} must be positive, and the "
                f"frame no longer than the signal ({x.shape[1]})"
            )
        frames = 1 + (x.shape[1] - n) // hop
        index = np.arange(frames)[:, None] * hop + np.arange(size)[None, :]
        padded = ag.pad(x, [(0, 0), (0, max(0, int(index.max()) + 1 - x.shape[1])), (0, 0)])
        y = ag.take(padded, index.reshape(-1), axis=1).reshape((x.shape[0], frames, size, x.shape[2]))
        if w is not None:
            y = y * w.astype(y.dtype).reshape((1, 1, size, 1))
        return dft(y, 2, n, False, onesided, node)

    return run


@converter("MelWeightMatrix", since=17)
def _mel_weight_matrix(node: Node) -> Run:
    """The triangular mel filter bank, a constant table of its five scalar inputs: built on the host
    in ONNX's reference arithmetic (its integer bin edges depend on every rounding step)."""
    try:
        out_dtype = from_onnx(int(node.attr("output_datatype", 1)))
    except UnsupportedDType as exc:
        raise Unsupported(f"output_datatype: {exc}") from None

    def run(ctx: Context, bins: Any, dft_length: Any, rate: Any, lower: Any, upper: Any) -> Tensor:
        num_bins, length = ctx.host(bins, "num_mel_bins"), ctx.host(dft_length, "dft_length")
        rate, lower, upper = ctx.host(rate, "sample_rate"), ctx.host(lower), ctx.host(upper)
        m = int(num_bins)
        low_mel = 2595 * np.log1p(lower / 700) / np.log(10)
        high_mel = 2595 * np.log1p(upper / 700) / np.log(10)
        edges = np.arange(0, m + 2) * ((high_mel - low_mel) / (m + 2)) + low_mel
        edges = 700 * np.expm1(edges / 2595 * np.log(10))
        edges = (((length + 1) * edges) // rate).astype(np.int64)
        out = np.zeros((int(length) // 2 + 1, m))
        for i in range(m):
            left, center, right = (int(e) for e in edges[i : i + 3])
            if center == left:
                out[center, i] = 1
            else:
                out[left : center + 1, i] = (np.arange(left, center + 1) - left) / (center - left)
            if right > center:
                out[center:right, i] = (right - np.arange(center, right)) / (right - center)
        return ctx.tensor(out, out_dtype)

    return run
