"""`ag.fft` gradients against torch.fft's autograd (float64/complex128) on the numpy, torch and jax
backends, JAX's `jax.vjp` as a third reference, and fft inside `ag.compile` on torch and jax.

torch's convention is agnostic's: a complex cotangent c of the output y stands for the real loss
Re(sum(conj(c) y)), and the gradient of a complex input z is dL/dRe z + i dL/dIm z. JAX's vjp of
the conjugated cotangent gives the conjugate of that (it is the transpose, not the adjoint), which
is how it is compared below.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

BACKENDS = [b for b in available_backends() if b.ops.name in ("numpy", "torch", "jax")]

# name, agnostic call, torch call (same arguments under torch's names), jax call, complex input
CASES: list[tuple[str, Callable, Callable, Callable, bool]] = [
    ("fft", lambda x: ag.fft.fft(x, n=7, norm="ortho"),
     lambda x: torch.fft.fft(x, n=7, norm="ortho"), lambda x: jnp.fft.fft(x, n=7, norm="ortho"), True),
    ("fft_of_real", lambda x: ag.fft.fft(x, axis=0),
     lambda x: torch.fft.fft(x, dim=0), lambda x: jnp.fft.fft(x, axis=0), False),
    ("ifft", lambda x: ag.fft.ifft(x, n=4, norm="forward"),
     lambda x: torch.fft.ifft(x, n=4, norm="forward"), lambda x: jnp.fft.ifft(x, n=4, norm="forward"), True),
    ("fftn", lambda x: ag.fft.fftn(x, s=(5, 3), axes=(1, 0)),
     lambda x: torch.fft.fftn(x, s=(5, 3), dim=(1, 0)), lambda x: jnp.fft.fftn(x, s=(5, 3), axes=(1, 0)), True),
    ("ifftn", lambda x: ag.fft.ifftn(x, norm="ortho"),
     lambda x: torch.fft.ifftn(x, norm="ortho"), lambda x: jnp.fft.ifftn(x, norm="ortho"), True),
    ("rfft", lambda x: ag.fft.rfft(x),
     lambda x: torch.fft.rfft(x), lambda x: jnp.fft.rfft(x), False),
    ("rfft_odd", lambda x: ag.fft.rfft(x, n=9, norm="ortho"),
     lambda x: torch.fft.rfft(x, n=9, norm="ortho"), lambda x: jnp.fft.rfft(x, n=9, norm="ortho"), False),
    ("irfft", lambda x: ag.fft.irfft(x),
     lambda x: torch.fft.irfft(x), lambda x: jnp.fft.irfft(x), True),
    ("irfft_odd", lambda x: ag.fft.irfft(x, n=5, norm="forward"),
     lambda x: torch.fft.irfft(x, n=5, norm="forward"), lambda x: jnp.fft.irfft(x, n=5, norm="forward"), True),
    ("rfftn", lambda x: ag.fft.rfftn(x, axes=(1, 0)),
     lambda x: torch.fft.rfftn(x, dim=(1, 0)), lambda x: jnp.fft.rfftn(x, axes=(1, 0)), False),
    ("irfftn", lambda x: ag.fft.irfftn(x, s=(4, 7), axes=(0, 1), norm="ortho"),
     lambda x: torch.fft.irfftn(x, s=(4, 7), dim=(0, 1), norm="ortho"),
     lambda x: jnp.fft.irfftn(x, s=(4, 7), axes=(0, 1), norm="ortho"), True),
    ("hfft", lambda x: ag.fft.hfft(x, n=8),
     lambda x: torch.fft.hfft(x, n=8), lambda x: jnp.fft.hfft(x, n=8), True),
    ("ihfft", lambda x: ag.fft.ihfft(x, norm="ortho"),
     lambda x: torch.fft.ihfft(x, norm="ortho"), lambda x: jnp.fft.ihfft(x, norm="ortho"), False),
    ("fftshift", lambda x: ag.fft.fftshift(ag.fft.fft(x)),
     lambda x: torch.fft.fftshift(torch.fft.fft(x)), lambda x: jnp.fft.fftshift(jnp.fft.fft(x)), True),
]  # fmt: skip


def _sample(shape: tuple[int, ...], complex_: bool, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape)
    return a + 1j * r.standard_normal(shape) if complex_ else a


def _torch_vjp(fn: Callable, x: np.ndarray, cot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = torch.tensor(x, requires_grad=True)
    y = fn(t)
    (g,) = torch.autograd.grad(y, t, torch.tensor(cot))
    return y.detach().resolve_conj().numpy(), g.resolve_conj().numpy()


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.ops.name)
@pytest.mark.parametrize("name, ours, theirs, jaxs, complex_in", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_torch_autograd(
    backend: ag.Device, name: str, ours: Callable, theirs: Callable, jaxs: Callable, complex_in: bool
) -> None:  # fmt: skip
    x = _sample((4, 6), complex_in, seed=1)
    out, pullback = ag.vjp(ours, backend.tensor(x))
    cot = _sample(out.shape, out.dtype.is_complex, seed=2)
    want_out, want = _torch_vjp(theirs, x, cot)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-12, atol=1e-12)
    (got,) = pullback(backend.tensor(cot))
    assert got.dtype == (ag.complex128 if complex_in else ag.float64)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name, ours, theirs, jaxs, complex_in", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_jax_vjp_conjugated(
    name: str, ours: Callable, theirs: Callable, jaxs: Callable, complex_in: bool
) -> None:  # fmt: skip
    """JAX's vjp is the transpose, not the adjoint: conj(jax_vjp(conj(c))) is torch's and
    agnostic's gradient, for these R-linear maps as for holomorphic ones."""
    x = _sample((4, 6), complex_in, seed=3)
    with jax.enable_x64(True):
        y, jvjp = jax.vjp(jaxs, jnp.asarray(x))
        cot = _sample(y.shape, jnp.iscomplexobj(y), seed=4)
        (g,) = jvjp(jnp.asarray(np.conj(cot)))
        want = np.conj(np.asarray(g))
    _, pullback = ag.vjp(ours, ag.asarray(x))
    (got,) = pullback(ag.asarray(cot))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.ops.name)
def test_real_losses_through_complex_ops_match_torch(backend: ag.Device) -> None:
    """`ag.grad` of real losses built with complex elementwise ops on fft outputs."""
    r = np.random.default_rng(6)
    x = r.standard_normal((2, 6))
    z = x + 1j * r.standard_normal((2, 6))

    def ours(t: ag.Tensor, u: ag.Tensor) -> ag.Tensor:
        power = ag.sum(ag.abs(ag.fft.fftn(u, norm="ortho")) ** 2)
        return ag.sum(ag.real(ag.fft.rfft(t)) * 2) + ag.sum(ag.imag(ag.fft.fft(t, n=8)) ** 2) + power

    def theirs(t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        power = (torch.fft.fftn(u, norm="ortho").abs() ** 2).sum()
        return (torch.fft.rfft(t).real * 2).sum() + (torch.fft.fft(t, n=8).imag ** 2).sum() + power

    gx, gz = ag.grad(ours, argnums=(0, 1))(backend.tensor(x), backend.tensor(z))
    tx, tz = torch.tensor(x, requires_grad=True), torch.tensor(z, requires_grad=True)
    wx, wz = torch.autograd.grad(theirs(tx, tz), (tx, tz))
    np.testing.assert_allclose(gx.numpy(), wx.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gz.numpy(), wz.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gz.numpy(), 2 * z, rtol=1e-12)  # Parseval: sum |z|^2, gradient 2z


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_compiled_spectral_filter(name: str) -> None:
    """A compiled training-style step that filters in the frequency domain: values and gradients
    equal the eager ones, and torch's autograd."""
    backend = ag.backend(name)
    r = np.random.default_rng(5)
    x = r.standard_normal((3, 16))
    h = r.standard_normal(9) + 1j * r.standard_normal(9)

    def loss(signal: ag.Tensor, response: ag.Tensor) -> ag.Tensor:
        y = ag.fft.irfft(ag.fft.rfft(signal) * response, n=16)
        return ag.sum(y * y)

    step = ag.compile(ag.value_and_grad(loss, argnums=(0, 1)))
    xs, hs = backend.tensor(x), backend.tensor(h)
    for fn in (step, ag.value_and_grad(loss, argnums=(0, 1))):
        value, (gx, gh) = fn(xs, hs)
        tx, th = torch.tensor(x, requires_grad=True), torch.tensor(h, requires_grad=True)
        ty = torch.fft.irfft(torch.fft.rfft(tx) * th, n=16)
        tl = (ty * ty).sum()
        wx, wh = torch.autograd.grad(tl, (tx, th))
        np.testing.assert_allclose(float(value.numpy()), tl.item(), rtol=1e-12)
        np.testing.assert_allclose(gx.numpy(), wx.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gh.numpy(), wh.resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
