"""The benchmark harness (benchmarks/harness.py): interleaving, the paired ratio, the fixed malloc."""

from __future__ import annotations

import pathlib
import platform
import subprocess
import sys

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
