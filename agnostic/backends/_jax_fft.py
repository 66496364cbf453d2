"""The fft primitives on JAX arrays (jax.numpy.fft); imported only by the JAX backend."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

Array = Any


class JaxFFT:
    """Mixin of JaxBackend: the fft primitives (run in 64-bit mode as every JaxBackend method;
    jax.numpy.fft keeps the input's precision)."""

    def fft_c2c(self, a: Array, axes: tuple[int, ...], inverse: bool, norm: str) -> Array:
        fn = jnp.fft.ifftn if inverse else jnp.fft.fftn
        return fn(a, axes=axes, norm=norm)

    def fft_r2c(self, a: Array, axis: int, norm: str) -> Array:
        return jnp.fft.rfft(a, axis=axis, norm=norm)

    def fft_c2r(self, a: Array, axis: int, n: int, norm: str) -> Array:
        return jnp.fft.irfft(a, n=n, axis=axis, norm=norm)
