"""agnostic.optim.lr_scheduler against torch.optim.lr_scheduler: the same lr (and momentum, for
one-cycle) at every step, state_dict resumes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import nn, optim
from agnostic.optim import lr_scheduler as ours

torch = pytest.importorskip("torch", reason="the reference is torch.optim.lr_scheduler (pip install torch)")
theirs = torch.optim.lr_scheduler

CASES = {
    "step": lambda S, o: S.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda S, o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3),
    "exponential": lambda S, o: S.ExponentialLR(o, gamma=0.9),
    "cosine": lambda S, o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "linear_warmup": lambda S, o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=4),
    "lambda": lambda S, o: S.LambdaLR(o, lr_lambda=lambda e: 1.0 / (1 + e)),
    "warmup_then_cosine": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.2, total_iters=3), S.CosineAnnealingLR(o, T_max=8)], milestones=[3]
    ),
    "one_cycle": lambda S, o: S.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=12),
    "one_cycle_linear_three_phase": lambda S, o: S.OneCycleLR(
        o, max_lr=0.4, total_steps=12, anneal_strategy="linear", three_phase=True, pct_start=0.25
    ),
}


def _pair(kind: str) -> tuple:
    a, b = nn.Parameter(ag.ones(2)), nn.Parameter(ag.ones(3))
    ta, tb = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    make = (optim.Adam, torch.optim.Adam) if kind == "adam" else (optim.SGD, torch.optim.SGD)
    kw = {} if kind == "adam" else {"momentum": 0.9}
    o = make[0]([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1, **kw)
    t = make[1]([{"params": [ta]}, {"params": [tb], "lr": 0.05}], lr=0.1, **kw)
    return o, t


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lr_sequence_matches_torch(case: str, kind: str) -> None:
    o, t = _pair(kind)
    s, ts = CASES[case](ours, o), CASES[case](theirs, t)
    for step in range(12):
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-10, err_msg=f"step {step}")
        for g, tg in zip(o.param_groups, t.param_groups):
            assert g["lr"] == pytest.approx(tg["lr"], rel=1e-10)
            if case.startswith("one_cycle"):
                key = "betas" if kind == "adam" else "momentum"
                np.testing.assert_allclose(g[key], tg[key], rtol=1e-10)
        o.step()
        t.step()
        if step < 11:
            s.step()
            ts.step()


def test_reduce_on_plateau_matches_torch() -> None:
    o, t = _pair("sgd")
    s = ours.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1, min_lr=0.004)
    ts = theirs.ReduceLROnPlateau(t, factor=0.5, patience=2, cooldown=1, min_lr=0.004)
    for metric in [1.0, 0.9, 0.9, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]:
        s.step(ag.asarray(metric))
        ts.step(metric)
        assert [g["lr"] for g in o.param_groups] == pytest.approx(
            [g["lr"] for g in t.param_groups], rel=1e-12
        )


def test_state_dict_resumes_the_schedule() -> None:
    o, _ = _pair("sgd")
    s = ours.CosineAnnealingLR(o, T_max=10)
    for _ in range(4):
        s.step()
    saved = s.state_dict()
    o2, _ = _pair("sgd")
    s2 = ours.CosineAnnealingLR(o2, T_max=10)
    s2.load_state_dict(saved)
    s.step()
    s2.step()
    assert s2.get_last_lr() == s.get_last_lr()


def test_scheduler_errors_name_the_schedule() -> None:
    o, _ = _pair("sgd")
    with pytest.raises(ValueError, match=r"StepLR: step_size must be >= 1, got 0"):
        ours.StepLR(o, step_size=0)
    with pytest.raises(ValueError, match=r"OneCycleLR: give total_steps, or epochs and steps_per_epoch"):
        ours.OneCycleLR(o, max_lr=0.1)
    s = ours.OneCycleLR(o, max_lr=0.1, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match=r"OneCycleLR: stepped 3 times for total_steps=2"):
        s.step()
    with pytest.raises(TypeError, match=r"StepLR: expected an agnostic Optimizer, got SGD"):
        ours.StepLR(torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=0.1), step_size=1)
