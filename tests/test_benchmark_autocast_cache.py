"""benchmarks.autocast_cache runs, and its figures say what the cache is for: without it the step
keeps one bfloat16 copy of the recurrent weight per time step."""

from __future__ import annotations

import re

import pytest

from benchmarks import autocast_cache


def test_the_ablation_runs_and_the_cache_lowers_the_peak(capsys: pytest.CaptureFixture[str]) -> None:
    autocast_cache.main(["--hidden", "256", "--steps", "32", "--repeat", "1"])
    out = capsys.readouterr().out
    peaks = [float(p) for p in re.findall(r"step peak +([\d.]+) MiB", out)]
    assert len(peaks) == 2, out
    ratio = float(re.search(r"step peak ([\d.]+)x", out).group(1))  # type: ignore[union-attr]
    assert ratio > 2, out  # 32 copies of a 512 KiB weight against one
