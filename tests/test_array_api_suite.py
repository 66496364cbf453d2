"""The Array API standard's own test suite (array-api-tests) on the NumPy backend, sampled: every
test with the documented run's 20 Hypothesis examples, no failure outside tests/array_api/expected_failures.txt. The full
run on every backend: `python -m tests.array_api.run --backend numpy,torch,jax --full`. Also the
AGNOSTIC_BACKEND variable that run relies on, and the expected-failure list's format."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.array_api import run as suite  # noqa: E402

# the documented run's 20 examples a test: about 15 s alone on 2 cores
SAMPLE_EXAMPLES = suite.DEFAULT_MAX_EXAMPLES


def _suite_or_skip() -> Path:
    try:
        return suite.find_suite()
    except suite.SuiteNotFound as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Array API suite: {e}")
        pytest.skip(str(e))


def test_array_api_suite_sample_on_numpy() -> None:
    _suite_or_skip()
    result = suite.run("numpy", max_examples=SAMPLE_EXAMPLES, timeout=1200)
    assert result.returncode in (0, 1), f"the suite did not run:\n{result.output_tail}"
    assert result.passed > 1000, f"too few tests ran ({result.passed} passed):\n{result.output_tail}"
    unexpected = "\n".join(f"  {t}: {m}" for t, m in sorted(result.failures.items()))
    assert not result.failures, (
        f"{len(result.failures)} failures not in {suite.EXPECTED_FAILURES.relative_to(ROOT)} "
        f"(fix them, or list them with a reason):\n{unexpected}"
    )


def test_expected_failures_have_reasons_and_scopes() -> None:
    entries = suite.expected_failures("numpy")
    assert all(e.startswith("array_api_tests/") and "#" not in e for e in entries)
    for backend in suite.AGNOSTIC_BACKENDS:
        suite.expected_failures(backend)  # every line parses: a reason, known backends


def test_expected_failure_lines_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "expected.txt"
    monkeypatch.setattr(suite, "EXPECTED_FAILURES", listing)
    listing.write_text("# comment\n\ntorch,jax: array_api_tests/test_a.py::test_x  # reason one\n"
                       "array_api_tests/test_b.py  # reason two\n")  # fmt: skip
    assert suite.expected_failures("numpy") == ["array_api_tests/test_b.py"]
    assert suite.expected_failures("torch") == [
        "array_api_tests/test_a.py::test_x",
        "array_api_tests/test_b.py",
    ]
    assert suite.expected_table().splitlines()[2:] == [
        "| torch, jax | `test_a.py::test_x` | reason one |",
        "| all | `test_b.py` | reason two |",
    ]
    listing.write_text("array_api_tests/test_b.py\n")
    with pytest.raises(ValueError, match=r"expected.txt:1: no `# reason`"):
        suite.expected_failures("numpy")
    listing.write_text("tensorflow: array_api_tests/test_b.py  # why\n")
    with pytest.raises(ValueError, match=r"unknown backends \['tensorflow'\]"):
        suite.expected_failures("numpy")


def test_suite_not_found_names_every_place_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARRAY_API_TESTS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(suite, "ROOT", tmp_path / "repo")
    if Path("/work/shared/array-api-tests/array_api_tests").is_dir():
        monkeypatch.setattr(suite, "suite_candidates", lambda: [tmp_path / "nowhere", tmp_path / "shared"])
    with pytest.raises(suite.SuiteNotFound, match=r"looked in: .*nowhere.*ARRAY_API_TESTS_DIR"):
        suite.find_suite()


def _default_backend_in_subprocess(value: str) -> subprocess.CompletedProcess[str]:
    code = "import sys, agnostic as ag; print(ag.zeros(2).device.name, 'torch' in sys.modules)"
    env = dict(os.environ, AGNOSTIC_BACKEND=value)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_agnostic_backend_variable_sets_the_default_backend(name: str) -> None:
    pytest.importorskip(name, reason=f"{name} is not installed")
    out = _default_backend_in_subprocess(name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == name


def test_unset_agnostic_backend_imports_neither_torch_nor_jax() -> None:
    code = "import sys, agnostic as ag; ag.zeros(2); print(ag.zeros(2).device.name, 'torch' in sys.modules, 'jax' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "AGNOSTIC_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.stdout.split() == ["numpy", "False", "False"], out.stderr


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "tensorflow",
            "ValueError: AGNOSTIC_BACKEND='tensorflow' (the default backend): unknown backend 'tensorflow'",
        ),
        ("torch:cdua", "ValueError: AGNOSTIC_BACKEND='torch:cdua' (the default backend):"),
    ],
)
def test_bad_agnostic_backend_is_an_error_naming_the_variable(value: str, error: str) -> None:
    out = _default_backend_in_subprocess(value)
    assert out.returncode != 0 and error in out.stderr, out.stderr
