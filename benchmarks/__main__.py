"""Run the benchmarks and print Markdown tables for BENCHMARKS.md:

python -m benchmarks                          # every backend that runs here
python -m benchmarks --backends torch --windows 11
python -m benchmarks --only w1,ops                # some of w1, w2, w3, w4, w5, ops (w4, w5: not by default)
python -m benchmarks --malloc default             # glibc's own thresholds (see harness.py)
python -m benchmarks --window-ms 0 --steps 5      # fixed 5-step windows (before the eighth session)
python -m benchmarks --threads 1                  # one thread per library (ag.set_num_threads)
python -m benchmarks --precision bf16-mixed --threads 1 [--only w1,w2,w3,products,programs]
    # issue 23 part 4: W1-W3 under bfloat16 autocast (agnostic eager and compiled, the native
    # bf16 step: torch.autocast, jax with jmp-style casts) against float32 (benchmarks/precision.py)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

from benchmarks import op_overhead, w1_mlp, w2_cnn, w3_lm, w4_resnet, w5_gpt
from benchmarks.harness import available, fix_malloc_thresholds, format_time, measure, paired_ratio


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="numpy,torch,jax")
    parser.add_argument("--windows", type=int, default=21)
    parser.add_argument("--steps", type=int, default=5, help="steps per window, at least")
    parser.add_argument(
        "--window-ms", type=float, default=100.0, help="a window's length, about (more steps if need be)"
    )
    parser.add_argument(
        "--only",
        default="w1,w2,w3,ops",
        help="comma-separated: w1, w2, w3, w4, w5, ops (w4, w5: minutes each)",
    )
    parser.add_argument(
        "--malloc",
        choices=("fixed", "default"),
        default="fixed",
        help="fixed: the same glibc malloc thresholds for every case (no heap history between cases)",
    )
    parser.add_argument(
        "--precision",
        choices=("32", "bf16-mixed"),
        default="32",
        help="bf16-mixed: W1-W3 under bfloat16 autocast against float32 and the native bf16 step",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="ag.set_num_threads: BLAS, torch, XLA (default: theirs)"
    )
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: at least 1")
    if args.precision != "32":
        return _precision(parser, args)
    threads = ""
    if args.threads is not None:
        from benchmarks.precision import set_threads

        threads = f"; {set_threads(args.threads)}"  # before any backend starts (XLA sizes its pools once)
    malloc = "glibc defaults"
    if args.malloc == "fixed":
        malloc = "fixed thresholds" if fix_malloc_thresholds() else "defaults (no glibc mallopt here)"
    only = set(args.only.split(","))
    unknown = only - {"w1", "w2", "w3", "w4", "w5", "ops"}
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from w1, w2, w3, w4, w5, ops")
    backends = available(args.backends.split(","))
    window = args.window_ms / 1e3
    print(f"Machine: {machine()}; malloc: {malloc}{threads}\n")
    workloads = [
        (title, module)
        for key, title, module in (
            ("w1", "W1, MLP 784-512-512-10, batch 128", w1_mlp),
            ("w2", "W2, CNN conv32-pool-conv64-pool-linear on 1x28x28, batch 64", w2_cnn),
            ("w3", "W3, causal transformer LM, 2 layers, d 128, 4 heads, seq 64, batch 16, vocab 256", w3_lm),
            ("w4", "W4, ResNet-18 on 3x64x64, batch 32, 1000 classes", w4_resnet),
            (
                "w5",
                "W5, GPT-shaped LM, pre-norm, 4 layers, d 256, 4 heads, seq 128, batch 8, vocab 8192",
                w5_gpt,
            ),
        )
        if key in only
    ]
    print(
        f"One full training step (forward, backward, Adam): time per step, median of {args.windows} windows of about"
    )
    print(
        f"{args.window_ms:g} ms and at least {args.steps} steps; the ratio is the median of the windows' ratios (each window of agnostic"
    )
    print(
        "beside one of native). Where the backend has a compiler, the same step also runs through `ag.compile`:\n"
    )
    print(
        "| workload | backend | agnostic | native | native is | agnostic / native | page faults / step | steps / window |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for title, module in workloads:
        for b in backends:
            import agnostic as ag

            native = module.native_case(b)
            ours = [module.agnostic_case(b)]
            if ag.backend(b).ops.compiler is not None:
                ours.append(module.agnostic_case(b, compiled=True))
            measure(
                ours + ([native] if native else []),
                windows=args.windows,
                steps=args.steps,
                window_seconds=window,
            )
            for case in ours:
                what = f"{b}, compiled" if case.name.endswith("compiled") else b
                if native is None:
                    print(
                        f"| {title} | {what} | {format_time(case.median)} | - | no native reference | - | {case.median_faults:.0f} | {case.steps} |"
                    )
                else:
                    ratio = paired_ratio(case, native)
                    faults = f"{case.median_faults:.0f} / {native.median_faults:.0f}"
                    print(
                        f"| {title} | {what} | {format_time(case.median)} | {format_time(native.median)} | {native.name} | {ratio:.2f} | {faults} | {case.steps} / {native.steps} |"
                    )
    if "ops" not in only:
        return
    print("\nPer-op overhead, 4x4 float32 (median of windows):\n")
    print("| backend | op | agnostic | native | overhead |")
    print("|---|---|---|---|---|")
    for b in backends:
        for what, ours, theirs in op_overhead.cases(b):
            measure([ours, theirs], warmup=50, windows=args.windows, steps=200, window_seconds=window)
            print(
                f"| {b} | {what} | {format_time(ours.median)} | {format_time(theirs.median)} | {format_time(ours.median - theirs.median)} |"
            )


def _precision(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`--precision bf16-mixed`: the tables of `benchmarks.precision` (W1-W3, products, programs)."""
    from benchmarks import precision

    default = ["w1", "w2", "w3", "products", "programs"]
    only = args.only.split(",") if args.only != parser.get_default("only") else default
    unknown = set(only) - set(default)
    if unknown:
        parser.error(f"--precision: --only {sorted(unknown)}: choose from {', '.join(default)}")
    threads = precision.set_threads(args.threads)  # before any backend starts (XLA sizes its pools once)
    malloc = "glibc defaults"
    if args.malloc == "fixed":
        malloc = "fixed thresholds" if fix_malloc_thresholds() else "defaults (no glibc mallopt here)"
    backends = available(args.backends.split(","))
    print(f"Machine: {machine()}; malloc: {malloc}; {threads}\n")
    precision.run(backends, only, args.windows, args.steps, args.window_ms / 1e3)


if __name__ == "__main__":
    main()
