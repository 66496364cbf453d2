"""agnostic as an Array API namespace for other libraries: scikit-learn (array_api_dispatch) fits PCA
and LDA, and SciPy's special functions and FFTs run, on agnostic tensors of each backend; the results
are tensors of that backend, equal to the same calls on NumPy float64 arrays (PCA/LDA directions up
to sign). The agnostic side runs in a subprocess (tests/array_api/interop_worker.py): SciPy reads
SCIPY_ARRAY_API once, at import, and it must not leak into the other tests."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agnostic.backends import BackendUnavailable, backend_ops

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "array_api" / "interop_worker.py"
sys.path.insert(0, str(WORKER.parent))
import interop_worker  # noqa: E402

pytest.importorskip("sklearn", reason="the interop proof needs scikit-learn (pip install -e '.[test]')")
pytest.importorskip("array_api_compat", reason="scikit-learn's array API dispatch needs array-api-compat")

BACKENDS = ["numpy", "torch", "jax", "cupy"]
CASES = list(interop_worker.cases((None,) * 4, *([None] * 4)))
SIGN_FREE = {("pca_full", "components"): 1, ("pca_full", "transform"): 0, ("lda_svd", "transform"): 0}


@functools.cache
def agnostic_run(backend: str, tmp: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    out = Path(tmp) / f"{backend}.npz"
    env = dict(os.environ, SCIPY_ARRAY_API="1", AGNOSTIC_BACKEND=backend)
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    with np.load(out) as arrays:
        return report, dict(arrays)


@functools.cache
def reference() -> dict[str, dict[str, np.ndarray]]:
    """The same calls on NumPy float64 arrays (SciPy's and scikit-learn's own NumPy paths)."""
    mods = interop_worker.modules()
    calls = interop_worker.cases(mods, **interop_worker.data())
    return {name: {k: np.asarray(v) for k, v in call().items()} for name, call in calls.items()}


def _align_signs(got: np.ndarray, want: np.ndarray, axis: int) -> np.ndarray:
    """`got` with each vector along `axis`'s other dimension flipped to point like `want`'s."""
    dots = np.sum(got * want, axis=1 - axis, keepdims=True)
    return got * np.where(dots < 0, -1.0, 1.0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("interop"))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_library_call_on_agnostic_tensors_matches_numpy(backend: str, case: str, workdir: str) -> None:
    try:
        backend_ops(backend)
    except BackendUnavailable as e:
        pytest.skip(f"backend {backend} cannot run here: {e}")
    report, arrays = agnostic_run(backend, workdir)
    outcome = report[case]
    assert "error" not in outcome, (
        f"{case} on {backend}: {outcome['error']} (last agnostic frame: {outcome['agnostic_frame'] or 'none'}; "
        f"library frame {outcome['library_frame']})"
    )
    for key, want in reference()[case].items():
        info = outcome[key]
        assert (info["type"], info["backend"]) == ("Tensor", backend), f"{case}.{key} came back as {info}"
        got = arrays[f"{case}/{key}"]
        assert got.shape == want.shape, f"{case}.{key}: shape {got.shape}, NumPy gives {want.shape}"
        if (case, key) in SIGN_FREE:
            got = _align_signs(got, want, SIGN_FREE[case, key])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=f"{case}.{key} on {backend}")
