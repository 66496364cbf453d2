"""Interleaved timing: every case runs one window in turn, so drift in the machine's speed (other
load, frequency scaling) hits agnostic and the native code alike; the figure is the median over
windows of the time per step, after warm-up steps that absorb compilation and allocation."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One thing to time: `step()` does one unit of work; `sync(result)` waits until it is done
    (JAX dispatches asynchronously; NumPy and torch on the CPU need nothing)."""

    name: str
    step: Callable[[], Any]
    sync: Callable[[Any], Any] = lambda result: result
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def measure(cases: list[Case], warmup: int = 5, windows: int = 7, steps: int = 10) -> list[Case]:
    """Warm every case up, then time `windows` rounds of `steps` steps each, the cases interleaved;
    each case keeps one per-step time per window."""
    for case in cases:
        for _ in range(warmup):
            case.sync(case.step())
    for _ in range(windows):
        for case in cases:
            result = None
            start = time.perf_counter()
            for _ in range(steps):
                result = case.step()
            case.sync(result)
            case.seconds.append((time.perf_counter() - start) / steps)
    return cases


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"
