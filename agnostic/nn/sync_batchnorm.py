"""torch.nn.SyncBatchNorm: batch normalization whose training statistics are those of the union of
every process's batch, and `SyncBatchNorm.convert_sync_batchnorm(module)` to switch a model's
BatchNorm layers to it.

In training mode with more than one process, the per-channel sum, sum of squares and element count
of the local batch travel in one `agnostic.distributed.all_reduce` (sum); the global mean and
(biased) variance normalize the local batch, and the global unbiased variance updates the running
statistics, as torch's SyncBatchNorm does. The all-reduce is recorded in the autodiff graph: its
vector-Jacobian product is an all-reduce (sum) of the incoming cotangent, so every process's input
gradient includes the other processes' losses through the shared statistics (torch's backward
all-reduces the same two sums). With one process (no process group) it is BatchNorm exactly; in eval
mode it uses the running statistics and communicates nothing.

agnostic.distributed sits above nn in the layers, so it is imported inside `forward`, on first use.
"""

from __future__ import annotations

from typing import Any

import agnostic.functional as F
from agnostic import dtypes, ops, tracing
from agnostic import primitives as P
from agnostic.tensor import Tensor

from .module import Module
from .normalization import _BatchNorm

__all__ = ["SyncBatchNorm"]


def _all_reduce_sum(t: Tensor) -> Tensor:
    """`distributed.all_reduce(t, "sum")`, differentiable: the adjoint of a sum over processes is the
    sum over processes of the cotangents (itself differentiable, so higher derivatives work)."""
    from agnostic import distributed as dist

    out = dist.all_reduce(t.detach(), "sum")
    if P._tracking(t):
        P._record(out, "all_reduce", (t,), lambda g, y: (_all_reduce_sum(g),))
    return out


class SyncBatchNorm(_BatchNorm):
    """torch.nn.SyncBatchNorm over (N, C, *): BatchNorm whose training statistics are computed over
    every process's batch. Same parameters, buffers and state_dict names as BatchNorm. Only the
    default process group (`process_group=None`) exists in agnostic."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, process_group: Any = None, dtype: Any = None, *,
        bias: bool = True,
    ) -> None:  # fmt: skip
        if process_group is not None:
            raise ValueError(
                "SyncBatchNorm: process_group must be None (agnostic.distributed has one process group, "
                f"the one distributed.init() joined), got {process_group!r}"
            )
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias=bias)
        self.process_group = None

    def forward(self, x: Tensor) -> Tensor:
        from agnostic import distributed as dist

        if x.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected input (N, C, *) of at least 2D, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm: expected {self.num_features} channels at axis 1, got shape {x.shape}"
            )
        if not self.training and self.running_mean is not None:  # running statistics: no communication
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, self.eps
            )
        if not self.training or dist.world_size() == 1:  # BatchNorm's own path, bit for bit
            if self.training and self.track_running_stats:
                self._update_running_stats(x)
            return F.batch_norm(x, None, None, self.weight, self.bias, True, self.eps)
        mean, var, count = self._global_stats(x, dist)
        if self.track_running_stats:
            self._update_global_running_stats(mean, var, count)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, self.eps)

    def _global_stats(self, x: Tensor, dist: Any) -> tuple[Tensor, Tensor, Tensor]:
        """The mean and biased variance per channel over every process's batch (differentiable
        with respect to this process's `x`), and the global count per channel."""
        if not x.dtype.is_floating:
            raise TypeError(
                f"SyncBatchNorm: input must be floating point, got {x.dtype.name}; cast it first "
                "(x.astype('float32'))"
            )
        c = self.num_features
        axes = tuple(i for i in range(x.ndim) if i != 1)
        xs = x if x.dtype.itemsize >= 4 else x.astype(dtypes.float32)  # half sums overflow
        count = ops.full((1,), float(x.size // c), dtype=xs.dtype, device=x.device)
        try:
            stats = _all_reduce_sum(ops.concat([xs.sum(axis=axes), (xs * xs).sum(axis=axes), count]))
        except dist.DistributedError as e:
            raise dist.DistributedError(f"SyncBatchNorm (rank {dist.rank()}): {e}") from e
        total = stats[2 * c]
        if not tracing.tracing() and total.item() <= 1:
            raise ValueError(
                f"SyncBatchNorm (rank {dist.rank()}): need more than 1 value per channel over all "
                f"{dist.world_size()} processes when training, got {int(total.item())} (this process's "
                f"input {x.shape}); use larger batches, or eval mode"
            )
        mean = stats[:c] / total
        var = ops.maximum(stats[c : 2 * c] / total - mean * mean, 0.0)  # rounding may dip below 0
        if xs is not x:
            mean, var = mean.astype(x.dtype), var.astype(x.dtype)
        return mean, var, total

    def _update_global_running_stats(self, mean: Tensor, var: Tensor, count: Tensor) -> None:
        """BatchNorm's update with the global mean and the global unbiased variance (var * n / (n - 1))."""
        n = count.detach()
        self._blend_running_stats(mean, var.detach() * (n / (n - 1.0)).astype(var.dtype))

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """`module` with every BatchNorm layer (BatchNorm1d, BatchNorm2d, ... at any depth) replaced by
        a SyncBatchNorm holding the same Parameter objects, running statistics and train/eval mode;
        a BatchNorm passed in directly is returned converted. Other modules are kept and changed in
        place."""
        if process_group is not None:
            raise ValueError(
                "SyncBatchNorm.convert_sync_batchnorm: process_group must be None (agnostic.distributed "
                f"has one process group), got {process_group!r}"
            )
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            state = module.weight if module.weight is not None else module.running_mean
            kwargs: dict[str, Any] = {"bias": module.bias is not None}
            if state is not None:
                kwargs.update(dtype=state.dtype, backend=module.backend)
            out = cls(
                module.num_features, module.eps, module.momentum, module.affine,
                module.track_running_stats, **kwargs,
            )  # fmt: skip
            if module.affine:
                out.weight = module.weight
                if module.bias is not None:
                    out.bias = module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(out, name, getattr(module, name))
            out.training = module.training
        for name, child in list(module.named_children()):
            out.add_module(name, cls.convert_sync_batchnorm(child))
        return out
