"""How many CPU threads one op may use, in every math library agnostic runs on: `ag.set_num_threads`.

Each library starts a pool of one thread per core: NumPy's BLAS (OpenBLAS or MKL), the OpenMP
runtimes loaded with it or with torch, torch's intra-op pool, XLA's CPU client. On a machine that is
busy with other work, or small, those threads wait on each other, and one thread per process is
often several times faster (the examples ran 3-15x slower with the defaults on a busy 2-core box).

These settings belong to the process and to the libraries, not to agnostic: they change only when
the user asks (`ag.set_num_threads`, `with ag.num_threads(n):`, a script's `--threads`), never
behind their back, and apply to every thread of the process. The limits per library:

- NumPy's BLAS and every OpenMP runtime loaded at the call: through threadpoolctl, at once.
- torch: `torch.set_num_threads(n)` if torch is imported, else when agnostic's torch backend loads
  it (agnostic never imports torch for this). torch's inter-op pool is left alone: torch fixes its
  size at first use.
- XLA (JAX): its CPU client sizes its thread pools once, when it starts (at the first JAX op or
  device query), from the environment variable PJRT_NPROC, else one thread per core. Before that,
  the count is written to PJRT_NPROC (which child processes inherit, too); after it, JAX keeps the
  pools it has, and a warning says so: call `ag.set_num_threads` before any JAX work, or start
  Python with PJRT_NPROC=n.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["set_num_threads", "get_num_threads", "num_threads"]

_XLA_VARIABLE = "PJRT_NPROC"
_requested: int | None = None  # what the user asked for last (None: the libraries' own defaults)
_torch_default: int | None = None  # torch's own count, kept when the torch backend first loads


def _checked_count(n: Any, where: str) -> int:
    """`n` as an int >= 1, or a TypeError / ValueError naming `where` and the value."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{where}: the number of threads must be an int, got {n!r} ({type(n).__name__})")
    if n < 1:
        raise ValueError(
            f"{where}: the number of threads must be at least 1, got {n} (0 does not mean the "
            "default: to go back to the libraries' own counts, set one in a `with ag.num_threads(n):` "
            "block, which restores them on exit)"
        )
    return int(n)


def set_num_threads(n: int) -> None:
    """Use at most `n` CPU threads per op from now on, in NumPy's BLAS, OpenMP, torch and (if JAX
    has not started yet) XLA; see the module's docstring for when each takes effect."""
    global _requested
    n = _checked_count(n, "set_num_threads")
    _apply(n, "set_num_threads", stacklevel=3)
    _requested = n


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """`set_num_threads(n)` for a block; on exit each library gets back the count it had."""
    global _requested
    n = _checked_count(n, "num_threads")
    previous = _requested
    undo = _apply(n, "num_threads", stacklevel=4)  # (through contextlib)
    _requested = n
    try:
        yield n
    finally:
        _requested = previous
        undo()


def get_num_threads() -> int:
    """The most CPU threads one op may use now: the largest pool among NumPy's BLAS, the OpenMP
    runtimes loaded and torch's intra-op pool (if torch is imported). XLA's pools are not counted:
    they cannot be asked."""
    import threadpoolctl

    counts = [int(info["num_threads"]) for info in threadpoolctl.threadpool_info()]
    torch = sys.modules.get("torch")
    if hasattr(torch, "get_num_threads"):
        counts.append(int(torch.get_num_threads()))
    return max(counts, default=os.cpu_count() or 1)


def torch_loaded(torch: Any) -> None:
    """Called by agnostic's torch backend when it loads torch: a count set before applies to it."""
    global _torch_default
    if _torch_default is None:
        _torch_default = int(torch.get_num_threads())
    if _requested is not None:
        torch.set_num_threads(_requested)


def _apply(n: int, where: str, stacklevel: int) -> Callable[[], None]:
    """Set `n` everywhere it can be set now; returns what puts the previous counts back."""
    import threadpoolctl

    torch = sys.modules.get("torch")  # read first: torch's count is its OpenMP runtime's, limited next
    torch_before = int(torch.get_num_threads()) if hasattr(torch, "set_num_threads") else None
    limits = threadpoolctl.threadpool_limits(limits=n)
    if torch_before is not None:
        torch.set_num_threads(n)
    xla_before = os.environ.get(_XLA_VARIABLE)
    if _xla_started() and xla_before != str(n):
        warnings.warn(
            f"{where}({n}): JAX has started, and XLA sized its CPU thread pools when it started (from "
            f"{_XLA_VARIABLE} if it was set, else one thread per core); NumPy and torch use the new "
            f"count, JAX keeps its pools. Call ag.set_num_threads before the first JAX op, or start "
            f"Python with {_XLA_VARIABLE}={n}.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    elif not _xla_started():
        os.environ[_XLA_VARIABLE] = str(n)

    def undo() -> None:
        limits.restore_original_limits()
        torch_now = sys.modules.get("torch")
        if torch_before is not None:
            torch_now.set_num_threads(torch_before)
        elif hasattr(torch_now, "set_num_threads") and _torch_default is not None:
            torch_now.set_num_threads(_requested or _torch_default)  # loaded by the backend meanwhile
        if xla_before is None:
            os.environ.pop(_XLA_VARIABLE, None)
        else:
            os.environ[_XLA_VARIABLE] = xla_before

    return undo


def _xla_started() -> bool:
    """Whether JAX has created its backends (XLA's thread pools among them), without importing jax."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started is not None and started())
