"""Per-op overhead on small tensors: agnostic's call against the backend library's own call on the
same native arrays (a 4x4 add, a 4x4 matmul, and a chain of 20 elementwise ops)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import Case

CHAIN = 20


def _chain(x: Any, y: Any, exp: Any, tanh: Any) -> Any:
    """20 elementwise ops: (+, *, tanh, exp, -) x 4."""
    for _ in range(CHAIN // 5):
        x = tanh(x + y) * y
        x = exp(x) - y
    return x


def cases(backend: str) -> list[tuple[str, Case, Case]]:
    """(what, agnostic case, native case) triples for `backend`."""
    import agnostic as ag

    B = ag.backend(backend)
    a = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    x, y = B.tensor(a), B.tensor(a.T.copy())
    nx, ny = x.data, y.data
    lib = _native(backend)
    sync = _sync(backend)
    return [
        (
            "add 4x4",
            Case("agnostic", lambda: x + y, lambda r: sync(r.data)),
            Case("native", lambda: nx + ny, sync),
        ),
        (
            "matmul 4x4",
            Case("agnostic", lambda: x @ y, lambda r: sync(r.data)),
            Case("native", lambda: lib.matmul(nx, ny), sync),
        ),
        (
            f"{CHAIN}-op elementwise chain",
            Case("agnostic", lambda: _chain(x, y, ag.exp, ag.tanh), lambda r: sync(r.data)),
            Case("native", lambda: _chain(nx, ny, lib.exp, lib.tanh), sync),
        ),
    ]


def _native(backend: str) -> Any:
    if backend == "torch":
        import torch

        return torch
    if backend == "jax":
        import jax.numpy as jnp

        return jnp
    return np


def _sync(backend: str) -> Any:
    if backend == "jax":
        return lambda r: r.block_until_ready()
    return lambda r: r
