"""Run the Array API standard's test suite (data-apis/array-api-tests) on agnostic.

    python -m tests.array_api.run --backend numpy,torch,jax [--max-examples N | --full]
        [--reference array_api_strict,numpy] [--json FILE] [-- PYTEST ARGS...]

The suite is read-only and vendored outside the repository; it is copied into a temporary folder and
run there in a subprocess (from the repository root, `import agnostic` would find the source folder
rather than the installed package). Known failures are listed, one test id pattern and a `# reason`
a line, in tests/array_api/expected_failures.txt and passed to the suite's `--xfails-file`: a failure
not on the list fails the run; a listed test that passes (XPASS) is reported so the list can shrink.
`--reference` runs other Array API libraries on the same options, without the list, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agnostic.backends import BackendUnavailable, backend_ops

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FAILURES = Path(__file__).with_name("expected_failures.txt")
_REPORTER = Path(__file__).with_name("_reporter.py")
API_VERSION = "2023.12"
DEFAULT_MAX_EXAMPLES = 20
FULL_MAX_EXAMPLES = 100  # the suite's own default
TEST_TIMEOUT = 900  # seconds (pytest-timeout): a hung test fails, rather than hanging the whole run
AGNOSTIC_BACKENDS = ("numpy", "torch", "jax", "cupy")
_SCOPE = re.compile(r"([a-z]+(?:\s*,\s*[a-z]+)*):\s+(\S.*)")  # "torch,jax: PATTERN"


class SuiteNotFound(FileNotFoundError):
    """The suite is in none of the places it is looked for; the message lists them."""


def suite_candidates() -> list[Path]:
    """Where the suite is looked for, in order: $ARRAY_API_TESTS_DIR, the shared folder next to the
    repository (where CI puts it), the shared folder of the development machine."""
    places = [ROOT.parent / "shared" / "array-api-tests", Path("/work/shared/array-api-tests")]
    if env := os.environ.get("ARRAY_API_TESTS_DIR"):
        places.insert(0, Path(env))
    return places


def find_suite() -> Path:
    for place in suite_candidates():
        if (place / "array_api_tests" / "__init__.py").is_file():
            return place
    looked = ", ".join(str(p) for p in suite_candidates())
    raise SuiteNotFound(
        f"array-api-tests not found (looked in: {looked}); set ARRAY_API_TESTS_DIR to a checkout of "
        "https://github.com/data-apis/array-api-tests with its array-api submodule"
    )


@dataclass
class Result:
    """One run's counts, its unexpected failures (id -> first error line) and its XPASSes."""

    target: str
    max_examples: int
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    seconds: float = 0.0
    returncode: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    xpasses: list[str] = field(default_factory=list)
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        """No failure off the list, and the suite ran (exit status 0 or 1: tests ran, some failed)."""
        return self.failed == 0 and self.returncode in (0, 1)

    def row(self) -> str:
        return (
            f"| {self.target} | {self.passed} | {self.failed} | {self.skipped} | {self.xfailed} "
            f"| {self.xpassed} | {self.seconds:.0f} s |"
        )


TABLE_HEADER = "| run | passed | failed | skipped | xfailed | xpassed | time |\n|---|---|---|---|---|---|---|"


def _entries() -> list[tuple[tuple[str, ...], str, str]]:
    """The list's lines as (backends, pattern, reason); `()` for every backend. A line is
    `PATTERN  # reason`, or `torch,jax: PATTERN  # reason` for some backends only."""
    entries = []
    for number, raw in enumerate(EXPECTED_FAILURES.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            raise ValueError(f"{EXPECTED_FAILURES.name}:{number}: no `# reason` for {entry.strip()!r}")
        backends: tuple[str, ...] = ()
        pattern = entry
        if scoped := _SCOPE.match(entry):
            backends = tuple(b.strip() for b in scoped[1].split(","))
            if unknown := set(backends) - set(AGNOSTIC_BACKENDS):
                raise ValueError(f"{EXPECTED_FAILURES.name}:{number}: unknown backends {sorted(unknown)}")
            pattern = scoped[2]
        entries.append((backends, pattern.strip(), reason.strip()))
    return entries


def expected_failures(backend: str) -> list[str]:
    """The list's test id patterns that apply to `backend`."""
    return [pattern for backends, pattern, _ in _entries() if not backends or backend in backends]


def expected_table() -> str:
    """The list as the Markdown table of docs/conformance.md."""
    rows = [
        f"| {', '.join(b) or 'all'} | `{p.removeprefix('array_api_tests/')}` | {r} |"
        for b, p, r in _entries()
    ]
    return "\n".join(["| backends | test | reason |", "|---|---|---|", *rows])


def run(
    target: str,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    pytest_args: list[str] | None = None,
    timeout: float | None = None,
) -> Result:
    """Run the suite on `target`: an agnostic backend name, or `ref:MODULE` for another Array API
    library (array_api_strict, numpy) run without the expected-failure list."""
    suite = find_suite()
    reference = target.startswith("ref:")
    env = dict(os.environ, ARRAY_API_TESTS_VERSION=API_VERSION)
    if reference:
        env["ARRAY_API_TESTS_MODULE"] = target.removeprefix("ref:")
        env.pop("AGNOSTIC_BACKEND", None)
    else:
        if target not in AGNOSTIC_BACKENDS:
            raise ValueError(f"unknown backend {target!r}: expected one of {AGNOSTIC_BACKENDS} or ref:MODULE")
        env.update(ARRAY_API_TESTS_MODULE="agnostic", AGNOSTIC_BACKEND=target)
    with tempfile.TemporaryDirectory(prefix="array-api-tests-") as tmp:
        work = Path(tmp) / "suite"
        shutil.copytree(suite, work, ignore=shutil.ignore_patterns(".git", "__pycache__", ".hypothesis"))
        for path in work.rglob("*"):  # the vendored copy is read-only
            path.chmod(path.stat().st_mode | 0o200)
        shutil.copy(_REPORTER, work / "_agnostic_reporter.py")
        report = Path(tmp) / "report.json"
        env["AGNOSTIC_ARRAY_API_REPORT"] = str(report)
        command = [
            sys.executable, "-m", "pytest", "array_api_tests/", "-p", "_agnostic_reporter",
            "-p", "no:cacheprovider", "-q", "--max-examples", str(max_examples), "--disable-deadline",
            "--timeout", str(TEST_TIMEOUT),
        ]  # fmt: skip
        if not reference:
            xfails = Path(tmp) / "xfails.txt"
            xfails.write_text("".join(f"{p}\n" for p in expected_failures(target)))
            command += ["--xfails-file", str(xfails)]
        command += pytest_args or []
        start = time.perf_counter()
        proc = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        result = Result(target, max_examples, seconds=time.perf_counter() - start)
        result.returncode = proc.returncode
        result.output_tail = (proc.stdout + proc.stderr)[-4000:]
        if report.is_file():
            _count(result, json.loads(report.read_text()))
    return result


def _count(result: Result, outcomes: dict[str, list[str]]) -> None:
    for test_id, (outcome, message) in outcomes.items():
        setattr(result, outcome, getattr(result, outcome) + 1)
        if outcome == "failed":
            result.failures[test_id] = message
        elif outcome == "xpassed":
            result.xpasses.append(test_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.array_api.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--backend", default="numpy", help="agnostic backends, comma-separated (default numpy)"
    )
    parser.add_argument(
        "--reference",
        default="",
        help="other Array API modules to run for comparison (array_api_strict,numpy)",
    )
    parser.add_argument(
        "--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, help="Hypothesis examples a test"
    )
    parser.add_argument(
        "--full", action="store_true", help=f"the suite's own {FULL_MAX_EXAMPLES} examples a test"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--list", action="store_true", help="print the expected failures as a Markdown table, run nothing"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to the suite's pytest (-k, -x...)")
    args = parser.parse_args(argv)
    if args.list:
        print(expected_table())
        return 0
    examples = FULL_MAX_EXAMPLES if args.full else args.max_examples
    targets = [b for b in args.backend.split(",") if b]
    targets += [f"ref:{m}" for m in args.reference.split(",") if m]
    results = []
    for target in targets:
        try:
            if not target.startswith("ref:"):
                backend_ops(target)  # one that cannot run here is reported, not run
            results.append(run(target, max_examples=examples, pytest_args=args.pytest_args))
        except BackendUnavailable as e:
            print(f"{target}: not run: {e}")
        except (SuiteNotFound, ValueError) as e:
            parser.error(str(e))
    print(f"array-api-tests, API {API_VERSION}, --max-examples {examples}\n{TABLE_HEADER}")
    for r in results:
        print(r.row())
    for r in results:
        if r.returncode not in (0, 1):
            print(f"\n{r.target}: the suite did not run (exit status {r.returncode}):\n{r.output_tail}")
        if r.target.startswith("ref:"):
            continue
        for test_id, message in sorted(r.failures.items()):
            print(f"{r.target}: FAILED (not in {EXPECTED_FAILURES.name}) {test_id}: {message}")
        for test_id in sorted(r.xpasses):
            print(
                f"{r.target}: XPASS (listed, passed this run: remove it once it passes every run) {test_id}"
            )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0 if all(r.ok or (r.target.startswith("ref:") and r.returncode in (0, 1)) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
