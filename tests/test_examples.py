"""The examples run end to end (short runs; the full figures are in examples/README.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from backends_here import available_backends

BACKENDS = [d.name for d in available_backends()]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_cnn_learns_on_numpy(tmp_path) -> None:
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("matplotlib", reason="the example saves its training plot")
    result = _example("digits_cnn").run("numpy", epochs=4, out=str(tmp_path), progress=False)
    assert result["test_accuracy"] > 0.9, result
    assert open(result["plot"], "rb").read(4) == b"\x89PNG"
    assert sorted(os.listdir(tmp_path)) == [
        "best.safetensors",
        "history.csv",
        "last.safetensors",
        "training.png",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_cnn_reaches_97_percent_on_every_backend(tmp_path, backend: str) -> None:
    """The issue's bar, on the full default run (12 epochs, seed 0)."""
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("matplotlib", reason="the example saves its training plot")
    result = _example("digits_cnn").run(backend, out=str(tmp_path), progress=False)
    assert result["test_accuracy"] >= 0.97, result


def test_digits_cnn_script_resumes(tmp_path) -> None:
    """The command line: --resume picks up the run's last checkpoint (here a finished run, so it goes
    straight to the test set, with the weights it had)."""
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("matplotlib", reason="the example saves its training plot")
    command = [
        sys.executable,
        os.path.join(ROOT, "examples", "digits_cnn.py"),
        "--epochs",
        "2",
        "--out",
        str(tmp_path),
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stderr and "at epoch 3, step 42" in second.stderr
    accuracy = [line for line in first.stdout.splitlines() if line.startswith("test accuracy")]
    assert accuracy and accuracy[0].split(";")[0] in second.stdout
    with open(os.path.join(tmp_path, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()] == ["epoch", "1", "2"]
