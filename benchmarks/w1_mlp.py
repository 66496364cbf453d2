"""W1 (DESIGN.md): MLP 784-512-512-10, batch 128, cross-entropy, Adam; one full training step
(forward, backward, update). agnostic on a backend against the same model in that backend's own
library: hand-written backprop and Adam in NumPy, torch eager with torch.optim, jax.jit with optax.
`precision="bf16-mixed"` (issue 23 part 4): the same step with the forward under bfloat16 autocast
(NumPy has no native bfloat16 step: no reference there)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import Case
from benchmarks.steps import (
    LR,
    agnostic_adam_case,
    autocast_dtype,
    jax_adam_case,
    jmp_casts,
    on_jax_device,
    torch_adam_case,
)

SIZES = (784, 512, 512, 10)
BATCH = 128


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, SIZES[0])).astype(np.float32), rng.integers(0, SIZES[-1], BATCH)


def flops_per_step() -> float:
    """Model FLOPs of one training step: 2 per weight per example forward, 3x that with backward."""
    return 3 * 2 * BATCH * sum(a * b for a, b in zip(SIZES, SIZES[1:]))


def agnostic_case(
    backend: str, compiled: bool = False, device: str | None = None, precision: str = "32"
) -> Case:
    import agnostic as ag
    from agnostic import nn

    B = ag.backend(backend, device)
    ag.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(SIZES, SIZES[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1], backend=B)
    x, y = (B.tensor(a) for a in data())
    return agnostic_adam_case(backend, model, x, y, ag.cross_entropy, compiled, precision)


def native_case(backend: str, device: str | None = None, precision: str = "32") -> Case | None:
    if backend in ("torch", "jax"):
        return {"torch": _torch, "jax": _jax}[backend](device, precision)
    if autocast_dtype(precision) is not None:  # the hand-written NumPy and CuPy steps are float32
        return None
    return {"numpy": _numpy, "cupy": _cupy}.get(backend, lambda d: None)(device)


def _numpy(device: str | None) -> Case:
    return _hand_written(np, "native numpy (hand-written)", np.asarray, lambda loss: loss)


def _cupy(device: str | None) -> Case:
    import cupy

    with cupy.cuda.Device(int((device or "cuda:0").rpartition(":")[2])):
        return _hand_written(cupy, "native cupy (hand-written)", cupy.asarray, lambda loss: loss.get())


def _hand_written(xp: Any, name: str, put: Any, get: Any) -> Case:
    """The MLP by hand in NumPy or CuPy (`xp`; `put` moves a NumPy array there, `get` reads a
    result back, which waits for it): forward, softmax cross-entropy, backprop, Adam (torch's
    defaults)."""
    rng = np.random.default_rng(0)
    params = []
    for a, b in zip(SIZES, SIZES[1:]):
        bound = 1 / np.sqrt(a)
        params += [
            put(rng.uniform(-bound, bound, (b, a)).astype(np.float32)),
            put(rng.uniform(-bound, bound, b).astype(np.float32)),
        ]
    m = [xp.zeros_like(p) for p in params]
    v = [xp.zeros_like(p) for p in params]
    x, y = (put(a) for a in data())
    rows = xp.arange(BATCH)
    t = [0]

    def step() -> Any:
        acts = [x]
        for i in range(0, len(params), 2):
            z = acts[-1] @ params[i].T + params[i + 1]
            acts.append(xp.maximum(z, 0) if i < len(params) - 2 else z)
        logits = acts[-1]
        shifted = logits - logits.max(1, keepdims=True)
        p = xp.exp(shifted)
        p /= p.sum(1, keepdims=True)
        loss = -xp.log(p[rows, y]).mean()
        g = p
        g[rows, y] -= 1
        g /= BATCH
        grads: list[np.ndarray] = [None] * len(params)  # type: ignore[list-item]
        for i in range(len(params) - 2, -1, -2):
            grads[i], grads[i + 1] = g.T @ acts[i // 2], g.sum(0)
            if i:
                g = (g @ params[i]) * (acts[i // 2] > 0)
        t[0] += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p_, g_, m_, v_ in zip(params, grads, m, v):
            m_ *= b1
            m_ += (1 - b1) * g_
            v_ *= b2
            v_ += (1 - b2) * g_ * g_
            denom = xp.sqrt(v_ / (1 - b2 ** t[0])) + eps
            p_ -= (LR / (1 - b1 ** t[0])) * m_ / denom
        return loss

    return Case(name, step, sync=lambda loss: float(get(loss)))


def _torch(device: str | None, precision: str = "32") -> Case:
    import torch

    dev = torch.device(device or "cpu")
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for a, b in zip(SIZES, SIZES[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(dev)
    x, y = (torch.from_numpy(a).to(dev) for a in data())
    return torch_adam_case(model, x, y, torch.nn.functional.cross_entropy, precision)


@on_jax_device
def _jax(device: str | None, precision: str = "32") -> Case:
    """jax.jit and optax. "bf16-mixed", as jmp users write it: the parameters stay float32 (and
    so do their gradients and Adam); each layer casts its input, weight and bias to bfloat16, so
    the products, bias adds and ReLUs run in bfloat16; the logits are cast back to float32 for the
    softmax cross-entropy and the mean."""
    import jax
    import jax.numpy as jnp
    import optax

    keys = jax.random.split(jax.random.PRNGKey(0), len(SIZES) - 1)
    params = []
    for k, a, b in zip(keys, SIZES, SIZES[1:]):
        bound = 1 / np.sqrt(a)
        kw, kb = jax.random.split(k)
        params.append(
            (
                jax.random.uniform(kw, (b, a), jnp.float32, -bound, bound),  # also with JAX_ENABLE_X64=1
                jax.random.uniform(kb, (b,), jnp.float32, -bound, bound),
            )
        )
    x, y = (jnp.asarray(a) for a in data())
    low, f32 = jmp_casts(precision)

    def loss_fn(params: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = low(h) @ low(w).T + low(b)
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return optax.softmax_cross_entropy_with_integer_labels(f32(h), y).mean()

    return jax_adam_case(params, loss_fn, device, precision=precision)
