"""`ag.fft` against numpy.fft in float64/complex128: every function and norm, n shorter and longer
than the axis, axes and s, the standard's dtypes, the primitives' contract, errors, and gradients
against finite differences of real losses in torch's convention (for a real loss L of z = x + iy
the gradient is dL/dx + i dL/dy; an output with cotangent c defines L = sum(Re(conj(c) f)))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic.conformance.support import noncontiguous, rng, tensor

COVERS = {"fft_c2c", "fft_r2c", "fft_c2r", "cast", "pad", "getitem", "conj", "concat", "mul", "real"}

C64, C128, F32, F64 = dtypes.complex64, dtypes.complex128, dtypes.float32, dtypes.float64
NORMS = ["backward", "ortho", "forward"]
PRECISION = {F32: C64, F64: C128, C64: C64, C128: C128}
RTOL = {C64: 1e-4, C128: 1e-11}
"""Relative tolerance (of the largest reference magnitude) of a transform in each precision."""


def _sample(shape: tuple[int, ...], dtype: dtypes.DType, seed: int = 0) -> np.ndarray:
    r = rng(seed)
    a = r.standard_normal(shape)
    if dtype.is_complex:
        a = a + 1j * r.standard_normal(shape)
    return a.astype(dtypes.to_numpy_dtype(dtype))


def _close(out: ag.Tensor, want: np.ndarray, dtype: dtypes.DType) -> None:
    """`out` has `dtype`, the reference's shape, and its values to the precision's tolerance."""
    assert isinstance(out, ag.Tensor), f"expected a Tensor, got {type(out).__name__}"
    assert out.dtype == dtype, f"dtype {out.dtype} != expected {dtype}"
    assert out.shape == want.shape, f"shape {out.shape} != expected {want.shape}"
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    tol = RTOL[dtype if dtype.is_complex else dtypes.complex_dtype(dtype)] * scale
    np.testing.assert_allclose(out.numpy().astype(np.complex128), want, rtol=0, atol=tol)


def _real_dtype(d: dtypes.DType) -> dtypes.DType:
    return dtypes.real_dtype(d) if d.is_complex else d


# ====================================================================== one-dimensional transforms
ONE_D = [
    # name, agnostic function, numpy function, takes complex input, output is real
    ("fft", ag.fft.fft, np.fft.fft, True, False),
    ("ifft", ag.fft.ifft, np.fft.ifft, True, False),
    ("rfft", ag.fft.rfft, np.fft.rfft, False, False),
    ("irfft", ag.fft.irfft, np.fft.irfft, True, True),
    ("hfft", ag.fft.hfft, np.fft.hfft, True, True),
    ("ihfft", ag.fft.ihfft, np.fft.ihfft, False, False),
]


@pytest.mark.parametrize("name, fn, ref, complex_in, real_out", ONE_D, ids=[c[0] for c in ONE_D])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [None, 3, 6, 11], ids=lambda n: f"n={n}")
def test_one_dimensional_values(
    backend: ag.Device, name: str, fn: Callable, ref: Callable, complex_in: bool, real_out: bool,
    norm: str, n: int | None,
) -> None:  # fmt: skip
    for dtype in [C64, C128] if complex_in else [F32, F64]:
        for axis in (-1, 0):
            x = _sample((6, 7), dtype, seed=3)
            want = ref(x.astype(np.complex128 if complex_in else np.float64), n=n, axis=axis, norm=norm)
            out_dtype = _real_dtype(dtype) if real_out else PRECISION[dtype]
            _close(fn(tensor(backend, x), n=n, axis=axis, norm=norm), want, out_dtype)


@pytest.mark.parametrize("name, fn, ref, complex_in, real_out", ONE_D, ids=[c[0] for c in ONE_D])
def test_real_input_dtypes(
    backend: ag.Device, name: str, fn: Callable, ref: Callable, complex_in: bool, real_out: bool
) -> None:  # fmt: skip
    """Real floating input: float32 gives complex64 (float32 for real outputs), float64 complex128
    (float64); float16 and bfloat16 are computed in float32."""
    x = _sample((2, 8), F64, seed=4)
    for dtype, precision in ((F32, F32), (F64, F64), (dtypes.float16, F32), (dtypes.bfloat16, F32)):
        t = tensor(backend, x, dtype)
        want = ref(t.numpy().astype(np.float64))
        out_dtype = precision if real_out else dtypes.complex_dtype(precision)
        _close(fn(t), want, out_dtype)


def test_noncontiguous_and_batched_input(backend: ag.Device) -> None:
    x = _sample((4, 3, 5), C128, seed=5)
    _close(ag.fft.fft(noncontiguous(backend, x), axis=1), np.fft.fft(x, axis=1), C128)
    r = _sample((4, 3, 5), F64, seed=6)
    _close(ag.fft.rfft(noncontiguous(backend, r), axis=0), np.fft.rfft(r, axis=0), C128)
    _close(ag.fft.irfft(tensor(backend, x)[:, 1], n=7), np.fft.irfft(x[:, 1], n=7), F64)


def test_empty_batch_and_padding_an_empty_axis(backend: ag.Device) -> None:
    x = np.zeros((0, 4), np.complex128)
    _close(ag.fft.fft(tensor(backend, x)), np.fft.fft(x), C128)
    _close(ag.fft.rfft(tensor(backend, x.real)), np.fft.rfft(x.real), C128)
    _close(ag.fft.irfft(tensor(backend, x), n=5), np.fft.irfft(x, n=5), F64)
    _close(ag.fft.fftn(tensor(backend, x), axes=(1,)), np.fft.fftn(x, axes=(1,)), C128)
    e = np.zeros((3, 0))
    _close(ag.fft.fft(tensor(backend, e), n=4), np.zeros((3, 4), np.complex128), C128)


def test_round_trips(backend: ag.Device) -> None:
    """ifft(fft(x)) == x, irfft(rfft(x), n) == x and hfft(ihfft(x), n) == x for every norm, odd and
    even lengths (the standard's requirement)."""
    for norm in NORMS:
        for n in (7, 8):
            z = _sample((3, n), C128, seed=n)
            r = z.real.copy()
            _close(ag.fft.ifft(ag.fft.fft(tensor(backend, z), norm=norm), norm=norm), z, C128)
            _close(ag.fft.irfft(ag.fft.rfft(tensor(backend, r), norm=norm), n=n, norm=norm), r, F64)
            _close(ag.fft.hfft(ag.fft.ihfft(tensor(backend, r), norm=norm), n=n, norm=norm), r, F64)
            _close(ag.fft.ifftn(ag.fft.fftn(tensor(backend, z), norm=norm), norm=norm), z, C128)
            _close(ag.fft.irfftn(ag.fft.rfftn(tensor(backend, r), norm=norm), s=(3, n), norm=norm), r, F64)


# ====================================================================== n-dimensional transforms
ND_CASES = [
    # s, axes
    (None, None),
    (None, (0,)),
    (None, (2, 0)),
    (None, (-1, -2)),
    ((4, 5), (1, 0)),
    ((2, 9), (0, 2)),
    ((-1, 6), (0, 1)),
    ((3, 3, 3), None),
    ((5,), None),
]


@pytest.mark.parametrize("s, axes", ND_CASES, ids=str)
@pytest.mark.parametrize("norm", NORMS)
def test_n_dimensional_values(backend: ag.Device, s: Any, axes: Any, norm: str) -> None:
    z = _sample((3, 4, 6), C128, seed=7)
    r = z.real.copy()
    # numpy's s without axes means the last len(s) axes (as ours); -1 means "keep" in the standard
    ax = list(range(3 - len(s), 3)) if axes is None and s is not None else axes
    full = None if s is None else [z.shape[a] if k == -1 else k for k, a in zip(s, ax)]
    for precision in (C64, C128):
        zt = tensor(backend, z, precision)
        rt = tensor(backend, r, dtypes.real_dtype(precision))
        _close(ag.fft.fftn(zt, s=s, axes=axes, norm=norm), np.fft.fftn(z, full, ax, norm), precision)
        _close(ag.fft.ifftn(zt, s=s, axes=axes, norm=norm), np.fft.ifftn(z, full, ax, norm), precision)
        _close(ag.fft.rfftn(rt, s=s, axes=axes, norm=norm), np.fft.rfftn(r, full, ax, norm), precision)
        irfull = full
        if s is not None and s[-1] == -1:
            irfull = full[:-1] + [2 * (z.shape[ax[-1]] - 1)]
        _close(
            ag.fft.irfftn(zt, s=s, axes=axes, norm=norm),
            np.fft.irfftn(z, irfull, ax, norm),
            dtypes.real_dtype(precision),
        )


def test_rfftn_halves_the_last_given_axis(backend: ag.Device) -> None:
    r = _sample((4, 6), F64, seed=8)
    out = ag.fft.rfftn(tensor(backend, r), axes=(1, 0))
    assert out.shape == (3, 6)
    _close(out, np.fft.rfftn(r, axes=(1, 0)), C128)
    _close(ag.fft.rfftn(tensor(backend, r), axes=(0, 1)), np.fft.rfftn(r, axes=(0, 1)), C128)


def test_fftn_over_no_axes_is_the_input_as_complex(backend: ag.Device) -> None:
    r = _sample((2, 3), F32, seed=9)
    _close(ag.fft.fftn(tensor(backend, r), axes=()), r.astype(np.complex64), C64)


# ====================================================================== the primitives' contract
@pytest.mark.parametrize("n", [7, 8])
def test_c2r_ignores_the_imaginary_part_of_the_zero_and_nyquist_bins(backend: ag.Device, n: int) -> None:
    """What a Hermitian spectrum has as zero, `fft_c2r` ignores (the gradient of rfft relies on
    it); numpy.fft does the same."""
    h = np.fft.rfft(_sample((2, n), F64, seed=n))
    bumped = h.copy()
    bumped[:, 0] += 3j
    if n % 2 == 0:
        bumped[:, -1] -= 2j
    ops = backend.ops
    for norm in NORMS:
        got = ag.Tensor._make(ops.fft_c2r(tensor(backend, bumped)._data, 1, n, norm), backend)
        _close(got, np.fft.irfft(h, n=n, norm=norm), F64)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_primitives_return_the_standard_dtypes(backend: ag.Device, dtype: dtypes.DType) -> None:
    ops = backend.ops
    x = tensor(backend, _sample((2, 6), dtype, seed=10))._data
    c = ops.fft_r2c(x, 1, "backward")
    assert ops.dtype_of(c) == dtypes.complex_dtype(dtype) and ops.shape(c) == (2, 4)
    assert ops.dtype_of(ops.fft_c2c(c, (0, 1), True, "ortho")) == dtypes.complex_dtype(dtype)
    back = ops.fft_c2r(c, 1, 6, "backward")
    assert ops.dtype_of(back) == dtype and ops.shape(back) == (2, 6)


# ====================================================================== frequencies and shifts
@pytest.mark.parametrize("n", [1, 2, 7, 8])
@pytest.mark.parametrize("d", [1.0, 0.25, 3])
def test_frequencies(backend: ag.Device, n: int, d: float) -> None:
    out = ag.fft.fftfreq(n, d=d, device=backend)
    assert out.device == backend and out.dtype == dtypes.default_float
    np.testing.assert_allclose(out.numpy(), np.fft.fftfreq(n, d), rtol=1e-6)
    out = ag.fft.rfftfreq(n, d=d, device=backend, dtype=F64)
    assert out.dtype == F64 and out.device == backend
    np.testing.assert_allclose(out.numpy(), np.fft.rfftfreq(n, d), rtol=1e-15)
    _close(ag.fft.fftfreq(n, d=d, device=backend, dtype="float64"), np.fft.fftfreq(n, d), F64)


@pytest.mark.parametrize("axes", [None, 0, -1, (0, 2), [1]], ids=str)
def test_shifts(backend: ag.Device, axes: Any) -> None:
    for dtype in (F32, C128, dtypes.int64):
        x = (np.arange(3 * 4 * 5).reshape(3, 4, 5) - 7).astype(dtypes.to_numpy_dtype(dtype))
        t = tensor(backend, x)
        shifted = ag.fft.fftshift(t, axes=axes)
        assert shifted.dtype == dtype
        np.testing.assert_array_equal(shifted.numpy(), np.fft.fftshift(x, axes=axes))
        np.testing.assert_array_equal(ag.fft.ifftshift(t, axes=axes).numpy(), np.fft.ifftshift(x, axes=axes))
        np.testing.assert_array_equal(ag.fft.ifftshift(shifted, axes=axes).numpy(), x)


def test_shift_puts_the_zero_frequency_in_the_middle(backend: ag.Device) -> None:
    for n in (6, 7):
        f = ag.fft.fftshift(ag.fft.fftfreq(n, device=backend, dtype=F64)).numpy()
        assert f[n // 2] == 0 and np.all(np.diff(f) > 0)


# ====================================================================== errors
def _raises(exc: type, match: str, fn: Callable, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_input_dtype_errors(backend: ag.Device) -> None:
    i = backend.tensor(np.arange(8))
    msg = _raises(TypeError, r"^fft: expected a floating-point or complex tensor, got int64", ag.fft.fft, i)
    assert "ag.astype" in msg
    _raises(TypeError, r"^irfftn: .*got bool", ag.fft.irfftn, backend.tensor(np.ones((2, 2), bool)))
    z = backend.tensor(np.ones(4, np.complex64))
    for fn in (ag.fft.rfft, ag.fft.ihfft):
        msg = _raises(
            TypeError, rf"^{fn.__name__}: expected a real floating-point tensor, got complex64", fn, z
        )
        assert "ag.fft.fft" in msg
    _raises(TypeError, r"^rfftn: .*complex64.*ag\.fft\.fftn", ag.fft.rfftn, z)
    _raises(TypeError, r"^fft: expected a Tensor, got list", ag.fft.fft, [1.0, 2.0])


def test_argument_errors(backend: ag.Device) -> None:
    x = backend.tensor(np.ones((3, 4), np.float32))
    _raises(ValueError, r"^ifft: norm must be one of 'backward', 'ortho', 'forward', got 'none'",
            ag.fft.ifft, x, norm="none")  # fmt: skip
    np.testing.assert_array_equal(ag.fft.ifft(x, norm=None).numpy(), ag.fft.ifft(x).numpy())  # NumPy's None
    _raises(ValueError, r"^fft: n must be at least 1, got 0", ag.fft.fft, x, n=0)
    _raises(TypeError, r"^rfft: n must be an int, got 2.5", ag.fft.rfft, x, n=2.5)
    _raises(ValueError, r"^hfft: axis 2 is out of range for a tensor of 2 dimensions", ag.fft.hfft, x, axis=2)
    _raises(ValueError, r"^fftn: repeated axis in axes=\(0, -2\)", ag.fft.fftn, x, axes=(0, -2))
    _raises(ValueError, r"^rfftn: s=\(2, 2\) and axes=\(1,\) must have the same length",
            ag.fft.rfftn, x, s=(2, 2), axes=(1,))  # fmt: skip
    _raises(ValueError, r"^ifftn: every entry of s \(or -1\) must be at least 1, got -3",
            ag.fft.ifftn, x, s=(-3,), axes=(0,))  # fmt: skip
    _raises(ValueError, r"^fftn: s=\(2, 2, 2\) has more entries than x has dimensions \(2\)",
            ag.fft.fftn, x, s=(2, 2, 2))  # fmt: skip
    _raises(TypeError, r"^irfftn: axes must be a sequence of ints", ag.fft.irfftn, x, axes=1)
    _raises(ValueError, r"^rfftn: axes is empty", ag.fft.rfftn, x, axes=())
    _raises(ValueError, r"^fft: expected a tensor of at least one dimension", ag.fft.fft, backend.tensor(1.0))
    one = backend.tensor(np.ones((3, 1), np.complex64))
    msg = _raises(ValueError, r"^irfft: axis 1 of x \(shape \(3, 1\)\) has 1 element", ag.fft.irfft, one)
    assert "give n" in msg
    assert ag.fft.irfft(one, n=1).shape == (3, 1)
    _raises(ValueError, r"^fft: axis 1 of x \(shape \(3, 0\)\) is empty; give n",
            ag.fft.fft, backend.tensor(np.ones((3, 0), np.float32)))  # fmt: skip
    _raises(ValueError, r"^fftfreq: n must be at least 1, got 0", ag.fft.fftfreq, 0, device=backend)
    _raises(
        ValueError,
        r"^rfftfreq: the sample spacing d must not be zero",
        ag.fft.rfftfreq,
        4,
        d=0.0,
        device=backend,
    )
    _raises(TypeError, r"^fftfreq: dtype must be a real floating-point dtype, got int32",
            ag.fft.fftfreq, 4, device=backend, dtype=ag.int32)  # fmt: skip
    _raises(ValueError, r"^fftshift: axis 3 is out of range", ag.fft.fftshift, x, axes=(0, 3))


# ====================================================================== gradients
def _numerical_grad(f: Callable[[ag.Tensor], ag.Tensor], x: np.ndarray, backend: ag.Device,
                    cot: np.ndarray, eps: float = 1e-6) -> np.ndarray:  # fmt: skip
    """dL/dRe x + i dL/dIm x (dL/dx for real x) by central differences of L = sum(Re(conj(cot) f(x)))."""

    def loss(a: np.ndarray) -> float:
        out = f(tensor(backend, a)).numpy().astype(np.complex128)
        return float(np.sum((np.conj(cot) * out).real))

    parts = [1.0, 1j] if np.iscomplexobj(x) else [1.0]
    grad = np.zeros(x.shape, np.complex128 if np.iscomplexobj(x) else np.float64)
    for j in range(x.size):
        for unit in parts:
            step = np.zeros(x.size, x.dtype)
            step[j] = eps * unit
            step = step.reshape(x.shape)
            grad.reshape(-1)[j] += unit * (loss(x + step) - loss(x - step)) / (2 * eps)
    return grad


GRADIENTS = [
    # name, function, complex input
    ("fft", lambda x: ag.fft.fft(x, n=5, norm="ortho"), True),
    ("fft_real_input_padded", lambda x: ag.fft.fft(x, n=8), False),
    ("ifft_axis0", lambda x: ag.fft.ifft(x, axis=0), True),
    ("rfft_even", lambda x: ag.fft.rfft(x), False),
    ("rfft_odd_trimmed", lambda x: ag.fft.rfft(x, n=5, norm="forward"), False),
    ("irfft_default", lambda x: ag.fft.irfft(x), True),
    ("irfft_odd", lambda x: ag.fft.irfft(x, n=7, norm="ortho"), True),
    ("irfft_real_input", lambda x: ag.fft.irfft(x, n=4, norm="forward"), False),
    ("hfft", lambda x: ag.fft.hfft(x, n=9), True),
    ("ihfft", lambda x: ag.fft.ihfft(x, norm="ortho"), False),
    ("fftn_s_axes", lambda x: ag.fft.fftn(x, s=(4, 2), axes=(1, 0)), True),
    ("ifftn", lambda x: ag.fft.ifftn(x, norm="forward"), True),
    ("rfftn", lambda x: ag.fft.rfftn(x, axes=(1, 0)), False),
    ("irfftn", lambda x: ag.fft.irfftn(x, s=(3, 5), axes=(0, 1), norm="ortho"), True),
    ("fftshift", lambda x: ag.fft.fftshift(x, axes=1), True),
]


@pytest.mark.parametrize("name, fn, complex_in", GRADIENTS, ids=[g[0] for g in GRADIENTS])
def test_gradients_against_finite_differences(
    backend: ag.Device, name: str, fn: Callable, complex_in: bool
) -> None:  # fmt: skip
    x = _sample((3, 6), C128 if complex_in else F64, seed=11)
    out, pullback = ag.vjp(fn, tensor(backend, x))
    shape = out.shape
    cot = _sample(shape, out.dtype, seed=12)
    (got,) = pullback(tensor(backend, cot))
    assert got.dtype == (C128 if complex_in else F64) and got.shape == x.shape
    want = _numerical_grad(fn, x, backend, cot)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision_gradient_keeps_its_dtype(backend: ag.Device, dtype: dtypes.DType) -> None:
    x = _sample((2, 8), dtype, seed=13)
    out, pullback = ag.vjp(lambda t: ag.fft.irfft(ag.fft.fft(t), n=8), tensor(backend, x))
    assert out.dtype == F32
    (got,) = pullback(tensor(backend, np.ones((2, 8), np.float32)))
    assert got.dtype == dtype
    want = _numerical_grad(
        lambda t: ag.fft.irfft(ag.fft.fft(t), n=8), x.astype(np.complex128 if dtype.is_complex else np.float64),
        backend, np.ones((2, 8)), eps=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)


def test_gradient_of_a_gradient(backend: ag.Device) -> None:
    """The rules are written with the primitives themselves: the vjp of rfft's vjp (as a function of
    the cotangent) is rfft again, so the transpose of the transpose is the map."""
    x = tensor(backend, _sample((2, 6), F64, seed=14))
    _, pullback = ag.vjp(lambda t: ag.fft.rfft(t, norm="ortho"), x)
    c = _sample((2, 4), C128, seed=15)
    v = _sample((2, 6), F64, seed=16)
    _, second = ag.vjp(lambda g: pullback(g)[0], tensor(backend, c))
    (got,) = second(tensor(backend, v))
    _close(got, np.fft.rfft(v, norm="ortho"), C128)
