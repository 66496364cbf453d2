"""The autodiff API: requires_grad, backward and .grad accumulation, ag.grad / value_and_grad /
vjp / gradients over positional args and pytrees, has_aux, no_grad, detach, and the errors for
gradients that do not exist (integer results, tensors that do not require grad)."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

COVERS = {
    "mul", "add", "sum", "exp", "sin", "matmul", "argmax", "argmin", "argsort", "any", "gt", "cast",
    "getitem", "pow",
}  # fmt: skip


def _t(backend, a, requires_grad=False, dtype=ag.float64):
    return backend.tensor(np.asarray(a), dtype=dtype, requires_grad=requires_grad)


@pytest.fixture(scope="module")
def other_backend():
    """A second Device on this machine: the NumPy op-set registered under another name."""
    from agnostic.backends.numpy import NumpyBackend

    ag.register_backend("numpy-b", NumpyBackend)
    yield ag.backend("numpy-b")
    import agnostic.backends as registry

    getattr(registry, "_registry", {}).pop("numpy-b", None)


# ---------------------------------------------------------------------- requires_grad and backward
def test_requires_grad_propagates_to_results(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    c = _t(backend, [3.0, 4.0])
    assert x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    y = x * c
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    z = c * 2.0
    assert not z.requires_grad and z.grad_fn is None
    w = _t(backend, [1.0, 2.0]).requires_grad_()
    assert w.requires_grad
    assert ag.tensor([1.0], requires_grad=True, device=backend).requires_grad
    assert ag.asarray([1.0], device=backend, requires_grad=True).requires_grad


def test_backward_fills_grad_of_leaves_only(backend):
    x = _t(backend, [1.0, 2.0, 3.0], requires_grad=True)
    h = x * x
    y = (h * 3.0).sum()
    y.backward()
    support.assert_close(x.grad, [6.0, 12.0, 18.0], dtype=ag.float64)
    assert h.grad is None, "intermediate tensors do not keep .grad (as torch)"
    assert not x.grad.requires_grad, "without create_graph the gradient is a plain value"


def test_backward_accumulates_across_calls(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    support.assert_close(x.grad, [2.0, 4.0], dtype=ag.float64)
    (x * 10.0).sum().backward()
    support.assert_close(x.grad, [12.0, 14.0], dtype=ag.float64)
    x.grad = None
    ag.exp(x).sum().backward()
    support.assert_close(x.grad, np.exp([1.0, 2.0]), dtype=ag.float64)


def test_backward_twice_through_one_graph_with_retain_graph(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    y = (ag.sin(x) * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    support.assert_close(x.grad, 2 * (np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0])), dtype=ag.float64)


def test_backward_frees_the_graph_so_a_second_one_is_an_error(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    h = ag.sin(x)
    y = (h * x).sum()
    y.backward()
    assert y.grad_fn is not None and not y.is_leaf  # still a result of the graph, as in torch
    with pytest.raises(RuntimeError, match=r"already differentiated.*retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"already differentiated.*retain_graph=True"):
        (h * 2.0).sum().backward()  # a new output on top of a freed part of the graph
    z = (ag.cos(x) * x).sum()  # a new graph from the same leaves is fine
    z.backward()
    support.assert_close(
        x.grad,
        (np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0]))
        + (-np.sin([1.0, 2.0]) * [1.0, 2.0] + np.cos([1.0, 2.0])),
        dtype=ag.float64,
    )


def test_gradients_frees_the_graph_unless_retained(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    y = (x * x * x).sum()
    (g1,) = ag.gradients(y, x, retain_graph=True)
    (g2,) = ag.gradients(y, x)
    support.assert_close(g1, 3 * np.array([1.0, 4.0]), dtype=ag.float64)
    support.assert_close(g2, 3 * np.array([1.0, 4.0]), dtype=ag.float64)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        ag.gradients(y, x)


def test_create_graph_keeps_the_graph(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    y = (x * x * x).sum()
    (g,) = ag.gradients(y, x, create_graph=True)
    (again,) = ag.gradients(y, x, retain_graph=True)  # create_graph retained the original graph
    support.assert_close(again, 3 * np.array([1.0, 4.0]), dtype=ag.float64)
    (h,) = ag.gradients(g.sum(), x)  # through the first derivative's graph, which shares y's
    support.assert_close(h, 6 * np.array([1.0, 2.0]), dtype=ag.float64)


def test_a_vjp_pullback_can_be_called_again(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=False)
    out, pullback = ag.vjp(lambda a: ag.sin(a) * a, x)
    support.assert_close(out, np.sin([1.0, 2.0]) * [1.0, 2.0], dtype=ag.float64)
    first = pullback(_t(backend, [1.0, 1.0]))[0]
    second = pullback(_t(backend, [2.0, 0.0]))[0]
    d = np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0])
    support.assert_close(first, d, dtype=ag.float64)
    support.assert_close(second, d * [2.0, 0.0], dtype=ag.float64)


def test_backward_with_gradient_argument(backend):
    x = _t(backend, [[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    y.backward(gradient=_t(backend, [[1.0, 0.0], [2.0, -1.0]]), retain_graph=True)
    support.assert_close(x.grad, [[2.0, 0.0], [12.0, -8.0]], dtype=ag.float64)
    x.grad = None
    y.backward(np.ones((2, 2)))  # host data is accepted as the cotangent
    support.assert_close(x.grad, [[2.0, 4.0], [6.0, 8.0]], dtype=ag.float64)


def test_backward_gradient_of_wrong_shape_is_an_error(backend):
    y = _t(backend, [1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(
        ValueError, match=r"backward: gradient has shape \(3,\) but the output has shape \(2,\)"
    ):
        y.backward(_t(backend, [1.0, 1.0, 1.0]))


def test_backward_of_non_scalar_without_gradient_is_a_clear_error(backend):
    y = _t(backend, [[1.0, 2.0]], requires_grad=True) * 2.0
    with pytest.raises(
        RuntimeError, match=r"backward: the output has shape \(1, 2\); pass `gradient=`.*sum\(\)"
    ):
        y.backward()


def test_backward_of_single_element_non_scalar_is_fine(backend):
    x = _t(backend, [[2.0]], requires_grad=True)
    (x * x).backward()
    support.assert_close(x.grad, [[4.0]], dtype=ag.float64)


def test_backward_on_tensor_not_requiring_grad(backend):
    y = _t(backend, [1.0, 2.0]).sum()
    with pytest.raises(
        RuntimeError, match=r"backward: this tensor does not require grad.*requires_grad=True"
    ):
        y.backward()


def test_backward_with_create_graph_records_the_gradient(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    support.assert_close(g, [3.0, 12.0], dtype=ag.float64)
    x.grad = None
    g.sum().backward()
    support.assert_close(x.grad, [6.0, 12.0], dtype=ag.float64)


def test_gradient_dtype_follows_the_leaf(backend):
    for dtype in (ag.float32, ag.float64, ag.float16, ag.bfloat16):
        x = _t(backend, [1.0, 2.0], requires_grad=True, dtype=dtype)
        (x * x).sum().backward()
        assert x.grad.dtype == dtype, (dtype, x.grad.dtype)
        support.assert_close(x.grad, [2.0, 4.0], dtype=dtype)


def test_requires_grad_false_on_non_leaf_is_refused(backend):
    y = _t(backend, [1.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match="requires_grad_"):
        y.requires_grad_(False)
    x = _t(backend, [1.0], requires_grad=True)
    x.requires_grad_(False)
    assert not x.requires_grad and not (x * 2.0).requires_grad


# ---------------------------------------------------------------------- no_grad and detach
def test_no_grad_records_nothing(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    assert ag.is_grad_enabled()
    with ag.no_grad():
        assert not ag.is_grad_enabled()
        y = ag.exp(x) * x
        z = (x @ x) + y.sum()
        with ag.enable_grad():
            w = x * 2.0
    assert ag.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert not z.requires_grad
    assert w.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        z.backward()
    with ag.set_grad_enabled(False):
        assert not (x * x).requires_grad
    with ag.set_grad_enabled(True):
        assert (x * x).requires_grad


def test_no_grad_restores_mode_after_an_exception(backend):
    with pytest.raises(ZeroDivisionError), ag.no_grad():
        raise ZeroDivisionError
    assert ag.is_grad_enabled()


def test_detach_cuts_the_graph(backend):
    x = _t(backend, [1.0, 2.0, 3.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.numpy(), x.numpy())
    (x.detach() * x).sum().backward()
    support.assert_close(x.grad, [1.0, 2.0, 3.0], dtype=ag.float64)
    (g,) = ag.grad(lambda a: (a.detach() * a * a).sum())(_t(backend, [1.0, 2.0]))
    support.assert_close(g, [2.0, 8.0], dtype=ag.float64)


# ---------------------------------------------------------------------- ag.grad / value_and_grad
def _f(a, b, c):
    return (a * b).sum() + (ag.sin(c) * 2.0).sum()


def test_grad_default_argnums_is_every_positional_argument(backend):
    a, b, c = _t(backend, [1.0, 2.0]), _t(backend, [3.0, 4.0]), _t(backend, [0.5])
    ga, gb, gc = ag.grad(_f)(a, b, c)
    support.assert_close(ga, [3.0, 4.0], dtype=ag.float64)
    support.assert_close(gb, [1.0, 2.0], dtype=ag.float64)
    support.assert_close(gc, 2 * np.cos([0.5]), dtype=ag.float64)
    (only,) = ag.grad(lambda x: (x * x).sum())(a)  # one argument: still a tuple
    support.assert_close(only, [2.0, 4.0], dtype=ag.float64)


def test_grad_argnums_int_and_tuple(backend):
    a, b, c = _t(backend, [1.0, 2.0]), _t(backend, [3.0, 4.0]), _t(backend, [0.5])
    gb = ag.grad(_f, argnums=1)(a, b, c)
    assert isinstance(gb, ag.Tensor)
    support.assert_close(gb, [1.0, 2.0], dtype=ag.float64)
    gc, ga = ag.grad(_f, argnums=(2, 0))(a, b, c)
    support.assert_close(gc, 2 * np.cos([0.5]), dtype=ag.float64)
    support.assert_close(ga, [3.0, 4.0], dtype=ag.float64)
    support.assert_close(ag.grad(_f, argnums=-1)(a, b, c), 2 * np.cos([0.5]), dtype=ag.float64)
    with pytest.raises(ValueError, match="argnums 3 is out of range for 3 positional arguments"):
        ag.grad(_f, argnums=3)(a, b, c)


def test_value_and_grad(backend):
    a = _t(backend, [1.0, 2.0])
    value, (g,) = ag.value_and_grad(lambda x: (x**3).sum())(a)
    support.assert_close(value, np.array(9.0), dtype=ag.float64)
    support.assert_close(g, [3.0, 12.0], dtype=ag.float64)
    assert not value.requires_grad
    value, g = ag.value_and_grad(lambda x, y: (x * y).sum(), argnums=1)(a, _t(backend, [5.0, 6.0]))
    support.assert_close(value, np.array(17.0), dtype=ag.float64)
    support.assert_close(g, [1.0, 2.0], dtype=ag.float64)


def test_has_aux(backend):
    a = _t(backend, [1.0, 2.0])

    def f(x):
        loss = (x * x).sum()
        return loss, {"loss": loss, "n": 2}

    g, aux = ag.grad(f, has_aux=True)(a)
    support.assert_close(g[0], [2.0, 4.0], dtype=ag.float64)
    assert aux["n"] == 2
    support.assert_close(aux["loss"], np.array(5.0), dtype=ag.float64)
    (value, aux), g = ag.value_and_grad(f, argnums=0, has_aux=True)(a)
    support.assert_close(value, np.array(5.0), dtype=ag.float64)
    support.assert_close(g, [2.0, 4.0], dtype=ag.float64)


def test_grad_of_nested_lists_and_dicts(backend):
    params = {
        "layer": {"w": _t(backend, [[1.0, 2.0], [3.0, 4.0]]), "b": _t(backend, [0.5, -0.5])},
        "scales": [_t(backend, [2.0]), 3.0, "not a tensor", None],
        "steps": (_t(backend, [1.0]),),
    }
    x = _t(backend, [1.0, 1.0])

    def loss(p, inp):
        h = inp @ p["layer"]["w"] + p["layer"]["b"]
        return (h * p["scales"][0]).sum() * p["scales"][1] + p["steps"][0].sum()

    g = ag.grad(loss, argnums=0)(params, x)
    assert set(g) == {"layer", "scales", "steps"}
    support.assert_close(g["layer"]["w"], [[6.0, 6.0], [6.0, 6.0]], dtype=ag.float64)
    support.assert_close(g["layer"]["b"], [6.0, 6.0], dtype=ag.float64)
    assert isinstance(g["scales"], list) and len(g["scales"]) == 4
    support.assert_close(g["scales"][0], [3.0 * (4 + 6)], dtype=ag.float64)
    assert g["scales"][1:] == [None, None, None], "non-tensor leaves get None"
    assert isinstance(g["steps"], tuple)
    support.assert_close(g["steps"][0], [1.0], dtype=ag.float64)
    _gp, gx = ag.grad(loss)(params, x)
    support.assert_close(gx, [2 * 3 * 3.0, 2 * 3 * 7.0], dtype=ag.float64)


def test_grad_keyword_arguments_are_not_differentiated(backend):
    a = _t(backend, [1.0, 2.0])
    g = ag.grad(lambda x, *, scale: (x * scale).sum())(a, scale=_t(backend, [3.0, 4.0]))
    assert len(g) == 1
    support.assert_close(g[0], [3.0, 4.0], dtype=ag.float64)


def test_grad_of_unused_argument_is_zero(backend):
    a, b = _t(backend, [1.0, 2.0]), _t(backend, [[1.0, 2.0, 3.0]])
    _ga, gb = ag.grad(lambda x, y: (x * x).sum())(a, b)
    support.assert_close(gb, np.zeros((1, 3)), dtype=ag.float64)


def test_grad_does_not_modify_arguments(backend):
    a = _t(backend, [1.0, 2.0])
    ag.grad(lambda x: (x * x).sum())(a)
    assert not a.requires_grad and a.grad is None and a.grad_fn is None


def test_grad_inside_no_grad_still_differentiates(backend):
    with ag.no_grad():
        (g,) = ag.grad(lambda x: (x * x).sum())(_t(backend, [1.0, 2.0]))
    support.assert_close(g, [2.0, 4.0], dtype=ag.float64)


def test_grad_function_result_errors(backend):
    a = _t(backend, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"grad: the function must return one element, got shape \(2,\)"):
        ag.grad(lambda x: x * 2.0)(a)
    with pytest.raises(TypeError, match="grad: the function must return a tensor, got float"):
        ag.grad(lambda x: 1.0)(a)


def test_nested_grad_closing_over_an_outer_argument(backend):
    """d/dw of <d/dx f(x, w), v> where the inner function captures the outer argument w."""
    x, w = _t(backend, [0.5, -1.0]), _t(backend, [2.0, 3.0])

    def outer(ww):
        (gx,) = ag.grad(lambda xx: (ag.sin(xx * ww)).sum())(x)  # gx = w cos(x w)
        return gx.sum()

    (gw,) = ag.grad(outer)(w)
    xv, wv = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    support.assert_close(gw, np.cos(xv * wv) - wv * xv * np.sin(xv * wv), dtype=ag.float64)
    support.check_grad(backend, outer, wv)


# ---------------------------------------------------------------------- vjp and gradients
def test_vjp(backend):
    a, b = _t(backend, [[1.0, 2.0], [3.0, 4.0]]), _t(backend, [1.0, -1.0])
    out, pullback = ag.vjp(lambda x, y: x @ y, a, b)
    support.assert_close(out, [-1.0, -1.0], dtype=ag.float64)
    assert not out.requires_grad
    ga, gb = pullback(_t(backend, [1.0, 2.0]))
    support.assert_close(ga, [[1.0, -1.0], [2.0, -2.0]], dtype=ag.float64)
    support.assert_close(gb, [7.0, 10.0], dtype=ag.float64)
    ga2, gb2 = pullback(_t(backend, [0.0, 1.0]))  # a pullback can be used again
    support.assert_close(ga2, [[0.0, 0.0], [1.0, -1.0]], dtype=ag.float64)
    support.assert_close(gb2, [3.0, 4.0], dtype=ag.float64)


def test_vjp_rejects_integer_primals(backend):
    with pytest.raises(TypeError, match="vjp: every primal must be a floating-point tensor"):
        ag.vjp(lambda x: x * 2, backend.tensor([1, 2]))


def test_gradients_torch_style(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    y = _t(backend, [3.0], requires_grad=True)
    unused = _t(backend, [[5.0, 6.0]], requires_grad=True)
    out = (x * x).sum() * y.sum()
    gx, gy, gu = ag.gradients(out, [x, y, unused])
    support.assert_close(gx, [6.0, 12.0], dtype=ag.float64)
    support.assert_close(gy, [5.0], dtype=ag.float64)
    support.assert_close(gu, np.zeros((1, 2)), dtype=ag.float64)
    assert x.grad is None, "ag.gradients does not touch .grad"
    (g,) = ag.gradients(x * 3.0, x, grad_outputs=_t(backend, [1.0, -1.0]))
    support.assert_close(g, [3.0, -3.0], dtype=ag.float64)
    # several outputs: their gradients add up
    gx, gy = ag.gradients([(x * y).sum(), (x * x).sum()], [x, y])
    support.assert_close(gx, [5.0, 7.0], dtype=ag.float64)
    support.assert_close(gy, [3.0], dtype=ag.float64)


def test_gradients_with_respect_to_an_intermediate(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    h = x * 3.0
    (gh,) = ag.gradients((h * h).sum(), [h])
    support.assert_close(gh, [6.0, 12.0], dtype=ag.float64)


def test_gradients_of_non_scalar_needs_grad_outputs(backend):
    x = _t(backend, [1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradients: output of shape \(2,\) needs grad_outputs"):
        ag.gradients(x * 2.0, [x])


# ---------------------------------------------------------------------- integer and bool results
def test_integer_results_carry_no_gradient(backend):
    x = _t(backend, [1.0, 3.0, 2.0], requires_grad=True)
    for r in (ag.argmax(x), ag.argmin(x), x > 1.0, ag.argsort(x), ag.topk(x, 2)[1], x.astype(ag.int32)):
        assert not r.requires_grad and r.grad_fn is None, r


def test_grad_through_argmax_is_a_type_error(backend):
    x = _t(backend, [1.0, 3.0, 2.0], requires_grad=True)
    with pytest.raises(
        TypeError, match=r"grad: the output has dtype int64; gradients are defined for floating-point"
    ):
        ag.grad(lambda a: ag.argmax(a))(x)
    with pytest.raises(TypeError, match=r"backward: the output has dtype int64"):
        ag.argmax(x).backward()
    with pytest.raises(TypeError, match=r"backward: the output has dtype bool"):
        (x > 1.0).any().backward()
    with pytest.raises(TypeError, match=r"gradients: the output has dtype int64"):
        ag.gradients(ag.argmax(x), [x])


def test_requires_grad_on_integer_tensors_is_a_type_error(backend):
    with pytest.raises(
        TypeError, match="requires_grad: only floating-point tensors can require gradients, got int64"
    ):
        backend.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="got bool"):
        backend.tensor([True]).requires_grad_()
    with pytest.raises(TypeError, match="got int32"):
        ag.asarray([1, 2], dtype=ag.int32, device=backend, requires_grad=True)


def test_integer_arguments_get_none_by_default(backend):
    """With the default argnums, integer tensors (labels, indices) are data: their gradient is None."""
    labels = backend.tensor([1, 0])
    x = _t(backend, [[1.0, 2.0], [3.0, 4.0]])
    gx, gl = ag.grad(lambda a, y: ag.take_along_axis(a, y[:, None], axis=1).sum())(x, labels)
    support.assert_close(gx, [[0.0, 1.0], [1.0, 0.0]], dtype=ag.float64)
    assert gl is None


def test_grad_with_respect_to_an_integer_argument(backend):
    labels = backend.tensor([1, 0])
    x = _t(backend, [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(
        TypeError, match="grad: argument 1 holds a int64 tensor; gradients are defined for floating-point"
    ):
        ag.grad(lambda a, y: ag.take_along_axis(a, y[:, None], axis=1).sum(), argnums=1)(x, labels)


# ---------------------------------------------------------------------- across devices
def test_gradient_flows_through_a_move_to_another_backend(backend, other_backend):
    x = _t(backend, [1.0, 2.0, 3.0], requires_grad=True)
    y = x.to(other_backend)
    assert y.device is other_backend and y.requires_grad
    (y * y).sum().backward()
    assert x.grad is not None and x.grad.device is backend
    support.assert_close(x.grad, [2.0, 4.0, 6.0], dtype=ag.float64)
    (g,) = ag.grad(lambda a: (ag.to_device(a, other_backend) ** 3).sum())(_t(backend, [1.0, 2.0]))
    assert g.device is backend
    support.assert_close(g, [3.0, 12.0], dtype=ag.float64)
    # and back: other -> backend
    z = _t(other_backend, [2.0], requires_grad=True)
    (z.to(backend) * 5.0).sum().backward()
    assert z.grad.device is other_backend
    support.assert_close(z.grad, [5.0], dtype=ag.float64)
