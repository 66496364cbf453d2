"""The pytest plugin behind the conformance suite: which backends to test, and a table by area.

Loaded with `-p agnostic.conformance.plugin` (the project's pytest configuration and
`agnostic conformance` both do). Every test that takes the `backend` fixture runs once per selected
backend; a backend that cannot run here (its library missing, or a device this machine lacks) is
skipped with its reason, never counted as passed, and a backend of which nothing ran is named on one
line at the end. A name or device that does not exist is a usage error.
"""

from __future__ import annotations

import collections
import os
from typing import Any

import pytest

import agnostic as ag
from agnostic.backends import BackendUnavailable, backend_names
from agnostic.conformance import check_backend

SUITE_DIR = os.path.dirname(os.path.abspath(__file__))
_unavailable: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agnostic")
    group.addoption(
        "--agnostic-backend",
        action="append",
        default=[],
        help="backend to test, as NAME or NAME:DEVICE (repeatable, or comma-separated); default: every registered backend",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    names: list[str] = []
    for item in config.getoption("--agnostic-backend") or []:
        names += [n.strip() for n in item.split(",") if n.strip()]
    return names or backend_names()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        metafunc.parametrize("backend_name", names, ids=names, scope="session")


@pytest.fixture(scope="session")
def backend(backend_name: str) -> ag.Device:
    """The Device under test; skips (with the reason) when the backend cannot run here."""
    if backend_name in _unavailable:
        pytest.skip(_unavailable[backend_name])
    try:
        return ag.device.as_device(backend_name)
    except (BackendUnavailable, ImportError) as e:
        _unavailable[backend_name] = f"backend {backend_name!r} unavailable: {e}"
        pytest.skip(_unavailable[backend_name])


def area_of(nodeid: str) -> str:
    """The area of a test: its module's name without the `test_` prefix."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.removesuffix(".py").removeprefix("test_")


def backend_of(item_or_report: Any) -> str:
    nodeid = item_or_report.nodeid
    if "[" in nodeid:
        params = nodeid[nodeid.index("[") + 1 : -1].split("-")
        names = set(backend_names())
        for p in params:
            if p.split(":", 1)[0] in names:
                return p
    return "-"


class AreaTable:
    """Collects outcomes by (area, backend) and prints them as a table at the end of the run."""

    def __init__(self, rootpath: str) -> None:
        self.rootpath = rootpath
        self.counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
        self.skip_reasons: dict[str, set[str]] = collections.defaultdict(set)

    def in_suite(self, nodeid: str) -> bool:
        """By path, not by collected item: under pytest-xdist the controller collects nothing."""
        path = os.path.abspath(os.path.join(self.rootpath, nodeid.split("::", 1)[0]))
        return os.path.dirname(path) == SUITE_DIR

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.in_suite(report.nodeid):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            key = (area_of(report.nodeid), backend_of(report))
            if report.skipped:
                outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
                if outcome == "skipped":
                    reason = (
                        report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                    )
                    self.skip_reasons[key[1]].add(reason.removeprefix("Skipped: "))
            elif report.failed:
                outcome = "failed" if report.when == "call" else "error"
            else:
                outcome = "passed"
            self.counts[key][outcome] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The table; then why cases were skipped, on one line for a backend of which nothing ran."""
        if not self.counts:
            return
        tr = terminalreporter
        tr.section("agnostic conformance by area")
        cols = ("passed", "failed", "error", "skipped", "xfailed")
        tr.write_line(f"{'area':<26}{'backend':<16}" + "".join(f"{c:>9}" for c in cols))
        totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for (area, be), c in sorted(self.counts.items()):
            tr.write_line(f"{area:<26}{be:<16}" + "".join(f"{c[k]:>9}" for k in cols))
            totals[be].update(c)
        for be, c in sorted(totals.items()):
            tr.write_line(f"{'TOTAL':<26}{be:<16}" + "".join(f"{c[k]:>9}" for k in cols))
        for be, reasons in sorted(self.skip_reasons.items()):
            ran = sum(totals[be][k] for k in cols if k != "skipped")
            if not ran:
                tr.write_line(
                    f"{be}: not tested, every case skipped: {'; '.join(sorted(reasons))}", yellow=True
                )
                continue
            for r in sorted(reasons)[:5]:
                tr.write_line(f"skipped on {be}: {r}")


def pytest_configure(config: pytest.Config) -> None:
    for spec in config.getoption("--agnostic-backend") and selected_backends(config):
        try:
            check_backend(spec)
        except ValueError as e:
            raise pytest.UsageError(f"--agnostic-backend {spec}: {e}") from None
    config.pluginmanager.register(AreaTable(str(config.rootpath)), "agnostic-area-table")
