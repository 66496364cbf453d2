"""The fft primitives on torch tensors (torch.fft); imported only by the torch backend."""

from __future__ import annotations

from typing import Any

import torch

Array = Any


class TorchFFT:
    """Mixin of TorchBackend: the fft primitives (torch.fft keeps the input's precision). MKL
    refuses a batch of zero transforms, so an empty input gets its empty result directly."""

    def fft_c2c(self, a: Array, axes: tuple[int, ...], inverse: bool, norm: str) -> Array:
        if a.numel() == 0:
            return a.clone()
        fn = torch.fft.ifftn if inverse else torch.fft.fftn
        return fn(a, dim=axes, norm=norm)

    def fft_r2c(self, a: Array, axis: int, norm: str) -> Array:
        if a.numel() == 0:
            return _empty(a, axis, a.shape[axis] // 2 + 1, a.dtype.to_complex())
        return torch.fft.rfft(a, dim=axis, norm=norm)

    def fft_c2r(self, a: Array, axis: int, n: int, norm: str) -> Array:
        if a.numel() == 0:
            return _empty(a, axis, n, a.dtype.to_real())
        return torch.fft.irfft(a, n=n, dim=axis, norm=norm)


def _empty(a: Array, axis: int, n: int, dtype: torch.dtype) -> Array:
    shape = list(a.shape)
    shape[axis] = n
    return torch.empty(shape, dtype=dtype, device=a.device)
