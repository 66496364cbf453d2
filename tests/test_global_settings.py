"""agnostic never changes another library's global settings: after it has made tensors, run ops,
taken gradients and run an `ag.compile`d step on a backend, the user's own code in the same process
sees JAX's x64 flag and defaults, torch's default dtype, threads and precision flags, NumPy's error
state and the environment exactly as the user left them, in every thread. agnostic's float64 and
int64 stay exact all the same.

Each case runs in a fresh interpreter (this file run as a script prints what it saw as JSON), so
nothing another test set before can hide a change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

USER_SETTINGS = ("default", "x64", "x64-off-block")
"""How the user set JAX's 64-bit mode before using agnostic: left alone (off), on for the whole
process (``jax.config.update``), or off inside a ``with jax.enable_x64(False)`` block."""

TORCH_WRITES = {"TORCHINDUCTOR_CACHE_DIR"}
"""What torch sets itself: its tracer (make_fx, which `ag.compile` uses) imports a module of
torch._inductor that writes its cache directory into the environment, as it does for the user's own
make_fx or torch.compile."""


def _settings() -> dict[str, str]:
    """Every process-wide setting of the libraries loaded, as text."""
    import numpy as np

    out = {
        "numpy.geterr()": repr(np.geterr()),
        "numpy.get_printoptions()": repr(np.get_printoptions()),
        **{f"os.environ[{k!r}]": v for k, v in os.environ.items() if k not in TORCH_WRITES},
        "sys.getrecursionlimit()": repr(sys.getrecursionlimit()),
    }
    if "jax" in sys.modules:
        import jax
        import jax.numpy as jnp

        out |= {f"jax.config.{name}": repr(value) for name, value in jax.config.values.items()}
        out["jnp.zeros(3).dtype"] = str(jnp.zeros(3).dtype)
        out["jnp.arange(3).dtype"] = str(jnp.arange(3).dtype)
        out["jnp.asarray(1.0).dtype"] = str(jnp.asarray(1.0).dtype)
        out["jax.random.normal(key, (2,)).dtype"] = str(jax.random.normal(jax.random.key(0), (2,)).dtype)
    if "torch" in sys.modules:
        import torch

        out |= {
            "torch.get_default_dtype()": str(torch.get_default_dtype()),
            "torch.get_default_device()": str(torch.get_default_device()),
            "torch.get_num_threads()": str(torch.get_num_threads()),
            "torch.get_num_interop_threads()": str(torch.get_num_interop_threads()),
            "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
            "torch.are_deterministic_algorithms_enabled()": str(torch.are_deterministic_algorithms_enabled()),
            "torch.is_grad_enabled()": str(torch.is_grad_enabled()),
            "torch.is_inference_mode_enabled()": str(torch.is_inference_mode_enabled()),
            "torch.is_anomaly_enabled()": str(torch.is_anomaly_enabled()),
            "torch.backends.cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
            "torch.backends.cudnn.allow_tf32": str(torch.backends.cudnn.allow_tf32),
            "torch.backends.cudnn.benchmark": str(torch.backends.cudnn.benchmark),
            "torch.backends.cudnn.deterministic": str(torch.backends.cudnn.deterministic),
        }
    cupy = sys.modules.get("cupy")
    if cupy is not None and cupy.cuda.is_available():
        out["cupy.cuda.runtime.getDevice()"] = str(cupy.cuda.runtime.getDevice())
        out["cupy memory pool limit"] = str(cupy.get_default_memory_pool().get_limit())
    return out


def _agnostic_work(name: str) -> dict[str, Any]:
    """Tensors, ops, gradients, a convolution and an `ag.compile`d training step on backend `name`;
    the 64-bit values it computed."""
    import numpy as np

    import agnostic as ag
    from agnostic import nn, optim

    B = ag.backend(name)
    big = ag.asarray(16777217, dtype=ag.int64, device=B)  # 2**24 + 1: no float32; * 256 overflows int32
    tiny = B.tensor([1.0, 2.0**-40, 2.0**-40], dtype=ag.float64)
    w = B.tensor([[0.5, -1.5]], dtype=ag.float64, requires_grad=True)
    (w * w * 2.0**-40 + w).sum().backward()
    ag.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 1), backend=B
    )
    opt = optim.Adam(model.parameters(), lr=0.01)

    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        loss = ag.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = ag.compile(step)
    x, y = B.randn(4, 1, 4, 4, seed=1), B.randn(4, 1, seed=2)
    losses = [compiled(x, y).item() for _ in range(2)]
    add_one = ag.compile(lambda a: a * 256 + 1)
    return {
        "int64 (2**24 + 1) + 1": int((big + 1).item()),
        "int64 (2**24 + 1) * 256 + 1, compiled": int(add_one(big).item()),
        "float64 1 + 2**-40 + 2**-40": float(tiny.sum().item()),
        "float64 gradient": w.grad.numpy().tolist(),
        "gradient dtype": str(w.grad.dtype),
        "compiled losses finite": bool(np.isfinite(losses).all()),
    }


EXACT = {
    "int64 (2**24 + 1) + 1": 16777218,
    "int64 (2**24 + 1) * 256 + 1, compiled": 16777217 * 256 + 1,
    "float64 1 + 2**-40 + 2**-40": 1.0 + 2.0**-39,
    "float64 gradient": [[1.0 + 2.0**-40, 1.0 - 3 * 2.0**-40]],
    "gradient dtype": "ag.float64",
    "compiled losses finite": True,
}


def _probe(name: str, user: str) -> dict[str, Any]:
    """What the user's code sees before and after agnostic ran on `name`, in this thread and in
    another thread that runs plain JAX at the same time; and what agnostic computed, here and in a
    thread of its own."""
    if name == "jax":
        import jax
        import jax.numpy as jnp

        if user == "x64":
            jax.config.update("jax_enable_x64", True)
        jnp.zeros(3).block_until_ready()  # the user's JAX is up before agnostic is loaded
    elif name == "torch":
        import torch

        torch.zeros(3)
    elif name == "cupy":
        import cupy

        cupy.zeros(3)
    before = _settings()
    seen_by_other_thread: set[str] = set()
    done = threading.Event()

    def plain_jax() -> None:
        import jax.numpy as jnp

        while not done.is_set():
            seen_by_other_thread.add(str(jnp.arange(3).dtype))

    if name == "jax" and user == "x64-off-block":
        import jax

        with jax.enable_x64(False):
            results = _agnostic_work(name)
            inside_block = _settings()
    else:
        other = threading.Thread(target=plain_jax) if name == "jax" else None
        import agnostic as ag

        ag.backend(name)
        if other is not None:
            other.start()
        try:
            results = _agnostic_work(name)
        finally:
            done.set()
            if other is not None:
                other.join()
        inside_block = None
    in_thread: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: in_thread.update(_agnostic_work(name)))
    worker.start()
    worker.join()
    return {
        "before": before,
        "after": _settings(),
        "inside_block": inside_block,
        "other_thread": sorted(seen_by_other_thread),
        "results": results,
        "results_in_a_new_thread": in_thread,
    }


def _run_probe(name: str, user: str = "default") -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, name, user], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"probe {name} {user} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def _changed(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {
        k: (before.get(k), after.get(k))
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k)
    }


def _needs(name: str) -> None:
    from backends_here import available_backends  # here: the probe must import agnostic after its first look

    if name not in {b.name for b in available_backends()}:
        pytest.skip(f"backend {name!r} cannot run here")


@pytest.mark.parametrize("user", USER_SETTINGS)
def test_jax_leaves_the_users_x64_setting_and_defaults_alone(user: str) -> None:
    _needs("jax")
    seen = _run_probe("jax", user)
    assert _changed(seen["before"], seen["after"]) == {}
    assert seen["results"] == EXACT
    assert seen["results_in_a_new_thread"] == EXACT
    want_x64 = "True" if user == "x64" else "False"
    assert seen["after"]["jax.config.jax_enable_x64"] == want_x64
    wide = user == "x64"
    assert seen["after"]["jnp.zeros(3).dtype"] == ("float64" if wide else "float32")
    assert seen["after"]["jnp.arange(3).dtype"] == ("int64" if wide else "int32")
    assert seen["after"]["jax.random.normal(key, (2,)).dtype"] == ("float64" if wide else "float32")
    if user == "x64-off-block":  # the user's block still holds after agnostic's ops inside it
        assert seen["inside_block"]["jnp.zeros(3).dtype"] == "float32"
        assert seen["inside_block"]["jnp.arange(3).dtype"] == "int32"
    else:  # plain JAX in another thread, while agnostic ran, kept the user's defaults throughout
        assert seen["other_thread"] == [("int64" if wide else "int32")]


@pytest.mark.parametrize("name", ["numpy", "torch", "cupy"])
def test_other_backends_leave_global_settings_alone(name: str) -> None:
    _needs(name)
    seen = _run_probe(name)
    assert _changed(seen["before"], seen["after"]) == {}
    assert seen["results"] == EXACT
    assert seen["results_in_a_new_thread"] == EXACT


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1], sys.argv[2])))
