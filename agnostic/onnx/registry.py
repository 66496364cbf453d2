"""The import converter registry: one function per ONNX op type and opset range.

A converter is registered for the opset version where an op's semantics last changed
(`@converter("Softmax", since=13)`); a model runs the newest converter whose `since` is at most the
version its opset import names for the op's domain. A converter is called once per node at load
time with the node's decoded attributes (`Node`): it checks them, raises `Unsupported` for what it
cannot run, and returns the function that runs the node, `run(ctx, *inputs)`, written with
agnostic's own differentiable ops, so an imported model trains.

Values at run time are Tensors, or NumPy arrays for values known without the graph's inputs
(initializers that are not floating, Constant nodes, shapes): a shape computation stays on the host
(exact, and static under `ag.compile`). `ctx.tensor(v)` makes either a Tensor on the model's
backend, `ctx.host(v)` either a NumPy array (a Tensor is read back, which a compiled step cannot).
A node whose given inputs are all on the host is run by ONNX's reference implementation there, so
a converter only writes the Tensor path. An ONNX sequence is a Python list of such values, an
empty optional is None (as is an omitted optional input).

Subgraphs (If's branches, Loop's and Scan's body, SequenceMap's body) are loaded with their node:
`node.subgraph("body")` at load time is a `Graph` whose `input_names`/`output_names` are the
body's. At run time a converter runs it with the enclosing graph's values, which the body may read
by name, plus its own inputs:

    body = node.subgraph("body")
    def run(ctx, *inputs):
        outs = body.run(ctx.device, {**ctx.env, **dict(zip(body.input_names, values))})

`ctx.env` is the enclosing graph's environment (name -> value) when the node runs; `Graph.run`
does not change the dict it is given beyond adding the body's own values, so pass a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agnostic import dtypes, tracing
from agnostic.device import Device
from agnostic.dtypes import DType
from agnostic.tensor import Tensor

__all__ = [
    "Context",
    "Node",
    "Run",
    "Unsupported",
    "converter",
    "lookup",
    "registered",
    "runs_on_host",
    "REQUIRED",
    "is_host",
    "normalize_axis",
    "normalize_axes",
]

Run = Callable[..., Any]
"""`run(ctx, *inputs)`: a node's outputs (one value, or a tuple for several) from its inputs."""

Builder = Callable[["Node"], Run]

_TABLE: dict[tuple[str, str], list[tuple[int, Builder]]] = {}
_OWN_HOST: set[Builder] = set()  # builders whose run takes host values itself
_HOST_INPUTS: dict[Builder, frozenset[int]] = {}  # inputs a builder's run reads on the host


class Unsupported(Exception):
    """What a converter cannot run (an attribute value, a dtype, an input): raised at load time."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""`node.attr(name)`'s default: the attribute must be present."""


def converter(
    op_type: str, since: int = 1, domain: str = "", host: bool = True, host_inputs: tuple[int, ...] = ()
) -> Callable[[Builder], Builder]:
    """Register `builder` for `op_type` (in `domain`) from opset version `since` on.

    `host=False`: the node is never run by ONNX's reference implementation, even when its inputs
    are all on the host (nor folded at load time); its `run` gets host values as they are (the
    sequence and optional ops, whose reference wraps values differently than the importer).
    `host_inputs`: the inputs its run reads on the host (Resize's scales, Pad's value): a floating
    initializer that only such inputs read is a constant of the graph, not a Parameter, so the
    model still compiles."""

    def register(builder: Builder) -> Builder:
        versions = _TABLE.setdefault((_domain(domain), op_type), [])
        if any(v == since for v, _ in versions):
            raise ValueError(f"converter for {op_type} since opset {since} registered twice")
        versions.append((since, builder))
        versions.sort(key=lambda vb: vb[0])
        if not host:
            _OWN_HOST.add(builder)
        if host_inputs:
            _HOST_INPUTS[builder] = frozenset(host_inputs)
        return builder

    return register


def runs_on_host(builder: Builder | None) -> bool:
    """Whether a node of this converter whose inputs are all on the host may be run (or folded at
    load time) by ONNX's reference implementation; True where there is no converter."""
    return builder not in _OWN_HOST


def host_inputs(builder: Builder | None) -> frozenset[int]:
    """The inputs `builder`'s run reads on the host (see `converter`)."""
    return _HOST_INPUTS.get(builder, frozenset()) if builder is not None else frozenset()


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def lookup(domain: str, op_type: str, version: int) -> Builder | None:
    """The converter for `op_type` at opset `version`, or None."""
    _load_converters()
    found = None
    for since, builder in _TABLE.get((_domain(domain), op_type), ()):
        if since <= version:
            found = builder
    return found


def registered() -> dict[tuple[str, str], list[int]]:
    """Every (domain, op type) with a converter, and the opset versions where one starts."""
    _load_converters()
    return {key: [v for v, _ in versions] for key, versions in sorted(_TABLE.items())}


_loaded = False


def _load_converters() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from agnostic.onnx import converters  # noqa: F401  (each module registers its ops)


@dataclass
class Node:
    """One ONNX node as a converter sees it at load time."""

    op_type: str
    name: str
    domain: str
    version: int  # the opset version the model imports for the node's domain
    inputs: list[str]  # value names; "" for an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any]  # decoded: int, float, str, np.ndarray, lists of those, or subgraphs
    static: dict[int, np.ndarray] = field(default_factory=dict)  # inputs known at load time
    input_types: list[Any] = field(default_factory=list)  # per input: (DType | None, shape | None)
    used: set[str] = field(default_factory=set)
    graphs: dict[str, Any] = field(default_factory=dict)  # attribute name -> loaded subgraph

    def attr(self, name: str, default: Any = REQUIRED) -> Any:
        """Attribute `name` (decoded), or `default`; marks it as handled."""
        self.used.add(name)
        if name in self.attrs:
            return self.attrs[name]
        if default is REQUIRED:
            raise Unsupported(f"required attribute {name!r} is missing")
        return default

    def has(self, name: str) -> bool:
        return name in self.attrs

    def input_given(self, i: int) -> bool:
        """Whether optional input `i` is given (present and not the empty name)."""
        return i < len(self.inputs) and self.inputs[i] != ""

    def static_input(self, i: int) -> np.ndarray | None:
        """Input `i`'s value when it is known at load time, else None."""
        return self.static.get(i)

    def input_dtype(self, i: int) -> DType | None:
        """Input `i`'s dtype where the model declares it (inputs, initializers, value_info)."""
        if i < len(self.input_types) and self.input_types[i] is not None:
            return self.input_types[i][0]
        return None

    def subgraph(self, name: str) -> Any:
        """The loaded subgraph in attribute `name` (If's branches, Loop's and Scan's body)."""
        self.used.add(name)
        try:
            return self.graphs[name]
        except KeyError:
            raise Unsupported(f"graph attribute {name!r} is missing") from None

    def describe(self) -> str:
        label = f"{self.op_type}" + (f" {self.name!r}" if self.name else "")
        return f"{label} (opset {self.version})"


class Context:
    """What a node's run function gets besides its inputs: the backend, the enclosing graph's
    values (`env`, for subgraphs) and conversions."""

    __slots__ = ("device", "node", "env")

    def __init__(self, device: Device, node: Node | None = None, env: dict[str, Any] | None = None) -> None:
        self.device = device
        self.node = node
        self.env: dict[str, Any] = {} if env is None else env

    def tensor(self, value: Any, dtype: DType | None = None) -> Tensor:
        """`value` (a Tensor, NumPy array or Python number) as a Tensor on the model's backend."""
        if isinstance(value, Tensor):
            return value if dtype is None or value.dtype == dtype else value.astype(dtype)
        from agnostic import ops

        array = np.asarray(value)
        d = dtype if dtype is not None else dtypes.as_dtype(array.dtype)
        return ops.asarray(array, dtype=d, device=self.device)

    def host(self, value: Any, what: str = "input") -> np.ndarray:
        """`value` as a NumPy array: a Tensor is read back (only where values are concrete)."""
        if value is None or isinstance(value, np.ndarray):
            return value
        if isinstance(value, Tensor):
            if tracing.tracing():
                node = self.node.describe() if self.node is not None else "a node"
                raise Unsupported(
                    f"{node} needs the value of its {what} on the host (a shape, an index, a count), "
                    "but it is computed from the model's inputs, which are symbolic inside a compiled "
                    "step: run the model eagerly, or make that value a constant of the graph"
                )
            return value.numpy()
        return np.asarray(value)

    def host_ints(self, value: Any, what: str = "input") -> list[int]:
        """An integer input (a shape, axes, pads) as a list of Python ints."""
        return [int(v) for v in np.asarray(self.host(value, what)).reshape(-1)]


def is_host(value: Any) -> bool:
    """Whether `value` is known on the host (a NumPy array, or a sequence of them) rather than
    holding a Tensor."""
    if isinstance(value, list):
        return all(isinstance(v, np.ndarray) for v in value)
    return isinstance(value, np.ndarray)


def normalize_axis(axis: int, rank: int, node: Node | None = None) -> int:
    """`axis` in [-rank, rank) as a non-negative axis; an Unsupported-free ValueError otherwise."""
    if not -rank <= axis < max(rank, 1):
        where = f"{node.describe()}: " if node is not None else ""
        raise ValueError(f"{where}axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def normalize_axes(axes: Sequence[int], rank: int, node: Node | None = None) -> tuple[int, ...]:
    return tuple(normalize_axis(int(a), rank, node) for a in axes)
