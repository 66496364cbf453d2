"""examples/digits_ddp.py: the digits CNN trained data-parallel on 2 processes (torchrun for numpy and
torch, agnostic's launcher for jax) reaches the single-process example's accuracy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from agnostic.distributed.launch import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "digits_ddp.py")


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_two_processes_reach_the_single_process_accuracy(backend: str) -> None:
    pytest.importorskip("sklearn", reason="the example trains on scikit-learn's digits")
    pytest.importorskip(backend if backend != "numpy" else "torch", reason=f"needs {backend}")
    if backend == "jax":
        launcher = [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2"]
    else:
        if shutil.which("torchrun") is None:
            pytest.skip("torchrun is not installed (pip install torch)")
        launcher = ["torchrun", "--nproc-per-node", "2", "--master-port", str(free_port())]
    run = subprocess.run(
        [*launcher, SCRIPT, "--backend", backend, "--epochs", "6"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "(2 processes)" in run.stdout
    accuracy = float(run.stdout.rsplit("test accuracy ", 1)[1].split("%")[0])
    assert accuracy > 97.0, run.stdout
