"""ag.amp.GradScaler against torch.amp.GradScaler("cpu"): the same tiny model, weights and data,
overflows injected at chosen steps; the scale sequence, the skipped steps and the parameters equal
torch's at every step, on every backend here. Also: state_dict (torch's keys and values), every
stage error, enabled=False, bad arguments, and scale() inside ag.compile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.functional as F
from agnostic import nn, optim
from agnostic.amp import GradScaler
from agnostic.amp.grad_scaler import GradScalerError

torch = pytest.importorskip("torch", reason="the reference is torch.amp.GradScaler (pip install torch)")

# overflows are what these tests inject: NumPy warns on inf arithmetic
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
BACKENDS = [pytest.param(d, id=d.name) for d in available_backends()]
STEPS = 14
# step -> how the step overflows: "loss" multiplies the loss by inf (every gradient inf/NaN),
# "nan" sets one gradient entry to NaN, "inf2" sets an entry of the second layer's gradient to inf
INJECT = {1: "loss", 2: "nan", 6: "inf2", 7: "loss", 11: "nan"}


def _data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((8, 4)).astype(np.float32),
        rng.standard_normal((8, 2)).astype(np.float32),
        (rng.standard_normal((3, 4)) * 0.5).astype(np.float32),
        (rng.standard_normal(3) * 0.1).astype(np.float32),
        (rng.standard_normal((2, 3)) * 0.5).astype(np.float32),
        (rng.standard_normal(2) * 0.1).astype(np.float32),
    )


def _torch_run(scaler_kw: dict, two_optimizers: bool) -> list[tuple]:
    x, y, w1, b1, w2, b2 = (torch.tensor(a) for a in _data())
    params = [torch.nn.Parameter(t.clone()) for t in (w1, b1, w2, b2)]
    opts = (
        [torch.optim.SGD(params[:2], lr=0.1), torch.optim.SGD(params[2:], lr=0.05, momentum=0.9)]
        if two_optimizers
        else [torch.optim.SGD(params, lr=0.1, momentum=0.9)]
    )
    scaler = torch.amp.GradScaler("cpu", **scaler_kw)
    out = []
    for step in range(STEPS):
        for o in opts:
            o.zero_grad()
        h = torch.tanh(x @ params[0].T + params[1])
        loss = torch.nn.functional.mse_loss(h @ params[2].T + params[3], y)
        if INJECT.get(step) == "loss":
            loss = loss * math.inf
        scaler.scale(loss).backward()
        if INJECT.get(step) == "nan":
            params[0].grad[0, 1] = math.nan
        if INJECT.get(step) == "inf2":
            params[2].grad[1, 0] = math.inf
        results = [scaler.step(o) for o in opts]
        scaler.update()
        out.append(
            (scaler.get_scale(), scaler._get_growth_tracker(), [p.detach().numpy().copy() for p in params])
        )
        assert results == [None] * len(opts)
    out.append(scaler.state_dict())
    return out


def _agnostic_run(device: ag.Device, scaler_kw: dict, two_optimizers: bool) -> list[tuple]:
    x, y, w1, b1, w2, b2 = (device.tensor(a) for a in _data())
    params = [nn.Parameter(t) for t in (w1, b1, w2, b2)]
    opts = (
        [optim.SGD(params[:2], lr=0.1), optim.SGD(params[2:], lr=0.05, momentum=0.9)]
        if two_optimizers
        else [optim.SGD(params, lr=0.1, momentum=0.9)]
    )
    scaler = GradScaler(**scaler_kw)
    out = []
    for step in range(STEPS):
        for o in opts:
            o.zero_grad()
        h = ag.tanh(x @ params[0].T + params[1])
        loss = F.mse_loss(h @ params[2].T + params[3], y)
        if INJECT.get(step) == "loss":
            loss = loss * math.inf
        scaler.scale(loss).backward()
        if INJECT.get(step) == "nan":
            g = params[0].grad.numpy().copy()
            g[0, 1] = math.nan
            params[0].grad = device.tensor(g)
        if INJECT.get(step) == "inf2":
            g = params[2].grad.numpy().copy()
            g[1, 0] = math.inf
            params[2].grad = device.tensor(g)
        for o in opts:
            assert scaler.step(o) is None
        scaler.update()
        out.append((scaler.get_scale(), scaler._get_growth_tracker(), [p.numpy().copy() for p in params]))
        assert all(p.dtype is ag.float32 for p in params)
    out.append(scaler.state_dict())
    return out


@pytest.mark.parametrize("two_optimizers", [False, True], ids=["one_opt", "two_opts"])
@pytest.mark.parametrize("device", BACKENDS)
def test_matches_torch_with_injected_overflows(device: ag.Device, two_optimizers: bool) -> None:
    kw = {"init_scale": 2.0**10, "growth_factor": 2.0, "backoff_factor": 0.25, "growth_interval": 3}
    theirs = _torch_run(kw, two_optimizers)
    ours = _agnostic_run(device, kw, two_optimizers)
    scales = [s for s, _, _ in theirs[:-1]]
    assert len(set(scales)) > 3  # the run both backs off and grows
    for step, ((s, t, ps), (ts, tt, tps)) in enumerate(zip(ours[:-1], theirs[:-1])):
        assert (s, t) == (ts, tt), f"step {step}: scale/tracker {(s, t)} vs torch {(ts, tt)}"
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p, tp, rtol=2e-6, atol=1e-7, err_msg=f"step {step}")
    assert ours[-1] == theirs[-1]
    assert {k: type(v) for k, v in ours[-1].items()} == {k: type(v) for k, v in theirs[-1].items()}


def test_update_rule_matches_torch_kernel_at_float32_limits() -> None:
    """Growth that would overflow float32 keeps the scale (and resets the count), as torch's kernel;
    odd factors round to float32 the same way."""
    for init, growth, backoff in [(2.0**126, 4.0, 0.5), (3.0, 1.7, 0.3), (1e-3, 3.3, 0.77)]:
        kw = dict(init_scale=init, growth_factor=growth, backoff_factor=backoff, growth_interval=2)
        ts, s = torch.amp.GradScaler("cpu", **kw), GradScaler(**kw)
        tp, p = torch.nn.Parameter(torch.ones(3)), nn.Parameter(ag.ones(3))
        to, o = torch.optim.SGD([tp], lr=0.0), optim.SGD([p], lr=0.0)
        for step in range(7):
            bad = step in (3, 4)
            ts.scale(tp.sum() * (math.inf if bad else 1.0)).backward()
            s.scale(p.sum() * (math.inf if bad else 1.0)).backward()
            ts.step(to), s.step(o)
            ts.update(), s.update()
            to.zero_grad(), o.zero_grad()
            assert (s.get_scale(), s._get_growth_tracker()) == (ts.get_scale(), ts._get_growth_tracker())


@pytest.mark.parametrize("device", BACKENDS)
def test_unscale_then_clip_matches_torch(device: ag.Device) -> None:
    """torch's recipe: unscale_ before reading the gradients (clipping), then step."""
    _, _, w1, *_ = _data()
    tp, p = torch.nn.Parameter(torch.tensor(w1)), nn.Parameter(device.tensor(w1))
    to, o = torch.optim.SGD([tp], lr=0.5), optim.SGD([p], lr=0.5)
    ts, s = torch.amp.GradScaler("cpu", init_scale=256.0), GradScaler(init_scale=256.0)
    ts.scale((tp**3).sum()).backward()
    s.scale((p**3).sum()).backward()
    ts.unscale_(to), s.unscale_(o)
    np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)
    assert p.grad.dtype is ag.float32
    torch.nn.utils.clip_grad_norm_([tp], 0.3)
    nn.utils.clip_grad_norm_([p], 0.3)
    ts.step(to), s.step(o)
    ts.update(), s.update()
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_scale_structures_and_devices() -> None:
    s = GradScaler(init_scale=4.0)
    a, b = ag.asarray([1.0, 2.0]), ag.asarray(3.0)
    out = s.scale({"x": [a, (b,)], "y": b})
    assert isinstance(out["x"], list) and isinstance(out["x"][1], tuple)
    np.testing.assert_array_equal(out["x"][0].numpy(), [4.0, 8.0])
    assert out["y"].item() == 12.0 and out["y"].dtype is ag.float32
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        s.scale([a, "loss"])
    for dev in available_backends()[1:]:  # the scale follows the outputs' backend
        assert s.scale(dev.tensor(2.0)).device is dev


def test_stage_errors_match_torch() -> None:
    def fresh() -> tuple:
        p = nn.Parameter(ag.ones(2))
        return p, optim.SGD([p], lr=0.1), GradScaler()

    p, o, s = fresh()
    for call in (lambda: s.unscale_(o), lambda: s.step(o), lambda: s.update()):
        with pytest.raises(
            AssertionError, match=r"but _scale is None\.  This may indicate your script did not"
        ):
            call()
    loss = s.scale(p.sum())
    with pytest.raises(GradScalerError, match="No inf checks were recorded prior to update"):
        s.update()
    with pytest.raises(AssertionError, match="No inf checks were recorded for this optimizer"):
        s.step(o)  # no gradients yet (torch's scaler stays in that iteration: so does ours)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called"):
        s.unscale_(o)
    p, o, s = fresh()
    loss = s.scale(p.sum())
    loss.backward()
    s.unscale_(o)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called on this optimizer since"):
        s.unscale_(o)
    s.step(o)
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called since the last update\(\)"):
        s.step(o)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) is being called after step\(\)"):
        s.unscale_(o)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        s.step(o, closure=lambda: p.sum())
    s.update()
    # a new iteration starts clean
    o.zero_grad()
    s.scale(p.sum()).backward()
    s.step(o)
    s.update()
    # float16 gradients: torch refuses to unscale them (the weights must stay float32)
    h = nn.Parameter(ag.ones(2, dtype=ag.float16))
    oh = optim.SGD([h], lr=0.1)
    s.scale(h.sum()).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        s.unscale_(oh)


def test_disabled_is_a_pass_through() -> None:
    p = nn.Parameter(ag.asarray([1.0, -2.0]))
    o = optim.SGD([p], lr=0.5)
    s = GradScaler(enabled=False, growth_factor=0.1)  # not checked when disabled, as torch
    loss = (p**2).sum()
    assert s.scale(loss) is loss and not s.is_enabled()
    loss.backward()
    s.unscale_(o)
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, -4.0])
    assert s.step(o) is None
    s.update()
    np.testing.assert_array_equal(p.numpy(), [0.0, 0.0])
    assert (s.get_scale(), s._get_growth_tracker(), s.state_dict()) == (1.0, 0, {})
    s.load_state_dict({})  # a no-op, as torch's
    ts = torch.amp.GradScaler("cpu", enabled=False)
    assert ts.state_dict() == s.state_dict() and ts.get_scale() == s.get_scale()


def test_state_dict_round_trip_and_torch_interchange() -> None:
    p = nn.Parameter(ag.ones(2))
    o = optim.SGD([p], lr=0.1)
    s = GradScaler(init_scale=2.0**8, growth_interval=5, backoff_factor=0.125)
    for bad in (False, True, False):
        s.scale(p.sum() * (math.inf if bad else 1.0)).backward()
        s.step(o)
        s.update()
        o.zero_grad()
    sd = s.state_dict()
    assert sd == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.125, "growth_interval": 5,
                  "_growth_tracker": 1}  # fmt: skip
    # before the first scale() (lazy, as torch) and after it
    fresh = GradScaler()
    fresh.load_state_dict(sd)
    assert fresh.state_dict() == sd
    live = GradScaler()
    live.scale(p.sum())
    live.load_state_dict(sd)
    assert live.state_dict() == sd and live.scale(ag.asarray(1.0)).item() == 32.0
    # torch's state_dict loads here, ours loads in torch
    ts = torch.amp.GradScaler("cpu")
    ts.load_state_dict(sd)
    assert ts.state_dict() == sd
    ours = GradScaler()
    ours.load_state_dict(ts.state_dict())
    assert ours.state_dict() == sd
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        GradScaler().load_state_dict({})
    with pytest.raises(KeyError, match="missing"):
        GradScaler().load_state_dict({"scale": 2.0})
    with pytest.raises(ValueError, match=r"growth factor must be > 1\.0"):
        GradScaler().load_state_dict({**sd, "growth_factor": 0.5})
    with pytest.raises(TypeError, match="must be a number"):
        GradScaler().load_state_dict({**sd, "scale": "big"})


def test_update_with_new_scale() -> None:
    p = nn.Parameter(ag.ones(2))
    o = optim.SGD([p], lr=0.1)
    s = GradScaler()
    s.scale(p.sum()).backward()
    s.step(o)
    s.update(1024.0)
    assert s.get_scale() == 1024.0 and s.scale(ag.asarray(1.0)).item() == 1024.0
    s.update(ag.asarray([0.1]))
    assert s.get_scale() == float(np.float32(0.1))
    for bad in (ag.ones(2), nn.Parameter(ag.ones(())), "big", True):
        with pytest.raises(AssertionError, match="new_scale should be a float or a 1-element tensor"):
            s.update(bad)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"growth_factor": 1.0}, "growth factor must be > 1.0"),
        ({"backoff_factor": 1.0}, "backoff factor must be in"),
        ({"backoff_factor": 0.0}, "backoff factor must be in"),
        ({"growth_interval": 0}, "growth_interval must be an int >= 1"),
        ({"growth_interval": 2.5}, "growth_interval must be an int >= 1"),
        ({"init_scale": -1.0}, "init_scale must be a finite number > 0"),
        ({"init_scale": math.inf}, "init_scale must be a finite number > 0"),
    ],
)
def test_bad_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GradScaler(**kw)


def test_setters_and_devices() -> None:
    s = GradScaler("cuda")  # torch's device type: the model's backend decides
    s.set_growth_factor(3.0)
    s.set_backoff_factor(0.2)
    s.set_growth_interval(7)
    assert (s.get_growth_factor(), s.get_backoff_factor(), s.get_growth_interval()) == (3.0, 0.2, 7)
    with pytest.raises(ValueError):
        s.set_growth_factor(0.9)
    with pytest.raises(ValueError, match="no-such-backend"):
        GradScaler("no-such-backend")
    with pytest.raises(TypeError, match="enabled must be a bool"):
        GradScaler(enabled="yes")


@pytest.mark.parametrize("device", [d for d in BACKENDS if d.values[0].ops.compiler is not None])
def test_scale_inside_compile_follows_the_scale(device: ag.Device) -> None:
    """scale() in a compiled forward/backward: the scale is an input, so a backoff is seen without a
    recompile (a constant would keep the old one)."""
    p = nn.Parameter(device.tensor([1.0, 2.0]))
    o = optim.SGD([p], lr=0.0)
    s = GradScaler(device, init_scale=8.0)

    @ag.compile
    def fwd_bwd(x: ag.Tensor) -> ag.Tensor:
        loss = (p * x).sum()
        s.scale(loss).backward()
        return loss

    x = device.tensor([1.0, 1.0])
    for step, (factor, scale) in enumerate([(1.0, 8.0), (math.inf, 8.0), (1.0, 4.0), (1.0, 4.0)]):
        fwd_bwd(x * factor)
        if factor == 1.0:
            np.testing.assert_array_equal(p.grad.numpy(), [scale, scale], err_msg=f"step {step}")
        s.step(o)
        s.update()
        o.zero_grad()
    assert fwd_bwd.compilations == 1
    # a scaler whose scale is not made yet cannot make it inside the trace: it says what to do
    late = GradScaler()

    @ag.compile
    def late_step(x: ag.Tensor) -> ag.Tensor:
        loss = (p * x).sum()
        late.scale(loss).backward()
        return loss

    with pytest.raises(Exception, match=r"GradScaler\(device=\.\.\.\)"):
        late_step(x)
