"""Shared checks for conformance tests: NumPy float64 references, tolerances, finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import agnostic as ag
from agnostic import dtypes

TOLERANCE = {
    dtypes.float16: (2e-3, 2e-3),
    dtypes.bfloat16: (2e-2, 2e-2),
    dtypes.float32: (2e-5, 1e-6),
    dtypes.float64: (1e-10, 1e-12),
}
"""(rtol, atol) for comparing a result of each float dtype with a float64 reference."""


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def tensor(backend: ag.Device, array: Any, dtype: Any = None) -> ag.Tensor:
    """A tensor on `backend` from host data (dtype defaults to the array's)."""
    a = np.asarray(array)
    return backend.tensor(a, dtype=dtype if dtype is not None else dtypes.from_numpy_dtype(a.dtype))


def noncontiguous(backend: ag.Device, array: np.ndarray, dtype: Any = None) -> ag.Tensor:
    """The same values as a transposed (non-contiguous on strided backends) tensor."""
    a = np.asarray(array)
    if a.ndim < 2:
        big = np.repeat(a, 2)
        return tensor(backend, big, dtype)[::2]
    axes = tuple(reversed(range(a.ndim)))
    return tensor(backend, np.ascontiguousarray(a.transpose(axes)), dtype).permute(axes)


def assert_close(
    out: ag.Tensor, expected: Any, dtype: Any = None, rtol: float | None = None, atol: float | None = None,
    shape: Sequence[int] | None = None,
) -> None:  # fmt: skip
    """`out` has the expected dtype, shape and values (NaN where the reference has NaN)."""
    assert isinstance(out, ag.Tensor), f"expected a Tensor, got {type(out).__name__}"
    ref = np.asarray(expected)
    if dtype is not None:
        assert out.dtype == dtypes.as_dtype(dtype), f"dtype {out.dtype} != expected {dtypes.as_dtype(dtype)}"
    want_shape = tuple(shape) if shape is not None else ref.shape
    assert out.shape == want_shape, f"shape {out.shape} != expected {want_shape}"
    got = out.numpy()
    if out.dtype.is_inexact:  # complex: each part within the tolerance of its real dtype
        r, a = TOLERANCE[dtypes.real_dtype(out.dtype)]
        r, a = rtol if rtol is not None else r, atol if atol is not None else a
        wide = np.complex128 if out.dtype.is_complex else np.float64
        np.testing.assert_allclose(got.astype(wide), ref.astype(wide), rtol=r, atol=a, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, ref.astype(got.dtype) if ref.dtype != got.dtype else ref)


def numerical_grads(f: Callable[..., ag.Tensor], arrays: Sequence[np.ndarray], backend: ag.Device,
                    cotangent: np.ndarray, eps: float = 1e-6) -> list[np.ndarray]:  # fmt: skip
    """Central finite differences of <f(*arrays), cotangent> with respect to each array (float64)."""

    def scalar(*arrs: np.ndarray) -> float:
        out = f(*(tensor(backend, a, ag.float64) for a in arrs))
        return float(np.sum(out.numpy().astype(np.float64) * cotangent))

    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a, dtype=np.float64)
        flat = g.reshape(-1)
        for j in range(a.size):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (scalar(*plus) - scalar(*minus)) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(
    backend: ag.Device, f: Callable[..., ag.Tensor], *arrays: np.ndarray, rtol: float = 1e-5,
    atol: float = 1e-7, eps: float = 1e-6, seed: int = 0,
) -> None:  # fmt: skip
    """The gradient of f (via ag.vjp, float64) matches central finite differences for every input."""
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    inputs = [tensor(backend, a, ag.float64) for a in arrays]
    out, pullback = ag.vjp(f, *inputs)
    cot = rng(seed).standard_normal(out.shape)
    got = pullback(tensor(backend, cot, ag.float64))
    want = numerical_grads(f, arrays, backend, cot, eps)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"gradient {k}: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g.numpy(), w, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")
