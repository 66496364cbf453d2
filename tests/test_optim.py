"""agnostic.optim against torch.optim: the same parameters and gradients give the same parameters
after several steps (float64), on every backend; groups, state_dict round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim

torch = pytest.importorskip("torch", reason="the reference is torch.optim (pip install torch)")


BACKENDS = available_backends()

CASES = {
    "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum_wd": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov_max": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    "adam": (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    "adam_wd_amsgrad": (optim.Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    "adamw": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    "adamw_amsgrad_max": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.5, amsgrad=True, maximize=True)),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    "rmsprop_centered_momentum_wd": (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1)),
    "adagrad": (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    "adagrad_decay_wd_init": (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5)),
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
def test_lion_matches_the_papers_update(backend: ag.Device) -> None:
    r = np.random.default_rng(5)
    w0, x = r.standard_normal((3, 4)), r.standard_normal((5, 4))
    w = nn.Parameter(backend.tensor(w0, dtype=ag.float64))
    opt = optim.Lion([w], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    ref, m = w0.copy(), np.zeros_like(w0)
    xt = backend.tensor(x, dtype=ag.float64)
    for _ in range(5):
        opt.zero_grad()
        (ag.tanh(xt @ w.T) ** 2).sum().backward()
        t = np.tanh(x @ ref.T)
        g = (2 * t * (1 - t**2)).T @ x  # d/dW sum(tanh(x W^T)^2)
        np.testing.assert_allclose(w.grad.numpy(), g, rtol=1e-12, atol=1e-12)
        opt.step()
        ref = ref * (1 - 0.01 * 0.1) - 0.01 * np.sign(0.9 * m + 0.1 * g)
        m = 0.99 * m + 0.01 * g
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-12, atol=1e-12)


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


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_clip_grad_norm_and_value_match_torch(backend: ag.Device, norm_type: float) -> None:
    from agnostic.nn.utils import clip_grad_norm_, clip_grad_value_

    r = np.random.default_rng(6)
    grads = [r.standard_normal((3, 4)), r.standard_normal(3)]
    ours = [nn.Parameter(backend.tensor(np.zeros_like(g), dtype=ag.float64)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = backend.tensor(g, dtype=ag.float64), torch.tensor(g)
    total = clip_grad_norm_(ours, 0.5, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), want.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)
    clip_grad_value_(ours, 0.01)
    torch.nn.utils.clip_grad_value_(theirs, 0.01)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_clipping_errors() -> None:
    from agnostic.nn.utils import clip_grad_norm_, clip_grad_value_

    p = nn.Parameter(ag.ones(2))
    p.grad = ag.asarray([float("inf"), 1.0])
    with pytest.raises(
        RuntimeError, match=r"clip_grad_norm_: the total norm of order 2.0 of the gradients is non-finite"
    ):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match=r"clip_grad_value_: clip_value must be >= 0, got -1"):
        clip_grad_value_([p], -1)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_gradient_accumulation_over_micro_batches_equals_one_big_batch(backend: ag.Device) -> None:
    """backward() adds into .grad: four micro-batches of 2 (each loss scaled by 1/4) give the update
    of one batch of 8, as in PyTorch."""
    r = np.random.default_rng(7)
    x, y = r.standard_normal((8, 4)), r.integers(0, 3, 8)

    def build() -> tuple[nn.Linear, optim.SGD]:
        lin = nn.Linear(4, 3, backend=backend).to(dtype=ag.float64)
        lin.load_state_dict({"weight": np.full((3, 4), 0.1), "bias": np.zeros(3)})
        return lin, optim.SGD(lin.parameters(), lr=0.3, momentum=0.9)

    big, opt_big = build()
    small, opt_small = build()
    xt, yt = backend.tensor(x, dtype=ag.float64), backend.tensor(y)
    for _ in range(3):
        opt_big.zero_grad()
        ag.cross_entropy(big(xt), yt).backward()
        opt_big.step()
        opt_small.zero_grad()
        for i in range(0, 8, 2):
            (ag.cross_entropy(small(xt[i : i + 2]), yt[i : i + 2]) / 4).backward()
        opt_small.step()
    np.testing.assert_allclose(small.weight.numpy(), big.weight.numpy(), rtol=1e-12, atol=1e-14)
