"""MeshDataParallel: data-parallel training over the devices of one process, on JAX.

One process that sees several devices of one platform (GPUs, TPU cores, or host CPU devices from
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) puts the model on a jax Device over all of
them (``ag.backend("jax", device="gpu:*")``, or ``"cpu:0,1"``): its parameters, the optimizer's
state and every tensor made on that Device are replicated on each device. The wrapper splits each
input batch along its first axis over those devices. XLA then partitions every op that meets the
batch (eagerly, op by op, and as one program in an `ag.compile`d step) and inserts the reductions
across it itself: each parameter's gradient comes out of backward summed over the whole batch, so
the replicas stay equal with no process group and no hooks. Statistics over the batch, BatchNorm's
included, are over the whole batch, as under jax.jit with a sharded batch: training equals one
device on the same batch, to float32 rounding (sums are added in another order).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from agnostic import primitives as P
from agnostic.device import Device, backend
from agnostic.nn.module import Module
from agnostic.tensor import Tensor

__all__ = ["MeshDataParallel"]


def mesh_device(module: Module, devices: Sequence[int] | str | Device | None = None) -> Device:
    """The jax Device over `devices` (device numbers, "cpu:0,1", a Device; None: the module's own
    when it is over several devices, else every local device of its platform)."""
    current = module.backend
    if current is None or current.name != "jax":
        where = "has no parameters or buffers" if current is None else f"is on the {current.name} backend"
        raise ValueError(
            f"MeshDataParallel: the model {where}; data parallelism over the devices of one process is "
            "JAX's: build the model on ag.backend('jax', device='gpu:*') (or 'cpu:0,1'). On torch, run "
            "one process per device with torchrun and wrap the model in DistributedDataParallel"
        )
    platform = current.device.partition(":")[0]
    if isinstance(devices, Device):
        return devices
    if devices is None:
        return current if current.ops.mesh is not None else backend("jax", f"{platform}:*")
    if isinstance(devices, str):
        return backend("jax", devices)
    return backend("jax", f"{platform}:{','.join(str(int(d)) for d in devices)}")


class MeshDataParallel(Module):
    """`module` trained data-parallel over the local devices of one JAX process (see the module
    docstring): moved to the Device over `devices` (None: every device of its platform), and called
    with each tensor argument split along its first axis over them. Build the optimizer after
    wrapping (its state is made where the parameters are). The state_dict keys carry the `module.`
    prefix, as DistributedDataParallel's; `.module` is the wrapped model."""

    def __init__(self, module: Module, devices: Sequence[int] | str | Device | None = None) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"MeshDataParallel: expected an agnostic nn.Module, got {type(module).__name__}")
        device = mesh_device(module, devices)
        if device.name != "jax":
            raise ValueError(f"MeshDataParallel: devices must be jax devices, got {device}")
        self.module = module.to(device)
        self.devices = device.device.partition(":")[2].split(",") if device.ops.mesh is not None else []
        """The device numbers the batch is split over (empty: one device, nothing to split)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(
            self.shard(a, f"argument {i}") if isinstance(a, Tensor) else a for i, a in enumerate(args)
        )
        kwargs = {
            k: self.shard(v, f"argument {k!r}") if isinstance(v, Tensor) else v for k, v in kwargs.items()
        }
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """DistributedDataParallel's gradient accumulation, here with nothing to skip: every
        backward's gradients are already summed over the devices inside XLA's program, and sums of
        sums accumulate exactly. So a script written for DistributedDataParallel runs unchanged."""
        yield

    def shard(self, t: Tensor, what: str = "the tensor") -> Tensor:
        """`t`, a batch (its first axis a multiple of the device count), split along its first axis
        over the devices: targets for a loss computed outside the model, say."""
        device = self.module.backend
        assert device is not None
        if t.device is not device:
            raise ValueError(
                f"MeshDataParallel: {what} is on {t.device}, the model on {device}; make the batch there "
                "(DataLoader(..., device=model_device) or x.to(model_device))"
            )
        n = len(self.devices)
        if n == 0:
            return t
        if t.ndim == 0 or t.shape[0] % n:
            rows = "no batch axis (0-d)" if t.ndim == 0 else f"a batch of {t.shape[0]}"
            raise ValueError(
                f"MeshDataParallel: {what} has {rows}, which cannot be split evenly over the {n} devices "
                f"{device.device!r}; use a batch size that is a multiple of {n} (DataLoader(..., "
                "drop_last=True) for the last batch), and pass settings as Python numbers"
            )
        out = Tensor._make(device.ops.shard_batch(t._data), device, t.dtype)
        if P._tracking(t):
            P._record(out, "shard_batch", (t,), lambda g, y: (g,))
        return out
