"""W5: a GPT-2-small-shaped LM at a size this machine trains: pre-norm causal transformer, 4 layers,
d 256, 4 heads of 64 (GPT-2 small: 12 layers, d 768, 12 heads of 64), GELU feed-forward 4d, a final
LayerNorm, seq 128, batch 8, vocab 8192 (GPT-2's 50257 makes the head alone most of the step here),
learned positions, an untied head; next-token cross-entropy, Adam; one full training step. The
network and its native references (torch eager, jax.jit with optax) are W3's `LM` at this size."""

from __future__ import annotations

from benchmarks import w3_lm
from benchmarks.harness import Case

W5 = w3_lm.LM(vocab=8192, d=256, heads=4, layers=4, seq=128, batch=8, norm_first=True, activation="gelu")


def flops_per_step() -> float:
    return W5.flops_per_step()


def agnostic_case(backend: str, compiled: bool = False, device: str | None = None) -> Case:
    return w3_lm.agnostic_case(backend, compiled, device, W5)


def native_case(backend: str, device: str | None = None) -> Case | None:
    return w3_lm.native_case(backend, device, W5)
