"""LSTM, GRU, LSTMCell and GRUCell against torch.nn with the same weights (float64): outputs, final
states, gradients w.r.t. the input, the initial state and every parameter, state_dict keys, init per
seed, dropout, repr and errors, on every available backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic.nn import rnn

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()
TOL = {"rtol": 1e-10, "atol": 1e-10}
L, N, H_IN, H = 3, 2, 3, 4  # short sequences and few shapes: JAX compiles per shape

# (id, class name, kwargs, input shape, give hx); the torch twin is built from the same name and kwargs
CASES: list[tuple[str, str, dict, tuple[int, ...], bool]] = [
    ("1layer", "LSTM", {}, (L, N, H_IN), False),
    ("2layers", "LSTM", {"num_layers": 2}, (L, N, H_IN), False),
    ("bidirectional", "LSTM", {"bidirectional": True}, (L, N, H_IN), False),
    ("2layers-bidir-batch_first-hx", "LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True},
     (N, L, H_IN), True),
    ("batch_first", "LSTM", {"batch_first": True}, (N, L, H_IN), False),
    ("hx-nobias", "LSTM", {"bias": False}, (L, N, H_IN), True),
    ("unbatched-hx", "LSTM", {"bidirectional": True}, (L, H_IN), True),
    ("unbatched", "LSTM", {}, (L, H_IN), False),
    ("1layer", "GRU", {}, (L, N, H_IN), False),
    ("2layers", "GRU", {"num_layers": 2}, (L, N, H_IN), False),
    ("bidirectional", "GRU", {"bidirectional": True}, (L, N, H_IN), False),
    ("2layers-bidir-batch_first-hx", "GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True},
     (N, L, H_IN), True),
    ("batch_first", "GRU", {"batch_first": True}, (N, L, H_IN), False),
    ("hx-nobias", "GRU", {"bias": False}, (L, N, H_IN), True),
    ("unbatched-hx", "GRU", {"bidirectional": True}, (L, H_IN), True),
    ("unbatched", "GRU", {}, (L, H_IN), False),
]  # fmt: skip
IDS = [f"{c[1]}-{c[0]}" for c in CASES]


def _pair(name: str, args: tuple, kwargs: dict, backend: ag.Device) -> tuple[Any, Any]:
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.8, 0.8)
    ours = getattr(rnn, name)(*args, **kwargs, backend=backend)
    ours.to(dtype=ag.float64)
    missing, unexpected = ours.load_state_dict(theirs.state_dict())
    assert missing == [] and unexpected == []
    return ours, theirs


def _flat(out: Any) -> list[Any]:
    """(output, (h, c)) / (output, h) / (h, c) / h as a flat list."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _compare(ours: Any, theirs: Any, inputs: list[np.ndarray], backend: ag.Device, seed: int) -> None:
    """inputs[0] is the layer input, the rest the initial state(s). Forward and backward through both
    with the same upstream gradients on every output; compare values and every gradient."""
    lstm = isinstance(theirs, (torch.nn.LSTM, torch.nn.LSTMCell))
    tin = [torch.tensor(a, requires_grad=True) for a in inputs]
    ain = [backend.tensor(a, dtype=ag.float64, requires_grad=True) for a in inputs]

    def call(mod: Any, xs: list[Any]) -> Any:
        if len(xs) == 1:
            return mod(xs[0])
        return mod(xs[0], tuple(xs[1:]) if lstm else xs[1])

    touts, aouts = _flat(call(theirs, tin)), _flat(call(ours, ain))
    assert len(touts) == len(aouts)
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal(tuple(t.shape)) for t in touts]
    sum(
        ((t * torch.tensor(g)).sum() for t, g in zip(touts, gs)), torch.zeros((), dtype=torch.float64)
    ).backward()
    loss = None
    for a, t, g in zip(aouts, touts, gs):
        assert a.device is backend and a.shape == tuple(t.shape)
        np.testing.assert_allclose(a.numpy(), t.detach().numpy(), **TOL)
        term = (a * backend.tensor(g, dtype=ag.float64)).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    for a, t in zip(ain, tin):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), **TOL)
    tparams = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(tparams)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[n].grad.numpy(), err_msg=n, **TOL)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rnn_matches_torch_in_values_and_gradients(case: tuple, backend: ag.Device) -> None:
    _, name, kwargs, shape, give_hx = case
    ours, theirs = _pair(name, (H_IN, H), kwargs, backend)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(shape)]
    if give_hx:
        dirs = 2 if kwargs.get("bidirectional") else 1
        layers = kwargs.get("num_layers", 1) * dirs
        hshape = (layers, H) if len(shape) == 2 else (layers, N, H)
        inputs += [rng.standard_normal(hshape) for _ in range(2 if name == "LSTM" else 1)]
    _compare(ours, theirs, inputs, backend, seed=2)


CELL_CASES = [
    ("LSTMCell", {}, (N, H_IN), True),
    ("LSTMCell", {"bias": False}, (H_IN,), False),
    ("LSTMCell", {}, (H_IN,), True),
    ("GRUCell", {}, (N, H_IN), True),
    ("GRUCell", {"bias": False}, (N, H_IN), False),
    ("GRUCell", {}, (H_IN,), True),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", CELL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CELL_CASES)])
def test_cell_matches_torch_in_values_and_gradients(case: tuple, backend: ag.Device) -> None:
    name, kwargs, shape, give_hx = case
    ours, theirs = _pair(name, (H_IN, H), kwargs, backend)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal(shape)]
    if give_hx:
        hshape = (H,) if len(shape) == 1 else (N, H)
        inputs += [rng.standard_normal(hshape) for _ in range(2 if name == "LSTMCell" else 1)]
    _compare(ours, theirs, inputs, backend, seed=4)


ALL_CONFIGS = [
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("GRU", {"num_layers": 2, "bidirectional": True, "bias": False}),
    ("LSTM", {}),
    ("LSTMCell", {}),
    ("GRUCell", {"bias": False}),
]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(ALL_CONFIGS)])
def test_state_dict_keys_shapes_and_repr_match_torch(config: tuple) -> None:
    name, kwargs = config
    ours, theirs = getattr(rnn, name)(H_IN, H, **kwargs), getattr(torch.nn, name)(H_IN, H, **kwargs)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    assert ours.extra_repr() == theirs.extra_repr()


@pytest.mark.parametrize("name", ["LSTM", "GRU", "LSTMCell", "GRUCell"])
def test_same_seed_gives_same_init_on_every_backend_within_torch_bound(name: str) -> None:
    kwargs = {"num_layers": 2, "bidirectional": True} if name in ("LSTM", "GRU") else {}
    built = []
    for b in BACKENDS:
        ag.manual_seed(7)
        built.append(getattr(rnn, name)(H_IN, H, **kwargs, backend=b).state_dict())
    ag.manual_seed(8)
    other = getattr(rnn, name)(H_IN, H, **kwargs).state_dict()
    first = built[0]
    for sd in built[1:]:
        for k in first:
            np.testing.assert_array_equal(sd[k].numpy(), first[k].numpy(), err_msg=k)
    bound = 1 / np.sqrt(H)
    for k, v in first.items():
        assert np.all(np.abs(v.numpy()) <= bound), k
    assert any(not np.array_equal(other[k].numpy(), first[k].numpy()) for k in first)
    # distinct parameters get distinct draws
    vals = [v.numpy().ravel()[0] for v in first.values()]
    assert len(set(vals)) == len(vals)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_dropout_between_layers_only_in_training(name: str) -> None:
    b = BACKENDS[0]
    ours, theirs = _pair(name, (H_IN, H), {"num_layers": 2, "dropout": 0.5}, b)
    x = np.random.default_rng(5).standard_normal((L, N, H_IN))
    ours.eval()
    theirs.eval()
    ay, ty = ours(b.tensor(x, dtype=ag.float64)), theirs(torch.tensor(x))
    np.testing.assert_allclose(ay[0].numpy(), ty[0].detach().numpy(), **TOL)
    ours.train()
    ag.manual_seed(0)
    ay2 = ours(b.tensor(x, dtype=ag.float64))
    assert not np.allclose(ay2[0].numpy(), ty[0].detach().numpy())
    with pytest.warns(UserWarning, match="num_layers=1"):
        getattr(rnn, name)(H_IN, H, dropout=0.5)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_errors_name_the_layer(name: str) -> None:
    b = BACKENDS[0]
    m = getattr(rnn, name)(H_IN, H, num_layers=2, backend=b)
    z = lambda *s: ag.zeros(s, dtype=ag.float64, device=b)  # noqa: E731
    with pytest.raises(ValueError, match=f"{name}: input of shape .* input_size=3"):
        m(z(L, N, 5))
    with pytest.raises(ValueError, match=f"{name}: expected a 2-D .* or 3-D"):
        m(z(L, N, 1, H_IN))
    with pytest.raises(ValueError, match=f"{name}: expected a 2-D .* or 3-D"):
        m(z(H_IN))
    bad = z(1, N, H)
    hx = (bad, z(2, N, H)) if name == "LSTM" else bad
    with pytest.raises(ValueError, match=rf"{name}: for a batched input, .* must have shape \(2, 2, 4\)"):
        m(z(L, N, H_IN), hx)
    bad = z(2, N, H)  # a batched state for an unbatched input
    hx = (z(2, H), bad) if name == "LSTM" else bad
    with pytest.raises(ValueError, match=rf"{name}: for an unbatched input, .* must have shape \(2, 4\)"):
        m(z(L, H_IN), hx)
    if name == "LSTM":
        with pytest.raises(TypeError, match="LSTM: hx must be a pair"):
            m(z(L, N, H_IN), z(2, N, H))
    for kwargs in ({"hidden_size": 0}, {"num_layers": 0}, {"dropout": 1.5}):
        args = {"input_size": H_IN, "hidden_size": H, **kwargs}
        with pytest.raises(ValueError, match=f"{name}: "):
            getattr(rnn, name)(**args)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_cell_errors_name_the_layer(name: str) -> None:
    b = BACKENDS[0]
    m = getattr(rnn, name)(H_IN, H, backend=b)
    z = lambda *s: ag.zeros(s, dtype=ag.float64, device=b)  # noqa: E731
    with pytest.raises(ValueError, match=f"{name}: expected input"):
        m(z(N, 5))
    with pytest.raises(ValueError, match=f"{name}: expected input"):
        m(z(1, N, H_IN))
    hx = (z(3, H), z(N, H)) if name == "LSTMCell" else z(3, H)
    with pytest.raises(ValueError, match=rf"{name}: for a batched input, .* must have shape \(2, 4\)"):
        m(z(N, H_IN), hx)
    with pytest.raises(ValueError, match=f"{name}: hidden_size"):
        getattr(rnn, name)(H_IN, 0)
