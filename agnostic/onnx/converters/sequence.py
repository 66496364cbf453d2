"""ONNX converters: sequences and optionals.

An ONNX sequence is a Python list of values (Tensors, or NumPy arrays where they are known on the
host), an empty optional is None and a full one is its value. These ops only move values around,
so they take host values as they are (`host=False`: ONNX's reference implementation wraps optionals
differently) and keep them on the host; ConcatFromSequence and SplitToSequence compute with
agnostic's ops once a Tensor is involved, so they stay differentiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import agnostic as ag
from agnostic.onnx import dtypes as onnx_dtypes
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, is_host, normalize_axis


def _sequence(value: Any, node: Node) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{node.describe()}: expected a sequence (a list), got {type(value).__name__}")
    return value


def _position(ctx: Context, value: Any, length: int, node: Node, past_end: bool = False) -> int:
    """A position input: a scalar in [-length, length) ([-length, length] with `past_end`)."""
    (pos,) = ctx.host_ints(value, "position")
    top = length + 1 if past_end else length
    if not -length <= pos < top:
        raise IndexError(f"{node.describe()}: position {pos} is out of range for a sequence of {length}")
    return pos + length if pos < 0 else pos


@converter("SequenceConstruct", since=11, host=False)
def _sequence_construct(node: Node) -> Run:
    return lambda ctx, *values: list(values)


@converter("SequenceEmpty", since=11, host=False)
def _sequence_empty(node: Node) -> Run:
    code = node.attr("dtype", 1)
    try:
        onnx_dtypes.from_onnx(code)
    except onnx_dtypes.UnsupportedDType as exc:
        raise Unsupported(str(exc)) from None
    return lambda ctx: []


@converter("SequenceLength", since=11, host=False)
def _sequence_length(node: Node) -> Run:
    return lambda ctx, seq: np.array(len(_sequence(seq, node)), dtype=np.int64)


@converter("SequenceAt", since=11, host=False)
def _sequence_at(node: Node) -> Run:
    def run(ctx: Context, seq: Any, position: Any) -> Any:
        seq = _sequence(seq, node)
        return seq[_position(ctx, position, len(seq), node)]

    return run


@converter("SequenceInsert", since=11, host=False)
def _sequence_insert(node: Node) -> Run:
    def run(ctx: Context, seq: Any, value: Any, position: Any = None) -> list[Any]:
        out = list(_sequence(seq, node))
        at = len(out) if position is None else _position(ctx, position, len(out), node, past_end=True)
        out.insert(at, value)
        return out

    return run


@converter("SequenceErase", since=11, host=False)
def _sequence_erase(node: Node) -> Run:
    def run(ctx: Context, seq: Any, position: Any = None) -> list[Any]:
        out = list(_sequence(seq, node))
        if not out:
            raise IndexError(f"{node.describe()}: cannot erase from an empty sequence")
        del out[len(out) - 1 if position is None else _position(ctx, position, len(out), node)]
        return out

    return run


@converter("ConcatFromSequence", since=11, host=False)
def _concat_from_sequence(node: Node) -> Run:
    axis = node.attr("axis")
    new_axis = node.attr("new_axis", 0)
    if new_axis not in (0, 1):
        raise Unsupported(f"new_axis must be 0 or 1, got {new_axis}")

    def run(ctx: Context, seq: Any) -> Any:
        seq = _sequence(seq, node)
        if not seq:
            raise ValueError(f"{node.describe()}: cannot concatenate an empty sequence")
        if is_host(seq):
            join = np.stack if new_axis else np.concatenate
            return join(seq, axis=axis)
        tensors = [ctx.tensor(v) for v in seq]
        rank = tensors[0].ndim + new_axis
        ax = normalize_axis(axis, rank, node)
        return ag.stack(tensors, axis=ax) if new_axis else ag.concat(tensors, axis=ax)

    return run


@converter("SplitToSequence", since=11, host=False)
def _split_to_sequence(node: Node) -> Run:
    axis = node.attr("axis", 0)
    keepdims = node.attr("keepdims", 1)

    def run(ctx: Context, x: Any, split: Any = None) -> list[Any]:
        ax = normalize_axis(axis, x.ndim, node)
        n = x.shape[ax]
        if split is None:
            lengths = [1] * n
        else:
            sizes = ctx.host(split, "split")
            if sizes.ndim == 0:
                step = int(sizes)
                if step <= 0:
                    raise ValueError(f"{node.describe()}: split {step} must be positive")
                lengths = [step] * (n // step) + ([n % step] if n % step else [])
            else:
                lengths = [int(v) for v in sizes]
                if any(v < 0 for v in lengths) or sum(lengths) != n:
                    raise ValueError(
                        f"{node.describe()}: split lengths {lengths} do not add up to axis {ax}'s {n}"
                    )
        pieces = []
        start = 0
        for length in lengths:
            key = (slice(None),) * ax + (slice(start, start + length),)
            pieces.append(x[key])
            start += length
        if split is None and not keepdims:
            pieces = [np.squeeze(p, ax) if is_host(p) else ag.squeeze(p, axis=ax) for p in pieces]
        return pieces

    return run


@converter("SequenceMap", since=17, host=False)
def _sequence_map(node: Node) -> Run:
    body = node.subgraph("body")

    def run(ctx: Context, seq: Any, *more: Any) -> Any:
        n = len(_sequence(seq, node))
        for extra in more:
            if isinstance(extra, list) and len(extra) != n:
                raise ValueError(
                    f"{node.describe()}: its sequences have different lengths ({n} and {len(extra)})"
                )
        outs: list[list[Any]] = [[] for _ in body.output_names]
        for i in range(n):
            values = [seq[i]] + [e[i] if isinstance(e, list) else e for e in more]
            results = body.run(ctx.device, {**ctx.env, **dict(zip(body.input_names, values))})
            for out, value in zip(outs, results):
                out.append(value)
        return tuple(outs) if len(outs) > 1 else outs[0]

    return run


@converter("Optional", since=15, host=False)
def _optional(node: Node) -> Run:
    node.attr("type", None)  # the element type, which the value carries
    return lambda ctx, value=None: value


@converter("OptionalHasElement", since=15, host=False)
def _optional_has_element(node: Node) -> Run:
    return lambda ctx, value=None: np.array(value is not None)


@converter("OptionalGetElement", since=15, host=False)
def _optional_get_element(node: Node) -> Run:
    def run(ctx: Context, value: Any) -> Any:
        if value is None:
            raise ValueError(f"{node.describe()}: the optional is empty (check it with OptionalHasElement)")
        return value

    return run
