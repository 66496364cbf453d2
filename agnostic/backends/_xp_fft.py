"""The fft primitives on NumPy and CuPy arrays (`self.xp.fft`)."""

from __future__ import annotations

from typing import Any

Array = Any


class XPFFT:
    """Mixin of XPBackend: the fft primitives through `self.xp.fft`, cast back to the input's
    precision (NumPy before 2.0 computed in double precision)."""

    xp: Any

    def fft_c2c(self, a: Array, axes: tuple[int, ...], inverse: bool, norm: str) -> Array:
        fn = self.xp.fft.ifftn if inverse else self.xp.fft.fftn
        return fn(a, axes=axes, norm=norm).astype(a.dtype, copy=False)

    def fft_r2c(self, a: Array, axis: int, norm: str) -> Array:
        out = self.xp.fft.rfft(a, axis=axis, norm=norm)
        return out.astype(self.xp.result_type(a.dtype, self.xp.complex64), copy=False)

    def fft_c2r(self, a: Array, axis: int, n: int, norm: str) -> Array:
        out = self.xp.fft.irfft(a, n=n, axis=axis, norm=norm)
        return out.astype(a.real.dtype, copy=False)
