"""A worker that tests/test_distributed_learner.py runs, under torchrun or as one plain process (not
a test module).

`python distributed_learner_worker.py BACKEND OUT_DIR BATCH [--stop-at STEP] [--die-at STEP] [--resume]
[--wait-at STEP] [--compile]`
trains a small MLP with `Learner(distributed=True)` for EPOCHS epochs on the first N samples of a
fixed synthetic set (each process `BATCH` samples per step, through a DistributedSampler), with a
checkpoint directory OUT_DIR/ck and a plain-text progress bar. Rank 0 writes OUT_DIR/result.json: the
final parameters, the history, and how the run ended. `--stop-at` sends SIGINT to the last rank alone
after that optimizer step (every process must stop at the same step); `--die-at` kills the last rank
(SIGKILL); `--resume` continues from the newest checkpoint; `--wait-at` makes every rank, after that
optimizer step, write OUT_DIR/waiting.RANK and wait until a signal has reached it (a test sends one
then: no race with a busy machine); `--compile` compiles the learner's steps (`ag.compile`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import numpy as np

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.data import DataLoader, DistributedSampler, TensorDataset
from agnostic.train import Accuracy, Callback, Learner, ProgressBar

N, FEATURES, CLASSES, EPOCHS = 96, 12, 4, 3


class Signal(Callback):
    """After optimizer step `step`, send `signum` to the last rank (itself) alone."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_step_end(self, learner: Learner) -> None:
        if learner.step == self.step and dist.rank() == dist.world_size() - 1:
            os.kill(os.getpid(), self.signum)


class WaitForSignal(Callback):
    """After optimizer step `step`, say so in a file and wait (at most `limit` s) for a signal."""

    def __init__(self, step: int, out: Path, limit: float = 120.0) -> None:
        self.step, self.out, self.limit = step, out, limit

    def on_step_end(self, learner: Learner) -> None:
        if learner.step != self.step:
            return
        (self.out / f"waiting.{dist.rank()}").write_text(str(os.getpid()))
        deadline = time.monotonic() + self.limit
        while not learner._interrupt_requested and time.monotonic() < deadline:
            time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("out", type=Path)
    parser.add_argument("batch", type=int)
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--wait-at", type=int)
    parser.add_argument("--compile", action="store_true")
    ns = parser.parse_args()
    dist.init(ns.backend, timeout=30)
    device = ag.backend(ns.backend)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, FEATURES)).astype(np.float32)
    y = (x[:, :CLASSES].argmax(1) + (x[:, -1] > 1)).astype(np.int64) % CLASSES
    ds = TensorDataset(x, y)
    ag.manual_seed(1 + dist.rank())  # rank 0's weights reach every process when the model is wrapped
    model = nn.Sequential(nn.Linear(FEATURES, 32), nn.Tanh(), nn.Linear(32, CLASSES), backend=device)
    optimizer = ag.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(ds, batch_size=ns.batch, sampler=DistributedSampler(ds, seed=5), device=device)
    callbacks: list[Callback] = [ProgressBar(tqdm=False)]
    if ns.stop_at:
        callbacks.append(Signal(ns.stop_at, signal.SIGINT))
    if ns.wait_at:
        callbacks.append(WaitForSignal(ns.wait_at, ns.out))
    if ns.die_at:
        callbacks.append(Signal(ns.die_at, signal.SIGKILL))
    learner = Learner(
        model,
        optimizer,
        F.cross_entropy,
        metrics=[Accuracy()],
        callbacks=callbacks,
        checkpoint_dir=ns.out / "ck",
        progress=False,
        distributed=True,
        compile=ns.compile,
    )
    history = learner.fit(loader, EPOCHS, resume=True if ns.resume else None)
    if learner.is_main_process:
        result = {
            "params": [p.numpy().astype(np.float64).ravel().tolist() for p in model.parameters()],
            "history": history,
            "step": learner.step,
            "interrupted": learner.interrupted,
            "world_size": dist.world_size(),
        }
        (ns.out / "result.json").write_text(json.dumps(result))
    print(f"rank {dist.rank()} finished at step {learner.step}", flush=True)
    dist.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
