"""Gradients of complex functions against finite differences of real losses, in torch's convention:
for a real loss L of z = x + iy the gradient is dL/dx + i dL/dy, so `z - lr * grad` descends.

A function's output with cotangent c defines the real loss L = sum(Re(c) Re(f) + Im(c) Im(f)), whose
gradient is what `ag.vjp`'s pullback of c must give; it is checked by perturbing the real and the
imaginary part of each input element separately. The ops are called as primitives
(`agnostic.primitives`), so each vector-Jacobian rule is checked on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import agnostic as ag
from agnostic import dtypes
from agnostic import primitives as P
from agnostic.conformance import support

COVERS = {
    "neg", "abs", "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "square",
    "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
    "atanh", "sigmoid", "conj", "real", "imag", "add", "sub", "mul", "div", "pow", "where", "cast",
    "sum", "mean", "prod", "cumsum", "cumprod", "matmul", "reshape", "permute", "getitem", "concat",
    "stack", "flip", "broadcast_to", "take", "linear", "linear_grad",
}  # fmt: skip

C64, C128 = dtypes.complex64, dtypes.complex128
TOLERANCE = {C128: (1e-6, 1e-8), C64: (3e-4, 3e-5)}
"""(rtol, atol) of a gradient computed in each dtype against complex128 finite differences."""


def _sample(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Complex values with 0.3 <= |Re| <= 1.2 and 0.3 <= |Im| <= 0.8: away from zero, from the real
    axis (where the branch cuts of log, sqrt, asin, acos, acosh, atanh lie) and from |Im| >= 1 on
    the imaginary axis (those of asinh, atan)."""
    r = support.rng(seed)
    re = r.uniform(0.3, 1.2, shape) * r.choice([-1.0, 1.0], shape)
    im = r.uniform(0.3, 0.8, shape) * r.choice([-1.0, 1.0], shape)
    return re + 1j * im


def _tensor(backend: ag.Device, a: np.ndarray, dtype: dtypes.DType) -> ag.Tensor:
    return support.tensor(backend, a, dtype)


def _cotangent(out: ag.Tensor, seed: int) -> np.ndarray:
    r = support.rng(seed + 100)
    c = r.standard_normal(out.shape)
    return c + 1j * r.standard_normal(out.shape) if out.dtype.is_complex else c


def _loss(
    f: Callable[..., ag.Tensor], backend: ag.Device, cot: np.ndarray, arrays: list[np.ndarray]
) -> float:
    """sum(Re(c) Re(f) + Im(c) Im(f)) in complex128 (float64 for real inputs)."""
    ins = [_tensor(backend, a, C128 if np.iscomplexobj(a) else ag.float64) for a in arrays]
    out = f(*ins).numpy().astype(np.complex128)
    return float(np.sum(cot.real * out.real + cot.imag * out.imag))


def _numerical(f, backend, cot, arrays, eps=1e-6) -> list[np.ndarray]:
    """dL/dx + i dL/dy of every input element by central differences (dL/dx for real inputs)."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros(a.shape, dtype=a.dtype)
        for j in range(a.size):
            for step in (1.0, 1j) if np.iscomplexobj(a) else (1.0,):
                moved = []
                for sign in (1, -1):
                    args = [x.copy() for x in arrays]
                    args[i].reshape(-1)[j] += sign * eps * step
                    moved.append(_loss(f, backend, cot, args))
                g.reshape(-1)[j] += step * (moved[0] - moved[1]) / (2 * eps)
        grads.append(g)
    return grads


def check_complex_grad(
    backend: ag.Device, f: Callable[..., ag.Tensor], *arrays: np.ndarray, dtype: dtypes.DType = C128,
    seed: int = 0,
) -> None:  # fmt: skip
    """The pullback of a random cotangent through `f` in `dtype` (complex inputs; real arrays stay
    real, in dtype's real precision) matches finite differences of the real loss it defines."""
    arrays = [np.asarray(a) for a in arrays]
    real = dtypes.real_dtype(dtype)
    inputs = [_tensor(backend, a, dtype if np.iscomplexobj(a) else real) for a in arrays]
    out, pullback = ag.vjp(f, *inputs)
    cot = _cotangent(out, seed)
    got = pullback(_tensor(backend, cot, out.dtype))
    want = _numerical(f, backend, cot, arrays)
    rtol, atol = TOLERANCE[dtype]
    for k, (g, w, t) in enumerate(zip(got, want, inputs)):
        assert g.dtype == t.dtype, f"gradient {k}: dtype {g.dtype} != the input's {t.dtype}"
        assert g.shape == w.shape, f"gradient {k}: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g.numpy(), w, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")


DTYPES = pytest.mark.parametrize("dtype", [C128, C64], ids=["complex128", "complex64"])

UNARY = [
    "neg", "abs", "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "square",
    "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
    "atanh", "sigmoid", "conj", "real", "imag",
]  # fmt: skip


# ---------------------------------------------------------------------- elementwise
@DTYPES
@pytest.mark.parametrize("name", UNARY)
def test_unary(backend, name, dtype):
    check_complex_grad(backend, getattr(P, name), _sample((2, 3)), dtype=dtype)


def test_acosh_left_half_plane(backend):
    """The principal branch's derivative 1 / (sqrt(z - 1) sqrt(z + 1)), not 1 / sqrt(z^2 - 1)."""
    z = _sample((2, 3))
    check_complex_grad(backend, P.acosh, -np.abs(z.real) + 1j * z.imag)


@pytest.mark.parametrize("name", ["abs", "sign"])
def test_abs_and_sign_at_zero_have_zero_gradient(backend, name):
    z = _tensor(backend, np.zeros(3, dtype=np.complex128), C128)
    out, pullback = ag.vjp(getattr(P, name), z)
    (g,) = pullback(_tensor(backend, np.ones(3, out.dtype.name), out.dtype))
    assert g.dtype == C128
    np.testing.assert_array_equal(g.numpy(), np.zeros(3))


BINARY = [
    ("add", P.add), ("sub", P.sub), ("mul", P.mul), ("div", P.div),
    ("pow", lambda a, b: P.pow(P.add(a, 2.0), b)),  # base away from the branch cut of log
]  # fmt: skip


@DTYPES
@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcast(backend, name, fn, dtype):
    check_complex_grad(backend, fn, _sample((2, 3)), _sample((3,), seed=1), dtype=dtype)


SCALARS = [
    ("mul", lambda z: P.mul(z, 2.0 - 0.5j)), ("rmul", lambda z: P.mul(0.5 + 1j, z)),
    ("div", lambda z: P.div(z, 1.5j)), ("rdiv", lambda z: P.div(2.0 - 1j, z)),
    ("sub", lambda z: P.sub(1j, z)), ("pow", lambda z: P.pow(z, 1.5 + 0.5j)),
    ("pow_int", lambda z: P.pow(z, 3)), ("rpow_negative_base", lambda z: P.pow(-2.0, z)),
    ("rpow_complex_base", lambda z: P.pow(0.5 + 1j, z)),
]  # fmt: skip


@pytest.mark.parametrize("name,fn", SCALARS, ids=[s[0] for s in SCALARS])
def test_weak_scalar_operand(backend, name, fn):
    check_complex_grad(backend, fn, _sample((2, 3)))


def test_real_tensor_with_complex_scalar(backend):
    """A real input of an op with a complex result gets the real part of its cotangent."""
    x = support.rng(3).standard_normal((2, 3))
    check_complex_grad(backend, lambda x: P.mul(x, 0.5 - 2j), x)


def test_where(backend):
    cond = np.array([[True, False, True], [False, False, True]])
    check_complex_grad(
        backend,
        lambda a, b: P.where(_tensor(backend, cond, ag.bool), a, b),
        _sample((2, 3)),
        _sample((3,), seed=1),
    )


# ---------------------------------------------------------------------- casts between real and complex
def test_cast_real_to_complex(backend):
    x = support.rng(4).standard_normal((2, 3))
    check_complex_grad(backend, lambda x: P.mul(P.exp(P.cast(x, C128)), 1j), x)


def test_cast_complex64_to_complex128(backend):
    check_complex_grad(backend, lambda z: P.square(P.cast(z, C128)), _sample((2, 3)), dtype=C64)


def test_cast_complex128_to_complex64_casts_the_cotangent_back(backend):
    z0, c0 = _sample((2, 3)), _sample((2, 3), seed=1)
    _, pullback = ag.vjp(lambda z: P.cast(z, C64), _tensor(backend, z0, C128))
    (g,) = pullback(_tensor(backend, c0, C64))
    assert g.dtype == C128
    np.testing.assert_allclose(g.numpy(), c0.astype(np.complex64), rtol=0)


@pytest.mark.filterwarnings("ignore:Casting")  # each library warns that the imaginary part is dropped
def test_cast_complex_to_real_keeps_the_real_part(backend):
    check_complex_grad(backend, lambda z: P.cast(P.exp(z), ag.float64), _sample((2, 3)))


# ---------------------------------------------------------------------- reductions and matmul
REDUCTIONS = [
    ("sum", lambda z: P.sum(z, (1,), False)), ("sum_all", lambda z: P.sum(z, (0, 1), True)),
    ("mean", lambda z: P.mean(z, (0,), False)), ("prod", lambda z: P.prod(z, (1,), False)),
    ("cumsum", lambda z: P.cumsum(z, 1)), ("cumprod", lambda z: P.cumprod(z, 1)),
]  # fmt: skip


@DTYPES
@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(backend, name, fn, dtype):
    check_complex_grad(backend, fn, _sample((2, 3)), dtype=dtype)


def test_prod_with_a_zero(backend):
    z = _sample((2, 3))
    z[0, 1] = 0
    check_complex_grad(backend, lambda z: P.prod(z, (1,), False), z)


MATMUL = [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 2))]


@DTYPES
@pytest.mark.parametrize("shapes", MATMUL, ids=[f"{a}@{b}" for a, b in MATMUL])
def test_matmul(backend, shapes, dtype):
    a, b = shapes
    check_complex_grad(backend, P.matmul, _sample(a), _sample(b, seed=1), dtype=dtype)


@DTYPES
def test_linear(backend, dtype):
    """The composite's gradients are `linear_grad` of the conjugated operands."""
    check_complex_grad(backend, P.linear, _sample((4, 3)), _sample((2, 3), seed=1), _sample((2,), seed=2),
                       dtype=dtype)  # fmt: skip


# ---------------------------------------------------------------------- shape ops carry complex cotangents
SHAPE = [
    ("reshape", lambda z: P.reshape(z, (3, 2))),
    ("permute", lambda z: P.permute(z, (1, 0))),
    ("getitem_slice", lambda z: P.getitem(z, (slice(None), slice(1, 3)))),
    ("getitem_int", lambda z: P.getitem(z, (1,))),
    ("flip", lambda z: P.flip(z, (1,))),
    ("broadcast_to", lambda z: P.broadcast_to(z, (4, 2, 3))),
    ("concat", lambda z: P.concat([z, P.square(z)], 0)),
    ("stack", lambda z: P.stack([z, P.exp(z)], 2)),
]


@pytest.mark.parametrize("name,fn", SHAPE, ids=[s[0] for s in SHAPE])
def test_shape_op(backend, name, fn):
    check_complex_grad(backend, fn, _sample((2, 3)))


def test_take_with_repeated_indices(backend):
    idx = _tensor(backend, np.array([2, 0, 2, 1]), ag.int64)
    check_complex_grad(backend, lambda z: P.take(z, idx, 1), _sample((2, 3)))


# ---------------------------------------------------------------------- the convention, and second order
def _squared_modulus(z: ag.Tensor) -> ag.Tensor:
    a = P.abs(z)
    return P.sum(P.mul(a, a), (0,), False)


def test_gradient_of_squared_modulus_is_2z(backend):
    """L = sum |z|^2 = sum x^2 + y^2: dL/dx + i dL/dy = 2z, torch's convention (JAX's grad gives 2 conj(z))."""
    z0 = _sample((4,))
    g = ag.grad(_squared_modulus, argnums=0)(_tensor(backend, z0, C128))
    assert g.dtype == C128
    np.testing.assert_allclose(g.numpy(), 2 * z0, rtol=1e-12)


def test_a_gradient_step_descends(backend):
    z = _tensor(backend, _sample((4,)), C64)
    loss, g = ag.value_and_grad(lambda z: _squared_modulus(P.sub(P.exp(z), 0.5j)), argnums=0)(z)
    after = _squared_modulus(P.sub(P.exp(P.sub(z, P.mul(g, 0.05))), 0.5j))
    assert float(after.numpy()) < float(loss.numpy())


def test_second_order(backend):
    """The gradient of a real loss is a complex function of z; its own vector-Jacobian product (a
    Hessian-vector product) is checked like any other function's."""

    def loss(z):
        a = P.abs(P.mul(z, P.exp(P.mul(z, 0.3j))))
        return P.add(P.sum(P.mul(a, a), (0,), False), P.sum(P.real(P.mul(z, P.mul(z, z))), (0,), False))

    check_complex_grad(backend, ag.grad(loss, argnums=0), _sample((3,)))


# ---------------------------------------------------------------------- errors
def test_complex_tensors_can_require_grad(backend):
    z = _tensor(backend, _sample((3,)), C64).requires_grad_()
    _squared_modulus(z).backward()
    np.testing.assert_allclose(z.grad.numpy(), 2 * z.detach().numpy(), rtol=1e-6)


def test_implicit_gradient_of_a_complex_output_is_refused(backend):
    z = _tensor(backend, _sample((3,)), C128)
    match = "complex128; a gradient can be implicitly created only for a real scalar output"
    with pytest.raises(TypeError, match=f"grad: the output is {match}"):
        ag.grad(lambda z: P.sum(P.exp(z), (0,), False))(z)
    y = P.sum(P.exp(z.requires_grad_()), (0,), False)
    with pytest.raises(TypeError, match=f"backward: the output is {match}"):
        y.backward()
    y.backward(gradient=_tensor(backend, np.array(1 - 1j), C128))  # an explicit cotangent is fine
    np.testing.assert_allclose(z.grad.numpy(), (1 - 1j) * np.conj(np.exp(z.detach().numpy())), rtol=1e-12)
