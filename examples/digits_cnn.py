"""A small CNN on scikit-learn's bundled 8x8 digits (nothing is downloaded), on any backend.

    python examples/digits_cnn.py --backend numpy     # or torch, jax, cupy

Model, optimizer, data pipeline and training loop are agnostic's: nn.Conv2d/BatchNorm2d/MaxPool2d/
Linear, AdamW with a one-cycle schedule, a seeded DataLoader (one seed gives the same initial model
and the same batches on every backend) and `agnostic.train.Learner`, which shows a progress bar,
keeps checkpoints, history.csv and the training plot in --out, and on Ctrl-C saves and stops
(`--resume` continues). Needs scikit-learn and matplotlib (`pip install -e '.[examples]'`).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import agnostic as ag
from agnostic import nn, optim
from agnostic.cli import add_common_options, parse_args
from agnostic.data import DataLoader, TensorDataset
from agnostic.train import Accuracy, Learner, PlotHistory


class DigitsCNN(nn.Module):
    """conv(1->16) -> BN -> ReLU -> pool -> conv(16->32) -> BN -> ReLU -> pool -> dropout -> linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 2 * 2, num_classes))

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return self.head(self.features(x))


def load(seed: int) -> tuple[np.ndarray, ...]:
    """Digits scaled to [0, 1] as (N, 1, 8, 8) float32, split 80/20 with a fixed permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def run(
    backend: str | ag.Device = "numpy",
    epochs: int = 12,
    batch_size: int = 64,
    seed: int = 0,
    out: str = "runs/digits_cnn",
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train with a validation split held out of the training set, then report test accuracy."""
    B = ag.backend(backend)
    x_train, y_train, x_test, y_test = load(seed)
    cut = len(y_train) - len(y_train) // 10  # the last tenth of the (already shuffled) training set
    ag.manual_seed(seed)
    model = DigitsCNN(backend=B)
    train = DataLoader(TensorDataset(x_train[:cut], y_train[:cut]), batch_size, shuffle=True, device=B)
    val = DataLoader(TensorDataset(x_train[cut:], y_train[cut:]), 256, device=B)
    test = DataLoader(TensorDataset(x_test, y_test), 256, device=B)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=epochs * len(train))
    print(
        f"digits CNN on {B}: {model.num_parameters():,} parameters, "
        f"{cut} train / {len(y_train) - cut} validation / {len(y_test)} test"
    )
    learner = Learner(
        model,
        opt,
        ag.cross_entropy,
        metrics=[Accuracy()],
        scheduler=sched,
        scheduler_interval="step",
        checkpoint_dir=out,
        callbacks=[PlotHistory(os.path.join(out, "training.png"))],
        progress=progress,
    )
    history = learner.fit(train, epochs, val_loader=val, resume=resume)
    if learner.interrupted:
        print(f"interrupted; run again with --resume to continue from {out}")
        raise SystemExit(130)
    test_metrics = learner.evaluate(test)
    return {
        "test_accuracy": test_metrics["accuracy"],
        "last_loss": history[-1]["loss"],
        "val_accuracy": history[-1]["val_accuracy"],
        "seconds_per_epoch": float(np.mean([row["time"] for row in history])),
        "plot": os.path.join(out, "training.png"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default="runs/digits_cnn", help="checkpoints, history.csv, training.png")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    args = parse_args(parser)
    result = run(args.backend, args.epochs, out=args.out, resume=args.resume)
    print(
        f"test accuracy {result['test_accuracy']:.2%}; {result['seconds_per_epoch']:.2f} s per epoch; "
        f"training plot: {result['plot']}"
    )
