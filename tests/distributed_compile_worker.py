"""A worker that tests/test_distributed_compile.py runs under torchrun (not a test module).

`python distributed_compile_worker.py BACKEND OUT_DIR` trains W1's MLP data-parallel for 20 SGD
(momentum) steps with the forward/backward `agnostic.compile`d ("compiled": the update eager;
"split": the update compiled too, as the Learner does; "fused": forward, backward and update in one
compiled program; "accumulate": split, with two micro-batches under no_sync before the synced one),
and eagerly ("eager", "eager_accumulate"), and, in the same
process, one process on the global batch. It writes OUT_DIR/rank{R}.json with the largest parameter
differences to the one-process run and to the eager data-parallel run, the largest gradient
difference to the one-process run, the difference between replicas, and the programs compiled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.data import DataLoader, DistributedSampler, TensorDataset
from agnostic.distributed.data_parallel import DistributedDataParallel

SIZES = (784, 512, 512, 10)  # W1
STEPS, BATCH, MICRO = 20, 16, 3  # per-process batch; micro-batches per step when accumulating
MODES = {"eager": 1, "compiled": 1, "split": 1, "fused": 1, "eager_accumulate": MICRO, "accumulate": MICRO}


def mlp(device: ag.Device, seed: int) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
        nn.Linear(SIZES[2], SIZES[3]), backend=device,
    )  # fmt: skip


def train(mode: str, device: ag.Device, ds: TensorDataset) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The parameters after training (rank `dist.rank()`'s batches; one process on the global batch
    when `mode` is "one_process_*"), the gradients of every step, and the programs compiled."""
    rank, world = dist.rank(), dist.world_size()
    alone = mode.startswith("one_process")
    micro = MICRO if mode.endswith("accumulate") else 1
    model: nn.Module = mlp(device, seed=0) if alone else DistributedDataParallel(mlp(device, rank), 1.0)
    opt = ag.optim.SGD(list(model.parameters()), lr=0.05, momentum=0.9)

    def forward_backward(x: ag.Tensor, y: ag.Tensor) -> None:
        F.cross_entropy(model(x), y).backward()

    def update() -> None:
        opt.step()
        opt.zero_grad()

    if mode in ("compiled", "split", "accumulate"):
        forward_backward = ag.compile(forward_backward)
    if mode in ("split", "accumulate"):
        update = ag.compile(update)
    if mode == "fused":

        @ag.compile
        def forward_backward(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
            F.cross_entropy(model(x), y).backward()
            reduced = ag.concat([ag.reshape(p.grad, (-1,)) for p in model.parameters()])
            opt.step()
            opt.zero_grad()
            return reduced

        def update() -> None:  # in the program
            pass

    samplers = [DistributedSampler(ds, world, r, shuffle=True, seed=7) for r in range(world)]
    loaders = [DataLoader(ds, batch_size=BATCH, sampler=s, device=device) for s in samplers]
    step, epoch, grads = 0, 0, []
    while step < STEPS:
        for s in samplers:
            s.set_epoch(epoch)
        batches = list(zip(*loaders))
        for k in range(0, len(batches) - micro + 1, micro):
            if step == STEPS:
                break
            for m, everyone in enumerate(batches[k : k + micro]):
                if alone:
                    forward_backward(ag.concat([b[0] for b in everyone]), ag.concat([b[1] for b in everyone]))
                    continue
                with model.no_sync() if m < micro - 1 else contextlib.nullcontext():  # type: ignore[operator]
                    reduced = forward_backward(*everyone[rank])
            if mode == "fused":
                grads.append(reduced.numpy())
            else:
                grads.append(np.concatenate([p.grad.numpy().ravel() for p in model.parameters()]))
            update()
            step += 1
        epoch += 1
    params = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    return params, grads, compiled_with_all_reduce(forward_backward)


def compiled_with_all_reduce(step: object) -> tuple[int, bool]:
    """The programs `step` compiled, and whether one holds the all-reduce (torch: its fx graph's code,
    with torch's functional collectives; jax: the XLA program's text)."""
    entries = [e for es in getattr(step, "_cache", {}).values() for e in es]
    texts = [
        str(e.run.as_text()) if hasattr(e.run, "as_text") else str(getattr(e.run, "code", ""))
        for e in entries
    ]
    return len(entries), any("_c10d_functional.all_reduce" in t or "all-reduce" in t for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("out")
    args = parser.parse_args()
    dist.init(args.backend, timeout=60)
    device = ag.backend(args.backend)
    data = np.random.default_rng(0)
    n = 2 * BATCH * 10
    ds = TensorDataset(data.standard_normal((n, SIZES[0])).astype(np.float32), data.integers(0, 10, n))
    ones = {micro: train("one_process" + "_accumulate" * (micro > 1), device, ds) for micro in (1, MICRO)}
    runs = {mode: train(mode, device, ds) for mode in MODES}
    result = {}
    for mode, (params, grads, (compiled, in_program)) in runs.items():
        one, one_grads, _ = ones[MODES[mode]]
        eager = runs["eager" if MODES[mode] == 1 else "eager_accumulate"][0]
        gathered = dist.all_gather(ag.asarray(params, device=device)).numpy()
        result[mode] = {
            "to_one_process": float(np.max(np.abs(params - one))),
            "grads_to_one_process": max(float(np.max(np.abs(g - h))) for g, h in zip(grads, one_grads)),
            "to_eager_ddp": float(np.max(np.abs(params - eager))),
            "between_replicas": float(np.max(np.abs(gathered - gathered[0]))),
            "compilations": compiled,
            "all_reduce_in_program": in_program,
        }
    Path(args.out, f"rank{dist.rank()}.json").write_text(json.dumps(result))
    dist.shutdown()


if __name__ == "__main__":
    main()
