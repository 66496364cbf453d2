"""The conformance suite: the contract every backend, ours or a third party's, must pass.

`agnostic conformance --backend NAME` (or `run(["NAME"])`) runs it and prints a table by area.
Tests live beside this file and take the `backend` fixture (a Device) from the plugin.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["run", "SUITE_DIR"]

SUITE_DIR = os.path.dirname(os.path.abspath(__file__))


def run(backends: Sequence[str] = (), pytest_args: Sequence[str] = ()) -> int:
    """Run the suite for the named backends (all registered when empty); returns pytest's exit code."""
    try:
        import pytest
    except ImportError:
        raise SystemExit(
            "agnostic conformance needs pytest and hypothesis: pip install 'agnostic[test]'"
        ) from None
    from agnostic.backends import backend_names

    known = backend_names()
    for name in backends:
        if name.split(":", 1)[0] not in known:  # a typo must fail, not skip
            print(f"agnostic conformance: unknown backend {name!r}; known: {', '.join(known)}")
            return 2
    args = [SUITE_DIR, "-p", "agnostic.conformance.plugin", "-q", "-p", "no:cacheprovider"]
    args += ["--rootdir", SUITE_DIR, "-c", os.devnull]
    for name in backends:
        args += ["--agnostic-backend", name]
    return pytest.main(args + list(pytest_args))
