"""The suite covers the whole op-set, and says so honestly.

Every conformance module declares `COVERS`, the op-set entries it exercises (a module without it
covers nothing). Two checks:

- declared: the union of every module's COVERS holds every primitive and composite of the base
  Backend (less the plumbing entries), and every declared name is a real op-set entry;
- exercised: the suite is run once more, in a subprocess, on a recording copy of the NumPy backend
  that notes which op-set methods each module's tests call from the Tensor layer (calls a backend
  makes to itself, inside a fused composite, do not count). Every primitive and composite must be
  called by some module, and every name a module declares must be called by that module.

This module is also the pytest plugin of that subprocess (`-p agnostic.conformance.test_coverage`
with AGNOSTIC_COVERAGE_OUT set); in an ordinary run its hooks do nothing.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from typing import Any

import pytest

import agnostic.conformance as suite
from agnostic.backends.base import COMPOSITES, DEFAULTS, PRIMITIVES, Backend

COVERS: set[str] = set()  # this module checks coverage; it exercises no op itself

NOT_OPS = frozenset({"native_dtype", "dtype_of", "shape", "is_native", "from_numpy", "to_numpy"})
"""Entries of the op-set that are plumbing, used wherever a tensor is made or read."""


REQUIRED = (set(PRIMITIVES) | set(COMPOSITES)) - NOT_OPS
RECORDED = set(PRIMITIVES) | set(COMPOSITES) | set(DEFAULTS)
THIS = __name__.rsplit(".", 1)[-1]
SKIP_MODULES = {THIS, "test_op_coverage"}  # coverage checks exercise no op
ERROR_PATH_MODULES = {"test_errors"}
"""Modules whose COVERS name the ops whose argument errors they check: those raise in the Tensor
layer before any backend call, so their claims are not required to reach the backend."""


def _suite_modules() -> dict[str, Any]:
    """Every conformance test module, imported (None for one that skips at import, e.g. no torch)."""
    modules: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(suite.__path__), key=lambda i: i.name):
        if not info.name.startswith("test_") or info.name in SKIP_MODULES:
            continue
        try:
            modules[info.name] = importlib.import_module(f"agnostic.conformance.{info.name}")
        except pytest.skip.Exception:
            modules[info.name] = None
    return modules


def _declared() -> dict[str, set[str]]:
    return {
        name: set(getattr(m, "COVERS", ())) if m is not None else set()
        for name, m in _suite_modules().items()
    }


def test_every_primitive_and_composite_is_declared_covered() -> None:
    declared = _declared()
    covered = set().union(*declared.values())
    missing = sorted(REQUIRED - covered)
    assert not missing, f"op-set entries that no conformance module declares in COVERS: {missing}"
    no_covers = sorted(n for n, m in _suite_modules().items() if m is not None and not hasattr(m, "COVERS"))
    if no_covers:  # allowed (they count as covering nothing), but say so in the report
        print(f"modules without COVERS (covering nothing): {no_covers}")


def test_overridable_defaults_are_declared_covered() -> None:
    covered = set().union(*_declared().values())
    missing = sorted(set(DEFAULTS) - covered)
    assert not missing, f"overridable base-class defaults that no conformance module covers: {missing}"


def test_declared_names_are_op_set_entries() -> None:
    known = RECORDED | NOT_OPS
    bad = {name: sorted(c - known) for name, c in _declared().items() if c - known}
    assert not bad, f"COVERS names that are not op-set entries (typos?): {bad}"
    assert all(callable(getattr(Backend, n, None)) for n in RECORDED)


def test_declared_coverage_is_exercised() -> None:
    """Run the suite on a recording NumPy backend and compare what each module calls with what it
    declares."""
    declared = _declared()
    modules = [m for m, c in declared.items() if c]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "calls.json")
        env = dict(os.environ, AGNOSTIC_COVERAGE_OUT=out)
        args = [os.path.join(suite.SUITE_DIR, f"{m}.py") for m in modules]
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "agnostic.conformance.plugin",
            "-p",
            f"agnostic.conformance.{THIS}",
            "--agnostic-backend",
            "recording",
            "-c",
            os.devnull,
            "--rootdir",
            suite.SUITE_DIR,
            "-W",
            "ignore",
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if not os.path.exists(out):
            pytest.fail(
                f"the recording run wrote no calls (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        with open(out) as f:
            calls = {k: set(v) for k, v in json.load(f).items()}
    exercised = set().union(*calls.values()) if calls else set()
    missing = sorted(REQUIRED - exercised)
    unexercised_defaults = sorted(set(DEFAULTS) - exercised)
    claims = {
        m: sorted(declared[m] - calls.get(m, set()) - NOT_OPS) for m in modules if m not in ERROR_PATH_MODULES
    }
    claims = {m: c for m, c in claims.items() if c}
    report = (
        f"primitives/composites no module calls: {missing}\n"
        f"overridable defaults no module calls: {unexercised_defaults}\n"
        f"declared in COVERS but never called by that module: {claims}"
    )
    print(report)
    assert not missing and not unexercised_defaults and not claims, report


# ====================================================================== the recording subprocess
_calls: dict[str, set[str]] = collections.defaultdict(set)
_state = {"module": "<collection>", "depth": 0}


def _recorder(name: str, fn: Any) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _state["depth"] == 0:  # a call from the Tensor layer, not a backend calling itself
            _calls[_state["module"]].add(name)
        _state["depth"] += 1
        try:
            return fn(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1

    method.__name__ = method.__qualname__ = name
    return method


def _recording_backend() -> type:
    from agnostic.backends.numpy import NumpyBackend

    namespace = {n: _recorder(n, getattr(NumpyBackend, n)) for n in sorted(RECORDED)}
    namespace["name"] = "recording"
    return type("RecordingNumpyBackend", (NumpyBackend,), namespace)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("AGNOSTIC_COVERAGE_OUT"):
        import agnostic as ag

        ag.register_backend("recording", _recording_backend())


def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("AGNOSTIC_COVERAGE_OUT"):
        _state["module"] = item.module.__name__.rsplit(".", 1)[-1] if item.module else "<unknown>"
        _state["depth"] = 0


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("AGNOSTIC_COVERAGE_OUT")
    if path:
        with open(path, "w") as f:
            json.dump({k: sorted(v) for k, v in _calls.items()}, f)
