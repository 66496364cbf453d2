"""Elementwise ops against float64 NumPy: values, dtypes, broadcasting, NaN/inf, empty and
non-contiguous inputs, promotion and weak scalars."""

from __future__ import annotations

import math

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

_erf = np.vectorize(math.erf)

# name -> (agnostic function, float64 reference, domain low, high)
UNARY = {
    "neg": (ag.negative, np.negative, -3, 3),
    "abs": (ag.abs, np.abs, -3, 3),
    "sign": (ag.sign, np.sign, -3, 3),
    "exp": (ag.exp, np.exp, -3, 3),
    "expm1": (ag.expm1, np.expm1, -3, 3),
    "log": (ag.log, np.log, 0.1, 5),
    "log1p": (ag.log1p, np.log1p, -0.9, 5),
    "log2": (ag.log2, np.log2, 0.1, 5),
    "log10": (ag.log10, np.log10, 0.1, 5),
    "sqrt": (ag.sqrt, np.sqrt, 0.1, 5),
    "rsqrt": (ag.rsqrt, lambda a: 1 / np.sqrt(a), 0.1, 5),
    "square": (ag.square, np.square, -3, 3),
    "reciprocal": (ag.reciprocal, np.reciprocal, 0.5, 3),
    "sin": (ag.sin, np.sin, -3, 3),
    "cos": (ag.cos, np.cos, -3, 3),
    "tan": (ag.tan, np.tan, -1.2, 1.2),
    "asin": (ag.asin, np.arcsin, -0.9, 0.9),
    "acos": (ag.acos, np.arccos, -0.9, 0.9),
    "atan": (ag.atan, np.arctan, -3, 3),
    "sinh": (ag.sinh, np.sinh, -3, 3),
    "cosh": (ag.cosh, np.cosh, -3, 3),
    "tanh": (ag.tanh, np.tanh, -3, 3),
    "asinh": (ag.asinh, np.arcsinh, -3, 3),
    "acosh": (ag.acosh, np.arccosh, 1.1, 4),
    "atanh": (ag.atanh, np.arctanh, -0.9, 0.9),
    "sigmoid": (ag.sigmoid, lambda a: 1 / (1 + np.exp(-a)), -6, 6),
    "erf": (ag.erf, _erf, -3, 3),
    "floor": (ag.floor, np.floor, -3, 3),
    "ceil": (ag.ceil, np.ceil, -3, 3),
    "round": (ag.round, np.round, -3, 3),
    "trunc": (ag.trunc, np.trunc, -3, 3),
}
PREDICATES = {
    "isnan": (ag.isnan, np.isnan),
    "isinf": (ag.isinf, np.isinf),
    "isfinite": (ag.isfinite, np.isfinite),
    "signbit": (ag.signbit, np.signbit),
}
BINARY = {
    "add": (ag.add, np.add, (-3, 3)),
    "sub": (ag.subtract, np.subtract, (-3, 3)),
    "mul": (ag.multiply, np.multiply, (-3, 3)),
    "div": (ag.divide, np.divide, (0.5, 3)),
    "floor_divide": (ag.floor_divide, np.floor_divide, (0.5, 3)),
    "remainder": (ag.remainder, np.remainder, (0.5, 3)),
    "pow": (ag.pow, np.power, (0.5, 2)),
    "maximum": (ag.maximum, np.maximum, (-3, 3)),
    "minimum": (ag.minimum, np.minimum, (-3, 3)),
    "atan2": (ag.atan2, np.arctan2, (-3, 3)),
    "logaddexp": (ag.logaddexp, np.logaddexp, (-3, 3)),
    "hypot": (ag.hypot, np.hypot, (-3, 3)),
    "copysign": (ag.copysign, np.copysign, (-3, 3)),
}
COMPARISONS = {
    "eq": (ag.equal, np.equal, "__eq__"),
    "ne": (ag.not_equal, np.not_equal, "__ne__"),
    "lt": (ag.less, np.less, "__lt__"),
    "le": (ag.less_equal, np.less_equal, "__le__"),
    "gt": (ag.greater, np.greater, "__gt__"),
    "ge": (ag.greater_equal, np.greater_equal, "__ge__"),
}
LOGICAL = {
    "logical_and": (ag.logical_and, np.logical_and),
    "logical_or": (ag.logical_or, np.logical_or),
    "logical_xor": (ag.logical_xor, np.logical_xor),
}
BITWISE = {
    "bitwise_and": (ag.bitwise_and, np.bitwise_and),
    "bitwise_or": (ag.bitwise_or, np.bitwise_or),
    "bitwise_xor": (ag.bitwise_xor, np.bitwise_xor),
    "bitwise_left_shift": (ag.bitwise_left_shift, np.left_shift),
    "bitwise_right_shift": (ag.bitwise_right_shift, np.right_shift),
}
COVERS = (
    set(UNARY) | set(PREDICATES) | set(BINARY) | set(COMPARISONS) | set(LOGICAL) | set(BITWISE)
    | {"logical_not", "bitwise_invert", "where", "clip", "cast", "full", "from_numpy", "to_numpy"}
)  # fmt: skip

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 5)),
    ((1,), (2, 0)),
    ((), (2, 3)),
    ((0, 3), (1, 3)),
]


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref, lo, hi = UNARY[name]
    a = rng(1).uniform(lo, hi, (3, 5))
    if name == "round":
        a[0, :3] = [0.5, 1.5, -2.5]  # half to even, as NumPy, torch and JAX
    host = a.astype(dtypes.to_numpy_dtype(dtype))
    out = fn(tensor(backend, host))
    assert_close(out, ref(host.astype(np.float64)), dtype=dtype)
    assert_close(fn(noncontiguous(backend, host)), ref(host.astype(np.float64)), dtype=dtype)
    assert_close(fn(tensor(backend, np.zeros((0, 2), host.dtype))), np.zeros((0, 2)), dtype=dtype)
    assert_close(fn(tensor(backend, host[0, 0])), ref(host[0, 0].astype(np.float64)), dtype=dtype)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "erf", "abs", "floor", "sign"])
def test_unary_nan_and_inf(backend: ag.Device, name: str) -> None:
    fn, ref = UNARY[name][:2]
    host = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0])
    with np.errstate(all="ignore"):
        want = ref(host)
    assert_close(fn(tensor(backend, host)), want, dtype=ag.float64)


@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "sigmoid", "erf", "log1p"])
def test_float_ops_on_integers_give_float32(backend: ag.Device, name: str) -> None:
    fn, ref = UNARY[name][:2]
    out = fn(tensor(backend, np.array([0, 1, 2], dtype=np.int32)))
    assert_close(out, ref(np.array([0.0, 1.0, 2.0])), dtype=ag.float32)


@pytest.mark.parametrize("dtype", [ag.int8, ag.int32, ag.int64, ag.uint8])
def test_integer_preserving_unary(backend: ag.Device, dtype: dtypes.DType) -> None:
    host = np.array([0, 3, 7, 100], dtype=dtypes.to_numpy_dtype(dtype))
    x = tensor(backend, host)
    for fn, ref in ((ag.abs, np.abs), (ag.square, np.square), (ag.floor, np.floor), (ag.round, np.round)):
        assert_close(fn(x), ref(host).astype(host.dtype), dtype=dtype)
    assert_close(ag.bitwise_invert(x), np.invert(host), dtype=dtype)


@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_predicates(backend: ag.Device, name: str) -> None:
    fn, ref = PREDICATES[name]
    host = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.5, 2.0], dtype=np.float32)
    assert_close(fn(tensor(backend, host)), ref(host), dtype=ag.bool)
    ints = np.array([-2, 0, 3])
    assert_close(fn(tensor(backend, ints)), ref(ints), dtype=ag.bool)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(backend: ag.Device, name: str, shapes: tuple) -> None:
    fn, ref, (lo, hi) = BINARY[name]
    r = rng(2)
    a = r.uniform(lo, hi, shapes[0]).astype(np.float32)
    b = r.uniform(lo, hi, shapes[1]).astype(np.float32)
    out = fn(tensor(backend, a), tensor(backend, b))
    assert_close(out, ref(a.astype(np.float64), b.astype(np.float64)), dtype=ag.float32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_float64_noncontiguous_and_scalars(backend: ag.Device, name: str) -> None:
    fn, ref, (lo, hi) = BINARY[name]
    r = rng(3)
    a, b = r.uniform(lo, hi, (4, 3)), r.uniform(lo, hi, (4, 3))
    assert_close(fn(noncontiguous(backend, a), noncontiguous(backend, b)), ref(a, b), dtype=ag.float64)
    s = 1.5
    assert_close(fn(tensor(backend, a), s), ref(a, s), dtype=ag.float64)
    assert_close(fn(s, tensor(backend, b)), ref(s, b), dtype=ag.float64)


def test_binary_nan_inf_and_signed_zero(backend: ag.Device) -> None:
    a = np.array([np.nan, 1.0, np.inf, -np.inf, 0.0, -0.0])
    b = np.array([1.0, np.nan, 2.0, np.inf, -0.0, 0.0])
    for fn, ref in (
        (ag.maximum, np.maximum),
        (ag.minimum, np.minimum),
        (ag.add, np.add),
        (ag.multiply, np.multiply),
    ):
        with np.errstate(all="ignore"):
            assert_close(fn(tensor(backend, a), tensor(backend, b)), ref(a, b), dtype=ag.float64)
    assert_close(ag.divide(tensor(backend, np.array([1.0, -1.0, 0.0])), 0.0), [np.inf, -np.inf, np.nan])


@pytest.mark.parametrize("dtype", [ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8])
def test_integer_arithmetic_keeps_dtype_and_python_semantics(backend: ag.Device, dtype: dtypes.DType) -> None:
    npd = dtypes.to_numpy_dtype(dtype)
    signed = dtype.kind == "i"
    a = np.array([7, -7, 6, -6] if signed else [7, 9, 6, 12], dtype=npd)
    b = np.array([2, 2, -4, -4] if signed else [2, 4, 4, 5], dtype=npd)
    x, y = tensor(backend, a), tensor(backend, b)
    for fn, ref in ((ag.add, np.add), (ag.multiply, np.multiply), (ag.floor_divide, np.floor_divide),
                    (ag.remainder, np.remainder), (ag.maximum, np.maximum)):  # fmt: skip
        assert_close(fn(x, y), ref(a, b), dtype=dtype)
    assert_close(ag.divide(x, y), a.astype(np.float64) / b, dtype=ag.float32)
    assert_close(x + 1, a + npd.type(1), dtype=dtype)
    assert_close(x**2, a**2, dtype=dtype)


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons(backend: ag.Device, name: str) -> None:
    fn, ref, dunder = COMPARISONS[name]
    a = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, -np.inf]], dtype=np.float32)
    b = np.array([1.0, 2.0, np.inf], dtype=np.float32)
    x, y = tensor(backend, a), tensor(backend, b)
    assert_close(fn(x, y), ref(a, b), dtype=ag.bool)
    assert_close(getattr(x, dunder)(y), ref(a, b), dtype=ag.bool)
    assert_close(fn(x, 2), ref(a, 2.0), dtype=ag.bool)
    assert_close(fn(tensor(backend, np.array([1, 5])), 2.5), ref(np.array([1, 5]), 2.5), dtype=ag.bool)


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_logical(backend: ag.Device, name: str) -> None:
    fn, ref = LOGICAL[name]
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert_close(fn(tensor(backend, a), tensor(backend, b)), ref(a, b), dtype=ag.bool)
    nums = np.array([0.0, 2.0, 0.0, -1.0])
    assert_close(fn(tensor(backend, nums), tensor(backend, b)), ref(nums != 0, b), dtype=ag.bool)
    assert_close(ag.logical_not(tensor(backend, nums)), nums == 0, dtype=ag.bool)


@pytest.mark.parametrize("name", sorted(BITWISE))
@pytest.mark.parametrize("dtype", [ag.int8, ag.int32, ag.int64, ag.uint8])
def test_bitwise(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref = BITWISE[name]
    npd = dtypes.to_numpy_dtype(dtype)
    a = np.array([1, 6, 12, 5], dtype=npd)
    b = np.array([1, 2, 3, 0], dtype=npd)
    assert_close(fn(tensor(backend, a), tensor(backend, b)), ref(a, b), dtype=dtype)
    if "shift" not in name:
        bools = np.array([True, False, True])
        assert_close(fn(tensor(backend, bools), tensor(backend, ~bools)), ref(bools, ~bools), dtype=ag.bool)


def test_where_broadcasts_and_promotes(backend: ag.Device) -> None:
    cond = np.array([[True], [False]])
    a = np.arange(3, dtype=np.int32)
    b = np.array([[0.5, 1.5, 2.5]], dtype=np.float32)
    out = ag.where(tensor(backend, cond), tensor(backend, a), tensor(backend, b))
    assert_close(out, np.where(cond, a, b), dtype=ag.float32)
    assert_close(
        ag.where(tensor(backend, cond), tensor(backend, b), 0.0), np.where(cond, b, 0.0), dtype=ag.float32
    )
    assert_close(ag.where(tensor(backend, np.array([1, 0])), 1, 2), [1, 2], dtype=ag.int64)


def test_clip(backend: ag.Device) -> None:
    a = np.array([-2.0, -0.5, 0.5, 3.0, np.nan], dtype=np.float32)
    x = tensor(backend, a)
    assert_close(ag.clip(x, -1.0, 1.0), np.clip(a, -1.0, 1.0), dtype=ag.float32)
    assert_close(ag.clip(x, min=0.0), np.maximum(a, 0.0), dtype=ag.float32)
    assert_close(ag.clip(x, max=0.0), np.minimum(a, 0.0), dtype=ag.float32)
    lo = np.array([-3.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    assert_close(ag.clip(x, tensor(backend, lo), 2.0), np.clip(a, lo, 2.0), dtype=ag.float32)
    ints = np.array([-5, 0, 9])
    assert_close(ag.clip(tensor(backend, ints), 0, 5), np.clip(ints, 0, 5), dtype=ag.int64)


@pytest.mark.parametrize(
    "src", [ag.float32, ag.float64, ag.float16, ag.bfloat16, ag.int32, ag.int64, ag.uint8, ag.bool]
)
@pytest.mark.parametrize("dst", [ag.float32, ag.float64, ag.float16, ag.bfloat16, ag.int8, ag.int64, ag.bool])
def test_cast(backend: ag.Device, src: dtypes.DType, dst: dtypes.DType) -> None:
    host = np.array([0, 1, 2, 3, 100], dtype=np.float64)
    if src is ag.bool:
        host = host != 0
    x = tensor(backend, host.astype(dtypes.to_numpy_dtype(src)))
    want = host.astype(dtypes.to_numpy_dtype(src)).astype(dtypes.to_numpy_dtype(dst))
    assert_close(x.astype(dst), want.astype(np.float64) if dst.is_floating else want, dtype=dst)
    assert_close(x.to(dst), want.astype(np.float64) if dst.is_floating else want, dtype=dst)


def test_float_to_int_truncates_toward_zero(backend: ag.Device) -> None:
    x = tensor(backend, np.array([-2.7, -0.5, 0.5, 2.7]))
    assert_close(x.astype(ag.int32), [-2, 0, 0, 2], dtype=ag.int32)


PAIR_DTYPES = [
    ag.bool,
    ag.int8,
    ag.int16,
    ag.int32,
    ag.int64,
    ag.uint8,
    ag.float16,
    ag.bfloat16,
    ag.float32,
    ag.float64,
]


@pytest.mark.parametrize("d1", PAIR_DTYPES)
@pytest.mark.parametrize("d2", PAIR_DTYPES)
def test_promotion_table(backend: ag.Device, d1: dtypes.DType, d2: dtypes.DType) -> None:
    a = tensor(backend, np.array([1, 0, 1]).astype(dtypes.to_numpy_dtype(d1)))
    b = tensor(backend, np.array([1, 1, 0]).astype(dtypes.to_numpy_dtype(d2)))
    want = ag.result_type(d1, d2)
    out = ag.add(a, b) if want is not ag.bool else ag.logical_or(a, b)
    assert out.dtype is want
    assert_close(
        out, (np.array([1, 0, 1]) + np.array([1, 1, 0])) if want is not ag.bool else [True, True, True]
    )


def test_promotion_decisions(backend: ag.Device) -> None:
    i8 = tensor(backend, np.array([1, 2], dtype=np.int8))
    i64 = tensor(backend, np.array([1, 2]))
    f16 = tensor(backend, np.array([1, 2], dtype=np.float16))
    b = tensor(backend, np.array([True, False]))
    assert (i8 + 1).dtype is ag.int8  # weak int scalar
    assert (i8 + 1.5).dtype is ag.float32  # int tensor with float scalar: default float
    assert (f16 * 2.0).dtype is ag.float16  # weak float scalar
    assert (b + 1).dtype is ag.int64  # bool with int scalar: default int
    assert (b + True).dtype is ag.bool
    assert (i64 / i64).dtype is ag.float32  # int / int: default float
    assert (
        tensor(backend, np.array([1], np.uint8)) + tensor(backend, np.array([1], np.int8))
    ).dtype is ag.int16
    assert (
        f16 + tensor(backend, np.array([1.0], dtype=dtypes.to_numpy_dtype(ag.bfloat16)))
    ).dtype is ag.float32
    assert (i64 + f16).dtype is ag.float16  # integer with float: the float's dtype
    assert_close(i8 + 1, [2, 3], dtype=ag.int8)


def test_operators_and_reflected_operators(backend: ag.Device) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    x = tensor(backend, a)
    assert_close(2 - x, 2 - a)
    assert_close(2 / x, 2 / a)
    assert_close(2**x, 2**a)
    assert_close(x**0.5, a**0.5)
    assert_close(7 // x, 7 // a)
    assert_close(7 % x, 7 % a)
    assert_close(-x, -a)
    assert_close(+x, a)
    assert_close(abs(-x), a)
    assert_close(x @ x, a @ a)
    assert_close(a @ x, a @ a)  # a NumPy array on the left defers to the tensor
    ints = tensor(backend, np.array([6, 3]))
    assert_close(ints & 3, [2, 3])
    assert_close(ints | 1, [7, 3])
    assert_close(ints ^ 1, [7, 2])
    assert_close(ints << 1, [12, 6])
    assert_close(ints >> 1, [3, 1])
    assert_close(~tensor(backend, np.array([True, False])), [False, True])


def test_ops_do_not_mutate_inputs(backend: ag.Device) -> None:
    a = rng(4).standard_normal((3, 4)).astype(np.float32)
    x = tensor(backend, a)
    for fn in (ag.exp, ag.negative, lambda t: t + 1, lambda t: ag.maximum(t, 0.0), lambda t: ag.clip(t, 0, 1),
               lambda t: ag.where(t > 0, t, 0.0), lambda t: t.astype(ag.float64)):  # fmt: skip
        fn(x)
        np.testing.assert_array_equal(x.numpy(), a)
