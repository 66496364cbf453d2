"""`agnostic.compile` on a backend: a compiled step gives the eager step's numbers, changes the same
state (parameters, gradients, buffers, optimizer state, the seed stream), and is compiled once per
signature. A backend without a compiler (`Backend.compiler is None`) runs the step eagerly and
compiles nothing; one with a compiler is checked through `Backend.trace` / `compile_traced`."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import agnostic as ag
from agnostic import nn, optim
from agnostic.conformance.support import rng

COVERS: set[str] = set()  # the compiler hooks are not op-set entries; the ops run are covered elsewhere

RTOL, ATOL = 2e-5, 1e-6  # float32; XLA may fuse and reorder within rounding


def _has_compiler(backend: ag.Device) -> bool:
    return backend.ops.compiler is not None


def _model(backend: ag.Device) -> nn.Module:
    """No bias before the batch norm: its gradient would be rounding noise, which Adam amplifies."""
    ag.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16, bias=False),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(16, 3),
        backend=backend,
    )


def _data(backend: ag.Device, n: int = 12) -> tuple[ag.Tensor, ag.Tensor]:
    r = rng(3)
    return backend.tensor(r.standard_normal((n, 6)).astype(np.float32)), backend.tensor(r.integers(0, 3, n))


def _train(backend: ag.Device, compiled: bool, make_opt: Callable[[Any], Any], steps: int = 4) -> dict:
    """Train the same seeded model eagerly or compiled; everything a step changes, on the host."""
    model = _model(backend)
    opt = make_opt(model.parameters())
    x, y = _data(backend)

    def step(x: ag.Tensor, y: ag.Tensor) -> tuple[ag.Tensor, ag.Tensor]:
        opt.zero_grad()
        logits = model(x)
        loss = ag.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss, logits.argmax(axis=1)

    fn = ag.compile(step) if compiled else step
    ag.manual_seed(7)  # the dropout masks come from here, in the same order
    losses = [fn(x, y)[0].item() for _ in range(steps)]
    state = opt.state_dict()["state"]
    return {
        "losses": np.array(losses),
        "params": {k: v.numpy() for k, v in model.state_dict().items()},
        "grads": [p.grad.numpy() for p in model.parameters()],
        "opt": {
            (i, k): np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for i, s in state.items()
            for k, v in s.items()
        },
        "next_seed": ag.random.default_generator.next_seed(),
        "fn": fn,
    }


def _assert_same(eager: dict, compiled: dict) -> None:
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=RTOL, atol=ATOL)
    for k, v in eager["params"].items():
        np.testing.assert_allclose(compiled["params"][k], v, rtol=RTOL, atol=ATOL, err_msg=k)
    for a, b in zip(compiled["grads"], eager["grads"]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg="gradients")
    assert compiled["opt"].keys() == eager["opt"].keys()
    for k, v in eager["opt"].items():
        np.testing.assert_allclose(
            compiled["opt"][k], v, rtol=RTOL, atol=ATOL, err_msg=f"optimizer state {k}"
        )
    assert compiled["next_seed"] == eager["next_seed"], "the compiled step moved the seed stream differently"


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: optim.Adam(ps, lr=0.01),
        lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True),
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        # eps well above the smallest gradients (1e-7 here): with 1e-8 centered RMSprop's update
        # is about lr * sign(g) for any g above 1e-7, and it amplified a gradient's rounding
        # (XLA's -O0 against -O2 on an Intel CPU) to 2e-5 in a parameter
        lambda ps: optim.RMSprop(ps, lr=0.01, centered=True, eps=1e-4),
        lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
    ],
    ids=["adam", "adamw-amsgrad", "sgd-nesterov", "rmsprop", "adagrad"],
)
def test_compiled_training_step_matches_the_eager_one(
    backend: ag.Device, make_opt: Callable[[Any], Any]
) -> None:
    """Dropout, batch norm's running statistics, gradients and the optimizer's state included."""
    eager = _train(backend, False, make_opt)
    compiled = _train(backend, True, make_opt)
    _assert_same(eager, compiled)
    fn = compiled["fn"]
    if _has_compiler(backend):
        assert 1 <= fn.compilations <= 2, fn.compilations  # SGD's momentum buffer appears after step 1
    else:
        assert fn.compilations == 0 and fn.traces == 0


def test_compiles_once_per_shape_and_dtype(backend: ag.Device) -> None:
    model = _model(backend).eval()
    fn = ag.compile(lambda x: model(x))
    r = rng(4)
    a, b = (backend.tensor(r.standard_normal(s).astype(np.float32)) for s in ((5, 6), (7, 6)))
    for x in (a, a, b, a, b):
        np.testing.assert_allclose(fn(x).numpy(), model(x).numpy(), rtol=RTOL, atol=ATOL)
    expected = 2 if _has_compiler(backend) else 0
    assert fn.compilations == expected
    fn(a.astype(ag.float64))  # a new dtype: one more
    assert fn.compilations == (3 if _has_compiler(backend) else 0)
    model.train()  # another mode is another program
    fn(a)
    assert fn.compilations == (4 if _has_compiler(backend) else 0)


def _loss_step(model: nn.Module, opt: Any) -> Callable[[ag.Tensor, ag.Tensor], ag.Tensor]:
    """The plain training step: zero the gradients, forward, cross-entropy, backward, update."""

    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        loss = ag.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _scheduled(backend: ag.Device, compiled: bool) -> tuple[np.ndarray, Any]:
    model = _model(backend)
    opt = optim.Adam(model.parameters(), lr=0.05)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = _data(backend)
    step = _loss_step(model, opt)
    fn = ag.compile(step) if compiled else step
    ag.manual_seed(1)
    for _ in range(4):
        fn(x, y)
        sched.step()
    return model[0].weight.numpy(), fn


def test_a_learning_rate_schedule_does_not_recompile(backend: ag.Device) -> None:
    (eager, _), (compiled, fn) = _scheduled(backend, False), _scheduled(backend, True)
    np.testing.assert_allclose(compiled, eager, rtol=RTOL, atol=ATOL)
    assert fn.compilations == (1 if _has_compiler(backend) else 0)


def _intervened(backend: ag.Device, compiled: bool) -> tuple[dict, Any]:
    """Steps with changes in between that a compiled step must see: a frozen and unfrozen layer,
    a new hyper-parameter, an eager step, a loaded optimizer state, a replaced layer and a new
    parameter group."""
    model = _model(backend)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = _data(backend)
    step = _loss_step(model, opt)
    fn = ag.compile(step) if compiled else step
    ag.manual_seed(5)
    losses = [fn(x, y).item(), fn(x, y).item()]
    saved = opt.state_dict()
    model[0].weight.requires_grad_(False)
    losses.append(fn(x, y).item())
    frozen_grad = model[0].weight.grad
    model[0].weight.requires_grad_(True)
    opt.param_groups[0]["weight_decay"] = 0.1
    losses.append(fn(x, y).item())
    losses.append(step(x, y).item())  # eager, between compiled calls
    losses.append(fn(x, y).item())
    opt.load_state_dict(saved)
    losses.append(fn(x, y).item())
    head = nn.Linear(16, 3, backend=backend)
    model.add_module("4", head)  # replaces the last layer
    opt.add_param_group({"params": list(head.parameters()), "lr": 0.05})
    losses += [fn(x, y).item(), fn(x, y).item()]
    return {
        "losses": np.array(losses),
        "frozen_grad": frozen_grad,
        "params": {k: v.numpy() for k, v in model.state_dict().items()},
        "opt": [
            np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for s in opt.state_dict()["state"].values()
            for v in s.values()
        ],
    }, fn


def test_changes_between_compiled_calls_are_seen(backend: ag.Device) -> None:
    ag.manual_seed(9)
    eager, _ = _intervened(backend, False)
    ag.manual_seed(9)
    compiled, fn = _intervened(backend, True)
    assert eager["frozen_grad"] is None and compiled["frozen_grad"] is None, "a frozen weight got a gradient"
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=RTOL, atol=ATOL)
    for k, v in eager["params"].items():
        np.testing.assert_allclose(compiled["params"][k], v, rtol=RTOL, atol=ATOL, err_msg=k)
    assert len(compiled["opt"]) == len(eager["opt"])
    for a, b in zip(compiled["opt"], eager["opt"]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg="optimizer state")
    if _has_compiler(backend):  # frozen, unfrozen + decay, new layer and group (the rest reuse one)
        assert 3 <= fn.compilations <= 5, fn.compilations


def test_a_layer_replaced_by_one_of_the_same_shape_gets_the_gradients(backend: ag.Device) -> None:
    """The same signature with other Parameter objects: the compiled step reuses its program, and
    its gradients go to the parameters the model holds now."""
    model = _model(backend).eval()
    x, _ = _data(backend)
    fn = ag.compile(lambda x: model(x).sum().backward())
    fn(x)
    old = model[4]
    model.add_module("4", nn.Linear(16, 3, backend=backend).eval())
    model.zero_grad()
    old.zero_grad()
    fn(x)
    assert old.weight.grad is None, "the replaced layer's weight got the gradient"
    model(x).sum().backward()  # eagerly: the new layer's gradient is now twice one step's
    want = model[4].weight.grad.numpy() / 2
    fn(x)
    np.testing.assert_allclose(model[4].weight.grad.numpy() / 3, want, rtol=RTOL, atol=ATOL)
    if _has_compiler(backend):
        assert fn.compilations == 2, fn.compilations  # no gradient in, then one in: same shapes after


def test_a_changed_module_setting_is_another_program(backend: ag.Device) -> None:
    """A plain attribute a layer computes with (Dropout's p, batch norm's eps) is part of the
    signature: setting it between calls is seen, as eagerly; setting it back reuses the first
    program. (In training mode the output uses the batch's statistics, not the running ones.)"""
    model = _model(backend)
    x, _ = _data(backend)
    fn = ag.compile(lambda x: model(x))
    for p, eps in ((0.2, 1e-5), (0.0, 1e-5), (0.0, 0.5), (0.2, 1e-5)):
        model[3].p, model[1].eps = p, eps
        ag.manual_seed(4)
        got = fn(x).numpy()
        ag.manual_seed(4)
        want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"p={p}, eps={eps}")
    if _has_compiler(backend):
        assert fn.compilations == 3, fn.compilations


def _counted(backend: ag.Device, compiled: bool) -> tuple[dict, Any]:
    ag.manual_seed(0)
    a, b = nn.Linear(6, 4, backend=backend), nn.Linear(6, 4, backend=backend)
    opt = optim.Adam([*a.parameters(), *b.parameters()], lr=0.01)
    x, _ = _data(backend)

    def step(use_b: bool) -> ag.Tensor:
        opt.zero_grad()
        out = a(x) + b(x) if use_b else a(x)
        loss = (out * out).mean()
        loss.backward()
        opt.step()
        return loss

    fn = ag.compile(step) if compiled else step
    losses = [fn(True).item(), fn(True).item(), fn(False).item(), step(True).item(), fn(True).item()]
    losses += [step(False).item(), fn(True).item(), fn(False).item()]
    state = opt.state_dict()["state"]
    return {
        "losses": np.array(losses),
        "params": [p.numpy() for p in [*a.parameters(), *b.parameters()]],
        "steps": [
            float(np.asarray(s["step"].numpy() if hasattr(s["step"], "numpy") else s["step"]))
            for s in state.values()
        ],
        "moments": [s["exp_avg_sq"].numpy() for s in state.values()],
    }, fn


def test_a_parameter_left_without_a_gradient_keeps_its_own_step_count(backend: ag.Device) -> None:
    """Adam counts steps per parameter, as torch.optim: one that gets no gradient is not counted.
    A compiled step keeps one count for a group while the counts agree; when they split (a step
    without one layer, compiled or eager) each parameter's count goes on by itself."""
    (eager, _), (compiled, fn) = _counted(backend, False), _counted(backend, True)
    assert eager["steps"] == [8.0, 8.0, 5.0, 5.0]
    assert compiled["steps"] == eager["steps"]
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=RTOL, atol=ATOL)
    for name in ("params", "moments"):
        for got, want in zip(compiled[name], eager[name]):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
    if _has_compiler(backend):  # with and without b, shared counts and then split ones; six calls
        assert fn.compilations <= 4, fn.compilations


def _accumulated(backend: ag.Device, compiled: bool) -> tuple[list[np.ndarray], Any]:
    model = _model(backend)
    x, y = _data(backend)

    def accumulate(x: ag.Tensor, y: ag.Tensor) -> None:
        ag.cross_entropy(model(x), y).backward()

    fn = ag.compile(accumulate) if compiled else accumulate
    ag.manual_seed(2)
    for _ in range(3):
        fn(x, y)
    return [p.grad.numpy() for p in model.parameters()], fn


def test_gradients_accumulate_across_compiled_calls(backend: ag.Device) -> None:
    """A step that only adds to .grad reads the incoming gradient: it becomes an input."""
    (eager, _), (compiled, fn) = _accumulated(backend, False), _accumulated(backend, True)
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    # the first call had no gradient to read, the next ones had one: two programs
    assert fn.compilations == (2 if _has_compiler(backend) else 0)


def test_results_are_fresh_tensors_without_a_graph(backend: ag.Device) -> None:
    w = nn.Parameter(backend.tensor(np.ones((2, 2), np.float32)))
    fn = ag.compile(lambda x: {"y": (x @ w).sum(), "same": x, "n": 3})
    out = fn(backend.tensor(np.eye(2, dtype=np.float32)))
    assert out["n"] == 3 and out["y"].item() == pytest.approx(4.0)
    if _has_compiler(backend):  # eagerly the function's own results come back as they are
        assert out["y"].grad_fn is None and not out["y"].requires_grad
    np.testing.assert_array_equal(out["same"].numpy(), np.eye(2))


def test_reading_a_value_inside_a_compiled_step_is_an_error(backend: ag.Device) -> None:
    if not _has_compiler(backend):
        pytest.skip(f"{backend.name} runs compiled steps eagerly: .item() works there")
    x = backend.tensor(np.ones(3, np.float32))
    fn = ag.compile(lambda t: t * t.sum().item())
    with pytest.raises(ag.CompileError, match=r"values are symbolic.*\.item\(\)"):
        fn(x)


def test_past_its_recompile_limit_a_step_runs_eagerly_and_says_why(backend: ag.Device) -> None:
    """A value that changes at every call (here a number argument, then Dropout's p) would be a
    new program at every call: past `recompile_limit` programs a new signature runs eagerly (the
    same numbers), one warning names what differs, and the programs kept still run compiled."""
    model = _model(backend).eval()
    x, _ = _data(backend)
    fn = ag.compile(lambda x, scale: model(x) * scale, recompile_limit=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for scale in (1.0, 2.0, 3.0, 4.0, 1.0):
            np.testing.assert_allclose(fn(x, scale).numpy(), model(x).numpy() * scale, rtol=RTOL, atol=ATOL)
    said = [str(w.message) for w in seen if issubclass(w.category, ag.RecompileWarning)]
    if not _has_compiler(backend):
        assert said == [] and fn.compilations == 0
        return
    assert len(said) == 1, said  # once, not at every eager call
    assert re.search(
        r"<lambda> reached its recompile_limit \(2 programs\).*arguments\[1\]: [12]\.0 -> 3\.0", said[0]
    )
    assert fn.compilations == 2 and fn.traces == 2  # 1.0 again: the first program

    model.train()
    fn = ag.compile(lambda x: model(x), recompile_limit=1)
    fn(x)
    model[3].p = 0.5
    with pytest.warns(ag.RecompileWarning, match=r"\(1 program\).*Dropout\.p: 0\.2 -> 0\.5"):
        ag.manual_seed(2)
        got = fn(x).numpy()
    ag.manual_seed(2)
    np.testing.assert_allclose(got, model(x).numpy(), rtol=RTOL, atol=ATOL)
    assert fn.compilations == 1


def test_bad_uses_are_named(backend: ag.Device) -> None:
    with pytest.raises(TypeError, match="compile: expected a function"):
        ag.compile(3)
    other = next((n for n in ("numpy", "torch", "jax") if n != backend.name and _available(n)), None)
    if other is None:
        pytest.skip("a second backend is needed to mix two")
    a, b = backend.tensor(np.ones(2, np.float32)), ag.backend(other).tensor(np.ones(2, np.float32))
    with pytest.raises(ag.CompileError, match="several backends"):
        ag.compile(lambda u, v: u)(a, b)
    with pytest.raises(ag.CompileError, match="neither a tensor nor hashable"):
        ag.compile(lambda u, v: u)(a, [{1}])


def _available(name: str) -> bool:
    try:
        ag.backend(name)
    except Exception:
        return False
    return True
