"""The NumPy-namespace convolution and pooling kernels against PyTorch (CPU, float64).

Forward values and gradients are compared with torch and torch.autograd; the backward kernels are
also checked to be exact adjoints of the forward ones, which is what the autodiff layer relies on.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from agnostic.backends import _xp_conv  # noqa: E402

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _close(actual: np.ndarray, expected: torch.Tensor | np.ndarray) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-11)


# ====================================================================== convolution
# (n, c_in, c_out, spatial, kernel, stride, (lo, hi) padding, dilation, groups)
CONV_CASES = [
    (2, 3, 4, (9,), (3,), (1,), ((1, 1),), (1,), 1),
    (2, 4, 6, (11,), (3,), (3,), ((0, 0),), (1,), 2),  # (11 - 3) % 3 != 0: untouched input tail
    (1, 2, 2, (8,), (1,), (2,), ((0, 0),), (1,), 1),  # 1-wide kernel, every other input untouched
    (2, 3, 5, (7,), (3,), (2,), ((4, 3),), (1,), 1),  # padding > dil * (k - 1): windows of pure padding
    (2, 6, 6, (10,), (3,), (1,), ((2, 0),), (2,), 6),  # depthwise, asymmetric, dilated
    (2, 1, 32, (12, 12), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),  # W2's first layer, small
    (2, 4, 6, (9, 8), (3, 2), (2, 3), ((1, 2), (0, 1)), (1, 2), 2),
    (1, 3, 3, (7, 9), (3, 3), (3, 2), ((0, 0), (2, 1)), (2, 1), 3),  # depthwise, untouched rows
    (2, 2, 4, (5, 6), (1, 1), (2, 2), ((0, 1), (1, 0)), (1, 1), 1),
    (1, 2, 2, (6, 6), (2, 2), (1, 1), ((5, 4), (3, 3)), (1, 2), 1),  # heavy padding -> cropping in grad
    (2, 4, 4, (5, 6, 5), (3, 2, 3), (1, 2, 3), ((1, 1), (0, 2), (2, 0)), (1, 1, 2), 2),
    (1, 3, 6, (4, 5, 6), (1, 3, 2), (2, 1, 2), ((0, 0), (1, 1), (0, 1)), (1, 2, 1), 3),
    (2, 2, 2, (4, 4, 4), (2, 2, 2), (3, 3, 3), ((0, 0), (0, 0), (0, 0)), (1, 1, 1), 2),  # depthwise
]


def _random_conv_cases(count: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    cases: list[tuple] = []
    while len(cases) < count:
        d = rng.choice((1, 2, 3))
        groups = rng.choice((1, 2))
        kernel = tuple(rng.choice((1, 2, 3)) for _ in range(d))
        stride = tuple(rng.choice((1, 2, 3)) for _ in range(d))
        dilation = tuple(rng.choice((1, 2)) for _ in range(d))
        padding = tuple((rng.randint(0, 3), rng.randint(0, 3)) for _ in range(d))
        spatial = tuple(rng.randint(1, 10 if d < 3 else 6) for _ in range(d))
        if all(
            s + lo + hi >= dl * (k - 1) + 1 for s, (lo, hi), k, dl in zip(spatial, padding, kernel, dilation)
        ):
            c_in, c_out = groups * rng.choice((1, 2)), groups * rng.choice((1, 3))
            cases.append(
                (rng.choice((1, 2)), c_in, c_out, spatial, kernel, stride, padding, dilation, groups)
            )
    return cases


ALL_CONV = CONV_CASES + _random_conv_cases(24, seed=7)


def _conv_inputs(case: tuple) -> tuple[np.ndarray, np.ndarray]:
    n, c_in, c_out, spatial, kernel, *_, groups = case
    rng = _rng("conv", case)
    return rng.standard_normal((n, c_in, *spatial)), rng.standard_normal((c_out, c_in // groups, *kernel))


def _torch_conv(x: torch.Tensor, w: torch.Tensor, case: tuple) -> torch.Tensor:
    """torch's conv of the input explicitly pre-padded, which allows asymmetric padding."""
    *_, stride, padding, dilation, groups = case
    flat = [p for pair in reversed(padding) for p in pair]
    return CONV[len(stride)](F.pad(x, flat), w, stride=stride, dilation=dilation, groups=groups)


def _args(case: tuple) -> tuple:
    return case[5:]


@pytest.mark.parametrize("case", ALL_CONV, ids=str)
def test_conv_forward(case: tuple) -> None:
    x, w = _conv_inputs(case)
    _close(_xp_conv.conv(np, x, w, *_args(case)), _torch_conv(torch.tensor(x), torch.tensor(w), case))


@pytest.mark.parametrize("case", ALL_CONV, ids=str)
def test_conv_grads_match_autograd(case: tuple) -> None:
    x, w = _conv_inputs(case)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = _torch_conv(xt, wt, case)
    gy = _rng("gy", case).standard_normal(tuple(y.shape))
    gx_ref, gw_ref = torch.autograd.grad(y, (xt, wt), torch.tensor(gy))
    _close(_xp_conv.conv_input_grad(np, gy, w, x.shape, *_args(case)), gx_ref)
    _close(_xp_conv.conv_weight_grad(np, x, gy, w.shape, *_args(case)), gw_ref)


@pytest.mark.parametrize("case", ALL_CONV, ids=str)
def test_conv_grads_are_adjoints(case: tuple) -> None:
    x, w = _conv_inputs(case)
    y = _xp_conv.conv(np, x, w, *_args(case))
    g = _rng("g", case).standard_normal(y.shape)
    lhs = np.vdot(y, g)
    np.testing.assert_allclose(np.vdot(x, _xp_conv.conv_input_grad(np, g, w, x.shape, *_args(case))), lhs)
    np.testing.assert_allclose(np.vdot(w, _xp_conv.conv_weight_grad(np, x, g, w.shape, *_args(case))), lhs)


def test_untouched_input_rows_get_zero_gradient() -> None:
    # (10 - 3) % 3 == 1: the last input row is read by no window
    x, w = np.ones((1, 1, 10)), np.ones((2, 1, 3))
    gx = _xp_conv.conv_input_grad(np, np.ones((1, 2, 3)), w, x.shape, (3,), ((0, 0),), (1,), 1)
    np.testing.assert_array_equal(gx[0, 0], [2.0] * 9 + [0.0])


# (n, c_in, c_out_per_group, spatial, kernel, stride, padding, output_padding, dilation, groups)
CONV_T_CASES = [
    (2, 3, 2, (5,), (3,), (2,), (1,), (1,), (1,), 1),
    (1, 2, 2, (4,), (3,), (1,), (0,), (1,), (2,), 2),  # output_padding from dilation: gy < conv's windows
    (2, 4, 3, (4, 5), (3, 2), (2, 3), (1, 0), (1, 2), (1, 1), 2),
    (1, 3, 1, (3, 3, 2), (2, 3, 2), (3, 1, 2), (0, 1, 1), (2, 0, 1), (1, 1, 2), 3),
]


@pytest.mark.parametrize("case", CONV_T_CASES, ids=str)
def test_conv_input_grad_is_transposed_conv(case: tuple) -> None:
    n, c_in, c_out_g, spatial, kernel, stride, padding, out_pad, dilation, groups = case
    rng = _rng("convT", case)
    x = torch.tensor(rng.standard_normal((n, c_in, *spatial)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((c_in, c_out_g, *kernel)), requires_grad=True)
    y = CONV_T[len(kernel)](x, w, None, stride, padding, out_pad, groups, dilation)
    pairs = tuple((p, p) for p in padding)
    args = (stride, pairs, dilation, groups)
    got = _xp_conv.conv_input_grad(np, x.detach().numpy(), w.detach().numpy(), tuple(y.shape), *args)
    _close(got, y)
    g = rng.standard_normal(tuple(y.shape))
    gx_ref, gw_ref = torch.autograd.grad(y, (x, w), torch.tensor(g))
    # output_padding >= stride (possible when dilation > stride) leaves conv(g) windows past x's size
    gx = _xp_conv.conv(np, g, w.detach().numpy(), *args)
    _close(gx[(..., *(slice(0, s) for s in spatial))], gx_ref)
    _close(_xp_conv.conv_weight_grad(np, g, x.detach().numpy(), tuple(w.shape), *args), gw_ref)


# ====================================================================== max pooling
# (shape, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    ((2, 3, 9), (3,), (2,), (1,), (1,), False),
    ((2, 3, 9), (3,), (2,), (1,), (1,), True),
    ((1, 2, 10), (2,), (3,), (0,), (2,), True),
    ((1, 2, 8), (1,), (1,), (0,), (1,), False),
    ((1, 2, 6), (3,), (2,), (1,), (1,), True),  # the last ceil window runs past the right padding
    ((1, 1, 5), (3,), (3,), (1,), (1,), True),  # torch drops a ceil window starting in right padding
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),  # W2's pooling, small
    ((2, 2, 7, 9), (3, 2), (2, 1), (1, 1), (1, 2), True),
    ((1, 3, 7, 6), (3, 3), (3, 2), (1, 0), (2, 1), False),
    ((1, 2, 5, 6), (2, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 4, 5, 6), (2, 3, 2), (2, 1, 3), (1, 1, 0), (1, 1, 2), False),
    ((1, 2, 5, 5, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), True),
    ((2, 1, 3, 4, 7), (1, 2, 3), (1, 3, 2), (0, 1, 1), (2, 1, 1), True),
]


def _pool_input(kind: str, case: tuple) -> np.ndarray:
    shape = case[0]
    rng = _rng("pool", kind, case)
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "nan":  # several NaNs per window: torch keeps the last one
        x = rng.integers(0, 3, shape).astype(np.float64)
        x[rng.random(shape) < 0.3] = np.nan
        return x
    x = np.full(shape, -np.inf)  # windows of -inf: the index is the window's first real element
    x[rng.random(shape) < 0.2] = 1.0
    return x


@pytest.mark.parametrize("kind", ["normal", "ties", "nan", "neginf"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_values_and_indices(case: tuple, kind: str) -> None:
    _, kernel, stride, padding, dilation, ceil_mode = case
    x = _pool_input(kind, case)
    ref, ref_idx = MAX_POOL[len(kernel)](torch.tensor(x), kernel, stride, padding, dilation, ceil_mode, True)
    values, idx = _xp_conv.max_pool(np, x, kernel, stride, padding, dilation, ceil_mode)
    assert values.dtype == np.float64 and idx.dtype == np.int64
    np.testing.assert_array_equal(values, ref.numpy())
    np.testing.assert_array_equal(idx, ref_idx.numpy())


# ====================================================================== average pooling
AVG_CASES = [c for c in POOL_CASES if all(dl == 1 for dl in c[4])] + [
    ((2, 2, 7), (4,), (3,), (2,), (1,), True),
    ((1, 2, 6, 7), (3, 4), (2, 3), (1, 2), (1, 1), True),
    ((1, 1, 5, 4, 6), (2, 3, 3), (3, 2, 2), (1, 1, 1), (1, 1, 1), True),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_forward_grad_and_adjoint(case: tuple, count_include_pad: bool) -> None:
    shape, kernel, stride, padding, _, ceil_mode = case
    rng = _rng("avg", case, count_include_pad)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    ref = AVG_POOL[len(kernel)](xt, kernel, stride, padding, ceil_mode, count_include_pad)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    y = _xp_conv.avg_pool(np, x, *args)
    _close(y, ref)
    g = rng.standard_normal(y.shape)
    (gx_ref,) = torch.autograd.grad(ref, xt, torch.tensor(g))
    gx = _xp_conv.avg_pool_grad(np, g, shape, *args)
    _close(gx, gx_ref)
    np.testing.assert_allclose(np.vdot(x, gx), np.vdot(y, g))


# ====================================================================== shared properties
def test_pool_output_size_matches_torch() -> None:
    for size, k, s, p, dl, ceil in np.ndindex(9, 4, 4, 3, 3, 2):
        size, k, s, dl = size + 1, k + 1, s + 1, dl + 1
        if 2 * p > k or size + 2 * p < dl * (k - 1) + 1:
            continue
        expected = F.max_pool1d(torch.zeros(1, 1, size), k, s, p, dl, bool(ceil)).shape[-1]
        assert _xp_conv.pool_output_size(size, k, s, p, dl, bool(ceil)) == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtype_is_kept(dtype: type) -> None:
    case = CONV_CASES[6]
    x64, w64 = _conv_inputs(case)
    x, w = x64.astype(dtype), w64.astype(dtype)
    tol = {"rtol": 2e-2, "atol": 5e-2} if dtype == np.float16 else {"rtol": 1e-4, "atol": 1e-5}
    y = _xp_conv.conv(np, x, w, *_args(case))
    gy = y.astype(np.float64)
    results = [
        (y, _xp_conv.conv(np, x64, w64, *_args(case))),
        (
            _xp_conv.conv_input_grad(np, y, w, x.shape, *_args(case)),
            _xp_conv.conv_input_grad(np, gy, w64, x.shape, *_args(case)),
        ),
        (
            _xp_conv.conv_weight_grad(np, x, y, w.shape, *_args(case)),
            _xp_conv.conv_weight_grad(np, x64, gy, w.shape, *_args(case)),
        ),
    ]
    pool = ((3, 2), (2, 1), (1, 1))
    results.append(
        (_xp_conv.max_pool(np, x, *pool, (1, 1), True)[0], _xp_conv.max_pool(np, x64, *pool, (1, 1), True)[0])
    )
    results.append(
        (_xp_conv.avg_pool(np, x, *pool, True, False), _xp_conv.avg_pool(np, x64, *pool, True, False))
    )
    p = results[-1][0]
    results.append(
        (
            _xp_conv.avg_pool_grad(np, p, x.shape, *pool, True, False),
            _xp_conv.avg_pool_grad(np, p.astype(np.float64), x.shape, *pool, True, False),
        )
    )
    for got, expected in results:
        assert got.dtype == dtype
        np.testing.assert_allclose(got.astype(np.float64), expected, **tol)


def test_non_contiguous_inputs() -> None:
    case = CONV_CASES[6]
    x, w = _conv_inputs(case)
    xs, ws = np.asfortranarray(x)[:, :, ::-1], np.asfortranarray(w)  # strided, reversed views
    _close(
        _xp_conv.conv(np, xs, ws, *_args(case)), _xp_conv.conv(np, np.ascontiguousarray(xs), w, *_args(case))
    )
    ref, ref_idx = F.max_pool2d(torch.tensor(xs.copy()), 3, 2, 1, 1, True, True)
    values, idx = _xp_conv.max_pool(np, xs, (3, 3), (2, 2), (1, 1), (1, 1), True)
    np.testing.assert_array_equal(values, ref.numpy())
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    _close(
        _xp_conv.avg_pool(np, xs, (3, 3), (2, 2), (1, 1), True, True),
        F.avg_pool2d(torch.tensor(xs.copy()), 3, 2, 1, True),
    )


def test_empty_batch() -> None:
    x, w = np.zeros((0, 2, 5, 5)), np.ones((4, 2, 3, 3))
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    y = _xp_conv.conv(np, x, w, *args)
    assert y.shape == (0, 4, 5, 5)
    assert _xp_conv.conv_input_grad(np, y, w, x.shape, *args).shape == x.shape
    np.testing.assert_array_equal(_xp_conv.conv_weight_grad(np, x, y, w.shape, *args), np.zeros(w.shape))
    values, idx = _xp_conv.max_pool(np, x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert values.shape == idx.shape == (0, 2, 2, 2)
    assert _xp_conv.avg_pool(np, x, (2, 2), (2, 2), (0, 0), True, True).shape == (0, 2, 3, 3)
