"""Data-parallel training on the engines that already carry it: torch.distributed (gloo on CPU,
NCCL on CUDA) for the torch, numpy and cupy backends, and JAX's multi-controller runtime
(`jax.distributed`) for jax. No home-made transport.

A script calls `init()` once (it reads torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT); with no launcher and no `init()`, every function works as one process of world size
1, so the same script runs unchanged on a laptop. Collectives take and return agnostic tensors
(tensors are values: each returns a new tensor on the input's backend and device).

The process group is process state (one per process, as torch's and JAX's are), not per thread.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any, Protocol

from agnostic import tracing
from agnostic.device import Device, as_device, get_default_backend
from agnostic.tensor import Tensor

__all__ = [
    "init",
    "shutdown",
    "is_initialized",
    "rank",
    "world_size",
    "local_rank",
    "barrier",
    "all_reduce",
    "all_reduce_async",
    "Pending",
    "broadcast",
    "all_gather",
    "reduce_scatter",
    "DistributedError",
    "DataParallel",
    "MeshDataParallel",
    "REDUCE_OPS",
]

REDUCE_OPS = ("sum", "mean", "max", "min")


class DistributedError(RuntimeError):
    """A collective or the process group failed (a peer died, a timeout); the message names the
    rank and what to do."""


class Engine(Protocol):
    """What a distributed engine does for one backend, on that backend's native arrays."""

    name: str

    def rank(self) -> int: ...

    def world_size(self) -> int: ...

    def local_rank(self) -> int: ...

    def barrier(self) -> None: ...

    def all_reduce(self, a: Any, op: str) -> Any:
        """`a` reduced elementwise over every process (`op` in REDUCE_OPS); a new array."""

    # Optional: `all_reduce_async(a, op)` starts the same reduction and returns at once a handle
    # whose `wait()` gives the array; an engine without it gets the blocking call (see `Pending`).
    # Optional: `traces_collectives = True` says the collectives above accept the symbolic arrays of
    # a running `agnostic.compile` trace and put the collective in the compiled program.

    def broadcast(self, a: Any, src: int) -> Any:
        """Process `src`'s `a` on every process; a new array."""

    def all_gather(self, a: Any) -> Any:
        """Every process's `a` stacked along a new first axis, in rank order."""

    def reduce_scatter(self, a: Any, op: str) -> Any:
        """`a` (first axis a multiple of the world size) reduced over processes, then split along
        its first axis: this process gets chunk `rank`."""

    def shutdown(self) -> None: ...


_lock = threading.Lock()
_engine: Engine | None = None
_device: Device | None = None


def init(backend: Device | str | None = None, *, timeout: float | timedelta = 300.0) -> None:
    """Join the process group the launcher describes (torchrun's environment), with the engine of
    `backend` (default: the default backend): torch.distributed for torch, numpy and cupy (gloo on
    CPU, NCCL on CUDA), jax.distributed for jax. `timeout` (seconds) bounds every collective: a dead
    peer is a DistributedError, never a hang. Without a launcher's environment this is a
    one-process group (world size 1). For jax, call it before any jax work (name the backend, or
    set AGNOSTIC_BACKEND=jax): JAX joins a process group only before XLA starts."""
    global _engine, _device
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"distributed.init: timeout must be positive, got {timeout!r}")
    with _lock:
        if _engine is None and _backend_name(backend) == "jax":
            # jax.distributed must start before XLA does, and building the jax Device starts XLA
            from agnostic.distributed.jax_engine import start

            start(seconds)
        device = as_device(backend) if backend is not None else get_default_backend()
        if _engine is not None:
            if _device is device:
                return
            raise DistributedError(
                f"distributed.init: already initialized for {_device}; call shutdown() first to use {device}"
            )
        _engine = _make_engine(device, seconds)
        _device = device


def _backend_name(backend: Device | str | None) -> str:
    """The backend's name, without building its Device (AGNOSTIC_BACKEND names the default here: a
    default set in code is a Device, built already)."""
    if isinstance(backend, Device):
        return backend.name
    if backend is None:
        return os.environ.get("AGNOSTIC_BACKEND", "").strip().partition(":")[0]
    return backend.partition(":")[0]


def _make_engine(device: Device, timeout: float) -> Engine:
    if device.name == "jax":
        from agnostic.distributed.jax_engine import JaxEngine

        return JaxEngine(device, timeout)
    if device.name in ("torch", "numpy", "cupy"):
        from agnostic.distributed.torch_engine import TorchEngine

        return TorchEngine(device, timeout)
    raise DistributedError(
        f"distributed.init: backend {device.name!r} has no distributed engine (torch, numpy and cupy use "
        "torch.distributed, jax uses jax.distributed)"
    )


def shutdown() -> None:
    """Leave the process group (no-op when not initialized)."""
    global _engine, _device
    with _lock:
        if _engine is not None:
            try:
                _engine.shutdown()
            finally:
                _engine, _device = None, None


def is_initialized() -> bool:
    return _engine is not None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return _engine.rank() if _engine is not None else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return _engine.world_size() if _engine is not None else 1


def local_rank() -> int:
    """This process's rank on its machine (LOCAL_RANK; 0 without a launcher)."""
    return _engine.local_rank() if _engine is not None else _env_int("LOCAL_RANK", 0)


def barrier() -> None:
    """Wait until every process gets here."""
    if _engine is not None:
        _engine.barrier()


def _check(t: Any, op: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"distributed.{op}: expected an agnostic Tensor, got {type(t).__name__}")
    if _engine is not None and t.device is not _device:
        raise DistributedError(
            f"distributed.{op}: the tensor is on {t.device}, the process group was started for {_device}"
        )
    return t


def _reduce_op(op: str, fn: str, t: Tensor) -> str:
    if op not in REDUCE_OPS:
        raise ValueError(f"distributed.{fn}: op must be one of {list(REDUCE_OPS)}, got {op!r}")
    if op == "mean" and not t.dtype.is_floating:
        raise TypeError(
            f"distributed.{fn}: op 'mean' needs a floating-point tensor, got {t.dtype.name}; cast it "
            "first (t.astype('float32')) or use op='sum'"
        )
    return op


def _copy(t: Tensor) -> Tensor:
    """A new tensor with `t`'s value (a Parameter passed in is not aliased)."""
    from agnostic import ops

    return ops.asarray(t, copy=True)


def _in_trace(op: str) -> None:
    """Refuse a collective in an `agnostic.compile` trace on an engine that cannot put it in the
    compiled program (its arrays are symbolic there: there is nothing to send)."""
    if tracing.tracing() and not getattr(_engine, "traces_collectives", False):
        name = getattr(_engine, "name", "this engine")
        raise DistributedError(
            f"distributed.{op} (rank {rank()}): called inside an agnostic.compile'd step, and {name} cannot "
            "put a collective in a compiled program; call it outside the compiled function (compile the "
            "parts before and after it), or wrap the model in DistributedDataParallel, whose gradient "
            "reduction runs right after each call of the compiled step"
        )


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """`t` reduced elementwise over every process: "sum", "mean", "max" or "min"."""
    t = _check(t, "all_reduce")
    op = _reduce_op(op, "all_reduce", t)
    if _engine is None or _engine.world_size() == 1:
        return _copy(t)
    _in_trace("all_reduce")
    return Tensor._make(_engine.all_reduce(t._data, op), t.device, t.dtype)


class Pending:
    """A collective started by `all_reduce_async`: `wait()` blocks until it is done and gives its
    result (once; a second wait is an error)."""

    __slots__ = ("_wait", "_like")

    def __init__(self, wait: Any, like: Tensor) -> None:
        self._wait, self._like = wait, like

    def wait(self) -> Tensor:
        if self._wait is None:
            raise DistributedError("distributed.all_reduce_async: wait() was called twice on one handle")
        wait, self._wait = self._wait, None
        like = self._like
        return Tensor._make(wait(), like.device, like.dtype)


def all_reduce_async(t: Tensor, op: str = "sum") -> Pending:
    """Start `all_reduce(t, op)` and return at once (a `Pending`), so the caller computes while the
    collective runs (DistributedDataParallel overlaps its gradient buckets with backward this way).
    Engines without an asynchronous form (jax.distributed) reduce here, blocking. Every process must
    start the same collectives in the same order; wait for them in any order."""
    t = _check(t, "all_reduce_async")
    op = _reduce_op(op, "all_reduce_async", t)
    if _engine is None or _engine.world_size() == 1:
        done = _copy(t)
        return Pending(lambda: done._data, t)
    _in_trace("all_reduce_async")
    start = getattr(_engine, "all_reduce_async", None)
    if start is None or tracing.tracing():
        result = _engine.all_reduce(t._data, op)
        return Pending(lambda: result, t)
    return Pending(start(t._data, op).wait, t)


def broadcast(t: Tensor, src: int = 0) -> Tensor:
    """Process `src`'s `t`, on every process."""
    t = _check(t, "broadcast")
    n = world_size()
    if not isinstance(src, int) or not 0 <= src < n:
        raise ValueError(f"distributed.broadcast: src must be a rank in [0, {n}), got {src!r}")
    if _engine is None or n == 1:
        return _copy(t)
    _in_trace("broadcast")
    return Tensor._make(_engine.broadcast(t._data, src), t.device, t.dtype)


def all_gather(t: Tensor) -> Tensor:
    """Every process's `t` stacked along a new first axis, in rank order: shape (world_size, *t.shape)."""
    t = _check(t, "all_gather")
    if _engine is None or _engine.world_size() == 1:
        from agnostic import ops

        return ops.expand_dims(t, axis=0)
    _in_trace("all_gather")
    return Tensor._make(_engine.all_gather(t._data), t.device, t.dtype)


def reduce_scatter(t: Tensor, op: str = "sum") -> Tensor:
    """`t` reduced over processes and split along its first axis (a multiple of the world size):
    this process gets chunk `rank()`, of shape (t.shape[0] // world_size, *t.shape[1:])."""
    t = _check(t, "reduce_scatter")
    op = _reduce_op(op, "reduce_scatter", t)
    n = world_size()
    if t.ndim == 0 or t.shape[0] % n:
        raise ValueError(
            f"distributed.reduce_scatter: the first axis ({t.shape[0] if t.ndim else 'none'}) must be a "
            f"multiple of the world size {n}"
        )
    if _engine is None or n == 1:
        return all_reduce(t, op)
    _in_trace("reduce_scatter")
    return Tensor._make(_engine.reduce_scatter(t._data, op), t.device, t.dtype)


from agnostic.distributed.data_parallel import DistributedDataParallel as DataParallel  # noqa: E402
from agnostic.distributed.mesh_parallel import MeshDataParallel  # noqa: E402
