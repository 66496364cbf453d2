"""The package as a user meets it: imports, the command line, the README's promises."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import agnostic as ag

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def test_import_loads_no_backend_library() -> None:
    code = "import sys, agnostic; print(sorted(m for m in ('torch', 'jax', 'cupy') if m in sys.modules))"
    out = _python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_namespace_is_the_array_namespace() -> None:
    x = ag.asarray([1.0, 2.0])
    assert x.__array_namespace__() is ag
    assert ag.__array_api_version__ == "2023.12"
    info = ag.__array_namespace_info__()
    assert info.default_dtypes()["real floating"] is ag.float32
    assert "bfloat16" in info.dtypes()


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
    assert "unknown backend 'nonexistent'; known: numpy" in out.stdout


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
    assert "skipped on nodevice: backend 'nodevice' unavailable" in out and "no CUDA device is visible" in out


def test_demo_trains_the_loss_down() -> None:
    from agnostic.demo import run

    result = run("numpy", steps=700, log_every=700)
    assert result["last_loss"] < 0.25 * result["first_loss"]
    assert result["test_accuracy"] > 0.9
