"""The jax engine: JAX's own multi-controller runtime (`jax.distributed`), one process per host or
per device, with XLA's collectives (gloo between CPU processes, NCCL between GPUs).

Process `RANK` of `WORLD_SIZE` joins the coordination service of process 0 at MASTER_ADDR and port
MASTER_PORT + 1 (torchrun's own store already listens on MASTER_PORT), or at the port
AGNOSTIC_JAX_COORDINATOR_PORT names. The runtime must start before XLA does: the first jax array,
`jax.devices()` or `ag.backend("jax")` starts XLA as a single process for good, so
`agnostic.distributed.init()` comes before any jax work. Each process contributes the device its
tensors live on (a process that sees several devices, say one GPU process per host, uses them one
at a time; JAX_LOCAL_DEVICE_IDS restricts what a process sees, as in JAX).

A collective is one jitted XLA program over a global array made of one shard per process (the mesh
axis PROCESS_AXIS, ordered by rank): `sum(axis=0)` replicated is an XLA all-reduce, the same reduction left
sharded along its first axis is a reduce-scatter, the identity replicated an all-gather. So the
data moves once, on XLA's transport, and each (op, shape, dtype) compiles once. The host-side
alternatives of `multihost_utils` (`process_allgather`, `broadcast_one_to_all`) round-trip through
NumPy and gather all n copies for a reduction. Before each collective the processes meet at a
barrier of the coordination service whose name holds the op, shape and dtype, with `timeout`: a
peer that is dead, hung, or calls a different collective becomes a DistributedError naming the
ranks, never a hang inside the transport (which has no timeout of its own). The barrier costs one
round trip to process 0 per collective (0.4 ms of 1.9 ms for a small all-reduce of 2 CPU processes).
A peer that dies is also noticed by JAX's runtime: after min(timeout, 100 s) without its heartbeats
JAX ends every other process itself (SIGABRT, its log naming the dead task), which the launchers
report.

Inside an `agnostic.compile`d step (`traces_collectives`) a collective gets the traced value and
becomes XLA's own collective in the compiled program (`lax.psum`, `pmax`, `all_gather`,
`psum_scatter` over the process axis): the JAX backend then compiles the step as one SPMD program
over every process (`jax.shard_map` over a mesh of one device per process), so a data-parallel
training step is one XLA program per process, all-reduce included. A step without a collective stays
process-local. Each run of such a program is preceded by the same barrier as an eager collective.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from agnostic.backends.jax import PROCESS_AXIS, process_axis, process_mesh, set_collective_guard
from agnostic.device import Device
from agnostic.distributed import DistributedError

COORDINATOR_PORT_ENV = "AGNOSTIC_JAX_COORDINATOR_PORT"
"""The coordination service's port, when MASTER_PORT + 1 is not free."""

_MAX_HEARTBEAT_S = 100  # JAX's default: a peer silent this long is dead


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name, "")
    if value == "":
        if default is None:
            raise DistributedError(
                f"distributed.init (jax): {name} is not set; start the script with torchrun or "
                "`python -m agnostic.distributed.launch -n N script.py`"
            )
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"distributed.init (jax): {name}={value!r} is not an integer") from None


def coordinator_address() -> str:
    """host:port of process 0's coordination service, from the launcher's environment."""
    host = os.environ.get("MASTER_ADDR", "") or "127.0.0.1"
    if os.environ.get(COORDINATOR_PORT_ENV, ""):
        port = _env_int(COORDINATOR_PORT_ENV)
    else:
        port = _env_int("MASTER_PORT") + 1
    return f"{host}:{port}"


def start(timeout: float) -> None:
    """Join the process group the launcher's environment describes (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT); nothing to do for a world size of 1 or a runtime that is already up. Call it
    before anything starts XLA: building the jax Device does."""
    n = _env_int("WORLD_SIZE", 1)
    if n == 1 or jax.distributed.is_initialized():
        return
    rank = _env_int("RANK")
    address = coordinator_address()
    if jax.config.jax_cpu_collectives_implementation is None:  # CPU processes need a transport
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    seconds = max(1, math.ceil(timeout))
    try:
        jax.distributed.initialize(
            coordinator_address=address,
            num_processes=n,
            process_id=rank,
            cluster_detection_method="deactivate",  # the launcher's environment, not SLURM's or MPI's
            initialization_timeout=seconds,
            heartbeat_timeout_seconds=min(seconds, _MAX_HEARTBEAT_S),
            shutdown_timeout_seconds=seconds,
        )
    except RuntimeError as e:
        if "must be called before" in str(e):
            raise DistributedError(
                f"distributed.init (jax): rank {rank}: XLA has already started in this process (a jax "
                "array, jax.devices() or ag.backend('jax') ran first), so it cannot join a process "
                "group any more; call agnostic.distributed.init() before any jax work"
            ) from e
        raise DistributedError(
            f"distributed.init (jax): rank {rank} of {n} could not join the coordination service at "
            f"{address} within {seconds} s (is every rank started, and the port free? set "
            f"{COORDINATOR_PORT_ENV} to choose another): {e}"
        ) from e


def _client() -> Any:
    """The coordination service client (JAX keeps it in its private state; multihost_utils reads
    it the same way)."""
    from jax._src import distributed

    return distributed.global_state.client


_REDUCE = {
    "sum": lambda g: jnp.sum(g, axis=0, dtype=g.dtype),
    "mean": lambda g: (jnp.sum(g, axis=0, dtype=g.dtype) / g.shape[0]).astype(g.dtype),
    "max": lambda g: jnp.max(g, axis=0),
    "min": lambda g: jnp.min(g, axis=0),
}
"""Reductions over the process axis, in the input's dtype (the caller allows "mean" on floats only)."""
_BOOL_REDUCE = {
    "sum": lambda g: jnp.any(g, axis=0),
    "max": lambda g: jnp.any(g, axis=0),
    "min": lambda g: jnp.all(g, axis=0),
}
"""bool: "sum" is a logical or, as in the torch engine."""


def _reduction(op: str, dtype: np.dtype) -> Any:
    return (_BOOL_REDUCE if dtype == np.bool_ else _REDUCE)[op]


@functools.cache
def _program(kind: str, op: str, src: int, mesh: Mesh, dtype: np.dtype) -> Any:
    """The jitted collective over a global (n, ...) array sharded one row per process."""
    replicated = NamedSharding(mesh, PartitionSpec())
    if kind == "all_reduce":
        return jax.jit(_reduction(op, dtype), out_shardings=replicated)
    if kind == "reduce_scatter":
        return jax.jit(_reduction(op, dtype), out_shardings=NamedSharding(mesh, PartitionSpec(PROCESS_AXIS)))
    if kind == "broadcast":
        return jax.jit(lambda g: g[src], out_shardings=replicated)
    return jax.jit(lambda g: g, out_shardings=replicated)  # all_gather


def _in_program(kind: str, a: Any, op: str, src: int, n: int) -> Any:
    """The collective inside a compiled SPMD program, on a traced value; outside one (the backend's
    first, process-local trace, which it then does again as one) a value of the result's shape."""
    axis = process_axis()
    if axis is None:
        if kind == "all_gather":
            return jnp.broadcast_to(a[None], (n, *a.shape))
        return a[: a.shape[0] // n] if kind == "reduce_scatter" else a
    if kind == "broadcast":
        return lax.all_gather(a, axis)[src]
    if kind == "all_gather":
        return lax.all_gather(a, axis)
    if a.dtype == np.bool_:  # "sum" is a logical or, as eagerly
        wide = a.astype(np.int32)
        out = (lax.pmin(wide, axis) if op == "min" else lax.pmax(wide, axis)).astype(np.bool_)
    elif op in ("sum", "mean"):
        if kind == "reduce_scatter":
            out = lax.psum_scatter(a, axis, scatter_dimension=0, tiled=True)
        else:
            out = lax.psum(a, axis)
        if op == "mean":
            out = (out / n).astype(a.dtype)
        return out
    else:
        out = lax.pmax(a, axis) if op == "max" else lax.pmin(a, axis)
    if kind == "reduce_scatter":
        k = a.shape[0] // n
        return lax.dynamic_slice_in_dim(out, lax.axis_index(axis) * k, k, axis=0)
    return out


class JaxEngine:
    """Collectives on jax.Arrays across the processes of `jax.distributed`; on traced values, inside
    the compiled program (see the module docstring)."""

    name = "jax"
    traces_collectives = True
    """A collective inside an `agnostic.compile` trace is handed the traced value (and compiled in)."""

    def __init__(self, device: Device, timeout: float) -> None:
        start(timeout)
        self._device = device
        self._timeout_ms = max(1, math.ceil(timeout * 1000))
        self._rank = jax.process_index()
        self._world = jax.process_count()
        self._local_rank = _env_int("LOCAL_RANK", 0)
        self._calls = 0  # every process makes the same calls in the same order: barrier names agree
        set_collective_guard(self._meet if self._world > 1 else None)

    def rank(self) -> int:
        return self._rank

    def world_size(self) -> int:
        return self._world

    def local_rank(self) -> int:
        return self._local_rank

    def _meet(self, what: str) -> None:
        """Wait at a coordination-service barrier named `what` (op, shape, dtype) for `timeout`."""
        if self._world == 1:
            return
        self._calls += 1
        try:
            _client().wait_at_barrier(f"agnostic/{self._calls}/{what}", self._timeout_ms)
        except jax.errors.JaxRuntimeError as e:
            raise self._error(what.partition("/")[0], e) from e

    def _error(self, op: str, e: BaseException) -> DistributedError:
        dead = self._dead_ranks()
        who = f"rank(s) {dead} died" if dead else "a peer died, hung, or called another collective"
        return DistributedError(
            f"distributed.{op}: rank {self._rank} of {self._world}: {who} (the launcher's log of that rank "
            f"says why; every rank must make the same collective calls with the same shapes and dtypes): "
            f"{str(e).strip()}"
        )

    def _dead_ranks(self) -> list[int]:
        try:
            live = _client().get_live_nodes(list(range(self._world)))
        except Exception:  # the service itself is gone (process 0 died): nothing more to learn
            return [0] if self._rank != 0 else []
        return [r for r in range(self._world) if r not in live]

    def barrier(self) -> None:
        self._meet("barrier")

    def _run(self, kind: str, a: jax.Array, op: str = "", src: int = -1) -> jax.Array:
        if isinstance(a, jax.core.Tracer):
            return _in_program(kind, a, op, src, self._world)
        self._meet(f"{kind}/{op}/{src}/{a.dtype}{list(a.shape)}")
        before = jax.enable_x64.swap_local(True)  # int64 and float64 stay 64-bit, as in the backend
        try:
            mesh = process_mesh(self._one_device(kind, a))
            shard = jnp.expand_dims(a, 0)
            sharding = NamedSharding(mesh, PartitionSpec(PROCESS_AXIS))
            g = jax.make_array_from_single_device_arrays((self._world, *a.shape), sharding, [shard])
            out = _program(kind, op, src, mesh, np.dtype(a.dtype))(g)
            return out.addressable_data(0)
        except jax.errors.JaxRuntimeError as e:
            raise self._error(kind, e) from e
        finally:
            jax.enable_x64.set_local(before)

    def _one_device(self, kind: str, a: jax.Array) -> Any:
        devices = a.devices()
        if len(devices) != 1:
            raise DistributedError(
                f"distributed.{kind}: rank {self._rank}: the tensor lives on {len(devices)} devices (a jax "
                "Device over several); under jax.distributed each process uses one device: start one "
                "process per device (JAX_LOCAL_DEVICE_IDS, or ag.backend('jax', device='gpu:N') by local rank)"
            )
        return next(iter(devices))

    def all_reduce(self, a: Any, op: str) -> Any:
        return self._run("all_reduce", a, op)

    def broadcast(self, a: Any, src: int) -> Any:
        return self._run("broadcast", a, src=src)

    def all_gather(self, a: Any) -> Any:
        return self._run("all_gather", a)

    def reduce_scatter(self, a: Any, op: str) -> Any:
        return self._run("reduce_scatter", a, op)

    def shutdown(self) -> None:
        """Leave the runtime (JAX cannot start it again in this process)."""
        set_collective_guard(None)
        if jax.distributed.is_initialized():
            jax.distributed.shutdown()
