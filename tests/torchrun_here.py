"""torchrun for the multi-process tests (not a test module): its path, or a skip with the reason."""

from __future__ import annotations

import shutil

import pytest


def torchrun() -> str:
    """The torchrun executable; skips the test where torch.distributed or torchrun is missing."""
    try:
        import torch.distributed
    except ImportError:
        pytest.skip("torch is not installed: the torch.distributed engine needs it")
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    exe = shutil.which("torchrun")
    if exe is None:
        pytest.skip("torchrun is not on PATH")
    return exe
