"""examples/deploy.py: trained on one backend, served from NumPy by a fresh process that cannot import
torch, jax, cupy or scikit-learn (as on a box with only numpy and agnostic installed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "deploy.py")
# Runs the script with every optional library made unimportable (sys.modules[name] = None).
ONLY_NUMPY = (
    "import sys\n"
    "for m in ('torch', 'jax', 'jaxlib', 'cupy', 'sklearn', 'scipy', 'matplotlib', 'tqdm'):\n"
    "    sys.modules[m] = None\n"
    "import runpy\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The model trained on torch when it is here (the example's default), else on numpy, and the
    trainer's own predictions for some test inputs."""
    pytest.importorskip("sklearn", reason="the example trains on scikit-learn's digits")
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy", SCRIPT)
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)
    backend = "torch" if "torch" in [d.name for d in available_backends()] else "numpy"
    path = str(tmp_path_factory.mktemp("deploy") / "model.safetensors")
    result = deploy.train(backend, path, epochs=8, progress=False)
    from sklearn.datasets import load_digits

    inputs = (load_digits().data[-20:] / 16.0).astype(np.float32)
    on_trainer = deploy.Predictor(path, backend=backend).predict(inputs)
    return {
        "path": path,
        "inputs": inputs,
        "expected": on_trainer,
        "accuracy": result["test_accuracy"],
        "deploy": deploy,
    }


def test_training_saved_a_model_that_learned(trained) -> None:
    assert trained["accuracy"] > 0.9
    meta = ag.io.read_metadata(trained["path"])
    assert meta["model"] == "DigitsMLP" and meta["hidden"] == [128, 64] and meta["classes"] == 10


def test_predict_in_a_process_with_only_numpy(trained) -> None:
    run = subprocess.run(
        [sys.executable, "-c", ONLY_NUMPY, SCRIPT, "predict", "--model", trained["path"]],
        input=json.dumps({"inputs": trained["inputs"].tolist()}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["classes"] == trained["expected"]["classes"]
    np.testing.assert_allclose(got["probabilities"], trained["expected"]["probabilities"], atol=2e-5)


def test_serve_over_http_with_only_numpy(trained) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", ONLY_NUMPY, SCRIPT, "serve", "--model", trained["path"], "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving DigitsMLP on Device('numpy', 'cpu') at http://" in line, proc.stderr.read()
        url = line.split(" at ")[1].strip()
        health = json.load(urllib.request.urlopen(f"{url}/health", timeout=30))
        assert health["status"] == "ok" and health["model"]["trained_on"] != ""

        def post(body: dict) -> tuple[int, dict]:
            request = urllib.request.Request(f"{url}/predict", data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as err:
                return err.code, json.load(err)

        status, got = post({"inputs": trained["inputs"].tolist()})
        assert status == 200 and got["classes"] == trained["expected"]["classes"]
        status, got = post({"inputs": [[0.0] * 10]})
        assert status == 400 and "rows of 64 numbers, got shape (1, 10)" in got["error"]
        status, got = post({"rows": []})
        assert status == 400 and "KeyError" in got["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_a_file_of_another_model_is_refused(tmp_path, trained) -> None:
    ag.save({"w": ag.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="holds a None model, not a DigitsMLP"):
        trained["deploy"].Predictor(str(tmp_path / "other.safetensors"))


def test_export_to_onnx_then_serve_with_onnx_runtime_and_with_agnostic(tmp_path, trained) -> None:
    """`deploy.py export` writes the trained model as ONNX; ONNX Runtime (no agnostic model code)
    and agnostic's importer on NumPy both give the trainer's predictions."""
    pytest.importorskip(
        "onnxruntime", reason="the ONNX path is served by onnxruntime (pip install onnxruntime)"
    )
    onnx_path = str(tmp_path / "model.onnx")
    run = subprocess.run(
        [sys.executable, SCRIPT, "export", "--model", trained["path"], "--out", onnx_path],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    for runtime in ("onnxruntime", "agnostic"):
        run = subprocess.run(
            [sys.executable, SCRIPT, "predict", "--model", onnx_path, "--runtime", runtime],
            input=json.dumps({"inputs": trained["inputs"].tolist()}),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, (runtime, run.stderr)
        got = json.loads(run.stdout)
        assert got["classes"] == trained["expected"]["classes"], runtime
        np.testing.assert_allclose(got["probabilities"], trained["expected"]["probabilities"], atol=2e-5)
