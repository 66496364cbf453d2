"""The main job: a small network trained with autodiff and plain gradient descent.

Two interleaved spirals (generated, nothing downloaded) are classified by a 2-64-64-2 MLP written
with nothing but tensor ops, `ag.value_and_grad` and a hand-written SGD step.
"""

from __future__ import annotations

import math
import time

import numpy as np

import agnostic as ag


def spirals(n_per_class: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane: (2n, 2) float32 points and (2n,) int64 labels."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n_per_class)) * 3 * math.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * math.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, noise, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    return x.astype(np.float32), y


def init_mlp(backend: ag.Device, sizes: list[int], seed: int) -> list[dict[str, ag.Tensor]]:
    """Layers with PyTorch's default Linear initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    gen = ag.Generator(seed)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        layers.append(
            {
                "w": backend.uniform((fan_in, fan_out), -bound, bound, generator=gen),
                "b": backend.uniform((fan_out,), -bound, bound, generator=gen),
            }
        )
    return layers


def forward(layers: list[dict[str, ag.Tensor]], x: ag.Tensor) -> ag.Tensor:
    for i, layer in enumerate(layers):
        x = x @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            x = ag.tanh(x)
    return x


def loss_fn(layers: list[dict[str, ag.Tensor]], x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
    return ag.cross_entropy(forward(layers, x), y)


def accuracy(layers: list[dict[str, ag.Tensor]], x: ag.Tensor, y: ag.Tensor) -> float:
    with ag.no_grad():
        pred = ag.argmax(forward(layers, x), axis=1)
    return float(ag.mean((pred == y).astype(ag.float32)).item())


def run(
    backend: str | ag.Device = "numpy",
    steps: int = 1500,
    lr: float = 0.5,
    seed: int = 0,
    log_every: int = 150,
) -> dict:
    """Train and print the loss as it falls; returns the first/last loss and test accuracy."""
    B = ag.backend(backend)
    x_train, y_train = spirals(500, 0.02, seed)
    x_test, y_test = spirals(250, 0.02, seed + 1)
    xt, yt = B.tensor(x_train), B.tensor(y_train)
    xv, yv = B.tensor(x_test), B.tensor(y_test)
    layers = init_mlp(B, [2, 64, 64, 2], seed)
    step_fn = ag.value_and_grad(loss_fn, argnums=0)
    print(f"agnostic demo: 2-64-64-2 MLP on two spirals, backend={B.name}, {steps} steps of gradient descent")
    start = time.perf_counter()
    first = last = float("nan")
    for step in range(1, steps + 1):
        loss, grads = step_fn(layers, xt, yt)
        layers = [{k: p[k] - lr * g[k] for k in p} for p, g in zip(layers, grads)]
        last = loss.item()
        if step == 1:
            first = last
        if step == 1 or step % log_every == 0:
            print(f"  step {step:5d}  loss {last:.4f}")
    seconds = time.perf_counter() - start
    acc = accuracy(layers, xv, yv)
    print(
        f"loss {first:.4f} -> {last:.4f}; test accuracy {acc:.1%}; {seconds:.1f} s ({1e3 * seconds / steps:.2f} ms/step)"
    )
    return {"first_loss": first, "last_loss": last, "test_accuracy": acc, "seconds": seconds}
