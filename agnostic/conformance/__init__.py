"""The conformance suite: the contract every backend, ours or a third party's, must pass.

`agnostic conformance --backend NAME` (or `run(["NAME"])`) runs it and prints a table by area.
Tests live beside this file and take the `backend` fixture (a Device) from the plugin.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["run", "check_backend", "SUITE_DIR"]

SUITE_DIR = os.path.dirname(os.path.abspath(__file__))


def check_backend(spec: str) -> None:
    """Raise ValueError for a backend name or device that does not exist (a typo must fail, not
    skip); a backend whose library is missing or a device this machine lacks passes: its cases are
    skipped with the reason."""
    from agnostic.backends import BackendUnavailable
    from agnostic.device import as_device

    try:
        as_device(spec)
    except BackendUnavailable:
        pass


def run(backends: Sequence[str] = (), pytest_args: Sequence[str] = ()) -> int:
    """Run the suite for the named backends ("NAME" or "NAME:DEVICE"; all registered when empty).
    Returns pytest's exit code (0 also when every case of a backend was skipped because it cannot
    run here: the table's last lines say so), or 2 for an unknown backend or device."""
    try:
        import pytest
    except ImportError:
        raise SystemExit(
            "agnostic conformance needs pytest and hypothesis: pip install 'agnostic[test]'"
        ) from None
    specs = [s.strip() for item in backends for s in item.split(",") if s.strip()]
    for spec in specs:
        try:
            check_backend(spec)
        except ValueError as e:
            print(f"agnostic conformance: {e}", file=sys.stderr)
            return 2
    args = [SUITE_DIR, "-p", "agnostic.conformance.plugin", "-q", "-p", "no:cacheprovider"]
    args += ["--rootdir", SUITE_DIR, "-c", os.devnull]
    for spec in specs:
        args += ["--agnostic-backend", spec]
    return pytest.main(args + list(pytest_args))
