"""The JAX backend (XLA): CPU, GPU and TPU devices, with lax convolution and pooling.

Only this module imports jax, and only when the backend is first asked for. Every method of the
backend, every trace and every call of a compiled program runs with JAX's 64-bit mode on in the
calling thread only (`_in_x64`), and the thread's own setting back on return: without it JAX
silently narrows int64 and float64 arrays to 32 bits, and turned on for the whole process
(``jax.config.update("jax_enable_x64", True)``) it would switch the user's own JAX code to 64-bit
defaults (``jnp.zeros(3)`` float64) behind their back. agnostic decides every dtype itself
(default float32, int64 for indices), so this only makes the int64 and float64 asked for real.

Arrays are immutable `jax.Array`s committed to the backend's device (``ag.backend("jax",
device="gpu:0")``; the default is "cpu"), or replicated over several local devices of one platform
(``device="cpu:0,1"``, or ``"gpu:*"`` for all of them): a mesh with one axis, `BATCH_AXIS`, over
which a data-parallel wrapper shards batches, so that XLA partitions every op that meets a sharded
batch and inserts the reductions over it (see `agnostic.distributed.mesh_parallel`). Every op runs eagerly; convolution, pooling and the
fused composites are `jax.jit`-compiled once per shape. Matmul and convolution ask XLA for full
float32 precision, so GPUs do not quietly use TF32. Random numbers come from the base class's
host Philox draw, so one seed gives the same values here as on every other backend. JAX's own
autodiff is used only inside this module, to transpose the linear forward ops (the input and
weight gradients of convolution, the adjoint of average pooling); agnostic's autodiff sits above.
"""

from __future__ import annotations

import abc
import contextvars
import functools
import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agnostic import dtypes
from agnostic.backends._jax_fft import JaxFFT
from agnostic.backends._jax_linalg import JaxLinalg
from agnostic.backends._xp_conv import _avg_divisor, _pool_geometry
from agnostic.backends.base import (
    Array,
    Axes,
    Backend,
    DeviceUnavailable,
    Pairs,
    Shape,
    TraceError,
    check_allocation,
    int_cast,
    references,
)
from agnostic.dtypes import DType

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
except ImportError as _e:  # the registry asks `available()`, which says why and how to fix it
    jax = jnp = lax = Mesh = NamedSharding = PartitionSpec = None  # type: ignore[assignment,misc]
    _IMPORT_ERROR: ImportError | None = _e
else:
    _IMPORT_ERROR = None

_NATIVE = {d: np.dtype(dtypes.to_numpy_dtype(d)) for d in dtypes.ALL_DTYPES}
_FROM_NATIVE = {v: k for k, v in _NATIVE.items()}
_PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}
_READERS = {
    "native_dtype", "dtype_of", "shape", "is_native", "memory_capacity", "is_out_of_memory", "exclusive",
}  # fmt: skip
"""Methods that compute nothing on arrays: they run outside `_in_x64` (every op or creation asks
one of them)."""
_SETS_X64_ITSELF = {"matmul"}
"""Methods that turn 64-bit mode on in their own body (no `_in_x64` frame: 0.1 us a call less)."""

_UNARY = {
    "neg": "negative", "abs": "abs", "sign": "sign", "exp": "exp", "expm1": "expm1", "log": "log",
    "log1p": "log1p", "log2": "log2", "log10": "log10", "sqrt": "sqrt", "square": "square",
    "reciprocal": "reciprocal", "sin": "sin", "cos": "cos", "tan": "tan", "asin": "arcsin",
    "acos": "arccos", "atan": "arctan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh", "floor": "floor", "ceil": "ceil",
    "round": "round", "trunc": "trunc", "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite",
    "signbit": "signbit", "logical_not": "logical_not", "bitwise_invert": "invert",
    "conj": "conj", "real": "real", "imag": "imag",
}  # fmt: skip
_BINARY = {
    "add": "add", "sub": "subtract", "mul": "multiply",
    "remainder": "remainder", "maximum": "maximum", "minimum": "minimum",
    "atan2": "arctan2", "logaddexp": "logaddexp", "hypot": "hypot", "copysign": "copysign",
    "nextafter": "nextafter",
    "eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
    "ge": "greater_equal", "logical_and": "logical_and", "logical_or": "logical_or",
    "logical_xor": "logical_xor", "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor", "bitwise_left_shift": "left_shift",
    "bitwise_right_shift": "right_shift",
}  # fmt: skip
_REDUCE = {"mean": "mean", "max": "max", "min": "min", "any": "any", "all": "all"}
_ACCUMULATE = {"sum": "sum", "prod": "prod"}  # in the input dtype (jnp widens small integers)


def _jit(*static: str) -> Any:
    """`jax.jit` with the named arguments static (shapes, strides...), made on first call so that
    this module imports without jax (and `available()` can say so)."""

    def deco(fn: Any) -> Any:
        compiled: list[Any] = []

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not compiled:
                compiled.append(jax.jit(fn, static_argnames=static))
            return compiled[0](*args, **kwargs)

        return call

    return deco


def _in_x64(fn: Any) -> Any:
    """`fn` run with JAX's 64-bit mode on in this thread, and the thread's setting (the user's
    `jax.enable_x64(...)` block, or none) restored on return. JAX keeps the setting per thread,
    and its jit caches key on it, so the user's code outside and other threads never see it flip.
    The state's own swap and restore, not `with jax.enable_x64(True)`: the context manager object
    costs 0.5 us more per op (the flag has no update hook for the context manager to call)."""
    swap, restore = jax.enable_x64.swap_local, jax.enable_x64.set_local

    @functools.wraps(fn)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        before = swap(True)
        try:
            return fn(*args, **kwargs)
        finally:
            restore(before)

    return scoped


class _X64Program:
    """A compiled XLA program whose calls run in 64-bit mode (as `_in_x64`); everything else
    (`as_text`, `cost_analysis`, ...) is the compiled object's own."""

    __slots__ = ("_compiled", "_run")

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._run = _in_x64(compiled)

    def __call__(self, *args: Any) -> Any:
        return self._run(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)


class _TracedStep:
    """A step traced by jax.jit (`jax.stages.Traced`), lowered at the first use of what a
    `jax.stages.Lowered` has (`compile`, `as_text`...), so that `in_place` can trace its jaxpr
    again with donations before anything is lowered."""

    __slots__ = ("traced", "_lowered")

    def __init__(self, traced: Any) -> None:
        self.traced = traced
        self._lowered: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._lowered is None:
            self._lowered = self.traced.lower()
        return getattr(self._lowered, name)


BATCH_AXIS = "batch"
"""The mesh axis of a Device over several local devices: data-parallel wrappers shard batches along it."""
PROCESS_AXIS = "processes"
"""The mesh axis, one device per process, of a compiled step that calls a collective under jax.distributed."""


@dataclass
class _SpmdTrace:
    """A running `trace`: whether it is the SPMD program over every process, and whether a
    collective in the step asked for one."""

    spmd: bool
    wanted: bool = False


_spmd_trace: contextvars.ContextVar[_SpmdTrace | None] = contextvars.ContextVar(
    "agnostic.jax.spmd", default=None
)
_collective_guard: list[Callable[[str], None]] = []


def process_axis() -> str | None:
    """For a collective on a traced value (the jax engine's): the axis to reduce over when the
    running trace is the SPMD program over every process. None in a process-local trace: `trace`
    then traces the step again as that program, so what the engine returns meanwhile never runs."""
    state = _spmd_trace.get()
    if state is None:
        raise TraceError(
            "a collective on a traced jax value outside agnostic.compile (in a jax.jit or jax.grad of "
            "your own) cannot reach the other processes; call it eagerly or inside an ag.compile'd step"
        )
    if state.spmd:
        return PROCESS_AXIS
    state.wanted = True
    return None


def set_collective_guard(guard: Callable[[str], None] | None) -> None:
    """Call `guard(name)` before each run of a compiled SPMD program (the jax engine's barrier: a
    dead or diverging peer becomes an error within its timeout, not a hang in XLA's transport,
    which has no timeout); None removes it."""
    _collective_guard[:] = [] if guard is None else [guard]


@functools.cache
def process_mesh(device: Any) -> Any:
    """A mesh over the processes of jax.distributed, in process order: from each process, the
    device at `device`'s position among its own process's devices."""
    position = jax.local_devices(backend=device.platform).index(device)
    by_process: dict[int, list[Any]] = {}
    for d in jax.devices(device.platform):
        by_process.setdefault(d.process_index, []).append(d)
    return Mesh(np.array([by_process[p][position] for p in sorted(by_process)]), (PROCESS_AXIS,))


@dataclass
class _SpmdLowered:
    """A step lowered as one SPMD program over every process (see `_SpmdProgram`)."""

    lowered: Any
    shapes: list[tuple[int, ...]]  # of each global input
    sharding: Any
    scalar_in: list[bool]
    scalar_out: list[bool]


def _spmd_lower(fn: Any, inputs: list[Array], device: Any) -> _SpmdLowered:
    """`fn` in `jax.shard_map` over the process mesh: each process's input is its block of a global
    array along the process axis (a 0-d one as a block of 1), and so is each output."""
    mesh = process_mesh(device)
    spec = PartitionSpec(PROCESS_AXIS)
    sharding = NamedSharding(mesh, spec)
    scalar_in = [a.ndim == 0 for a in inputs]
    scalar_out: list[bool] = []

    def body(*blocks: Any) -> list[Any]:
        outs = fn(*[b.reshape(()) if s else b for b, s in zip(blocks, scalar_in)])
        scalar_out[:] = [o.ndim == 0 for o in outs]
        return [o.reshape(1) if o.ndim == 0 else o for o in outs]

    n = mesh.size
    shapes = [(n,) if a.ndim == 0 else (n * a.shape[0], *a.shape[1:]) for a in inputs]
    avals = [jax.ShapeDtypeStruct(shape, a.dtype, sharding=sharding) for shape, a in zip(shapes, inputs)]
    lowered = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec)).lower(*avals)
    return _SpmdLowered(lowered, shapes, sharding, scalar_in, scalar_out)


class _SpmdProgram:
    """A compiled step run as one SPMD program by every process together (its collectives are XLA's,
    inside the program): this process's arrays go in as its shards of the global inputs, and each
    output's local shard comes back. Every process must run it at the same time, as a collective."""

    __slots__ = ("_compiled", "_spec", "_name")

    def __init__(self, spmd: _SpmdLowered) -> None:
        self._compiled = spmd.lowered.compile()
        self._spec = (list(zip(spmd.shapes, spmd.scalar_in)), spmd.sharding, spmd.scalar_out)
        self._name = f"compiled_step/{len(spmd.shapes)}/{len(spmd.scalar_out)}"

    def __call__(self, *arrays: Any) -> list[Any]:
        for guard in _collective_guard:
            guard(self._name)
        inputs, sharding, scalar_out = self._spec
        before = jax.enable_x64.swap_local(True)
        try:
            shards = [
                jax.make_array_from_single_device_arrays(shape, sharding, [a.reshape(1) if s else a])
                for a, (shape, s) in zip(arrays, inputs)
            ]
            outs = self._compiled(*shards)
            return [
                o.addressable_data(0).reshape(()) if s else o.addressable_data(0)
                for o, s in zip(outs, scalar_out)
            ]
        finally:
            jax.enable_x64.set_local(before)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)


class _MeshProgram(_X64Program):
    """A compiled step on a Device over several local devices: an input placed otherwise than when
    it was traced (a replicated batch where a sharded one was, or the reverse) is moved first, as
    jax.jit would (its compiled program takes only the shardings it was compiled for)."""

    __slots__ = ("_shardings",)

    def __init__(self, compiled: Any) -> None:
        super().__init__(compiled)
        self._shardings = compiled.input_shardings[0]

    def __call__(self, *args: Any) -> Any:
        placed = [a if a.sharding == s else jax.device_put(a, s) for a, s in zip(args, self._shardings)]
        return self._run(*placed)


class JaxBackend(JaxLinalg, JaxFFT, Backend):
    """Primitives on jax.Arrays committed to one JAX device, or replicated over the mesh of several."""

    name = "jax"
    compiler = "jax.jit"
    dtype_table = _FROM_NATIVE

    def __init__(self, device: str | int | None = None) -> None:
        super().__init__(device)
        kind, _, index = self.device.partition(":")
        # this process's own devices: under jax.distributed, jax.devices() lists every process's
        local = jax.local_devices(backend=kind)
        chosen = [local[int(i)] for i in index.split(",")] if index else [local[0]]
        self._first_device = chosen[0]
        self.mesh: Any = None
        """Over several devices: their `jax.sharding.Mesh`, one axis (`BATCH_AXIS`); else None."""
        self._jax_device: Any = chosen[0]  # where arrays are made: a device, or replicated over the mesh
        if len(chosen) > 1:
            self.mesh = Mesh(np.array(chosen), (BATCH_AXIS,))
            self._jax_device = NamedSharding(self.mesh, PartitionSpec())
        self.flushes_subnormals = chosen[0].platform == "cpu"

    # ------------------------------------------------------------------ identity and info
    @classmethod
    def available(cls) -> tuple[bool, str]:
        if _IMPORT_ERROR is not None:
            return False, f"jax cannot be imported ({_IMPORT_ERROR}); pip install 'agnostic[jax]'"
        return True, ""

    @classmethod
    def library_version(cls) -> str:
        return jax.__version__ if jax is not None else ""

    @staticmethod
    def _platform_devices(platform: str) -> list[Any]:
        try:
            return list(jax.local_devices(backend=platform))
        except RuntimeError:  # JAX raises when no backend of that platform is present
            return []

    @classmethod
    def devices(cls) -> list[str]:
        """ "cpu" (and "cpu:1"... when XLA is asked for more host devices with
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N``), then "gpu:N" and "tpu:N"."""
        if jax is None:
            return []
        found = [f"cpu:{i}" if i else "cpu" for i in range(len(cls._platform_devices("cpu")))]
        for platform in ("gpu", "tpu"):
            found += [f"{platform}:{i}" for i in range(len(cls._platform_devices(platform)))]
        return found

    def memory_capacity(self) -> int | None:
        if self._first_device.platform == "cpu":
            return super().memory_capacity()
        if not hasattr(self, "_bytes_limit"):  # the allocator's limit on GPU and TPU, asked once
            self._bytes_limit = (self._first_device.memory_stats() or {}).get("bytes_limit")
        return self._bytes_limit

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, MemoryError) or (
            isinstance(exc, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(exc)
        )

    @classmethod
    def canonical_device(cls, device: str | int | None) -> str:
        if device is None:
            return "cpu"
        if isinstance(device, int) and not isinstance(device, bool):
            device = f"gpu:{device}"
        if isinstance(device, str):
            kind, _, index = device.partition(":")
            platform = _PLATFORMS.get(kind)
            if platform is not None and ("," in index or index == "*"):
                return cls._canonical_mesh(device, platform, index)
            if platform is not None and (index == "" or index.isdigit()):
                number = int(index or 0)
                name = f"{platform}:{number}" if platform != "cpu" or number else "cpu"
                if name in cls.devices():
                    return name
                if platform == "gpu" and not cls._platform_devices("gpu"):
                    why = "JAX sees no GPU (a GPU needs a CUDA build of jaxlib: pip install 'jax[cuda12]')"
                else:
                    why = f"JAX sees {len(cls._platform_devices(platform))} {platform.upper()} device(s)"
                raise DeviceUnavailable(
                    f"backend 'jax': unknown device {device!r}: {why}; available: {', '.join(cls.devices())}"
                )
        raise ValueError(f"backend 'jax': unknown device {device!r}; available: {', '.join(cls.devices())}")

    @classmethod
    def _canonical_mesh(cls, device: str, platform: str, index: str) -> str:
        """ "cpu:0,1" (some local devices of one platform, in that order) or "cpu:*" (all of them):
        one name per set; a single device is named as such."""
        count = len(cls._platform_devices(platform))
        parts = [p.strip() for p in index.split(",")] if index != "*" else [str(i) for i in range(count)]
        if not all(p.isdigit() for p in parts) or len(set(map(int, parts))) != len(parts):
            raise ValueError(
                f"backend 'jax': device {device!r}: name distinct device numbers, as in "
                f"'{platform}:0,1', or '{platform}:*' for all {count}"
            )
        numbers = [int(p) for p in parts]
        if not numbers or max(numbers) >= count:
            raise DeviceUnavailable(
                f"backend 'jax': device {device!r}: JAX sees {count} {platform.upper()} device(s) in this "
                f"process (more host devices: XLA_FLAGS=--xla_force_host_platform_device_count=N, set "
                "before jax starts); available: " + ", ".join(cls.devices())
            )
        if len(numbers) == 1:
            return cls.canonical_device(f"{platform}:{numbers[0]}")
        return f"{platform}:{','.join(map(str, numbers))}"

    def shard_batch(self, a: Array) -> Array:
        """`a` split along its first axis over the mesh's devices, as a data-parallel batch (a
        sharding constraint on a traced value); `a` itself on a single device."""
        if self.mesh is None:
            return a
        sharding = NamedSharding(self.mesh, PartitionSpec(BATCH_AXIS))
        if isinstance(a, jax.core.Tracer):
            return lax.with_sharding_constraint(a, sharding)
        return jax.device_put(a, sharding)

    # ------------------------------------------------------------------ dtypes, shapes, host
    def native_dtype(self, dtype: DType) -> Any:
        return _NATIVE[dtype]

    def dtype_of(self, a: Array) -> DType:
        return _FROM_NATIVE[a.dtype]

    def shape(self, a: Array) -> Shape:
        return tuple(a.shape)

    def is_native(self, obj: object) -> bool:
        return isinstance(obj, jax.Array)

    def from_numpy(self, array: np.ndarray) -> Array:
        # device_put may alias suitably aligned host memory on the CPU: hand it a private copy
        return jax.device_put(np.array(array, copy=True), self._jax_device)

    def to_numpy(self, a: Array) -> np.ndarray:
        return np.asarray(a)  # read-only (a view of the device buffer on the CPU)

    def from_dlpack(self, obj: Any) -> Array:
        out = jnp.from_dlpack(obj)
        if self.mesh is not None or out.devices() != {self._jax_device}:
            out = jax.device_put(out, self._jax_device)
        return out

    def to_dlpack(self, a: Array, **kwargs: Any) -> Any:
        # JAX refuses a consumer's max_version below (0, 5); every 0.x consumer reads the one
        # legacy (unversioned) capsule, which JAX gives when no max_version is asked for
        version = kwargs.get("max_version")
        if version is not None and version[0] < 1:
            del kwargs["max_version"]
        return a.__dlpack__(**kwargs)

    # ------------------------------------------------------------------ creation
    def full(self, shape: Shape, value: bool | int | float, dtype: DType) -> Array:
        return jnp.full(shape, value, dtype=_NATIVE[dtype], device=self._jax_device)

    def arange(self, start: int | float, stop: int | float, step: int | float, dtype: DType) -> Array:
        # NumPy's arange on the host: its length and values are the reference every backend meets
        host = np.arange(start, stop, step, dtype=_NATIVE[dtype])
        return jax.device_put(host, self._jax_device)

    def eye(self, n: int, m: int, k: int, dtype: DType) -> Array:
        return jnp.eye(n, m, k, dtype=_NATIVE[dtype], device=self._jax_device)

    def cast(self, a: Array, dtype: DType) -> Array:
        if dtype.is_integer and _FROM_NATIVE[a.dtype].is_floating:
            return _saturating_cast(a, int_cast(_FROM_NATIVE[a.dtype], dtype), _NATIVE[dtype])
        return a.astype(_NATIVE[dtype])

    # ------------------------------------------------------------------ elementwise
    def rsqrt(self, a: Array) -> Array:
        return lax.rsqrt(a)

    def sigmoid(self, a: Array) -> Array:
        return jax.nn.sigmoid(a)

    def erf(self, a: Array) -> Array:
        return lax.erf(a)

    def div(self, a: Array | int | float, b: Array | int | float) -> Array:
        if _may_outgrow(a, b):
            _check_growth(self, "div", False, a, b)
        return _div(a, b)

    def pow(self, a: Array | int | float, b: Array | int | float) -> Array:
        if _may_outgrow(a, b):
            _check_growth(self, "pow", False, a, b)
        if getattr(getattr(b, "dtype", None), "kind", None) in ("i", "u"):  # not a Python exponent
            return _integer_power(a, b)
        return jnp.power(a, b)  # eager: a concrete Python exponent lowers to integer_pow

    def floor_divide(self, a: Array | int | float, b: Array | int | float) -> Array:
        if _may_outgrow(a, b):
            _check_growth(self, "floor_divide", False, a, b)
        out = jnp.floor_divide(a, b)
        if jnp.issubdtype(out.dtype, jnp.integer):  # as NumPy: integer division by zero gives 0
            out = jnp.where(jnp.equal(b, 0), jnp.zeros((), out.dtype), out)
        return out

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        _check_growth(self, "where", False, a, b, cond)
        return jnp.where(cond, a, b)

    def clip(self, a: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        if lo is not None:
            a = jnp.maximum(a, lo)
        if hi is not None:
            a = jnp.minimum(a, hi)
        return a

    # ------------------------------------------------------------------ reductions
    # jnp follows NumPy: axis=() reduces nothing (a copy), as the op-set requires.
    def var(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        return jnp.var(a, axis=axes, ddof=correction, keepdims=keepdims)

    def std(self, a: Array, axes: Axes, correction: float, keepdims: bool) -> Array:
        return jnp.std(a, axis=axes, ddof=correction, keepdims=keepdims)

    def argmax(self, a: Array, axis: int, keepdims: bool) -> Array:
        return jnp.argmax(a, axis=axis, keepdims=keepdims).astype(jnp.int64)

    def argmin(self, a: Array, axis: int, keepdims: bool) -> Array:
        return jnp.argmin(a, axis=axis, keepdims=keepdims).astype(jnp.int64)

    def cumsum(self, a: Array, axis: int) -> Array:
        return jnp.cumsum(a, axis=axis, dtype=a.dtype)

    def cumprod(self, a: Array, axis: int) -> Array:
        return jnp.cumprod(a, axis=axis, dtype=a.dtype)

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a: Array, b: Array) -> Array:
        sa, sb = a.shape, b.shape
        if len(sa) == 2 == len(sb):  # the usual case, kept cheap: 8 bytes bound every item
            big = sa[0] * sb[1] * 8 > _SURELY_FITS
        else:  # (that product bounds the result's size; the async dispatch needs the check first)
            big = math.prod(sa[:-1]) * math.prod(sb[:-2] + sb[-1:] if len(sb) > 1 else ()) * 8 > _SURELY_FITS
        if big:
            columns = sb[-1:] if len(sb) > 1 else ()
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
            check_allocation(self, "matmul", batch + sa[-2:-1] + columns, _FROM_NATIVE[a.dtype])
        before = jax.enable_x64.swap_local(True)  # itself, as the elementwise ops: the hottest op
        try:
            return _matmul(a, b)
        finally:
            jax.enable_x64.set_local(before)

    # ------------------------------------------------------------------ shape
    def reshape(self, a: Array, shape: Shape) -> Array:
        return jnp.reshape(a, shape)

    def permute(self, a: Array, axes: Axes) -> Array:
        return jnp.transpose(a, axes)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return jnp.broadcast_to(a, shape)

    def squeeze(self, a: Array, axes: Axes) -> Array:
        return jnp.squeeze(a, axis=axes)

    def expand_dims(self, a: Array, axes: Axes) -> Array:
        return jnp.expand_dims(a, axes)

    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        return jnp.concatenate(list(arrays), axis=axis)

    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        return jnp.stack(list(arrays), axis=axis)

    def flip(self, a: Array, axes: Axes) -> Array:
        return jnp.flip(a, axis=axes)

    def pad(self, a: Array, widths: Pairs, mode: str, value: float) -> Array:
        if mode == "constant":
            return jnp.pad(a, widths, mode="constant", constant_values=value)
        return jnp.pad(a, widths, mode=mode)

    def tile(self, a: Array, reps: Shape) -> Array:
        return jnp.tile(a, reps)

    def repeat(self, a: Array, repeats: int | Array, axis: int) -> Array:
        return jnp.repeat(a, repeats, axis=axis)

    # ------------------------------------------------------------------ indexing
    def getitem(self, a: Array, key: tuple) -> Array:
        return a[key]

    def index_add(self, a: Array, key: tuple, values: Array) -> Array:
        return a.at[key].add(values)

    def take(self, a: Array, indices: Array, axis: int) -> Array:
        return jnp.take(a, indices, axis=axis)

    def take_along_axis(self, a: Array, indices: Array, axis: int) -> Array:
        return jnp.take_along_axis(a, indices, axis=axis)

    def scatter_add(self, a: Array, axis: int, indices: Array, src: Array) -> Array:
        nd = indices.ndim
        grid: list[Any] = [
            lax.broadcasted_iota(jnp.int64, (n,) + (1,) * (nd - 1 - i), 0).reshape(
                (1,) * i + (n,) + (1,) * (nd - 1 - i)
            )
            for i, n in enumerate(indices.shape)
        ]
        grid[axis] = indices
        return a.at[tuple(grid)].add(src)

    # lax.sort orders floats totally with every NaN canonicalized last and -0.0 == 0.0, and jnp's
    # descending sort is stable with ties in their original order: NumPy's order, as required.
    def sort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        return jnp.sort(a, axis=axis, descending=descending, stable=True)

    def argsort(self, a: Array, axis: int, descending: bool, stable: bool) -> Array:
        return jnp.argsort(a, axis=axis, descending=descending, stable=True).astype(jnp.int64)

    def nonzero(self, a: Array) -> tuple[Array, ...]:
        return tuple(i.astype(jnp.int64) for i in jnp.nonzero(a))

    # ------------------------------------------------------------------ convolution and pooling
    def conv(self, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
        return _conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def conv_input_grad(
        self, gy: Array, w: Array, input_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        return _conv_input_grad(
            gy, w, input_shape=tuple(input_shape), stride=stride, padding=padding, dilation=dilation,
            groups=groups,
        )  # fmt: skip

    def conv_weight_grad(
        self, x: Array, gy: Array, weight_shape: Shape, stride: Shape, padding: Pairs,
        dilation: Shape, groups: int,
    ) -> Array:  # fmt: skip
        return _conv_weight_grad(
            x, gy, weight_shape=tuple(weight_shape), stride=stride, padding=padding, dilation=dilation,
            groups=groups,
        )  # fmt: skip

    def max_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
    ) -> tuple[Array, Array]:
        return _max_pool(
            x, kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
        )

    def avg_pool(
        self, x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool,
        count_include_pad: bool,
    ) -> Array:  # fmt: skip
        return _avg_pool(
            x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
        )  # fmt: skip

    def avg_pool_grad(
        self, gy: Array, input_shape: Shape, kernel: Shape, stride: Shape, padding: Shape,
        ceil_mode: bool, count_include_pad: bool,
    ) -> Array:  # fmt: skip
        return _avg_pool_grad(
            gy, input_shape=tuple(input_shape), kernel=kernel, stride=stride, padding=padding,
            ceil_mode=ceil_mode, count_include_pad=count_include_pad,
        )  # fmt: skip

    # ------------------------------------------------------------------ compilation
    def trace(self, fn: Any, inputs: list[Array], mode: str | None) -> Any:
        """jax.jit's trace and lowering to XLA (compiled by `compile_traced`). A step that calls a
        collective (under jax.distributed) is traced again as one SPMD program over every process
        (`_spmd_lower`); one that does not stays this process's own. Over a mesh of local devices
        every output is replicated, as the parameters and everything the Device makes are."""
        state = _SpmdTrace(spmd=False)
        token = _spmd_trace.set(state)
        try:
            if self.mesh is None:  # lowered when asked (`in_place` may trace it with donations)
                lowered = _TracedStep(jax.jit(fn).trace(*inputs))
            else:
                lowered = jax.jit(fn, out_shardings=self._jax_device).lower(*inputs)
            if not state.wanted:
                return lowered
            if self.mesh is not None:
                raise TraceError(
                    f"a collective across processes in a step on {self.device!r} (several devices): under "
                    "jax.distributed each process uses one device; start one process per device"
                )
            state.spmd = True
            return _spmd_lower(fn, inputs, self._jax_device)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as exc:
            raise TraceError(str(exc).split("\n")[0]) from exc
        finally:
            _spmd_trace.reset(token)

    def compile_traced(self, traced: Any, mode: str | None) -> Any:
        # called later by agnostic.compilation; the programs run in 64-bit mode too
        if isinstance(traced, _SpmdLowered):
            return _SpmdProgram(traced)
        return (_X64Program if self.mesh is None else _MeshProgram)(traced.compile())

    def in_place(self, traced: Any, updates: Sequence[tuple[int, int]]) -> tuple[Any, tuple[int, ...]]:
        """The program again with the replaced inputs donated (`jax.jit(donate_argnums=...)`): XLA
        may build each new value in its input's buffer, and the call deletes those inputs. Only
        inputs whose new value has their shape and dtype; the traced step is not run again (its
        jaxpr is). A step over several devices or processes is kept as it is."""
        if not isinstance(traced, _TracedStep):
            return traced, ()
        closed = traced.traced.jaxpr
        ins, outs = closed.in_avals, closed.out_avals
        donate = tuple(
            sorted({i for k, i in updates if (ins[i].shape, ins[i].dtype) == (outs[k].shape, outs[k].dtype)})
        )
        if not donate:
            return traced, ()

        def program(*arrays: Any) -> list[Any]:
            return jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *arrays)

        where = jax.sharding.SingleDeviceSharding(self._first_device)
        specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=where, weak_type=a.weak_type) for a in ins]
        return _TracedStep(jax.jit(program, donate_argnums=donate).trace(*specs)), donate

    def exclusive(self, a: Array, refs: int) -> bool:
        """Held by `refs` references to this array object and not deleted. JAX arrays are
        immutable and share a buffer only with the same object (`jnp.asarray`, `device_put` onto
        its own device return it); a buffer exported to NumPy or DLPack has an external reference,
        and XLA then copies instead of donating."""
        return references(a) - 1 == refs and not a.is_deleted()

    def private_copy(self, a: Array) -> Array:
        return jnp.array(a, copy=True)

    def optimization_barrier(self, arrays: Any) -> list[Array]:
        # what jax.checkpoint's prevent_cse applies: XLA's CSE would merge a recomputation with
        # the forward pass it repeats
        return list(jax.lax.optimization_barrier(tuple(arrays)))

    # ------------------------------------------------------------------ fused composites
    # Each computes what the base-class default computes, in the same order, so the conformance
    # check of overrides against the defaults holds to rounding.
    def logsumexp(self, a: Array, axes: Axes, keepdims: bool) -> Array:
        if a.size == 0:  # max() has no identity; the direct formula gives -inf
            return jnp.log(jnp.sum(jnp.exp(a), axis=axes, keepdims=keepdims))
        return jax.nn.logsumexp(a, axis=axes, keepdims=keepdims)

    def softmax(self, a: Array, axis: int) -> Array:
        if a.size == 0:  # max() has no identity over an empty axis; there is nothing to normalize
            return jnp.array(a, copy=True)
        return jax.nn.softmax(a, axis=axis)

    def log_softmax(self, a: Array, axis: int) -> Array:
        return jnp.subtract(a, self.logsumexp(a, (axis,), True))

    def bitcast(self, a: Array, dtype: DType) -> Array:
        # XLA refuses to bitcast bool (pred); a bool's byte is 0 or 1, so between bool and the 8-bit
        # integers a cast is the same reinterpretation (a non-zero byte read as bool is True: see
        # Backend.bitcast). Bitcasts of 64-bit dtypes need 64-bit mode, which `_in_x64` gives.
        if dtype is dtypes.bool:
            return jnp.not_equal(a, 0)
        if a.dtype == jnp.bool_:
            return a.astype(_NATIVE[dtype])
        return lax.bitcast_convert_type(a, _NATIVE[dtype])

    def relu(self, a: Array) -> Array:
        return jax.nn.relu(a)

    def gelu(self, a: Array, approximate: str) -> Array:
        return jax.nn.gelu(a, approximate=approximate == "tanh")

    def silu(self, a: Array) -> Array:
        return jax.nn.silu(a)

    def linear_grad(
        self, g: Array, x: Array, w: Array, wanted: tuple[bool, bool, bool]
    ) -> tuple[Array | None, Array | None, Array | None]:
        return _linear_grad(g, x, w, wanted=tuple(wanted))

    def cross_entropy_grad(
        self, g: Array, logits: Array, target: Array, weight: Array | None, ignore_index: int,
        label_smoothing: float, reduction: str,
    ) -> Array:  # fmt: skip
        return _cross_entropy_grad(
            g, logits, target, weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
            reduction=reduction,
        )  # fmt: skip

    def scaled_dot_product_attention(
        self, q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float | None
    ) -> Array:
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        return _attention(q, k, v, mask, is_causal=is_causal, scale=scale)

    def scaled_dot_product_attention_grad(
        self, g: Array, q: Array, k: Array, v: Array, out: Array, mask: Array | None, is_causal: bool,
        scale: float | None,
    ) -> tuple[Array, Array, Array]:  # fmt: skip
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        grads = _attention_grad(g, q, k, v, out, mask, is_causal=is_causal, scale=scale)
        return tuple(Backend._sum_to(self, grad, x.shape) for grad, x in zip(grads, (q, k, v)))  # type: ignore[return-value]

    def adam_step(
        self, params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
        exp_avg_sqs: Sequence[Array], max_exp_avg_sqs: Sequence[Array] | None,
        steps: Sequence[int | Array], lr: float | Array, beta1: float, beta2: float, eps: float,
        weight_decay: float, decoupled: bool, maximize: bool,
    ) -> tuple[list[Array], list[Array], list[Array], list[Array] | None]:  # fmt: skip
        """The whole update as one compiled XLA call. Hyper-parameters and step counts are traced
        arguments, so a schedule's new learning rate does not recompile."""
        if not self._numbers(lr, steps):
            return super().adam_step(
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps,
                weight_decay, decoupled, maximize,
            )  # fmt: skip
        scalars = (1 - beta1, beta2, 1 - beta2, eps, weight_decay, 1 - lr * weight_decay)
        step_sizes = [lr / (1 - beta1**t) for t in steps]
        corrections = [math.sqrt(1 - beta2**t) for t in steps]
        return _adam(
            list(params), list(grads), list(exp_avgs), list(exp_avg_sqs),
            None if max_exp_avg_sqs is None else list(max_exp_avg_sqs), step_sizes, corrections,
            scalars, decay=("decoupled" if decoupled else "l2") if weight_decay else None,
            maximize=maximize,
        )  # fmt: skip


# ---------------------------------------------------------------------- jitted kernels
def _specs(d: int) -> tuple[str, str, str]:
    """lax dimension numbers for PyTorch's layouts: x (N, C, *sp), w (O, I, *sp), y (N, C, *sp)."""
    sp = "DHW"[3 - d :]
    return "NC" + sp, "OI" + sp, "NC" + sp


def _conv_raw(x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
    return lax.conv_general_dilated(
        x, w, window_strides=tuple(stride), padding=tuple(tuple(p) for p in padding),
        rhs_dilation=tuple(dilation), dimension_numbers=_specs(w.ndim - 2),
        feature_group_count=groups, precision=lax.Precision.HIGHEST,
    )  # fmt: skip


def _fitted_padding(
    spatial: Shape, out: Shape, kernel: Shape, stride: Shape, padding: Pairs, dilation: Shape
) -> Pairs:
    """The (lo, hi) padding whose windows are exactly `out` long: hi shrinks (or goes negative,
    which lax crops) when the input has rows past the last window that `out` was counted without
    (the gradients of a transposed convolution with output_padding)."""
    return tuple(
        (lo, (m - 1) * st + dl * (k - 1) + 1 - s - lo)
        for s, m, k, st, (lo, _), dl in zip(spatial, out, kernel, stride, padding, dilation)
    )


@_jit("stride", "padding", "dilation", "groups")
def _conv(x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
    return _conv_raw(x, w, stride, padding, dilation, groups)


@_jit("input_shape", "stride", "padding", "dilation", "groups")
def _conv_input_grad(
    gy: Array, w: Array, input_shape: Shape, stride: Shape, padding: Pairs, dilation: Shape, groups: int
) -> Array:
    pads = _fitted_padding(input_shape[2:], gy.shape[2:], w.shape[2:], stride, padding, dilation)
    x0 = jnp.zeros(input_shape, gy.dtype)
    _, pullback = jax.vjp(lambda x: _conv_raw(x, w, stride, pads, dilation, groups), x0)
    return pullback(gy)[0]


@_jit("weight_shape", "stride", "padding", "dilation", "groups")
def _conv_weight_grad(
    x: Array, gy: Array, weight_shape: Shape, stride: Shape, padding: Pairs, dilation: Shape, groups: int
) -> Array:
    pads = _fitted_padding(x.shape[2:], gy.shape[2:], weight_shape[2:], stride, padding, dilation)
    w0 = jnp.zeros(weight_shape, x.dtype)
    _, pullback = jax.vjp(lambda w: _conv_raw(x, w, stride, pads, dilation, groups), w0)
    return pullback(gy)[0]


def _lowest(dtype: Any) -> Any:
    """The padding value of max pooling: -inf, or the smallest integer."""
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    return np.array(np.iinfo(dtype).min, dtype)


def _along(vectors: Sequence[np.ndarray], combine: Any) -> np.ndarray:
    """One host vector per spatial axis combined into a (*out) grid by broadcasting."""
    d = len(vectors)
    return functools.reduce(
        combine, (v.reshape((1,) * i + (-1,) + (1,) * (d - 1 - i)) for i, v in enumerate(vectors))
    )


@_jit("kernel", "stride", "padding", "dilation", "ceil_mode")
def _max_pool(
    x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
) -> tuple[Array, Array]:
    """torch's max_pool{D}d(return_indices=True). A running maximum over kernel offsets (one
    strided slice of the -inf-padded input per offset, fused by XLA) reproduces torch's scan:
    a later element wins only if strictly greater or NaN (the last NaN wins), so ties keep the
    first maximum, and a window of -inf keeps its first real element."""
    spatial = tuple(x.shape[2:])
    out, pairs = _pool_geometry(spatial, kernel, stride, padding, dilation, ceil_mode)
    lead = tuple(x.shape[:2])
    if any(m <= 0 for m in out) or x.size == 0:
        shape = lead + tuple(max(m, 0) for m in out)
        return jnp.zeros(shape, x.dtype), jnp.zeros(shape, jnp.int64)
    low = _lowest(x.dtype)
    padded = lax.pad(x, low, ((0, 0, 0), (0, 0, 0)) + tuple((lo, hi, 0) for lo, hi in pairs))
    in_strides = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    starts = [np.arange(m, dtype=np.int64) * st - p for m, st, p in zip(out, stride, padding)]
    # offset of each window's first real element from its (possibly padded) start
    first = [-(-np.maximum(-a, 0) // dl) * dl * s for a, dl, s in zip(starts, dilation, in_strides)]
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    best = jnp.full(lead + out, low, x.dtype)
    idx = jnp.broadcast_to(jnp.asarray(_along(first, np.add)), lead + out)
    for offs in itertools.product(*(range(k) for k in kernel)):
        begin = (0, 0) + tuple(j * dl for j, dl in zip(offs, dilation))
        end = lead + tuple(b + st * (m - 1) + 1 for b, st, m in zip(begin[2:], stride, out))
        v = lax.slice(padded, begin, end, (1, 1) + tuple(stride))
        take = v > best
        if floating:
            take = take | jnp.isnan(v)
        offset = sum(j * dl * s for j, dl, s in zip(offs, dilation, in_strides))
        idx = jnp.where(take, np.int64(offset), idx)
        best = jnp.maximum(best, v)
    idx = idx + jnp.asarray(_along([a * s for a, s in zip(starts, in_strides)], np.add))
    return best, idx


def _avg_pool_raw(
    x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool, count_include_pad: bool
) -> Array:
    spatial = tuple(x.shape[2:])
    d = len(kernel)
    out, pairs = _pool_geometry(spatial, kernel, stride, padding, (1,) * d, ceil_mode)
    y = lax.pad(x, np.array(0, x.dtype), ((0, 0, 0), (0, 0, 0)) + tuple((lo, hi, 0) for lo, hi in pairs))
    total = lax.reduce_window(
        y, np.array(0, x.dtype), lax.add, (1, 1) + tuple(kernel), (1, 1) + tuple(stride), "VALID"
    )
    divisor = _avg_divisor(np, spatial, kernel, stride, padding, out, count_include_pad)
    return total / np.asarray(divisor).astype(x.dtype)


@_jit("kernel", "stride", "padding", "ceil_mode", "count_include_pad")
def _avg_pool(
    x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool, count_include_pad: bool
) -> Array:
    """torch's avg_pool{D}d: a window sum over the zero-padded input, divided by torch's count."""
    return _avg_pool_raw(x, kernel, stride, padding, ceil_mode, count_include_pad)


@_jit("input_shape", "kernel", "stride", "padding", "ceil_mode", "count_include_pad")
def _avg_pool_grad(
    gy: Array, input_shape: Shape, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool,
    count_include_pad: bool,
) -> Array:  # fmt: skip
    """The adjoint of the (linear) average pooling, by JAX's transpose of it."""
    x0 = jnp.zeros(input_shape, gy.dtype)
    _, pullback = jax.vjp(
        lambda x: _avg_pool_raw(x, kernel, stride, padding, ceil_mode, count_include_pad), x0
    )
    return pullback(gy)[0]


@_jit("wanted")
def _linear_grad(
    g: Array, x: Array, w: Array, wanted: tuple[bool, bool, bool]
) -> tuple[Array | None, Array | None, Array | None]:
    """The default's three gradients as one XLA call. The weight's is one contraction over all
    leading axes, not a product of the flattened, transposed gradient: for a (batch, seq, out)
    gradient XLA:CPU then uses its fused matmul kernel, not a plain dot (1.25 against 1.54 ms for
    a (16, 64, 512) by (16, 64, 128) contraction)."""
    lead = tuple(range(g.ndim - 1))
    highest = lax.Precision.HIGHEST
    gx = _matmul_highest(g, w) if wanted[0] else None
    gw = lax.dot_general(g, x, ((lead, lead), ((), ())), precision=highest) if wanted[1] else None
    gb = jnp.sum(g, axis=lead) if wanted[2] else None
    return gx, gw, gb


@_jit("ignore_index", "label_smoothing", "reduction")
def _cross_entropy_grad(
    g: Array, logits: Array, target: Array, weight: Array | None, ignore_index: int,
    label_smoothing: float, reduction: str,
) -> Array:  # fmt: skip
    """The base-class closed form as one XLA call: softmax * sum_c(a) - a."""
    class_axis = 1 if logits.ndim > 1 else 0
    num_classes = logits.shape[class_axis]
    per_class = (num_classes,) + (1,) * (logits.ndim - class_axis - 1)
    valid = target != ignore_index
    safe_target = jnp.where(valid, target, 0)
    w = jnp.where(valid, jnp.ones(target.shape, logits.dtype) if weight is None else weight[safe_target], 0.0)
    share = g / jnp.sum(w) if reduction == "mean" else g
    hit = share * w * (1.0 - label_smoothing)
    onehot = jnp.expand_dims(safe_target, class_axis) == jnp.arange(num_classes).reshape(per_class)
    a = jnp.where(onehot, jnp.expand_dims(hit, class_axis), 0.0)
    total = hit
    if label_smoothing > 0.0:
        spread = jnp.where(valid, share, 0.0) * (label_smoothing / num_classes)
        if weight is not None:
            a = a + jnp.expand_dims(spread, class_axis) * weight.reshape(per_class)
            total = total + spread * jnp.sum(weight)
        else:
            a = a + jnp.expand_dims(spread, class_axis)
            total = total + spread * float(num_classes)
    # the softmax from the steps of jax.nn.logsumexp, which the forward's log_softmax takes: in a
    # compiled step XLA computes exp(logits - max) and its sum once for both
    top = jnp.max(logits, axis=class_axis, keepdims=True)
    e = jnp.exp(logits - jnp.where(jnp.isfinite(top), top, 0.0))
    probs = e / jnp.sum(e, axis=class_axis, keepdims=True)
    return probs * jnp.expand_dims(total, class_axis) - a


def _attention_weights(q: Array, k: Array, mask: Array | None, is_causal: bool, scale: float) -> Array:
    """The base-class attention weights: softmax(q k^T * scale) with the masks applied, a row whose
    keys are all masked all zeros. The row maximum starts from the dtype's lowest finite value, not
    -inf: a fully masked row then subtracts a finite number (exp(-inf) = 0, no inf - inf) without a
    guard between the reduction and the exponential, so XLA:CPU fuses the two as it does for
    jax.nn.softmax (0.2 ms a W3 layer)."""
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2), precision=lax.Precision.HIGHEST) * scale
    if is_causal:
        rows = jnp.arange(q.shape[-2], dtype=jnp.int64)[:, None]
        cols = jnp.arange(k.shape[-2], dtype=jnp.int64)[None, :]
        scores = jnp.where(rows >= cols, scores, -jnp.inf)
    if mask is not None:
        if mask.dtype == jnp.bool_:
            scores = jnp.where(mask, scores, -jnp.inf)
        else:
            scores = scores + mask
    m = jnp.max(scores, axis=-1, keepdims=True, initial=jnp.finfo(scores.dtype).min)
    e = jnp.exp(scores - m)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total == 0.0, 1.0, total)


@_jit("is_causal", "scale")
def _attention(q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float) -> Array:
    """The base-class attention as one compiled XLA computation: same steps, same order."""
    return _matmul_highest(_attention_weights(q, k, mask, is_causal, scale), v)


@_jit("is_causal", "scale")
def _attention_grad(
    g: Array, q: Array, k: Array, v: Array, out: Array, mask: Array | None, is_causal: bool, scale: float
) -> tuple[Array, Array, Array]:
    """The base-class gradients in closed form, as one XLA call: with P the weights, gv = P^T g,
    dS = P * (g v^T - rowsum(g * out)) * scale, gq = dS k, gk = dS^T q. Inside a compiled step
    XLA computes P once for the forward and this (the same expression); JAX's vjp of `_attention`
    differentiated the guards and the maximum as well and took 40 % longer at W3's shapes
    (2.5 against 1.8 ms for jax.grad of the same attention with jax.nn.softmax)."""
    weights = _attention_weights(q, k, mask, is_causal, scale)
    gv = _matmul_highest(jnp.swapaxes(weights, -1, -2), g)
    rows = jnp.sum(g * out, axis=-1, keepdims=True)
    ds = weights * (_matmul_highest(g, jnp.swapaxes(v, -1, -2)) - rows) * scale
    gq = _matmul_highest(ds, k)
    gk = _matmul_highest(jnp.swapaxes(ds, -1, -2), q)
    return gq, gk, gv  # in the broadcast batch shape: the caller sums them down to q's, k's and v's


@_jit("decay", "maximize")
def _adam(
    params: list[Array], grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array],
    max_exp_avg_sqs: list[Array] | None, step_sizes: list[float], corrections: list[float],
    scalars: tuple[float, ...], decay: str | None, maximize: bool,
) -> tuple[list[Array], list[Array], list[Array], list[Array] | None]:  # fmt: skip
    """The base-class adam_step, same steps in the same order, over every parameter at once."""
    one_minus_b1, b2, one_minus_b2, eps, weight_decay, shrink = scalars
    new_p, new_m, new_v, new_max = [], [], [], []
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        if maximize:
            g = -g
        if decay == "decoupled":
            p = p * shrink
        elif decay == "l2":
            g = g + p * weight_decay
        m = m + (g - m) * one_minus_b1
        v = v * b2 + (g * g) * one_minus_b2
        new_m.append(m)
        new_v.append(v)
        if max_exp_avg_sqs is not None:
            v = jnp.maximum(max_exp_avg_sqs[i], v)
            new_max.append(v)
        denom = jnp.sqrt(v) / corrections[i] + eps
        new_p.append(p - (m / denom) * step_sizes[i])
    return new_p, new_m, new_v, (new_max if max_exp_avg_sqs is not None else None)


def _true_divide(a: Array, b: Array) -> Array:
    """a / b, exact where XLA is not: it rewrites a division by a broadcast divisor into a
    multiplication by its reciprocal, which is subnormal, so flushed to zero, once |b| > 2**126 in
    float32 (8.5e31 / 8.6e37 gave 0, not 1e-6). Both operands of such a division are scaled by 1/4
    first: exact (a power of two), and a runtime factor, so XLA cannot cancel it again."""
    q = jnp.true_divide(a, b)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        return q
    b = jnp.asarray(b, q.dtype)
    scale = jnp.where(jnp.abs(b) > 2.0 ** (jnp.finfo(q.dtype).maxexp - 3), 0.25, 1.0).astype(q.dtype)
    return jnp.true_divide(jnp.multiply(a, scale), jnp.multiply(b, scale))


_SURELY_FITS = 2**26
"""Results of at most this many bytes are not checked against the device's memory (64 MiB)."""
_BOOLEAN_RESULTS = frozenset(
    {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
     "logical_or", "logical_xor"}
)  # fmt: skip


def _may_outgrow(a: Any, b: Any) -> bool:
    """Whether an elementwise result can be larger than both operands (arrays, or a Python
    scalar): not when they share a shape, or one's is a trailing part of the other's (a bias)."""
    sa, sb = getattr(a, "shape", None), getattr(b, "shape", None)
    if sa is None or sb is None or sa == sb:
        return False
    if len(sa) < len(sb):
        sa, sb = sb, sa
    return sa[len(sa) - len(sb) :] != sb


def _check_growth(ops: JaxBackend, op: str, boolean: bool, *operands: Any) -> None:
    """Refuse, before dispatch, a broadcasting op whose result cannot fit on the device: JAX runs
    jitted ops asynchronously, so a failed allocation does not raise but leaves a broken array,
    and reading it aborts the whole process (XLA's check failure). Cheap for the usual cases: a
    result no larger than an operand (a bias added), or one the operands' sizes bound by 64 MiB."""
    shapes = [x.shape for x in operands if hasattr(x, "shape")]
    largest = max(shapes, key=len)
    if all(s == largest[len(largest) - len(s) :] for s in shapes):
        return  # each operand is a trailing part of the largest: the result is its size
    arrays = [x for x in operands[:2] if hasattr(x, "dtype")]  # (the condition of `where` is bool)
    d = dtypes.bool if boolean else _FROM_NATIVE[arrays[0].dtype]
    if math.prod(math.prod(s) for s in shapes) * d.itemsize <= _SURELY_FITS:
        return
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        return  # shapes that do not broadcast: the library raises, the Tensor layer explains
    check_allocation(ops, op, shape, d)


@_jit("plan", "target")
def _saturating_cast(a: Array, plan: Any, target: Any) -> Array:
    """Float to int as the op-set defines it (see `IntCast`), in one XLA call: XLA saturates on
    CPU, but leaves the conversion of out-of-range values to the platform."""
    info = np.iinfo(target)
    clipped = jnp.clip(a, plan.lo, plan.hi)
    out = jnp.where(jnp.isnan(clipped), 0, clipped).astype(target)
    if plan.fix_max:
        out = jnp.where(a > plan.hi, np.array(info.max, target), out)
    if plan.fix_min:
        out = jnp.where(a < plan.lo, np.array(info.min, target), out)
    return out


@_jit()
def _integer_power(a: Array, b: Array) -> Array:
    """Integer a ** b as the op-set defines it, where jnp.power is not: a negative exponent gives
    the exact result truncated toward zero (1 for a base of 1, -1 or 1 for -1, else 0; XLA gives
    garbage), and overflow wraps for every exponent (jnp.power reads only the exponent's low 6 bits,
    so 3 ** 67 gave 3 ** 3). Square-and-multiply over all the exponent's bits."""
    base = jnp.asarray(a, b.dtype)
    negative = b < 0
    exponent = jnp.where(negative, 0, b)
    out = jnp.ones(jnp.broadcast_shapes(base.shape, b.shape), b.dtype)
    for _ in range(np.iinfo(b.dtype).bits):
        out = jnp.where((exponent & 1) == 1, out * base, out)
        base, exponent = base * base, exponent >> 1
    exact = jnp.where(a == 1, 1, jnp.where(a == -1, jnp.where((b & 1) == 1, -1, 1), 0)).astype(b.dtype)
    return jnp.where(negative, exact, out)


def _matmul_highest(a: Array, b: Array) -> Array:
    """jnp.matmul at full float32 precision: no TF32 or bfloat16 passes on GPUs."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


# ---------------------------------------------------------------------- table-driven primitives
def _jitted(fn: Any) -> Any:
    """`fn` as a jitted function. jnp's ufunc objects (add, multiply, ...) check their arguments in
    Python before they reach their jitted body, on every call; jitted whole, that check runs once
    per signature and the call takes jax's C++ fast path (the same computation, Python scalars
    weakly typed as before; `inline` keeps traced programs as they were). jnp's other functions
    are jitted already, and `power` must stay eager: it reads a concrete exponent's value."""
    return jax.jit(fn, inline=True) if isinstance(fn, jnp.ufunc) else fn


# The elementwise ops turn 64-bit mode on themselves, as `_in_x64` does: without its extra frame
# and argument packing, 0.13 us an op less (0.1 against 0.23 us for the swap, per op).
def _unary(fn: Any) -> Any:
    fn = _jitted(fn)
    swap, restore = jax.enable_x64.swap_local, jax.enable_x64.set_local

    def op(self: JaxBackend, a: Array) -> Array:
        before = swap(True)
        try:
            return fn(a)
        finally:
            restore(before)

    return op


def _binary(fn: Any) -> Any:
    name, boolean = fn.__name__, fn.__name__ in _BOOLEAN_RESULTS
    fn = _jitted(fn)
    swap, restore = jax.enable_x64.swap_local, jax.enable_x64.set_local

    # Python scalars are weakly typed in JAX: they take the array's dtype, as the op-set requires
    def op(self: JaxBackend, a: Array, b: Array) -> Array:
        if _may_outgrow(a, b):
            _check_growth(self, name, boolean, a, b)
        before = swap(True)
        try:
            return fn(a, b)
        finally:
            restore(before)

    return op


def _reduction(fn: Any) -> Any:
    def op(self: JaxBackend, a: Array, axes: Axes, keepdims: bool) -> Array:
        return fn(a, axis=axes, keepdims=keepdims)

    return op


def _accumulation(fn: Any) -> Any:
    def op(self: JaxBackend, a: Array, axes: Axes, keepdims: bool) -> Array:
        return fn(a, axis=axes, keepdims=keepdims, dtype=a.dtype)

    return op


if _IMPORT_ERROR is None:
    _matmul = jax.jit(_matmul_highest, inline=True)  # a static `precision` costs jnp.matmul a lookup per call
    _div = jax.jit(_true_divide, inline=True)
    _no_wrap = _READERS | _SETS_X64_ITSELF
    from agnostic.backends import _jax_complex

    _STANDARD_COMPLEX = _jax_complex.functions()  # jnp's for real inputs, the standard's for complex
    for _table, _make in (
        (_UNARY, _unary),
        (_BINARY, _binary),
        (_REDUCE, _reduction),
        (_ACCUMULATE, _accumulation),
    ):
        for _ours, _theirs in _table.items():
            if _ours not in JaxBackend.__dict__:
                setattr(JaxBackend, _ours, _make(_STANDARD_COMPLEX.get(_ours) or getattr(jnp, _theirs)))
                if _make in (_unary, _binary):
                    _no_wrap.add(_ours)  # they turn 64-bit mode on themselves
    for _name in dir(JaxBackend):  # every other op, own or the base class's default, in 64-bit mode
        _method = inspect.getattr_static(JaxBackend, _name)
        if not _name.startswith("_") and _name not in _no_wrap and inspect.isfunction(_method):
            setattr(JaxBackend, _name, _in_x64(_method))
    abc.update_abstractmethods(JaxBackend)
