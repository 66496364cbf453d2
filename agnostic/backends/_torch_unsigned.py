"""uint16, uint32 and uint64 on torch, exactly: the ops torch has no kernel for.

torch (2.13) stores these dtypes but implements few ops on them (`add_stub not implemented for
'UInt32'`). The torch backend calls torch first and comes here only when torch raises for such a
tensor, so the ops torch does implement cost nothing more. The emulation reads the values another
way, lets torch compute, and reads the result back:

- "ring" ops (add, sub, neg, ~, sums, products, matmul, scatter-adds): uint16 and uint32
  compute in int64 and convert back, which wraps (2**16 and 2**32 divide 2**64, so the low bits are
  exact); uint64 is read as int64 (`view`, no copy): two's complement gives the same bits;
- "order" ops (comparisons, maximum, max, argmax, clip): uint16 and uint32 in int64; uint64 read as
  int64 with the sign bit flipped (x ^ INT64_MIN orders as the unsigned value);
- "move" ops (take, flip, getitem...), which only copy elements: read as the signed integer of the
  same width;
- uint64 division, remainder, right shift and power have exact algorithms on the int64 view below.

Shifts by the width or more give 0, as NumPy, torch and JAX do for the other integer dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from agnostic import dtypes
from agnostic.backends.base import int_cast

Array = Any

_TWIN = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _unsigned(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in _TWIN


def _bits64(x: int) -> int:
    """A Python int in [0, 2**64) as the int64 with the same bits."""
    x = int(x)
    return x - 2**64 if x >= 2**63 else x


# ---------------------------------------------------------------------- reading values another way
def _ring_in(x: Any, u64: bool) -> Any:
    if isinstance(x, torch.Tensor):
        if x.dtype is torch.uint64:
            return x.view(torch.int64)
        return x.to(torch.int64) if x.dtype in _TWIN else x
    return _bits64(x) if u64 and isinstance(x, int) else x


def _order_in(x: Any, u64: bool) -> Any:
    if not u64:
        return _ring_in(x, False)
    if isinstance(x, torch.Tensor):
        return x.view(torch.int64) ^ _INT64_MIN if x.dtype is torch.uint64 else x
    return _bits64(x) ^ _INT64_MIN if isinstance(x, int) else x


def _move_in(x: Any, u64: bool) -> Any:
    return x.view(_TWIN[x.dtype]) if _unsigned(x) else x


def _ring_out(y: Array, dtype: torch.dtype) -> Array:
    return y.view(dtype) if dtype is torch.uint64 else y.to(dtype)


def _order_out(y: Array, dtype: torch.dtype) -> Array:
    return (y ^ _INT64_MIN).view(dtype) if dtype is torch.uint64 else y.to(dtype)


def _move_out(y: Array, dtype: torch.dtype) -> Array:
    return y.view(dtype)


_READ = {"ring": (_ring_in, _ring_out), "order": (_order_in, _order_out), "move": (_move_in, _move_out)}


def _unsigned_dtype(args: tuple) -> torch.dtype | None:
    """The dtype of the first uint16/32/64 tensor among `args` (or in a list of them)."""
    for a in args:
        for x in a if isinstance(a, (list, tuple)) else (a,):
            if _unsigned(x):
                return x.dtype
    return None


def _reread(name: str, how: str, values_out: bool, operands: bool = False) -> Callable[..., Array]:
    """The emulation of method `name`: its tensor arguments read `how` (and, with `operands`, its
    Python int arguments too: a binary op's or clip's weak scalars), the native method called on
    them, and its result read back when it holds values of the input's dtype (not indices or
    bools)."""
    read_in, read_out = _READ[how]

    def read(x: Any, u64: bool) -> Any:
        if isinstance(x, (list, tuple)):
            return type(x)(read(e, u64) for e in x)
        return read_in(x, u64) if operands or isinstance(x, torch.Tensor) else x

    def emulate(native: Callable[..., Array], self: Any, dtype: torch.dtype, *args: Any) -> Array:
        u64 = dtype is torch.uint64
        out = native(self, *(read(a, u64) for a in args))
        return read_out(out, dtype) if values_out else out

    emulate.__name__ = name
    return emulate


# ---------------------------------------------------------------------- exact uint64 algorithms
def _tensor(x: Any, like: Array) -> Array:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.int64, device=like.device)


def _ge(a: Array, b: Array) -> Array:
    """a >= b for int64 views of uint64 values."""
    return (a ^ _INT64_MIN) >= (b ^ _INT64_MIN)


def _divmod64(a: Array, b: Array) -> tuple[Array, Array]:
    """Unsigned quotient and remainder of int64 views, by zero giving 0 and 0. A divisor below
    2**63 divides a // 2 (non-negative: torch's signed division is exact there); the quotient's
    last bit then comes from one comparison of the remainder. A divisor of 2**63 or more goes 0 or
    1 times."""
    zero = b == 0
    big = b < 0
    d = torch.where(zero | big, 1, b)
    q = torch.div((a >> 1) & _INT64_MAX, d, rounding_mode="floor") << 1
    r = a - q * d
    more = _ge(r, d)
    q = q + more.to(torch.int64)
    r = torch.where(more, r - d, r)
    fits = _ge(a, b)
    q = torch.where(big, fits.to(torch.int64), q)
    r = torch.where(big, torch.where(fits, a - b, a), r)
    return q.masked_fill(zero, 0), r.masked_fill(zero, 0)


def _u64_floor_divide(a: Array, b: Array) -> Array:
    a, b = torch.broadcast_tensors(_tensor(a, b if isinstance(b, torch.Tensor) else a), _tensor(b, a))
    return _divmod64(a, b)[0]


def _u64_remainder(a: Array, b: Array) -> Array:
    a, b = torch.broadcast_tensors(_tensor(a, b if isinstance(b, torch.Tensor) else a), _tensor(b, a))
    return _divmod64(a, b)[1]


def _u64_right_shift(a: Array, s: Array) -> Array:
    """Logical right shift of int64 views: one shift by 1 with the sign bit cleared, then an
    arithmetic shift of the non-negative rest; by 64 or more (a negative view) gives 0."""
    a, s = _tensor(a, s if isinstance(s, torch.Tensor) else a), _tensor(s, a)
    out = torch.where(s == 0, a, ((a >> 1) & _INT64_MAX) >> (s.clamp(1, 64) - 1))
    return torch.where((s < 0) | (s >= 64), 0, out)


def _u64_left_shift(a: Array, s: Array) -> Array:
    a, s = _tensor(a, s if isinstance(s, torch.Tensor) else a), _tensor(s, a)
    return torch.where((s < 0) | (s >= 64), 0, a << s.clamp(0, 63))


def _u64_pow(a: Array, e: Array) -> Array:
    """Powers modulo 2**64 of int64 views. An odd base's powers repeat every 2**62 (the order of
    the odd residues' group divides it), so the exponent is reduced to its low 62 bits; an even
    base to a power of 64 or more is 0."""
    a, e = _tensor(a, e if isinstance(e, torch.Tensor) else a), _tensor(e, a)
    out = torch.pow(a, e & (2**62 - 1))
    return torch.where(((a & 1) == 0) & ((e < 0) | (e >= 64)), 0, out)


_U64_BINARY = {
    "floor_divide": _u64_floor_divide, "remainder": _u64_remainder, "pow": _u64_pow,
    "bitwise_right_shift": _u64_right_shift, "bitwise_left_shift": _u64_left_shift,
}  # fmt: skip
"""uint64 ops with their own algorithm on int64 views (uint16 and uint32 compute in int64)."""


def _arithmetic(name: str) -> Callable[..., Array]:
    """Division, remainder, power and shifts: uint16/uint32 by the backend's int64 method (its
    rules for a zero divisor apply), uint64 by the exact algorithm above."""

    def emulate(native: Callable[..., Array], self: Any, dtype: torch.dtype, a: Any, b: Any) -> Array:
        if dtype is torch.uint64:
            return _U64_BINARY[name](_ring_in(a, True), _ring_in(b, True)).view(dtype)
        return native(self, _ring_in(a, False), _ring_in(b, False)).to(dtype)

    emulate.__name__ = name
    return emulate


# ---------------------------------------------------------------------- one-off ops
def _abs(native: Callable[..., Array], self: Any, dtype: torch.dtype, a: Array) -> Array:
    return a.clone()


def _sign(native: Callable[..., Array], self: Any, dtype: torch.dtype, a: Array) -> Array:
    return (a != 0).to(dtype)


def _square(native: Callable[..., Array], self: Any, dtype: torch.dtype, a: Array) -> Array:
    return a * a  # torch multiplies these dtypes (squaring calls its missing pow)


def _cast(native: Callable[..., Array], self: Any, dtype: torch.dtype, a: Array, to: dtypes.DType) -> Array:
    """A saturating float -> unsigned cast (see `IntCast`): torch cannot `masked_fill` these
    dtypes, so the max (all bits set) is written through the signed view."""
    target = self.native_dtype(to)
    if target not in _TWIN or not a.is_floating_point():
        return native(self, a, to)
    plan = int_cast(self.dtype_of(a), to)
    out = a.clamp(plan.lo, plan.hi).nan_to_num_(0.0).to(target)
    if plan.fix_max:
        out = out.view(_TWIN[target]).masked_fill_(a > plan.hi, -1).view(target)
    return out


def _arange(native: Callable[..., Array], self: Any, dtype: torch.dtype, *args: Any) -> Array:
    start, stop, step, to = args
    target = self.native_dtype(to)
    if target not in _TWIN:
        return native(self, *args)
    count = len(range(int(start), int(stop), int(step)))
    steps = torch.arange(count, dtype=torch.int64, device=self._torch_device)
    return _ring_out(steps * _bits64(step % 2**64) + _bits64(int(start)), target)


_EMULATIONS: dict[str, Callable[..., Array]] = {
    **{name: _reread(name, "ring", True, operands=True) for name in ("add", "sub")},
    **{name: _reread(name, "ring", True) for name in (
        "neg", "bitwise_invert", "sum", "prod", "cumsum", "cumprod", "matmul", "scatter_add",
        "index_add",
    )},
    **{name: _reread(name, "order", True, operands=True) for name in ("maximum", "minimum", "clip")},
    **{name: _reread(name, "order", True) for name in ("max", "min")},
    **{name: _reread(name, "order", False, operands=True) for name in ("lt", "le", "gt", "ge")},
    **{name: _reread(name, "order", False) for name in ("argmax", "argmin")},
    **{name: _reread(name, "move", True) for name in (
        "take", "take_along_axis", "getitem", "flip", "pad", "repeat",
    )},
    "nonzero": _reread("nonzero", "move", False),
    **{name: _arithmetic(name) for name in _U64_BINARY},
    "abs": _abs, "sign": _sign, "square": _square,
    "cast": _cast, "arange": _arange,
}  # fmt: skip
"""The emulation of each backend method torch may lack a uint16/32/64 kernel for."""


def _error(name: str, dtype: torch.dtype) -> TypeError:
    return TypeError(
        f"{name}: {str(dtype).removeprefix('torch.')} is not supported on the torch backend (torch "
        f"{torch.__version__} has no kernel for it and agnostic does not emulate it); use the numpy "
        "or jax backend, or cast to int64"
    )


def emulate(name: str, native: Callable[..., Array], self: Any, args: tuple, error: Exception) -> Array:
    """`native(self, *args)`, the backend's method `name`, which raised `error`: emulated when a
    tensor of `args` (or the target dtype of cast and arange) is uint16/32/64, else `error` again."""
    dtype = _unsigned_dtype(args)
    if dtype is None and name in ("cast", "arange"):
        target = self.native_dtype(args[-1])
        dtype = target if target in _TWIN else None
    if dtype is None:
        raise error
    fn = _EMULATIONS.get(name)
    if fn is None:
        raise _error(name, dtype) from error
    return fn(native, self, dtype, *args)


def install(cls: type, names: tuple[str, ...]) -> None:
    """Wrap `cls`'s methods `names` to fall back on the emulation when torch raises for them."""
    for name in names:
        setattr(cls, name, _with_fallback(name, getattr(cls, name)))


def _with_fallback(name: str, native: Callable[..., Array]) -> Callable[..., Array]:
    def method(self: Any, *args: Any) -> Array:
        try:
            return native(self, *args)
        except (NotImplementedError, RuntimeError, OverflowError) as e:  # (arange: a stop of 2**64)
            return emulate(name, native, self, args, e)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = native.__doc__
    return method


def check_traced(graph: Any, inputs: list[Array]) -> None:
    """Raise the clear error for a traced step (a torch.fx graph) whose ops torch cannot run on
    uint16/32/64. The trace ran on fake tensors, which do not raise where torch lacks a kernel, so
    the emulation never came in: a graph holding such values runs once on the inputs to find out."""
    if not any(_holds_unsigned(node.meta.get("val")) for node in graph.graph.nodes):
        return
    try:
        graph(*inputs)
    except (NotImplementedError, RuntimeError) as e:
        said = str(e).split("\n")[0]
        name = next((f"uint{bits}" for bits in (16, 32, 64) if f"UInt{bits}" in said), None)
        if name is None:
            raise
        raise TypeError(
            f"compile: {name} is not supported inside a compiled step on the torch backend: torch "
            f"{torch.__version__} has no kernel for one of its ops ({said}), and agnostic emulates "
            "those only outside ag.compile; run the step eagerly, cast to int64 inside it, or use "
            "the numpy or jax backend"
        ) from e


def _holds_unsigned(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_unsigned(v) for v in value)
    return isinstance(value, torch.Tensor) and value.dtype in _TWIN
