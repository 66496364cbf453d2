"""`ag.autocast`: the policy table (which op runs in which dtype) on every backend, against
torch.autocast on the same model; master weights (float32 gradients); `ag.compile` under autocast;
`Module.to(dtype="bfloat16")` inference; the context semantics (nesting, decorator, threads, tasks)
and the errors a user sees."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import agnostic as ag
import agnostic.functional as F
from agnostic import nn
from agnostic.autocast import FLOAT32, LOW, POLICY
from agnostic.backends import BackendUnavailable

NAMES = ["numpy", "torch", "jax", "cupy"]


@pytest.fixture(params=NAMES)
def dev(request: pytest.FixtureRequest) -> ag.Device:
    try:
        return ag.backend(request.param)
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(f"backend {request.param!r} cannot run here: {exc}")


def _t(dev: ag.Device, shape: tuple[int, ...], dtype: Any = ag.float32, seed: int = 0) -> ag.Tensor:
    rng = np.random.default_rng(seed)
    return dev.tensor(rng.normal(size=shape).astype(np.float32)).astype(dtype)


def _labels(dev: ag.Device, n: int, classes: int) -> ag.Tensor:
    return dev.tensor(np.arange(n) % classes)


# every op of the policy table, called on inputs of dtype `d` (name -> call)
def _calls(dev: ag.Device, d: Any) -> dict[str, Callable[[], ag.Tensor]]:
    a, b = _t(dev, (4, 8), d), _t(dev, (8, 3), d, 1)
    img, k = _t(dev, (1, 2, 5, 5), d), _t(dev, (3, 2, 3, 3), d, 2)
    q = _t(dev, (1, 2, 4, 8), d)
    w8, b8 = _t(dev, (8,), d, 3), _t(dev, (8,), d, 4)
    chan = _t(dev, (4, 4, 3), d)
    probs = F.sigmoid(_t(dev, (4, 8), d, 5))
    target = _t(dev, (4, 8), d, 6)
    logp = F.log_softmax(a.astype(ag.float32)).astype(d)
    y = _labels(dev, 4, 8)
    return {
        "matmul": lambda: ag.matmul(a, b),
        "tensordot": lambda: ag.tensordot(a, b, axes=1),
        "vecdot": lambda: ag.vecdot(a, a),
        "einsum": lambda: ag.einsum("ij,jk->ik", a, b),
        "linear": lambda: F.linear(a, b.T, b8[:3]),
        "conv": lambda: F.conv2d(img, k, b8[:3], padding=1),
        "conv_transpose": lambda: F.conv_transpose2d(img, ag.permute_dims(k, (1, 0, 2, 3))),
        "scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True),
        "softmax": lambda: F.softmax(a),
        "log_softmax": lambda: F.log_softmax(a),
        "layer_norm": lambda: F.layer_norm(a, 8, w8, b8),
        "group_norm": lambda: F.group_norm(chan, 2, w8[:4], b8[:4]),
        "rms_norm": lambda: F.rms_norm(a, 8, w8),
        "batch_norm": lambda: F.batch_norm(chan, None, None, w8[:4], b8[:4], training=True),
        "cross_entropy": lambda: F.cross_entropy(a, y),
        "nll_loss": lambda: F.nll_loss(logp, y),
        "mse_loss": lambda: F.mse_loss(a, target),
        "l1_loss": lambda: F.l1_loss(a, target),
        "smooth_l1_loss": lambda: F.smooth_l1_loss(a, target),
        "huber_loss": lambda: F.huber_loss(a, target),
        "binary_cross_entropy": lambda: F.binary_cross_entropy(probs, F.sigmoid(target)),
        "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(a, probs),
        "kl_div": lambda: F.kl_div(logp, probs, reduction="batchmean"),
        "sum": lambda: ag.sum(a),
        "prod": lambda: ag.prod(w8),
        "mean": lambda: ag.mean(a, axis=0),
        "var": lambda: ag.var(a, axis=1),
        "std": lambda: ag.std(a),
        "cumulative_sum": lambda: ag.cumulative_sum(a, axis=1),
        "cumulative_prod": lambda: ag.cumulative_prod(w8),
        "logsumexp": lambda: ag.logsumexp(a, axis=1),
    }


def test_every_policy_entry_is_tested() -> None:
    dev = ag.backend("numpy")
    assert set(_calls(dev, ag.float32)) == set(POLICY)
    assert set(POLICY.values()) == {LOW, FLOAT32}


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
def test_policy_table(dev: ag.Device, low: str) -> None:
    """Low ops on float32 inputs give the autocast dtype; float32 ops on inputs of the autocast
    dtype give float32; enabled=False inside (and outside any block) runs the inputs' dtype."""
    if dev.name == "cupy" and low == "bfloat16":
        pytest.skip("CuPy has no bfloat16")
    low_d = ag.float16 if low == "float16" else ag.bfloat16
    f32_calls, low_calls = _calls(dev, ag.float32), _calls(dev, low_d)
    for op, policy in POLICY.items():
        calls = f32_calls if policy == LOW else low_calls
        with ag.autocast(low):
            got = calls[op]()
            with ag.autocast(enabled=False):
                off = calls[op]()
        expected = low_d if policy == LOW else ag.float32
        assert got.dtype == expected, f"{op} under autocast({low}) on {dev.name}: {got.dtype}"
        assert off.dtype == (ag.float32 if policy == LOW else low_d), f"{op} with enabled=False"
        assert calls[op]().dtype == off.dtype, f"{op} outside autocast"


def test_values_under_autocast_match_a_cast_by_hand(dev: ag.Device) -> None:
    """A low op equals the same op on inputs cast by hand; a float32 op equals it on float32."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    a, b = _t(dev, (4, 8)), _t(dev, (8, 3), seed=1)
    with ag.autocast("bfloat16"):
        got = ag.matmul(a, b)
        soft = F.softmax(got)
    want = ag.matmul(a.astype(ag.bfloat16), b.astype(ag.bfloat16))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    with ag.autocast("float16"):  # the other low dtype is cast too (torch's eligibility)
        assert ag.matmul(a.astype(ag.bfloat16), b).dtype == ag.float16
    np.testing.assert_allclose(soft.numpy(), F.softmax(want.astype(ag.float32)).numpy(), rtol=1e-6)


def test_float64_integer_and_complex_inputs_are_not_cast(dev: ag.Device) -> None:
    """As torch: float64 is an explicit request for precision and never autocasts; integer and
    complex tensors are not floating point."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    a64 = _t(dev, (3, 3), ag.float64)
    i = dev.tensor(np.arange(9).reshape(3, 3))
    with ag.autocast("bfloat16"):
        assert ag.matmul(a64, a64).dtype == ag.float64
        assert F.linear(a64, a64).dtype == ag.float64
        assert ag.matmul(i, i).dtype == i.dtype
        assert ag.sum(i).dtype == ag.int64
        assert F.softmax(a64).dtype == ag.float64
        assert ag.sum(a64.astype(ag.bfloat16), dtype=ag.bfloat16).dtype == ag.bfloat16  # dtype= wins
        c = a64.astype(ag.complex128)
        assert ag.matmul(c, c).dtype == ag.complex128


# ---------------------------------------------------------------------- against torch.autocast
def _models(seed: int = 0) -> tuple[Any, Any]:
    """A small conv + attention + norm network in agnostic (numpy) and in torch, same weights."""
    torch = pytest.importorskip("torch")

    class Ours(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.proj = nn.Linear(64, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.norm = nn.LayerNorm(8)
            self.head = nn.Linear(8, 5)

    class Theirs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.proj = torch.nn.Linear(64, 8)
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.norm = torch.nn.LayerNorm(8)
            self.head = torch.nn.Linear(8, 5)

    ag.random.manual_seed(seed)
    ours, theirs = Ours(), Theirs()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()})
    return ours, theirs


def _forward(m: Any, x: Any, y: Any, lib: Any, f: Any, seen: dict[str, Any]) -> Any:
    """conv -> relu -> rows of 64 -> linear -> attention (+ residual) -> layer_norm -> linear ->
    softmax and cross_entropy; `seen` gets each layer's output dtype name."""
    h = m.conv(x)
    seen["conv"] = h
    h = f.relu(h).reshape(x.shape[0], 4, 64)
    h = m.proj(h)
    seen["linear"] = h
    a = m.attn(h, h, h, need_weights=False)[0]
    seen["attention"] = a
    r = h.float() + a if lib == "torch" else h.astype(ag.float32) + a
    n = m.norm(r)
    seen["layer_norm"] = n
    logits = m.head(n).reshape(-1, 5)
    seen["head"] = logits
    seen["softmax_f32"] = f.softmax(logits.float() if lib == "torch" else logits.astype(ag.float32), -1)
    loss = f.cross_entropy(logits, y)
    seen["loss"] = loss
    return loss


def test_layer_dtypes_and_values_agree_with_torch_autocast(dev: ag.Device) -> None:
    """The same network under torch.autocast("cpu", bfloat16) and ag.autocast("bfloat16"): every
    layer's output dtype agrees, values and float32 gradients are close. (torch's CPU list leaves
    softmax and layer_norm of a bfloat16 input in bfloat16 where its CUDA list and agnostic use
    float32; here their inputs are float32, as in a transformer's residual stream, so all agree.)"""
    torch = pytest.importorskip("torch")
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    ours, theirs = _models()
    ours.to(dev)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 1, 8, 8)).astype(np.float32), np.arange(8) % 5
    seen_ours: dict[str, Any] = {}
    seen_theirs: dict[str, Any] = {}
    with ag.autocast("bfloat16"):
        loss = _forward(ours, dev.tensor(x), dev.tensor(y), "ag", F, seen_ours)
    loss.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t_loss = _forward(
            theirs, torch.from_numpy(x), torch.from_numpy(y), "torch", torch.nn.functional, seen_theirs
        )
    t_loss.backward()
    for name in seen_theirs:
        a, t = seen_ours[name], seen_theirs[name]
        assert a.dtype.name == str(t.dtype).removeprefix("torch."), name
        np.testing.assert_allclose(
            a.astype(ag.float32).numpy(), t.float().detach().numpy(), rtol=0.05, atol=0.05, err_msg=name
        )
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == ag.float32 and grads[name].grad.dtype == torch.float32
        g, tg = p.grad.numpy(), grads[name].grad.numpy()
        assert np.abs(g - tg).max() <= 0.05 * np.abs(tg).max() + 1e-3, name


def test_softmax_and_layer_norm_follow_the_cuda_list() -> None:
    """Where torch's CPU and CUDA lists differ (softmax, log_softmax, layer_norm, group_norm of a
    low-precision input), agnostic takes the CUDA list's float32 on every backend."""
    torch = pytest.importorskip("torch")
    x = _t(ag.backend("numpy"), (2, 8), ag.bfloat16)
    with ag.autocast("bfloat16"):
        assert F.softmax(x).dtype == F.layer_norm(x, 8).dtype == ag.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the CPU list: the input's dtype
        assert torch.softmax(torch.zeros(2, 8, dtype=torch.bfloat16), -1).dtype == torch.bfloat16


# ---------------------------------------------------------------------- master weights
class _LM(nn.Module):
    def __init__(self, dev: ag.Device) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 16, backend=dev)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, backend=dev)
        self.enc = nn.TransformerEncoder(layer, 1)
        self.head = nn.Linear(16, 16, backend=dev)

    def forward(self, t: ag.Tensor) -> ag.Tensor:
        return self.head(self.enc(self.emb(t), is_causal=False)).reshape(-1, 16)


def _cnn(dev: ag.Device) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, backend=dev), nn.BatchNorm2d(4, backend=dev), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 10, backend=dev),
    )  # fmt: skip


def _data(dev: ag.Device, kind: str) -> tuple[ag.Tensor, ag.Tensor]:
    rng = np.random.default_rng(1)
    if kind == "cnn":
        return dev.tensor(rng.normal(size=(8, 1, 8, 8)).astype(np.float32)), _labels(dev, 8, 10)
    return dev.tensor(rng.integers(0, 16, (2, 5))), _labels(dev, 10, 16)


def _model(dev: ag.Device, kind: str) -> nn.Module:
    ag.random.manual_seed(0)
    return _cnn(dev) if kind == "cnn" else _LM(dev)


@pytest.mark.parametrize("kind", ["cnn", "lm"])
def test_master_weights_get_float32_gradients(dev: ag.Device, kind: str) -> None:
    """Parameters stay float32 and every gradient arrives in float32, close to the float32 run's."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    model = _model(dev, kind)
    x, y = _data(dev, kind)
    F.cross_entropy(model(x), y).backward()
    want = {n: p.grad.numpy() for n, p in model.named_parameters()}
    model.zero_grad()
    with ag.autocast("bfloat16"):
        loss = F.cross_entropy(model(x), y)
    assert loss.dtype == ag.float32
    loss.backward()
    scale = max(np.abs(g).max() for g in want.values())  # (the conv bias before batch norm gets ~0)
    for name, p in model.named_parameters():
        assert p.dtype == ag.float32 and p.grad is not None and p.grad.dtype == ag.float32, name
        assert np.abs(p.grad.numpy() - want[name]).max() <= 0.05 * scale, name


# ---------------------------------------------------------------------- ag.compile
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_compiled_step_under_autocast(name: str) -> None:
    """A compiled step under autocast gives the eager autocast step's loss and gradients; called
    with and without autocast it is two programs, and enabled=False reuses the float32 one."""
    try:
        dev = ag.backend(name)
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(str(exc))
    model = _model(dev, "lm")
    x, y = _data(dev, "lm")

    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def run(fn: Callable[..., ag.Tensor], low: bool) -> tuple[float, dict[str, np.ndarray]]:
        model.zero_grad()
        with ag.autocast("bfloat16", enabled=low):
            loss = fn(x, y)
        return float(loss), {n: p.grad.numpy() for n, p in model.named_parameters()}

    compiled = ag.compile(step)
    for low in (True, False):
        eager_loss, eager_grads = run(step, low)
        loss, grads = run(compiled, low)
        assert abs(loss - eager_loss) <= 2e-2 * abs(eager_loss)
        for n, g in grads.items():
            assert np.abs(g - eager_grads[n]).max() <= 0.05 * (np.abs(eager_grads[n]).max() + 1e-3), n
    assert compiled.compilations == 2
    run(compiled, True)
    model.zero_grad()
    with ag.autocast("bfloat16"), ag.autocast(enabled=False):
        compiled(x, y)
    assert compiled.compilations == 2


def test_autocast_entered_inside_a_compiled_step() -> None:
    """A block inside the step is traced into the program: one compilation, low outputs."""
    try:
        dev = ag.backend("torch")
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(str(exc))
    lin = nn.Linear(4, 4, backend=dev)

    @ag.compile
    def step(x: ag.Tensor) -> tuple[ag.Tensor, ag.Tensor]:
        with ag.autocast("bfloat16"):
            y = lin(x)
            total = y.sum()
        return y, total

    x = _t(dev, (2, 4))
    for _ in range(2):
        y, total = step(x)
    assert (y.dtype, total.dtype, step.compilations) == (ag.bfloat16, ag.float32, 1)
    np.testing.assert_allclose(total.numpy(), float(lin(x).sum()), rtol=2e-2, atol=2e-2)


def test_recompile_warning_names_the_autocast_dtype() -> None:
    try:
        dev = ag.backend("torch")
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(str(exc))
    lin = nn.Linear(4, 4, backend=dev)
    step = ag.compile(lambda x: lin(x).sum(), recompile_limit=1)
    x = _t(dev, (2, 4))
    step(x)
    with pytest.warns(ag.compilation.RecompileWarning, match="autocast dtype"):
        with ag.autocast("float16"):
            step(x)


# ---------------------------------------------------------------------- Module.to(dtype=...)
def _mlp(dev: ag.Device) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128, backend=dev), nn.GELU(), nn.Linear(128, 128, backend=dev), nn.ReLU(),
        nn.Linear(128, 10, backend=dev),
    )  # fmt: skip


def _encoder(dev: ag.Device) -> nn.Module:
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True, backend=dev)
    return nn.TransformerEncoder(layer, 2)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "encoder"])
def test_bfloat16_inference(dev: ag.Device, kind: str) -> None:
    """model.to(dtype="bfloat16") runs end to end in bfloat16 and matches the float32 model within
    bfloat16's precision (8 bits of mantissa)."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    ag.random.manual_seed(0)
    model = {"mlp": _mlp, "cnn": _cnn, "encoder": _encoder}[kind](dev)
    shape = {"mlp": (16, 64), "cnn": (8, 1, 8, 8), "encoder": (4, 10, 64)}[kind]
    x = _t(dev, shape)
    if kind == "cnn":
        model(x)  # running statistics that are not the defaults
    model.eval()
    want = model(x).numpy()
    model.to(dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {ag.bfloat16}
    got = model(x.astype(ag.bfloat16))
    assert got.dtype == ag.bfloat16
    err = np.abs(got.numpy().astype(np.float32) - want).max() / np.abs(want).max()
    assert err < 0.03, err


def test_bfloat16_reductions_accumulate_in_float32(dev: ag.Device) -> None:
    """A sum of 4096 bfloat16 ones is 4096 on every backend (ml_dtypes alone gives 256)."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    ones = ag.ones((4096,), dtype=ag.bfloat16, device=dev)
    assert float(ag.sum(ones)) == 4096.0 and float(ag.mean(ones)) == 1.0
    assert float(ag.cumulative_sum(ones)[-1]) == 4096.0
    r = ag.arange(1024, device=dev).astype(ag.bfloat16)
    np.testing.assert_allclose(float(ag.var(r)), np.arange(1024).var(), rtol=1e-2)
    np.testing.assert_allclose(float(ag.logsumexp(ag.zeros_like(ones))), np.log(4096), rtol=1e-2)


# ---------------------------------------------------------------------- the context
def test_state_nesting_and_exports() -> None:
    assert ag.amp.autocast is ag.autocast
    assert not ag.is_autocast_enabled() and ag.get_autocast_dtype() is None
    with ag.autocast("bfloat16") as cm:
        assert cm.dtype == ag.bfloat16
        assert ag.get_autocast_dtype() == ag.bfloat16
        with ag.autocast(ag.float16):
            assert ag.get_autocast_dtype() == ag.float16
            with ag.autocast(enabled=False):
                assert not ag.is_autocast_enabled() and ag.get_autocast_dtype() is None
            assert ag.get_autocast_dtype() == ag.float16
        assert ag.is_autocast_enabled() and ag.get_autocast_dtype() == ag.bfloat16
    assert not ag.is_autocast_enabled()
    with pytest.raises(RuntimeError), ag.autocast():
        raise RuntimeError("restored on an exception too")
    assert not ag.is_autocast_enabled()


def test_decorator_gets_a_fresh_state_per_call() -> None:
    @ag.autocast("float16")
    def inner(depth: int) -> list[Any]:
        seen = [ag.get_autocast_dtype()]
        if depth:
            with ag.autocast(enabled=False):
                seen.append(ag.get_autocast_dtype())
                seen += inner(depth - 1)
            seen.append(ag.get_autocast_dtype())
        return seen

    assert inner(2) == [ag.float16, None, ag.float16, None, ag.float16, ag.float16, ag.float16]
    assert ag.get_autocast_dtype() is None


def test_threads_and_tasks_are_isolated() -> None:
    """Two threads whose blocks overlap: each sees its own state, and both restore exactly."""
    inside, outside = threading.Barrier(2), threading.Barrier(2)
    seen: dict[str, Any] = {}

    def worker(name: str, dtype: Any) -> None:
        with ag.autocast(dtype) if dtype else contextlib.nullcontext():
            inside.wait()
            seen[name] = ag.get_autocast_dtype()
            outside.wait()
        seen[name + " after"] = ag.get_autocast_dtype()

    threads = [threading.Thread(target=worker, args=a) for a in (("a", "bfloat16"), ("b", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": ag.bfloat16, "b": None, "a after": None, "b after": None}

    async def task(dtype: str | None) -> Any:
        if dtype is None:
            await asyncio.sleep(0.01)
            return ag.get_autocast_dtype()
        with ag.autocast(dtype):
            await asyncio.sleep(0.01)
            return ag.get_autocast_dtype()

    async def both() -> list[Any]:
        return await asyncio.gather(task("float16"), task(None), task("bfloat16"))

    assert asyncio.run(both()) == [ag.float16, None, ag.bfloat16]


@pytest.mark.parametrize("bad", ["float32", ag.float32, ag.float64, "int8", "cpu", "cuda", np.float32, None])
def test_bad_dtype_names_the_accepted_ones(bad: Any) -> None:
    with pytest.raises(
        ValueError, match=re.escape("'bfloat16', 'float16', ag.bfloat16 or ag.float16")
    ) as info:
        ag.autocast(bad)
    if bad in ("cpu", "cuda"):
        assert "device_type" in str(info.value)
    if bad in ("float32", ag.float32, np.float32):
        assert "enabled=False" in str(info.value)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        ag.autocast("bfloat16", enabled="yes")


def test_compat_torch_autocast_takes_torchs_signature() -> None:
    """Ported code: `torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None)`,
    bfloat16 by default on "cpu" and float16 elsewhere, as torch's defaults."""
    import agnostic.compat.torch as ct

    x = ct.ones(2, 2)
    with ct.autocast("cpu"):
        assert (x @ x).dtype == ct.bfloat16 and ct.get_autocast_dtype("cpu") == ct.bfloat16
    with ct.autocast(device_type="cuda", cache_enabled=True):
        assert ct.is_autocast_enabled("cuda") and (x @ x).dtype == ct.float16
    with ct.autocast("cpu", dtype=ct.float16), ct.autocast("cpu", enabled=False):
        assert not ct.is_autocast_enabled() and (x @ x).dtype == ct.float32

    @ct.autocast("cpu")
    def f(a: Any) -> Any:
        return a @ a

    assert f(x).dtype == ct.bfloat16 and not ct.is_autocast_enabled()


# ---------------------------------------------------------------------- the cast cache
def _cast_counter(dev: ag.Device, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]) -> list[Any]:
    """Weak references to every bfloat16 array of `shape` the backend converts from now on (its
    conversions: one per cast of a weight of that shape; live ones: what the graph keeps)."""
    made: list[Any] = []
    cls = type(dev.ops)
    convert = cls.cast

    def cast(self: Any, a: Any, dtype: Any) -> Any:
        out = convert(self, a, dtype)
        if dtype == ag.bfloat16 and tuple(out.shape) == shape:
            made.append(weakref.ref(out))
        return out

    monkeypatch.setattr(cls, "cast", cast)
    return made


def _lstm(dev: ag.Device) -> tuple[nn.Module, ag.Tensor]:
    ag.random.manual_seed(0)
    with ag.default_backend(dev):
        lstm = nn.LSTM(8, 16)
    return lstm, _t(dev, (12, 3, 8))


def _grads(model: nn.Module) -> dict[str, np.ndarray]:
    return {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


def test_a_weight_used_at_every_time_step_is_cast_once(
    dev: ag.Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An LSTM under autocast: its recurrent weight is converted once, not once per step of 12,
    and the graph keeps one bfloat16 copy of it; loss and gradients are bit for bit those of
    `cache_enabled=False`, which converts at every step (each use has its own cast node, so the
    per-step gradients are summed in float32 as without the cache)."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    lstm, x = _lstm(dev)
    made = _cast_counter(dev, monkeypatch, tuple(lstm.weight_hh_l0.shape))
    results = []
    for cache in (True, False):
        lstm.zero_grad()
        made.clear()
        with ag.autocast("bfloat16", cache_enabled=cache):
            out, _ = lstm(x)
        gc.collect()
        conversions, live = len(made), sum(r() is not None for r in made)
        assert (conversions, live) == ((1, 1) if cache else (12, 12)), (cache, conversions, live)
        (out * out).sum().backward()
        results.append((out.numpy(), _grads(lstm)))
    (out_on, g_on), (out_off, g_off) = results
    np.testing.assert_array_equal(out_on, out_off)
    for name in g_on:
        assert g_on[name].dtype == np.float32
        np.testing.assert_array_equal(g_on[name], g_off[name], err_msg=name)


def test_the_cache_never_serves_a_stale_weight(dev: ag.Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one long region (forwards, backwards and optimizer steps all inside it): an optimizer step
    or `assign` gives the weight a new array, and the next forward converts the new one; two forwards
    before one backward (gradient accumulation) reuse the conversion and differentiate fine; a
    no_grad forward first does not leave a cast without gradient behind (torch's cache does)."""
    if dev.name == "cupy":
        pytest.skip("CuPy has no bfloat16")
    x = _t(dev, (5, 8))
    ag.random.manual_seed(0)
    with ag.default_backend(dev):
        lin = nn.Linear(8, 4)
    made = _cast_counter(dev, monkeypatch, (4, 8))
    opt = ag.optim.SGD(lin.parameters(), lr=0.5)

    def low(t: ag.Tensor) -> np.ndarray:  # rounded to bfloat16 by ml_dtypes, not by the backend
        return t.numpy().astype(ml_dtypes.bfloat16).astype(np.float32)

    def expected() -> np.ndarray:
        return low(x) @ low(lin.weight).T + low(lin.bias)

    with ag.autocast("bfloat16"):
        with ag.no_grad():
            lin(x)
        for step in range(3):
            opt.zero_grad()
            for _ in range(2):  # two micro-batches, one conversion
                y = lin(x)
                np.testing.assert_allclose(y.astype(ag.float32).numpy(), expected(), rtol=1e-2, atol=1e-2)
                y.astype(ag.float32).sum().backward()
            assert len(made) == 1 + step
            np.testing.assert_allclose(
                lin.weight.grad.numpy(), 2 * np.broadcast_to(low(x).sum(0), (4, 8)), rtol=1e-2
            )
            opt.step()
        with ag.no_grad():
            lin.weight.assign(lin.weight * 0.5)
        np.testing.assert_allclose(lin(x).astype(ag.float32).numpy(), expected(), rtol=1e-2, atol=1e-2)
        assert len(made) == 4
    with ag.autocast("bfloat16"):  # a new region converts again
        lin(x)
    assert len(made) == 5


def test_cache_enabled_is_per_region() -> None:
    """`cache_enabled=False` inside a caching region turns it off there only; nested regions share
    the outer region's cache; errors and repr name it; torch compat passes it through."""
    import agnostic.compat.torch as ct
    from agnostic.autocast import _cache

    assert _cache.get() is None
    with ag.autocast("bfloat16") as outer:
        cache = _cache.get()
        assert cache == {} and outer.cache_enabled
        with ag.autocast("float16"):
            assert _cache.get() is cache
        with ag.autocast("bfloat16", cache_enabled=False) as off:
            assert (
                _cache.get() is None
                and repr(off) == "autocast(dtype='bfloat16', enabled=True, cache_enabled=False)"
            )
        assert _cache.get() is cache
    assert _cache.get() is None
    with pytest.raises(TypeError, match="cache_enabled must be a bool or None"):
        ag.autocast("bfloat16", cache_enabled="no")
    assert not ct.autocast("cpu", cache_enabled=False).cache_enabled


def test_the_cache_and_compiled_steps_in_one_region(dev: ag.Device) -> None:
    """Eager forwards and compiled training steps inside one long autocast region: a compiled step
    may write the new weights into the parameter's very array (torch), which it notes as an update,
    so the next eager forward converts the new weights instead of serving the cached old ones."""
    if dev.name not in ("torch", "jax"):
        pytest.skip(f"{dev.name} runs compiled steps eagerly: no program writes the parameters")
    ag.random.manual_seed(0)
    with ag.default_backend(dev):
        lin = nn.Linear(8, 4)
    opt = ag.optim.SGD(lin.parameters(), lr=0.5)
    x = _t(dev, (5, 8))

    @ag.compile
    def step(x: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        with ag.autocast("bfloat16"):
            loss = lin(x).astype(ag.float32).sum()
        loss.backward()
        opt.step()
        return loss

    step(x)
    step(x)  # from here on the program writes the parameters in place where it may
    with ag.autocast("bfloat16"):
        for _ in range(3):
            seen = lin(x).astype(ag.float32).numpy()
            step(x)
            assert step.compilations <= 2
            now = lin(x).astype(ag.float32).numpy()
            with ag.autocast("bfloat16", cache_enabled=False):
                want = lin(x).astype(ag.float32).numpy()
            np.testing.assert_array_equal(now, want)
            assert not np.array_equal(now, seen)
