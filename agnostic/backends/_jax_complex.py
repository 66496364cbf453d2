"""Complex elementwise functions on JAX as the Array API specifies them (C99 Annex G's branch cuts
and special cases). XLA's complex kernels ignore the sign of a zero part on a branch cut
(sqrt(-1 - 0j) gives +1j, not -1j) and give NaN for most infinite inputs. Each function here
reduces its input to the closed upper-right quadrant by the function's symmetries (f(conj z) =
conj f(z) for all of them; f(-z) = -f(z) for the odd ones, f(-z) = f(z) for the even ones), where
XLA's values are right, and then sets the infinite and NaN cases the standard lists that XLA gets
wrong. Real inputs go to jnp's function unchanged: the dispatch is on the dtype, when the function
is traced, so real-valued ops pay nothing for it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any
_PI = math.pi


def _parts(z: Array) -> tuple[Array, Array]:
    return jnp.real(z), jnp.imag(z)


def _flip(w: Array, negate_real: Array, negate_imag: Array) -> Array:
    u, v = _parts(w)
    return lax.complex(jnp.where(negate_real, -u, u), jnp.where(negate_imag, -v, v))


def _conj_symmetric(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """f(conj z) = conj f(z): computed at a + |b|i, conjugated where b's sign bit is set."""

    def g(z: Array) -> Array:
        a, b = _parts(z)
        w = f(lax.complex(a, jnp.abs(b)))
        return _flip(w, False, jnp.signbit(b))

    return g


def _odd(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """f(-z) = -f(z) and f(conj z) = conj f(z): computed at |a| + |b|i, each part's sign restored."""

    def g(z: Array) -> Array:
        a, b = _parts(z)
        w = f(lax.complex(jnp.abs(a), jnp.abs(b)))
        return _flip(w, jnp.signbit(a), jnp.signbit(b))

    return g


def _even(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """f(-z) = f(z) and f(conj z) = conj f(z): computed at |a| + |b|i, conjugated where exactly one
    part's sign bit is set."""

    def g(z: Array) -> Array:
        a, b = _parts(z)
        w = f(lax.complex(jnp.abs(a), jnp.abs(b)))
        return _flip(w, False, jnp.signbit(a) ^ jnp.signbit(b))

    return g


def _abs(z: Array) -> Array:
    a, b = _parts(z)
    return jnp.where(jnp.isinf(a) | jnp.isinf(b), jnp.inf, jnp.abs(z))


def _log_like(log: Callable[[Array], Array], scale: float) -> Callable[[Array], Array]:
    """log, log1p, log2, log10 (scale: 1 / ln(base)) in the upper half-plane: an infinite part
    gives +infinity (times scale) with the angle of the infinite point (a NaN other part, NaN)."""

    def f(z: Array) -> Array:
        a, b = _parts(z)
        inf = jnp.isinf(a) | jnp.isinf(b)
        angle = jnp.where(
            jnp.isinf(a) & jnp.isinf(b),
            jnp.where(a < 0, 0.75 * _PI, 0.25 * _PI),
            jnp.where(jnp.isinf(b), 0.5 * _PI, jnp.where(a < 0, _PI, 0.0)),
        )
        angle = jnp.where(jnp.isnan(a) | jnp.isnan(b), jnp.nan, angle)
        at_inf = lax.complex(jnp.full_like(a, jnp.inf), (angle * scale).astype(a.dtype))
        return jnp.where(inf, at_inf, log(z))

    return f


def _sqrt(z: Array) -> Array:
    """Upper half-plane: b = +inf gives +inf + inf i (whatever a); a = +inf gives +inf + 0i (b
    finite) or +inf + NaN i (b NaN); a = -inf gives 0 + inf i (b finite) or NaN + inf i (b NaN)."""
    a, b = _parts(z)
    inf, nan = jnp.full_like(a, jnp.inf), jnp.full_like(a, jnp.nan)
    out = jnp.sqrt(z)
    finite_b = jnp.isfinite(b)
    out = jnp.where((a == jnp.inf) & ~jnp.isinf(b), lax.complex(inf, jnp.where(finite_b, 0.0, nan)), out)
    out = jnp.where((a == -jnp.inf) & ~jnp.isinf(b), lax.complex(jnp.where(finite_b, 0.0, nan), inf), out)
    return jnp.where(jnp.isinf(b), lax.complex(inf, inf), out)


def _exp_like(minus_one: bool) -> Callable[[Array], Array]:
    """exp (or expm1) in the upper half-plane at a = +-inf with b infinite or NaN: +inf + NaN i for
    a = +inf; 0 + 0i (expm1: -1 + 0i) for a = -inf."""
    exp = jnp.expm1 if minus_one else jnp.exp

    def f(z: Array) -> Array:
        a, b = _parts(z)
        out = exp(z)
        odd_b = ~jnp.isfinite(b)
        plus = lax.complex(jnp.full_like(a, jnp.inf), jnp.full_like(a, jnp.nan))
        minus = lax.complex(jnp.full_like(a, -1.0 if minus_one else 0.0), jnp.zeros_like(a))
        out = jnp.where((a == jnp.inf) & odd_b, plus, out)
        return jnp.where((a == -jnp.inf) & odd_b, minus, out)

    return f


def _nonfinite(z: Array, re: Array, im: Array) -> Array:
    """`re + im i` where a part of z is infinite or NaN, XLA's value of the function elsewhere: the
    functions below give `re` and `im` for those points only."""
    a, b = _parts(z)
    return jnp.isfinite(a) & jnp.isfinite(b), lax.complex(re.astype(a.dtype), im.astype(a.dtype))


def _sinh(z: Array) -> Array:
    """The standard's table for a, b >= +0: +inf * cis(b) for a = +inf (+inf + NaN i for b not
    finite); 0 + NaN i for a = 0 and b not finite; NaN + 0i for a = NaN, b = 0; else NaN + NaN i."""
    a, b = _parts(z)
    nan = jnp.full_like(a, jnp.nan)
    re = jnp.where(jnp.isinf(a), jnp.where(jnp.isfinite(b), a * jnp.cos(b), a), jnp.where(a == 0, a, nan))
    im = jnp.where(
        jnp.isinf(a) & jnp.isfinite(b),
        jnp.where(b == 0, b, a * jnp.sin(b)),
        jnp.where(jnp.isnan(a) & (b == 0), b, nan),
    )
    finite, special = _nonfinite(z, re, im)
    return jnp.where(finite, jnp.sinh(z), special)


def _cosh(z: Array) -> Array:
    """The standard's table for a, b >= +0: +inf * cis(b) for a = +inf (+inf + NaN i for b not
    finite); NaN + 0i for a = 0 and b not finite, and for a = NaN, b = 0; else NaN + NaN i."""
    a, b = _parts(z)
    nan = jnp.full_like(a, jnp.nan)
    re = jnp.where(jnp.isinf(a), jnp.where(jnp.isfinite(b), a * jnp.cos(b), a), nan)
    zero_im = ((a == 0) & ~jnp.isfinite(b)) | (jnp.isnan(a) & (b == 0))
    im = jnp.where(
        jnp.isinf(a) & jnp.isfinite(b),
        jnp.where(b == 0, b, a * jnp.sin(b)),
        jnp.where(zero_im, jnp.zeros_like(a), nan),
    )
    finite, special = _nonfinite(z, re, im)
    return jnp.where(finite, jnp.cosh(z), special)


def _tanh(z: Array) -> Array:
    """The standard's table for a, b >= +0: 1 + 0i for a = +inf; 0 + NaN i for a = 0 and b not
    finite; NaN + 0i for a = NaN, b = 0; else NaN + NaN i."""
    a, b = _parts(z)
    nan = jnp.full_like(a, jnp.nan)
    re = jnp.where(jnp.isinf(a), 1.0, jnp.where(a == 0, a, nan))
    im = jnp.where(jnp.isinf(a), 0.0, jnp.where(jnp.isnan(a) & (b == 0), b, nan))
    finite, special = _nonfinite(z, re, im)
    return jnp.where(finite, jnp.tanh(z), special)


def _asinh(z: Array) -> Array:
    """XLA's, but NaN + 0i for a = NaN, b = 0 (the standard; XLA gives NaN + NaN i)."""
    a, b = _parts(z)
    return jnp.where(jnp.isnan(a) & (b == 0), lax.complex(a, b), jnp.arcsinh(z))


def _atanh(z: Array) -> Array:
    """XLA's, but for b = NaN: 0 + NaN i where a is 0 or +inf, else NaN + NaN i; and NaN + NaN i
    for a = NaN, b finite (XLA gives an imaginary part of pi/2 for both)."""
    a, b = _parts(z)
    nan = jnp.full_like(a, jnp.nan)
    re = jnp.where((a == 0) | jnp.isinf(a), jnp.zeros_like(a), nan)
    out = jnp.where(jnp.isnan(b), lax.complex(re, b), jnp.arctanh(z))
    return jnp.where(jnp.isnan(a) & jnp.isfinite(b), lax.complex(nan, nan), out)


def _nan_for_finite_nonzero(a: Array, b: Array, out: Array) -> Array:
    """NaN + NaN i where a is finite and nonzero and b is NaN (the standard, for acos and acosh;
    XLA keeps a finite part there)."""
    nan = jnp.full_like(a, jnp.nan)
    return jnp.where(jnp.isfinite(a) & (a != 0) & jnp.isnan(b), lax.complex(nan, nan), out)


def _acos(z: Array) -> Array:
    """XLA's, but pi/2 + NaN i for a = +-0, b = NaN (the standard; XLA gives NaN + NaN i)."""
    a, b = _parts(z)
    out = jnp.where((a == 0) & jnp.isnan(b), lax.complex(jnp.full_like(a, _PI / 2), b), jnp.arccos(z))
    return _nan_for_finite_nonzero(a, b, out)


def _acosh(z: Array) -> Array:
    """XLA's, but NaN + pi/2 i for a = +-0, b = NaN (the standard; XLA gives NaN + NaN i)."""
    a, b = _parts(z)
    out = jnp.where((a == 0) & jnp.isnan(b), lax.complex(b, jnp.full_like(a, _PI / 2)), jnp.arccosh(z))
    return _nan_for_finite_nonzero(a, b, out)


def _sign(z: Array) -> Array:
    """z / |z| (x's sign for real x), and +0 (+ 0i) for a zero of either sign (jnp.sign keeps a -0
    part, and gives -0 for a real -0)."""
    return jnp.where(z == 0, jnp.zeros_like(z), jnp.sign(z))


def _times_i(z: Array) -> Array:
    a, b = _parts(z)
    return lax.complex(-b, a)


def _times_minus_i(z: Array) -> Array:
    a, b = _parts(z)
    return lax.complex(b, -a)


def _through(f: Callable[[Array], Array], rotate_back: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """The standard defines sin, cos, tan, asin and atan "as if" by their hyperbolic twins: sin(z) =
    -i sinh(iz), cos(z) = cosh(iz), tan(z) = -i tanh(iz), asin(z) = -i asinh(iz), atan(z) = -i atanh(iz)."""

    def g(z: Array) -> Array:
        return rotate_back(f(_times_i(z)))

    return g


def _complex_only(complex_fn: Callable[[Array], Array], real_fn: Callable[[Array], Array]) -> Any:
    """One jitted function: `complex_fn` for complex inputs, `real_fn` (jnp's) for the others."""

    def fn(a: Array) -> Array:
        return complex_fn(a) if jnp.iscomplexobj(a) else real_fn(a)

    fn.__name__ = real_fn.__name__
    return jax.jit(fn, inline=True)


def functions() -> dict[str, Any]:
    """Primitive name -> a jitted function that is jnp's for real inputs and the standard's for
    complex ones."""
    sinh, cosh, tanh = _odd(_sinh), _even(_cosh), _odd(_tanh)
    asinh, atanh = _odd(_asinh), _odd(_atanh)
    return {
        "abs": _complex_only(_abs, jnp.abs),
        "sign": _complex_only(_sign, _sign),
        "sqrt": _complex_only(_conj_symmetric(_sqrt), jnp.sqrt),
        "exp": _complex_only(_conj_symmetric(_exp_like(False)), jnp.exp),
        "expm1": _complex_only(_conj_symmetric(_exp_like(True)), jnp.expm1),
        "log": _complex_only(_conj_symmetric(_log_like(jnp.log, 1.0)), jnp.log),
        "log1p": _complex_only(_conj_symmetric(_log_like(jnp.log1p, 1.0)), jnp.log1p),
        "log2": _complex_only(_conj_symmetric(_log_like(jnp.log2, 1 / math.log(2))), jnp.log2),
        "log10": _complex_only(_conj_symmetric(_log_like(jnp.log10, 1 / math.log(10))), jnp.log10),
        "acos": _complex_only(_conj_symmetric(_acos), jnp.arccos),
        "acosh": _complex_only(_conj_symmetric(_acosh), jnp.arccosh),
        "asinh": _complex_only(asinh, jnp.arcsinh),
        "atanh": _complex_only(atanh, jnp.arctanh),
        "sinh": _complex_only(sinh, jnp.sinh),
        "cosh": _complex_only(cosh, jnp.cosh),
        "tanh": _complex_only(tanh, jnp.tanh),
        "asin": _complex_only(_through(asinh, _times_minus_i), jnp.arcsin),
        "atan": _complex_only(_through(atanh, _times_minus_i), jnp.arctan),
        "sin": _complex_only(_through(sinh, _times_minus_i), jnp.sin),
        "cos": _complex_only(_through(cosh, lambda w: w), jnp.cos),
        "tan": _complex_only(_through(tanh, _times_minus_i), jnp.tan),
    }
