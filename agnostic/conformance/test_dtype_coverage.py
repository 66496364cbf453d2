"""Every dtype through the ops that accept it: float16 and bfloat16 (against a float64 reference
of the same rounded inputs, at half-precision tolerance) and the integer types. The elementwise
ops in half precision are in `test_elementwise.py`."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, rng, tensor

COVERS = {"matmul", "sum", "mean", "max", "softmax", "conv", "max_pool", "avg_pool", "layer_norm"}

HALF = [ag.float16, ag.bfloat16]


def _rounded(a: np.ndarray, dtype: dtypes.DType) -> np.ndarray:
    return a.astype(dtypes.to_numpy_dtype(dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_reductions_matmul_and_nn_half_precision(backend: ag.Device, dtype: dtypes.DType) -> None:
    r = rng(32)
    a = _rounded(r.uniform(-1, 1, (4, 8)), dtype)
    b = _rounded(r.uniform(-1, 1, (8, 3)), dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    x = tensor(backend, a)
    rtol = 3e-2 if dtype is ag.bfloat16 else 5e-3
    assert_close(x @ tensor(backend, b), a64 @ b64, dtype=dtype, rtol=rtol, atol=rtol)
    assert_close(ag.sum(x, axis=1), a64.sum(axis=1), dtype=dtype, rtol=rtol, atol=rtol)
    assert_close(ag.mean(x), a64.mean(), dtype=dtype, rtol=rtol, atol=rtol)
    assert_close(ag.max(x, axis=0), a64.max(axis=0), dtype=dtype)
    e = np.exp(a64 - a64.max(axis=1, keepdims=True))
    assert_close(ag.softmax(x, axis=1), e / e.sum(axis=1, keepdims=True), dtype=dtype, rtol=rtol, atol=rtol)
    img = _rounded(r.uniform(-1, 1, (1, 2, 6, 6)), dtype)
    w = _rounded(r.uniform(-1, 1, (3, 2, 3, 3)), dtype)
    out = ag.functional.conv2d(tensor(backend, img), tensor(backend, w))
    assert out.dtype is dtype and out.shape == (1, 3, 4, 4)
    assert ag.functional.max_pool2d(tensor(backend, img), 2).dtype is dtype
    assert ag.functional.avg_pool2d(tensor(backend, img), 2).dtype is dtype
    assert ag.functional.layer_norm(x, 8).dtype is dtype


@pytest.mark.parametrize(
    "dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8, ag.uint16, ag.uint32, ag.uint64]
)  # every unsigned op in detail: test_unsigned.py
def test_integer_reductions_shape_and_indexing(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = (np.arange(12) % 7).reshape(3, 4).astype(dtypes.to_numpy_dtype(dtype))
    x = tensor(backend, host)
    assert_close(ag.max(x, axis=0), host.max(axis=0), dtype=dtype)
    assert_close(ag.min(x), host.min(), dtype=dtype)
    acc = ag.uint64 if dtype.kind == "u" else ag.int64  # the Array API's default (unsigned) integer
    assert_close(ag.sum(x, axis=1), host.sum(axis=1, dtype=np.int64), dtype=acc)
    assert_close(ag.argmax(x, axis=1), host.argmax(axis=1), dtype=ag.int64)
    assert_close(ag.sort(x, axis=1), np.sort(host, axis=1), dtype=dtype)
    assert_close(x[:, ::2], host[:, ::2], dtype=dtype)
    assert_close(ag.concat([x, x], axis=0), np.concatenate([host, host]), dtype=dtype)
    assert_close(ag.where(x > 2, x, 0), np.where(host > 2, host, 0), dtype=dtype)
    assert_close(x @ x.T, (host.astype(np.int64) @ host.T.astype(np.int64)).astype(host.dtype), dtype=dtype)
