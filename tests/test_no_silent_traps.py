"""Calls that NumPy and torch read differently raise or warn, naming both meanings; the explicit
keyword gives each meaning, checked against NumPy and torch themselves."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

torch = pytest.importorskip("torch", reason="the reference is torch itself (pip install torch)")

BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)

rng = np.random.default_rng(3)
W = rng.standard_normal((2, 3, 36)).astype(np.float32)  # the case: a 36-wide last axis


def close(got: ag.Tensor, want: object) -> None:
    want = want.numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


@contextlib.contextmanager
def no_warning():
    """A block in which any warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@by_name
def test_split_with_an_int_raises_naming_both_meanings(backend):
    x = backend.tensor(W)
    with pytest.raises(ValueError) as e:
        ag.split(x, 12, axis=2)
    msg = str(e.value)
    assert "NumPy reads 12 as the number of equal sections, torch as the size of each piece" in msg
    assert "ag.split(x, sections=12, axis=2)" in msg and "split_size_or_sections=12" in msg
    with no_warning():
        sections = ag.split(x, sections=12, axis=2)
        sizes = ag.split(x, split_size_or_sections=12, axis=2)
    assert [p.shape[2] for p in sections] == [3] * 12 and [p.shape[2] for p in sizes] == [12] * 3
    for got, want in zip(sections, np.split(W, 12, axis=2)):
        close(got, want)
    for got, want in zip(sizes, torch.split(torch.tensor(W), 12, dim=2)):
        close(got, want)


@by_name
def test_split_with_a_list_warns_and_cuts_at_the_indices(backend):
    x = backend.tensor(W)
    with pytest.warns(
        ag.AmbiguityWarning, match=r"NumPy reads \[6, 30\] as cut indices, torch as piece sizes"
    ):
        got = ag.split(x, [6, 30], axis=2)
    for g, w in zip(got, np.split(W, [6, 30], axis=2)):
        close(g, w)
    with no_warning():
        by_indices = ag.split(x, indices=[6, 30], axis=2)
        by_sizes = ag.split(x, split_size_or_sections=[6, 30], axis=2)
    assert [p.shape[2] for p in by_indices] == [6, 24, 6]
    for g, w in zip(by_sizes, torch.split(torch.tensor(W), [6, 30], dim=2)):
        close(g, w)


def test_split_needs_exactly_one_way():
    x = ag.zeros((4,))
    with pytest.raises(TypeError, match=r"split: give exactly one of sections=.*got none"):
        ag.split(x)
    with pytest.raises(TypeError, match=r"got \['indices', 'sections'\]"):
        ag.split(x, sections=2, indices=[1])


@by_name
def test_pad_with_a_flat_pair_raises_on_more_than_one_axis(backend):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x = backend.tensor(a)
    with pytest.raises(ValueError) as e:
        ag.pad(x, (1, 2))
    msg = str(e.value)
    assert "NumPy pads every axis by it, torch's F.pad the last axis alone" in msg
    assert "ag.pad(x, pad_width=(1, 2))" in msg and "ag.pad(x, [(0, 0), (1, 2)])" in msg
    close(ag.pad(x, pad_width=(1, 2)), np.pad(a, (1, 2)))
    close(ag.pad(x, [(0, 0), (1, 2)]), torch.nn.functional.pad(torch.tensor(a), (1, 2)))
    with pytest.raises(
        ValueError, match=r"pad: \(1, 2, 3, 0\) is torch's F.pad form .* ag.pad\(x, \[\(3, 0\), \(1, 2\)\]\)"
    ):
        ag.pad(x, (1, 2, 3, 0))
    close(ag.pad(x, [(3, 0), (1, 2)]), torch.nn.functional.pad(torch.tensor(a), (1, 2, 3, 0)))
    with pytest.raises(
        ValueError, match=r"pad: torch-style \(1, 1, 1, 1, 1, 1\) pads 3 axes of a 2-D tensor"
    ):
        ag.pad(x, (1, 1, 1, 1, 1, 1))
    with no_warning():  # where both readings agree, or NumPy's form cannot be torch's, no complaint
        close(ag.pad(backend.tensor(a[0]), (1, 2)), np.pad(a[0], (1, 2)))
        close(ag.pad(x, 1), np.pad(a, 1))
        close(ag.pad(x, ((1, 0), (0, 2)), mode="edge"), np.pad(a, ((1, 0), (0, 2)), mode="edge"))
    with pytest.raises(TypeError, match="pad: give the widths once, positionally or as pad_width="):
        ag.pad(x, 1, pad_width=1)


@by_name
def test_max_min_with_a_dim_raise_and_the_method_returns_indices(backend):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = backend.tensor(a), torch.tensor(a)
    for name in ("max", "min"):
        fn = getattr(ag, name)
        for args, kwargs in (((x, 1), {}), ((x,), {"dim": 1})):
            with pytest.raises(
                TypeError, match=rf"{name}: torch.{name}\(x, dim\) returns \(values, indices\)"
            ):
                fn(*args, **kwargs)
        close(fn(x, axis=1), getattr(np, name)(a, axis=1))
        close(getattr(ag, "a" + name)(x, dim=1), getattr(torch, "a" + name)(t, dim=1))
        values, indices = getattr(x, name)(1)
        close(values, getattr(t, name)(1).values)
        close(indices, getattr(t, name)(1).indices)


@by_name
def test_sort_with_a_dim_raises_and_the_method_returns_indices(backend):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = backend.tensor(a), torch.tensor(a)
    with pytest.raises(TypeError, match=r"sort: torch.sort\(x, dim\) returns \(values, indices\)"):
        ag.sort(x, dim=0)
    close(ag.sort(x, axis=0), np.sort(a, axis=0))
    values, indices = x.sort(0)
    close(values, t.sort(0).values)
    close(indices, t.sort(0).indices)


@by_name
def test_std_var_default_correction_is_never_silent(backend):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = backend.tensor(a), torch.tensor(a)
    for name in ("std", "var"):
        fn, method = getattr(ag, name), getattr(x, name)
        calls = ((fn, (x,), {"dim": 1}), (fn, (x, 1), {}), (method, (1,), {}), (method, (), {"dim": 1}))
        for call, args, kwargs in calls:
            with pytest.raises(
                TypeError, match=rf"{name}: torch's default correction is 1 .* agnostic's is 0"
            ):
                call(*args, **kwargs)
        with pytest.warns(ag.AmbiguityWarning, match=rf"{name}: torch's x.{name}\(\) divides by N - 1"):
            close(method(), getattr(np, name)(a))
        with no_warning():
            close(fn(x), getattr(np, name)(a))  # the Array API function: correction 0, as documented
            close(method(axis=1), getattr(np, name)(a, axis=1))
            close(method(1, unbiased=True), getattr(t, name)(1))
            close(fn(x, dim=1, correction=1), getattr(torch, name)(t, dim=1))
            close(method(correction=1), getattr(t, name)())


@by_name
def test_repeat_method_tiles_as_torch_and_axis_asks_for_numpys(backend):
    v = np.arange(3)
    x, t = backend.tensor(v), torch.tensor(v)
    close(x.repeat(2), t.repeat(2))  # [0 1 2 0 1 2], not NumPy's [0 0 1 1 2 2]
    close(x.repeat(2, axis=0), np.repeat(v, 2))
    close(ag.repeat(x, 2), np.repeat(v, 2))  # the function is NumPy's (torch's is repeat_interleave)


@by_name
def test_gather_in_torchs_argument_order_raises(backend):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    idx = np.array([[0, 2], [1, 1]])
    x, i = backend.tensor(a), backend.tensor(idx)
    with pytest.raises(
        TypeError,
        match=r"gather: agnostic's order is gather\(x, indices, axis\) .* ag.gather\(x, index, axis=1\)",
    ):
        ag.gather(x, 1, i)
    close(ag.gather(x, i, axis=1), torch.gather(torch.tensor(a), 1, torch.tensor(idx)))
    close(ag.gather(x, i, dim=1), torch.gather(torch.tensor(a), 1, torch.tensor(idx)))


def test_squeeze_of_a_longer_axis_raises_where_torch_returns_the_tensor():
    x = ag.zeros((2, 3))
    with pytest.raises(ValueError, match=r"squeeze: axis 0 has size 2, not 1 \(shape \(2, 3\)\)"):
        x.squeeze(0)
    assert tuple(torch.zeros((2, 3)).squeeze(0).shape) == (2, 3)  # torch's reading, for the record


@by_name
def test_transpose_without_axes_raises_beyond_two_dimensions(backend):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x, t = backend.tensor(a), torch.tensor(a)
    with pytest.raises(
        ValueError, match=r"transpose: which axes\? NumPy's transpose\(\) reverses all 3 axes"
    ):
        x.transpose()
    close(x.transpose(0, 2), t.transpose(0, 2))
    close(ag.transpose(x[0]), np.transpose(a[0]))
    close(x[0, 0].transpose(), np.transpose(a[0, 0]))
    with pytest.raises(TypeError, match="transpose: give both axes to swap, or neither"):
        ag.transpose(x, 1)
