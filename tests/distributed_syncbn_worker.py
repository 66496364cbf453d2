"""A worker that tests/test_sync_batchnorm.py runs under torchrun (not a test module).

`python distributed_syncbn_worker.py BACKEND OUT_DIR` trains a small conv + BatchNorm2d + linear +
BatchNorm1d model data-parallel (DistributedDataParallel) after `SyncBatchNorm.convert_sync_batchnorm`,
with per-process batch B, and, in the same process, the same model with plain BatchNorm on the global
batch 2B (float64, SGD with momentum). It writes OUT_DIR/rank{R}.json with the largest differences to
the one-process run: of the parameters and running statistics after training, of the averaged
gradients at every step, of the training outputs for this process's part of the batch, and of the
eval-mode outputs afterwards; and the largest parameter difference between the replicas. And plain
BatchNorm under DDP against one replica per rank in this process (per-process statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.distributed.data_parallel import DistributedDataParallel

STEPS, BATCH = 5, 6  # per-process batch


def model(device: ag.Device, seed: int) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
        nn.BatchNorm1d(8, momentum=None), nn.ReLU(), nn.Linear(8, 3), backend=device,
    ).to(dtype="float64")  # fmt: skip


def flat(tensors: list) -> np.ndarray:
    return np.concatenate([t.numpy().ravel().astype(np.float64) for t in tensors])


def state(m: nn.Module) -> np.ndarray:
    return flat(list(m.parameters()) + [b for b in m.buffers()])


def run(device: ag.Device, sync: bool) -> dict:
    """Train 5 steps data-parallel (SyncBatchNorm if `sync`) and on one process; the differences."""
    rank, world = dist.rank(), dist.world_size()
    # rank 1 starts from other weights: wrapping broadcasts rank 0's parameters and buffers
    converted = model(device, seed=rank)
    if sync:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(converted)
    kinds = sorted({type(m).__name__ for m in converted.modules()})
    ddp = DistributedDataParallel(converted)
    ref = model(device, seed=0)
    opt = ag.optim.SGD(list(ddp.parameters()), lr=0.1, momentum=0.9)
    ref_opt = ag.optim.SGD(list(ref.parameters()), lr=0.1, momentum=0.9)
    data = np.random.default_rng(0)
    grad_diff = out_diff = 0.0
    for _ in range(STEPS):
        x = data.standard_normal((world * BATCH, 3, 8, 8)) * 2.0 + 0.5
        y = data.integers(0, 3, world * BATCH)
        xs, ys = ag.asarray(x, device=device), ag.asarray(y, device=device)
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        out = ddp(xs[mine])
        F.cross_entropy(out, ys[mine]).backward()
        ref_out = ref(xs)
        F.cross_entropy(ref_out, ys).backward()
        out_diff = max(out_diff, float(np.max(np.abs(out.numpy() - ref_out.numpy()[mine]))))
        grads = flat([p.grad for p in ddp.parameters()]) - flat([p.grad for p in ref.parameters()])
        grad_diff = max(grad_diff, float(np.max(np.abs(grads))))
        opt.step()
        opt.zero_grad()
        ref_opt.step()
        ref_opt.zero_grad()
    ddp.eval()
    ref.eval()
    x = ag.asarray(data.standard_normal((4, 3, 8, 8)), device=device)
    eval_diff = float(np.max(np.abs(ddp(x).numpy() - ref(x).numpy())))
    mine_state = state(ddp.module)
    gathered = dist.all_gather(ag.asarray(mine_state, device=device)).numpy()
    return {
        "kinds": kinds,
        "to_one_process": float(np.max(np.abs(mine_state - state(ref)))),
        "grads_to_one_process": grad_diff,
        "outputs_to_one_process": out_diff,
        "eval_to_one_process": eval_diff,
        "between_replicas": float(np.max(np.abs(gathered - gathered[0]))),
        "num_batches_tracked": [
            int(m.num_batches_tracked.item()) for m in ddp.module.modules() if isinstance(m, nn.SyncBatchNorm)
        ],
        "running_var_moved": float(np.max(np.abs(ddp.module[1].running_var.numpy() - 1.0))),
    }


def per_process(device: ag.Device) -> dict:
    """Plain BatchNorm under DDP: each process normalizes with its own batch's statistics and keeps
    its own running statistics. The reference, in this process: one replica per rank, replica r on
    rank r's half of the batch, their gradients averaged by hand. Rank r must equal replica r."""
    rank, world = dist.rank(), dist.world_size()
    ddp = DistributedDataParallel(model(device, seed=rank))
    replicas = [model(device, seed=0) for _ in range(world)]
    opt = ag.optim.SGD(list(ddp.parameters()), lr=0.1, momentum=0.9)
    ref_opts = [ag.optim.SGD(list(r.parameters()), lr=0.1, momentum=0.9) for r in replicas]
    data = np.random.default_rng(1)
    for _ in range(STEPS):
        x = ag.asarray(data.standard_normal((world * BATCH, 3, 8, 8)) * 2.0 + 0.5, device=device)
        y = ag.asarray(data.integers(0, 3, world * BATCH), device=device)
        halves = [slice(r * BATCH, (r + 1) * BATCH) for r in range(world)]
        F.cross_entropy(ddp(x[halves[rank]]), y[halves[rank]]).backward()
        for replica, half in zip(replicas, halves):
            F.cross_entropy(replica(x[half]), y[half]).backward()
        with ag.no_grad():
            for ps in zip(*(r.parameters() for r in replicas)):
                mean = sum(p.grad for p in ps) / world
                for p in ps:
                    p.grad = mean
        for o in [opt, *ref_opts]:
            o.step()
            o.zero_grad()
    running = ag.asarray(ddp.module[1].running_mean.numpy(), device=device)
    gathered = dist.all_gather(running).numpy()
    return {
        "to_replica": float(np.max(np.abs(state(ddp.module) - state(replicas[rank])))),
        "running_mean_between_ranks": float(np.max(np.abs(gathered - gathered[0]))),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("out")
    args = parser.parse_args()
    dist.init(args.backend, timeout=60)
    device = ag.backend(args.backend)
    result = run(device, sync=True)
    # the control: plain BatchNorm keeps per-process statistics, so the same run must differ
    result["unsynced_to_one_process"] = run(device, sync=False)["to_one_process"]
    result["per_process"] = per_process(device)
    Path(args.out, f"rank{dist.rank()}.json").write_text(json.dumps(result))
    dist.shutdown()


if __name__ == "__main__":
    main()
