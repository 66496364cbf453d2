"""`Learner`: the training loop most models need, written once for every backend.

It runs epochs of training and validation, keeps metrics on the device, calls callbacks (progress bar,
early stopping, checkpoints, history CSV and plot), and can stop at any optimizer step and resume
exactly: a checkpoint holds the model, optimizer, scheduler, metrics of the unfinished epoch, the
callbacks' state, the global seed stream and the data loader's position. The first Ctrl-C stops at
the next optimizer step and saves a checkpoint; a second one stops at once.

Data-parallel (`distributed=True`, or a model wrapped in DistributedDataParallel): every process runs
this loop on its shard of the data; metrics are summed over the processes before they are logged,
so every process logs (and decides on) the same figures; only rank 0 writes files and prints; the
processes agree after every optimizer step on whether to stop, so a Ctrl-C (or torchrun's SIGTERM)
on any of them stops all at the same step; checkpoints hold the unwrapped model and a data position
that holds for any number of processes, so a run resumes on another world size.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from agnostic import distributed as dist
from agnostic import ops
from agnostic import random as ag_random
from agnostic.amp.grad_scaler import GradScaler
from agnostic.autocast import autocast
from agnostic.autodiff import no_grad
from agnostic.compilation import compile as compile_step
from agnostic.data import DataLoader, DistributedSampler, to_device
from agnostic.device import Device
from agnostic.distributed.data_parallel import DistributedDataParallel
from agnostic.distributed.mesh_parallel import MeshDataParallel
from agnostic.io import CheckpointError, load, save
from agnostic.nn.module import Module
from agnostic.nn.utils import clip_grad_norm_, clip_grad_value_
from agnostic.optim.lr_scheduler import ReduceLROnPlateau
from agnostic.optim.optimizer import Optimizer
from agnostic.tensor import Tensor
from agnostic.train.callbacks import Callback, Checkpoint, CSVLogger
from agnostic.train.metrics import Mean, Metric
from agnostic.train.progress import ProgressBar

__all__ = ["Learner", "fit"]

LossFn = Callable[[Any, Any], Tensor]
# what Learner.state_dict writes: a file without these is not a Learner checkpoint
_CHECKPOINT_PARTS = ("model", "optimizer", "scheduler", "learner", "callbacks", "rng", "train_loader")
_LEARNER_ENTRIES = (("epoch_seconds", (int, float)), ("history", list), ("loss", dict), ("metrics", dict))
# precision= (Lightning's names): the canonical name, and the autocast dtype (None: float32 throughout)
_PRECISIONS = {
    "32": ("32", None), "32-true": ("32", None), 32: ("32", None),
    "bf16-mixed": ("bf16-mixed", "bfloat16"), "bf16": ("bf16-mixed", "bfloat16"),
    "16-mixed": ("16-mixed", "float16"), "16": ("16-mixed", "float16"), 16: ("16-mixed", "float16"),
}  # fmt: skip


class Learner:
    """Trains `model` with `optimizer` on `loss_fn(output, target)`.

    A batch is `(input, ..., target)`: the model is called on everything but the last element (a
    batch that is a dict or needs other handling: override `forward`). Batches on another backend or
    device than the model are moved to it.

    - `metrics`: `Metric`s computed on training and validation data (the loss always is).
    - `scheduler`: stepped every epoch (`scheduler_interval="epoch"`) or every optimizer step
      ("step"); `ReduceLROnPlateau` gets `scheduler_monitor` (default "val_loss", else "loss").
    - `grad_accum=k`: one optimizer step per k batches (the loss is divided by k).
    - `clip_grad_norm` / `clip_grad_value`: clip before each optimizer step.
    - `checkpoint_dir`: adds a `Checkpoint` callback (last / best / every `checkpoint_every` steps)
      and a `CSVLogger` writing `history.csv` there. Without it nothing is written to disk; Ctrl-C
      still stops cleanly but has nowhere to save.
    - `progress`: a tqdm bar per epoch with the running loss.
    - `compile`: run the forward/backward and the optimizer update through `ag.compile` (jax.jit,
      a torch.fx graph; eager on NumPy and CuPy); a string is torch.compile's mode. The model may not
      read tensor values on the host inside `forward` then (docs/compile.md).
    - `precision`: "32" (float32 throughout; also "32-true", 32), "bf16-mixed" (forward and loss
      under `ag.autocast("bfloat16")`; also "bf16") or "16-mixed" (under `ag.autocast("float16")`,
      the backward on a loss scaled by a `GradScaler`, steps with inf/NaN gradients skipped; also
      "16", 16). Parameters, gradients and optimizer state stay float32 in every mode. `grad_scaler`
      replaces 16-mixed's default `GradScaler()`; its state is in the checkpoints.
    - `distributed`: train data-parallel: joins the launcher's process group (`distributed.init`,
      unless the script did) and wraps the model in `DistributedDataParallel` (a model wrapped
      already is data-parallel without it). The training loader must then shard the data
      (`DataLoader(..., sampler=DistributedSampler(dataset))`); `set_epoch` is called for you.
    """

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: LossFn,
        *,
        metrics: Sequence[Metric] = (),
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        callbacks: Sequence[Callback] = (),
        grad_accum: int = 1,
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
        compile: bool | str = False,
        distributed: bool = False,
        precision: str | int = "32",
        grad_scaler: GradScaler | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Learner: model must be an agnostic nn.Module, got {type(model).__name__}")
        if distributed and not isinstance(model, (DistributedDataParallel, MeshDataParallel)):
            if not dist.is_initialized():
                dist.init(model.backend)
            model = DistributedDataParallel(model)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Learner: optimizer must be an agnostic Optimizer, got {type(optimizer).__name__}"
            )
        if not callable(loss_fn):
            raise TypeError("Learner: loss_fn must be callable as loss_fn(output, target)")
        for m in metrics:
            if not isinstance(m, Metric):
                raise TypeError(f"Learner: metrics must be Metric instances, got {type(m).__name__}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Learner: callbacks must be Callback instances, got {type(cb).__name__}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"Learner: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if not isinstance(grad_accum, int) or isinstance(grad_accum, bool) or grad_accum < 1:
            raise ValueError(f"Learner: grad_accum must be an int >= 1, got {grad_accum!r}")
        if checkpoint_every is not None and checkpoint_dir is None:
            raise ValueError("Learner: checkpoint_every needs a checkpoint_dir to write to")
        if (
            isinstance(precision, bool)
            or not isinstance(precision, (str, int))
            or precision not in _PRECISIONS
        ):
            hint = (
                "; for a model in a low precision throughout (inference), use model.to(dtype=...)"
                if isinstance(precision, str) and precision.endswith("-true")
                else ""
            )
            raise ValueError(
                f"Learner: precision must be one of {list(_PRECISIONS)}, got {precision!r}{hint}"
            )
        self.precision, self._autocast_dtype = _PRECISIONS[precision]
        if grad_scaler is not None and not isinstance(grad_scaler, GradScaler):
            raise TypeError(
                f"Learner: grad_scaler must be an ag.amp.GradScaler, got {type(grad_scaler).__name__}"
            )
        if grad_scaler is not None and self.precision != "16-mixed":
            raise ValueError(
                f"Learner: grad_scaler is for precision='16-mixed' (float16 needs loss scaling); "
                f"precision={precision!r} uses none"
            )
        self.scaler: GradScaler | None = (
            (grad_scaler or GradScaler()) if self.precision == "16-mixed" else None
        )
        names = [m.name for m in metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"Learner: metric names must be unique and not 'loss', got {names}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.distributed = isinstance(model, (DistributedDataParallel, MeshDataParallel))
        # what checkpoints hold: the model itself, not the wrapper, so any world size can load them
        self._module: Module = model.module if self.distributed else model  # type: ignore[assignment]
        self.metrics = list(metrics)
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.grad_accum, self.clip_grad_norm, self.clip_grad_value = (
            grad_accum,
            clip_grad_norm,
            clip_grad_value,
        )
        self.callbacks = list(callbacks)
        if checkpoint_dir is not None:
            if not any(isinstance(cb, Checkpoint) for cb in self.callbacks):
                self.callbacks.append(Checkpoint(checkpoint_dir, every_n_steps=checkpoint_every))
            if not any(isinstance(cb, CSVLogger) for cb in self.callbacks):
                self.callbacks.append(CSVLogger(os.path.join(checkpoint_dir, "history.csv")))
        if progress and not any(isinstance(cb, ProgressBar) for cb in self.callbacks):
            self.callbacks.insert(0, ProgressBar())
        self._loss = Mean("loss")
        # the two halves of a training step, compiled apart: a batch's forward and backward, and the
        # optimizer update (every grad_accum batches); metrics and callbacks stay eager
        self._forward_backward = self._backward
        self._update = self._clip_and_step
        if compile:
            mode = compile if isinstance(compile, str) else None
            self._forward_backward = compile_step(self._backward, mode=mode)
            self._update = compile_step(self._clip_and_step, mode=mode)
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs finished
        self.step = 0  # optimizer steps taken
        self.batch_in_epoch = 0  # batches of the current epoch done
        self.epochs = 0
        self.batches_per_epoch: int | None = None
        self.stop_training = False
        self.interrupted = False
        self._interrupt_requested = False
        self._epoch_seconds = 0.0
        self._loader_state: dict[str, Any] | None = None

    # -- what a subclass may override ----------------------------------------------------------

    def forward(self, batch: Any) -> tuple[Any, Any]:
        """The model's output and the target for a batch `(input, ..., target)`."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(
                "Learner.forward: a batch must be a tuple (input, ..., target); got "
                f"{type(batch).__name__}. For other batches, subclass Learner and override forward"
            )
        *inputs, target = batch
        return self.model(*inputs), target

    # -- the loop ------------------------------------------------------------------------------

    @property
    def is_main_process(self) -> bool:
        """Whether this process writes files and prints: rank 0 (always, without a process group)."""
        return dist.rank() == 0

    @property
    def device(self) -> Device:
        """Where the model lives (that of its first parameter)."""
        for p in self.model.parameters():
            return p.device
        raise ValueError("Learner: the model has no parameters")

    def fit(
        self,
        train_loader: Iterable[Any],
        epochs: int,
        val_loader: Iterable[Any] | None = None,
        resume: bool | str | os.PathLike | None = None,
    ) -> list[dict[str, float]]:
        """Train until `epochs` epochs are done; return the history (one dict per epoch).

        `resume=True` continues from the newest checkpoint in `checkpoint_dir` (a fresh start if
        there is none); a path continues from that file. Without it, counting starts at epoch 0 from
        the model's current weights.
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"Learner.fit: epochs must be an int >= 0, got {epochs!r}")
        self.train_loader, self.val_loader, self.epochs = train_loader, val_loader, epochs
        self.batches_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None
        self.epoch = self.step = self.batch_in_epoch = 0
        self.history, self.stop_training, self.interrupted = [], False, False
        self._interrupt_requested, self._epoch_seconds = False, 0.0
        self._reset_metrics()
        self._model_device = self.device  # looked up once per fit, not per batch
        if self.scaler is not None:  # made before a compiled step's trace, which cannot make it
            self.scaler._init_on(self._model_device)
        self._check_sharded(train_loader)
        if self.batches_per_epoch == 0 and epochs:
            raise ValueError(self._no_batches_message(0))
        path = self._resume(resume)
        if path is not None:
            self.log(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step}")
        with self._graceful_interrupt(), self._naming_a_failed_peer():
            try:
                self._call("on_fit_start")
                self._run()
            finally:
                self._call("on_fit_end")
            if self.distributed:
                dist.barrier()  # rank 0's files are complete before any process moves on
        return self.history

    def _check_sharded(self, loader: Iterable[Any]) -> None:
        if (
            self.distributed
            and dist.world_size() > 1
            and isinstance(loader, DataLoader)
            and not isinstance(loader.sampler, DistributedSampler)
        ):
            raise ValueError(
                f"Learner.fit: training data-parallel on {dist.world_size()} processes, but the training "
                "DataLoader has no DistributedSampler, so every process would train on the whole dataset; "
                "pass DataLoader(dataset, batch_size=..., sampler=DistributedSampler(dataset))"
            )

    @contextlib.contextmanager
    def _naming_a_failed_peer(self) -> Iterator[None]:
        """A collective that failed (a dead or stuck process) says where training stood."""
        try:
            yield
        except dist.DistributedError as exc:
            raise dist.DistributedError(
                f"Learner.fit (rank {dist.rank()} of {dist.world_size()}) stopped at epoch {self.epoch + 1}, "
                f"optimizer step {self.step}: {exc}\nThe newest checkpoint (if any) resumes it with "
                "fit(..., resume=True), on any number of processes"
            ) from exc

    def _stop_agreed(self) -> bool:
        """Whether to stop now: on every process the same answer (a Ctrl-C reached any of them)."""
        if self.distributed and dist.world_size() > 1:
            flag = ops.asarray(int(self._interrupt_requested), device=self._model_device)
            self._interrupt_requested = bool(dist.all_reduce(flag, "max").item())
        return self._interrupt_requested

    def _run(self) -> None:
        while self.epoch < self.epochs and not self.stop_training:
            self.model.train()
            self._call("on_epoch_start")
            started = time.perf_counter()
            for batch in self._epoch_batches():
                loss = self._train_batch(batch)
                self.batch_in_epoch += 1
                self._call("on_batch_end", loss)
                if (
                    self.batch_in_epoch % self.grad_accum == 0
                    or self.batch_in_epoch == self.batches_per_epoch
                ):
                    self._optimizer_step()
                    if self.batch_in_epoch != self.batches_per_epoch and self._stop_agreed():
                        self._epoch_seconds += time.perf_counter() - started
                        return self._interrupt()
            if self.batch_in_epoch == 0:  # the loss would be NaN, the epoch a silent no-op
                raise ValueError(self._no_batches_message(self.epoch))
            if self.batch_in_epoch % self.grad_accum and self.batches_per_epoch is None:
                self._optimizer_step()  # a partial accumulation at the end of a loader of unknown length
            self._epoch_seconds += time.perf_counter() - started
            self._end_epoch()
            if self._stop_agreed():
                return self._interrupt()

    def _no_batches_message(self, epoch: int) -> str:
        loader = self.train_loader
        hint = (
            "an iterator is used up after one epoch: pass a list or a DataLoader"
            if epoch and isinstance(loader, Iterator)
            else "is the dataset empty, or smaller than batch_size with drop_last=True?"
        )
        return (
            f"Learner.fit: the training loader {type(loader).__name__} yielded no batches in epoch "
            f"{epoch + 1}; {hint}"
        )

    def _epoch_batches(self) -> Iterator[Any]:
        loader = self.train_loader
        if self.batch_in_epoch == self.batches_per_epoch:  # resumed after the epoch's last step
            return iter(())
        sampler = getattr(loader, "sampler", None)
        if self._loader_state is not None:
            state, self._loader_state = self._loader_state, None
            if hasattr(loader, "load_state_dict"):
                loader.load_state_dict(state)
                if state.get("sampler") is not None and self.batches_per_epoch is not None:
                    # the rest of the epoch dealt out over this run's processes: count what is left
                    self.batch_in_epoch = self.batches_per_epoch - len(loader)
                return iter(loader)
        if hasattr(sampler, "set_epoch") and not self.batch_in_epoch:
            sampler.set_epoch(self.epoch)
        if self.batch_in_epoch and not hasattr(loader, "load_state_dict"):
            # a plain iterable (a list of batches): skip what the checkpointed run already used
            return itertools.islice(iter(loader), self.batch_in_epoch, None)
        return iter(loader)

    def _train_batch(self, batch: Any) -> Tensor:
        loss, output, target = self._forward_backward(to_device(batch, self._model_device))
        self._update_metrics(self._loss, self.metrics, loss, output, target)
        return loss

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward's and loss's precision (inside the compiled step, so the trace sees it)."""
        return contextlib.nullcontext() if self._autocast_dtype is None else autocast(self._autocast_dtype)

    def _backward(self, batch: Any) -> tuple[Tensor, Any, Any]:
        with self._autocast():
            output, target = self.forward(batch)
            loss = self.loss_fn(output, target)
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            raise TypeError(
                f"Learner: loss_fn must return a scalar Tensor, got "
                f"{type(loss).__name__}{'' if not isinstance(loss, Tensor) else f' of shape {loss.shape}'}"
            )
        scaled = loss / self.grad_accum if self.grad_accum > 1 else loss
        (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
        return loss, output, target

    @staticmethod
    def _update_metrics(mean: Mean, metrics: list[Metric], loss: Tensor, output: Any, target: Any) -> None:
        n = int(target.shape[0]) if isinstance(target, Tensor) and target.ndim else 1
        mean.update(loss, n)
        for m in metrics:
            m.update(output, target)

    def _optimizer_step(self) -> None:
        if self.scaler is None or not self.scaler.is_enabled():
            self._update()
        else:  # eager between the compiled halves: unscale (clipping sees true gradients), one host read
            self.scaler.unscale_(self.optimizer)
            if not self.scaler._step_with(self.optimizer, lambda: self._update() or True):
                self.optimizer.zero_grad()  # a skipped step (inf/NaN gradients) still starts afresh
            self.scaler.update()
        self.step += 1
        if self.scheduler is not None and self.scheduler_interval == "step":
            self._scheduler_step(None)
        self._call("on_step_end")

    def _clip_and_step(self) -> None:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.clip_grad_value is not None:
            clip_grad_value_(params, self.clip_grad_value)
        if self.clip_grad_norm is not None:
            clip_grad_norm_(params, self.clip_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def _end_epoch(self) -> None:
        loss, *metrics = self._synced([self._loss, *self.metrics])
        logs: dict[str, float] = {"epoch": self.epoch + 1, "step": self.step, "loss": loss.compute()}
        logs.update({m.name: m.compute() for m in metrics})
        if self.val_loader is not None:
            logs.update({f"val_{k}": v for k, v in self.evaluate(self.val_loader).items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        logs["time"] = round(self._epoch_seconds, 4)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self._scheduler_step(logs)
        self.history.append(logs)
        self.epoch += 1
        self.batch_in_epoch, self._epoch_seconds = 0, 0.0
        self._reset_metrics()
        self._call("on_epoch_end", logs)

    def _scheduler_step(self, logs: dict[str, float] | None) -> None:
        if not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
            return
        if logs is None:
            raise ValueError(
                "Learner: ReduceLROnPlateau needs scheduler_interval='epoch' (it watches an epoch metric)"
            )
        monitor = self.scheduler_monitor or ("val_loss" if "val_loss" in logs else "loss")
        if monitor not in logs:
            raise KeyError(
                f"Learner: scheduler_monitor {monitor!r} is not in the epoch's logs {sorted(logs)}"
            )
        self.scheduler.step(logs[monitor])

    def _synced(self, metrics: list[Metric]) -> list[Metric]:
        """The metrics over every process's data (copies; this process's running state is kept)."""
        if not self.distributed or dist.world_size() == 1:
            return metrics
        device = self.device

        def total(v: Tensor | float) -> Tensor:
            return dist.all_reduce(v if isinstance(v, Tensor) else ops.asarray(v, device=device), "sum")

        synced = [copy.copy(m) for m in metrics]
        for m in synced:
            m.sync(total)
        return synced

    def _reset_metrics(self) -> None:
        self._loss.reset()
        for m in self.metrics:
            m.reset()

    def running_loss(self) -> float:
        """The mean training loss of the epoch so far (reads the device)."""
        return self._loss.compute()

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Loss and metrics over `loader`, in eval mode without gradients (train mode is restored)."""
        device, mean, metrics = self.device, Mean("loss"), [copy.deepcopy(m) for m in self.metrics]
        for m in metrics:
            m.reset()
        was_training = self.model.training
        self.model.eval()
        batches = 0
        try:
            with no_grad():
                for batch in loader:
                    with self._autocast():
                        output, target = self.forward(to_device(batch, device))
                        loss = self.loss_fn(output, target)
                    self._update_metrics(mean, metrics, loss, output, target)
                    batches += 1
        finally:
            self.model.train(was_training)
        mean, *metrics = self._synced([mean, *metrics])
        if not batches:  # a NaN loss without a word before
            raise ValueError(
                f"Learner.evaluate: the loader {type(loader).__name__} yielded no batches; is the "
                "dataset empty, or smaller than batch_size with drop_last=True? (an iterator is used "
                "up after one pass: pass a list or a DataLoader)"
            )
        return {"loss": mean.compute(), **{m.name: m.compute() for m in metrics}}

    # -- interruption --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """First SIGINT: finish the current optimizer step, save, stop. Second: KeyboardInterrupt.
        Data-parallel, SIGTERM too: torchrun and schedulers stop workers with it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signums = (signal.SIGINT, signal.SIGTERM) if self.distributed else (signal.SIGINT,)
        previous = {signum: signal.getsignal(signum) for signum in signums}

        def handler(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                for n, h in previous.items():
                    signal.signal(n, h)
                raise KeyboardInterrupt
            self._interrupt_requested = True
            self.log(
                f"{signal.Signals(signum).name}: stopping after this step (Ctrl-C again to stop at once, "
                "without saving)"
            )

        for signum in signums:
            signal.signal(signum, handler)
        try:
            yield
        finally:
            for n, h in previous.items():
                signal.signal(n, h)

    def _interrupt(self) -> None:
        self.interrupted = self.stop_training = True
        if not any(isinstance(cb, Checkpoint) for cb in self.callbacks):
            self.log("interrupted: no checkpoint_dir was given, so nothing was saved")
        self._call("on_interrupt")

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole training state: what `save_checkpoint` writes."""
        loader = getattr(self, "train_loader", None)
        loss, *metrics = self._synced([self._loss, *self.metrics])  # mid-epoch: every process's part
        scaler = {} if self.scaler is None else {"scaler": self.scaler.state_dict()}
        return {
            "model": self._module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "learner": {
                "epoch": self.epoch,
                "step": self.step,
                "batch_in_epoch": self.batch_in_epoch,
                "epoch_seconds": self._epoch_seconds,
                "history": self.history,
                "loss": loss.state_dict(),
                "metrics": {m.name: m.state_dict() for m in metrics},
            },
            "callbacks": {self._callback_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
            "rng": ag_random.default_generator.get_state(),
            "train_loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
            **scaler,  # 16-mixed's loss scale (absent otherwise, and in checkpoints made before it)
        }

    @staticmethod
    def _callback_key(i: int, cb: Callback) -> str:
        return f"{i}:{type(cb).__name__}"

    def save_checkpoint(self, path: str | os.PathLike, reason: str = "manual") -> None:
        """Write the training state to `path` (atomically; safetensors, no pickle). Data-parallel,
        every process calls it (the metrics are gathered) and rank 0 writes."""
        state = self.state_dict()
        if not self.is_main_process:
            return
        meta = {
            "epoch": self.epoch,
            "step": self.step,
            "reason": reason,
            "model": type(self._module).__name__,
            "backend": self.device.name,
            "world_size": dist.world_size(),
        }
        save(state, path, metadata=meta)

    def load_checkpoint(self, path: str | os.PathLike, weights_only: bool = False) -> None:
        """Restore a `save_checkpoint` file: the model, and unless `weights_only` everything needed to
        continue training exactly where it stopped.

        The file is checked before anything is restored (a damaged file, a state dict or a bad seed
        stream is a `CheckpointError` naming it); the model loads all or nothing, and a later part
        that does not fit this learner (another optimizer, scheduler or metric) raises a
        `CheckpointError` saying which."""
        path = os.fspath(path)
        self._restore(self._read_checkpoint(path), path, weights_only)

    def _read_checkpoint(self, path: str) -> dict[str, Any]:
        """The training state in `path`, its structure checked (not yet whether it fits this learner)."""

        def fail(problem: str) -> CheckpointError:
            return CheckpointError(f"Learner.load_checkpoint: {path} {problem}")

        state = load(path, self.device)
        if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_PARTS):
            if isinstance(state, dict) and state and all(isinstance(v, Tensor) for v in state.values()):
                raise fail(
                    "holds a state dict (tensors by name), not a Learner checkpoint (the training state "
                    "Learner.save_checkpoint writes). To train from these weights, load them with "
                    "model.load_state_dict(ag.load(path)) and call fit without resume"
                )
            found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
            raise fail(f"is not a Learner checkpoint: it holds {found}, not {list(_CHECKPOINT_PARTS)}")
        damaged = [
            k for k in ("model", "optimizer", "callbacks", "learner") if not isinstance(state[k], dict)
        ]
        if not damaged:
            s = state["learner"]
            damaged = [k for k in ("epoch", "step", "batch_in_epoch") if not _is_count(s.get(k))]
            damaged += [k for k, t in _LEARNER_ENTRIES if not isinstance(s.get(k), t)]
            if "history" not in damaged and not all(isinstance(row, dict) for row in s["history"]):
                damaged.append("history")
        if damaged:
            raise fail(
                f"is damaged: its {', '.join(damaged)} entries are not what Learner.save_checkpoint writes"
            )
        try:
            ag_random.Generator().set_state(state["rng"])  # tried on a scratch stream first
        except (TypeError, ValueError, KeyError) as exc:
            raise fail(f"has a damaged random-number state ({type(exc).__name__}: {exc})") from None
        return state

    def _restore(self, state: dict[str, Any], path: str, weights_only: bool = False) -> None:
        with _fitting(path, "model"):
            self._module.load_state_dict(state["model"])
        if weights_only:
            return
        if (state["scheduler"] is None) != (self.scheduler is None):
            raise ValueError(
                f"Learner.load_checkpoint: {path} was saved "
                f"{'without' if state['scheduler'] is None else 'with'} a scheduler; this learner has "
                f"{'one' if self.scheduler is not None else 'none'}"
            )
        with _fitting(path, "optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            with _fitting(path, "scheduler"):
                self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):  # else the scaler starts afresh
            with _fitting(path, "scaler"):
                self.scaler.load_state_dict(state["scaler"])
        s = state["learner"]
        with _fitting(path, "metrics"):
            self._loss.load_state_dict(s["loss"])
            for m in self.metrics:
                if m.name in s["metrics"]:
                    m.load_state_dict(s["metrics"][m.name])
        if not self.is_main_process:  # the saved figures are every process's sum: counted once, on rank 0
            self._reset_metrics()
        with _fitting(path, "callbacks"):
            for i, cb in enumerate(self.callbacks):
                if self._callback_key(i, cb) in state["callbacks"]:
                    cb.load_state_dict(state["callbacks"][self._callback_key(i, cb)])
        self.epoch, self.step, self.batch_in_epoch = s["epoch"], s["step"], s["batch_in_epoch"]
        self._epoch_seconds, self.history = float(s["epoch_seconds"]), list(s["history"])
        ag_random.default_generator.set_state(state["rng"])
        self._loader_state = state["train_loader"]

    def _resume(self, resume: bool | str | os.PathLike | None) -> str | None:
        """Restore the checkpoint `resume` asks for; its path, or None for a fresh start."""
        if resume is None or resume is False:
            return None
        if resume is not True:
            path = os.fspath(resume)
            if not os.path.exists(path):
                raise FileNotFoundError(f"Learner.fit: resume checkpoint {path} does not exist")
            self.load_checkpoint(path)
            return path
        checkpoints = [cb for cb in self.callbacks if isinstance(cb, Checkpoint)]
        if not checkpoints:
            raise ValueError("Learner.fit(resume=True) needs a checkpoint_dir (or a Checkpoint callback)")
        candidates = sorted((c for cb in checkpoints for c in cb.candidates()), reverse=True)
        for _, _, path in candidates:
            try:  # newest first; one that cannot be read (truncated, damaged) is passed over
                state = self._read_checkpoint(path)
            except (CheckpointError, OSError) as exc:
                warnings.warn(
                    f"Learner.fit(resume=True): skipping {path}: {exc}", RuntimeWarning, stacklevel=3
                )
                continue
            self._restore(state, path)
            return path
        self.log(
            f"resume=True: {'no readable checkpoint' if candidates else 'no checkpoint yet'}; "
            "starting from the beginning"
        )
        return None

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, hook: str, *args: Any) -> None:
        main = self.is_main_process
        for cb in self.callbacks:
            if main or not cb.main_process_only:
                getattr(cb, hook)(self, *args)

    def log(self, message: str) -> None:
        """A message that does not break a running progress bar (printed by rank 0 alone)."""
        if not self.is_main_process:
            return
        try:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)
        except ImportError:
            print(message, file=sys.stderr)


def fit(
    model: Module,
    optimizer: Optimizer,
    loss_fn: LossFn,
    train_loader: Iterable[Any],
    epochs: int,
    val_loader: Iterable[Any] | None = None,
    resume: bool | str | os.PathLike | None = None,
    **learner_options: Any,
) -> Learner:
    """`Learner(model, optimizer, loss_fn, **learner_options).fit(...)` in one call; returns the
    learner (its `history`, `evaluate`, checkpoints)."""
    learner = Learner(model, optimizer, loss_fn, **learner_options)
    learner.fit(train_loader, epochs, val_loader=val_loader, resume=resume)
    return learner


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@contextlib.contextmanager
def _fitting(path: str, part: str) -> Iterator[None]:
    """Name the file and the part of it when restoring that part fails: it does not fit this learner."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(
            f"Learner.load_checkpoint: {path}: its {part} state does not fit this learner: {exc}"
        ) from exc
