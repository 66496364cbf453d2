"""agnostic.train: the Learner loop against a hand-written loop, exact resume, Ctrl-C, callbacks,
metrics against NumPy, and the errors a user sees."""

from __future__ import annotations

import csv
import faulthandler
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim
from agnostic.data import DataLoader, TensorDataset
from agnostic.train import (
    Accuracy,
    Callback,
    Checkpoint,
    EarlyStopping,
    Learner,
    Metric,
    PlotHistory,
    ProgressBar,
    TopKAccuracy,
    fit,
)

BACKENDS = [d.name for d in available_backends()]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)).astype(np.int64)
    return x, y


def _setup(backend: str = "numpy", scheduler: bool = True, **learner_options):
    """A model with dropout (it draws from the seed stream), a shuffled loader (it draws too), Adam
    and a step schedule: everything a resume has to restore."""
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4), backend=backend)
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if scheduler else None
    x, y = _data()
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=10, shuffle=True, device=backend)
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16, device=backend)
    options = {"metrics": [Accuracy(), TopKAccuracy(2)], "progress": False, **learner_options}
    return Learner(model, opt, ag.cross_entropy, scheduler=sched, **options), train, val


def _params(learner: Learner) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in learner.model.state_dict().items()}


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def test_fit_is_the_hand_written_loop() -> None:
    """Same seed, same batches: Learner.fit leaves exactly the parameters of the plain loop."""
    learner, train, _ = _setup()
    learner.fit(train, epochs=2)

    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4), backend="numpy")
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = _data()
    loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=10, shuffle=True, device="numpy")
    losses = []
    for _ in range(2):
        total = 0.0
        for xb, yb in loader:
            loss = ag.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            total += float(loss) * yb.shape[0]
        losses.append(total / 64)
        sched.step()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), _params(learner)[k])
    np.testing.assert_allclose([r["loss"] for r in learner.history], losses, rtol=1e-6)
    assert [r["lr"] for r in learner.history] == [0.02, 0.02]  # the lr each epoch trained with
    assert learner.optimizer.param_groups[0]["lr"] == 0.01


def test_grad_accumulation_and_clipping_are_the_hand_written_ones() -> None:
    learner, train, _ = _setup(scheduler=False, grad_accum=3, clip_grad_norm=0.5)
    learner.fit(train, epochs=1)
    assert learner.step == 3  # 7 batches: steps after batches 3, 6 and the last one

    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4), backend="numpy")
    opt = optim.Adam(model.parameters(), lr=0.02)
    x, y = _data()
    batches = list(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=10, shuffle=True, device="numpy"))
    for i, (xb, yb) in enumerate(batches):
        (ag.cross_entropy(model(xb), yb) / 3).backward()
        if (i + 1) % 3 == 0 or i == len(batches) - 1:
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            opt.zero_grad()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), _params(learner)[k])


class _InterruptAt(Callback):
    """Sends this process a real SIGINT after the given optimizer step (as Ctrl-C would)."""

    def __init__(self, step: int) -> None:
        self.at = step

    def on_step_end(self, learner: Learner) -> None:
        if learner.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


# stop steps: mid-epoch, at the epoch's last step (7 batches per epoch), mid-epoch later
RESUME_CASES = [(b, s) for b in ("numpy", "torch") if b in BACKENDS for s in (4, 7, 11)]
RESUME_CASES += [(b, 11) for b in BACKENDS if b not in ("numpy", "torch")]


@pytest.mark.parametrize("backend, stop_step", RESUME_CASES)
def test_ctrl_c_saves_and_resume_is_exact(tmp_path, backend: str, stop_step: int) -> None:
    """Bit for bit on numpy and torch (deterministic on the CPU); to float tolerance elsewhere."""
    whole, train, val = _setup(backend)
    whole.fit(train, epochs=3, val_loader=val)

    first, train, val = _setup(backend, checkpoint_dir=tmp_path, callbacks=[_InterruptAt(stop_step)])
    before = signal.getsignal(signal.SIGINT)
    history = first.fit(train, epochs=3, val_loader=val)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    # an interrupt at the epoch's last step lets that epoch finish (validation, history) first
    assert first.interrupted and first.step == stop_step and len(history) == stop_step // 7
    meta = ag.io.read_metadata(tmp_path / "last.safetensors")
    assert meta["reason"] == "interrupt" and meta["step"] == stop_step

    ag.manual_seed(12345)  # the resume must not depend on the stream's state before it
    second, train, val = _setup(backend, checkpoint_dir=tmp_path)
    second.fit(train, epochs=3, val_loader=val, resume=True)
    assert not second.interrupted and second.step == whole.step
    exact = backend in ("numpy", "torch")
    for k, v in _params(whole).items():
        np.testing.assert_allclose(
            _params(second)[k], v, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-7, err_msg=k
        )
    if exact:
        assert _without_time(second.history) == _without_time(whole.history)


def test_a_real_ctrl_c_stops_a_script_cleanly(tmp_path) -> None:
    """A subprocess trains; SIGINT arrives from outside; it exits with no traceback and leaves a
    checkpoint that loads."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
            from test_train import _setup
            from agnostic.train import Callback

            class Slow(Callback):
                def on_step_end(self, learner):
                    if learner.step == 2:
                        print("ready", flush=True)
                    time.sleep(0.05)

            learner, train, val = _setup(checkpoint_dir={str(tmp_path / "ck")!r}, callbacks=[Slow()])
            learner.fit(train, epochs=1000)
            print("stopped at step", learner.step, flush=True)
            sys.exit(130 if learner.interrupted else 0)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved to" in err
    step = int(out.split("stopped at step")[1])
    learner, _, _ = _setup()
    learner.load_checkpoint(tmp_path / "ck" / "last.safetensors")
    assert learner.step == step >= 2


def test_checkpoints_every_n_steps_best_and_last(tmp_path) -> None:
    learner, train, val = _setup(checkpoint_dir=tmp_path, checkpoint_every=3)
    learner.fit(train, epochs=3, val_loader=val)
    files = sorted(os.listdir(tmp_path))
    assert files == ["best.safetensors", "history.csv", "last.safetensors", "step-00000018.safetensors", "step-00000021.safetensors"]  # fmt: skip
    best_epoch = min(learner.history, key=lambda r: r["val_loss"])["epoch"]
    assert ag.io.read_metadata(tmp_path / "best.safetensors")["epoch"] == best_epoch
    # weights_only restores the model alone, on another model object
    other, _, _ = _setup()
    other.load_checkpoint(tmp_path / "last.safetensors", weights_only=True)
    for k, v in _params(learner).items():
        np.testing.assert_array_equal(_params(other)[k], v)
    assert other.step == 0


def test_history_csv_and_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    learner, train, val = _setup(checkpoint_dir=tmp_path, callbacks=[PlotHistory(tmp_path / "h.png")])
    learner.fit(train, epochs=2, val_loader=val)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_accuracy"]) for r in rows] == [r["val_accuracy"] for r in learner.history]
    assert set(rows[0]) == {"epoch", "step", "loss", "accuracy", "top2_accuracy", "val_loss", "val_accuracy", "val_top2_accuracy", "lr", "time"}  # fmt: skip
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Scripted(Metric):
    """A metric whose epoch values are given in advance, to drive the callbacks that watch one."""

    name = "score"

    def __init__(self, values: list[float]) -> None:
        self.values, self.epoch = values, 0
        super().__init__()

    def reset(self) -> None:
        pass

    def update(self, output, target) -> None:
        pass

    def compute(self) -> float:
        self.epoch += 1
        return self.values[self.epoch - 1]


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    class Snapshot(Callback):
        def on_epoch_end(self, learner, logs):
            if logs["epoch"] == 2:
                self.weights = _params(learner)

    snapshot = Snapshot()
    stopper = EarlyStopping(monitor="score", mode="max", patience=2, restore_best=True)
    learner, train, _ = _setup(metrics=[_Scripted([0.5, 0.7, 0.6, 0.69, 0.9])], callbacks=[snapshot, stopper])
    learner.fit(train, epochs=20)
    assert [r["score"] for r in learner.history] == [0.5, 0.7, 0.6, 0.69]
    assert stopper.best_epoch == 2 and stopper.stopped_epoch == 4
    for k, v in snapshot.weights.items():
        np.testing.assert_array_equal(_params(learner)[k], v)


def test_early_stopping_modes_and_min_delta() -> None:
    learner, train, _ = _setup(
        metrics=[_Scripted([1.0, 0.99, 0.98, 0.5])],
        callbacks=[EarlyStopping("score", mode="min", patience=2, min_delta=0.05)],
    )
    learner.fit(train, epochs=4)
    assert len(learner.history) == 3  # 0.99 and 0.98 are not 0.05 better than 1.0
    with pytest.raises(ValueError, match="mode must be 'min', 'max' or 'auto'"):
        EarlyStopping(mode="up")


def test_reduce_lr_on_plateau_watches_the_epoch_metric() -> None:
    learner, train, val = _setup(scheduler=False)
    opt = learner.optimizer
    opt.param_groups[0]["lr"] = 1e-9  # a flat validation loss: from epoch 2 on, every epoch is a plateau
    learner.scheduler = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5, eps=0.0)
    learner.fit(train, epochs=3, val_loader=val)
    assert [r["lr"] for r in learner.history] == [1e-9, 1e-9, 5e-10]
    learner.scheduler_interval = "step"
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs scheduler_interval='epoch'"):
        learner.fit(train, epochs=1)


def test_progress_bar_shows_the_running_loss() -> None:
    pytest.importorskip("tqdm")
    out = io.StringIO()
    learner, train, _ = _setup(callbacks=[ProgressBar(refresh_s=0.0, file=out)], progress=True)
    learner.fit(train, epochs=1)
    text = out.getvalue()
    assert "epoch 1/1" in text and "7/7" in text and "loss=" in text
    assert len([cb for cb in learner.callbacks if isinstance(cb, ProgressBar)]) == 1


def test_progress_without_tqdm_prints_a_line_per_epoch() -> None:
    out = io.StringIO()
    learner, train, _ = _setup(callbacks=[ProgressBar(file=out, tqdm=False)])
    learner.fit(train, epochs=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 loss=")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_agrees_across_backends(backend: str) -> None:
    reference, train, val = _setup("numpy")
    reference.fit(train, epochs=2, val_loader=val)
    learner, train, val = _setup(backend)
    learner.fit(train, epochs=2, val_loader=val)
    for a, b in zip(learner.history, reference.history):
        for k in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_fit_is_the_eager_one(backend: str) -> None:
    """compile=True: forward/backward and the update through ag.compile (gradient accumulation,
    clipping, dropout and a schedule included); the last batch of an epoch is smaller (one more
    program). Eager NumPy is the reference."""
    options = {"grad_accum": 2, "clip_grad_norm": 0.5}
    reference, train, val = _setup("numpy", **options)
    reference.fit(train, epochs=2, val_loader=val)
    learner, train, val = _setup(backend, compile=True, **options)
    learner.fit(train, epochs=2, val_loader=val)
    for a, b in zip(learner.history, reference.history):
        for k in ("loss", "val_loss", "accuracy", "val_accuracy", "lr"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    for k, v in _params(reference).items():
        np.testing.assert_allclose(_params(learner)[k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    if ag.backend(backend).ops.compiler is not None:
        # batches of 10 and 4, each with and without an incoming gradient: at most four programs
        assert 1 <= learner._forward_backward.compilations <= 4
        assert learner._update.compilations == 1


def test_batches_move_to_the_model_and_fit_returns_the_learner() -> None:
    if "torch" not in BACKENDS:
        pytest.skip("needs a second backend (torch)")
    ag.manual_seed(0)
    model = nn.Linear(6, 4, backend="torch")
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, device="numpy")  # batches on numpy
    learner = fit(model, optim.SGD(model.parameters(), lr=0.1), ag.cross_entropy, loader, 2, progress=False)
    assert isinstance(learner, Learner) and len(learner.history) == 2
    assert learner.history[1]["loss"] < learner.history[0]["loss"]


def test_a_plain_list_of_batches_resumes_by_skipping(tmp_path) -> None:
    x, y = _data(40)
    batches = [(ag.tensor(x[i : i + 10]), ag.tensor(y[i : i + 10])) for i in range(0, 40, 10)]

    def make(**options) -> Learner:
        ag.manual_seed(0)
        model = nn.Linear(6, 4)
        return Learner(
            model, optim.SGD(model.parameters(), lr=0.1), ag.cross_entropy, progress=False, **options
        )

    whole = make()
    whole.fit(batches, epochs=2)
    first = make(checkpoint_dir=tmp_path, callbacks=[_InterruptAt(6)])
    first.fit(batches, epochs=2)
    second = make(checkpoint_dir=tmp_path)
    second.fit(batches, epochs=2, resume=True)
    for k, v in _params(whole).items():
        np.testing.assert_array_equal(_params(second)[k], v)


# -- metrics against NumPy ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_metrics_match_numpy(backend: str) -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 5, 7)).astype(np.float32)  # (N, T, C)
    target = rng.integers(0, 7, size=(3, 5))
    scores[0, 0, :] = 1.0  # a tie: every class scores the same, so the target's rank is 0
    B = ag.backend(backend)
    acc, top3 = Accuracy(), TopKAccuracy(3)
    for half in (slice(0, 2), slice(2, 3)):  # two updates accumulate
        acc.update(B.tensor(scores[half]), B.tensor(target[half]))
        top3.update(B.tensor(scores[half]), B.tensor(target[half]))
    picked = np.take_along_axis(scores, target[..., None], axis=-1)
    rank = (scores > picked).sum(-1)
    assert acc.compute() == pytest.approx((scores.argmax(-1) == target).mean())
    assert top3.compute() == pytest.approx((rank < 3).mean())
    logits = rng.normal(size=(8,)).astype(np.float32)
    labels = (rng.random(8) > 0.5).astype(np.float32)
    binary = Accuracy(threshold=0.0)
    binary.update(B.tensor(logits), B.tensor(labels))
    assert binary.compute() == pytest.approx(((logits > 0) == (labels > 0.5)).mean())
    acc_axis1 = Accuracy(axis=1)  # (N, C, T) as torch's cross_entropy takes them
    acc_axis1.update(B.tensor(scores.transpose(0, 2, 1)), B.tensor(target))
    assert acc_axis1.compute() == acc.compute()


def test_metric_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"output \(4, 3\) must have one more dimension .* target \(4, 3\)"):
        Accuracy().update(ag.zeros((4, 3)), ag.zeros((4, 3), dtype=ag.int64))
    with pytest.raises(ValueError, match=r"classes on axis 1 does not fit target \(5,\)"):
        Accuracy().update(ag.zeros((4, 3)), ag.zeros((5,), dtype=ag.int64))
    with pytest.raises(ValueError, match="k=4 but output has only 3 classes"):
        TopKAccuracy(4).update(ag.zeros((2, 3)), ag.zeros((2,), dtype=ag.int64))
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        TopKAccuracy(0)
    assert np.isnan(Accuracy().compute())  # nothing seen yet


# -- errors -------------------------------------------------------------------------------------


def test_learner_refuses_bad_arguments(tmp_path) -> None:
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"model must be an agnostic nn\.Module"):
        Learner(lambda x: x, opt, ag.cross_entropy)
    with pytest.raises(TypeError, match="optimizer must be an agnostic Optimizer"):
        Learner(model, object(), ag.cross_entropy)
    with pytest.raises(ValueError, match="grad_accum must be an int >= 1"):
        Learner(model, opt, ag.cross_entropy, grad_accum=0)
    with pytest.raises(ValueError, match="scheduler_interval must be"):
        Learner(model, opt, ag.cross_entropy, scheduler_interval="batch")
    with pytest.raises(ValueError, match="checkpoint_every needs a checkpoint_dir"):
        Learner(model, opt, ag.cross_entropy, checkpoint_every=5)
    with pytest.raises(ValueError, match="metric names must be unique"):
        Learner(model, opt, ag.cross_entropy, metrics=[Accuracy(), Accuracy()])
    with pytest.raises(TypeError, match="callbacks must be Callback instances"):
        Learner(model, opt, ag.cross_entropy, callbacks=[print])
    learner = Learner(model, opt, lambda out, y: out, progress=False)
    batch = [(ag.zeros((3, 2)), ag.zeros((3,), dtype=ag.int64))]
    with pytest.raises(TypeError, match=r"loss_fn must return a scalar Tensor, got Tensor of shape \(3, 2\)"):
        learner.fit(batch, epochs=1)
    with pytest.raises(TypeError, match=r"a batch must be a tuple \(input, ..., target\)"):
        Learner(model, opt, ag.cross_entropy, progress=False).fit([ag.zeros((3, 2))], epochs=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Learner(model, opt, ag.cross_entropy, progress=False).fit(
            batch, 1, resume=tmp_path / "none.safetensors"
        )
    with pytest.raises(ValueError, match="needs a checkpoint_dir"):
        Learner(model, opt, ag.cross_entropy, progress=False).fit(batch, 1, resume=True)
    with pytest.raises(KeyError, match="monitor 'val_loss' is not in the epoch's logs"):
        Learner(model, opt, ag.cross_entropy, progress=False, callbacks=[EarlyStopping()]).fit(batch, 1)
    with pytest.raises(ValueError, match="every_n_steps must be"):
        Checkpoint(tmp_path, every_n_steps=0)


def test_a_checkpoint_of_another_model_loads_nothing(tmp_path) -> None:
    learner, train, _ = _setup(checkpoint_dir=tmp_path)
    learner.fit(train, epochs=1)
    ag.manual_seed(0)
    other_model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 4))
    other = Learner(other_model, optim.Adam(other_model.parameters()), ag.cross_entropy, progress=False)
    before = {k: v.numpy().copy() for k, v in other_model.state_dict().items()}
    with pytest.raises(ValueError, match="shape"):
        other.load_checkpoint(tmp_path / "last.safetensors")
    for k, v in other_model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_resume_true_with_no_checkpoint_starts_fresh(tmp_path, capsys) -> None:
    learner, train, _ = _setup(checkpoint_dir=tmp_path / "new")
    learner.fit(train, epochs=1, resume=True)
    assert learner.step == 7 and "no checkpoint yet" in capsys.readouterr().err


def test_an_empty_training_loader_is_an_error_not_a_nan_loss() -> None:
    """An epoch of no training batches is a bug (an empty dataset, drop_last on a small one, a used
    up iterator); Learner says so instead of logging a NaN loss."""
    x, y = _data(8)
    model = nn.Linear(6, 4)
    learner = Learner(model, optim.SGD(model.parameters(), lr=0.1), ag.cross_entropy, progress=False)
    empty = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4)
    too_small = DataLoader(TensorDataset(x[:3], y[:3]), batch_size=4, drop_last=True)
    for loader in (empty, too_small):
        with pytest.raises(
            ValueError,
            match=r"training loader DataLoader yielded no batches in epoch 1; is the dataset empty",
        ):
            learner.fit(loader, epochs=1)
    with pytest.raises(ValueError, match=r"training loader list yielded no batches in epoch 1"):
        learner.fit([], epochs=1)
    used_up = iter([(ag.tensor(x), ag.tensor(y))])
    with pytest.raises(
        ValueError,
        match=r"list_iterator yielded no batches in epoch 2; an iterator is used up after one epoch",
    ):
        learner.fit(used_up, epochs=2)
    assert learner.fit(empty, epochs=0) == []  # nothing to train: nothing to complain about
    with pytest.raises(ValueError, match=r"Learner.evaluate: the loader DataLoader yielded no batches"):
        learner.evaluate(empty)
    with pytest.raises(ValueError, match=r"Learner.evaluate: the loader DataLoader yielded no batches"):
        learner.fit(DataLoader(TensorDataset(x, y), batch_size=4), epochs=1, val_loader=empty)


def test_a_metric_state_from_a_checkpoint_sets_only_the_metric_s_own_names() -> None:
    from agnostic.train import Accuracy

    metric = Accuracy()
    state = metric.state_dict()
    metric.load_state_dict(state)
    with pytest.raises(ValueError, match=r"Accuracy.load_state_dict: expected the keys \["):
        metric.load_state_dict({**state, "update": "not a method"})
    with pytest.raises(ValueError, match=r"Accuracy.load_state_dict: expected the keys"):
        metric.load_state_dict(["not", "a", "dict"])
    assert callable(metric.update)


def _edit_tree(path, old: str, new: str) -> None:
    """Replace `old` by `new` in the structure entry of a checkpoint's header."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    tree = header["__metadata__"]["agnostic.tree"]
    assert old in tree
    header["__metadata__"]["agnostic.tree"] = tree.replace(old, new)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('"Philox"', '"NoSuchGenerator"', "has a damaged random-number state"),
        (
            '["epoch", {"value": 1}]',
            '["epoch", {"value": "1"}]',
            "is damaged: its epoch entries are not what",
        ),
        ('["history", {"list": [', '["history", {"list": [{"value": 3}, ', "is damaged: its history entries"),
        ('"train_loader"', '"loader"', r"is not a Learner checkpoint: it holds \[.*'loader'"),
    ],
)
def test_a_damaged_training_state_is_refused_before_anything_is_restored(tmp_path, old, new, message) -> None:
    learner, train, _ = _setup(checkpoint_dir=tmp_path)
    learner.fit(train, epochs=1)
    path = tmp_path / "last.safetensors"
    _edit_tree(path, old, new)
    other, _, _ = _setup()
    before = _params(other)
    with pytest.raises(ag.CheckpointError, match=message) as info:
        other.load_checkpoint(path)
    assert str(path) in str(info.value)
    assert other.step == 0 and all((_params(other)[k] == v).all() for k, v in before.items())


def test_resuming_from_a_state_dict_says_what_the_file_is(tmp_path) -> None:
    learner, train, _ = _setup()
    ag.save(learner.model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(
        ag.CheckpointError,
        match=r"weights\.safetensors holds a state dict .*not a Learner checkpoint.* "
        r"model\.load_state_dict\(ag\.load\(path\)\) and call fit without resume",
    ):
        learner.fit(train, epochs=1, resume=tmp_path / "weights.safetensors")


def test_a_checkpoint_that_does_not_fit_names_the_part(tmp_path) -> None:
    learner, train, _ = _setup(checkpoint_dir=tmp_path)
    learner.fit(train, epochs=1)
    other, _, _ = _setup()
    other.optimizer = optim.Adam(list(other.model.parameters())[:2])  # the first layer's only
    with pytest.raises(
        ag.CheckpointError,
        match=r"last\.safetensors: its optimizer state does not fit this learner: .*have \[4\] parameters",
    ):
        other.load_checkpoint(tmp_path / "last.safetensors")


def test_resume_true_passes_over_unreadable_checkpoints_to_the_newest_readable_one(tmp_path, capsys) -> None:
    """A truncated newest file, a damaged one and a FIFO are each passed over with a warning naming
    them; training continues from the newest readable checkpoint, exactly."""
    whole, train, _ = _setup()
    whole.fit(train, epochs=2)
    first, train, _ = _setup(checkpoint_dir=tmp_path, checkpoint_every=3)
    first.fit(train, epochs=1)  # step-00000003, step-00000006, last (step 7)
    last, step6 = tmp_path / "last.safetensors", tmp_path / "step-00000006.safetensors"
    last.write_bytes(last.read_bytes()[:-100])  # truncated: its header still reads
    _edit_tree(step6, '"rng.buffer"}', '"rng.nothing"}')  # its header reads, its structure does not
    skipped = [last, step6]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "step-00000099.safetensors")  # would block a reader that opened it
        skipped.append(tmp_path / "step-00000099.safetensors")
    second, train, _ = _setup(checkpoint_dir=tmp_path, checkpoint_every=3)
    faulthandler.dump_traceback_later(
        120, exit=True, file=sys.__stderr__
    )  # a hang ends the run with a traceback
    try:
        with pytest.warns(RuntimeWarning) as warned:
            second.fit(train, epochs=2, resume=True)
    finally:
        faulthandler.cancel_dump_traceback_later()
    messages = [str(w.message) for w in warned]
    for path in skipped:
        assert any(f"skipping {path}" in m for m in messages), (path, messages)
    assert "step-00000003.safetensors at epoch 1, step 3" in capsys.readouterr().err
    for k, v in _params(whole).items():
        np.testing.assert_array_equal(_params(second)[k], v)
