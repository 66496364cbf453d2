"""ONNX converters: shapes, indexing, scatter, padding, sorting and resizing.

Index arithmetic (which element goes where) is computed on the host from shapes and from index
inputs read with `ctx.host`; the data itself only ever moves through agnostic's differentiable ops
(getitem, take, take_along_axis, `.at[]`, pad, concat, reshape), so gradients reach every element
that an output reads. `Shape` and `Size` answer on the host, which keeps shape arithmetic exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import agnostic as ag
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, normalize_axes, normalize_axis
from agnostic.tensor import Tensor


def _index(value: Any) -> Any:
    """An index input as ag.take accepts it: a Tensor stays on the device, a host array as int64."""
    return value if isinstance(value, Tensor) else np.asarray(value, dtype=np.int64)


# ---------------------------------------------------------------------- shape queries
@converter("Shape", since=1)
def _shape_1(node: Node) -> Run:
    return lambda ctx, x: np.asarray(x.shape, dtype=np.int64)


@converter("Shape", since=15)
def _shape_15(node: Node) -> Run:
    start, end = node.attr("start", 0), node.attr("end", None)

    def run(ctx: Context, x: Any) -> np.ndarray:
        return np.asarray(tuple(x.shape)[slice(start, end)], dtype=np.int64)

    return run


@converter("Size", since=1)
def _size(node: Node) -> Run:
    return lambda ctx, x: np.asarray(math.prod(x.shape), dtype=np.int64)


# ---------------------------------------------------------------------- reshaping
def _reshape_target(node: Node, shape: tuple[int, ...], target: list[int], allowzero: bool) -> list[int]:
    if allowzero and 0 in target and -1 in target:
        raise ValueError(f"{node.describe()}: shape {target} has both 0 and -1 with allowzero=1")
    if allowzero:
        return target
    out = []
    for i, s in enumerate(target):
        if s == 0:
            if i >= len(shape):
                raise ValueError(
                    f"{node.describe()}: shape {target} copies dim {i} of a rank-{len(shape)} input"
                )
            s = shape[i]
        out.append(s)
    return out


@converter("Reshape", since=5)
def _reshape(node: Node) -> Run:
    allowzero = bool(node.attr("allowzero", 0)) if node.version >= 14 else False

    def run(ctx: Context, x: Any, shape: Any) -> Tensor:
        x = ctx.tensor(x)
        target = _reshape_target(node, x.shape, ctx.host_ints(shape, "shape"), allowzero)
        return ag.reshape(x, target)

    return run


def _flatten_axis(node: Node, allow_negative: bool) -> int:
    axis = node.attr("axis", 1)
    if axis < 0 and not allow_negative:
        raise Unsupported(f"negative axis {axis} needs opset 11")
    return axis


def _flatten(node: Node, allow_negative: bool) -> Run:
    axis = _flatten_axis(node, allow_negative)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"{node.describe()}: axis {axis} is out of range for shape {x.shape}")
        return ag.reshape(x, (math.prod(x.shape[:a]), math.prod(x.shape[a:])))

    return run


@converter("Flatten", since=1)
def _flatten_1(node: Node) -> Run:
    return _flatten(node, allow_negative=False)


@converter("Flatten", since=11)
def _flatten_11(node: Node) -> Run:
    return _flatten(node, allow_negative=True)


def _squeeze(node: Node, axes: list[int] | None) -> Run:
    def run(ctx: Context, x: Any, axes_in: Any = None) -> Tensor:
        x = ctx.tensor(x)
        ax = axes if axes is not None else (ctx.host_ints(axes_in, "axes") if axes_in is not None else None)
        if ax is None:
            ax = [i for i, s in enumerate(x.shape) if s == 1]
        ax = normalize_axes(ax, x.ndim, node)
        bad = [a for a in ax if x.shape[a] != 1]
        if bad:
            raise ValueError(f"{node.describe()}: axes {bad} of shape {x.shape} are not of length 1")
        return ag.reshape(x, [s for i, s in enumerate(x.shape) if i not in ax])

    return run


@converter("Squeeze", since=1)
def _squeeze_1(node: Node) -> Run:
    return _squeeze(node, node.attr("axes", None))


@converter("Squeeze", since=13)
def _squeeze_13(node: Node) -> Run:
    return _squeeze(node, None)


def _unsqueeze(node: Node, axes: list[int] | None) -> Run:
    def run(ctx: Context, x: Any, axes_in: Any = None) -> Tensor:
        x = ctx.tensor(x)
        ax = axes if axes is not None else ctx.host_ints(axes_in, "axes")
        rank = x.ndim + len(ax)
        ax = normalize_axes(ax, rank, node)
        if len(set(ax)) != len(ax):
            raise ValueError(f"{node.describe()}: axes {ax} repeat")
        dims = iter(x.shape)
        return ag.reshape(x, [1 if i in ax else next(dims) for i in range(rank)])

    return run


@converter("Unsqueeze", since=1)
def _unsqueeze_1(node: Node) -> Run:
    return _unsqueeze(node, node.attr("axes"))


@converter("Unsqueeze", since=13)
def _unsqueeze_13(node: Node) -> Run:
    return _unsqueeze(node, None)


@converter("Transpose", since=1)
def _transpose(node: Node) -> Run:
    perm = node.attr("perm", None)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return ag.permute_dims(x, perm if perm is not None else list(range(x.ndim))[::-1])

    return run


@converter("Concat", since=4)
def _concat(node: Node) -> Run:
    axis = node.attr("axis")

    def run(ctx: Context, *xs: Any) -> Tensor:
        ts = [ctx.tensor(x) for x in xs]
        return ag.concat(ts, axis=normalize_axis(axis, ts[0].ndim, node))

    return run


def _split(node: Node, split_attr: list[int] | None, num_outputs: int | None) -> Run:
    axis = node.attr("axis", 0)
    n_out = len(node.outputs)

    def run(ctx: Context, x: Any, split_in: Any = None) -> tuple[Tensor, ...]:
        x = ctx.tensor(x)
        ax = normalize_axis(axis, x.ndim, node)
        n = x.shape[ax]
        if split_attr is not None or split_in is not None:
            sizes = split_attr if split_attr is not None else ctx.host_ints(split_in, "split")
            if sum(sizes) != n or len(sizes) != n_out:
                raise ValueError(
                    f"{node.describe()}: split {sizes} does not give {n_out} parts of axis {ax} (length {n})"
                )
        elif num_outputs is not None:
            chunk = -(-n // num_outputs)
            sizes = [min(chunk, max(n - i * chunk, 0)) for i in range(num_outputs)]
        else:
            if n % n_out:
                raise ValueError(
                    f"{node.describe()}: axis {ax} of length {n} does not split into {n_out} equal parts"
                )
            sizes = [n // n_out] * n_out
        bounds = np.cumsum([0, *sizes]).tolist()
        head = (slice(None),) * ax
        return tuple(x[head + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:]))

    return run


@converter("Split", since=2)
def _split_2(node: Node) -> Run:
    if node.attr("axis", 0) < 0 and node.version < 11:
        raise Unsupported("a negative axis needs opset 11")
    return _split(node, node.attr("split", None), None)


@converter("Split", since=13)
def _split_13(node: Node) -> Run:
    return _split(node, None, None)


@converter("Split", since=18)
def _split_18(node: Node) -> Run:
    num_outputs = node.attr("num_outputs", None)
    if num_outputs is not None and node.input_given(1):
        raise Unsupported("both the split input and num_outputs are given; ONNX allows one")
    if num_outputs is not None and num_outputs != len(node.outputs):
        raise Unsupported(f"num_outputs={num_outputs} but the node has {len(node.outputs)} outputs")
    return _split(node, None, num_outputs)


# ---------------------------------------------------------------------- slicing
def _slice_key(node: Node, shape: tuple[int, ...], starts: list[int], ends: list[int],
               axes: list[int] | None, steps: list[int] | None) -> tuple[slice, ...]:  # fmt: skip
    """ONNX's clamping: starts and ends count from the end when negative, then clamp to
    [0, dim] (or [0, dim - 1] and [-1, dim - 1] for a negative step)."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(
            f"{node.describe()}: starts {starts}, ends {ends}, axes {axes}, steps {steps} differ in length"
        )
    key = [slice(None)] * rank
    for s, e, a, st in zip(starts, ends, normalize_axes(axes, rank, node), steps):
        if st == 0:
            raise ValueError(f"{node.describe()}: step 0 on axis {a}")
        n = shape[a]
        s, e = s + n if s < 0 else s, e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:
            s, e = min(max(s, 0), n - 1), min(max(e, -1), n - 1)
        key[a] = slice(s, e if e >= 0 else None, st)
    return tuple(key)


@converter("Slice", since=1)
def _slice_1(node: Node) -> Run:
    starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes", None)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        return x[_slice_key(node, x.shape, starts, ends, axes, None)]

    return run


@converter("Slice", since=10)
def _slice_10(node: Node) -> Run:
    def run(ctx: Context, x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Tensor:
        x = ctx.tensor(x)
        key = _slice_key(
            node, x.shape, ctx.host_ints(starts, "starts"), ctx.host_ints(ends, "ends"),
            None if axes is None else ctx.host_ints(axes, "axes"),
            None if steps is None else ctx.host_ints(steps, "steps"),
        )  # fmt: skip
        return x[key]

    return run


# ---------------------------------------------------------------------- gathering
@converter("Gather", since=1)
def _gather(node: Node) -> Run:
    axis = node.attr("axis", 0)

    def run(ctx: Context, x: Any, indices: Any) -> Tensor:
        x = ctx.tensor(x)
        return ag.take(x, _index(indices), axis=normalize_axis(axis, x.ndim, node))

    return run


@converter("GatherElements", since=11)
def _gather_elements(node: Node) -> Run:
    axis = node.attr("axis", 0)

    def run(ctx: Context, x: Any, indices: Any) -> Tensor:
        x, idx = ctx.tensor(x), ctx.tensor(indices)
        ax = normalize_axis(axis, x.ndim, node)
        if idx.ndim != x.ndim:
            raise ValueError(f"{node.describe()}: indices {idx.shape} and data {x.shape} differ in rank")
        # indices may be shorter than the data on the other axes: only that corner is read
        corner = tuple(slice(None) if i == ax else slice(0, n) for i, n in enumerate(idx.shape))
        return ag.take_along_axis(x[corner], idx, axis=ax)

    return run


def _wrap(idx: np.ndarray, dims: Sequence[int], node: Node) -> np.ndarray:
    """Index tuples (last axis) into `dims`, negative counting from the end, bounds-checked."""
    dims_ = np.asarray(dims, dtype=np.int64)
    if ((idx < -dims_) | (idx >= dims_)).any():
        raise IndexError(f"{node.describe()}: indices out of range for dimensions {tuple(dims)}")
    return np.where(idx < 0, idx + dims_, idx)


def _flat_rows(idx: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """Row numbers of index tuples (last axis of `idx`) in a C-ordered block of shape `dims`."""
    strides = np.cumprod([1, *list(dims)[::-1]])[:-1][::-1].astype(np.int64)
    return (idx * strides).sum(axis=-1) if len(dims) else np.zeros(idx.shape[:-1], dtype=np.int64)


@converter("GatherND", since=11)
def _gather_nd(node: Node) -> Run:
    batch_dims = node.attr("batch_dims", 0) if node.version >= 12 else 0

    def run(ctx: Context, x: Any, indices: Any) -> Tensor:
        x = ctx.tensor(x)
        idx = np.asarray(ctx.host(indices, "indices"), dtype=np.int64)
        b, k = batch_dims, idx.shape[-1]
        if idx.shape[:b] != x.shape[:b] or b + k > x.ndim:
            raise ValueError(
                f"{node.describe()}: indices {idx.shape} do not fit data {x.shape} (batch_dims={b})"
            )
        block = x.shape[b : b + k]
        rows = _flat_rows(_wrap(idx, block, node), block)  # shape idx.shape[:-1]
        batch = math.prod(x.shape[:b])
        rows = rows.reshape(batch, -1) + (np.arange(batch, dtype=np.int64) * math.prod(block))[:, None]
        table = ag.reshape(x, (batch * math.prod(block), *x.shape[b + k :]))
        out = ag.take(table, rows.reshape(-1), axis=0)
        return ag.reshape(out, (*idx.shape[:-1], *x.shape[b + k :]))

    return run


# ---------------------------------------------------------------------- scattering
def _scatter_rows(table: Tensor, rows: np.ndarray, updates: Tensor, reduction: str) -> Tensor:
    """`table` (M, ...) with `updates` (N, ...) written to `rows` (N,): 'none' (the last of
    repeated rows wins, as ONNX's reference), 'add', 'mul', 'max' or 'min' (applied in order)."""
    if rows.size == 0:
        return table
    if reduction == "add":
        return table.at[rows].add(updates)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    occurrence = np.empty_like(rows)
    occurrence[order] = np.arange(rows.size) - np.repeat(first, np.diff(np.r_[first, rows.size]))
    for r in range(int(occurrence.max()) + 1):
        pick = np.flatnonzero(occurrence == r)
        where, value = rows[pick], ag.take(updates, pick, axis=0)
        if reduction != "none":
            current = ag.take(table, where, axis=0)
            value = {"mul": ag.multiply, "max": ag.maximum, "min": ag.minimum}[reduction](current, value)
        table = table.at[where].set(value)
    return table


def _reduction(node: Node, allowed: tuple[str, ...]) -> str:
    reduction = node.attr("reduction", "none") if len(allowed) > 1 else "none"
    if reduction not in allowed:
        raise Unsupported(f"reduction={reduction!r}; opset {node.version} allows {', '.join(allowed)}")
    return reduction


def _scatter_elements(node: Node, allowed: tuple[str, ...]) -> Run:
    axis = node.attr("axis", 0)
    reduction = _reduction(node, allowed)

    def run(ctx: Context, x: Any, indices: Any, updates: Any) -> Tensor:
        x, upd = ctx.tensor(x), ctx.tensor(updates)
        idx = np.asarray(ctx.host(indices, "indices"), dtype=np.int64)
        ax = normalize_axis(axis, x.ndim, node)
        if idx.shape != upd.shape or idx.ndim != x.ndim:
            raise ValueError(
                f"{node.describe()}: indices {idx.shape}, updates {upd.shape} and data {x.shape} do not match"
            )
        n = x.shape[ax]
        if ((idx < -n) | (idx >= n)).any():
            raise IndexError(f"{node.describe()}: indices out of range for axis {ax} of length {n}")
        full = list(np.indices(idx.shape, sparse=True))
        full[ax] = np.where(idx < 0, idx + n, idx)
        rows = np.ravel_multi_index(tuple(np.broadcast_arrays(*full)), x.shape).reshape(-1)
        flat = _scatter_rows(
            ag.reshape(x, (x.size,)), rows, ag.reshape(upd.astype(x.dtype), (-1,)), reduction
        )
        return ag.reshape(flat, x.shape)

    return run


@converter("Scatter", since=9)
def _scatter(node: Node) -> Run:
    return _scatter_elements(node, ("none",))


@converter("ScatterElements", since=11)
def _scatter_elements_11(node: Node) -> Run:
    return _scatter_elements(node, ("none",))


@converter("ScatterElements", since=16)
def _scatter_elements_16(node: Node) -> Run:
    return _scatter_elements(node, ("none", "add", "mul"))


@converter("ScatterElements", since=18)
def _scatter_elements_18(node: Node) -> Run:
    return _scatter_elements(node, ("none", "add", "mul", "max", "min"))


def _scatter_nd(node: Node, allowed: tuple[str, ...]) -> Run:
    reduction = _reduction(node, allowed)

    def run(ctx: Context, x: Any, indices: Any, updates: Any) -> Tensor:
        x, upd = ctx.tensor(x), ctx.tensor(updates)
        idx = np.asarray(ctx.host(indices, "indices"), dtype=np.int64)
        k = idx.shape[-1]
        if k > x.ndim or upd.shape != idx.shape[:-1] + x.shape[k:]:
            raise ValueError(
                f"{node.describe()}: updates {upd.shape} must be indices.shape[:-1] + data.shape[k:] = "
                f"{idx.shape[:-1] + x.shape[k:]} (indices {idx.shape}, data {x.shape})"
            )
        block, tail = x.shape[:k], x.shape[k:]
        rows = _flat_rows(_wrap(idx, block, node), block).reshape(-1)
        table = ag.reshape(x, (math.prod(block), *tail))
        out = _scatter_rows(table, rows, ag.reshape(upd.astype(x.dtype), (rows.size, *tail)), reduction)
        return ag.reshape(out, x.shape)

    return run


@converter("ScatterND", since=11)
def _scatter_nd_11(node: Node) -> Run:
    return _scatter_nd(node, ("none",))


@converter("ScatterND", since=16)
def _scatter_nd_16(node: Node) -> Run:
    return _scatter_nd(node, ("none", "add", "mul"))


@converter("ScatterND", since=18)
def _scatter_nd_18(node: Node) -> Run:
    return _scatter_nd(node, ("none", "add", "mul", "max", "min"))


# ---------------------------------------------------------------------- broadcasting and padding
@converter("Expand", since=8)
def _expand(node: Node) -> Run:
    def run(ctx: Context, x: Any, shape: Any) -> Tensor:
        x = ctx.tensor(x)
        target = ctx.host_ints(shape, "shape")
        try:
            out = np.broadcast_shapes(x.shape, tuple(target))
        except ValueError:
            raise ValueError(f"{node.describe()}: shape {x.shape} does not broadcast to {target}") from None
        return ag.broadcast_to(x, out)

    return run


@converter("Tile", since=6)
def _tile(node: Node) -> Run:
    def run(ctx: Context, x: Any, repeats: Any) -> Tensor:
        x = ctx.tensor(x)
        reps = ctx.host_ints(repeats, "repeats")
        if len(reps) != x.ndim:
            raise ValueError(f"{node.describe()}: repeats {reps} need one entry per axis of shape {x.shape}")
        return ag.tile(x, reps)

    return run


def _pad_indices(mode: str, n: int, lo: int, hi: int) -> np.ndarray:
    """Source positions of a padded axis in 'reflect', 'edge' or 'wrap' mode."""
    pos = np.arange(-lo, n + hi)
    if mode == "edge":
        return np.clip(pos, 0, n - 1)
    if mode == "wrap":
        return pos % n
    period = 2 * (n - 1)
    pos = np.abs(pos) % period if period else np.zeros_like(pos)
    return np.where(pos >= n, period - pos, pos)


def _pad(node: Node, x: Tensor, pads: list[int], axes: list[int] | None, mode: str, value: Any) -> Tensor:
    rank = x.ndim
    axes = list(range(rank)) if axes is None else list(normalize_axes(axes, rank, node))
    if len(pads) != 2 * len(axes):
        raise ValueError(f"{node.describe()}: pads {pads} need two entries for each of the axes {axes}")
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[len(axes) + i])
    # negative pads crop
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, x.shape))
    x = x[crop]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        if x.dtype.kind in "iub":
            value = bool(value) if x.dtype.kind == "b" else int(value)
        return ag.pad(x, widths, mode="constant", value=value)
    for a, ((lo, hi), n) in enumerate(zip(widths, x.shape)):
        if lo or hi:
            if n == 0 or (mode == "reflect" and n == 1):
                raise ValueError(f"{node.describe()}: mode {mode!r} cannot pad axis {a} of length {n}")
            x = ag.take(x, _pad_indices(mode, n, lo, hi), axis=a)
    return x


_PAD_MODES = ("constant", "reflect", "edge")


def _pad_mode(node: Node, modes: tuple[str, ...]) -> str:
    mode = node.attr("mode", "constant")
    if mode not in modes:
        raise Unsupported(f"mode={mode!r}; opset {node.version} allows {', '.join(modes)}")
    return mode


@converter("Pad", since=2)
def _pad_2(node: Node) -> Run:
    mode, pads, value = _pad_mode(node, _PAD_MODES), node.attr("pads"), node.attr("value", 0.0)
    return lambda ctx, x: _pad(node, ctx.tensor(x), pads, None, mode, value)


def _pad_inputs(node: Node, modes: tuple[str, ...]) -> Run:
    mode = _pad_mode(node, modes)

    def run(ctx: Context, x: Any, pads: Any, value: Any = None, axes: Any = None) -> Tensor:
        v = 0 if value is None else ctx.host(value, "constant_value").reshape(-1)
        v = v.item() if isinstance(v, np.ndarray) and v.size else 0
        axes_ = None if axes is None else ctx.host_ints(axes, "axes")
        return _pad(node, ctx.tensor(x), ctx.host_ints(pads, "pads"), axes_, mode, v)

    return run


@converter("Pad", since=11, host_inputs=(1, 2, 3))
def _pad_11(node: Node) -> Run:
    return _pad_inputs(node, _PAD_MODES)


@converter("Pad", since=19, host_inputs=(1, 2, 3))
def _pad_19(node: Node) -> Run:
    return _pad_inputs(node, (*_PAD_MODES, "wrap"))


@converter("CenterCropPad", since=18)
def _center_crop_pad(node: Node) -> Run:
    axes = node.attr("axes", None)

    def run(ctx: Context, x: Any, shape: Any) -> Tensor:
        x = ctx.tensor(x)
        target = ctx.host_ints(shape, "shape")
        ax = list(range(x.ndim)) if axes is None else list(normalize_axes(axes, x.ndim, node))
        if len(target) != len(ax):
            raise ValueError(f"{node.describe()}: shape {target} needs one entry per axis {ax}")
        key, widths = [slice(None)] * x.ndim, [(0, 0)] * x.ndim
        for a, t in zip(ax, target):
            n = x.shape[a]
            if t < n:
                key[a] = slice((n - t) // 2, (n - t) // 2 + t)
            elif t > n:
                widths[a] = ((t - n) // 2, t - n - (t - n) // 2)
        return ag.pad(x[tuple(key)], widths)

    return run


@converter("Trilu", since=14)
def _trilu(node: Node) -> Run:
    upper = bool(node.attr("upper", 1))

    def run(ctx: Context, x: Any, k: Any = None) -> Tensor:
        kk = 0 if k is None else ctx.host_ints(k, "k")[0]
        x = ctx.tensor(x)
        return ag.triu(x, k=kk) if upper else ag.tril(x, k=kk)

    return run


# ---------------------------------------------------------------------- sorting and selecting
def _topk(node: Node, k_attr: int | None, largest: bool) -> Run:
    axis = node.attr("axis", -1)

    def run(ctx: Context, x: Any, k: Any = None) -> tuple[Tensor, Tensor]:
        x = ctx.tensor(x)
        kk = k_attr if k_attr is not None else ctx.host_ints(k, "k")[0]
        return ag.topk(x, kk, axis=normalize_axis(axis, x.ndim, node), largest=largest)

    return run


@converter("TopK", since=1)
def _topk_1(node: Node) -> Run:
    return _topk(node, node.attr("k"), True)


@converter("TopK", since=10)
def _topk_10(node: Node) -> Run:
    return _topk(node, None, True)


@converter("TopK", since=11)
def _topk_11(node: Node) -> Run:
    node.attr("sorted", 1)  # unsorted output may be in any order: sorted is one such order
    return _topk(node, None, bool(node.attr("largest", 1)))


@converter("NonZero", since=9)
def _nonzero(node: Node) -> Run:
    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        if x.ndim == 0:  # as ONNX's reference and onnxruntime: a scalar is read as shape (1,)
            x = ag.reshape(x, (1,))
        return ag.stack(ag.nonzero(x))

    return run


@converter("Unique", since=11)
def _unique(node: Node) -> Run:
    axis, is_sorted = node.attr("axis", None), bool(node.attr("sorted", 1))

    def run(ctx: Context, x: Any) -> tuple[Any, ...]:
        x = ctx.tensor(x)
        host = ctx.host(x, "input")
        ax = None if axis is None else normalize_axis(axis, x.ndim, node)
        _, first, inverse, counts = np.unique(host, True, True, True, axis=ax)
        inverse = inverse.reshape(-1)
        if not is_sorted:  # order of first occurrence
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        y = ag.take(x, first, axis=ax)
        return (y, *(np.asarray(v, dtype=np.int64) for v in (first, inverse, counts)))[: len(node.outputs)]

    return run


@converter("Compress", since=9)
def _compress(node: Node) -> Run:
    axis = node.attr("axis", None)

    def run(ctx: Context, x: Any, condition: Any) -> Tensor:
        x = ctx.tensor(x)
        cond = np.asarray(ctx.host(condition, "condition")).reshape(-1).astype(bool)
        ax = None if axis is None else normalize_axis(axis, x.ndim, node)
        n = x.size if ax is None else x.shape[ax]
        if cond.size > n:
            raise ValueError(
                f"{node.describe()}: condition of length {cond.size} is longer than the axis ({n})"
            )
        return ag.take(x, np.flatnonzero(cond), axis=ax)

    return run


@converter("ReverseSequence", since=10)
def _reverse_sequence(node: Node) -> Run:
    batch_axis, time_axis = node.attr("batch_axis", 1), node.attr("time_axis", 0)

    def run(ctx: Context, x: Any, lens: Any) -> Tensor:
        x = ctx.tensor(x)
        lengths = np.asarray(ctx.host(lens, "sequence_lens"), dtype=np.int64).reshape(-1)
        b, t = x.shape[batch_axis], x.shape[time_axis]
        if lengths.size != b or (lengths > t).any() or (lengths < 0).any():
            raise ValueError(
                f"{node.describe()}: sequence_lens {lengths.tolist()} do not fit shape {x.shape}"
            )
        steps = np.arange(t)[None, :]
        src = np.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (batch, time)
        if batch_axis > time_axis:
            src = src.T
        shape = [1] * x.ndim
        shape[batch_axis], shape[time_axis] = b, t
        idx = np.broadcast_to(src.reshape(shape), x.shape)
        return ag.take_along_axis(x, ctx.tensor(np.ascontiguousarray(idx)), axis=time_axis)

    return run


# ---------------------------------------------------------------------- blocks
@converter("DepthToSpace", since=1)
def _depth_to_space(node: Node) -> Run:
    b = node.attr("blocksize")
    mode = node.attr("mode", "DCR") if node.version >= 11 else "DCR"
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"mode={mode!r} (ONNX has DCR and CRD)")

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        n, c, h, w = x.shape
        if c % (b * b):
            raise ValueError(f"{node.describe()}: {c} channels do not divide into blocks of {b}x{b}")
        if mode == "DCR":
            y = ag.permute_dims(ag.reshape(x, (n, b, b, c // (b * b), h, w)), (0, 3, 4, 1, 5, 2))
        else:
            y = ag.permute_dims(ag.reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
        return ag.reshape(y, (n, c // (b * b), h * b, w * b))

    return run


def _space_to_depth(node: Node, mode: str) -> Run:
    b = node.attr("blocksize")
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"mode={mode!r} (ONNX has DCR and CRD)")
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        n, c, h, w = x.shape
        if h % b or w % b:
            raise ValueError(f"{node.describe()}: spatial shape {(h, w)} is not a multiple of blocksize {b}")
        y = ag.permute_dims(ag.reshape(x, (n, c, h // b, b, w // b, b)), perm)
        return ag.reshape(y, (n, c * b * b, h // b, w // b))

    return run


@converter("SpaceToDepth", since=1)
def _space_to_depth_1(node: Node) -> Run:
    return _space_to_depth(node, "DCR")


@converter("SpaceToDepth", since=28)
def _space_to_depth_28(node: Node) -> Run:
    return _space_to_depth(node, node.attr("mode", "DCR"))


@converter("Col2Im", since=18)
def _col2im(node: Node) -> Run:
    dilations, pads, strides = (
        node.attr("dilations", None),
        node.attr("pads", None),
        node.attr("strides", None),
    )

    def run(ctx: Context, x: Any, image_shape: Any, block_shape: Any) -> Tensor:
        x = ctx.tensor(x)
        image, block = ctx.host_ints(image_shape, "image_shape"), ctx.host_ints(block_shape, "block_shape")
        d = len(image)
        dil, st = dilations or [1] * d, strides or [1] * d
        pd = pads or [0] * (2 * d)
        padded = [image[i] + pd[i] + pd[d + i] for i in range(d)]
        cols = [(padded[i] - dil[i] * (block[i] - 1) - 1) // st[i] + 1 for i in range(d)]
        k = math.prod(block)
        n, ck, length = x.shape
        if ck % k or length != math.prod(cols):
            raise ValueError(
                f"{node.describe()}: input {x.shape} does not match blocks {block} over image {image} "
                f"({math.prod(cols)} block positions)"
            )
        # for each (kernel offset, block position): its flat position in the padded image
        offsets = np.stack(np.meshgrid(*[np.arange(b) for b in block], indexing="ij"), -1).reshape(k, 1, d)
        starts = np.stack(np.meshgrid(*[np.arange(c) for c in cols], indexing="ij"), -1).reshape(1, -1, d)
        where = starts * np.asarray(st) + offsets * np.asarray(dil)
        pos = _flat_rows(where, padded).reshape(-1)
        vals = ag.reshape(x, (n, ck // k, k * length))
        canvas = ag.zeros((n, ck // k, math.prod(padded)), dtype=x.dtype, device=x.device)
        canvas = canvas.at[:, :, pos].add(vals)
        canvas = ag.reshape(canvas, (n, ck // k, *padded))
        return canvas[(slice(None), slice(None), *(slice(pd[i], pd[i] + image[i]) for i in range(d)))]

    return run


# ---------------------------------------------------------------------- resizing
_COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _source_coords(ctm: str, n_in: int, n_out: int, scale: float, roi: tuple[float, float] | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Each output position's coordinate in the input, and (tf_crop_and_resize) which fall outside."""
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in
    if ctm == "align_corners":
        return (np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)), None
    if ctm == "asymmetric":
        return y / scale, None
    if ctm == "pytorch_half_pixel":
        return (np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5), None
    if ctm == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if ctm == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        return offset + (y + 0.5) / scale - 0.5, None
    lo, hi = roi if roi is not None else (0.0, 1.0)
    x = np.full(n_out, (hi - lo) * (n_in - 1) / 2) if width == 1 else y * (hi - lo) * (n_in - 1) / (width - 1)
    x = x + lo * (n_in - 1)
    return x, (x < 0) | (x > n_in - 1)


def _coefficients(mode: str, ratio: np.ndarray, scale: float, nearest: str, a: float, antialias: bool
                  ) -> np.ndarray:  # fmt: skip
    """ONNX's interpolation weights (rows) for the fractional positions `ratio` in (0, 1]."""
    r = ratio[:, None]
    if mode == "nearest":
        whole = r == 1
        if nearest == "round_prefer_floor":
            right = r > 0.5
        elif nearest == "round_prefer_ceil":
            right = r >= 0.5
        else:
            right = np.full_like(whole, nearest == "ceil")
        right = whole | right
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    if mode == "linear" and not antialias:
        return np.concatenate([1 - r, r], axis=1)
    if mode == "linear":
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        args = (np.arange(start, 2 - start)[None, :] - r) * s
        w = np.clip(1 - np.abs(args), 0, 1)
        return w / w.sum(axis=1, keepdims=True)

    def cubic(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    if not antialias:
        return cubic(np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1))
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    w = cubic(s * (np.arange(start, 2 - start)[None, :] - r))
    return w / w.sum(axis=1, keepdims=True)


def _taps(n_in: int, n_out: int, scale: float, opts: dict[str, Any], roi: tuple[float, float] | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """Per output position along one axis: input indices (n_out, k), weights (n_out, k), and the
    positions to fill with extrapolation_value (or None), as ONNX's reference computes them."""
    x, outside = _source_coords(opts["ctm"], n_in, n_out, scale, roi)
    floor = np.floor(x)
    ratio = np.where(x == floor, 1.0, x - floor)
    nearest = opts["nearest"]
    if nearest == "simple":  # Resize-10 and Upsample: truncate when enlarging, ceil when shrinking
        nearest = "ceil" if scale < 1 else "floor"
    w = _coefficients(opts["mode"], ratio, scale, nearest, opts["cubic_a"], opts["antialias"])
    k = w.shape[1]
    pad = -(-k // 2)
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    if k % 2 == 0:
        shift = np.where(xp - p == 0, -(k // 2), -(k // 2) + 1)
    else:
        shift = np.where(xp - p <= 0.5, -((k - 1) // 2), -((k - 1) // 2) + 1)
    idx = (p + shift)[:, None] + np.arange(k)[None, :] - pad
    if opts["exclude_outside"]:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, n_in - 1), w, outside


def _resize_axis(x: Tensor, axis: int, n_out: int, scale: float, opts: dict[str, Any],
                 roi: tuple[float, float] | None) -> Tensor:  # fmt: skip
    n_in = x.shape[axis]
    idx, w, outside = _taps(n_in, n_out, scale, opts, roi)
    if opts["mode"] == "nearest":
        y = ag.take(x, idx[np.arange(n_out), w.argmax(axis=1)], axis=axis)
    else:
        k = w.shape[1]
        picked = ag.take(x, idx.reshape(-1), axis=axis)
        picked = ag.reshape(picked, (*x.shape[:axis], n_out, k, *x.shape[axis + 1 :]))
        weights = ag.asarray(
            w.reshape((n_out, k) + (1,) * (x.ndim - axis - 1)), dtype=x.dtype, device=x.device
        )
        y = ag.sum(picked * weights, axis=axis + 1)
    if outside is not None and outside.any():
        mask = ag.asarray(outside.reshape((n_out,) + (1,) * (x.ndim - axis - 1)), device=x.device)
        y = ag.where(mask, ag.asarray(opts["extrapolation"], dtype=x.dtype, device=x.device), y)
    return y


def _resize(node: Node, x: Tensor, scales: np.ndarray | None, sizes: list[int] | None, roi: np.ndarray | None,
            axes: list[int] | None, policy: str, opts: dict[str, Any]) -> Tensor:  # fmt: skip
    rank = x.ndim
    ax = list(range(rank)) if axes is None else sorted(normalize_axes(axes, rank, node))
    order = list(range(rank)) if axes is None else list(normalize_axes(axes, rank, node))
    given = sizes if sizes is not None else scales
    if given is None or len(given) != len(order):
        raise ValueError(
            f"{node.describe()}: give scales or sizes with one entry per resized axis ({len(order)}) for "
            f"input {x.shape}"
        )
    by_axis = dict(zip(order, given))
    if sizes is not None:
        factor = {a: by_axis[a] / x.shape[a] for a in ax}
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(factor.values())
            factor = dict.fromkeys(ax, s)
            by_axis = {a: int(s * x.shape[a] + 0.5) for a in ax}
        out = by_axis
    else:
        factor = {a: float(by_axis[a]) for a in ax}
        out = {a: math.floor(factor[a] * x.shape[a]) for a in ax}
    if any(f <= 0 for f in factor.values()):
        raise ValueError(f"{node.describe()}: scales must be positive, got {factor}")
    roi_by_axis: dict[int, tuple[float, float]] = {}
    if roi is not None and roi.size:
        k = len(order)
        roi_by_axis = {a: (float(roi[i]), float(roi[k + i])) for i, a in enumerate(order)}
    if x.dtype.kind in "iub" and opts["mode"] != "nearest":
        raise ValueError(
            f"{node.describe()}: mode {opts['mode']!r} on {x.dtype.name} input; cast to float first"
        )
    for a in ax:
        r = roi_by_axis.get(a)
        identity = math.isclose(factor[a], 1.0) and out[a] == x.shape[a]
        if identity and (r is None or (math.isclose(r[0], 0.0) and math.isclose(r[1], 1.0))):
            continue
        if x.shape[a] == 0:
            raise ValueError(f"{node.describe()}: cannot resize the empty axis {a} of shape {x.shape}")
        x = _resize_axis(x, a, out[a], factor[a], opts, r)
    return x


def _resize_options(node: Node, ctms: tuple[str, ...]) -> dict[str, Any]:
    opts = {
        "mode": node.attr("mode", "nearest"),
        "ctm": node.attr("coordinate_transformation_mode", "half_pixel"),
        "nearest": node.attr("nearest_mode", "round_prefer_floor"),
        "cubic_a": float(node.attr("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(node.attr("exclude_outside", 0)),
        "extrapolation": float(node.attr("extrapolation_value", 0.0)),
        "antialias": bool(node.attr("antialias", 0)) if node.version >= 18 else False,
    }
    for key, value, allowed in (
        ("mode", opts["mode"], ("nearest", "linear", "cubic")),
        ("coordinate_transformation_mode", opts["ctm"], ctms),
        ("nearest_mode", opts["nearest"], _NEAREST_MODES),
    ):
        if value not in allowed:
            raise Unsupported(f"{key}={value!r}; opset {node.version} allows {', '.join(allowed)}")
    if opts["antialias"] and opts["mode"] == "nearest":
        raise Unsupported("antialias=1 with mode='nearest' (ONNX defines antialias for linear and cubic)")
    return opts


@converter("Resize", since=10, host_inputs=(1,))
def _resize_10(node: Node) -> Run:
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise Unsupported(f"mode={mode!r}; opset 10 allows nearest and linear")
    opts = {"mode": mode, "ctm": "asymmetric", "nearest": "simple", "cubic_a": -0.75,
            "exclude_outside": False, "extrapolation": 0.0, "antialias": False}  # fmt: skip

    def run(ctx: Context, x: Any, scales: Any) -> Tensor:
        x = ctx.tensor(x)
        return _resize(
            node, x, ctx.host(scales, "scales").astype(np.float64), None, None, None, "stretch", opts
        )

    return run


def _resize_11(node: Node, ctms: tuple[str, ...]) -> Run:
    opts = _resize_options(node, ctms)
    axes = node.attr("axes", None) if node.version >= 18 else None
    policy = node.attr("keep_aspect_ratio_policy", "stretch") if node.version >= 18 else "stretch"
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise Unsupported(f"keep_aspect_ratio_policy={policy!r} (ONNX has stretch, not_larger, not_smaller)")

    def run(ctx: Context, x: Any, roi: Any = None, scales: Any = None, sizes: Any = None) -> Tensor:
        x = ctx.tensor(x)
        s = None if scales is None else ctx.host(scales, "scales").astype(np.float64).reshape(-1)
        if s is not None and s.size == 0:
            s = None
        z = None if sizes is None else ctx.host_ints(sizes, "sizes")
        if (s is None) == (z is None):
            raise ValueError(f"{node.describe()}: give exactly one of scales and sizes")
        r = None if roi is None else ctx.host(roi, "roi").astype(np.float64).reshape(-1)
        return _resize(node, x, s, z, r, axes, policy if z is not None else "stretch", opts)

    return run


@converter("Resize", since=11, host_inputs=(1, 2, 3))
def _resize_11_(node: Node) -> Run:
    return _resize_11(node, _COORDINATE_MODES)


@converter("Resize", since=19, host_inputs=(1, 2, 3))
def _resize_19(node: Node) -> Run:
    return _resize_11(node, (*_COORDINATE_MODES, "half_pixel_symmetric"))


def _upsample(node: Node, scales_attr: list[float] | None) -> Run:
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise Unsupported(f"mode={mode!r}; Upsample has nearest and linear")
    opts = {"mode": "nearest" if mode == "nearest" else "linear", "ctm": "asymmetric", "nearest": "simple",
            "cubic_a": -0.75, "exclude_outside": False, "extrapolation": 0.0, "antialias": False}  # fmt: skip

    def run(ctx: Context, x: Any, scales: Any = None) -> Tensor:
        s = np.asarray(
            scales_attr if scales_attr is not None else ctx.host(scales, "scales"), dtype=np.float64
        )
        return _resize(node, ctx.tensor(x), s.reshape(-1), None, None, None, "stretch", opts)

    return run


@converter("Upsample", since=7)
def _upsample_7(node: Node) -> Run:
    return _upsample(node, node.attr("scales"))


@converter("Upsample", since=9, host_inputs=(1,))
def _upsample_9(node: Node) -> Run:
    return _upsample(node, None)
