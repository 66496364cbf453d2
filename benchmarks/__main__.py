"""Run the benchmarks and print Markdown tables for BENCHMARKS.md:

python -m benchmarks                          # every backend that runs here
python -m benchmarks --backends torch --windows 11
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

from benchmarks import op_overhead, w1_mlp
from benchmarks.harness import format_time, measure


def machine() -> str:
    import numpy

    versions = [f"numpy {numpy.__version__}"]
    for name in ("torch", "jax"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {', '.join(versions)}"


def available(names: list[str]) -> list[str]:
    import agnostic as ag

    found = []
    for name in names:
        try:
            ag.backend(name)
            found.append(name)
        except Exception as exc:  # unavailable here: say why and go on
            print(f"<!-- {name} skipped: {exc} -->")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="numpy,torch,jax")
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    backends = available(args.backends.split(","))
    print(f"Machine: {machine()}\n")
    print("W1, MLP 784-512-512-10, batch 128, Adam, one training step (median of windows):\n")
    print("| backend | agnostic | native | native is | agnostic / native |")
    print("|---|---|---|---|---|")
    for b in backends:
        ours, theirs = measure(
            [w1_mlp.agnostic_case(b), w1_mlp.native_case(b)], windows=args.windows, steps=args.steps
        )
        print(
            f"| {b} | {format_time(ours.median)} | {format_time(theirs.median)} | {theirs.name} | {ours.median / theirs.median:.2f} |"
        )
    print("\nPer-op overhead, 4x4 float32 (median of windows):\n")
    print("| backend | op | agnostic | native | overhead |")
    print("|---|---|---|---|---|")
    for b in backends:
        for what, ours, theirs in op_overhead.cases(b):
            measure([ours, theirs], warmup=50, windows=args.windows, steps=200)
            print(
                f"| {b} | {what} | {format_time(ours.median)} | {format_time(theirs.median)} | {format_time(ours.median - theirs.median)} |"
            )


if __name__ == "__main__":
    main()
