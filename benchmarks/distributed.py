"""Data-parallel training step (issue 19 part 8): agnostic's `distributed.DataParallel` against torch's
own `torch.nn.parallel.DistributedDataParallel`, on the torch backend, CPU (gloo).

`python -m benchmarks.distributed` (`--processes 1,2`, `--only w1,w3`, `--windows`, `--steps`,
`--window-ms`, `--warmup`, `--bucket-mb`) starts, for each process count N, `torchrun --standalone --nproc-per-node N
-m benchmarks.distributed --worker ...`; rank 0 of each writes its figures to a JSON file and this
process prints one Markdown table.

Each workload's full training step (zero the gradients, forward, loss, backward with the gradient
all-reduce, Adam) is the step of `benchmarks.steps`, with the same per-process batch at every N
(W1: MLP 784-512-512-10, batch 128; W3: the causal transformer LM of `benchmarks.w3_lm`, batch 16 x
64 tokens); every rank gets its own batch (seed = rank). The agnostic model and the torch model come
from one description (`w1_mlp.SIZES`, `w3_lm._lm`). Four cases run interleaved in the same processes,
one window each in turn (`harness.window_order`):
- agnostic: `dist.DataParallel(model)` (25 MB buckets, each all-reduce started asynchronously as
  soon as its bucket is full, so it overlaps the rest of backward) and `agnostic.optim.Adam`;
- torch: `DistributedDataParallel(model)` (torch's defaults: 25 MB buckets, overlapped with backward)
  and `torch.optim.Adam`;
`--bucket-mb` sets both wrappers' `bucket_cap_mb` (smaller buckets: more, earlier collectives, which
shows the overlap);
- the gradient reduction alone: `agnostic.distributed.all_reduce` of one flat float32 buffer of the
  parameters' size (both models fit one 25 MB bucket, so this is exactly the one collective of a
  DataParallel step), and `torch.distributed.all_reduce` of the same buffer in place.

Every rank runs the same number of steps per window (rank 0 chooses it and broadcasts it), every
window starts after a barrier, and a window's time is the slowest rank's. The ratio agnostic / torch
is the median of per-window ratios (`harness.paired_ratio`). Bytes moved per step: a ring all-reduce
sends (and receives) 2 x (N-1)/N x the buffer's bytes per process. One thread per process for both
libraries (`ag.set_num_threads(1)`, `torch.set_num_threads(1)`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks.harness import Case, fix_malloc_thresholds, format_time, paired_ratio, window_order

WORKLOADS = ("w1", "w3")
_TITLES = {
    "w1": "W1 MLP 784-512-512-10, batch 128/process",
    "w3": "W3 LM, batch 16 x 64 tokens/process",
}


# ---------------------------------------------------------------------------------------- models
def _models(workload: str, rank: int) -> tuple[Any, Any, Any, Any, Any, Any]:
    """(agnostic model, torch model, agnostic x, y, torch x, y) for this rank, and the losses."""
    import torch

    import agnostic as ag
    from agnostic import nn

    B = ag.backend("torch")
    ag.manual_seed(0)
    torch.manual_seed(0)
    if workload == "w1":
        from benchmarks import w1_mlp

        def mlp(nn_: Any, **kw: Any) -> Any:
            layers: list[Any] = []
            for a, b in zip(w1_mlp.SIZES, w1_mlp.SIZES[1:]):
                layers += [nn_.Linear(a, b), nn_.ReLU()]
            return nn_.Sequential(*layers[:-1], **kw)

        xa, ya = w1_mlp.data(seed=rank)
        return (
            mlp(nn, backend=B),
            mlp(torch.nn),
            B.tensor(xa),
            B.tensor(ya),
            torch.from_numpy(xa),
            torch.from_numpy(ya),
        )
    from benchmarks import w3_lm

    lm = w3_lm.W3
    mask = nn.Transformer.generate_square_subsequent_mask(lm.seq, device=B, dtype=ag.float32)
    ours = w3_lm._lm(nn, ag.arange(lm.seq, device=B), mask, lm)(backend=B)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(lm.seq, dtype=torch.float32)
    theirs = w3_lm._lm(torch.nn, torch.arange(lm.seq), tmask, lm)()
    xa, ya = w3_lm.data(seed=rank)
    return ours, theirs, B.tensor(xa), B.tensor(ya), torch.from_numpy(xa), torch.from_numpy(ya)


def _losses(workload: str) -> tuple[Any, Any]:
    import torch

    import agnostic as ag

    if workload == "w1":
        return ag.cross_entropy, torch.nn.functional.cross_entropy
    vocab = 256

    def ours(out: Any, y: Any) -> Any:
        return ag.cross_entropy(out.reshape(-1, vocab), y.reshape(-1))

    def theirs(out: Any, y: Any) -> Any:
        return torch.nn.functional.cross_entropy(out.reshape(-1, vocab), y.reshape(-1))

    return ours, theirs


def _cases(workload: str, rank: int, bucket_mb: float) -> tuple[list[Case], int]:
    import torch
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    import agnostic as ag
    from agnostic import distributed as dist
    from benchmarks.steps import agnostic_adam_case, torch_adam_case

    ours, theirs, x, y, tx, ty = _models(workload, rank)
    loss_ours, loss_theirs = _losses(workload)
    n_params = sum(p.size for p in ours.parameters())
    assert n_params == sum(p.numel() for p in theirs.parameters()), "the two models differ in size"
    agnostic_step = agnostic_adam_case(
        "torch", dist.DataParallel(ours, bucket_cap_mb=bucket_mb), x, y, loss_ours
    )
    agnostic_step.name = "agnostic DataParallel"
    torch_step = torch_adam_case(
        DistributedDataParallel(theirs, bucket_cap_mb=bucket_mb), tx, ty, loss_theirs
    )
    torch_step.name = "torch DDP"

    flat = ag.backend("torch").tensor(np.ones(n_params, np.float32))
    tflat = torch.ones(n_params)

    def torch_all_reduce() -> Any:
        tdist.all_reduce(tflat)
        return tflat

    return [
        agnostic_step,
        torch_step,
        Case("agnostic all_reduce", lambda: dist.all_reduce(flat, "sum")),
        Case("torch all_reduce", torch_all_reduce),
    ], n_params


# ---------------------------------------------------------------------------------------- timing
def _measure(cases: list[Case], warmup: int, windows: int, steps: int, window_seconds: float) -> None:
    """`harness.measure`, with every rank in step: rank 0 chooses each case's steps per window and
    broadcasts them, a barrier opens each window, and a window's time is the slowest rank's."""
    import torch
    import torch.distributed as tdist

    from benchmarks.harness import _window

    for case in cases:
        for _ in range(warmup):
            case.sync(case.step())
        case.steps = steps
        tdist.barrier()
        seconds, _ = _window(case)
        chosen = torch.tensor([max(steps, int(np.ceil(window_seconds / max(seconds, 1e-9))))])
        tdist.broadcast(chosen, 0)
        case.steps = int(chosen.item())
    for w in range(windows):
        for case in window_order(cases, w):
            tdist.barrier()
            seconds, faults = _window(case)
            case.seconds.append(seconds)
            case.faults.append(faults)
    times = torch.tensor([case.seconds for case in cases], dtype=torch.float64)
    tdist.all_reduce(times, tdist.ReduceOp.MAX)
    for case, row in zip(cases, times.tolist()):
        case.seconds = row


def worker(args: argparse.Namespace) -> None:
    import torch

    import agnostic as ag
    from agnostic import distributed as dist

    ag.set_num_threads(1)
    torch.set_num_threads(1)
    fix_malloc_thresholds()
    dist.init("torch")
    rank, n = dist.rank(), dist.world_size()
    rows = []
    for workload in args.only.split(","):
        cases, n_params = _cases(workload, rank, args.bucket_mb)
        load = os.getloadavg()[0]
        _measure(cases, args.warmup, args.windows, args.steps, args.window_ms / 1e3)
        step_a, step_t, red_a, red_t = cases
        rows.append(
            {
                "workload": workload,
                "processes": n,
                "params": n_params,
                "agnostic": step_a.median,
                "torch": step_t.median,
                "ratio": paired_ratio(step_a, step_t),
                "ratios": [a / b for a, b in zip(step_a.seconds, step_t.seconds)],
                "reduce_agnostic": red_a.median,
                "reduce_torch": red_t.median,
                "share": statistics.median(r / s for r, s in zip(red_a.seconds, step_a.seconds)),
                "steps": [c.steps for c in cases],
                "load": [load, os.getloadavg()[0]],
            }
        )
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump(rows, f)
    dist.barrier()
    dist.shutdown()


# ---------------------------------------------------------------------------------------- report
def _bytes(n_params: int, n: int) -> str:
    moved = n_params * 4 * 2 * (n - 1) / n
    return f"{moved / 2**20:.2f} MiB" if moved else "0"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | processes | agnostic DataParallel step | torch DDP step | agnostic / torch "
        "| all-reduce alone (agnostic / torch.distributed) | all-reduce share of agnostic's step "
        "| bytes moved per step per process | steps / window |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {_TITLES[r['workload']]} ({r['params']:,} parameters) | {r['processes']} "
            f"| {format_time(r['agnostic'])} | {format_time(r['torch'])} | {r['ratio']:.2f} "
            f"| {format_time(r['reduce_agnostic'])} / {format_time(r['reduce_torch'])} "
            f"| {100 * r['share']:.0f}% | {_bytes(r['params'], r['processes'])} "
            f"| {' / '.join(str(s) for s in r['steps'][:2])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="w1,w3")
    parser.add_argument("--windows", type=int, default=21)
    parser.add_argument("--steps", type=int, default=5, help="at least this many steps per window")
    parser.add_argument("--window-ms", type=float, default=100.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bucket-mb", type=float, default=25.0, help="bucket_cap_mb of both wrappers")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for w in args.only.split(","):
        if w not in WORKLOADS:
            parser.error(f"--only: unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")
    if args.worker:
        worker(args)
        return

    from benchmarks.__main__ import machine

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    env["OMP_NUM_THREADS"] = "1"
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(p) for p in args.processes.split(",")):
            out = os.path.join(tmp, f"{n}.json")
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                "-m", "benchmarks.distributed", "--worker", f"--out={out}", f"--only={args.only}",
                f"--windows={args.windows}", f"--steps={args.steps}", f"--window-ms={args.window_ms}",
                f"--warmup={args.warmup}", f"--bucket-mb={args.bucket_mb}",
            ]  # fmt: skip
            subprocess.run(command, cwd=root, env=env, check=True)
            with open(out) as f:
                rows += json.load(f)
    rows.sort(key=lambda r: (WORKLOADS.index(r["workload"]), r["processes"]))
    print(f"\nBuckets: {args.bucket_mb:g} MB")
    print(f"Machine: {machine()}; 1 thread per process (ag.set_num_threads(1), torch.set_num_threads(1))")
    print(
        "Load average (1 min) at the start / end of each workload: "
        + "; ".join(
            f"{r['workload']} x{r['processes']}: {r['load'][0]:.1f} / {r['load'][1]:.1f}" for r in rows
        )
        + f"; run took {time.perf_counter() - started:.0f} s\n"
    )
    print(table(rows))
    print(
        "\nagnostic / torch: median of per-window ratios; all-reduce share: median per window of "
        "(agnostic all_reduce of one flat buffer of the parameters' size) / (agnostic's step). Bytes "
        "moved: parameter bytes x 2 x (N-1)/N, sent (and as many received) by each process in a ring "
        "all-reduce. Per-window ratios: "
        + "; ".join(
            f"{r['workload']} x{r['processes']}: {', '.join(f'{v:.2f}' for v in r['ratios'])}" for r in rows
        )
    )


if __name__ == "__main__":
    main()
