"""Gradients of complex functions against torch.autograd and JAX (complex128), and complex parameters
trained by agnostic's optimizers against torch.optim, on the NumPy, torch and JAX backends.

Conventions: agnostic follows torch (the gradient of a real loss of z = x + iy is dL/dx + i dL/dy,
and a vector-Jacobian product maps a cotangent c of w = f(z) to conj(dw/dz) c + dw/d(conj z) conj(c)).
JAX's pullback is the transpose of the derivative without conjugation, so for every function
torch's vjp(c) = conj(jax_vjp(conj(c))); in particular `jax.grad` of a real loss is the conjugate of
torch's gradient, and for holomorphic f, jax_vjp(c) = c f'(z) where torch gives c conj(f'(z)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic import primitives as P
from agnostic.nn import Parameter

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

BACKENDS = ["numpy", "torch", "jax"]
C128 = dtypes.complex128


def _sample(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Away from zero and from the branch cuts (see the conformance module's `_sample`)."""
    r = np.random.default_rng(seed)
    re = r.uniform(0.3, 1.2, shape) * r.choice([-1.0, 1.0], shape)
    im = r.uniform(0.3, 0.8, shape) * r.choice([-1.0, 1.0], shape)
    return re + 1j * im


def _on(backend: str, a: np.ndarray) -> ag.Tensor:
    return ag.backend(backend).tensor(a, dtype=dtypes.from_numpy_dtype(np.asarray(a).dtype))


def _x64(fn: Callable[[], object]) -> object:
    """Run a JAX reference in 64-bit mode without changing JAX's global flag for other code."""
    with jax.enable_x64(True):
        return fn()


# name: (agnostic function on primitives, torch function, jax function, input shapes)
FUNCTIONS: dict[str, tuple[Callable, Callable, Callable, list[tuple[int, ...]]]] = {
    "exp": (P.exp, torch.exp, jnp.exp, [(2, 3)]),
    "log": (P.log, torch.log, jnp.log, [(2, 3)]),
    "sqrt": (P.sqrt, torch.sqrt, jnp.sqrt, [(2, 3)]),
    "rsqrt": (P.rsqrt, torch.rsqrt, lambda z: 1 / jnp.sqrt(z), [(2, 3)]),
    "log1p": (P.log1p, torch.log1p, jnp.log1p, [(2, 3)]),
    "expm1": (P.expm1, torch.expm1, jnp.expm1, [(2, 3)]),
    "log10": (P.log10, torch.log10, jnp.log10, [(2, 3)]),
    "reciprocal": (P.reciprocal, torch.reciprocal, jnp.reciprocal, [(2, 3)]),
    "tan": (P.tan, torch.tan, jnp.tan, [(2, 3)]),
    "tanh": (P.tanh, torch.tanh, jnp.tanh, [(2, 3)]),
    "asin": (P.asin, torch.asin, jnp.arcsin, [(2, 3)]),
    "acos": (P.acos, torch.acos, jnp.arccos, [(2, 3)]),
    "atan": (P.atan, torch.atan, jnp.arctan, [(2, 3)]),
    "asinh": (P.asinh, torch.asinh, jnp.arcsinh, [(2, 3)]),
    "acosh": (P.acosh, torch.acosh, jnp.arccosh, [(2, 3)]),
    "atanh": (P.atanh, torch.atanh, jnp.arctanh, [(2, 3)]),
    "sigmoid": (P.sigmoid, torch.sigmoid, jax.nn.sigmoid, [(2, 3)]),
    "abs": (P.abs, torch.abs, jnp.abs, [(2, 3)]),
    "sign": (P.sign, torch.sgn, lambda z: z / jnp.abs(z), [(2, 3)]),  # jnp.sign's derivative is 0
    "conj": (P.conj, lambda z: torch.conj(z).resolve_conj(), jnp.conj, [(2, 3)]),
    "real": (P.real, torch.real, jnp.real, [(2, 3)]),
    "imag": (P.imag, torch.imag, jnp.imag, [(2, 3)]),
    "mul": (P.mul, torch.mul, jnp.multiply, [(2, 3), (3,)]),
    "div": (P.div, torch.div, jnp.divide, [(2, 3), (3,)]),
    "pow": (P.pow, torch.pow, jnp.power, [(2, 3), (3,)]),
    "matmul": (P.matmul, torch.matmul, jnp.matmul, [(2, 3), (3, 4)]),
    "batched_matmul": (P.matmul, torch.matmul, jnp.matmul, [(2, 2, 3), (3,)]),
    "linear": (P.linear, torch.nn.functional.linear, lambda x, w, b: x @ w.T + b, [(4, 3), (2, 3), (2,)]),
    "prod": (lambda z: P.prod(z, (1,), False), lambda z: z.prod(1), lambda z: jnp.prod(z, 1), [(2, 3)]),
    "mean": (lambda z: P.mean(z, (0,), False), lambda z: z.mean(0), lambda z: jnp.mean(z, 0), [(2, 3)]),
    "cumprod": (lambda z: P.cumprod(z, 1), lambda z: z.cumprod(1), lambda z: jnp.cumprod(z, 1), [(2, 3)]),
    "chain": (
        lambda z, w: P.sum(P.mul(P.abs(P.sin(P.matmul(z, w))), P.real(P.conj(z))), (0,), True),
        lambda z, w: (torch.sin(z @ w).abs() * z.conj().real).sum(0, keepdim=True),
        lambda z, w: jnp.sum(jnp.abs(jnp.sin(z @ w)) * jnp.real(jnp.conj(z)), 0, keepdims=True),
        [(3, 3), (3, 3)],
    ),
}


def _references(name: str, arrays: list[np.ndarray], cot: np.ndarray) -> tuple[list, list]:
    """torch's gradients, and conj(JAX's pullback of conj(cot)): the same numbers, if both hold."""
    _, tf, jf, _ = FUNCTIONS[name]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = tf(*ts)
    out.backward(torch.tensor(cot, dtype=out.dtype))
    from_torch = [t.grad.resolve_conj().numpy() for t in ts]

    def jax_side() -> list:
        _, pullback = jax.vjp(jf, *(jnp.asarray(a) for a in arrays))
        return [np.conj(np.asarray(g)) for g in pullback(jnp.asarray(np.conj(cot)))]

    return from_torch, _x64(jax_side)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_vjp_matches_torch_and_jax(backend, name):
    fn, _, _, shapes = FUNCTIONS[name]
    arrays = [_sample(s, seed=i) for i, s in enumerate(shapes)]
    if name == "pow":
        arrays[0] = arrays[0] + 2.0  # the base away from log's branch cut
    out, pullback = ag.vjp(fn, *(_on(backend, a) for a in arrays))
    r = np.random.default_rng(7)
    cot = r.standard_normal(out.shape) + (1j * r.standard_normal(out.shape) if out.dtype.is_complex else 0)
    got = pullback(_on(backend, cot))
    from_torch, from_jax = _references(name, arrays, cot)
    for g, t, j in zip(got, from_torch, from_jax):
        assert g.dtype == C128
        np.testing.assert_allclose(g.numpy(), t, rtol=1e-9, atol=1e-12, err_msg="against torch")
        np.testing.assert_allclose(g.numpy(), j, rtol=1e-9, atol=1e-12, err_msg="against JAX")


def _loss_ag(z: ag.Tensor) -> ag.Tensor:
    a = P.abs(P.sub(P.mul(z, P.exp(P.mul(z, 0.5j))), 0.25 + 1j))
    return P.add(P.sum(P.mul(a, a), (0,), False), P.sum(P.imag(P.mul(z, z)), (0,), False))


def _loss_torch(z):
    return ((z * torch.exp(z * 0.5j) - (0.25 + 1j)).abs() ** 2).sum() + (z * z).imag.sum()


def _loss_jax(z):
    return jnp.sum(jnp.abs(z * jnp.exp(z * 0.5j) - (0.25 + 1j)) ** 2) + jnp.sum(jnp.imag(z * z))


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_a_real_loss_is_torch_and_the_conjugate_of_jax_grad(backend):
    z0 = _sample((4,))
    g = ag.grad(_loss_ag, argnums=0)(_on(backend, z0)).numpy()
    tz = torch.tensor(z0, requires_grad=True)
    _loss_torch(tz).backward()
    np.testing.assert_allclose(g, tz.grad.numpy(), rtol=1e-10)
    from_jax = _x64(lambda: np.asarray(jax.grad(_loss_jax)(jnp.asarray(z0))))
    np.testing.assert_allclose(g, np.conj(from_jax), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_vector_product_matches_torch(backend):
    z0, v0 = _sample((4,)), _sample((4,), seed=1)
    _, pullback = ag.vjp(ag.grad(_loss_ag, argnums=0), _on(backend, z0))
    (hvp,) = pullback(_on(backend, v0))
    tz = torch.tensor(z0, requires_grad=True)
    (g,) = torch.autograd.grad(_loss_torch(tz), tz, create_graph=True)
    (want,) = torch.autograd.grad(g, tz, grad_outputs=torch.tensor(v0))
    np.testing.assert_allclose(hvp.numpy(), want.numpy(), rtol=1e-9)


# ---------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.2, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.05, maximize=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,options", OPTIMIZERS, ids=[f"{n}-{sorted(o)}" for n, o in OPTIMIZERS])
def test_optimizer_matches_torch_on_a_complex_parameter(backend, name, options):
    """torch.optim treats a complex parameter as real pairs (view_as_real) where the update is not
    linear: Adam's and RMSprop's second moments, Adagrad's sum, are kept per real and imaginary part."""
    w0 = _sample((4,))
    p = Parameter(_on(backend, w0))
    opt = getattr(ag.optim, name)([p], **options)
    tp = torch.nn.Parameter(torch.tensor(w0))
    topt = getattr(torch.optim, name)([tp], **options)
    for _ in range(3):
        opt.zero_grad()
        _loss_ag(p).backward()
        opt.step()
        topt.zero_grad()
        _loss_torch(tp).backward()
        topt.step()
    assert p.dtype == C128
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10)
    state, want = opt.state_dict()["state"], topt.state_dict()["state"]
    for key, value in want.get(0, {}).items():  # the moments, complex as the parameter
        if isinstance(value, torch.Tensor) and value.is_complex():
            np.testing.assert_allclose(state[0][key].numpy(), value.numpy(), rtol=1e-10, err_msg=key)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lion_on_a_complex_parameter_is_lion_on_its_real_pairs(backend):
    """torch has no Lion: the reference is agnostic's Lion on the (..., 2) real view, whose
    gradient is the real view of the complex gradient."""
    w0, g0 = _sample((4,)), _sample((4,), seed=1)
    p = Parameter(_on(backend, w0))
    pairs = Parameter(_on(backend, np.stack([w0.real, w0.imag], -1)))
    opt = ag.optim.Lion([p], lr=0.1, weight_decay=0.1)
    ref = ag.optim.Lion([pairs], lr=0.1, weight_decay=0.1)
    for k in range(3):
        g = g0 * (1j) ** k
        p.grad, pairs.grad = _on(backend, g), _on(backend, np.stack([g.real, g.imag], -1))
        opt.step()
        ref.step()
    assert p.dtype == C128
    np.testing.assert_allclose(p.numpy(), pairs.numpy()[..., 0] + 1j * pairs.numpy()[..., 1], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_complex_linear_model_trained_with_sgd_descends(backend):
    """Fit W in y = W x (complex64) by SGD on the mean squared modulus of the error."""
    r = np.random.default_rng(3)
    x0 = (r.standard_normal((3, 32)) + 1j * r.standard_normal((3, 32))).astype(np.complex64)
    y0 = (_sample((2, 3), seed=4) @ x0).astype(np.complex64)
    x, y = _on(backend, x0), _on(backend, y0)
    w = Parameter(_on(backend, np.zeros((2, 3), np.complex64)))
    opt = ag.optim.SGD([w], lr=0.1, momentum=0.5)

    def loss() -> ag.Tensor:
        err = P.abs(P.sub(P.matmul(w, x), y))
        return P.mean(P.mul(err, err), (0, 1), False)

    losses = []
    for _ in range(40):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
        losses.append(float(value.numpy()))
    assert w.dtype == dtypes.complex64 and w.grad.dtype == dtypes.complex64
    assert losses[-1] < 1e-3 * losses[0], losses


@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_linear_on_complex_and_the_real_only_functions_refuse_it(backend: str) -> None:
    """F.linear is defined for complex (as torch's): values and gradients equal torch's; the
    real-only functions (relu, softmax...) refuse complex input instead of dropping its imaginary
    parts, and a complex weight never meets a real input silently."""
    import agnostic.functional as F

    x, w, b = _sample((2, 3), 1), _sample((4, 3), 2), _sample((4,), 3)
    xs = [_on(backend, a) for a in (x, w, b)]
    for t in xs:
        t.requires_grad_(True)
    ag.sum(ag.abs(F.linear(*xs)) ** 2).backward()
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = torch.nn.functional.linear(*ts)
    (out.abs() ** 2).sum().backward()
    np.testing.assert_allclose(F.linear(*xs).numpy(), out.detach().numpy(), rtol=1e-12)
    for mine, ref in zip(xs, ts):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-12)
    real_x = _on(backend, x.real)
    np.testing.assert_allclose(F.linear(real_x, _on(backend, w)).numpy(), x.real @ w.T, rtol=1e-12)
    with pytest.raises(TypeError, match=r"relu: not defined for complex"):
        F.relu(_on(backend, x))
    with pytest.raises(TypeError, match=r"linear: a complex128 weight or bias with a float64 input"):
        F.linear(real_x, _on(backend, w.real), _on(backend, b))


def test_module_to_a_complex_dtype_as_torch() -> None:
    """`model.to(dtype=ag.complex64)` makes the floating parameters complex (torch's Module.to);
    back to a real dtype is refused (it would drop the imaginary parts); integer dtypes are refused."""
    model = ag.nn.Linear(3, 2)
    w = model.weight.numpy().copy()
    model.to(dtype=ag.complex64)
    assert model.weight.dtype == ag.complex64 and model.bias.dtype == ag.complex64
    np.testing.assert_array_equal(model.weight.numpy(), w.astype(np.complex64))
    with pytest.raises(TypeError, match=r"imaginary"):
        model.to(dtype=ag.float32)
    with pytest.raises(TypeError, match=r"floating or complex dtype"):
        model.to(dtype=ag.int32)
