"""W2 (DESIGN.md): conv3x3(32)-relu-maxpool-conv3x3(64)-relu-maxpool-linear(10) on 1x28x28, batch
64, cross-entropy, Adam; one full training step. Native references: torch eager with torch.optim,
jax.jit with optax (NumPy has no native reference for W2: the issue asks for W1 only).
`precision="bf16-mixed"` (issue 23 part 4): the same step with the forward under bfloat16 autocast."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import Case
from benchmarks.steps import agnostic_adam_case, jax_adam_case, jmp_casts, on_jax_device, torch_adam_case

BATCH = 64


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, BATCH)


def _layers(nn: Any) -> list[Any]:
    """The same layer list from agnostic.nn or torch.nn (same names, same layouts)."""
    return [
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
    ]  # fmt: skip


def flops_per_step() -> float:
    """Model FLOPs of one training step: each convolution's and the linear layer's products, 2
    per multiply-add forward, 3x that with backward."""
    conv1 = 28 * 28 * 32 * 1 * 9
    conv2 = 14 * 14 * 64 * 32 * 9
    linear = 64 * 7 * 7 * 10
    return 3 * 2 * BATCH * (conv1 + conv2 + linear)


def agnostic_case(
    backend: str, compiled: bool = False, device: str | None = None, precision: str = "32"
) -> Case:
    import agnostic as ag
    from agnostic import nn

    B = ag.backend(backend, device)
    ag.manual_seed(0)
    model = nn.Sequential(*_layers(nn), backend=B)
    x, y = (B.tensor(a) for a in data())
    return agnostic_adam_case(backend, model, x, y, ag.cross_entropy, compiled, precision)


def native_case(backend: str, device: str | None = None, precision: str = "32") -> Case | None:
    return {"torch": _torch, "jax": _jax}.get(backend, lambda d, p: None)(device, precision)


def _torch(device: str | None, precision: str = "32") -> Case:
    import torch

    dev = torch.device(device or "cpu")
    torch.manual_seed(0)
    model = torch.nn.Sequential(*_layers(torch.nn)).to(dev)
    x, y = (torch.from_numpy(a).to(dev) for a in data())
    return torch_adam_case(model, x, y, torch.nn.functional.cross_entropy, precision)


@on_jax_device
def _jax(device: str | None, precision: str = "32") -> Case:
    """jax.jit and optax. "bf16-mixed", as jmp users write it: float32 parameters, gradients and
    Adam; each convolution and the linear layer cast their input, weight and bias to bfloat16, so
    the convolutions, bias adds, ReLUs, max-pools and the product run in bfloat16; the logits are
    cast back to float32 for the softmax cross-entropy and the mean."""
    import jax
    import jax.numpy as jnp
    import optax

    k = jax.random.split(jax.random.PRNGKey(0), 3)
    f32 = jnp.float32  # explicit: with JAX_ENABLE_X64=1 the defaults are float64
    params = {
        "c1": (jax.random.normal(k[0], (32, 1, 3, 3), f32) * 0.3, jnp.zeros(32, f32)),
        "c2": (jax.random.normal(k[1], (64, 32, 3, 3), f32) * 0.06, jnp.zeros(64, f32)),
        "fc": (jax.random.normal(k[2], (10, 64 * 7 * 7), f32) * 0.02, jnp.zeros(10, f32)),
    }
    x, y = (jnp.asarray(a) for a in data())
    low, f32 = jmp_casts(precision)

    def conv_relu_pool(h: Any, w: Any, b: Any) -> Any:
        h = jax.lax.conv_general_dilated(
            low(h), low(w), (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        h = jax.nn.relu(h + low(b)[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p: Any) -> Any:
        h = conv_relu_pool(conv_relu_pool(x, *p["c1"]), *p["c2"])
        logits = h.reshape(BATCH, -1) @ low(p["fc"][0]).T + low(p["fc"][1])
        return optax.softmax_cross_entropy_with_integer_labels(f32(logits), y).mean()

    return jax_adam_case(params, loss_fn, device, precision=precision)
