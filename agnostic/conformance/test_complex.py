"""Complex numbers (complex64, complex128) in every op the Array API standard (2023.12) defines for
them, against NumPy complex128: creation, conversions and casts, promotion (Python complex scalars
are weak), every elementwise function the standard defines for complex (abs gives the real dtype;
sign is z / |z|), its branch cuts (the sign of a zero part picks the side) and special cases at
infinity and NaN, reductions, matmul and vecdot (which conjugates x1), shape and indexing ops; and
the clear TypeError of every op the standard defines for real numbers only (ordering, rounding
toward an integer, the real-only functions). Unsigned dtypes beyond uint8 are test_unsigned.py's."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import noncontiguous, rng, tensor

COVERS = {
    "conj", "real", "imag", "abs", "sign", "sqrt", "exp", "expm1", "log", "log1p", "log2", "log10",
    "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "asinh", "acosh", "atanh",
    "square", "reciprocal", "round", "isnan", "isinf", "isfinite", "neg", "add", "sub", "mul", "div",
    "pow", "eq", "ne", "matmul", "sum", "prod", "mean", "cumsum", "cumprod", "where", "concat", "stack",
    "cast", "full", "eye",
}  # fmt: skip

c64, c128 = dtypes.complex64, dtypes.complex128
f32, f64 = ag.float32, ag.float64
COMPLEX = [c64, c128]
REAL = [ag.bool, ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8, ag.float16, ag.bfloat16, f32, f64]
TOLERANCE = {c64: (3e-5, 3e-6), c128: (1e-11, 1e-12)}
"""(rtol, atol) of a complex result against its complex128 reference (complex64's transcendental
functions differ between libraries by a few units in the last place)."""
PI = math.pi
INF, NAN = math.inf, math.nan


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _close(out: ag.Tensor, want: object, dtype: dtypes.DType, rtol: float | None = None,
           atol: float | None = None) -> None:  # fmt: skip
    """`out` has `dtype`, want's shape and (to the dtype's tolerance, NaN where want has NaN) its
    values; complex results are compared as complex numbers."""
    ref = np.asarray(want)
    assert isinstance(out, ag.Tensor), f"expected a Tensor, got {type(out).__name__}"
    assert out.dtype is dtype, f"dtype {out.dtype} != expected {dtype}"
    assert out.shape == ref.shape, f"shape {out.shape} != expected {ref.shape}"
    got = np.asarray(out.numpy())
    if dtype.is_complex:
        r, a = TOLERANCE[dtype]
    elif dtype.is_floating:
        r, a = (2e-5, 2e-6) if dtype is f32 else (1e-11, 1e-12)
    else:
        np.testing.assert_array_equal(got, ref)
        return
    np.testing.assert_allclose(
        got.astype(np.complex128), ref.astype(np.complex128), rtol=r if rtol is None else rtol,
        atol=a if atol is None else atol, equal_nan=True,
    )  # fmt: skip


def _sample(
    dtype: dtypes.DType, lo: float, hi: float, shape: tuple[int, ...] = (3, 4), seed: int = 0
) -> np.ndarray:
    r = rng(seed)
    return (r.uniform(lo, hi, shape) + 1j * r.uniform(lo, hi, shape)).astype(_np(dtype))


# ====================================================================== elementwise, values
def _sign(z: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(z == 0, 0, z / np.abs(z))


# public function -> (NumPy reference, sampling box for both parts); boxes keep clear of the branch
# cuts (on the axes) where a float32 rounding could cross one
UNARY = {
    "abs": (ag.abs, np.abs, (-3, 3)),
    "sign": (ag.sign, _sign, (-3, 3)),
    "sqrt": (ag.sqrt, np.sqrt, (0.1, 3)),
    "exp": (ag.exp, np.exp, (-2, 2)),
    "expm1": (ag.expm1, np.expm1, (-1, 1)),
    "log": (ag.log, np.log, (0.1, 3)),
    "log1p": (ag.log1p, np.log1p, (0.1, 3)),
    "log2": (ag.log2, np.log2, (0.1, 3)),
    "log10": (ag.log10, np.log10, (0.1, 3)),
    "sin": (ag.sin, np.sin, (-2, 2)),
    "cos": (ag.cos, np.cos, (-2, 2)),
    "tan": (ag.tan, np.tan, (-1, 1)),
    "sinh": (ag.sinh, np.sinh, (-2, 2)),
    "cosh": (ag.cosh, np.cosh, (-2, 2)),
    "tanh": (ag.tanh, np.tanh, (-1, 1)),
    "asin": (ag.asin, np.arcsin, (0.1, 2)),
    "acos": (ag.acos, np.arccos, (0.1, 2)),
    "atan": (ag.atan, np.arctan, (0.1, 2)),
    "asinh": (ag.asinh, np.arcsinh, (0.1, 2)),
    "acosh": (ag.acosh, np.arccosh, (0.1, 2)),
    "atanh": (ag.atanh, np.arctanh, (0.1, 2)),
    "square": (ag.square, np.square, (-3, 3)),
    "reciprocal": (ag.reciprocal, np.reciprocal, (0.2, 3)),
    "negative": (ag.negative, np.negative, (-3, 3)),
    "positive": (ag.positive, np.positive, (-3, 3)),
    "conj": (ag.conj, np.conj, (-3, 3)),
    "real": (ag.real, np.real, (-3, 3)),
    "imag": (ag.imag, np.imag, (-3, 3)),
}
REAL_RESULT = {"abs", "real", "imag"}


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, (lo, hi) = UNARY[name]
    host = _sample(dtype, lo, hi)
    if name not in ("sqrt", "log", "log1p", "log2", "log10", "asin", "acos", "atan", "asinh", "acosh",
                    "atanh", "reciprocal"):  # fmt: skip
        host[0, :3] = [0, 1.5, -2j]  # zero and points on the axes
    want = ref(host.astype(np.complex128))
    out_dtype = dtypes.real_dtype(dtype) if name in REAL_RESULT else dtype
    x = tensor(backend, host)
    _close(fn(x), want, out_dtype)
    _close(fn(noncontiguous(backend, host)), want, out_dtype)
    _close(fn(x[:0]), want[:0], out_dtype)  # empty
    _close(fn(x[1, 1]), want[1, 1], out_dtype)  # 0-d
    np.testing.assert_array_equal(x.numpy(), host)  # the input is left as it was


def test_rounding_and_predicates(backend: ag.Device) -> None:
    host = np.array([0.5 + 1.5j, -2.5 - 0.5j, 1.4 + 2.6j, NAN + 1j, 1 + NAN * 1j, INF + 1j, 1 - INF * 1j,
                     complex(INF, NAN), 3 - 4j], np.complex128)  # fmt: skip
    for d in COMPLEX:
        x = tensor(backend, host.astype(_np(d)))
        finite = np.isfinite(host)
        out = ag.round(x)  # both parts, half to even
        assert out.dtype is d
        _close(out[finite], np.round(host[finite]), d)
        _close(ag.isnan(x), np.isnan(host), ag.bool)
        _close(ag.isinf(x), np.isinf(host), ag.bool)
        _close(ag.isfinite(x), np.isfinite(host), ag.bool)


def test_no_undue_overflow_or_underflow(backend: ag.Device) -> None:
    """abs, sign and sqrt of complex64 values whose squares leave float32's range (the standard asks
    for care in abs' intermediate steps)."""
    host = np.array([2e38 + 2e38j, 1e-30 - 1e-30j, -3e-37 + 4e-37j], np.complex64)
    ref = host.astype(np.complex128)
    x = tensor(backend, host)
    _close(ag.abs(x), np.abs(ref), f32, rtol=1e-6, atol=0)
    _close(ag.sign(x), ref / np.abs(ref), c64, rtol=1e-6, atol=0)
    _close(ag.sqrt(x), np.sqrt(ref), c64, rtol=1e-6, atol=0)


def test_conj_real_imag(backend: ag.Device) -> None:
    host = _sample(c128, -3, 3)
    for d in COMPLEX:
        x = tensor(backend, host.astype(_np(d)))
        part = dtypes.real_dtype(d)
        _close(ag.real(x), host.real, part)
        _close(ag.imag(x), host.imag, part)
        _close(ag.conj(x), np.conj(host), d)
        _close(ag.real(x) + 1j * ag.imag(x), host, d)  # the parts make the number again
    for d in (f32, f64, ag.int32, ag.bool):  # a real tensor is its own real part and conjugate
        x = tensor(backend, np.array([1, 0, 1]).astype(_np(d)))
        assert ag.real(x).dtype is d and ag.conj(x).dtype is d
        _close(ag.real(x), x.numpy(), d)
        _close(ag.conj(x), x.numpy(), d)
        _close(ag.imag(x), np.zeros(3, _np(d)), d)


# ====================================================================== special values
def _c(re: float, im: float) -> complex:
    return complex(re, im)


# (function, input, expected, parts whose sign the standard leaves unspecified)
SPECIAL = [
    # abs: an infinite part wins over NaN
    ("abs", _c(INF, NAN), INF, ""), ("abs", _c(NAN, -INF), INF, ""), ("abs", _c(NAN, 1.0), NAN, ""),
    ("abs", _c(-0.0, -3.0), 3.0, ""),
    # sqrt: the sign of a zero imaginary part picks the side of the cut
    ("sqrt", _c(-4.0, 0.0), _c(0.0, 2.0), ""), ("sqrt", _c(-4.0, -0.0), _c(0.0, -2.0), ""),
    ("sqrt", _c(0.0, 0.0), _c(0.0, 0.0), ""), ("sqrt", _c(1.0, INF), _c(INF, INF), ""),
    ("sqrt", _c(NAN, INF), _c(INF, INF), ""), ("sqrt", _c(-INF, 1.0), _c(0.0, INF), ""),
    ("sqrt", _c(INF, 1.0), _c(INF, 0.0), ""), ("sqrt", _c(INF, NAN), _c(INF, NAN), ""),
    ("sqrt", _c(-INF, NAN), _c(NAN, INF), "i"), ("sqrt", _c(1.0, NAN), _c(NAN, NAN), ""),
    # log and friends: the cut is the negative real axis
    ("log", _c(-1.0, 0.0), _c(0.0, PI), ""), ("log", _c(-1.0, -0.0), _c(0.0, -PI), ""),
    ("log", _c(-0.0, 0.0), _c(-INF, PI), ""), ("log", _c(0.0, 0.0), _c(-INF, 0.0), ""),
    ("log", _c(1.0, INF), _c(INF, PI / 2), ""), ("log", _c(-INF, 1.0), _c(INF, PI), ""),
    ("log", _c(INF, 1.0), _c(INF, 0.0), ""), ("log", _c(-INF, INF), _c(INF, 3 * PI / 4), ""),
    ("log", _c(INF, INF), _c(INF, PI / 4), ""), ("log", _c(INF, NAN), _c(INF, NAN), ""),
    ("log", _c(NAN, INF), _c(INF, NAN), ""), ("log", _c(NAN, 1.0), _c(NAN, NAN), ""),
    ("log1p", _c(-3.0, 0.0), _c(math.log(2), PI), ""), ("log1p", _c(-3.0, -0.0), _c(math.log(2), -PI), ""),
    ("log1p", _c(-1.0, 0.0), _c(-INF, 0.0), ""), ("log1p", _c(1.0, INF), _c(INF, PI / 2), ""),
    ("log2", _c(-2.0, -0.0), _c(1.0, -PI / math.log(2)), ""),
    ("log10", _c(-10.0, -0.0), _c(1.0, -PI / math.log(10)), ""),
    # exp
    ("exp", _c(0.0, 0.0), _c(1.0, 0.0), ""), ("exp", _c(-0.0, -0.0), _c(1.0, -0.0), ""),
    ("exp", _c(INF, 0.0), _c(INF, 0.0), ""), ("exp", _c(1.0, INF), _c(NAN, NAN), ""),
    ("exp", _c(-INF, 1.0), _c(0.0 * math.cos(1), 0.0), ""), ("exp", _c(-INF, INF), _c(0.0, 0.0), "ri"),
    ("exp", _c(INF, INF), _c(INF, NAN), "r"), ("exp", _c(-INF, NAN), _c(0.0, 0.0), "ri"),
    ("exp", _c(INF, NAN), _c(INF, NAN), "r"), ("exp", _c(NAN, 0.0), _c(NAN, 0.0), ""),
    ("exp", _c(NAN, 1.0), _c(NAN, NAN), ""),
    # expm1 (where NumPy's and torch's own kernels give NaN)
    ("expm1", _c(0.0, 0.0), _c(0.0, 0.0), ""), ("expm1", _c(INF, 0.0), _c(INF, 0.0), ""),
    ("expm1", _c(-INF, INF), _c(-1.0, 0.0), "i"), ("expm1", _c(-INF, NAN), _c(-1.0, 0.0), "i"),
    ("expm1", _c(INF, NAN), _c(INF, NAN), "r"), ("expm1", _c(INF, INF), _c(INF, NAN), "r"),
    ("expm1", _c(NAN, 0.0), _c(NAN, 0.0), ""), ("expm1", _c(1.0, INF), _c(NAN, NAN), ""),
    # hyperbolic functions (and, through sin(z) = -i sinh(iz) and the like, the circular ones)
    ("sinh", _c(0.0, INF), _c(0.0, NAN), "r"), ("sinh", _c(0.0, NAN), _c(0.0, NAN), "r"),
    ("sinh", _c(1.0, INF), _c(NAN, NAN), ""), ("sinh", _c(INF, 0.0), _c(INF, 0.0), ""),
    ("sinh", _c(INF, 1.0), _c(INF, INF), ""), ("sinh", _c(INF, INF), _c(INF, NAN), "r"),
    ("sinh", _c(NAN, 0.0), _c(NAN, 0.0), ""), ("sinh", _c(NAN, 1.0), _c(NAN, NAN), ""),
    ("sinh", _c(-INF, -0.0), _c(-INF, -0.0), ""),
    ("cosh", _c(0.0, 0.0), _c(1.0, 0.0), ""), ("cosh", _c(0.0, INF), _c(NAN, 0.0), "i"),
    ("cosh", _c(0.0, NAN), _c(NAN, 0.0), "i"), ("cosh", _c(INF, 0.0), _c(INF, 0.0), ""),
    ("cosh", _c(INF, 2.0), _c(-INF, INF), ""), ("cosh", _c(INF, INF), _c(INF, NAN), "r"),
    ("cosh", _c(NAN, 0.0), _c(NAN, 0.0), "i"), ("cosh", _c(NAN, 1.0), _c(NAN, NAN), ""),
    ("tanh", _c(0.0, 0.0), _c(0.0, 0.0), ""), ("tanh", _c(1.0, INF), _c(NAN, NAN), ""),
    ("tanh", _c(INF, 1.0), _c(1.0, 0.0), ""), ("tanh", _c(INF, INF), _c(1.0, 0.0), "i"),
    ("tanh", _c(-INF, NAN), _c(-1.0, 0.0), "i"), ("tanh", _c(NAN, 0.0), _c(NAN, 0.0), ""),
    ("sin", _c(0.0, INF), _c(0.0, INF), ""), ("sin", _c(INF, 0.0), _c(NAN, 0.0), "i"),
    ("cos", _c(0.0, INF), _c(INF, 0.0), "i"), ("cos", _c(INF, 0.0), _c(NAN, 0.0), "i"),
    ("tan", _c(0.0, INF), _c(0.0, 1.0), ""), ("tan", _c(1.0, NAN), _c(NAN, NAN), ""),
    # inverse functions
    ("asinh", _c(INF, 1.0), _c(INF, 0.0), ""), ("asinh", _c(INF, INF), _c(INF, PI / 4), ""),
    ("asinh", _c(1.0, INF), _c(INF, PI / 2), ""), ("asinh", _c(NAN, 0.0), _c(NAN, 0.0), ""),
    ("asinh", _c(1.0, NAN), _c(NAN, NAN), ""), ("asinh", _c(NAN, INF), _c(INF, NAN), "r"),
    ("atanh", _c(1.0, 0.0), _c(INF, 0.0), ""), ("atanh", _c(0.0, NAN), _c(0.0, NAN), ""),
    ("atanh", _c(1.0, INF), _c(0.0, PI / 2), ""), ("atanh", _c(INF, 1.0), _c(0.0, PI / 2), ""),
    ("atanh", _c(INF, INF), _c(0.0, PI / 2), ""), ("atanh", _c(INF, NAN), _c(0.0, NAN), ""),
    ("atanh", _c(NAN, 1.0), _c(NAN, NAN), ""), ("atanh", _c(NAN, INF), _c(0.0, PI / 2), "r"),
    ("asin", _c(INF, 1.0), _c(PI / 2, INF), ""), ("asin", _c(0.0, NAN), _c(0.0, NAN), "r"),
    ("atan", _c(INF, 1.0), _c(PI / 2, 0.0), ""), ("atan", _c(1.0, NAN), _c(NAN, NAN), ""),
    ("acos", _c(0.0, 0.0), _c(PI / 2, -0.0), ""), ("acos", _c(-0.0, NAN), _c(PI / 2, NAN), ""),
    ("acos", _c(1.0, INF), _c(PI / 2, -INF), ""), ("acos", _c(-INF, 1.0), _c(PI, -INF), ""),
    ("acos", _c(INF, 1.0), _c(0.0, -INF), ""), ("acos", _c(INF, INF), _c(PI / 4, -INF), ""),
    ("acos", _c(-INF, INF), _c(3 * PI / 4, -INF), ""), ("acos", _c(NAN, INF), _c(NAN, -INF), ""),
    ("acosh", _c(0.0, 0.0), _c(0.0, PI / 2), ""), ("acosh", _c(1.0, INF), _c(INF, PI / 2), ""),
    ("acosh", _c(0.0, NAN), _c(NAN, PI / 2), "i"), ("acosh", _c(-INF, 1.0), _c(INF, PI), ""),
    ("acosh", _c(INF, 1.0), _c(INF, 0.0), ""), ("acosh", _c(-INF, INF), _c(INF, 3 * PI / 4), ""),
    ("acosh", _c(INF, NAN), _c(INF, NAN), ""), ("acosh", _c(NAN, INF), _c(INF, NAN), ""),
    # sign: zero stays zero; a NaN part gives NaN + NaN j
    ("sign", _c(0.0, 0.0), _c(0.0, 0.0), "ri"), ("sign", _c(-0.0, 0.0), _c(0.0, 0.0), "ri"),
    ("sign", _c(NAN, 1.0), _c(NAN, NAN), ""), ("sign", _c(2.0, NAN), _c(NAN, NAN), ""),
    ("sign", _c(-3.0, 4.0), _c(-0.6, 0.8), ""),
]  # fmt: skip
BRANCH_CUTS = {
    "asin": [2.0, -2.0], "acos": [2.0, -2.0], "atanh": [2.0, -2.0], "acosh": [-2.0, 0.5],
    "asinh": [2j, -2j], "atan": [2j, -2j], "sqrt": [-2.0], "log": [-2.0], "log1p": [-3.0],
    "log2": [-2.0], "log10": [-2.0],
}  # fmt: skip
"""A point on each function's cut: both sides of it (the zero part's sign) against NumPy (C99)."""


def _same_special(got: complex, want: complex, unspecified: str) -> bool:
    """Equal as the standard means it: NaN where NaN, zeros of the same sign, infinities of the same
    sign, other values to rounding; a part named in `unspecified` ('r', 'i') is compared by
    magnitude."""
    for g, w, part in ((got.real, want.real, "r"), (got.imag, want.imag, "i")):
        if part in unspecified:
            g, w = abs(g), abs(w)
        if math.isnan(w):
            if not math.isnan(g):
                return False
        elif w == 0:
            if g != 0 or math.copysign(1, g) != math.copysign(1, w):
                return False
        elif not math.isclose(g, w, rel_tol=1e-6):
            return False
    return True


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
def test_special_values(backend: ag.Device, dtype: dtypes.DType) -> None:
    bad = []
    for name, z, want, unspecified in SPECIAL:
        out = getattr(ag, name)(backend.tensor([z], dtype=dtype))
        got = complex(out.numpy()[0])
        if not _same_special(got, complex(want), unspecified):
            bad.append(f"{name}({z}) = {got}, the standard says {want}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("name", sorted(BRANCH_CUTS))
def test_branch_cuts(backend: ag.Device, name: str) -> None:
    """On a cut, the sign of the zero part says from which side the point is reached (C99): the
    values of both sides differ, and each must be NumPy's."""
    ref = {"asin": np.arcsin, "acos": np.arccos, "atanh": np.arctanh, "acosh": np.arccosh,
           "asinh": np.arcsinh, "atan": np.arctan}.get(name, getattr(np, name))  # fmt: skip
    points = []
    for p in BRANCH_CUTS[name]:
        p = complex(p)
        if p.imag == 0:  # a cut on the real axis
            points += [complex(p.real, 0.0), complex(p.real, -0.0)]
        else:  # on the imaginary axis
            points += [complex(0.0, p.imag), complex(-0.0, p.imag)]
    host = np.array(points, np.complex128)
    with np.errstate(all="ignore"):
        want = ref(host)
    for d in COMPLEX:
        got = np.asarray(getattr(ag, name)(tensor(backend, host.astype(_np(d)))).numpy())
        for z, g, w in zip(points, got, want):
            assert _same_special(complex(g), complex(w), "") or cmath.isclose(g, w, rel_tol=1e-5), (
                f"{name}({z}) = {g}, expected {w} ({d})"
            )


# ====================================================================== binary ops and promotion
BINARY = {
    "add": (ag.add, np.add), "subtract": (ag.subtract, np.subtract), "multiply": (ag.multiply, np.multiply),
    "divide": (ag.divide, np.divide), "pow": (ag.pow, np.power),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(backend: ag.Device, name: str) -> None:
    fn, ref = BINARY[name]
    a = _sample(c128, 0.2, 2, (3, 1), seed=1)
    b = _sample(c128, 0.2, 2, (1, 4), seed=2)
    r = rng(3).uniform(0.5, 2, (1, 4))
    for d in COMPLEX:
        x, y = tensor(backend, a.astype(_np(d))), tensor(backend, b.astype(_np(d)))
        ha, hb = a.astype(_np(d)).astype(np.complex128), b.astype(_np(d)).astype(np.complex128)
        _close(fn(x, y), ref(ha, hb), d)  # broadcast (3, 1) with (1, 4)
        _close(fn(x, 1.5 - 0.5j), ref(ha, 1.5 - 0.5j), d)  # a weak Python complex
        _close(fn(2 + 1j, y), ref(2 + 1j, hb), d)
        _close(fn(x, 2.0), ref(ha, 2.0), d)  # a Python float keeps the complex dtype
        _close(fn(x, 2), ref(ha, 2), d)
    # a real tensor with a complex one: complex of the wider precision
    x32, xr64 = tensor(backend, r.astype(np.float32)), tensor(backend, r)
    z64 = tensor(backend, a.astype(np.complex64))
    want = ref(a.astype(np.complex64).astype(np.complex128), r.astype(np.float32))
    _close(fn(z64, x32), want, c64)
    _close(fn(z64, xr64), ref(a.astype(np.complex64).astype(np.complex128), r), c128)
    _close(fn(x32, 1j), ref(r.astype(np.float32).astype(np.float64), 1j), c64)


@pytest.mark.parametrize("other", REAL + COMPLEX, ids=str)
def test_tensor_promotion(backend: ag.Device, other: dtypes.DType) -> None:
    """Every dtype (but uint16/32/64: test_unsigned.py) with each complex one, both ways round, in
    arithmetic, comparisons, where, concat and stack: complex128 if either holds float64 parts,
    else complex64."""
    ho = np.array([1, 0, 1, 1]).astype(_np(other))
    t = tensor(backend, ho)
    for d in COMPLEX:
        want = c128 if c128 in (d, other) or other is f64 else c64
        hz = np.array([1 + 1j, 2, -1j, 0.5]).astype(_np(d))
        z = tensor(backend, hz)
        ref = ho.astype(np.float64) + hz.astype(np.complex128)
        for out in (z + t, t + z):
            _close(out, ref, want)
        _close(t * z, ho.astype(np.float64) * hz, want)
        _close(ag.equal(t, z), ho.astype(np.float64) == hz, ag.bool)
        cond = tensor(backend, np.array([True, False, True, False]))
        _close(ag.where(cond, t, z), np.where([True, False, True, False], ho.astype(np.float64), hz), want)
        _close(ag.concat([t, z]), np.concatenate([ho.astype(np.float64), hz]), want)
        assert ag.stack([z, t]).dtype is want and ag.result_type(t, z) is want


def test_promotion_with_python_scalars(backend: ag.Device) -> None:
    """A Python complex is weak: it takes the tensor's precision (float32 -> complex64, float64 ->
    complex128); with an integer or bool tensor it gives the default complex dtype, complex64."""
    cases = [(f32, c64), (f64, c128), (ag.float16, c64), (ag.int32, c64), (ag.int64, c64), (ag.uint8, c64),
             (ag.bool, c64), (c64, c64), (c128, c128)]  # fmt: skip
    for d, want in cases:
        x = tensor(backend, np.array([1, 0, 1]).astype(_np(d)))
        assert ag.result_type(x, 1j) is want and ag.result_type(d, 2 + 0j) is want
        for out in (x * 1j, 1j * x, x + 1j, x - 1j, ag.where(x == 0, x, 2j)):
            assert out.dtype is want, f"{d} with 1j gave {out.dtype}, expected {want}"
        assert ag.equal(x, 1j).dtype is ag.bool
        _close(x * 1j, np.array([1j, 0, 1j]), want)
    for d in COMPLEX:  # real Python scalars keep the complex dtype
        z = tensor(backend, np.array([1 + 1j]).astype(_np(d)))
        for s in (True, 2, 2.5):
            assert (z * s).dtype is d and (s + z).dtype is d
    assert ag.result_type(1j) is c64 and ag.result_type(1.0, 1j) is c64
    assert ag.result_type(c64, f64) is c128 and ag.result_type(c64, ag.int64) is c64


def test_comparisons_and_where(backend: ag.Device) -> None:
    host = np.array([1 + 2j, NAN + 0j, -1j, 3 + 0j], np.complex128)
    for d in COMPLEX:
        x = tensor(backend, host.astype(_np(d)))
        y = tensor(backend, np.array([1 + 2j, NAN + 0j, 1j, 3 + 0j]).astype(_np(d)))
        _close(ag.equal(x, y), host == y.numpy(), ag.bool)  # NaN is unequal to itself
        _close(ag.not_equal(x, y), host != y.numpy(), ag.bool)
        _close(x == 3, host == 3, ag.bool)
        _close(ag.equal(x, -1j), host == -1j, ag.bool)
        cond = tensor(backend, np.array([True, False, True, False]))
        _close(ag.where(cond, x, y), np.where([True, False, True, False], host, y.numpy()), d)
        _close(ag.where(cond, x, 0.5), np.where([True, False, True, False], host, 0.5), d)
        _close(ag.logical_not(x), host == 0, ag.bool)
        assert bool(ag.any(x)) and not bool(ag.all(x[2:3] == 0))


# ====================================================================== creation and conversion
def test_creation(backend: ag.Device) -> None:
    x = ag.asarray([1 + 2j, 3.0, 4], device=backend)
    assert x.dtype is c64
    _close(x, np.array([1 + 2j, 3, 4]), c64)
    _close(ag.asarray(2 - 1j, device=backend), np.array(2 - 1j), c64)
    _close(ag.asarray([[1j], [2]], dtype=c128, device=backend), np.array([[1j], [2]]), c128)
    _close(ag.asarray([1.5, 2], dtype=c128, device=backend), np.array([1.5, 2]), c128)
    for d in COMPLEX:
        host = _sample(d, -1, 1)
        _close(ag.asarray(host, device=backend), host, d)  # NumPy arrays keep their dtype
        _close(backend.tensor(host), host, d)
        _close(ag.tensor(host.tolist(), dtype=d, device=backend), host, d)
        _close(ag.zeros((2, 3), dtype=d, device=backend), np.zeros((2, 3)), d)
        _close(ag.ones((2,), dtype=d, device=backend), np.ones(2), d)
        _close(ag.empty((0, 2), dtype=d, device=backend), np.zeros((0, 2)), d)
        _close(ag.full((2, 2), 1 - 2j, dtype=d, device=backend), np.full((2, 2), 1 - 2j), d)
        _close(ag.full((3,), 2.5, dtype=d, device=backend), np.full(3, 2.5), d)
        _close(ag.eye(3, 4, k=1, dtype=d, device=backend), np.eye(3, 4, k=1), d)
        _close(ag.linspace(0, 1 + 2j, 5, dtype=d, device=backend), np.linspace(0, 1 + 2j, 5), d)
        _close(ag.zeros_like(tensor(backend, host)), np.zeros_like(host), d)
        _close(ag.full_like(tensor(backend, host), 3j), np.full(host.shape, 3j), d)
    _close(ag.full((2,), 1 + 1j, device=backend), np.full(2, 1 + 1j), c64)  # the default complex
    _close(ag.linspace(1j, 2, 3, device=backend), np.linspace(1j, 2, 3), c64)


def test_creation_errors(backend: ag.Device) -> None:
    with pytest.raises(TypeError, match=r"full: the complex fill value 1j does not fit float32"):
        ag.full((2,), 1j, dtype=f32, device=backend)
    with pytest.raises(
        TypeError, match=r"asarray: .* holds complex numbers, which float32 cannot hold.*ag\.real"
    ):
        ag.asarray([1 + 1j], dtype=f32, device=backend)
    with pytest.raises(TypeError, match=r"asarray: .* holds complex numbers, which int64 cannot hold"):
        ag.asarray(1j, dtype=ag.int64, device=backend)
    with pytest.raises(TypeError, match=r"arange: complex64 is not supported.*astype"):
        ag.arange(3, dtype=c64, device=backend)
    with pytest.raises(TypeError, match=r"linspace: complex start or stop .* with the real dtype float64"):
        ag.linspace(0, 1j, 3, dtype=f64, device=backend)


def test_python_conversions(backend: ag.Device) -> None:
    for d in COMPLEX:
        z = tensor(backend, np.array(1.5 - 2j).astype(_np(d)))
        assert complex(z) == 1.5 - 2j and z.item() == 1.5 - 2j
        assert tensor(backend, np.array([[1j, 2]]).astype(_np(d))).tolist() == [[1j, 2 + 0j]]
        assert bool(z) and not bool(tensor(backend, np.array(0j).astype(_np(d))))
        assert bool(tensor(backend, np.array(complex(0.0, -0.5)).astype(_np(d))))  # imag alone counts
        for convert in (float, int):  # the standard: a TypeError, not a silent real part
            with pytest.raises(
                TypeError, match=rf"{convert.__name__}\(\) of a {d.name} tensor would drop its imaginary part"
            ):
                convert(z)
        assert float(z.real) == 1.5 and int(z.imag) == -2 and float(abs(z)) == 2.5
    assert complex(tensor(backend, np.array(2.5, np.float32))) == 2.5 + 0j
    assert complex(tensor(backend, np.array(True))) == 1 + 0j
    assert cmath.isnan(complex(tensor(backend, np.array(NAN))))


@pytest.mark.parametrize("src", REAL, ids=str)
def test_real_to_complex_casts(backend: ag.Device, src: dtypes.DType) -> None:
    host = np.array([0, 1, 2, 3, 100, 127]).astype(_np(src))
    x = tensor(backend, host)
    for d in COMPLEX:
        want = host.astype(np.float64).astype(np.complex128)
        for out in (x.astype(d), ag.astype(x, d), ag.asarray(x, dtype=d)):
            _close(out, want, d)


def test_complex_casts(backend: ag.Device) -> None:
    host = np.array([1.25 - 2j, 0j, complex(-0.0, 3.0), complex(NAN, 1.0), 1e30 + 1e-30j], np.complex128)
    for src in COMPLEX:
        x = tensor(backend, host.astype(_np(src)))
        for dst in COMPLEX:
            _close(x.astype(dst), host.astype(_np(src)).astype(_np(dst)), dst)
        _close(x.astype(ag.bool), host != 0, ag.bool)  # 0 + 0j alone is False
        for dst in (f32, f64, ag.int64, ag.float16):
            with pytest.raises(
                TypeError,
                match=rf"astype: {src.name} to {dst.name} would drop the imaginary parts.*"
                rf"ag\.real\(x\)\.astype\(ag\.{dst.name}\).*ag\.abs\(x\)",
            ):
                x.astype(dst)
        for data in (x, host.astype(_np(src)), x._data):  # a tensor, a NumPy array, a native array
            with pytest.raises(TypeError, match=r"would drop the imaginary parts"):
                ag.asarray(data, dtype=f32, device=backend)
        _close(ag.real(x).astype(f64), host.astype(_np(src)).real, f64)  # the fix the message names


# ====================================================================== reductions, linear algebra
def test_reductions(backend: ag.Device) -> None:
    host = _sample(c128, -1, 1, (3, 4), seed=5)
    for d in COMPLEX:
        h = host.astype(_np(d)).astype(np.complex128)
        x = tensor(backend, host.astype(_np(d)))
        _close(ag.sum(x), h.sum(), d)
        _close(ag.sum(x, axis=1, keepdims=True), h.sum(axis=1, keepdims=True), d)
        _close(ag.prod(x, axis=0), h.prod(axis=0), d)
        _close(ag.mean(x, axis=(0, 1)), h.mean(), d)
        _close(ag.cumulative_sum(x, axis=1), np.cumsum(h, axis=1), d)
        _close(ag.cumulative_prod(x, axis=0, include_initial=True),
               np.concatenate([np.ones((1, 4)), np.cumprod(h, axis=0)]), d)  # fmt: skip
        _close(ag.sum(x, dtype=c128), h.sum(), c128)
        _close(ag.sum(x[:0]), 0j, d)  # empty: the identity
        _close(ag.prod(x[:, :0], axis=1), np.ones(3), d)
    ints = tensor(backend, np.array([1, 2, 3], np.int32))
    _close(ag.sum(ints, dtype=c64), 6 + 0j, c64)


def test_matmul_and_vecdot(backend: ag.Device) -> None:
    a = _sample(c128, -1, 1, (2, 3, 4), seed=6)
    b = _sample(c128, -1, 1, (4, 5), seed=7)
    r = rng(8).uniform(-1, 1, (4, 5))
    for d in COMPLEX:
        ha, hb = (h.astype(_np(d)).astype(np.complex128) for h in (a, b))
        x, y = tensor(backend, a.astype(_np(d))), tensor(backend, b.astype(_np(d)))
        _close(x @ y, ha @ hb, d)
        _close(ag.matmul(x[0, 0], y), ha[0, 0] @ hb, d)  # a vector
        _close(ag.tensordot(x, y, axes=1), np.tensordot(ha, hb, axes=1), d)
        v = tensor(backend, a[0].astype(_np(d)))
        _close(ag.vecdot(v, v), np.sum(np.conj(ha[0]) * ha[0], axis=-1), d)  # conjugates x1
        _close(ag.vecdot(v[0], v[1]), np.vdot(ha[0, 0], ha[0, 1]), d)
    # a real matrix with a complex one
    z = tensor(backend, a.astype(np.complex64))
    _close(z @ tensor(backend, r), a.astype(np.complex64).astype(np.complex128) @ r, c128)


def test_shape_and_indexing(backend: ag.Device) -> None:
    host = _sample(c128, -2, 2, (3, 4), seed=9)
    for d in COMPLEX:
        h = host.astype(_np(d))
        x = tensor(backend, h)
        _close(x.reshape(2, 6), h.reshape(2, 6), d)
        _close(x.T, h.T, d)
        _close(ag.concat([x, x[:1]], axis=0), np.concatenate([h, h[:1]]), d)
        _close(ag.stack([x, x], axis=1), np.stack([h, h], axis=1), d)
        _close(ag.flip(x, axis=1), h[:, ::-1], d)
        _close(ag.roll(x, 1, axis=0), np.roll(h, 1, axis=0), d)
        _close(x[1:, ::2], h[1:, ::2], d)
        _close(x[tensor(backend, np.array([2, 0]))], h[[2, 0]], d)
        _close(x[x.real > 0], h[h.real > 0], d)
        _close(ag.take(x, tensor(backend, np.array([3, 1])), axis=1), h[:, [3, 1]], d)
        _close(ag.broadcast_to(x[:1], (2, 4)), np.broadcast_to(h[:1], (2, 4)), d)
        want = h.copy()
        want[0, 1] = 5 - 1j
        _close(x.at[0, 1].set(5 - 1j), want, d)
        _close(ag.concat([x, tensor(backend, np.ones((1, 4), np.float64))]),
               np.concatenate([h, np.ones((1, 4))]), c128)  # fmt: skip
        _close(ag.unique_values(ag.concat([x[0], x[0]])), np.unique(h[0]), d)


def test_compiled_step_matches_eager(backend: ag.Device) -> None:
    """A step of complex ops compiled (jax.jit, torch.fx) gives the eager values: the backends'
    complex fixes trace."""

    def step(z: ag.Tensor) -> ag.Tensor:
        w = ag.sign(z) + ag.round(z) + ag.expm1(z) + ag.acos(z * 0.1) + ag.sqrt(z) + ag.log(z)
        return ag.sum(w * ag.conj(z), axis=0) + ag.mean(ag.abs(z)) + ag.real(z[0]) * 1j

    host = _sample(c128, -2, 2, (3, 2), seed=11)
    host[0, 0] = complex(NAN, 1.0)
    for d in COMPLEX:
        x = tensor(backend, host.astype(_np(d)))
        _close(ag.compile(step)(x), step(x).numpy(), d)


# ====================================================================== refused ops
def _refusals(z: ag.Tensor) -> list[tuple[str, object]]:
    return [
        ("less", lambda: z < z), ("less_equal", lambda: ag.less_equal(z, z)), ("greater", lambda: z > 1),
        ("greater_equal", lambda: ag.greater_equal(1j, z)), ("maximum", lambda: ag.maximum(z, z)),
        ("minimum", lambda: ag.minimum(z, 0)), ("floor", lambda: ag.floor(z)), ("ceil", lambda: ag.ceil(z)),
        ("trunc", lambda: ag.trunc(z)), ("sort", lambda: ag.sort(z)), ("argsort", lambda: ag.argsort(z)),
        ("argmax", lambda: ag.argmax(z)), ("argmin", lambda: ag.argmin(z)), ("max", lambda: ag.max(z)),
        ("min", lambda: ag.min(z, axis=0)), ("remainder", lambda: z % z),
        ("floor_divide", lambda: z // 2), ("std", lambda: ag.std(z)), ("var", lambda: ag.var(z)),
        ("clip", lambda: ag.clip(z, 0, 1)), ("atan2", lambda: ag.atan2(z, z)),
        ("logaddexp", lambda: ag.logaddexp(z, z)), ("hypot", lambda: ag.hypot(z, z)),
        ("copysign", lambda: ag.copysign(z, z)), ("signbit", lambda: ag.signbit(z)),
        ("topk", lambda: ag.topk(z, 1)), ("logsumexp", lambda: ag.logsumexp(z)),
        ("sigmoid", lambda: ag.sigmoid(z)), ("erf", lambda: ag.erf(z)), ("rsqrt", lambda: ag.rsqrt(z)),
    ]  # fmt: skip


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
def test_ops_the_standard_defines_for_real_numbers_only(backend: ag.Device, dtype: dtypes.DType) -> None:
    z = tensor(backend, np.array([1 + 1j, 2 - 1j]).astype(_np(dtype)))
    for name, call in _refusals(z):
        with pytest.raises(
            TypeError, match=rf"^{name}: not defined for complex tensors \({dtype.name}\).*ag\.real\(x\)"
        ):
            call()
    for name, call in (("bitwise_and", lambda: z & z), ("bitwise_invert", lambda: ~z),
                       ("bitwise_left_shift", lambda: z << 1)):  # fmt: skip
        with pytest.raises(TypeError, match=rf"^{name}: needs (an )?integer"):
            call()
