"""Metrics that accumulate on the device and are read once per epoch.

`update` adds a batch with tensor ops only, so an asynchronous backend (JAX, CUDA) is not made to
wait for the host on every step; `compute` reads the result (one host transfer). Their state is
plain (tensors and ints), so a mid-epoch checkpoint carries a half-finished epoch's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import agnostic as ag
from agnostic.tensor import Tensor

__all__ = ["Metric", "Mean", "Accuracy", "TopKAccuracy"]


class Metric:
    """A figure over an epoch: `reset`, `update(output, target)` per batch, `compute()` at the end.
    `name` is the column it gets in the history (validation prefixes it with "val_")."""

    name = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, output: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def sync(self, sum_over_processes: Callable[[Tensor | float], Tensor]) -> None:
        """Make the running state that of every process together (data-parallel training: each
        process updated it with its own shard of the data). `sum_over_processes` sums a value over
        the processes (an all-reduce); a metric whose state is not a sum of per-sample terms
        overrides this."""
        raise NotImplementedError(
            f"{type(self).__name__}.sync: this metric does not say how to combine its state over "
            "processes; define sync() to train it data-parallel"
        )

    def state_dict(self) -> dict[str, Any]:
        """The running state (for checkpoints taken mid-epoch)."""
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s values: only the names this metric has (a checkpoint is data; it
        does not get to set other attributes)."""
        if not isinstance(state, dict) or set(state) != set(vars(self)):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected the keys {sorted(vars(self))}, got {got}"
            )
        vars(self).update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _Ratio(Metric):
    """A sum (a device tensor, or 0 before the first batch) over a count (a host int)."""

    def reset(self) -> None:
        self.total: Tensor | float = 0.0
        self.count = 0

    def sync(self, sum_over_processes: Callable[[Tensor | float], Tensor]) -> None:
        self.total = sum_over_processes(self.total)
        self.count = int(sum_over_processes(self.count))

    def compute(self) -> float:
        if self.count == 0:
            return float("nan")
        return float(self.total) / self.count


class Mean(_Ratio):
    """The mean of a per-batch value weighted by batch size: the epoch loss."""

    def __init__(self, name: str = "loss") -> None:
        self.name = name
        super().__init__()

    def update(self, value: Tensor, weight: int) -> None:  # type: ignore[override]
        self.total = self.total + value.detach() * weight
        self.count += int(weight)


def _class_axis(output: Tensor, target: Tensor, axis: int, who: str) -> int:
    if output.ndim != target.ndim + 1:
        raise ValueError(
            f"{who}: output {output.shape} must have one more dimension (the class scores) than target "
            f"{target.shape}, which holds class indices"
        )
    axis = axis % output.ndim
    expected = output.shape[:axis] + output.shape[axis + 1 :]
    if expected != target.shape:
        raise ValueError(
            f"{who}: output {output.shape} with classes on axis {axis} does not fit target {target.shape}"
        )
    return axis


class Accuracy(_Ratio):
    """The fraction of samples whose highest-scoring class is the target class.

    `output` holds class scores (logits or probabilities) with classes on `axis` (default -1: (N, C)
    and sequence models' (N, T, C) alike) and `target` class indices. With `threshold=`, `output` and
    `target` have the same shape and it is binary accuracy: `output > threshold` against `target`
    (threshold 0.0 for logits, 0.5 for probabilities).
    """

    def __init__(self, axis: int = -1, threshold: float | None = None, name: str = "accuracy") -> None:
        self.axis, self.threshold, self.name = axis, threshold, name
        super().__init__()

    def update(self, output: Tensor, target: Tensor) -> None:
        output, target = output.detach(), target.detach()
        if self.threshold is not None:
            if output.shape != target.shape:
                raise ValueError(
                    f"Accuracy(threshold=...): output {output.shape} and target {target.shape} must have the same shape"
                )
            hits = (output > self.threshold) == (target > 0.5)
        else:
            axis = _class_axis(output, target, self.axis, "Accuracy")
            hits = ag.argmax(output, axis=axis) == target
        self.total = self.total + ag.sum(hits.astype(ag.int64))
        self.count += hits.size


class TopKAccuracy(_Ratio):
    """The fraction of samples whose target class is among the `k` highest scores (ties count in the
    target's favour: its rank is the number of classes scoring strictly higher)."""

    def __init__(self, k: int = 5, axis: int = -1, name: str | None = None) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be an int >= 1, got {k!r}")
        self.k, self.axis, self.name = k, axis, name or f"top{k}_accuracy"
        super().__init__()

    def update(self, output: Tensor, target: Tensor) -> None:
        output, target = output.detach(), target.detach()
        axis = _class_axis(output, target, self.axis, "TopKAccuracy")
        if self.k > output.shape[axis]:
            raise ValueError(f"TopKAccuracy: k={self.k} but output has only {output.shape[axis]} classes")
        target_score = ag.take_along_axis(output, ag.expand_dims(target, axis=axis), axis=axis)
        rank = ag.sum((output > target_score).astype(ag.int64), axis=axis)
        self.total = self.total + ag.sum((rank < self.k).astype(ag.int64))
        self.count += target.size
