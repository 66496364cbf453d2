"""The user's handle on a backend: `ag.backend("torch", device="cuda:0")`.

A Device binds one op-set instance (library + device) and creates tensors on it. Tensors carry it as
both `x.backend` and `x.device`, so Array API code that writes `xp.zeros(n, device=x.device)` creates
on the same backend. One Device object exists per (backend, device): identity is equality.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import operator
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agnostic import dtypes, tracing
from agnostic.backends import backend_ops
from agnostic.backends.base import Backend, BackendUnavailable, allocation_error, check_allocation
from agnostic.dtypes import DType

if TYPE_CHECKING:
    from agnostic.random import Generator
    from agnostic.tensor import Tensor

__all__ = ["Device", "backend", "default_backend", "get_default_backend", "as_device"]

_devices: dict[tuple[str, str], Device] = {}
_devices_lock = threading.Lock()


class Device:
    """A backend on one device; makes tensors there. Get one with `ag.backend(name, device)`."""

    __slots__ = ("ops", "name", "device", "_dtype_table", "_dtype_of", "_shape")

    def __init__(self, ops: Backend, name: str) -> None:
        self.ops = ops
        self.name = name
        self.device = ops.device
        # looked up once: every op result asks for its dtype, and shape checks ask for shapes
        self._dtype_table = _dtype_table(ops)
        self._dtype_of = ops.dtype_of
        self._shape = ops.shape

    def __repr__(self) -> str:
        return f"Device({self.name!r}, {self.device!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (backend, (self.name, self.device))

    # ------------------------------------------------------------------ creation
    def tensor(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """A tensor holding a copy of `data` (nested lists, scalars, NumPy arrays, tensors)."""
        from agnostic import ops

        return ops.asarray(data, dtype=dtype, device=self, copy=True, requires_grad=requires_grad)

    def from_numpy(self, array: np.ndarray) -> Tensor:
        """A tensor copied from a NumPy array, keeping its dtype."""
        return self.tensor(np.asarray(array))

    def from_dlpack(self, obj: Any) -> Tensor:
        """A tensor viewing any DLPack-capable array (zero-copy where the library allows)."""
        from agnostic.tensor import Tensor

        native = self.ops.from_dlpack(obj)
        return Tensor._make(native, self)

    def _dtype(self, dtype: Any, default: DType) -> DType:
        return default if dtype is None else dtypes.as_dtype(dtype)

    def _allocate(self, op: str, shape: tuple[int, ...], d: DType, make: Callable[[], Any]) -> Tensor:
        """`make()`, a call that creates an array of `shape` and `d` (a native one, or a Tensor
        by way of an op), as a Tensor: refused with OutOfMemoryError before the call when it cannot
        fit on the device (XLA would abort the process), and the library's own out-of-memory error
        translated to it."""
        from agnostic.tensor import Tensor

        check_allocation(self.ops, op, shape, d)
        try:
            native = make()
        except Exception as exc:
            if (error := allocation_error(self.ops, op, shape, d, exc)) is not None:
                raise error from exc
            raise
        return native if isinstance(native, Tensor) else Tensor._make(native, self)

    def full(self, shape: int | Sequence[int], value: bool | float, dtype: Any = None) -> Tensor:
        """A tensor of `shape` filled with `value` (dtype inferred from the value if not given)."""
        d = dtypes.result_type(value) if dtype is None else dtypes.as_dtype(dtype)
        return self._fill("full", shape, value, d)

    def _fill(self, op: str, shape: int | Sequence[int], value: bool | float, d: DType) -> Tensor:
        if isinstance(value, complex) and not d.is_complex:
            raise TypeError(
                f"{op}: the complex fill value {value!r} does not fit {d.name}; use a complex dtype "
                "(ag.complex64, ag.complex128) or a real fill value"
            )
        if d.kind in "iu" and isinstance(value, int) and not isinstance(value, bool):
            info = dtypes.iinfo(d)
            if not info.min <= value <= info.max:
                raise OverflowError(
                    f"{op}: Python int {value} is out of range for {d.name} [{info.min}, {info.max}]"
                )
        if type(value) is float and d.itemsize < 4:  # rounded once here: libraries go through float32
            value = float(np.asarray(value).astype(dtypes.to_numpy_dtype(d)))
        shape = _shape(shape, op)
        return self._allocate(op, shape, d, lambda: self.ops.full(shape, value, d))

    def zeros(self, *shape: Any, dtype: Any = None) -> Tensor:
        """A tensor of zeros (default float32); shape as ints or one tuple."""
        return self._fill("zeros", _varargs_shape(shape), 0, self._dtype(dtype, dtypes.default_float))

    def ones(self, *shape: Any, dtype: Any = None) -> Tensor:
        """A tensor of ones (default float32); shape as ints or one tuple."""
        return self._fill("ones", _varargs_shape(shape), 1, self._dtype(dtype, dtypes.default_float))

    def empty(self, *shape: Any, dtype: Any = None) -> Tensor:
        """A tensor of `shape` (zero-filled: uninitialized memory is never exposed)."""
        return self._fill("empty", _varargs_shape(shape), 0, self._dtype(dtype, dtypes.default_float))

    def arange(self, start: float, stop: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
        """Evenly spaced values in [start, stop): int64 for integer arguments, else float32."""
        from agnostic.tensor import Tensor

        if stop is None:
            start, stop = 0, start
        if step == 0:
            raise ValueError("arange: step must not be zero")
        d = dtypes.result_type(start, stop, step) if dtype is None else dtypes.as_dtype(dtype)
        if d.is_complex:
            raise TypeError(
                f"arange: {d.name} is not supported (the Array API defines arange for real numbers); "
                f"use ag.arange(...).astype(ag.{d.name})"
            )
        if (stop - start) / step <= 0:  # an empty range (some libraries raise for it)
            return Tensor._make(self.ops.full((0,), 0, d), self)
        length = (math.ceil((stop - start) / step),)
        if d.kind in "iu" and all(type(v) is int for v in (start, stop, step)):
            length = (len(range(start, stop, step)),)  # exact (the float quotient is not, near 2**64)
            _check_arange_range(start, start + (length[0] - 1) * step, d, dtype is None)
        return self._allocate("arange", length, d, lambda: self.ops.arange(start, stop, step, d))

    def linspace(
        self, start: float, stop: float, num: int, endpoint: bool = True, dtype: Any = None
    ) -> Tensor:
        """`num` evenly spaced values from start to stop (computed in float64 on the host; a complex
        start or stop gives complex values, by default complex64)."""
        is_complex = isinstance(start, complex) or isinstance(stop, complex)
        d = self._dtype(dtype, dtypes.default_complex if is_complex else dtypes.default_float)
        if is_complex and not d.is_complex:
            raise TypeError(
                f"linspace: complex start or stop ({start!r}, {stop!r}) with the real dtype {d.name}; "
                "use a complex dtype"
            )

        def make() -> Tensor:
            return self.tensor(np.linspace(start, stop, num, endpoint=endpoint), dtype=d)

        return self._allocate("linspace", (num,), d, make)

    def eye(self, n: int, m: int | None = None, k: int = 0, dtype: Any = None) -> Tensor:
        """An n x m tensor with ones on the k-th diagonal."""
        d = self._dtype(dtype, dtypes.default_float)
        m = n if m is None else m
        k = max(-n, min(m, operator.index(k)))  # a diagonal past the matrix is as empty as one at its edge:
        # libraries need k within int64 (array-api-tests tries k = -2**63 - 1)
        return self._allocate("eye", (n, m), d, lambda: self.ops.eye(n, m, k, d))

    # ------------------------------------------------------------------ random
    def rand(self, *shape: Any, seed: int | None = None, generator: Generator | None = None,
             dtype: Any = None) -> Tensor:  # fmt: skip
        """Uniform [0, 1) samples. The same seed gives the same values on every backend."""
        return self.uniform(_varargs_shape(shape), 0.0, 1.0, seed=seed, generator=generator, dtype=dtype)

    def randn(self, *shape: Any, seed: int | None = None, generator: Generator | None = None,
              dtype: Any = None) -> Tensor:  # fmt: skip
        """Standard normal samples. The same seed gives the same values on every backend."""
        return self.normal(_varargs_shape(shape), 0.0, 1.0, seed=seed, generator=generator, dtype=dtype)

    def uniform(self, shape: Any, low: float = 0.0, high: float = 1.0, *, seed: int | None = None,
                generator: Generator | None = None, dtype: Any = None) -> Tensor:  # fmt: skip
        """Uniform [low, high) samples."""
        d = self._dtype(dtype, dtypes.default_float)
        _float_only(d, "uniform")
        return _draw(
            self, "uniform", "random_uniform", (_shape(shape, "uniform"), low, high, d), seed, generator
        )

    def normal(self, shape: Any, mean: float = 0.0, std: float = 1.0, *, seed: int | None = None,
               generator: Generator | None = None, dtype: Any = None) -> Tensor:  # fmt: skip
        """Normal samples with the given mean and standard deviation."""
        d = self._dtype(dtype, dtypes.default_float)
        _float_only(d, "normal")
        return _draw(
            self, "normal", "random_normal", (_shape(shape, "normal"), mean, std, d), seed, generator
        )

    def bernoulli(self, shape: Any, p: float = 0.5, *, seed: int | None = None,
                  generator: Generator | None = None) -> Tensor:  # fmt: skip
        """Boolean samples, True with probability p."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"bernoulli: p must be in [0, 1], got {p}")
        return _draw(self, "bernoulli", "random_bernoulli", (_shape(shape, "bernoulli"), p), seed, generator)

    def randint(self, low: int, high: int, shape: Any, *, seed: int | None = None,
                generator: Generator | None = None, dtype: Any = None) -> Tensor:  # fmt: skip
        """Integers in [low, high) (default int64)."""
        if high <= low:
            raise ValueError(f"randint: need low < high, got low={low}, high={high}")
        d = self._dtype(dtype, dtypes.default_int)
        return _draw(
            self, "randint", "random_integers", (_shape(shape, "randint"), low, high, d), seed, generator
        )


def _draw(
    device: Device, op: str, kind: str, args: tuple[Any, ...], seed: int | None,
    generator: Generator | None,
) -> Any:  # fmt: skip
    """`device.ops.<kind>(*args, seed)` as a Tensor, the seed from `next_seed`, for the public
    `op` (args[0] is the shape, args[-1] the dtype but for bernoulli's bools). Inside an
    `agnostic.compile` trace the tracer takes the draw: the compiled step is fed one drawn the
    same way at each call, so compiled and eager steps see the same numbers."""
    from agnostic.random import draw_logs, next_seed

    d = args[-1] if isinstance(args[-1], DType) else dtypes.bool
    if logs := draw_logs.get():  # inside a checkpointed segment: recorded, or replayed
        return _logged_draw(logs, device, op, kind, args, seed, generator, d)
    if (tracer := tracing.active()) is not None:
        check_allocation(device.ops, op, args[0], d)
        return tracer.draw(device, kind, args, seed, generator)
    return device._allocate(
        op, args[0], d, lambda: getattr(device.ops, kind)(*args, next_seed(seed, generator))
    )


def _logged_draw(
    logs: Any, device: Device, op: str, kind: str, args: tuple[Any, ...], seed: int | None,
    generator: Generator | None, d: DType,
) -> Any:  # fmt: skip
    """`_draw` under a checkpoint's draw logs (`agnostic.random.logged_draw`): eagerly a log keeps
    the seed (a replay draws again with it, the streams untouched); in a trace the drawn tensor."""
    from agnostic.random import logged_draw, next_seed

    what = (op, tuple(args[0]), kind, args[1:])
    if (tracer := tracing.active()) is not None:

        def fresh() -> tuple[Any, Any]:
            check_allocation(device.ops, op, args[0], d)
            t = tracer.draw(device, kind, args, seed, generator)
            return t, t

        return logged_draw(logs, what, fresh, lambda t: t)

    def make(s: int) -> Any:
        return device._allocate(op, args[0], d, lambda: getattr(device.ops, kind)(*args, s))

    def fresh_eager() -> tuple[Any, Any]:
        s = next_seed(seed, generator)
        return s, make(s)

    return logged_draw(logs, what, fresh_eager, make)


def _dtype_table(ops: Backend) -> Any:
    """`ops.dtype_table`, unless a subclass overrides `dtype_of` below the class that set the table
    (the table would bypass the override)."""
    mro = type(ops).__mro__
    table_owner = next(c for c in mro if "dtype_table" in c.__dict__)
    method_owner = next(c for c in mro if "dtype_of" in c.__dict__)
    return ops.dtype_table if issubclass(table_owner, method_owner) else None


def _float_only(d: DType, op: str) -> None:
    if not d.is_floating:
        raise TypeError(f"{op}: dtype must be floating-point, got {d.name}")


def _check_arange_range(first: int, last: int, d: DType, default: bool) -> None:
    """An integer arange's first and last values must fit its dtype (libraries wrap them, or raise
    their own unclear errors)."""
    info = dtypes.iinfo(d)
    for v in (first, last):
        if not info.min <= v <= info.max:
            hint = "; pass dtype=ag.uint64 for values up to 2**64 - 1" if default and 0 <= v < 2**64 else ""
            raise OverflowError(f"arange: {v} is out of range for {d.name} [{info.min}, {info.max}]{hint}")


def _shape(shape: Any, op: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        out = tuple(_size(s) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise ValueError(f"{op}: negative dimension in shape {out}")
    return out


def _size(s: Any) -> int:
    """A size as an int; an int subclass is kept as it is (an ONNX export's symbolic sizes, which
    remember the input axis they follow)."""
    return s if isinstance(s, int) and not isinstance(s, bool) else int(s)


def _varargs_shape(shape: tuple[Any, ...]) -> Any:
    return shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape


def backend(name: str | Device | None = None, device: str | int | None = None) -> Device:
    """The Device for a backend name ("numpy", "torch", "jax", "cupy", or a registered one) and
    device, or both in one string as the command line and AGNOSTIC_BACKEND take them
    ("torch:cuda:0", "jax:gpu"); with no name, the current default (AGNOSTIC_BACKEND, else numpy)."""
    if isinstance(name, str) and ":" in name:
        if device is not None:
            raise ValueError(
                f"backend({name!r}, device={device!r}): the device is named twice; give "
                f"backend({name.partition(':')[0]!r}, device=...) or {name!r} alone"
            )
        name, _, device = name.partition(":")
        device = device or None
    if isinstance(name, Device):
        if device is None or name.ops.canonical_device(device) == name.device:
            return name
        name = name.name
    if name is None:
        if device is None:
            return get_default_backend()
        name = get_default_backend().name
    ops = backend_ops(name, device)
    key = (name, ops.device)
    dev = _devices.get(key)
    if dev is None:
        with _devices_lock:  # one Device per key, also when two threads ask first at once
            dev = _devices.get(key)
            if dev is None:
                dev = _devices[key] = Device(ops, name)
    return dev


def as_device(obj: Device | str | None) -> Device:
    """A Device from a Device, a backend name (or "name:device"), or None for the default."""
    if obj is None or isinstance(obj, Device):
        return get_default_backend() if obj is None else obj
    if isinstance(obj, str):
        return backend(obj)
    raise TypeError(f"expected a Device (from ag.backend(...)) or a backend name, got {obj!r}")


_default: contextvars.ContextVar[Device | None] = contextvars.ContextVar(
    "agnostic.default_backend", default=None
)


def get_default_backend() -> Device:
    """The backend used when none is named: set by `default_backend` (in this thread or asyncio
    task), else AGNOSTIC_BACKEND, else numpy."""
    d = _default.get()
    if d is not None:
        return d
    env = os.environ.get("AGNOSTIC_BACKEND", "").strip()
    if not env:
        return as_device("numpy")
    try:  # resolved at first use, not at import: JAX must join a process group before XLA starts
        return as_device(env)
    except (ValueError, BackendUnavailable) as e:
        raise type(e)(f"AGNOSTIC_BACKEND={env!r} (the default backend): {e}") from e


@contextlib.contextmanager
def default_backend(dev: Device | str) -> Iterator[Device]:
    """Within the block, creation without an explicit backend uses `dev`. The setting is this
    thread's (or asyncio task's) alone, as torch's and JAX's are: other threads keep their own, and a
    new thread starts from the default."""
    d = as_device(dev)
    token = _default.set(d)
    try:
        yield d
    finally:
        _default.reset(token)
