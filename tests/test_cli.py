"""Naming a backend on the command line: `agnostic conformance | demo`, every example's `--backend`
and `--threads`, and AGNOSTIC_BACKEND. A bad name is one usage error (exit status 2), never a
traceback; a backend or device this machine lacks is skipped by the conformance suite with its
reason; every `--help` prints whole sentences."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import agnostic as ag
from agnostic.backends import backend_class, backend_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
# (script, the arguments before --backend): deploy's backend belongs to each of its commands
SCRIPTS = [
    ("digits_cnn.py", []),
    ("char_lm.py", []),
    ("lstm_sequence.py", []),
    ("deploy.py", ["train"]),
    ("deploy.py", ["predict"]),
]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "AGNOSTIC_BACKEND"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
        env={**environ, **(env or {})},
    )  # fmt: skip


def _agnostic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _run("-m", "agnostic", *args, env=env)


def _assert_usage_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2 and argparse's two lines (usage, error) on stderr, naming the fragments."""
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    error = lines[-1]
    assert "error:" in error, out.stderr
    for fragment in fragments:
        assert fragment in error, (fragment, out.stderr)


def _absent_device(name: str) -> str:
    """A well-formed device of backend `name` that this machine does not have (one past the last)."""
    cls = backend_class(name)
    kind = {"torch": "cuda", "jax": "gpu"}[name]
    present = [d for d in cls.devices() if d.startswith(kind)]
    return f"{name}:{kind}:{len(present)}"


# ---------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_conformance_skips_an_absent_device_with_one_reason(name: str, capsys) -> None:
    """`--backend torch:cuda` on a machine without CUDA skips every case with the reason, as an
    absent backend does (exit 0), instead of an error with a traceback per case."""
    if name not in backend_names() or not backend_class(name).available()[0]:
        pytest.skip(f"backend {name!r} is not installed here")
    from agnostic.conformance import run

    spec = _absent_device(name)
    assert run([spec], ["-k", "errors"]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out and "ValueError" not in out, out[-3000:]
    total = next(row for row in out.splitlines() if row.startswith("TOTAL") and spec in row)
    passed, failed, error, skipped = (int(v) for v in total.split()[2:6])
    assert (passed, failed, error) == (0, 0, 0) and skipped > 50, total
    reasons = [row for row in out.splitlines() if spec in row and "not tested" in row]
    assert len(reasons) == 1, out[-3000:]
    device = spec.split(":", 1)[1]
    assert f"backend {spec!r} unavailable" in reasons[0] and device in reasons[0], reasons


def test_conformance_rejects_a_device_the_backend_does_not_know() -> None:
    """A typo in the device is a usage error, as a typo in the backend name is: it must not skip."""
    out = _agnostic("conformance", "--backend", "numpy:nope")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "agnostic conformance: backend 'numpy': unknown device 'nope'; available: cpu"
    ]


def test_conformance_unknown_backend_name_is_one_line_on_stderr() -> None:
    out = _agnostic("conformance", "--backend", "nope")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("agnostic conformance: unknown backend 'nope'; known backends: 'numpy'"), line


# ---------------------------------------------------------------------- demo and examples
def test_demo_accepts_name_and_device() -> None:
    out = _agnostic("demo", "--backend", "numpy:cpu", "--steps", "2", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "backend=numpy" in out.stdout


@pytest.mark.parametrize(
    "spec, fragments",
    [
        ("nope", ["argument --backend", "unknown backend 'nope'", "known backends: 'numpy'"]),
        ("numpy:nope", ["argument --backend", "backend 'numpy': unknown device 'nope'"]),
        ("torch:nope", ["argument --backend", "'torch'"]),
    ],
)
def test_demo_bad_backend_is_a_usage_error(spec: str, fragments: list[str]) -> None:
    _assert_usage_error(_agnostic("demo", "--backend", spec), *fragments)


def test_bad_agnostic_backend_environment_is_a_usage_error() -> None:
    out = _agnostic("demo", "--steps", "2", env={"AGNOSTIC_BACKEND": "nope"})
    _assert_usage_error(out, "AGNOSTIC_BACKEND='nope'", "unknown backend 'nope'")


def test_agnostic_backend_environment_is_the_default_and_the_flag_wins() -> None:
    env = {"AGNOSTIC_BACKEND": "numpy:cpu"}
    out = _agnostic("demo", "--steps", "2", env=env)
    assert out.returncode == 0 and "backend=numpy" in out.stdout, out.stderr
    out = _agnostic("demo", "--steps", "2", "--backend", "numpy", env={"AGNOSTIC_BACKEND": "nope"})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("threads", ["0", "-1", "two"])
def test_demo_bad_threads_is_a_usage_error(threads: str) -> None:
    _assert_usage_error(_agnostic("demo", f"--threads={threads}"), "argument --threads", repr(threads))


@pytest.mark.parametrize("script, before", SCRIPTS, ids=[" ".join([s, *b]) for s, b in SCRIPTS])
def test_every_example_rejects_a_bad_backend_in_one_line(script: str, before: list[str]) -> None:
    path = os.path.join(EXAMPLES, script)
    _assert_usage_error(_run(path, *before, "--backend", "nope"), "unknown backend 'nope'")
    _assert_usage_error(_run(path, *before, "--backend", "numpy:nope"), "unknown device 'nope'")
    _assert_usage_error(_run(path, *before, "--threads", "0"), "argument --threads")
    out = _run(path, *before, env={"AGNOSTIC_BACKEND": "nope"})
    _assert_usage_error(out, "AGNOSTIC_BACKEND='nope'", "unknown backend 'nope'")


def _first_paragraph(script: str) -> str:
    with open(os.path.join(EXAMPLES, script)) as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    return " ".join(doc.split("\n\n")[0].split())


@pytest.mark.parametrize("script", sorted({s for s, _ in SCRIPTS}))
def test_every_example_help_shows_whole_sentences(script: str) -> None:
    out = _run(os.path.join(EXAMPLES, script), "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    paragraph = _first_paragraph(script)
    assert paragraph.endswith(".") and paragraph in text, (paragraph, out.stdout)
    for option in ("--backend", "--threads"):
        assert script == "deploy.py" or option in text, out.stdout


def test_deploy_help_of_each_command_names_backend_and_threads() -> None:
    for command in ("train", "serve", "predict"):
        out = _run(os.path.join(EXAMPLES, "deploy.py"), command, "--help")
        assert out.returncode == 0, out.stderr
        assert "--backend NAME[:DEVICE]" in out.stdout and "--threads N" in out.stdout, out.stdout


# ---------------------------------------------------------------------- the library
def test_backend_accepts_name_colon_device() -> None:
    assert ag.backend("numpy:cpu") is ag.backend("numpy") is ag.backend("numpy", "cpu")
    with pytest.raises(ValueError, match=r"backend\('numpy:cpu', device='cpu'\): the device is named twice"):
        ag.backend("numpy:cpu", device="cpu")
    with pytest.raises(ValueError, match=r"backend 'numpy': unknown device 'gpu'"):
        ag.backend("numpy:gpu")


@pytest.mark.parametrize("name", ["cupy", "torch", "jax"])
def test_a_malformed_device_is_a_value_error_not_a_skip(name: str) -> None:
    """'cuda:x' names no device at all: a plain ValueError naming it (CuPy's raised int()'s own
    error), never DeviceUnavailable, which the conformance suite would take for a reason to skip."""
    try:
        cls = backend_class(name)
    except ag.BackendUnavailable as e:
        pytest.skip(str(e))
    with pytest.raises(ValueError, match=rf"backend '{name}': unknown device 'cuda:x'") as info:
        cls.canonical_device("cuda:x")
    assert not isinstance(info.value, ag.DeviceUnavailable)
