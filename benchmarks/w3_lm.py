"""W3 (DESIGN.md): causal transformer LM, 2 layers, d=128, 4 heads, seq 64, batch 16, vocab 256
(token + learned position embeddings, post-norm encoder layers with ReLU feed-forward 4d, dropout 0,
a linear head), next-token cross-entropy, Adam; one full training step. Native references: torch
eager (torch.nn.TransformerEncoder, torch.optim) and the same network written in jax.numpy under
jax.jit with optax."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.harness import Case
from benchmarks.steps import agnostic_adam_case, jax_adam_case, torch_adam_case

VOCAB, D, HEADS, LAYERS, SEQ, BATCH = 256, 128, 4, 2, 64, 16


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(seed).integers(0, VOCAB, (BATCH, SEQ + 1))
    return ids[:, :-1], ids[:, 1:]


def _lm(nn: Any, positions: Any, mask: Any) -> Any:
    """The model class for agnostic.nn or torch.nn (same layers, names and layouts)."""

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, D), nn.Embedding(SEQ, D)
            layer = nn.TransformerEncoderLayer(D, HEADS, 4 * D, dropout=0.0, batch_first=True)
            quiet = {"enable_nested_tensor": False} if nn.__name__ == "torch.nn" else {}  # torch's warning
            self.encoder = nn.TransformerEncoder(layer, LAYERS, **quiet)
            self.head = nn.Linear(D, VOCAB)

        def forward(self, ids: Any) -> Any:
            x = self.tok(ids) + self.pos(positions)
            return self.head(self.encoder(x, mask=mask, is_causal=True))

    return LM


def agnostic_case(backend: str, compiled: bool = False) -> Case:
    import agnostic as ag
    from agnostic import nn

    B = ag.backend(backend)
    ag.manual_seed(0)
    mask = nn.Transformer.generate_square_subsequent_mask(SEQ, device=B)
    model = _lm(nn, ag.arange(SEQ, device=B), mask)(backend=B)
    x, y = (B.tensor(a) for a in data())
    return agnostic_adam_case(
        backend, model, x, y, lambda out, y: ag.cross_entropy(out.reshape(-1, VOCAB), y.reshape(-1)), compiled
    )


def native_case(backend: str) -> Case | None:
    return {"torch": _torch, "jax": _jax}.get(backend, lambda: None)()


def _torch() -> Case:
    import torch

    torch.manual_seed(0)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(SEQ)
    model = _lm(torch.nn, torch.arange(SEQ), mask)()
    x, y = (torch.from_numpy(a) for a in data())
    ce = torch.nn.functional.cross_entropy
    return torch_adam_case(model, x, y, lambda out, y: ce(out.reshape(-1, VOCAB), y.reshape(-1)))


def _jax() -> Case:
    import jax
    import jax.numpy as jnp
    import optax

    F32 = jnp.float32  # explicit: agnostic's JAX backend turns on x64, so defaults would be float64
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 4 + 4 * LAYERS))

    def dense(n_out: int, n_in: int) -> tuple[Any, Any]:
        return jax.random.normal(next(keys), (n_out, n_in), F32) / math.sqrt(n_in), jnp.zeros(n_out, F32)

    params = {
        "tok": jax.random.normal(next(keys), (VOCAB, D), F32),
        "pos": jax.random.normal(next(keys), (SEQ, D), F32),
        "layers": [
            {
                "qkv": dense(3 * D, D),
                "out": dense(D, D),
                "ff1": dense(4 * D, D),
                "ff2": dense(D, 4 * D),
                "n1": (jnp.ones(D, F32), jnp.zeros(D, F32)),
                "n2": (jnp.ones(D, F32), jnp.zeros(D, F32)),
            }
            for _ in range(LAYERS)
        ],
        "head": dense(VOCAB, D),
    }
    causal = jnp.tril(jnp.ones((SEQ, SEQ), bool))
    x, y = (jnp.asarray(a) for a in data())

    def linear(h: Any, wb: tuple[Any, Any]) -> Any:
        return h @ wb[0].T + wb[1]

    def norm(h: Any, gb: tuple[Any, Any]) -> Any:
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) / jnp.sqrt(var + 1e-5) * gb[0] + gb[1]

    def attention(h: Any, p: Any) -> Any:
        q, k, v = jnp.split(linear(h, p["qkv"]), 3, axis=-1)
        heads = lambda t: t.reshape(BATCH, SEQ, HEADS, D // HEADS).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        scores = jnp.where(causal, q @ k.transpose(0, 1, 3, 2) / math.sqrt(D // HEADS), -jnp.inf)
        out = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(BATCH, SEQ, D)
        return linear(out, p["out"])

    def loss_fn(p: Any) -> Any:
        h = p["tok"][x] + p["pos"]
        for layer in p["layers"]:
            h = norm(h + attention(h, layer), layer["n1"])
            h = norm(h + linear(jax.nn.relu(linear(h, layer["ff1"])), layer["ff2"]), layer["n2"])
        logits = linear(h, p["head"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax_adam_case(params, loss_fn)
