"""Dtypes and promotion: the one promotion table (written out here by hand, independently of
agnostic.dtypes) for every pair of dtypes through `ag.add` and the other binary ops, weak Python
scalars, integer division and the accumulation dtypes of reductions, the default dtypes, casts
between every pair of dtypes, bitcasts (against NumPy's `ndarray.view`, bit for bit) and the dtype
utilities (isdtype, can_cast, finfo, iinfo)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = {
    "add", "mul", "maximum", "where", "concat", "stack", "eq", "lt", "cast", "div", "sum", "mean", "cumsum",
    "full", "bitcast",
}  # fmt: skip

b, i8, i16, i32, i64, u8 = ag.bool, ag.int8, ag.int16, ag.int32, ag.int64, ag.uint8
u16, u32, u64 = dtypes.uint16, dtypes.uint32, dtypes.uint64
f16, bf16, f32, f64 = ag.float16, ag.bfloat16, ag.float32, ag.float64
c64, c128 = dtypes.complex64, dtypes.complex128
X = None  # no promotion: a signed integer with uint64 is an error
FULL_ORDER = [b, i8, i16, i32, i64, u8, u16, u32, u64, f16, bf16, f32, f64, c64, c128]
# The Array API table, extended as PyTorch and JAX agree: bool below every number, an integer with
# a float gives the float, an integer or a real float with a complex gives the complex (of the wider
# precision: float64 with complex64 gives complex128), float16 with bfloat16 gives float32. A
# signed integer with uint64 has no dtype (as in torch and array_api_strict).
# fmt: off
FULL_TABLE = [
    # b     i8    i16   i32   i64   u8    u16   u32   u64   f16   bf16  f32   f64   c64   c128
    [b,    i8,   i16,  i32,  i64,  u8,   u16,  u32,  u64,  f16,  bf16, f32,  f64,  c64,  c128],  # b
    [i8,   i8,   i16,  i32,  i64,  i16,  i32,  i64,  X,    f16,  bf16, f32,  f64,  c64,  c128],  # i8
    [i16,  i16,  i16,  i32,  i64,  i16,  i32,  i64,  X,    f16,  bf16, f32,  f64,  c64,  c128],  # i16
    [i32,  i32,  i32,  i32,  i64,  i32,  i32,  i64,  X,    f16,  bf16, f32,  f64,  c64,  c128],  # i32
    [i64,  i64,  i64,  i64,  i64,  i64,  i64,  i64,  X,    f16,  bf16, f32,  f64,  c64,  c128],  # i64
    [u8,   i16,  i16,  i32,  i64,  u8,   u16,  u32,  u64,  f16,  bf16, f32,  f64,  c64,  c128],  # u8
    [u16,  i32,  i32,  i32,  i64,  u16,  u16,  u32,  u64,  f16,  bf16, f32,  f64,  c64,  c128],  # u16
    [u32,  i64,  i64,  i64,  i64,  u32,  u32,  u32,  u64,  f16,  bf16, f32,  f64,  c64,  c128],  # u32
    [u64,  X,    X,    X,    X,    u64,  u64,  u64,  u64,  f16,  bf16, f32,  f64,  c64,  c128],  # u64
    [f16,  f16,  f16,  f16,  f16,  f16,  f16,  f16,  f16,  f16,  f32,  f32,  f64,  c64,  c128],  # f16
    [bf16, bf16, bf16, bf16, bf16, bf16, bf16, bf16, bf16, f32,  bf16, f32,  f64,  c64,  c128],  # bf16
    [f32,  f32,  f32,  f32,  f32,  f32,  f32,  f32,  f32,  f32,  f32,  f32,  f64,  c64,  c128],  # f32
    [f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  f64,  c128, c128],  # f64
    [c64,  c64,  c64,  c64,  c64,  c64,  c64,  c64,  c64,  c64,  c64,  c64,  c128, c64,  c128],  # c64
    [c128, c128, c128, c128, c128, c128, c128, c128, c128, c128, c128, c128, c128, c128, c128],  # c128
]
# fmt: on
FULL_EXPECTED = {(x, y): FULL_TABLE[i][j] for i, x in enumerate(FULL_ORDER) for j, y in enumerate(FULL_ORDER)}
# The backend tests below run the real, signed-and-uint8 dtypes; complex has test_complex.py and
# uint16/32/64 test_unsigned.py.
ORDER = [b, i8, i16, i32, i64, u8, f16, bf16, f32, f64]
EXPECTED = {(x, y): FULL_EXPECTED[x, y] for x in ORDER for y in ORDER}
PAIRS = [(x, y) for x in ORDER for y in ORDER]


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _ids(pair: tuple) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def test_table_is_symmetric_and_matches_result_type() -> None:
    assert set(FULL_ORDER) == set(dtypes.ALL_DTYPES)
    for (x, y), want in FULL_EXPECTED.items():
        assert FULL_EXPECTED[y, x] is want, f"the table is not symmetric at {x}, {y}"
        if want is None:
            with pytest.raises(TypeError, match=rf"no dtype holds both {x.name} and {y.name} values"):
                ag.result_type(x, y)
            assert not ag.can_cast(x, y) and not ag.can_cast(y, x)
            continue
        assert ag.result_type(x, y) is want, (
            f"result_type({x}, {y}) is {ag.result_type(x, y)}, expected {want}"
        )
        assert ag.can_cast(x, want) and ag.can_cast(y, want)
        assert ag.can_cast(x, y) == (want is y)


def test_promotion_is_associative() -> None:
    """The standard: with more than two operands the result does not depend on their order."""
    for x in FULL_ORDER:
        for y in FULL_ORDER:
            for z in FULL_ORDER:
                try:
                    left = ag.result_type(ag.result_type(x, y), z)
                except TypeError:
                    left = None
                try:
                    right = ag.result_type(x, ag.result_type(y, z))
                except TypeError:
                    right = None
                if left is not None and right is not None:
                    assert left is right, (x, y, z, left, right)


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_binary_ops_follow_the_promotion_table(backend: ag.Device, pair: tuple) -> None:
    x, y = pair
    want = EXPECTED[x, y]
    ha = np.array([1, 0, 1, 1]).astype(_np(x))
    hb = np.array([1, 1, 0, 1]).astype(_np(y))
    a, c = tensor(backend, ha), tensor(backend, hb)
    out = ag.add(a, c)
    assert out.dtype is want, f"add({x}, {y}) gave {out.dtype}, expected {want}"
    assert out.dtype is ag.result_type(a, c)
    ref = (ha.astype(np.int64) + hb.astype(np.int64)) if want is not b else (ha | hb)
    assert_close(out, ref, dtype=want)
    assert_close(a * c, ha.astype(np.int64) * hb.astype(np.int64), dtype=want)
    assert_close(ag.maximum(a, c), np.maximum(ha.astype(np.int64), hb.astype(np.int64)), dtype=want)
    assert_close(
        ag.where(tensor(backend, np.array([True, False, True, False])), a, c),
        np.where([True, False, True, False], ha.astype(np.int64), hb.astype(np.int64)),
        dtype=want,
    )
    assert_close(ag.concat([a, c]), np.concatenate([ha.astype(np.int64), hb.astype(np.int64)]), dtype=want)
    assert ag.stack([a, c]).dtype is want
    assert_close(ag.equal(a, c), ha.astype(np.int64) == hb.astype(np.int64), dtype=b)
    assert_close(ag.less(a, c), ha.astype(np.int64) < hb.astype(np.int64), dtype=b)
    if want is not b:
        assert_close(ag.subtract(a, c), ha.astype(np.int64) - hb.astype(np.int64), dtype=want)


@pytest.mark.parametrize("dtype", ORDER, ids=str)
def test_weak_python_scalars(backend: ag.Device, dtype: dtypes.DType) -> None:
    """A Python scalar takes the tensor's dtype, unless its kind is higher: an int with a bool tensor
    gives int64, a float with an integer or bool tensor gives float32."""
    host = np.array([1, 0, 1]).astype(_np(dtype))
    x = tensor(backend, host)
    cases = [(True, dtype), (1, i64 if dtype is b else dtype), (1.5, dtype if dtype.is_floating else f32)]
    for scalar, want in cases:
        assert ag.result_type(x, scalar) is want
        assert ag.result_type(dtype, scalar) is want
        for out in (
            x + scalar,
            scalar + x,
            x * scalar,
            scalar * x,
            ag.maximum(x, scalar),
            ag.where(x > 0, x, scalar),
        ):
            assert out.dtype is want, f"{dtype} with {scalar!r} gave {out.dtype}, expected {want}"
        ref = host.astype(np.float64) + float(scalar)
        if want is b:
            ref = host | bool(scalar)
        assert_close(x + scalar, ref, dtype=want)


def test_weak_scalar_decisions(backend: ag.Device) -> None:
    i8t = tensor(backend, np.array([1, 127, -128], dtype=np.int8))
    assert_close(i8t + 1, np.array([2, -128, -127], np.int8), dtype=i8)  # stays int8 (and wraps)
    assert (i8t + 1.5).dtype is f32
    assert_close(i8t + 1.5, [2.5, 128.5, -126.5], dtype=f32)
    bt = tensor(backend, np.array([True, False]))
    assert_close(bt + 1, [2, 1], dtype=i64)
    assert_close(bt + True, [True, True], dtype=b)
    assert_close(bt * 2.5, [2.5, 0.0], dtype=f32)
    u8t = tensor(backend, np.array([250, 3], dtype=np.uint8))
    assert_close(u8t + 10, np.array([4, 13], np.uint8), dtype=u8)
    f16t = tensor(backend, np.array([1.5], np.float16))
    assert (f16t * 1e-3).dtype is f16 and (f16t + 2).dtype is f16
    bft = tensor(backend, np.array([1.5], _np(bf16)))
    assert (bft + 0.25).dtype is bf16 and (0.25 * bft).dtype is bf16
    assert_close(bft + 0.25, [1.75], dtype=bf16)
    # a Python int that does not fit the tensor's dtype is an error, not a silent wrap
    for t, s in ((i8t, 200), (i8t, -129), (u8t, -1), (u8t, 256)):
        with pytest.raises(OverflowError):
            t + s
    assert ag.result_type(1, 2) is i64 and ag.result_type(1.0, 2) is f32 and ag.result_type(True) is b


@pytest.mark.parametrize("dtype", [b, i8, i16, i32, i64, u8], ids=str)
def test_integer_division_gives_the_default_float(backend: ag.Device, dtype: dtypes.DType) -> None:
    ha = np.array([7, 1, 0, 5]).astype(_np(dtype))
    hb = np.array([2, 3, 1, 1]).astype(_np(dtype))
    a, c = tensor(backend, ha), tensor(backend, hb)
    assert_close(a / c, ha.astype(np.float64) / hb, dtype=f32)
    assert_close(ag.divide(a, 2), ha.astype(np.float64) / 2, dtype=f32)
    assert_close(3 / tensor(backend, hb), 3 / hb.astype(np.float64), dtype=f32)
    assert_close(ag.sqrt(a), np.sqrt(ha.astype(np.float64)), dtype=f32)
    if dtype is not b:
        assert_close(a // c, ha // hb, dtype=dtype)  # floor division keeps the integer dtype


@pytest.mark.parametrize("dtype", [b, i8, i16, i32, u8], ids=str)
def test_reduction_and_scan_dtypes(backend: ag.Device, dtype: dtypes.DType) -> None:
    """Sums and products of bool and integers accumulate in the standard's default integer dtype of
    their kind: int64, uint64 for unsigned ones."""
    host = np.array([[1, 1, 0], [1, 1, 1]]).astype(_np(dtype))
    x = tensor(backend, host)
    acc = u64 if dtype.kind == "u" else i64
    assert ag.sum(x).dtype is acc
    assert ag.prod(x, axis=0).dtype is acc
    assert ag.cumsum(x, axis=1).dtype is acc
    assert ag.mean(x).dtype is f32
    assert ag.var(x).dtype is f32
    assert ag.max(x).dtype is dtype and ag.min(x, axis=1).dtype is dtype
    assert ag.argmax(x).dtype is i64
    assert ag.any(x).dtype is b and ag.all(x).dtype is b
    assert ag.sum(x, dtype=f64).dtype is f64
    assert_close(ag.sum(x), host.astype(np.int64).sum(), dtype=acc)
    assert_close(ag.mean(x), host.astype(np.float64).mean(), dtype=f32)
    for d in (f16, bf16, f32, f64):
        assert ag.sum(x.astype(d)).dtype is d and ag.mean(x.astype(d)).dtype is d


def test_default_dtypes(backend: ag.Device) -> None:
    assert backend.zeros(2).dtype is f32 and backend.ones((1,)).dtype is f32
    assert backend.arange(3).dtype is i64 and backend.arange(0.5, 2).dtype is f32
    assert backend.eye(2).dtype is f32 and backend.rand(2, seed=0).dtype is f32
    assert backend.randint(0, 3, (2,), seed=0).dtype is i64
    assert ag.asarray(1.0, device=backend).dtype is f32 and ag.asarray(1, device=backend).dtype is i64
    assert ag.asarray(np.float64(1.0), device=backend).dtype is f64
    assert ag.asarray(np.arange(3, dtype=np.int32), device=backend).dtype is i32
    assert ag.linspace(0, 1, 3, device=backend).dtype is f32
    assert ag.one_hot(tensor(backend, np.array([0, 1])), 2).dtype is f32
    info = ag.__array_namespace_info__().default_dtypes()
    assert info == {"real floating": f32, "complex floating": c64, "integral": i64, "indexing": i64}


# ====================================================================== casts
CAST_VALUES = np.array([0, 1, 2, 3, 100, 127])


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_cast_every_pair(backend: ag.Device, pair: tuple) -> None:
    src, dst = pair
    host = CAST_VALUES.astype(_np(src))
    want = host.astype(_np(dst))
    x = tensor(backend, host)
    for out in (x.astype(dst), x.to(dst), ag.astype(x, dst), ag.asarray(x, dtype=dst)):
        assert_close(out, want.astype(np.float64) if dst.is_floating else want, dtype=dst)


@pytest.mark.parametrize("src", [f16, bf16, f32, f64], ids=str)
def test_float_to_int_and_bool_casts(backend: ag.Device, src: dtypes.DType) -> None:
    host = np.array([-2.75, -0.5, -0.0, 0.0, 0.5, 2.75, 100.25]).astype(_np(src))
    x = tensor(backend, host)
    for dst in (i8, i16, i32, i64):  # truncation toward zero
        assert_close(x.astype(dst), [-2, 0, 0, 0, 0, 2, 100], dtype=dst)
    assert_close(x[2:].astype(u8), [0, 0, 0, 2, 100], dtype=u8)
    assert_close(x.astype(b), [True, True, False, False, True, True, True], dtype=b)
    special = tensor(backend, np.array([np.nan, np.inf, -np.inf]).astype(_np(src)))
    assert_close(special.astype(b), [True, True, True], dtype=b)  # NaN is non-zero


def test_float_narrowing_rounds_to_nearest_even(backend: ag.Device) -> None:
    h = np.array([1.00390625, 1.01171875, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 0.1, 65520.0, 1e-8, 3.0e38, -1e39])
    x = tensor(backend, h)
    assert_close(x.astype(bf16), h.astype(ml_dtypes.bfloat16).astype(np.float64), dtype=bf16, rtol=0, atol=0)
    with np.errstate(over="ignore"):
        assert_close(x.astype(f16), h.astype(np.float16).astype(np.float64), dtype=f16, rtol=0, atol=0)
        assert_close(x.astype(f32), h.astype(np.float32).astype(np.float64), dtype=f32, rtol=0, atol=0)
    assert_close(
        tensor(backend, h[:2].astype(np.float32)).astype(bf16), [1.0, 1.015625], dtype=bf16, rtol=0, atol=0
    )


def test_integer_narrowing_wraps(backend: ag.Device) -> None:
    host = np.array([300, -129, 255, 65536 + 7], dtype=np.int64)
    x = tensor(backend, host)
    assert_close(x.astype(i8), host.astype(np.int8), dtype=i8)
    assert_close(x.astype(u8), host.astype(np.uint8), dtype=u8)
    assert_close(x.astype(i16), host.astype(np.int16), dtype=i16)
    assert_close(tensor(backend, np.array([True, False])).astype(i8), [1, 0], dtype=i8)
    assert_close(tensor(backend, np.array([2, 0, -1], np.int32)).astype(b), [True, False, True], dtype=b)


def test_casts_do_not_mutate_and_keep_values_exact(backend: ag.Device) -> None:
    h = rng(1).standard_normal(8)
    x = tensor(backend, h)
    y = x.astype(f32).astype(f64)
    assert_close(y, h.astype(np.float32).astype(np.float64), dtype=f64, rtol=0, atol=0)
    np.testing.assert_array_equal(x.numpy(), h)
    big = tensor(backend, np.array([2**53 + 1, -(2**62)], dtype=np.int64))
    assert_close(big.astype(i64), [2**53 + 1, -(2**62)], dtype=i64)
    assert big.astype(i64).tolist() == [2**53 + 1, -(2**62)]


# ====================================================================== bitcasts
# Bit patterns (as unsigned ints) per item size: zero, -0.0, 1.0, +-inf, quiet NaNs of both signs, a
# NaN with a payload, the smallest subnormal, the largest finite value, for each float of that size.
_PATTERNS = {
    f16: [0x0000, 0x8000, 0x3C00, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7E01, 0x0001, 0x7BFF, 0x1234],
    bf16: [0x0000, 0x8000, 0x3F80, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7FC1, 0x0001, 0x7F7F, 0xC2F7],
    f32: [0, 0x80000000, 0x3F800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FC00001, 1,
          0x7F7FFFFF, 0xDEADBEEF],
    f64: [0, 1 << 63, 0x3FF0000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
          0xFFF8000000000000, 0x7FF8000000000001, 1, 0x7FEFFFFFFFFFFFFF, 0x0123456789ABCDEF],
    i8: [0, 1, 0x7F, 0x80, 0xFF, 0x5A, 0xA5, 0x01, 0xFE, 0x10, 0x33],
}  # fmt: skip
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
BITCAST_PAIRS = [(f32, i32), (f64, i64), (f16, i16), (bf16, i16), (f16, bf16), (i8, u8)]


def _patterns(d: dtypes.DType, size: int = 12) -> np.ndarray:
    """`size` elements of `d` (a key of _PATTERNS) holding its special bit patterns, then random bits."""
    r = rng(7).integers(0, 2**63, size=size, dtype=np.uint64)
    bits = np.concatenate([np.array(_PATTERNS[d], np.uint64), r])[:size]
    return bits.astype(_UNSIGNED[d.itemsize]).view(_np(d))


def _assert_same_bits(out: ag.Tensor, want: np.ndarray, dtype: dtypes.DType) -> None:
    assert out.dtype is dtype, f"bitcast gave {out.dtype}, expected {dtype}"
    assert out.shape == want.shape, f"bitcast gave shape {out.shape}, expected {want.shape}"
    got = np.ascontiguousarray(out.numpy())
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(
        got.view(_UNSIGNED[dtype.itemsize]),
        np.ascontiguousarray(want).view(_UNSIGNED[dtype.itemsize]),
        err_msg=f"bitcast to {dtype}: the bits differ from NumPy's view",
    )


@pytest.mark.parametrize("pair", BITCAST_PAIRS, ids=_ids)
def test_bitcast_matches_numpy_view(backend: ag.Device, pair: tuple) -> None:
    """Both directions, bit for bit: NaN payloads and signs, -0.0, inf, subnormals are kept."""
    for src, dst in (pair, pair[::-1]):
        host = _patterns(pair[0]).view(_np(src))
        x = tensor(backend, host)
        _assert_same_bits(ag.bitcast(x, dst), host.view(_np(dst)), dst)
        _assert_same_bits(ag.bitcast(x, dst.name), host.view(_np(dst)), dst)  # a dtype by name
        _assert_same_bits(ag.bitcast(ag.bitcast(x, dst), src), host, src)  # the round trip is exact
        grid = host.reshape(3, 4)
        for strided in (noncontiguous(backend, grid), noncontiguous(backend, host)):  # transposed, sliced
            held = np.ascontiguousarray(strided.numpy())
            # the bits the strided tensor holds: XLA may quiet a NaN's payload when it slices bfloat16
            assert_close(strided, grid if strided.ndim == 2 else host, dtype=src, rtol=0, atol=0)
            _assert_same_bits(ag.bitcast(strided, dst), held.view(_np(dst)), dst)
        _assert_same_bits(ag.bitcast(x[2:3].reshape(()), dst), host[2:3].reshape(()).view(_np(dst)), dst)
        _assert_same_bits(ag.bitcast(x[:0].reshape(0, 5), dst), host[:0].reshape(0, 5).view(_np(dst)), dst)


def test_bitcast_bool_and_bytes(backend: ag.Device) -> None:
    """bool is one byte, 0 or 1: bool to int8/uint8 gives those bytes; a byte read as bool is True
    where it is non-zero (the only bool a byte other than 0 and 1 can mean)."""
    flags = np.array([[True, False, True], [False, False, True]])
    for dst in (u8, i8):
        want = flags.view(_np(dst))
        _assert_same_bits(ag.bitcast(tensor(backend, flags), dst), want, dst)
        _assert_same_bits(ag.bitcast(noncontiguous(backend, flags), dst), want, dst)
    raw = np.array([0, 1, 2, 255, 128, 0], np.uint8)
    for src in (u8, i8):
        x = tensor(backend, raw.view(_np(src)))
        out = ag.bitcast(x, b)
        assert_close(out, raw != 0, dtype=b)
        assert_close(out.astype(i32), (raw != 0).astype(np.int32), dtype=i32)  # a real bool: 0 or 1
        assert_close(ag.sum(out), 4, dtype=i64)
        assert_close(ag.bitcast(out, src), (raw != 0).astype(_np(src)), dtype=src)
        assert_close(ag.bitcast(noncontiguous(backend, raw.view(_np(src))), b), raw != 0, dtype=b)


def test_bitcast_is_not_differentiable_and_leaves_its_input(backend: ag.Device) -> None:
    host = np.array([1.5, -2.0, 0.25], np.float32)
    x = backend.tensor(host, requires_grad=True)
    for dst in (i32, f32):
        out = ag.bitcast(ag.bitcast(x, i32), dst)
        assert not out.requires_grad, f"bitcast to {dst} requires grad"
    y = ag.bitcast(tensor(backend, host.astype(np.float16)).requires_grad_(), bf16)
    assert not y.requires_grad, "a float-to-float bitcast gives a detached result"
    assert ag.bitcast(x, f32) is x and ag.bitcast(x, "float32") is x, "the same dtype gives x itself"
    np.testing.assert_array_equal(x.numpy(), host)  # the input keeps its values
    np.testing.assert_array_equal(ag.bitcast(x, i32).numpy(), host.view(np.int32))


def test_bitcast_refuses_other_item_sizes(backend: ag.Device) -> None:
    for src, dst in ((i32, f16), (f64, f32), (b, i16), (bf16, u8), (i64, i32)):
        x = tensor(backend, np.zeros(3, _np(src)))
        with pytest.raises(TypeError, match=rf"bitcast: {src.name} \({src.itemsize} bytes?\) to {dst.name} "
                           rf"\({dst.itemsize} bytes?\): item sizes differ"):  # fmt: skip
            ag.bitcast(x, dst)
    with pytest.raises(TypeError, match=r"bitcast: expected a Tensor, got ndarray"):
        ag.bitcast(np.zeros(3, np.float32), i32)
    with pytest.raises(TypeError):
        ag.bitcast(tensor(backend, np.zeros(3, np.float32)), "complex64")


# ====================================================================== utilities
def test_dtype_objects() -> None:
    for d in FULL_ORDER:
        assert dtypes.as_dtype(d.name) is d and d == d.name and hash(d) == hash(d.name)
        assert dtypes.from_numpy_dtype(_np(d)) is d and dtypes.as_dtype(_np(d)) is d
        assert d.itemsize == _np(d).itemsize and d.bits == 8 * d.itemsize
        assert repr(d) == f"ag.{d.name}"
        assert d.is_complex == (d in (c64, c128)) and d.is_floating == (d in (f16, bf16, f32, f64))
        assert d.is_inexact == (d.is_complex or d.is_floating)
    assert dtypes.as_dtype(bool) is b and dtypes.as_dtype(int) is i64 and dtypes.as_dtype(float) is f32
    assert dtypes.as_dtype(complex) is c64 and dtypes.as_dtype(np.complex128) is c128
    assert dtypes.real_dtype(c64) is f32 and dtypes.real_dtype(c128) is f64 and dtypes.real_dtype(f16) is f16
    assert dtypes.complex_dtype(f64) is c128 and dtypes.complex_dtype(f32) is c64
    for bad in ("complex32", "float128", "foo"):
        with pytest.raises(TypeError, match=rf"unknown dtype '{bad}'; known: bool, .*complex64, complex128"):
            dtypes.as_dtype(bad)
    for bad in ("U3", "object", "datetime64[s]"):
        with pytest.raises(TypeError, match=r"is not supported by agnostic"):
            dtypes.from_numpy_dtype(np.dtype(bad))


def test_isdtype_finfo_iinfo() -> None:
    kinds = {
        "bool": [b],
        "signed integer": [i8, i16, i32, i64],
        "unsigned integer": [u8, u16, u32, u64],
        "integral": [i8, i16, i32, i64, u8, u16, u32, u64],
        "real floating": [f16, bf16, f32, f64],
        "complex floating": [c64, c128],
        "numeric": [i8, i16, i32, i64, u8, u16, u32, u64, f16, bf16, f32, f64, c64, c128],
    }
    for kind, members in kinds.items():
        for d in FULL_ORDER:
            assert ag.isdtype(d, kind) == (d in members), (d, kind)
    assert ag.isdtype(f32, (f32, "bool")) and not ag.isdtype(f64, f32)
    assert ag.isdtype(c64, ("real floating", "complex floating")) and not ag.isdtype(c64, c128)
    with pytest.raises(ValueError):
        ag.isdtype(f32, "floating")
    for d in (f16, bf16, f32, f64):
        fi, ref = ag.finfo(d), ml_dtypes.finfo(_np(d))
        assert fi.bits == ref.bits and float(fi.eps) == float(ref.eps) and float(fi.max) == float(ref.max)
        assert float(fi.smallest_normal) == float(ref.smallest_normal)
        assert fi.dtype is d and type(fi.eps) is float
    for d, part in ((c64, f32), (c128, f64)):  # the standard: a complex dtype's finfo is its parts'
        fi, ref = ag.finfo(d), np.finfo(_np(d))
        assert (fi.bits, fi.eps, fi.max, fi.min) == (ref.bits, float(ref.eps), float(ref.max), float(ref.min))
        assert fi.dtype is part and fi.smallest_normal == float(ref.smallest_normal)
    assert float(ag.finfo(bf16).eps) == 2.0**-7 and float(ag.finfo(f16).max) == 65504.0
    for d in (i8, i16, i32, i64, u8, u16, u32, u64):
        ii, ref = ag.iinfo(d), np.iinfo(_np(d))
        assert (ii.min, ii.max, ii.bits) == (ref.min, ref.max, ref.bits) and ii.dtype is d
    for d in (i32, u8, b):
        with pytest.raises(TypeError):
            ag.finfo(d)
    for d in (f32, c64, b):
        with pytest.raises(TypeError):
            ag.iinfo(d)
