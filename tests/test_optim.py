"""agnostic.optim against torch.optim: the same parameters and gradients give the same parameters
after several steps (float64), on every backend; groups, state_dict round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import nn, optim
from agnostic.backends import BackendUnavailable, backend_names

torch = pytest.importorskip("torch", reason="the reference is torch.optim (pip install torch)")


def _available() -> list[ag.Device]:
    found = []
    for name in backend_names():
        try:
            found.append(ag.backend(name))
        except (BackendUnavailable, ImportError, ValueError):
            continue
    return found


BACKENDS = _available()

CASES = {
    "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum_wd": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov_max": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    "adam": (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    "adam_wd_amsgrad": (optim.Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    "adamw": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    "adamw_amsgrad_max": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.5, amsgrad=True, maximize=True)),
}  # fmt: skip


def _run_torch(make, kwargs, w0, b0, x, steps):
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    opt = make([{"params": [w]}, {"params": [b], "lr": kwargs["lr"] / 2}], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = (torch.tanh(torch.tensor(x) @ w.T + b) ** 2).sum()
        loss.backward()
        opt.step()
    return w.detach().numpy(), b.detach().numpy()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_steps_match_torch(backend: ag.Device, case: str) -> None:
    ours_cls, torch_cls, kwargs = CASES[case]
    r = np.random.default_rng(0)
    w0, b0, x = r.standard_normal((3, 4)), r.standard_normal(3), r.standard_normal((5, 4))
    lin = nn.Linear(4, 3, backend=backend).to(dtype=ag.float64)
    lin.load_state_dict({"weight": w0, "bias": b0})
    opt = ours_cls([{"params": [lin.weight]}, {"params": [lin.bias], "lr": kwargs["lr"] / 2}], **kwargs)
    xt = backend.tensor(x, dtype=ag.float64)
    for _ in range(6):
        opt.zero_grad()
        (ag.tanh(lin(xt)) ** 2).sum().backward()
        opt.step()
    want_w, want_b = _run_torch(torch_cls, kwargs, w0, b0, x, 6)
    np.testing.assert_allclose(lin.weight.numpy(), want_w, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(lin.bias.numpy(), want_b, rtol=1e-11, atol=1e-12)
    assert lin.weight.device is backend


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_state_dict_round_trip_resumes_exactly(backend: ag.Device) -> None:
    def build():
        ag.manual_seed(3)
        model = nn.Linear(4, 2, backend=backend)
        return model, optim.Adam(model.parameters(), lr=0.05, amsgrad=True)

    x = backend.randn(8, 4, seed=1)

    def train(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()

    model, opt = build()
    train(model, opt, 6)
    reference = model.weight.numpy().copy()
    model2, opt2 = build()
    train(model2, opt2, 3)
    saved_model, saved_opt = model2.state_dict(), opt2.state_dict()
    assert sorted(saved_opt["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert saved_opt["param_groups"][0]["params"] == [0, 1]
    model3, opt3 = build()
    model3.load_state_dict(saved_model)
    opt3.load_state_dict(saved_opt)
    train(model3, opt3, 3)
    np.testing.assert_array_equal(model3.weight.numpy(), reference)


def test_parameters_without_gradient_are_left_alone_and_zero_grad_clears() -> None:
    a, b = nn.Parameter(ag.ones(2)), nn.Parameter(ag.ones(2))
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    (a * 3.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), [-0.5, -0.5])
    np.testing.assert_array_equal(b.numpy(), [1.0, 1.0])
    assert id(b) not in opt.state
    opt.zero_grad()
    assert a.grad is None


def test_bad_arguments_are_named() -> None:
    p = nn.Parameter(ag.ones(2))
    with pytest.raises(ValueError, match=r"SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: lr must be >= 0, got -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match=r"SGD: nesterov needs momentum > 0 and dampening = 0"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: betas must be in \[0, 1\), got \(0.9, 1.0\)"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match=r"Adam: expected Parameters, got Tensor"):
        optim.Adam([ag.ones(2)])
    with pytest.raises(ValueError, match=r"AdamW: a parameter appears in more than one parameter group"):
        optim.AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match=r"SGD: unknown options \['betas'\]"):
        optim.SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: the saved groups have \[2\] parameters"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]})
