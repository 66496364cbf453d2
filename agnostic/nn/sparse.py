"""Embedding: a lookup table with torch.nn.Embedding's layout, initialization and padding row."""

from __future__ import annotations

from typing import Any

import numpy as np

import agnostic.ops as ops
from agnostic import tracing
from agnostic.device import get_default_backend
from agnostic.tensor import Tensor

from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of `weight` (num_embeddings, embedding_dim) picked by integer indices of any shape; the
    output has shape indices.shape + (embedding_dim,). Initialized N(0, 1) from the global seed
    stream (same values on every backend), the `padding_idx` row zeroed; as in torch, that row
    receives no gradient, so it stays whatever it is set to."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype: Any = None
    ) -> None:
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Embedding: {name} must be a non-negative int, got {v!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx={padding_idx} must be within num_embeddings={num_embeddings}"
                )
            padding_idx = padding_idx + num_embeddings if padding_idx < 0 else padding_idx
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        dev = get_default_backend()
        w = dev.normal((num_embeddings, embedding_dim), dtype=dtype)
        if padding_idx is not None:
            row = np.zeros((num_embeddings, 1), dtype=bool)
            row[padding_idx] = True
            w = ops.where(dev.tensor(row), ops.zeros_like(w), w)
        self.weight = Parameter(w)

    def forward(self, indices: Tensor | np.ndarray) -> Tensor:
        """The rows at `indices`: an integer Tensor, or a NumPy integer array (what torch code passes
        as a LongTensor), moved to the weight's backend."""
        if isinstance(indices, np.ndarray):
            indices = ops.asarray(indices, device=self.weight.device)
        if not isinstance(indices, Tensor):
            raise TypeError(
                f"Embedding: indices must be a Tensor, got {type(indices).__name__}; make one on the layer's "
                "backend with ag.asarray(data, device=...) (a NumPy integer array is taken as it is)"
            )
        if indices.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got {indices.dtype.name}")
        if indices.size and not tracing.tracing():  # values are symbolic in a compile trace
            host = indices.numpy()
            lo, hi = int(host.min()), int(host.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise IndexError(f"Embedding: index {bad} is out of range [0, {self.num_embeddings})")
        out = ops.take(self.weight, indices, axis=0)
        if self.padding_idx is None:
            return out
        # the padding row's value, without its gradient: torch's backward skips padding_idx
        held = ops.take(self.weight.detach(), indices, axis=0)
        pad = ops.expand_dims(ops.equal(indices, self.padding_idx), axis=-1)
        return ops.where(pad, held, out)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"
