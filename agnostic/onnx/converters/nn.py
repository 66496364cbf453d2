"""ONNX converters: neural-network ops (convolution, pooling, normalization, recurrent layers,
attention, sampling, windows).

ONNX's padding conventions (begin/end pads, auto_pad, ceil_mode, output_shape) are resolved here
into explicit (lo, hi) pairs; the arithmetic is agnostic's own differentiable ops (the fused
functional ones where they match ONNX exactly), so imported networks run on every backend and train.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import agnostic as ag
from agnostic import dtypes
from agnostic import functional as F
from agnostic import primitives as P
from agnostic.onnx import dtypes as onnx_dtypes
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, normalize_axis
from agnostic.tensor import Tensor

Pairs = list[tuple[int, int]]


# ---------------------------------------------------------------------- geometry
def _dilated(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def _per_axis(value: Any, d: int, default: int, name: str, node: Node) -> list[int]:
    if value is None:
        return [default] * d
    out = [int(v) for v in value]
    if len(out) != d:
        raise ValueError(f"{node.describe()}: {name} {out} needs {d} values for {d} spatial axes")
    return out


def _pad_pairs(
    node: Node, auto_pad: str, pads: Any, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
    dilations: Sequence[int],
) -> Pairs:  # fmt: skip
    """(lo, hi) zero padding per spatial axis from ONNX's auto_pad or begin/end `pads`."""
    d = len(spatial)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for n, k, s, dl in zip(spatial, kernel, strides, dilations):
            out = -(-n // s)
            total = max(0, (out - 1) * s + _dilated(k, dl) - n)
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return pairs
    if auto_pad == "VALID":
        return [(0, 0)] * d
    if auto_pad not in ("NOTSET", ""):
        raise ValueError(
            f"{node.describe()}: auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got {auto_pad!r}"
        )
    p = [0] * (2 * d) if pads is None else [int(v) for v in pads]
    if len(p) != 2 * d:
        raise ValueError(
            f"{node.describe()}: pads {p} needs {2 * d} values (begins then ends) for {d} spatial axes"
        )
    return [(p[i], p[d + i]) for i in range(d)]


def _check_auto_pad(node: Node) -> str:
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise Unsupported(f"auto_pad {auto_pad!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    return auto_pad


def _floating(x: Tensor, node: Node) -> Tensor:
    if not x.dtype.is_floating:
        raise TypeError(
            f"{node.describe()}: input dtype {x.dtype} is not floating; the op is defined for floats"
        )
    return x


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


# ---------------------------------------------------------------------- convolution
@converter("Conv", since=1)
def _conv(node: Node) -> Run:
    auto_pad = _check_auto_pad(node)
    dilations, group = node.attr("dilations", None), int(node.attr("group", 1))
    kernel_shape, pads, strides = (
        node.attr("kernel_shape", None),
        node.attr("pads", None),
        node.attr("strides", None),
    )

    def run(ctx: Context, x: Any, w: Any, b: Any = None) -> Tensor:
        x, w = _floating(ctx.tensor(x), node), ctx.tensor(w)
        d = w.ndim - 2
        kernel = _per_axis(kernel_shape, d, 1, "kernel_shape", node) if kernel_shape else list(w.shape[2:])
        if tuple(kernel) != tuple(w.shape[2:]):
            raise ValueError(
                f"{node.describe()}: kernel_shape {kernel} differs from the weight's {w.shape[2:]}"
            )
        s, dl = _per_axis(strides, d, 1, "strides", node), _per_axis(dilations, d, 1, "dilations", node)
        pairs = _pad_pairs(node, auto_pad, pads, x.shape[2:], kernel, s, dl)
        bias = None if b is None else ctx.tensor(b)
        return F.conv(x, w, bias, stride=s, padding=tuple(pairs), dilation=dl, groups=group)

    return run


@converter("ConvTranspose", since=1)
def _conv_transpose(node: Node) -> Run:
    auto_pad = _check_auto_pad(node)
    dilations, group = node.attr("dilations", None), int(node.attr("group", 1))
    kernel_shape, pads, strides = (
        node.attr("kernel_shape", None),
        node.attr("pads", None),
        node.attr("strides", None),
    )
    output_padding, output_shape = node.attr("output_padding", None), node.attr("output_shape", None)

    def run(ctx: Context, x: Any, w: Any, b: Any = None) -> Tensor:
        x, w = _floating(ctx.tensor(x), node), ctx.tensor(w).astype(x.dtype)
        d = w.ndim - 2
        if x.ndim != d + 2 or x.shape[1] != w.shape[0] or w.shape[0] % group:
            raise ValueError(
                f"{node.describe()}: input {x.shape} and weight {w.shape} (C_in, C_out/group, *kernel) do not "
                f"match with group={group}"
            )
        kernel = list(w.shape[2:])
        if kernel_shape and [int(k) for k in kernel_shape] != kernel:
            raise ValueError(
                f"{node.describe()}: kernel_shape {kernel_shape} differs from the weight's {kernel}"
            )
        s, dl = _per_axis(strides, d, 1, "strides", node), _per_axis(dilations, d, 1, "dilations", node)
        op = _per_axis(output_padding, d, 0, "output_padding", node) if output_padding else [0] * d
        spatial = x.shape[2:]
        natural = [s[i] * (spatial[i] - 1) + op[i] + _dilated(kernel[i], dl[i]) for i in range(d)]
        wanted = None if output_shape is None else [int(v) for v in output_shape][-d:]
        if pads is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = wanted if wanted is not None else [n * st for n, st in zip(spatial, s)]
            totals = [nat - o for nat, o in zip(natural, out)]
            lows = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
        else:
            pairs = _pad_pairs(node, "NOTSET", pads, spatial, kernel, s, dl)
            lows = [lo for lo, _ in pairs]
            out = wanted if wanted is not None else [nat - lo - hi for nat, (lo, hi) in zip(natural, pairs)]
        if any(o <= 0 for o in out):
            raise ValueError(f"{node.describe()}: output size {out} is not positive")
        if any(p >= st for p, st in zip(op, s)):
            raise ValueError(f"{node.describe()}: output_padding {op} must be smaller than strides {s}")
        full_shape = (x.shape[0], w.shape[1] * group, *natural)
        y = P.conv_input_grad(x, w, full_shape, tuple(s), tuple((0, 0) for _ in s), tuple(dl), group)
        y = _window(y, lows, out)
        if b is not None:
            y = y + ag.reshape(ctx.tensor(b).astype(y.dtype), _channel_shape(y))
        return y

    return run


def _window(y: Tensor, starts: Sequence[int], lengths: Sequence[int], fill: float = 0.0) -> Tensor:
    """y[:, :, start:start+length] per spatial axis, filling with `fill` where that leaves y."""
    widths = [(0, 0), (0, 0)]
    key: list[slice] = [slice(None), slice(None)]
    for n, start, length in zip(y.shape[2:], starts, lengths):
        lo, hi = max(0, -start), max(0, start + length - n)
        widths.append((lo, hi))
        key.append(slice(start + lo, start + lo + length))
    if any(lo or hi for lo, hi in widths):
        y = ag.pad(y, widths, value=fill)
    return y[tuple(key)]


@converter("CausalConvWithState", since=27)
def _causal_conv_with_state(node: Node) -> Run:
    """A depthwise 1-D convolution over the carried last k-1 positions (zeros when there is no
    past state) followed by the input: returns the output (SiLU'd in float32 when asked) and the
    new carry, the last k-1 positions of that concatenation."""
    activation = node.attr("activation", "none")
    if activation not in ("none", "silu", "swish"):
        raise Unsupported(f"activation {activation!r} is not none, silu or swish")

    def run(ctx: Context, x: Any, w: Any, b: Any = None, past: Any = None) -> tuple[Tensor, Tensor]:
        x = _floating(ctx.tensor(x), node)
        w = ctx.tensor(w, x.dtype)
        if x.ndim != 3 or w.ndim != 3 or w.shape[:2] != (x.shape[1], 1):
            raise ValueError(
                f"{node.describe()}: input {x.shape} must be (B, C, L) and weight {w.shape} (C, 1, k)"
            )
        batch, channels, length = x.shape
        carry = w.shape[2] - 1
        if past is None:
            past = ag.zeros((batch, channels, carry), dtype=x.dtype, device=x.device)
        else:
            past = ctx.tensor(past, x.dtype)
            if past.shape != (batch, channels, carry):
                raise ValueError(
                    f"{node.describe()}: past_state {past.shape} must be {(batch, channels, carry)}"
                )
        padded = ag.concat([past, x], axis=2)
        acc = ag.float32 if dtypes.finfo(x.dtype).bits < 32 else x.dtype  # half sums in float32, as ONNX
        wide, wa = padded.astype(acc), w.astype(acc)
        y = None
        for j in range(carry + 1):
            term = wide[:, :, j : j + length] * ag.reshape(wa[:, 0, j], (1, channels, 1))
            y = term if y is None else y + term
        y = y.astype(x.dtype)
        if b is not None:
            y = y + ag.reshape(ctx.tensor(b, x.dtype), (1, channels, 1))
        if activation != "none":
            y = F.silu(y.astype(ag.float32)).astype(x.dtype)
        return y, padded[:, :, padded.shape[2] - carry :]

    return run


def _linear_taps(v: Tensor, n: int) -> list[tuple[Tensor, Tensor]]:
    """Linear interpolation at coordinates v along an axis of n samples: the two neighbours as
    int64 indices, and their weights, zero for a neighbour outside [0, n - 1]."""
    base = ag.floor(v)
    t = v - base
    taps = []
    for idx, w in ((base, 1 - t), (base + 1, t)):
        inside = (idx >= 0) & (idx <= n - 1)
        taps.append((ag.clip(idx, 0.0, n - 1.0).astype(ag.int64), ag.where(inside, w, 0.0)))
    return taps


@converter("DeformConv", since=19)
def _deform_conv(node: Node) -> Run:
    """Convolution whose every kernel tap reads the input at its grid position plus a learned
    offset (bilinearly, zero outside the input), weighted by an optional mask: the sampled
    columns of each offset group, then one grouped matmul with the weight."""
    dilations, group = node.attr("dilations", None), int(node.attr("group", 1))
    kernel_shape, pads, strides = (
        node.attr("kernel_shape", None),
        node.attr("pads", None),
        node.attr("strides", None),
    )
    offset_group = int(node.attr("offset_group", 1))

    def run(ctx: Context, x: Any, w: Any, offset: Any, b: Any = None, mask: Any = None) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        w, offset = ctx.tensor(w, x.dtype), ctx.tensor(offset, x.dtype)
        d = x.ndim - 2
        n, c, spatial, out = x.shape[0], x.shape[1], x.shape[2:], offset.shape[2:]
        kernel = _per_axis(kernel_shape, d, 1, "kernel_shape", node) if kernel_shape else list(w.shape[2:])
        taps = math.prod(kernel)
        oc = w.shape[0]
        if (w.ndim != d + 2 or list(w.shape[2:]) != kernel or c != w.shape[1] * group or oc % group
                or c % offset_group or offset.shape[:2] != (n, offset_group * taps * d)):  # fmt: skip
            raise ValueError(
                f"{node.describe()}: X {x.shape}, W {w.shape} and offset {offset.shape} do not fit "
                f"group={group}, offset_group={offset_group}, kernel {kernel}: W must be "
                f"(C_out, C/group, *kernel) and offset (N, offset_group * {taps} * {d}, *output)"
            )
        s, dl = _per_axis(strides, d, 1, "strides", node), _per_axis(dilations, d, 1, "dilations", node)
        pairs = _pad_pairs(node, "NOTSET", pads, spatial, kernel, s, dl)
        expected = [(sp + lo + hi - _dilated(k, dil)) // st + 1
                    for sp, (lo, hi), k, dil, st in zip(spatial, pairs, kernel, dl, s)]  # fmt: skip
        if list(out) != expected:
            raise ValueError(
                f"{node.describe()}: offset's spatial shape {tuple(out)} differs from the output size "
                f"{expected} that the input, kernel, pads, strides and dilations give"
            )
        points = math.prod(out)
        offset = ag.reshape(offset, (n, offset_group, taps, d, points))
        grid = np.stack(np.meshgrid(*(np.arange(k) for k in kernel), indexing="ij"), 0).reshape(d, taps, 1)
        where = np.stack(np.meshgrid(*(np.arange(o) for o in out), indexing="ij"), 0).reshape(d, 1, points)
        per_axis = []
        for a in range(d):
            base = grid[a] * dl[a] + where[a] * s[a] - pairs[a][0]  # (taps, points)
            pos = offset[:, :, :, a] + ag.asarray(base.astype(np.float64), dtype=x.dtype, device=x.device)
            per_axis.append(_linear_taps(pos, spatial[a]))
        source = ag.reshape(x, (n, offset_group, c // offset_group, -1))
        wide = (n, offset_group, c // offset_group, taps * points)
        cols = None
        for corner in itertools.product(*per_axis):
            index, weight = None, None
            for a, (idx, wt) in enumerate(corner):
                stride = math.prod(spatial[a + 1 :])
                index = idx * stride if index is None else index + idx * stride
                weight = wt if weight is None else weight * wt
            picked = ag.take_along_axis(
                source, ag.broadcast_to(ag.reshape(index, (n, offset_group, 1, -1)), wide), axis=3
            )
            term = picked * ag.reshape(weight, (n, offset_group, 1, -1))
            cols = term if cols is None else cols + term
        if mask is not None:
            cols = cols * ag.reshape(ctx.tensor(mask, x.dtype), (n, offset_group, 1, taps * points))
        cols = ag.reshape(cols, (n, group, (c // group) * taps, points))
        y = ag.matmul(ag.reshape(w, (1, group, oc // group, -1)), cols)
        y = ag.reshape(y, (n, oc, *out))
        if b is not None:
            y = y + ag.reshape(ctx.tensor(b, x.dtype), _channel_shape(y))
        return y

    return run


# ---------------------------------------------------------------------- pooling
class _Pool:
    """One pooling node's geometry: ONNX's output size (floor, or ceil with the last window starting
    inside the input or its begin padding) and the windows as strided slices of the padded input."""

    def __init__(self, node: Node, spatial: Sequence[int], kernel: Sequence[int], strides: Any, dilations: Any,
                 auto_pad: str, pads: Any, ceil_mode: bool) -> None:  # fmt: skip
        d = len(spatial)
        self.kernel = list(kernel)
        self.strides = _per_axis(strides, d, 1, "strides", node)
        self.dilations = _per_axis(dilations, d, 1, "dilations", node)
        self.pairs = _pad_pairs(node, auto_pad, pads, spatial, kernel, self.strides, self.dilations)
        self.spatial = list(spatial)
        self.out = []
        for n, k, s, dl, (lo, hi) in zip(spatial, kernel, self.strides, self.dilations, self.pairs):
            span = n + lo + hi - _dilated(k, dl)
            if span < 0:
                raise ValueError(
                    f"{node.describe()}: input spatial size {tuple(spatial)} padded by {self.pairs} is smaller "
                    f"than the kernel {tuple(kernel)} with dilations {self.dilations}"
                )
            m = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (m - 1) * s >= n + lo:
                m -= 1
            self.out.append(m)

    def symmetric(self) -> bool:
        return all(lo == hi and 2 * lo <= k for (lo, hi), k in zip(self.pairs, self.kernel))

    def padded(self, x: Tensor, fill: float) -> Tensor:
        """x padded (or cropped) to exactly the extent the windows read."""
        needed = [
            (m - 1) * s + _dilated(k, dl)
            for m, s, k, dl in zip(self.out, self.strides, self.kernel, self.dilations)
        ]
        return _window(x, [-lo for lo, _ in self.pairs], needed, fill)

    def taps(self, xp: Any) -> list[Any]:
        """One strided slice of the padded input per kernel offset, each of the output's shape."""
        out = []
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            key = [slice(None), slice(None)]
            for o, m, s, dl in zip(offset, self.out, self.strides, self.dilations):
                key.append(slice(o * dl, o * dl + (m - 1) * s + 1, s))
            out.append(xp[tuple(key)])
        return out

    def counts(self, count_include_pad: bool) -> np.ndarray:
        """How many elements each window averages: real ones, and the explicit pads if counted."""
        lows, highs = [lo for lo, _ in self.pairs], [hi for _, hi in self.pairs]
        mask = np.ones((1, 1, *self.spatial), dtype=np.float64)
        widths = [(0, 0), (0, 0)] + list(zip(lows, highs))
        mask = np.pad(mask, widths, constant_values=1.0 if count_include_pad else 0.0)
        needed = [
            (m - 1) * s + _dilated(k, dl)
            for m, s, k, dl in zip(self.out, self.strides, self.kernel, self.dilations)
        ]
        extra = [(0, 0), (0, 0)] + [(0, max(0, nd - mask.shape[2 + i])) for i, nd in enumerate(needed)]
        mask = np.pad(mask, extra)
        return sum(self.taps(mask))


def _pool_attrs(node: Node, dilations: bool = True, ceil: bool = True) -> dict[str, Any]:
    return {
        "auto_pad": _check_auto_pad(node),
        "ceil_mode": bool(node.attr("ceil_mode", 0)) if ceil else False,
        "dilations": node.attr("dilations", None) if dilations else None,
        "kernel": [int(k) for k in node.attr("kernel_shape")],
        "pads": node.attr("pads", None),
        "strides": node.attr("strides", None),
    }


def _geometry(node: Node, x: Tensor, a: dict[str, Any]) -> _Pool:
    d = len(a["kernel"])
    if x.ndim != d + 2:
        raise ValueError(
            f"{node.describe()}: input {x.shape} needs {d + 2} dims for kernel_shape {a['kernel']}"
        )
    return _Pool(
        node, x.shape[2:], a["kernel"], a["strides"], a["dilations"], a["auto_pad"], a["pads"], a["ceil_mode"]
    )


def _lowest(dtype: Any) -> float:
    return -math.inf if dtype.is_floating else int(ag.iinfo(dtype).min)


@converter("MaxPool", since=1)
def _max_pool(node: Node) -> Run:
    a = _pool_attrs(node)
    storage_order = int(node.attr("storage_order", 0))
    indices = len(node.outputs) > 1 and node.outputs[1] != ""

    def run(ctx: Context, x: Any) -> Any:
        x = ctx.tensor(x)
        g = _geometry(node, x, a)
        d = len(g.kernel)
        n, c = x.shape[:2]
        size = math.prod(g.spatial)
        base = ag.reshape(ag.arange(n * c, dtype=ag.int64, device=x.device) * size, (n, c) + (1,) * d)
        if x.dtype.is_floating and g.symmetric() and storage_order == 0:
            y, idx = P.max_pool(x, tuple(g.kernel), tuple(g.strides), tuple(lo for lo, _ in g.pairs),
                                tuple(g.dilations), bool(a["ceil_mode"]))  # fmt: skip
            return (y, idx.astype(ag.int64) + base) if indices else y
        taps = g.taps(g.padded(x, _lowest(x.dtype)))
        if not indices:
            y = taps[0]
            for t in taps[1:]:
                y = ag.maximum(y, t)
            return y
        stacked = ag.stack(taps, axis=-1)
        y, which = ag.max(stacked, axis=-1), ag.argmax(stacked, axis=-1)
        flat = base
        step = 1
        axes = range(d) if storage_order else reversed(range(d))
        for i in axes:
            k_i = (which // math.prod(g.kernel[i + 1 :])) % g.kernel[i]
            o_i = ag.reshape(
                ag.arange(g.out[i], dtype=ag.int64, device=x.device), (g.out[i],) + (1,) * (d - 1 - i)
            )
            coord = o_i * g.strides[i] - g.pairs[i][0] + k_i * g.dilations[i]
            flat = flat + coord * step
            step *= g.spatial[i]
        return y, flat

    return run


def _avg(node: Node, x: Tensor, g: _Pool, count_include_pad: bool) -> Tensor:
    taps = g.taps(g.padded(x, 0.0))
    total = taps[0]
    for t in taps[1:]:
        total = total + t
    return total / ag.asarray(g.counts(count_include_pad), dtype=x.dtype, device=x.device)


@converter("AveragePool", since=1)
def _average_pool(node: Node) -> Run:
    a = _pool_attrs(node)
    count_include_pad = bool(node.attr("count_include_pad", 0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        g = _geometry(node, x, a)
        if g.symmetric() and all(dl == 1 for dl in g.dilations):
            pads = tuple(lo for lo, _ in g.pairs)
            return P.avg_pool(x, tuple(g.kernel), tuple(g.strides), pads, a["ceil_mode"], count_include_pad)
        return _avg(node, x, g, count_include_pad)

    return run


@converter("LpPool", since=1)
def _lp_pool(node: Node) -> Run:
    a = _pool_attrs(node)
    p = float(node.attr("p", 2))

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        g = _geometry(node, x, a)
        taps = g.taps(g.padded(ag.abs(x) ** p, 0.0))
        total = taps[0]
        for t in taps[1:]:
            total = total + t
        return total ** (1.0 / p)

    return run


def _spatial_axes(x: Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


@converter("GlobalAveragePool", since=1)
def _global_average_pool(node: Node) -> Run:
    return lambda ctx, x: ag.mean(
        _floating(ctx.tensor(x), node), axis=_spatial_axes(ctx.tensor(x)), keepdims=True
    )


@converter("GlobalMaxPool", since=1)
def _global_max_pool(node: Node) -> Run:
    return lambda ctx, x: ag.max(ctx.tensor(x), axis=_spatial_axes(ctx.tensor(x)), keepdims=True)


@converter("GlobalLpPool", since=1)
def _global_lp_pool(node: Node) -> Run:
    p = float(node.attr("p", 2))

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        return ag.sum(ag.abs(x) ** p, axis=_spatial_axes(x), keepdims=True) ** (1.0 / p)

    return run


@converter("MaxUnpool", since=9)
def _max_unpool(node: Node) -> Run:
    kernel = [int(k) for k in node.attr("kernel_shape")]
    pads, strides = node.attr("pads", None), node.attr("strides", None)

    def run(ctx: Context, x: Any, indices: Any, output_shape: Any = None) -> Tensor:
        x, idx = ctx.tensor(x), ctx.tensor(indices).astype(ag.int64)
        d = len(kernel)
        s = _per_axis(strides, d, 1, "strides", node)
        pairs = _pad_pairs(node, "NOTSET", pads, x.shape[2:], kernel, s, [1] * d)
        spatial = tuple(
            (n - 1) * st + k - lo - hi for n, st, k, (lo, hi) in zip(x.shape[2:], s, kernel, pairs)
        )
        inferred = tuple(x.shape[:2]) + spatial
        zeros = ag.zeros((math.prod(inferred),), dtype=x.dtype, device=x.device)
        y = ag.reshape(ag.scatter_add(zeros, 0, ag.reshape(idx, (-1,)), ag.reshape(x, (-1,))), inferred)
        if output_shape is None:
            return y
        shape = ctx.host_ints(output_shape, "output_shape")
        if shape[:2] != list(inferred[:2]) or any(o < i for o, i in zip(shape[2:], spatial)):
            raise ValueError(
                f"{node.describe()}: output_shape {shape} is smaller than the unpooled {inferred}"
            )
        return ag.pad(y, [(0, 0), (0, 0)] + [(0, o - i) for o, i in zip(shape[2:], spatial)])

    return run


# ---------------------------------------------------------------------- normalization
def _stash(x: Tensor, stash_type: int, node: Node) -> Tensor:
    """x in the precision ONNX computes statistics in (`stash_type`, float32 by default)."""
    try:
        dtype = onnx_dtypes.from_onnx(stash_type)
    except onnx_dtypes.UnsupportedDType as exc:
        raise Unsupported(f"stash_type {stash_type}: {exc}") from exc
    if not dtype.is_floating:
        raise Unsupported(f"stash_type {stash_type} is not a floating type")
    return x if dtypes.finfo(x.dtype).bits >= dtypes.finfo(dtype).bits else x.astype(dtype)


def _stash_type(node: Node) -> int:
    stash_type = int(node.attr("stash_type", 1))
    try:
        dtype = onnx_dtypes.from_onnx(stash_type)
    except onnx_dtypes.UnsupportedDType as exc:
        raise Unsupported(f"stash_type {stash_type}: {exc}") from exc
    if not dtype.is_floating:
        raise Unsupported(f"stash_type {stash_type} is not a floating type")
    return stash_type


@converter("BatchNormalization", since=7)
def _batch_norm_7(node: Node) -> Run:
    if int(node.attr("spatial", 1)) != 1:
        raise Unsupported("spatial=0 (per-activation statistics) is not supported; re-export with spatial=1")
    return _batch_norm(node, training=len([o for o in node.outputs if o]) > 1, legacy=True)


@converter("BatchNormalization", since=9)
def _batch_norm_9(node: Node) -> Run:
    return _batch_norm(node, training=len([o for o in node.outputs if o]) > 1, legacy=True)


@converter("BatchNormalization", since=14)
def _batch_norm_14(node: Node) -> Run:
    return _batch_norm(node, training=bool(node.attr("training_mode", 0)), legacy=False)


def _batch_norm(node: Node, training: bool, legacy: bool) -> Run:
    """Inference with the running statistics; in training mode the batch's (biased variance), and
    the running statistics updated with `momentum` (opset 14+: Y, running mean, running var;
    older: Y, running mean, running var, saved mean, saved var)."""
    eps, momentum = float(node.attr("epsilon", 1e-5)), float(node.attr("momentum", 0.9))

    def run(ctx: Context, x: Any, scale: Any, b: Any, mean: Any, var: Any) -> Any:
        x = _floating(ctx.tensor(x), node)
        scale, b, mean, var = (ctx.tensor(v) for v in (scale, b, mean, var))
        shape = _channel_shape(x)
        if not training:
            return F.batch_norm(x, mean, var, scale, b, training=False, eps=eps)
        axes = tuple(i for i in range(x.ndim) if i != 1)
        batch_mean, batch_var = ag.mean(x, axis=axes), ag.var(x, axis=axes)
        y = (x - ag.reshape(batch_mean, shape)) / ag.sqrt(ag.reshape(batch_var, shape) + eps)
        y = y * ag.reshape(scale.astype(x.dtype), shape) + ag.reshape(b.astype(x.dtype), shape)
        run_mean = mean * momentum + batch_mean.astype(mean.dtype) * (1 - momentum)
        run_var = var * momentum + batch_var.astype(var.dtype) * (1 - momentum)
        if legacy:
            return y, run_mean, run_var, batch_mean, batch_var
        return y, run_mean, run_var

    return run


@converter("InstanceNormalization", since=1)
def _instance_norm(node: Node) -> Run:
    eps = float(node.attr("epsilon", 1e-5))

    def run(ctx: Context, x: Any, scale: Any, b: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        axes = _spatial_axes(x)
        mean, var = ag.mean(x, axis=axes, keepdims=True), ag.var(x, axis=axes, keepdims=True)
        y = (x - mean) / ag.sqrt(var + eps)
        shape = _channel_shape(x)
        return y * ag.reshape(ctx.tensor(scale, x.dtype), shape) + ag.reshape(ctx.tensor(b, x.dtype), shape)

    return run


@converter("LayerNormalization", since=17)
def _layer_norm(node: Node) -> Run:
    axis, eps = int(node.attr("axis", -1)), float(node.attr("epsilon", 1e-5))
    stash_type = _stash_type(node)
    extra = len(node.outputs) > 1

    def run(ctx: Context, x: Any, scale: Any, b: Any = None) -> Any:
        x = _floating(ctx.tensor(x), node)
        ax = normalize_axis(axis, x.ndim, node)
        scale = ctx.tensor(scale, x.dtype)
        bias = None if b is None else ctx.tensor(b, x.dtype)
        trailing = x.shape[ax:]
        fused = (
            not extra
            and stash_type == 1
            and x.dtype in (ag.float32, ag.float64)
            and scale.shape == trailing
            and (bias is None or bias.shape == trailing)
        )
        if fused:
            return F.layer_norm(x, trailing, scale, bias, eps)
        xs = _stash(x, stash_type, node)
        axes = tuple(range(ax, x.ndim))
        mean = ag.mean(xs, axis=axes, keepdims=True)
        centered = xs - mean
        inv_std = ag.rsqrt(ag.mean(centered * centered, axis=axes, keepdims=True) + eps)
        y = (centered * inv_std).astype(x.dtype) * scale
        if bias is not None:
            y = y + bias
        return (y, mean, inv_std) if extra else y

    return run


@converter("RMSNormalization", since=23)
def _rms_norm(node: Node) -> Run:
    axis, eps = int(node.attr("axis", -1)), float(node.attr("epsilon", 1e-5))
    stash_type = _stash_type(node)

    def run(ctx: Context, x: Any, scale: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        ax = normalize_axis(axis, x.ndim, node)
        xs = _stash(x, stash_type, node)
        axes = tuple(range(ax, x.ndim))
        y = xs * ag.rsqrt(ag.mean(xs * xs, axis=axes, keepdims=True) + eps)
        return y.astype(x.dtype) * ctx.tensor(scale, x.dtype)

    return run


@converter("GroupNormalization", since=18)
def _group_norm_18(node: Node) -> Run:
    return _group_norm(node, per_channel=False)


@converter("GroupNormalization", since=21)
def _group_norm_21(node: Node) -> Run:
    return _group_norm(node, per_channel=True)


def _group_norm(node: Node, per_channel: bool) -> Run:
    """Opset 18 scales and shifts per group (num_groups values), 21 per channel (C values)."""
    eps, groups = float(node.attr("epsilon", 1e-5)), int(node.attr("num_groups"))
    stash_type = _stash_type(node) if per_channel else 1

    def run(ctx: Context, x: Any, scale: Any, b: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        n, c = x.shape[:2]
        if groups <= 0 or c % groups:
            raise ValueError(
                f"{node.describe()}: num_groups={groups} must divide the {c} channels of {x.shape}"
            )
        scale, b = ctx.tensor(scale, x.dtype), ctx.tensor(b, x.dtype)
        if not per_channel:
            scale, b = (ag.repeat(t, c // groups, axis=0) for t in (scale, b))
        xs = _stash(x, stash_type, node)
        g = ag.reshape(xs, (n, groups, -1))
        mean, var = ag.mean(g, axis=-1, keepdims=True), ag.var(g, axis=-1, keepdims=True)
        y = ag.reshape((g - mean) * ag.rsqrt(var + eps), x.shape).astype(x.dtype)
        shape = _channel_shape(x)
        return y * ag.reshape(scale, shape) + ag.reshape(b, shape)

    return run


@converter("LRN", since=1)
def _lrn(node: Node) -> Run:
    alpha, beta = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75))
    bias, size = float(node.attr("bias", 1.0)), int(node.attr("size"))

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        c = x.shape[1]
        lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
        sq = ag.pad(x * x, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
        total = sq[:, 0:c]
        for i in range(1, size):
            total = total + sq[:, i : i + c]
        return x / (bias + (alpha / size) * total) ** beta

    return run


@converter("MeanVarianceNormalization", since=9)
def _mvn(node: Node) -> Run:
    axes = node.attr("axes", [0, 2, 3])

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        ax = tuple(normalize_axis(int(a), x.ndim, node) for a in axes)
        mean = ag.mean(x, axis=ax, keepdims=True)
        std = ag.sqrt(ag.mean(x * x, axis=ax, keepdims=True) - mean * mean)
        return (x - mean) / (std + 1e-9)

    return run


@converter("LpNormalization", since=1)
def _lp_norm(node: Node) -> Run:
    axis, p = int(node.attr("axis", -1)), int(node.attr("p", 2))
    if p not in (1, 2):
        raise Unsupported(f"p={p}: LpNormalization defines p 1 or 2")

    def run(ctx: Context, x: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        ax = normalize_axis(axis, x.ndim, node)
        norm = (
            ag.sum(ag.abs(x), axis=ax, keepdims=True)
            if p == 1
            else ag.sqrt(ag.sum(x * x, axis=ax, keepdims=True))
        )
        zero = norm == 0
        return ag.where(zero, 0.0, x / ag.where(zero, 1.0, norm))

    return run


# ---------------------------------------------------------------------- attention
def _heads(t: Tensor, heads: int | None, what: str, node: Node) -> Tensor:
    """(B, S, heads * D) as (B, heads, S, D)."""
    if heads is None or heads <= 0 or t.shape[2] % heads:
        raise ValueError(
            f"{node.describe()}: 3-D {what} {t.shape} needs q_num_heads/kv_num_heads dividing its last axis"
        )
    return ag.permute_dims(ag.reshape(t, (t.shape[0], t.shape[1], heads, -1)), (0, 2, 1, 3))


def _neg_inf_where(allowed: Tensor, dtype: Any) -> Tensor:
    return ag.where(allowed, ag.zeros((), dtype=dtype, device=allowed.device), -math.inf)


def _safe_softmax(x: Tensor) -> Tensor:
    """softmax over the last axis where a row of -inf gives zeros, not NaN (ONNX's convention)."""
    m = ag.max(x, axis=-1, keepdims=True)
    e = ag.exp(x - ag.where(m == -math.inf, 0.0, m))
    if e.dtype == ag.float16:  # accumulate in float32, as NumPy (ONNX's reference) does for float16
        s = ag.sum(e.astype(ag.float32), axis=-1, keepdims=True).astype(e.dtype)
    else:
        s = ag.sum(e, axis=-1, keepdims=True)
    return e / ag.where(s == 0, 1.0, s)


@converter("Attention", since=23)
def _attention(node: Node) -> Run:
    """softmax(q k^T * scale + bias) v as ONNX's reference: sqrt(scale) on q and on k, softcap
    before the bias, bottom-right causal and sliding-window masks offset by the cached length, and
    rows with no attendable key set to zero. Outputs Y, present key/value, and the QK product at
    the stage `qk_matmul_output_mode` names."""
    is_causal = bool(node.attr("is_causal", 0))
    q_heads, kv_heads = node.attr("q_num_heads", None), node.attr("kv_num_heads", None)
    mode, scale = int(node.attr("qk_matmul_output_mode", 0)), node.attr("scale", None)
    softcap, precision = float(node.attr("softcap", 0.0)), node.attr("softmax_precision", None)
    left, right = int(node.attr("left_window_size", -1)), int(node.attr("right_window_size", -1))
    if mode not in (0, 1, 2, 3):
        raise Unsupported(f"qk_matmul_output_mode {mode} is not 0-3")
    softmax_dtype = None
    if precision is not None:
        try:
            softmax_dtype = onnx_dtypes.from_onnx(int(precision))
        except onnx_dtypes.UnsupportedDType as exc:
            raise Unsupported(f"softmax_precision {precision}: {exc}") from exc

    def run(ctx: Context, q: Any, k: Any, v: Any, mask: Any = None, past_k: Any = None, past_v: Any = None,
            nonpad: Any = None) -> tuple[Any, ...]:  # fmt: skip
        q = _floating(ctx.tensor(q), node)
        k, v = ctx.tensor(k, q.dtype), ctx.tensor(v, q.dtype)
        three_d = q.ndim == 3
        if three_d:
            q, k, v = (
                _heads(q, q_heads, "Q", node),
                _heads(k, kv_heads, "K", node),
                _heads(v, kv_heads, "V", node),
            )
        if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(
                f"{node.describe()}: Q, K, V must be all 3-D or all 4-D, got {q.shape}, {k.shape}, {v.shape}"
            )
        root = math.sqrt(1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale))
        if past_k is not None:
            k = ag.concat([ctx.tensor(past_k, q.dtype), k], axis=2)
        if past_v is not None:
            v = ag.concat([ctx.tensor(past_v, q.dtype), v], axis=2)
        present_k, present_v = k, v
        n_q, n_kv = q.shape[2], k.shape[2]
        dev = q.device
        i = ag.reshape(ag.arange(n_q, dtype=ag.int64, device=dev), (n_q, 1))
        j = ag.reshape(ag.arange(n_kv, dtype=ag.int64, device=dev), (1, n_kv))
        zeros = ag.zeros((n_q, n_kv), dtype=q.dtype, device=dev)
        if mask is not None:
            mask = ctx.tensor(mask)
            if mask.shape[-1] < n_kv:
                fill = False if mask.dtype == ag.bool else -math.inf
                mask = ag.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, n_kv - mask.shape[-1])], value=fill)
            mask = _neg_inf_where(mask, q.dtype) if mask.dtype == ag.bool else mask.astype(q.dtype)
        if nonpad is not None:
            lengths = ctx.tensor(nonpad).astype(ag.int64)
            offset: Any = ag.reshape(lengths - n_q, (-1, 1, 1, 1))
        else:
            offset = 0 if past_k is None else past_k.shape[2]
        bias = zeros if mask is None else zeros + mask
        if is_causal:
            bias = bias + _neg_inf_where(j <= i + offset, q.dtype)
        if left >= 0 or right >= 0:
            diff = i + offset - j
            allowed = ag.ones(diff.shape, dtype=ag.bool, device=dev)
            if left >= 0:
                allowed = allowed & (diff <= left)
            if right >= 0:
                allowed = allowed & (-diff <= right)
            bias = bias + _neg_inf_where(allowed, q.dtype)
        if nonpad is not None:
            keep = j < ag.reshape(lengths, (-1, 1))
            bias = bias + ag.reshape(_neg_inf_where(keep, q.dtype), (-1, 1, 1, n_kv))
        nq, nk = q.shape[1], k.shape[1]
        if nq != nk:
            if nq % nk or v.shape[1] != nk:
                raise ValueError(
                    f"{node.describe()}: {nq} query heads are not a multiple of {nk} key/value heads"
                )
            k, v = ag.repeat(k, nq // nk, axis=1), ag.repeat(v, nq // nk, axis=1)
        root_t = ag.asarray(root, dtype=q.dtype, device=dev)  # rounded to q's dtype first, as ONNX
        qk = ag.matmul(q * root_t, ag.matrix_transpose(k * root_t))
        if softcap > 0:
            cap = ag.asarray(softcap, dtype=q.dtype, device=dev)
            qk = ag.tanh(qk / cap) * cap
        scores = qk + bias
        shown = scores if mode == 2 else qk
        if softmax_dtype is not None:
            scores = scores.astype(softmax_dtype)
        probs = _safe_softmax(scores)
        probs = ag.where(ag.max(bias, axis=-1, keepdims=True) == -math.inf, 0.0, probs)
        if mode == 3:
            shown = probs
        y = ag.matmul(probs.astype(q.dtype), v)
        if three_d:
            y = ag.reshape(ag.permute_dims(y, (0, 2, 1, 3)), (y.shape[0], y.shape[2], -1))
        return y, present_k, present_v, shown.astype(q.dtype)

    return run


@converter("RotaryEmbedding", since=23)
def _rotary_embedding(node: Node) -> Run:
    interleaved = bool(node.attr("interleaved", 0))
    rotary_dim, num_heads = int(node.attr("rotary_embedding_dim", 0)), int(node.attr("num_heads", 0))

    def run(ctx: Context, x: Any, cos: Any, sin: Any, position_ids: Any = None) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        cos, sin = ctx.tensor(cos, x.dtype), ctx.tensor(sin, x.dtype)
        shape = x.shape
        if x.ndim == 4:  # (B, heads, S, D) -> (B, S, heads, D)
            x = ag.permute_dims(x, (0, 2, 1, 3))
        elif x.ndim == 3:
            if num_heads <= 0 or shape[2] % num_heads:
                raise ValueError(
                    f"{node.describe()}: 3-D input {shape} needs num_heads dividing its last axis"
                )
            x = ag.reshape(x, (shape[0], shape[1], num_heads, -1))
        else:
            raise ValueError(f"{node.describe()}: input must be 3-D or 4-D, got {shape}")
        dim = rotary_dim or x.shape[3]
        if position_ids is not None:
            pos = ctx.tensor(position_ids).astype(ag.int64)
            cos, sin = (
                ag.reshape(ag.take(t, ag.reshape(pos, (-1,)), axis=0), (*pos.shape, -1)) for t in (cos, sin)
            )
        if cos.shape[-1] != dim // 2 or sin.shape[-1] != dim // 2:
            raise ValueError(f"{node.describe()}: cos/sin caches {cos.shape} need a last axis of {dim // 2}")
        cos, sin = ag.expand_dims(cos, axis=2), ag.expand_dims(sin, axis=2)
        rot, rest = x[..., :dim], x[..., dim:]
        x1, x2 = (
            (rot[..., 0::2], rot[..., 1::2]) if interleaved else (rot[..., : dim // 2], rot[..., dim // 2 :])
        )
        real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
        if interleaved:
            rot = ag.reshape(ag.stack([real, imag], axis=-1), rot.shape)
        else:
            rot = ag.concat([real, imag], axis=-1)
        y = ag.concat([rot, rest], axis=-1)
        return ag.reshape(y, shape) if len(shape) == 3 else ag.permute_dims(y, (0, 2, 1, 3))

    return run


@converter("SwiGLU", since=1)
def _swiglu(node: Node) -> Run:
    alpha = float(node.attr("alpha", 1.0))

    def run(ctx: Context, a: Any, b: Any) -> Tensor:
        a = _floating(ctx.tensor(a), node)
        b = ctx.tensor(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"{node.describe()}: A {a.shape} {a.dtype} and B {b.shape} {b.dtype} must match exactly"
            )
        return a * ag.sigmoid(a * alpha) * b

    return run


@converter("LinearAttention", since=27)
def _linear_attention(node: Node) -> Run:
    """The recurrent state S (B, H_kv, d_k, d_v), stepped token by token in float32 as ONNX's
    reference: decayed by exp(g_t) ("gated"), corrected towards v_t by beta_t ("delta"), then
    S += k_t v_t^T and o_t = scale * q_t^T S, each KV head's state read by its group of query heads."""
    rule = node.attr("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise Unsupported(f"update_rule {rule!r} is not linear, gated, delta or gated_delta")
    q_heads, kv_heads = int(node.attr("q_num_heads")), int(node.attr("kv_num_heads"))
    scale = float(node.attr("scale", 0.0))
    node.attr("chunk_size", 64)  # a hint for chunked kernels: the result does not depend on it
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        raise Unsupported(f"q_num_heads {q_heads} is not a positive multiple of kv_num_heads {kv_heads}")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    for i, name, wanted in ((4, "decay", gating), (5, "beta", delta)):
        if node.input_given(i) != wanted:
            raise Unsupported(f"update_rule {rule!r} {'needs' if wanted else 'forbids'} the {name} input")

    def per_head(t: Tensor, heads: int, what: str) -> Tensor:
        """(B, T, heads * D) as float32 (B, heads, T, D)."""
        if t.ndim != 3 or t.shape[2] % heads:
            raise ValueError(f"{node.describe()}: {what} {t.shape} must be (B, T, {heads} * D)")
        return ag.permute_dims(ag.reshape(t, (*t.shape[:2], heads, -1)), (0, 2, 1, 3)).astype(ag.float32)

    def run(ctx: Context, q: Any, k: Any, v: Any, past: Any = None, decay: Any = None,
            beta: Any = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        q = _floating(ctx.tensor(q), node)
        q4, k4 = per_head(q, q_heads, "query"), per_head(ctx.tensor(k), kv_heads, "key")
        v4 = per_head(ctx.tensor(v), kv_heads, "value")
        b, _, steps, d_k = q4.shape
        d_v = v4.shape[3]
        if k4.shape[3] != d_k or k4.shape[:3] != v4.shape[:3] or k4.shape[0] != b:
            raise ValueError(
                f"{node.describe()}: query {q.shape}, key {k4.shape} and value {v4.shape} (per head) "
                "do not give matching (B, heads, T, d_k/d_v)"
            )
        state_shape = (b, kv_heads, d_k, d_v)
        if past is None:
            state, state_dtype = ag.zeros(state_shape, dtype=ag.float32, device=q.device), q.dtype
        else:
            past = ctx.tensor(past)
            if past.shape != state_shape:
                raise ValueError(f"{node.describe()}: past_state {past.shape} must be {state_shape}")
            state, state_dtype = past.astype(ag.float32), past.dtype
        if decay is not None:
            decay = ctx.tensor(decay)
            last = decay.shape[-1] if decay.ndim == 3 else -1
            if last not in (kv_heads, kv_heads * d_k):
                raise ValueError(
                    f"{node.describe()}: decay {decay.shape} must be (B, T, {kv_heads}) or "
                    f"(B, T, {kv_heads * d_k})"
                )
            decay = ag.exp(per_head(decay, kv_heads, "decay"))  # (B, H_kv, T, 1 or d_k)
        if beta is not None:
            beta = ctx.tensor(beta)
            if beta.ndim != 3 or beta.shape[-1] not in (kv_heads, 1):
                raise ValueError(
                    f"{node.describe()}: beta {beta.shape} must be (B, T, {kv_heads}) or (B, T, 1)"
                )
            beta = per_head(beta, beta.shape[-1], "beta")  # (B, H_kv or 1, T, 1)
        factor = scale if scale != 0.0 else 1.0 / math.sqrt(d_k)
        outs = []
        for t in range(steps):
            k_t, v_t = k4[:, :, t], v4[:, :, t]
            if decay is not None:
                state = state * ag.expand_dims(decay[:, :, t], axis=-1)
            if beta is not None:
                retrieved = ag.matmul(ag.expand_dims(k_t, axis=2), state)[:, :, 0]  # S^T k_t
                v_t = beta[:, :, t] * (v_t - retrieved)
            state = state + ag.expand_dims(k_t, axis=-1) * ag.expand_dims(v_t, axis=2)
            read = state if q_heads == kv_heads else ag.repeat(state, q_heads // kv_heads, axis=1)
            outs.append(ag.matmul(ag.expand_dims(q4[:, :, t], axis=2), read)[:, :, 0] * factor)
        y = ag.stack(outs, axis=1)  # (B, T, H_q, d_v)
        return ag.reshape(y, (b, steps, q_heads * d_v)).astype(q.dtype), state.astype(state_dtype)

    return run


@converter("FlexAttention", since=1, domain="ai.onnx.preview")
def _flex_attention(node: Node) -> Run:
    """softmax(score_mod(q k^T * scale)) then prob_mod, times v: the modifiers are subgraphs run
    on the scores in the softmax precision (float32 for half inputs, by default), as ONNX's
    reference; K and V heads are shared by contiguous groups of query heads."""
    scale, precision = node.attr("scale", None), node.attr("softmax_precision", None)
    mods = [node.subgraph(name) if node.has(name) else None for name in ("score_mod", "prob_mod")]
    for name, graph in zip(("score_mod", "prob_mod"), mods):
        if graph is not None and (len(graph.input_names) != 1 or len(graph.output_names) != 1):
            raise Unsupported(f"{name} must have one input and one output")
    softmax_dtype = None
    if precision is not None:
        try:
            softmax_dtype = onnx_dtypes.from_onnx(int(precision))
        except onnx_dtypes.UnsupportedDType as exc:
            raise Unsupported(f"softmax_precision {precision}: {exc}") from exc

    def modified(ctx: Context, graph: Any, x: Tensor) -> Tensor:
        if graph is None:
            return x
        env = dict(ctx.env)
        env[graph.input_names[0]] = x
        return ctx.tensor(graph.run(ctx.device, env)[0]).astype(x.dtype)

    def run(ctx: Context, q: Any, k: Any, v: Any) -> Tensor:
        q = _floating(ctx.tensor(q), node)
        k, v = ctx.tensor(k, q.dtype), ctx.tensor(v, q.dtype)
        if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(f"{node.describe()}: Q, K, V must be 4-D, got {q.shape}, {k.shape}, {v.shape}")
        nq, nk = q.shape[1], k.shape[1]
        if k.shape[3] != q.shape[3] or v.shape[1:3] != k.shape[1:3] or nq % nk:
            raise ValueError(
                f"{node.describe()}: Q {q.shape}, K {k.shape}, V {v.shape}: K needs Q's head size, V K's "
                "heads and length, and the query heads must be a multiple of the key/value heads"
            )
        if nq != nk:
            k, v = ag.repeat(k, nq // nk, axis=1), ag.repeat(v, nq // nk, axis=1)
        factor = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
        root = ag.asarray(math.sqrt(np.float32(factor)), dtype=q.dtype, device=q.device)
        scores = ag.matmul(q * root, ag.matrix_transpose(k * root))
        compute = softmax_dtype
        if compute is None:
            compute = ag.float32 if dtypes.finfo(q.dtype).bits < 32 else q.dtype
        scores = modified(ctx, mods[0], scores.astype(compute))
        m = ag.max(scores, axis=-1, keepdims=True)
        e = ag.exp(scores - m)
        probs = modified(ctx, mods[1], e / ag.sum(e, axis=-1, keepdims=True))
        return ag.matmul(probs, v.astype(compute)).astype(v.dtype)

    return run


@converter("TensorScatter", since=24)
def _tensor_scatter(node: Node) -> Run:
    """A KV-cache write: update's rows along `axis` land at write_indices[b] onwards in each
    batch's cache (modulo the cache length when circular; in linear mode rows past the end are
    dropped); the other rows keep the past cache. Written as a gather of the update where the
    cache is written, so it is differentiable."""
    mode, axis = node.attr("mode", "linear"), int(node.attr("axis", -2))
    if mode not in ("linear", "circular"):
        raise Unsupported(f"mode {mode!r} is not linear or circular")

    def run(ctx: Context, past: Any, update: Any, write_indices: Any = None) -> Tensor:
        past, update = ctx.tensor(past), ctx.tensor(update)
        ax = normalize_axis(axis, past.ndim, node)
        if ax == 0 or update.ndim != past.ndim or update.dtype != past.dtype:
            raise ValueError(
                f"{node.describe()}: past_cache {past.shape} {past.dtype} and update {update.shape} "
                f"{update.dtype} need the same rank and dtype, and axis {axis} must not be the batch axis"
            )
        size, length = past.shape[ax], update.shape[ax]
        if any(p != u for i, (p, u) in enumerate(zip(past.shape, update.shape)) if i != ax) or length > size:
            raise ValueError(
                f"{node.describe()}: update {update.shape} must match past_cache {past.shape} except along "
                f"axis {ax}, where it may be at most {size} long"
            )
        batch = past.shape[0]
        if write_indices is None:
            start = ag.zeros((batch,), dtype=ag.int64, device=past.device)
        else:
            start = ctx.tensor(write_indices).astype(ag.int64)
        lead = (1,) * (ax - 1)
        start = ag.reshape(start, (batch, *lead, 1))
        rows = ag.reshape(ag.arange(size, dtype=ag.int64, device=past.device), (1, *lead, size))
        offset = rows - start  # which update row lands on each cache row
        if mode == "circular":
            offset = offset % size
        written = (offset >= 0) & (offset < length)
        if length == 0:
            return past
        shape = (*offset.shape, *(1,) * (past.ndim - ax - 1))
        index = ag.broadcast_to(ag.reshape(ag.clip(offset, 0, length - 1), shape), past.shape)
        picked = ag.take_along_axis(update, index, axis=ax)
        return ag.where(ag.reshape(written, shape), picked, past)

    return run


# ---------------------------------------------------------------------- windows
def _window_fn(node: Node, terms: Callable[[Tensor], Tensor]) -> Run:
    periodic = bool(node.attr("periodic", 1))
    try:
        out_dtype = onnx_dtypes.from_onnx(int(node.attr("output_datatype", 1)))
    except onnx_dtypes.UnsupportedDType as exc:
        raise Unsupported(str(exc)) from exc

    def run(ctx: Context, size: Any) -> Tensor:
        (n,) = ctx.host_ints(size, "size")
        denom = n if periodic else n - 1
        phase = ag.arange(n, dtype=ag.float64, device=ctx.device) * (2 * math.pi / max(denom, 1))
        return terms(phase).astype(out_dtype)

    return run


@converter("HannWindow", since=17)
def _hann(node: Node) -> Run:
    return _window_fn(node, lambda t: 0.5 - 0.5 * ag.cos(t))


@converter("HammingWindow", since=17)
def _hamming(node: Node) -> Run:
    return _window_fn(node, lambda t: 25.0 / 46.0 - (21.0 / 46.0) * ag.cos(t))


@converter("BlackmanWindow", since=17)
def _blackman(node: Node) -> Run:
    return _window_fn(node, lambda t: 0.42 - 0.5 * ag.cos(t) + 0.08 * ag.cos(2 * t))


# ---------------------------------------------------------------------- recurrent layers
_DEFAULT_ALPHA = {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "HardSigmoid": 0.2, "Elu": 1.0, "Affine": 1.0,
                  "ScaledTanh": 1.0}  # fmt: skip
_DEFAULT_BETA = {"HardSigmoid": 0.5, "Affine": 0.0, "ScaledTanh": 1.0}


def _activation(name: str, alpha: float | None, beta: float | None) -> Callable[[Tensor], Tensor]:
    a = _DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha
    b = _DEFAULT_BETA.get(name, 0.0) if beta is None else beta
    table: dict[str, Callable[[Tensor], Tensor]] = {
        "Sigmoid": ag.sigmoid,
        "Tanh": ag.tanh,
        "Relu": ag.relu,
        "Affine": lambda x: x * a + b,
        "LeakyRelu": lambda x: F.leaky_relu(x, a),
        "ThresholdedRelu": lambda x: ag.where(x > a, x, 0.0),
        "ScaledTanh": lambda x: ag.tanh(x * b) * a,
        "HardSigmoid": lambda x: ag.clip(x * a + b, 0.0, 1.0),
        "Elu": lambda x: F.elu(x, a),
        "Softsign": lambda x: x / (1 + ag.abs(x)),
        "Softplus": lambda x: ag.logaddexp(x, ag.zeros_like(x)),
    }
    for key, fn in table.items():
        if key.lower() == name.lower():
            return fn
    raise Unsupported(f"activation {name!r} is not one of {sorted(table)}")


def _activations(node: Node, defaults: list[str], directions: int) -> list[list[Callable[[Tensor], Tensor]]]:
    """Per direction, the gate activations: the `activations` list (forward's then reverse's),
    with alpha/beta taken in order by those that use them."""
    names = node.attr("activations", None) or defaults * directions
    if len(names) != len(defaults) * directions:
        raise Unsupported(
            f"activations {names} needs {len(defaults) * directions} names ({len(defaults)} per direction)"
        )
    alphas = list(node.attr("activation_alpha", None) or [])
    betas = list(node.attr("activation_beta", None) or [])
    fns = []
    for name in names:
        canon = next((k for k in _DEFAULT_ALPHA if k.lower() == name.lower()), name)
        alpha = alphas.pop(0) if canon in _DEFAULT_ALPHA and alphas else None
        beta = betas.pop(0) if canon in _DEFAULT_BETA and betas else None
        fns.append(_activation(name, alpha, beta))
    n = len(defaults)
    return [fns[d * n : (d + 1) * n] for d in range(directions)]


class _Recurrence:
    """What RNN, GRU and LSTM share: attributes, layouts, directions and sequence lengths. A cell
    maps (x W^T + Wb at step t, states, direction) to new states, the first being the output h."""

    def __init__(self, node: Node, gates: int, defaults: list[str]) -> None:
        self.node = node
        self.gates = gates
        direction = node.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise Unsupported(f"direction {direction!r} is not forward, reverse or bidirectional")
        self.direction = direction
        self.directions = 2 if direction == "bidirectional" else 1
        self.hidden = node.attr("hidden_size", None)
        self.layout = int(node.attr("layout", 0))
        clip = node.attr("clip", None)
        self.clip = None if clip is None else float(clip)
        self.acts = _activations(node, defaults, self.directions)

    def clipped(self, x: Tensor) -> Tensor:
        return x if self.clip is None else ag.clip(x, -self.clip, self.clip)

    def run(self, ctx: Context, cell: Callable[..., list[Tensor]], x: Any, w: Any, r: Any, b: Any,
            lens: Any, initial: list[Any]) -> list[Tensor]:  # fmt: skip
        """Outputs Y, then the final value of each state (Y_h, and Y_c for LSTM)."""
        node = self.node
        x = _floating(ctx.tensor(x), node)
        w, r = ctx.tensor(w, x.dtype), ctx.tensor(r, x.dtype)
        if self.layout:
            x = ag.permute_dims(x, (1, 0, 2))
        steps, batch = x.shape[0], x.shape[1]
        hidden = r.shape[-1]
        if self.hidden is not None and int(self.hidden) != hidden:
            raise ValueError(f"{node.describe()}: hidden_size {self.hidden} differs from R's {r.shape}")
        if w.shape[0] != self.directions or w.shape[1] != self.gates * hidden:
            raise ValueError(
                f"{node.describe()}: W {w.shape} must be ({self.directions}, {self.gates}*{hidden}, input_size)"
            )
        dev = x.device
        t_idx = ag.reshape(ag.arange(steps, dtype=ag.int64, device=dev), (steps, 1))
        if lens is not None:
            lengths = ag.reshape(ctx.tensor(lens).astype(ag.int64), (1, batch))
            active = t_idx < lengths  # (steps, batch)
            backwards = ag.where(active, lengths - 1 - t_idx, t_idx)
        states0 = []
        for s in initial:
            if s is None:
                states0.append(None)
                continue
            s = ctx.tensor(s, x.dtype)
            states0.append(ag.permute_dims(s, (1, 0, 2)) if self.layout else s)
        ys, finals = [], []
        for d in range(self.directions):
            reverse = self.direction == "reverse" or d == 1
            xw = ag.matmul(x, ag.matrix_transpose(w[d]))
            rb = None
            if b is not None:
                bd = ctx.tensor(b, x.dtype)[d]
                xw = xw + bd[: self.gates * hidden]
                rb = bd[self.gates * hidden :]
            if reverse:
                if lens is None:
                    xw = ag.flip(xw, axis=0)
                else:
                    xw = ag.take_along_axis(
                        xw, ag.broadcast_to(ag.expand_dims(backwards, axis=2), xw.shape), axis=0
                    )
            states = [
                ag.zeros((batch, hidden), dtype=x.dtype, device=dev) if s is None else s[d] for s in states0
            ]
            outs = []
            for t in range(steps):
                new = cell(xw[t], states, ag.matrix_transpose(r[d]), rb, d)
                if lens is not None:
                    on = ag.expand_dims(active[t], axis=1)
                    outs.append(ag.where(on, new[0], 0.0))
                    new = [ag.where(on, n, s) for n, s in zip(new, states)]
                else:
                    outs.append(new[0])
                states = new
            y = ag.stack(outs, axis=0)  # (steps, batch, hidden)
            if reverse:
                if lens is None:
                    y = ag.flip(y, axis=0)
                else:
                    y = ag.take_along_axis(
                        y, ag.broadcast_to(ag.expand_dims(backwards, axis=2), y.shape), axis=0
                    )
            ys.append(y)
            finals.append(states)
        y = ag.stack(ys, axis=1)  # (steps, directions, batch, hidden)
        last = [ag.stack([f[i] for f in finals], axis=0) for i in range(len(initial))]
        if self.layout:
            y = ag.permute_dims(y, (2, 0, 1, 3))
            last = [ag.permute_dims(s, (1, 0, 2)) for s in last]
        return [y, *last]


@converter("RNN", since=7)
def _rnn(node: Node) -> Run:
    rec = _Recurrence(node, 1, ["Tanh"])

    def cell(xw: Tensor, states: list[Tensor], rt: Tensor, rb: Tensor | None, d: int) -> list[Tensor]:
        z = xw + ag.matmul(states[0], rt)
        if rb is not None:
            z = z + rb
        return [rec.acts[d][0](rec.clipped(z))]

    def run(ctx: Context, x: Any, w: Any, r: Any, b: Any = None, lens: Any = None, h0: Any = None) -> tuple:
        return tuple(rec.run(ctx, cell, x, w, r, b, lens, [h0]))

    return run


@converter("GRU", since=7)
def _gru(node: Node) -> Run:
    rec = _Recurrence(node, 3, ["Sigmoid", "Tanh"])
    linear_before_reset = bool(node.attr("linear_before_reset", 0))

    def cell(xw: Tensor, states: list[Tensor], rt: Tensor, rb: Tensor | None, d: int) -> list[Tensor]:
        (h,) = states
        f, g = rec.acts[d]
        n = h.shape[1]
        xz, xr, xh = xw[:, :n], xw[:, n : 2 * n], xw[:, 2 * n :]
        rz, rr, rh = rt[:, :n], rt[:, n : 2 * n], rt[:, 2 * n :]
        bz, br, bh = (0.0, 0.0, 0.0) if rb is None else (rb[:n], rb[n : 2 * n], rb[2 * n :])
        z = f(rec.clipped(xz + ag.matmul(h, rz) + bz))
        r = f(rec.clipped(xr + ag.matmul(h, rr) + br))
        if linear_before_reset:
            cand = g(rec.clipped(xh + r * (ag.matmul(h, rh) + bh)))
        else:
            cand = g(rec.clipped(xh + ag.matmul(r * h, rh) + bh))
        return [(1 - z) * cand + z * h]

    def run(ctx: Context, x: Any, w: Any, r: Any, b: Any = None, lens: Any = None, h0: Any = None) -> tuple:
        return tuple(rec.run(ctx, cell, x, w, r, b, lens, [h0]))

    return run


@converter("LSTM", since=7)
def _lstm(node: Node) -> Run:
    rec = _Recurrence(node, 4, ["Sigmoid", "Tanh", "Tanh"])
    input_forget = bool(node.attr("input_forget", 0))
    peepholes: list[Tensor | None] = [None, None]

    def cell(xw: Tensor, states: list[Tensor], rt: Tensor, rb: Tensor | None, d: int) -> list[Tensor]:
        h, c = states
        f_act, g_act, h_act = rec.acts[d]
        z = xw + ag.matmul(h, rt)
        if rb is not None:
            z = z + rb
        n = h.shape[1]
        zi, zo, zf, zc = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
        p = peepholes[d]
        if p is not None:
            zi, zf = zi + p[:n] * c, zf + p[2 * n :] * c
        i = f_act(rec.clipped(zi))
        f = 1 - i if input_forget else f_act(rec.clipped(zf))
        c_new = f * c + i * g_act(rec.clipped(zc))
        if p is not None:
            zo = zo + p[n : 2 * n] * c_new
        o = f_act(rec.clipped(zo))
        return [o * h_act(c_new), c_new]

    def run(ctx: Context, x: Any, w: Any, r: Any, b: Any = None, lens: Any = None, h0: Any = None,
            c0: Any = None, p: Any = None) -> tuple:  # fmt: skip
        for d in range(rec.directions):
            peepholes[d] = None if p is None else ctx.tensor(p)[d].astype(ctx.tensor(x).dtype)
        return tuple(rec.run(ctx, cell, x, w, r, b, lens, [h0, c0]))

    return run


# ---------------------------------------------------------------------- sampling
def _reflect(v: Tensor, lo: float, hi: float) -> Tensor:
    """v folded back into [lo, hi] as ONNX's (and torch's) grid_sample reflects coordinates."""
    span = hi - lo
    if span <= 0:
        return ag.full_like(v, lo)
    below, above = lo - v, v - hi
    dist = ag.where(v < lo, below, above)
    n = ag.trunc(dist / span)
    r = dist - n * span
    even = (n % 2) == 0
    from_below = ag.where(even, lo + r, hi - r)
    from_above = ag.where(even, hi - r, lo + r)
    return ag.where(v < lo, from_below, ag.where(v > hi, from_above, v))


def _cubic_weights(t: Tensor) -> list[Tensor]:
    a = -0.75
    x0, x1, x2, x3 = t + 1, t, 1 - t, 2 - t
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
    return [far(x0), near(x1), near(x2), far(x3)]


@converter("GridSample", since=16)
def _grid_sample(node: Node) -> Run:
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(
        node.attr("mode", "bilinear"), node.attr("mode", "bilinear")
    )
    padding_mode, align = node.attr("padding_mode", "zeros"), bool(node.attr("align_corners", 0))
    if mode not in ("linear", "cubic", "nearest") or padding_mode not in ("zeros", "border", "reflection"):
        raise Unsupported(
            f"mode {mode!r} / padding_mode {padding_mode!r} are not linear|cubic|nearest / zeros|border|reflection"
        )

    def run(ctx: Context, x: Any, grid: Any) -> Tensor:
        x = ctx.tensor(x)
        grid = _floating(ctx.tensor(grid), node)
        d = x.ndim - 2
        if grid.ndim != d + 2 or grid.shape[-1] != d or grid.shape[0] != x.shape[0]:
            raise ValueError(
                f"{node.describe()}: grid {grid.shape} must be (N, *out, {d}) for input {x.shape}"
            )
        spatial = x.shape[2:]
        per_axis = []  # per spatial axis: list of (index, weight) taps
        for i, n in enumerate(spatial):
            g = grid[..., d - 1 - i]
            v = (g + 1) / 2 * (n - 1) if align else ((g + 1) * n - 1) / 2
            if mode == "nearest":
                v = ag.round(v)
            lo, hi = (0.0, n - 1.0) if align else (-0.5, n - 0.5)
            if padding_mode == "border":
                v = ag.where((v < lo) | (v > hi), ag.clip(v, 0.0, n - 1.0), v)
            elif padding_mode == "reflection":
                v = _reflect(v, lo, hi)
            if mode == "nearest":
                taps = [(ag.trunc(v), ag.ones_like(v))]
            else:
                base = ag.floor(v)
                t = v - base
                if mode == "linear":
                    taps = [(base, 1 - t), (base + 1, t)]
                else:
                    taps = [(base + (k - 1), w) for k, w in enumerate(_cubic_weights(t))]
            fixed = []
            for idx, w in taps:
                if padding_mode == "zeros":
                    w = ag.where((idx >= 0) & (idx <= n - 1), w, 0.0)
                elif padding_mode == "reflection":
                    idx = ag.trunc(_reflect(idx, lo, hi))
                fixed.append((ag.clip(idx, 0.0, n - 1.0).astype(ag.int64), w))
            per_axis.append(fixed)
        batch, channels = x.shape[:2]
        flat_x = ag.reshape(x, (batch, channels, -1))
        out_shape = grid.shape[1:-1]
        total = None
        for combo in itertools.product(*per_axis):
            index, weight = None, None
            for i, (idx, w) in enumerate(combo):
                stride = math.prod(spatial[i + 1 :])
                index = idx * stride if index is None else index + idx * stride
                weight = w if weight is None else weight * w
            picked = ag.take_along_axis(
                flat_x,
                ag.broadcast_to(ag.reshape(index, (batch, 1, -1)), (batch, channels, index[0].size)),
                axis=2,
            )
            term = picked * ag.reshape(weight, (batch, 1, -1)).astype(x.dtype)
            total = term if total is None else total + term
        return ag.reshape(total, (batch, channels, *out_shape))

    return run


@converter("AffineGrid", since=20)
def _affine_grid(node: Node) -> Run:
    align = bool(node.attr("align_corners", 0))

    def run(ctx: Context, theta: Any, size: Any) -> Tensor:
        theta = _floating(ctx.tensor(theta), node)
        dims = ctx.host_ints(size, "size")
        spatial = dims[2:]
        d = len(spatial)
        if theta.shape[1:] != (d, d + 1):
            raise ValueError(
                f"{node.describe()}: theta {theta.shape} must be (N, {d}, {d + 1}) for size {dims}"
            )
        axes = []
        for n in reversed(spatial):  # x (the last axis) first, as the grid's coordinates
            steps = ag.arange(n, dtype=theta.dtype, device=theta.device)
            if align:
                axes.append(steps * (2.0 / (n - 1)) - 1 if n > 1 else steps * 0.0)
            else:
                axes.append((steps * 2 + 1) / n - 1)
        mesh = ag.meshgrid(*reversed(axes), indexing="ij")  # each (*spatial)
        coords = [*reversed(mesh), ag.ones_like(mesh[0])]
        base = ag.reshape(ag.stack(coords, axis=-1), (1, -1, d + 1))
        grid = ag.matmul(base, ag.matrix_transpose(theta))
        return ag.reshape(grid, (dims[0], *spatial, d))

    return run


# ---------------------------------------------------------------------- detection
@converter("NonMaxSuppression", since=10)
def _non_max_suppression(node: Node) -> Run:
    """Greedy per-class suppression, on the host: which boxes survive depends on the data."""
    center = bool(node.attr("center_point_box", 0))

    def run(
        ctx: Context, boxes: Any, scores: Any, max_out: Any = None, iou: Any = None, score_min: Any = None
    ) -> Tensor:
        b = ctx.host(boxes, "boxes").astype(np.float64)
        s = ctx.host(scores, "scores").astype(np.float64)
        limit = 0 if max_out is None else int(ctx.host_ints(max_out, "max_output_boxes_per_class")[0])
        threshold = 0.0 if iou is None else float(ctx.host(iou, "iou_threshold").reshape(-1)[0])
        floor = None if score_min is None else float(ctx.host(score_min, "score_threshold").reshape(-1)[0])
        if center:
            xc, yc, w, h = np.moveaxis(b, -1, 0)
            y1, x1, y2, x2 = yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
        else:
            y1, x1, y2, x2 = np.moveaxis(b, -1, 0)
            y1, y2 = np.minimum(y1, y2), np.maximum(y1, y2)
            x1, x2 = np.minimum(x1, x2), np.maximum(x1, x2)
        area = (y2 - y1) * (x2 - x1)
        picked = []
        for batch in range(s.shape[0]):
            for cls in range(s.shape[1]):
                order = np.argsort(-s[batch, cls], kind="stable")
                if floor is not None:
                    order = order[s[batch, cls, order] > floor]
                keep: list[int] = []
                for i in order:
                    if len(keep) >= limit:
                        break
                    ok = True
                    for j in keep:
                        ih = min(y2[batch, i], y2[batch, j]) - max(y1[batch, i], y1[batch, j])
                        iw = min(x2[batch, i], x2[batch, j]) - max(x1[batch, i], x1[batch, j])
                        inter = max(ih, 0.0) * max(iw, 0.0)
                        union = area[batch, i] + area[batch, j] - inter
                        if union > 0 and inter / union > threshold:
                            ok = False
                            break
                    if ok:
                        keep.append(int(i))
                picked += [(batch, cls, i) for i in keep]
        return ctx.tensor(np.asarray(picked, dtype=np.int64).reshape(-1, 3))

    return run


@converter("ConvInteger", since=10)
def _conv_integer(node: Node) -> Run:
    """Conv of (x - x_zero_point) and (w - w_zero_point) in int32, computed exactly in float64."""
    conv = _conv(node)

    def run(ctx: Context, x: Any, w: Any, x_zero: Any = None, w_zero: Any = None) -> Tensor:
        x, w = ctx.tensor(x), ctx.tensor(w)
        xf, wf = x.astype(ag.float64), w.astype(ag.float64)
        if x_zero is not None:
            xf = xf - ctx.tensor(x_zero).astype(ag.float64)
        if w_zero is not None:
            wz = ctx.tensor(w_zero).astype(ag.float64)
            wf = wf - (ag.reshape(wz, (-1,) + (1,) * (w.ndim - 1)) if wz.ndim == 1 else wz)
        return conv(ctx, xf, wf).astype(ag.int32)

    return run


def _roi_axis(v: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """RoiAlign's bilinear neighbours along an axis of n samples at coordinates v, as ONNX's
    reference computes them: (low index, high index, low weight, high weight, inside), where a
    coordinate below -1 or above n is outside and one past the last sample is clamped to it."""
    inside = (v >= -1.0) & (v <= float(n))
    v = ag.maximum(v, 0.0)
    low = ag.floor(v)
    edge = low >= n - 1
    low = ag.where(edge, float(n - 1), low)
    high = ag.where(edge, float(n - 1), low + 1)
    frac = ag.where(edge, 0.0, v - low)
    return low.astype(ag.int64), high.astype(ag.int64), 1 - frac, frac, inside


@converter("RoiAlign", since=10)
def _roi_align_10(node: Node) -> Run:
    return _roi_align(node, half_pixel=False)


@converter("RoiAlign", since=16)
def _roi_align_16(node: Node) -> Run:
    mode = node.attr("coordinate_transformation_mode", "half_pixel")
    if mode not in ("half_pixel", "output_half_pixel"):
        raise Unsupported(f"coordinate_transformation_mode {mode!r} is not half_pixel or output_half_pixel")
    return _roi_align(node, half_pixel=mode == "half_pixel")


def _roi_align(node: Node, half_pixel: bool) -> Run:
    """Each RoI cut into output_height x output_width bins, each bin the average (or ONNX's
    "max": the largest weighted corner) of a grid of bilinear samples. The sample grid is
    sampling_ratio per side, or, when that is 0, ceil(RoI size / bins), which depends on the RoI
    values and is read on the host."""
    mode = node.attr("mode", "avg")
    if mode not in ("avg", "max"):
        raise Unsupported(f"mode {mode!r} is not avg or max")
    out_h, out_w = int(node.attr("output_height", 1)), int(node.attr("output_width", 1))
    ratio, spatial_scale = int(node.attr("sampling_ratio", 0)), float(node.attr("spatial_scale", 1.0))
    shift = 0.5 if half_pixel else 0.0

    def run(ctx: Context, x: Any, rois: Any, batch_indices: Any) -> Tensor:
        x = _floating(ctx.tensor(x), node)
        work = ag.float32 if dtypes.finfo(x.dtype).bits < 32 else x.dtype
        boxes = ctx.tensor(rois).astype(work)
        index = ctx.tensor(batch_indices).astype(ag.int64)
        if x.ndim != 4 or boxes.ndim != 2 or boxes.shape[1] != 4 or index.shape != (boxes.shape[0],):
            raise ValueError(
                f"{node.describe()}: X {x.shape} must be (N, C, H, W), rois {boxes.shape} (R, 4) and "
                f"batch_indices {index.shape} (R,)"
            )
        n_rois, channels, (height, width) = boxes.shape[0], x.shape[1], x.shape[2:]
        start = boxes[:, :2] * spatial_scale - shift  # (R, 2): x, y
        size = boxes[:, 2:] * spatial_scale - shift - start
        if not half_pixel:
            size = ag.maximum(size, 1.0)
        if ratio > 0:
            grids, counts = [(ratio, None), (ratio, None)], None
        else:  # per RoI: ceil(size / bins) samples per side, as the host computes it from the values
            host = ctx.host(rois, "rois").astype(np.float32 if work == ag.float32 else np.float64)
            host_start = host[:, :2] * spatial_scale - shift
            host_size = host[:, 2:] * spatial_scale - shift - host_start
            if not half_pixel:
                host_size = np.maximum(host_size, 1.0)
            per_side = np.ceil(host_size / np.array([out_w, out_h])).astype(np.int64)  # (R, 2)
            grids = [(max(int(per_side[:, i].max(initial=0)), 1), per_side[:, i]) for i in range(2)]
            counts = per_side.prod(axis=1)
        axes = []
        for i, (bins, n) in enumerate(((out_w, width), (out_h, height))):
            most, per_roi = grids[i]
            steps = (
                float(ratio) if per_roi is None else ctx.tensor(np.maximum(per_roi, 1), work)[:, None, None]
            )
            bin_size = ag.reshape(size[:, i] / bins, (n_rois, 1, 1))
            p = ag.reshape(ag.arange(bins, dtype=work, device=x.device), (1, bins, 1))
            g = ag.reshape(ag.arange(most, dtype=work, device=x.device), (1, 1, most))
            coords = ag.reshape(start[:, i], (n_rois, 1, 1)) + p * bin_size + (g + 0.5) * bin_size / steps
            axes.append(_roi_axis(coords, n))  # each (R, bins, most)
        (xl, xh, xwl, xwh, xin), (yl, yh, ywl, ywh, yin) = axes
        grow_y = lambda t: ag.reshape(t, (n_rois, out_h, 1, -1, 1))  # noqa: E731
        grow_x = lambda t: ag.reshape(t, (n_rois, 1, out_w, 1, -1))  # noqa: E731
        inside = grow_y(yin) & grow_x(xin)
        source = ag.take(ag.reshape(x.astype(work), (x.shape[0], channels, -1)), index, axis=0)  # (R, C, H*W)
        terms = []
        for yi, wy in ((yl, ywl), (yh, ywh)):
            for xi, wx in ((xl, xwl), (xh, xwh)):
                flat = ag.reshape(grow_y(yi) * width + grow_x(xi), (n_rois, 1, -1))
                picked = ag.take_along_axis(
                    source, ag.broadcast_to(flat, (n_rois, channels, flat.shape[2])), axis=2
                )
                weight = ag.where(inside, grow_y(wy) * grow_x(wx), 0.0)
                terms.append(picked * ag.reshape(weight, (n_rois, 1, -1)))
        shape = (n_rois, channels, out_h, out_w, -1)
        if counts is None:
            taken = None
        else:  # which samples each RoI's own grid has
            rows = np.arange(grids[1][0])[None, :, None] < grids[1][1][:, None, None]
            cols = np.arange(grids[0][0])[None, None, :] < grids[0][1][:, None, None]
            taken = ctx.tensor((rows & cols).reshape(n_rois, 1, 1, 1, -1))
        if mode == "avg":
            total = ag.reshape(sum(terms[1:], terms[0]), shape)
            if taken is not None:
                total = ag.where(taken, total, 0.0)
            count = (
                float(ratio * ratio)
                if counts is None
                else ctx.tensor(np.maximum(counts, 1), work)[:, None, None, None]
            )
            y = ag.sum(total, axis=-1) / count
        else:
            best = terms[0]
            for t in terms[1:]:
                best = ag.maximum(best, t)
            best = ag.reshape(best, shape)
            if taken is not None:
                best = ag.where(taken, best, -math.inf)
            y = ag.max(best, axis=-1)
            if counts is not None:
                y = ag.where(ctx.tensor(counts > 0)[:, None, None, None], y, 0.0)
        return y.astype(x.dtype)

    return run
