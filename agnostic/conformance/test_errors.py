"""Errors are part of the API: bad input raises the right exception type with a message that names
the op and the shapes / dtypes / values / backends involved, and where there is one, the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

F = ag.functional

COVERS = {
    "matmul", "add", "mul", "sub", "where", "sum", "max", "reshape", "concat", "stack", "getitem",
    "take", "take_along_axis", "scatter_add", "conv", "conv_input_grad", "max_pool", "avg_pool",
    "cross_entropy", "one_hot", "layer_norm", "batch_norm", "scaled_dot_product_attention", "pad",
    "squeeze", "broadcast_to", "permute", "clip", "full", "cast", "argmax", "tile", "repeat",
    "expand_dims", "gelu",
}  # fmt: skip


@pytest.fixture(scope="module")
def other_backend():
    """A second Device on this machine: the NumPy op-set registered under another name."""
    from agnostic.backends.numpy import NumpyBackend

    ag.register_backend("numpy-b", NumpyBackend)
    yield ag.backend("numpy-b")
    import agnostic.backends as registry

    getattr(registry, "_registry", {}).pop("numpy-b", None)


def _ones(backend, *shape, dtype=ag.float32):
    return backend.ones(shape, dtype=dtype)


# ---------------------------------------------------------------------- shapes
def test_matmul_inner_dimension_mismatch(backend):
    with pytest.raises(
        ValueError, match=re.escape("matmul: shapes (3, 4) and (5, 6): inner dimensions 4 and 5 differ")
    ):
        _ones(backend, 3, 4) @ _ones(backend, 5, 6)
    with pytest.raises(
        ValueError, match=re.escape("matmul: shapes (3, 4) and (5, 6): inner dimensions 4 and 5 differ")
    ):
        ag.matmul(_ones(backend, 3, 4), _ones(backend, 5, 6))
    with pytest.raises(
        ValueError, match=re.escape("matmul: shapes (3,) and (4,): inner dimensions 3 and 4 differ")
    ):
        ag.matmul(_ones(backend, 3), _ones(backend, 4))
    with pytest.raises(
        ValueError, match=re.escape("matmul: shapes (2, 3) and (2,): inner dimensions 3 and 2 differ")
    ):
        ag.matmul(_ones(backend, 2, 3), _ones(backend, 2))


def test_matmul_batch_and_rank_errors(backend):
    with pytest.raises(ValueError, match=r"matmul.*\(2,\) and \(3,\) cannot be broadcast"):
        _ones(backend, 2, 3, 4) @ _ones(backend, 3, 4, 5)
    with pytest.raises(
        ValueError, match=r"matmul: operands must have at least 1 dimension, got shapes \(\) and \(3, 4\)"
    ):
        ag.matmul(_ones(backend), _ones(backend, 3, 4))
    with pytest.raises(TypeError, match=r"matmul: operands must be tensors, not scalars"):
        ag.matmul(_ones(backend, 3, 4), 2.0)


@pytest.mark.parametrize(
    "op,name",
    [(ag.add, "add"), (ag.multiply, "multiply"), (ag.subtract, "subtract"), (ag.maximum, "maximum"),
     (ag.divide, "divide"), (ag.equal, "equal"), (ag.atan2, "atan2")],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_broadcasting_mismatch_in_binary_ops(backend, op, name):
    msg = (
        rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast: dimension -1 is 3 in one and 4 in another"
    )
    with pytest.raises(ValueError, match=msg):
        op(_ones(backend, 2, 3), _ones(backend, 4))


def test_broadcasting_mismatch_in_operators_and_where(backend):
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(3, 2\) cannot be broadcast"):
        _ones(backend, 2, 3) + _ones(backend, 3, 2)
    with pytest.raises(ValueError, match=r"where: shapes .*\(2, 3\).*\(4,\).* cannot be broadcast"):
        ag.where(_ones(backend, 2, 3) > 0, _ones(backend, 3), _ones(backend, 4))
    with pytest.raises(ValueError, match=r"where: shapes \(5,\) and \(3,\) cannot be broadcast"):
        ag.where(_ones(backend, 5) > 0, _ones(backend, 3), 0.0)
    with pytest.raises(ValueError, match=r"broadcast_to: .*\(3, 4\).*\(2, 4\)"):
        ag.broadcast_to(_ones(backend, 3, 4), (2, 4))
    with pytest.raises(ValueError, match=r"broadcast_shapes: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        ag.broadcast_shapes((2, 3), (4,))


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda x: ag.sum(x, axis=2), r"sum: axis 2 is out of range for a tensor of 2 dimensions \(shape \(3, 4\)\)"),
        (lambda x: ag.mean(x, axis=-3), r"mean: axis -3 is out of range for a tensor of 2 dimensions"),
        (lambda x: ag.max(x, axis=(0, 5)), r"max: axis 5 is out of range for a tensor of 2 dimensions"),
        (lambda x: ag.argmax(x, axis=2), r"argmax: axis 2 is out of range"),
        (lambda x: ag.softmax(x, axis=2), r"softmax: axis 2 is out of range"),
        (lambda x: ag.concat([x, x], axis=2), r"concat: axis 2 is out of range"),
        (lambda x: ag.stack([x, x], axis=3), r"stack: axis 3 is out of range for a tensor of 3 dimensions"),
        (lambda x: ag.expand_dims(x, axis=4), r"expand_dims: axis 4 is out of range"),
        (lambda x: ag.flip(x, axis=-3), r"flip: axis -3 is out of range"),
        (lambda x: ag.cumsum(x, axis=2), r"cumulative_sum: axis 2 is out of range|cumsum: axis 2 is out of range"),
        (lambda x: ag.sort(x, axis=2), r"sort: axis 2 is out of range"),
        (lambda x: ag.take(x, ag.asarray([0], device=x.device), axis=3), r"take: axis 3 is out of range"),
    ],
    ids=["sum", "mean", "max_tuple", "argmax", "softmax", "concat", "stack", "expand_dims", "flip", "cumsum",
         "sort", "take"],
)  # fmt: skip
def test_axis_out_of_range(backend, call, msg):
    with pytest.raises(ValueError, match=msg):
        call(_ones(backend, 3, 4))


def test_repeated_axis(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(ValueError, match=r"sum: repeated axis in \(0, -2\)"):
        ag.sum(x, axis=(0, -2))
    with pytest.raises(ValueError, match=r"var: repeated axis in \(1, 1\)"):
        ag.var(x, axis=(1, 1))
    with pytest.raises(
        ValueError, match=r"permute_dims: axes \(0, 0\) are not a permutation of 2 dimensions"
    ):
        x.permute(0, 0)
    with pytest.raises(
        ValueError, match=r"permute_dims: axes \(0, 1, 2\) do not match a tensor of 2 dimensions"
    ):
        x.permute(0, 1, 2)


def test_axis_of_wrong_type(backend):
    with pytest.raises(TypeError, match=r"sum: axis must be an int, got 1.5"):
        ag.sum(_ones(backend, 3), axis=1.5)


def test_reshape_size_mismatch(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(
        ValueError, match=r"reshape: cannot reshape tensor of shape \(3, 4\) \(12 elements\) into \(5, 3\)"
    ):
        x.reshape(5, 3)
    with pytest.raises(
        ValueError, match=r"reshape: cannot reshape tensor of shape \(3, 4\) \(12 elements\) into \(5, -1\)"
    ):
        ag.reshape(x, (5, -1))
    with pytest.raises(ValueError, match=r"reshape: only one dimension can be -1, got \(-1, -1\)"):
        x.reshape(-1, -1)


def test_concat_and_stack_shape_mismatch(backend):
    with pytest.raises(
        ValueError, match=r"concat: shapes \(2, 3\) and \(2, 4\) differ outside the concatenation axis 0"
    ):
        ag.concat([_ones(backend, 2, 3), _ones(backend, 2, 4)], axis=0)
    with pytest.raises(ValueError, match=r"concat: shapes \(2, 3\) and \(3,\) differ"):
        ag.concat([_ones(backend, 2, 3), _ones(backend, 3)])
    with pytest.raises(ValueError, match=r"concat: expected a non-empty sequence of tensors"):
        ag.concat([])
    with pytest.raises(ValueError, match=r"stack: all tensors need one shape, got \(2, 3\) and \(3, 2\)"):
        ag.stack([_ones(backend, 2, 3), _ones(backend, 3, 2)])


def test_other_shape_errors(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(ValueError, match=r"squeeze: axis 0 has size 3, not 1 \(shape \(3, 4\)\)"):
        ag.squeeze(x, axis=0)
    with pytest.raises(ValueError, match=r"split: axis 1 of length 4 cannot be split into 3 equal sections"):
        ag.split(x, sections=3, axis=1)
    with pytest.raises(ValueError, match=r"topk: k=5 is out of range for axis 1 of length 4"):
        ag.topk(x, 5)
    with pytest.raises(ValueError, match=r"tile: repetitions must be non-negative, got \(-1,\)"):
        ag.tile(x, (-1,))
    with pytest.raises(ValueError, match=r"repeat: repeats must be non-negative, got -1"):
        ag.repeat(x, -1, axis=0)
    with pytest.raises(ValueError, match=r"T: defined for 2-D tensors, got 3-D"):
        _ = _ones(backend, 2, 2, 2).T


def test_pad_errors(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(ValueError, match=r"pad: mode must be 'constant', 'reflect' or 'edge', got 'wrap'"):
        ag.pad(x, 1, mode="wrap")
    with pytest.raises(
        ValueError, match=r"pad: reflect padding \(3, 3\) must be smaller than axis 0's length 3"
    ):
        ag.pad(x, 3, mode="reflect")
    with pytest.raises(ValueError, match=r"pad: widths must be non-negative, got -1"):
        ag.pad(x, -1)


# ---------------------------------------------------------------------- indexing
def test_index_out_of_bounds(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(IndexError, match=r"getitem: index 3 is out of bounds for axis 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match=r"getitem: index -4 is out of bounds for axis 0 with size 3"):
        x[-4]
    with pytest.raises(IndexError, match=r"getitem: index 4 is out of bounds for axis 1 with size 4"):
        x[0, 4]
    with pytest.raises(IndexError, match=r"getitem: index -5 is out of bounds for axis 1 with size 4"):
        x[:, -5]
    with pytest.raises(IndexError, match=r"getitem: index 4 is out of bounds for axis 1 with size 4"):
        x[..., 4]


def test_int_array_index_out_of_bounds(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(IndexError, match=r"getitem: index 3 is out of bounds for axis 0 with size 3"):
        x[[0, 3]]
    with pytest.raises(IndexError, match=r"getitem: index 4 is out of bounds for axis 1 with size 4"):
        x[:, backend.tensor([1, 4])]
    with pytest.raises(IndexError, match=r"getitem: index -4 is out of bounds for axis 0 with size 3"):
        x[backend.tensor([[0], [-4]])]
    with pytest.raises(IndexError, match=r"take: index 7 is out of bounds for axis 1 with size 4"):
        ag.take(x, backend.tensor([0, 7]), axis=1)
    with pytest.raises(IndexError, match=r"take: index -5 is out of bounds for axis 1 with size 4"):
        ag.take(x, backend.tensor([-5]), axis=1)
    with pytest.raises(IndexError, match=r"take: index 12 is out of bounds for axis 0 with size 12"):
        ag.take(x, backend.tensor([12]))
    with pytest.raises(IndexError, match=r"take_along_axis: index 4 is out of bounds for axis 1 with size 4"):
        ag.take_along_axis(x, backend.tensor([[0, 4]]), axis=1)
    with pytest.raises(IndexError, match=r"scatter_add: index 3 is out of bounds for axis 0 with size 3"):
        ag.scatter_add(x, 0, backend.tensor([[3, 0]]), _ones(backend, 1, 2))
    with pytest.raises(IndexError, match=r"at\[\]\.add: index 5 is out of bounds for axis 0 with size 3"):
        x.at[[5]].add(1.0)
    with pytest.raises(IndexError, match=r"at\[\]\.set: index -4 is out of bounds for axis 0 with size 3"):
        x.at[-4].set(1.0)


def test_bool_mask_shape_mismatch(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(
        IndexError,
        match=r"getitem: boolean mask of shape \(3, 5\) does not match the indexed dimensions \(3, 4\)",
    ):
        x[_ones(backend, 3, 5) > 0]
    with pytest.raises(
        IndexError,
        match=r"getitem: boolean mask of shape \(4,\) does not match the indexed dimensions \(3,\)",
    ):
        x[_ones(backend, 4) > 0]
    with pytest.raises(
        IndexError, match=r"boolean mask of shape \(3,\) does not match the indexed dimensions \(4,\)"
    ):
        x[:, _ones(backend, 3) > 0]


def test_too_many_indices(backend):
    with pytest.raises(IndexError, match=r"getitem: too many indices \(3\) for a tensor of 2 dimensions"):
        _ones(backend, 3, 4)[0, 0, 0]
    with pytest.raises(IndexError, match=r"getitem: too many indices \(2\) for a tensor of 1 dimensions"):
        _ones(backend, 3)[0, :]
    with pytest.raises(IndexError, match=r"getitem: a 0-d tensor cannot be indexed by an int or slice"):
        _ones(backend)[0]


def test_bad_index_types(backend):
    x = _ones(backend, 3, 4)
    with pytest.raises(IndexError, match=r"getitem: index tensors must be integer or bool, got float32"):
        x[_ones(backend, 2)]
    with pytest.raises(TypeError, match=r"take: indices must be integers, got float32"):
        ag.take(x, _ones(backend, 2))
    with pytest.raises(
        ValueError,
        match=r"take_along_axis: indices of shape \(2,\) need the tensor's 2 dimensions \(shape \(3, 4\)\)",
    ):
        ag.take_along_axis(x, backend.tensor([0, 1]), axis=1)
    with pytest.raises(
        ValueError, match=r"scatter_add: indices \(1, 2\) and src \(1, 3\) must have one shape"
    ):
        ag.scatter_add(x, 0, backend.tensor([[0, 1]]), _ones(backend, 1, 3))


def test_item_assignment_errors(backend):
    x = _ones(backend, 3)
    with pytest.raises(TypeError, match=r"do not fit a int64 tensor|do not fit"):
        ag.zeros(3, dtype=ag.int64, device=backend)[0] = 1.5  # a float value does not fit an int tensor
    with pytest.raises(IndexError):
        x[5] = 1.0
    leaf = backend.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*ag\.no_grad"):
        leaf[0] = 2.0
    m = _ones(backend, 3)
    y = (leaf * m).sum()
    m[0] = 5.0  # mul's gradient for `leaf` needs m's old value
    with pytest.raises(RuntimeError, match=r"mul's gradient needs was changed by item assignment"):
        y.backward()


def test_parameter_updated_between_forward_and_backward(backend):
    """An optimizer step (Parameter.assign) before backward: a rule that reads the parameter is
    refused, as torch refuses a parameter modified in place; one the parameter only fed (an
    addition) still gives it its gradient, as torch's."""
    from agnostic import nn

    w = nn.Parameter(backend.tensor(np.array([1.0, 2.0], np.float32)))
    x = backend.tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    y = (w * x).sum()
    with ag.no_grad():
        w.assign(w * 10.0)
    with pytest.raises(
        RuntimeError,
        match=r"mul's gradient needs was changed by Parameter\.assign .*loss\.backward\(\) before optimizer\.step\(\)",
    ):
        y.backward()
    y = (w + x).sum()
    with ag.no_grad():
        w.assign(w * 2.0)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])
    y = (w * x).sum()  # the usual order: backward, then the update
    y.backward()
    with ag.no_grad():
        w.assign(w - 0.1 * w.grad)
    np.testing.assert_allclose(w.numpy(), [20.0 - 0.1 * 4.0, 40.0 - 0.1 * 5.0], rtol=1e-6)  # grad 1 + x


# ---------------------------------------------------------------------- backends, devices, dtypes
def test_unknown_backend_lists_known_ones_and_the_pip_extra(backend):
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow'; known backends: .*'numpy'") as info:
        ag.backend("tensorflow")
    msg = str(info.value)
    assert "pip install 'agnostic[" in msg, msg
    assert "register_backend" in msg, msg
    with pytest.raises(ValueError, match=r"unknown backend 'nope'"):
        ag.tensor([1.0], device="nope")


def test_backend_whose_library_is_missing(backend):
    ag.register_backend("agnostic-test-missing", "agnostic_module_that_does_not_exist:Backend")
    try:
        with pytest.raises(
            ag.BackendUnavailable,
            match=r"backend 'agnostic-test-missing' cannot be loaded.*agnostic_module_that_does_not_exist",
        ):
            ag.backend("agnostic-test-missing")
    finally:
        import agnostic.backends as registry

        getattr(registry, "_registry", {}).pop("agnostic-test-missing", None)


def test_builtin_backend_without_its_library_names_the_extra(backend):
    checked = []
    for name in ("torch", "jax", "cupy"):
        if name not in ag.backend_names():
            continue
        try:
            ag.backend(name)
        except ag.BackendUnavailable as e:
            msg = str(e)
            assert f"backend {name!r}" in msg, msg
            assert f"agnostic[{name}]" in msg or "device" in msg.lower(), f"no fix named: {msg}"
            checked.append(name)
    if not checked:
        pytest.skip("no registered library backend (torch, jax, cupy) is missing here")


def test_unknown_device_of_a_backend(backend):
    with pytest.raises(ValueError, match=r"unknown device 'no-such-device:7'"):
        ag.backend(backend.name, "no-such-device:7")


@pytest.mark.parametrize("bad", ["float128", "complex32", "foo"])
def test_unknown_dtype(backend, bad):
    with pytest.raises(
        TypeError, match=rf"unknown dtype '{bad}'; known: bool, int8.*float64, complex64, complex128"
    ):
        backend.ones(3, dtype=bad)
    with pytest.raises(TypeError, match=rf"unknown dtype '{bad}'"):
        _ones(backend, 3).astype(bad)
    with pytest.raises(TypeError, match=rf"unknown dtype '{bad}'"):
        ag.asarray([1.0], dtype=bad, device=backend)


def test_tensors_of_two_backends_in_one_op(backend, other_backend):
    a, b = _ones(backend, 3), _ones(other_backend, 3)
    both = rf"{re.escape(repr(backend))} and {re.escape(repr(other_backend))}"
    for op, name in (
        (ag.add, "add"),
        (ag.multiply, "multiply"),
        (ag.matmul, "matmul"),
        (ag.maximum, "maximum"),
    ):
        with pytest.raises(
            ValueError, match=rf"{name}: tensors are on different backends/devices: {both}; move one first"
        ):
            op(a, b)
    with pytest.raises(ValueError, match=rf"add: tensors are on different backends/devices: {both}"):
        a + b
    with pytest.raises(ValueError, match=rf"concat: tensors are on different backends/devices: {both}"):
        ag.concat([a, b])
    with pytest.raises(ValueError, match=rf"stack: tensors are on different backends/devices: {both}"):
        ag.stack([a, b])
    with pytest.raises(ValueError, match=r"where: tensors are on different backends/devices"):
        ag.where(a > 0, b, 0.0)
    with pytest.raises(ValueError, match=r"conv1d: tensors are on different backends/devices"):
        F.conv1d(backend.ones((1, 1, 4)), other_backend.ones((1, 1, 2)))
    with pytest.raises(ValueError, match=r"take: tensors are on different backends/devices"):
        ag.take(a, other_backend.tensor([0]))
    # and the fix works
    support.assert_close(a + b.to(backend), np.full(3, 2.0), dtype=ag.float32)


def test_losses_and_composites_with_tensors_of_two_backends(backend, other_backend):
    """Every composite checks its tensors' devices before the backend sees them (an AttributeError or
    a backend's TypeError before); the losses name themselves."""
    logits, labels = backend.ones((4, 3)), backend.tensor([0, 1, 2, 0])
    two = "tensors are on different backends/devices"
    cases = [
        ("cross_entropy", lambda: ag.cross_entropy(logits, other_backend.tensor([0, 1, 2, 0]))),
        ("cross_entropy", lambda: ag.cross_entropy(other_backend.ones((4, 3)), labels)),
        ("cross_entropy", lambda: ag.cross_entropy(logits, labels, weight=other_backend.ones(3))),
        ("nll_loss", lambda: F.nll_loss(logits, other_backend.tensor([0, 1, 2, 0]))),
        ("mse_loss", lambda: F.mse_loss(logits, other_backend.ones((4, 3)))),
        ("l1_loss", lambda: F.l1_loss(logits, other_backend.ones((4, 3)))),
        ("linear", lambda: F.linear(logits, other_backend.ones((2, 3)))),
        ("layer_norm", lambda: F.layer_norm(logits, (3,), weight=other_backend.ones(3))),
        (
            "scaled_dot_product_attention",
            lambda: F.scaled_dot_product_attention(
                backend.ones((1, 2, 3)), other_backend.ones((1, 2, 3)), backend.ones((1, 2, 3))
            ),
        ),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=rf"^{name}: {two}"):
            call()


@pytest.mark.parametrize("dtype", ["object", "U3", "S2", "datetime64[s]", "timedelta64[ms]"])
def test_numpy_arrays_of_unsupported_dtypes(backend, dtype):
    """On every backend (and on NumPy's, where a NumPy array is the native type: a KeyError before)."""
    data = np.zeros(2, dtype=dtype)
    with pytest.raises(TypeError, match=r"is not supported by agnostic; supported: bool, int8"):
        backend.tensor(data)
    with pytest.raises(TypeError, match=r"is not supported by agnostic"):
        ag.asarray(data, device=backend)


def test_python_data_that_is_not_numbers(backend):
    for data in (["a", "b"], [None], [1.0, "x"], b"ab"):
        with pytest.raises(TypeError, match=r"asarray: cannot make a tensor from .* \(not numbers"):
            backend.tensor(data)


def test_pointwise_losses_do_not_broadcast(backend):
    """(4, 1) predictions against (4,) targets would broadcast to (4, 4): an error for every
    pointwise loss, mse_loss included (it broadcast silently before), with the reshape that fixes it."""
    pred, target = backend.ones((4, 1)), backend.zeros(4)
    for loss in (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy):
        name = loss.__name__
        with pytest.raises(
            ValueError,
            match=rf"{name}: target shape \(4,\) must match input shape \(4, 1\) .*target.reshape\(\(4, 1\)\)",
        ):
            loss(pred * 0.5, target)
    support.assert_close(F.mse_loss(pred, target.reshape((4, 1))), np.float64(1.0), dtype=ag.float32)


def test_layers_given_a_list_say_to_make_a_tensor(backend):
    from agnostic import nn

    with ag.default_backend(backend):
        layers = [
            (nn.Linear(2, 3), [[1.0, 2.0]]),
            (nn.Conv2d(1, 2, 3), [[[[0.0] * 4] * 4]]),
            (nn.Conv1d(1, 2, 3), np.zeros((1, 1, 4), np.float32)),
            (nn.LayerNorm(2), [[1.0, 2.0]]),
            (nn.BatchNorm1d(2), [[1.0, 2.0]]),
            (nn.MaxPool2d(2), [[[[0.0] * 4] * 4]]),
            (nn.AdaptiveAvgPool2d(1), [[[[0.0] * 4] * 4]]),
            (nn.Flatten(), [[1.0]]),
            (nn.ReLU(), [1.0]),
            (nn.Dropout(), [1.0]),
            (nn.Upsample(scale_factor=2), [[[1.0]]]),
            (nn.Embedding(5, 2), [1, 2]),
            (nn.LSTM(2, 3), [[[1.0, 2.0]]]),
            (nn.Sequential(nn.Linear(2, 2)), [[1.0, 2.0]]),
        ]
    for layer, data in layers:
        inner = layer[0] if isinstance(layer, nn.Sequential) else layer
        with pytest.raises(
            TypeError,
            match=rf"^{type(inner).__name__}: \w+ must be a Tensor, got {type(data).__name__}; make one on "
            r"the layer's backend with ag.asarray\(data, device=...\)",
        ):
            layer(data)
    attention = nn.MultiheadAttention(4, 2, backend=backend)
    q = backend.ones((1, 2, 4))
    with pytest.raises(TypeError, match=r"^MultiheadAttention: value must be a Tensor, got list"):
        attention(q, q, [[[1.0] * 4] * 2])


def test_gradient_of_tensor_on_another_backend(backend, other_backend):
    y = _ones(backend, 2, dtype=ag.float64).requires_grad_() * 2.0
    with pytest.raises(ValueError, match=r"backward: gradient is on .* but the output is on"):
        y.backward(other_backend.ones(2, dtype=ag.float64))


# ---------------------------------------------------------------------- convolution and pooling
def test_conv_channel_mismatch(backend):
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight \(2, 2, 3, 3\) expects 2"):
        F.conv2d(backend.ones((1, 3, 5, 5)), backend.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv1d: input has 4 channels but weight \(2, 1, 3\) expects 2"):
        F.conv1d(backend.ones((1, 4, 5)), backend.ones((2, 1, 3)), groups=2)
    with pytest.raises(
        ValueError, match=r"conv_transpose2d: input has 3 channels but weight \(2, 2, 3, 3\) expects 2"
    ):
        F.conv_transpose2d(backend.ones((1, 3, 5, 5)), backend.ones((2, 2, 3, 3)))


def test_conv_groups_not_dividing(backend):
    with pytest.raises(
        ValueError, match=r"conv2d: groups=2 must divide input channels 3 and output channels 2"
    ):
        F.conv2d(backend.ones((1, 3, 5, 5)), backend.ones((2, 1, 3, 3)), groups=2)
    with pytest.raises(
        ValueError, match=r"conv2d: groups=2 must divide input channels 4 and output channels 3"
    ):
        F.conv2d(backend.ones((1, 4, 5, 5)), backend.ones((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"conv1d: groups=0 must divide"):
        F.conv1d(backend.ones((1, 4, 5)), backend.ones((2, 2, 3)), groups=0)
    with pytest.raises(ValueError, match=r"conv_transpose1d: groups=3 must divide input channels 4"):
        F.conv_transpose1d(backend.ones((1, 4, 5)), backend.ones((4, 1, 3)), groups=3)


def test_conv_bad_padding(backend):
    x, w = backend.ones((1, 1, 5, 5)), backend.ones((1, 1, 3, 3))
    with pytest.raises(
        ValueError, match=r"conv2d: padding must be an int, a tuple, 'same' or 'valid', got 'full'"
    ):
        F.conv2d(x, w, padding="full")
    with pytest.raises(
        ValueError, match=r"conv2d: padding='same' needs stride 1 \(as torch\), got stride \(2, 2\)"
    ):
        F.conv2d(x, w, padding="same", stride=2)
    with pytest.raises(
        ValueError, match=r"conv2d: padding needs 2 values \(or \(lo, hi\) pairs\), got \(1, 1, 1\)"
    ):
        F.conv2d(x, w, padding=(1, 1, 1))
    with pytest.raises(ValueError, match=r"conv2d: padding must be non-negative"):
        F.conv2d(x, w, padding=-1)


def test_conv_other_errors(backend):
    with pytest.raises(
        ValueError, match=r"conv2d: input spatial size \(2, 2\).*is smaller than the kernel \(3, 3\)"
    ):
        F.conv2d(backend.ones((1, 1, 2, 2)), backend.ones((1, 1, 3, 3)))
    with pytest.raises(
        ValueError, match=r"conv2d: expected a 4-d \(N, C, \*spatial\) or 3-d input, got shape \(5,\)"
    ):
        F.conv2d(backend.ones((5,)), backend.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"conv1d: weight must have 3 dimensions, got shape \(1, 1, 3, 3\)"):
        F.conv1d(backend.ones((1, 1, 5)), backend.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: stride and dilation must be positive, got \(0, 0\)"):
        F.conv2d(backend.ones((1, 1, 5, 5)), backend.ones((1, 1, 3, 3)), stride=0)
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\), expected \(2,\) \(out_channels\)"):
        F.conv2d(backend.ones((1, 1, 5, 5)), backend.ones((2, 1, 3, 3)), backend.ones(3))
    with pytest.raises(
        ValueError, match=r"conv_transpose1d: output_padding \(2,\) must be smaller than stride or dilation"
    ):
        F.conv_transpose1d(backend.ones((1, 1, 3)), backend.ones((1, 1, 2)), stride=2, output_padding=2)


def test_pool_kernel_larger_than_input(backend):
    with pytest.raises(
        ValueError, match=r"max_pool2d: input spatial size \(2, 2\) is smaller than the kernel \(3, 3\)"
    ):
        F.max_pool2d(backend.ones((1, 1, 2, 2)), 3)
    with pytest.raises(
        ValueError, match=r"avg_pool1d: input spatial size \(2,\) is smaller than the kernel \(3,\)"
    ):
        F.avg_pool1d(backend.ones((1, 1, 2)), 3)
    with pytest.raises(
        ValueError, match=r"max_pool3d: input spatial size \(2, 4, 4\) is smaller than the kernel \(3, 3, 3\)"
    ):
        F.max_pool3d(backend.ones((1, 1, 2, 4, 4)), 3)
    with pytest.raises(
        ValueError, match=r"max_pool2d: padding \(2, 2\) should be at most half of kernel_size \(2, 2\)"
    ):
        F.max_pool2d(backend.ones((1, 1, 5, 5)), 2, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel_size and stride must be positive"):
        F.avg_pool2d(backend.ones((1, 1, 5, 5)), 0)


# ---------------------------------------------------------------------- losses and composites
def test_cross_entropy_target_errors(backend):
    logits = backend.ones((4, 3))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: target shape \(3,\) does not match logits \(4, 3\) \(expected \(4,\): the logits without the class axis\)",
    ):
        F.cross_entropy(logits, backend.tensor([0, 1, 2]))
    with pytest.raises(
        ValueError, match=r"cross_entropy: target values must be in \[0, 3\) or ignore_index=-100, got 0\.\.3"
    ):
        F.cross_entropy(logits, backend.tensor([0, 1, 2, 3]))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: target values must be in \[0, 3\) or ignore_index=-100, got -2\.\.1",
    ):
        F.cross_entropy(logits, backend.tensor([0, 1, -2, 1]))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: probability targets must match the logits' shape \(4, 3\), got \(4, 2\)",
    ):
        F.cross_entropy(logits, backend.ones((4, 2)))
    with pytest.raises(ValueError, match=r"cross_entropy: weight has shape \(2,\), expected \(3,\)"):
        F.cross_entropy(logits, backend.tensor([0, 1, 2, 1]), weight=backend.ones(2))
    with pytest.raises(
        ValueError, match=r"cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"
    ):
        F.cross_entropy(logits, backend.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(
        TypeError,
        match=r"cross_entropy: target must hold class indices \(integers\) or probabilities, got bool",
    ):
        F.cross_entropy(logits, backend.tensor([True, False, True, True]))


def test_one_hot_out_of_range(backend):
    with pytest.raises(ValueError, match=r"one_hot: indices must be in \[0, 3\), got 0\.\.3"):
        F.one_hot(backend.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"one_hot: indices must be in \[0, 3\), got -1\.\.1"):
        F.one_hot(backend.tensor([-1, 1]), 3)
    with pytest.raises(TypeError, match=r"one_hot: indices must be integers, got float32"):
        F.one_hot(backend.ones(2), 3)


def test_composite_argument_errors(backend):
    x = backend.ones((3, 4))
    with pytest.raises(
        ValueError,
        match=r"layer_norm: normalized_shape \(3,\) does not match the end of input shape \(3, 4\)",
    ):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(3,\), expected \(4,\)"):
        F.layer_norm(x, 4, weight=backend.ones(3))
    with pytest.raises(
        ValueError, match=r"batch_norm: running_mean has shape \(4,\), expected \(3,\) for input \(2, 3\)"
    ):
        F.batch_norm(backend.ones((2, 3)), backend.ones(4), backend.ones(4))
    with pytest.raises(
        ValueError, match=r"batch_norm: need more than 1 value per channel when training, got input \(1, 3\)"
    ):
        F.batch_norm(backend.ones((1, 3)), None, None, training=True)
    with pytest.raises(
        ValueError,
        match=r"scaled_dot_product_attention: query \(2, 3\) and key \(2, 4\) need one embedding size",
    ):
        F.scaled_dot_product_attention(backend.ones((2, 3)), backend.ones((2, 4)), backend.ones((2, 4)))
    with pytest.raises(
        ValueError,
        match=r"scaled_dot_product_attention \(mask\): shapes \(3, 5\) and \(3, 4\) cannot be broadcast",
    ):
        F.scaled_dot_product_attention(
            backend.ones((3, 2)), backend.ones((4, 2)), backend.ones((4, 2)), attn_mask=backend.ones((3, 5))
        )
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1\.5"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------------- dtypes and scalars
def test_python_int_out_of_range_for_the_tensor_dtype(backend):
    i8 = backend.tensor([1, 2], dtype=ag.int8)
    with pytest.raises(OverflowError, match=r"add: Python int 300 is out of range for int8 \[-128, 127\]"):
        i8 + 300
    with pytest.raises(
        OverflowError, match=r"multiply: Python int -129 is out of range for int8 \[-128, 127\]"
    ):
        -129 * i8
    with pytest.raises(OverflowError, match=r"add: Python int -1 is out of range for uint8 \[0, 255\]"):
        backend.tensor([1, 2], dtype=ag.uint8) + (-1)
    with pytest.raises(OverflowError, match=r"where: Python int 1000 is out of range for int8"):
        ag.where(i8 > 0, i8, 1000)
    with pytest.raises(OverflowError, match=r"clip: Python int 1000 is out of range for int8"):
        ag.clip(i8, 0, 1000)
    with pytest.raises(
        OverflowError, match=r"asarray: Python int 300 is out of range for int8 \[-128, 127\]"
    ):
        ag.asarray([1, 300], dtype=ag.int8, device=backend)
    with pytest.raises(OverflowError, match=r"full: Python int 300 is out of range for int8"):
        backend.full((2,), 300, dtype=ag.int8)
    # in range is fine, and a float scalar promotes instead of overflowing
    support.assert_close(i8 + 127 - 127, [1, 2], dtype=ag.int8)
    support.assert_close(i8 * 0.5, [0.5, 1.0], dtype=ag.float32)


def test_dtype_errors_of_ops(backend):
    b = backend.tensor([True, False])
    with pytest.raises(
        TypeError, match=r"subtract: not defined for bool tensors; cast with \.astype\(ag\.int64\) first"
    ):
        b - b
    with pytest.raises(TypeError, match=r"bitwise_and: needs integer or bool tensors, got float32"):
        backend.ones(2) & backend.ones(2)
    with pytest.raises(TypeError, match=r"asarray: cannot make a tensor from \['a'\] \(not numbers"):
        ag.asarray(["a"], device=backend)
    with pytest.raises(TypeError, match=r"abs: not defined for bool tensors"):
        ag.abs(b)


def test_requires_grad_on_int_tensors(backend):
    with pytest.raises(
        TypeError, match=r"requires_grad: only floating-point tensors can require gradients, got int64"
    ):
        backend.tensor([1, 2], requires_grad=True)
    with pytest.raises(
        TypeError, match=r"requires_grad: only floating-point tensors can require gradients, got int8"
    ):
        backend.tensor([1, 2], dtype=ag.int8).requires_grad_()
    with pytest.raises(TypeError, match=r"got bool"):
        ag.tensor([True], requires_grad=True, device=backend)


def test_gradient_of_integer_output(backend):
    x = backend.tensor([1.0, 3.0], requires_grad=True)
    with pytest.raises(
        TypeError,
        match=r"grad: the output has dtype int64; gradients are defined for floating-point outputs only",
    ):
        ag.grad(lambda a: ag.argmax(a))(x)
    with pytest.raises(TypeError, match=r"backward: the output has dtype bool"):
        (x > 2.0).backward()


# ---------------------------------------------------------------------- Python protocol
def test_item_of_multi_element_tensor(backend):
    with pytest.raises(ValueError, match=r"item: tensor has 12 elements \(shape \(3, 4\)\); need exactly 1"):
        backend.ones((3, 4)).item()
    with pytest.raises(ValueError, match=r"item: tensor has 0 elements \(shape \(0,\)\)"):
        backend.ones((0,)).item()
    with pytest.raises(ValueError, match=r"item: tensor has 2 elements"):
        float(backend.ones(2))
    assert backend.ones((1, 1)).item() == 1.0


def test_bool_of_multi_element_tensor(backend):
    with pytest.raises(
        ValueError,
        match=r"the truth value of a tensor with 12 elements is ambiguous; use \.any\(\) or \.all\(\)",
    ):
        bool(backend.ones((3, 4)))
    with pytest.raises(ValueError, match=r"the truth value of a tensor with 0 elements is ambiguous"):
        bool(backend.ones((0,)))
    x = backend.ones(2)
    with pytest.raises(ValueError, match=r"truth value of a tensor with 2 elements"):
        if x > 0:
            pass
    assert bool(backend.ones(1)) is True


def test_len_and_iter_of_0d_tensor(backend):
    with pytest.raises(TypeError, match=r"len\(\) of a 0-d tensor"):
        len(backend.ones(()))
    with pytest.raises(TypeError, match=r"iteration over a 0-d tensor"):
        iter(backend.ones(()))
    with pytest.raises(TypeError, match=r"only integer tensors can be used as an index, got float32"):
        [1, 2][backend.ones(())]


# ---------------------------------------------------------------------- seeds
@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, None], ids=["negative", "float", "str", "bool", "none"])
def test_invalid_seeds(backend, seed):
    if seed is None:
        with pytest.raises(ValueError, match=r"pass either seed= or generator=, not both"):
            backend.randn(2, seed=1, generator=ag.Generator(1))
        return
    with pytest.raises(ValueError, match=rf"seed must be a non-negative int, got {re.escape(repr(seed))}"):
        backend.randn(2, seed=seed)
    with pytest.raises(
        ValueError, match=rf"manual_seed: seed must be a non-negative int, got {re.escape(repr(seed))}"
    ):
        ag.manual_seed(seed)
    with pytest.raises(
        ValueError, match=rf"manual_seed: seed must be a non-negative int, got {re.escape(repr(seed))}"
    ):
        ag.Generator(seed)
    with pytest.raises(ValueError, match=r"seed must be a non-negative int"):
        F.dropout(backend.ones(3), 0.5, seed=seed)


def test_invalid_random_arguments(backend):
    with pytest.raises(ValueError, match=r"bernoulli: p must be in \[0, 1\], got 1\.5"):
        backend.bernoulli((2,), 1.5)
    with pytest.raises(ValueError, match=r"randint: need low < high, got low=5, high=2"):
        backend.randint(5, 2, (2,))
    with pytest.raises(TypeError, match=r"uniform: dtype must be floating-point, got int64"):
        backend.rand(2, dtype=ag.int64)
    with pytest.raises(ValueError, match=r"normal: negative dimension in shape \(-1,\)"):
        backend.randn(-1)
