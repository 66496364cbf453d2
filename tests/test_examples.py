"""The examples run end to end (short runs; the full figures are in examples/README.md)."""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_cnn_learns_on_numpy() -> None:
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    result = _example("digits_cnn").run("numpy", epochs=4)
    assert result["test_accuracy"] > 0.9, result
