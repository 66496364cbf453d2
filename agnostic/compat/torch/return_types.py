"""torch.return_types: the named (values, indices) pairs that max/min/sort/topk with a dim return."""

from __future__ import annotations

from typing import NamedTuple

from agnostic.tensor import Tensor

__all__ = ["max", "min", "sort", "topk"]


class max(NamedTuple):
    values: Tensor
    indices: Tensor


class min(NamedTuple):
    values: Tensor
    indices: Tensor


class sort(NamedTuple):
    values: Tensor
    indices: Tensor


class topk(NamedTuple):
    values: Tensor
    indices: Tensor
