"""Callbacks: code that runs at fixed points of `Learner.fit` without changing the loop.

Every hook receives the learner, which exposes the model, optimizer, `epoch`, `step` (optimizer
steps so far), `history` and `stop_training`. A callback with state worth resuming (early stopping's
patience, the best value seen) gives `state_dict` / `load_state_dict`; the learner stores them in
its checkpoints.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from agnostic.io import atomic_write_bytes

if TYPE_CHECKING:
    from agnostic.train.learner import Learner

__all__ = ["Callback", "EarlyStopping", "Checkpoint", "CSVLogger", "PlotHistory"]


class Callback:
    """Hooks, each a no-op here; override the ones you need.

    In data-parallel training every process runs the loop; a callback with `main_process_only =
    True` (the progress bar, the history CSV and plot) runs on rank 0 alone, so files are written and
    lines printed once. Every other callback runs on every process, with the same (reduced) logs, so
    their decisions (early stopping) agree."""

    main_process_only = False

    def on_fit_start(self, learner: Learner) -> None: ...

    def on_epoch_start(self, learner: Learner) -> None: ...

    def on_batch_end(self, learner: Learner, loss: Any) -> None:
        """After each training batch (`loss` is the batch's loss tensor; reading it syncs the device)."""

    def on_step_end(self, learner: Learner) -> None:
        """After each optimizer step (every `grad_accum` batches)."""

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        """After training and validation of an epoch; `logs` is the epoch's history row."""

    def on_interrupt(self, learner: Learner) -> None:
        """Ctrl-C: the loop stopped at a consistent point (after an optimizer step)."""

    def on_fit_end(self, learner: Learner) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _direction(mode: str, monitor: str, who: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"{who}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _monitored(logs: dict[str, float], monitor: str, who: str) -> float:
    if monitor not in logs:
        raise KeyError(
            f"{who}: monitor {monitor!r} is not in the epoch's logs {sorted(logs)}; "
            "give a validation loader for 'val_*' entries, or name one of these"
        )
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs; with
    `restore_best`, put the best epoch's weights back in the model when fit ends."""

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best: bool = False,
    ) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor, self.mode = monitor, _direction(mode, monitor, "EarlyStopping")
        self.patience, self.min_delta, self.restore_best = patience, float(min_delta), restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, int(logs["epoch"]), 0
            if self.restore_best:
                self.best_weights = {k: v.numpy().copy() for k, v in learner.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(logs["epoch"])
            learner.stop_training = True
            learner.log(
                f"early stopping at epoch {self.stopped_epoch}: {self.monitor} has not improved for "
                f"{self.wait} epochs (best {self.best:.6g} at epoch {self.best_epoch})"
            )

    def on_fit_end(self, learner: Learner) -> None:
        if self.restore_best and self.best_weights is not None:
            learner.model.load_state_dict(self.best_weights)

    _STATE = ("best", "best_epoch", "wait", "best_weights", "stopped_epoch")

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE:  # these and no others: a checkpoint is not trusted to set attributes
            setattr(self, k, state[k])


class Checkpoint(Callback):
    """Training checkpoints in `directory`, each a whole training state (`Learner.save_checkpoint`):

    - `last.safetensors` at the end of every epoch, and on Ctrl-C;
    - `step-00000500.safetensors` every `every_n_steps` optimizer steps (the newest `keep_last` kept);
    - `best.safetensors` whenever `monitor` improves (default: "val_loss" if there is validation,
      else "loss").

    `Learner.fit(resume=True)` continues from the newest of them. In data-parallel training it
    runs on every process (the state it saves is gathered from all of them) and rank 0 writes.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        every_n_steps: int | None = None,
        monitor: str | None = None,
        mode: str = "auto",
        keep_last: int = 2,
        save_best: bool = True,
    ) -> None:
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError(f"Checkpoint: every_n_steps must be an int >= 1 or None, got {every_n_steps!r}")
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"Checkpoint: keep_last must be an int >= 1, got {keep_last!r}")
        self.directory = os.fspath(directory)
        self.every_n_steps, self.keep_last, self.save_best = every_n_steps, keep_last, save_best
        self.monitor, self._mode = monitor, mode
        self.best: float | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.safetensors")

    def on_step_end(self, learner: Learner) -> None:
        if self.every_n_steps and learner.step % self.every_n_steps == 0:
            learner.save_checkpoint(self.path(f"step-{learner.step:08d}"), reason="step")
            if not learner.is_main_process:
                return
            steps = sorted(
                f for f in os.listdir(self.directory) if f.startswith("step-") and f.endswith(".safetensors")
            )
            for old in steps[: -self.keep_last]:
                os.remove(os.path.join(self.directory, old))

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        if self.save_best:
            monitor = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
            value = _monitored(logs, monitor, "Checkpoint")
            if _improved(value, self.best, _direction(self._mode, monitor, "Checkpoint"), 0.0):
                self.best = value
                learner.save_checkpoint(self.path("best"), reason=f"best {monitor}={value:.6g}")
        learner.save_checkpoint(self.path("last"), reason="epoch")

    def on_interrupt(self, learner: Learner) -> None:
        learner.save_checkpoint(self.path("last"), reason="interrupt")
        learner.log(
            f"interrupted: checkpoint saved to {self.path('last')}; fit(..., resume=True) continues from it"
        )

    def candidates(self) -> list[tuple[int, float, str]]:
        """The checkpoints `fit(resume=True)` may continue from, newest first, as (optimizer step,
        modification time, path). A file whose header cannot be read (truncated, damaged, not a
        regular file) is passed over with a warning naming it."""
        from agnostic.io import CheckpointError, read_metadata

        if not os.path.isdir(self.directory):
            return []
        found = []
        for f in os.listdir(self.directory):
            if f.endswith(".safetensors") and (f.startswith("step-") or f == "last.safetensors"):
                path = os.path.join(self.directory, f)
                try:
                    step = read_metadata(path).get("step")
                    found.append((step if type(step) is int else -1, os.path.getmtime(path), path))
                except (CheckpointError, OSError) as exc:
                    warnings.warn(f"Checkpoint: skipping {path}: {exc}", RuntimeWarning, stacklevel=2)
        return sorted(found, reverse=True)

    def latest(self) -> str | None:
        """The newest checkpoint in the directory whose header reads (by optimizer step, then by
        time), or None."""
        found = self.candidates()
        return found[0][2] if found else None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class CSVLogger(Callback):
    """The history, one row per epoch, rewritten (atomically) at the end of every epoch."""

    main_process_only = True

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        write_history_csv(learner.history, self.path)


def write_history_csv(history: list[dict[str, float]], path: str | os.PathLike) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(path, out.getvalue().encode())


class PlotHistory(Callback):
    """A PNG of the history: loss (train and validation) and each other metric against the epoch.
    Needs matplotlib (`pip install agnostic[train]`). Drawn when fit ends or is interrupted, and in
    between at the end of an epoch when `refresh_s` seconds have passed since the last drawing
    (drawing takes about half a second, more than an epoch of a small model)."""

    main_process_only = True

    def __init__(self, path: str | os.PathLike, refresh_s: float = 30.0) -> None:
        from agnostic.train.plot import require_matplotlib

        require_matplotlib()
        self.path, self.refresh_s = os.fspath(path), refresh_s
        self._drawn = time.monotonic()

    def _draw(self, learner: Learner) -> None:
        from agnostic.train.plot import plot_history

        if learner.history:
            plot_history(learner.history, self.path)
        self._drawn = time.monotonic()

    def on_fit_start(self, learner: Learner) -> None:
        self._drawn = time.monotonic()

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        if time.monotonic() - self._drawn >= self.refresh_s:
            self._draw(learner)

    def on_fit_end(self, learner: Learner) -> None:
        self._draw(learner)
