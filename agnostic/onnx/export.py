"""`agnostic.onnx.export`: a model's forward as an ONNX file.

The forward is traced once on the graph-recording backend (`agnostic.onnx.trace`), with the model's
parameters and buffers copied to the host and installed as symbolic values named by their
`state_dict` names (restored afterwards, exception or not), in eval mode and without gradients. The
recorded ops are lowered by one table (`agnostic.onnx.lowering`). So the file is the same whichever
backend the model lives on.

Safety net: the forward is traced a second time with every dynamic input axis at other sizes; the two
graphs must be identical, else the graph depends on a size the user asked to be dynamic (a Python
loop over it, a size turned into a Python number) and export says which axis and where.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import agnostic
from agnostic import tracing
from agnostic.autodiff import no_grad
from agnostic.device import Device, default_backend
from agnostic.nn.module import Module
from agnostic.nn.parameter import Parameter
from agnostic.onnx.dtypes import to_onnx
from agnostic.onnx.legalize import legalize
from agnostic.onnx.lowering import Emitter, supports
from agnostic.onnx.trace import Dim, ExportError, Node, Recorder, Value, user_line, walk
from agnostic.tensor import Tensor

__all__ = ["export", "ExportError", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = min(23, onnx.defs.onnx_opset_version())
"""Opset 23: the newest whose every op ONNX Runtime implements on the CPU from release 1.22 on (the
installed onnxruntime 1.32 loads newer opsets too, but agnostic does not import it to ask)."""

MIN_OPSET = 7
"""The oldest opset asked for (NumPy broadcasting in ONNX's arithmetic starts there); each op's own
minimum is in the lowering table."""

AxesSpec = Mapping[str, Mapping[int, str] | Sequence[int]]


def export(
    model: Module, args: Any, path: str | os.PathLike[str] | IO[bytes], *, opset: int | None = None,
    input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
    dynamic_axes: AxesSpec | None = None,
) -> onnx.ModelProto:  # fmt: skip
    """Trace `model(*args)` and write it to `path` as an ONNX model (also returned).

    `args` is a tensor or a tuple of tensors (on any backend) or NumPy arrays: the example inputs.
    The first axis of every input and output is dynamic by default, named "batch"; `dynamic_axes`
    overrides per input or output, as torch.onnx.export's: {name: {axis: "dim name"}} or {name:
    [axes]}, and {name: {}} makes every axis of `name` static. `opset` defaults to `DEFAULT_OPSET`.
    """
    if not isinstance(model, Module):
        raise TypeError(f"export: expected an agnostic.nn.Module, got {type(model).__name__}")
    opset = _opset(opset)
    inputs = _host_inputs(args)
    in_names = _names(input_names, len(inputs), "input", "input_names")
    if len(set(in_names)) != len(in_names):
        raise ValueError(f"export: input_names {list(in_names)} repeat a name")
    spec = dict(dynamic_axes or {})
    in_axes = [_axes(spec.pop(n, None), n, a.ndim, True) for n, a in zip(in_names, inputs)]
    sizes = [{i: a.shape[i] for i in axes} for a, axes in zip(inputs, in_axes)]
    first = _trace(
        model, inputs, in_names, sizes, [{i: _others(n)[0] for i, n in s.items()} for s in sizes], opset
    )
    out_names = _names(output_names, len(first.outputs), "output", "output_names")
    unknown = set(spec) - set(out_names)
    if unknown:
        raise ValueError(
            f"export: dynamic_axes names {sorted(unknown)}, which are neither inputs {list(in_names)} nor "
            f"outputs {list(out_names)}"
        )
    out_axes = [spec.get(n) for n in out_names]
    model_proto = _model(first, in_names, in_axes, out_names, out_axes, opset, type(model).__name__)
    if any(sizes):
        changed = [{i: _others(n)[1] for i, n in s.items()} for s in sizes]
        second = _trace(model, inputs, in_names, changed, sizes, opset, again=True)
        other = _model(second, in_names, in_axes, out_names, out_axes, opset, type(model).__name__)
        _same_graph(model_proto.graph, other.graph, in_names, sizes, changed)
    onnx.save_model(model_proto, path)
    return model_proto


# ---------------------------------------------------------------------- arguments
def _opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"export: opset must be an int from {MIN_OPSET} to {newest} (the installed onnx's), got {opset!r}"
        )
    return opset


def _host_inputs(args: Any) -> list[np.ndarray]:
    items = list(args) if isinstance(args, (tuple, list)) else [args]
    out = []
    for i, a in enumerate(items):
        if isinstance(a, Tensor):
            out.append(np.array(a.numpy(), copy=True))
        elif isinstance(a, np.ndarray):
            out.append(np.array(a, copy=True))
        else:
            raise TypeError(f"export: input {i} must be a Tensor or a NumPy array, got {type(a).__name__}")
    return out


def _names(names: Sequence[str] | None, n: int, stem: str, what: str) -> list[str]:
    if names is None:
        return [stem] if n == 1 else [f"{stem}_{i}" for i in range(n)]
    names = list(names)
    if len(names) != n or not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"export: {what} must be {n} non-empty strings, got {names!r}")
    return names


def _axes(spec: Any, name: str, ndim: int, default: bool) -> dict[int, str]:
    """One input's or output's dynamic axes as {axis: dim name}."""
    if spec is None:
        return {0: "batch"} if default and ndim else {}
    pairs = spec.items() if isinstance(spec, Mapping) else ((a, None) for a in spec)
    out: dict[int, str] = {}
    for axis, label in pairs:
        if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
            raise ValueError(
                f"export: dynamic_axes[{name!r}]: axis {axis!r} is not an axis of a {ndim}-d tensor"
            )
        axis %= ndim
        out[axis] = label if label else ("batch" if axis == 0 else f"{name}_dim{axis}")
    return out


def _others(n: int) -> tuple[int, int]:
    """Two other sizes for an axis of size n: smaller where possible (a sequence axis may have a
    maximum length), and apart, so that no two of the three traced sizes give one floor division."""
    return (n - 1, n - 2) if n >= 3 else (n + 1, n + 2)


def _resize(a: np.ndarray, sizes: Mapping[int, int]) -> np.ndarray:
    """`a` with the given axes at other sizes, its entries repeated (integer ids stay valid)."""
    for axis, n in sizes.items():
        a = np.take(a, np.arange(n) % a.shape[axis], axis=axis)
    return a


# ---------------------------------------------------------------------- tracing
@dataclass
class _Traced:
    nodes: list[Node]
    inputs: list[Value]
    params: list[Value]
    outputs: list[Value]


class _Tracer:
    """What the low layers tell a running trace (`agnostic.tracing.Tracer`): an export sees no
    random draws (eval mode) and lifts no state."""

    def draw(self, device: Any, kind: str, args: tuple[Any, ...], seed: int | None, generator: Any) -> Any:
        raise ExportError(
            f"{user_line()}: the forward draws random numbers ({kind}); an exported graph is deterministic. "
            "Dropout draws nothing in eval mode (export puts the model in eval mode); move other draws out "
            "of forward"
        )

    def uses(self, holder: Any) -> None:
        pass

    def grad_read(self, param: Any) -> None:
        pass

    def grad_written(self, param: Any) -> None:
        pass


def _trace(
    model: Module, inputs: list[np.ndarray], names: list[str], sizes: list[dict[int, int]],
    shadow_sizes: list[dict[int, int]], opset: int, again: bool = False,
) -> _Traced:  # fmt: skip
    axes = ", ".join(f"axis {i} of input {n!r}" for n, s in zip(names, sizes) for i in s) or "no axes"
    recorder = Recorder(lambda op: supports(op, opset), axes)
    dev = Device(recorder, "onnx")
    values = [
        Value(_resize(a, s), _resize(a, t), "input", n, dynamic=True)
        for a, n, s, t in zip(inputs, names, sizes, shadow_sizes)
    ]
    with _Installed(model, dev) as installed:
        try:
            with no_grad(), default_backend(dev), tracing.tracing_with(_Tracer()):
                result = model(*(Tensor._make(v, dev) for v in values))
        except ExportError:
            raise
        except Exception as exc:
            if not again:
                raise
            raise ExportError(
                f"export: the forward fails when {axes} change size ({type(exc).__name__}: {exc}); the model "
                "depends on that size: mark the axis static in dynamic_axes"
            ) from exc
    outputs = []
    for t in _leaves(result):
        if not isinstance(t, Tensor) or not isinstance(t._data, Value):
            raise ExportError(f"export: the forward returns {type(t).__name__}; outputs must be tensors")
        outputs.append(t._data)
    if not outputs:
        raise ExportError("export: the forward returns no tensors")
    return _Traced(recorder.nodes, values, installed.params, outputs)


def _leaves(result: Any) -> list[Any]:
    """The tensors of a nested result (tuples, lists, dict values); None entries are left out."""
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in _leaves(r)]
    if isinstance(result, dict):
        return [x for r in result.values() for x in _leaves(r)]
    return [] if result is None else [result]


class _Installed:
    """The model's parameters and buffers as named symbolic values on the recording device, tensors
    its forward holds otherwise (plain attributes, closure cells) as constants there, and eval mode:
    all restored on exit, exception or not (as `agnostic.compile` installs and restores its state)."""

    def __init__(self, model: Module, dev: Device) -> None:
        self.model, self.dev = model, dev
        self.params: list[Value] = []
        self.undo: list[Any] = []

    def __enter__(self) -> _Installed:
        try:
            self._install()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _install(self) -> None:
        model, dev = self.model, self.dev
        modes = [(m, m.training) for m in model.modules()]
        self.undo.append(lambda: [m.train(mode) for m, mode in modes])
        model.eval()
        for name, p in model.named_parameters():
            v = Value(_host(p), _host(p), "param", name)
            self.params.append(v)
            data, device = p._data, p._device
            self.undo.append(lambda p=p, data=data, device=device: _set_param(p, data, device))
            _set_param(p, v, dev)
        for prefix, m in model.named_modules():
            for key, b in list(m._buffers.items()):
                if isinstance(b, Tensor):
                    v = Value(_host(b), _host(b), "param", f"{prefix}.{key}" if prefix else key)
                    self.params.append(v)
                    self.undo.append(lambda m=m, key=key, b=b: m._buffers.__setitem__(key, b))
                    m._buffers[key] = Tensor._make(v, dev)
            for key, t in list(vars(m).items()):
                if isinstance(t, Tensor) and t._device is not dev:
                    self.undo.append(lambda m=m, key=key, t=t: vars(m).__setitem__(key, t))
                    vars(m)[key] = _constant(t, dev)
            for cls in type(m).__mro__:
                for fn in vars(cls).values():
                    for cell in getattr(fn, "__closure__", None) or ():
                        self._swap_cell(cell)

    def _swap_cell(self, cell: Any) -> None:
        try:
            t = cell.cell_contents
        except ValueError:  # an empty cell
            return
        if isinstance(t, Tensor) and t._device is not self.dev:
            self.undo.append(lambda: setattr(cell, "cell_contents", t))
            cell.cell_contents = _constant(t, self.dev)

    def __exit__(self, *exc: Any) -> None:
        while self.undo:
            self.undo.pop()()


def _host(t: Tensor) -> np.ndarray:
    return np.array(t.numpy(), copy=True)


def _set_param(p: Parameter, data: Any, device: Device) -> None:
    p._data, p._device = data, device


def _constant(t: Tensor, dev: Device) -> Tensor:
    a = _host(t)
    return Tensor._make(Value(a, a, "const"), dev)


# ---------------------------------------------------------------------- the ONNX model
def _model(
    traced: _Traced, in_names: list[str], in_axes: list[dict[int, str]], out_names: list[str],
    out_specs: list[Any], opset: int, graph_name: str,
) -> onnx.ModelProto:  # fmt: skip
    e = Emitter(opset)
    for v, n in zip(traced.inputs, in_names):
        e.bind(v, n)
    for v in traced.params:
        e.bind(v, v.name)
    kept = _needed(traced.nodes, traced.outputs)
    e.used = {id(v) for node in kept for v in _values(node.params)} | {id(v) for v in traced.outputs}
    for node in kept:
        e.emit(node)
    produced = {o for n in e.nodes for o in n.output}
    rename: dict[str, str] = {}
    for v, want in zip(traced.outputs, out_names):
        have = e.name(v)
        if have in produced and have not in rename:
            rename[have] = want
        else:
            e.nodes.append(
                helper.make_node("Identity", [rename.get(have, have)], [want], name=f"Identity_{want}")
            )
    for node in e.nodes:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    reads = {x for n in e.nodes for x in n.input}
    params = [numpy_helper.from_array(v.value, v.name) for v in traced.params if v.name in reads]
    types = {n: to_onnx(Recorder.dtype_table[v.dtype]) for n, v in zip(in_names, traced.inputs)}
    types.update((t.name, t.data_type) for t in params + e.initializers)
    nodes = legalize(e.nodes, types, opset, e.fresh)
    axis_names = {(id(v), i): label for v, axes in zip(traced.inputs, in_axes) for i, label in axes.items()}
    graph = helper.make_graph(
        nodes, graph_name,
        [_info(n, v, {i: axes[i] for i in axes}) for n, v, axes in zip(in_names, traced.inputs, in_axes)],
        [_info(n, v, _out_axes(n, v, spec, axis_names)) for n, v, spec in zip(out_names, traced.outputs, out_specs)],
        initializer=params + e.initializers,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph, opset_imports=opsets, producer_name="agnostic", producer_version=agnostic.__version__,
        ir_version=helper.find_min_ir_version_for(opsets),
    )  # fmt: skip


def _values(obj: Any) -> list[Value]:
    """The Values an op's arguments read, those its dims are computed from included."""
    out: list[Value] = []
    for x in walk(obj):
        if isinstance(x, Value):
            out.append(x)
        else:
            out += _values(x.expr[1]) if x.expr[0] == "dim" else _values(list(x.expr[1:]))
    return out


def _needed(nodes: list[Node], outputs: list[Value]) -> list[Node]:
    """The nodes the outputs depend on, in order (the rest is dead code: a pooling's unused indices,
    a parameter transposed for nothing)."""
    live = {id(v) for v in outputs}
    kept = []
    for node in reversed(nodes):
        if any(o is not None and id(o) in live for o in node.outputs):
            kept.append(node)
            live.update(id(v) for v in _values(node.params))
    return kept[::-1]


def _info(name: str, v: Value, axes: Mapping[int, str]) -> onnx.ValueInfoProto:
    shape = [axes.get(i, n) for i, n in enumerate(v.value.shape)]
    return helper.make_tensor_value_info(name, to_onnx(Recorder.dtype_table[v.dtype]), shape)


def _out_axes(name: str, v: Value, spec: Any, input_axes: Mapping[tuple[int, int], str]) -> dict[int, str]:
    """An output's dynamic axes: as `dynamic_axes` says, else those that follow an input axis (named
    as it is), axis 0 as "batch" and others by the output's name."""
    if spec is not None:
        return _axes(spec, name, v.value.ndim, False)
    out = {}
    for i, d in enumerate(v.dims()):
        if isinstance(d, Dim):
            origin = input_axes.get((id(d.expr[1]), d.expr[2])) if d.expr[0] == "dim" else None
            out[i] = origin or ("batch" if i == 0 else f"{name}_dim{i}")
    return out


def _same_graph(
    a: onnx.GraphProto, b: onnx.GraphProto, names: list[str], sizes: list[dict[int, int]],
    changed: list[dict[int, int]],
) -> None:  # fmt: skip
    """Raise ExportError where two traces at other sizes of the dynamic axes gave other graphs."""
    if a.SerializeToString() == b.SerializeToString():
        return
    where = "the graph's constants"
    for x, y in zip(a.node, b.node):
        if x.SerializeToString() != y.SerializeToString():
            where = x.doc_string or x.op_type
            break
    else:
        if len(a.node) != len(b.node):
            extra = (a.node if len(a.node) > len(b.node) else b.node)[min(len(a.node), len(b.node))]
            where = extra.doc_string or extra.op_type
        else:
            consts = {t.name for t in a.initializer if t not in b.initializer}
            user = next((n for n in a.node if consts & set(n.input)), None)
            where = user.doc_string if user is not None else where
    axes = "; ".join(
        f"axis {i} of input {n!r} ({s[i]} and {c[i]})" for n, s, c in zip(names, sizes, changed) for i in s
    )
    raise ExportError(
        f"export: the graph depends on the size of {axes}, which is dynamic: {where} differs between the "
        "sizes (a Python loop or branch over the size, or a size turned into a Python number). Mark the "
        "axis static, e.g. dynamic_axes={name: {}} for input name, or export at the size you will run"
    )
