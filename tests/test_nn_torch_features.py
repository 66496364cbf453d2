"""The torch.nn features ported PyTorch code relies on, against torch with the same weights and
inputs on every backend: Module.apply, the forward and full backward hooks, named_modules and its
siblings, get_submodule/get_parameter/get_buffer, half/float/double/bfloat16, `inplace=`, tied
weights through load_state_dict, scaled_dot_product_attention's dropout_p/scale/enable_gqa, and
NumPy indices into Embedding."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.functional as F
from agnostic import nn

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")

BACKENDS = available_backends()
ON_EACH = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)


def _copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})


def _np(t: object) -> np.ndarray | None:
    if t is None:
        return None
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def _same(a: object, b: object, tol: float = 1e-5) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(_np(a), _np(b), rtol=tol, atol=tol)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
        self.norm = nn.BatchNorm1d(3)
        self.again = self.body  # one module reachable by two paths

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return self.norm(self.body(self.fc(x)))


class TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
        self.norm = torch.nn.BatchNorm1d(3)
        self.again = self.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.body(self.fc(x)))


# ---------------------------------------------------------------------- traversal
def test_apply_visits_children_first_and_returns_self() -> None:
    ours, theirs = Net(), TorchNet()
    seen_ours: list[str] = []
    seen_theirs: list[str] = []
    assert ours.apply(lambda m: seen_ours.append(type(m).__name__)) is ours
    theirs.apply(lambda m: seen_theirs.append(type(m).__name__.removeprefix("Torch")))
    assert seen_ours == seen_theirs


@ON_EACH
def test_apply_initializes_weights(backend: ag.Device) -> None:
    def init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            m.weight.assign(ag.ones_like(m.weight) * 0.5)

    model = Net(backend=backend).apply(init)
    for name, p in model.named_parameters():
        if name.endswith("weight") and "norm" not in name:
            np.testing.assert_array_equal(p.numpy(), np.full(p.shape, 0.5, np.float32))


def test_named_modules_parameters_buffers_match_torch() -> None:
    ours, theirs = Net(), TorchNet()
    for dup in (True, False):
        assert [n for n, _ in ours.named_modules(prefix="m", remove_duplicate=dup)] == [
            n for n, _ in theirs.named_modules(prefix="m", remove_duplicate=dup)
        ]
        assert [n for n, _ in ours.named_parameters(remove_duplicate=dup)] == [
            n for n, _ in theirs.named_parameters(remove_duplicate=dup)
        ]
        assert [n for n, _ in ours.named_buffers(prefix="p", remove_duplicate=dup)] == [
            n for n, _ in theirs.named_buffers(prefix="p", remove_duplicate=dup)
        ]
    memo = {ours.body}
    assert [n for n, _ in ours.named_modules(memo)] == [n for n, _ in theirs.named_modules({theirs.body})]
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_get_submodule_parameter_buffer_and_their_errors() -> None:
    ours, theirs = Net(), TorchNet()
    assert ours.get_submodule("") is ours
    assert ours.get_submodule("body.0") is ours.body[0]
    assert ours.get_parameter("body.0.bias") is ours.body[0].bias
    assert ours.get_buffer("norm.running_var") is ours.norm.running_var
    for call, target in (
        ("get_submodule", "body.5"),
        ("get_submodule", "fc.weight"),
        ("get_parameter", "fc.nothing"),
        ("get_parameter", "norm.running_mean"),
        ("get_buffer", "fc.weight"),
        ("get_parameter", "nowhere.weight"),
    ):
        with pytest.raises(AttributeError) as want:
            getattr(theirs, call)(target)
        with pytest.raises(AttributeError) as got:
            getattr(ours, call)(target)
        assert str(got.value) == str(want.value).replace("TorchNet", "Net"), (call, target)


@ON_EACH
@pytest.mark.parametrize("cast", ["half", "bfloat16", "double", "float"])
def test_dtype_casts_follow_torch(backend: ag.Device, cast: str) -> None:
    ours, theirs = Net(backend=backend).double(), TorchNet().double()
    assert getattr(ours, cast)() is ours
    getattr(theirs, cast)()
    want = {k: str(v.dtype).removeprefix("torch.") for k, v in theirs.state_dict().items()}
    got = {k: v.dtype.name for k, v in ours.state_dict().items()}
    assert got == want  # num_batches_tracked stays int64


@ON_EACH
def test_zero_grad(backend: ag.Device) -> None:
    lin = nn.Linear(2, 2, backend=backend)
    lin(backend.tensor(np.ones((1, 2), np.float32))).sum().backward()
    lin.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(lin.weight.grad.numpy(), np.zeros((2, 2), np.float32))
    lin.zero_grad()
    assert lin.weight.grad is None


# ---------------------------------------------------------------------- forward hooks
def _pair(backend: ag.Device) -> tuple[nn.Linear, torch.nn.Linear]:
    ours = nn.Linear(4, 3, backend=backend)
    theirs = torch.nn.Linear(4, 3)
    _copy_weights(ours, theirs)
    return ours, theirs


X = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


def _forward_with_hooks(module, x) -> tuple[list[str], object, object]:
    calls: list[str] = []
    module.register_forward_pre_hook(lambda m, args: (calls.append("pre"), (args[0] * 2,))[1])
    module.register_forward_pre_hook(lambda m, args: calls.append("first"), prepend=True)
    h = module.register_forward_hook(lambda m, args, out: (calls.append("post"), out + args[0].sum())[1])
    module.register_forward_hook(
        lambda m, args, kwargs, out: calls.append(f"kw{sorted(kwargs)}"), with_kwargs=True
    )
    first = module(x)
    h.remove()
    return calls, first, module(x)


@ON_EACH
def test_forward_hooks_replace_args_and_output_as_torch(backend: ag.Device) -> None:
    ours, theirs = _pair(backend)
    c1, f1, s1 = _forward_with_hooks(ours, backend.tensor(X))
    c2, f2, s2 = _forward_with_hooks(theirs, torch.tensor(X))
    assert c1 == c2 == ["first", "pre", "post", "kw[]", "first", "pre", "kw[]"]
    _same(f1, f2)
    _same(s1, s2)


def test_forward_pre_hook_with_kwargs_replaces_both() -> None:
    class Scale(nn.Module):
        def forward(self, x: ag.Tensor, factor: float = 1.0) -> ag.Tensor:
            return x * factor

    m = Scale()
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] + 1,), {"factor": 3.0}), with_kwargs=True)
    np.testing.assert_array_equal(m(ag.zeros(2)).numpy(), np.full(2, 3.0, np.float32))
    bad = Scale()
    bad.register_forward_pre_hook(lambda mod, args, kwargs: args, with_kwargs=True)
    with pytest.raises(
        RuntimeError, match=r"forward pre-hook must return None or a tuple of \(new_args, new_kwargs\)"
    ):
        bad(ag.zeros(2))


def test_always_call_hook_runs_when_forward_raises() -> None:
    class Broken(nn.Module):
        def forward(self, x: ag.Tensor) -> ag.Tensor:
            raise ValueError("broken forward")

    seen: list[object] = []
    m = Broken()
    m.register_forward_hook(lambda mod, args, out: seen.append(("always", out)), always_call=True)
    m.register_forward_hook(lambda mod, args, out: seen.append("plain"))
    with pytest.raises(ValueError, match="broken forward"):
        m(ag.zeros(1))
    assert seen == [("always", None)]


def test_hook_handle_is_a_context_manager() -> None:
    lin = nn.Linear(2, 2)
    calls: list[int] = []
    with lin.register_forward_hook(lambda m, a, o: calls.append(1)):
        lin(ag.zeros((1, 2)))
    lin(ag.zeros((1, 2)))
    assert calls == [1]


# ---------------------------------------------------------------------- backward hooks
class Mix(nn.Module):
    """Two tensor inputs and a number: grad_input has an entry per positional argument."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, a: ag.Tensor, b: ag.Tensor, k: float) -> tuple[ag.Tensor, ag.Tensor]:
        return ag.tanh(self.fc(a)) * k, b * b


class TorchMix(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.fc(a)) * k, b * b


def _run_backward_hooks(module, make, b_requires_grad: bool, replace: bool, use_second: bool):
    """Forward Mix with hooks that record (and optionally double grad_input / negate grad_output),
    backward, and return what the hooks saw and the inputs' gradients."""
    log: list[tuple] = []

    def pre(m, grad_output):
        log.append(("pre", grad_output))
        return tuple(None if g is None else -g for g in grad_output) if replace else None

    def full(m, grad_input, grad_output):
        log.append(("full", grad_input, grad_output))
        return tuple(None if g is None else g * 2 for g in grad_input) if replace else None

    module.register_full_backward_pre_hook(pre)
    module.register_full_backward_hook(full)
    r = np.random.default_rng(1)
    a = make(r.standard_normal((2, 4)).astype(np.float32), True)
    b = make(r.standard_normal((2, 3)).astype(np.float32), b_requires_grad)
    y1, y2 = module(a, b, 0.5)
    loss = (y1 * y1).sum() + ((y2 * 3).sum() if use_second else 0)
    loss.backward()
    return log, a.grad, b.grad, module.fc.weight.grad


@ON_EACH
@pytest.mark.parametrize("b_requires_grad", [True, False])
@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("use_second", [True, False])
def test_full_backward_hooks_match_torch(
    backend: ag.Device, b_requires_grad: bool, replace: bool, use_second: bool
) -> None:
    ours, theirs = Mix(backend=backend), TorchMix()
    _copy_weights(ours, theirs)

    def mine(a, rg):
        t = backend.tensor(a)
        return t.requires_grad_() if rg else t

    got = _run_backward_hooks(ours, mine, b_requires_grad, replace, use_second)
    want = _run_backward_hooks(
        theirs, lambda a, rg: torch.tensor(a, requires_grad=rg), b_requires_grad, replace, use_second
    )
    log_got, log_want = got[0], want[0]
    assert [e[0] for e in log_got] == [e[0] for e in log_want] == ["pre", "full"]
    for entry_got, entry_want in zip(log_got, log_want):
        for tup_got, tup_want in zip(entry_got[1:], entry_want[1:]):
            assert len(tup_got) == len(tup_want)
            for g, w in zip(tup_got, tup_want):
                _same(g, w)
    for g, w in zip(got[1:], want[1:]):
        _same(g, w)


@ON_EACH
def test_backward_hook_without_input_gradients_gets_none(backend: ag.Device) -> None:
    """Inputs that need no gradient: torch calls the hook with grad_input of None, and so do we."""
    ours, theirs = _pair(backend)
    seen = []
    for module, x in ((ours, backend.tensor(X)), (theirs, torch.tensor(X))):
        module.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
        with pytest.warns(UserWarning, match="(?i)full backward hook is firing when gradients are computed"):
            module(x).sum().backward()
    (gi1, go1), (gi2, go2) = seen
    assert gi1 == gi2 == (None,)
    _same(go1[0], go2[0])
    _same(ours.weight.grad, theirs.weight.grad)


def test_backward_hook_wrong_count_and_removal() -> None:
    lin = nn.Linear(2, 2)
    h = lin.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    x = ag.ones((1, 2)).requires_grad_()
    with pytest.raises(
        RuntimeError, match="backward hook returned an invalid number of grad_input, got 2, but expected 1"
    ):
        lin(x).sum().backward()
    h.remove()
    x = ag.ones((1, 2)).requires_grad_()
    lin(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), lin.weight.numpy().sum(0, keepdims=True))


# ---------------------------------------------------------------------- inplace=
@ON_EACH
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: nn.ReLU(inplace=True), lambda: torch.nn.ReLU(inplace=True)),
        (lambda: nn.SiLU(inplace=True), lambda: torch.nn.SiLU(inplace=True)),
        (lambda: nn.LeakyReLU(0.2, inplace=True), lambda: torch.nn.LeakyReLU(0.2, inplace=True)),
        (lambda: nn.ELU(0.5, inplace=True), lambda: torch.nn.ELU(0.5, inplace=True)),
        (lambda: nn.Dropout(0.3, inplace=True).eval(), lambda: torch.nn.Dropout(0.3, inplace=True).eval()),
    ],
    ids=["relu", "silu", "leaky_relu", "elu", "dropout"],
)
def test_inplace_layers_give_torch_results(backend: ag.Device, ours, theirs) -> None:
    x = backend.tensor(X)
    before = x.numpy().copy()
    layer, ref = ours(), theirs()
    _same(layer(x), ref(torch.tensor(X)))
    np.testing.assert_array_equal(x.numpy(), before)  # tensors are values: the input is unchanged
    if not isinstance(layer, nn.Dropout):
        assert repr(layer) == repr(ref)


@ON_EACH
def test_functional_inplace_keyword(backend: ag.Device) -> None:
    x = backend.tensor(X)
    t = torch.tensor(X)
    _same(F.relu(x, inplace=True), torch.nn.functional.relu(t.clone(), inplace=True))
    _same(F.leaky_relu(x, 0.1, inplace=True), torch.nn.functional.leaky_relu(t.clone(), 0.1, inplace=True))
    _same(F.elu(x, 0.7, inplace=True), torch.nn.functional.elu(t.clone(), 0.7, inplace=True))
    _same(F.silu(x, inplace=True), torch.nn.functional.silu(t.clone(), inplace=True))
    _same(F.dropout(x, 0.4, False, True), torch.nn.functional.dropout(t.clone(), 0.4, False, True))


# ---------------------------------------------------------------------- tied weights
class TinyGPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(11, 6)
        self.ln = nn.LayerNorm(6)
        self.lm_head = nn.Linear(6, 11, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as GPT-2

    def forward(self, idx: ag.Tensor) -> ag.Tensor:
        return self.lm_head(self.ln(self.wte(idx)))


class TorchTinyGPT(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = torch.nn.Embedding(11, 6)
        self.ln = torch.nn.LayerNorm(6)
        self.lm_head = torch.nn.Linear(6, 11, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.ln(self.wte(idx)))


IDX = np.array([[1, 5, 10], [0, 2, 2]])


@ON_EACH
def test_tied_weights_load_from_a_checkpoint_without_the_tied_key(backend: ag.Device) -> None:
    torch.manual_seed(0)
    theirs = TorchTinyGPT()
    ours = TinyGPT(backend=backend)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # both tied keys, as torch
    checkpoint = {k: v for k, v in theirs.state_dict().items() if k != "lm_head.weight"}  # as HF's GPT-2
    assert ours.load_state_dict(checkpoint) == ([], [])
    assert ours.lm_head.weight is ours.wte.weight
    _same(ours(backend.tensor(IDX)), theirs(torch.tensor(IDX)))
    only_head = {k: v for k, v in theirs.state_dict().items() if k != "wte.weight"}
    ours.wte.weight.assign(ag.zeros_like(ours.wte.weight))
    ours.load_state_dict(only_head)
    _same(ours.wte.weight, theirs.wte.weight)


@ON_EACH
def test_tied_weights_with_different_values_are_an_error(backend: ag.Device) -> None:
    ours = TinyGPT(backend=backend)
    state = {k: v.numpy() for k, v in ours.state_dict().items()}
    before = ours.ln.weight.numpy().copy()
    state["ln.weight"] = state["ln.weight"] + 1
    state["lm_head.weight"] = state["lm_head.weight"] + 1
    with pytest.raises(ValueError, match=r"wte\.weight and lm_head\.weight are one tied parameter .* differ"):
        ours.load_state_dict(state)
    with pytest.raises(ValueError, match=r"wte\.weight and lm_head\.weight"):
        ours.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(ours.ln.weight.numpy(), before)  # nothing was loaded
    del state["ln.bias"]
    with pytest.raises(ValueError, match=r"missing keys: ln\.bias"):
        ours.load_state_dict({k: v for k, v in state.items() if k != "lm_head.weight"})


# ---------------------------------------------------------------------- attention
R = np.random.default_rng(3)
Q = R.standard_normal((2, 4, 5, 8)).astype(np.float32)
K = R.standard_normal((2, 2, 6, 8)).astype(np.float32)
V = R.standard_normal((2, 2, 6, 3)).astype(np.float32)
MASK = R.random((5, 6)) > 0.3
MASK[2] = False  # a query that sees nothing


@ON_EACH
@pytest.mark.parametrize("causal, masked", [(False, False), (True, False), (False, True)])
def test_sdpa_gqa_and_scale_match_torch(backend: ag.Device, causal: bool, masked: bool) -> None:
    ours = [backend.tensor(a).requires_grad_() for a in (Q, K, V)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (Q, K, V)]
    kw = dict(is_causal=causal, scale=0.3, enable_gqa=True)
    got = F.scaled_dot_product_attention(*ours, backend.tensor(MASK) if masked else None, **kw)
    want = torch.nn.functional.scaled_dot_product_attention(
        *theirs, torch.tensor(MASK) if masked else None, **kw
    )
    if masked:  # torch's CPU kernel gives NaN for the query that sees nothing; agnostic gives zeros
        np.testing.assert_array_equal(got.numpy()[:, :, 2], 0.0)
        keep = [0, 1, 3, 4]
        got_cmp, want_cmp = got.numpy()[:, :, keep], want.detach().numpy()[:, :, keep]
        np.testing.assert_allclose(got_cmp, want_cmp, rtol=1e-5, atol=1e-5)
        return
    _same(got, want)
    g = R.standard_normal(got.shape).astype(np.float32)
    (got * backend.tensor(g)).sum().backward()
    (want * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        _same(a.grad, b.grad, 1e-4)


@ON_EACH
def test_sdpa_dropout_uses_the_seeded_stream(backend: ag.Device) -> None:
    q, k, v = (backend.tensor(a) for a in (Q, K, V))
    ag.manual_seed(7)
    got = F.scaled_dot_product_attention(q, k, v, None, 0.4, enable_gqa=True)  # torch's positional order
    # the reference: torch's weights, dropped with the same draw from agnostic's stream
    weights = torch.softmax(
        torch.tensor(Q) @ torch.tensor(K).repeat_interleave(2, 1).transpose(-1, -2) / np.sqrt(8), -1
    )
    ag.manual_seed(7)
    keep = F.dropout(backend.tensor(np.ones(weights.shape, np.float32)), 0.4).numpy()
    want = (weights * torch.tensor(keep)) @ torch.tensor(V).repeat_interleave(2, 1)
    _same(got, want)
    assert (keep == 0).any()
    ag.manual_seed(7)
    again = F.scaled_dot_product_attention(q, k, v, dropout_p=0.4, enable_gqa=True)
    np.testing.assert_array_equal(again.numpy(), got.numpy())
    off = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, enable_gqa=True)
    _same(off, weights @ torch.tensor(V).repeat_interleave(2, 1))


@ON_EACH
def test_sdpa_dropout_gradients_and_masked_rows(backend: ag.Device) -> None:
    q, k, v = (backend.tensor(a).requires_grad_() for a in (Q[:, :2], K, V))
    mask = backend.tensor(MASK)
    ag.manual_seed(2)
    out = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=0.5)
    np.testing.assert_array_equal(out.numpy()[:, :, 2], 0.0)  # attends to nothing, with dropout too
    out.sum().backward()
    # the same draw, computed by hand with torch, differentiated by torch
    ag.manual_seed(2)
    keep = torch.tensor(F.dropout(backend.tensor(np.ones((2, 2, 5, 6), np.float32)), 0.5).numpy())
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (Q[:, :2], K, V))
    scores = (tq @ tk.transpose(-1, -2) / np.sqrt(8)).masked_fill(~torch.tensor(MASK), -torch.inf)
    weights = torch.nan_to_num(torch.softmax(scores, -1))
    (weights * keep @ tv).sum().backward()
    for a, b in ((q, tq), (k, tk), (v, tv)):
        _same(a.grad, b.grad, 1e-4)


def test_sdpa_bad_input() -> None:
    q, k, v = (ag.asarray(a) for a in (Q, K, V))
    with pytest.raises(
        ValueError, match=r"enable_gqa needs the query's heads \(4\) to be a multiple .* \(3\)"
    ):
        F.scaled_dot_product_attention(
            q, ag.concat([k, k[:, :1]], axis=1), ag.concat([v, v[:, :1]], axis=1), enable_gqa=True
        )
    with pytest.raises(ValueError, match=r"enable_gqa needs \(\.\.\., heads, L, E\) inputs"):
        F.scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0], enable_gqa=True)
    with pytest.raises(ValueError, match=r"dropout_p must be a number in \[0, 1\], got 1.5"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5, enable_gqa=True)


# ---------------------------------------------------------------------- Embedding
@ON_EACH
def test_embedding_takes_numpy_indices(backend: ag.Device) -> None:
    ours = nn.Embedding(11, 4, backend=backend)
    theirs = torch.nn.Embedding(11, 4)
    _copy_weights(ours, theirs)
    out = ours(IDX)
    assert out.device is ours.weight.device
    _same(out, theirs(torch.tensor(IDX)))
    with pytest.raises(TypeError, match="Embedding: indices must be integers, got float64"):
        ours(IDX.astype(np.float64))
    with pytest.raises(
        TypeError, match=r"Embedding: indices must be a Tensor, got list; .*NumPy integer array"
    ):
        ours([1, 2])
