"""scikit-learn and SciPy on agnostic tensors, through their Array API support (run by
tests/test_array_api_interop.py in a subprocess: SciPy reads SCIPY_ARRAY_API once, at import, and
that must not leak into other tests).

    SCIPY_ARRAY_API=1 AGNOSTIC_BACKEND=torch python tests/array_api/interop_worker.py OUT.npz

AGNOSTIC_BACKEND names the backend under test: where SciPy has no Array API path for a function it
computes with NumPy and returns `xp.asarray(result)`, with no device, so on the default backend.
Each case's outputs go to OUT.npz as float64 arrays ("case/name"), with OUT.json saying, per case,
each output's type and backend, or the error and the last agnostic frame of its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import agnostic as ag


def data() -> dict[str, np.ndarray]:
    """The inputs, shared with the test's NumPy reference: three separable classes in 5-D."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.normal(size=(60, 5)) + 2.0 * y[:, None] * np.array([1.0, -0.5, 0.25, 0.0, 0.5])
    return {"X": X, "y": y, "p": rng.uniform(0.1, 2.0, size=(4, 6)), "s": rng.normal(size=(4, 16))}


def cases(mods: Any, X: Any, y: Any, p: Any, s: Any) -> dict[str, Callable[[], dict[str, Any]]]:
    """name -> a call returning named outputs, for arrays of one library (`mods`: its sklearn and
    scipy modules), so that the test runs the same calls on NumPy arrays as its reference."""
    PCA, LDA, special, fft = mods

    def pca() -> dict[str, Any]:
        model = PCA(n_components=3, svd_solver="full").fit(X)
        return {
            "components": model.components_,
            "explained_variance": model.explained_variance_,
            "mean": model.mean_,
            "transform": model.transform(X),
        }

    def lda() -> dict[str, Any]:
        model = LDA(solver="svd").fit(X, y)
        return {
            "predict": model.predict(X),
            "predict_proba": model.predict_proba(X),
            "transform": model.transform(X),
            "coef": model.coef_,
        }

    return {
        "pca_full": pca,
        "lda_svd": lda,
        "special_xlogy": lambda: {"out": special.xlogy(p, p + 1.0)},
        "special_rel_entr": lambda: {"out": special.rel_entr(p, p[::-1])},
        "special_erf": lambda: {"out": special.erf(p)},
        "special_logsumexp": lambda: {"out": special.logsumexp(p, axis=1)},
        "fft_fft": lambda: {"out": fft.fft(s, axis=-1)},
        "fft_rfft_irfft": lambda: {"out": fft.irfft(fft.rfft(s), n=16)},
        "fft_fftn": lambda: {"out": fft.fftn(s)},
        "fft_dct": lambda: {"out": fft.dct(s, type=2, norm="ortho")},
    }


def modules() -> tuple[Any, ...]:
    import scipy.fft
    import scipy.special
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return PCA, LinearDiscriminantAnalysis, scipy.special, scipy.fft


_PACKAGE = str(Path(ag.__file__).parent) + os.sep


def _last_agnostic_frame(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(_PACKAGE)]
    if not frames:
        return ""
    f = frames[-1]
    return f"agnostic/{f.filename.removeprefix(_PACKAGE)}:{f.lineno} in {f.name}"


def _last_outside_frame(exc: BaseException) -> str:
    """Where the library called into agnostic (or raised itself): its last frame outside agnostic."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_PACKAGE)]
    f = frames[-1]
    return f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno} in {f.name}: {f.line}"


def main(out: str) -> None:
    import sklearn

    sklearn.set_config(array_api_dispatch=True)
    inputs = {k: ag.asarray(v) for k, v in data().items()}
    arrays: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {"backend": ag.get_default_backend().name}
    for name, call in cases(modules(), **inputs).items():
        try:
            outputs = call()
        except Exception as exc:
            report[name] = {
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "agnostic_frame": _last_agnostic_frame(exc),
                "library_frame": _last_outside_frame(exc),
            }
            continue
        report[name] = {
            key: {
                "type": type(v).__name__,
                "backend": v.device.name if isinstance(v, ag.Tensor) else None,
                "dtype": str(v.dtype),
            }
            for key, v in outputs.items()
        }
        arrays.update({f"{name}/{key}": np.asarray(v) for key, v in outputs.items()})
    np.savez(out, **arrays)
    Path(out).with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
