"""W3's parts one at a time, forward and backward: agnostic against the same part in the backend's
own library, at W3's shapes.

`python -m benchmarks.components` (`--backends jax,torch`, `--windows N`) times, for attention,
layer norm, cross-entropy, the feed-forward block and the embeddings, one gradient step: agnostic
compiled on JAX against jax.jit(jax.value_and_grad(...)), agnostic eager on torch against torch
eager. Each part's output is weighted by a fixed random tensor and summed (cross-entropy is a loss
already), so every input gets a full gradient. A whole step's ratio says how far agnostic is from
native; this says which part the difference is in. It found what the kernel profile of
`benchmarks.kernels` missed: JAX's attention backward took 1.4x jax.grad's (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Case, fix_malloc_thresholds, format_time, measure, paired_ratio
from benchmarks.steps import wait
from benchmarks.w3_lm import LM, W3


@dataclass(frozen=True)
class Part:
    """One part: its float inputs' shapes, its data (labels, ids; `weights`, the shape of the
    output's weighting, if it is not a loss already) and its body in each library, called as
    `body(lib, inputs, data)` with lib the library's functional module."""

    name: str
    shapes: dict[str, tuple[int, ...]]
    agnostic: Callable[..., Any]
    jax: Callable[..., Any]
    torch: Callable[..., Any]
    weights: tuple[int, ...] | None = None
    ints: dict[str, tuple[tuple[int, ...], int]] | None = None  # name: (shape, upper bound)


Step = tuple[Case, Callable[[], dict[str, np.ndarray]]]
"""A timed step and, after it ran, its inputs' gradients."""


def parts(lm: LM = W3) -> list[Part]:
    batch, seq, d, heads, vocab = lm.batch, lm.seq, lm.d, lm.heads, lm.vocab
    head = (batch, heads, seq, d // heads)
    tokens = (batch, seq, d)

    def jax_attention(jnp: Any, p: dict[str, Any], _: Any) -> Any:
        import jax

        causal = jnp.tril(jnp.ones((seq, seq), bool))
        scores = jnp.where(causal, p["q"] @ p["k"].swapaxes(-1, -2) / math.sqrt(head[-1]), -jnp.inf)
        return jax.nn.softmax(scores, axis=-1) @ p["v"]

    def jax_norm(jnp: Any, p: dict[str, Any], _: Any) -> Any:
        h = p["x"]
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) / jnp.sqrt(var + 1e-5) * p["g"] + p["b"]

    def jax_cross_entropy(jnp: Any, p: dict[str, Any], data: dict[str, Any]) -> Any:
        import optax

        return optax.softmax_cross_entropy_with_integer_labels(p["logits"], data["labels"]).mean()

    def jax_feed_forward(jnp: Any, p: dict[str, Any], _: Any) -> Any:
        hidden = jnp.maximum(p["x"] @ p["w1"].T + p["b1"], 0.0)
        return hidden @ p["w2"].T + p["b2"]

    return [
        Part(
            "attention (causal)", dict(q=head, k=head, v=head),
            agnostic=lambda F, p, _: F.scaled_dot_product_attention(p["q"], p["k"], p["v"], is_causal=True),
            jax=jax_attention,
            torch=lambda F, p, _: F.scaled_dot_product_attention(p["q"], p["k"], p["v"], is_causal=True),
            weights=head,
        ),
        Part(
            "layer norm", dict(x=tokens, g=(d,), b=(d,)),
            agnostic=lambda F, p, _: F.layer_norm(p["x"], d, p["g"], p["b"]),
            jax=jax_norm,
            torch=lambda F, p, _: F.layer_norm(p["x"], (d,), p["g"], p["b"]),
            weights=tokens,
        ),
        Part(
            "cross-entropy", dict(logits=(batch * seq, vocab)),
            agnostic=lambda F, p, data: F.cross_entropy(p["logits"], data["labels"]),
            jax=jax_cross_entropy,
            torch=lambda F, p, data: F.cross_entropy(p["logits"], data["labels"]),
            ints=dict(labels=((batch * seq,), vocab)),
        ),
        Part(
            "feed-forward (linear, relu, linear)",
            dict(x=tokens, w1=(4 * d, d), b1=(4 * d,), w2=(d, 4 * d), b2=(d,)),
            agnostic=lambda F, p, _: F.linear(F.relu(F.linear(p["x"], p["w1"], p["b1"])), p["w2"], p["b2"]),
            jax=jax_feed_forward,
            torch=lambda F, p, _: F.linear(F.relu(F.linear(p["x"], p["w1"], p["b1"])), p["w2"], p["b2"]),
            weights=tokens,
        ),
        Part(
            "embeddings (token + position)", dict(tok=(vocab, d), pos=(seq, d)),
            agnostic=lambda F, p, data: p["tok"][data["ids"]] + p["pos"],
            jax=lambda jnp, p, data: p["tok"][data["ids"]] + p["pos"],
            torch=lambda F, p, data: p["tok"][data["ids"]] + p["pos"],
            weights=tokens,
            ints=dict(ids=((batch, seq), vocab)),
        ),
    ]  # fmt: skip


def _arrays(part: Part, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """float32 inputs and the data (the output's weighting as `weights`, integer labels or ids)."""
    rng = np.random.default_rng(seed)
    inputs = {k: rng.standard_normal(s).astype(np.float32) for k, s in part.shapes.items()}
    data = {k: rng.integers(0, high, shape) for k, (shape, high) in (part.ints or {}).items()}
    if part.weights is not None:
        data["weights"] = rng.standard_normal(part.weights).astype(np.float32)
    return inputs, data


def _loss(part: Part, body: Callable[..., Any], lib: Any, p: Any, data: dict[str, Any]) -> Any:
    out = body(lib, p, data)
    return out if part.weights is None else (out * data["weights"]).sum()


def agnostic_step(part: Part, backend: str) -> Step:
    """agnostic's step (compiled on JAX, eager on torch) and its inputs' gradients."""
    import agnostic as ag
    import agnostic.functional as F
    from agnostic import nn

    B = ag.backend(backend)
    arrays, raw = _arrays(part)
    params = {k: nn.Parameter(B.tensor(a)) for k, a in arrays.items()}
    data = {k: B.tensor(a) for k, a in raw.items()}

    step = _backward_step(part, part.agnostic, F, params, data)
    compiled = backend == "jax"  # against jax.jit; torch eager against torch eager
    run = ag.compile(step) if compiled else step
    name = f"agnostic[{backend}]" + (" compiled" if compiled else "")
    case = Case(name, run, sync=lambda value: wait([value.data, *(p.grad.data for p in params.values())]))
    return case, lambda: {k: p.grad.numpy() for k, p in params.items()}


def native_step(part: Part, backend: str) -> Step:
    """The same step in the backend's own library: jax.jit(value_and_grad) or torch eager."""
    arrays, raw = _arrays(part)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        params = {k: jnp.asarray(a) for k, a in arrays.items()}
        data = {k: jnp.asarray(a) for k, a in raw.items()}
        grad = jax.jit(jax.value_and_grad(lambda p: _loss(part, part.jax, jnp, p, data)))
        last: list[Any] = []

        def step() -> Any:
            last[:] = [grad(params)]
            return last[0]

        case = Case("native jax (jit, value_and_grad)", step, sync=lambda out: jax.block_until_ready(out))
        return case, lambda: {k: np.asarray(g) for k, g in last[0][1].items()}
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(a, requires_grad=True) for k, a in arrays.items()}
    data = {k: torch.from_numpy(a) for k, a in raw.items()}

    step = _backward_step(part, part.torch, F, params, data)
    return Case("native torch (eager)", step), lambda: {k: p.grad.numpy() for k, p in params.items()}


def _backward_step(part: Part, body: Callable[..., Any], lib: Any, params: dict[str, Any], data: Any) -> Any:
    """A step of agnostic or torch, whose tensors share the API: gradients cleared, the loss's
    backward run."""

    def step() -> Any:
        for p in params.values():
            p.grad = None
        value = _loss(part, body, lib, params, data)
        value.backward()
        return value

    return step


def largest_difference(part: Part, backend: str) -> float:
    """The largest gap between agnostic's and the native step's gradients (see `difference`)."""
    return difference(agnostic_step(part, backend), native_step(part, backend))


def difference(agnostic: Step, native: Step) -> float:
    """One step of each; the largest gap between their gradients, relative to the native
    gradient's largest entry: the two time the same computation."""
    (ours, our_grads), (theirs, their_grads) = agnostic, native
    ours.sync(ours.step())
    theirs.sync(theirs.step())
    got, want = our_grads(), their_grads()
    return max(float(np.max(np.abs(got[k] - want[k])) / np.max(np.abs(want[k]))) for k in want)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--windows", type=int, default=21)
    parser.add_argument("--window-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    fix_malloc_thresholds()
    print("| part | backend | agnostic | native | agnostic / native | gradients' largest difference |")
    print("|---|---|---|---|---|---|")
    for part in parts():
        for backend in args.backends.split(","):
            agnostic, native = agnostic_step(part, backend), native_step(part, backend)
            gap = difference(agnostic, native)
            (ours, _), (theirs, _) = agnostic, native
            measure([ours, theirs], windows=args.windows, steps=3, window_seconds=args.window_ms / 1e3)
            print(
                f"| {part.name} | {ours.name} | {format_time(ours.median)} | {format_time(theirs.median)} "
                f"| {paired_ratio(ours, theirs):.2f} | {gap:.1e} |"
            )


if __name__ == "__main__":
    main()
