"""`agnostic.compat.torch.nn` (functional, layers, init) and `.optim` against torch itself, on every
available backend: torch's signatures and defaults, torch's pad semantics, sdpa's extra arguments,
a small CNN and an optimizer run loaded from torch's weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.compat.torch as ct
import agnostic.compat.torch.nn as cnn
from agnostic.compat.torch.nn import functional as CF

torch = pytest.importorskip("torch", reason="the reference is torch itself (pip install torch)")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)

rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 6, 5))
L = rng.standard_normal((4, 5))
T = np.array([0, 4, -1, 2])
Q = rng.standard_normal((2, 4, 3, 8))
KV = rng.standard_normal((2, 2, 5, 8))
K4 = rng.standard_normal((2, 4, 5, 8))
MASK = rng.uniform(size=(3, 5)) > 0.3
WEMB = rng.standard_normal((6, 3))
IDS = np.array([[1, 0, 5], [0, 2, 2]])
CONV_W = rng.standard_normal((4, 3, 3, 3))


def _t(a):
    return torch.tensor(a, requires_grad=np.issubdtype(np.asarray(a).dtype, np.floating))


# Each case: (id, fn(F, t), inputs) with F the functional namespace, t its tensor maker; float64
# inputs get gradients compared as well.
CASES = [
    ("relu-inplace", lambda F, t, x: F.relu(x * 1, inplace=True), [L]),
    ("relu6", lambda F, t, x: F.relu6(x * 4), [L]),
    ("silu", lambda F, t, x: F.silu(x, inplace=False), [L]),
    ("leaky_relu", lambda F, t, x: F.leaky_relu(x * 1, 0.2, inplace=True), [L]),
    ("elu", lambda F, t, x: F.elu(x, alpha=0.5), [L]),
    ("gelu-tanh", lambda F, t, x: F.gelu(x, approximate="tanh"), [L]),
    ("softmax", lambda F, t, x: F.softmax(x, dim=-1), [X]),
    ("log_softmax-dtype", lambda F, t, x: F.log_softmax(x, dim=1, dtype=t.float32), [X]),
    ("cross_entropy", lambda F, t, x: F.cross_entropy(x, t.tensor(T), ignore_index=-1), [L]),
    ("cross_entropy-smoothing", lambda F, t, x: F.cross_entropy(x, t.tensor(T.clip(0)), label_smoothing=0.1, reduction="sum"), [L]),
    ("cross_entropy-legacy-reduce", lambda F, t, x: F.cross_entropy(x, t.tensor(T.clip(0)), reduce=False), [L]),
    ("nll_loss", lambda F, t, x: F.nll_loss(F.log_softmax(x, 1), t.tensor(T), ignore_index=-1), [L]),
    ("mse_loss-size_average", lambda F, t, x, y: F.mse_loss(x, y, size_average=False), [L, L[::-1].copy()]),
    ("l1_loss", lambda F, t, x, y: F.l1_loss(x, y), [L, L.T[:4, :4].repeat(2, 1)[:, :5].copy()]),
    ("bce_with_logits", lambda F, t, x, y: F.binary_cross_entropy_with_logits(x, y.sigmoid()), [L, L[::-1].copy()]),
    ("linear", lambda F, t, x, w, b: F.linear(x, w, b), [L, L[:3].copy(), L[0, :3].copy()]),
    ("embedding", lambda F, t, w: F.embedding(t.tensor(IDS), w), [WEMB]),
    ("embedding-padding_idx", lambda F, t, w: F.embedding(t.tensor(IDS), w, padding_idx=0), [WEMB]),
    ("layer_norm", lambda F, t, x, w, b: F.layer_norm(x, (5,), w, b, 1e-5), [X, L[0].copy(), L[1].copy()]),
    ("group_norm", lambda F, t, x: F.group_norm(x, 3), [X]),
    ("batch_norm-eval", lambda F, t, x: F.batch_norm(x, t.tensor(L[0, :3]), t.tensor(L[1, :3] ** 2), training=False), [X]),
    ("dropout-eval", lambda F, t, x: F.dropout(x, 0.3, training=False), [X]),
    ("dropout-p0", lambda F, t, x: F.dropout(x, 0.0), [X]),
    ("pad-last-dim", lambda F, t, x: F.pad(x, (1, 2)), [X]),
    ("pad-two-dims-value", lambda F, t, x: F.pad(x, (1, 0, 2, 3), value=-1.5), [X]),
    ("pad-negative-crops", lambda F, t, x: F.pad(x, (-1, 2, 0, -2)), [X]),
    ("pad-reflect", lambda F, t, x: F.pad(x, (2, 1, 1, 2), mode="reflect"), [X]),
    ("pad-replicate", lambda F, t, x: F.pad(x, (3, 1, 0, 2), mode="replicate"), [X]),
    ("pad-circular", lambda F, t, x: F.pad(x, (2, 1, 1, 3), mode="circular"), [X]),
    ("sdpa", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v), [Q, K4, K4[..., ::-1].copy()]),
    ("sdpa-causal-scale", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.2), [Q, K4, K4[..., ::-1].copy()]),
    ("sdpa-bool-mask", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=t.tensor(MASK)), [Q, K4, K4]),
    ("sdpa-float-mask", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v, t.tensor(np.where(MASK, 0.0, -3.0))), [Q, K4, K4]),
    ("sdpa-gqa", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), [Q, KV, KV[..., ::-1].copy()]),
    ("sdpa-dropout-eval", lambda F, t, q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.0), [Q, K4, K4]),
    ("interpolate", lambda F, t, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), [X]),
    ("conv2d", lambda F, t, x, w: F.conv2d(x, w, None, stride=1, padding=1), [X, CONV_W]),
    ("max_pool2d", lambda F, t, x: F.max_pool2d(x, 2), [X]),
    ("avg_pool2d", lambda F, t, x: F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), [X]),
    ("adaptive_avg_pool2d", lambda F, t, x: F.adaptive_avg_pool2d(x, (1, 1)), [X]),
    ("normalize", lambda F, t, x: F.normalize(x, dim=-1), [L]),
    ("one_hot", lambda F, t: F.one_hot(t.tensor(IDS)), []),
    ("one_hot-classes", lambda F, t: F.one_hot(t.tensor(IDS), num_classes=8), []),
]  # fmt: skip


@by_name
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_functional_matches_torch(backend, case):
    _, fn, arrays = case
    tt = [_t(a) for a in arrays]
    ref = fn(TF, torch, *tt)
    with ag.default_backend(backend):
        ours_in = [ct.tensor(a, requires_grad=np.issubdtype(a.dtype, np.floating)) for a in arrays]
        out = fn(CF, ct, *ours_in)
    assert out.shape == tuple(ref.shape) and out.dtype.name == str(ref.dtype).removeprefix("torch.")
    assert out.device is backend
    rtol = 1e-5 if out.dtype is ct.float32 else 1e-6
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=1e-8)
    if not ref.requires_grad:
        return
    seed = np.random.default_rng(1).standard_normal(tuple(ref.shape))
    (ref * torch.tensor(seed)).sum().backward()
    (out * ct.tensor(seed, device=backend)).sum().backward()
    for a, b in zip(ours_in, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-8)


@by_name
def test_sdpa_dropout_p_drops_attention_weights(backend):
    """With values of ones, each output is the sum of the kept weights / (1 - p): 1 on average, and
    never 1 for all rows; dropout_p=1 gives zeros, as torch."""
    q = ct.tensor(rng.standard_normal((1, 1, 400, 4)), device=backend)
    k = ct.tensor(rng.standard_normal((1, 1, 30, 4)), device=backend)
    v = ct.ones(1, 1, 30, 2, dtype=ct.float64, device=backend)
    ct.manual_seed(0)
    out = CF.scaled_dot_product_attention(q, k, v, dropout_p=0.5, is_causal=False).numpy()
    assert abs(out.mean() - 1.0) < 0.1 and out.std() > 0.05
    np.testing.assert_array_equal(out[..., 0], out[..., 1])  # one mask per weight, shared by columns
    zero = CF.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy()
    ref = TF.scaled_dot_product_attention(*(torch.tensor(a.numpy()) for a in (q, k, v)), dropout_p=1.0)
    np.testing.assert_array_equal(zero, ref.numpy())


def test_legacy_reduction_flags_warn_as_torch():
    x, y = ct.ones(2, 3), ct.zeros(2, 3)
    with pytest.warns(UserWarning, match="please use reduction='sum' instead"):
        assert CF.mse_loss(x, y, size_average=False).item() == 6.0
    with pytest.warns(UserWarning, match="please use reduction='none' instead"):
        assert CF.l1_loss(x, y, reduce=False).shape == (2, 3)


def test_functional_errors():
    x = ct.zeros(2, 3)
    with pytest.raises(ValueError, match=r"pad: needs \(before, after\) pairs for at most 2 dims"):
        CF.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="pad: mode must be one of"):
        CF.pad(x, (1, 1), mode="edge")
    with pytest.raises(ValueError, match="pad: value is only used with mode='constant'"):
        CF.pad(x, (1, 1), mode="reflect", value=1.0)
    with pytest.raises(ValueError, match="pad: circular padding"):
        CF.pad(x, (4, 0), mode="circular")
    q = ct.zeros(1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"enable_gqa needs the query's heads \(3\) to be a multiple"):
        CF.scaled_dot_product_attention(q, ct.zeros(1, 2, 2, 4), ct.zeros(1, 2, 2, 4), enable_gqa=True)
    with pytest.raises(ValueError, match="batch_norm: training=True with running statistics"):
        CF.batch_norm(ct.zeros(2, 3), ct.zeros(3), ct.ones(3), training=True)
    with pytest.raises(ValueError, match="divisor_override is not supported"):
        CF.avg_pool2d(ct.zeros(1, 1, 4, 4), 2, divisor_override=3)


# ---------------------------------------------------------------------- layers, init, optimizers
def _net(nn):
    """The same model code for torch.nn and agnostic.compat.torch.nn, as a ported file has it."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                nn.MaxPool2d(2), nn.Dropout(0.1, inplace=False), nn.Flatten(), nn.Linear(4 * 3 * 2, 5),
                nn.SiLU(inplace=True),
            )  # fmt: skip

        def forward(self, x):
            return self.features(x)

    return Net()


@by_name
def test_layers_take_torch_weights_and_match(backend):
    ref = _net(torch.nn)
    with torch.no_grad():
        ref.features[1].running_mean.uniform_(-1, 1)
        ref.features[1].running_var.uniform_(0.5, 2)
    ref.eval()
    with ag.default_backend(backend):
        ours = _net(cnn)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    ours.eval()
    x = X.astype(np.float32)
    np.testing.assert_allclose(
        ours(ct.tensor(x, device=backend)).numpy(),
        ref(torch.tensor(x)).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert "inplace=True" in repr(ours.features[2])


@by_name
def test_init_functions_replace_parameters(backend):
    with ag.default_backend(backend):
        lin = cnn.Linear(200, 300)
    w = lin.weight
    assert cnn.init.zeros_(w) is w and not w.numpy().any()
    cnn.init.ones_(lin.bias)
    assert (lin.bias.numpy() == 1).all()
    cnn.init.constant_(w, 0.25)
    assert (w.numpy() == 0.25).all()
    ct.manual_seed(0)
    cnn.init.normal_(w, mean=0.5, std=0.02)
    assert abs(w.numpy().mean() - 0.5) < 0.002 and abs(w.numpy().std() - 0.02) < 0.002
    cnn.init.xavier_uniform_(w)
    bound = math.sqrt(6 / (200 + 300))
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.95 * bound
    cnn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 300)) < 0.003
    cnn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.numpy()).max() <= 0.5
    assert w.device is backend and w.dtype is ct.float32


@by_name
def test_adamw_param_groups_and_scheduler_match_torch(backend):
    """nanoGPT's configure_optimizers: decay / no-decay groups, betas, fused=, and a cosine schedule;
    three steps give torch's parameters and learning rates."""
    ref = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with ag.default_backend(backend):
        ours = cnn.Sequential(cnn.Linear(5, 4), cnn.Tanh(), cnn.Linear(4, 2))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})

    def groups(model):
        params = dict(model.named_parameters())
        return [
            {"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0},
        ]

    topt = torch.optim.AdamW(groups(ref), lr=0.05, betas=(0.9, 0.95), fused=False)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=4)
    oopt = ct.optim.AdamW(groups(ours), lr=0.05, betas=(0.9, 0.95), fused=False, foreach=None)
    osched = ct.optim.lr_scheduler.CosineAnnealingLR(oopt, T_max=4)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    for _ in range(3):
        topt.zero_grad()
        (ref(torch.tensor(x)) ** 2).mean().backward()
        topt.step()
        tsched.step()
        oopt.zero_grad()
        (ours(ct.tensor(x, device=backend)) ** 2).mean().backward()
        oopt.step()
        osched.step()
        assert osched.get_last_lr() == pytest.approx(tsched.get_last_lr())
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
