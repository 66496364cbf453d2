"""W3 (DESIGN.md): causal transformer LM, 2 layers, d=128, 4 heads, seq 64, batch 16, vocab 256
(token + learned position embeddings, post-norm encoder layers with ReLU feed-forward 4d, dropout 0,
a linear head), next-token cross-entropy, Adam; one full training step. Native references: torch
eager (torch.nn.TransformerEncoder, torch.optim) and the same network written in jax.numpy under
jax.jit with optax. `LM` describes the network, so the GPT-style model of `benchmarks.gpu` (pre-norm,
GELU, a final norm, bfloat16) is the same code at another size.

Issue 23: `precision="bf16-mixed"` runs the forward and the loss under bfloat16 autocast (float32
parameters; JAX: the casts jmp users write, see `_jax`), and `LM(checkpoint=True)` recomputes every
encoder layer in the backward (agnostic's `nn.utils.checkpoint`, torch's
`torch.utils.checkpoint.checkpoint(..., use_reentrant=False)`, `jax.checkpoint`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Case
from benchmarks.steps import agnostic_adam_case, jax_adam_case, jmp_casts, on_jax_device, torch_adam_case


@dataclass(frozen=True)
class LM:
    """A causal transformer LM: sizes, layer style and the float dtype it trains in."""

    vocab: int = 256
    d: int = 128
    heads: int = 4
    layers: int = 2
    seq: int = 64
    batch: int = 16
    norm_first: bool = False  # pre-norm (GPT) with a final LayerNorm, else post-norm
    activation: str = "relu"
    dtype: str = "float32"  # the parameters' (and, without autocast, the computation's)
    checkpoint: bool = False  # recompute each encoder layer in the backward, keeping only its input

    def flops_per_step(self) -> float:
        """Model FLOPs of one training step (forward and backward: 3x the forward's): the dense
        products (2 per weight per token) and attention's scores and weighted sum (2 x seq x d
        each per token per layer, the causal half not discounted), as PaLM's MFU counts."""
        dense = self.layers * 12 * self.d * self.d + self.d * self.vocab
        attention = self.layers * 2 * self.seq * self.d
        return 3 * 2 * (dense + attention) * self.batch * self.seq


W3 = LM()


def data(seed: int = 0, lm: LM = W3) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(seed).integers(0, lm.vocab, (lm.batch, lm.seq + 1))
    return ids[:, :-1], ids[:, 1:]


def _lm(nn: Any, positions: Any, mask: Any, lm: LM, checkpoint: Any = None) -> Any:
    """The model class for agnostic.nn or torch.nn (same layers, names and layouts);
    `checkpoint(fn, x)` is the library's activation checkpointing, used when `lm.checkpoint`."""

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(lm.vocab, lm.d), nn.Embedding(lm.seq, lm.d)
            layer = nn.TransformerEncoderLayer(
                lm.d, lm.heads, 4 * lm.d, dropout=0.0, activation=lm.activation, batch_first=True,
                norm_first=lm.norm_first,
            )  # fmt: skip
            final = nn.LayerNorm(lm.d) if lm.norm_first else None
            quiet = {"enable_nested_tensor": False} if nn.__name__ == "torch.nn" else {}  # torch's warning
            self.encoder = nn.TransformerEncoder(layer, lm.layers, norm=final, **quiet)
            self.head = nn.Linear(lm.d, lm.vocab)

        def forward(self, ids: Any) -> Any:
            x = self.tok(ids) + self.pos(positions)
            if not lm.checkpoint:
                return self.head(self.encoder(x, mask=mask, is_causal=True))
            for layer in self.encoder.layers:  # what TransformerEncoder.forward does, checkpointed
                x = checkpoint(functools.partial(layer, src_mask=mask, is_causal=True), x)
            return self.head(x if self.encoder.norm is None else self.encoder.norm(x))

    return Model


def agnostic_case(
    backend: str, compiled: bool = False, device: str | None = None, lm: LM = W3, precision: str = "32"
) -> Case:
    import agnostic as ag
    from agnostic import nn

    B = ag.backend(backend, device)
    dtype = getattr(ag, lm.dtype)
    ag.manual_seed(0)
    mask = nn.Transformer.generate_square_subsequent_mask(lm.seq, device=B, dtype=dtype)
    model = _lm(nn, ag.arange(lm.seq, device=B), mask, lm, nn.utils.checkpoint)(backend=B).to(dtype=dtype)
    x, y = (B.tensor(a) for a in data(lm=lm))
    vocab = lm.vocab
    return agnostic_adam_case(
        backend,
        model,
        x,
        y,
        lambda out, y: ag.cross_entropy(out.reshape(-1, vocab), y.reshape(-1)),
        compiled,
        precision,
    )


def native_case(backend: str, device: str | None = None, lm: LM = W3, precision: str = "32") -> Case | None:
    return {"torch": _torch, "jax": _jax}.get(backend, lambda device, lm, p: None)(device, lm, precision)


def _torch(device: str | None, lm: LM, precision: str = "32") -> Case:
    import torch
    import torch.utils.checkpoint

    dev, dtype = torch.device(device or "cpu"), getattr(torch, lm.dtype)
    torch.manual_seed(0)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(lm.seq, device=dev, dtype=dtype)
    checkpoint = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    model = _lm(torch.nn, torch.arange(lm.seq, device=dev), mask, lm, checkpoint)().to(dev, dtype)
    x, y = (torch.from_numpy(a).to(dev) for a in data(lm=lm))
    ce = torch.nn.functional.cross_entropy
    return torch_adam_case(
        model, x, y, lambda out, y: ce(out.reshape(-1, lm.vocab), y.reshape(-1)), precision
    )


@on_jax_device
def _jax(device: str | None, lm: LM, precision: str = "32") -> Case:
    """The network of `jax_model` under jax.jit, optax's Adam."""
    params, loss_fn = jax_model(lm, precision)
    return jax_adam_case(params, loss_fn, device, lm.dtype, precision)


def jax_model(lm: LM, precision: str = "32") -> tuple[Any, Any]:
    """(params, loss_fn(params)) of the network in jax.numpy, on W3's batch. "bf16-mixed", as jmp users write it
    (Haiku's recipe: LayerNorm kept in float32): the parameters, gradients and Adam stay float32;
    each linear layer casts its input, weight and bias to bfloat16 (so the products, the ReLU/GELU
    and the attention's score and value products run in bfloat16); the attention scores are cast to
    float32 for the mask and softmax, the probabilities back to bfloat16; the embeddings, the
    residual stream (float32 + bfloat16 promotes to float32) and the LayerNorms are float32; the
    logits are cast to float32 for the softmax cross-entropy. `lm.checkpoint`: each layer under
    `jax.checkpoint`."""
    import jax
    import jax.numpy as jnp
    import optax

    # explicit: with JAX_ENABLE_X64=1 the defaults are float64
    F = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[lm.dtype]
    D, SEQ, BATCH, HEADS = lm.d, lm.seq, lm.batch, lm.heads
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 4 + 4 * lm.layers))

    def dense(n_out: int, n_in: int) -> tuple[Any, Any]:
        return jax.random.normal(next(keys), (n_out, n_in), F) / math.sqrt(n_in), jnp.zeros(n_out, F)

    def norm_params() -> tuple[Any, Any]:
        return jnp.ones(D, F), jnp.zeros(D, F)

    params: dict[str, Any] = {
        "tok": jax.random.normal(next(keys), (lm.vocab, D), F),
        "pos": jax.random.normal(next(keys), (SEQ, D), F),
        "layers": [
            {
                "qkv": dense(3 * D, D),
                "out": dense(D, D),
                "ff1": dense(4 * D, D),
                "ff2": dense(D, 4 * D),
                "n1": norm_params(),
                "n2": norm_params(),
            }
            for _ in range(lm.layers)
        ],
        "head": dense(lm.vocab, D),
    }
    if lm.norm_first:
        params["final"] = norm_params()
    causal = jnp.tril(jnp.ones((SEQ, SEQ), bool))
    x, y = (jnp.asarray(a) for a in data(lm=lm))
    act = {"relu": jax.nn.relu, "gelu": lambda h: jax.nn.gelu(h, approximate=False)}[lm.activation]
    low, f32 = jmp_casts(precision)

    def linear(h: Any, wb: tuple[Any, Any]) -> Any:
        return low(h) @ low(wb[0]).T + low(wb[1])

    def norm(h: Any, gb: tuple[Any, Any]) -> Any:
        h = f32(h)
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) / jnp.sqrt(var + 1e-5) * gb[0] + gb[1]

    def attention(h: Any, p: Any) -> Any:
        q, k, v = jnp.split(linear(h, p["qkv"]), 3, axis=-1)
        heads = lambda t: t.reshape(BATCH, SEQ, HEADS, D // HEADS).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        scores = jnp.where(causal, f32(q @ k.transpose(0, 1, 3, 2)) / math.sqrt(D // HEADS), -jnp.inf)
        out = (low(jax.nn.softmax(scores, axis=-1)) @ v).transpose(0, 2, 1, 3).reshape(BATCH, SEQ, D)
        return linear(out, p["out"])

    def feed_forward(h: Any, p: Any) -> Any:
        return linear(act(linear(h, p["ff1"])), p["ff2"])

    def block(h: Any, layer: Any) -> Any:
        if lm.norm_first:  # torch's norm_first: x + block(norm(x))
            h = h + attention(norm(h, layer["n1"]), layer)
            return h + feed_forward(norm(h, layer["n2"]), layer)
        h = norm(h + attention(h, layer), layer["n1"])
        return norm(h + feed_forward(h, layer), layer["n2"])

    if lm.checkpoint:
        block = jax.checkpoint(block)

    def loss_fn(p: Any) -> Any:
        h = p["tok"][x] + p["pos"]
        for layer in p["layers"]:
            h = block(h, layer)
        if lm.norm_first:
            h = norm(h, p["final"])
        logits = linear(h, p["head"])
        return optax.softmax_cross_entropy_with_integer_labels(f32(logits), y).mean()

    return params, loss_fn
