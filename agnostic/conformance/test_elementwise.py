"""Elementwise ops against a float64 NumPy reference: every unary and binary primitive of the op-set
through the public API, in float32 and float64 (float16, bfloat16, the integer types and bool where
the op takes them), with broadcasting (size-0 and size-1 dimensions), 0-d and empty tensors, NaN,
inf and signed zeros, non-contiguous inputs, Python scalars on either side, every Python operator
(reflected ones too), `where` and `clip`; and no op writes to its inputs."""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.backends.base import BINARY_OPS, UNARY_OPS
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def _rsqrt(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(a)


# primitive -> (public function, float64 reference, sampling domain (low, high))
UNARY = {
    "neg": (ag.negative, np.negative, (-3, 3)),
    "abs": (ag.abs, np.abs, (-3, 3)),
    "sign": (ag.sign, np.sign, (-3, 3)),
    "exp": (ag.exp, np.exp, (-4, 4)),
    "expm1": (ag.expm1, np.expm1, (-2, 2)),
    "log": (ag.log, np.log, (0.05, 6)),
    "log1p": (ag.log1p, np.log1p, (-0.95, 5)),
    "log2": (ag.log2, np.log2, (0.05, 6)),
    "log10": (ag.log10, np.log10, (0.05, 6)),
    "sqrt": (ag.sqrt, np.sqrt, (0.0, 6)),
    "rsqrt": (ag.rsqrt, _rsqrt, (0.1, 6)),
    "square": (ag.square, np.square, (-3, 3)),
    "reciprocal": (ag.reciprocal, np.reciprocal, (0.3, 4)),
    "sin": (ag.sin, np.sin, (-4, 4)),
    "cos": (ag.cos, np.cos, (-4, 4)),
    "tan": (ag.tan, np.tan, (-1.3, 1.3)),
    "asin": (ag.asin, np.arcsin, (-0.95, 0.95)),
    "acos": (ag.acos, np.arccos, (-0.95, 0.95)),
    "atan": (ag.atan, np.arctan, (-5, 5)),
    "sinh": (ag.sinh, np.sinh, (-3, 3)),
    "cosh": (ag.cosh, np.cosh, (-3, 3)),
    "tanh": (ag.tanh, np.tanh, (-3, 3)),
    "asinh": (ag.asinh, np.arcsinh, (-5, 5)),
    "acosh": (ag.acosh, np.arccosh, (1.05, 6)),
    "atanh": (ag.atanh, np.arctanh, (-0.95, 0.95)),
    "sigmoid": (ag.sigmoid, _sigmoid, (-8, 8)),
    "erf": (ag.erf, _erf, (-3, 3)),
    "floor": (ag.floor, np.floor, (-4, 4)),
    "ceil": (ag.ceil, np.ceil, (-4, 4)),
    "round": (ag.round, np.round, (-4, 4)),
    "trunc": (ag.trunc, np.trunc, (-4, 4)),
}
PREDICATES = {
    "isnan": (ag.isnan, np.isnan),
    "isinf": (ag.isinf, np.isinf),
    "isfinite": (ag.isfinite, np.isfinite),
    "signbit": (ag.signbit, np.signbit),
}
# binary arithmetic: (public function, reference, domain); domains avoid poles and branch cuts
ARITH = {
    "add": (ag.add, np.add, (-3, 3)),
    "sub": (ag.subtract, np.subtract, (-3, 3)),
    "mul": (ag.multiply, np.multiply, (-3, 3)),
    "div": (ag.divide, np.divide, (0.5, 3)),
    "floor_divide": (ag.floor_divide, np.floor_divide, (0.5, 3)),
    "remainder": (ag.remainder, np.remainder, (0.5, 3)),
    "pow": (ag.pow, np.power, (0.3, 2)),
    "maximum": (ag.maximum, np.maximum, (-3, 3)),
    "minimum": (ag.minimum, np.minimum, (-3, 3)),
    "atan2": (ag.atan2, np.arctan2, (-3, 3)),
    "logaddexp": (ag.logaddexp, np.logaddexp, (-5, 5)),
    "hypot": (ag.hypot, np.hypot, (-3, 3)),
    "copysign": (ag.copysign, np.copysign, (-3, 3)),
}
COMPARE = {
    "eq": (ag.equal, np.equal, operator.eq),
    "ne": (ag.not_equal, np.not_equal, operator.ne),
    "lt": (ag.less, np.less, operator.lt),
    "le": (ag.less_equal, np.less_equal, operator.le),
    "gt": (ag.greater, np.greater, operator.gt),
    "ge": (ag.greater_equal, np.greater_equal, operator.ge),
}
LOGICAL = {
    "logical_and": (ag.logical_and, np.logical_and),
    "logical_or": (ag.logical_or, np.logical_or),
    "logical_xor": (ag.logical_xor, np.logical_xor),
}
BITWISE = {
    "bitwise_and": (ag.bitwise_and, np.bitwise_and, operator.and_),
    "bitwise_or": (ag.bitwise_or, np.bitwise_or, operator.or_),
    "bitwise_xor": (ag.bitwise_xor, np.bitwise_xor, operator.xor),
    "bitwise_left_shift": (ag.bitwise_left_shift, np.left_shift, operator.lshift),
    "bitwise_right_shift": (ag.bitwise_right_shift, np.right_shift, operator.rshift),
}
COVERS = (
    set(UNARY)
    | set(PREDICATES)
    | set(ARITH)
    | set(COMPARE)
    | set(LOGICAL)
    | set(BITWISE)
    | {"logical_not", "bitwise_invert", "where", "clip", "cast", "full"}
)


def test_tables_name_every_elementwise_primitive() -> None:
    complex_parts = {"conj", "real", "imag"}  # tested (with complex inputs) in test_complex.py
    tables = set(UNARY) | set(PREDICATES) | {"logical_not", "bitwise_invert"} | complex_parts
    assert tables == set(UNARY_OPS), sorted(tables ^ set(UNARY_OPS))
    # nextafter: test_namespace.py
    assert set(ARITH) | set(COMPARE) | set(LOGICAL) | set(BITWISE) | {"nextafter"} == set(BINARY_OPS)


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _host(d: dtypes.DType, a: np.ndarray) -> np.ndarray:
    """`a` rounded to d's host dtype: the exact inputs the backend sees."""
    return np.asarray(a).astype(_np(d))


def _ref(ref: object, *args: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(ref(*(np.asarray(a).astype(np.float64) for a in args)))


# ====================================================================== unary
@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, (lo, hi) = UNARY[name]
    a = rng(1).uniform(lo, hi, (4, 5))
    if name == "round":
        a[0, :4] = [0.5, 1.5, -2.5, 2.5]  # half to even (NumPy, torch, JAX)
    if name in ("floor", "ceil", "trunc", "sign", "abs"):
        a[1, :3] = [-1.0, 0.0, 2.0]
    host = _host(dtype, a)
    want = _ref(ref, host)
    assert_close(fn(tensor(backend, host)), want, dtype=dtype)
    assert_close(fn(noncontiguous(backend, host)), want, dtype=dtype)
    assert_close(fn(tensor(backend, host[2, 3])), want[2, 3], dtype=dtype)  # 0-d
    assert_close(fn(tensor(backend, host[:0])), np.zeros((0, 5)), dtype=dtype)  # empty
    assert_close(fn(tensor(backend, host[:, :1][None])), want[:, :1][None], dtype=dtype)  # size-1 dims
    method = getattr(tensor(backend, host), name if name != "neg" else "__neg__", None)
    if method is not None:
        assert_close(method(), want, dtype=dtype)


HALF_UNARY = sorted(n for n in UNARY if n not in ("isnan", "isinf", "isfinite", "signbit", "logical_not"))


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
@pytest.mark.parametrize("name", HALF_UNARY)
def test_unary_half_precision(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, (lo, hi) = UNARY[name]
    host = _host(dtype, rng(2).uniform(lo, hi, (3, 4)))
    want = _ref(ref, host)
    if name in ("floor", "ceil", "round", "trunc", "sign"):
        want = want.astype(host.dtype).astype(np.float64)
    assert_close(fn(tensor(backend, host)), want, dtype=dtype)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 1e-30, 30.0])


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_special_values(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    """NaN, +-inf, signed zeros and out-of-domain inputs give NumPy's IEEE results (NaN, +-inf)."""
    fn, ref, _ = UNARY[name]
    host = _host(dtype, SPECIAL)
    want = _ref(ref, host)
    got = fn(tensor(backend, host))
    assert_close(got, want, dtype=dtype)
    g = got.numpy().astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(want)), f"{name}: NaN positions differ"
    finite = np.isfinite(want)
    assert np.array_equal(np.isinf(g), np.isinf(want)) and np.array_equal(
        np.sign(g[~finite & ~np.isnan(want)]), np.sign(want[~finite & ~np.isnan(want)])
    )


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8, ag.bool], ids=str)
def test_unary_on_integers_and_bool(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = _host(dtype, [0, 1, 2, 7, 100] if dtype is not ag.bool else [0, 1, 1, 0, 1])
    if dtype.kind == "i":
        host = _host(dtype, [0, -1, 2, -7, 100])
    x = tensor(backend, host)
    # float functions compute in the default float dtype
    for name in ("exp", "sqrt", "sin", "log1p", "tanh", "sigmoid", "erf", "reciprocal", "atan"):
        fn, ref, _ = UNARY[name]
        assert_close(fn(x), _ref(ref, host).astype(np.float32), dtype=ag.float32, rtol=2e-5, atol=1e-6)
    if dtype is ag.bool:
        for fn in (ag.abs, ag.negative, ag.sign, ag.square):
            with pytest.raises(TypeError):
                fn(x)
        assert_close(ag.bitwise_invert(x), ~host, dtype=ag.bool)
        assert_close(ag.logical_not(x), ~host, dtype=ag.bool)
        return
    # numeric functions keep the integer dtype
    for fn, ref in (
        (ag.abs, np.abs),
        (ag.negative, np.negative),
        (ag.sign, np.sign),
        (ag.square, np.square),
        (ag.floor, np.floor),
        (ag.ceil, np.ceil),
        (ag.round, np.round),
        (ag.trunc, np.trunc),
    ):
        assert_close(fn(x), ref(host).astype(host.dtype), dtype=dtype)
    assert_close(ag.bitwise_invert(x), np.invert(host), dtype=dtype)
    assert_close(~x, np.invert(host), dtype=dtype)
    assert_close(ag.logical_not(x), host == 0, dtype=ag.bool)
    for fn, ref in PREDICATES.values():
        assert_close(fn(x), ref(host), dtype=ag.bool)


def test_integer_negation_wraps(backend: ag.Device) -> None:
    host = np.array([-128, -1, 0, 127], dtype=np.int8)
    assert_close(-tensor(backend, host), -host, dtype=ag.int8)
    assert_close(ag.abs(tensor(backend, host)), np.abs(host), dtype=ag.int8)  # abs(-128) wraps to -128


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64, ag.float16, ag.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_predicates(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref = PREDICATES[name]
    host = _host(dtype, [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.5, 2.0, -np.nan])
    assert_close(fn(tensor(backend, host)), ref(host.astype(np.float64)), dtype=ag.bool)
    assert_close(fn(noncontiguous(backend, host)), ref(host.astype(np.float64)), dtype=ag.bool)
    assert_close(fn(tensor(backend, host[:0])), np.zeros(0, bool), dtype=ag.bool)
    assert_close(fn(tensor(backend, host[1])), ref(host[1].astype(np.float64)), dtype=ag.bool)


def test_logical_not(backend: ag.Device) -> None:
    b = np.array([[True, False], [False, True]])
    assert_close(ag.logical_not(tensor(backend, b)), ~b, dtype=ag.bool)
    f = np.array([0.0, -0.0, np.nan, 2.0, -np.inf])
    assert_close(ag.logical_not(tensor(backend, f)), f == 0, dtype=ag.bool)  # NaN is truthy
    assert_close(
        ag.logical_not(tensor(backend, np.zeros((0, 2), bool))), np.zeros((0, 2), bool), dtype=ag.bool
    )


# ====================================================================== binary arithmetic
BROADCAST = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 5)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((4,), ()),
    ((1,), (2, 0)),
    ((0, 3), (1, 3)),
    ((2, 0, 1), (1, 4)),
    ((1, 1, 1), (2, 1, 3)),
]


def _sample(name: str, shape: tuple, seed: int) -> np.ndarray:
    lo, hi = ARITH[name][2]
    a = rng(seed).uniform(lo, hi, shape)
    if name in ("div", "floor_divide", "remainder"):  # both signs, away from zero
        a = a * rng(seed + 100).choice([-1.0, 1.0], shape)
    return a


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", sorted(ARITH))
def test_binary_broadcasting(backend: ag.Device, name: str, shapes: tuple) -> None:
    fn, ref, _ = ARITH[name]
    for dtype in (ag.float32, ag.float64):
        a, b = _host(dtype, _sample(name, shapes[0], 3)), _host(dtype, _sample(name, shapes[1], 4))
        want = _ref(ref, a, b)
        assert_close(fn(tensor(backend, a), tensor(backend, b)), want, dtype=dtype)
        assert_close(fn(tensor(backend, b), tensor(backend, a)), _ref(ref, b, a), dtype=dtype)


@pytest.mark.parametrize("name", sorted(ARITH))
def test_binary_noncontiguous_and_python_scalars(backend: ag.Device, name: str) -> None:
    fn, ref, _ = ARITH[name]
    a, b = _sample(name, (4, 3), 5), _sample(name, (4, 3), 6)
    assert_close(fn(noncontiguous(backend, a), noncontiguous(backend, b)), _ref(ref, a, b), dtype=ag.float64)
    assert_close(fn(noncontiguous(backend, a), tensor(backend, b)), _ref(ref, a, b), dtype=ag.float64)
    for s in (1.75, -1.25, 2) if name not in ("pow",) else (1.75, 2, 0.5):
        assert_close(fn(tensor(backend, a), s), _ref(ref, a, s), dtype=ag.float64)
        a32 = a.astype(np.float32)
        assert_close(fn(tensor(backend, a32), s), _ref(ref, a32, s), dtype=ag.float32)  # weak scalar
        if name != "pow":
            assert_close(fn(s, tensor(backend, a)), _ref(ref, s, a), dtype=ag.float64)
    assert_close(fn(2.0, tensor(backend, np.abs(b))), _ref(ref, 2.0, np.abs(b)), dtype=ag.float64)


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(ARITH))
def test_binary_half_precision(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, _ = ARITH[name]
    a, b = _host(dtype, _sample(name, (3, 4), 7)), _host(dtype, _sample(name, (4,), 8))
    want = _ref(ref, a, b)
    if name in ("floor_divide", "remainder"):
        # the quotient is rounded to half precision before the floor on every library
        q = np.floor(_ref(np.divide, a, b).astype(a.dtype).astype(np.float64))
        want = q if name == "floor_divide" else a.astype(np.float64) - q * b.astype(np.float64)
        r, t = dtypes.finfo(dtype).eps * 8, dtypes.finfo(dtype).eps * 8
        assert_close(fn(tensor(backend, a), tensor(backend, b)), want, dtype=dtype, rtol=r, atol=t)
        return
    assert_close(fn(tensor(backend, a), tensor(backend, b)), want, dtype=dtype)
    assert_close(fn(tensor(backend, a), 1.5), _ref(ref, a, 1.5), dtype=dtype)


def test_binary_nan_inf_and_signed_zero(backend: ag.Device) -> None:
    a = np.array([np.nan, 1.0, np.inf, -np.inf, 0.0, -0.0, np.nan, np.inf, 3.0])
    b = np.array([1.0, np.nan, 2.0, np.inf, -0.0, 0.0, np.nan, np.inf, -np.inf])
    for name, (fn, ref, _) in sorted(ARITH.items()):
        want = _ref(ref, a, b)
        got = fn(tensor(backend, a), tensor(backend, b))
        assert_close(got, want, dtype=ag.float64)
        assert np.array_equal(np.isnan(got.numpy()), np.isnan(want)), f"{name}: NaN positions differ"
    # maximum and minimum propagate NaN from either side (unlike fmax/fmin)
    for fn in (ag.maximum, ag.minimum):
        out = fn(
            tensor(backend, np.array([np.nan, 1.0, np.nan])), tensor(backend, np.array([0.0, np.nan, np.nan]))
        )
        assert np.isnan(out.numpy()).all()
        out = fn(tensor(backend, np.array([np.nan, 2.0], dtype=np.float32)), 1.0)
        assert np.isnan(out.numpy()[0]) and out.numpy()[1] == (2.0 if fn is ag.maximum else 1.0)
    # copysign and signbit see the sign of zero
    assert_close(
        ag.copysign(tensor(backend, np.array([1.0, 1.0])), tensor(backend, np.array([-0.0, 0.0]))),
        [-1.0, 1.0],
    )
    assert_close(ag.signbit(ag.copysign(tensor(backend, np.array([0.0])), -1.0)), [True])


def test_division_and_power_edge_cases(backend: ag.Device) -> None:
    x = tensor(backend, np.array([1.0, -1.0, 0.0, np.inf]))
    assert_close(x / 0.0, [np.inf, -np.inf, np.nan, np.inf])
    assert_close(x / -0.0, [-np.inf, np.inf, np.nan, -np.inf])
    assert_close(
        ag.divide(tensor(backend, np.array([1, -1, 0])), 0), [np.inf, -np.inf, np.nan], dtype=ag.float32
    )
    p = tensor(backend, np.array([0.0, -2.0, -8.0, np.inf, 4.0, np.nan]))
    with np.errstate(all="ignore"):
        host = np.array([0.0, -2.0, -8.0, np.inf, 4.0, np.nan])
        assert_close(p**0.5, host**0.5)
        assert_close(p**0, host**0.0)  # x**0 is 1, even for NaN
        assert_close(p**-1, host**-1.0)
        assert_close(p**2, host**2)
        assert_close(2.0**p, 2.0**host)
        assert_close(ag.pow(p, tensor(backend, np.full(6, 3.0))), host**3.0)
    # float remainder and floor division follow the divisor's sign (Python semantics)
    a = np.array([-3.5, 3.5, -3.5, 3.5, 7.0, -7.0, 0.0])
    b = np.array([2.0, -2.0, -2.0, 2.0, 7.0, 2.0, 3.0])
    assert_close(tensor(backend, a) % tensor(backend, b), np.remainder(a, b))
    assert_close(tensor(backend, a) // tensor(backend, b), np.floor_divide(a, b))


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
def test_division_by_a_huge_broadcast_divisor_is_not_flushed(backend: ag.Device, dtype: dtypes.DType) -> None:
    # a / broadcast(b) must not become a * (1 / b): the reciprocal of |b| > 2**(maxexp - 2) is
    # subnormal, which a device that flushes subnormals turns into 0 (XLA did: 8.5e31 / 8.6e37 -> 0)
    info = np.finfo(dtypes.to_numpy_dtype(dtype))
    a = np.array([info.max / 2**40, -info.max / 2**60, 1.0], dtype=info.dtype)
    b = np.array(info.max / 4, dtype=info.dtype) * 3  # above 2**(maxexp - 1)
    want = a / b
    for divisor in (b, b.reshape(1), np.full(3, b)):
        got = tensor(backend, a, dtype) / tensor(backend, divisor, dtype)
        # normal results, far from the subnormal range: relative error only (an atol would pass 0)
        np.testing.assert_allclose(got.numpy()[:2], want[:2], rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8], ids=str)
def test_integer_arithmetic(backend: ag.Device, dtype: dtypes.DType) -> None:
    signed = dtype.kind == "i"
    a = _host(dtype, [7, -7, 6, -6, 0, 9, -1] if signed else [7, 9, 6, 12, 0, 5, 3])
    b = _host(dtype, [2, 2, -4, -4, 3, -3, 5] if signed else [2, 4, 4, 5, 3, 3, 5])
    x, y = tensor(backend, a), tensor(backend, b)
    for fn, ref in (
        (ag.add, np.add),
        (ag.subtract, np.subtract),
        (ag.multiply, np.multiply),
        (ag.floor_divide, np.floor_divide),
        (ag.remainder, np.remainder),
        (ag.maximum, np.maximum),
        (ag.minimum, np.minimum),
    ):
        assert_close(fn(x, y), ref(a, b), dtype=dtype)
        assert_close(fn(noncontiguous(backend, a), y), ref(a, b), dtype=dtype)
    e = _host(dtype, [0, 1, 2, 3, 1, 2, 0])
    assert_close(ag.pow(x, tensor(backend, e)), np.power(a, e), dtype=dtype)
    assert_close(x**2, a**2, dtype=dtype)
    assert_close(x // 2, a // 2, dtype=dtype)
    assert_close(x % 3, a % 3, dtype=dtype)
    assert_close(ag.divide(x, y), a.astype(np.float64) / b, dtype=ag.float32)
    assert_close(x / 2, a.astype(np.float64) / 2, dtype=ag.float32)
    # float-only binaries compute integers in the default float dtype
    for fn, ref in (
        (ag.atan2, np.arctan2),
        (ag.hypot, np.hypot),
        (ag.logaddexp, np.logaddexp),
        (ag.copysign, np.copysign),
    ):
        assert_close(fn(x, y), _ref(ref, a, b), dtype=ag.float32)
    # overflow wraps around as two's complement, as on every backend's native integers
    big = _host(dtype, [dtypes.iinfo(dtype).max])
    assert_close(
        tensor(backend, big) + tensor(backend, _host(dtype, [1])), [dtypes.iinfo(dtype).min], dtype=dtype
    )


def test_bool_arithmetic(backend: ag.Device) -> None:
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    x, y = tensor(backend, a), tensor(backend, b)
    assert_close(x + y, a | b, dtype=ag.bool)  # add of bools is or (NumPy, torch)
    assert_close(x * y, a & b, dtype=ag.bool)
    assert_close(ag.maximum(x, y), a | b, dtype=ag.bool)
    assert_close(ag.minimum(x, y), a & b, dtype=ag.bool)
    assert_close(x / y, a.astype(np.float64) / b, dtype=ag.float32)
    assert_close(x + 1, a.astype(np.int64) + 1, dtype=ag.int64)
    assert_close(x + 0.5, a + 0.5, dtype=ag.float32)
    for fn in (ag.subtract, ag.floor_divide, ag.remainder, ag.pow):
        with pytest.raises(TypeError):
            fn(x, y)


# ====================================================================== comparisons, logical, bitwise
@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparisons(backend: ag.Device, name: str) -> None:
    fn, ref, op = COMPARE[name]
    a = np.array([[1.0, np.nan, 3.0, -0.0], [2.0, 2.0, -np.inf, np.inf]], dtype=np.float32)
    b = np.array([1.0, 2.0, np.inf, 0.0], dtype=np.float32)
    x, y = tensor(backend, a), tensor(backend, b)
    assert_close(fn(x, y), ref(a, b), dtype=ag.bool)
    assert_close(op(x, y), ref(a, b), dtype=ag.bool)
    assert_close(op(x, 2), ref(a, 2.0), dtype=ag.bool)
    assert_close(op(2, x), ref(2.0, a), dtype=ag.bool)  # reflected through the mirrored dunder
    assert_close(fn(2.0, x), ref(2.0, a), dtype=ag.bool)
    assert_close(fn(noncontiguous(backend, a), y), ref(a, b), dtype=ag.bool)
    assert_close(fn(x[:, :0], y[:0]), np.zeros((2, 0), bool), dtype=ag.bool)
    # mixed dtypes compare after promotion; a float scalar with an int tensor compares as float
    ints = np.array([1, 5, 3], dtype=np.int32)
    assert_close(fn(tensor(backend, ints), 2.5), ref(ints, 2.5), dtype=ag.bool)
    assert_close(
        fn(tensor(backend, ints), tensor(backend, np.array([1.0, 4.5, 3.5]))),
        ref(ints, np.array([1.0, 4.5, 3.5])),
        dtype=ag.bool,
    )
    i64 = np.array([2**53 + 1, 7])
    assert_close(
        fn(tensor(backend, i64), tensor(backend, np.array([2**53, 7]))),
        ref(i64, np.array([2**53, 7])),
        dtype=ag.bool,
    )
    bools = np.array([True, False])
    assert_close(
        fn(tensor(backend, bools), tensor(backend, bools[::-1].copy())),
        ref(bools, bools[::-1]),
        dtype=ag.bool,
    )


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_logical(backend: ag.Device, name: str) -> None:
    fn, ref = LOGICAL[name]
    a = np.array([[True, True, False, False]])
    b = np.array([[True], [False]])
    assert_close(fn(tensor(backend, a), tensor(backend, b)), ref(a, b), dtype=ag.bool)
    nums = np.array([0.0, 2.0, np.nan, -1.0])
    ints = np.array([0, 3, 0, -2])
    assert_close(fn(tensor(backend, nums), tensor(backend, ints)), ref(nums != 0, ints != 0), dtype=ag.bool)
    assert_close(fn(tensor(backend, ints), True), ref(ints != 0, True), dtype=ag.bool)
    assert_close(fn(False, tensor(backend, ints)), ref(False, ints != 0), dtype=ag.bool)
    assert_close(fn(tensor(backend, np.zeros((0,), bool)), True), np.zeros(0, bool), dtype=ag.bool)


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8, ag.bool], ids=str)
@pytest.mark.parametrize("name", sorted(BITWISE))
def test_bitwise(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, op = BITWISE[name]
    if dtype is ag.bool:
        a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
        if "shift" in name:
            with pytest.raises(TypeError):
                fn(tensor(backend, a), tensor(backend, b))
            return
    elif "shift" in name:
        a = _host(dtype, [1, 6, 12, 5, 0, -8 if dtype.kind == "i" else 200, 3])
        b = _host(dtype, [1, 2, 3, 0, 4, 1, dtype.bits - 2])
    else:
        a = _host(dtype, [1, 6, 12, 5, 0, -8 if dtype.kind == "i" else 200, 127])
        b = _host(dtype, [1, 2, 3, 0, 7, 5, -1 if dtype.kind == "i" else 255])
    x, y = tensor(backend, a), tensor(backend, b)
    assert_close(fn(x, y), ref(a, b), dtype=dtype)
    assert_close(op(x, y), ref(a, b), dtype=dtype)
    assert_close(fn(noncontiguous(backend, a), y), ref(a, b), dtype=dtype)
    if dtype is not ag.bool:
        assert_close(op(x, 1), ref(a, a.dtype.type(1)), dtype=dtype)  # weak int scalar
        assert_close(op(3, x), ref(a.dtype.type(3), a), dtype=dtype)  # reflected
    with pytest.raises(TypeError):
        fn(tensor(backend, np.array([1.0])), tensor(backend, np.array([1.0])))


# ====================================================================== operators
def test_python_operators_and_reflected_operators(backend: ag.Device) -> None:
    a = np.array([[1.5, -2.0], [3.0, 4.25]], dtype=np.float32)
    c = np.array([[0.5, 2.0], [-1.0, 1.5]], dtype=np.float32)
    x, y = tensor(backend, a), tensor(backend, c)
    a64, c64 = a.astype(np.float64), c.astype(np.float64)
    for op in (
        operator.add,
        operator.sub,
        operator.mul,
        operator.truediv,
        operator.floordiv,
        operator.mod,
        operator.matmul,
    ):
        assert_close(op(x, y), _ref(op, a64, c64), dtype=ag.float32)
        assert_close(op(a, y), _ref(op, a64, c64), dtype=ag.float32)  # NumPy on the left defers to the tensor
        assert_close(op(x, c), _ref(op, a64, c64), dtype=ag.float32)
    assert_close(abs(x) ** y, np.abs(a64) ** c64, dtype=ag.float32)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod):
        assert_close(op(x, 2), _ref(op, a64, 2.0), dtype=ag.float32)
        assert_close(op(2, x), _ref(op, 2.0, a64), dtype=ag.float32)
        assert_close(op(2.5, x), _ref(op, 2.5, a64), dtype=ag.float32)
    assert_close(2**x, 2.0**a64, dtype=ag.float32)
    assert_close(x**2, a64**2, dtype=ag.float32)
    assert_close(-x, -a64, dtype=ag.float32)
    assert_close(+x, a64, dtype=ag.float32)
    assert_close(abs(x), np.abs(a64), dtype=ag.float32)
    v = tensor(backend, np.array([1.0, 2.0], dtype=np.float32))
    assert_close(x @ v, a64 @ np.array([1.0, 2.0]), dtype=ag.float32)
    assert_close(v @ x, np.array([1.0, 2.0]) @ a64, dtype=ag.float32)
    assert_close(v @ v, 5.0, dtype=ag.float32)
    ints = tensor(backend, np.array([6, 3, -4]))
    assert_close(ints & 3, [2, 3, 0], dtype=ag.int64)
    assert_close(3 & ints, [2, 3, 0], dtype=ag.int64)
    assert_close(ints | 1, [7, 3, -3], dtype=ag.int64)
    assert_close(1 | ints, [7, 3, -3], dtype=ag.int64)
    assert_close(ints ^ 1, [7, 2, -3], dtype=ag.int64)
    assert_close(5 ^ ints, [3, 6, -7], dtype=ag.int64)
    assert_close(ints << 1, [12, 6, -8], dtype=ag.int64)
    assert_close(1 << tensor(backend, np.array([0, 3])), [1, 8], dtype=ag.int64)
    assert_close(ints >> 1, [3, 1, -2], dtype=ag.int64)
    assert_close(64 >> tensor(backend, np.array([1, 3])), [32, 8], dtype=ag.int64)
    assert_close(~ints, [-7, -4, 3], dtype=ag.int64)
    assert_close(~tensor(backend, np.array([True, False])), [False, True], dtype=ag.bool)
    # augmented assignment rebinds: tensors are values, the old one is unchanged
    z = x
    z += 1
    z *= 2
    assert_close(z, (a64 + 1) * 2, dtype=ag.float32)
    assert_close(x, a64, dtype=ag.float32)


# ====================================================================== where and clip
def test_where(backend: ag.Device) -> None:
    cond = np.array([[True], [False]])
    a = np.arange(3, dtype=np.int32)
    b = np.array([[0.5, 1.5, 2.5]], dtype=np.float32)
    t = lambda v: tensor(backend, v)  # noqa: E731
    assert_close(ag.where(t(cond), t(a), t(b)), np.where(cond, a, b), dtype=ag.float32)
    assert_close(ag.where(t(cond), t(b), 0.0), np.where(cond, b, 0.0), dtype=ag.float32)
    assert_close(ag.where(t(cond), -1.5, t(b)), np.where(cond, -1.5, b), dtype=ag.float32)
    assert_close(ag.where(t(cond), t(a), 7), np.where(cond, a, 7), dtype=ag.int32)  # weak int scalar
    assert_close(ag.where(t(cond), t(a), 0.5), np.where(cond, a, 0.5), dtype=ag.float32)
    assert_close(ag.where(t(np.array([1, 0, 2])), 1, 2), [1, 2, 1], dtype=ag.int64)  # numeric cond, scalars
    nan = np.array([np.nan, 1.0, np.inf])
    assert_close(ag.where(t(np.isnan(nan)), 0.0, t(nan)), [0.0, 1.0, np.inf], dtype=ag.float64)
    assert_close(
        ag.where(t(np.array([True, False])), t(np.array([True, True])), False), [True, False], dtype=ag.bool
    )
    assert_close(ag.where(t(np.zeros((0, 3), bool)), t(b), 1.0), np.zeros((0, 3)), dtype=ag.float32)
    assert_close(ag.where(t(np.array(True)), t(a), t(a[::-1].copy())), a, dtype=ag.int32)
    big = rng(9).standard_normal((3, 4, 5))
    mask = big > 0
    assert_close(
        ag.where(noncontiguous(backend, mask), noncontiguous(backend, big), 0.0), np.where(mask, big, 0.0)
    )


def test_clip(backend: ag.Device) -> None:
    a = np.array([-2.0, -0.5, 0.5, 3.0, np.nan, -np.inf, np.inf], dtype=np.float32)
    x = tensor(backend, a)
    with np.errstate(invalid="ignore"):
        assert_close(ag.clip(x, -1.0, 1.0), np.clip(a, -1.0, 1.0), dtype=ag.float32)
        assert_close(ag.clip(x, min=0.0), np.maximum(a, 0.0), dtype=ag.float32)
        assert_close(ag.clip(x, max=0.0), np.minimum(a, 0.0), dtype=ag.float32)
        assert_close(ag.clip(x), a, dtype=ag.float32)
        lo = np.array([-3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
        assert_close(ag.clip(x, tensor(backend, lo), 2.0), np.clip(a, lo, 2.0), dtype=ag.float32)
        assert_close(x.clip(-1, 1), np.clip(a, -1, 1), dtype=ag.float32)
        assert_close(ag.clamp(x, -1, 1), np.clip(a, -1, 1), dtype=ag.float32)
        # lo > hi: min(max(x, lo), hi) gives hi everywhere (NumPy, torch)
        assert_close(ag.clip(x[:4], 2.0, 1.0), np.minimum(np.maximum(a[:4], 2.0), 1.0), dtype=ag.float32)
    m = rng(10).standard_normal((3, 4))
    lo_t, hi_t = rng(11).uniform(-1, 0, (4,)), rng(12).uniform(0, 1, (3, 1))
    assert_close(
        ag.clip(noncontiguous(backend, m), tensor(backend, lo_t), tensor(backend, hi_t)),
        np.clip(m, lo_t, hi_t),
    )
    ints = np.array([-5, 0, 9, 3], dtype=np.int16)
    assert_close(ag.clip(tensor(backend, ints), 0, 5), np.clip(ints, 0, 5), dtype=ag.int16)
    assert_close(ag.clip(tensor(backend, ints), 0.5, 5), np.clip(ints, 0.5, 5), dtype=ag.float32)
    u8 = np.array([0, 100, 255], dtype=np.uint8)
    assert_close(ag.clip(tensor(backend, u8), 10, 200), np.clip(u8, 10, 200), dtype=ag.uint8)
    assert_close(ag.clip(tensor(backend, np.zeros((2, 0))), 0, 1), np.zeros((2, 0)), dtype=ag.float64)


# ====================================================================== ops never write to their inputs
def _unchanged(backend: ag.Device, host: np.ndarray, *fns: object) -> None:
    snapshot = host.copy()
    x = tensor(backend, host)
    for fn in fns:
        fn(x)
        np.testing.assert_array_equal(x.numpy(), snapshot, err_msg=f"{fn} wrote to its input")
    np.testing.assert_array_equal(host, snapshot)


def test_elementwise_ops_do_not_mutate_inputs(backend: ag.Device) -> None:
    a = rng(13).standard_normal((3, 4))
    fns = [fn for fn, _, _ in UNARY.values()] + [fn for fn, _ in PREDICATES.values()]
    fns += [lambda t, f=f: f(t, t) for f, _, _ in ARITH.values()]
    fns += [lambda t, f=f: f(t, 2.0) for f, _, _ in ARITH.values()]
    fns += [lambda t, f=f: f(t, t) for f, _, _ in COMPARE.values()]
    fns += [
        lambda t: ag.where(t > 0, t, 0.0),
        lambda t: ag.clip(t, -0.5, 0.5),
        ag.logical_not,
        lambda t: t.astype(ag.float32),
        lambda t: ag.logical_and(t, t),
    ]
    _unchanged(backend, a, *fns)
    ints = np.array([[5, -3], [12, 7]], dtype=np.int32)
    _unchanged(
        backend,
        ints,
        *[lambda t, f=f: f(t, t) for f, _, _ in BITWISE.values() if f is not None][:3],
        ag.bitwise_invert,
        lambda t: t << 1,
        lambda t: t // 2,
        lambda t: t % 3,
    )
