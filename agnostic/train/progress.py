"""A per-epoch progress bar with the running loss (tqdm), or one line per epoch without tqdm."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from agnostic.train.callbacks import Callback

if TYPE_CHECKING:
    from agnostic.train.learner import Learner

__all__ = ["ProgressBar", "format_logs"]


def format_logs(logs: dict[str, float]) -> str:
    """`loss=0.1234 accuracy=0.9812 ...` for the figures of a history row (not epoch/step/time)."""
    return " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k not in ("epoch", "step", "time"))


class ProgressBar(Callback):
    """tqdm bar over each epoch's batches; the postfix shows the running mean loss, refreshed at
    most every `refresh_s` seconds (reading the loss waits for the device, so not every step). With
    no tqdm installed, or `tqdm=False`, it prints one line per epoch instead."""

    main_process_only = True

    def __init__(self, refresh_s: float = 0.5, file: TextIO | None = None, tqdm: bool = True) -> None:
        self.refresh_s, self.file = refresh_s, file
        self._tqdm = None
        if tqdm:
            try:
                from tqdm.auto import tqdm as _tqdm

                self._tqdm = _tqdm
            except ImportError:
                pass
        self._bar: Any = None
        self._last = 0.0

    def on_epoch_start(self, learner: Learner) -> None:
        if self._tqdm is not None:
            self._bar = self._tqdm(
                total=learner.batches_per_epoch,
                initial=learner.batch_in_epoch,
                desc=f"epoch {learner.epoch + 1}/{learner.epochs}",
                file=self.file or sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
        self._last = time.monotonic()

    def on_batch_end(self, learner: Learner, loss: Any) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.monotonic()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._bar.set_postfix(loss=f"{learner.running_loss():.4f}", refresh=False)

    def on_epoch_end(self, learner: Learner, logs: dict[str, float]) -> None:
        text = format_logs(logs)
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
            self._close()
        else:
            print(
                f"epoch {int(logs['epoch'])}/{learner.epochs} {text} ({logs['time']:.2f}s)",
                file=self.file or sys.stdout,
            )

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_interrupt(self, learner: Learner) -> None:
        self._close()

    def on_fit_end(self, learner: Learner) -> None:
        self._close()
