"""A worker that tests/test_distributed_ddp.py runs under torchrun (not a test module).

`python distributed_ddp_worker.py BACKEND OUT_DIR` trains an MLP data-parallel (DistributedDataParallel,
DistributedSampler, per-process batch B) and, in the same process, the same model on one process with
the global batch 2B; it writes OUT_DIR/rank{R}.json with the largest parameter differences: to the
one-process result (of the parameters after training, and of the averaged gradients at every step),
and between the replicas. Runs: SGD with momentum and Adam, each also with gradient
accumulation (two micro-batches under no_sync, then a synced one). Rank 1 builds its model from
another seed, so the equality also shows that wrapping broadcasts rank 0's parameters.
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


def mlp(device: ag.Device, seed: int) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
        nn.Linear(SIZES[2], SIZES[3]), backend=device,
    )  # fmt: skip


def optimizer(kind: str, params: list) -> ag.optim.Optimizer:
    return (
        ag.optim.SGD(params, lr=0.05, momentum=0.9)
        if kind.endswith("sgd")
        else ag.optim.Adam(params, lr=1e-3)
    )


def flat(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def run(kind: str, device: ag.Device, ds: TensorDataset, dtype: str) -> dict[str, float]:
    rank, world = dist.rank(), dist.world_size()
    micro = MICRO if kind.startswith("accumulate") else 1
    ddp = DistributedDataParallel(
        mlp(device, seed=rank).to(dtype=dtype), bucket_cap_mb=1.0
    )  # several buckets
    opt = optimizer(kind, list(ddp.parameters()))
    ref = mlp(device, seed=0).to(dtype=dtype)
    ref_opt = optimizer(kind, list(ref.parameters()))
    samplers = [DistributedSampler(ds, world, r, shuffle=True, seed=7) for r in range(world)]
    loader = DataLoader(ds, batch_size=BATCH, sampler=samplers[rank], device=device)
    refs = [DataLoader(ds, batch_size=BATCH, sampler=s, device=device) for s in samplers]
    step, epoch, grad_diff = 0, 0, 0.0
    while step < STEPS:
        for s in samplers:
            s.set_epoch(epoch)
        batches = list(zip(loader, *refs))
        for k in range(0, len(batches) - micro + 1, micro):
            if step == STEPS:
                break
            for m, (mine, *everyone) in enumerate(batches[k : k + micro]):
                last = m == micro - 1
                with ddp.no_sync() if not last else contextlib.nullcontext():
                    F.cross_entropy(ddp(mine[0].astype(dtype)), mine[1]).backward()
                x = ag.concat([b[0] for b in everyone]).astype(dtype)
                y = ag.concat([b[1] for b in everyone])
                F.cross_entropy(ref(x), y).backward()
            for p, q in zip(ddp.parameters(), ref.parameters()):
                grad_diff = max(grad_diff, float(np.max(np.abs(p.grad.numpy() - q.grad.numpy()))))
            opt.step()
            opt.zero_grad()
            ref_opt.step()
            ref_opt.zero_grad()
            step += 1
        epoch += 1
    mine = flat(ddp.module)
    gathered = dist.all_gather(ag.asarray(mine, device=device)).numpy()
    return {
        "to_one_process": float(np.max(np.abs(mine - flat(ref)))),
        "grads_to_one_process": grad_diff,
        "between_replicas": float(np.max(np.abs(gathered - gathered[0]))),
        "buckets": len(ddp._buckets),
    }


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
    result = {
        f"{kind}_{dtype}": run(kind, device, ds, dtype)
        for kind in ("sgd", "adam", "accumulate_sgd", "accumulate_adam")
        for dtype in ("float32", "float64")
    }
    Path(args.out, f"rank{dist.rank()}.json").write_text(json.dumps(result))
    dist.shutdown()


if __name__ == "__main__":
    main()
