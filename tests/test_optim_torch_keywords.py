"""torch.optim's keywords on agnostic's optimizers: `foreach`, `fused`, `capturable` (accepted, same
steps as torch), `differentiable` (refused), `maximize`, Adam's `decoupled_weight_decay`, the group
keys torch keeps (so torch's optimizer state_dicts load), and parameters given by name."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim

torch = pytest.importorskip("torch", reason="the reference is torch.optim (pip install torch)")

BACKENDS = available_backends()

CASES = {
    "sgd_fused": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, fused=True, maximize=True)),
    "sgd_foreach": (optim.SGD, torch.optim.SGD, dict(lr=0.05, foreach=True, differentiable=False)),
    "adam_fused": (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, fused=True, capturable=True)),
    "adam_decoupled": (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.3, decoupled_weight_decay=True, foreach=False)),
    "adamw_fused_max": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, fused=True, maximize=True, amsgrad=True)),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, foreach=True, maximize=True)),
    "adagrad": (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, fused=True, maximize=True)),
}  # fmt: skip


def _torch_steps(make, kwargs, w0, b0, x, steps):
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    opt = make([{"params": [w]}, {"params": [b], "lr": kwargs["lr"] / 2}], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (torch.tanh(torch.tensor(x) @ w.T + b) ** 2).sum().backward()
        opt.step()
    return w.detach().numpy(), b.detach().numpy(), opt


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_torch_keywords_give_torch_steps(backend: ag.Device, case: str) -> None:
    ours_cls, torch_cls, kwargs = CASES[case]
    r = np.random.default_rng(0)
    w0, b0, x = r.standard_normal((3, 4)), r.standard_normal(3), r.standard_normal((5, 4))
    lin = nn.Linear(4, 3, backend=backend).to(dtype=ag.float64)
    lin.load_state_dict({"weight": w0, "bias": b0})
    opt = ours_cls([{"params": [lin.weight]}, {"params": [lin.bias], "lr": kwargs["lr"] / 2}], **kwargs)
    xt = backend.tensor(x, dtype=ag.float64)
    for _ in range(4):
        opt.zero_grad()
        (ag.tanh(lin(xt)) ** 2).sum().backward()
        opt.step()
    want_w, want_b, theirs = _torch_steps(torch_cls, kwargs, w0, b0, x, 4)
    np.testing.assert_allclose(lin.weight.numpy(), want_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lin.bias.numpy(), want_b, rtol=1e-10, atol=1e-12)
    ours_groups = opt.state_dict()["param_groups"]
    theirs_groups = theirs.state_dict()["param_groups"]
    assert [sorted(g) for g in ours_groups] == [sorted(g) for g in theirs_groups]
    # the per-parameter state: the same entries under the same names (none for plain SGD)
    layout = {i: sorted(s) for i, s in opt.state_dict()["state"].items()}
    assert layout == {i: sorted(s) for i, s in theirs.state_dict()["state"].items()}
    for g_ours, g_theirs in zip(ours_groups, theirs_groups):
        for key in ("foreach", "fused", "capturable", "differentiable", "maximize", "decoupled_weight_decay"):
            assert g_ours.get(key) == g_theirs.get(key), key


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_torch_optimizer_state_dict_loads(backend: ag.Device) -> None:
    """A torch AdamW's state_dict (with its fused/foreach/... group keys) continues in agnostic."""
    r = np.random.default_rng(1)
    w0, b0, x = r.standard_normal((3, 4)), r.standard_normal(3), r.standard_normal((5, 4))
    _, _, theirs = _torch_steps(torch.optim.AdamW, dict(lr=0.01, fused=True), w0, b0, x, 2)
    w1, b1 = (p.detach().numpy() for g in theirs.param_groups for p in g["params"])
    lin = nn.Linear(4, 3, backend=backend).to(dtype=ag.float64)
    lin.load_state_dict({"weight": w1, "bias": b1})
    opt = optim.AdamW([{"params": [lin.weight]}, {"params": [lin.bias], "lr": 0.005}], lr=0.01)
    opt.load_state_dict(theirs.state_dict())
    assert opt.param_groups[0]["fused"] is True
    xt = backend.tensor(x, dtype=ag.float64)
    opt.zero_grad()
    (ag.tanh(lin(xt)) ** 2).sum().backward()
    opt.step()
    theirs.zero_grad()
    w, b = theirs.param_groups[0]["params"][0], theirs.param_groups[1]["params"][0]
    (torch.tanh(torch.tensor(x) @ w.T + b) ** 2).sum().backward()
    theirs.step()
    np.testing.assert_allclose(lin.weight.numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_named_parameters_as_params() -> None:
    """torch accepts `model.named_parameters()` and keeps the names in the groups."""
    lin = nn.Linear(2, 2)
    tlin = torch.nn.Linear(2, 2)
    ours = optim.SGD(lin.named_parameters(), lr=0.1)
    theirs = torch.optim.SGD(tlin.named_parameters(), lr=0.1)
    assert ours.param_groups[0]["params"] == [lin.weight, lin.bias]
    assert ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]


def test_refused_keywords() -> None:
    p = [nn.Parameter(ag.zeros(2))]
    tp = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(RuntimeError, match=r"AdamW: `fused` and `foreach` cannot be `True` together\."):
        optim.AdamW(p, fused=True, foreach=True)
    with pytest.raises(RuntimeError, match=r"`fused` and `foreach` cannot be `True` together\."):
        torch.optim.AdamW(tp, fused=True, foreach=True)
    with pytest.raises(NotImplementedError, match="SGD: differentiable=True is not supported"):
        optim.SGD(p, differentiable=True)
    with pytest.raises(NotImplementedError, match="Adam: differentiable=True is not supported"):
        optim.Adam([{"params": p, "differentiable": True}])
    for ours, theirs in ((optim.RMSprop, torch.optim.RMSprop), (optim.SGD, torch.optim.SGD)):
        with pytest.raises(TypeError):
            theirs(tp, capturable=True) if theirs is torch.optim.SGD else theirs(tp, fused=True)
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            ours(p, capturable=True) if ours is optim.SGD else ours(p, fused=True)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_capturable_changes_nothing(backend: ag.Device) -> None:
    """torch honours `capturable=True` only on accelerators (CUDA graphs); agnostic accepts it on
    every backend, and the steps are those without it."""
    results = []
    for capturable in (False, True):
        lin = nn.Linear(3, 2, backend=backend)
        lin.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})
        opt = optim.RMSprop(lin.parameters(), lr=0.1, momentum=0.5, capturable=capturable)
        for _ in range(3):
            opt.zero_grad()
            (lin(backend.tensor(np.arange(3.0).astype(np.float32))) ** 2).sum().backward()
            opt.step()
        results.append(lin.weight.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.allclose(results[0], 1.0)
