"""What autocast's parameter cache saves on a recurrent model, an ablation in one run:
`python -m benchmarks.autocast_cache [--hidden 1024] [--steps 50] [--repeat 3]`.

An `nn.LSTM` (input 256, batch 8) on the NumPy backend with one BLAS thread, forward and loss under
`ag.autocast("bfloat16")` then backward, with the cache (`cache_enabled=True`, the default: the
recurrent weight is converted once) and without it (converted at each time step, and each step's
matmul keeps its own bfloat16 copy for backward). Peak memory is what tracemalloc sees of the
arrays NumPy allocates (the NumPy backend only: torch's and XLA's allocators are not traced); time
is the median of `--repeat` interleaved runs, compared as a ratio. No native side: torch caches
the same way, and the question is what the cache is worth in agnostic."""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

import agnostic as ag
from agnostic import nn


def measure(lstm: nn.Module, x: ag.Tensor, cache: bool) -> tuple[float, float, float]:
    """(forward peak MiB, forward+backward peak MiB, seconds) of one step."""
    lstm.zero_grad()
    tracemalloc.start()
    start = time.perf_counter()
    with ag.autocast("bfloat16", cache_enabled=cache):
        out, _ = lstm(x)
        loss = out.astype(ag.float32).sum()
    forward = tracemalloc.get_traced_memory()[1]
    loss.backward()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return forward / 2**20, peak / 2**20, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with ag.num_threads(1):
        report(args.hidden, args.steps, args.repeat)


def report(hidden: int, steps: int, repeat: int) -> None:
    ag.manual_seed(0)
    lstm = nn.LSTM(256, hidden)
    x = ag.asarray(np.random.default_rng(0).normal(size=(steps, 8, 256)).astype(np.float32))
    runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    measure(lstm, x, True)  # warm-up: imports and first-call costs on neither side
    for _ in range(repeat):
        for cache in (True, False):
            runs[cache].append(measure(lstm, x, cache))
    print(f"LSTM 256 -> {hidden}, {steps} steps, batch 8, numpy backend, 1 thread, bf16 autocast")
    for cache in (True, False):
        fwd, peak, sec = (statistics.median(r[i] for r in runs[cache]) for i in range(3))
        print(
            f"  cache_enabled={cache!s:5}  forward peak {fwd:6.0f} MiB  step peak {peak:6.0f} MiB  {sec:6.2f} s"
        )
    on, off = runs[True], runs[False]
    print(
        f"  without / with the cache: step peak {statistics.median(b[1] / a[1] for a, b in zip(on, off)):.2f}x, "
        f"time {statistics.median(b[2] / a[2] for a, b in zip(on, off)):.2f}x"
    )


if __name__ == "__main__":
    main()
