"""Gradients of the network ops against finite differences (float64): convolution (1-3 d, stride,
padding incl. 'same' and asymmetric, dilation, groups; input, weight and bias), transposed
convolution, max and average pooling, and the composites (softmax, norms, losses, attention)."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

F = ag.functional

COVERS = {
    "conv", "conv_input_grad", "conv_weight_grad", "max_pool", "avg_pool", "avg_pool_grad",
    "linear", "softmax", "log_softmax", "logsumexp", "relu", "gelu", "silu", "layer_norm", "batch_norm",
    "cross_entropy", "scaled_dot_product_attention", "one_hot", "sigmoid", "tanh", "erf",
    "scatter_add", "take_along_axis", "take", "matmul", "where", "expm1", "log1p", "mean", "var", "ne",
}  # fmt: skip


def _data(shape, seed=0, scale=1.0):
    return support.rng(seed).uniform(-scale, scale, size=shape)


def _distinct(shape, seed=0):
    """Distinct values at least 1/size apart: max pooling is differentiable there."""
    n = int(np.prod(shape))
    return (support.rng(seed).permutation(n) + 0.5).reshape(shape) / n - 0.5


def _t(backend, a):
    return backend.tensor(np.asarray(a, dtype=np.float64), dtype=ag.float64)


def _ints(backend, a):
    return backend.tensor(np.asarray(a, dtype=np.int64))


# ---------------------------------------------------------------------- convolution
CONV_CASES = [
    # id, x shape, w shape, kwargs
    ("1d", (2, 2, 5), (3, 2, 3), {}),
    ("1d_stride_pad", (1, 2, 6), (2, 2, 3), {"stride": 2, "padding": 1}),
    ("1d_dilation", (1, 2, 7), (2, 2, 3), {"dilation": 2, "padding": 1}),
    ("1d_groups", (1, 4, 5), (4, 2, 3), {"groups": 2}),
    ("1d_depthwise", (1, 3, 5), (6, 1, 2), {"groups": 3, "stride": 2}),
    ("1d_same_even_kernel", (1, 2, 5), (2, 2, 4), {"padding": "same"}),
    ("1d_same_dilated", (1, 1, 6), (2, 1, 3), {"padding": "same", "dilation": 2}),
    ("1d_valid", (1, 2, 5), (1, 2, 2), {"padding": "valid"}),
    ("1d_asymmetric", (1, 2, 4), (2, 2, 3), {"padding": [(2, 0)]}),
    ("1d_unbatched", (2, 5), (2, 2, 3), {"padding": 1}),
    ("2d", (1, 2, 4, 4), (2, 2, 3, 3), {}),
    ("2d_stride_pad", (2, 1, 5, 4), (2, 1, 3, 2), {"stride": (2, 1), "padding": (1, 0)}),
    ("2d_dilation", (1, 1, 5, 5), (1, 1, 2, 2), {"dilation": (2, 1), "stride": (1, 2)}),
    ("2d_groups", (1, 4, 3, 3), (2, 2, 2, 2), {"groups": 2, "padding": 1}),
    ("2d_same_even", (1, 2, 4, 3), (1, 2, 2, 2), {"padding": "same"}),
    ("2d_asymmetric", (1, 1, 4, 4), (2, 1, 2, 3), {"padding": ((0, 1), (2, 1)), "stride": 2}),
    ("3d", (1, 1, 3, 3, 3), (2, 1, 2, 2, 2), {}),
    ("3d_stride_pad_groups", (1, 2, 3, 4, 3), (2, 1, 2, 2, 2), {"stride": 2, "padding": 1, "groups": 2}),
]


@pytest.mark.parametrize("xs,ws,kwargs", [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES])
def test_conv_gradient_input_and_weight(backend, xs, ws, kwargs):
    support.check_grad(backend, lambda x, w: F.conv(x, w, **kwargs), _data(xs, 1), _data(ws, 2))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_gradient_with_bias_and_fixed_rank_names(backend, d):
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    xs, ws = (1, 2) + (3,) * d, (2, 2) + (2,) * d
    support.check_grad(
        backend, lambda x, w, b: fn(x, w, b, padding=1), _data(xs, 1), _data(ws, 2), _data((2,), 3)
    )


def test_conv_gradient_exact_1d(backend):
    """d sum(conv1d(x, w)) / dw[k] = sum of the inputs the k-th tap sees; / dx = sum of taps seen."""
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    gx, gw = ag.grad(lambda a, b: F.conv1d(a, b).sum())(_t(backend, x), _t(backend, [[[1.0, 10.0]]]))
    support.assert_close(gw, [[[6.0, 9.0]]], dtype=ag.float64)
    support.assert_close(gx, [[[1.0, 11.0, 11.0, 10.0]]], dtype=ag.float64)


CONV_T_CASES = [
    ("1d", (1, 2, 3), (2, 3, 3), {}),
    ("1d_stride_pad_outpad", (2, 2, 3), (2, 1, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("1d_groups_dilation", (1, 4, 3), (4, 1, 2), {"groups": 2, "dilation": 2}),
    ("2d", (1, 2, 2, 3), (2, 2, 2, 2), {"stride": (2, 1)}),
    (
        "2d_pad_groups",
        (1, 2, 3, 3),
        (2, 2, 3, 3),
        {"padding": 1, "groups": 2, "stride": 2, "output_padding": 1},
    ),
    ("3d", (1, 1, 2, 2, 2), (1, 2, 2, 2, 2), {"stride": 2}),
]


@pytest.mark.parametrize("xs,ws,kwargs", [c[1:] for c in CONV_T_CASES], ids=[c[0] for c in CONV_T_CASES])
def test_conv_transpose_gradient(backend, xs, ws, kwargs):
    support.check_grad(backend, lambda x, w: F.conv_transpose(x, w, **kwargs), _data(xs, 1), _data(ws, 2))


def test_conv_transpose_gradient_with_bias(backend):
    out_c = 3
    support.check_grad(
        backend, lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2), _data((1, 2, 2, 2), 1),
        _data((2, out_c, 2, 2), 2), _data((out_c,), 3),
    )  # fmt: skip
    support.check_grad(
        backend, lambda x, w, b: F.conv_transpose1d(x, w, b, padding=1), _data((2, 3), 1), _data((2, out_c, 3), 2),
        _data((out_c,), 3),
    )  # fmt: skip


# ---------------------------------------------------------------------- pooling
MAX_POOL_CASES = [
    ("1d", (2, 2, 6), 1, {"kernel_size": 2}),
    ("1d_stride_pad", (1, 2, 7), 1, {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("1d_dilation", (1, 1, 8), 1, {"kernel_size": 2, "dilation": 3, "stride": 1}),
    ("1d_ceil", (1, 1, 7), 1, {"kernel_size": 2, "ceil_mode": True}),
    ("1d_overlap", (1, 1, 5), 1, {"kernel_size": 3, "stride": 1}),
    ("2d", (1, 2, 4, 4), 2, {"kernel_size": 2}),
    ("2d_rect_stride_pad", (1, 1, 5, 6), 2, {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}),
    ("2d_ceil_pad", (1, 1, 5, 5), 2, {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("2d_dilation", (1, 1, 5, 5), 2, {"kernel_size": 2, "dilation": 2, "stride": 1}),
    ("2d_unbatched", (2, 4, 4), 2, {"kernel_size": 3, "stride": 1, "padding": 1}),
    ("3d", (1, 1, 4, 4, 4), 3, {"kernel_size": 2}),
    (
        "3d_stride_pad_ceil",
        (1, 1, 3, 4, 3),
        3,
        {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
    ),
]


@pytest.mark.parametrize(
    "shape,dims,kwargs", [c[1:] for c in MAX_POOL_CASES], ids=[c[0] for c in MAX_POOL_CASES]
)
def test_max_pool_gradient(backend, shape, dims, kwargs):
    support.check_grad(backend, lambda x: F.max_pool(x, dims=dims, **kwargs), _distinct(shape, 1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_max_pool_fixed_rank_names_and_exact_gradient(backend, d):
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[d]
    shape = (1, 1) + (4,) * d
    support.check_grad(backend, lambda x: fn(x, 2, stride=1), _distinct(shape, d))
    x = _distinct(shape, d)
    (g,) = ag.grad(lambda a: fn(a, 4).sum())(_t(backend, x))
    want = np.zeros_like(x)
    want.reshape(-1)[np.argmax(x)] = 1.0
    support.assert_close(g, want, dtype=ag.float64)


def test_max_pool_overlapping_windows_accumulate(backend):
    x = _t(backend, [[[1.0, 5.0, 2.0, 0.0, 3.0]]])
    (g,) = ag.grad(lambda a: F.max_pool1d(a, 3, stride=1).sum())(x)
    support.assert_close(g, [[[0.0, 2.0, 0.0, 0.0, 1.0]]], dtype=ag.float64)
    _out, idx = F.max_pool1d(x, 3, stride=1, return_indices=True)
    assert idx.dtype == ag.int64 and not idx.requires_grad


AVG_POOL_CASES = [
    ("1d", (2, 2, 6), {"kernel_size": 2}),
    ("1d_stride_pad", (1, 2, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("1d_ceil", (1, 1, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("1d_ceil_pad", (1, 1, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("2d", (1, 2, 4, 4), {"kernel_size": 2}),
    ("2d_rect_pad", (1, 1, 5, 4), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}),
    ("2d_ceil_pad", (1, 1, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("3d", (1, 1, 4, 3, 4), {"kernel_size": 2, "stride": (2, 1, 2)}),
    ("3d_pad_ceil", (1, 1, 3, 3, 3), {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),
]


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("shape,kwargs", [c[1:] for c in AVG_POOL_CASES], ids=[c[0] for c in AVG_POOL_CASES])
def test_avg_pool_gradient(backend, shape, kwargs, count_include_pad):
    support.check_grad(
        backend, lambda x: F.avg_pool(x, count_include_pad=count_include_pad, **kwargs), _data(shape, 1)
    )


def test_avg_pool_exact_gradient_and_padding_divisor(backend):
    x = _t(backend, np.zeros((1, 1, 4)))
    (g,) = ag.grad(lambda a: F.avg_pool1d(a, 2).sum())(x)
    support.assert_close(g, [[[0.5, 0.5, 0.5, 0.5]]], dtype=ag.float64)
    # windows [pad, x0], [x1, x2], [x3, pad]: with the pad counted every weight is 1/2
    (g,) = ag.grad(lambda a: F.avg_pool1d(a, 2, padding=1, count_include_pad=True).sum())(x)
    support.assert_close(g, [[[0.5, 0.5, 0.5, 0.5]]], dtype=ag.float64)
    # without it, the edge windows average one element
    (g,) = ag.grad(lambda a: F.avg_pool1d(a, 2, padding=1, count_include_pad=False).sum())(x)
    support.assert_close(g, [[[1.0, 0.5, 0.5, 1.0]]], dtype=ag.float64)
    for d, fn in ((2, F.avg_pool2d), (3, F.avg_pool3d)):
        support.check_grad(backend, lambda a, fn=fn: fn(a, 2, stride=1), _data((1, 1) + (3,) * d, d))


# ---------------------------------------------------------------------- activations and softmax
ACTIVATIONS = [
    ("relu", F.relu),
    ("gelu_exact", F.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("silu", F.silu),
    ("sigmoid", F.sigmoid),
    ("tanh", F.tanh),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1)),
    ("elu", lambda x: F.elu(x, 1.5)),
    ("softplus", F.softplus),
    ("softplus_beta_threshold", lambda x: F.softplus(x * 7.0, beta=2.0, threshold=5.0)),
    ("softmax_last", F.softmax),
    ("softmax_axis0", lambda x: F.softmax(x, axis=0)),
    ("log_softmax_last", F.log_softmax),
    ("log_softmax_axis1", lambda x: F.log_softmax(x, 1)),
    ("ag_softmax", lambda x: ag.softmax(x, axis=-1)),
    ("ag_log_softmax", lambda x: ag.log_softmax(x, axis=0)),
    ("logsumexp", lambda x: ag.logsumexp(x, axis=(0, 2), keepdims=True)),
]


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_gradient(backend, name, fn):
    x = _distinct((2, 3, 2), 1) * 6.0  # values in [-3, 3], none at 0 (the kinks of relu & co.)
    support.check_grad(backend, fn, x)


def test_relu_gradient_exact(backend):
    (g,) = ag.grad(lambda a: F.relu(a).sum())(_t(backend, [-1.0, 0.5, 2.0, -0.1]))
    support.assert_close(g, [0.0, 1.0, 1.0, 0.0], dtype=ag.float64)


def test_softmax_gradient_with_large_logits(backend):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.5, -999.0]])
    support.check_grad(backend, F.softmax, x)
    support.check_grad(backend, F.log_softmax, x)
    (g,) = ag.grad(lambda a: F.log_softmax(a)[:, 0].sum())(_t(backend, x))
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    support.assert_close(g, np.eye(3)[[0, 0]] - p, dtype=ag.float64)


def test_dropout_gradient_is_the_scaled_mask(backend):
    x = _t(backend, np.ones((4, 5)))
    (g,) = ag.grad(lambda a: F.dropout(a, 0.25, seed=3).sum())(x)
    y = F.dropout(x, 0.25, seed=3).numpy()
    np.testing.assert_allclose(g.numpy(), y)  # x is ones, so the output is the gradient
    assert set(np.unique(g.numpy())) <= {0.0, 1 / 0.75}
    (g,) = ag.grad(lambda a: F.dropout(a, 0.25, training=False).sum())(x)
    support.assert_close(g, np.ones((4, 5)), dtype=ag.float64)


# ---------------------------------------------------------------------- normalization
def test_linear_gradient(backend):
    """The weight's gradient has its own rule (g.T @ x): batched, 1-D and bias-free inputs."""
    support.check_grad(backend, F.linear, _data((2, 3, 4), 1), _data((5, 4), 2), _data((5,), 3))
    support.check_grad(backend, lambda x, w: F.linear(x, w), _data((4,), 4), _data((2, 4), 5))


def test_layer_norm_gradient(backend):
    x = _data((2, 3, 4), 1)
    support.check_grad(backend, lambda a: F.layer_norm(a, 4), x)
    support.check_grad(backend, lambda a: F.layer_norm(a, (3, 4), eps=1e-3), x)
    support.check_grad(
        backend, lambda a, w, b: F.layer_norm(a, 4, w, b), x, _data((4,), 2) + 1.0, _data((4,), 3)
    )
    support.check_grad(backend, lambda a, w: F.layer_norm(a, (3, 4), weight=w), x, _data((3, 4), 2))
    support.check_grad(backend, lambda a, b: F.layer_norm(a, [4], bias=b), x, _data((4,), 3))


def test_layer_norm_gradient_sums_to_zero_over_normalized_axes(backend):
    """layer_norm is shift invariant, so its input gradient sums to 0 over each normalized row."""
    x = _t(backend, _data((3, 5), 4))
    c = _t(backend, _data((3, 5), 5))
    (g,) = ag.grad(lambda a: (F.layer_norm(a, 5) * c).sum())(x)
    np.testing.assert_allclose(g.numpy().sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2), (2, 2, 2, 2)], ids=["NC", "NCL", "NCHW"])
def test_batch_norm_training_gradient(backend, shape):
    c = shape[1]
    x = _data(shape, 1)
    support.check_grad(backend, lambda a: F.batch_norm(a, None, None, training=True), x)
    support.check_grad(
        backend, lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True, eps=1e-3), x,
        _data((c,), 2) + 1.0, _data((c,), 3),
    )  # fmt: skip


def test_batch_norm_eval_gradient_through_running_stats(backend):
    x = _data((3, 2, 2), 1)
    rm, rv = _data((2,), 2), _data((2,), 3) * 0.4 + 1.0
    support.check_grad(
        backend, lambda a, m, v, w, b: F.batch_norm(a, m, v, w, b, training=False), x, rm, rv,
        _data((2,), 4), _data((2,), 5),
    )  # fmt: skip


# ---------------------------------------------------------------------- losses
def test_cross_entropy_class_indices(backend):
    logits = _data((4, 3), 1, 2.0)
    target = _ints(backend, [0, 2, 1, 2])
    for reduction in ("mean", "sum", "none"):
        support.check_grad(backend, lambda a, r=reduction: F.cross_entropy(a, target, reduction=r), logits)
    support.check_grad(backend, lambda a: ag.cross_entropy(a, target), logits)


def test_cross_entropy_exact_gradient(backend):
    x = _data((2, 3), 1, 2.0)
    (g,) = ag.grad(lambda a: F.cross_entropy(a, _ints(backend, [2, 0])))(_t(backend, x))
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    support.assert_close(g, (p - np.eye(3)[[2, 0]]) / 2, dtype=ag.float64)


def test_cross_entropy_weights_ignore_index_and_smoothing(backend):
    logits = _data((5, 3), 1, 2.0)
    target = _ints(backend, [0, 2, -100, 1, 2])
    weight = np.array([0.5, 2.0, 1.5])
    fixed = _t(backend, weight)
    for reduction in ("mean", "sum", "none"):
        support.check_grad(
            backend,
            lambda a, w, r=reduction: F.cross_entropy(a, target, weight=w, reduction=r),
            logits,
            weight,
        )
        support.check_grad(
            backend,
            lambda a, r=reduction: F.cross_entropy(a, target, label_smoothing=0.2, reduction=r),
            logits,
        )
        support.check_grad(
            backend,
            lambda a, w, r=reduction: F.cross_entropy(a, target, weight=w, label_smoothing=0.1, reduction=r),
            logits, weight,
        )  # fmt: skip
        # a fixed weight: the logits' gradient comes from the closed form (cross_entropy_grad)
        support.check_grad(
            backend,
            lambda a, r=reduction: F.cross_entropy(a, target, weight=fixed, label_smoothing=0.1, reduction=r),
            logits,
        )
        support.check_grad(
            backend, lambda a, r=reduction: F.cross_entropy(a, target, weight=fixed, reduction=r), logits
        )
    custom = _ints(backend, [0, 1, 1, 1, 2])
    support.check_grad(backend, lambda a: F.cross_entropy(a, custom, ignore_index=1), logits)
    # an ignored sample gets no gradient at all
    (g,) = ag.grad(lambda a: F.cross_entropy(a, target, weight=_t(backend, weight), label_smoothing=0.1))(
        _t(backend, logits)
    )
    np.testing.assert_array_equal(g.numpy()[2], 0.0)


def test_cross_entropy_spatial_and_unbatched(backend):
    logits = _data((2, 3, 2, 2), 1, 2.0)
    target = _ints(backend, [[[0, 1], [2, 2]], [[1, 1], [0, -100]]])
    support.check_grad(backend, lambda a: F.cross_entropy(a, target), logits)
    support.check_grad(
        backend, lambda a: F.cross_entropy(a, target, label_smoothing=0.3, reduction="none"), logits
    )
    support.check_grad(backend, lambda a: F.cross_entropy(a, _ints(backend, 1)), _data((4,), 2))
    fixed = _t(backend, np.array([0.5, 2.0, 1.5]))
    support.check_grad(
        backend, lambda a: F.cross_entropy(a, target, weight=fixed, label_smoothing=0.2), logits
    )
    support.check_grad(
        backend,
        lambda a: F.cross_entropy(a, _ints(backend, 1), weight=_t(backend, np.ones(4)) * 2),
        _data((4,), 2),
    )


def test_cross_entropy_probability_targets(backend):
    logits = _data((3, 4), 1, 2.0)
    probs = np.abs(_data((3, 4), 2)) + 0.1
    probs /= probs.sum(1, keepdims=True)
    weight = np.array([1.0, 0.5, 2.0, 1.5])
    for reduction in ("mean", "sum", "none"):
        support.check_grad(
            backend, lambda a, p, r=reduction: F.cross_entropy(a, p, reduction=r), logits, probs
        )
    support.check_grad(backend, lambda a, p: F.cross_entropy(a, p, label_smoothing=0.25), logits, probs)
    support.check_grad(backend, lambda a, p, w: F.cross_entropy(a, p, weight=w), logits, probs, weight)
    support.check_grad(
        backend, lambda a, p: F.cross_entropy(a, p), _data((2, 3, 2), 3), np.full((2, 3, 2), 1 / 3)
    )


def test_mse_loss_gradient(backend):
    a, b = _data((2, 3), 1), _data((2, 3), 2)
    for reduction in ("mean", "sum", "none"):
        support.check_grad(backend, lambda x, y, r=reduction: F.mse_loss(x, y, reduction=r), a, b)
    (g,) = ag.grad(lambda x: F.mse_loss(x, _t(backend, b)))(_t(backend, a))
    support.assert_close(g, 2 * (a - b) / a.size, dtype=ag.float64)


def test_one_hot_is_not_differentiable_but_feeds_losses(backend):
    oh = F.one_hot(_ints(backend, [2, 0]), 3, dtype=ag.float64)
    assert oh.dtype == ag.float64 and not oh.requires_grad
    support.check_grad(backend, lambda a: (F.log_softmax(a) * oh).sum(), _data((2, 3), 1))


# ---------------------------------------------------------------------- attention
def _qkv(lq=3, s=4, e=2, ev=3, batch=(2,)):
    return _data((*batch, lq, e), 1), _data((*batch, s, e), 2), _data((*batch, s, ev), 3)


def test_attention_gradient_plain(backend):
    q, k, v = _qkv()
    support.check_grad(backend, F.scaled_dot_product_attention, q, k, v)
    support.check_grad(backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, scale=0.3), q, k, v)
    support.check_grad(backend, F.scaled_dot_product_attention, *_qkv(batch=(2, 2), lq=2, s=3))
    support.check_grad(backend, F.scaled_dot_product_attention, *_qkv(batch=(), lq=2, s=2, ev=1))
    # self-attention (one tensor as query, key and value) and keys shared across a broadcast batch
    support.check_grad(backend, lambda a: F.scaled_dot_product_attention(a, a, a), _data((2, 3, 3), 4))
    support.check_grad(backend, F.scaled_dot_product_attention, q, *_qkv(batch=(1,))[1:])


def test_attention_gradient_causal(backend):
    support.check_grad(
        backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), *_qkv(3, 3)
    )
    support.check_grad(
        backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), *_qkv(2, 4)
    )


def test_attention_gradient_bool_mask(backend):
    mask = backend.tensor(
        np.array([[True, False, True, True], [False, True, True, False], [True, True, False, False]])
    )
    support.check_grad(
        backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask), *_qkv()
    )
    per_batch = backend.tensor(support.rng(7).random((2, 1, 4)) < 0.6) | backend.tensor(
        np.eye(4, dtype=bool)[0]
    )
    support.check_grad(
        backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=per_batch), *_qkv()
    )


def test_attention_gradient_additive_mask(backend):
    q, k, v = _qkv()
    bias = _data((3, 4), 9)
    support.check_grad(
        backend, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=_t(backend, bias)), q, k, v
    )
    # the additive mask itself is differentiable (a learned bias, as ALiBi or relative positions)
    support.check_grad(
        backend,
        lambda a, m: F.scaled_dot_product_attention(a, _t(backend, k), _t(backend, v), attn_mask=m),
        q,
        bias,
    )
    neg_inf = np.where(np.tril(np.ones((3, 4))) > 0, 0.0, -np.inf)
    support.check_grad(
        backend,
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=_t(backend, neg_inf)),
        q,
        k,
        v,
    )
    support.check_grad(
        backend,
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=_t(backend, bias[:, :3]), is_causal=True),
        *_qkv(3, 3),
    )  # fmt: skip
