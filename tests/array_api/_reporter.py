"""A pytest plugin copied next to the array-api-tests suite by run.py: writes each test's outcome
(passed, failed, skipped, xfailed, xpassed) and first error line to $AGNOSTIC_ARRAY_API_REPORT as
JSON. JUnit XML cannot tell an XPASS from a pass, and the list must learn which entries now pass."""

from __future__ import annotations

import json
import os
import re
from typing import Any

_outcomes: dict[str, list[str]] = {}


def _first_error(report: Any) -> str:
    """The first `E` line that names an error (not an ExceptionGroup's box drawing), else the last line."""
    text = str(report.longrepr or "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    named = [e for e in errors if re.match(r"(\w+(Error|Exception|Failed)\b|assert\b)", e)]
    return (named or errors or text.strip().splitlines()[-1:] or [""])[0][:300]


def pytest_runtest_logreport(report: Any) -> None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call" or report.failed or report.skipped:
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "xfailed" if xfail else "skipped"
        else:
            outcome = "xpassed" if xfail else "passed"
        if _outcomes.get(report.nodeid, ["passed"])[0] == "passed":  # a teardown error outranks a pass
            _outcomes[report.nodeid] = [outcome, _first_error(report) if outcome == "failed" else ""]


def pytest_sessionfinish(session: Any) -> None:
    with open(os.environ["AGNOSTIC_ARRAY_API_REPORT"], "w") as f:
        json.dump(_outcomes, f)
