"""The fft extension of the op-set: three primitives that Backend inherits, abstract.

Every transform of `agnostic.fft` is composed from these at the Tensor layer: padding or trimming to
`n`, the Hermitian transforms (through the conjugate), shifts and frequencies; so are their
gradients (each primitive's adjoint is another primitive, see agnostic/fft.py). The Tensor layer
has decided dtypes already: `fft_c2c` and `fft_c2r` get complex64/complex128 arrays, `fft_r2c`
float32/float64 ones, and each returns the standard's dtype of the same precision (complex64 from
float32, float32 from complex64...), whatever its library would have chosen. `norm` is "backward",
"ortho" or "forward" with NumPy's meaning; transformed axes have at least one element.
"""

from __future__ import annotations

import abc
from typing import Any

Array = Any


class FFTOps(abc.ABC):
    """The Array API fft extension's primitives on native arrays."""

    @abc.abstractmethod
    def fft_c2c(self, a: Array, axes: tuple[int, ...], inverse: bool, norm: str) -> Array:
        """The complex discrete Fourier transform of `a` over `axes` (non-negative, sorted, unique),
        the inverse one (NumPy's ifftn) if `inverse`; same dtype and shape."""

    @abc.abstractmethod
    def fft_r2c(self, a: Array, axis: int, norm: str) -> Array:
        """The forward transform of the real `a` along `axis` (NumPy's rfft): that axis keeps its
        `n // 2 + 1` non-negative frequencies; complex of `a`'s precision."""

    @abc.abstractmethod
    def fft_c2r(self, a: Array, axis: int, n: int, norm: str) -> Array:
        """The inverse of `fft_r2c` (NumPy's irfft): `a` holds the `n // 2 + 1` non-negative
        frequencies of a Hermitian spectrum along `axis`, the result its `n` real samples, real of
        `a`'s precision. The imaginary parts of the zero (and, for even `n`, the Nyquist) frequency
        are ignored, as they are zero in a Hermitian spectrum: the gradient of `fft_r2c` relies on
        it."""
