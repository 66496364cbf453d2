"""The package as a user meets it: imports, the command line, the README's promises."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import agnostic as ag

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


HEAVY = (
    "torch", "jax", "cupy", "ml_dtypes", "safetensors", "threadpoolctl", "matplotlib", "tqdm", "onnx",
    "onnxruntime",
)  # fmt: skip
"""Libraries `import agnostic` must not load: the backends' (loaded with their backend), and the
ones only some work needs (ml_dtypes alone took 0.7-1.2 s, most of agnostic's import time)."""


def test_import_loads_no_backend_library() -> None:
    code = f"import sys, agnostic; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = _python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_float32_work_on_numpy_does_not_load_ml_dtypes_and_bfloat16_does() -> None:
    """ml_dtypes (NumPy's bfloat16) loads when a bfloat16 is first needed, and then works."""
    code = (
        "import sys, agnostic as ag\n"
        "x = ag.asarray([1.0, 2.0]); y = (ag.tanh(x) * 2).sum(); ag.save({'x': x}, sys.argv[1])\n"
        "before = 'ml_dtypes' in sys.modules\n"
        "b = x.astype(ag.bfloat16) * 1.5\n"
        "print(before, 'ml_dtypes' in sys.modules, b.dtype, b.numpy().tolist(), ag.finfo(ag.bfloat16).eps)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = _python("-c", code, os.path.join(tmp, "x.safetensors"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "ag.bfloat16", "[1.5,", "3.0]", "0.0078125"]


def test_a_bfloat16_array_made_elsewhere_is_read_before_agnostic_loads_ml_dtypes() -> None:
    """The dtype tables complete themselves on a miss: a bfloat16 NumPy array from the user's own
    ml_dtypes import is a bfloat16 tensor, and an unsupported dtype is the usual clear TypeError."""
    code = (
        "import ml_dtypes, numpy as np, agnostic as ag\n"
        "t = ag.asarray(np.ones(2, dtype=ml_dtypes.bfloat16))\n"
        "print(t.dtype, (t + 1).numpy().tolist())\n"
        "try:\n    ag.asarray(np.ones(2, dtype=ml_dtypes.float8_e4m3fn))\n"
        "except TypeError as e:\n    print(str(e).split(';')[0])\n"
    )
    out = _python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ag.bfloat16 [2.0, 2.0]",
        "dtype float8_e4m3fn is not supported by agnostic",
    ]


def test_namespace_is_the_array_namespace() -> None:
    x = ag.asarray([1.0, 2.0])
    assert x.__array_namespace__() is ag
    assert ag.__array_api_version__ == "2023.12"
    info = ag.__array_namespace_info__()
    assert info.default_dtypes()["real floating"] is ag.float32
    assert "bfloat16" not in info.dtypes()  # the standard's dtypes only (issue 21)


def test_default_backend_follows_environment_and_context() -> None:
    assert ag.backend().name == "numpy"
    out = _python("-c", "import agnostic as ag; print(ag.backend().name)")
    assert out.stdout.strip() == "numpy"
    env = dict(os.environ, AGNOSTIC_BACKEND="nonexistent")
    bad = subprocess.run(
        [sys.executable, "-c", "import agnostic as ag; ag.zeros(3)"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "unknown backend 'nonexistent'" in bad.stderr


def test_unknown_backend_lists_known_ones_and_the_extra() -> None:
    with pytest.raises(
        ValueError, match=r"unknown backend 'tensorflow'; known backends: 'numpy'.*pip install"
    ):
        ag.backend("tensorflow")


def test_cli_info_lists_numpy() -> None:
    out = _python("-m", "agnostic", "info")
    assert out.returncode == 0, out.stderr
    line = next(row for row in out.stdout.splitlines() if row.startswith("numpy"))
    assert "available" in line and "cpu" in line


def test_cli_info_reports_every_builtin_backend() -> None:
    from agnostic.backends import BUILTIN_EXTRAS, BackendUnavailable, backend_class

    out = _python("-m", "agnostic", "info")
    rows = {row.split()[0]: row for row in out.stdout.splitlines()[1:]}
    for name in BUILTIN_EXTRAS:
        assert name in rows, out.stdout
        try:
            cls = backend_class(name)
        except BackendUnavailable as e:  # its library is not installed: the row says so and the fix
            assert "unavailable" in rows[name] and BUILTIN_EXTRAS[name] in rows[name] and str(e)
            continue
        ok, why = cls.available()
        assert cls.library_version() in rows[name]
        if ok:
            assert rows[name].split()[1] == "available" and ", ".join(cls.devices()) in rows[name]
        else:
            assert rows[name].split()[1] == "unavailable" and why in rows[name]


def test_cli_conformance_prints_the_area_table() -> None:
    out = _python("-m", "agnostic", "conformance", "--backend", "numpy", "--", "-k", "errors")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "agnostic conformance by area" in out.stdout
    assert any(row.startswith("TOTAL") and "numpy" in row for row in out.stdout.splitlines())


def test_conformance_rejects_an_unknown_backend_name() -> None:
    out = _python("-m", "agnostic", "conformance", "--backend", "nonexistent")
    assert out.returncode == 2
    assert "unknown backend 'nonexistent'; known backends: 'numpy'" in out.stderr


def test_conformance_skips_an_unavailable_backend_with_its_reason(capsys: pytest.CaptureFixture) -> None:
    from agnostic.backends.numpy import NumpyBackend
    from agnostic.conformance import run

    class NoDevice(NumpyBackend):
        name = "nodevice"

        @classmethod
        def available(cls) -> tuple[bool, str]:
            return False, "no CUDA device is visible"

    ag.register_backend("nodevice", NoDevice)
    assert run(["nodevice"], ["-k", "errors"]) == 0
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary, summary
    reason = "nodevice: not tested, every case skipped: backend 'nodevice' unavailable"
    assert reason in out and "no CUDA device is visible" in out


def test_demo_trains_the_loss_down() -> None:
    from agnostic.demo import run

    result = run("numpy", steps=700, log_every=700)
    assert result["last_loss"] < 0.25 * result["first_loss"]
    assert result["test_accuracy"] > 0.9


def _readme_tour() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        match = re.search(r"## A short tour\n\n```python\n(.*?)```", f.read(), re.S)
    assert match, "README.md has no tour code block"
    return match.group(1)


def test_the_readme_tour_runs_and_prints_what_it_says(tmp_path, monkeypatch, capsys) -> None:
    """The tour's code block, run as it stands: given the names it leaves to the reader (a torch.nn
    twin of its MLP and the data arrays), every line runs, and each `print(...)  # value` prints
    that value."""
    for name in ("torch", "jax"):
        if name not in ag.backend_names() or not ag.backends.backend_class(name).available()[0]:
            pytest.skip(f"the tour builds its model on torch and moves it to JAX; {name} is not here")
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib", reason="the tour's training saves a plot")

    class TorchMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(2, 64), torch.nn.Linear(64, 2)

    rng = np.random.default_rng(0)
    points = rng.normal(size=(320, 2)).astype(np.float32)
    labels = (points[:, 0] * points[:, 1] > 0).astype(np.int64)
    given = {"torch_model": TorchMLP(), "x_train": points[:256], "y_train": labels[:256],
             "x_val": points[256:], "y_val": labels[256:]}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code = _readme_tour()
    namespace = dict(given)
    exec(compile(code, "README.md tour", "exec"), namespace)
    capsys.readouterr()

    claims = re.findall(r"^print\((.+?)\)\s+# (\[\[.*?\]\])$", code, re.M)
    assert len(claims) == 2, claims  # x.grad and the Hessian-vector product
    for expression, shown in claims:
        value = eval(expression, namespace).numpy()
        assert np.allclose(value, ast.literal_eval(shown), atol=1e-3), (expression, value, shown)
    x = namespace["x"]
    assert np.allclose(namespace["g"].numpy(), x.grad.numpy())
    assert np.allclose(namespace["hvp"].numpy(), 6 * x.numpy())  # of sum(x ** 3), with v = ones
    model = namespace["model"]
    assert model.backend.name == "jax" and len(namespace["history"]) >= 1
    loss = namespace["step"](model.backend.tensor(points[:8]), model.backend.tensor(labels[:8]))
    assert np.isfinite(loss.item())
