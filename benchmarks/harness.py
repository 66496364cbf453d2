"""Interleaved timing: every case runs one window in turn, so drift in the machine's speed (other
load, frequency scaling) hits agnostic and the native code alike; the figure is the median over
windows of the time per step, after warm-up steps that absorb compilation and allocation. A window
lasts about `window_seconds`: the shared VM's scheduler stalls a short window now and then (on
the Intel VM, 5-step windows of JAX's 2.5 ms W1 step gave single windows' ratios from 0.33 to 1.85
and medians from 1.02 to 1.11 between runs; 40-step windows, 0.88 to 1.15 and 1.02 to 1.03).

The cases share one process, and so one C heap. glibc's malloc serves a large block from fresh
pages (mmap, or heap grown again after a trim) depending on what earlier frees left behind, so the
page faults one case pays depend on which case ran before it. `fix_malloc_thresholds` takes that
history away: fixed thresholds, no trimming, the same allocator for every case. Each case also
records its minor page faults per step, so a run shows whether faults differ."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@dataclass
class Case:
    """One thing to time: `step()` does one unit of work; `sync(result)` waits until it is done
    (JAX dispatches asynchronously; NumPy and torch on the CPU need nothing)."""

    name: str
    step: Callable[[], Any]
    sync: Callable[[Any], Any] = lambda result: result
    steps: int = 0  # per window, as `measure` chose
    seconds: list[float] = field(default_factory=list)
    faults: list[float] = field(default_factory=list)  # minor page faults per step, per window

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_faults(self) -> float:
        return statistics.median(self.faults)


def fix_malloc_thresholds(mmap_bytes: int = 1 << 30, trim_bytes: int = (1 << 31) - 1) -> bool:
    """Serve every block below `mmap_bytes` from the heap and never give the heap back below
    `trim_bytes` (glibc; False where there is no glibc mallopt, e.g. macOS or musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # mallopt's parameters are glibc's
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # C ints: a larger value would wrap
    return all(
        libc.mallopt(param, value)
        for param, value in ((_M_MMAP_THRESHOLD, mmap_bytes), (_M_TRIM_THRESHOLD, trim_bytes))
    )


def _minor_faults() -> float:
    """This process's minor page faults so far (NaN where `resource` is missing: Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(
    cases: list[Case], warmup: int = 5, windows: int = 7, steps: int = 10, window_seconds: float = 0.0
) -> list[Case]:
    """Warm every case up, then time `windows` rounds, the cases interleaved (`window_order`); each
    case keeps one per-step time (and page-fault count) per window. A case's window is `steps`
    steps, or as many more as last `window_seconds` at the speed of one window of `steps` timed
    after its warm-up (single warm-up steps can be far slower: each of native JAX's five W1 warm-up
    steps took more than twice its later 2.6 ms)."""
    for case in cases:
        for _ in range(warmup):
            case.sync(case.step())
        case.steps = steps
        if window_seconds > 0:
            seconds, _ = _window(case)
            case.steps = max(steps, math.ceil(window_seconds / max(seconds, 1e-9)))
    for w in range(windows):
        for case in window_order(cases, w):
            seconds, faults = _window(case)
            case.seconds.append(seconds)
            case.faults.append(faults)
    return cases


def _window(case: Case) -> tuple[float, float]:
    """`case.steps` steps and the wait for them: seconds and minor page faults per step."""
    result = None
    faults = _minor_faults()
    start = time.perf_counter()
    for _ in range(case.steps):
        result = case.step()
    case.sync(result)
    return (time.perf_counter() - start) / case.steps, (_minor_faults() - faults) / case.steps


def window_order(cases: list[Case], w: int) -> list[Case]:
    """The order of window `w`: rotated by one every second window, reversed every other one. With
    three cases the six windows 0-5 run all six orders, so no case always runs first, or always
    right after the same other one (forwards and backwards alone put the compiled case after the
    eager one in every forward window, and the native case never after it)."""
    k = (w // 2) % len(cases) if cases else 0
    order = cases[k:] + cases[:k]
    return order if w % 2 == 0 else order[::-1]


def paired_ratio(case: Case, reference: Case) -> float:
    """The median over windows of case / reference, each window's pair timed back to back: the
    machine's speed drifts (a shared VM: the same native step has moved by half between runs),
    and a ratio within one round cancels what a ratio of two medians would not."""
    return statistics.median(a / b for a, b in zip(case.seconds, reference.seconds))


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def available(names: list[str]) -> list[str]:
    """The backends of `names` that run here; each other one is named, with the reason (CuPy with
    no GPU), in an HTML comment the Markdown tables carry along."""
    import agnostic as ag

    found = []
    for name in names:
        try:
            ag.backend(name)
            found.append(name)
        except Exception as exc:  # unavailable here: say why and go on
            print(f"<!-- {name} skipped: {type(exc).__name__}: {exc} -->")
    return found
