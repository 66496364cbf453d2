"""The torch.distributed engine, for the torch, numpy and cupy backends: gloo on CPU, NCCL on CUDA.

Arrays cross into torch without copies (torch.from_numpy for NumPy, DLPack for CuPy); the one copy
each collective makes is the buffer it writes into, so a caller's array is never written and the
result never aliases it.

Inside an `agnostic.compile`d step on the torch backend (a torch.fx graph traced with fake tensors)
the collectives are torch's functional ones (`torch.distributed._functional_collectives`), which
the trace records like any op: the gradient reduction is part of the compiled program, so one
compiled step may hold the forward, the backward with its reduction, and the optimizer update.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from agnostic import tracing
from agnostic.device import Device
from agnostic.distributed import DistributedError

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class TorchEngine:
    """One process's membership of a torch.distributed process group, for arrays of `device`."""

    name = "torch.distributed"

    def __init__(self, device: Device, timeout: float) -> None:
        if not dist.is_available():
            raise DistributedError(
                "distributed.init: this torch build has no torch.distributed; install a torch wheel "
                "from pytorch.org (every official build has it)"
            )
        self._device = device
        self._timeout = timeout
        self._cuda = device.device.startswith("cuda")
        self._torch_device = torch.device(device.device)
        self._backend = "nccl" if self._cuda else "gloo"
        # A group the script started itself (say for torch's DDP) is joined, and left to the script.
        self._owns_group = not dist.is_initialized()
        if not self._owns_group:
            return
        if self._cuda:
            torch.cuda.set_device(self._torch_device)
        present = [v for v in _LAUNCH_VARS if os.environ.get(v)]
        if present and len(present) < len(_LAUNCH_VARS):
            missing = sorted(set(_LAUNCH_VARS) - set(present))
            raise DistributedError(
                f"distributed.init: the environment sets {', '.join(present)} but not {', '.join(missing)}; "
                "start the script with `torchrun --nproc-per-node N script.py`, which sets them all"
            )
        with self._guard("init", int(os.environ.get("RANK") or 0), int(os.environ.get("WORLD_SIZE") or 1)):
            if present:
                dist.init_process_group(
                    self._backend, init_method="env://", timeout=timedelta(seconds=timeout)
                )
            else:  # no launcher: a group of one, so the same script runs as one process
                dist.init_process_group(
                    self._backend,
                    store=dist.HashStore(),
                    rank=0,
                    world_size=1,
                    timeout=timedelta(seconds=timeout),
                )

    @property
    def traces_collectives(self) -> bool:
        """Whether collectives can be in a compiled program: on the torch backend (numpy and cupy
        have no compiler; their steps run eagerly)."""
        return self._device.name == "torch"

    def rank(self) -> int:
        return dist.get_rank()

    def world_size(self) -> int:
        return dist.get_world_size()

    def local_rank(self) -> int:
        return int(os.environ.get("LOCAL_RANK") or 0)

    def barrier(self) -> None:
        with self._guard("barrier"):
            if self._cuda:
                dist.barrier(device_ids=[self._torch_device.index or 0])
            else:
                dist.barrier()

    def all_reduce(self, a: Any, op: str) -> Any:
        if tracing.tracing():
            return _traced_all_reduce(a, op, self.world_size())
        buf, restore = self._buffer(a)
        with self._guard("all_reduce"):
            self._all_reduce(buf, op)
        return restore(buf)

    def all_reduce_async(self, a: Any, op: str) -> _Work:
        """Start the all-reduce (torch's async_op) and return its handle at once."""
        buf, restore = self._buffer(a)
        with self._guard("all_reduce"):
            work = dist.all_reduce(buf, _reduce_op(op), async_op=True)
        return _Work(self, work, buf, restore, op)

    def broadcast(self, a: Any, src: int) -> Any:
        if tracing.tracing():
            return _traced(a, lambda x: _funcol().broadcast(x, src, dist.group.WORLD))
        buf, restore = self._buffer(a)
        with self._guard("broadcast"):
            dist.broadcast(buf, src)
        return restore(buf)

    def all_gather(self, a: Any) -> Any:
        if tracing.tracing():
            n = self.world_size()
            return _traced(
                a, lambda x: _funcol().all_gather_tensor(x.reshape(1, *x.shape), 0, dist.group.WORLD)
            ).reshape(n, *a.shape)
        x = self._to_torch(a)
        wire = x.view(torch.uint8) if x.dtype == torch.bool else x
        parts = [
            torch.empty_like(wire, memory_format=torch.contiguous_format) for _ in range(self.world_size())
        ]
        with self._guard("all_gather"):
            dist.all_gather(parts, wire.contiguous())
        out = torch.stack(parts)
        return self._from_torch(out.view(torch.bool) if x.dtype == torch.bool else out, a)

    def reduce_scatter(self, a: Any, op: str) -> Any:
        if tracing.tracing():  # gloo's reduce-scatter is recent: reduce all, keep this rank's chunk
            return _traced_all_reduce(a, op, self.world_size()).chunk(self.world_size())[self.rank()]
        buf, restore = self._buffer(a)
        n, r = self.world_size(), self.rank()
        with self._guard("reduce_scatter"):
            if self._cuda:
                out = torch.empty_like(buf.chunk(n)[r])
                dist.reduce_scatter_tensor(out, buf, _reduce_op(op))
                if op == "mean":
                    out /= n
            else:
                # gloo had no reduce_scatter before torch 2.6 (torch>=2.2 is supported): reduce the
                # whole tensor, keep this rank's chunk. n times the traffic, on CPU where it is cheap.
                self._all_reduce(buf, op)
                out = buf.chunk(n)[r].clone()
        return restore(out)

    def shutdown(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------------ helpers
    def _all_reduce(self, buf: torch.Tensor, op: str) -> None:
        dist.all_reduce(buf, _reduce_op(op))
        if op == "mean":
            buf /= self.world_size()

    def _buffer(self, a: Any) -> tuple[torch.Tensor, Any]:
        """A fresh contiguous torch tensor holding `a` (collectives write in place), and the function
        that turns a result back into `a`'s kind of array. bool travels as uint8: NCCL has no bool,
        and a bool "sum" (a logical or) is a uint8 max."""
        x = self._to_torch(a)
        is_bool = x.dtype == torch.bool
        buf = x.to(torch.uint8) if is_bool else x.clone(memory_format=torch.contiguous_format)

        def restore(out: torch.Tensor) -> Any:
            return self._from_torch(out.to(torch.bool) if is_bool else out, a)

        return buf, restore

    def _to_torch(self, a: Any) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            return a.detach()
        if isinstance(a, (np.ndarray, np.generic)):  # (NumPy reductions may give NumPy scalars)
            a = np.asarray(a, order="C")  # torch.from_numpy refuses negative strides
            with warnings.catch_warnings():  # a read-only array: it is only read, never written
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                if a.dtype.name == "bfloat16":  # ml_dtypes' bfloat16: torch reads its bits
                    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
                return torch.from_numpy(a)
        return torch.from_dlpack(a)

    def _from_torch(self, t: torch.Tensor, like: Any) -> Any:
        """`t` (a tensor no caller holds) as an array of `like`'s kind, without a copy."""
        if isinstance(like, torch.Tensor):
            return t
        if isinstance(like, (np.ndarray, np.generic)):
            if t.dtype == torch.bfloat16:
                return t.view(torch.int16).numpy().view(like.dtype)
            return t.numpy()
        return self._device.ops.from_dlpack(t)

    @contextlib.contextmanager
    def _guard(self, op: str, rank: int | None = None, size: int | None = None) -> Iterator[None]:
        """torch.distributed's failures (RuntimeError, DistBackendError) as a DistributedError that
        says who failed, in what, and the likely cause."""
        try:
            yield
        except RuntimeError as e:
            if isinstance(e, DistributedError):
                raise
            rank = self.rank() if rank is None else rank
            size = self.world_size() if size is None else size
            # gloo and NCCL name the peer by address only; torchrun's summary names the rank that failed
            peer = f"the peer, rank {1 - rank}," if size == 2 else "a peer process"
            raise DistributedError(
                f"distributed.{op}: rank {rank} of world size {size} ({self._backend}) failed: "
                f"{str(e).strip()}\n{peer[0].upper()}{peer[1:]} probably died (its own log says why) or "
                f"stopped calling collectives, or the {op} ran past the timeout ({self._timeout:g} s); "
                "every process must call the same collectives in the same order."
            ) from e


class _Work:
    """An all-reduce in flight: `wait()` gives its result as the caller's kind of array; a failure
    (a dead peer, the timeout) is a DistributedError naming the rank, as for the blocking call."""

    __slots__ = ("_engine", "_work", "_buf", "_restore", "_op")

    def __init__(self, engine: TorchEngine, work: Any, buf: torch.Tensor, restore: Any, op: str) -> None:
        self._engine, self._work, self._buf, self._restore, self._op = engine, work, buf, restore, op

    def wait(self) -> Any:
        with self._engine._guard("all_reduce"):
            self._work.wait()
        if self._op == "mean":
            self._buf /= self._engine.world_size()
        return self._restore(self._buf)


def _funcol() -> Any:
    import torch.distributed._functional_collectives as funcol

    return funcol


def _traced(a: torch.Tensor, collective: Any) -> torch.Tensor:
    """`collective(a)` as traced ops; bool travels as uint8 (NCCL has no bool)."""
    if a.dtype != torch.bool:
        return collective(a.contiguous())
    return collective(a.to(torch.uint8).contiguous()).to(torch.bool)


def _traced_all_reduce(a: torch.Tensor, op: str, n: int) -> torch.Tensor:
    # a bool "sum" (a logical or) is a uint8 max; "mean" a sum divided afterwards, as eagerly
    name = "max" if a.dtype == torch.bool and op == "sum" else ("sum" if op == "mean" else op)
    out = _traced(a, lambda x: _funcol().all_reduce(x, name, dist.group.WORLD))
    return out / n if op == "mean" else out


def _reduce_op(op: str) -> Any:
    """torch's ReduceOp for `op` ("mean" is a sum, divided afterwards: gloo has no AVG)."""
    return getattr(dist.ReduceOp, "SUM" if op == "mean" else op.upper())
