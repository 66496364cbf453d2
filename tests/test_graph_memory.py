"""What the autodiff graph keeps alive: a node holds edges to where its inputs sit in the graph,
and its rule captures only the values it reads (torch's saved tensors). Checked on the NumPy
backend, whose arrays can be watched with weak references."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import agnostic as ag
from agnostic import primitives as P

B = ag.backend("numpy")


def _leaf(*shape: int) -> ag.Tensor:
    return B.randn(*shape, seed=0).requires_grad_()


def _freed(ref: weakref.ref) -> bool:
    gc.collect()
    return ref() is None


@pytest.mark.parametrize(
    "consume",
    [
        lambda a: a + 1.0,
        lambda a: a * 3.0,
        lambda a: a - a.detach(),
        lambda a: a.reshape(-1) * 3.0,  # a view shares its base: the product must not keep it
        lambda a: a.T * 3.0,
        lambda a: a[1:] * 3.0,
        lambda a: a.sum(),
        lambda a: a.mean(axis=0),
        lambda a: a.astype(ag.float64),
        lambda a: ag.softmax(a, axis=-1),
        lambda a: ag.relu(a),
        lambda a: ag.concat([a, a], axis=0),
    ],
    ids=[
        "add",
        "mul-scalar",
        "sub",
        "reshape",
        "T",
        "slice",
        "sum",
        "mean",
        "cast",
        "softmax",
        "relu",
        "concat",
    ],
)
def test_an_input_no_rule_reads_is_freed_in_the_forward(consume) -> None:  # type: ignore[no-untyped-def]
    x = _leaf(4, 5)
    a = x * x  # mul's rule reads x, not its own output: `a` is held only by the name
    ref = weakref.ref(a.data)
    out = consume(a)
    del a
    assert _freed(ref)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == (4, 5)


@pytest.mark.parametrize(
    ("op", "derivative"),
    [(ag.exp, np.exp), (ag.tanh, lambda v: 1 - np.tanh(v) ** 2), (ag.sigmoid, None), (ag.sqrt, None)],
    ids=["exp", "tanh", "sigmoid", "sqrt"],
)
def test_a_rule_that_reads_its_output_keeps_it_until_backward(op, derivative) -> None:  # type: ignore[no-untyped-def]
    x = B.tensor(np.linspace(0.1, 2.0, 12).reshape(3, 4)).requires_grad_()
    y = op(x)
    ref = weakref.ref(y.data)
    loss = y.sum()
    del y
    assert not _freed(ref)  # the node saved it
    loss.backward()
    assert _freed(ref)  # the node was emptied as its rule ran
    xs = np.linspace(0.1, 2.0, 12).reshape(3, 4)
    h = 1e-6
    numeric = (np.asarray(op(B.tensor(xs + h)).data) - np.asarray(op(B.tensor(xs - h)).data)) / (2 * h)
    np.testing.assert_allclose(np.asarray(x.grad.data), numeric, rtol=1e-4, atol=1e-6)


def test_matmul_keeps_each_operand_only_for_the_other_ones_gradient() -> None:
    w = _leaf(5, 3)
    h = _leaf(4, 5) * 2.0  # an activation
    ref = weakref.ref(h.data)
    frozen = B.randn(5, 3, seed=1)  # no gradient wanted for it: the activation is not needed
    out = h @ frozen
    del h
    assert _freed(ref)
    out.sum().backward()
    h2 = _leaf(4, 5) * 2.0
    ref2 = weakref.ref(h2.data)
    out2 = h2 @ w  # w's gradient reads the activation
    del h2
    assert not _freed(ref2)
    out2.sum().backward()
    assert _freed(ref2)


def test_autocast_does_not_keep_the_float32_copy() -> None:
    """Under bf16 autocast a linear layer's input is cast; the float32 original is not kept (torch
    keeps only the bf16 copy the matmul reads)."""
    lin = ag.nn.Linear(8, 8, backend=B)
    x = _leaf(4, 8)
    with ag.autocast("bfloat16"):
        h = x * 2.0
        ref = weakref.ref(h.data)
        out = lin(h)
        del h
    assert _freed(ref)
    out.float().sum().backward()
    assert lin.weight.grad.dtype == ag.float32


def test_second_derivatives_flow_through_a_saved_output() -> None:
    """exp's rule reads its output: rebuilt at backward as a tensor of the same node, so the
    gradient of the gradient still reaches x (d2/dx2 exp = exp)."""
    x = B.tensor([0.3, -0.7, 1.1]).requires_grad_()
    (g,) = ag.gradients(ag.exp(x).sum(), [x], create_graph=True)
    (gg,) = ag.gradients(g.sum(), [x])
    np.testing.assert_allclose(np.asarray(gg.data), np.exp([0.3, -0.7, 1.1]), rtol=1e-6)


def test_a_rule_reading_an_output_it_did_not_save_says_so() -> None:
    x = _leaf(3)
    out = ag.Tensor._make(x.data * 2.0, B)
    P._record(out, "sloppy", (x,), lambda g, y: (g * y,))
    with pytest.raises(RuntimeError, match="read its output, but its node was recorded without saving it"):
        out.sum().backward()


def test_a_shape_stand_in_is_not_a_tensor() -> None:
    meta = ag.autodiff.TensorMeta(B.ones((2, 3)))
    assert (meta.shape, meta.ndim, meta.dtype) == ((2, 3), 2, ag.float32)
    assert "TensorMeta(shape=(2, 3), dtype=float32)" == repr(meta)


def test_assignment_is_refused_only_where_a_rule_reads_the_old_value() -> None:
    """A rule that captured only a shape cannot be wrong after `h[key] = v` (torch agrees: a
    product with a scalar saves no tensor); one that reads h is refused at backward."""
    x = B.ones((3,)).requires_grad_()
    h = x * 1.0
    y = h * 2.0
    h[0] = 5.0
    y.sum().backward()
    np.testing.assert_array_equal(np.asarray(x.grad.data), [2.0, 2.0, 2.0])
    x = B.ones((3,)).requires_grad_()
    h = x * 1.0
    y = h * h
    h[0] = 5.0
    with pytest.raises(RuntimeError, match="mul's gradient needs was changed by item assignment"):
        y.sum().backward()


@pytest.mark.parametrize("op", [ag.abs, ag.sign], ids=["abs", "sign"])
def test_abs_and_sign_keep_their_output_only_for_a_complex_input(op) -> None:  # type: ignore[no-untyped-def]
    """On real input abs's rule reads x (g * sign(x)) and sign's reads nothing; on complex input
    both read z / |z|, so they keep |z| (abs's output, sign's input through it)."""
    x = B.tensor(np.array([[-1.5, 2.0], [0.5, -3.0]])).requires_grad_()
    y = op(x)
    ref = weakref.ref(y.data)
    loss = (y * 2.0).sum()
    del y
    assert _freed(ref)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * np.sign(x.numpy()) if op is ag.abs else 0.0)
    z = B.tensor(np.array([3 + 4j, -1j])).requires_grad_()
    y = op(z)
    ref = weakref.ref(y.data)
    loss = (ag.abs(y * (2 + 0j)) if op is ag.sign else y * 2.0).sum()
    del y
    assert not _freed(ref)
    loss.backward()
    want = 2.0 * np.array([3 + 4j, -1j]) / np.array([5.0, 1.0]) if op is ag.abs else 0.0  # |sign z| = 1
    np.testing.assert_allclose(z.grad.numpy(), want, atol=1e-12)
