"""The backends that can run on this machine, for tests that loop over them (not a test module)."""

from __future__ import annotations

import agnostic as ag
from agnostic.backends import BackendUnavailable, backend_names


def available_backends() -> list[ag.Device]:
    """Every registered backend that can be built here (unavailable ones are left out)."""
    found = []
    for name in backend_names():
        try:
            found.append(ag.backend(name))
        except (BackendUnavailable, ImportError, ValueError):
            continue
    return found
