"""torch's Tensor methods on agnostic tensors, checked against torch itself on every backend here."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

torch = pytest.importorskip("torch", reason="the reference is torch itself (pip install torch)")

BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)

rng = np.random.default_rng(20)
A = rng.standard_normal((3, 4, 5)).astype(np.float32)
M = rng.standard_normal((4, 6)).astype(np.float32)


def same(got: object, want: torch.Tensor, tol: float = 1e-6) -> None:
    """`got` (an agnostic tensor) has torch's shape, dtype name and values."""
    assert isinstance(got, ag.Tensor), type(got)
    assert got.shape == tuple(want.shape)
    assert got.dtype.name == str(want.dtype).removeprefix("torch."), (got.dtype, want.dtype)
    g = got.numpy().astype(np.float64) if got.dtype is not ag.bfloat16 else got.astype(ag.float32).numpy()
    np.testing.assert_allclose(g, want.double().numpy(), rtol=tol, atol=tol)


def pieces(got: list | tuple, want: tuple) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        same(g, w)


@by_name
def test_view_contiguous_and_shape_queries(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    same(x.view(3, -1), t.view(3, -1))
    same(x.view((5, 12)), t.view((5, 12)))
    same(x.view(-1), t.view(-1))
    same(x.view(ag.int32), t.view(torch.int32))
    same(x.view_as(backend.tensor(np.zeros((6, 10)))), t.view(6, 10))
    same(x.contiguous(), t.contiguous())
    assert (x.numel(), x.dim()) == (t.numel(), t.dim())
    assert x.size() == tuple(t.size()) and x.size(-1) == t.size(-1) and x.size(1) == t.size(1)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape tensor of shape \(3, 4, 5\)"):
        x.view(7, -1)


@by_name
def test_chunk_and_split_follow_torch(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    for chunks, dim in ((2, 0), (3, 1), (4, -1), (5, 2), (7, 0)):
        assert type(x.chunk(chunks, dim)) is tuple  # as torch's
        pieces(x.chunk(chunks, dim), t.chunk(chunks, dim))
        pieces(ag.chunk(x, chunks, dim=dim), torch.chunk(t, chunks, dim=dim))
    for size, dim in ((2, 1), (3, -1), (5, 2), (1, 0), (10, 1)):
        assert type(x.split(size, dim)) is tuple
        pieces(x.split(size, dim), t.split(size, dim))
        pieces(x.split(size, dim=dim), t.split(size, dim=dim))
    pieces(x.split([1, 3, 1], 2), t.split([1, 3, 1], 2))
    pieces(x.split([0, 4], dim=1), t.split([0, 4], dim=1))
    empty, te = backend.tensor(np.zeros((0, 2), np.float32)), torch.zeros((0, 2))
    pieces(empty.chunk(3), te.chunk(3))
    pieces(empty.split(2), te.split(2))
    with pytest.raises(
        ValueError, match=r"split: piece sizes \[1, 1\] must be non-negative and sum to axis 1's length 4"
    ):
        x.split([1, 1], 1)
    with pytest.raises(ValueError, match="chunk: chunks must be positive, got 0"):
        x.chunk(0)
    with pytest.raises(ValueError, match="split: piece size must be positive, got 0"):
        x.split(0)


@by_name
def test_masked_fill_and_where(backend):
    x, t = backend.tensor(M), torch.tensor(M)
    mask = M > 0.3
    same(x.masked_fill(backend.tensor(mask), -1e9), t.masked_fill(torch.tensor(mask), -1e9))
    row = mask[:1]  # broadcast along rows, as attention masks are
    same(x.masked_fill(backend.tensor(row), float("-inf")), t.masked_fill(torch.tensor(row), float("-inf")))
    ints, ti = backend.tensor(np.arange(6)), torch.arange(6)
    m6 = np.array([True, False] * 3)
    same(ints.masked_fill(backend.tensor(m6), 2.7), ti.masked_fill(torch.tensor(m6), 2.7))
    same(
        x.masked_fill(backend.tensor(mask), backend.tensor(3.0)),
        t.masked_fill(torch.tensor(mask), torch.tensor(3.0)),
    )
    same(x.where(backend.tensor(mask), 0.0), t.where(torch.tensor(mask), 0.0))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor, got float32"):
        x.masked_fill(x, 0.0)
    with pytest.raises(
        ValueError, match=r"masked_fill: value must be a scalar or a 0-d tensor, got shape \(4, 6\)"
    ):
        x.masked_fill(backend.tensor(mask), x)


@by_name
def test_dtype_methods(backend):
    x, t = backend.tensor(M * 10), torch.tensor(M * 10)
    for name in ("float", "double", "half", "bfloat16", "long", "int", "short", "byte", "bool"):
        if name == "byte":  # negative floats to uint8 are undefined in C; torch and NumPy differ
            same(abs(x).byte(), abs(t).byte())
            continue
        same(getattr(x, name)(), getattr(t, name)(), tol=0.5)
    same(x.type_as(backend.tensor([1], dtype=ag.int16)), t.type_as(torch.tensor([1], dtype=torch.int16)))


@by_name
def test_cpu_gives_the_backends_cpu_device(backend):
    x = backend.tensor(M)
    y = x.cpu()
    assert y.device.name == backend.name and y.device.device == "cpu"
    np.testing.assert_array_equal(y.numpy(), M)
    if backend.device == "cpu":
        assert y is x


@by_name
def test_shape_methods(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    same(x.unsqueeze(1), t.unsqueeze(1))
    same(x[:1].squeeze(0), t[:1].squeeze(0))
    same(x.permute(2, 0, 1), t.permute(2, 0, 1))
    same(x.permute((1, 2, 0)), t.permute((1, 2, 0)))
    same(x.transpose(0, 2), t.transpose(0, 2))
    same(x.flatten(1), t.flatten(1))
    same(x.flatten(0, 1), t.flatten(0, 1))
    same(x.flatten(), t.flatten())
    m, tm = backend.tensor(M), torch.tensor(M)
    same(m.t(), tm.t())
    same(m[0].t(), tm[0].t())
    with pytest.raises(
        ValueError, match=r"t: expects a tensor of at most 2 dimensions, got shape \(3, 4, 5\)"
    ):
        x.t()
    same(x[:, :1].expand(2, 3, 4, -1), t[:, :1].expand(2, 3, 4, -1))
    same(x[:, :1].expand((-1, 4, 5)), t[:, :1].expand((-1, 4, 5)))
    same(m[:1].expand_as(m), tm[:1].expand_as(tm))
    with pytest.raises(ValueError, match="expand: -1 is not allowed for a new leading dimension"):
        x.expand(-1, 3, 4, 5)
    with pytest.raises(
        ValueError, match=r"broadcast_to: shapes \(3, 4, 5\) and \(3, 4, 6\) cannot be broadcast"
    ):
        x.expand(3, 4, 6)


@by_name
def test_repeat_tiles_as_torch(backend):
    x, t = backend.tensor(M[:2, :3]), torch.tensor(M[:2, :3])
    same(x.repeat(2, 3), t.repeat(2, 3))
    same(x.repeat(2, 1, 2), t.repeat(2, 1, 2))
    same(x.repeat((1, 2)), t.repeat((1, 2)))
    v, tv = backend.tensor(np.arange(3)), torch.arange(3)
    same(v.repeat(2), tv.repeat(2))
    same(v.repeat_interleave(2), tv.repeat_interleave(2))
    same(x.repeat_interleave(2, dim=1), t.repeat_interleave(2, dim=1))
    same(x.repeat(2, axis=1), t.repeat_interleave(2, dim=1))  # NumPy's repeat, said so by axis=
    with pytest.raises(ValueError, match="repeat: 1 repeat counts for a tensor of 2 dimensions"):
        x.repeat(2)


@by_name
def test_softmax_methods(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    for dim in (0, 1, -1):
        same(x.softmax(dim), t.softmax(dim))
        same(x.log_softmax(dim), t.log_softmax(dim), tol=1e-5)
    same(x.softmax(-1, dtype=ag.float64), t.softmax(-1, dtype=torch.float64))
    i, ti = backend.tensor(np.arange(4)), torch.arange(4)
    same(i.softmax(0), ti.float().softmax(0))
    with pytest.raises(ValueError, match="softmax: axis 3 is out of range for a tensor of 3 dimensions"):
        x.softmax(3)


@by_name
def test_reductions_take_a_positional_dim_and_keepdim(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    for name in ("sum", "mean", "prod", "amax", "amin", "logsumexp"):
        same(getattr(x, name)(1), getattr(t, name)(1), tol=1e-5)
        same(getattr(x, name)(-1, True), getattr(t, name)(-1, True), tol=1e-5)
        dims = (0, 2) if name != "prod" else 2  # torch's prod takes one dim
        same(getattr(x, name)(dim=dims, keepdim=True), getattr(t, name)(dim=dims, keepdim=True), tol=1e-5)
    for name in ("argmax", "argmin"):
        same(getattr(x, name)(1), getattr(t, name)(1))
        same(getattr(x, name)(2, True), getattr(t, name)(2, True))
        same(getattr(x, name)(), getattr(t, name)())
    b, tb = x > 0.5, t > 0.5
    same(b.any(1), tb.any(1))
    same(b.all(dim=0), tb.all(dim=0))
    same(x.sum(), t.sum())
    same(x.sum(axis=1), t.sum(1))  # the Array API spelling still works
    same(x.cumsum(1), t.cumsum(1))
    same(x.cumsum(dim=2), t.cumsum(dim=2))
    same(x.flip(0), t.flip(0))
    same(x.roll(1, 2), t.roll(1, 2))
    same(x.argsort(1, True), t.argsort(1, True))
    with pytest.raises(TypeError, match="sum: got axis twice, positionally and as a keyword"):
        x.sum(1, dim=2)
    with pytest.raises(TypeError, match="sum: takes at most 3 positional arguments after the tensor, got 4"):
        x.sum(1, True, None, 2)


@by_name
def test_max_min_sort_topk_return_values_and_indices(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    for name in ("max", "min"):
        got, want = getattr(x, name)(1), getattr(t, name)(1)
        assert got._fields == ("values", "indices")
        same(got.values, want.values)
        same(got.indices, want.indices)
        values, indices = getattr(x, name)(dim=-1, keepdim=True)
        same(values, getattr(t, name)(dim=-1, keepdim=True).values)
        same(indices, getattr(t, name)(dim=-1, keepdim=True).indices)
        same(getattr(x, name)(), getattr(t, name)())
        same(getattr(x, name)(axis=1), getattr(t, name)(1).values)
        other = backend.tensor(np.float32(0.1) * np.ones(5, np.float32))
        same(getattr(x, name)(other), getattr(t, name)(torch.full((5,), 0.1)))
        with pytest.raises(TypeError, match=f"{name}: got both axis= and dim="):
            getattr(x, name)(1, axis=1)
    ties = np.array([[3, 1, 3, 1, 2], [0, 0, 0, 1, 1]], np.float32)
    for arr in (A, ties):
        xs, ts = backend.tensor(arr), torch.tensor(arr)
        for kwargs in ({}, {"dim": 0}, {"descending": True}):
            got, want = xs.sort(**kwargs), ts.sort(stable=True, **kwargs)
            same(got.values, want.values)
            same(got.indices, want.indices)
    same(x.sort(axis=1), t.sort(1).values)  # the Array API spelling: values alone
    got, want = x.topk(2, 1), t.topk(2, 1)
    same(got.values, want.values)
    same(got.indices, want.indices)
    got, want = x.topk(3, dim=0, largest=False), t.topk(3, dim=0, largest=False)
    same(got.values, want.values)


@by_name
def test_std_var_with_torch_keywords(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    for name in ("std", "var"):
        f, g = getattr(x, name), getattr(t, name)
        same(f(1, unbiased=True), g(1, unbiased=True), tol=1e-5)
        same(f(1, unbiased=False, keepdim=True), g(1, unbiased=False, keepdim=True), tol=1e-5)
        same(f(dim=(0, 2), correction=1), g(dim=(0, 2), correction=1), tol=1e-5)
        same(f(unbiased=True), g(unbiased=True), tol=1e-5)
        same(f(True), g(True), tol=1e-5)
        same(f(correction=0), g(correction=0), tol=1e-5)
        with pytest.raises(TypeError, match=f"{name}: give correction= or unbiased=, not both"):
            f(1, unbiased=True, correction=1)


@by_name
def test_creation_copy_and_scalar_methods(backend):
    x, t = backend.tensor(M), torch.tensor(M)
    same(x.new_zeros((2, 3)), t.new_zeros((2, 3)))
    same(x.new_ones(4, dtype=ag.int32), t.new_ones(4, dtype=torch.int32))
    same(x.new_full((2,), 7.5), t.new_full((2,), 7.5))
    same(x.new_empty((3,)).new_zeros(3), t.new_zeros(3))
    same(x.new_tensor([1.0, 2.0]), t.new_tensor([1.0, 2.0]))
    assert x.new_zeros(2).device is backend
    same(x.clone(), t.clone())
    same(x.pow(2), t.pow(2))
    same(x.clamp(min=-0.5, max=0.5), t.clamp(min=-0.5, max=0.5))
    same(x.abs().sqrt().log().exp(), t.abs().sqrt().log().exp(), tol=1e-5)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        same(getattr(x, name)(0.1), getattr(t, name)(0.1))
    for name in ("add", "sub", "mul", "div"):
        same(getattr(x, name)(x[0]), getattr(t, name)(t[0]))
    assert x[1, 2].item() == t[1, 2].item() and x.tolist() == t.tolist()


@by_name
def test_clone_keeps_gradients_flowing(backend):
    w = backend.tensor(M, requires_grad=True)
    c = w.clone()
    assert c is not w and c.grad_fn is not None
    (c * c).sum().backward()
    tw = torch.tensor(M, requires_grad=True)
    (tw.clone() * tw.clone()).sum().backward()
    same(w.grad, tw.grad)
    assert w.detach().clone().grad_fn is None


def test_size_is_an_int_and_torchs_size_method():
    x = ag.zeros((2, 3, 4))
    n = x.size
    assert n == 24 and isinstance(n, int) and n + 1 == 25 and n * 2 == 48 and n // 5 == 4
    assert hash(n) == hash(24) and {n: "a"}[24] == "a" and repr(n) == "24" and str(n) == "24"
    assert json.dumps({"n": n}) == '{"n": 24}'
    restored = pickle.loads(pickle.dumps(n))
    assert restored == 24 and type(restored) is int
    assert n() == (2, 3, 4) and n(0) == 2 and n(-1) == 4
    assert range(n)[-1] == 23 and np.zeros(n).shape == (24,)
    with pytest.raises(IndexError, match="size: dim 3 is out of range for a tensor of 3 dimensions"):
        x.size(3)
    with pytest.raises(TypeError, match="size: dim must be an int, got 'a'"):
        x.size("a")


@by_name
def test_functions_take_dim_and_keepdim_as_aliases(backend):
    x, t = backend.tensor(A), torch.tensor(A)
    same(ag.sum(x, dim=1, keepdim=True), torch.sum(t, dim=1, keepdim=True))
    same(ag.mean(x, dim=(0, 2)), torch.mean(t, dim=(0, 2)))
    same(ag.argmax(x, dim=-1), torch.argmax(t, dim=-1))
    same(ag.concat([x, x], dim=1), torch.cat([t, t], dim=1))
    same(ag.stack([x, x], dim=-1), torch.stack([t, t], dim=-1))
    same(ag.flip(x, dim=(0, 1)), torch.flip(t, dims=(0, 1)))
    same(ag.cumsum(x, dim=2), torch.cumsum(t, dim=2))
    same(ag.squeeze(x[:, :1], dim=1), torch.squeeze(t[:, :1], dim=1))
    same(ag.std(x, dim=1, correction=1), torch.std(t, dim=1))
    same(ag.amax(x, dim=0), torch.amax(t, dim=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pieces(ag.split(x, split_size_or_sections=2, dim=1), torch.split(t, 2, dim=1))
    with pytest.raises(
        TypeError, match=r"sum: got both axis= and dim=; they are one argument \(dim is torch's"
    ):
        ag.sum(x, axis=0, dim=1)
    with pytest.raises(TypeError, match="mean: got both keepdims= and keepdim="):
        ag.mean(x, keepdims=True, keepdim=True)


@by_name
def test_to_takes_torchs_device_strings_and_tensors(backend):
    x = backend.tensor(M)
    assert x.to("cpu").device is ag.backend(backend.name, "cpu")
    assert x.to(device="cpu", non_blocking=True).device.device == "cpu"
    like = ag.zeros(2, dtype=ag.int32, device="numpy")
    y = x.to(like)
    assert y.device is like.device and y.dtype is ag.int32
    np.testing.assert_array_equal(y.numpy(), torch.tensor(M).to(torch.int32).numpy())
    assert x.to(x.dtype) is x and x.to(x.dtype, copy=True) is not x
    with pytest.raises(ValueError, match=rf"backend '{backend.name}': unknown device 'nowhere'"):
        x.to("nowhere")
    with pytest.raises(TypeError, match="to: give another tensor alone"):
        x.to(like, dtype=ag.float64)


@by_name
def test_nonzero_as_tuple(backend):
    a = np.array([[0, 1, 0], [2, 0, 3]])
    x, t = backend.tensor(a), torch.tensor(a)
    same(x.nonzero(as_tuple=False), t.nonzero())
    for got, want in zip(x.nonzero(as_tuple=True), t.nonzero(as_tuple=True)):
        same(got, want)
    same(backend.tensor(np.zeros((2, 2))).nonzero(as_tuple=False), torch.zeros((2, 2)).nonzero())
    with pytest.warns(ag.AmbiguityWarning, match=r"nonzero: torch's x.nonzero\(\) is one \(N, ndim\) tensor"):
        rows, cols = x.nonzero()
    np.testing.assert_array_equal(rows.numpy(), np.nonzero(a)[0])
    np.testing.assert_array_equal(cols.numpy(), np.nonzero(a)[1])
