"""Issue 23 part 4: the speed of mixed precision on the CPU. `python -m benchmarks --precision
bf16-mixed [--only w1,w2,w3,products,programs] [--threads 1]` (this module's `run`).

For each workload and backend, one interleaved run (as `python -m benchmarks`) of:
- agnostic eager, and through `ag.compile` where the backend has a compiler, with the forward and
  the loss under `ag.autocast("bfloat16")` (float32 parameters, Adam), and the same in float32;
- the native step of the same library in both precisions: torch eager + torch.optim with
  `torch.autocast("cpu", dtype=torch.bfloat16)`; jax.jit + optax with the casts jmp users write
  (each workload's `_jax` says which). NumPy has no native bfloat16 step (its hand-written W1 is
  float32): there, agnostic bf16-mixed is compared with agnostic float32 only.

Every ratio is a paired one (the median of per-window ratios) within that run, so the shared
machine's drift cancels: agnostic / native in bf16-mixed (and in float32, for reference), and
bf16-mixed / float32 for each case (above 1: bfloat16 is slower than float32 there). `products`:
the products that dominate the workloads, alone in each library, bfloat16 against float32.
`programs`: what the compiled JAX steps run (XLA:CPU computes bfloat16 products in float32)."""

from __future__ import annotations

import os
import sys
from typing import Any

from benchmarks.harness import Case, format_time, measure, paired_ratio

WORKLOADS = {
    "w1": "W1, MLP 784-512-512-10, batch 128",
    "w2": "W2, CNN conv32-pool-conv64-pool-linear, batch 64",
    "w3": "W3, transformer LM, 2 layers, d 128, seq 64, batch 16",
}
BF16 = "bf16-mixed"


def set_threads(threads: int | None) -> str:
    """Run every library on `threads` threads, through `ag.set_num_threads`: NumPy's BLAS and the
    OpenMP runtimes (threadpoolctl), torch's intra-op pool (now, or when agnostic's torch backend
    loads it) and XLA's CPU pools (PJRT_NPROC, read when JAX starts: call this before any JAX
    work). A benchmark script may change these process-wide settings; the library never does on its
    own. Returns what was set, for the table's header."""
    if threads is None:
        return (
            f"threads: the libraries' defaults (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
        )
    import agnostic as ag

    ag.set_num_threads(threads)
    return f"threads: {threads} (ag.set_num_threads: BLAS, OpenMP, torch; XLA: PJRT_NPROC={os.environ.get('PJRT_NPROC')})"


def cases(module: Any, backend: str) -> tuple[list[Case], dict[tuple[str, str], Case]]:
    """Every case of one workload on one backend, and a map (kind, precision) -> case, kind one of
    "eager", "compiled", "native"."""
    import agnostic as ag

    kinds: dict[tuple[str, str], Case] = {}
    native = module.native_case(backend, precision=BF16)  # None: no native bfloat16 step (NumPy)
    for precision in (BF16, "32"):
        kinds["eager", precision] = module.agnostic_case(backend, precision=precision)
        if ag.backend(backend).ops.compiler is not None:
            kinds["compiled", precision] = module.agnostic_case(backend, compiled=True, precision=precision)
        if native is not None:
            kinds["native", precision] = native if precision == BF16 else module.native_case(backend)
    return list(kinds.values()), kinds


def run(
    backends: list[str],
    only: list[str],
    windows: int = 21,
    steps: int = 5,
    window_seconds: float = 0.1,
    warmup: int = 5,
) -> None:
    """Print the Markdown tables this module's docstring describes, for the keys in `only`."""
    from benchmarks import w1_mlp, w2_cnn, w3_lm

    modules = {"w1": w1_mlp, "w2": w2_cnn, "w3": w3_lm}
    if not set(only) & set(modules):
        return _extras(only, backends, windows, steps, window_seconds)
    print(
        f"One full training step (forward, backward, Adam), `{BF16}`: the forward and the loss under bfloat16"
        " autocast, float32 parameters. Time per step, median of"
    )
    print(
        f"{windows} windows of about {window_seconds * 1e3:g} ms and at least {steps} steps; every ratio is the median of"
        " per-window ratios within this run.\n"
    )
    print(
        f"| workload | backend | case | {BF16} | float32 | {BF16} / float32 | agnostic / native, {BF16} | agnostic / native, float32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key in only:
        if key not in modules:
            continue
        module = modules[key]
        for b in backends:
            every, kinds = cases(module, b)
            measure(every, warmup=warmup, windows=windows, steps=steps, window_seconds=window_seconds)
            native = kinds.get(("native", BF16)), kinds.get(("native", "32"))
            for kind in ("eager", "compiled", "native"):
                if (kind, BF16) not in kinds:
                    continue
                low, full = kinds[kind, BF16], kinds[kind, "32"]
                what = {"eager": f"agnostic[{b}]", "compiled": f"agnostic[{b}], ag.compile"}.get(kind)
                if kind == "native":
                    what = full.name.removeprefix("native ")
                    vs = ("-", "-")
                elif native[0] is None:
                    vs = ("no native bf16 step", "-")
                else:
                    vs = (f"{paired_ratio(low, native[0]):.2f}", f"{paired_ratio(full, native[1]):.2f}")
                print(
                    f"| {WORKLOADS[key]} | {b} | {what} | {format_time(low.median)} | {format_time(full.median)}"
                    f" | {paired_ratio(low, full):.2f} | {vs[0]} | {vs[1]} |"
                )
            sys.stdout.flush()
    _extras(only, backends, windows, steps, window_seconds)


def _extras(only: list[str], backends: list[str], windows: int, steps: int, window_seconds: float) -> None:
    """The products alone and the JAX programs, where `only` asks for them."""
    if "products" in only:
        run_products(backends, windows, steps, window_seconds)
    if "programs" in only and "jax" in backends:
        jax_programs([k for k in WORKLOADS if k in only] or list(WORKLOADS))


PRODUCTS = {
    "W1 layer 1: (128, 784) @ (784, 512)": ((128, 784), (784, 512)),
    "W3 feed-forward: (1024, 128) @ (128, 512)": ((1024, 128), (128, 512)),
    "W2 conv 2: (64, 32, 14, 14) * (64, 32, 3, 3)": ((64, 32, 14, 14), (64, 32, 3, 3)),
}
"""The products that dominate the workloads, timed alone in each library, bfloat16 against float32:
where bfloat16 is slower than float32 on this CPU, this says whether the product is why."""


def product_cases(backend: str, what: str) -> tuple[Case, Case] | None:
    """(bfloat16, float32) cases of one product in the backend's own library (NumPy: ml_dtypes'
    bfloat16, whose matmul NumPy runs as float32 BLAS on widened copies; no conv in NumPy)."""
    import numpy as np

    from benchmarks.steps import wait

    a_shape, b_shape = PRODUCTS[what]
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=a_shape).astype(np.float32), rng.normal(size=b_shape).astype(np.float32)
    conv = len(a_shape) == 4
    made = []
    for dtype in ("bfloat16", "float32"):
        if backend == "torch":
            import torch

            x, w = (torch.from_numpy(t).to(getattr(torch, dtype)) for t in (a, b))
            fn = (
                (lambda x=x, w=w: torch.nn.functional.conv2d(x, w, padding=1))
                if conv
                else (lambda x=x, w=w: x @ w)
            )
        elif backend == "jax":
            import jax
            import jax.numpy as jnp

            x, w = (jnp.asarray(t, getattr(jnp, dtype)) for t in (a, b))
            if conv:
                op = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1))))
            else:
                op = jax.jit(jnp.matmul)
            fn = lambda x=x, w=w, op=op: op(x, w)  # noqa: E731
        elif backend == "numpy" and not conv:
            import ml_dtypes

            low = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32
            x, w = a.astype(low), b.astype(low)
            fn = lambda x=x, w=w: x @ w  # noqa: E731
        else:
            return None
        made.append(Case(f"{backend} {dtype}", fn, sync=lambda out: wait([out])))
    return made[0], made[1]


def run_products(backends: list[str], windows: int, steps: int, window_seconds: float) -> None:
    """Print bfloat16 / float32 for each product in each library (paired, interleaved windows)."""
    print(
        "\nThe products alone, in each library's own code: bfloat16 time / float32 time (above 1: bfloat16 is slower)\n"
    )
    print("| product | " + " | ".join(backends) + " |")
    print("|---|" + "---|" * len(backends))
    for what in PRODUCTS:
        row = []
        for b in backends:
            pair = product_cases(b, what)
            if pair is None:
                row.append("-")
                continue
            measure(list(pair), windows=windows, steps=steps, window_seconds=window_seconds)
            row.append(
                f"{paired_ratio(*pair):.2f} ({format_time(pair[0].median)} / {format_time(pair[1].median)})"
            )
        print(f"| {what} | " + " | ".join(row) + " |")
        sys.stdout.flush()


def jax_programs(keys: list[str]) -> None:
    """Print what the compiled JAX bf16-mixed steps run, as XLA:CPU built them: kernels, convert
    ops and the dtype of each product's result, agnostic's `ag.compile` against the jmp-style
    jax.jit step. Counts, not times: the shared machine's noise does not touch them."""
    import re
    from collections import Counter

    from benchmarks import w1_mlp, w2_cnn, w3_lm
    from benchmarks.programs import counts

    modules = {"w1": w1_mlp, "w2": w2_cnn, "w3": w3_lm}
    print(f"\nThe compiled JAX `{BF16}` steps' XLA:CPU programs (entry computation; converts anywhere):\n")
    print("| workload | program | kernels | converts | products (dot, convolution) by result dtype |")
    print("|---|---|---|---|---|")
    for key in keys:
        for side, hlo in (
            ("agnostic, ag.compile", _agnostic_hlo(modules[key])),
            ("jax.jit, jmp-style", _native_hlo(modules[key])),
        ):
            products = Counter(re.findall(r"= (\w+)\[[^\]]*\]\S* (?:dot|convolution)\(", hlo))
            said = ", ".join(f"{n} {dtype}" for dtype, n in sorted(products.items()))
            print(
                f"| {WORKLOADS[key]} | {side} | {counts(hlo)['kernels']} | {hlo.count(' convert(')} | {said} |"
            )


def _agnostic_hlo(module: Any) -> str:
    case = module.agnostic_case("jax", compiled=True, precision=BF16)
    for _ in range(2):
        case.sync(case.step())
    (entry,) = [e for entries in case.step._cache.values() for e in entries]
    return entry.run.as_text()


def _native_hlo(module: Any) -> str:
    case = module.native_case("jax", precision=BF16)
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
    update, state = cells["PjitFunction"], cells["list"]
    return update.lower(state[0], state[1]).compile().as_text()
