"""A character-level causal transformer language model on text that ships with Python, on any backend.

    python examples/char_lm.py --backend numpy     # or torch, jax, cupy

The text is the docstrings of a few pure-Python standard-library modules, read from their source
files with `ast` (nothing is downloaded, and it works under `python -OO` too). Model, optimizer and
data pipeline are agnostic's: token and learned position embeddings, a pre-norm
nn.TransformerEncoder with a causal mask, a LayerNorm and a Linear head; AdamW with a linear
warm-up then cosine decay, gradient clipping, and a seeded DataLoader, so one seed gives the same
initial model and the same batches on every backend. It then samples text from a prompt with
agnostic ops on the chosen backend.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import time

import numpy as np

import agnostic as ag
from agnostic import nn, optim
from agnostic.data import DataLoader, TensorDataset

# prose-heavy modules; any that is missing or has no source file (frozen, C) is skipped
MODULES = (
    "textwrap", "difflib", "argparse", "collections", "functools", "json", "logging", "statistics",
    "random", "fractions", "heapq", "dataclasses", "contextlib", "shutil", "tempfile", "typing",
)  # fmt: skip


def stdlib_text(modules: tuple[str, ...] = MODULES) -> str:
    """The docstrings (module, class, function) of `modules`, parsed from their source files, so the
    text is the same whether or not Python strips docstrings (-OO)."""
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        docs = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
        parts.extend(d for d in docs if d and len(d) >= 40)
    return "\n\n".join(parts)


class Vocab:
    """Characters of the text, in sorted order, and the maps between them and integer ids."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids: list[int] | np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (input, next-character target) pairs, each (N, seq_len)."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return x, y


class CharTransformer(nn.Module):
    """Token + position embeddings -> pre-norm causal TransformerEncoder -> LayerNorm -> Linear."""

    def __init__(
        self, vocab_size: int, seq_len: int, d_model: int = 96, num_heads: int = 4, num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.seq_len = seq_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        for emb in (self.tok, self.pos):  # GPT-2's small embeddings, not Embedding's N(0, 1)
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, ids: ag.Tensor) -> ag.Tensor:
        """ids (N, L) with L <= seq_len -> logits (N, L, vocab)."""
        length = ids.shape[1]
        positions = ag.arange(length, device=ids.device)
        x = self.tok(ids) + self.pos(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        x = self.blocks(x, mask=mask, is_causal=True)
        return self.head(self.norm(x))


def lm_loss(model: nn.Module, x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
    logits = model(x)
    return ag.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Mean next-character cross-entropy (nats) over a loader, in eval mode without a graph."""
    model.eval()
    total = count = 0.0
    with ag.no_grad():
        for xb, yb in loader:
            total += lm_loss(model, xb, yb).item() * xb.shape[0]
            count += xb.shape[0]
    model.train()
    return total / count
