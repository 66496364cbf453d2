"""A two-layer LSTM that forecasts noisy multi-frequency sine waves, on any backend.

    python examples/lstm_sequence.py --backend numpy     # or torch, jax, cupy

Each sample is its own generated signal, a sum of three sines of random frequency, amplitude and
phase plus Gaussian noise: the model sees `window` steps and predicts the next `horizon`, so it has
to infer the frequencies from the window rather than memorize one curve. Model, optimizer and data
pipeline are agnostic's: nn.LSTM (2 layers, batch_first) and a Linear head on the last hidden state,
Adam with a cosine schedule, gradient clipping, a seeded DataLoader (one seed gives the same
initial model and batches on every backend) and `agnostic.train.Learner`. The test MSE is set
against the naive forecast (repeat the last observed value) and against the noise floor (the
noise's variance: no forecast beats it).
"""

from __future__ import annotations

import argparse

import numpy as np

import agnostic as ag
from agnostic import nn, optim
from agnostic.cli import add_common_options, parse_args
from agnostic.data import DataLoader, TensorDataset
from agnostic.train import Learner


def sine_waves(n: int, window: int, horizon: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n signals of window + horizon steps, each the sum of three sines (periods 16 to 48 steps,
    amplitudes 0.2 to 1) plus N(0, noise^2): inputs (n, window, 1) and targets (n, horizon), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(window + horizon, dtype=np.float64)
    freq = rng.uniform(1 / 48, 1 / 16, size=(n, 3, 1))
    amp = rng.uniform(0.2, 1.0, size=(n, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3, 1))
    clean = np.sum(amp * np.sin(2 * np.pi * freq * t + phase), axis=1)
    signal = (clean + rng.normal(0.0, noise, size=clean.shape)).astype(np.float32)
    return signal[:, :window, None], signal[:, window:]


class Forecaster(nn.Module):
    """LSTM over the window -> its last hidden state -> Linear to the next `horizon` values."""

    def __init__(self, horizon: int, hidden: int = 64, num_layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def run(
    backend: str | ag.Device = "numpy", epochs: int = 10, batch_size: int = 64, n_train: int = 2048, n_test: int = 1024,
    window: int = 32, horizon: int = 5, hidden: int = 48, noise: float = 0.1, lr: float = 5e-3, seed: int = 0,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Train on `n_train` generated signals, report the test MSE each epoch against the naive
    forecast. The sizes are there for short runs (the tests)."""
    B = ag.backend(backend)
    x_train, y_train = sine_waves(n_train, window, horizon, noise, seed)
    x_test, y_test = sine_waves(n_test, window, horizon, noise, seed + 1)
    naive = float(np.mean((y_test - x_test[:, -1]) ** 2))  # repeat the last observed value
    ag.manual_seed(seed)
    model = Forecaster(horizon, hidden, backend=B)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size, shuffle=True, device=B)
    test = DataLoader(TensorDataset(x_test, y_test), 256, device=B)
    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader), eta_min=lr / 20)
    print(
        f"LSTM forecaster on {B}: {model.num_parameters():,} parameters; {n_train} train / {n_test} test "
        f"signals, {window} steps in, {horizon} out"
    )
    learner = Learner(
        model, opt, ag.functional.mse_loss, scheduler=sched, scheduler_interval="step", clip_grad_norm=1.0,
        progress=progress,
    )  # fmt: skip
    initial = learner.evaluate(test)["loss"]
    print(f"  before training: test MSE {initial:.4f}  (naive last-value forecast {naive:.4f})")
    history = learner.fit(loader, epochs, val_loader=test)
    test_mses = [row["val_loss"] for row in history]
    return {
        "initial_test_mse": initial,
        "test_mse": test_mses[-1],
        "test_mses": test_mses,
        "naive_mse": naive,
        "noise_floor": noise**2,
        "seconds_per_epoch": float(np.mean([row["time"] for row in history])),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser)
    parser.add_argument("--epochs", type=int, default=10)
    args = parse_args(parser)
    result = run(args.backend, args.epochs)
    print(
        f"test MSE {result['test_mse']:.4f} against {result['naive_mse']:.4f} for the naive forecast "
        f"({result['naive_mse'] / result['test_mse']:.1f}x lower; noise floor {result['noise_floor']:.4f}); "
        f"{result['seconds_per_epoch']:.2f} s per epoch"
    )
