"""Peak host memory of a training step, agnostic against the native library (issue 23 part 3):

python -m benchmarks.memory                                  # every backend, both models, every variant
python -m benchmarks.memory --backends torch --models w3_256 --variants plain,ckpt --steps 4
python -m benchmarks.memory --quick                          # the tiny model: checks the harness in seconds
python -m benchmarks.memory --graph torch                    # where the memory goes: bytes the graph holds per op

Each case runs in a FRESH subprocess (one C heap per case, nothing left over from another case):
run two steps of the same case on the tiny model (the modules a library imports at its first step
and its one-time caches go into the baseline; `--no-prewarm` counts them too), build the model, its
data and its optimizer; trim the heap (`malloc_trim(0)`) and read the resident
set (VmRSS) as the baseline; reset the high-water mark (`echo 5 > /proc/self/clear_refs`, Linux)
and run the first step (in a compiled case, the compilation too): its peak (VmHWM) minus the
baseline is "first step". Then trim and reset again and run the other steps: their peak minus the
baseline is "a step" (the persistent state: gradients, Adam's moments, the compiled program; plus
what one step's activations and temporaries add), the figure the ratios compare. Every subprocess
has one thread per library (`ag.set_num_threads(1)`, torch's, PJRT_NPROC=1, OMP) and the same glibc
malloc settings (MALLOC_ARENA_MAX=2 and, by default, `harness.fix_malloc_thresholds`), on both sides.
The heap's layout differs between processes (one case's figure moves by about 7-10%): `--repeat 3`
runs each case in three processes and shows the median.

Cases, per model and backend: agnostic eager, agnostic compiled (torch, jax), native (torch eager
with torch.optim.Adam; jax.jit with optax.adam); each as written ("plain"), under bfloat16 autocast
("bf16": `ag.autocast("bfloat16")`, `torch.autocast("cpu", torch.bfloat16)`, and on JAX the same
policy written by hand: matmuls in bfloat16, softmax, norms and the loss in float32), and with every
encoder layer checkpointed ("ckpt": `nn.utils.checkpoint`, `torch.utils.checkpoint.checkpoint(...,
use_reentrant=False)`, `jax.checkpoint`). The models: W3 at seq 256 (benchmarks.w3_lm.LM(seq=256))
and a 6-layer d 512 LM (8 heads, seq 256, batch 8), the same `LM` class.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import gc
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from benchmarks.harness import available
from benchmarks.steps import jax_adam_update
from benchmarks.w3_lm import LM, _lm, data, jax_model

MODELS: dict[str, LM] = {
    "w3_256": LM(seq=256),
    "lm6_512": LM(layers=6, d=512, heads=8, seq=256, batch=8),
    "tiny": LM(vocab=64, d=32, heads=2, layers=1, seq=16, batch=2),
}
TITLES = {
    "w3_256": "W3 at seq 256 (2 layers, d 128, 4 heads, batch 16, vocab 256)",
    "lm6_512": "6-layer LM, d 512, 8 heads, seq 256, batch 8, vocab 256",
    "tiny": "tiny LM (1 layer, d 32, seq 16, batch 2)",
}
KINDS = ("native", "eager", "compiled")
VARIANTS = ("plain", "bf16", "ckpt")
LR = 1e-3


# ---------------------------------------------------------------------------- reading memory
def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: resident now; VmHWM: its peak since the reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Set the peak resident set (VmHWM) to the current one (Linux >= 4.0; False where refused)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim() -> None:
    """Collect Python's garbage and hand the C heap's free pages back (glibc's malloc_trim), so the
    baseline and the reset peak count live memory, not what an earlier phase left free in the heap."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except (OSError, TypeError):
        pass


@dataclass
class Result:
    """One case's figures, in MB (2**20 bytes)."""

    model: str
    backend: str
    kind: str
    variant: str
    steps: int
    prewarm: bool = True
    base_mb: float = math.nan  # resident after building, trimmed
    first_mb: float = math.nan  # peak growth during the first step (compilation included)
    step_mb: float = math.nan  # peak growth during steps 2..N
    kept_mb: float = math.nan  # resident growth after the steps, trimmed (state kept between steps)
    seconds: float = math.nan  # per step, steps 2..N (a rough figure: the machine is shared)
    loss: float = math.nan
    error: str = ""


# ---------------------------------------------------------------------------- building the cases
def _agnostic(
    lm: LM, backend: str, kind: str, variant: str
) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    import agnostic as ag
    from agnostic import nn, optim
    from benchmarks.steps import wait

    B = ag.backend(backend)
    ag.manual_seed(0)
    positions = ag.arange(lm.seq, device=B)
    mask = nn.Transformer.generate_square_subsequent_mask(lm.seq, device=B, dtype=ag.float32)
    model = _lm(nn, positions, mask, _variant_lm(lm, variant), nn.utils.checkpoint)(backend=B)
    x, y = (B.tensor(a) for a in data(lm=lm))
    opt = optim.Adam(model.parameters(), lr=LR)
    cast = (lambda: ag.autocast("bfloat16")) if variant == "bf16" else contextlib.nullcontext

    def step() -> Any:
        opt.zero_grad()
        with cast():
            value = ag.cross_entropy(model(x).reshape(-1, lm.vocab), y.reshape(-1))
        value.backward()
        opt.step()
        return value

    if kind == "compiled":
        step = ag.compile(step)

    def sync(value: Any) -> Any:
        wait([value.data, *(p.data for p in model.parameters())])
        return value

    return step, sync


def _variant_lm(lm: LM, variant: str) -> LM:
    """`lm` with every encoder layer checkpointed in the "ckpt" variant."""
    return replace(lm, checkpoint=variant == "ckpt")


def _torch(lm: LM, variant: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    import torch
    import torch.utils.checkpoint

    torch.manual_seed(0)
    positions = torch.arange(lm.seq)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(lm.seq, dtype=torch.float32)
    checkpoint = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    model = _lm(torch.nn, positions, mask, _variant_lm(lm, variant), checkpoint)()
    x, y = (torch.from_numpy(a) for a in data(lm=lm))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    ce = torch.nn.functional.cross_entropy
    cast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else contextlib.nullcontext
    )

    def step() -> Any:
        opt.zero_grad()
        with cast():
            value = ce(model(x).reshape(-1, lm.vocab), y.reshape(-1))
        value.backward()
        opt.step()
        return value

    return step, lambda value: value


def _jax(lm: LM, variant: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """benchmarks.w3_lm's native JAX LM (`jax_model`: in "bf16" the casts jmp users write, which
    are torch.autocast's policy: the products' operands in bfloat16, softmax, norms and the loss in
    float32; in "ckpt" each layer under jax.checkpoint), with Adam's moments made at the first step."""
    import jax

    params, loss_fn = jax_model(_variant_lm(lm, variant), "bf16-mixed" if variant == "bf16" else "32")
    tx, update = jax_adam_update(loss_fn)
    state = [params, None]  # Adam's moments made at the first step, as torch.optim and agnostic make theirs

    def step() -> Any:
        if state[1] is None:
            state[1] = tx.init(state[0])
        state[0], state[1], value = update(state[0], state[1])
        return value

    return step, lambda value: jax.block_until_ready((value, state))[0]


def build(lm: LM, backend: str, kind: str, variant: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """The case's step and its sync (wait until the step's work, the update included, is done)."""
    if kind != "native":
        return _agnostic(lm, backend, kind, variant)
    if backend == "torch":
        return _torch(lm, variant)
    if backend == "jax":
        return _jax(lm, variant)
    raise ValueError(f"no native case for backend {backend!r} (native: torch, jax)")


# ---------------------------------------------------------------------------- one case, in its process
def run_case(model: str, backend: str, kind: str, variant: str, steps: int, prewarm: bool = True) -> Result:
    """Build the case and measure it, in this process (meant to be a fresh one: see `measure`).
    With `prewarm`, two steps of the same case on the tiny model run first: the modules a library
    imports at its first step and its one-time caches are then in the baseline, so the figures
    count what grows with the model (without it, sympy alone, imported by torch.fx, is 30 MB)."""
    import agnostic as ag

    ag.set_num_threads(1)
    if backend == "torch":  # the native case never loads agnostic's torch backend
        import torch

        torch.set_num_threads(1)
    result = Result(model, backend, kind, variant, steps, prewarm)
    if prewarm:
        warm_step, warm_sync = build(MODELS["tiny"], backend, kind, variant)
        for _ in range(2):
            warm_sync(warm_step())
        del warm_step, warm_sync
    lm = MODELS[model]
    step, sync = build(lm, backend, kind, variant)
    _trim()
    base = _status_kb("VmRSS")
    resets = _reset_peak()
    value = sync(step())
    first = _status_kb("VmHWM")
    _trim()
    _reset_peak()
    start = time.perf_counter()
    for _ in range(steps - 1):
        value = sync(step())
    seconds = (time.perf_counter() - start) / max(steps - 1, 1)
    peak = _status_kb("VmHWM")
    if not resets:  # no reset: the peak since the process started (ru_maxrss), the first step's included
        import resource

        first = peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _trim()
    kept = _status_kb("VmRSS")
    mb = lambda kb: kb / 1024  # noqa: E731
    result.base_mb, result.first_mb, result.step_mb = mb(base), mb(first - base), mb(peak - base)
    result.kept_mb, result.seconds, result.loss = mb(kept - base), seconds, float(value.item())
    return result


def environment(malloc: str) -> dict[str, str]:
    """One thread per library and the same malloc settings, for every case's subprocess."""
    env = dict(os.environ)
    env.update(PJRT_NPROC="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.update(MALLOC_ARENA_MAX="2", BENCHMARK_MEMORY_MALLOC=malloc)
    env.pop("JAX_ENABLE_X64", None)
    return env


def measure(
    model: str,
    backend: str,
    kind: str,
    variant: str,
    steps: int,
    malloc: str = "fixed",
    prewarm: bool = True,
    timeout: float = 900,
) -> Result:
    """One case in a fresh subprocess (`python -m benchmarks.memory --child ...`)."""
    spec = json.dumps(
        dict(model=model, backend=backend, kind=kind, variant=variant, steps=steps, prewarm=prewarm)
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--child", spec],
            cwd=root, env=environment(malloc), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Result(model, backend, kind, variant, steps, prewarm, error=f"timed out after {timeout:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return Result(**json.loads(line[len("RESULT ") :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()
    return Result(
        model, backend, kind, variant, steps, prewarm, error=tail[-1] if tail else f"exit {proc.returncode}"
    )


def _child(spec: str) -> None:
    args = json.loads(spec)
    if os.environ.get("BENCHMARK_MEMORY_MALLOC", "fixed") == "fixed":
        from benchmarks.harness import fix_malloc_thresholds

        fix_malloc_thresholds()
    try:
        result = run_case(**args)
    except NotImplementedError as exc:  # autocast / checkpoint not built yet
        result = Result(**args, error=f"NotImplementedError: {exc}")
    print("RESULT " + json.dumps(asdict(result)), flush=True)


# ---------------------------------------------------------------------------- where the memory goes
def graph_bytes(
    backend: str, model: str = "w3_256", variant: str = "plain"
) -> list[tuple[str, int, int, int]]:
    """After one forward and loss (no backward): the bytes each op type's graph nodes hold,
    agnostic (tensors in a node's inputs and in its rule's closure) against torch (the tensors its
    autograd nodes saved, `_saved_*`), each array counted once, by its data. Rows: (op, agnostic
    bytes, torch bytes, agnostic tensors)."""
    import torch

    import agnostic as ag

    lm = MODELS[model]
    from agnostic import nn

    B = ag.backend(backend)
    ag.manual_seed(0)
    positions = ag.arange(lm.seq, device=B)
    mask = nn.Transformer.generate_square_subsequent_mask(lm.seq, device=B, dtype=ag.float32)
    ours = _lm(nn, positions, mask, lm)(backend=B)
    x, y = (B.tensor(a) for a in data(lm=lm))
    with ag.autocast("bfloat16") if variant == "bf16" else contextlib.nullcontext():
        loss = ag.cross_entropy(ours(x).reshape(-1, lm.vocab), y.reshape(-1))
    per_op: dict[str, list[int]] = {}
    seen_arrays: set[int] = set()
    seen_nodes: set[int] = set()
    stack = [loss._node]
    params = {id(p) for p in ours.parameters()}
    while stack:
        node = stack.pop()
        if not isinstance(node, ag.autodiff.Node) or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        held = list(_captured(node.vjp))
        if node.saved is not None:
            held.append(node.saved)
        entry = per_op.setdefault(node.name, [0, 0])
        for h in held:
            if id(h) in params:
                continue
            key = _array_key(h.data)
            if key in seen_arrays:
                continue
            seen_arrays.add(key)
            entry[0] += _nbytes(h.data)
            entry[1] += 1
        stack.extend(node.edges)

    torch.manual_seed(0)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(lm.seq, dtype=torch.float32)
    native = _lm(torch.nn, torch.arange(lm.seq), tmask, lm)()
    tx, ty = (torch.from_numpy(a) for a in data(lm=lm))
    with torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16" else contextlib.nullcontext():
        tloss = torch.nn.functional.cross_entropy(native(tx).reshape(-1, lm.vocab), ty.reshape(-1))
    tparams = {p.data_ptr() for p in native.parameters()}
    theirs: dict[str, int] = {}
    seen_ptrs: set[int] = set()
    todo, done = [tloss.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or id(fn) in done:
            continue
        done.add(id(fn))
        for attr in dir(fn):
            if not attr.startswith("_saved_"):
                continue
            with contextlib.suppress(RuntimeError):
                for v in _tensors_in(getattr(fn, attr), torch.Tensor):
                    ptr = v.untyped_storage().data_ptr()
                    if ptr in tparams or ptr in seen_ptrs:
                        continue
                    seen_ptrs.add(ptr)
                    theirs[type(fn).__name__] = (
                        theirs.get(type(fn).__name__, 0) + v.untyped_storage().nbytes()
                    )
        todo.extend(f for f, _ in fn.next_functions)
    rows = [(op, b, 0, n) for op, (b, n) in per_op.items()]
    rows += [(op, 0, b, 0) for op, b in theirs.items()]
    return sorted(rows, key=lambda r: -(r[1] + r[2]))


def _captured(fn: Any, depth: int = 4) -> Iterator[Any]:
    """The tensors a rule's closure holds, through the functions it captures (a composite's rule
    inside its wrapper)."""
    for cell in getattr(fn, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            value = cell.cell_contents
            yield from _tensors_in(value)
            if depth and callable(value) and hasattr(value, "__closure__"):
                yield from _captured(value, depth - 1)


def _tensors_in(obj: Any, kind: type | None = None) -> Iterator[Any]:
    if kind is None:
        from agnostic.tensor import Tensor as kind
    if isinstance(obj, kind):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors_in(o, kind)


def _array_key(a: Any) -> int:
    """The address of the buffer an array's data lies in (a NumPy view: its base's; torch: the
    storage's), so the views of one buffer (q, k and v of one projection) count once."""
    while getattr(a, "base", None) is not None and type(a.base) is type(a):
        a = a.base
    for get in (lambda: a.__array_interface__["data"][0], lambda: a.untyped_storage().data_ptr(),
                lambda: a.unsafe_buffer_pointer()):  # fmt: skip
        with contextlib.suppress(Exception):
            return int(get())
    return id(a)


def _nbytes(a: Any) -> int:
    with contextlib.suppress(Exception):
        return int(a.untyped_storage().nbytes())  # torch: the whole storage a view keeps
    while getattr(a, "base", None) is not None and type(a.base) is type(a):
        a = a.base  # a NumPy view keeps its whole base alive
    return int(a.nbytes)


# ---------------------------------------------------------------------------- the table
def cases(backends: list[str], kinds: list[str], variants: list[str]) -> Iterator[tuple[str, str, str]]:
    for backend in backends:
        for variant in variants:
            for kind in kinds:
                if kind == "native" and backend not in ("torch", "jax"):
                    continue
                if kind == "compiled" and backend == "numpy":
                    continue  # no compiler: ag.compile runs the eager step
                yield backend, kind, variant


def table(results: list[Result]) -> str:
    native = {(r.model, r.backend, r.variant): r for r in results if r.kind == "native" and not r.error}
    plain = {(r.model, r.backend, r.kind): r for r in results if r.variant == "plain" and not r.error}
    lines = [
        "| model | backend | case | variant | a step, MB | vs native | vs plain | first step, MB | kept, MB | s/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(
                f"| {r.model} | {r.backend} | {r.kind} | {r.variant} | - | - | - | - | - | {r.error} |"
            )
            continue
        ref = native.get((r.model, r.backend, r.variant))
        ratio = f"{r.step_mb / ref.step_mb:.2f}" if ref is not None and r is not ref else "-"
        base = plain.get((r.model, r.backend, r.kind))
        fall = f"{r.step_mb / base.step_mb:.2f}" if base is not None and r is not base else "-"
        lines.append(
            f"| {r.model} | {r.backend} | {r.kind} | {r.variant} | {r.step_mb:.0f} | {ratio} | {fall} | "
            f"{r.first_mb:.0f} | {r.kept_mb:.0f} | {r.seconds:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="numpy,torch,jax")
    parser.add_argument("--models", default="w3_256,lm6_512", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: native, eager, compiled")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: plain, bf16, ckpt")
    parser.add_argument("--steps", type=int, default=4, help="steps per case (the first, then the rest)")
    parser.add_argument("--quick", action="store_true", help="the tiny model, 2 steps: checks the harness")
    parser.add_argument("--malloc", choices=("fixed", "default"), default="fixed")
    parser.add_argument(
        "--no-prewarm",
        action="store_true",
        help="count first-use imports and caches too (no tiny step first)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="processes per case; the median's row is shown (heap layout varies)",
    )
    parser.add_argument("--graph", metavar="BACKEND", help="print the bytes the graph holds per op type")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    if args.graph:
        model = args.models.split(",")[0]
        if model not in MODELS:
            parser.error(f"--models: unknown {model!r}; choose from {', '.join(MODELS)}")
        print(
            f"Bytes the graph holds after the forward and loss ({TITLES[model]}), per op type ({args.variants.split(',')[0]}):\n"
        )
        print("| op (node) | agnostic MB | torch saved MB | agnostic tensors |\n|---|---|---|---|")
        variant = args.variants.split(",")[0]
        if variant not in ("plain", "bf16"):
            parser.error(f"--graph: the variant is plain or bf16, got {variant!r}")
        rows = graph_bytes(args.graph, model, variant)
        for op, ours, theirs, n in rows:
            print(f"| {op} | {ours / 2**20:.1f} | {theirs / 2**20:.1f} | {n} |")
        total = [sum(r[i] for r in rows) / 2**20 for i in (1, 2)]
        print(f"| total | {total[0]:.1f} | {total[1]:.1f} | |")
        return None
    models = ["tiny"] if args.quick else args.models.split(",")
    steps = 2 if args.quick and args.steps == 4 else args.steps
    for name, values, known in (("--models", models, MODELS), ("--kinds", args.kinds.split(","), KINDS),
                                ("--variants", args.variants.split(","), VARIANTS)):  # fmt: skip
        unknown = sorted(set(values) - set(known))
        if unknown:
            parser.error(f"{name}: unknown {unknown}; choose from {', '.join(known)}")
    if steps < 2:
        parser.error("--steps: at least 2 (the first step, then the steps measured)")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    results = []
    backends = available(args.backends.split(","))
    for model in models:
        for backend, kind, variant in cases(backends, args.kinds.split(","), args.variants.split(",")):
            runs = [measure(model, backend, kind, variant, steps, args.malloc, not args.no_prewarm)]
            runs += [measure(model, backend, kind, variant, steps, args.malloc, not args.no_prewarm)
                     for _ in range(args.repeat - 1) if not runs[0].error]  # fmt: skip
            r = sorted(runs, key=lambda r: r.step_mb)[len(runs) // 2]  # the median run
            print(f"<!-- {model} {backend} {kind} {variant}: {r.step_mb:.1f} MB {r.error} -->", flush=True)
            results.append(r)
    print(f"\nPeak resident memory a training step adds over the built model ({steps} steps, a fresh process "
          f"per case, the median of {args.repeat}, 1 thread, malloc {args.malloc}, {'no prewarm' if args.no_prewarm else 'prewarmed on the tiny model'}); ratios against the native case of the same library "
          "and variant, and against the same case's plain variant:\n")  # fmt: skip
    for model in models:
        print(f"{TITLES[model]}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    return None


if __name__ == "__main__":
    main()
