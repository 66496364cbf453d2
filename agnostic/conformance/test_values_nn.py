"""Composites, convolution and pooling against their definitions: torch.nn.functional in float64
as the reference (skipped with the reason when torch is not installed), and every backend override
of a composite against the base-class default."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.backends.base import COMPOSITES, Backend
from agnostic.conformance.support import assert_close, rng, tensor

torch = pytest.importorskip("torch", reason="torch is the reference for nn composites")
F = torch.nn.functional

COVERS = set(COMPOSITES) | {"conv", "conv_input_grad", "max_pool", "avg_pool"}


def T(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def test_activations_and_softmax(backend: ag.Device) -> None:
    a = rng(20).standard_normal((3, 5)) * 3
    x = tensor(backend, a)
    fn = ag.functional
    assert_close(fn.relu(x), F.relu(T(a)).numpy())
    assert_close(fn.gelu(x), F.gelu(T(a)).numpy())
    assert_close(fn.gelu(x, approximate="tanh"), F.gelu(T(a), approximate="tanh").numpy())
    assert_close(fn.silu(x), F.silu(T(a)).numpy())
    assert_close(fn.leaky_relu(x, 0.1), F.leaky_relu(T(a), 0.1).numpy())
    assert_close(fn.elu(x), F.elu(T(a)).numpy())
    assert_close(fn.softplus(x), F.softplus(T(a)).numpy())
    for axis in (0, -1):
        assert_close(fn.softmax(x, axis=axis), F.softmax(T(a), dim=axis).numpy())
        assert_close(fn.log_softmax(x, axis=axis), F.log_softmax(T(a), dim=axis).numpy())
    big = tensor(backend, np.array([1000.0, 0.0, -1000.0]))
    assert_close(fn.softmax(big), [1.0, 0.0, 0.0])
    assert_close(fn.log_softmax(big), [0.0, -1000.0, -2000.0])


def test_norms(backend: ag.Device) -> None:
    r = rng(21)
    a = r.standard_normal((2, 3, 4))
    w, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    assert_close(ag.functional.layer_norm(tensor(backend, a), (3, 4), tensor(backend, w), tensor(backend, b)),
                 F.layer_norm(T(a), (3, 4), T(w), T(b)).numpy())  # fmt: skip
    assert_close(ag.functional.layer_norm(tensor(backend, a), 4), F.layer_norm(T(a), (4,)).numpy())
    x = r.standard_normal((4, 3, 5))
    mean, var = r.standard_normal(3), r.uniform(0.5, 2, 3)
    gw, gb = r.standard_normal(3), r.standard_normal(3)
    args = [tensor(backend, v) for v in (mean, var, gw, gb)]
    assert_close(ag.functional.batch_norm(tensor(backend, x), *args, training=False),
                 F.batch_norm(T(x), T(mean), T(var), T(gw), T(gb), training=False).numpy())  # fmt: skip
    assert_close(ag.functional.batch_norm(tensor(backend, x), None, None, args[2], args[3], training=True),
                 F.batch_norm(T(x), None, None, T(gw), T(gb), training=True).numpy())  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2}, {"ignore_index": 1},
     {"weight": True}, {"weight": True, "label_smoothing": 0.1, "ignore_index": 0}],
    ids=str,
)  # fmt: skip
def test_cross_entropy(backend: ag.Device, kwargs: dict) -> None:
    r = rng(22)
    logits = r.standard_normal((6, 4, 2))
    target = r.integers(0, 4, (6, 2))
    weight = r.uniform(0.5, 2.0, 4)
    kw = dict(kwargs)
    ag_kw, t_kw = dict(kw), dict(kw)
    if kw.get("weight"):
        ag_kw["weight"], t_kw["weight"] = tensor(backend, weight), T(weight)
    got = ag.cross_entropy(tensor(backend, logits), tensor(backend, target), **ag_kw)
    want = F.cross_entropy(T(logits), torch.from_numpy(target), **t_kw).numpy()
    assert_close(got, want)
    probs = r.dirichlet(np.ones(4), (6, 2)).transpose(0, 2, 1)
    t_kw.pop("ignore_index", None)
    ag_kw.pop("ignore_index", None)
    assert_close(ag.cross_entropy(tensor(backend, logits), tensor(backend, probs), **ag_kw),
                 F.cross_entropy(T(logits), T(probs), **t_kw).numpy())  # fmt: skip


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "additive", "causal+bool"])
def test_scaled_dot_product_attention(backend: ag.Device, mask: str) -> None:
    r = rng(23)
    q, k, v = (
        r.standard_normal((2, 3, 5, 4)),
        r.standard_normal((2, 3, 6, 4)),
        r.standard_normal((2, 3, 6, 2)),
    )
    bool_mask = r.random((5, 6)) > 0.3
    bool_mask[:, 0] = True
    additive = r.standard_normal((1, 3, 5, 6))
    ag_mask = t_mask = None
    if "bool" in mask:
        ag_mask, t_mask = tensor(backend, bool_mask), torch.from_numpy(bool_mask)
    elif mask == "additive":
        ag_mask, t_mask = tensor(backend, additive), T(additive)
    causal = "causal" in mask
    got = ag.functional.scaled_dot_product_attention(
        tensor(backend, q), tensor(backend, k), tensor(backend, v), attn_mask=ag_mask, is_causal=causal
    )
    if causal and t_mask is not None:
        t_mask, causal = t_mask & torch.ones(5, 6, dtype=torch.bool).tril(), False
    want = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=t_mask, is_causal=causal).numpy()
    assert_close(got, want)


CONV_CASES = [
    (1, {"stride": 2, "padding": 1}), (1, {"dilation": 2, "groups": 2}), (2, {}), (2, {"padding": "same", "dilation": 2}),
    (2, {"stride": (2, 1), "padding": (1, 0), "groups": 2}), (3, {"padding": 1}), (2, {"padding": "valid"}),
]  # fmt: skip


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv(backend: ag.Device, case: tuple) -> None:
    d, kw = case
    r = rng(24)
    x = r.standard_normal((2, 4) + (7,) * d)
    w = r.standard_normal((6, 4 // kw.get("groups", 1)) + (3,) * d)
    b = r.standard_normal(6)
    ours = getattr(ag.functional, f"conv{d}d")(
        tensor(backend, x), tensor(backend, w), tensor(backend, b), **kw
    )
    theirs = getattr(F, f"conv{d}d")(T(x), T(w), T(b), **kw).numpy()
    assert_close(ours, theirs)
    single = getattr(ag.functional, f"conv{d}d")(tensor(backend, x[0]), tensor(backend, w), **kw)
    assert_close(single, getattr(F, f"conv{d}d")(T(x[0]), T(w), **kw).numpy())


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose(backend: ag.Device, d: int) -> None:
    r = rng(25)
    x = r.standard_normal((2, 4) + (4,) * d)
    w = r.standard_normal((4, 3) + (3,) * d)
    kw = {"stride": 2, "padding": 1, "output_padding": 1}
    ours = getattr(ag.functional, f"conv_transpose{d}d")(tensor(backend, x), tensor(backend, w), **kw)
    assert_close(ours, getattr(F, f"conv_transpose{d}d")(T(x), T(w), **kw).numpy())
    wg = r.standard_normal((4, 1) + (2,) * d)
    ours = getattr(ag.functional, f"conv_transpose{d}d")(
        tensor(backend, x), tensor(backend, wg), groups=2, dilation=2
    )
    assert_close(ours, getattr(F, f"conv_transpose{d}d")(T(x), T(wg), groups=2, dilation=2).numpy())


POOL_CASES = [(1, {"kernel_size": 2}), (2, {"kernel_size": 3, "stride": 2, "padding": 1}),
              (2, {"kernel_size": 2, "ceil_mode": True}), (3, {"kernel_size": 2, "stride": 1})]  # fmt: skip


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pooling(backend: ag.Device, case: tuple) -> None:
    d, kw = case
    x = rng(26).standard_normal((2, 3) + (7,) * d)
    vals, idx = getattr(ag.functional, f"max_pool{d}d")(tensor(backend, x), return_indices=True, **kw)
    t_vals, t_idx = getattr(F, f"max_pool{d}d")(T(x), return_indices=True, **kw)
    assert_close(vals, t_vals.numpy())
    assert_close(idx, t_idx.numpy(), dtype=ag.int64)
    for include in (True, False):
        ours = getattr(ag.functional, f"avg_pool{d}d")(tensor(backend, x), count_include_pad=include, **kw)
        assert_close(ours, getattr(F, f"avg_pool{d}d")(T(x), count_include_pad=include, **kw).numpy())
    dil = getattr(ag.functional, f"max_pool{d}d")(tensor(backend, x), 2, dilation=2)
    assert_close(dil, getattr(F, f"max_pool{d}d")(T(x), 2, dilation=2).numpy())


def _default(name: str, ops: Backend, *args: object, **kwargs: object) -> object:
    return getattr(Backend, name)(ops, *args, **kwargs)


def test_every_composite_override_matches_the_default(backend: ag.Device) -> None:
    """A backend may fuse a composite; it must agree with the base-class definition."""
    ops = backend.ops
    r = rng(27)

    def nat(a: np.ndarray) -> object:
        return tensor(backend, a).data

    x = r.standard_normal((3, 4, 5))
    w, b = r.standard_normal(5), r.standard_normal(5)
    q, k, v = r.standard_normal((2, 4, 3)), r.standard_normal((2, 5, 3)), r.standard_normal((2, 5, 2))
    cases = {
        "logsumexp": ((nat(x), (1, 2), False), {}),
        "softmax": ((nat(x), 1), {}),
        "log_softmax": ((nat(x), 2), {}),
        "relu": ((nat(x),), {}),
        "gelu": ((nat(x), "tanh"), {}),
        "silu": ((nat(x),), {}),
        "one_hot": ((nat(np.array([0, 3, 1])), 4, ag.float32), {}),
        "layer_norm": ((nat(x), 1, nat(w), nat(b), 1e-5), {}),
        "batch_norm": ((nat(x), nat(r.standard_normal(4)), nat(r.uniform(1, 2, 4)), None, None, 1e-5), {}),
        "cross_entropy": ((nat(x), nat(r.integers(0, 4, (3, 5))), None, -100, 0.1, "mean"), {}),
        "scaled_dot_product_attention": ((nat(q), nat(k), nat(v), None, True, None), {}),
    }
    assert set(cases) == set(COMPOSITES)
    for name, (args, kwargs) in cases.items():
        if getattr(type(ops), name) is getattr(Backend, name):
            continue  # not overridden: the default is what runs
        got = ops.to_numpy(getattr(ops, name)(*args, **kwargs))
        want = ops.to_numpy(_default(name, ops, *args, **kwargs))
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{backend.name}'s {name} override differs from the default")  # fmt: skip
