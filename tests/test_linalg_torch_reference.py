"""`ag.linalg` gradients against torch.linalg's autograd (float64 and complex128, the same inputs)
for every primitive, on the numpy, torch and JAX backends; a compiled training step that uses
linalg on torch and JAX against the eager one; and what a singular matrix gives inside ag.compile
(NaN: a compiled program cannot raise on a value)."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag

torch = pytest.importorskip("torch")

BACKENDS = ["numpy", "torch", "jax"]
N = 4


def _backend(name: str) -> ag.Device:
    try:
        return ag.backend(name)
    except (ag.backends.BackendUnavailable, ImportError) as exc:  # jax is an optional extra
        pytest.skip(f"backend {name!r} unavailable: {exc}")


class _Torch:
    """The few functions the losses need, torch's way."""

    linalg = torch.linalg
    abs, real, sum = staticmethod(torch.abs), staticmethod(torch.real), staticmethod(torch.sum)

    def c(self, a: np.ndarray):
        return torch.tensor(a)


class _Ag:
    linalg = ag.linalg
    abs, real, sum = staticmethod(ag.abs), staticmethod(ag.real), staticmethod(ag.sum)

    def __init__(self, device: ag.Device) -> None:
        self.device = device

    def c(self, a: np.ndarray) -> ag.Tensor:
        return self.device.tensor(a)


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(7).standard_normal(shape)


def _mh(x):
    return x.mT.conj() if isinstance(x, torch.Tensor) else ag.conj(x.mT)


def _svd_loss(F, x, m: int, n: int):
    k = min(m, n)
    u, s, vh = F.linalg.svd(x, full_matrices=False)
    return (
        F.sum(s * F.c(_w(2, k)))
        + F.sum(F.abs(u) ** 2 * F.c(_w(2, m, k)))
        + F.sum(F.abs(vh) ** 2 * F.c(_w(2, k, n)))
    )


# name: (input shape, shift by 3 I (well-conditioned), real loss of the namespace F and input x)
CASES = {
    "inv": ((2, N, N), True, lambda F, x: F.sum(F.real(F.linalg.inv(x) * F.c(_w(2, N, N))))),
    "det": ((2, N, N), True, lambda F, x: F.sum(F.real(F.linalg.det(x) * F.c(_w(2))))),
    "slogdet": (
        (2, N, N),
        True,
        lambda F, x: (
            F.sum(F.linalg.slogdet(x)[1] * F.c(_w(2)))
            + F.sum(F.real(F.linalg.slogdet(x)[0] * F.c(_w(2) + 1j * _w(2)[::-1])))
        ),
    ),
    "solve": (
        (2, N, N),
        True,
        lambda F, x: F.sum(F.real(F.linalg.solve(x, x[..., :2] * 2 + 1) * F.c(_w(2, N, 2)))),
    ),
    "cholesky": (
        (2, N, N),
        False,
        lambda F, x: F.sum(F.real(F.linalg.cholesky(x @ _mh(x) + F.c(5 * np.eye(N))) * F.c(_w(2, N, N)))),
    ),
    "eigh": (
        (2, N, N),
        False,
        lambda F, x: (lambda wv: F.sum(wv[0] * F.c(_w(2, N))) + F.sum(F.abs(wv[1]) ** 2 * F.c(_w(2, N, N))))(
            F.linalg.eigh(x + _mh(x))
        ),
    ),
    "eigvalsh": ((2, N, N), False, lambda F, x: F.sum(F.linalg.eigvalsh(x + _mh(x)) * F.c(_w(2, N)))),
    "qr": (
        (2, 5, 3),
        False,
        lambda F, x: (
            lambda qr: F.sum(F.real(qr[0] * F.c(_w(2, 5, 3)))) + F.sum(F.real(qr[1] * F.c(_w(2, 3, 3))))
        )(F.linalg.qr(x)),
    ),
    "svd_tall": ((2, 5, 3), False, lambda F, x: _svd_loss(F, x, 5, 3)),
    "svd_wide": ((2, 3, 5), False, lambda F, x: _svd_loss(F, x, 3, 5)),
    "svdvals": ((2, 3, 5), False, lambda F, x: F.sum(F.linalg.svdvals(x) * F.c(_w(2, 3)))),
}


@pytest.mark.parametrize("complex_", [False, True], ids=["float64", "complex128"])
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("bname", BACKENDS)
def test_gradient_matches_torch_autograd(bname: str, name: str, complex_: bool) -> None:
    backend = _backend(bname)
    shape, shift, loss = CASES[name]
    r = np.random.default_rng(0)
    a = r.standard_normal(shape) + (1j * r.standard_normal(shape) if complex_ else 0)
    if shift:
        a = a + 3 * np.eye(shape[-1])
    xt = torch.tensor(a, requires_grad=True)
    loss(_Torch(), xt).backward()
    got = ag.grad(lambda x: loss(_Ag(backend), x), argnums=0)(backend.tensor(a))
    assert got.dtype == (ag.complex128 if complex_ else ag.float64)
    np.testing.assert_allclose(got.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("complex_", [False, True], ids=["float64", "complex128"])
@pytest.mark.parametrize("name", ["cholesky", "eigh"])
def test_hermitian_leaf_gradient_matches_torch(name: str, complex_: bool) -> None:
    """Differentiating with respect to the Hermitian matrix itself (not a symmetrized parameter)."""
    a = np.random.default_rng(1).standard_normal((3, 3)) + 1j * np.random.default_rng(2).standard_normal(
        (3, 3)
    )
    h = a @ a.conj().T + 3 * np.eye(3)
    w = _w(3, 3)

    def loss(F, x):
        if name == "cholesky":
            return F.sum(F.real(F.linalg.cholesky(x) * F.c(w)))
        vals, vecs = F.linalg.eigh(x)
        return F.sum(vals * F.c(w[0])) + F.sum(F.abs(vecs) ** 2 * F.c(w))

    xt = torch.tensor(h, requires_grad=True)
    loss(_Torch(), xt).backward()
    got = ag.grad(lambda x: loss(_Ag(ag.backend("numpy")), x), argnums=0)(ag.backend("numpy").tensor(h))
    np.testing.assert_allclose(got.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)


def _fit(backend: ag.Device, compiled: bool) -> list[float]:
    """A few steps of gradient descent on a loss built from solve, slogdet, cholesky, the nuclear norm
    (svd), eigh, qr and det."""
    r = np.random.default_rng(0)
    w = backend.tensor(r.standard_normal((3, 3)) * 0.3 + np.eye(3))
    b = backend.tensor(r.standard_normal((3, 2)))

    def loss(w: ag.Tensor) -> ag.Tensor:
        x = ag.linalg.solve(w, b)
        spd = w @ w.mT + ag.eye(3, dtype=w.dtype, device=w.device)
        return (
            ag.linalg.matrix_norm(x) ** 2
            - ag.linalg.slogdet(w).logabsdet
            + ag.sum(ag.linalg.cholesky(spd))
            + ag.linalg.matrix_norm(w, ord="nuc")
            + ag.sum(ag.linalg.eigh(spd).eigenvectors[0] ** 2 * ag.linalg.eigvalsh(spd))
            + ag.sum(ag.linalg.qr(w).R[0] ** 3)
            + ag.linalg.det(w)
        )

    def step(w: ag.Tensor) -> tuple[ag.Tensor, ag.Tensor]:
        value, g = ag.value_and_grad(loss, argnums=0)(w)
        return value, w - 0.05 * g

    fn = ag.compile(step) if compiled else step
    losses = []
    for _ in range(3):
        value, w = fn(w)
        losses.append(float(value.numpy()))
    return losses


@pytest.mark.parametrize("bname", ["torch", "jax"])
def test_a_compiled_step_with_linalg_matches_the_eager_one(bname: str) -> None:
    backend = _backend(bname)
    np.testing.assert_allclose(_fit(backend, True), _fit(ag.backend("numpy"), False), rtol=1e-5)


@pytest.mark.parametrize("bname", ["torch", "jax"])
def test_singular_inside_compile_gives_nan(bname: str) -> None:
    """Eagerly a singular matrix raises LinAlgError on every backend; a compiled program has no
    values to test, so there the failed matrices are NaN (the others are computed as usual)."""
    backend = _backend(bname)
    a = np.stack([np.eye(2) * 2, np.ones((2, 2))])
    x = backend.tensor(a)
    with pytest.raises(ag.linalg.LinAlgError, match="inv: a matrix of the input is singular"):
        ag.linalg.inv(x)
    inv = ag.compile(ag.linalg.inv)(x).numpy()
    np.testing.assert_allclose(inv[0], np.eye(2) / 2)
    assert np.isnan(inv[1]).all()
    sol = ag.compile(lambda m: ag.linalg.solve(m, ag.ones((2, 2, 1), dtype=m.dtype, device=m.device)))(
        x
    ).numpy()
    assert np.isnan(sol[1]).all() and np.allclose(sol[0], 0.5)
    chol = ag.compile(ag.linalg.cholesky)(backend.tensor(np.stack([np.eye(2), -np.eye(2)]))).numpy()
    assert np.allclose(chol[0], np.eye(2)) and np.isnan(chol[1]).all()
