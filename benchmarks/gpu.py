"""Issue 6, part 5: the workloads on a CUDA GPU, and a GPT-style model, against native code.

python -m benchmarks.gpu                       # torch cuda, jax gpu and cupy, where they run
python -m benchmarks.gpu --only gpt --windows 5
python -m benchmarks.gpu --cpu                 # this script's check: CPU devices, a small GPT

W1-W3 (float32) and GPT (`GPT` below: 12 layers, d 768, 12 heads, seq 1024, GPT-2's vocabulary;
pre-norm, GELU, trained in bfloat16 on torch and JAX, float32 on CuPy, which has no bfloat16) each
run agnostic eager, agnostic compiled where the backend has a compiler, and the native reference
(torch eager with torch.optim; jax.jit with optax; the hand-written W1 in CuPy), interleaved as in
`python -m benchmarks`. Besides time and ratio it prints model FLOP/s and MFU: model FLOPs per step
(each workload's `flops_per_step`) over the time, against the device's dense peak for the dtype
(`PEAK`; float32 against the TF32 tensor-core rate, the fastest a float32 product runs), or
`--peak-tflops`. `--cpu` runs every case on the CPU at a small size: not a measurement, a check
that the script works before a GPU is lent."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from benchmarks import w1_mlp, w2_cnn, w3_lm
from benchmarks.__main__ import available, machine
from benchmarks.harness import Case, format_time, measure, paired_ratio
from benchmarks.w3_lm import LM

GPT = LM(vocab=50304, d=768, heads=12, layers=12, seq=1024, batch=8, norm_first=True, activation="gelu")
"""GPT-2 small's shape (its vocabulary padded to a multiple of 64, as nanoGPT does)."""

SMALL_GPT = LM(vocab=512, d=64, heads=4, layers=2, seq=32, batch=2, norm_first=True, activation="gelu")
"""The same network at a size a CPU steps through in milliseconds (`--cpu`)."""

GPU_DEVICES = {"torch": "cuda:0", "jax": "gpu:0", "cupy": "cuda:0"}
CPU_DEVICES = {"torch": "cpu", "jax": "cpu", "numpy": "cpu", "cupy": "cuda:0"}

PEAK = {  # dense TFLOP/s per dtype, from the vendors' data sheets (SXM parts)
    "H200": {"bfloat16": 989.4, "float32": 494.7},
    "H100": {"bfloat16": 989.4, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "L40S": {"bfloat16": 362.1, "float32": 183.0},
    "L4": {"bfloat16": 121.0, "float32": 60.0},
}


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The dense peak of a device named like "NVIDIA H200" for `dtype`; None if not in `PEAK`."""
    for model in sorted(PEAK, key=len, reverse=True):  # "L40S" before "L4"
        if model in device_name:
            return PEAK[model].get(dtype)
    return None


def device_name(backend: str, device: str) -> str:
    """The accelerator's name as its library reports it ("NVIDIA H200"), or "cpu"."""
    if device == "cpu":
        return "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    if backend == "jax":
        from benchmarks.steps import jax_device

        return jax_device(device).device_kind
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(int(device.rpartition(":")[2]))
    return props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])


def lm_dtype(backend: str, lm: LM) -> LM:
    """The GPT trains in bfloat16 where the backend has it (torch, JAX), else float32."""
    return replace(lm, dtype="bfloat16" if backend in ("torch", "jax") else "float32")


Made = tuple[tuple[list[Case], Case | None], float, str]
"""A workload's cases on one backend: ((agnostic's, native), model FLOPs per step, dtype)."""


def workloads(cpu: bool) -> list[tuple[str, str, Callable[[str, str], Made]]]:
    """(key, title, make), make(backend, device) building the cases there."""

    def fixed(module: Any) -> Callable[[str, str], Made]:
        def make(backend: str, device: str) -> Made:
            cases = _cases(module.agnostic_case, module.native_case, backend, device, {})
            return cases, module.flops_per_step(), "float32"

        return make

    def lm_make(base: LM, bf16: bool) -> Callable[[str, str], Made]:
        def make(backend: str, device: str) -> Made:
            lm = lm_dtype(backend, base) if bf16 else base
            cases = _cases(w3_lm.agnostic_case, w3_lm.native_case, backend, device, {"lm": lm})
            return cases, lm.flops_per_step(), lm.dtype

        return make

    gpt = SMALL_GPT if cpu else GPT
    return [
        ("w1", "W1, MLP 784-512-512-10, batch 128", fixed(w1_mlp)),
        ("w2", "W2, CNN on 1x28x28, batch 64", fixed(w2_cnn)),
        ("w3", "W3, transformer LM, 2 layers, d 128, seq 64, batch 16", lm_make(w3_lm.W3, bf16=False)),
        (
            "gpt",
            f"GPT, {gpt.layers} layers, d {gpt.d}, {gpt.heads} heads, seq {gpt.seq}, batch {gpt.batch}, vocab {gpt.vocab}",
            lm_make(gpt, bf16=True),
        ),
    ]


def _cases(
    agnostic_case: Callable[..., Case],
    native_case: Callable[..., Case | None],
    backend: str,
    device: str,
    kw: dict,
) -> tuple[list[Case], Case | None]:
    import agnostic as ag

    ours = [agnostic_case(backend, device=device, **kw)]
    if ag.backend(backend, device).ops.compiler is not None:
        ours.append(agnostic_case(backend, compiled=True, device=device, **kw))
    return ours, native_case(backend, device=device, **kw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=None, help="default: torch,jax,cupy (--cpu: numpy,torch,jax)")
    parser.add_argument("--only", default="w1,w2,w3,gpt", help="comma-separated: w1, w2, w3, gpt")
    parser.add_argument("--windows", type=int, default=11)
    parser.add_argument("--steps", type=int, default=5, help="steps per window, at least")
    parser.add_argument("--window-ms", type=float, default=100.0, help="a window's length, about")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--cpu", action="store_true", help="CPU devices, a small GPT: a check, not a measurement"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    args = parser.parse_args(argv)
    devices = CPU_DEVICES if args.cpu else GPU_DEVICES
    names = (args.backends or ("numpy,torch,jax" if args.cpu else "torch,jax,cupy")).split(",")
    unknown = set(names) - set(devices)
    if unknown:
        parser.error(f"--backends: unknown {sorted(unknown)}; choose from {sorted(devices)}")
    chosen = [(key, title, make) for key, title, make in workloads(args.cpu) if key in args.only.split(",")]
    if len(chosen) != len(set(args.only.split(","))):
        parser.error("--only: choose from w1, w2, w3, gpt")
    backends = [b for b in names if _runs(b, devices[b])]
    print(f"Machine: {machine()}")
    for b in backends:
        print(f"- {b} on {devices[b]}: {device_name(b, devices[b])}")
    print()
    print("| workload | backend | dtype | case | time / step | native | agnostic / native | TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _, title, make in chosen:
        for b in backends:
            (ours, native), flops, dtype = make(b, devices[b])
            cases = ours + ([native] if native else [])
            measure(
                cases,
                warmup=args.warmup,
                windows=args.windows,
                steps=args.steps,
                window_seconds=args.window_ms / 1e3,
            )
            peak = args.peak_tflops or peak_tflops(device_name(b, devices[b]), dtype)
            for case in cases:
                ratio = f"{paired_ratio(case, native):.2f}" if native and case is not native else "-"
                rate = flops / case.median / 1e12
                mfu = f"{100 * rate / peak:.1f}%" if peak else "-"
                native_time = format_time(native.median) if native else "-"
                print(
                    f"| {title} | {b} | {dtype} | {case.name} | {format_time(case.median)} | {native_time} | {ratio} | {rate:.2f} | {mfu} |"
                )
            sys.stdout.flush()


def _runs(backend: str, device: str) -> bool:
    """Whether the backend has that device here; says why not (printed as a Markdown comment)."""
    if not available([backend]):
        return False
    import agnostic as ag

    try:
        ag.backend(backend, device)
    except Exception as exc:
        print(f"<!-- {backend} skipped: {exc} -->")
        return False
    return True


if __name__ == "__main__":
    main()
