"""torchrun for the multi-process tests (not a test module): its path, or a skip with the reason."""

from __future__ import annotations

import shutil
import sys

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


def two_processes(backend: str) -> list[str]:
    """The command that starts a script on two processes for `backend`: torchrun, or agnostic's own
    launcher for jax (which the tests also cover without torch)."""
    if backend == "jax":
        return [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2"]
    from agnostic.distributed.launch import free_port

    return [torchrun(), "--nproc-per-node", "2", "--master-port", str(free_port())]
