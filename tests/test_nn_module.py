"""agnostic.nn's Module system against torch.nn: names, state_dict layouts, backend binding, moves,
and the first layers (Linear, Flatten, Unflatten, Identity) with the same weights as torch."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.register_buffer("calls", ag.zeros(1))
        self.register_buffer("scratch", ag.zeros(2), persistent=False)

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return ag.tanh(self.fc(x))


class Net(nn.Module):
    def __init__(self, d_in: int, width: int, d_out: int) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(2)])
        self.heads = nn.ModuleDict({"main": nn.Linear(width, d_out), "aux": nn.Linear(width, 1, bias=False)})

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.heads["main"](x)


class TorchBlock(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(width, width)
        self.register_buffer("calls", torch.zeros(1))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


class TorchNet(torch.nn.Module):
    def __init__(self, d_in: int, width: int, d_out: int) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(d_in, width)
        self.blocks = torch.nn.ModuleList([TorchBlock(width) for _ in range(2)])
        self.heads = torch.nn.ModuleDict(
            {"main": torch.nn.Linear(width, d_out), "aux": torch.nn.Linear(width, 1, bias=False)}
        )


# ---------------------------------------------------------------------- names and state_dict
def test_names_and_state_dict_layout_match_torch() -> None:
    ours, theirs = Net(3, 5, 2), TorchNet(3, 5, 2)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)  # non-persistent buffers left out by both
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_weights_load_from_torch_and_give_torch_outputs(backend: ag.Device) -> None:
    theirs = TorchNet(3, 5, 2).double()
    ours = Net(3, 5, 2, backend=backend).to(dtype=ag.float64)
    missing, unexpected = ours.load_state_dict(theirs.state_dict())
    assert missing == [] and unexpected == []
    x = np.random.default_rng(0).standard_normal((4, 3))
    tx = torch.tensor(x)
    h = theirs.stem(tx)
    for b in theirs.blocks:
        h = torch.tanh(b.fc(h))
    want = theirs.heads["main"](h).detach().numpy()
    got = ours(backend.tensor(x, dtype=ag.float64))
    assert got.device is backend
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    # and back: our state_dict loads into torch unchanged
    theirs2 = TorchNet(3, 5, 2).double()
    theirs2.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in ours.state_dict().items()})
    for (k, a), b in zip(theirs.state_dict().items(), theirs2.state_dict().values()):
        assert torch.equal(a, b), k


def test_load_state_dict_checks_everything_first_and_loads_nothing_on_error() -> None:
    net = Net(3, 5, 2)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    bad = dict(net.state_dict())
    bad.pop("stem.bias")
    bad["stem.extra"] = ag.zeros(1)
    bad["heads.main.weight"] = ag.zeros((9, 9))
    bad["stem.weight"] = ag.ones((5, 3))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(bad)
    msg = str(info.value)
    assert "nothing was loaded" in msg and "missing keys: stem.bias" in msg
    assert "unexpected keys: stem.extra" in msg
    assert "heads.main.weight: shape (9, 9) in the state, (2, 5) in the model" in msg
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    missing, unexpected = net.load_state_dict({"stem.weight": ag.ones((5, 3))}, strict=False)
    assert "stem.bias" in missing and unexpected == []
    np.testing.assert_array_equal(net.stem.weight.numpy(), np.ones((5, 3), np.float32))
    # strict=False loads what fits and reports the rest, wrong shapes included
    result = net.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["stem.bias"] and result.unexpected_keys == ["stem.extra"]
    assert result.mismatched_keys == ["heads.main.weight"]
    np.testing.assert_array_equal(net.heads.main.weight.numpy(), before["heads.main.weight"])


def test_save_and_load_a_module_file_on_every_backend(tmp_path) -> None:
    source = Net(3, 5, 2)
    source.save(tmp_path / "net.safetensors", metadata={"note": "digits"})
    assert ag.io.read_metadata(tmp_path / "net.safetensors")["model"] == "Net"
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    expected = source(ag.tensor(x)).numpy()
    for device in BACKENDS:
        target = Net(3, 5, 2, backend=device).load(tmp_path / "net.safetensors")
        assert all(v.device == device for v in target.state_dict().values())
        np.testing.assert_allclose(target(device.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    wider = Net(3, 6, 2)
    with pytest.raises(ValueError, match=r"stem.weight: shape \(5, 3\) in the state, \(6, 3\)"):
        wider.load(tmp_path / "net.safetensors")
    with pytest.warns(UserWarning, match="mismatched_keys=.*stem.weight"):
        wider.load(tmp_path / "net.safetensors", strict=False)


def test_shared_parameters_appear_once_and_reassignment_replaces() -> None:
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2 and [n for n, _ in seq.named_parameters()] == [
        "0.weight",
        "0.bias",
    ]
    block = Block(2)
    block.fc = nn.Identity()
    assert list(block.named_parameters()) == []
    block.fc = nn.Linear(2, 2, bias=False)
    assert [n for n, _ in block.named_parameters()] == ["fc.weight"]
    block.calls = ag.ones(1)  # assigning a tensor to a buffer name keeps it a buffer
    assert [n for n, _ in block.named_buffers()] == ["calls", "scratch"]
    del block.fc
    assert not hasattr(block, "fc") and list(block.parameters()) == []


# ---------------------------------------------------------------------- backends
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_backend_keyword_builds_every_layer_there_with_the_same_values(backend: ag.Device) -> None:
    ag.manual_seed(7)
    ref = Net(3, 4, 2)
    ag.manual_seed(7)
    net = Net(3, 4, 2, backend=backend)
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert p.device is backend, name
        np.testing.assert_array_equal(p.numpy(), q.numpy())  # one seed, the same init everywhere
    assert all(b.device is backend for b in net.buffers())
    ag.manual_seed(7)
    with ag.default_backend(backend):
        inside = Net(3, 4, 2)
    assert all(p.device is backend for p in inside.parameters())
    seq = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1), backend=backend)  # built outside, then moved
    assert all(p.device is backend for p in seq.parameters())


@pytest.mark.parametrize("pair", [(a, b) for a in BACKENDS for b in BACKENDS if a is not b][:6],
                         ids=lambda p: f"{p[0].name}-to-{p[1].name}")  # fmt: skip
def test_to_moves_the_same_model_and_it_still_trains(pair: tuple[ag.Device, ag.Device]) -> None:
    src, dst = pair
    net = Net(3, 4, 2, backend=src)
    params = list(net.parameters())
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    before = net(src.tensor(x)).numpy()
    assert net.to(dst) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params] and net.backend is dst
    out = net(dst.tensor(x))
    np.testing.assert_allclose(out.numpy(), before, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert all(
        p.grad is not None and p.grad.device is dst
        for p in net.parameters()
        if p is not net.heads["aux"].weight
    )


# ---------------------------------------------------------------------- layers against torch.nn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_linear_matches_torch_in_values_and_gradients(backend: ag.Device, bias: bool) -> None:
    t = torch.nn.Linear(4, 3, bias=bias).double()
    lin = nn.Linear(4, 3, bias=bias, backend=backend).to(dtype=ag.float64)
    lin.load_state_dict(t.state_dict())
    x = np.random.default_rng(2).standard_normal((2, 5, 4))
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    g = np.random.default_rng(3).standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    ax = backend.tensor(x, dtype=ag.float64, requires_grad=True)
    ay = lin(ax)
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(lin.bias.grad.numpy(), t.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
    lin.zero_grad()
    assert lin.weight.grad is None


def test_linear_default_init_has_torchs_bounds() -> None:
    lin = nn.Linear(16, 300)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert w.shape == (300, 16) and lin.weight.dtype is ag.float32
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.24 and np.abs(b).max() <= 0.25
    assert lin.weight.requires_grad and lin.weight.is_leaf


def test_shape_layers_match_torch() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    tx = torch.tensor(x)
    for ours, theirs in [
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Flatten(0, -1), torch.nn.Flatten(0, -1)),
        (nn.Flatten(2, 3), torch.nn.Flatten(2, 3)),
        (nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1))),
        (nn.Unflatten(-1, (5, 1)), torch.nn.Unflatten(-1, (5, 1))),
        (nn.Identity(7, k=1), torch.nn.Identity(7, k=1)),
    ]:
        np.testing.assert_array_equal(ours(ag.asarray(x)).numpy(), theirs(tx).numpy())
        assert repr(ours).split("(")[0] == type(theirs).__name__


# ---------------------------------------------------------------------- modes, repr, errors
def test_train_eval_and_requires_grad_reach_every_submodule() -> None:
    net = Net(3, 4, 2)
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters()) and net.num_parameters(trainable_only=True) == 0


def test_repr_shows_the_tree_and_parameter_counts() -> None:
    text = repr(nn.Sequential(nn.Linear(2, 8), nn.Flatten(), nn.Linear(8, 3)))
    assert text.splitlines() == [
        "Sequential(",
        "  (0): Linear(in_features=2, out_features=8, bias=True)  # 24",
        "  (1): Flatten(start_dim=1, end_dim=-1)",
        "  (2): Linear(in_features=8, out_features=3, bias=True)  # 27",
        ")  # 51 parameters",
    ]


def test_errors_name_the_layer_and_the_fix() -> None:
    class Forgetful(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(ag.zeros(2))

    f = Forgetful()  # a subclass that forgets super().__init__() still registers its parameters
    assert [n for n, _ in f.named_parameters()] == ["w"]
    with pytest.raises(ValueError, match=r"Linear: input of shape \(2, 5\) does not end in in_features=4"):
        nn.Linear(4, 3)(ag.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"Linear: in_features must be a non-negative int, got 2.5"):
        nn.Linear(2.5, 3)
    with pytest.raises(TypeError, match=r"Parameter: a int64 tensor cannot require grad"):
        nn.Parameter(ag.asarray([1, 2]))
    with pytest.raises(NotImplementedError, match=r"Module does not define forward"):
        nn.Module()(1)
    p = nn.Parameter(ag.zeros(3))
    with pytest.raises(
        ValueError, match=r"assign: value of shape \(4,\) does not fit a parameter of shape \(3,\)"
    ):
        p.assign(ag.zeros(4))
    with pytest.raises(TypeError, match=r"register_buffer: 'b' must be a Tensor or None, got list"):
        nn.Module().register_buffer("b", [1.0])


def test_assigning_a_plain_tensor_to_a_parameter_name_says_how() -> None:
    lin = nn.Linear(2, 2)
    with pytest.raises(
        TypeError, match=r"cannot assign a Tensor to parameter 'weight': wrap it in nn.Parameter"
    ):
        lin.weight = ag.zeros((2, 2))
    lin.weight.assign(ag.ones((2, 2)))
    np.testing.assert_array_equal(lin.weight.numpy(), np.ones((2, 2), np.float32))


def test_loaded_values_do_not_share_the_sources_memory() -> None:
    t = torch.nn.Linear(2, 2).double()
    ours = nn.Linear(2, 2).to(dtype=ag.float64)
    ours.load_state_dict(t.state_dict())
    host = {k: v.numpy() for k, v in ours.state_dict().items()}
    host = {k: np.array(v) for k, v in host.items()}
    with torch.no_grad():
        t.weight.fill_(7.0)
    source = {"weight": np.zeros((2, 2)), "bias": np.zeros(2)}
    ours2 = nn.Linear(2, 2).to(dtype=ag.float64)
    ours2.load_state_dict(source)
    source["weight"][:] = 5.0
    np.testing.assert_array_equal(ours.weight.numpy(), host["weight"])
    np.testing.assert_array_equal(ours2.weight.numpy(), np.zeros((2, 2)))
