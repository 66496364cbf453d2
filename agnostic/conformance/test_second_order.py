"""Second derivatives: Hessian-vector products (ag.grad of <ag.grad(f)(x), v>) against analytic
Hessians and finite differences of the gradient, for elementwise ops, MLPs, softmax and norms,
convolution (double backward through conv_input_grad / conv_weight_grad), pooling; and a
WGAN-GP style gradient penalty backpropagated into the critic's weights."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

F = ag.functional

COVERS = {
    "exp", "log", "sin", "cos", "tanh", "sigmoid", "erf", "sqrt", "rsqrt", "reciprocal", "atan",
    "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh", "tan", "expm1", "log1p", "log2",
    "log10", "square", "abs", "neg", "pow", "div", "mul", "add", "sub", "atan2", "hypot",
    "logaddexp", "maximum", "minimum", "where", "clip", "matmul", "sum", "mean", "prod", "max",
    "var", "cumsum", "cumprod", "softmax", "log_softmax", "logsumexp", "layer_norm",
    "batch_norm", "gelu", "silu", "relu", "cross_entropy", "scaled_dot_product_attention", "conv",
    "conv_input_grad", "conv_weight_grad", "max_pool", "avg_pool", "avg_pool_grad", "getitem",
    "index_add", "take", "take_along_axis", "scatter_add", "concat", "pad", "tile", "repeat",
    "broadcast_to", "reshape", "permute", "cast",
}  # fmt: skip


def _data(shape, lo=-1.0, hi=1.0, seed=0):
    return support.rng(seed).uniform(lo, hi, size=shape)


def _t(backend, a, requires_grad=False):
    return backend.tensor(np.asarray(a, dtype=np.float64), dtype=ag.float64, requires_grad=requires_grad)


def _grad_numpy(backend, f, arrays):
    grads = ag.grad(f)(*(_t(backend, a) for a in arrays))
    return [g.numpy().astype(np.float64) for g in grads]


def hvp(backend, f, arrays, vectors):
    """H v for f's Hessian over all its positional arguments, by nested ag.grad."""
    vs = [_t(backend, v) for v in vectors]

    def directional(*args):
        grads = ag.grad(f)(*args)
        total = None
        for g, v in zip(grads, vs):
            term = (g * v).sum()
            total = term if total is None else total + term
        return total

    return ag.grad(directional)(*(_t(backend, a) for a in arrays))


def check_hvp(backend, f, *arrays, rtol=1e-6, atol=1e-8, eps=1e-5, seed=0):
    """H v by nested reverse mode matches central differences of the gradient along v."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    vectors = [support.rng(seed + 10 + i).standard_normal(a.shape) for i, a in enumerate(arrays)]
    got = hvp(backend, f, arrays, vectors)
    plus = _grad_numpy(backend, f, [a + eps * v for a, v in zip(arrays, vectors)])
    minus = _grad_numpy(backend, f, [a - eps * v for a, v in zip(arrays, vectors)])
    for k, (g, p, m) in enumerate(zip(got, plus, minus)):
        assert g.shape == arrays[k].shape, f"Hv {k}: shape {g.shape} != {arrays[k].shape}"
        assert g.dtype == ag.float64, f"Hv {k}: dtype {g.dtype}"
        np.testing.assert_allclose(
            g.numpy(), (p - m) / (2 * eps), rtol=rtol, atol=atol, err_msg=f"Hv of input {k}"
        )


# ---------------------------------------------------------------------- elementwise, analytic
ANALYTIC = [
    # function, its second derivative, domain
    ("exp", ag.exp, np.exp, (-1, 1)),
    ("log", ag.log, lambda x: -1 / x**2, (0.5, 2)),
    ("sin", ag.sin, lambda x: -np.sin(x), (-2, 2)),
    ("cos", ag.cos, lambda x: -np.cos(x), (-2, 2)),
    ("tanh", ag.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), (-2, 2)),
    ("sigmoid", ag.sigmoid, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s), (-2, 2)),
    ("sqrt", ag.sqrt, lambda x: -0.25 * x**-1.5, (0.5, 2)),
    ("reciprocal", ag.reciprocal, lambda x: 2 / x**3, (0.5, 2)),
    ("cube", lambda x: x**3, lambda x: 6 * x, (-2, 2)),
    ("square", ag.square, lambda x: np.full_like(x, 2.0), (-2, 2)),
    ("erf", ag.erf, lambda x: -4 * x / np.sqrt(np.pi) * np.exp(-(x**2)), (-1.5, 1.5)),
    ("atan", ag.atan, lambda x: -2 * x / (1 + x**2) ** 2, (-2, 2)),
    ("relu_is_piecewise_linear", F.relu, np.zeros_like, (0.1, 1)),
    ("abs_is_piecewise_linear", ag.abs, np.zeros_like, (-1, -0.1)),
]


@pytest.mark.parametrize("name,fn,d2,domain", ANALYTIC, ids=[a[0] for a in ANALYTIC])
def test_elementwise_hessian_is_diagonal_with_analytic_entries(backend, name, fn, d2, domain):
    x = _data((2, 3), *domain)
    v = _data((2, 3), seed=1)
    (hv,) = hvp(backend, lambda a: fn(a).sum(), [x], [v])
    support.assert_close(hv, d2(x) * v, dtype=ag.float64, rtol=1e-9, atol=1e-12)


def test_full_hessian_of_a_quadratic_form(backend):
    """f(x) = x^T A x has Hessian A + A^T: probe it column by column."""
    a = _data((3, 3), seed=2)
    ta = _t(backend, a)
    cols = []
    for i in range(3):
        (hv,) = hvp(backend, lambda x: x @ ta @ x, [_data((3,), seed=3)], [np.eye(3)[i]])
        cols.append(hv.numpy())
    np.testing.assert_allclose(np.stack(cols, axis=1), a + a.T, rtol=1e-12, atol=1e-12)


UNARY_FD = [
    ("tan", ag.tan, (-1, 1)), ("asin", ag.asin, (-0.8, 0.8)), ("acos", ag.acos, (-0.8, 0.8)),
    ("sinh", ag.sinh, (-1, 1)), ("cosh", ag.cosh, (-1, 1)), ("asinh", ag.asinh, (-2, 2)),
    ("acosh", ag.acosh, (1.5, 3)), ("atanh", ag.atanh, (-0.8, 0.8)), ("expm1", ag.expm1, (-1, 1)),
    ("log1p", ag.log1p, (-0.5, 1)), ("log2", ag.log2, (0.5, 2)), ("log10", ag.log10, (0.5, 2)),
    ("rsqrt", ag.rsqrt, (0.5, 2)), ("negative", ag.negative, (-1, 1)),
    ("gelu", F.gelu, (-2, 2)), ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), (-2, 2)),
    ("silu", F.silu, (-2, 2)), ("softplus", F.softplus, (-2, 2)), ("elu", F.elu, (-2, -0.1)),
]  # fmt: skip


@pytest.mark.parametrize("name,fn,domain", UNARY_FD, ids=[u[0] for u in UNARY_FD])
def test_unary_hvp(backend, name, fn, domain):
    c = _t(backend, _data((2, 3), seed=5))
    check_hvp(backend, lambda x: (fn(x) * c).sum(), _data((2, 3), *domain))


BINARY_FD = [
    ("mul", lambda a, b: a * b, (-1, 1), (-1, 1)),
    ("div", lambda a, b: a / b, (-1, 1), (0.5, 2)),
    ("pow", lambda a, b: a**b, (0.5, 2), (-1, 2)),
    ("atan2", ag.atan2, (-1, 1), (0.5, 2)),
    ("hypot", ag.hypot, (0.5, 2), (-2, -0.5)),
    ("logaddexp", ag.logaddexp, (-1, 1), (-1, 1)),
    ("maximum", lambda a, b: ag.maximum(a, b) * a, (-1, 1), (-1, 1)),
    ("minimum", lambda a, b: ag.minimum(a, b) * b, (-1, 1), (-1, 1)),
    ("where", lambda a, b: ag.where(a > b, a * a, b * b * b), (-1, 1), (-1, 1)),
    ("clip", lambda a, b: ag.clip(a * a, -0.5, b) * b, (-1, 1), (0.2, 0.8)),
]


@pytest.mark.parametrize("name,fn,da,db", BINARY_FD, ids=[b[0] for b in BINARY_FD])
def test_binary_hvp_with_broadcasting(backend, name, fn, da, db):
    c = _t(backend, _data((2, 3), seed=5))
    check_hvp(
        backend, lambda a, b: (fn(a, b) * c).sum(), _data((2, 3), *da, seed=1), _data((3,), *db, seed=2)
    )


def test_third_derivative(backend):
    """grad of grad of grad: d^3/dx^3 sum(x^4) = 24 x; d^3/dx^3 sum(sin x) = -cos x."""
    x = _data((4,), seed=3)

    def d(f):
        return lambda a: ag.grad(f)(a)[0].sum()

    (g3,) = ag.grad(d(d(lambda a: (a**4).sum())))(_t(backend, x))
    support.assert_close(g3, 24 * x, dtype=ag.float64)
    (g3,) = ag.grad(d(d(lambda a: ag.sin(a).sum())))(_t(backend, x))
    support.assert_close(g3, -np.cos(x), dtype=ag.float64)


# ---------------------------------------------------------------------- reductions and shape ops
REDUCTION_FD = [
    ("sum_sq", lambda x: (ag.sum(x, axis=1) ** 2).sum()),
    ("mean_exp", lambda x: ag.exp(ag.mean(x, axis=0, keepdims=True)).sum()),
    ("prod", lambda x: ag.prod(x, axis=1).sum()),
    ("prod_with_zero", lambda x: ag.prod(ag.concat([x, x[:, :1] * 0.0], axis=1), axis=1).sum() + ag.prod(x)),
    ("max_sq", lambda x: (ag.max(x, axis=1) ** 2).sum()),
    ("var", lambda x: ag.var(x, axis=1).sum() * ag.var(x)),
    ("std", lambda x: ag.std(x, axis=0, correction=1).sum()),
    ("logsumexp", lambda x: ag.logsumexp(x, axis=1).sum()),
    ("cumsum", lambda x: (ag.cumsum(x, axis=1) ** 3).sum()),
    ("cumprod", lambda x: ag.cumprod(x, axis=1).sum()),
    ("getitem", lambda x: (x[[0, 1, 1], [2, 0, 0]] ** 3).sum() + (x[:, ::2] ** 2).sum()),
    ("take", lambda x: (ag.take(x, ag.asarray([2, 2, 0], device=x.device), axis=1) ** 3).sum()),
    ("take_along_axis", lambda x: (ag.take_along_axis(x, ag.asarray([[1, 1], [0, 2]], device=x.device), axis=1) ** 3).sum()),
    ("scatter_add", lambda x: (ag.scatter_add(x, 1, ag.asarray([[0, 0], [2, 1]], device=x.device), x[:, :2] ** 2) ** 2).sum()),
    ("at_set", lambda x: (x.at[0, 1].set(x[1, 2] ** 2) ** 3).sum()),
    ("pad_reflect", lambda x: (ag.pad(x, ((1, 1), (2, 1)), mode="reflect") ** 3).sum()),
    ("tile_repeat", lambda x: (ag.tile(x, (2, 1)) ** 3).sum() + (ag.repeat(x, 2, axis=1) ** 2 * x.sum()).sum()),
    ("broadcast_permute", lambda x: (ag.broadcast_to(x, (2, 2, 3)).permute(2, 0, 1).reshape(6, 2) ** 3).sum()),
    ("sort", lambda x: (ag.sort(x, axis=1) ** 3 * ag.asarray([1.0, 2.0, 3.0], device=x.device, dtype=ag.float64)).sum()),
    ("cast", lambda x: (x.astype(ag.float32).astype(ag.float64) * 0.0 + x**3).sum()),
]  # fmt: skip


@pytest.mark.parametrize("name,fn", REDUCTION_FD, ids=[r[0] for r in REDUCTION_FD])
def test_reduction_and_indexing_hvp(backend, name, fn):
    check_hvp(backend, fn, _data((2, 3), 0.5, 1.5, seed=4) * np.array([1.0, -1.0, 1.0]))


# ---------------------------------------------------------------------- networks
def _mlp(x, w1, b1, w2, b2):
    return ag.tanh(x @ w1 + b1) @ w2 + b2


def test_mlp_hvp_over_weights_and_input(backend):
    x, y = _data((4, 3), seed=1), _data((4, 2), seed=2)
    params = [_data((3, 5), seed=3), _data((5,), seed=4), _data((5, 2), seed=5), _data((2,), seed=6)]
    ty = _t(backend, y)
    check_hvp(backend, lambda *p: ((_mlp(_t(backend, x), *p) - ty) ** 2).mean(), *params)
    check_hvp(backend, lambda xx: (_mlp(xx, *(_t(backend, p) for p in params)) ** 2).sum(), x)


def test_mlp_hessian_matches_torch(backend):
    torch = pytest.importorskip("torch")
    x = _data((3, 2), seed=1)
    w1, w2 = _data((2, 3), seed=2), _data((3, 1), seed=3)

    def f_torch(flat):
        a, b = flat[:6].reshape(2, 3), flat[6:].reshape(3, 1)
        return (torch.tanh(torch.from_numpy(x) @ a) @ b).pow(2).sum()

    flat = np.concatenate([w1.ravel(), w2.ravel()])
    want = torch.autograd.functional.hessian(f_torch, torch.from_numpy(flat)).numpy()
    tx = _t(backend, x)

    def f(a, b):
        return ((ag.tanh(tx @ a) @ b) ** 2).sum()

    cols = []
    for i in range(flat.size):
        e = np.eye(flat.size)[i]
        hv = hvp(backend, f, [w1, w2], [e[:6].reshape(2, 3), e[6:].reshape(3, 1)])
        cols.append(np.concatenate([h.numpy().ravel() for h in hv]))
    np.testing.assert_allclose(np.stack(cols, axis=1), want, rtol=1e-9, atol=1e-12)


COMPOSITE_FD = [
    ("softmax", lambda x, c: (F.softmax(x, axis=-1) * c).sum()),
    ("softmax_axis0", lambda x, c: (F.softmax(x, axis=0) ** 2 * c).sum()),
    ("log_softmax", lambda x, c: (F.log_softmax(x) * c).sum()),
    ("layer_norm", lambda x, c: (F.layer_norm(x, 3) * c).sum()),
    ("layer_norm_2d", lambda x, c: (F.layer_norm(x, (2, 3)) ** 2 * c).sum()),
    ("batch_norm", lambda x, c: (F.batch_norm(x, None, None, training=True) ** 3 * c).sum()),
    (
        "cross_entropy",
        lambda x, c: F.cross_entropy(x, ag.asarray([2, 0], device=x.device), label_smoothing=0.1),
    ),
    ("cross_entropy_probs", lambda x, c: F.cross_entropy(x, F.softmax(c, axis=-1))),
    ("mse", lambda x, c: F.mse_loss(ag.tanh(x), c)),
]


@pytest.mark.parametrize("name,fn", COMPOSITE_FD, ids=[c[0] for c in COMPOSITE_FD])
def test_composite_hvp(backend, name, fn):
    c = _t(backend, _data((2, 3), seed=7))
    check_hvp(backend, lambda x: fn(x, c), _data((2, 3), seed=8) * 2.0)


def test_layer_norm_hvp_with_affine_parameters(backend):
    x = _data((2, 4), seed=1)
    w, b = _data((4,), seed=2) + 1.0, _data((4,), seed=3)
    c = _t(backend, _data((2, 4), seed=4))
    check_hvp(backend, lambda a, ww, bb: (F.layer_norm(a, 4, ww, bb) ** 2 * c).sum(), x, w, b)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "bool", "additive"])
def test_attention_hvp(backend, mask_kind):
    q, k, v = _data((1, 3, 2), seed=1), _data((1, 3, 2), seed=2), _data((1, 3, 2), seed=3)
    kwargs = {}
    if mask_kind == "causal":
        kwargs["is_causal"] = True
    elif mask_kind == "bool":
        kwargs["attn_mask"] = backend.tensor(
            np.array([[True, False, True], [True, True, False], [False, True, True]])
        )
    elif mask_kind == "additive":
        kwargs["attn_mask"] = _t(backend, _data((3, 3), seed=4))
    c = _t(backend, _data((1, 3, 2), seed=5))
    check_hvp(
        backend, lambda a, b, cc: (F.scaled_dot_product_attention(a, b, cc, **kwargs) ** 2 * c).sum(), q, k, v
    )


# ---------------------------------------------------------------------- convolution and pooling
CONV_FD = [
    ("1d", (1, 2, 5), (2, 2, 3), {"padding": 1}),
    ("1d_stride_dilation_groups", (1, 4, 7), (2, 2, 2), {"stride": 2, "dilation": 2, "groups": 2}),
    ("2d", (1, 1, 4, 4), (2, 1, 2, 2), {"stride": 2, "padding": ((0, 1), (1, 0))}),
    ("2d_same", (1, 2, 3, 3), (1, 2, 2, 2), {"padding": "same"}),
    ("3d", (1, 1, 3, 3, 2), (1, 1, 2, 2, 1), {"padding": 1}),
]


@pytest.mark.parametrize("xs,ws,kwargs", [c[1:] for c in CONV_FD], ids=[c[0] for c in CONV_FD])
def test_conv_hvp_through_input_and_weight_grads(backend, xs, ws, kwargs):
    """The Hessian of sum(c * conv(x, w)^2) over (x, w): the double backward of conv runs through
    the VJPs of conv_input_grad and conv_weight_grad."""
    x, w = _data(xs, seed=1), _data(ws, seed=2)
    out_shape = F.conv(_t(backend, x), _t(backend, w), **kwargs).shape
    c = _t(backend, _data(out_shape, seed=3))
    check_hvp(backend, lambda a, b: (F.conv(a, b, **kwargs) ** 2 * c).sum(), x, w)
    check_hvp(backend, lambda a, b: (ag.tanh(F.conv(a, b, **kwargs)) * c).sum(), x, w)


def test_conv_transpose_hvp(backend):
    x, w = _data((1, 2, 3), seed=1), _data((2, 2, 3), seed=2)
    check_hvp(backend, lambda a, b: (F.conv_transpose1d(a, b, stride=2, padding=1) ** 2).sum(), x, w)
    x, w = _data((1, 2, 2, 2), seed=3), _data((2, 1, 2, 2), seed=4)
    check_hvp(backend, lambda a, b: (ag.sin(F.conv_transpose2d(a, b, stride=2, groups=2))).sum(), x, w)


def test_conv_gradient_of_gradient_is_exact_for_a_bilinear_function(backend):
    """f(x, w) = sum(conv(x, w)) is bilinear, so d/dw <df/dx, v> = conv_weight_grad(v, ones)."""
    x, w, v = _data((1, 1, 4), seed=1), _data((1, 1, 2), seed=2), _data((1, 1, 4), seed=3)
    tv = _t(backend, v)

    def inner(b):
        (gx,) = ag.grad(lambda a: F.conv1d(a, b).sum())(_t(backend, x))
        return (gx * tv).sum()

    (gw,) = ag.grad(inner)(_t(backend, w))
    # <dx, v> = sum_j sum_k w_k v_{j+k}, so d/dw_k = sum_j v_{j+k}
    support.assert_close(gw, [[[v[0, 0, :3].sum(), v[0, 0, 1:].sum()]]], dtype=ag.float64)


@pytest.mark.parametrize(
    "kwargs",
    [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}],
    ids=["plain", "pad_ceil"],
)
def test_max_pool_hvp(backend, kwargs):
    n = 2 * 5 * 5
    x = (support.rng(1).permutation(n).reshape(1, 2, 5, 5) + 0.5) / n
    c = _t(backend, _data(F.max_pool2d(_t(backend, x), **kwargs).shape, seed=2))
    check_hvp(backend, lambda a: (F.max_pool2d(a, **kwargs) ** 3 * c).sum(), x)
    check_hvp(backend, lambda a: (F.max_pool1d(a[0], **kwargs) ** 2).sum(), x)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["include_pad", "exclude_pad"])
def test_avg_pool_hvp(backend, count_include_pad):
    x = _data((1, 2, 5, 4), seed=1)
    kwargs = {
        "kernel_size": 3,
        "stride": 2,
        "padding": 1,
        "ceil_mode": True,
        "count_include_pad": count_include_pad,
    }
    c = _t(backend, _data(F.avg_pool2d(_t(backend, x), **kwargs).shape, seed=2))
    check_hvp(backend, lambda a: (F.avg_pool2d(a, **kwargs) ** 3 * c).sum(), x)
    check_hvp(
        backend, lambda a: (ag.exp(F.avg_pool1d(a[0], 2, count_include_pad=count_include_pad))).sum(), x
    )


def test_cnn_hvp(backend):
    """conv -> relu -> max_pool -> avg_pool -> linear, Hessian-vector product over all weights."""
    x = _data((2, 1, 6, 6), seed=1)
    w1, w2 = _data((2, 1, 3, 3), seed=2), _data((2, 2), seed=3)
    tx = _t(backend, x)

    def loss(a, b):
        h = F.gelu(F.conv2d(tx, a, padding=1))
        h = F.avg_pool2d(F.max_pool2d(h, 2), 3)
        return F.cross_entropy(h.reshape(2, 2) @ b, ag.asarray([1, 0], device=backend))

    check_hvp(backend, loss, w1, w2)


# ---------------------------------------------------------------------- gradient penalty
def _critic(x, w1, b1, w2):
    return ag.tanh(x @ w1 + b1) @ w2  # (N, 1)


def _gradient_penalty_nested(x, w1, b1, w2):
    (gx,) = ag.grad(lambda xx: _critic(xx, w1, b1, w2).sum())(x)
    norms = ag.sqrt((gx * gx).sum(axis=1) + 1e-12)
    return ((norms - 1.0) ** 2).mean()


def _gp_arrays():
    return _data((3, 2), seed=1), [_data((2, 4), seed=2), _data((4,), seed=3), _data((4, 1), seed=4)]


def test_gradient_penalty_nested_grad_matches_finite_differences(backend):
    x, params = _gp_arrays()
    tx = _t(backend, x)
    support.check_grad(backend, lambda *p: _gradient_penalty_nested(tx, *p), *params, rtol=1e-6, atol=1e-8)


def test_gradient_penalty_with_backward_create_graph(backend):
    """The PyTorch way: critic(x).sum().backward(create_graph=True), then the penalty on x.grad,
    backpropagated into the weights."""
    x, params = _gp_arrays()
    tx = _t(backend, x, requires_grad=True)
    tp = [_t(backend, p, requires_grad=True) for p in params]
    _critic(tx, *tp).sum().backward(create_graph=True)
    gx = tx.grad
    assert gx is not None and gx.requires_grad, "backward(create_graph=True) must record the gradient's graph"
    for p in tp:
        p.grad = None
    norms = ag.sqrt((gx * gx).sum(axis=1) + 1e-12)
    ((norms - 1.0) ** 2).mean().backward()
    (want,) = [
        ag.grad(lambda *p: _gradient_penalty_nested(_t(backend, x), *p))(*(_t(backend, p) for p in params))
    ]
    for k, (p, w) in enumerate(zip(tp, want)):
        assert p.grad is not None, f"parameter {k} got no gradient from the penalty"
        support.assert_close(p.grad, w.numpy(), dtype=ag.float64, rtol=1e-10, atol=1e-12)
    # and the same numbers by finite differences
    support.check_grad(
        backend, lambda *p: _gradient_penalty_nested(_t(backend, x), *p), *params, rtol=1e-6, atol=1e-8
    )


def test_gradient_penalty_with_gradients_create_graph(backend):
    """torch.autograd.grad style: ag.gradients(critic, x, create_graph=True)."""
    x, params = _gp_arrays()
    tp = [_t(backend, p, requires_grad=True) for p in params]
    tx = _t(backend, x, requires_grad=True)
    (gx,) = ag.gradients(_critic(tx, *tp).sum(), [tx], create_graph=True)
    penalty = ((ag.sqrt((gx * gx).sum(axis=1) + 1e-12) - 1.0) ** 2).mean()
    got = ag.gradients(penalty, tp)
    want = ag.grad(lambda *p: _gradient_penalty_nested(_t(backend, x), *p))(*(_t(backend, p) for p in params))
    for g, w in zip(got, want):
        support.assert_close(g, w.numpy(), dtype=ag.float64, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_of_a_conv_critic(backend):
    """Conv critic: the penalty's weight gradient needs d/dw of conv_input_grad."""
    x = _data((2, 1, 5), seed=1)
    w, v = _data((2, 1, 3), seed=2), _data((2, 4), seed=3)
    tx = _t(backend, x)

    def penalty(ww, vv):
        def critic(xx):
            h = ag.tanh(F.conv1d(xx, ww, stride=1, padding="valid"))  # (2, 2, 3)
            h = F.avg_pool1d(h, 2, stride=1)  # (2, 2, 2)
            return (h.reshape(2, 4) * vv).sum()

        (gx,) = ag.grad(critic)(tx)
        return ((gx.reshape(2, 5) ** 2).sum(axis=1) - 1.0).mean() ** 2

    support.check_grad(backend, penalty, w, v, rtol=1e-6, atol=1e-8)


def test_gradient_penalty_through_fused_layers(backend):
    """A critic of fused composites (conv with a bias, layer norm, linear): `ag.grad` stops its
    input requiring grad once it is done, so each composite's rule must feed its inputs as they
    were recorded, not as they are when the outer backward pass runs."""
    x = _data((2, 1, 6), seed=5)
    shapes = [(3, 1, 3), (3,), (4,), (4,), (2, 12), (2,)]
    params = [_data(s, seed=6 + i) for i, s in enumerate(shapes)]
    tx = _t(backend, x)

    def penalty(cw, cb, lw, lb, fw, fb):
        def critic(xx):
            h = ag.tanh(F.conv1d(xx, cw, cb))  # (2, 3, 4)
            h = F.layer_norm(h, (4,), lw, lb)
            h = F.linear(h.reshape(2, 12), fw, fb)  # (2, 2)
            return (ag.tanh(h) ** 2).sum()

        (gx,) = ag.grad(critic)(tx)
        return ((gx * gx).sum() - 1.0) ** 2

    support.check_grad(backend, penalty, *params, rtol=1e-6, atol=1e-8)
