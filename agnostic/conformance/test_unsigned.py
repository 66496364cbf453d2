"""uint16, uint32 and uint64 through every op the Array API defines for integers, exactly.

References are Python integer arithmetic reduced modulo 2**bits (so NumPy's wrapping results), with
the project's edge-case rules (docs/conformance.md, "Edge cases" and "Unsigned integers"):
`x // 0` and `x % 0` give 0, powers wrap, shifts by the width or more give 0, `-x` wraps, float ->
unsigned casts saturate (NaN and negatives give 0, values above the max give the max), sums and
products without `dtype=` accumulate in uint64. Inputs are the values where wrong answers hide: 0,
1, the max and its neighbours, 2**31, 2**32 and 2**63 and their neighbours.

torch has few kernels for these dtypes; its backend emulates the rest (backends/_torch_unsigned.py),
and these tests hold the emulation to the same results.
"""

from __future__ import annotations

import math
import operator
import warnings

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, tensor

COVERS = {
    "add", "sub", "mul", "floor_divide", "remainder", "pow", "maximum", "minimum", "eq", "ne", "lt",
    "le", "gt", "ge", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
    "bitwise_right_shift", "bitwise_invert", "neg", "abs", "sign", "square", "sum", "prod", "max",
    "min", "argmax", "argmin", "cumsum", "cumprod", "sort", "argsort", "where", "clip", "concat",
    "stack", "getitem", "take", "take_along_axis", "scatter_add", "index_add", "flip", "pad",
    "nonzero", "one_hot", "matmul", "cast", "full", "arange", "repeat", "tile",
}  # fmt: skip

UNSIGNED = [dtypes.uint16, dtypes.uint32, dtypes.uint64]


def _edges(d: dtypes.DType) -> list[int]:
    """The values where wrong answers hide, for unsigned dtype `d`."""
    top = 2**d.bits - 1
    values = [0, 1, 2, 3, 7, 255, 256, top, top - 1, top // 2, top // 2 + 1]
    for p in (16, 31, 32, 63):
        if p < d.bits:
            values += [2**p - 1, 2**p, 2**p + 5]
    return sorted(set(values))


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _host(values: list[int] | list[list[int]], d: dtypes.DType) -> np.ndarray:
    return np.array(values, dtype=_np(d))


def _pairs(d: dtypes.DType) -> tuple[list[int], list[int]]:
    """Every pair of edge values, as two flat lists."""
    e = _edges(d)
    return [a for a in e for _ in e], [b for _ in e for b in e]


def _table(fn, xs: list[int], ys: list[int], d: dtypes.DType) -> np.ndarray:
    """`fn(x, y)` on Python ints, reduced modulo 2**bits, as a host array of `d`."""
    return _host([fn(x, y) % 2**d.bits for x, y in zip(xs, ys)], d)


@pytest.fixture(params=UNSIGNED, ids=lambda d: d.name)
def u(request: pytest.FixtureRequest) -> dtypes.DType:
    return request.param


# ====================================================================== elementwise arithmetic
@pytest.mark.parametrize(
    "op, fn",
    [
        (ag.add, operator.add), (ag.subtract, operator.sub), (ag.multiply, operator.mul),
        (ag.floor_divide, lambda a, b: a // b if b else 0), (ag.remainder, lambda a, b: a % b if b else 0),
        (ag.maximum, max), (ag.minimum, min), (ag.bitwise_and, operator.and_),
        (ag.bitwise_or, operator.or_), (ag.bitwise_xor, operator.xor),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)  # fmt: skip
def test_binary_ops_are_exact(backend: ag.Device, u: dtypes.DType, op, fn) -> None:
    xs, ys = _pairs(u)
    out = op(tensor(backend, _host(xs, u)), tensor(backend, _host(ys, u)))
    assert_close(out, _table(fn, xs, ys, u), dtype=u)


def test_binary_ops_broadcast(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    x, y = tensor(backend, _host(e, u)).reshape(-1, 1), tensor(backend, _host(e, u))
    want = _host([[(a * b) % 2**u.bits for b in e] for a in e], u)
    assert_close(x * y, want, dtype=u)
    quotients = _host([[a // b if b else 0 for b in e] for a in e], u)
    assert_close(x // y, quotients, dtype=u)


@pytest.mark.parametrize(
    "op, fn",
    [(ag.equal, operator.eq), (ag.not_equal, operator.ne), (ag.less, operator.lt),
     (ag.less_equal, operator.le), (ag.greater, operator.gt), (ag.greater_equal, operator.ge)],
    ids=lambda v: getattr(v, "__name__", ""),
)  # fmt: skip
def test_comparisons_order_as_unsigned(backend: ag.Device, u: dtypes.DType, op, fn) -> None:
    xs, ys = _pairs(u)
    out = op(tensor(backend, _host(xs, u)), tensor(backend, _host(ys, u)))
    assert_close(out, np.array([fn(x, y) for x, y in zip(xs, ys)]), dtype=ag.bool)


def test_pow_wraps(backend: ag.Device, u: dtypes.DType) -> None:
    bases = _edges(u)
    top = 2**u.bits - 1
    exponents = sorted({0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, top, top - 1, top // 2 + 1}
                       | ({2**31 + 1, 2**32 + 1, 2**62 + 3, 2**62 - 1, 2**63 + 1} if u.bits == 64 else set()))  # fmt: skip
    xs = [b for b in bases for _ in exponents]
    es = [e for _ in bases for e in exponents]
    out = ag.pow(tensor(backend, _host(xs, u)), tensor(backend, _host(es, u)))
    assert_close(out, _host([pow(b, e, 2**u.bits) for b, e in zip(xs, es)], u), dtype=u)
    assert_close(tensor(backend, _host(bases, u)) ** 3, _host([b**3 % 2**u.bits for b in bases], u), dtype=u)


def test_shifts_by_the_width_or_more_give_zero(backend: ag.Device, u: dtypes.DType) -> None:
    values = _edges(u)
    n = u.bits
    amounts = sorted({0, 1, 7, n // 2, n - 1, n, n + 1, 2**n - 1} | ({64, 100} if n < 64 else {2**63}))
    xs = [v for v in values for _ in amounts]
    ss = [s for _ in values for s in amounts]
    x, s = tensor(backend, _host(xs, u)), tensor(backend, _host(ss, u))
    left = [(v << k) % 2**n if k < n else 0 for v, k in zip(xs, ss)]
    right = [v >> k if k < n else 0 for v, k in zip(xs, ss)]
    assert_close(ag.bitwise_left_shift(x, s), _host(left, u), dtype=u)
    assert_close(ag.bitwise_right_shift(x, s), _host(right, u), dtype=u)
    v = tensor(backend, _host(values, u))
    assert_close(v >> 1, _host([a >> 1 for a in values], u), dtype=u)
    assert_close(v << (n - 1), _host([(a << (n - 1)) % 2**n for a in values], u), dtype=u)


def test_unary_ops(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    m = 2**u.bits
    x = tensor(backend, _host(e, u))
    assert_close(-x, _host([-a % m for a in e], u), dtype=u)  # wraps, as NumPy
    assert_close(ag.abs(x), _host(e, u), dtype=u)
    assert_close(ag.sign(x), _host([int(a > 0) for a in e], u), dtype=u)
    assert_close(ag.square(x), _host([a * a % m for a in e], u), dtype=u)
    assert_close(~x, _host([m - 1 - a for a in e], u), dtype=u)
    assert_close(+x, _host(e, u), dtype=u)
    for same in (ag.floor, ag.ceil, ag.round, ag.trunc):
        assert_close(same(x), _host(e, u), dtype=u)
    assert_close(ag.signbit(x), np.zeros(len(e), bool), dtype=ag.bool)
    assert_close(ag.logical_not(x), np.array([a == 0 for a in e]), dtype=ag.bool)
    assert_close(ag.isfinite(x), np.ones(len(e), bool), dtype=ag.bool)
    assert_close(ag.sqrt(tensor(backend, _host([4, 9], u))), [2.0, 3.0], dtype=ag.float32)


# ====================================================================== Python scalars and promotion
def test_python_ints_are_weak(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    top = 2**u.bits - 1
    x = tensor(backend, _host(e, u))
    for s in (0, 1, 3, top, top // 2 + 1):
        assert_close(x + s, _host([(a + s) % 2**u.bits for a in e], u), dtype=u)
        assert_close(s - x, _host([(s - a) % 2**u.bits for a in e], u), dtype=u)
        assert_close(x < s, np.array([a < s for a in e]), dtype=ag.bool)
        assert_close(ag.maximum(x, s), _host([max(a, s) for a in e], u), dtype=u)
        assert_close(ag.where(x > 5, x, s), _host([a if a > 5 else s for a in e], u), dtype=u)
        assert_close(x // (s or 1), _host([a // (s or 1) for a in e], u), dtype=u)
    assert_close(ag.clip(x, 2, top - 1), _host([min(max(a, 2), top - 1) for a in e], u), dtype=u)
    assert_close(x * 0.5, np.array(e, np.float64) * 0.5, dtype=ag.float32)  # a float gives the default float


def test_python_ints_out_of_range_raise(backend: ag.Device, u: dtypes.DType) -> None:
    x = tensor(backend, _host([1, 2], u))
    for s in (-1, 2**u.bits):
        with pytest.raises(OverflowError, match=rf"add: Python int {s} is out of range for {u.name}"):
            x + s
        with pytest.raises(OverflowError, match=u.name):
            ag.where(x > 1, x, s)
        with pytest.raises(OverflowError, match=u.name):
            ag.full((2,), s, dtype=u, device=backend)


@pytest.mark.parametrize(
    "a, b, want",
    [
        (ag.uint8, ag.int8, ag.int16), (ag.uint16, ag.int16, ag.int32), (ag.uint16, ag.int8, ag.int32),
        (ag.uint32, ag.int32, ag.int64), (ag.uint32, ag.int64, ag.int64), (ag.uint16, ag.uint32, ag.uint32),
        (ag.uint8, ag.uint64, ag.uint64), (ag.uint64, ag.bool, ag.uint64), (ag.uint64, ag.float32, ag.float32),
        (ag.uint32, ag.float64, ag.float64),
    ],
    ids=lambda v: getattr(v, "name", ""),
)  # fmt: skip
def test_promotion_with_other_dtypes(backend: ag.Device, a, b, want) -> None:
    x = tensor(backend, np.array([1, 2]), a)
    y = tensor(backend, np.array([3, 0]), b)
    assert_close(x + y, np.array([1, 2]) + np.array([3, 0]).astype(dtypes.to_numpy_dtype(b)), dtype=want)
    assert_close(y * x, np.array([3, 0]).astype(dtypes.to_numpy_dtype(b)) * np.array([1, 2]), dtype=want)
    assert ag.concat([x, y]).dtype is want


@pytest.mark.parametrize("signed", [ag.int8, ag.int16, ag.int32, ag.int64], ids=lambda d: d.name)
def test_uint64_with_a_signed_int_is_refused(backend: ag.Device, signed: dtypes.DType) -> None:
    x = tensor(backend, np.array([1, 2]), ag.uint64)
    y = tensor(backend, np.array([1, 2]), signed)
    for call, op in ((lambda: x + y, "add"), (lambda: y < x, "less"), (lambda: ag.concat([x, y]), "concat")):
        with pytest.raises(
            TypeError, match=rf"{op}: .*uint64.*{signed.name}|{op}: .*{signed.name}.*uint64"
        ) as e:
            call()
        assert "astype" in str(e.value)  # the fix: cast one operand
    assert_close(x.astype(ag.int64) + y, [2, 4], dtype=ag.int64)


# ====================================================================== reductions and scans
def test_sum_and_prod_accumulate_in_uint64(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    x = tensor(backend, _host(e, u))
    assert_close(ag.sum(x), _host(sum(e) % 2**64, ag.uint64), dtype=ag.uint64)
    small = [a for a in e if 0 < a < 300]
    assert_close(ag.prod(tensor(backend, _host(small, u))), math.prod(small) % 2**64, dtype=ag.uint64)
    assert_close(ag.sum(x, dtype=u), _host(sum(e) % 2**u.bits, u), dtype=u)  # wraps in the asked dtype
    assert_close(ag.prod(x, dtype=u), _host(math.prod(e) % 2**u.bits, u), dtype=u)
    grid = _host([e[:4], e[-4:]], u)
    g = tensor(backend, grid)
    assert_close(ag.sum(g, axis=0), _host([(a + b) % 2**64 for a, b in zip(*grid.tolist())], ag.uint64))
    assert_close(ag.sum(g, axis=1, keepdims=True), grid.astype(np.uint64).sum(axis=1, keepdims=True))
    assert_close(ag.mean(tensor(backend, _host([2, 4], u))), 3.0, dtype=ag.float32)


def test_cumulative_sum_and_prod(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    x = tensor(backend, _host(e, u))
    sums = np.cumsum(np.array(e, dtype=object)) % 2**64
    assert_close(ag.cumulative_sum(x), _host(sums.tolist(), ag.uint64), dtype=ag.uint64)
    assert_close(ag.cumulative_sum(x, dtype=u), _host((sums % 2**u.bits).tolist(), u), dtype=u)
    small = [3, 255, 7, 2**15]
    prods = np.cumprod(np.array(small, dtype=object)) % 2**64
    assert_close(ag.cumulative_prod(tensor(backend, _host(small, u))), _host(prods.tolist(), ag.uint64))
    grid = tensor(backend, _host([e[:3], e[-3:]], u))
    assert_close(ag.cumsum(grid, axis=1, dtype=u), np.cumsum(_host([e[:3], e[-3:]], u), axis=1), dtype=u)


def test_extrema_order_as_unsigned(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    host = _host(e[len(e) // 2 :] + e[: len(e) // 2], u)  # the max sits in the middle
    x = tensor(backend, host)
    assert_close(ag.max(x), host.max(), dtype=u)
    assert_close(ag.min(x), host.min(), dtype=u)
    assert_close(ag.argmax(x), host.argmax(), dtype=ag.int64)
    assert_close(ag.argmin(x), host.argmin(), dtype=ag.int64)
    grid = host[: (len(host) // 2) * 2].reshape(2, -1)
    g = tensor(backend, grid)
    assert_close(ag.max(g, axis=1), grid.max(axis=1), dtype=u)
    assert_close(ag.min(g, axis=0, keepdims=True), grid.min(axis=0, keepdims=True), dtype=u)
    assert_close(ag.argmax(g, axis=0), grid.argmax(axis=0), dtype=ag.int64)
    assert_close(ag.argmin(g, axis=1), grid.argmin(axis=1), dtype=ag.int64)


def test_sort_and_argsort(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    host = _host(e[::-1] + e[::3], u)  # with repeats, for stability
    x = tensor(backend, host)
    assert_close(ag.sort(x), np.sort(host), dtype=u)
    assert_close(ag.sort(x, descending=True), np.sort(host)[::-1], dtype=u)
    assert_close(ag.argsort(x), np.argsort(host, kind="stable"), dtype=ag.int64)
    values, indices = ag.topk(x, 3)
    assert_close(values, np.sort(host)[::-1][:3], dtype=u)
    assert_close(ag.take(x, indices), np.sort(host)[::-1][:3], dtype=u)
    assert_close(ag.unique_values(x), np.unique(host), dtype=u)
    assert_close(ag.searchsorted(ag.sort(x), x), np.searchsorted(np.sort(host), host), dtype=ag.int64)


# ====================================================================== moving elements
def test_indexing_and_joining(backend: ag.Device, u: dtypes.DType) -> None:
    e = _edges(u)
    host = _host(e[:8], u).reshape(2, 4)
    host[1, 3] = 2**u.bits - 1
    x = tensor(backend, host)
    idx = np.array([3, 0, 3])
    assert_close(x[:, idx], host[:, idx], dtype=u)
    assert_close(x[host > 2], host[host > 2], dtype=u)
    assert_close(x[:, ::-1], host[:, ::-1], dtype=u)
    assert_close(x[1, -1], host[1, -1], dtype=u)
    assert_close(ag.take(x, tensor(backend, idx), axis=1), host[:, idx], dtype=u)
    order = np.argsort(host, axis=1)
    assert_close(ag.take_along_axis(x, tensor(backend, order), axis=1), np.take_along_axis(host, order, 1))
    assert_close(ag.flip(x, axis=1), host[:, ::-1], dtype=u)
    assert_close(ag.concat([x, x], axis=1), np.concatenate([host, host], 1), dtype=u)
    assert_close(ag.stack([x, x]), np.stack([host, host]), dtype=u)
    assert_close(ag.where(x > 3, x, x // 2), np.where(host > 3, host, host // 2), dtype=u)
    assert_close(x.T, host.T, dtype=u)
    assert_close(ag.reshape(x.T, (8,)), host.T.reshape(8), dtype=u)  # a non-contiguous source
    assert_close(ag.roll(x, 1, axis=1), np.roll(host, 1, axis=1), dtype=u)
    assert_close(ag.tile(x, (1, 2)), np.tile(host, (1, 2)), dtype=u)
    assert_close(ag.repeat(x, 2, axis=0), np.repeat(host, 2, axis=0), dtype=u)
    counts = np.array([0, 2, 1, 3])
    assert_close(ag.repeat(x, tensor(backend, counts), axis=1), np.repeat(host, counts, axis=1), dtype=u)
    for i, want in zip(ag.nonzero(x), np.nonzero(host)):
        assert_close(i, want, dtype=ag.int64)


def test_padding(backend: ag.Device, u: dtypes.DType) -> None:
    top = 2**u.bits - 1
    host = _host([[1, top], [2 ** (u.bits - 1), 0]], u)
    x = tensor(backend, host)
    for value in (0, 5, top):
        assert_close(
            ag.pad(x, ((1, 0), (0, 2)), value=value), np.pad(host, ((1, 0), (0, 2)), constant_values=value)
        )
    assert_close(ag.pad(x, ((0, 0), (1, 1)), mode="reflect"), np.pad(host, ((0, 0), (1, 1)), mode="reflect"))
    assert_close(ag.pad(x, ((1, 1), (0, 0)), mode="edge"), np.pad(host, ((1, 1), (0, 0)), mode="edge"))
    big = tensor(backend, np.array([1, 2]))  # int64 too: 2**60 + 1 is no float64
    assert_close(ag.pad(big, (1, 0), value=2**60 + 1), np.array([2**60 + 1, 1, 2]), dtype=ag.int64)


def test_scatter_and_index_add_wrap(backend: ag.Device, u: dtypes.DType) -> None:
    top = 2**u.bits - 1
    base = _host([top, 1, 2], u)
    x = tensor(backend, base)
    idx = np.array([0, 0, 2])
    src = _host([1, top, 3], u)
    want = base.astype(object)
    np.add.at(want, idx, src.astype(object))
    want = _host([int(w) % 2**u.bits for w in want], u)
    assert_close(ag.scatter_add(x, 0, tensor(backend, idx), tensor(backend, src)), want, dtype=u)
    assert_close(x.at[tensor(backend, idx)].add(tensor(backend, src)), want, dtype=u)
    assert_close(x.at[0].add(2), _host([1, 1, 2], u), dtype=u)
    assert_close(x.at[1:].set(top), _host([top, top, top], u), dtype=u)


def test_one_hot_and_matmul(backend: ag.Device, u: dtypes.DType) -> None:
    labels = _host([2, 0, 1], u)
    assert_close(ag.one_hot(tensor(backend, labels), 3), np.eye(3, dtype=np.float32)[labels.astype(np.int64)])
    e = _edges(u)
    a, b = _host(e[-6:], u).reshape(2, 3), _host(e[:6], u).reshape(3, 2)
    want = (a.astype(object) @ b.astype(object)) % 2**u.bits
    assert_close(tensor(backend, a) @ tensor(backend, b), want.astype(_np(u)), dtype=u)


# ====================================================================== casts and creation
@pytest.mark.parametrize("to", dtypes.ALL_DTYPES, ids=lambda d: d.name)
def test_casts_from_unsigned(backend: ag.Device, u: dtypes.DType, to: dtypes.DType) -> None:
    host = _host(_edges(u), u)
    with np.errstate(over="ignore"):
        want = host.astype(dtypes.to_numpy_dtype(to))  # ints wrap, floats round to nearest
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # beyond float16's range is inf, silently
        out = tensor(backend, host).astype(to)
    assert_close(out, want, dtype=to, rtol=0, atol=0)


@pytest.mark.parametrize("src", [d for d in dtypes.ALL_DTYPES if d.kind in "biu"], ids=lambda d: d.name)
def test_casts_from_integers_wrap(backend: ag.Device, u: dtypes.DType, src: dtypes.DType) -> None:
    info = dtypes.iinfo(src) if src.kind != "b" else None
    values = (
        [0, 1]
        if info is None
        else sorted({0, 1, 7, int(info.max), int(info.max) - 1, int(info.min), -1 if info.min else 2})
    )
    host = np.array(values, dtype=dtypes.to_numpy_dtype(src))
    want = _host([int(v) % 2**u.bits for v in values], u)
    assert_close(tensor(backend, host).astype(u), want, dtype=u)


@pytest.mark.parametrize("src", [ag.float16, ag.bfloat16, ag.float32, ag.float64], ids=lambda d: d.name)
def test_casts_from_floats_saturate(backend: ag.Device, u: dtypes.DType, src: dtypes.DType) -> None:
    top = 2**u.bits - 1
    raw = [math.nan, math.inf, -math.inf, -1.0, -0.75, 0.0, 0.5, 3.99, 255.5, 65504.0, 65536.0, 2.0**31,
           2.0**32, 2.0**32 + 2**12, 2.0**63, 2.0**64, 1e30]  # fmt: skip
    with np.errstate(over="ignore"):
        host = np.array(raw, np.float64).astype(dtypes.to_numpy_dtype(src))
    held = [float(v) for v in host.astype(np.float64)]  # the values as the float dtype holds them

    def saturated(v: float) -> int:
        if math.isnan(v) or v <= 0:
            return 0
        return top if v >= top + 1 else int(v)

    want = _host([saturated(v) for v in held], u)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silent, as every edge case (NumPy would warn)
        out = tensor(backend, host).astype(u)
    assert_close(out, want, dtype=u)


def test_asarray_takes_every_uint64_value(backend: ag.Device) -> None:
    top = 2**64 - 1
    values = [0, 1, 2**63 - 1, 2**63, 2**64 - 2, top]
    assert_close(
        ag.asarray(values, dtype=ag.uint64, device=backend), _host(values, ag.uint64), dtype=ag.uint64
    )
    assert ag.asarray(top, dtype=ag.uint64, device=backend).item() == top
    assert int(ag.asarray([top], dtype=ag.uint64, device=backend)[0]) == top
    with pytest.raises(OverflowError, match=r"2\*\*64 - 1|uint64"):
        ag.asarray([top], device=backend)  # the default int64 cannot hold it: the message says what can
    for bad in ([2**64], [-1], [-1, top]):
        with pytest.raises(OverflowError, match=r"out of range for uint64"):
            ag.asarray(bad, dtype=ag.uint64, device=backend)
    for d in (ag.uint16, ag.uint32):
        with pytest.raises(OverflowError, match=rf"out of range for {d.name}"):
            ag.asarray([2**d.bits], dtype=d, device=backend)


def test_creation(backend: ag.Device, u: dtypes.DType) -> None:
    top = 2**u.bits - 1
    assert_close(ag.full((2, 2), top, dtype=u, device=backend), np.full((2, 2), top, _np(u)), dtype=u)
    assert_close(ag.zeros(3, dtype=u, device=backend), np.zeros(3, _np(u)), dtype=u)
    assert_close(ag.ones(3, dtype=u, device=backend), np.ones(3, _np(u)), dtype=u)
    assert_close(ag.eye(3, dtype=u, device=backend), np.eye(3, dtype=_np(u)), dtype=u)
    assert_close(ag.arange(0, 10, 3, dtype=u, device=backend), np.arange(0, 10, 3, dtype=_np(u)), dtype=u)
    assert_close(ag.arange(10, 0, -4, dtype=u, device=backend), np.array([10, 6, 2], _np(u)), dtype=u)
    start = top // 2 + 1
    step = start // 4
    want = list(range(start, top, step))
    assert_close(ag.arange(start, top, step, dtype=u, device=backend), _host(want, u), dtype=u)
    ends = [top - 2, top - 1, top]  # the stop may be just past the max: it is not a value
    assert_close(ag.arange(top - 2, top + 1, dtype=u, device=backend), _host(ends, u), dtype=u)
    assert_close(ag.arange(top, top - 3, -1, dtype=u, device=backend), _host(ends[::-1], u), dtype=u)
    for bad in ((-1, 3), (top - 1, top + 2), (0, 2 * top + 1, top)):
        with pytest.raises(OverflowError, match=rf"arange: -?\d+ is out of range for {u.name}"):
            ag.arange(*bad, dtype=u, device=backend)
    if u is ag.uint64:
        with pytest.raises(OverflowError, match=r"out of range for int64.*dtype=ag.uint64"):
            ag.arange(top - 2, top + 1, device=backend)  # the default int64 cannot hold them
    info = ag.iinfo(u)
    assert (info.min, info.max, info.bits, info.dtype) == (0, top, u.bits, u)
    assert isinstance(info.max, int)


def test_a_compiled_step_matches_eager_or_refuses_clearly(backend: ag.Device, u: dtypes.DType) -> None:
    """Inside ag.compile a backend may lack what its eager ops emulate (torch's missing uint
    kernels): then one clear TypeError at the first call, never torch's own error or a wrong value."""

    def step(t: ag.Tensor) -> ag.Tensor:
        return (t + 1) * 3 // 2

    x = tensor(backend, _host(_edges(u), u))
    want = step(x).numpy()
    try:
        got = ag.compile(step)(x)
    except TypeError as e:
        assert "compile:" in str(e) and u.name in str(e) and "cast to int64" in str(e)
        return
    assert_close(got, want, dtype=u)
