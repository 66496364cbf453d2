"""DistributedDataParallel: one model replica per process, gradients averaged in buckets.

As torch's DDP reducer does: at wrap time rank 0's parameters and buffers are broadcast (so every
replica starts equal), and the trainable parameters are grouped, in reverse registration order
(roughly the order backward produces their gradients), into buckets of about `bucket_cap_mb`. Each
parameter's post-accumulate-grad hook marks it ready during `backward()`; when a bucket is full its
gradients are flattened into one tensor, all-reduced (one collective per bucket, not per parameter),
divided by the world size and split back into `.grad`. Buckets are reduced strictly in order, so
every process issues the same collectives in the same sequence.

Overlap: a full bucket's all-reduce is started asynchronously (`distributed.all_reduce_async`) and
backward goes on differentiating the layers below while it travels; when the last bucket is started
(the end of backward) every one is waited for and the averaged gradients are written. Engines without
an asynchronous form (jax.distributed) reduce each bucket at once, blocking.

Compiled steps (`agnostic.compile`): while a step is traced the gradients are symbolic. An engine
that can put collectives in the compiled program (`traces_collectives`: JAX's, and torch.distributed
on the torch backend through torch's functional collectives) gets them there, so one compiled step
may hold forward, backward, reduction and update. For an engine that cannot (a third-party one; the
numpy and cupy backends have no compiler and run steps eagerly) each bucket's reduction is handed to
the trace to run eagerly right after every call of the compiled program, in bucket order, once the
program has written the gradients back; the optimizer update must then be a separate step that reads
the averaged gradients: a single compiled program that also updates would update with unreduced
gradients, and is refused.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from agnostic import distributed as dist
from agnostic import ops, tracing
from agnostic.autodiff import is_grad_enabled, no_grad
from agnostic.nn.module import Module
from agnostic.nn.parameter import Parameter
from agnostic.tensor import Tensor

__all__ = ["DistributedDataParallel"]


def _flat(tensors: list[Tensor]) -> Tensor:
    """The tensors flattened and joined into one 1-D tensor (one collective carries them all)."""
    return ops.concat([ops.reshape(t, (-1,)) for t in tensors])


def _unflat(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    """`flat` cut back into tensors of `like`'s shapes."""
    bounds, offset = [], 0
    for t in like[:-1]:
        offset += t.size
        bounds.append(offset)
    return [ops.reshape(piece, t.shape) for piece, t in zip(ops.split(flat, indices=bounds), like)]


def _groups(tensors: list[Tensor], cap_bytes: float) -> list[list[Tensor]]:
    """Consecutive runs of `tensors` of one dtype and device, each of at most `cap_bytes` (a tensor
    larger than the cap gets a group of its own)."""
    groups: list[list[Tensor]] = []
    size = 0.0
    for t in tensors:
        nbytes = t.size * t.dtype.itemsize
        last = groups[-1] if groups else None
        if (
            last is None
            or last[0].dtype is not t.dtype
            or last[0].device is not t.device
            or size + nbytes > cap_bytes
        ):
            groups.append([t])
            size = nbytes
        else:
            last.append(t)
            size += nbytes
    return groups


def _broadcast_state(module: Module, cap_bytes: float) -> None:
    """Give every process rank 0's parameters and buffers, one broadcast per group of tensors."""
    slots: list[tuple[Module, str, Tensor]] = [
        (m, name, t)
        for m in module.modules()
        for table in (m._parameters, m._buffers)
        for name, t in table.items()
        if t is not None
    ]
    by_id = {id(t): (m, name) for m, name, t in slots}
    unique = list({id(t): t for _, _, t in slots}.values())  # a shared tensor is sent once
    with no_grad():
        for group in _groups(unique, cap_bytes):
            for t, value in zip(group, _unflat(dist.broadcast(_flat([t.detach() for t in group]), 0), group)):
                if isinstance(t, Parameter):
                    t.assign(value)
                else:
                    m, name = by_id[id(t)]
                    setattr(m, name, value)


class _Bucket:
    """Parameters whose gradients travel in one collective, and (by id) those ready this step."""

    __slots__ = ("params", "ready")

    def __init__(self, params: list[Parameter]) -> None:
        self.params = params
        self.ready: set[int] = set()


class DistributedDataParallel(Module):
    """`module` trained data-parallel: call it as the module; after `backward()` every process holds
    the gradients averaged over all processes (so one optimizer step per process keeps the replicas
    equal). Inside `no_sync()` gradients only accumulate locally, for gradient accumulation; the
    first backward outside it reduces the accumulated sum.

    `bucket_cap_mb` (torch's 25 MB default) sizes the buckets. Buffers (BatchNorm's running
    statistics) stay per process, unless `broadcast_buffers=True` makes every forward start from
    rank 0's (torch's default). With world size 1 (no process group) this is a transparent wrapper.
    The state_dict keys carry torch's `module.` prefix; `.module` is the wrapped model.

    World size 1 with a model on a jax Device over several local devices (`ag.backend("jax",
    device="gpu:*")`): this is `MeshDataParallel`, data parallelism over those devices instead of
    over processes.
    """

    def __new__(cls, module: Module, *args: Any, **kwargs: Any) -> Module:  # type: ignore[misc]
        device = module.backend if isinstance(module, Module) else None
        if (
            cls is DistributedDataParallel
            and dist.world_size() == 1
            and device is not None
            and getattr(device.ops, "mesh", None) is not None
        ):
            from agnostic.distributed.mesh_parallel import MeshDataParallel

            return MeshDataParallel(module)
        return super().__new__(cls)

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: expected an agnostic nn.Module, got {type(module).__name__}"
            )
        if not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}"
            )
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.world_size = dist.world_size()
        self.require_backward_grad_sync = True
        cap = self.bucket_cap_mb * 2**20
        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = [_Bucket(g) for g in _groups(params[::-1], cap)]  # type: ignore[arg-type]
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._next = 0  # the first bucket not reduced yet in this backward
        self._pending: list[tuple[_Bucket, dist.Pending]] = []  # started, not waited for (in order)
        self._expect_reduce = False  # set by a forward that syncs, cleared when every bucket is reduced
        if self.world_size > 1:
            _broadcast_state(module, cap)
            self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.world_size > 1:
            if self._expect_reduce and any(b.ready for b in self._buckets):
                raise dist.DistributedError(self._unfinished())
            if self.broadcast_buffers and self.module.training:
                with no_grad():
                    for m in self.module.modules():
                        for name, b in list(m._buffers.items()):
                            if b is not None:
                                setattr(m, name, dist.broadcast(b, 0))
            self._expect_reduce = (
                self.require_backward_grad_sync and is_grad_enabled() and self.module.training
            )
            self._reset()
        return self.module(*args, **kwargs)

    def _unfinished(self) -> str:
        missing = [
            name
            for name, p in self.module.named_parameters()
            if id(p) in self._bucket_of and id(p) not in self._bucket_of[id(p)].ready
        ]
        return (
            f"DistributedDataParallel.forward (rank {dist.rank()}): the previous backward did not reduce "
            f"every gradient bucket; parameters without a gradient: {', '.join(missing)}. Every parameter "
            "that requires grad must take part in the loss on every process (or set requires_grad=False "
            "on the unused ones before wrapping)"
        )

    # ------------------------------------------------------------------ reduction
    def _grad_ready(self, p: Parameter) -> None:
        """A parameter's gradient is complete: count it, and start every full bucket's reduction
        in order; after the last one, wait for them all."""
        if not self._expect_reduce:
            return
        self._bucket_of[id(p)].ready.add(id(p))
        buckets = self._buckets
        while self._next < len(buckets) and len(buckets[self._next].ready) == len(buckets[self._next].params):
            self._issue(functools.partial(self._start, buckets[self._next]), buckets[self._next].params)
            self._next += 1
        if self._next == len(buckets):
            self._expect_reduce = False
            self._reset()
            self._issue(self._finish, [])

    def _issue(self, work: Any, params: list[Parameter]) -> None:
        """Run `work` now, or, in a trace whose engine cannot put collectives in the program, after
        each call of the compiled program (declaring the gradients it will change)."""
        tracer = tracing.active()
        if tracer is None or getattr(dist._engine, "traces_collectives", False):
            work()
        else:
            tracer.after_call(work, params)

    def _reset(self) -> None:
        for b in self._buckets:
            b.ready.clear()
        self._next = 0

    def _start(self, bucket: _Bucket) -> None:
        grads = [p.grad for p in bucket.params]
        with no_grad():
            self._pending.append((bucket, dist.all_reduce_async(_flat(grads), "sum")))  # type: ignore[arg-type]

    def _finish(self) -> None:
        """Wait for every bucket started, in order, and write the averaged gradients."""
        pending = list(self._pending)
        self._pending.clear()
        with no_grad():
            for bucket, handle in pending:
                grads = [p.grad for p in bucket.params]
                for p, g in zip(bucket.params, _unflat(handle.wait() / self.world_size, grads)):  # type: ignore[arg-type]
                    p.grad = g

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forwards run inside skip the gradient reduction of their backward: gradients accumulate
        locally (gradient accumulation without a collective per micro-batch); the first synced
        backward after it averages the accumulated sums."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous
