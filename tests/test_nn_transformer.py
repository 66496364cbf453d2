"""MultiheadAttention and the Transformer layers against torch.nn with the same weights (float64, eval
mode): outputs, attention weights, input and parameter gradients, masks of every kind, state_dict keys
and argument errors, on every available backend."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic.nn import transformer as T

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()
pytestmark = [  # torch's own notes on mixed bool/float masks and its nested-tensor fast path
    pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
]
TOL = {"rtol": 1e-9, "atol": 1e-9}
E, H, L, S, N = 8, 2, 4, 5, 2  # embed dim, heads, target and source lengths, batch
CAUSAL = np.triu(np.ones((L, L), bool), 1)
KPM = np.zeros((N, S), bool)
KPM[1, 3:] = True  # the second sample's last two keys are padding


def _pair(name: str, args: tuple, kwargs: dict, backend: ag.Device, seed: int = 0) -> tuple[Any, Any]:
    """Our module on `backend` (float64, eval) holding the torch twin's randomized weights."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(*args, **kwargs).double().eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.5, 0.5)
    ours = getattr(T, name)(*args, **kwargs, backend=backend)
    ours.to(dtype=ag.float64)
    ours.eval()
    missing, unexpected = ours.load_state_dict(theirs.state_dict())
    assert missing == [] and unexpected == []
    return ours, theirs


def _run_both(
    ours: Any, theirs: Any, backend: ag.Device, inputs: list[np.ndarray], masks: dict, kwargs: dict
) -> None:
    """Call both with the same inputs (gradients wanted) and masks (numpy, passed by keyword); compare
    every output, then the gradients of a random projection of the outputs."""
    t_in = [torch.tensor(x, requires_grad=True) for x in inputs]
    t_masks = {k: torch.tensor(v) for k, v in masks.items()}
    t_out = theirs(*t_in, **t_masks, **kwargs)
    a_in = [backend.tensor(x, dtype=ag.float64, requires_grad=True) for x in inputs]
    a_masks = {k: backend.tensor(v) for k, v in masks.items()}
    a_out = ours(*a_in, **a_masks, **kwargs)
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    a_out = a_out if isinstance(a_out, tuple) else (a_out,)
    assert len(t_out) == len(a_out)
    rng = np.random.default_rng(7)
    t_loss, a_loss = 0, 0
    for a, t in zip(a_out, t_out):
        if t is None:
            assert a is None
            continue
        assert a.device is backend and a.shape == tuple(t.shape)
        np.testing.assert_allclose(a.numpy(), t.detach().numpy(), **TOL)
        g = rng.standard_normal(tuple(t.shape))
        t_loss = t_loss + (t * torch.tensor(g)).sum()
        a_loss = a_loss + (a * backend.tensor(g, dtype=ag.float64)).sum()
    t_loss.backward()
    a_loss.backward()
    for a, t in zip(a_in, t_in):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), **TOL)
    tparams = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(tparams)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[n].grad.numpy(), err_msg=n, **TOL)


def _x(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# (id, constructor kwargs, input shapes (query, key, value), masks, forward kwargs)
MHA_CASES: list[tuple[str, dict, list[tuple[int, ...]], dict, dict]] = [
    ("self-seq-first-averaged", {}, [(L, N, E)] * 3, {}, {}),
    ("cross-kdim-vdim-batch-first-kpm-per-head", {"kdim": 6, "vdim": 3, "batch_first": True},
     [(N, L, E), (N, S, 6), (N, S, 3)], {"key_padding_mask": KPM}, {"average_attn_weights": False}),
    ("bool-attn-mask-2d", {}, [(L, N, E), (S, N, E), (S, N, E)],
     {"attn_mask": np.triu(np.ones((L, S), bool), 2)}, {}),
    ("float-masks-3d-no-weights", {"batch_first": True}, [(N, L, E), (N, S, E), (N, S, E)],
     {"attn_mask": _x(N * H, L, S, seed=3), "key_padding_mask": np.where(KPM, -1e4, 0.5)},
     {"need_weights": False}),
    ("is-causal-sdpa", {}, [(L, N, E)] * 3, {"attn_mask": CAUSAL}, {"is_causal": True, "need_weights": False}),
    ("is-causal-weights-kpm", {"batch_first": True}, [(N, L, E)] * 3,
     {"attn_mask": CAUSAL, "key_padding_mask": KPM[:, :L]}, {"is_causal": True}),
    ("unbatched-3d-mask-nobias", {"bias": False}, [(L, E), (S, E), (S, E)],
     {"attn_mask": np.triu(np.ones((H, L, S), bool), 1), "key_padding_mask": KPM[1]},
     {"average_attn_weights": False}),
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_torch(case: tuple, backend: ag.Device) -> None:
    _, ctor, shapes, masks, kwargs = case
    ours, theirs = _pair("MultiheadAttention", (E, H), ctor, backend)
    inputs = [_x(*s, seed=i + 1) for i, s in enumerate(shapes)]
    _run_both(ours, theirs, backend, inputs, masks, kwargs)


LAYER_CASES = [
    ("post-norm-relu", {}),
    ("pre-norm-gelu-batch-first", {"norm_first": True, "activation": "gelu", "batch_first": True}),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_encoder_layer_matches_torch(case: tuple, backend: ag.Device) -> None:
    kw = {"dim_feedforward": 16, **case[1]}
    ours, theirs = _pair("TransformerEncoderLayer", (E, H), kw, backend)
    bf = kw.get("batch_first", False)
    src = _x(*((N, S, E) if bf else (S, N, E)))
    masks = {"src_mask": _x(S, S, seed=4), "src_key_padding_mask": KPM}
    _run_both(ours, theirs, backend, [src], masks, {})


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_decoder_layer_matches_torch(case: tuple, backend: ag.Device) -> None:
    kw = {"dim_feedforward": 16, **case[1]}
    ours, theirs = _pair("TransformerDecoderLayer", (E, H), kw, backend)
    bf = kw.get("batch_first", False)
    tgt, mem = _x(*((N, L, E) if bf else (L, N, E))), _x(*((N, S, E) if bf else (S, N, E)), seed=2)
    masks = {"tgt_mask": CAUSAL, "memory_key_padding_mask": KPM, "memory_mask": _x(L, S, seed=5)}
    _run_both(ours, theirs, backend, [tgt, mem], masks, {})


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_two_layer_transformer_with_masks_matches_torch(backend: ag.Device) -> None:
    kw = {"d_model": E, "nhead": H, "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": 16}
    ours, theirs = _pair("Transformer", (), kw, backend)
    tgt_mask = T.Transformer.generate_square_subsequent_mask(L, device=backend, dtype=ag.float64)
    np.testing.assert_array_equal(
        tgt_mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64)
    )
    masks = {
        "tgt_mask": tgt_mask.numpy(),
        "src_key_padding_mask": KPM,
        "memory_key_padding_mask": KPM,
        "tgt_key_padding_mask": np.zeros((N, L), bool),
    }
    _run_both(ours, theirs, backend, [_x(S, N, E), _x(L, N, E, seed=2)], masks, {})


STATE_CASES = [
    ("MultiheadAttention", (E, H), {}),
    ("MultiheadAttention", (E, H), {"kdim": 3, "vdim": 5, "bias": False}),
    ("TransformerEncoderLayer", (E, H), {"dim_feedforward": 16, "bias": False}),
    ("TransformerDecoderLayer", (E, H), {"dim_feedforward": 16}),
    ("Transformer", (), {"d_model": E, "nhead": H, "num_encoder_layers": 2, "num_decoder_layers": 1,
                         "dim_feedforward": 16}),
]  # fmt: skip


@pytest.mark.parametrize("case", STATE_CASES, ids=lambda c: c[0] if isinstance(c, tuple) else str(c))
def test_state_dict_keys_and_shapes_match_torch(case: tuple) -> None:
    name, args, kwargs = case
    ours, theirs = getattr(T, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)


def test_stacks_hold_independent_copies_and_torch_init() -> None:
    layer = T.TransformerEncoderLayer(E, H, dim_feedforward=16)
    enc = T.TransformerEncoder(layer, 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a is not layer and a is not b
    assert a.linear1.weight is not b.linear1.weight
    np.testing.assert_array_equal(a.linear1.weight.numpy(), layer.linear1.weight.numpy())
    b.linear1.weight.assign(b.linear1.weight * 0)
    assert np.any(a.linear1.weight.numpy() != 0)
    mha = T.MultiheadAttention(E, H)
    assert not np.any(mha.in_proj_bias.numpy()) and not np.any(mha.out_proj.bias.numpy())
    bound = np.sqrt(6.0 / (E + 3 * E))  # xavier_uniform_ on (3E, E)
    w = mha.in_proj_weight.numpy()
    assert np.all(np.abs(w) <= bound) and np.abs(w).max() > bound / 2


def test_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match="MultiheadAttention: embed_dim=6 must be divisible by num_heads=4"):
        T.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="TransformerEncoderLayer: activation"):
        T.TransformerEncoderLayer(E, H, activation="tanh")
    mha = T.MultiheadAttention(E, H)
    x = ag.asarray(_x(L, N, E)).astype(ag.float32)
    with pytest.raises(ValueError, match=r"MultiheadAttention: 2-D attn_mask must have shape \(4, 4\)"):
        mha(x, x, x, attn_mask=ag.asarray(np.zeros((L, L + 1), bool)))
    with pytest.raises(ValueError, match=r"MultiheadAttention: 3-D attn_mask must have shape \(4, 4, 4\)"):
        mha(x, x, x, attn_mask=ag.asarray(np.zeros((H, L, L), bool)))
    with pytest.raises(ValueError, match=r"MultiheadAttention: key_padding_mask must have shape \(2, 4\)"):
        mha(x, x, x, key_padding_mask=ag.asarray(np.zeros((L, N), bool)))
    with pytest.raises(TypeError, match="MultiheadAttention: only bool and floating attn_mask"):
        mha(x, x, x, attn_mask=ag.asarray(np.zeros((L, L), np.int64)))
    with pytest.raises(ValueError, match=r"MultiheadAttention: is_causal .* needs attn_mask"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="MultiheadAttention: expected query, key and value feature"):
        mha(x, x[..., :3], x)
    model = T.Transformer(E, H, 1, 1, 16)
    with pytest.raises(ValueError, match="Transformer: the batch sizes"):
        model(x, ag.asarray(_x(L, N + 1, E)).astype(ag.float32))


def test_deepcopy_keeps_backend_and_values() -> None:
    for backend in BACKENDS:
        m = T.MultiheadAttention(E, H, backend=backend)
        c = copy.deepcopy(m)
        assert c.backend is backend and c.in_proj_weight is not m.in_proj_weight
        np.testing.assert_array_equal(c.in_proj_weight.numpy(), m.in_proj_weight.numpy())


def test_attention_dropout_applies_only_in_training() -> None:
    ag.manual_seed(0)
    mha = T.MultiheadAttention(E, H, dropout=0.5, backend="numpy")
    x = ag.asarray(_x(L, N, E)).astype(ag.float32)
    out_eval, w_eval = mha.eval()(x, x, x)
    np.testing.assert_allclose(w_eval.numpy().sum(-1), 1.0, rtol=1e-6)
    out_train, _ = mha.train()(x, x, x, need_weights=False)
    assert out_train.shape == out_eval.shape and np.all(np.isfinite(out_train.numpy()))
    assert not np.allclose(out_train.numpy(), out_eval.numpy())
