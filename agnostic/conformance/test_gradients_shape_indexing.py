"""Gradients of shape ops and indexing against finite differences and exact values: reshape,
permute, broadcast, squeeze, flip, pad (all modes), tile/repeat, concat/stack/split, getitem
(slices, steps, int arrays with repeats, bool masks), take, take_along_axis, scatter_add,
functional updates (.at[]), sort and topk values."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.conformance import support

COVERS = {
    "reshape", "permute", "broadcast_to", "squeeze", "expand_dims", "flip", "pad", "tile", "repeat",
    "concat", "stack", "getitem", "index_add", "take", "take_along_axis", "scatter_add", "sort",
    "argsort", "where", "le", "ge", "lt", "sub", "arange", "full",
}  # fmt: skip


def _data(shape, seed=0):
    """Distinct values (no ties), so sorts and maxima are differentiable."""
    n = int(np.prod(shape))
    return (support.rng(seed).permutation(n) + support.rng(seed + 1).uniform(0.1, 0.4, n)).reshape(shape) / n


def _t(backend, a):
    return backend.tensor(np.asarray(a, dtype=np.float64), dtype=ag.float64)


def _ints(backend, a):
    return backend.tensor(np.asarray(a, dtype=np.int64))


# ---------------------------------------------------------------------- shape ops
SHAPE_OPS = [
    ("reshape", lambda t: ag.reshape(t, (3, 2, 2))),
    ("reshape_minus_one", lambda t: t.reshape(4, -1)),
    ("flatten", lambda t: ag.flatten(t, 1)),
    ("permute_dims", lambda t: ag.permute_dims(t, (2, 0, 1))),
    ("permute_method", lambda t: t.permute(1, 2, 0)),
    ("transpose", lambda t: ag.transpose(t, 0, 2)),
    ("moveaxis", lambda t: ag.moveaxis(t, 0, -1)),
    ("mT", lambda t: t.mT),
    ("broadcast_to", lambda t: ag.broadcast_to(ag.reshape(t, (2, 1, 3, 2)), (2, 4, 3, 2))),
    ("broadcast_new_leading", lambda t: ag.broadcast_to(t, (2, 2, 3, 2))),
    ("expand_dims", lambda t: ag.expand_dims(t, (0, 3))),
    ("unsqueeze_squeeze", lambda t: ag.squeeze(ag.unsqueeze(t, 1), axis=1)),
    ("squeeze_all", lambda t: ag.squeeze(ag.reshape(t, (1, 2, 1, 6)))),
    ("flip_all", lambda t: ag.flip(t)),
    ("flip_axes", lambda t: ag.flip(t, axis=(0, 2))),
    ("roll", lambda t: ag.roll(t, 1, axis=1)),
    ("roll_multi", lambda t: ag.roll(t, (1, -1), axis=(0, 2))),
    ("roll_flat", lambda t: ag.roll(t, 5)),
    ("tile", lambda t: ag.tile(t, (2, 1, 2))),
    ("tile_more_dims", lambda t: ag.tile(t, (2, 1, 1, 3))),
    ("tile_fewer_reps", lambda t: ag.tile(t, (2,))),
    ("repeat_int", lambda t: ag.repeat(t, 2, axis=1)),
    ("repeat_flat", lambda t: ag.repeat(t, 2)),
    ("tril", lambda t: ag.tril(t)),
    ("triu_k", lambda t: ag.triu(t, k=1)),
    ("unstack", lambda t: ag.unstack(t, axis=1)[2] * 2.0 + ag.unstack(t, axis=1)[0] + ag.unstack(t)[1][0]),
]


@pytest.mark.parametrize("name,fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_op_gradient(backend, name, fn):
    support.check_grad(backend, fn, _data((2, 3, 2)))


def test_repeat_with_tensor_repeats(backend):
    reps = _ints(backend, [0, 2, 3])
    support.check_grad(backend, lambda t: ag.repeat(t, reps, axis=1), _data((2, 3)))
    (g,) = ag.grad(lambda t: ag.repeat(t, reps, axis=0).sum())(_t(backend, [1.0, 2.0, 3.0]))
    support.assert_close(g, [0.0, 2.0, 3.0], dtype=ag.float64)


def test_tile_exact(backend):
    (g,) = ag.grad(lambda t: (ag.tile(t, (3,)) * _t(backend, np.arange(6.0))).sum())(_t(backend, [0.0, 0.0]))
    support.assert_close(g, [0 + 2 + 4, 1 + 3 + 5], dtype=ag.float64)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize(
    "widths",
    [((1, 2), (0, 1)), ((2, 0), (1, 1)), 1, ((0, 0), (2, 2))],
    ids=["asym", "one_side", "int", "last_only"],
)
def test_pad_gradient(backend, mode, widths):
    support.check_grad(backend, lambda t: ag.pad(t, widths, mode=mode), _data((3, 4)))


def test_pad_exact(backend):
    c = np.arange(1.0, 9.0)
    x = _t(backend, [0.0, 0.0, 0.0, 0.0])
    (g,) = ag.grad(lambda t: (ag.pad(t, ((2, 2),), mode="constant", value=5.0) * _t(backend, c)).sum())(x)
    support.assert_close(g, c[2:6], dtype=ag.float64)
    # reflect: [x2 x1 | x0 x1 x2 x3 | x2 x1]
    (g,) = ag.grad(lambda t: (ag.pad(t, ((2, 2),), mode="reflect") * _t(backend, c)).sum())(x)
    support.assert_close(g, [3.0, 2 + 4 + 8, 1 + 5 + 7, 6.0], dtype=ag.float64)
    # edge: [x0 x0 | x0 x1 x2 x3 | x3 x3]
    (g,) = ag.grad(lambda t: (ag.pad(t, ((2, 2),), mode="edge") * _t(backend, c)).sum())(x)
    support.assert_close(g, [1 + 2 + 3, 4.0, 5.0, 6 + 7 + 8], dtype=ag.float64)


def test_concat_stack_split_gradient(backend):
    a, b, c = _data((2, 3)), _data((2, 1), 1), _data((2, 2), 2)
    support.check_grad(backend, lambda x, y, z: ag.concat([x, y, z], axis=1), a, b, c)
    support.check_grad(backend, lambda x, y: ag.concat([x, y], axis=0), a, _data((1, 3), 3))
    support.check_grad(backend, lambda x, y: ag.concat([x, y], axis=None), a, c)
    support.check_grad(backend, lambda x, y: ag.concat([x, x * 2.0, y], axis=-1), a, c)
    support.check_grad(backend, lambda x, y: ag.stack([x, y], axis=0), a, _data((2, 3), 4))
    support.check_grad(backend, lambda x, y: ag.stack([y, x, y], axis=2), a, _data((2, 3), 4))
    support.check_grad(
        backend, lambda x: ag.split(x, sections=3, axis=1)[1] * 3.0 + ag.split(x, sections=3, axis=1)[2], a
    )
    support.check_grad(
        backend, lambda x: ag.concat(ag.split(x, indices=[1, 4], axis=1)[::-1], axis=1), _data((2, 5))
    )


def test_slice_cotangents_assemble_exactly(backend):
    """Slices of one tensor along one axis (an unstack, a split, x[:, i], x[:, a:b]) have their
    cotangents assembled at once by concatenation: every mix must give the dense sum's values,
    including unused, repeated, negative and overlapping slices (which fall back to the sum), slices
    along two axes, and a gradient of the gradient."""
    a = _data((3, 5, 4))
    w = support.rng(7).normal(size=(3, 5, 4))

    def f(x):
        steps = ag.unstack(x, axis=1)
        total = sum(ag.sum(s * _t(backend, w[:, i]) * (i + 1.0)) for i, s in enumerate(steps) if i != 2)
        total = total + ag.sum(steps[0] ** 2) + ag.sum(x[:, -1] * 3.0)  # index 4 twice, index 0 twice
        return total + ag.sum(ag.split(x, indices=[1, 3], axis=1)[1] * 5.0) + ag.sum(x[:, 2:] ** 3)

    def f_overlap(x):  # bands [0:3] and [2:5] overlap: assembled by the dense fallback
        return ag.sum(x[:, 0:3] ** 2) + ag.sum(x[:, 2:5] * 3.0) + ag.sum(x[1] * 2.0)  # and another axis

    ref = np.zeros_like(a)
    for i in range(5):
        if i != 2:
            ref[:, i] += w[:, i] * (i + 1)
    ref[:, 0] += 2 * a[:, 0]
    ref[:, 4] += 3.0
    ref[:, 1:3] += 5.0
    ref[:, 2:] += 3 * a[:, 2:] ** 2
    (g,) = ag.grad(f)(_t(backend, a))
    support.assert_close(g, ref, dtype=ag.float64)
    support.check_grad(backend, f_overlap, a)
    support.check_grad(backend, lambda x: ag.grad(f)(x)[0], a)  # second order through the assembly
    support.check_grad(backend, lambda x: ag.stack(ag.unstack(x, axis=2)[::-1], axis=0), a)


def test_concat_with_constant_operand(backend):
    const = _t(backend, np.ones((2, 2)))
    (g,) = ag.grad(
        lambda x: (ag.concat([const, x], axis=1) * _t(backend, np.arange(8.0).reshape(2, 4))).sum()
    )(_t(backend, np.zeros((2, 2))))
    support.assert_close(g, [[2.0, 3.0], [6.0, 7.0]], dtype=ag.float64)


# ---------------------------------------------------------------------- getitem
GETITEM_KEYS = [
    ("int", lambda t: t[1]),
    ("negative_int", lambda t: t[-1, 2]),
    ("slice", lambda t: t[1:3]),
    ("slice_step", lambda t: t[::2, 1::2]),
    ("negative_step", lambda t: t[::-1, ::-2]),
    ("slice_past_end", lambda t: t[2:10, -10:2]),
    ("ellipsis", lambda t: t[..., 1]),
    ("none", lambda t: t[None, 1:, None, 2]),
    ("int_array_repeats", lambda t: t[[0, 2, 0, 0]]),
    ("int_array_negative", lambda t: t[:, [-1, 0, -1]]),
    ("int_array_2d", lambda t: t[[[0, 1], [3, 3]]]),
    ("two_int_arrays", lambda t: t[[0, 1, 1], [2, 2, 0]]),
    ("array_and_slice", lambda t: t[[3, 0, 3], 1:]),
    ("bool_mask_rows", lambda t: t[np.array([True, False, True, True])]),
    ("bool_mask_full", lambda t: t[t > 0.5]),
    ("bool_mask_cols_after_slice", lambda t: t[1:, np.array([True, False, True])]),
]


@pytest.mark.parametrize("name,fn", GETITEM_KEYS, ids=[k[0] for k in GETITEM_KEYS])
def test_getitem_gradient(backend, name, fn):
    support.check_grad(backend, fn, _data((4, 3)))


def test_getitem_repeated_indices_accumulate(backend):
    x = _t(backend, np.zeros(4))
    (g,) = ag.grad(lambda t: t[_ints(backend, [1, 1, 3, 1, 0])].sum())(x)
    support.assert_close(g, [1.0, 3.0, 0.0, 1.0], dtype=ag.float64)
    (g,) = ag.grad(lambda t: (t[[2, 2]] * _t(backend, [3.0, 4.0])).sum())(x)
    support.assert_close(g, [0.0, 0.0, 7.0, 0.0], dtype=ag.float64)


def test_getitem_bool_mask_exact(backend):
    x = _t(backend, [[1.0, -2.0], [3.0, -4.0]])
    (g,) = ag.grad(lambda t: (t[t > 0] ** 2).sum())(x)
    support.assert_close(g, [[2.0, 0.0], [6.0, 0.0]], dtype=ag.float64)


def test_at_add_and_set_gradients(backend):
    """x.at[key].add(v) and .set(v): gradients flow to x (except overwritten places) and to v."""
    x, v = _data((4, 3)), _data((2, 3), 5)
    support.check_grad(backend, lambda t, u: t.at[[1, 3]].add(u), x, v)
    support.check_grad(backend, lambda t, u: t.at[[1, 3]].set(u), x, v)
    support.check_grad(backend, lambda t, u: t.at[1:, 0].add(u), x, _data((3,), 6))
    support.check_grad(backend, lambda t, u: t.at[[0, 0, 2]].add(u), x, _data((3, 3), 7))
    gx, gv = ag.grad(lambda t, u: t.at[1].set(u).sum())(_t(backend, x), _t(backend, v[0]))
    support.assert_close(gx, [[1, 1, 1], [0, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=ag.float64)
    support.assert_close(gv, [1.0, 1.0, 1.0], dtype=ag.float64)


# ---------------------------------------------------------------------- take, gather, scatter
def test_take_gradient(backend):
    idx = _ints(backend, [2, 0, 2, 2, 1])
    support.check_grad(backend, lambda t: ag.take(t, idx, axis=0), _data((3, 2)))
    support.check_grad(backend, lambda t: ag.take(t, idx, axis=1), _data((2, 3)))
    support.check_grad(
        backend, lambda t: ag.take(t, _ints(backend, [[1, 1], [0, -1]]), axis=1), _data((2, 3))
    )
    support.check_grad(backend, lambda t: ag.take(t, idx), _data((2, 3)))
    (g,) = ag.grad(lambda t: ag.take(t, idx, axis=0).sum())(_t(backend, np.zeros(3)))
    support.assert_close(g, [1.0, 1.0, 3.0], dtype=ag.float64)


def test_take_along_axis_gradient(backend):
    x = _data((2, 3))
    idx = _ints(backend, [[2, 2, 0, 1], [0, 0, 0, 1]])
    support.check_grad(backend, lambda t: ag.take_along_axis(t, idx, axis=1), x)
    support.check_grad(backend, lambda t: ag.take_along_axis(t, _ints(backend, [[1, 0, 1]]), axis=0), x)
    # indices broadcast against x on the other axes
    support.check_grad(backend, lambda t: ag.take_along_axis(t, _ints(backend, [[2], [0]]), axis=1), x)
    support.check_grad(backend, lambda t: ag.take_along_axis(t, _ints(backend, [[1, 0]]), axis=1), x)
    support.check_grad(backend, lambda t: ag.gather(t, _ints(backend, [[-1, 0]]), axis=-1), x)
    (g,) = ag.grad(lambda t: ag.take_along_axis(t, idx, axis=1).sum())(_t(backend, np.zeros((2, 3))))
    support.assert_close(g, [[1, 1, 2], [3, 1, 0]], dtype=ag.float64)


def test_scatter_add_gradient(backend):
    x, src = _data((3, 4)), _data((2, 4), 3)
    idx = _ints(backend, [[0, 2, 2, 1], [2, 2, 0, 0]])
    support.check_grad(backend, lambda t, s: ag.scatter_add(t, 0, idx, s), x, src)
    idx1 = _ints(backend, [[3, 3], [0, 1], [2, 3]])
    support.check_grad(backend, lambda t, s: ag.scatter_add(t, 1, idx1, s), x, _data((3, 2), 4))
    gx, gs = ag.grad(
        lambda t, s: (ag.scatter_add(t, 1, idx1, s) * _t(backend, np.arange(12.0).reshape(3, 4))).sum()
    )(_t(backend, x), _t(backend, _data((3, 2), 4)))
    support.assert_close(gx, np.arange(12.0).reshape(3, 4), dtype=ag.float64)
    support.assert_close(gs, [[3, 3], [4, 5], [10, 11]], dtype=ag.float64)


# ---------------------------------------------------------------------- sort and topk
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_values_gradient(backend, axis, descending):
    support.check_grad(backend, lambda t: ag.sort(t, axis=axis, descending=descending), _data((3, 4)))


def test_sort_gradient_exact(backend):
    x = _t(backend, [3.0, 1.0, 2.0])
    (g,) = ag.grad(lambda t: (ag.sort(t) * _t(backend, [10.0, 20.0, 30.0])).sum())(x)
    support.assert_close(g, [30.0, 10.0, 20.0], dtype=ag.float64)


@pytest.mark.parametrize("largest", [True, False], ids=["largest", "smallest"])
@pytest.mark.parametrize("axis", [0, -1])
def test_topk_values_gradient(backend, axis, largest):
    support.check_grad(backend, lambda t: ag.topk(t, 2, axis=axis, largest=largest)[0], _data((3, 4)))


def test_topk_gradient_exact_and_indices_are_integers(backend):
    x = _t(backend, [0.5, 3.0, -1.0, 2.0])
    (g,) = ag.grad(lambda t: (ag.topk(t, 2)[0] * _t(backend, [10.0, 1.0])).sum())(x)
    support.assert_close(g, [0.0, 10.0, 0.0, 1.0], dtype=ag.float64)
    _, idx = ag.topk(x, 2)
    assert idx.dtype == ag.int64 and not idx.requires_grad


def test_meshgrid_gradient(backend):
    support.check_grad(
        backend, lambda a, b: ag.meshgrid(a, b)[0] * ag.meshgrid(a, b)[1], _data((3,)), _data((2,), 1)
    )
    support.check_grad(
        backend,
        lambda a, b: ag.meshgrid(a, b, indexing="ij")[0] + 2.0 * ag.meshgrid(a, b, indexing="ij")[1],
        _data((3,)),
        _data((2,), 1),
    )
