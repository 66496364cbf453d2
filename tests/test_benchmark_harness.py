"""The benchmark harness (benchmarks/harness.py): interleaving, the paired ratio, the fixed malloc."""

from __future__ import annotations

import pathlib
import platform
import subprocess
import sys

import pytest

from benchmarks import harness
from benchmarks.harness import Case, measure, paired_ratio


def test_windows_alternate_the_order_of_the_cases() -> None:
    order: list[str] = []
    cases = [Case(name, lambda name=name: order.append(name)) for name in "ab"]
    measure(cases, warmup=0, windows=4, steps=1)
    assert order == list("abbabaab")
    assert all(len(c.seconds) == 4 and len(c.faults) == 4 for c in cases)


def test_three_cases_run_in_every_order_and_each_after_each() -> None:
    order: list[str] = []
    cases = [Case(name, lambda name=name: order.append(name)) for name in "abc"]
    measure(cases, warmup=0, windows=6, steps=1)
    windows = ["".join(order[i : i + 3]) for i in range(0, 18, 3)]
    assert sorted(windows) == ["abc", "acb", "bac", "bca", "cab", "cba"]
    after = {(x, y) for x, y in zip(order, order[1:]) if x != y}
    assert after == {(x, y) for x in "abc" for y in "abc" if x != y}


def test_the_paired_ratio_is_the_median_of_the_windows_ratios() -> None:
    ours, native = Case("ours", lambda: None), Case("native", lambda: None)
    ours.seconds, native.seconds = [2.0, 3.0, 10.0], [1.0, 3.0, 4.0]  # the machine slowed down
    assert paired_ratio(ours, native) == 2.0  # ratios 2, 1, 2.5; medians' ratio would be 1.0
    assert ours.median / native.median == 1.0


def test_sync_waits_inside_the_window() -> None:
    done: list[str] = []
    case = Case("c", lambda: "r", sync=lambda r: done.append(r))
    measure([case], warmup=1, windows=2, steps=3)
    assert done == ["r", "r", "r"]  # once after the warm-up step, once per window


def test_a_window_takes_as_many_steps_as_fill_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])

    def step(seconds: float) -> None:
        clock[0] += seconds

    fast = Case("fast", lambda: step(0.002))
    slow = Case("slow", lambda: step(0.5))
    measure([fast, slow], warmup=1, windows=3, steps=4, window_seconds=0.1)
    assert (fast.steps, slow.steps) == (50, 4)  # 0.1 s of 2 ms steps; a slow case keeps `steps`
    assert fast.seconds == pytest.approx([0.002] * 3) and slow.seconds == pytest.approx([0.5] * 3)
    calls: list[int] = []
    counted = Case("counted", lambda: calls.append(1))
    measure([counted], warmup=0, windows=2, steps=3)  # no window_seconds: `steps` steps a window
    assert (counted.steps, len(calls)) == (3, 6)


def test_fixed_malloc_thresholds_where_glibc_is() -> None:
    # in a process of its own: the thresholds hold for the rest of the process
    code = "from benchmarks.harness import fix_malloc_thresholds; print(fix_malloc_thresholds())"
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out.stdout.strip() == ("True" if glibc else "False")


def test_program_counts_read_the_entry_computation() -> None:
    from benchmarks.programs import counts

    hlo = """HloModule m

%fused_add (p: f32[]) -> f32[] {
  %p = f32[] parameter(0)
  %x = f32[] add(%p, %p)
}

ENTRY %main (a: f32[4,4], b: f32[]) -> (f32[4,4], f32[]) {
  %a = f32[4,4]{1,0} parameter(0)
  %b = f32[] parameter(1)
  %d = f32[4,4]{1,0} dot(%a, %a), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %f = f32[] fusion(%b), kind=kLoop, calls=%fused_add
  %g = f32[4,4]{1,0} fusion(%d), kind=kCustom, calls=%fused_add
}
"""
    assert counts(hlo) == {"parameters": 2, "kernels": 3, "scalar kernels": 1}


def test_kernels_count_for_the_step_they_run_in() -> None:
    from benchmarks.kernels import attribute, instructions, kind

    def event(name: str, ts: float, dur: float, tid: int = 1) -> dict:
        return {"ph": "X", "name": name, "ts": ts, "dur": dur, "tid": tid}

    events = [
        event("ours", 0, 100),  # one annotated step each, in turn
        event("fusion.1", 10, 40),
        event("fusion.2", 30, 40, tid=2),  # 20 us alongside fusion.1
        event("$python frame", 0, 100),  # not a kernel of either program
        event("theirs", 200, 50),
        event("fusion.1", 210, 30),
        event("dot", 240, 5),
        {"ph": "i", "name": "fusion.1", "ts": 220},  # an instant event, no duration
    ]
    kernels = {"ours": {"fusion.1", "fusion.2"}, "theirs": {"fusion.1", "dot"}}
    got = attribute(events, kernels, steps=1)
    ours, theirs = got["ours"], got["theirs"]
    assert ours.kinds == {"fusion": 0.08} and theirs.kinds == {"fusion": 0.03, "dot": 0.005}
    assert (ours.alone, ours.together, ours.wall) == pytest.approx((0.04, 0.02, 0.1))
    assert (theirs.alone, theirs.together, theirs.wall) == pytest.approx((0.035, 0.0, 0.05))
    assert kind("ynn_fusion.73") == "ynn_fusion" and kind("copy_bitcast_fusion") == "copy_bitcast_fusion"
    hlo = "HloModule m\n\n%f (p: f32[]) -> f32[] {\n  %inner = f32[] add()\n}\n\nENTRY %main () -> f32[] {\n  %a = f32[] parameter(0)\n  ROOT %fusion.3 = f32[] fusion(%a)\n}\n"
    assert instructions(hlo) == {"a", "fusion.3"}


def test_the_kernel_profile_runs_both_steps() -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from benchmarks import w1_mlp
    from benchmarks.kernels import profile, table

    got = profile(w1_mlp, steps=2)
    assert set(got) == {"agnostic compiled", "optax"}
    for p in got.values():  # each step's kernels ran inside its own annotation
        assert p.kinds and p.wall > 0 and 0 < p.alone + p.together <= p.wall
    lines = table(got)
    assert lines[0] == "| ms per step | agnostic compiled | optax |" and len(lines) > 6
