"""Composites through the public API: softmax / log_softmax / logsumexp, relu / gelu / silu and the
other activations, one_hot, layer_norm, batch_norm, cross_entropy, scaled_dot_product_attention,
mse_loss, dropout and the fused Adam update (`adam_step`); the gradient composites (`*_grad`). References are float64 NumPy, or
torch.nn.functional in float64 for gelu, the norms, cross_entropy and attention (those tests skip,
with the reason, when torch is missing). Every backend override of a composite is checked against
the base-class default (bitcast's too; its values are checked in test_dtypes)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.backends.base import COMPOSITES, Backend
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

COVERS = set(COMPOSITES)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _torch():
    return pytest.importorskip("torch", reason="torch.nn.functional is the reference for this composite")


def T(a: np.ndarray):
    torch = _torch()
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _tol(dtype: dtypes.DType) -> dict:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype is ag.float32 else {}


def _softmax(a: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        m = a.max(axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return a - (np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m)


# ====================================================================== softmax family
@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_softmax_and_log_softmax(backend: ag.Device, axis: int, dtype: dtypes.DType) -> None:
    a = (rng(1).standard_normal((3, 4, 5)) * 3).astype(_np(dtype))
    h = a.astype(np.float64)
    for x in (tensor(backend, a), noncontiguous(backend, a)):
        assert_close(ag.softmax(x, axis=axis), _softmax(h, axis), dtype=dtype, **_tol(dtype))
        assert_close(ag.functional.softmax(x, axis=axis), _softmax(h, axis), dtype=dtype, **_tol(dtype))
        assert_close(ag.log_softmax(x, axis=axis), _log_softmax(h, axis), dtype=dtype, **_tol(dtype))
    s = ag.softmax(tensor(backend, a), axis=axis).numpy().astype(np.float64)
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=1e-5)


def test_softmax_extremes_and_shapes(backend: ag.Device) -> None:
    big = np.array(
        [[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 0.0]]
    )
    for dtype in (ag.float32, ag.float64):
        x = tensor(backend, big.astype(_np(dtype)))
        want = _softmax(big, 1)  # an all -inf row (or +inf) has no distribution: NaN, as torch
        assert_close(ag.softmax(x, axis=1), want, dtype=dtype)
        assert_close(ag.log_softmax(x[:3], axis=1), _log_softmax(big[:3], 1), dtype=dtype)
        assert np.isnan(ag.log_softmax(x[3:], axis=1).numpy()[0, 0]), "log_softmax at +inf is NaN"
    row = tensor(backend, big[0])  # 1-D, the default axis (-1)
    assert_close(ag.functional.softmax(row), [1.0, 0.0, 0.0])
    assert_close(ag.functional.log_softmax(row), [0.0, -1000.0, -2000.0])
    assert_close(ag.softmax(tensor(backend, big[:2])), _softmax(big[:2], -1))
    one = np.array([[2.0], [-7.0]])
    assert_close(ag.softmax(tensor(backend, one), axis=1), [[1.0], [1.0]])
    assert_close(ag.log_softmax(tensor(backend, one), axis=1), [[0.0], [0.0]])
    for shape, axis in (((0, 3), 1), ((0, 3), 0), ((2, 0), 1)):
        z = np.zeros(shape, np.float32)
        assert_close(ag.softmax(tensor(backend, z), axis=axis), z, dtype=ag.float32)
        assert_close(ag.log_softmax(tensor(backend, z), axis=axis), z, dtype=ag.float32)
    ints = np.array([[1, 2, 3]])
    assert_close(
        ag.softmax(tensor(backend, ints), axis=1), _softmax(ints.astype(np.float64), 1), dtype=ag.float32
    )


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
def test_softmax_half_precision(backend: ag.Device, dtype: dtypes.DType) -> None:
    a = rng(2).standard_normal((4, 6)).astype(_np(dtype))
    h = a.astype(np.float64)
    tol = 2e-2 if dtype is ag.bfloat16 else 3e-3
    assert_close(ag.softmax(tensor(backend, a), axis=1), _softmax(h, 1), dtype=dtype, rtol=tol, atol=tol)
    assert_close(
        ag.log_softmax(tensor(backend, a), axis=1), _log_softmax(h, 1), dtype=dtype, rtol=tol, atol=tol
    )
    assert_close(
        ag.logsumexp(tensor(backend, a), axis=1), np.log(np.exp(h).sum(1)), dtype=dtype, rtol=tol, atol=tol
    )


# ====================================================================== activations
ACTIVATIONS = {
    "relu": (lambda x: ag.functional.relu(x), lambda a: np.maximum(a, 0.0)),
    "gelu": (lambda x: ag.functional.gelu(x), lambda a: 0.5 * a * (1 + _erf(a / math.sqrt(2)))),
    "gelu_tanh": (
        lambda x: ag.functional.gelu(x, approximate="tanh"),
        lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3))),
    ),
    "silu": (lambda x: ag.functional.silu(x), lambda a: a / (1 + np.exp(-a))),
    "leaky_relu": (lambda x: ag.functional.leaky_relu(x, 0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
    "elu": (
        lambda x: ag.functional.elu(x, 1.5),
        lambda a: np.where(a > 0, a, 1.5 * np.expm1(np.minimum(a, 0))),
    ),
    "elu_default_alpha": (
        lambda x: ag.functional.elu(x),
        lambda a: np.where(a > 0, a, np.expm1(np.minimum(a, 0))),
    ),
    "softplus": (
        lambda x: ag.functional.softplus(x),
        lambda a: np.where(a > 20, a, np.log1p(np.exp(np.minimum(a, 20)))),
    ),
    "softplus_beta": (
        lambda x: ag.functional.softplus(x, beta=2.0, threshold=5.0),
        lambda a: np.where(2 * a > 5, a, np.log1p(np.exp(np.minimum(2 * a, 5))) / 2),
    ),
    "sigmoid": (lambda x: ag.functional.sigmoid(x), lambda a: 1 / (1 + np.exp(-a))),
    "tanh": (lambda x: ag.functional.tanh(x), np.tanh),
}


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64, ag.float16, ag.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations(backend: ag.Device, name: str, dtype: dtypes.DType) -> None:
    fn, ref = ACTIVATIONS[name]
    a = (rng(3).standard_normal((4, 6)) * 4).astype(_np(dtype))
    a[0, :4] = [0.0, -0.0, 30.0, -30.0]
    with np.errstate(over="ignore"):
        want = ref(a.astype(np.float64))
    assert_close(fn(tensor(backend, a)), want, dtype=dtype, **_tol(dtype))
    assert_close(fn(noncontiguous(backend, a)), want, dtype=dtype, **_tol(dtype))
    assert_close(fn(tensor(backend, a[:0])), np.zeros((0, 6)), dtype=dtype)


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh", "silu"])
def test_activations_against_torch_and_special_values(backend: ag.Device, name: str) -> None:
    torch = _torch()
    fn, _ = ACTIVATIONS[name]
    a = np.array([-np.inf, -5.0, -0.5, -0.0, 0.0, 0.5, 5.0, np.inf, np.nan])
    tfn = {
        "relu": torch.relu,
        "gelu": torch.nn.functional.gelu,
        "silu": torch.nn.functional.silu,
        "gelu_tanh": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
    }[name]
    want = tfn(T(a)).numpy()
    got = fn(tensor(backend, a))
    assert_close(got, want, dtype=ag.float64)
    assert ag.isnan(got).numpy()[-1], f"{name}(NaN) must be NaN"
    assert_close(fn(tensor(backend, np.array([1, -2, 3]))), tfn(T([1, -2, 3])).numpy(), dtype=ag.float32)


# ====================================================================== norms
@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize(
    "case",
    [
        ((2, 3, 4), (4,), True),
        ((2, 3, 4), (3, 4), True),
        ((2, 3, 4), (3, 4), False),
        ((5, 6), 6, False),
        ((1, 2, 3, 4), (2, 3, 4), True),
        ((7,), (7,), True),
    ],
    ids=str,
)
def test_layer_norm(backend: ag.Device, case: tuple, dtype: dtypes.DType) -> None:
    torch = _torch()
    shape, norm_shape, affine = case
    r = rng(4)
    a = (r.standard_normal(shape) * 2 + 3).astype(_np(dtype))
    ns = (norm_shape,) if isinstance(norm_shape, int) else norm_shape
    w = r.standard_normal(ns).astype(_np(dtype)) if affine else None
    b = r.standard_normal(ns).astype(_np(dtype)) if affine else None
    for eps in (1e-5, 0.1):
        want = torch.nn.functional.layer_norm(
            T(a), ns, None if w is None else T(w), None if b is None else T(b), eps
        )
        args = [None if v is None else tensor(backend, v) for v in (w, b)]
        got = ag.functional.layer_norm(tensor(backend, a), norm_shape, *args, eps=eps)
        assert_close(
            got,
            want.numpy(),
            dtype=dtype,
            rtol=1e-4 if dtype is ag.float32 else None,
            atol=1e-5 if dtype is ag.float32 else None,
        )
        got = ag.functional.layer_norm(noncontiguous(backend, a), norm_shape, *args, eps=eps)
        assert_close(
            got,
            want.numpy(),
            dtype=dtype,
            rtol=1e-4 if dtype is ag.float32 else None,
            atol=1e-5 if dtype is ag.float32 else None,
        )


def test_layer_norm_constant_input_and_half(backend: ag.Device) -> None:
    c = np.full((2, 4), 3.0)
    b = np.array([0.5, -1.0, 2.0, 0.0])
    got = ag.functional.layer_norm(tensor(backend, c), 4, tensor(backend, np.ones(4)), tensor(backend, b))
    assert_close(got, np.broadcast_to(b, (2, 4)))  # zero variance: eps keeps it finite, the bias remains
    for dtype in (ag.float16, ag.bfloat16):
        a = rng(5).standard_normal((3, 8)).astype(_np(dtype))
        h = a.astype(np.float64)
        want = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-5)
        tol = 5e-2 if dtype is ag.bfloat16 else 1e-2
        assert_close(ag.functional.layer_norm(tensor(backend, a), 8), want, dtype=dtype, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 4), (2, 3, 2, 2, 2)], ids=str)
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm(backend: ag.Device, shape: tuple, training: bool, dtype: dtypes.DType) -> None:
    torch = _torch()
    r = rng(6)
    a = (r.standard_normal(shape) * 2 - 1).astype(_np(dtype))
    mean, var = r.standard_normal(3).astype(_np(dtype)), r.uniform(0.5, 2, 3).astype(_np(dtype))
    w, b = r.standard_normal(3).astype(_np(dtype)), r.standard_normal(3).astype(_np(dtype))
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype is ag.float32 else {}
    for affine in (True, False):
        wa, ba = (w, b) if affine else (None, None)
        want = torch.nn.functional.batch_norm(
            T(a),
            T(mean),
            T(var),
            None if wa is None else T(wa),
            None if ba is None else T(ba),
            training=training,
            eps=1e-3,
        ).numpy()
        args = [None if v is None else tensor(backend, v) for v in (mean, var, wa, ba)]
        got = ag.functional.batch_norm(tensor(backend, a), *args, training=training, eps=1e-3)
        assert_close(got, want, dtype=dtype, **tol)
        got = ag.functional.batch_norm(noncontiguous(backend, a), *args, training=training, eps=1e-3)
        assert_close(got, want, dtype=dtype, **tol)
    # no running statistics: the batch's own
    want = torch.nn.functional.batch_norm(T(a), None, None, T(w), T(b), training=True).numpy()
    got = ag.functional.batch_norm(tensor(backend, a), None, None, tensor(backend, w), tensor(backend, b))
    assert_close(got, want, dtype=dtype, **tol)


# ====================================================================== cross_entropy
CE_KWARGS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.2},
    {"ignore_index": 1},
    {"weight": True},
    {"weight": True, "reduction": "none"},
    {"weight": True, "label_smoothing": 0.1, "ignore_index": 0},
    {"weight": True, "reduction": "sum", "label_smoothing": 0.3},
]


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3), (4,)], ids=str)
@pytest.mark.parametrize("kwargs", CE_KWARGS, ids=str)
def test_cross_entropy(backend: ag.Device, kwargs: dict, shape: tuple) -> None:
    torch = _torch()
    F = torch.nn.functional
    r = rng(7)
    logits = r.standard_normal(shape) * 2
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = r.integers(0, 4, tshape)
    if kwargs.get("ignore_index") is not None and target.size > 1:
        target.reshape(-1)[0] = kwargs["ignore_index"]
    weight = r.uniform(0.5, 2.0, 4)
    ag_kw, t_kw = dict(kwargs), dict(kwargs)
    if kwargs.get("weight"):
        ag_kw["weight"], t_kw["weight"] = tensor(backend, weight), T(weight)
    want = F.cross_entropy(T(logits), torch.from_numpy(np.asarray(target)), **t_kw).numpy()
    for dtype in (ag.float32, ag.float64):
        lg = logits.astype(_np(dtype))
        got = ag.cross_entropy(tensor(backend, lg), tensor(backend, target), **ag_kw)
        assert_close(got, want, dtype=dtype, **({"rtol": 1e-5, "atol": 1e-5} if dtype is ag.float32 else {}))
    got = ag.functional.cross_entropy(
        noncontiguous(backend, logits), tensor(backend, target.astype(np.int32)), **ag_kw
    )
    assert_close(got, want, dtype=ag.float64)
    # probability targets (no ignore_index for them in torch)
    probs = r.dirichlet(np.ones(4), tshape)
    probs = np.moveaxis(probs, -1, 1) if len(shape) > 1 else probs
    t_kw.pop("ignore_index", None)
    ag_kw.pop("ignore_index", None)
    want = F.cross_entropy(T(logits), T(probs), **t_kw).numpy()
    assert_close(
        ag.cross_entropy(tensor(backend, logits), tensor(backend, probs), **ag_kw), want, dtype=ag.float64
    )


def test_cross_entropy_edge_cases(backend: ag.Device) -> None:
    torch = _torch()
    F = torch.nn.functional
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    target = np.array([2, 1])
    want = F.cross_entropy(T(logits), torch.from_numpy(target), reduction="none").numpy()
    assert_close(ag.cross_entropy(tensor(backend, logits), tensor(backend, target), reduction="none"), want)
    # every target ignored: the mean of nothing is NaN (torch)
    out = ag.cross_entropy(tensor(backend, logits), tensor(backend, np.array([-100, -100])))
    assert np.isnan(out.item())
    out = ag.cross_entropy(tensor(backend, logits), tensor(backend, np.array([-100, -100])), reduction="sum")
    assert out.item() == 0.0
    # an empty batch
    empty = ag.cross_entropy(
        tensor(backend, np.zeros((0, 3))), tensor(backend, np.zeros(0, np.int64)), reduction="none"
    )
    assert empty.shape == (0,)
    with pytest.raises(ValueError):
        ag.cross_entropy(tensor(backend, logits), tensor(backend, np.array([3, 0])))


# ====================================================================== attention
ATTN = [
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), "none"),
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), "bool"),
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), "additive"),
    ((2, 4, 3), (2, 4, 3), (2, 4, 5), "causal"),
    ((1, 5, 4), (1, 7, 4), (1, 7, 4), "causal"),
    ((2, 6, 4), (2, 6, 4), (2, 6, 4), "causal+bool"),
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), "causal+bool"),
    ((3, 1, 2), (3, 4, 2), (3, 4, 3), "scale"),
    ((2, 5, 4), (2, 6, 4), (2, 6, 2), "bool_broadcast"),
]


@pytest.mark.parametrize("case", ATTN, ids=lambda c: f"{c[0]}-{c[3]}")
def test_scaled_dot_product_attention(backend: ag.Device, case: tuple) -> None:
    torch = _torch()
    F = torch.nn.functional
    qs, ks, vs, mode = case
    r = rng(8)
    q, k, v = r.standard_normal(qs), r.standard_normal(ks), r.standard_normal(vs)
    L, S = qs[-2], ks[-2]
    ag_kw: dict = {}
    t_kw: dict = {}
    if "bool" in mode:
        m = r.random((L, S) if mode != "bool_broadcast" else (qs[0], 1, S)) > 0.4
        m[..., 0] = True  # every query sees at least one key
        ag_kw["attn_mask"], t_kw["attn_mask"] = tensor(backend, m), torch.from_numpy(m)
    if mode == "additive":
        m = r.standard_normal((1, qs[1], L, S))
        ag_kw["attn_mask"], t_kw["attn_mask"] = tensor(backend, m), T(m)
    if "causal" in mode:
        ag_kw["is_causal"] = True
        if "attn_mask" in t_kw:  # torch takes one or the other: fold causality into the mask
            t_kw["attn_mask"] = t_kw["attn_mask"] & torch.ones(L, S, dtype=torch.bool).tril()
        else:
            t_kw["is_causal"] = True
    if mode == "scale":
        ag_kw["scale"] = t_kw["scale"] = 0.3
    want = F.scaled_dot_product_attention(T(q), T(k), T(v), **t_kw).numpy()
    for dtype in (ag.float32, ag.float64):
        args = [tensor(backend, a.astype(_np(dtype))) for a in (q, k, v)]
        got = ag.functional.scaled_dot_product_attention(*args, **ag_kw)
        assert_close(got, want, dtype=dtype, **({"rtol": 1e-4, "atol": 1e-5} if dtype is ag.float32 else {}))
    got = ag.functional.scaled_dot_product_attention(*(noncontiguous(backend, a) for a in (q, k, v)), **ag_kw)
    assert_close(got, want, dtype=ag.float64)


def test_attention_fully_masked_row_and_numpy_reference(backend: ag.Device) -> None:
    r = rng(9)
    q, k, v = r.standard_normal((3, 2)), r.standard_normal((4, 2)), r.standard_normal((4, 3))
    s = q @ k.T / math.sqrt(2)
    want = _softmax(s, 1) @ v
    assert_close(ag.functional.scaled_dot_product_attention(*(tensor(backend, a) for a in (q, k, v))), want)
    mask = np.ones((3, 4), bool)
    mask[1] = False
    mask[2, 1:] = False
    out = ag.functional.scaled_dot_product_attention(
        *(tensor(backend, a) for a in (q, k, v)), attn_mask=tensor(backend, mask)
    ).numpy()
    assert_close(tensor(backend, out[[0, 2]]), np.stack([want[0], v[0]]))
    # a query that sees nothing attends to nothing: zeros, as torch (the base-class default's rule)
    np.testing.assert_array_equal(out[1], np.zeros(3), err_msg=f"{backend.name}: fully masked query row")


# ====================================================================== losses and dropout
def test_mse_loss(backend: ag.Device) -> None:
    r = rng(10)
    a, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))  # same shapes: no broadcasting
    d = (a - b) ** 2
    assert_close(ag.functional.mse_loss(tensor(backend, a), tensor(backend, b)), d.mean())
    assert_close(ag.functional.mse_loss(tensor(backend, a), tensor(backend, b), reduction="sum"), d.sum())
    assert_close(ag.functional.mse_loss(tensor(backend, a), tensor(backend, b), reduction="none"), d)


def test_dropout(backend: ag.Device) -> None:
    x = tensor(backend, np.arange(1, 201, dtype=np.float32))
    assert_close(ag.functional.dropout(x, 0.0), x.numpy(), dtype=ag.float32)
    assert_close(ag.functional.dropout(x, 1.0), np.zeros(200), dtype=ag.float32)
    assert_close(ag.functional.dropout(x, 0.7, training=False), x.numpy(), dtype=ag.float32)
    out = ag.functional.dropout(x, 0.25, seed=4).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], x.numpy()[kept] / 0.75, rtol=1e-6)
    assert 0.6 < kept.mean() < 0.9


# ====================================================================== overrides agree with the defaults
def _composite_cases(backend: ag.Device) -> dict:
    r = rng(11)

    def nat(a: np.ndarray) -> object:
        return tensor(backend, a).data

    x = r.standard_normal((3, 4, 5))
    q, k, v = r.standard_normal((2, 4, 3)), r.standard_normal((2, 5, 3)), r.standard_normal((2, 5, 2))
    m = r.random((4, 5)) > 0.3
    m[:, 0] = True
    shapes = [(3, 4), (5,), (2, 3, 2)]

    def lists(make: Any = nat) -> list[list[Any]]:
        """Fresh params, grads, exp_avgs, exp_avg_sqs (>= 0) and max_exp_avg_sqs (>= 0) per case:
        an override may update the moments in place."""
        return [[make(f(r.standard_normal(s))) for s in shapes] for f in (*[lambda a: a] * 3, np.abs, np.abs)]

    def strided(a: np.ndarray) -> Any:
        return noncontiguous(backend, a).data

    hyper = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    ops = backend.ops

    def pooled(shape: tuple, *window: tuple) -> tuple:
        """(g, x, indices, *window): a max_pool_grad case from the backend's own max_pool."""
        xs = nat(r.standard_normal(shape))
        values, indices = ops.max_pool(xs, *window, False)
        return (nat(r.standard_normal(ops.shape(values))), xs, indices, *window, False)

    def convolved(x_shape: tuple, w_shape: tuple, *window: Any) -> tuple:
        """(g, x, w, stride, padding, dilation, groups, wanted): a conv_bias_grad case, g shaped
        as the backend's own conv gives its output."""
        xs, ws = nat(r.standard_normal(x_shape)), nat(r.standard_normal(w_shape))
        out = ops.conv(xs, ws, *window[:4])
        return (nat(r.standard_normal(ops.shape(out))), xs, ws, *window)

    def attended(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Any, causal: bool, scale: Any) -> tuple:
        """(g, q, k, v, out, mask, is_causal, scale): a scaled_dot_product_attention_grad case."""
        args = (nat(q), nat(k), nat(v), None if mask is None else nat(mask), causal, scale)
        out = ops.scaled_dot_product_attention(*args)
        return (nat(r.standard_normal(ops.shape(out))), *args[:3], out, *args[3:])

    return {
        "linear": [
            (nat(x), nat(r.standard_normal((3, 5))), nat(r.standard_normal(3))),
            (nat(x[0, 0]), nat(r.standard_normal((2, 5))), None),
        ],
        "linear_grad": [
            (nat(r.standard_normal((3, 4, 3))), nat(x), nat(r.standard_normal((3, 5))), (True, True, True)),
            (nat(r.standard_normal((3, 4, 3))), nat(x), nat(r.standard_normal((3, 5))), (False, True, False)),
            (nat(r.standard_normal(2)), nat(x[0, 0]), nat(r.standard_normal((2, 5))), (True, True, True)),
            (nat(r.standard_normal((4, 2))), nat(x[0]), nat(r.standard_normal((2, 5))), (True, False, True)),
        ],
        "conv_bias": [
            (
                nat(r.standard_normal((2, 4, 6, 5))),
                nat(r.standard_normal((6, 2, 3, 2))),
                nat(r.standard_normal(6)),
                (1, 2),
                ((1, 1), (0, 0)),
                (1, 1),
                2,
            ),
            (
                nat(r.standard_normal((2, 3, 7))),
                nat(r.standard_normal((4, 3, 3))),
                nat(r.standard_normal(4)),
                (2,),
                ((2, 1),),
                (2,),
                1,
            ),  # uneven padding
        ],
        "conv_bias_grad": [
            convolved((2, 4, 6, 5), (6, 2, 3, 2), (1, 2), ((1, 1), (0, 0)), (1, 1), 2, (True, True, True)),
            convolved((2, 3, 7), (4, 3, 3), (2,), ((2, 1),), (2,), 1, (True, True, False)),  # uneven padding
            convolved((2, 3, 8), (4, 3, 3), (2,), ((0, 2),), (1,), 1, (False, True, True)),
            convolved(
                (1, 2, 4, 4, 3), (2, 2, 2, 2, 2), (1, 1, 1), ((0, 0),) * 3, (1, 1, 1), 1, (True, False, False)
            ),
        ],
        "logsumexp": [(nat(x), (1, 2), False), (nat(x), (0,), True)],
        "softmax": [(nat(x), 1), (nat(x), 2)],
        "log_softmax": [(nat(x), 2), (nat(x), 0)],
        "relu": [(nat(x),)],
        "relu_grad": [(nat(r.standard_normal(x.shape)), nat(np.maximum(x, 0.0)))],
        "max_pool_grad": [
            pooled((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1)),
            pooled((2, 2, 7, 6), (3, 3), (1, 2), (1, 1), (1, 1)),  # overlapping windows add up
            pooled((2, 3, 9), (3,), (2,), (1,), (2,)),
            pooled((1, 2, 4, 5, 4), (2, 2, 2), (2, 1, 2), (0, 1, 0), (1, 1, 1)),
        ],
        "gelu": [(nat(x), "tanh"), (nat(x), "none")],
        "silu": [(nat(x),)],
        "one_hot": [(nat(np.array([0, 3, 1])), 4, ag.float32), (nat(np.array([[2], [0]])), 3, ag.int64)],
        "bitcast": [
            (nat(np.array([1.0, -0.0, np.nan, -np.inf, 3.0e38], np.float32)), ag.int32),
            (nat(np.array([[0x3FF00000, -1], [0x7FF00000, 1]], np.int32)), ag.float32),
            (strided(r.standard_normal((3, 4))), ag.int64),
            (nat(r.standard_normal(6).astype(np.float16)), ag.int16),
            (nat(np.array([0, 1, 2, 255], np.uint8)), ag.bool),
            (nat(np.array([[True, False]])), ag.int8),
        ],
        "layer_norm": [
            (nat(x), 1, nat(r.standard_normal(5)), nat(r.standard_normal(5)), 1e-5),
            (nat(x), 2, None, None, 1e-3),
        ],
        "layer_norm_grad": [
            (
                nat(r.standard_normal(x.shape)),
                nat(x),
                1,
                nat(r.standard_normal(5)),
                nat(r.standard_normal(5)),
                1e-5,
            ),
            (nat(r.standard_normal(x.shape)), nat(x), 2, None, None, 1e-3),
            (nat(r.standard_normal(x.shape)), nat(x), 1, nat(r.standard_normal(5)), None, 1e-5),
        ],
        "batch_norm": [
            (nat(x), nat(r.standard_normal(4)), nat(r.uniform(1, 2, 4)), None, None, 1e-5),
            (
                nat(x),
                nat(r.standard_normal(4)),
                nat(r.uniform(1, 2, 4)),
                nat(r.standard_normal(4)),
                nat(r.standard_normal(4)),
                1e-3,
            ),
        ],
        "cross_entropy": [
            (nat(x), nat(r.integers(0, 4, (3, 5))), None, -100, 0.1, "mean"),
            (nat(x[:, :, 0]), nat(np.array([1, -100, 2])), nat(r.uniform(0.5, 2, 4)), -100, 0.0, "sum"),
            (nat(x), nat(r.integers(0, 4, (3, 5))), None, -100, 0.0, "none"),
        ],
        "cross_entropy_grad": [
            (nat(r.standard_normal(())), nat(x), nat(r.integers(0, 4, (3, 5))), None, -100, 0.1, "mean"),
            (
                nat(r.standard_normal(())),
                nat(x[:, :, 0]),
                nat(np.array([1, -100, 2])),
                nat(r.uniform(0.5, 2, 4)),
                -100,
                0.2,
                "sum",
            ),
            (nat(r.standard_normal((3, 5))), nat(x), nat(r.integers(0, 4, (3, 5))), None, 2, 0.0, "none"),
            (
                nat(r.standard_normal(())),
                nat(x[0, :, 0]),
                nat(np.array(3)),
                nat(r.uniform(0.5, 2, 4)),
                -100,
                0.0,
                "mean",
            ),
        ],
        "scaled_dot_product_attention": [
            (nat(q), nat(k), nat(v), None, True, None),
            (nat(q), nat(k), nat(v), nat(m), False, 0.5),
            (nat(q), nat(k), nat(v), nat(m & (np.arange(4)[:, None] != 2)), False, None),
            (nat(q), nat(k), nat(v), nat(r.standard_normal((4, 5))), False, None),
        ],
        "scaled_dot_product_attention_grad": [
            attended(q, k, v, None, True, None),
            attended(q, k, v, m, False, 0.5),
            attended(q, k, v, m & (np.arange(4)[:, None] != 2), False, None),  # a fully masked row
            attended(q, k, v, r.standard_normal((4, 5)), True, None),
        ],
        "adam_step": [
            (*lists()[:4], None, [1, 1, 1], *hyper.values(), 0.0, False, False),
            (*lists(), [3, 7, 1], 0.02, 0.8, 0.9, 1e-6, 0.1, False, True),  # L2 decay, AMSGrad
            (*lists()[:4], None, [2, 2, 2], 0.05, 0.3, 0.99, 1e-8, 0.5, True, False),  # AdamW, beta1 < 0.5
            (*lists(strided), [5, 5, 5], *hyper.values(), 0.01, True, True),  # strided arrays
        ],
    }


@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_override_matches_the_default(backend: ag.Device, name: str) -> None:
    """A backend may fuse a composite; on the same inputs it must agree with the base-class body."""
    ops = backend.ops
    cases = _composite_cases(backend)
    assert set(cases) == set(COMPOSITES)
    fresh = _composite_cases(backend)[name]  # a fused optimizer update may write its moments
    for i, args in enumerate(cases[name]):
        gots = _arrays(ops, getattr(ops, name)(*args))
        wants = _arrays(ops, getattr(Backend, name)(ops, *fresh[i]))
        assert len(gots) == len(wants), f"{name}: {len(gots)} outputs, the default gives {len(wants)}"
        for got, want in zip(gots, wants):
            assert got.shape == want.shape and got.dtype == want.dtype, (
                f"{name}: {got.shape}/{got.dtype} vs {want.shape}/{want.dtype}"
            )
            np.testing.assert_allclose(
                np.asarray(got, np.float64),
                np.asarray(want, np.float64),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{backend.name}'s {name} differs from the base-class default (case {i})",
            )


def _arrays(ops: Backend, out: object) -> list[np.ndarray]:
    """A composite's result as host arrays, flattening the lists of a multi-tensor update."""
    if isinstance(out, (tuple, list)):
        return [a for part in out if part is not None for a in _arrays(ops, part)]
    return [ops.to_numpy(out)]


def test_fused_optimizer_update_writes_only_its_own_buffers(backend: ag.Device) -> None:
    """adam_step may update the moments in place (the optimizer owns them) but never the
    parameters or gradients, which other tensors may share, and its results are fresh arrays."""
    ops = backend.ops
    for args in _composite_cases(backend)["adam_step"]:
        params, grads = args[0], args[1]
        before = [ops.to_numpy(a).copy() for a in (*params, *grads)]
        new_p = ops.adam_step(*args)[0]
        for a, b in zip((*params, *grads), before):
            np.testing.assert_array_equal(
                ops.to_numpy(a), b, err_msg=f"{backend.name}: adam_step wrote an input"
            )
        assert all(n is not p for n, p in zip(new_p, params)), "adam_step returned a parameter's own array"
        assert not any(np.array_equal(ops.to_numpy(n), b) for n, b in zip(new_p, before)), "no update"


def test_optimizer_state_dict_is_a_snapshot(backend: ag.Device) -> None:
    """Adam's state buffers may be updated in place, so state_dict() hands out copies: a saved
    state stays as it was while training goes on, and a loaded one is not shared with its source."""
    w = ag.nn.Parameter(tensor(backend, rng(13).standard_normal((3, 2))))
    opt = ag.optim.Adam([w], lr=0.1)
    kept = w.detach()
    w_before = kept.numpy().copy()

    def step() -> None:
        opt.zero_grad()
        ((w * w).sum() + w.sum()).backward()
        opt.step()

    step()
    np.testing.assert_array_equal(
        kept.numpy(), w_before, err_msg="an optimizer step wrote a detached parameter"
    )
    saved = opt.state_dict()
    moment = saved["state"][0]["exp_avg"].numpy().copy()
    other = ag.optim.Adam([ag.nn.Parameter(w.detach())], lr=0.1)
    other.load_state_dict(saved)
    step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"].numpy(), moment)
    np.testing.assert_array_equal(
        other.state[id(other.param_groups[0]["params"][0])]["exp_avg"].numpy(), moment
    )


def test_composites_do_not_mutate_inputs(backend: ag.Device) -> None:
    r = rng(12)
    a = r.standard_normal((2, 3, 4))
    snapshot = a.copy()
    x = tensor(backend, a)
    w = tensor(backend, np.ones(4))
    tgt = tensor(backend, np.array([[0, 1, 2, 0], [2, 2, 1, 0]]))
    fns = [
        lambda t: ag.softmax(t, axis=1),
        lambda t: ag.log_softmax(t, axis=-1),
        lambda t: ag.logsumexp(t, axis=0),
        ag.functional.relu,
        ag.functional.gelu,
        ag.functional.silu,
        lambda t: ag.functional.layer_norm(t, 4, w, w),
        lambda t: ag.functional.batch_norm(t, None, None, training=True),
        lambda t: ag.cross_entropy(t, tgt),
        lambda t: ag.functional.scaled_dot_product_attention(t, t, t, is_causal=True),
    ]
    for fn in fns:
        fn(x)
        np.testing.assert_array_equal(x.numpy(), snapshot)
