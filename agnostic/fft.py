"""`ag.fft`: the Array API fft extension (2023.12) on Tensors, differentiable on every backend.

Three backend primitives do the transforms (`fft_c2c`, `fft_r2c`, `fft_c2r`, see
agnostic/backends/base_fft.py); everything else is composed here from Tensor ops: trimming or
zero-padding to `n` / `s`, the multi-axis real transforms (the halved axis, then complex transforms
over the others, as NumPy does), the Hermitian transforms through the conjugate, shifts and
frequencies.

Gradients follow torch's convention (the conjugate Wirtinger derivative: for a real loss L of a
complex z, the gradient is dL/dRe z + i dL/dIm z). Each primitive is linear over the reals, so its
vector-Jacobian product is its adjoint, another primitive:

- a complex transform with scale c (1, 1/sqrt(n) or 1/n by `norm`) is c F or c F^H; its adjoint is
  the opposite direction with the same scale, which is the "dual" norm (backward <-> forward);
- `fft_r2c` keeps n // 2 + 1 bins of c F x for real x; its adjoint is Re(c F^H (g zero-padded)),
  which is `fft_c2r` (dual norm) of g with the bins that stand for two (all but the zero and the
  Nyquist frequency) halved;
- `fft_c2r` reads every such bin twice (as itself and as its conjugate mirror); its adjoint is
  `fft_r2c` (dual norm) of g with those bins doubled.

Dtypes follow the standard: complex64 from float32 or complex64 input, complex128 from float64 or
complex128, real outputs (irfft, irfftn, hfft) of the matching real precision; float16 and bfloat16
are computed in float32 (no library has half-precision transforms on every device). Integer and
bool tensors are refused (cast them first), as is complex input to the real-input transforms.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from agnostic import dtypes
from agnostic import ops as _ops
from agnostic import primitives as P
from agnostic.autodiff import TensorMeta
from agnostic.device import Device
from agnostic.dtypes import DType
from agnostic.primitives import _record, _tracking
from agnostic.tensor import Tensor

__all__ = [
    "fft", "ifft", "fftn", "ifftn", "rfft", "irfft", "rfftn", "irfftn", "hfft", "ihfft",
    "fftfreq", "rfftfreq", "fftshift", "ifftshift",
]  # fmt: skip

_make = Tensor._make
_NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}
"""The norm whose scale, in the opposite direction, is the same: the adjoint's norm."""


# ====================================================================== differentiable primitives
def _c2c(x: Tensor, axes: tuple[int, ...], inverse: bool, norm: str) -> Tensor:
    dev = x._device
    out = _make(dev.ops.fft_c2c(x._data, axes, inverse, norm), dev)
    if _tracking(x):
        _record(out, "fft_c2c", (x,), lambda g, y: (_c2c(g, axes, not inverse, _DUAL[norm]),))
    return out


def _r2c(x: Tensor, axis: int, norm: str) -> Tensor:
    dev = x._device
    out = _make(dev.ops.fft_r2c(x._data, axis, norm), dev)
    if _tracking(x):
        n = x.shape[axis]
        _record(
            out,
            "fft_r2c",
            (x,),
            lambda g, y: (_c2r(P.mul(g, _bin_weights(g, axis, n, 0.5)), axis, n, _DUAL[norm]),),
        )
    return out


def _c2r(x: Tensor, axis: int, n: int, norm: str) -> Tensor:
    dev = x._device
    out = _make(dev.ops.fft_c2r(x._data, axis, n, norm), dev)
    if _tracking(x):
        mx = TensorMeta(x)
        _record(
            out,
            "fft_c2r",
            (x,),
            lambda g, y: (P.mul(_r2c(g, axis, _DUAL[norm]), _bin_weights(mx, axis, n, 2.0)),),
        )
    return out


def _bin_weights(like: Tensor, axis: int, n: int, twice: float) -> Tensor:
    """`twice` for the bins of a length-n half spectrum that stand for two (a frequency and its
    mirror), 1 for the zero and (n even) the Nyquist frequency; shaped to broadcast along `axis`
    of `like`, in its dtype."""
    w = np.full(n // 2 + 1, twice)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    shape = [1] * like.ndim
    shape[axis] = w.size
    host = w.reshape(shape).astype(dtypes.to_numpy_dtype(like._dtype))
    return _make(like._device.ops.from_numpy(host), like._device)


def _to_complex(x: Tensor) -> Tensor:
    """A real floating `x` as complex of its precision; the gradient is the real part."""
    if x._dtype.is_complex:
        return x
    dev = x._device
    out = _make(dev.ops.cast(x._data, dtypes.complex_dtype(x._dtype)), dev)
    if _tracking(x):
        _record(out, "cast", (x,), lambda g, y: (P.real(g),))
    return out


# ====================================================================== argument checks
def _input(x: Any, op: str, real: bool = False) -> Tensor:
    """`x` as a floating Tensor fit for `op`: float16 and bfloat16 go to float32; complex input
    to a real transform (`real`) and integer or bool input are refused with the fix."""
    x = _ops._tensor(x, op)
    d = x._dtype
    if d.is_complex:
        if real:
            raise TypeError(
                f"{op}: expected a real floating-point tensor, got {d.name}; for complex input use "
                f"ag.fft.{'fftn' if op.endswith('n') else 'fft'}, or take ag.real(x) first"
            )
        return x
    if not d.is_floating:
        raise TypeError(
            f"{op}: expected a floating-point{'' if real else ' or complex'} tensor, got {d.name}; "
            f"cast it first, e.g. ag.astype(x, ag.float64)"
        )
    if d.itemsize < 4:
        x = P.cast(x, dtypes.float32)
    return x


def _norm(norm: Any, op: str) -> str:
    if norm is None:  # NumPy's and torch's spelling of the default
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f"{op}: norm must be one of {', '.join(map(repr, _NORMS))}, got {norm!r}")
    return norm


def _length(n: Any, op: str, what: str = "n") -> int:
    try:
        k = operator.index(n)
    except TypeError:
        raise TypeError(f"{op}: {what} must be an int, got {n!r}") from None
    if k < 1:
        raise ValueError(f"{op}: {what} must be at least 1, got {k}")
    return k


def _axis_and_n(x: Tensor, n: Any, axis: Any, op: str) -> tuple[int, int | None]:
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor of at least one dimension, got a 0-d tensor")
    return _ops._axis(axis, x.ndim, op, x.shape), None if n is None else _length(n, op)


def _axes_and_sizes(x: Tensor, s: Any, axes: Any, op: str) -> tuple[list[int], list[int | None]]:
    """The axes (in the given order) and, per axis, the requested size (None: the input's). As
    NumPy and torch do, `s` without `axes` means the last len(s) axes."""
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor of at least one dimension, got a 0-d tensor")
    if s is not None and not isinstance(s, Sequence):
        raise TypeError(f"{op}: s must be a sequence of ints, got {s!r}")
    if axes is None:
        ax = list(range(x.ndim)) if s is None else list(range(x.ndim - len(s), x.ndim))
        if len(ax) > x.ndim or (ax and ax[0] < 0):
            raise ValueError(f"{op}: s={tuple(s)} has more entries than x has dimensions ({x.ndim})")
    else:
        if isinstance(axes, int) or not isinstance(axes, Sequence):
            raise TypeError(f"{op}: axes must be a sequence of ints, got {axes!r}")
        ax = [_ops._axis(a, x.ndim, op, x.shape) for a in axes]
        if len(set(ax)) != len(ax):
            raise ValueError(f"{op}: repeated axis in axes={tuple(axes)}")
    if s is None:
        return ax, [None] * len(ax)
    if len(s) != len(ax):
        raise ValueError(f"{op}: s={tuple(s)} and axes={tuple(ax)} must have the same length")
    return ax, [None if k == -1 else _length(k, op, "every entry of s (or -1)") for k in s]


def _resize(x: Tensor, axis: int, n: int) -> Tensor:
    """`x` trimmed or zero-padded to length n along `axis`."""
    m = x.shape[axis]
    if n < m:
        return P.getitem(x, (slice(None),) * axis + (slice(0, n, 1),))
    if n > m:
        widths = tuple((0, n - m) if i == axis else (0, 0) for i in range(x.ndim))
        return P.pad(x, widths, "constant", 0.0)
    return x


def _points(x: Tensor, axis: int, n: int | None, op: str) -> tuple[Tensor, int]:
    """`x` resized to n along `axis` (its own length when None, which must not be zero)."""
    if n is None:
        n = x.shape[axis]
        if n == 0:
            raise ValueError(f"{op}: axis {axis} of x (shape {x.shape}) is empty; give n to zero-pad it")
    return _resize(x, axis, n), n


def _half_points(x: Tensor, axis: int, n: int | None, op: str) -> tuple[Tensor, int]:
    """For a transform to real output: `x`'s half spectrum resized to n // 2 + 1 along `axis`,
    and n (by default 2 * (M - 1) for an axis of length M)."""
    if n is None:
        m = x.shape[axis]
        if m < 2:
            raise ValueError(
                f"{op}: axis {axis} of x (shape {x.shape}) has {m} element(s); the default output "
                f"length 2 * (M - 1) = {2 * (m - 1)} is empty, give n"
            )
        n = 2 * (m - 1)
    return _resize(x, axis, n // 2 + 1), n


# ====================================================================== transforms
def fft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The one-dimensional discrete Fourier transform along `axis` (trimmed or zero-padded to n)."""
    return _c2c_1d("fft", x, n, axis, norm, inverse=False)


def ifft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The one-dimensional inverse discrete Fourier transform along `axis`."""
    return _c2c_1d("ifft", x, n, axis, norm, inverse=True)


def _c2c_1d(op: str, x: Any, n: Any, axis: Any, norm: Any, inverse: bool) -> Tensor:
    x = _input(x, op)
    norm = _norm(norm, op)
    ax, n = _axis_and_n(x, n, axis, op)
    x, _ = _points(x, ax, n, op)
    return _c2c(_to_complex(x), (ax,), inverse, norm)


def fftn(
    x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """The n-dimensional discrete Fourier transform over `axes` (all by default), each axis
    trimmed or zero-padded to its entry of `s` (-1: kept)."""
    return _c2c_nd("fftn", x, s, axes, norm, inverse=False)


def ifftn(
    x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """The n-dimensional inverse discrete Fourier transform over `axes` (all by default)."""
    return _c2c_nd("ifftn", x, s, axes, norm, inverse=True)


def _c2c_nd(op: str, x: Any, s: Any, axes: Any, norm: Any, inverse: bool) -> Tensor:
    x = _input(x, op)
    norm = _norm(norm, op)
    ax, sizes = _axes_and_sizes(x, s, axes, op)
    for a, k in zip(ax, sizes):
        x, _ = _points(x, a, k, op)
    x = _to_complex(x)
    return _c2c(x, tuple(sorted(ax)), inverse, norm) if ax else x


def rfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The transform of a real signal along `axis`: its n // 2 + 1 non-negative frequencies."""
    x = _input(x, "rfft", real=True)
    norm = _norm(norm, "rfft")
    ax, n = _axis_and_n(x, n, axis, "rfft")
    x, _ = _points(x, ax, n, "rfft")
    return _r2c(x, ax, norm)


def irfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The inverse of `rfft`: n real samples (2 * (M - 1) by default) from the non-negative
    frequencies of a Hermitian spectrum."""
    x = _input(x, "irfft")
    norm = _norm(norm, "irfft")
    ax, n = _axis_and_n(x, n, axis, "irfft")
    x, n = _half_points(x, ax, n, "irfft")
    return _c2r(_to_complex(x), ax, n, norm)


def rfftn(
    x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """The n-dimensional transform of a real signal: the last of `axes` keeps its non-negative
    frequencies, the others all of theirs."""
    x = _input(x, "rfftn", real=True)
    norm = _norm(norm, "rfftn")
    ax, sizes = _axes_and_sizes(x, s, axes, "rfftn")
    if not ax:
        raise ValueError("rfftn: axes is empty; give at least one axis to transform")
    for a, k in zip(ax, sizes):
        x, _ = _points(x, a, k, "rfftn")
    out = _r2c(x, ax[-1], norm)
    return _c2c(out, tuple(sorted(ax[:-1])), False, norm) if len(ax) > 1 else out


def irfftn(
    x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """The inverse of `rfftn`: real output of size s (the last of `axes` 2 * (M - 1) by default)."""
    x = _input(x, "irfftn")
    norm = _norm(norm, "irfftn")
    ax, sizes = _axes_and_sizes(x, s, axes, "irfftn")
    if not ax:
        raise ValueError("irfftn: axes is empty; give at least one axis to transform")
    for a, k in zip(ax[:-1], sizes[:-1]):
        x, _ = _points(x, a, k, "irfftn")
    x, n = _half_points(x, ax[-1], sizes[-1], "irfftn")
    x = _to_complex(x)
    if len(ax) > 1:
        x = _c2c(x, tuple(sorted(ax[:-1])), True, norm)
    return _c2r(x, ax[-1], n, norm)


def hfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The transform of a signal with Hermitian symmetry, given by its first half: n real values
    (2 * (M - 1) by default)."""
    x = _input(x, "hfft")
    norm = _norm(norm, "hfft")
    ax, n = _axis_and_n(x, n, axis, "hfft")
    x, n = _half_points(x, ax, n, "hfft")
    return _c2r(P.conj(_to_complex(x)), ax, n, _DUAL[norm])


def ihfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """The inverse of `hfft`: the n // 2 + 1 first values of the Hermitian signal whose transform
    is the real `x`."""
    x = _input(x, "ihfft", real=True)
    norm = _norm(norm, "ihfft")
    ax, n = _axis_and_n(x, n, axis, "ihfft")
    x, _ = _points(x, ax, n, "ihfft")
    return P.conj(_r2c(x, ax, _DUAL[norm]))


# ====================================================================== frequencies and shifts
def fftfreq(n: int, /, *, d: float = 1.0, device: Device | str | None = None, dtype: Any = None) -> Tensor:
    """The sample frequencies of a length-n transform with sample spacing d:
    [0, 1, ..., ceil(n/2) - 1, -floor(n/2), ..., -1] / (d * n), in the default float dtype (or
    `dtype`, a real floating dtype, as the 2024.12 standard allows)."""
    n = _length(n, "fftfreq")
    k = np.concatenate([np.arange(0, (n - 1) // 2 + 1), np.arange(-(n // 2), 0)])
    return _frequencies("fftfreq", k, n, d, device, dtype)


def rfftfreq(n: int, /, *, d: float = 1.0, device: Device | str | None = None, dtype: Any = None) -> Tensor:
    """The sample frequencies of `rfft` of length n: [0, 1, ..., n // 2] / (d * n)."""
    n = _length(n, "rfftfreq")
    return _frequencies("rfftfreq", np.arange(0, n // 2 + 1), n, d, device, dtype)


def _frequencies(op: str, k: np.ndarray, n: int, d: Any, device: Any, dtype: Any) -> Tensor:
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise TypeError(f"{op}: d must be a real number, got {d!r}")
    if d == 0:
        raise ValueError(f"{op}: the sample spacing d must not be zero")
    out_dtype: DType = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
    if not out_dtype.is_floating:
        raise TypeError(f"{op}: dtype must be a real floating-point dtype, got {out_dtype.name}")
    return _ops._device_of(device).tensor(k / (float(d) * n), dtype=out_dtype)


def fftshift(x: Tensor, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """`x` with the zero frequency moved to the centre: each of `axes` (all by default) rolled by
    half its length."""
    return _shift("fftshift", x, axes, 1)


def ifftshift(x: Tensor, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """The inverse of `fftshift` (they differ by one sample on odd lengths)."""
    return _shift("ifftshift", x, axes, -1)


def _shift(op: str, x: Any, axes: Any, sign: int) -> Tensor:
    x = _ops._tensor(x, op)
    ax = list(range(x.ndim)) if axes is None else [axes] if isinstance(axes, int) else list(axes)
    ax = [_ops._axis(a, x.ndim, op, x.shape) for a in ax]
    if not ax:
        return x
    return _ops.roll(x, [sign * (x.shape[a] // 2) for a in ax], axis=ax)
