"""`agnostic.compat.torch` (the namespace PyTorch model code imports) against torch itself: each
function called the same way on both, on every available backend, compared in values, dtypes,
shapes and result types; gradients for a few; devices, dtypes, grad modes and the errors users see."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.compat.torch as ct

torch = pytest.importorskip("torch", reason="the reference is torch itself (pip install torch)")

BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)

rng = np.random.default_rng(3)
A = rng.standard_normal((3, 4, 5)).astype(np.float32)
B = rng.standard_normal((3, 5, 2)).astype(np.float32)
M = rng.standard_normal((4, 5)).astype(np.float32)
N = rng.standard_normal((5, 3)).astype(np.float32)
V = rng.standard_normal(4).astype(np.float32)
W = rng.standard_normal(6).astype(np.float32)
IDX = rng.integers(0, 5, (3, 4, 2))  # gather indices into A along dim 2 (smaller than A in dim 2)
BOOL = rng.uniform(size=(4, 5)) > 0.5
INT = rng.integers(-7, 8, (4, 5))
NONZERO_INT = np.where(INT == 0, 3, INT)
Q = rng.standard_normal((2, 4, 3, 8)).astype(np.float32)
K = rng.standard_normal((2, 4, 5, 8)).astype(np.float32)


def _np(obj):
    """Results as NumPy, keeping tuple structure and Python scalars."""
    if isinstance(obj, (tuple, list)):
        return tuple(_np(o) for o in obj)
    if isinstance(obj, torch.Tensor):
        return (obj.float() if obj.dtype is torch.bfloat16 else obj).detach().numpy()
    if isinstance(obj, ag.Tensor):
        return np.asarray(obj.numpy(), dtype=np.float32 if obj.dtype is ag.bfloat16 else None)
    return obj


def _same(ours, theirs, rtol=1e-5, atol=1e-6) -> None:
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), (ours, theirs)
        if type(theirs).__module__ == "torch.return_types":  # (values, indices), by name too
            assert type(ours).__name__ == type(theirs).__name__
            _same((ours.values, ours.indices), (theirs.values, theirs.indices), rtol, atol)
        for o, t in zip(ours, theirs):
            _same(o, t, rtol, atol)
        return
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, ag.Tensor), type(ours)
        assert ours.shape == tuple(theirs.shape)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=rtol, atol=atol)
        return
    assert type(ours) is type(theirs) and ours == theirs, (ours, theirs)


# Each case: (id, fn(t, x)) where t is the namespace (torch or agnostic.compat.torch) and x makes one
# of its tensors from a NumPy array.
CASES = [
    ("cat", lambda t, x: t.cat((x(A), x(A)), dim=1)),
    ("cat-negative-dim", lambda t, x: t.cat([x(M), x(M)], -1)),
    ("stack", lambda t, x: t.stack([x(M), x(M), x(M)], dim=2)),
    ("split-size", lambda t, x: t.split(x(A), 2, dim=2)),
    ("split-sizes", lambda t, x: t.split(x(A), [1, 3, 1], dim=2)),
    ("chunk", lambda t, x: t.chunk(x(A), 2, dim=2)),
    ("chunk-fewer", lambda t, x: t.chunk(x(W), 4)),
    ("unbind", lambda t, x: t.unbind(x(M), dim=1)),
    ("tril", lambda t, x: t.tril(x(M))),
    ("triu-diagonal", lambda t, x: t.triu(x(A), diagonal=1)),
    ("tril-ones", lambda t, x: t.tril(t.ones(4, 4))),
    ("topk", lambda t, x: t.topk(x(A), 3)),
    ("topk-dim-smallest", lambda t, x: t.topk(x(A), 2, dim=1, largest=False)),
    ("max-all", lambda t, x: t.max(x(A))),
    ("max-dim", lambda t, x: t.max(x(A), dim=1)),
    ("max-dim-positional-keepdim", lambda t, x: t.max(x(A), 2, True)),
    ("max-elementwise", lambda t, x: t.max(x(M), x(M[::-1].copy()))),
    ("min-dim", lambda t, x: t.min(x(A), dim=-1, keepdim=True)),
    ("amax", lambda t, x: t.amax(x(A), dim=(0, 2))),
    ("argmax", lambda t, x: t.argmax(x(A))),
    ("argmax-dim", lambda t, x: t.argmax(x(A), dim=1, keepdim=True)),
    ("argmin-dim", lambda t, x: t.argmin(x(A), 0)),
    ("sort", lambda t, x: t.sort(x(A), dim=1, descending=True)),
    ("argsort", lambda t, x: t.argsort(x(A), dim=0)),
    ("where", lambda t, x: t.where(x(BOOL), x(M), 0.5)),
    ("where-indices", lambda t, x: t.where(x(BOOL))),
    ("nonzero", lambda t, x: t.nonzero(x(BOOL))),
    ("nonzero-tuple", lambda t, x: t.nonzero(x(BOOL), as_tuple=True)),
    ("softmax", lambda t, x: t.softmax(x(A), dim=1)),
    ("log_softmax", lambda t, x: t.log_softmax(x(A), -1)),
    ("einsum-bmm", lambda t, x: t.einsum("bij,bjk->bik", x(A), x(B))),
    ("einsum-attention", lambda t, x: t.einsum("bhqd,bhkd->bhqk", x(Q), x(K))),
    ("einsum-implicit", lambda t, x: t.einsum("ij,jk", x(M), x(N))),
    ("einsum-ellipsis-trace-free", lambda t, x: t.einsum("...ij->...j", x(A))),
    ("einsum-outer", lambda t, x: t.einsum("i,j->ij", x(V), x(W))),
    ("einsum-list", lambda t, x: t.einsum("ij,jk,kl->il", [x(M), x(N), x(N.T.copy())])),
    ("matmul", lambda t, x: t.matmul(x(A), x(B))),
    ("mm", lambda t, x: t.mm(x(M), x(N))),
    ("bmm", lambda t, x: t.bmm(x(A), x(B))),
    ("addmm", lambda t, x: t.addmm(x(V[:, None] * np.ones((4, 3), np.float32)), x(M), x(N), beta=0.5, alpha=2.0)),
    ("addmm-beta0", lambda t, x: t.addmm(x(np.full((4, 3), np.nan, np.float32)), x(M), x(N), beta=0)),
    ("outer", lambda t, x: t.outer(x(V), x(W))),
    ("clamp", lambda t, x: t.clamp(x(M), min=-0.5, max=0.5)),
    ("clamp-min", lambda t, x: t.clamp(x(M), min=0.0)),
    ("gather", lambda t, x: t.gather(x(A), 2, x(IDX))),
    ("gather-dim0", lambda t, x: t.gather(x(M), 0, x(np.array([[3, 0, 1, 2, 0]])))),
    ("masked_fill", lambda t, x: t.masked_fill(x(M), x(BOOL), float("-inf"))),
    ("masked_fill-broadcast", lambda t, x: t.masked_fill(x(A), x(BOOL[:1]), 2.5)),
    ("flatten", lambda t, x: t.flatten(x(A), 1)),
    ("flatten-range", lambda t, x: t.flatten(x(A), 0, 1)),
    ("transpose", lambda t, x: t.transpose(x(A), 0, 2)),
    ("permute", lambda t, x: t.permute(x(A), (2, 0, 1))),
    ("reshape", lambda t, x: t.reshape(x(A), (-1, 5))),
    ("squeeze", lambda t, x: t.squeeze(x(A[:, :1]))),
    ("squeeze-dim", lambda t, x: t.squeeze(x(A[:, :1]), 1)),
    ("squeeze-not-one", lambda t, x: t.squeeze(x(A), 1)),
    ("unsqueeze", lambda t, x: t.unsqueeze(x(M), -1)),
    ("allclose", lambda t, x: t.allclose(x(M), x(M + 1e-7))),
    ("allclose-not", lambda t, x: t.allclose(x(M), x(M + 1e-2))),
    ("isclose", lambda t, x: t.isclose(x(np.array([1.0, np.inf, np.nan, 2.0], np.float32)), x(np.array([1.0, np.inf, np.nan, 2.1], np.float32)), 0.0, 0.2, True)),
    ("isclose-method", lambda t, x: x(M).isclose(x(M + 1e-2), atol=1e-2)),
    ("isfinite", lambda t, x: t.isfinite(x(np.array([1.0, np.inf, np.nan], np.float32)))),
    ("is_tensor", lambda t, x: (t.is_tensor(x(M)), t.is_tensor(M))),
    ("numel", lambda t, x: t.numel(x(A))),
    ("equal", lambda t, x: (t.equal(x(M), x(M)), t.equal(x(M), x(M[:2])))),
    ("sum-dim", lambda t, x: t.sum(x(A), dim=(0, 2), keepdim=True)),
    ("sum-int", lambda t, x: t.sum(x(INT), 1)),
    ("mean-dim", lambda t, x: t.mean(x(A), -1)),
    ("prod", lambda t, x: t.prod(x(M), 1)),
    ("std", lambda t, x: t.std(x(A), dim=1)),
    ("std-all", lambda t, x: t.std(x(A))),
    ("var-unbiased-false", lambda t, x: t.var(x(A), 1, unbiased=False, keepdim=True)),
    ("var-correction", lambda t, x: t.var(x(A), dim=2, correction=0)),
    ("cumsum", lambda t, x: t.cumsum(x(M), dim=1)),
    ("cumsum-int", lambda t, x: t.cumsum(x(INT), 0)),
    ("logsumexp", lambda t, x: t.logsumexp(x(A), dim=1)),
    ("all", lambda t, x: t.all(x(BOOL), dim=1)),
    ("any", lambda t, x: t.any(x(BOOL))),
    ("flip", lambda t, x: t.flip(x(A), dims=(0, 2))),
    ("roll", lambda t, x: t.roll(x(M), 2, 1)),
    ("roll-flat", lambda t, x: t.roll(x(M), 3)),
    ("repeat_interleave", lambda t, x: t.repeat_interleave(x(M), 2, dim=0)),
    ("narrow", lambda t, x: t.narrow(x(A), 2, 1, 3)),
    ("index_select", lambda t, x: t.index_select(x(A), 1, x(np.array([3, 0, 3])))),
    ("div", lambda t, x: t.div(x(INT), x(NONZERO_INT))),
    ("div-trunc", lambda t, x: t.div(x(INT), x(NONZERO_INT), rounding_mode="trunc")),
    ("div-floor", lambda t, x: t.div(x(M), 0.3, rounding_mode="floor")),
    ("add-alpha", lambda t, x: t.add(x(M), x(M), alpha=2)),
    ("sub-alpha", lambda t, x: t.sub(x(M), 1.0, alpha=0.5)),
    ("elementwise", lambda t, x: (t.exp(x(M)), t.tanh(x(M)), t.sigmoid(x(M)), t.rsqrt(t.abs(x(M))))),
    ("comparisons", lambda t, x: (t.eq(x(M), 0.1), t.gt(x(M), 0), t.le(x(INT), 2), t.ne(x(INT), 0))),
    ("relu", lambda t, x: t.relu(x(M))),
    ("zeros", lambda t, x: (t.zeros(2, 3), t.zeros((2, 3)), t.zeros([4], dtype=t.long))),
    ("ones-empty", lambda t, x: (t.ones(3, dtype=t.bool), t.empty(2, 2).shape)),
    ("full", lambda t, x: (t.full((2,), 3), t.full((2,), 1.5), t.full((2,), True), t.full((1,), 2, dtype=t.float))),
    ("arange", lambda t, x: (t.arange(5), t.arange(1, 7, 2), t.arange(0, 1, 0.25), t.arange(0, 3, dtype=t.long))),
    ("linspace", lambda t, x: t.linspace(-1, 1, 5)),
    ("eye", lambda t, x: (t.eye(3), t.eye(2, 4, dtype=t.int64))),
    ("tensor", lambda t, x: (t.tensor([1, 2]), t.tensor([1.0, 2]), t.tensor(True), t.tensor([[1, 2]], dtype=t.float))),
    ("like", lambda t, x: (t.zeros_like(x(M)), t.ones_like(x(INT)), t.full_like(x(M), 7), t.ones_like(x(M), dtype=t.double))),
    ("dtypes", lambda t, x: tuple(t.zeros(1, dtype=d) for d in (t.float, t.double, t.half, t.long, t.int, t.short, t.bool, t.uint8, t.int8, t.bfloat16, t.float16, t.int32))),
    ("Size", lambda t, x: (t.Size((2, 3)), t.Size([4]).numel())),
]  # fmt: skip


def _maker(t, backend):
    if t is torch:
        return lambda a: torch.from_numpy(np.array(a))
    return lambda a: ct.tensor(a, device=backend)


@by_name
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_function_matches_torch(backend, case):
    _, fn = case
    theirs = fn(torch, _maker(torch, backend))
    with ag.default_backend(backend):
        ours = fn(ct, _maker(ct, backend))
    _same(ours, theirs)
    tensors = [o for o in (ours if isinstance(ours, tuple) else (ours,)) if isinstance(o, ag.Tensor)]
    assert all(o.device is backend for o in tensors)


GRAD_CASES = [
    ("gather", lambda t, a: t.gather(a, 2, t.tensor(IDX)), A),
    ("masked_fill", lambda t, a: t.masked_fill(a, t.tensor(BOOL), 0.0) * a, M),
    ("split", lambda t, a: t.split(a, 2, dim=2)[1] * 3 + t.split(a, 2, dim=2)[2].sum(), A),
    ("einsum", lambda t, a: t.einsum("bij,bjk->bik", a, t.tensor(B.astype(np.float64))), A),
    ("max-dim", lambda t, a: t.max(a, dim=1).values, A),
    ("addmm", lambda t, a: t.addmm(t.tensor(np.ones(3)), a, t.tensor(N.astype(np.float64)), alpha=0.5), M),
    ("std", lambda t, a: t.std(a, dim=1), A),
    ("topk", lambda t, a: t.topk(a, 2).values, A),
]  # fmt: skip


@by_name
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradient_matches_torch(backend, case):
    _, fn, a = case
    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    out = fn(torch, ta)
    seed = np.random.default_rng(0).standard_normal(tuple(out.shape))
    (out * torch.tensor(seed)).sum().backward()
    with ag.default_backend(backend):
        oa = ct.tensor(a, dtype=ct.float64, requires_grad=True)
        o = fn(ct, oa)
        (o * ct.tensor(seed)).sum().backward()
    np.testing.assert_allclose(_np(o), out.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(oa.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- random
@by_name
def test_random_creation_follows_the_seed_stream(backend):
    with ag.default_backend(backend):
        ct.manual_seed(5)
        a = ct.randn(2, 3)
        ct.manual_seed(5)
        b = ct.randn((2, 3))
        r, i, j, p = ct.rand(1000), ct.randint(10, (1000,)), ct.randint(3, 6, size=(2, 500)), ct.randperm(7)
        like = ct.randn_like(ct.zeros(2, 2, dtype=ct.float64))
    ref = ag.backend("numpy")
    ct.manual_seed(5)
    c = ct.randn(2, 3, device=ref)
    assert a.shape == (2, 3) and a.dtype is ct.float32 and a.device is backend
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-6)  # one seed, one draw everywhere
    assert 0 <= r.numpy().min() and r.numpy().max() < 1 and abs(r.numpy().mean() - 0.5) < 0.05
    assert i.dtype is ct.int64 and set(np.unique(i.numpy())) == set(range(10))
    assert j.shape == (2, 500) and set(np.unique(j.numpy())) == {3, 4, 5}
    assert sorted(p.numpy().tolist()) == list(range(7)) and p.dtype is ct.int64
    assert like.dtype is ct.float64


@by_name
def test_multinomial_draws_with_torch_distribution(backend):
    probs = np.array([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 0.0, 2.0]], np.float32)  # rows need not sum to 1
    with ag.default_backend(backend):
        ct.manual_seed(0)
        with_rep = ct.multinomial(ct.tensor(probs), 4000, replacement=True)
        no_rep = [ct.multinomial(ct.tensor(probs), 3) for _ in range(300)]
        one = ct.multinomial(ct.tensor(probs[0]), 1)
        ct.manual_seed(0)
        again = ct.multinomial(ct.tensor(probs), 4000, replacement=True)
    ref = torch.multinomial(torch.tensor(probs), 3)
    assert with_rep.dtype is ct.int64 and with_rep.shape == (2, 4000) and one.shape == (1,)
    np.testing.assert_array_equal(with_rep.numpy(), again.numpy())
    freq = np.stack([np.bincount(row, minlength=4) / 4000 for row in with_rep.numpy()])
    np.testing.assert_allclose(freq, probs / probs.sum(1, keepdims=True), atol=0.03)
    for draw in no_rep:
        assert draw.shape == tuple(ref.shape)
        for row, p in zip(draw.numpy(), probs):
            assert len(set(row)) == 3 and all(p[k] > 0 for k in row)
    first = np.bincount([d.numpy()[0, 0] for d in no_rep], minlength=4) / len(no_rep)
    np.testing.assert_allclose(first, probs[0] / probs[0].sum(), atol=0.08)  # first draw ~ p


def test_multinomial_errors():
    p = ct.tensor([0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="cannot draw 4 samples from 3 categories without replacement"):
        ct.multinomial(p, 4)
    with pytest.raises(ValueError, match="fewer than 3 categories of non-zero probability"):
        ct.multinomial(p, 3)
    with pytest.raises(ValueError, match="non-negative"):
        ct.multinomial(ct.tensor([0.5, -0.1]), 1)
    with pytest.raises(ValueError, match="1-D or 2-D float"):
        ct.multinomial(ct.tensor([1, 2]), 1)


# ---------------------------------------------------------------------- devices, dtypes, grad modes
def test_device_strings_name_devices_of_the_default_backend():
    numpy_ = ag.backend("numpy")
    assert ct.zeros(2, device="cpu").device is ag.get_default_backend()
    assert ct.device("cpu") is ag.get_default_backend()
    assert ct.ones(2, device=numpy_).device is numpy_
    assert ct.arange(3, device="numpy:cpu").device is numpy_
    for b in BACKENDS:
        with ag.default_backend(b):
            assert ct.zeros(1, device="cpu").device is ag.backend(b.name, "cpu")
            x = ct.zeros(2)
        assert x.device is b and ct.zeros_like(x).device is b and ct.tensor(x).device is b
    with ag.default_backend("numpy"):
        with pytest.raises(ValueError, match="device 'cuda': the default backend 'numpy' has no such device"):
            ct.zeros(2, device="cuda")
    with pytest.raises(TypeError, match="expected a Device, a backend name or a torch device string"):
        ct.zeros(2, device=3.5)
    with pytest.raises(ValueError, match="give the index once"):
        ct.device("cuda:0", 1)


def test_dtype_names_are_agnostic_dtypes():
    pairs = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
             "short": "int16", "bool": "bool", "bfloat16": "bfloat16", "uint8": "uint8"}  # fmt: skip
    for name, ref in pairs.items():
        assert getattr(ct, name) is getattr(ag, ref)
        assert str(getattr(torch, name)) == f"torch.{ref}"
    assert isinstance(ct.long, ct.dtype) and ct.get_default_dtype() is ct.float32
    assert ct.Tensor is ag.Tensor and isinstance(ct.zeros(1), ct.Tensor)
    x = ct.zeros(2, 3)
    assert isinstance(x.shape, ct.Size) and isinstance(x.size(), ct.Size) and x.size() == ct.Size([2, 3])
    assert not isinstance([2, 3], ct.Size) and not isinstance(("a",), ct.Size)


def test_importing_the_namespace_imports_no_backend_library():
    code = "import sys, agnostic.compat.torch; print(sorted({'torch', 'jax', 'cupy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_grad_and_inference_mode_as_blocks_and_decorators():
    w = ct.ones(2, requires_grad=True)

    @ct.no_grad()
    def f(x):
        return (x * 2).requires_grad or ct.is_grad_enabled()

    @ct.inference_mode()
    def g(x):
        return (x * 2).requires_grad or ct.is_grad_enabled()

    assert f(w) is False and g(w) is False and ct.is_grad_enabled()
    with ct.no_grad():
        assert not (w * 2).requires_grad
        with ct.enable_grad():
            assert (w * 2).requires_grad
    with ct.inference_mode(False):
        assert (w * 2).requires_grad
    with ct.inference_mode():
        assert not ct.is_grad_enabled()
    assert ct.is_grad_enabled()


def test_errors_name_the_function_and_the_fix():
    x = ct.zeros(3, 4)
    with pytest.raises(
        ValueError, match=r"split: piece sizes \[1, 2\] must be non-negative and sum to axis 1's length 4"
    ):
        ct.split(x, [1, 2], dim=1)
    with pytest.raises(ValueError, match="split: piece size must be positive"):
        ct.split(x, 0)
    with pytest.raises(ValueError, match="chunk: chunks must be positive"):
        ct.chunk(x, 0)
    with pytest.raises(ValueError, match=r"gather: index \(3, 5\) is larger than input \(3, 4\) in dim 1"):
        ct.gather(x, 0, ct.zeros(3, 5, dtype=ct.long))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor"):
        ct.masked_fill(x, ct.zeros(3, 4), 1.0)
    with pytest.raises(ValueError, match="bmm: needs 3-D tensors"):
        ct.bmm(x, x)
    with pytest.raises(ValueError, match="mm: needs 2-D matrices"):
        ct.mm(ct.zeros(2, 3, 4), x)
    with pytest.raises(TypeError, match="randint: expected randint"):
        ct.randint(1, 2, 3, 4)
    with pytest.raises(TypeError, match="zeros: size must be ints"):
        ct.zeros(2.5)
    with pytest.raises(TypeError, match="mean: needs a floating-point input or dtype="):
        ct.mean(ct.zeros(2, dtype=ct.long))
    with pytest.raises(ValueError, match="div: rounding_mode must be"):
        ct.div(x, 2, rounding_mode="round")
    with pytest.raises(ValueError, match="narrow: start 3 \\+ length 2 exceeds"):
        ct.narrow(x, 1, 3, 2)
    with pytest.raises(ValueError, match="einsum: 'ij,jk->ik' names 2 operands, got 1"):
        ct.einsum("ij,jk->ik", x)
    with pytest.raises(ValueError, match="einsum: repeated subscripts"):
        ct.einsum("ii->i", ct.zeros(3, 3))
    with pytest.raises(ValueError, match="einsum: subscript 'j' has sizes 4 and 5"):
        ct.einsum("ij,jk->ik", x, ct.zeros(5, 2))
