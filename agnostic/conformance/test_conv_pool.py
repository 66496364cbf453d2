"""Convolution and pooling against torch.nn.functional in float64 (skipped, with the reason, when
torch is missing): conv1d/2d/3d with stride, padding (ints, per-axis, asymmetric (lo, hi) pairs,
'same', 'valid'), dilation, groups and bias; transposed convolution with output_padding; the
op-set's adjoint primitives (conv_input_grad, conv_weight_grad, avg_pool_grad) called directly
against torch's; max pooling with indices, padding, dilation and ceil_mode; average pooling with
and without counting the padding; in float32, float64 and half precision, batched and unbatched,
on non-contiguous inputs."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import assert_close, noncontiguous, rng, tensor

torch = pytest.importorskip(
    "torch", reason="torch.nn.functional is the reference for convolution and pooling"
)
F = torch.nn.functional

COVERS = {"conv", "conv_input_grad", "conv_weight_grad", "max_pool", "avg_pool", "avg_pool_grad"}


def T(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _np(d: dtypes.DType) -> np.dtype:
    return dtypes.to_numpy_dtype(d)


def _tol(dtype: dtypes.DType) -> dict:
    return {
        ag.float32: {"rtol": 1e-4, "atol": 1e-5},
        ag.float64: {},
        ag.float16: {"rtol": 1e-2, "atol": 1e-2},
        ag.bfloat16: {"rtol": 5e-2, "atol": 5e-2},
    }[dtype]


CONV_CASES = [
    (1, {}),
    (1, {"stride": 2, "padding": 1}),
    (1, {"dilation": 2, "groups": 2, "padding": 2}),
    (1, {"padding": "same"}),
    (2, {}),
    (2, {"stride": 2}),
    (2, {"padding": 1, "dilation": 2}),
    (2, {"padding": "same", "dilation": 2}),
    (2, {"padding": "valid"}),
    (2, {"stride": (2, 1), "padding": (1, 0), "groups": 2}),
    (2, {"groups": 4}),
    (2, {"stride": 3, "padding": 2}),
    (3, {}),
    (3, {"padding": 1, "stride": (1, 2, 1)}),
    (3, {"groups": 2, "dilation": (1, 2, 1)}),
]


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv(backend: ag.Device, case: tuple, dtype: dtypes.DType) -> None:
    d, kw = case
    r = rng(1)
    groups = kw.get("groups", 1)
    x = r.standard_normal((2, 4) + (7, 6, 5)[:d]).astype(_np(dtype))
    w = r.standard_normal((8, 4 // groups) + (3, 2, 3)[:d]).astype(_np(dtype))
    b = r.standard_normal(8).astype(_np(dtype))
    fn, tfn = getattr(ag.functional, f"conv{d}d"), getattr(F, f"conv{d}d")
    want = tfn(T(x), T(w), T(b), **kw).numpy()
    assert_close(
        fn(tensor(backend, x), tensor(backend, w), tensor(backend, b), **kw), want, dtype=dtype, **_tol(dtype)
    )
    assert_close(
        ag.functional.conv(noncontiguous(backend, x), noncontiguous(backend, w), tensor(backend, b), **kw),
        want,
        dtype=dtype,
        **_tol(dtype),
    )
    nobias = tfn(T(x[1]), T(w), **kw).numpy()  # unbatched (C, *spatial) input
    assert_close(fn(tensor(backend, x[1]), tensor(backend, w), **kw), nobias, dtype=dtype, **_tol(dtype))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_asymmetric_padding_pairs(backend: ag.Device, d: int) -> None:
    r = rng(2)
    x, w = r.standard_normal((1, 2) + (5,) * d), r.standard_normal((3, 2) + (2,) * d)
    pairs = ((0, 2), (1, 0), (2, 1))[:d]
    flat = [p for pair in reversed(pairs) for p in pair]  # F.pad lists the last axis first
    want = getattr(F, f"conv{d}d")(F.pad(T(x), flat), T(w)).numpy()
    assert_close(ag.functional.conv(tensor(backend, x), tensor(backend, w), padding=pairs), want)
    # 'same' with an even kernel pads the extra element at the end (torch)
    want = getattr(F, f"conv{d}d")(T(x), T(w), padding="same").numpy()
    assert_close(ag.functional.conv(tensor(backend, x), tensor(backend, w), padding="same"), want)


def test_conv_edge_shapes_and_dtypes(backend: ag.Device) -> None:
    r = rng(3)
    x, w = r.standard_normal((2, 3, 5, 5)), r.standard_normal((4, 3, 5, 5))
    assert_close(
        ag.functional.conv2d(tensor(backend, x), tensor(backend, w)), F.conv2d(T(x), T(w)).numpy()
    )  # kernel = input
    w1 = r.standard_normal((4, 3, 1, 1))
    assert_close(
        ag.functional.conv2d(tensor(backend, x), tensor(backend, w1)), F.conv2d(T(x), T(w1)).numpy()
    )  # 1x1
    e = np.zeros((0, 3, 5, 5))
    assert_close(
        ag.functional.conv2d(tensor(backend, e), tensor(backend, w1)), np.zeros((0, 4, 5, 5))
    )  # empty batch
    # integer inputs compute in the default float dtype; a float64 weight follows the input's dtype
    xi = r.integers(-3, 3, (1, 3, 4, 4))
    out = ag.functional.conv2d(tensor(backend, xi), tensor(backend, w1.astype(np.float32)))
    assert_close(
        out, F.conv2d(T(xi), T(w1.astype(np.float32))).numpy(), dtype=ag.float32, rtol=1e-5, atol=1e-5
    )
    for dtype in (ag.float16, ag.bfloat16):
        xh, wh = x.astype(_np(dtype)), w1.astype(_np(dtype))
        out = ag.functional.conv2d(tensor(backend, xh), tensor(backend, wh), padding=1)
        assert_close(out, F.conv2d(T(xh), T(wh), padding=1).numpy(), dtype=dtype, **_tol(dtype))


TRANSPOSE_CASES = [
    (1, {}),
    (1, {"stride": 2, "padding": 1, "output_padding": 1}),
    (1, {"groups": 2, "dilation": 2}),
    (2, {"stride": 2}),
    (2, {"stride": 2, "padding": 1, "output_padding": 1}),
    (2, {"groups": 2, "dilation": 2}),
    (2, {"stride": (2, 3), "padding": (0, 1), "output_padding": (1, 2)}),
    (3, {"stride": 2, "padding": 1}),
    (3, {"groups": 2, "output_padding": 1, "stride": 2}),
    (3, {"groups": 2, "dilation": 2}),
]


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose(backend: ag.Device, case: tuple, dtype: dtypes.DType) -> None:
    d, kw = case
    r = rng(4)
    groups = kw.get("groups", 1)
    x = r.standard_normal((2, 4) + (4, 3, 3)[:d]).astype(_np(dtype))
    w = r.standard_normal((4, 6 // groups) + (3, 2, 3)[:d]).astype(_np(dtype))
    b = r.standard_normal(6).astype(_np(dtype))
    fn, tfn = getattr(ag.functional, f"conv_transpose{d}d"), getattr(F, f"conv_transpose{d}d")
    want = tfn(T(x), T(w), T(b), **kw).numpy()
    assert_close(
        fn(tensor(backend, x), tensor(backend, w), tensor(backend, b), **kw), want, dtype=dtype, **_tol(dtype)
    )
    assert_close(
        fn(noncontiguous(backend, x), noncontiguous(backend, w), **kw),
        tfn(T(x), T(w), **kw).numpy(),
        dtype=dtype,
        **_tol(dtype),
    )
    assert_close(
        fn(tensor(backend, x[0]), tensor(backend, w), **kw),
        tfn(T(x[0]), T(w), **kw).numpy(),
        dtype=dtype,
        **_tol(dtype),
    )


# ====================================================================== the adjoint primitives, directly
ADJOINT_CASES = [
    (1, (1,), ((0, 0),), (1,), 1),
    (2, (2, 1), ((1, 1), (0, 2)), (1, 1), 1),
    (2, (1, 1), ((2, 2), (2, 2)), (2, 2), 2),
    (2, (3, 2), ((1, 0), (1, 1)), (1, 2), 1),
    (3, (2, 1, 1), ((1, 1), (0, 0), (1, 1)), (1, 1, 2), 2),
]


@pytest.mark.parametrize("case", ADJOINT_CASES, ids=str)
def test_conv_adjoint_primitives(backend: ag.Device, case: tuple) -> None:
    """conv_input_grad and conv_weight_grad are the adjoints of conv: <conv(x, w), gy> equals
    <x, conv_input_grad(gy, w)> and <w, conv_weight_grad(x, gy)>; checked against torch's autograd."""
    d, stride, pads, dilation, groups = case
    ops = backend.ops
    r = rng(5)
    x = r.standard_normal((2, 4) + (7, 6, 5)[:d])
    w = r.standard_normal((6, 4 // groups) + (3, 2, 2)[:d])
    tx, tw = T(x).requires_grad_(), T(w).requires_grad_()
    ty = getattr(F, f"conv{d}d")(
        _torch_padded_graph(tx, pads), tw, stride=stride, dilation=dilation, groups=groups
    )
    gy = r.standard_normal(tuple(ty.shape))
    ty.backward(T(gy))
    nat = lambda a: tensor(backend, a).data  # noqa: E731
    y = ops.conv(nat(x), nat(w), stride, pads, dilation, groups)
    assert_close(ag.Tensor._make(y, backend), ty.detach().numpy())
    gx = ops.conv_input_grad(nat(gy), nat(w), x.shape, stride, pads, dilation, groups)
    assert_close(ag.Tensor._make(gx, backend), tx.grad.numpy())
    gw = ops.conv_weight_grad(nat(x), nat(gy), w.shape, stride, pads, dilation, groups)
    assert_close(ag.Tensor._make(gw, backend), tw.grad.numpy())


def _torch_padded_graph(t: torch.Tensor, pads: tuple) -> torch.Tensor:
    return F.pad(t, [p for pair in reversed(pads) for p in pair])


# ====================================================================== pooling
POOL_CASES = [
    (1, {"kernel_size": 2}),
    (1, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (1, {"kernel_size": 2, "ceil_mode": True}),
    (2, {"kernel_size": 2}),
    (2, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (2, {"kernel_size": (2, 3), "stride": (1, 2)}),
    (2, {"kernel_size": 2, "ceil_mode": True}),
    (2, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    (2, {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True}),
    (3, {"kernel_size": 2}),
    (3, {"kernel_size": (1, 2, 3), "stride": 1, "padding": (0, 1, 1)}),
    (3, {"kernel_size": 2, "ceil_mode": True, "stride": 2}),
]


@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool(backend: ag.Device, case: tuple, dtype: dtypes.DType) -> None:
    d, kw = case
    x = (rng(6).standard_normal((2, 3) + (7, 6, 5)[:d]) - 3).astype(
        _np(dtype)
    )  # all negative: padding never wins
    fn, tfn = getattr(ag.functional, f"max_pool{d}d"), getattr(F, f"max_pool{d}d")
    t_vals, t_idx = tfn(T(x), return_indices=True, **kw)
    for xt in (tensor(backend, x), noncontiguous(backend, x)):
        vals, idx = fn(xt, return_indices=True, **kw)
        assert_close(vals, t_vals.numpy(), dtype=dtype)
        assert_close(idx, t_idx.numpy(), dtype=ag.int64)
    assert_close(fn(tensor(backend, x[0]), **kw), tfn(T(x[0]), **kw).numpy(), dtype=dtype)  # unbatched


@pytest.mark.parametrize("d", [1, 2, 3])
def test_max_pool_dilation_ties_and_nan(backend: ag.Device, d: int) -> None:
    r = rng(7)
    x = r.standard_normal((1, 2) + (7,) * d)
    fn, tfn = getattr(ag.functional, f"max_pool{d}d"), getattr(F, f"max_pool{d}d")
    for kw in (
        {"kernel_size": 2, "dilation": 2},
        {"kernel_size": 3, "dilation": 2, "padding": 1, "stride": 2},
    ):
        v, i = fn(tensor(backend, x), return_indices=True, **kw)
        tv, ti = tfn(T(x), return_indices=True, **kw)
        assert_close(v, tv.numpy())
        assert_close(i, ti.numpy(), dtype=ag.int64)
    ties = np.round(r.uniform(0, 2, (1, 2) + (6,) * d))  # many equal values: the first index wins
    v, i = fn(tensor(backend, ties), 2, return_indices=True)
    tv, ti = tfn(T(ties), 2, return_indices=True)
    assert_close(v, tv.numpy())
    assert_close(i, ti.numpy(), dtype=ag.int64)
    nan = x.copy()
    nan.reshape(-1)[[0, 5]] = np.nan  # NaN wins a window, as torch
    got = fn(tensor(backend, nan), 2)
    want = tfn(T(nan), 2).numpy()
    np.testing.assert_array_equal(np.isnan(got.numpy()), np.isnan(want))
    assert_close(got, want)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [ag.float32, ag.float64], ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool(backend: ag.Device, case: tuple, dtype: dtypes.DType, count_include_pad: bool) -> None:
    d, kw = case
    x = rng(8).standard_normal((2, 3) + (7, 6, 5)[:d]).astype(_np(dtype))
    fn, tfn = getattr(ag.functional, f"avg_pool{d}d"), getattr(F, f"avg_pool{d}d")
    want = tfn(T(x), count_include_pad=count_include_pad, **kw).numpy()
    assert_close(
        fn(tensor(backend, x), count_include_pad=count_include_pad, **kw), want, dtype=dtype, **_tol(dtype)
    )
    assert_close(
        fn(noncontiguous(backend, x), count_include_pad=count_include_pad, **kw),
        want,
        dtype=dtype,
        **_tol(dtype),
    )
    assert_close(
        fn(tensor(backend, x[1]), count_include_pad=count_include_pad, **kw),
        want[1],
        dtype=dtype,
        **_tol(dtype),
    )


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool_grad_primitive(backend: ag.Device, case: tuple, count_include_pad: bool) -> None:
    """avg_pool_grad is the adjoint of avg_pool; checked against torch's autograd."""
    d, kw = case
    ops = backend.ops
    x = rng(9).standard_normal((2, 3) + (7, 6, 5)[:d])
    tx = T(x).requires_grad_()
    ty = getattr(F, f"avg_pool{d}d")(tx, count_include_pad=count_include_pad, **kw)
    gy = rng(10).standard_normal(tuple(ty.shape))
    ty.backward(T(gy))

    def spatial(v: object) -> tuple:
        return (v,) * d if isinstance(v, int) else tuple(v)

    kernel = spatial(kw["kernel_size"])
    stride = spatial(kw.get("stride", kernel))
    padding = spatial(kw.get("padding", 0))
    gx = ops.avg_pool_grad(
        tensor(backend, gy).data,
        x.shape,
        kernel,
        stride,
        padding,
        kw.get("ceil_mode", False),
        count_include_pad,
    )
    assert_close(ag.Tensor._make(gx, backend), tx.grad.numpy())


@pytest.mark.parametrize("dtype", [ag.float16, ag.bfloat16], ids=str)
def test_pooling_half_precision(backend: ag.Device, dtype: dtypes.DType) -> None:
    x = rng(11).standard_normal((1, 2, 6, 6)).astype(_np(dtype))
    xt = T(x)
    assert_close(ag.functional.max_pool2d(tensor(backend, x), 2), F.max_pool2d(xt, 2).numpy(), dtype=dtype)
    assert_close(
        ag.functional.avg_pool2d(tensor(backend, x), 3, 1, 1),
        F.avg_pool2d(xt, 3, 1, 1).numpy(),
        dtype=dtype,
        **_tol(dtype),
    )


def test_conv_and_pool_do_not_mutate_inputs(backend: ag.Device) -> None:
    r = rng(12)
    x, w = r.standard_normal((1, 2, 5, 5)), r.standard_normal((3, 2, 3, 3))
    sx, sw = x.copy(), w.copy()
    tx, tw = tensor(backend, x), tensor(backend, w)
    for fn in (
        lambda: ag.functional.conv2d(tx, tw, padding=1),
        lambda: ag.functional.conv_transpose2d(tx[:, :2], tw[:2, :2], stride=2),
        lambda: ag.functional.max_pool2d(tx, 2, padding=1),
        lambda: ag.functional.avg_pool2d(tx, 3, 1, 1),
    ):
        fn()
        np.testing.assert_array_equal(tx.numpy(), sx)
        np.testing.assert_array_equal(tw.numpy(), sw)
