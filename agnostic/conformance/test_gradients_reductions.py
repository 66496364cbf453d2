"""Gradients of reductions, cumulative ops and contractions (matmul) against finite differences
and exact values: tuple axes, keepdims, ties in max/min, prod with zeros, cumprod with zeros."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

COVERS = {
    "sum", "mean", "prod", "max", "min", "var", "logsumexp", "cumsum", "cumprod", "matmul",
    "expand_dims", "broadcast_to", "permute", "reshape", "flip", "concat", "getitem", "eq",
}  # fmt: skip


def _data(shape, lo=-1.0, hi=1.0, seed=0):
    return support.rng(seed).uniform(lo, hi, size=shape)


def _t(backend, a):
    return backend.tensor(np.asarray(a, dtype=np.float64), dtype=ag.float64)


AXES = [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2), ()]

REDUCTIONS = [
    ("sum", ag.sum),
    ("mean", ag.mean),
    ("prod", ag.prod),
    ("max", ag.max),
    ("min", ag.min),
    ("logsumexp", ag.logsumexp),
    ("var", ag.var),
    ("var_unbiased", lambda x, **k: ag.var(x, correction=1, **k)),
    ("std", ag.std),
    ("std_unbiased", lambda x, **k: ag.std(x, correction=1.0, **k)),
]


REDUCTION_CASES = [
    pytest.param(
        i, fn, axis, keepdims, id=f"{name}-axis={axis}-{'keepdims' if keepdims else 'drop'}".replace(" ", "")
    )
    for i, (name, fn) in enumerate(REDUCTIONS)
    for axis in AXES
    for keepdims in (False, True)
    if not (axis == () and name.startswith(("var", "std")))  # a variance over no axes is 0/0
]


@pytest.mark.parametrize("seed,fn,axis,keepdims", REDUCTION_CASES)
def test_reduction_gradient(backend, seed, fn, axis, keepdims):
    x = _data((2, 3, 2), 0.5, 1.5, seed=seed)
    support.check_grad(backend, lambda t: fn(t, axis=axis, keepdims=keepdims), x)


def test_reduction_methods_and_default_axis(backend):
    x = _data((2, 3), 0.5, 1.5)
    support.check_grad(backend, lambda t: t.sum() + t.mean(axis=0).sum() + t.prod(axis=1).sum(), x)
    support.check_grad(backend, lambda t: t.max(axis=1) * t.min(axis=0, keepdims=True).sum(), x)
    support.check_grad(backend, lambda t: t.var(axis=1) + t.std() + t.logsumexp(axis=(0, 1)), x)


def test_sum_and_mean_exact(backend):
    x = _t(backend, np.ones((2, 3)))
    (g,) = ag.grad(lambda t: ag.mean(t, axis=(0, 1)))(x)
    support.assert_close(g, np.full((2, 3), 1 / 6), dtype=ag.float64)
    (g,) = ag.grad(lambda t: (ag.sum(t, axis=1, keepdims=True) * _t(backend, [[1.0], [2.0]])).sum())(x)
    support.assert_close(g, [[1, 1, 1], [2, 2, 2]], dtype=ag.float64)


@pytest.mark.parametrize("fn", [ag.max, ag.min], ids=["max", "min"])
def test_max_min_ties_share_the_gradient_evenly(backend, fn):
    """As torch (amax/amin) and JAX: every element equal to the extremum gets g / count."""
    sign = 1.0 if fn is ag.max else -1.0
    x = sign * np.array([[3.0, 1.0, 3.0, 3.0], [2.0, 2.0, 0.0, -1.0]])
    t = _t(backend, x)
    (g,) = ag.grad(lambda a: fn(a))(t)
    support.assert_close(g, [[1 / 3, 0, 1 / 3, 1 / 3], [0, 0, 0, 0]], dtype=ag.float64)
    (g,) = ag.grad(lambda a: (fn(a, axis=1) * _t(backend, [3.0, 4.0])).sum())(t)
    support.assert_close(g, [[1, 0, 1, 1], [2, 2, 0, 0]], dtype=ag.float64)
    (g,) = ag.grad(lambda a: (fn(a, axis=0, keepdims=True) * _t(backend, [[1.0, 2.0, 3.0, 4.0]])).sum())(t)
    support.assert_close(g, [[1, 0, 3, 4], [0, 2, 0, 0]], dtype=ag.float64)
    # all equal: each of the n elements gets 1/n
    (g,) = ag.grad(lambda a: fn(a))(_t(backend, np.full((2, 2), 7.0)))
    support.assert_close(g, np.full((2, 2), 0.25), dtype=ag.float64)


def test_max_gradient_with_infinities(backend):
    (g,) = ag.grad(lambda a: ag.max(a))(_t(backend, [-np.inf, 1.0, 2.0]))
    support.assert_close(g, [0.0, 0.0, 1.0], dtype=ag.float64)
    (g,) = ag.grad(lambda a: ag.min(a))(_t(backend, [-np.inf, 1.0, 2.0]))
    support.assert_close(g, [1.0, 0.0, 0.0], dtype=ag.float64)


def test_prod_with_zeros_is_exact(backend):
    x = np.array([[2.0, 0.0, 3.0, 5.0], [0.0, 4.0, 0.0, 1.0], [1.5, 2.0, -1.0, 0.5]])
    t = _t(backend, x)
    (g,) = ag.grad(lambda a: ag.prod(a, axis=1).sum())(t)
    # one zero: only the zero's gradient survives (product of the others); two zeros: all zero
    support.assert_close(
        g, [[0, 30, 0, 0], [0, 0, 0, 0], [-1, -0.75, 1.5, -3]], dtype=ag.float64, rtol=0, atol=0
    )
    (g,) = ag.grad(lambda a: ag.prod(a))(_t(backend, [0.0, 2.0, 3.0]))
    support.assert_close(g, [6.0, 0.0, 0.0], dtype=ag.float64, rtol=0, atol=0)
    (g,) = ag.grad(lambda a: ag.prod(a, axis=0, keepdims=True).sum())(t)
    want = np.stack([np.prod(np.delete(x, i, axis=0), axis=0) for i in range(3)])
    support.assert_close(g, want, dtype=ag.float64, rtol=0, atol=0)
    support.check_grad(backend, lambda a: ag.prod(a, axis=(0, 1)), x)
    support.check_grad(backend, lambda a: ag.prod(a, axis=0), x)


def test_prod_of_single_element_and_empty_axis(backend):
    (g,) = ag.grad(lambda a: ag.prod(a))(_t(backend, [3.0]))
    support.assert_close(g, [1.0], dtype=ag.float64)
    (g,) = ag.grad(lambda a: ag.prod(a, axis=1).sum())(_t(backend, np.zeros((2, 0))))
    support.assert_close(g, np.zeros((2, 0)), dtype=ag.float64)


def test_var_std_exact(backend):
    x = np.array([1.0, 2.0, 4.0, 7.0])
    t = _t(backend, x)
    (g,) = ag.grad(lambda a: ag.var(a))(t)
    support.assert_close(g, 2 * (x - x.mean()) / 4, dtype=ag.float64)
    (g,) = ag.grad(lambda a: ag.var(a, correction=1))(t)
    support.assert_close(g, 2 * (x - x.mean()) / 3, dtype=ag.float64)
    (g,) = ag.grad(lambda a: ag.std(a))(t)
    support.assert_close(g, (x - x.mean()) / (4 * x.std()), dtype=ag.float64)


def test_variance_without_degrees_of_freedom_gives_nan_not_an_exception(backend):
    """var(correction=1) of one element is NaN (0/0), and so is its gradient (as torch)."""
    (g,) = ag.grad(lambda a: ag.var(a, correction=1))(_t(backend, [3.0]))
    assert g.shape == (1,) and np.isnan(g.numpy()).all(), g
    (g,) = ag.grad(lambda a: ag.var(a, axis=1, correction=2).sum())(_t(backend, [[1.0, 2.0], [3.0, 5.0]]))
    assert g.shape == (2, 2) and np.isnan(g.numpy()).all(), g


def test_std_of_constant_has_zero_gradient(backend):
    """std is not differentiable where it is 0; agnostic defines the gradient there as 0 (finite)."""
    (g,) = ag.grad(lambda a: ag.std(a, axis=1).sum())(_t(backend, [[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]]))
    got = g.numpy()
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got[0], 0.0)
    np.testing.assert_allclose(got[1], (np.array([1.0, 2.0, 3.0]) - 2.0) / (3 * np.std([1.0, 2.0, 3.0])))


def test_logsumexp_gradient_is_softmax(backend):
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 50.0]])
    (g,) = ag.grad(lambda a: ag.logsumexp(a, axis=1).sum())(_t(backend, x))
    e = np.exp(x - x.max(1, keepdims=True))
    support.assert_close(g, e / e.sum(1, keepdims=True), dtype=ag.float64)


def test_logsumexp_gradient_with_minus_infinity(backend):
    x = np.array([-np.inf, 0.0, np.log(3.0)])
    (g,) = ag.grad(lambda a: ag.logsumexp(a))(_t(backend, x))
    support.assert_close(g, [0.0, 0.25, 0.75], dtype=ag.float64)


# ---------------------------------------------------------------------- cumulative
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_gradient(backend, axis):
    support.check_grad(backend, lambda t: ag.cumsum(t, axis=axis), _data((3, 4)))
    support.check_grad(
        backend, lambda t: ag.cumulative_sum(t, axis=axis, include_initial=True), _data((2, 3))
    )


def test_cumsum_gradient_exact_and_flattened(backend):
    (g,) = ag.grad(lambda t: (ag.cumsum(t) * _t(backend, [1.0, 2.0, 3.0, 4.0])).sum())(
        _t(backend, np.zeros(4))
    )
    support.assert_close(g, [10.0, 9.0, 7.0, 4.0], dtype=ag.float64)
    support.check_grad(backend, lambda t: ag.cumsum(t), _data((2, 3)))


@pytest.mark.parametrize("axis", [0, 1])
def test_cumprod_gradient(backend, axis):
    support.check_grad(backend, lambda t: ag.cumprod(t, axis=axis), _data((3, 4), 0.5, 1.5))
    support.check_grad(
        backend, lambda t: ag.cumulative_prod(t, axis=axis, include_initial=True), _data((2, 3))
    )


def test_cumprod_with_zeros_is_exact(backend):
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    c = np.array([1.0, -1.0, 2.0, 0.5, 3.0])
    (g,) = ag.grad(lambda t: (ag.cumprod(t) * _t(backend, c)).sum())(_t(backend, x))
    want = np.zeros_like(x)
    for i in range(len(x)):
        for j in range(i, len(x)):
            want[i] += c[j] * np.prod(np.delete(x[: j + 1], i))
    support.assert_close(g, want, dtype=ag.float64, rtol=0, atol=0)
    support.check_grad(
        backend, lambda t: ag.cumprod(t, axis=1), np.array([[1.5, 0.0, 2.0], [0.0, -1.0, 0.5]])
    )


# ---------------------------------------------------------------------- matmul and friends
MATMUL_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 2)),
    ((2, 3), (3, 4)),
    ((2, 2, 3), (3, 2)),
    ((3,), (2, 3, 2)),
    ((2, 2, 3), (3,)),
    ((2, 1, 2, 3), (3, 3, 2)),
    ((1, 2, 3), (2, 3, 1)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=lambda s: str(s).replace(" ", ""))
def test_matmul_gradient(backend, sa, sb):
    a, b = _data(sa, seed=1), _data(sb, seed=2)
    support.check_grad(backend, ag.matmul, a, b)
    support.check_grad(backend, lambda x, y: x @ y, a, b)


def test_matmul_gradient_exact(backend):
    a = _data((2, 3), seed=3)
    b = _data((3, 4), seed=4)
    g = _data((2, 4), seed=5)
    ga, gb = ag.grad(lambda x, y: ((x @ y) * _t(backend, g)).sum())(_t(backend, a), _t(backend, b))
    support.assert_close(ga, g @ b.T, dtype=ag.float64)
    support.assert_close(gb, a.T @ g, dtype=ag.float64)


def test_matmul_one_operand_constant_and_mixed_dtype(backend):
    a = backend.tensor(_data((2, 3)), dtype=ag.float32)
    b = _t(backend, _data((3, 2), seed=1))
    (gb,) = ag.grad(lambda y: (a @ y).sum())(b)
    support.assert_close(
        gb, np.broadcast_to(a.numpy().astype(np.float64).sum(0)[:, None], (3, 2)), dtype=ag.float64
    )
    (ga,) = ag.grad(lambda x: (x @ b).sum())(a)
    support.assert_close(ga, np.broadcast_to(b.numpy().sum(1), (2, 3)), dtype=ag.float32)


def test_contractions_built_on_matmul(backend):
    a, b = _data((2, 3, 2), seed=1), _data((3, 2, 2), seed=2)
    support.check_grad(backend, lambda x, y: ag.tensordot(x, y, axes=2), a, b)
    support.check_grad(backend, lambda x, y: ag.tensordot(x, y, axes=([0, 1], [2, 0])), a, b)
    support.check_grad(backend, lambda x, y: ag.vecdot(x, y), _data((2, 3)), _data((3,)))
    support.check_grad(backend, lambda x, y: ag.outer(x, y), _data((3,)), _data((2,)))
    support.check_grad(backend, lambda x: x.T @ x, _data((3, 2)))
    support.check_grad(backend, lambda x: ag.matrix_transpose(x) @ x, _data((2, 3, 2)))
