"""Convolution and pooling on a NumPy-like array namespace `xp` (NumPy, CuPy).

Layouts are PyTorch's: x (N, C, *spatial), weight (O, C/groups, *kernel), 1 to 3 spatial axes.
Convolution is im2col: a strided view of the padded input gathers every window without a Python
loop over pixels, one copy lays the patches out as a matrix and one (group-batched) BLAS matmul
does the arithmetic. Scatters (the input gradient, the pooling adjoint) loop over kernel offsets,
adding one strided slice per offset, because CuPy has no `ufunc.at` and overlapping windows rule
out a single strided write. Nothing loops over pixels or batch elements in Python, and every
result keeps the input's dtype (the arithmetic runs in it too).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

Array = Any
Shape = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """Torch's pooling output length: with ceil_mode the last window must start inside the input
    or its left padding, never in the right padding alone."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


# ---------------------------------------------------------------------- helpers
def _pad(xp: Any, x: Array, pairs: Sequence[tuple[int, int]], value: float) -> Array:
    """`x` with its trailing axes padded by `value` ((lo, hi) per axis; negative crops), so the
    zero-pad of a forward op and the crop of its adjoint are one function with negated pairs."""
    if all(lo == 0 and hi == 0 for lo, hi in pairs):
        return x
    lead = x.ndim - len(pairs)
    src, dst, shape = [slice(None)] * lead, [slice(None)] * lead, list(x.shape)
    for i, (lo, hi) in enumerate(pairs, lead):
        start, stop = max(-lo, 0), max(x.shape[i] - max(-hi, 0), max(-lo, 0))
        src.append(slice(start, stop))
        dst.append(slice(max(lo, 0), max(lo, 0) + stop - start))
        shape[i] += lo + hi
    out = xp.full(tuple(shape), value, dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return out


def _windows(xp: Any, a: Array, out: Shape, kernel: Shape, stride: Shape, dilation: Shape) -> Array:
    """A read-only-by-convention view (*lead, *out, *kernel) of every window over the trailing
    len(out) axes of `a`: no data is copied."""
    d = len(out)
    lead, spatial = a.strides[:-d], a.strides[-d:]
    strides = (
        lead
        + tuple(s * st for s, st in zip(spatial, stride))
        + tuple(s * dl for s, dl in zip(spatial, dilation))
    )
    return xp.lib.stride_tricks.as_strided(a, a.shape[:-d] + tuple(out) + tuple(kernel), strides)


def _tap(axis: int, start: int, count: int, step: int) -> tuple[slice, ...]:
    """Index of `count` elements from `start` every `step` along `axis`: the input positions one
    kernel offset reads for all outputs along that axis."""
    return (slice(None),) * axis + (slice(start, start + step * (count - 1) + 1, step),)


def _taps(
    kernel: Shape, stride: Shape, dilation: Shape, out: Shape
) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """(kernel offset, index into the padded spatial axes) for every kernel offset, in row-major
    window order: the input positions that offset reads for all outputs."""
    return [
        (
            offs,
            tuple(
                slice(j * dl, j * dl + st * (m - 1) + 1, st)
                for j, st, dl, m in zip(offs, stride, dilation, out)
            ),
        )
        for offs in itertools.product(*(range(k) for k in kernel))
    ]


def _along(xp: Any, vectors: Sequence[Array], combine: Any) -> Array:
    """Combine one 1-d vector per spatial axis into a (*out) grid by broadcasting (outer sum or
    product), for per-position quantities that factor over axes."""
    d = len(vectors)
    grid = vectors[0].reshape((-1,) + (1,) * (d - 1))
    for i in range(1, d):
        grid = combine(grid, vectors[i].reshape((1,) * i + (-1,) + (1,) * (d - 1 - i)))
    return grid


def _conv_out(spatial: Shape, padding: Pairs, kernel: Shape, stride: Shape, dilation: Shape) -> Shape:
    return tuple(
        (s + lo + hi - dl * (k - 1) - 1) // st + 1
        for s, (lo, hi), k, st, dl in zip(spatial, padding, kernel, stride, dilation)
    )


def _im2col(
    xp: Any, x: Array, kernel: Shape, out: Shape, stride: Shape, padding: Pairs, dilation: Shape, groups: int
) -> Array:
    """The patch matrix (G, C/G * prod(kernel), N * prod(out)): rows ordered as the weight's
    flattened (C/G, *kernel), columns as the output's (N, *out), so conv is weight @ cols."""
    n, c = x.shape[:2]
    xp_ = _pad(xp, x, padding, 0)
    split = xp_.reshape((n, groups, c // groups) + xp_.shape[2:])
    win = _windows(xp, split, out, kernel, stride, dilation)  # (N, G, C/G, *out, *kernel)
    d = len(kernel)
    perm = (1, 2, *range(3 + d, 3 + 2 * d), 0, *range(3, 3 + d))
    return win.transpose(perm).reshape(groups, c // groups * math.prod(kernel), n * math.prod(out))


def _gy_matrix(gy: Array, groups: int) -> Array:
    """The output gradient (N, O, *out) as (G, O/G, N * prod(out)), matching `_im2col`'s columns."""
    n, o = gy.shape[:2]
    return gy.swapaxes(0, 1).reshape(groups, o // groups, n * math.prod(gy.shape[2:]))


# ---------------------------------------------------------------------- convolution
def conv(xp: Any, x: Array, w: Array, stride: Shape, padding: Pairs, dilation: Shape, groups: int) -> Array:
    """Cross-correlation as torch's conv{D}d, with (lo, hi) zero padding per spatial axis."""
    n, o, kernel = x.shape[0], w.shape[0], tuple(w.shape[2:])
    out = _conv_out(tuple(x.shape[2:]), padding, kernel, stride, dilation)
    cols = _im2col(xp, x, kernel, out, stride, padding, dilation, groups)
    y = xp.matmul(w.reshape(groups, o // groups, cols.shape[1]), cols)  # (G, O/G, N * prod(out))
    return xp.ascontiguousarray(y.reshape((o, n) + out).swapaxes(0, 1))


def conv_input_grad(
    xp: Any,
    gy: Array,
    w: Array,
    input_shape: Shape,
    stride: Shape,
    padding: Pairs,
    dilation: Shape,
    groups: int,
) -> Array:
    """The gradient of `conv` with respect to x, also the transposed convolution: one matmul
    (batched over groups and kernel offsets) gives each window's gradient, then one strided add per kernel offset folds the windows back (col2im)
    into the padded input, and the padding is cropped. Input positions no window reads (when the
    stride does not divide the padded length) keep a zero gradient.

    The fold works pixel-major, (G, *spatial, N, C/G), so each add runs over long contiguous rows
    (an output row times N * C/G) instead of one short image row at a time."""
    n, c = input_shape[:2]
    kernel, out = tuple(w.shape[2:]), tuple(gy.shape[2:])
    d, og, cg = len(kernel), w.shape[0] // groups, c // groups
    to_pixel_major = (1, *range(3, 3 + d), 0, 2)  # (N, G, ch, *sp) -> (G, *sp, N, ch)
    gym = (
        gy.reshape((n, groups, og) + out).transpose(to_pixel_major).reshape(groups, 1, math.prod(out) * n, og)
    )
    wk = w.reshape((groups, og, cg) + kernel).transpose(0, *range(3, 3 + d), 1, 2)
    # (G, 1, prod(out) * N, O/G) @ (G, prod(kernel), O/G, C/G), one gemm per (group, kernel offset)
    gcols = xp.matmul(gym, wk.reshape(groups, math.prod(kernel), og, cg)).reshape(
        (groups, *kernel, *out, n, cg)
    )
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(input_shape[2:], padding))
    gx = xp.zeros((groups, *padded, n, cg), dtype=gy.dtype)
    for offs, index in _taps(kernel, stride, dilation, out):
        gx[(slice(None), *index)] += gcols[(slice(None), *offs)]
    to_nchw = (1 + d, 0, 2 + d, *range(1, 1 + d))  # (G, *sp, N, ch) -> (N, G, ch, *sp)
    gx = _pad(xp, gx.transpose(to_nchw), tuple((-lo, -hi) for lo, hi in padding), 0)
    return xp.ascontiguousarray(gx).reshape(input_shape)


def conv_weight_grad(
    xp: Any,
    x: Array,
    gy: Array,
    weight_shape: Shape,
    stride: Shape,
    padding: Pairs,
    dilation: Shape,
    groups: int,
) -> Array:
    """The gradient of `conv` with respect to the weight: output gradient @ patchesᵀ, one matmul.
    The windows are those of `gy`'s spatial shape, which may be fewer than `x` allows (the weight
    gradient of a transposed convolution with output_padding)."""
    kernel, out = tuple(weight_shape[2:]), tuple(gy.shape[2:])
    cols = _im2col(xp, x, kernel, out, stride, padding, dilation, groups)
    return xp.matmul(_gy_matrix(gy, groups), cols.swapaxes(1, 2)).reshape(weight_shape)


# ---------------------------------------------------------------------- pooling
def _pool_geometry(
    spatial: Shape, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
) -> tuple[Shape, Pairs]:
    """The output shape and the (lo, hi) padding that makes the padded input exactly as long as the
    windows reach (hi grows past `padding` for ceil_mode windows, or is negative to drop input
    that no window reads)."""
    out = tuple(
        pool_output_size(*args, ceil_mode) for args in zip(spatial, kernel, stride, padding, dilation)
    )
    pairs = tuple(
        (p, (m - 1) * st + dl * (k - 1) + 1 - s - p)
        for s, k, st, p, dl, m in zip(spatial, kernel, stride, padding, dilation, out)
    )
    return out, pairs


def max_pool(
    xp: Any, x: Array, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool
) -> tuple[Array, Array]:
    """Max pooling as torch's max_pool{D}d(return_indices=True): the values and the int64 indices
    flattened over the unpadded input's spatial axes. A running maximum over kernel offsets
    reproduces torch's CPU scan exactly: padding is -inf, a later element wins only if strictly
    greater (ties keep the first) or NaN (the last NaN wins), and a window of -inf keeps its first
    real element."""
    spatial = tuple(x.shape[2:])
    out, pairs = _pool_geometry(spatial, kernel, stride, padding, dilation, ceil_mode)
    padded = _pad(xp, x, pairs, -math.inf)
    in_strides = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    starts = [xp.arange(m, dtype=xp.int64) * st - p for m, st, p in zip(out, stride, padding)]
    # offset of the window's first real element from its (possibly padded) start
    first = [-(-xp.maximum(-a, 0) // dl) * dl * s for a, dl, s in zip(starts, dilation, in_strides)]
    best = xp.full(x.shape[:2] + out, -math.inf, dtype=x.dtype)
    idx = xp.empty(x.shape[:2] + out, dtype=xp.int64)
    idx[...] = _along(xp, first, xp.add)
    for offs, index in _taps(kernel, stride, dilation, out):
        v = padded[(slice(None), slice(None), *index)]
        take = v > best
        take |= xp.isnan(v)
        # an arithmetic select and a NaN-propagating maximum: masked copies are several times slower
        idx += take * (sum(j * dl * s for j, dl, s in zip(offs, dilation, in_strides)) - idx)
        xp.maximum(best, v, out=best)
    idx += _along(xp, [a * s for a, s in zip(starts, in_strides)], xp.add)
    return best, idx


def _avg_divisor(
    xp: Any, spatial: Shape, kernel: Shape, stride: Shape, padding: Shape, out: Shape, count_include_pad: bool
) -> Array:
    """Torch's per-window divisor, (*out): the window clipped to input + padding when padding
    counts, else the number of real elements; both factor over axes."""
    sizes = []
    for s, k, st, p, m in zip(spatial, kernel, stride, padding, out):
        start = xp.arange(m, dtype=xp.int64) * st - p
        end = xp.minimum(start + k, s + p)
        sizes.append(end - start if count_include_pad else xp.minimum(end, s) - xp.maximum(start, 0))
    return _along(xp, sizes, xp.multiply)


def avg_pool(
    xp: Any, x: Array, kernel: Shape, stride: Shape, padding: Shape, ceil_mode: bool, count_include_pad: bool
) -> Array:
    """Average pooling as torch's avg_pool{D}d. The box sum is separable, so it runs axis by axis
    (sum(kernel) strided adds instead of prod(kernel)) over the zero-padded input."""
    d = len(kernel)
    out, pairs = _pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, (1,) * d, ceil_mode)
    y = _pad(xp, x, pairs, 0)
    for i, (k, st, m) in enumerate(zip(kernel, stride, out)):
        acc = y[_tap(2 + i, 0, m, st)].copy()
        for j in range(1, k):
            acc += y[_tap(2 + i, j, m, st)]
        y = acc
    y /= _avg_divisor(xp, tuple(x.shape[2:]), kernel, stride, padding, out, count_include_pad).astype(x.dtype)
    return y


def avg_pool_grad(
    xp: Any,
    gy: Array,
    input_shape: Shape,
    kernel: Shape,
    stride: Shape,
    padding: Shape,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Array:
    """The exact transpose of `avg_pool`: divide, spread each window's share back axis by axis in
    reverse order, and crop the padding."""
    spatial = tuple(input_shape[2:])
    d = len(kernel)
    out, pairs = _pool_geometry(spatial, kernel, stride, padding, (1,) * d, ceil_mode)
    g = gy / _avg_divisor(xp, spatial, kernel, stride, padding, out, count_include_pad).astype(gy.dtype)
    for i in reversed(range(d)):
        k, st, m = kernel[i], stride[i], out[i]
        shape = list(g.shape)
        shape[2 + i] = spatial[i] + sum(pairs[i])
        spread = xp.zeros(tuple(shape), dtype=gy.dtype)
        for j in range(k):
            spread[_tap(2 + i, j, m, st)] += g
        g = spread
    return _pad(xp, g, tuple((-lo, -hi) for lo, hi in pairs), 0)
