"""Learner(precision=...) on the digits example (sklearn's bundled load_digits, a small MLP, seeded),
on every backend here: bf16-mixed and 16-mixed reach the float32 run's test accuracy with float32
parameters; 16-mixed skips overflowing steps, unscales before clipping, accumulates, keeps its scale
in checkpoints and resumes it; compile=True gives the eager run's losses; bad precision values."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim
from agnostic.amp import GradScaler
from agnostic.data import DataLoader, TensorDataset
from agnostic.io import load
from agnostic.train import Callback, Learner
from agnostic.train.metrics import Accuracy

pytest.importorskip(
    "sklearn", reason="the digits example is sklearn.datasets.load_digits (pip install scikit-learn)"
)

# overflows are what these tests inject: NumPy warns on inf arithmetic
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
BACKENDS = [pytest.param(d, id=d.name) for d in available_backends()]
COMPILED = [p for p in BACKENDS if p.values[0].ops.compiler is not None]
TRAIN = 1280  # 10 batches of 128: one batch shape, so a compiled step compiles once


@functools.cache
def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    return x[order[:TRAIN]], y[order[:TRAIN]], x[order[TRAIN:]], y[order[TRAIN:]]


class _Record(Callback):
    """The scale, and whether the parameters moved, after every optimizer step."""

    def __init__(self) -> None:
        self.scales: list[float] = []
        self.moved: list[bool] = []
        self._last: list[np.ndarray] | None = None

    def on_fit_start(self, learner: Any) -> None:
        self._last = [p.numpy().copy() for p in learner.model.parameters()]

    def on_step_end(self, learner: Any) -> None:
        now = [p.numpy().copy() for p in learner.model.parameters()]
        self.moved.append(any(not np.array_equal(a, b) for a, b in zip(now, self._last)))
        self._last = now
        if learner.scaler is not None:
            self.scales.append(learner.scaler.get_scale())


def _learner(device: ag.Device, precision: Any = "32", sgd: bool = False, **kw: Any) -> Learner:
    ag.manual_seed(0)
    with ag.default_backend(device):
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = optim.SGD(model.parameters(), lr=0.2) if sgd else optim.Adam(model.parameters(), lr=1e-2)
    return Learner(
        model, opt, ag.cross_entropy, metrics=[Accuracy()], precision=precision, progress=False, **kw
    )


def _fit(learner: Learner, epochs: int, resume: Any = None) -> tuple[list[float], float]:
    x, y, xt, yt = _digits()
    device = learner.device
    train = DataLoader(TensorDataset(x, y), 128, shuffle=True, device=device)
    history = learner.fit(train, epochs, resume=resume)
    accuracy = learner.evaluate(DataLoader(TensorDataset(xt, yt), 517, device=device))["accuracy"]
    return [row["loss"] for row in history], accuracy


@pytest.mark.parametrize("device", BACKENDS)
def test_mixed_precision_reaches_float32_accuracy(device: ag.Device) -> None:
    seen: dict[str, set[str]] = {}

    def loss_fn(precision: str) -> Any:
        def fn(output: ag.Tensor, target: ag.Tensor) -> ag.Tensor:
            loss = ag.cross_entropy(output, target)
            seen.setdefault(precision, set()).add(f"{output.dtype.name}->{loss.dtype.name}")
            return loss

        return fn

    results = {}
    for precision in ("32", "bf16-mixed", "16-mixed"):
        learner = _learner(device, precision)
        learner.loss_fn = loss_fn(precision)
        losses, accuracy = _fit(learner, 3)
        results[precision] = accuracy
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
        assert all(p.dtype is ag.float32 for p in learner.model.parameters())  # master weights
        state = learner.optimizer.state_dict()["state"]
        assert all(
            v.dtype is ag.float32 for s in state.values() for v in s.values() if isinstance(v, ag.Tensor)
        )
        checkpoint = learner.state_dict()
        if precision == "16-mixed":
            assert checkpoint["scaler"] == learner.scaler.state_dict()
            assert checkpoint["scaler"]["scale"] == 2.0**16  # nothing overflowed, 30 < 2000 steps
        else:
            assert learner.scaler is None and "scaler" not in checkpoint
    # autocast ran the model in the low precision and the loss in float32 (train and evaluate)
    assert seen == {
        "32": {"float32->float32"},
        "bf16-mixed": {"bfloat16->float32"},
        "16-mixed": {"float16->float32"},
    }
    assert results["32"] > 0.9, results
    for precision in ("bf16-mixed", "16-mixed"):
        assert abs(results[precision] - results["32"]) <= 0.02, results


@pytest.mark.parametrize("device", BACKENDS[:1])
def test_16_mixed_skips_overflowing_steps(device: ag.Device) -> None:
    """A scale too large for float16: the first steps overflow, are skipped (the weights do not
    move) and halve the scale, until the scaled gradients fit; then training proceeds."""
    record = _Record()
    learner = _learner(device, "16-mixed", grad_scaler=GradScaler(init_scale=2.0**24), callbacks=[record])
    losses, accuracy = _fit(learner, 2)
    assert record.moved[:3] == [False] * 3 and record.moved.count(True) >= 10
    previous = 2.0**24
    for moved, scale in zip(record.moved, record.scales):  # a skip halves it; no growth in 2000 steps
        assert scale == (previous if moved else previous / 2)
        previous = scale
    assert accuracy > 0.75 and math.isfinite(losses[-1])  # 6 of its 20 steps were skipped


@pytest.mark.parametrize("device", BACKENDS[:1])
def test_16_mixed_unscales_before_clipping_and_accumulates(device: ag.Device) -> None:
    """Clipping sees the true gradients: the 16-mixed run follows the float32 run (clipping the
    scaled gradients would shrink every step 65536-fold)."""
    kw = {"sgd": True, "clip_grad_norm": 0.5, "grad_accum": 2}
    runs = {}
    for precision in ("32", "16-mixed"):
        learner = _learner(device, precision, **kw)
        start = [p.numpy().copy() for p in learner.model.parameters()]
        _fit(learner, 1)
        runs[precision] = [p.numpy() for p in learner.model.parameters()]
    for p0, p32, p16 in zip(start, runs["32"], runs["16-mixed"]):
        moved = np.abs(p32 - p0).max()
        assert moved > 1e-3
        assert np.abs(p16 - p32).max() < 0.05 * moved


@pytest.mark.parametrize("device", COMPILED)
def test_compiled_16_mixed_gives_the_eager_losses(device: ag.Device) -> None:
    """compile=True: the scaled forward/backward and the clipped update are compiled, the unscale,
    inf check and skip run eagerly between them: the same losses, skips and scales as eager."""
    out = {}
    for compiled in (False, True):
        record = _Record()
        scaler = GradScaler(init_scale=2.0**18, growth_interval=3)
        learner = _learner(
            device, "16-mixed", compile=compiled, grad_scaler=scaler, clip_grad_norm=1.0, callbacks=[record]
        )
        losses, accuracy = _fit(learner, 1)
        out[compiled] = losses, accuracy, record, [p.numpy() for p in learner.model.parameters()]
        if compiled:
            assert learner._forward_backward.compilations == 1 and learner._update.compilations == 1
    (el, ea, er, ep), (cl, ca, cr, cp) = out[False], out[True]
    assert False in er.moved and er.moved == cr.moved and er.scales == cr.scales
    assert max(er.scales) > min(er.scales[er.moved.index(True) :])  # it backed off, then grew
    np.testing.assert_allclose(cl, el, rtol=2e-4)
    for a, b in zip(cp, ep):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3)  # XLA fuses float16 work otherwise
    assert abs(ca - ea) <= 0.01


@pytest.mark.parametrize("device", BACKENDS[:1])
def test_checkpoint_holds_the_scale_and_resume_restores_it(device: ag.Device, tmp_path: Any) -> None:
    def make(precision: str = "16-mixed", directory: Any = tmp_path / "run") -> Learner:
        scaler = GradScaler(init_scale=2.0**20, growth_interval=4) if precision == "16-mixed" else None
        return _learner(device, precision, grad_scaler=scaler, checkpoint_dir=directory)

    whole = make(directory=tmp_path / "whole")
    whole_losses, _ = _fit(whole, 3)
    first = make()
    _fit(first, 2)
    saved = load(tmp_path / "run" / "last.safetensors")["scaler"]
    assert saved == first.scaler.state_dict() and saved["scale"] != 2.0**20  # it moved, and was saved
    assert isinstance(saved["scale"], float) and isinstance(saved["_growth_tracker"], int)
    resumed = make()
    losses, _ = _fit(resumed, 3, resume=True)
    assert resumed.scaler.state_dict() == whole.scaler.state_dict()
    assert [round(v, 5) for v in losses] == [round(v, 5) for v in whole_losses]
    # a checkpoint without a scaler (float32, or written before precision= existed) still loads:
    # the scaler starts afresh; a 16-mixed checkpoint resumes a float32 learner (the scale unused)
    plain = make("32", tmp_path / "plain")
    _fit(plain, 1)
    mixed = make(directory=tmp_path / "plain")
    _fit(mixed, 2, resume=True)
    assert mixed.history[0] == plain.history[0] and len(mixed.history) == 2
    back = make("32", tmp_path / "run")
    _fit(back, 4, resume=True)
    assert len(back.history) == 4 and "scaler" not in back.state_dict()


def test_precision_values() -> None:
    device = available_backends()[0]
    for alias, name in [
        ("32", "32"),
        ("32-true", "32"),
        (32, "32"),
        ("bf16", "bf16-mixed"),
        (16, "16-mixed"),
    ]:
        learner = _learner(device, alias)
        assert learner.precision == name and (learner.scaler is not None) == (name == "16-mixed")
    for bad in ("bf16-true", "16-true", "64", "fp16", "float16", 8, 16.0, True, None):
        with pytest.raises(ValueError, match=r"precision must be one of \['32', '32-true', 32, 'bf16-mixed'"):
            _learner(device, bad)
    with pytest.raises(ValueError, match=r"use model\.to\(dtype=\.\.\.\)"):
        _learner(device, "bf16-true")
    with pytest.raises(ValueError, match="grad_scaler is for precision='16-mixed'"):
        _learner(device, "bf16-mixed", grad_scaler=GradScaler())
    with pytest.raises(TypeError, match=r"grad_scaler must be an ag\.amp\.GradScaler"):
        _learner(device, "16-mixed", grad_scaler=object())
    # a disabled scaler: 16-mixed without loss scaling (torch's GradScaler(enabled=False) recipe)
    learner = _learner(device, "16-mixed", grad_scaler=GradScaler(enabled=False))
    losses, _ = _fit(learner, 1)
    assert math.isfinite(losses[0]) and learner.state_dict()["scaler"] == {}
