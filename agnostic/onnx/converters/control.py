"""ONNX converters: If, Loop and Scan, which run their subgraphs with the enclosing graph's values.

A subgraph reads values of the graphs around it by name, so each run starts from a copy of the
enclosing environment (`ctx.env`) plus the subgraph's own inputs. Branch conditions, trip counts
and loop conditions are read on the host (the loop is unrolled eagerly, as Python would run it);
inside a compiled step an If whose condition is computed from the inputs runs both branches and
selects with `where`, so it still traces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import agnostic as ag
from agnostic import dtypes, tracing
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter, normalize_axis
from agnostic.tensor import Tensor


def _scope(ctx: Context, graph: Any, values: list[Any]) -> dict[str, Any]:
    """The environment a subgraph runs in: the enclosing values, then its own inputs."""
    env = dict(ctx.env)
    env.update(zip(graph.input_names, values))
    return env


def _flag(ctx: Context, value: Any, what: str) -> bool:
    flag = np.asarray(ctx.host(value, what)).reshape(-1)
    if flag.size != 1:
        raise ValueError(f"{ctx.node.describe()}: {what} must hold one value, got {flag.size}")
    return bool(flag[0])


def _stack(ctx: Context, values: list[Any], axis: int = 0) -> Any:
    if all(isinstance(v, np.ndarray) for v in values):
        return np.stack(values, axis=axis)
    return ag.stack([ctx.tensor(v) for v in values], axis=axis)


def _empty(graph: Any, index: int) -> np.ndarray:
    """A scan output of zero iterations, shaped from the body's declared output type."""
    declared = graph.output_types[index]
    dtype, shape = declared if declared is not None else (None, None)
    if dtype is None or shape is None or any(s is None for s in shape):
        raise ValueError(
            f"a loop ran zero times and its body output {graph.output_names[index]!r} declares no full "
            "type, so the empty scan output's shape is unknown"
        )
    return np.zeros((0, *shape), dtype=dtypes.to_numpy_dtype(dtype))


# ---------------------------------------------------------------------- If
@converter("If", since=1)
def _if(node: Node) -> Run:
    then_graph, else_graph = node.subgraph("then_branch"), node.subgraph("else_branch")
    for name, g in (("then_branch", then_graph), ("else_branch", else_graph)):
        if len(g.output_names) != len(node.outputs):
            raise Unsupported(f"{name} has {len(g.output_names)} outputs, the node {len(node.outputs)}")

    def run(ctx: Context, cond: Any) -> tuple[Any, ...]:
        if isinstance(cond, Tensor) and tracing.tracing():
            return _select(ctx, cond, then_graph.run(ctx.device, _scope(ctx, then_graph, [])),
                           else_graph.run(ctx.device, _scope(ctx, else_graph, [])))  # fmt: skip
        graph = then_graph if _flag(ctx, cond, "cond") else else_graph
        return tuple(graph.run(ctx.device, _scope(ctx, graph, [])))

    return run


def _select(ctx: Context, cond: Tensor, then: list[Any], other: list[Any]) -> tuple[Any, ...]:
    """Both branches' outputs, chosen element-wise by a symbolic condition (inside a compiled step)."""
    out = []
    c = ag.reshape(cond, ())
    for i, (a, b) in enumerate(zip(then, other)):
        if not isinstance(a, (Tensor, np.ndarray)) or not isinstance(b, (Tensor, np.ndarray)):
            raise ValueError(f"{ctx.node.describe()}: output {i} is not a tensor; run the model eagerly")
        a, b = ctx.tensor(a), ctx.tensor(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"{ctx.node.describe()}: its condition is symbolic in a compiled step, so both branches run "
                f"and are selected element-wise, which needs one shape and dtype; output {i} is "
                f"{a.dtype.name}{list(a.shape)} and {b.dtype.name}{list(b.shape)}: run the model eagerly"
            )
        out.append(ag.where(c, a, b))
    return tuple(out)


# ---------------------------------------------------------------------- Loop
@converter("Loop", since=1)
def _loop(node: Node) -> Run:
    body = node.subgraph("body")
    n_carried = len(node.inputs) - 2
    n_scan = len(body.output_names) - 1 - n_carried
    if len(body.input_names) != n_carried + 2 or n_scan < 0 or len(node.outputs) > n_carried + n_scan:
        raise Unsupported(
            f"its body has {len(body.input_names)} inputs and {len(body.output_names)} outputs for "
            f"{n_carried} loop-carried values (ONNX: 2 + N inputs, 1 + N + K outputs)"
        )

    def run(ctx: Context, trip: Any, cond: Any, *carried: Any) -> tuple[Any, ...]:
        limit = None if trip is None else int(np.asarray(ctx.host(trip, "trip count")).reshape(-1)[0])
        going = True if cond is None else _flag(ctx, cond, "cond")
        values, scans, i = list(carried), [[] for _ in range(n_scan)], 0
        while going and (limit is None or i < limit):
            state = [np.asarray(i, dtype=np.int64), np.asarray(going)] + values
            outs = body.run(ctx.device, _scope(ctx, body, state))
            if cond is not None:  # without a cond input, ONNX ignores the body's condition output
                going = _flag(ctx, outs[0], "the body's condition output")
            values = list(outs[1 : 1 + n_carried])
            for j, v in enumerate(outs[1 + n_carried :]):
                scans[j].append(v)
            i += 1
        stacked = [_stack(ctx, s) if s else _empty(body, 1 + n_carried + j) for j, s in enumerate(scans)]
        return tuple(values + stacked)[: len(node.outputs)]

    return run


# ---------------------------------------------------------------------- Scan
def _scan(ctx: Context, node: Node, body: Any, states: list[Any], inputs: list[Any], spec: dict[str, list[int]]
          ) -> list[Any]:  # fmt: skip
    """One Scan (opset 9 semantics): the states threaded through the body over slices of the inputs."""
    inputs = [ctx.tensor(x) for x in inputs]
    axes = [normalize_axis(a, x.ndim, node) for a, x in zip(spec["in_axes"], inputs)]
    lengths = {x.shape[a] for x, a in zip(inputs, axes)}
    if len(lengths) != 1:
        raise ValueError(
            f"{node.describe()}: scan inputs differ in length along their scan axes: {sorted(lengths)}"
        )
    (length,) = lengths
    slices = [
        [ag.take(x, np.asarray(t if d == 0 else length - 1 - t), axis=a) for t in range(length)]
        for x, a, d in zip(inputs, axes, spec["in_dirs"])
    ]
    n_states = len(states)
    scans: list[list[Any]] = [[] for _ in range(len(body.output_names) - n_states)]
    for t in range(length):
        outs = body.run(ctx.device, _scope(ctx, body, states + [s[t] for s in slices]))
        states = list(outs[:n_states])
        for j, v in enumerate(outs[n_states:]):
            scans[j].append(v)
    results = []
    for j, s in enumerate(scans):
        if not s:
            results.append(_empty(body, n_states + j))
            continue
        if spec["out_dirs"][j]:
            s = s[::-1]
        rank = np.ndim(s[0]) if isinstance(s[0], np.ndarray) else s[0].ndim
        results.append(_stack(ctx, s, axis=normalize_axis(spec["out_axes"][j], rank + 1, node)))
    return states + results


def _scan_spec(node: Node, n_in: int, n_out: int, input_dirs_name: str) -> dict[str, list[int]]:
    spec = {
        "in_dirs": node.attr(input_dirs_name, None) or [0] * n_in,
        "in_axes": node.attr("scan_input_axes", None) or [0] * n_in,
        "out_dirs": node.attr("scan_output_directions", None) or [0] * n_out,
        "out_axes": node.attr("scan_output_axes", None) or [0] * n_out,
    }
    if any(len(spec[k]) != n for k, n in (("in_dirs", n_in), ("in_axes", n_in), ("out_dirs", n_out),
                                          ("out_axes", n_out))):  # fmt: skip
        raise Unsupported(
            f"scan axes/directions attributes do not match {n_in} scan inputs and {n_out} outputs"
        )
    return spec


@converter("Scan", since=9)
def _scan_9(node: Node) -> Run:
    body = node.subgraph("body")
    m = node.attr("num_scan_inputs")
    n_states = len(node.inputs) - m
    spec = _scan_spec(node, m, len(body.output_names) - n_states, "scan_input_directions")

    def run(ctx: Context, *args: Any) -> tuple[Any, ...]:
        return tuple(_scan(ctx, node, body, list(args[:n_states]), list(args[n_states:]), spec))

    return run


@converter("Scan", since=8)
def _scan_8(node: Node) -> Run:
    body = node.subgraph("body")
    m = node.attr("num_scan_inputs")
    n_states = len(node.inputs) - 1 - m
    n_out = len(body.output_names) - n_states
    directions = node.attr("directions", None) or [0] * m
    spec = {"in_dirs": directions, "in_axes": [0] * m, "out_dirs": [0] * n_out, "out_axes": [0] * n_out}

    def run(ctx: Context, lens: Any, *args: Any) -> tuple[Any, ...]:
        """Opset 8: every input has a batch axis first; the batch entries are scanned one by one."""
        states, inputs = [ctx.tensor(a) for a in args[:n_states]], [ctx.tensor(a) for a in args[n_states:]]
        batch, length = inputs[0].shape[0], inputs[0].shape[1]
        if lens is not None and any(n != length for n in ctx.host_ints(lens, "sequence_lens")):
            raise ValueError(
                f"{node.describe()}: sequence_lens shorter than the scan length ({length}) are not supported"
            )
        per_batch = [
            _scan(ctx, node, body, [s[b] for s in states], [x[b] for x in inputs], spec) for b in range(batch)
        ]
        return tuple(_stack(ctx, [r[k] for r in per_batch]) for k in range(n_states + n_out))

    return run
