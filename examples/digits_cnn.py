"""A small CNN on scikit-learn's bundled 8x8 digits (nothing is downloaded), on any backend.

    python examples/digits_cnn.py --backend numpy     # or torch, jax, cupy

Model, optimizer and data pipeline are agnostic's: nn.Conv2d/BatchNorm2d/MaxPool2d/Linear, AdamW
with a one-cycle schedule, and a seeded DataLoader, so one seed gives the same initial model and the
same batches on every backend. Needs scikit-learn (`pip install scikit-learn`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import agnostic as ag
from agnostic import nn, optim
from agnostic.data import DataLoader, TensorDataset


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


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    with ag.no_grad():
        for xb, yb in loader:
            correct += int(ag.sum(ag.argmax(model(xb), axis=1) == yb).item())
            total += yb.shape[0]
    model.train()
    return correct / total


def run(backend: str = "numpy", epochs: int = 12, batch_size: int = 64, seed: int = 0) -> dict:
    B = ag.backend(backend)
    x_train, y_train, x_test, y_test = load(seed)
    ag.manual_seed(seed)
    model = DigitsCNN(backend=B)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size, shuffle=True, device=B)
    test = DataLoader(TensorDataset(x_test, y_test), 256, device=B)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=epochs * len(train))
    print(
        f"digits CNN on {B}: {model.num_parameters():,} parameters, {len(y_train)} train / {len(y_test)} test"
    )
    epoch_times = []
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        for xb, yb in train:
            opt.zero_grad()
            loss = ag.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        epoch_times.append(time.perf_counter() - start)
        acc = evaluate(model, test)
        print(
            f"  epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {acc:.2%}  ({epoch_times[-1]:.1f} s)"
        )
    return {
        "test_accuracy": acc,
        "last_loss": float(np.mean(losses)),
        "seconds_per_epoch": float(np.mean(epoch_times)),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    result = run(args.backend, args.epochs)
    print(f"test accuracy {result['test_accuracy']:.2%}; {result['seconds_per_epoch']:.2f} s per epoch")
