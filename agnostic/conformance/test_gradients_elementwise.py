"""Gradients of elementwise ops against central finite differences (float64), incl. broadcasting,
Python-scalar operands, both operands of binary ops, ties, where, clip and casts."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

COVERS = {
    "neg", "abs", "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "square", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
    "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round", "trunc",
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "logaddexp", "hypot",
    "copysign", "remainder", "floor_divide", "where", "clip", "cast", "eq", "ge", "le", "gt", "lt",
    "signbit", "logical_or", "logical_not",
}  # fmt: skip


def _data(shape, lo, hi, seed=0):
    return support.rng(seed).uniform(lo, hi, size=shape)


def _away_from_integers(shape, seed=0):
    """Values at least 0.2 from any integer and from any half-integer (for floor/round/...)."""
    base = support.rng(seed).integers(-3, 3, size=shape).astype(np.float64)
    frac = support.rng(seed + 1).choice([0.2, 0.3, 0.7, 0.8], size=shape)
    return base + frac


def _tensor64(backend, a, requires_grad=False):
    return backend.tensor(np.asarray(a, dtype=np.float64), dtype=ag.float64, requires_grad=requires_grad)


# ---------------------------------------------------------------------- unary
UNARY = [
    # name, function, (low, high) of the sampled domain
    ("negative", ag.negative, (-2, 2)),
    ("neg_operator", lambda x: -x, (-2, 2)),
    ("abs", ag.abs, (0.1, 2)),
    ("abs_negative", ag.abs, (-2, -0.1)),
    ("abs_operator", abs, (-2, -0.1)),
    ("exp", ag.exp, (-2, 2)),
    ("expm1", ag.expm1, (-2, 2)),
    ("log", ag.log, (0.2, 3)),
    ("log1p", ag.log1p, (-0.5, 2)),
    ("log2", ag.log2, (0.2, 3)),
    ("log10", ag.log10, (0.2, 3)),
    ("sqrt", ag.sqrt, (0.2, 3)),
    ("rsqrt", ag.rsqrt, (0.2, 3)),
    ("square", ag.square, (-2, 2)),
    ("reciprocal", ag.reciprocal, (0.3, 3)),
    ("reciprocal_negative", ag.reciprocal, (-3, -0.3)),
    ("sin", ag.sin, (-3, 3)),
    ("cos", ag.cos, (-3, 3)),
    ("tan", ag.tan, (-1.2, 1.2)),
    ("asin", ag.asin, (-0.9, 0.9)),
    ("acos", ag.acos, (-0.9, 0.9)),
    ("atan", ag.atan, (-3, 3)),
    ("sinh", ag.sinh, (-2, 2)),
    ("cosh", ag.cosh, (-2, 2)),
    ("tanh", ag.tanh, (-2, 2)),
    ("asinh", ag.asinh, (-3, 3)),
    ("acosh", ag.acosh, (1.2, 3)),
    ("atanh", ag.atanh, (-0.9, 0.9)),
    ("sigmoid", ag.sigmoid, (-4, 4)),
    ("erf", ag.erf, (-2, 2)),
    ("positive", ag.positive, (-2, 2)),
]


@pytest.mark.parametrize("name,fn,domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary_gradient(backend, name, fn, domain):
    support.check_grad(backend, fn, _data((2, 3), *domain))


@pytest.mark.parametrize("fn", [ag.floor, ag.ceil, ag.round, ag.trunc, ag.sign], ids=lambda f: f.__name__)
def test_piecewise_constant_gradient_is_zero(backend, fn):
    x = _away_from_integers((2, 3))
    support.check_grad(backend, fn, x)
    g = ag.grad(lambda t: fn(t).sum())(_tensor64(backend, x))[0]
    support.assert_close(g, np.zeros_like(x), dtype=ag.float64)


def test_unary_analytic_values(backend):
    """A few derivatives checked against closed forms rather than finite differences."""
    x = np.array([0.25, 0.5, 0.75])
    t = _tensor64(backend, x)
    cases = [
        (ag.exp, np.exp(x)),
        (ag.log, 1 / x),
        (ag.sqrt, 0.5 / np.sqrt(x)),
        (ag.tanh, 1 - np.tanh(x) ** 2),
        (ag.sigmoid, np.exp(-x) / (1 + np.exp(-x)) ** 2),
        (ag.erf, 2 / np.sqrt(np.pi) * np.exp(-(x**2))),
        (ag.atanh, 1 / (1 - x**2)),
    ]
    for fn, want in cases:
        (g,) = ag.grad(lambda a, fn=fn: fn(a).sum())(t)
        support.assert_close(g, want, dtype=ag.float64, rtol=1e-12, atol=1e-14)


def test_abs_gradient_at_zero_is_zero(backend):
    (g,) = ag.grad(lambda a: ag.abs(a).sum())(_tensor64(backend, [0.0, -1.0, 2.0]))
    support.assert_close(g, [0.0, -1.0, 1.0], dtype=ag.float64)


def test_unary_on_float32_keeps_dtype_of_gradient(backend):
    x = backend.tensor([0.5, 1.0, 2.0], dtype=ag.float32)
    (g,) = ag.grad(lambda a: ag.log(a).sum())(x)
    support.assert_close(g, [2.0, 1.0, 0.5], dtype=ag.float32)


# ---------------------------------------------------------------------- binary
BINARY = [
    # name, function, domain of a, domain of b
    ("add", ag.add, (-2, 2), (-2, 2)),
    ("subtract", ag.subtract, (-2, 2), (-2, 2)),
    ("multiply", ag.multiply, (-2, 2), (-2, 2)),
    ("divide", ag.divide, (-2, 2), (0.5, 2)),
    ("pow", ag.pow, (0.5, 2), (-1.5, 1.5)),
    ("maximum", ag.maximum, (-2, 2), (-2, 2)),
    ("minimum", ag.minimum, (-2, 2), (-2, 2)),
    ("atan2", ag.atan2, (-2, 2), (0.3, 2)),
    ("atan2_left_half", ag.atan2, (0.3, 2), (-2, -0.3)),
    ("logaddexp", ag.logaddexp, (-2, 2), (-2, 2)),
    ("hypot", ag.hypot, (0.3, 2), (-2, -0.3)),
    ("copysign", ag.copysign, (0.3, 2), (-2, -0.3)),
    ("copysign_negative", ag.copysign, (-2, -0.3), (0.3, 2)),
    ("remainder", ag.remainder, (0.1, 0.9), (1.2, 1.8)),
    ("remainder_wraps", ag.remainder, (2.1, 2.3), (0.9, 1.0)),
    ("floor_divide", ag.floor_divide, (0.2, 0.4), (1.2, 1.8)),
    ("operator_add", lambda a, b: a + b, (-2, 2), (-2, 2)),
    ("operator_sub", lambda a, b: a - b, (-2, 2), (-2, 2)),
    ("operator_mul", lambda a, b: a * b, (-2, 2), (-2, 2)),
    ("operator_truediv", lambda a, b: a / b, (-2, 2), (0.5, 2)),
    ("operator_pow", lambda a, b: a**b, (0.5, 2), (-1.5, 1.5)),
    ("operator_mod", lambda a, b: a % b, (0.1, 0.9), (1.2, 1.8)),
]

SHAPES = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 1, 3), (2, 1)),
]


_FULL_BROADCAST = ("add", "multiply", "divide", "pow", "maximum", "atan2", "operator_sub")
BINARY_SHAPES = [
    pytest.param(name, fn, da, db, shapes, id=f"{name}-{shapes[0]}x{shapes[1]}".replace(" ", ""))
    for name, fn, da, db in BINARY
    for shapes in (SHAPES if name in _FULL_BROADCAST else [SHAPES[0], SHAPES[3], SHAPES[4]])
]


@pytest.mark.parametrize("name,fn,da,db,shapes", BINARY_SHAPES)
def test_binary_gradient_both_operands_with_broadcasting(backend, name, fn, da, db, shapes):
    sa, sb = shapes
    a, b = _data(sa, *da, seed=1), _data(sb, *db, seed=2)
    support.check_grad(backend, fn, a, b)


@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=[b[0] for b in BINARY])
def test_binary_gradient_python_scalar_operands(backend, name, fn, da, db):
    a, b = _data((2, 3), *da, seed=3), _data((2, 3), *db, seed=4)
    sa, sb = float(np.mean(da)), float(np.mean(db))
    support.check_grad(backend, lambda t: fn(t, sb), a)
    support.check_grad(backend, lambda t: fn(sa, t), b)


def test_broadcast_gradient_is_summed_exactly(backend):
    """d sum(a * b) / d b for a (2, 3) and b (3,) is the column sum of a; for b (2, 1), the row sum."""
    a = _data((2, 3), -1, 1)
    ta = _tensor64(backend, a)
    (g,) = ag.grad(lambda b: (ta * b).sum())(_tensor64(backend, np.ones(3)))
    support.assert_close(g, a.sum(0), dtype=ag.float64, shape=(3,))
    (g,) = ag.grad(lambda b: (ta * b).sum())(_tensor64(backend, np.ones((2, 1))))
    support.assert_close(g, a.sum(1, keepdims=True), dtype=ag.float64, shape=(2, 1))
    (g,) = ag.grad(lambda b: (ta * b).sum())(_tensor64(backend, np.ones((1, 1, 1))))
    support.assert_close(g, np.full((1, 1, 1), a.sum()), dtype=ag.float64, shape=(1, 1, 1))
    (g,) = ag.grad(lambda b: (ta + b).sum())(_tensor64(backend, 0.5))
    support.assert_close(g, np.array(6.0), dtype=ag.float64, shape=())


def test_integer_power_of_negative_base(backend):
    support.check_grad(backend, lambda t: t**3, _data((2, 3), -2, -0.5))
    support.check_grad(backend, lambda t: t**2, _data((2, 3), -2, 2))
    support.check_grad(backend, lambda t: ag.pow(t, 4), _data((2, 3), -2, 2))


def test_pow_gradient_at_zero_base(backend):
    """d/db 0**b is taken as 0 (torch and JAX); d/da a**2 at 0 is 0; d/da a**1 is 1."""
    a = _tensor64(backend, [0.0, 2.0])
    b = _tensor64(backend, [2.0, 3.0])
    ga, gb = ag.grad(lambda x, y: (x**y).sum())(a, b)
    support.assert_close(ga, [0.0, 12.0], dtype=ag.float64)
    support.assert_close(gb, [0.0, 8.0 * np.log(2.0)], dtype=ag.float64)
    (g,) = ag.grad(lambda x: (x**1.0).sum())(a)
    support.assert_close(g, [1.0, 1.0], dtype=ag.float64)
    (g,) = ag.grad(lambda y: (0.0**y).sum())(b)
    support.assert_close(g, [0.0, 0.0], dtype=ag.float64)
    (g,) = ag.grad(lambda y: (2.0**y).sum())(b)
    support.assert_close(g, [4 * np.log(2), 8 * np.log(2)], dtype=ag.float64)


def test_pow_gradient_with_zero_exponent_is_zero(backend):
    """d/da a**0 is 0 everywhere, also at a == 0 where b * a**(b-1) would be 0 * inf (torch, JAX)."""
    a = _tensor64(backend, [0.0, 2.0, -1.5])
    (g,) = ag.grad(lambda x: (x**0.0).sum())(a)
    support.assert_close(g, [0.0, 0.0, 0.0], dtype=ag.float64)
    (g,) = ag.grad(lambda x: (x**0).sum())(a)
    support.assert_close(g, [0.0, 0.0, 0.0], dtype=ag.float64)
    ga, gb = ag.grad(lambda x, y: (x**y).sum())(
        _tensor64(backend, [0.0, 0.0, 3.0]), _tensor64(backend, [0.0, 2.0, 0.0])
    )
    support.assert_close(ga, [0.0, 0.0, 0.0], dtype=ag.float64)
    support.assert_close(gb, [0.0, 0.0, np.log(3.0)], dtype=ag.float64)


@pytest.mark.parametrize("fn", [ag.maximum, ag.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_ties_split_the_gradient(backend, fn):
    """As torch and JAX: where a == b each operand gets half of the gradient."""
    a = _tensor64(backend, [1.0, 2.0, 3.0])
    b = _tensor64(backend, [1.0, 5.0, 0.0])
    ga, gb = ag.grad(lambda x, y: (fn(x, y) * _tensor64(backend, [2.0, 3.0, 4.0])).sum())(a, b)
    if fn is ag.maximum:
        support.assert_close(ga, [1.0, 0.0, 4.0], dtype=ag.float64)
        support.assert_close(gb, [1.0, 3.0, 0.0], dtype=ag.float64)
    else:
        support.assert_close(ga, [1.0, 3.0, 0.0], dtype=ag.float64)
        support.assert_close(gb, [1.0, 0.0, 4.0], dtype=ag.float64)
    # against a scalar (relu-like): a tie at the scalar still gets half
    (g,) = ag.grad(lambda x: fn(x, 1.0).sum())(a)
    support.assert_close(g, [0.5, 1.0, 1.0] if fn is ag.maximum else [0.5, 0.0, 0.0], dtype=ag.float64)


def test_same_tensor_used_twice(backend):
    support.check_grad(backend, lambda t: t * t + ag.sin(t) * t - t / (t * t + 1.0), _data((2, 3), -2, 2))
    support.check_grad(backend, lambda t: ag.maximum(t, t) + ag.minimum(t, t), _data((3,), -2, 2))


def test_mixed_dtype_binary_gradient_dtypes(backend):
    """float32 op float64 computes in float64; each operand's gradient comes back in its own dtype."""
    a = backend.tensor([1.0, 2.0], dtype=ag.float32)
    b = _tensor64(backend, [3.0, 4.0])
    ga, gb = ag.grad(lambda x, y: (x * y).sum())(a, b)
    support.assert_close(ga, [3.0, 4.0], dtype=ag.float32)
    support.assert_close(gb, [1.0, 2.0], dtype=ag.float64)


def test_integer_operand_gets_no_gradient_but_float_operand_does(backend):
    a = _tensor64(backend, [1.0, 2.0, 3.0])
    n = backend.tensor([2, 3, 4])
    (g,) = ag.grad(lambda x: (x * n).sum())(a)
    support.assert_close(g, [2.0, 3.0, 4.0], dtype=ag.float64)
    (g,) = ag.grad(lambda x: (x**n).sum())(a)
    support.assert_close(g, [2.0, 12.0, 108.0], dtype=ag.float64)


# ---------------------------------------------------------------------- where, clip, cast
def test_where_gradient(backend):
    cond = backend.tensor([[True, False, True], [False, False, True]])
    support.check_grad(
        backend, lambda a, b: ag.where(cond, a, b), _data((2, 3), -1, 1), _data((2, 3), -1, 1, 1)
    )
    # broadcasting operands
    support.check_grad(
        backend, lambda a, b: ag.where(cond, a, b), _data((3,), -1, 1), _data((2, 1), -1, 1, 1)
    )
    support.check_grad(backend, lambda a: ag.where(cond, a, 0.5), _data((2, 3), -1, 1))
    support.check_grad(backend, lambda b: ag.where(cond, -2.0, b), _data((1, 3), -1, 1))


def test_where_exact_gradient_and_condition_from_tensor(backend):
    a = _tensor64(backend, [1.0, -2.0, 3.0])
    ga, gb = ag.grad(lambda x, y: ag.where(x > 0, x * 2.0, y * 3.0).sum())(a, a)
    support.assert_close(ga, [2.0, 0.0, 2.0], dtype=ag.float64)
    support.assert_close(gb, [0.0, 3.0, 0.0], dtype=ag.float64)


def test_where_selecting_a_safe_branch(backend):
    """The usual guard where(x > 0, sqrt(x), 0) differentiates where x > 0."""
    x = _tensor64(backend, [4.0, 1.0])
    (g,) = ag.grad(lambda t: ag.where(t > 0, ag.sqrt(t), 0.0).sum())(x)
    support.assert_close(g, [0.25, 0.5], dtype=ag.float64)


def test_clip_gradient_scalar_bounds(backend):
    x = np.array([[-2.0, -0.5, 0.2], [0.7, 1.5, 3.0]])
    support.check_grad(backend, lambda t: ag.clip(t, -1.0, 1.0), x)
    support.check_grad(backend, lambda t: ag.clip(t, min=0.0), x)
    support.check_grad(backend, lambda t: ag.clip(t, max=0.5), x)
    (g,) = ag.grad(lambda t: ag.clip(t, -1.0, 1.0).sum())(_tensor64(backend, x))
    support.assert_close(g, [[0, 1, 1], [1, 0, 0]], dtype=ag.float64)


def test_clip_gradient_tensor_bounds(backend):
    x = np.array([[-2.0, -0.5, 0.2], [0.7, 1.5, 3.0]])
    lo = np.array([-1.0, -1.0, 0.5])
    hi = np.array([[1.0], [2.0]])
    support.check_grad(backend, lambda t, a, b: ag.clip(t, a, b), x, lo, hi)
    gx, glo, ghi = ag.grad(lambda t, a, b: ag.clip(t, a, b).sum())(
        _tensor64(backend, x), _tensor64(backend, lo), _tensor64(backend, hi)
    )
    support.assert_close(gx, [[0, 1, 0], [1, 1, 0]], dtype=ag.float64)
    support.assert_close(glo, [1, 0, 1], dtype=ag.float64, shape=(3,))
    support.assert_close(ghi, [[0], [1]], dtype=ag.float64, shape=(2, 1))
    support.check_grad(backend, lambda t, a: ag.clip(t, a, None), x, lo)
    support.check_grad(backend, lambda t, b: ag.clip(t, None, b), x, hi)


@pytest.mark.parametrize(
    "src,dst",
    [("float64", "float32"), ("float32", "float64"), ("float32", "float16"), ("float32", "bfloat16"),
     ("float16", "float32"), ("bfloat16", "float64")],
)  # fmt: skip
def test_cast_between_floats_passes_gradient_in_source_dtype(backend, src, dst):
    x = backend.tensor([0.5, -1.0, 2.0], dtype=src)
    w = backend.tensor([1.0, 2.0, 3.0], dtype=dst)
    (g,) = ag.grad(lambda t: (t.astype(dst) * w).sum())(x)
    support.assert_close(g, [1.0, 2.0, 3.0], dtype=src)
    (g,) = ag.grad(lambda t: (t.to(dst) ** 2).sum())(x)
    support.assert_close(g, [1.0, -2.0, 4.0], dtype=src, rtol=1e-2, atol=1e-2)


def test_cast_round_trip_gradient(backend):
    support.check_grad(
        backend, lambda t: ag.astype(ag.astype(t, ag.float64) * 2.0, ag.float64), _data((3,), -1, 1)
    )
    x = _tensor64(backend, [0.25, 0.5])
    (g,) = ag.grad(lambda t: (t.astype(ag.float32).astype(ag.float64) * 3.0).sum())(x)
    support.assert_close(g, [3.0, 3.0], dtype=ag.float64)


def test_cast_to_integer_or_bool_cuts_the_gradient(backend):
    x = _tensor64(backend, [0.5, 1.5])
    (g,) = ag.grad(lambda t: (t.astype(ag.int64).astype(ag.float64) + t).sum())(x)
    support.assert_close(g, [1.0, 1.0], dtype=ag.float64)
    (g,) = ag.grad(lambda t: ((t > 1.0).astype(ag.float64) * t).sum())(x)
    support.assert_close(g, [0.0, 1.0], dtype=ag.float64)


def test_composition_of_many_elementwise_ops(backend):
    def f(a, b):
        return ag.tanh(a * b + 1.0) / (1.0 + ag.exp(-a)) + ag.sqrt(b * b + 1.0) * ag.log1p(a * a) - 2.0**a

    support.check_grad(backend, f, _data((2, 3), -1, 1), _data((3,), -1, 1, 5))
