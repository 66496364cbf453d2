"""Edge cases the libraries disagree on, and the one behaviour every backend must give instead
(the table in docs/conformance.md, "Edge cases: one behaviour everywhere").

- integer floor_divide and remainder by zero give 0, INT_MIN // -1 wraps to INT_MIN, and float
  division by zero gives IEEE's inf and NaN;
- integer pow: a Python negative exponent raises; a tensor one gives the exact result truncated
  toward zero (1 for a base of 1, -1 or 1 for -1, else 0); overflow wraps;
- float to int casts truncate toward zero and saturate (NaN gives 0, +-inf the range's ends), int
  to a narrower int wraps, float to a narrower float overflows to +-inf;
- none of these warns (NumPy would, where torch and JAX are silent);
- a result that cannot fit in the device's memory raises `ag.OutOfMemoryError` naming the op, the
  shape, the dtype and the bytes, before anything is allocated. The real-size cases (which made
  XLA abort the whole process) run in a child process, with its address space capped, so a backend
  that aborts or allocates fails its test without taking the test run or the machine with it.

References are exact: Python integer arithmetic, wrapped to the dtype's range.
"""

from __future__ import annotations

import json
import math
import operator
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, tensor

COVERS = {
    "floor_divide", "remainder", "pow", "cast", "full", "arange", "broadcast_to", "memory_capacity",
    "is_out_of_memory",
}  # fmt: skip

SIGNED = [dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64]
INTEGERS = SIGNED + [dtypes.uint8]
FLOATS = [dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64]


def _wrap(value: int, d: dtypes.DType) -> int:
    """`value` in `d`'s two's complement range."""
    info = dtypes.iinfo(d)
    return (value - info.min) % 2**d.bits + info.min


def _int_array(values: list, d: dtypes.DType) -> np.ndarray:
    return np.array(values, dtype=dtypes.to_numpy_dtype(d))


def _quiet(fn, *args):
    """fn(*args), failing on any warning: these edge cases are silent on every backend."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# ====================================================================== integer division
def _floor_div(a: int, b: int, d: dtypes.DType) -> int:
    return _wrap(a // b, d) if b else 0


def _mod(a: int, b: int, d: dtypes.DType) -> int:
    return _wrap(a % b, d) if b else 0


def _division_operands(d: dtypes.DType) -> tuple[list[int], list[int]]:
    info = dtypes.iinfo(d)
    if d.kind == "u":
        return [7, 0, info.max, 3, 200], [0, 0, 0, 2, 7]
    return [7, -7, 0, info.min, info.min, info.max, -9], [0, 0, 0, 0, -1, -1, 4]


@pytest.mark.parametrize("d", INTEGERS, ids=lambda d: d.name)
def test_integer_division_by_zero_gives_zero(backend: ag.Device, d: dtypes.DType) -> None:
    a, b = _division_operands(d)
    x, y = tensor(backend, _int_array(a, d)), tensor(backend, _int_array(b, d))
    assert_close(_quiet(ag.floor_divide, x, y), [_floor_div(p, q, d) for p, q in zip(a, b)], dtype=d)
    assert_close(_quiet(ag.remainder, x, y), [_mod(p, q, d) for p, q in zip(a, b)], dtype=d)
    # a Python zero divisor, and a Python dividend over a tensor with zeros
    assert_close(_quiet(lambda: x // 0), [0] * len(a), dtype=d)
    assert_close(_quiet(lambda: x % 0), [0] * len(a), dtype=d)
    assert_close(_quiet(lambda: 7 // y), [_floor_div(7, q, d) for q in b], dtype=d)
    assert_close(_quiet(lambda: 7 % y), [_mod(7, q, d) for q in b], dtype=d)


@pytest.mark.parametrize("d", SIGNED, ids=lambda d: d.name)
def test_integer_division_by_zero_broadcasts(backend: ag.Device, d: dtypes.DType) -> None:
    a, b = [[5], [-5], [0]], [0, 2, -3, 0]
    x, y = tensor(backend, _int_array(a, d)), tensor(backend, _int_array(b, d))
    assert_close(_quiet(ag.floor_divide, x, y), [[_floor_div(p[0], q, d) for q in b] for p in a], dtype=d)
    assert_close(_quiet(ag.remainder, y, x), [[_mod(q, p[0], d) for q in b] for p in a], dtype=d)


@pytest.mark.parametrize("d", [dtypes.float32, dtypes.float64], ids=lambda d: d.name)
def test_float_division_by_zero_is_ieee(backend: ag.Device, d: dtypes.DType) -> None:
    x = tensor(backend, np.array([1.0, -1.0, 0.0, np.nan, 5.0, -5.0]), d)
    zero = tensor(backend, np.zeros(6), d)
    inf = math.inf
    assert_close(_quiet(ag.floor_divide, x, zero), [inf, -inf, math.nan, math.nan, inf, -inf], dtype=d)
    assert_close(_quiet(ag.remainder, x, zero), [math.nan] * 6, dtype=d)
    with warnings.catch_warnings():  # (NumPy warns for x / 0: see docs/conformance.md)
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_close(ag.divide(x, zero), [inf, -inf, math.nan, math.nan, inf, -inf], dtype=d)
    # Python's rule for an infinite divisor: x % inf is x for x >= 0, inf for x < 0
    assert_close(_quiet(lambda: x % inf), [1.0, inf, 0.0, math.nan, 5.0, inf], dtype=d)


# ====================================================================== integer pow
def _int_pow(base: int, exponent: int, d: dtypes.DType) -> int:
    if exponent >= 0:
        return _wrap(base**exponent, d)
    if base == 1:
        return 1
    if base == -1:
        return -1 if exponent % 2 else 1
    return 0


@pytest.mark.parametrize("d", SIGNED, ids=lambda d: d.name)
def test_integer_pow_with_negative_tensor_exponents(backend: ag.Device, d: dtypes.DType) -> None:
    grid = [(b, e) for b in range(-3, 4) for e in range(-3, 4)]
    bases, exponents = [b for b, _ in grid], [e for _, e in grid]
    x, y = tensor(backend, _int_array(bases, d)), tensor(backend, _int_array(exponents, d))
    assert_close(_quiet(ag.pow, x, y), [_int_pow(b, e, d) for b, e in grid], dtype=d)
    for base in (2, 1, -1, 0):  # a Python base over a tensor of exponents
        assert_close(_quiet(operator.pow, base, y), [_int_pow(base, e, d) for e in exponents], dtype=d)
    info = dtypes.iinfo(d)  # the extreme exponents
    far = tensor(backend, _int_array([info.min, info.min + 1, info.min], d))
    assert_close(_quiet(ag.pow, tensor(backend, _int_array([-1, -1, 5], d)), far), [1, -1, 0], dtype=d)


@pytest.mark.parametrize("d", INTEGERS, ids=lambda d: d.name)
def test_integer_pow_overflow_wraps(backend: ag.Device, d: dtypes.DType) -> None:
    bases, exponents = [3, 2, 7, 0, 5, 3, 5], [d.bits + 3, d.bits, 2, 0, 1, 100, 127]
    if d.kind == "i":
        bases += [-3, -2]
        exponents += [d.bits + 4, d.bits - 1]
    x, y = tensor(backend, _int_array(bases, d)), tensor(backend, _int_array(exponents, d))
    assert_close(_quiet(ag.pow, x, y), [_wrap(b**e, d) for b, e in zip(bases, exponents)], dtype=d)
    assert_close(_quiet(lambda: x**3), [_wrap(b**3, d) for b in bases], dtype=d)


@pytest.mark.parametrize("d", INTEGERS, ids=lambda d: d.name)
def test_integer_tensor_to_a_python_negative_power_raises(backend: ag.Device, d: dtypes.DType) -> None:
    x = tensor(backend, _int_array([1, 2, 3], d))
    for exponent, fn in ((-1, lambda: x**-1), (-2, lambda: ag.pow(x, -2)), (-3, lambda: ag.power(x, -3))):
        with pytest.raises(ValueError) as info:
            fn()
        said = str(info.value)
        assert said.startswith("pow: ") and d.name in said and str(exponent) in said, said
        assert "astype(ag.float32)" in said and f"{float(exponent)}" in said, said  # the fixes
    # float bases or exponents have real results, and 0 or positive powers stay integer
    assert_close(x.astype(ag.float32) ** -1, [1.0, 0.5, 1 / 3], dtype=ag.float32)
    assert_close(x**-1.0, [1.0, 0.5, 1 / 3], dtype=ag.float32)
    assert_close(x**0, [1, 1, 1], dtype=d)


# ====================================================================== casts
def _saturated(value: float, d: dtypes.DType) -> int:
    """The op-set's float -> int: NaN 0, else truncate toward zero and clamp to the range."""
    info = dtypes.iinfo(d)
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return info.max if value > 0 else info.min
    return min(max(math.trunc(value), info.min), info.max)


def _cast_values(src: dtypes.DType, dst: dtypes.DType) -> np.ndarray:
    """Values of `src` around `dst`'s ends and beyond, with NaN, inf, -0.0 and fractions."""
    info, largest = dtypes.iinfo(dst), float(dtypes.finfo(src).max)
    ends = [info.min, info.max, info.max + 1, info.min - 1, 2.0 * info.max, 2.0 * info.min]
    near = [e + s for e in ends for s in (-0.5, 0.5, -1.5)]
    values = [math.nan, math.inf, -math.inf, -0.0, 0.5, -0.5, 2.7, -2.7, largest, -largest] + ends + near
    host = np.array([v for v in values if abs(v) <= largest or not math.isfinite(v)])
    return host.astype(dtypes.to_numpy_dtype(src)).astype(np.float64)  # as `src` holds them


@pytest.mark.parametrize("src", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("dst", INTEGERS, ids=lambda d: d.name)
def test_float_to_int_casts_saturate(backend: ag.Device, src: dtypes.DType, dst: dtypes.DType) -> None:
    values = _cast_values(src, dst)
    x = tensor(backend, values, src)
    want = [_saturated(float(v), dst) for v in values]
    assert_close(_quiet(ag.astype, x, dst), want, dtype=dst)
    assert_close(_quiet(lambda: x.astype(dst)[::2]), want[::2], dtype=dst)  # and strided


def test_float_to_int_cast_of_a_0d_tensor_saturates(backend: ag.Device) -> None:
    for value, want in ((math.nan, 0), (math.inf, 127), (-1e30, -128), (-127.9, -127)):
        assert_close(_quiet(ag.astype, tensor(backend, np.float32(value)), ag.int8), want, dtype=ag.int8)


def test_float_to_bool_is_nonzero(backend: ag.Device) -> None:
    x = tensor(backend, np.array([math.nan, math.inf, -0.0, 0.0, 1e-30]), ag.float32)
    assert_close(_quiet(ag.astype, x, ag.bool), [True, True, False, False, True], dtype=ag.bool)


@pytest.mark.parametrize("dst", [dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.int32], ids=lambda d: d.name)
def test_int_to_narrower_int_wraps(backend: ag.Device, dst: dtypes.DType) -> None:
    values = [300, -1, 2**40 + 7, -(2**63), 2**63 - 1, 128, -129, 65535]
    x = tensor(backend, np.array(values, dtype=np.int64))
    assert_close(_quiet(ag.astype, x, dst), [_wrap(v, dst) for v in values], dtype=dst)


@pytest.mark.parametrize("dst", [dtypes.float32, dtypes.float16, dtypes.bfloat16], ids=lambda d: d.name)
def test_float_to_narrower_float_overflows_to_inf(backend: ag.Device, dst: dtypes.DType) -> None:
    x = tensor(backend, np.array([1e300, -1e300, math.nan, 1.5]), ag.float64)
    assert_close(_quiet(ag.astype, x, dst), [math.inf, -math.inf, math.nan, 1.5], dtype=dst)


# ====================================================================== memory: in this process
SMALL = 2**20
"""A pretend device memory of 1 MiB: results a little larger are refused, without any real
allocation of note (and without the checks, nothing big would be attempted)."""


@pytest.fixture
def small_device(backend: ag.Device, monkeypatch: pytest.MonkeyPatch) -> ag.Device:
    """`backend` with `memory_capacity()` saying 1 MiB, for this test only."""
    monkeypatch.setattr(backend.ops, "memory_capacity", lambda: SMALL)
    return backend


def _refused(op: str, shape: tuple[int, ...], d: dtypes.DType, make) -> ag.OutOfMemoryError:
    with pytest.raises(ag.OutOfMemoryError) as info:
        make()
    err = info.value
    nbytes = math.prod(shape) * d.itemsize
    said = str(err)
    assert said.startswith(f"{op}: ") and str(shape) in said and d.name in said, said
    assert f"{nbytes} bytes" in said and "1.0 MiB" in said, said  # what it needs, what there is
    assert (err.op, err.shape, err.dtype, err.nbytes) == (op, shape, d, nbytes)
    assert isinstance(err, MemoryError)
    return err


def test_creation_larger_than_memory_is_refused(small_device: ag.Device) -> None:
    B, f32, i64 = small_device, ag.float32, ag.int64
    _refused("zeros", (1024, 512), f32, lambda: B.zeros(1024, 512))
    _refused("ones", (1024, 512), f32, lambda: B.ones((1024, 512)))
    _refused("empty", (2, 1024, 256), f32, lambda: B.empty(2, 1024, 256))
    _refused("full", (300_000,), i64, lambda: B.full((300_000,), 7, dtype=i64))
    _refused("zeros", (1024, 512), f32, lambda: ag.zeros((1024, 512), device=B))
    _refused("full", (600, 600), f32, lambda: ag.full((600, 600), 1.0, device=B))
    _refused("eye", (1024, 512), f32, lambda: B.eye(1024, 512))
    _refused("arange", (300_000,), i64, lambda: B.arange(300_000))
    _refused("linspace", (300_000,), f32, lambda: B.linspace(0.0, 1.0, 300_000))
    _refused("normal", (600, 600), f32, lambda: B.randn(600, 600, seed=0))
    _refused("uniform", (600, 600), f32, lambda: B.rand(600, 600, seed=0))
    _refused("bernoulli", (2_000_000,), ag.bool, lambda: B.bernoulli(2_000_000, seed=0))
    _refused("randint", (300_000,), i64, lambda: B.randint(0, 5, 300_000, seed=0))
    # what fits is made: the limit is the memory, not a guess below it
    assert B.zeros(512, 512).shape == (512, 512) and B.arange(131_072).shape == (131_072,)


def test_growing_ops_larger_than_memory_are_refused(small_device: ag.Device) -> None:
    B, f32 = small_device, ag.float32
    row = B.ones(1, 1024)
    _refused("broadcast_to", (1024, 1024), f32, lambda: ag.broadcast_to(row, (1024, 1024)))
    _refused("tile", (512, 1024), f32, lambda: ag.tile(row, (512, 1)))
    _refused("repeat", (1, 512 * 1024), f32, lambda: ag.repeat(row, 512, axis=1))
    _refused("pad", (1025, 1024), f32, lambda: ag.pad(row, ((0, 1024), (0, 0))))
    _refused("one_hot", (2, 300_000), f32, lambda: ag.one_hot(B.tensor([0, 1]), 300_000))
    _refused("meshgrid", (1024, 1024), f32, lambda: ag.meshgrid(B.ones(1024), B.ones(1024)))
    assert ag.broadcast_to(row, (200, 1024)).shape == (200, 1024)  # 800 KiB: fits


def test_refused_requests_never_reach_the_backend(
    small_device: ag.Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def called(*args: object) -> None:
        raise AssertionError("the backend was asked to allocate a result that cannot fit")

    for name in ("full", "eye", "arange", "broadcast_to", "tile", "random_normal"):
        monkeypatch.setattr(small_device.ops, name, called)
    B = small_device
    for make in (
        lambda: B.zeros(1024, 512), lambda: B.eye(1024), lambda: B.arange(300_000),
        lambda: B.randn(600, 600, seed=0), lambda: ag.tile(ag.asarray([1.0], device=B), (300_000,)),
    ):  # fmt: skip
        with pytest.raises(ag.OutOfMemoryError):
            make()


def test_sizes_no_device_can_address_are_refused(backend: ag.Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """More than 2**63 bytes: the size itself overflows int64 in every library (XLA aborted). The
    backend's `full` fails the test if called, so the refusal must come first (and this test is
    safe to run in this process)."""
    monkeypatch.setattr(backend.ops, "full", lambda *args: pytest.fail("asked for more than 2**63 bytes"))
    shape, d = (2**32, 2**32), ag.float32
    with pytest.raises(ag.OutOfMemoryError, match=r"more than any device can address") as info:
        backend.zeros(*shape)
    assert info.value.nbytes == 2**66 and info.value.shape == shape and info.value.dtype is d


def test_the_backends_own_out_of_memory_error_is_translated(
    backend: ag.Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object) -> None:
        raise MemoryError("the library's own words")

    x = tensor(backend, np.ones((2, 3), np.float32))
    for name in ("full", "add", "matmul"):
        monkeypatch.setattr(backend.ops, name, out_of_memory)
    for op, shape, make in (
        ("zeros", (2, 3), lambda: backend.zeros(2, 3)),
        ("add", (2, 3), lambda: x + x),
        ("matmul", (2, 2), lambda: x @ x.T),
    ):
        with pytest.raises(ag.OutOfMemoryError) as info:
            make()
        said = str(info.value)
        assert said.startswith(f"{op}: ") and str(shape) in said and "float32" in said, said
        assert "could not allocate it" in said and "the library's own words" in said, said
        assert isinstance(info.value.__cause__, MemoryError)


def test_other_backend_errors_pass_through(backend: ag.Device, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("not about memory")

    monkeypatch.setattr(backend.ops, "full", broken)
    with pytest.raises(RuntimeError, match="not about memory") as info:
        backend.zeros(2, 3)
    assert not isinstance(info.value, MemoryError)


def test_memory_capacity_and_the_out_of_memory_test(backend: ag.Device) -> None:
    capacity = backend.ops.memory_capacity()
    assert capacity is None or (isinstance(capacity, int) and capacity > 2**26), capacity
    assert backend.ops.is_out_of_memory(MemoryError("no room"))
    assert not backend.ops.is_out_of_memory(ValueError("bad shape"))


# ====================================================================== memory: real sizes, in a child
SIDE = 10**6
"""A square of SIDE x SIDE float32 is 4 TB: beyond any machine's memory."""
HUGE_CASES = {
    # name: (op, shape, dtype, code run with `B` the backend and `ag` imported)
    "zeros_2**64_elements": ("zeros", (2**32, 2**32), "float32", "B.zeros(2**32, 2**32)"),
    "zeros": ("zeros", (SIDE, SIDE), "float32", "B.zeros(SIDE, SIDE)"),
    "eye": ("eye", (SIDE, SIDE), "float32", "B.eye(SIDE)"),
    "arange": ("arange", (2**40,), "int64", "B.arange(2**40)"),
    "randn": ("normal", (SIDE, SIDE), "float32", "B.randn(SIDE, SIDE, seed=0)"),
    "broadcast_to": ("broadcast_to", (SIDE, SIDE), "float32", "ag.broadcast_to(B.ones(1, SIDE), (SIDE, SIDE)) + 1"),
    "outer_add": ("add", (SIDE, SIDE), "float32", "B.ones(SIDE, 1) + B.ones(1, SIDE)"),
    "outer_compare": ("less", (SIDE, SIDE), "bool", "B.ones(SIDE, 1) < B.ones(1, SIDE)"),
    "outer_divide": ("floor_divide", (SIDE, SIDE), "float32", "B.ones(SIDE, 1) // B.ones(1, SIDE)"),
    "outer_where": ("where", (SIDE, SIDE), "float32", "ag.where(B.ones(SIDE, 1) > 0, B.ones(1, SIDE), 0.0)"),
    "outer_matmul": ("matmul", (SIDE, SIDE), "float32", "B.ones(SIDE, 1) @ B.ones(1, SIDE)"),
    "tile": ("tile", (SIDE, SIDE), "float32", "ag.tile(B.ones(SIDE), (SIDE, 1))"),
}  # fmt: skip

_CHILD = r"""
import json, resource, sys
name, cap = sys.argv[1], int(sys.argv[2])
if cap:  # a broken check then fails to map memory instead of filling the machine's
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import agnostic as ag
try:
    B = ag.backend(name)
except Exception as e:
    print(json.dumps({"unavailable": f"{type(e).__name__}: {e}"}), flush=True)
    sys.exit(0)
SIDE = 10**6
B.ones(2, 2) + B.ones(2, 1)  # the library loaded and warmed up before the measurements
for case, code in json.loads(sys.stdin.read()):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"case": case, "started": True}), flush=True)
    try:
        eval(code).numpy()
        result = {"case": case, "raised": None}
    except BaseException as e:
        result = {"case": case, "raised": type(e).__name__, "message": str(e),
                  "translated": isinstance(e, getattr(ag, "OutOfMemoryError", ()))}
    result["grew_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def huge_results(backend_name: str, backend: ag.Device) -> dict[str, dict]:
    """Every HUGE_CASES entry run in a child process on this backend: case -> what happened. A
    case that kills the child is recorded as such, and the cases after it run in a new one."""
    cpu = backend.device.split(":")[0] == "cpu"
    cap = 16 * 2**30 if cpu and sys.platform.startswith("linux") else 0  # (CUDA maps more than that)
    pending = [(case, code) for case, (_, _, _, code) in HUGE_CASES.items()]
    results: dict[str, dict] = {}
    while pending:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, backend_name, str(cap)], input=json.dumps(pending),
            capture_output=True, text=True, timeout=600, env=dict(os.environ),
        )  # fmt: skip
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if lines and "unavailable" in lines[0]:
            pytest.skip(
                f"backend {backend_name!r} cannot be made in a child process: {lines[0]['unavailable']}"
            )
        started = [r["case"] for r in lines if r.get("started")]
        if not started:
            pytest.fail(
                f"the child process failed before any case (exit {proc.returncode}): {proc.stderr[-3000:]}"
            )
        results.update((r["case"], r) for r in lines if "raised" in r)
        if started[-1] not in results:  # it died in this case
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            results[started[-1]] = {"died": f"{how}; its last words: {proc.stderr[-1500:]}"}
        pending = pending[len(started) :]
    return results


@pytest.mark.parametrize("case", sorted(HUGE_CASES))
def test_a_result_larger_than_memory_raises_before_anything_is_allocated(
    huge_results: dict[str, dict], case: str
) -> None:
    op, shape, d, code = HUGE_CASES[case]
    result = huge_results[case]
    assert "died" not in result, f"{code} ended the process (the backend aborted?): {result['died']}"
    assert result["raised"] == "OutOfMemoryError" and result["translated"], (
        f"{code} raised {result['raised']}: {result.get('message', '')[:500]}"
    )
    nbytes = math.prod(shape) * dtypes.as_dtype(d).itemsize
    said = result["message"]
    assert said.startswith(f"{op}: ") and str(shape) in said and d in said and f"{nbytes} bytes" in said, said
    assert result["grew_kib"] < 2**20, f"{code} allocated {result['grew_kib']} KiB before raising"
