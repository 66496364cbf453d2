"""Issue 6, part 5: the workloads on a CUDA GPU, and a GPT-style model, against native code.

python -m benchmarks.gpu                       # torch cuda, jax gpu and cupy, where they run
python -m benchmarks.gpu --only gpt --windows 5
python -m benchmarks.gpu --cpu                 # this script's check: CPU devices, a small GPT
python -m benchmarks.gpu --only gpt,gpt-ckpt,gpt-amp,gpt-amp-ckpt --memory --windows 5  # issue 23

W1-W3 (float32) and GPT (`GPT` below: 12 layers, d 768, 12 heads, seq 1024, GPT-2's vocabulary;
pre-norm, GELU, trained in bfloat16 on torch and JAX, float32 on CuPy, which has no bfloat16) each
run agnostic eager, agnostic compiled where the backend has a compiler, and the native reference
(torch eager with torch.optim; jax.jit with optax; the hand-written W1 in CuPy), interleaved as in
`python -m benchmarks`. Besides time and ratio it prints model FLOP/s and MFU: model FLOPs per step
(each workload's `flops_per_step`) over the time, against the device's dense peak for the dtype
(`PEAK`; float32 against the TF32 tensor-core rate, the fastest a float32 product runs), or
`--peak-tflops`. `--cpu` runs every case on the CPU at a small size: not a measurement, a check
that the script works before a GPU is lent.

Issue 23 adds three GPT cases beside `gpt` (pure bfloat16: parameters, activations and Adam):
`gpt-ckpt`, the same with every layer checkpointed (agnostic's `nn.utils.checkpoint`; torch's
`torch.utils.checkpoint.checkpoint(..., use_reentrant=False)`; `jax.checkpoint`); `gpt-amp`,
float32 parameters (master weights) and Adam with the forward under bfloat16 autocast
(`ag.autocast`; `torch.autocast`; JAX: the casts jmp users write, see `benchmarks.w3_lm._jax`),
only on torch and JAX; and `gpt-amp-ckpt`, both. Their dtype column says "bf16-mixed" for autocast
(MFU against the bfloat16 peak). `--memory` adds each case's step memory (see `step_memory`), so
one call shows what checkpointing saves and costs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
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


AUTOCAST_BACKENDS = ("torch", "jax")
"""Where the GPT runs under bfloat16 autocast: the backends with a native bf16 reference (CuPy
has no bfloat16; NumPy's goes through ml_dtypes and has no native step)."""


@dataclass(frozen=True)
class GPTCase:
    """One of the GPT cases: pure bfloat16 (else float32 params under bf16 autocast), checkpointed."""

    autocast: bool = False
    checkpoint: bool = False

    def describe(self) -> str:
        said = [", autocast bf16 (float32 weights)"] if self.autocast else []
        return "".join(said + ([", checkpoint every layer"] if self.checkpoint else []))


GPT_CASES = {
    "gpt": GPTCase(),
    "gpt-ckpt": GPTCase(checkpoint=True),
    "gpt-amp": GPTCase(autocast=True),
    "gpt-amp-ckpt": GPTCase(autocast=True, checkpoint=True),
}


Made = tuple[tuple[list[Case], Case | None], float, str] | None
"""A workload's cases on one backend: ((agnostic's, native), model FLOPs per step, dtype), or None
where the case does not run on that backend."""


def workloads(cpu: bool) -> list[tuple[str, str, Callable[[str, str], Made]]]:
    """(key, title, make), make(backend, device) building the cases there."""

    def fixed(module: Any) -> Callable[[str, str], Made]:
        def make(backend: str, device: str) -> Made:
            cases = _cases(module.agnostic_case, module.native_case, backend, device, {})
            return cases, module.flops_per_step(), "float32"

        return make

    def lm_make(base: LM, bf16: bool, variant: GPTCase = GPTCase()) -> Callable[[str, str], Made]:
        def make(backend: str, device: str) -> Made:
            lm = replace(lm_dtype(backend, base) if bf16 else base, checkpoint=variant.checkpoint)
            kw: dict[str, Any] = {"lm": lm}
            dtype = lm.dtype
            if variant.autocast:
                if backend not in AUTOCAST_BACKENDS:
                    return None
                kw = {"lm": replace(lm, dtype="float32"), "precision": "bf16-mixed"}
                dtype = "bf16-mixed"
            cases = _cases(w3_lm.agnostic_case, w3_lm.native_case, backend, device, kw)
            return cases, lm.flops_per_step(), dtype

        return make

    gpt = SMALL_GPT if cpu else GPT
    title = f"GPT, {gpt.layers} layers, d {gpt.d}, {gpt.heads} heads, seq {gpt.seq}, batch {gpt.batch}, vocab {gpt.vocab}"
    return [
        ("w1", "W1, MLP 784-512-512-10, batch 128", fixed(w1_mlp)),
        ("w2", "W2, CNN on 1x28x28, batch 64", fixed(w2_cnn)),
        ("w3", "W3, transformer LM, 2 layers, d 128, seq 64, batch 16", lm_make(w3_lm.W3, bf16=False)),
    ] + [(key, title + variant.describe(), lm_make(gpt, True, variant)) for key, variant in GPT_CASES.items()]


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
    parser.add_argument(
        "--only",
        default="w1,w2,w3,gpt",
        help="comma-separated: w1, w2, w3, gpt, and issue 23's gpt-ckpt, gpt-amp, gpt-amp-ckpt",
    )
    parser.add_argument("--windows", type=int, default=11)
    parser.add_argument("--steps", type=int, default=5, help="steps per window, at least")
    parser.add_argument("--window-ms", type=float, default=100.0, help="a window's length, about")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--cpu", action="store_true", help="CPU devices, a small GPT: a check, not a measurement"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="a column of each case's step memory (torch CUDA: allocator peak over resident; JAX compiled: XLA temp)",
    )
    args = parser.parse_args(argv)
    devices = CPU_DEVICES if args.cpu else GPU_DEVICES
    names = (args.backends or ("numpy,torch,jax" if args.cpu else "torch,jax,cupy")).split(",")
    unknown = set(names) - set(devices)
    if unknown:
        parser.error(f"--backends: unknown {sorted(unknown)}; choose from {sorted(devices)}")
    chosen = [(key, title, make) for key, title, make in workloads(args.cpu) if key in args.only.split(",")]
    if len(chosen) != len(set(args.only.split(","))):
        parser.error(f"--only: choose from w1, w2, w3, {', '.join(GPT_CASES)}")
    backends = [b for b in names if _runs(b, devices[b])]
    print(f"Machine: {machine()}")
    for b in backends:
        print(f"- {b} on {devices[b]}: {device_name(b, devices[b])}")
    print()
    extra = (" step memory |", "---|") if args.memory else ("", "")
    print(
        f"| workload | backend | dtype | case | time / step | native | agnostic / native | TFLOP/s | MFU |{extra[0]}"
    )
    print(f"|---|---|---|---|---|---|---|---|---|{extra[1]}")
    for _, title, make in chosen:
        for b in backends:
            made = make(b, devices[b])
            if made is None:
                print(
                    f"<!-- {title}: not on {b} (bfloat16 autocast runs on {', '.join(AUTOCAST_BACKENDS)}) -->"
                )
                continue
            (ours, native), flops, dtype = made
            cases = ours + ([native] if native else [])
            memory = {id(case): step_memory(case, b, devices[b]) for case in cases} if args.memory else {}
            measure(
                cases,
                warmup=args.warmup,
                windows=args.windows,
                steps=args.steps,
                window_seconds=args.window_ms / 1e3,
            )
            peak_dtype = "bfloat16" if dtype == "bf16-mixed" else dtype  # the products run in bfloat16
            peak = args.peak_tflops or peak_tflops(device_name(b, devices[b]), peak_dtype)
            for case in cases:
                ratio = f"{paired_ratio(case, native):.2f}" if native and case is not native else "-"
                rate = flops / case.median / 1e12
                mfu = f"{100 * rate / peak:.1f}%" if peak else "-"
                native_time = format_time(native.median) if native else "-"
                said = memory.get(id(case))
                mem = (f" {said / 2**20:.1f} MiB |" if said is not None else " - |") if args.memory else ""
                print(
                    f"| {title} | {b} | {dtype} | {case.name} | {format_time(case.median)} | {native_time} | {ratio} | {rate:.2f} | {mfu} |{mem}"
                )
            sys.stdout.flush()


def step_memory(case: Case, backend: str, device: str) -> float | None:
    """The memory a training step needs beyond what stays between steps, in bytes, where it can
    be read (`--memory`; for checkpointing, the figure that should fall): on torch CUDA, the
    allocator's peak during one step over what was allocated before it (after a first step, which
    creates Adam's state and compiles); on JAX, a compiled program's temporary buffers as XLA
    planned them (`memory_analysis().temp_size_in_bytes`: agnostic's `ag.compile` program, or the
    native jax.jit step). None elsewhere (eager JAX, NumPy, CuPy, torch on the CPU)."""
    if backend == "torch" and device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        case.sync(case.step())
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        case.sync(case.step())
        torch.cuda.synchronize(dev)
        return float(torch.cuda.max_memory_allocated(dev) - before)
    if backend != "jax":
        return None
    closure = getattr(case.step, "__closure__", None) or ()
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in closure}
    if "PjitFunction" in cells:  # the native jax.jit step: its program, compiled for its state
        update, state = cells["PjitFunction"], cells["list"]
        compiled = update.lower(state[0], state[1]).compile()
    elif hasattr(case.step, "_cache"):  # agnostic's ag.compile step: the program its first call built
        case.sync(case.step())
        entries = [e for found in case.step._cache.values() for e in found]
        if len(entries) != 1:
            return None
        compiled = entries[0].run
    else:
        return None
    analysis = compiled.memory_analysis()
    return None if analysis is None else float(analysis.temp_size_in_bytes)


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
