"""`agnostic onnx info FILE` and `agnostic onnx check FILE --backend B`: a file's contents and
which ops agnostic runs; agnostic's outputs against ONNX Runtime's on random inputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import agnostic as ag  # noqa: E402
from agnostic import nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def agnostic(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agnostic", "onnx", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    path = str(tmp_path_factory.mktemp("cli") / "mlp.onnx")
    ag.onnx.export(model, (ag.zeros((2, 6)),), path, input_names=["features"], output_names=["scores"])
    return path


def test_info_lists_inputs_outputs_opsets_and_ops(exported: str) -> None:
    out = agnostic("info", exported)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "features: float[batch, 6]" in text and "scores: float[batch, 3]" in text
    assert "ai.onnx 23" in text
    assert "LayerNormalization" in text and ("Gemm" in text or "MatMul" in text)
    assert "NOT SUPPORTED" not in text and "agnostic: loads and runs this model" in text


def test_info_names_the_ops_agnostic_does_not_run(tmp_path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Frobnicate", ["y"], ["z"], domain="acme")],
        "g",
        [x],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)]
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    out = agnostic("info", str(path))
    assert out.returncode == 0, out.stderr
    assert "acme.Frobnicate" in out.stdout and "NOT SUPPORTED" in out.stdout
    assert "Frobnicate (opset 1): no converter for this op" in out.stdout


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_check_runs_the_file_on_a_backend_and_on_onnx_runtime(exported: str, backend: str) -> None:
    try:
        ag.backend(backend)
    except Exception as exc:
        pytest.skip(f"backend {backend!r} is not available here: {exc}")
    out = agnostic("check", exported, "--backend", backend, "--batch", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "scores: float32[5, 3], largest difference" in out.stdout
    assert "within --atol" in out.stdout


def test_check_fails_when_the_difference_is_over_the_tolerance(exported: str) -> None:
    out = agnostic("check", exported, "--atol", "0")
    worst = float(out.stdout.rsplit("largest difference ", 1)[1].split(":")[0])
    assert (out.returncode, "OVER --atol 0" in out.stdout) == ((1, True) if worst > 0 else (0, False))


def test_an_unreadable_file_is_one_line_and_status_1(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    for command in ("info", "check"):
        out = agnostic(command, str(bad))
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert str(bad) in out.stderr


def test_check_compares_a_file_with_initializers_to_onnx_runtime(tmp_path) -> None:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Tanh", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4])],
        [w],
    )
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    out = agnostic("check", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "z: float32[2, 4]" in out.stdout
