"""Differentiable primitives: each op of the op-set lifted to Tensors, with its vector-Jacobian rule.

Names and signatures match `agnostic.backends.base.Backend` (normalized arguments, dtypes already
decided by `agnostic.ops`), so `TensorOps` can run a composite's default body on Tensors: that is
how composites are differentiated when they have no hand-written rule. Every rule is written with
Tensor ops, so it is itself differentiable (second derivatives work on every backend).

Complex numbers follow torch's convention. For a real loss L of complex z = x + iy, the gradient is
dL/dx + i dL/dy (= 2 dL/d(conj z)), the steepest-ascent direction, so `z - lr * grad` descends. A
rule maps the cotangent g of an output w = f(z) to conj(dw/dz) g + (dw/d(conj z)) conj(g): for a
holomorphic f that is g * conj(f'(z)) (`_cj`, a no-op on real dtypes); abs, sign, conj, real, imag
and casts between real and complex use the full formula. JAX's pullbacks do not conjugate: torch's
vjp(c) is conj(jax_vjp(conj(c))), so `jax.grad` of a complex-to-real function is the conjugate of
this gradient.
"""

from __future__ import annotations

import builtins
import cmath
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agnostic import dtypes
from agnostic.autodiff import DeferredCotangent, Node, TensorMeta, edges, enable_grad, grad_enabled, gradients
from agnostic.backends.base import Backend
from agnostic.device import Device
from agnostic.dtypes import DType
from agnostic.tensor import Tensor

_make = Tensor._make
Rule = Callable[..., Any]


def _record(
    out: Tensor, name: str, inputs: tuple[Tensor, ...], vjp: Rule, saves_output: bool = False
) -> Tensor:
    """Give `out` a node from `inputs` (their graph positions, not their data: a rule captures what
    it reads). `saves_output` when the rule reads its output `y`; otherwise it gets NOT_SAVED."""
    saved = _make(out._data, out._device, out._dtype) if saves_output else None
    out._node = Node(name, edges(inputs), vjp, saved)
    out.requires_grad = True
    return out


def _tracking(*ts: Any) -> bool:
    if not grad_enabled():
        return False
    for t in ts:
        if isinstance(t, Tensor) and t.requires_grad:
            return True
    return False


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum `g` down to `shape`: the adjoint of broadcasting."""
    gs = g.shape
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1)
    if axes:
        g = sum(g, axes, False)
    return reshape(g, shape) if g.shape != shape else g


def zeros_like(t: Tensor) -> Tensor:
    return _make(t._device.ops.full(t.shape, 0, t._dtype), t._device)


# ---------------------------------------------------------------------- elementwise
def _unary(
    name: str, rule: Rule | None, reads: str = "", complex_reads: str | None = None
) -> Callable[[Tensor], Tensor]:
    """An elementwise op whose gradient is `rule(g, x, y)`; `reads` names the values the rule needs
    ("x", "y", both or neither), `complex_reads` those it needs for a complex x where they differ:
    the others are kept as a shape (or not at all)."""
    complex_reads = reads if complex_reads is None else complex_reads

    def op(x: Tensor) -> Tensor:
        dev = x._device
        out = _make(getattr(dev.ops, name)(x._data), dev)
        if rule is not None and x.requires_grad and grad_enabled():
            needed = complex_reads if x._dtype.is_complex else reads
            rx = x if "x" in needed else TensorMeta(x)
            _record(out, name, (x,), lambda g, y: (rule(g, rx, y),), "y" in needed)
        return out

    op.__name__ = op.__qualname__ = name
    return op


_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _zero(g: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return zeros_like(g)


def _cj(v: Any) -> Any:
    """conj(v) for a complex tensor or number, `v` itself otherwise: the rules write `g * _cj(f'(z))`,
    torch's convention, which costs nothing on real dtypes."""
    if isinstance(v, Tensor):
        return conj(v) if v._dtype.is_complex else v
    return v.conjugate() if isinstance(v, complex) else v


def _to_input(g: Tensor, x: Tensor) -> Tensor:
    """Cotangent `g` in `x`'s dtype: a real input keeps the real part of a complex cotangent (the
    imaginary direction is not one it can move in); a complex input gets a real one as g + 0i."""
    if g._dtype is x._dtype:
        return g
    if g._dtype.is_complex and not x._dtype.is_complex:
        g = real(g)
    return cast(g, x._dtype)


def _safe_modulus(x: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """(|x| == 0, |x| with the zeros replaced by 1), `r` being |x|: the divisor of z / |z|."""
    zero = eq(r, 0.0)
    return zero, where(zero, 1.0, r)


def _abs_rule(g: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """|z|: g * z / |z| for complex z (dL/dx + i dL/dy), 0 at 0; g * sign(x) for real x."""
    if not x._dtype.is_complex:
        return mul(g, sign(x))
    zero, r = _safe_modulus(x, y)
    return mul(cast(where(zero, 0.0, div(g, r)), x._dtype), x)


def _sgn_rule(g: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """sign(z) = z / |z| is constant along rays only, so it has a gradient: (g - Re(g conj(s)) s) / |z|,
    0 at 0 (torch's sgn_backward); a real sign is piecewise constant, its gradient 0."""
    if not x._dtype.is_complex:
        return zeros_like(g)
    zero, r = _safe_modulus(x, abs(x))
    radial = mul(cast(real(mul(g, conj(y))), x._dtype), y)
    return where(zero, 0.0, div(sub(g, radial), cast(r, x._dtype)))


def _acosh_derivative(x: Tensor) -> Tensor:
    """1 / sqrt(x^2 - 1); for complex x, 1 / (sqrt(x - 1) sqrt(x + 1)), the derivative of the
    principal branch, which differs from the first in sign where Re(x) < 0."""
    if not x._dtype.is_complex:
        return rsqrt(sub(mul(x, x), 1.0))
    return reciprocal(mul(sqrt(sub(x, 1.0)), sqrt(add(x, 1.0))))


neg = _unary("neg", lambda g, x, y: neg(g))
abs = _unary("abs", _abs_rule, "x", complex_reads="xy")
sign = _unary("sign", _sgn_rule, complex_reads="xy")
exp = _unary("exp", lambda g, x, y: mul(g, _cj(y)), "y")
expm1 = _unary("expm1", lambda g, x, y: mul(g, _cj(add(y, 1.0))), "y")
log = _unary("log", lambda g, x, y: div(g, _cj(x)), "x")
log1p = _unary("log1p", lambda g, x, y: div(g, _cj(add(x, 1.0))), "x")
log2 = _unary("log2", lambda g, x, y: div(g, _cj(mul(x, _LN2))), "x")
log10 = _unary("log10", lambda g, x, y: div(g, _cj(mul(x, _LN10))), "x")
sqrt = _unary("sqrt", lambda g, x, y: div(g, _cj(mul(y, 2.0))), "y")
rsqrt = _unary("rsqrt", lambda g, x, y: mul(g, _cj(mul(div(y, x), -0.5))), "xy")
square = _unary("square", lambda g, x, y: mul(g, _cj(mul(x, 2.0))), "x")
reciprocal = _unary("reciprocal", lambda g, x, y: neg(mul(g, _cj(mul(y, y)))), "y")
sin = _unary("sin", lambda g, x, y: mul(g, _cj(cos(x))), "x")
cos = _unary("cos", lambda g, x, y: neg(mul(g, _cj(sin(x)))), "x")
tan = _unary("tan", lambda g, x, y: mul(g, _cj(add(mul(y, y), 1.0))), "y")
asin = _unary("asin", lambda g, x, y: mul(g, _cj(rsqrt(sub(1.0, mul(x, x))))), "x")
acos = _unary("acos", lambda g, x, y: neg(mul(g, _cj(rsqrt(sub(1.0, mul(x, x)))))), "x")
atan = _unary("atan", lambda g, x, y: div(g, _cj(add(mul(x, x), 1.0))), "x")
sinh = _unary("sinh", lambda g, x, y: mul(g, _cj(cosh(x))), "x")
cosh = _unary("cosh", lambda g, x, y: mul(g, _cj(sinh(x))), "x")
tanh = _unary("tanh", lambda g, x, y: mul(g, _cj(sub(1.0, mul(y, y)))), "y")
asinh = _unary("asinh", lambda g, x, y: mul(g, _cj(rsqrt(add(mul(x, x), 1.0)))), "x")
acosh = _unary("acosh", lambda g, x, y: mul(g, _cj(_acosh_derivative(x))), "x")
atanh = _unary("atanh", lambda g, x, y: div(g, _cj(sub(1.0, mul(x, x)))), "x")
sigmoid = _unary("sigmoid", lambda g, x, y: mul(g, _cj(mul(y, sub(1.0, y)))), "y")
erf = _unary("erf", lambda g, x, y: mul(g, mul(exp(neg(mul(x, x))), _TWO_OVER_SQRT_PI)), "x")
floor = _unary("floor", _zero)
ceil = _unary("ceil", _zero)
round = _unary("round", _zero)
trunc = _unary("trunc", _zero)
isnan = _unary("isnan", None)
isinf = _unary("isinf", None)
isfinite = _unary("isfinite", None)
signbit = _unary("signbit", None)
logical_not = _unary("logical_not", None)
bitwise_invert = _unary("bitwise_invert", None)
conj = _unary("conj", lambda g, x, y: conj(g))
real = _unary("real", lambda g, x, y: _to_input(g, x))
imag = _unary("imag", lambda g, x, y: mul(_to_input(g, x), 1j) if x._dtype.is_complex else zeros_like(x))


Reads = Callable[[bool, bool], tuple[bool, bool, bool]]
"""Which of (a, b, y) a binary rule reads, given which operands want a gradient."""


def _reads(names: str) -> Reads:
    keep = ("a" in names, "b" in names, "y" in names)
    return lambda wa, wb: keep


def _binary(name: str, rule: Rule | None, reads: Reads = _reads("")) -> Callable[[Any, Any], Tensor]:
    """An elementwise op of two operands (tensors or weak scalars) whose gradient is
    `rule(g, a, b, y, wa, wb)`; `reads(wa, wb)` says which of a, b, y the rule needs: a tensor
    operand it does not read is kept as a shape."""

    def op(a: Any, b: Any) -> Tensor:
        ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
        dev = a._device if ta else b._device
        out = _make(getattr(dev.ops, name)(a._data if ta else a, b._data if tb else b), dev)
        if rule is None or not grad_enabled():
            return out
        wa, wb = ta and a.requires_grad, tb and b.requires_grad
        if not (wa or wb):
            return out
        inputs = (a, b) if ta and tb else ((a,) if ta else (b,))
        keep_a, keep_b, keep_y = reads(wa, wb)
        ra = a if keep_a or not ta else TensorMeta(a)
        rb = b if keep_b or not tb else TensorMeta(b)

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor | None, ...]:
            ga, gb = rule(g, ra, rb, y, wa, wb)
            ga = _real_if_real(unbroadcast(ga, ra.shape), ra) if wa else None
            gb = _real_if_real(unbroadcast(gb, rb.shape), rb) if wb else None
            return (ga, gb) if ta and tb else ((ga,) if ta else (gb,))

        return _record(out, name, inputs, vjp, keep_y)

    op.__name__ = op.__qualname__ = name
    return op


def _real_if_real(g: Tensor, x: Tensor) -> Tensor:
    """A real operand of an op with a complex result (a real tensor times a complex scalar) gets the
    real part of its complex cotangent, as torch's autograd gives it."""
    return real(g) if g._dtype.is_complex and not x._dtype.is_complex else g


def _extremum_rule(pick_a: Callable[[Any, Any], Tensor]) -> Rule:
    """maximum/minimum: the gradient goes to the chosen operand; ties split it in half (as torch)."""

    def rule(g: Tensor, a: Any, b: Any, y: Tensor, wa: bool, wb: bool) -> tuple[Any, Any]:
        tie = eq(a, b)
        share = where(tie, mul(g, 0.5), g)
        chosen_a = pick_a(a, b)
        ga = where(chosen_a, share, 0.0) if wa else None
        gb = where(logical_or(logical_not(chosen_a), tie), share, 0.0) if wb else None
        return ga, gb

    return rule


def _pow_rule(g: Tensor, a: Any, b: Any, y: Tensor, wa: bool, wb: bool) -> tuple[Any, Any]:
    ga = gb = None
    if wa:
        # d/da a**b = b a**(b-1), taken as 0 where b == 0 (torch and JAX), even at a == 0
        if isinstance(b, Tensor):
            ga = mul(g, _cj(where(eq(b, 0.0), 0.0, mul(b, pow(a, sub(b, 1.0))))))
        else:
            ga = mul(g, _cj(mul(b, pow(a, b - 1)))) if b != 0 else zeros_like(g)
    if wb:
        # d/db a**b = a**b log a, taken as 0 where a == 0 (the limit torch and JAX use)
        if isinstance(a, Tensor):
            zero = eq(a, 0.0)
            gb = mul(g, _cj(where(zero, 0.0, mul(y, log(where(zero, 1.0, a))))))
        elif a == 0:
            gb = zeros_like(g)
        else:  # a negative base has a complex logarithm (a complex y)
            gb = mul(g, _cj(mul(y, cmath.log(a) if y._dtype.is_complex else math.log(a))))
    return ga, gb


def _atan2_rule(g: Tensor, a: Any, b: Any, y: Tensor, wa: bool, wb: bool) -> tuple[Any, Any]:
    def sq(v: Any) -> Any:
        return mul(v, v) if isinstance(v, Tensor) else v * v

    denom = add(sq(a), sq(b))
    return (div(mul(g, b), denom) if wa else None), (neg(div(mul(g, a), denom)) if wb else None)


add = _binary("add", lambda g, a, b, y, wa, wb: (g, g))
sub = _binary("sub", lambda g, a, b, y, wa, wb: (g, neg(g) if wb else None))
mul = _binary(
    "mul",
    lambda g, a, b, y, wa, wb: (mul(g, _cj(b)) if wa else None, mul(g, _cj(a)) if wb else None),
    lambda wa, wb: (wb, wa, False),
)
div = _binary(
    "div",
    lambda g, a, b, y, wa, wb: (
        div(g, _cj(b)) if wa else None,
        neg(div(mul(g, _cj(y)), _cj(b))) if wb else None,
    ),
    lambda wa, wb: (False, True, wb),
)
pow = _binary("pow", _pow_rule, lambda wa, wb: (True, True, wb))
maximum = _binary("maximum", _extremum_rule(lambda a, b: ge(a, b)), _reads("ab"))
minimum = _binary("minimum", _extremum_rule(lambda a, b: le(a, b)), _reads("ab"))
atan2 = _binary("atan2", _atan2_rule, _reads("ab"))
logaddexp = _binary(
    "logaddexp",
    lambda g, a, b, y, wa, wb: (
        mul(g, exp(sub(a, y))) if wa else None,
        mul(g, exp(sub(b, y))) if wb else None,
    ),
    _reads("aby"),
)
hypot = _binary(
    "hypot",
    lambda g, a, b, y, wa, wb: (
        mul(g, div(a, y)) if wa else None,
        mul(g, div(b, y)) if wb else None,
    ),
    lambda wa, wb: (wa, wb, True),
)
copysign = _binary(
    "copysign",
    lambda g, a, b, y, wa, wb: (
        where(eq(signbit(a), signbit(y)), g, neg(g)) if wa else None,
        zeros_like(g) if wb else None,
    ),
    lambda wa, wb: (wa, False, wa),
)
remainder = _binary(
    "remainder",
    lambda g, a, b, y, wa, wb: (g, neg(mul(g, floor_divide(a, b))) if wb else None),
    lambda wa, wb: (wb, wb, False),
)
floor_divide = _binary("floor_divide", lambda g, a, b, y, wa, wb: (zeros_like(g), zeros_like(g)))
nextafter = _binary("nextafter", lambda g, a, b, y, wa, wb: (zeros_like(g), zeros_like(g)))
eq = _binary("eq", None)
ne = _binary("ne", None)
lt = _binary("lt", None)
le = _binary("le", None)
gt = _binary("gt", None)
ge = _binary("ge", None)
logical_and = _binary("logical_and", None)
logical_or = _binary("logical_or", None)
logical_xor = _binary("logical_xor", None)
bitwise_and = _binary("bitwise_and", None)
bitwise_or = _binary("bitwise_or", None)
bitwise_xor = _binary("bitwise_xor", None)
bitwise_left_shift = _binary("bitwise_left_shift", None)
bitwise_right_shift = _binary("bitwise_right_shift", None)


def where(cond: Tensor, a: Any, b: Any) -> Tensor:
    """`a` where `cond` else `b` (a, b tensors of one dtype or weak scalars)."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    dev = cond._device
    out = _make(dev.ops.where(cond._data, a._data if ta else a, b._data if tb else b), dev)
    wa, wb = ta and a.requires_grad, tb and b.requires_grad
    if grad_enabled() and (wa or wb):
        inputs = tuple(t for t, w in ((a, wa), (b, wb)) if w)
        shape_a, shape_b = a.shape if wa else None, b.shape if wb else None

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor, ...]:
            out_g = []
            if wa:
                out_g.append(unbroadcast(where(cond, g, 0.0), shape_a))
            if wb:
                out_g.append(unbroadcast(where(cond, 0.0, g), shape_b))
            return tuple(out_g)

        _record(out, "where", inputs, vjp)
    return out


def clip(x: Tensor, lo: Any, hi: Any) -> Tensor:
    """`x` limited to [lo, hi]; the gradient passes where lo <= x <= hi (bounds get the rest)."""
    tl, th = isinstance(lo, Tensor), isinstance(hi, Tensor)
    dev = x._device
    out = _make(dev.ops.clip(x._data, lo._data if tl else lo, hi._data if th else hi), dev)
    if _tracking(x, lo, hi):
        pairs = [(x, x.requires_grad), (lo, tl and lo.requires_grad), (hi, th and hi.requires_grad)]

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor, ...]:
            below = lt(x, lo) if lo is not None else None
            above = gt(x, hi) if hi is not None else None
            if below is None or above is None:
                outside = above if below is None else below
            else:
                outside = logical_or(below, above)
            res = []
            if pairs[0][1]:
                res.append(g if outside is None else where(outside, 0.0, g))
            if pairs[1][1]:
                res.append(unbroadcast(where(below, g, 0.0), lo.shape))
            if pairs[2][1]:
                res.append(unbroadcast(where(above, g, 0.0), hi.shape))
            return tuple(res)

        _record(out, "clip", tuple(t for t, w in pairs if w), vjp)
    return out


def cast(x: Tensor, dtype: DType, converted: Any = None) -> Tensor:
    """`x` converted to `dtype`; differentiable between real and complex float dtypes (real ->
    complex: the input gets the real part of the cotangent; complex -> real keeps the real part, so
    its input gets g + 0i). `converted`: x's array already converted (autocast's cache), so only
    the node is made."""
    if x._dtype is dtype:
        return x
    out = _make(x._device.ops.cast(x._data, dtype) if converted is None else converted, x._device)
    if dtype.is_inexact and grad_enabled() and x.requires_grad:
        mx = TensorMeta(x)
        _record(out, "cast", (x,), lambda g, y: (_to_input(g, mx),))
    return out


# ---------------------------------------------------------------------- reductions
def _expand_to(g: Tensor, x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """Broadcast a reduction's cotangent back over the reduced axes."""
    if not keepdims and axes:
        g = expand_dims(g, axes)
    return broadcast_to(g, x.shape)


def _count(x: Tensor, axes: tuple[int, ...]) -> int:
    shape = x.shape
    return math.prod(shape[a] for a in axes)


def _reduction(name: str, rule: Rule | None, reads: str = "") -> Callable[..., Tensor]:
    """A reduction whose gradient is `rule(g, x, y, axes, keepdims)`; `reads` as `_unary`'s."""
    keep_x, keep_y = "x" in reads, "y" in reads

    def op(x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
        out = _make(getattr(x._device.ops, name)(x._data, axes, keepdims), x._device)
        if rule is not None and grad_enabled() and x.requires_grad:
            rx = x if keep_x else TensorMeta(x)
            _record(out, name, (x,), lambda g, y: (rule(g, rx, y, axes, keepdims),), keep_y)
        return out

    op.__name__ = op.__qualname__ = name
    return op


def _extremum_reduction_rule(
    g: Tensor, x: Tensor, y: Tensor, axes: tuple[int, ...], keepdims: bool
) -> Tensor:
    """max/min: the gradient is shared evenly by the elements equal to the result (torch, JAX)."""
    hit = eq(x, _expand_to(y, x, axes, keepdims))
    hits = cast(hit, x._dtype)
    count = sum(hits, axes, True)
    return mul(_expand_to(g, x, axes, keepdims), div(hits, count))


def _prod_rule(g: Tensor, x: Tensor, y: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """prod: each element's gradient is the product of the others, exact even with zeros."""
    nd = x.ndim
    rest = tuple(i for i in range(nd) if i not in axes)
    moved = permute(x, rest + axes)
    lead = moved.shape[: len(rest)]
    flat = reshape(moved, lead + (_count(x, axes),))
    others = _exclusive_products(flat)
    others = reshape(others, moved.shape)
    inverse = tuple(sorted(range(nd), key=lambda i: (rest + axes)[i]))
    return mul(_expand_to(g, x, axes, keepdims), _cj(permute(others, inverse)))


def _exclusive_products(flat: Tensor) -> Tensor:
    """For each i along the last axis, the product of all elements but the i-th."""
    n = flat.shape[-1]
    if n == 0:
        return flat
    ones = _make(flat._device.ops.full(flat.shape[:-1] + (1,), 1, flat._dtype), flat._device)
    ax = flat.ndim - 1
    left = concat([ones, getitem(cumprod(flat, ax), (Ellipsis, slice(0, n - 1)))], ax)
    rev = flip(flat, (ax,))
    right = flip(concat([ones, getitem(cumprod(rev, ax), (Ellipsis, slice(0, n - 1)))], ax), (ax,))
    return mul(left, right)


def _var_rule(correction: float) -> Rule:
    def rule(g: Tensor, x: Tensor, y: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
        centered = sub(x, mean(x, axes, True))
        dof = _count(x, axes) - correction
        return mul(_expand_to(g, x, axes, keepdims), mul(centered, 2.0 / dof if dof else math.nan))

    return rule


sum = _reduction("sum", lambda g, x, y, axes, keepdims: _expand_to(g, x, axes, keepdims))
mean = _reduction(
    "mean", lambda g, x, y, axes, keepdims: div(_expand_to(g, x, axes, keepdims), float(_count(x, axes)))
)
prod = _reduction("prod", _prod_rule, "x")
max = _reduction("max", _extremum_reduction_rule, "xy")
min = _reduction("min", _extremum_reduction_rule, "xy")
any = _reduction("any", None)
all = _reduction("all", None)


def var(x: Tensor, axes: tuple[int, ...], correction: float, keepdims: bool) -> Tensor:
    out = _make(x._device.ops.var(x._data, axes, correction, keepdims), x._device)
    if grad_enabled() and x.requires_grad:
        rule = _var_rule(correction)
        _record(out, "var", (x,), lambda g, y: (rule(g, x, y, axes, keepdims),))
    return out


def std(x: Tensor, axes: tuple[int, ...], correction: float, keepdims: bool) -> Tensor:
    out = _make(x._device.ops.std(x._data, axes, correction, keepdims), x._device)
    if grad_enabled() and x.requires_grad:

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
            # d std = d var / (2 std); zero where std is zero (as torch)
            safe = where(eq(y, 0.0), 1.0, y)
            gv = where(eq(y, 0.0), 0.0, div(g, mul(safe, 2.0)))
            return (_var_rule(correction)(gv, x, None, axes, keepdims),)

        _record(out, "std", (x,), vjp, True)
    return out


def argmax(x: Tensor, axis: int, keepdims: bool) -> Tensor:
    return _make(x._device.ops.argmax(x._data, axis, keepdims), x._device)


def argmin(x: Tensor, axis: int, keepdims: bool) -> Tensor:
    return _make(x._device.ops.argmin(x._data, axis, keepdims), x._device)


def cumsum(x: Tensor, axis: int) -> Tensor:
    out = _make(x._device.ops.cumsum(x._data, axis), x._device)
    if grad_enabled() and x.requires_grad:
        _record(out, "cumsum", (x,), lambda g, y: (flip(cumsum(flip(g, (axis,)), axis), (axis,)),))
    return out


def cumprod(x: Tensor, axis: int) -> Tensor:
    out = _make(x._device.ops.cumprod(x._data, axis), x._device)
    if grad_enabled() and x.requires_grad:
        _record(out, "cumprod", (x,), lambda g, y: (_cumprod_vjp(g, x, axis),))
    return out


def _cumprod_vjp(g: Tensor, x: Tensor, axis: int) -> Tensor:
    """Exact with zeros: row i of an (n, n) table holds cumprod(x with x_i set to 1); the gradient of
    x_i is sum over j >= i of g_j times that row's j-th entry. O(n^2) memory along `axis`."""
    nd = x.ndim
    xm = moveaxis(x, axis, nd - 1)
    gm = moveaxis(g, axis, nd - 1)
    n = xm.shape[-1]
    dev = x._device
    eye_n = _make(dev.ops.eye(n, n, 0, dtypes.bool), dev)
    table = where(eye_n, 1.0, expand_dims(xm, (nd - 1,)))  # (..., i, k)
    rows = cumprod(table, nd)  # (..., i, j)
    upper = ge(
        _make(dev.ops.arange(0, n, 1, dtypes.int64), dev),
        expand_dims(_make(dev.ops.arange(0, n, 1, dtypes.int64), dev), (1,)),
    )  # j >= i
    contrib = where(upper, mul(_cj(rows), expand_dims(gm, (nd - 1,))), 0.0)
    return moveaxis(sum(contrib, (nd,), False), nd - 1, axis)


def logsumexp(x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    return composite(
        "logsumexp",
        (x,),
        {"axes": axes, "keepdims": keepdims},
        lambda g, y: (mul(_expand_to(g, x, axes, keepdims), exp(sub(x, _expand_to(y, x, axes, keepdims)))),),
        saves_output=True,
    )


# ---------------------------------------------------------------------- linear algebra
def matmul(a: Tensor, b: Tensor) -> Tensor:
    dev = a._device
    out = _make(dev.ops.matmul(a._data, b._data), dev)
    if (a.requires_grad or b.requires_grad) and grad_enabled():
        wa, wb = a.requires_grad, b.requires_grad
        ra = a if wb else TensorMeta(a)  # a's gradient reads b's values, b's reads a's
        rb = b if wa else TensorMeta(b)

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor, ...]:
            a_vector, b_vector = ra.ndim == 1, rb.ndim == 1
            g2 = g
            if a_vector:
                g2 = expand_dims(g2, (g2.ndim - 1 if g2.ndim else 0,))
            if b_vector:
                g2 = expand_dims(g2, (g2.ndim,))
            res = []
            if wa:
                b2 = expand_dims(rb, (1,)) if b_vector else rb
                shape_a2 = (1, *ra.shape) if a_vector else ra.shape
                res.append(reshape(unbroadcast(matmul(g2, _cj(_mt(b2))), shape_a2), ra.shape))
            if wb:
                a2 = expand_dims(ra, (0,)) if a_vector else ra
                shape_b2 = (*rb.shape, 1) if b_vector else rb.shape
                res.append(reshape(unbroadcast(matmul(_cj(_mt(a2)), g2), shape_b2), rb.shape))
            return tuple(res)

        _record(out, "matmul", tuple(t for t in (a, b) if t.requires_grad), vjp)
    return out


def _mt(x: Tensor) -> Tensor:
    nd = x.ndim
    return permute(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


# ---------------------------------------------------------------------- shape
def _shape_op(name: str, forward: Callable[..., Any], rule: Rule) -> Callable[..., Tensor]:
    def op(x: Tensor, *args: Any) -> Tensor:
        out = _make(forward(x._device.ops, x._data, *args), x._device)
        if grad_enabled() and x.requires_grad:
            mx = TensorMeta(x)  # a shape op's gradient reads the input's shape only
            _record(out, name, (x,), lambda g, y: (rule(g, mx, *args),))
        return out

    op.__name__ = op.__qualname__ = name
    return op


def _inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


reshape = _shape_op(
    "reshape", lambda o, a, shape: o.reshape(a, shape), lambda g, x, shape: reshape(g, x.shape)
)
permute = _shape_op(
    "permute",
    lambda o, a, axes: o.permute(a, axes),
    lambda g, x, axes: permute(g, _inverse_permutation(axes)),
)
broadcast_to = _shape_op(
    "broadcast_to", lambda o, a, shape: o.broadcast_to(a, shape), lambda g, x, shape: unbroadcast(g, x.shape)
)
squeeze = _shape_op("squeeze", lambda o, a, axes: o.squeeze(a, axes), lambda g, x, axes: reshape(g, x.shape))
expand_dims = _shape_op(
    "expand_dims", lambda o, a, axes: o.expand_dims(a, axes), lambda g, x, axes: reshape(g, x.shape)
)
flip = _shape_op("flip", lambda o, a, axes: o.flip(a, axes), lambda g, x, axes: flip(g, axes))


def moveaxis(x: Tensor, source: int, destination: int) -> Tensor:
    order = [i for i in range(x.ndim) if i != source]
    order.insert(destination, source)
    return permute(x, tuple(order)) if order != list(range(x.ndim)) else x


def _tile_rule(g: Tensor, x: Tensor, reps: tuple[int, ...]) -> Tensor:
    split_shape: list[int] = []
    for r, s in zip(reps, x.shape):
        split_shape += [r, s]
    return sum(reshape(g, tuple(split_shape)), tuple(range(0, 2 * x.ndim, 2)), False)


tile = _shape_op("tile", lambda o, a, reps: o.tile(a, reps), _tile_rule)


def repeat(x: Tensor, repeats: int | Tensor, axis: int) -> Tensor:
    dev = x._device
    out = _make(dev.ops.repeat(x._data, repeats._data if isinstance(repeats, Tensor) else repeats, axis), dev)
    if grad_enabled() and x.requires_grad:
        n = x.shape[axis]

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
            # the source index of every output position, then sum back (the adjoint of take)
            src = repeat(_make(dev.ops.arange(0, n, 1, dtypes.int64), dev), repeats, 0)
            return (take_adjoint(g, src, axis, n),)

        _record(out, "repeat", (x,), vjp)
    return out


def concat(xs: Sequence[Tensor], axis: int) -> Tensor:
    dev = xs[0]._device
    out = _make(dev.ops.concat([t._data for t in xs], axis), dev)
    if _tracking(*xs):
        sizes = [t.shape[axis] for t in xs]
        wanted = [t.requires_grad for t in xs]

        def vjp(g: Tensor, y: Tensor) -> list[Tensor | None]:
            res, start = [], 0
            for want, n in zip(wanted, sizes):
                if want:
                    res.append(getitem(g, (slice(None),) * axis + (slice(start, start + n),)))
                start += n
            return res

        _record(out, "concat", tuple(t for t in xs if t.requires_grad), vjp)
    return out


def stack(xs: Sequence[Tensor], axis: int) -> Tensor:
    dev = xs[0]._device
    out = _make(dev.ops.stack([t._data for t in xs], axis), dev)
    if _tracking(*xs):
        idx = [i for i, t in enumerate(xs) if t.requires_grad]
        _record(
            out,
            "stack",
            tuple(xs[i] for i in idx),
            lambda g, y: [getitem(g, (slice(None),) * axis + (i,)) for i in idx],
        )
    return out


def pad(x: Tensor, widths: tuple[tuple[int, int], ...], mode_: str, value: float) -> Tensor:
    dev = x._device
    out = _make(dev.ops.pad(x._data, widths, mode_, value), dev)
    if grad_enabled() and x.requires_grad:
        shape = x.shape

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
            if mode_ == "constant":
                return (getitem(g, tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, shape))),)

            for axis, ((lo, hi), n) in enumerate(zip(widths, shape)):
                if lo or hi:
                    positions = np.arange(-lo, n + hi)
                    src = np.pad(np.arange(n), (lo, hi), mode=mode_)
                    assert len(src) == len(positions)
                    g = take_adjoint(g, _make(dev.ops.from_numpy(src.astype(np.int64)), dev), axis, n)
            return (g,)

        _record(out, "pad", (x,), vjp)
    return out


# ---------------------------------------------------------------------- indexing
def _key_data(key: tuple) -> tuple:
    return tuple(k._data if isinstance(k, Tensor) else k for k in key)


def getitem(x: Tensor, key: tuple) -> Tensor:
    """NumPy indexing with a normalized key (index arrays as int64 or bool Tensors)."""
    out = _make(x._device.ops.getitem(x._data, _key_data(key)), x._device)
    if grad_enabled() and x.requires_grad:
        shape = x.shape
        band = _axis_band(shape, key)
        if band is None:
            mx = TensorMeta(x)
            _record(out, "getitem", (x,), lambda g, y: (index_add(zeros_like(mx), key, g),))
        else:
            _record(out, "getitem", (x,), lambda g, y: (_AxisBand(*band, shape[band[0]], g),))
    return out


def _axis_band(shape: tuple[int, ...], key: tuple) -> tuple[int, int, int, bool] | None:
    """(axis, start, stop, dropped) when `key` is `(:, ..., :, i)` or `(:, ..., :, a:b)` (step 1):
    the slices unstack and split take, whose cotangents assemble by concatenation."""
    axis = len(key) - 1
    if (
        axis < 0
        or axis >= len(shape)
        or not builtins.all(isinstance(k, slice) and k == slice(None) for k in key[:-1])
    ):
        return None
    last, n = key[-1], shape[axis]
    if isinstance(last, slice):
        start, stop, step = last.indices(n)
        return (axis, start, builtins.max(start, stop), False) if step == 1 else None
    if isinstance(last, (int, np.integer)) and not isinstance(last, bool) and -n <= last < n:
        i = int(last) % n
        return axis, i, i + 1, True
    return None


class _AxisBand(DeferredCotangent):
    """The cotangent of `x[(:,) * axis + (start:stop,)]` (or of the single index `start`, that axis
    `dropped`), kept apart so that the bands of one tensor assemble into one concatenation;
    `length` is x's along that axis (x's other dimensions are the value's)."""

    __slots__ = ("axis", "start", "stop", "dropped", "length", "value")

    def __init__(self, axis: int, start: int, stop: int, dropped: bool, length: int, value: Tensor) -> None:
        self.axis, self.start, self.stop, self.dropped = axis, start, stop, dropped
        self.length, self.value = length, value

    def block(self) -> Tensor:
        """The value with the indexed axis present (length stop - start)."""
        v = self.value
        return reshape(v, v.shape[: self.axis] + (1,) + v.shape[self.axis :]) if self.dropped else v

    def whole(self) -> tuple[int, ...]:
        """The shape of the indexed tensor."""
        v = self.value.shape
        return v[: self.axis] + (self.length,) + v[self.axis + (0 if self.dropped else 1) :]

    @staticmethod
    def assemble(pieces: list[_AxisBand], dense: Tensor | None) -> Tensor:
        axis = pieces[0].axis
        merged: dict[tuple[int, int], Tensor] = {}
        for p in pieces:
            k = (p.start, p.stop)
            merged[k] = merged[k] + p.block() if k in merged else p.block()
        bands = sorted(merged.items(), key=lambda kv: kv[0])
        disjoint = builtins.all(a[0][1] <= b[0][0] for a, b in zip(bands, bands[1:]))
        value = pieces[0].value
        dev, dtype, shape = value._device, value._dtype, pieces[0].whole()
        if builtins.any(p.axis != axis for p in pieces) or not disjoint:
            out = _make(dev.ops.full(shape, 0, dtype), dev) if dense is None else dense
            for p in pieces:
                out = index_add(out, (slice(None),) * p.axis + (slice(p.start, p.stop),), p.block())
            return out
        blocks, pos, n = [], 0, shape[axis]

        def zeros(length: int) -> Tensor:
            return _make(dev.ops.full(shape[:axis] + (length,) + shape[axis + 1 :], 0, dtype), dev)

        for (start, stop), value in bands:
            if start > pos:
                blocks.append(zeros(start - pos))
            blocks.append(value)
            pos = stop
        if pos < n:
            blocks.append(zeros(n - pos))
        out = blocks[0] if len(blocks) == 1 else concat(blocks, axis)
        return out if dense is None else out + dense


def index_add(a: Tensor, key: tuple, values: Tensor) -> Tensor:
    """A copy of `a` with `values` added at `a[key]` (repeated indices accumulate)."""
    out = _make(a._device.ops.index_add(a._data, _key_data(key), values._data), a._device)
    if _tracking(a, values):
        wa, wv = a.requires_grad, values.requires_grad
        inputs = tuple(t for t, w in ((a, wa), (values, wv)) if w)
        _record(out, "index_add", inputs, lambda g, y: [g] * wa + [getitem(g, key)] * wv)
    return out


def take(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    out = _make(x._device.ops.take(x._data, indices._data, axis), x._device)
    if grad_enabled() and x.requires_grad:
        n = x.shape[axis]
        _record(out, "take", (x,), lambda g, y: (take_adjoint(g, indices, axis, n),))
    return out


def take_adjoint(g: Tensor, indices: Tensor, axis: int, n: int) -> Tensor:
    """The adjoint of `take(., indices, axis)` for an input of length `n` along `axis`."""
    shape = g.shape[:axis] + (n,) + g.shape[axis + indices.ndim :]
    base = _make(g._device.ops.full(shape, 0, g._dtype), g._device)
    return index_add(base, (slice(None),) * axis + (indices,), g)


def take_along_axis(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    out = _make(x._device.ops.take_along_axis(x._data, indices._data, axis), x._device)
    if grad_enabled() and x.requires_grad:
        shape = x.shape

        def vjp(g: Tensor, y: Tensor) -> tuple[Tensor]:
            target = list(g.shape)
            target[axis] = shape[axis]
            base = _make(g._device.ops.full(tuple(target), 0, g._dtype), g._device)
            idx = broadcast_to(indices, g.shape) if indices.shape != g.shape else indices
            return (unbroadcast(scatter_add(base, axis, idx, g), shape),)

        _record(out, "take_along_axis", (x,), vjp)
    return out


def scatter_add(a: Tensor, axis: int, indices: Tensor, src: Tensor) -> Tensor:
    out = _make(a._device.ops.scatter_add(a._data, axis, indices._data, src._data), a._device)
    if _tracking(a, src):
        wa, ws = a.requires_grad, src.requires_grad
        inputs = tuple(t for t, w in ((a, wa), (src, ws)) if w)
        _record(out, "scatter_add", inputs, lambda g, y: [g] * wa + [take_along_axis(g, indices, axis)] * ws)
    return out


def sort(x: Tensor, axis: int, descending: bool, stable: bool) -> Tensor:
    if grad_enabled() and x.requires_grad:
        return take_along_axis(x, argsort(x, axis, descending, stable), axis)
    return _make(x._device.ops.sort(x._data, axis, descending, stable), x._device)


def argsort(x: Tensor, axis: int, descending: bool, stable: bool) -> Tensor:
    return _make(x._device.ops.argsort(x._data, axis, descending, stable), x._device)


def topk(x: Tensor, k: int, axis: int, largest: bool) -> tuple[Tensor, Tensor]:
    values, idx = x._device.ops.topk(x._data, k, axis, largest)
    indices = _make(idx, x._device)
    if grad_enabled() and x.requires_grad:
        return take_along_axis(x, indices, axis), indices
    return _make(values, x._device), indices


# ---------------------------------------------------------------------- convolution and pooling
def conv(x: Tensor, w: Tensor, stride: Any, padding: Any, dilation: Any, groups: int) -> Tensor:
    args = (stride, padding, dilation, groups)
    out = _make(x._device.ops.conv(x._data, w._data, *args), x._device)
    if _tracking(x, w):
        wanted = (x.requires_grad, w.requires_grad, False)
        inputs = tuple(t for t, want in zip((x, w), wanted) if want)

        def vjp(g: Tensor, y: Tensor) -> list[Tensor | None]:
            grads = composite_outputs("conv_bias_grad", (g, x, w, *args, wanted), {})
            return [c for c, want in zip(grads, wanted) if want]

        _record(out, "conv", inputs, vjp)
    return out


def conv_bias(
    x: Tensor, w: Tensor, b: Tensor, stride: Any, padding: Any, dilation: Any, groups: int
) -> Tensor:
    args = (stride, padding, dilation, groups)
    wanted = (x.requires_grad, w.requires_grad, b.requires_grad)  # as recorded: see `composite`
    return composite(
        "conv_bias",
        (x, w, b, *args),
        {},
        lambda g, y: composite_outputs("conv_bias_grad", (g, x, w, *args, wanted), {}),
    )


def _conv_to(like: Tensor, x: Tensor, w: Tensor, args: tuple) -> Tensor:
    """conv(x, w) cut to `like`'s spatial shape: a transposed convolution with output_padding has
    more outputs than the gradient it came from, and the extra ones never reached it."""
    out = conv(x, w, *args)
    if out.shape[2:] == like.shape[2:]:
        return out
    return getitem(out, (slice(None), slice(None), *(slice(0, n) for n in like.shape[2:])))


def conv_input_grad(gy: Tensor, w: Tensor, input_shape: Any, stride: Any, padding: Any, dilation: Any,
                    groups: int) -> Tensor:  # fmt: skip
    args = (stride, padding, dilation, groups)
    out = _make(gy._device.ops.conv_input_grad(gy._data, w._data, input_shape, *args), gy._device)
    if _tracking(gy, w):
        inputs = tuple(t for t in (gy, w) if t.requires_grad)

        def vjp(g: Tensor, y: Tensor) -> list[Tensor]:
            # linear in gy (adjoint of conv) and bilinear in (gy, w)
            return [
                _conv_to(gy, g, w, args) if t is gy else conv_weight_grad(g, gy, w.shape, *args)
                for t in inputs
            ]

        _record(out, "conv_input_grad", inputs, vjp)
    return out


def conv_weight_grad(x: Tensor, gy: Tensor, weight_shape: Any, stride: Any, padding: Any, dilation: Any,
                     groups: int) -> Tensor:  # fmt: skip
    args = (stride, padding, dilation, groups)
    out = _make(x._device.ops.conv_weight_grad(x._data, gy._data, weight_shape, *args), x._device)
    if _tracking(x, gy):
        inputs = tuple(t for t in (x, gy) if t.requires_grad)

        def vjp(g: Tensor, y: Tensor) -> list[Tensor]:
            return [
                conv_input_grad(gy, g, x.shape, *args) if t is x else _conv_to(gy, x, g, args) for t in inputs
            ]

        _record(out, "conv_weight_grad", inputs, vjp)
    return out


def max_pool(
    x: Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> tuple[Tensor, Tensor]:
    values, idx = x._device.ops.max_pool(x._data, kernel, stride, padding, dilation, ceil_mode)
    out, indices = _make(values, x._device), _make(idx, x._device)
    if grad_enabled() and x.requires_grad:
        args = (kernel, stride, padding, dilation, ceil_mode)
        _record(out, "max_pool", (x,), lambda g, y: (max_pool_grad(g, x, indices, *args),))
    return out, indices


def max_pool_grad(
    g: Tensor,
    x: Tensor,
    indices: Tensor,
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> Tensor:
    def rule(gg: Tensor, out: Tensor) -> tuple[Tensor | None, ...]:
        # linear in g: its adjoint reads each window's winner; x only gives the shape
        n, c = x.shape[:2]
        flat = reshape(gg, (n, c, math.prod(x.shape[2:])))
        picked = take_along_axis(flat, reshape(indices, (n, c, math.prod(g.shape[2:]))), 2)
        return reshape(picked, g.shape), None

    args = (g, x, indices, kernel, stride, padding, dilation, ceil_mode)
    return composite("max_pool_grad", args, {}, rule)


def avg_pool(
    x: Tensor, kernel: Any, stride: Any, padding: Any, ceil_mode: bool, count_include_pad: bool
) -> Tensor:
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    out = _make(x._device.ops.avg_pool(x._data, *args), x._device)
    if grad_enabled() and x.requires_grad:
        shape = x.shape
        _record(out, "avg_pool", (x,), lambda g, y: (avg_pool_grad(g, shape, *args),))
    return out


def avg_pool_grad(gy: Tensor, input_shape: Any, kernel: Any, stride: Any, padding: Any, ceil_mode: bool,
                  count_include_pad: bool) -> Tensor:  # fmt: skip
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    out = _make(gy._device.ops.avg_pool_grad(gy._data, input_shape, *args), gy._device)
    if grad_enabled() and gy.requires_grad:
        _record(out, "avg_pool_grad", (gy,), lambda g, y: (avg_pool(g, *args),))
    return out


# ---------------------------------------------------------------------- composites
class TensorOps:
    """The op-set over Tensors on one device: a composite's default body (written against
    `Backend`) runs on it to be differentiated."""

    def __init__(self, device: Device) -> None:
        self._device = device

    def __getattr__(self, name: str) -> Any:
        fn = _PRIMITIVES.get(name)
        if fn is None:
            raise AttributeError(f"TensorOps has no op {name!r}")
        setattr(self, name, fn)
        return fn

    def full(self, shape: tuple[int, ...], value: Any, dtype: DType) -> Tensor:
        return _make(self._device.ops.full(shape, value, dtype), self._device)

    def arange(self, start: Any, stop: Any, step: Any, dtype: DType) -> Tensor:
        return _make(self._device.ops.arange(start, stop, step, dtype), self._device)

    def eye(self, n: int, m: int, k: int, dtype: DType) -> Tensor:
        return _make(self._device.ops.eye(n, m, k, dtype), self._device)

    def dtype_of(self, a: Tensor) -> DType:
        return a.dtype

    def shape(self, a: Tensor) -> tuple[int, ...]:
        return a.shape


def composite(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    rule: Rule | None = None,
    saves_output: bool = False,
) -> Tensor:
    """Run composite `name` with the backend's implementation (fused or default). Its gradient is
    `rule(g, out)` when given (`saves_output` when it reads `out`), else the gradient of the
    base-class default run on Tensors.

    `rule` returns one cotangent (or None) per leading argument of `args`, in order (trailing
    non-tensor arguments may be left out); the node keeps those of the tensors that required grad
    when it was recorded. (A leaf's requires_grad may change before the backward pass, as `ag.grad`
    resets its inputs' when it is done; the rule must not be what decides which inputs it feeds.)"""
    dev, result, tracked = _run_composite(name, args, kwargs)
    out = _make(result, dev)
    if grad_enabled() and tracked:
        if rule is None:
            _record(out, name, tracked, _default_rule(name, args, kwargs, tracked, None))
        else:
            _record(out, name, tracked, _for_recorded(rule, args), saves_output)
    return out


def _for_recorded(rule: Rule, args: tuple[Any, ...]) -> Rule:
    """`rule`'s cotangents for the arguments that are a node's inputs (see `composite`)."""
    where = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]

    def vjp(g: Tensor, y: Tensor) -> list[Tensor | None]:
        cots = tuple(rule(g, y))
        return [cots[i] if i < len(cots) else None for i in where]

    return vjp


def composite_outputs(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Tensor | None, ...]:
    """Run a composite that returns several arrays (None where one is not wanted), such as a
    gradient composite. Each output's own gradient, which only higher derivatives need, is that of
    the base-class default run on Tensors."""
    dev, results, tracked = _run_composite(name, args, kwargs)
    outs = tuple(None if o is None else _make(o, dev) for o in results)
    if grad_enabled() and tracked:
        for i, out in enumerate(outs):
            if out is not None:
                _record(out, name, tracked, _default_rule(name, args, kwargs, tracked, i))
    return outs


def _run_composite(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Device, Any, tuple[Tensor, ...]]:
    """The backend's result for composite `name` on the args' arrays, with the device and the
    tensor args that require grad."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    dev = tensors[0]._device
    for t in tensors:
        if t._device is not dev:  # one check for every composite: the backend would fail obscurely
            raise ValueError(
                f"{name}: tensors are on different backends/devices: {dev} and {t._device}; "
                f"move one first, e.g. x.to({t._device!r} or {dev!r})"
            )
    native = [a._data if isinstance(a, Tensor) else a for a in args]
    return dev, getattr(dev.ops, name)(*native, **kwargs), tuple(t for t in tensors if t.requires_grad)


def _default_rule(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], tracked: tuple[Tensor, ...], pick: int | None
) -> Rule:
    """The gradient of composite `name` (its output `pick` when it has several) by differentiating
    the base-class default, run again on Tensors."""

    def rule(g: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        aliases = {id(t): t._alias_for_grad() for t in tracked}
        call_args = [aliases.get(id(a), a) if isinstance(a, Tensor) else a for a in args]
        create_graph = grad_enabled()
        with enable_grad():
            redo = getattr(Backend, name)(TensorOps(tracked[0]._device), *call_args, **kwargs)
        if pick is not None:
            redo = redo[pick]
        return gradients(redo, [aliases[id(t)] for t in tracked], g, create_graph=create_graph)

    return rule


def linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x @ w.T + b; its gradients are the composite `linear_grad` (of conj(x) and conj(w) when
    complex: g @ conj(w) and g^T conj(x))."""
    wanted = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)  # as recorded
    return composite(
        "linear",
        (x, w, b),
        {},
        lambda g, y: composite_outputs("linear_grad", (g, _cj(x), _cj(w), wanted), {}),
    )


def softmax(x: Tensor, axis: int) -> Tensor:
    def rule(g: Tensor, y: Tensor) -> tuple[Tensor]:
        return (mul(y, sub(g, sum(mul(g, y), (axis,), True))),)

    return composite("softmax", (x,), {"axis": axis}, rule, saves_output=True)


def log_softmax(x: Tensor, axis: int) -> Tensor:
    def rule(g: Tensor, y: Tensor) -> tuple[Tensor]:
        return (sub(g, mul(exp(y), sum(g, (axis,), True))),)

    return composite("log_softmax", (x,), {"axis": axis}, rule, saves_output=True)


def relu(x: Tensor) -> Tensor:
    return composite("relu", (x,), {}, lambda g, y: (relu_grad(g, y),), saves_output=True)


def relu_grad(g: Tensor, y: Tensor) -> Tensor:
    # linear in g; piecewise constant in y, so y gets no gradient
    return composite("relu_grad", (g, y), {}, lambda gg, out: (relu_grad(gg, y), None))


def layer_norm(
    x: Tensor, normalized_ndim: int, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    def rule(g: Tensor, y: Tensor) -> tuple[Tensor | None, ...]:
        gx, gw, gb = composite_outputs("layer_norm_grad", (g, x, normalized_ndim, weight, bias, eps), {})
        return gx, None, gw, gb

    return composite("layer_norm", (x, normalized_ndim, weight, bias, eps), {}, rule)


def batch_norm(
    x: Tensor, mean: Tensor, var: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """The composite, with its gradient in closed form: a few full-size products and two channel
    sums, where differentiating the default body replays it and backpropagates through each of
    its broadcasts (most of a training ResNet's BatchNorm time)."""

    def rule(g: Tensor, y: Tensor) -> tuple[Tensor | None, ...]:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        rstd = rsqrt(add(var, eps))
        scale = rstd if weight is None else mul(weight, rstd)
        g_sum = sum(g, axes, False)
        g_centered = sum(mul(g, sub(x, expand_dims(mean, axes))), axes, False)  # sum of g * (x - mean)
        gx = mul(g, expand_dims(scale, axes))
        gvar = mul(g_centered, mul(scale, mul(mul(rstd, rstd), -0.5)))
        gw = None if weight is None else mul(g_centered, rstd)
        return gx, neg(mul(g_sum, scale)), gvar, gw, g_sum if bias is not None else None

    return composite("batch_norm", (x, mean, var, weight, bias, eps), {}, rule)


def cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, label_smoothing: float,
    reduction: str,
) -> Tensor:  # fmt: skip
    args = (logits, target, weight, ignore_index, label_smoothing, reduction)
    if weight is not None and weight.requires_grad:  # the gradient composite has none for the weight
        return composite("cross_entropy", args, {})
    return composite(
        "cross_entropy", args, {}, lambda g, y: (composite("cross_entropy_grad", (g, *args), {}),)
    )


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, scale: float | None
) -> Tensor:
    args = (q, k, v, mask, is_causal, scale)
    if mask is not None and mask.requires_grad:  # the gradient composite has none for the mask
        return composite("scaled_dot_product_attention", args, {})

    def rule(g: Tensor, y: Tensor) -> tuple[Tensor | None, ...]:
        return composite_outputs(
            "scaled_dot_product_attention_grad", (g, q, k, v, y, mask, is_causal, scale), {}
        )

    return composite("scaled_dot_product_attention", args, {}, rule, saves_output=True)


_PRIMITIVES: dict[str, Callable[..., Any]] = {
    name: fn for name, fn in list(globals().items()) if callable(fn) and not name.startswith("_")
}
