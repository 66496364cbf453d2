"""Ops whose result size depends on the data (computed on the host): unique_*, searchsorted,
and the complex-part functions that are trivial for real dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance.support import assert_close, tensor

COVERS = {"nonzero"}


def test_unique_all_matches_numpy(backend: ag.Device) -> None:
    data = np.array([[3, 1, 2], [3, 1, 7]], dtype=np.int32)
    res = ag.unique_all(tensor(backend, data))
    values, index, inverse, counts = np.unique(
        data.reshape(-1), return_index=True, return_inverse=True, return_counts=True
    )
    assert_close(res.values, values, dtype=ag.int32)
    assert_close(res.indices, index, dtype=ag.int64)
    assert_close(res.inverse_indices, inverse.reshape(data.shape), dtype=ag.int64)
    assert_close(res.counts, counts, dtype=ag.int64)
    assert_close(ag.unique_values(tensor(backend, data)), values)
    assert_close(ag.unique_counts(tensor(backend, data)).counts, counts)
    assert_close(ag.unique_inverse(tensor(backend, data)).inverse_indices, inverse.reshape(data.shape))


def test_unique_counts_each_nan_as_distinct(backend: ag.Device) -> None:
    res = ag.unique_counts(tensor(backend, np.array([np.nan, 1.0, np.nan], dtype=np.float32)))
    assert res.values.shape == (3,)
    assert_close(res.counts, np.array([1, 1, 1]))


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted(backend: ag.Device, side: str) -> None:
    sorted_ = np.array([1.0, 2.0, 2.0, 5.0], dtype=np.float32)
    queries = np.array([[0.0, 2.0], [5.0, 9.0]], dtype=np.float32)
    out = ag.searchsorted(tensor(backend, sorted_), tensor(backend, queries), side=side)
    assert_close(out, np.searchsorted(sorted_, queries, side=side), dtype=ag.int64)


def test_searchsorted_rejects_bad_input(backend: ag.Device) -> None:
    with pytest.raises(ValueError, match=r"searchsorted: x1 must be 1-D, got shape \(2, 2\)"):
        ag.searchsorted(backend.zeros(2, 2), backend.zeros(3))
    with pytest.raises(ValueError, match="side must be 'left' or 'right'"):
        ag.searchsorted(backend.zeros(2), backend.zeros(3), side="middle")


def test_complex_parts_of_real_tensors(backend: ag.Device) -> None:
    x = tensor(backend, np.array([1.5, -2.0], dtype=np.float32))
    assert_close(ag.real(x), [1.5, -2.0])
    assert_close(ag.conj(x), [1.5, -2.0])
    assert_close(ag.imag(x), [0.0, 0.0], dtype=ag.float32)


def test_nonzero(backend: ag.Device) -> None:
    data = np.array([[0, 2, 0], [3, 0, 4]], dtype=np.int64)
    rows, cols = ag.nonzero(tensor(backend, data))
    want_rows, want_cols = np.nonzero(data)
    assert_close(rows, want_rows, dtype=ag.int64)
    assert_close(cols, want_cols, dtype=ag.int64)
