"""`benchmarks.gpu` (issue 6, part 5) before a GPU is lent: its FLOP counts, peak look-up, native
references of the same size as agnostic's models, and the whole script on CPU devices."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import w1_mlp, w2_cnn, w3_lm
from benchmarks.gpu import GPT, SMALL_GPT, lm_dtype, peak_tflops

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _agnostic_model(lm: w3_lm.LM):  # the model a case trains, read from its step's closure
    case = w3_lm.agnostic_case("numpy", lm=lm)
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
    return cells["Model"]


def test_flops_per_step_count_the_dense_products() -> None:
    assert w1_mlp.flops_per_step() == 6 * 128 * (784 * 512 + 512 * 512 + 512 * 10)
    assert w2_cnn.flops_per_step() == 6 * 64 * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 10)
    for lm in (w3_lm.W3, SMALL_GPT):
        # the products' weights: every 2-D parameter but the embeddings
        model = _agnostic_model(lm)
        dense = sum(
            int(np.prod(p.shape))
            for n, p in model.named_parameters()
            if p.ndim == 2 and "tok" not in n and "pos" not in n
        )
        attention = lm.layers * 2 * lm.seq * lm.d
        assert lm.flops_per_step() == 6 * (dense + attention) * lm.batch * lm.seq


def test_gpt_is_gpt2_small() -> None:
    assert (GPT.layers, GPT.d, GPT.heads, GPT.seq, GPT.norm_first, GPT.activation) == (
        12,
        768,
        12,
        1024,
        True,
        "gelu",
    )
    assert [lm_dtype(b, GPT).dtype for b in ("torch", "jax", "cupy")] == ["bfloat16", "bfloat16", "float32"]


def test_peak_is_looked_up_by_the_device_name() -> None:
    assert peak_tflops("NVIDIA H200", "bfloat16") == 989.4
    assert peak_tflops("NVIDIA L40S", "float32") == 183.0  # not the L4's
    assert peak_tflops("NVIDIA L4", "float32") == 60.0
    assert peak_tflops("cpu", "float32") is None


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_native_lm_has_agnostics_parameters(backend: str) -> None:
    """The native references are the same network: the same parameter count, pre-norm GPT included."""
    pytest.importorskip(backend)
    pytest.importorskip("optax")
    for lm in (w3_lm.W3, SMALL_GPT):
        ours = sum(int(np.prod(p.shape)) for p in _agnostic_model(lm).parameters())
        case = w3_lm.native_case(backend, "cpu", lm)
        cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
        if backend == "torch":
            native = sum(p.numel() for p in cells["Model"].parameters())
        else:
            import jax

            native = sum(leaf.size for leaf in jax.tree.leaves(cells["list"][0]))
        assert native == ours, lm


def test_the_gpu_script_runs_on_cpu_devices() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gpu",
        "--cpu",
        "--only",
        "gpt",
        "--windows",
        "1",
        "--steps",
        "1",
        "--warmup",
        "2",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| GPT")]
    got = {(r[1], r[2], r[3]) for r in rows}
    assert {("numpy", "float32", "agnostic[numpy]"), ("torch", "bfloat16", "agnostic[torch] compiled")} <= got
    assert ("torch", "bfloat16", "native torch (eager, torch.optim)") in got
    assert ("jax", "bfloat16", "native jax (jit, optax)") in got
    ratios = [float(r[6]) for r in rows if r[6] != "-"]
    assert ratios and all(r > 0 for r in ratios)
