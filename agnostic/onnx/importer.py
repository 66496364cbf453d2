"""`agnostic.onnx.load`: an ONNX model as an ordinary Module that runs (and trains) on any backend.

Loading checks the whole file before anything runs: the protobuf, the opsets, every value's
producer (a missing initializer, a cycle), external data (inside the model's folder, within its
file), and every node against the converter registry; what cannot run is one `OnnxImportError`
listing every such node. Nothing in the file is executed as code.

Floating initializers become Parameters (trainable) named as in the file, so `state_dict` keys are
the ONNX names; BatchNorm's running statistics become buffers, as in torch. Other initializers
become (non-persistent) buffers and, with Constant nodes and the nodes computed from them alone,
are known at load time: that part of the graph (shapes, axes, indices) is folded on the host with
ONNX's own reference implementation, and shape arithmetic at run time (Shape -> Gather -> Concat ->
Reshape) stays on the host too, exact and static under `ag.compile`. Sequences are lists, an empty
optional is None (see registry.py).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from agnostic import dtypes
from agnostic.device import Device, as_device
from agnostic.nn.module import Module
from agnostic.nn.parameter import Parameter
from agnostic.onnx import dtypes as onnx_dtypes
from agnostic.onnx.registry import Context, Node, Unsupported, host_inputs, is_host, lookup, runs_on_host
from agnostic.tensor import Tensor

__all__ = ["load", "OnnxImportError", "OnnxModule", "MIN_OPSET"]

MIN_OPSET = 1
"""The oldest default-domain opset the importer reads. Opset 7 on is covered op by op; in older
models (most ops were redefined at opset 6 or 7) a node runs where its op's converter covers that
version, and one whose op changed since is refused by name at load time, like any unsupported node."""

_MAX_FILE_BYTES = 2**31  # protobuf's own limit for one message
_RANDOM_OPS = frozenset(
    {
        "Bernoulli",
        "Dropout",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
    }
)


class OnnxImportError(ValueError):
    """A model that cannot be loaded: malformed, unsafe, or using what agnostic cannot run."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("agnostic.onnx needs the onnx package: pip install agnostic[onnx]") from exc
    return onnx


# ---------------------------------------------------------------------- reading the file
def read_model(source: Any) -> tuple[Any, str, Path | None]:
    """`source` (a path, bytes or an onnx.ModelProto) as (ModelProto, a label for errors, folder
    for external data)."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, "the model", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse(bytes(source), "the model bytes"), "the model bytes", None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise OnnxImportError(f"cannot open ONNX file {label}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OnnxImportError(f"{label} is not a regular file")
            if info.st_size > _MAX_FILE_BYTES:
                raise OnnxImportError(f"{label} is {info.st_size} bytes, over protobuf's 2 GiB limit")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        finally:
            os.close(fd)
        return _parse(data, label), label, path.resolve().parent
    raise TypeError(
        f"agnostic.onnx.load: source must be a path, bytes or an onnx.ModelProto, got {type(source).__name__}"
    )


def _parse(data: bytes, label: str) -> Any:
    onnx = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise OnnxImportError(f"{label} is not a valid ONNX protobuf: {exc}") from exc
    if not model.HasField("graph"):
        raise OnnxImportError(f"{label} holds no graph (not an ONNX model)")
    return model


def _external_data(tensor: Any, folder: Path | None, label: str) -> bytes:
    """The bytes of a tensor stored outside the model file, read only from inside its folder."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if folder is None:
        raise OnnxImportError(
            f"{label}: tensor {tensor.name!r} keeps its data in external file {location!r}; load the "
            "model from its path so the file can be found next to it"
        )
    if not location or os.path.isabs(location) or ".." in Path(location).parts:
        raise OnnxImportError(
            f"{label}: tensor {tensor.name!r} points to external data {location!r} outside the model's folder"
        )
    target = (folder / location).resolve()
    if folder not in target.parents:
        raise OnnxImportError(
            f"{label}: tensor {tensor.name!r}'s external data {location!r} resolves outside the model's "
            f"folder {folder}"
        )
    try:
        offset, length = int(info.get("offset", 0)), int(info["length"]) if "length" in info else None
    except ValueError as exc:
        raise OnnxImportError(f"{label}: tensor {tensor.name!r}: bad external data offset/length") from exc
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise OnnxImportError(
            f"{label}: tensor {tensor.name!r}'s external data {location!r} cannot be opened: {exc.strerror}"
        ) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OnnxImportError(f"{label}: external data {location!r} is not a regular file")
        size = st.st_size
        length = size - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > size:
            raise OnnxImportError(
                f"{label}: tensor {tensor.name!r} reads bytes {offset}..{offset + length} of "
                f"{location!r}, which has {size}"
            )
        os.lseek(fd, offset, os.SEEK_SET)
        data = b""
        while len(data) < length:
            chunk = os.read(fd, length - len(data))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)


def tensor_value(tensor: Any, folder: Path | None, label: str) -> np.ndarray:
    """A TensorProto's value as a NumPy array (external data read safely, sizes checked)."""
    onnx = _onnx()
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.raw_data = _external_data(tensor, folder, label)
        del copy.external_data[:]
        copy.data_location = onnx.TensorProto.DEFAULT
        tensor = copy
    _check_tensor(tensor, label)
    try:
        return np.array(onnx.numpy_helper.to_array(tensor))
    except Exception as exc:
        raise OnnxImportError(
            f"{label}: tensor {tensor.name!r} (dims {list(tensor.dims)}) cannot be read: {exc}"
        ) from exc


_PACKED_TYPES = frozenset({21, 22, 23, 25, 26})  # (U)INT4, FLOAT4E2M1, (U)INT2: several per byte


def _check_tensor(tensor: Any, label: str) -> None:
    """Dims that are not negative, a known element type, and raw data of exactly the size the
    dims need: a file that lies about a tensor's size is refused before any array is made."""
    onnx = _onnx()
    dims = [int(d) for d in tensor.dims]
    name = onnx_dtypes.ONNX_NAMES.get(tensor.data_type, str(tensor.data_type))
    if any(d < 0 for d in dims):
        raise OnnxImportError(f"{label}: tensor {tensor.name!r} has negative dims {dims}")
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except Exception:
        raise OnnxImportError(f"{label}: tensor {tensor.name!r} has an unknown element type {name}") from None
    if tensor.data_type == 0:
        raise OnnxImportError(f"{label}: tensor {tensor.name!r} has no element type (UNDEFINED)")
    if tensor.HasField("raw_data") and tensor.data_type not in _PACKED_TYPES and tensor.data_type != 8:
        need = math.prod(dims) * itemsize
        if len(tensor.raw_data) != need:
            raise OnnxImportError(
                f"{label}: tensor {tensor.name!r} of dims {dims} and type {name} needs {need} bytes of "
                f"raw data, the file holds {len(tensor.raw_data)} (a corrupt or truncated file?)"
            )


def decode_attribute(attr: Any, folder: Path | None, label: str) -> Any:
    """An AttributeProto's value in Python: int, float, str, NumPy array, or lists of those; a
    graph attribute stays a GraphProto (loaded by the node's graph)."""
    onnx = _onnx()
    A = onnx.AttributeProto
    kind = attr.type
    if kind == A.INT:
        return int(attr.i)
    if kind == A.FLOAT:
        return float(attr.f)
    if kind == A.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if kind == A.TENSOR:
        return tensor_value(attr.t, folder, label)
    if kind == A.GRAPH:
        return attr.g
    if kind == A.INTS:
        return [int(v) for v in attr.ints]
    if kind == A.FLOATS:
        return [float(v) for v in attr.floats]
    if kind == A.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if kind == A.TENSORS:
        return [tensor_value(t, folder, label) for t in attr.tensors]
    if kind == A.SPARSE_TENSOR:
        return _sparse_value(attr.sparse_tensor, folder, label)
    if kind == A.GRAPHS:
        return list(attr.graphs)
    if kind == A.TYPE_PROTO:
        return attr.tp
    if kind == A.TYPE_PROTOS:
        return list(attr.type_protos)
    raise Unsupported(f"attribute {attr.name!r} has a type agnostic cannot read ({kind})")


def _sparse_value(sparse: Any, folder: Path | None, label: str) -> np.ndarray:
    """A SparseTensorProto as a dense array; indices out of its dims are refused."""
    values = tensor_value(sparse.values, folder, label)
    indices = tensor_value(sparse.indices, folder, label).astype(np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    name = sparse.values.name
    if any(d < 0 for d in dims) or math.prod(dims) * values.dtype.itemsize > _MAX_FILE_BYTES:
        raise OnnxImportError(f"{label}: sparse tensor {name!r} has bad or too large dims {list(dims)}")
    dense = np.zeros(dims, dtype=values.dtype)
    n = values.reshape(-1).shape[0]
    flat = indices.ndim == 1
    if (flat and indices.shape != (n,)) or (not flat and indices.shape != (n, len(dims))):
        raise OnnxImportError(
            f"{label}: sparse tensor {name!r}: indices of shape {indices.shape} do not fit {n} values "
            f"in dims {list(dims)}"
        )
    bounds = math.prod(dims) if flat else np.asarray(dims, dtype=np.int64)
    if indices.size and (np.any(indices < 0) or np.any(indices >= bounds)):
        raise OnnxImportError(f"{label}: sparse tensor {name!r} has indices outside its dims {list(dims)}")
    if flat:
        dense.reshape(-1)[indices] = values.reshape(-1)
    else:
        dense[tuple(indices.T)] = values.reshape(-1)
    return dense


def _value_type(type_proto: Any) -> tuple[Any, tuple[Any, ...] | None] | None:
    """(agnostic dtype or None, shape with None for unknown dims, or None) of a tensor type; None
    for other types (sequences, optionals), whose element types `_io_type` reads."""
    if type_proto.WhichOneof("value") != "tensor_type":
        return None
    t = type_proto.tensor_type
    try:
        d = onnx_dtypes.from_onnx(t.elem_type)
    except onnx_dtypes.UnsupportedDType:
        d = None
    shape = None
    if t.HasField("shape"):
        shape = tuple(int(dim.dim_value) if dim.HasField("dim_value") else None for dim in t.shape.dim)
    return d, shape


def _io_type(type_proto: Any) -> tuple[Any, ...]:
    """A graph input's or output's type: ("tensor", dtype or None, shape or None, ONNX type name),
    ("sequence", element type), ("optional", element type), or ("other", what it is)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        d, shape = _value_type(type_proto)
        code = type_proto.tensor_type.elem_type
        return ("tensor", d, shape, onnx_dtypes.ONNX_NAMES.get(code, str(code)))
    if kind == "sequence_type":
        return ("sequence", _io_type(type_proto.sequence_type.elem_type))
    if kind == "optional_type":
        return ("optional", _io_type(type_proto.optional_type.elem_type))
    return ("other", kind or "no type")


def _io_problem(t: tuple[Any, ...]) -> str | None:
    """Why agnostic cannot take or give a value of type `t`, or None."""
    if t[0] == "tensor":
        return None if t[1] is not None else f"element type {t[3]} has no agnostic dtype"
    if t[0] in ("sequence", "optional"):
        return _io_problem(t[1])
    return f"its type ({t[1]}) is not a tensor, sequence or optional"


def _as_input(value: Any, t: tuple[Any, ...] | None, device: Device, name: str) -> Any:
    """A value given for graph input `name` as the graph holds it: Tensors on `device` (a NumPy
    array or list made one of the declared dtype), a list for a sequence, None for an empty optional."""
    if t is None or t[0] == "tensor":
        if not isinstance(value, Tensor):
            value = device.tensor(value, t[1] if t is not None else None)
        if t is not None and t[2] is not None:
            shape = tuple(value.shape)
            if len(shape) != len(t[2]) or any(d is not None and d != s for d, s in zip(t[2], shape)):
                want = tuple("?" if d is None else d for d in t[2])
                raise ValueError(f"ONNX model input {name!r}: got shape {shape}, the model declares {want}")
        return value
    if t[0] == "optional":
        return None if value is None else _as_input(value, t[1], device, name)
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"ONNX model input {name!r} is a sequence: pass a list, got {type(value).__name__}")
    return [_as_input(v, t[1], device, name) for v in value]


def _as_output(value: Any, ctx: Context) -> Any:
    """A graph output as the caller gets it: host arrays made Tensors, inside sequences too."""
    if isinstance(value, list):
        return [_as_output(v, ctx) for v in value]
    return ctx.tensor(value) if isinstance(value, np.ndarray) else value


def _host_value(value: Any) -> Any:
    """A reference implementation's output as the graph keeps it: NumPy arrays, lists of them, None."""
    if value is None:
        return None
    if isinstance(value, list):
        return [np.asarray(v) for v in value]
    return np.asarray(value)


def _is_floating(value: np.ndarray) -> bool:
    try:
        return dtypes.as_dtype(value.dtype).is_floating
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- the graph
class _HostOp:
    """A node evaluated on NumPy arrays with ONNX's reference implementation (shape arithmetic,
    and the load-time folding of constant subgraphs)."""

    def __init__(self, proto: Any, opsets: dict[str, int]) -> None:
        from onnx.reference.ops import load_op

        domain = _domain(proto.domain)
        cls = load_op(domain, proto.op_type, opsets.get(domain, None))
        params = {
            "log": lambda *a: None,
            "opsets": opsets,
            "verbose": 0,
            "new_ops": None,
            "existing_functions": {},
            "evaluator_cls": None,
        }
        self.op = cls(proto, params)

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        out = self.op.run(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


class Graph:
    """A loaded graph (the model's, or a subgraph of If, Loop, Scan or SequenceMap): nodes in an
    order that runs, each with its converter, and the values known at load time.

    In the model's graph floating initializers are the module's Parameters (given to `run` in
    `env`); in a subgraph every initializer is a constant. A subgraph also knows its enclosing
    graphs' load-time values (`outer_static`), so its nodes fold and check them as their own."""

    def __init__(
        self,
        proto: Any,
        opsets: dict[str, int],
        folder: Path | None,
        label: str,
        outer: dict[str, Any] | None = None,
        initializers: dict[str, np.ndarray] | None = None,
        problems: list[str] | None = None,
        outer_static: dict[str, Any] | None = None,
    ) -> None:
        self.label = label
        self.opsets = opsets
        self.problems: list[str] = [] if problems is None else problems
        nested = outer is not None
        outer = {} if outer is None else outer  # name -> type info of values the enclosing graphs hold
        inits = (
            dict(initializers)
            if initializers is not None
            else {t.name: tensor_value(t, folder, label) for t in proto.initializer}
        )
        for sparse in proto.sparse_initializer:
            inits[sparse.values.name] = _sparse_value(sparse, folder, label)
        self.initializers = inits
        self.input_names = [v.name for v in proto.input if v.name not in inits]
        self.output_names = [v.name for v in proto.output]
        types: dict[str, Any] = dict(outer)
        io: dict[str, tuple[Any, ...]] = {}
        for v in list(proto.input) + list(proto.value_info) + list(proto.output):
            if v.HasField("type"):
                types[v.name] = _value_type(v.type)
                io[v.name] = _io_type(v.type)
        for name, value in inits.items():
            types[name] = _array_type(value)
        self.input_types = [types.get(n) for n in self.input_names]
        self.output_types = [types.get(n) for n in self.output_names]
        self.input_io = [io.get(n) for n in self.input_names]
        self.output_io = [io.get(n) for n in self.output_names]
        # values known at load time: the enclosing graphs' (not shadowed here), initializers that
        # are not trainable, and what is folded from them
        own = set(inits) | set(self.input_names) | {o for n in proto.node for o in n.output}
        self.static: dict[str, Any] = {n: v for n, v in (outer_static or {}).items() if n not in own}
        read_on_host = _read_on_host(proto, inits, opsets)
        self.static.update(
            {n: v for n, v in inits.items() if nested or not _is_floating(v) or n in read_on_host}
        )
        self.constants = read_on_host  # floating initializers that are constants, not Parameters
        self.statistics = set() if nested else _statistics(proto, inits)
        self.steps: list[tuple[Node, Any, _HostOp | None]] = []
        known = set(inits) | set(self.input_names) | set(outer) | set(self.static)
        for proto_node in self._ordered(proto.node, known, set(inits) | set(self.input_names)):
            self._add(proto_node, folder, label, types)
        defined = known | {o for n in proto.node for o in n.output}  # (refused nodes are reported)
        for name in self.output_names:
            if name not in defined:
                self.problems.append(f"graph output {name!r} is produced by no node")

    def _ordered(self, nodes: Iterable[Any], known: set[str], own: set[str]) -> list[Any]:
        """The nodes in an order where each runs after its inputs' producers; a value no node
        produces, a value produced twice, or a cycle, is an OnnxImportError."""
        nodes = list(nodes)
        producer: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if not o:
                    continue
                if o in producer or o in own:
                    first = (
                        _node_label(nodes[producer[o]]) if o in producer else "a graph input or initializer"
                    )
                    raise OnnxImportError(
                        f"{self.label}: value {o!r} is produced twice, by {first} and by "
                        f"{_node_label(n)} (an ONNX graph assigns each value once)"
                    )
                producer[o] = i
        order: list[Any] = []
        state = [0] * len(nodes)  # 0 new, 1 on the stack, 2 done

        def needs(n: Any) -> list[str]:
            names = [i for i in n.input if i]
            for a in n.attribute:  # a subgraph's references to this graph's values
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    names += _outer_references(g)
            return names

        for start in range(len(nodes)):
            if state[start]:
                continue
            stack = [(start, iter(needs(nodes[start])))]
            state[start] = 1
            while stack:
                i, pending = stack[-1]
                for name in pending:
                    j = producer.get(name)
                    if j is None:
                        if name not in known:
                            raise OnnxImportError(
                                f"{self.label}: node {_node_label(nodes[i])} reads {name!r}, which is "
                                "no graph input, initializer or node output (a missing initializer?)"
                            )
                        continue
                    if state[j] == 1:
                        raise OnnxImportError(
                            f"{self.label}: the graph has a cycle through {_node_label(nodes[j])} "
                            f"(value {name!r})"
                        )
                    if state[j] == 0:
                        state[j] = 1
                        stack.append((j, iter(needs(nodes[j]))))
                        break
                else:
                    stack.pop()
                    state[i] = 2
                    order.append(nodes[i])
        return order

    def _add(self, proto: Any, folder: Path | None, label: str, types: dict[str, Any]) -> None:
        domain = _domain(proto.domain)
        version = self.opsets.get(domain)
        node = Node(
            op_type=proto.op_type,
            name=proto.name,
            domain=domain,
            version=version if version is not None else 0,
            inputs=list(proto.input),
            outputs=list(proto.output),
            attrs={},
        )
        try:
            if version is None:
                raise Unsupported(f"its domain {domain!r} has no opset import in the model")
            for a in proto.attribute:
                if a.ref_attr_name:
                    raise Unsupported(f"attribute {a.name!r} refers to a function attribute")
                node.attrs[a.name] = decode_attribute(a, folder, label)
            node.static = {i: self.static[n] for i, n in enumerate(node.inputs) if n in self.static}
            node.input_types = [types.get(n) for n in node.inputs]
            for a in proto.attribute:  # subgraphs see this graph's values
                if a.type == a.GRAPH:
                    node.graphs[a.name] = Graph(
                        a.g,
                        self.opsets,
                        folder,
                        label,
                        outer=dict(types),
                        problems=self.problems,
                        outer_static=self.static,
                    )
        except Unsupported as exc:
            self.problems.append(f"{node.describe()}: {exc}")
            return
        given = [i for i, n in enumerate(node.inputs) if n]
        builder = lookup(domain, proto.op_type, node.version)
        pure = not node.graphs and proto.op_type not in _RANDOM_OPS and domain == "" and runs_on_host(builder)
        if pure and all(i in node.static for i in given):
            try:
                out = _HostOp(proto, self.opsets)(*[node.static.get(i) for i in range(len(node.inputs))])
            except Exception:
                pass  # left to the converter, which says what is wrong
            else:
                for name, value in zip(node.outputs, out):
                    if name:
                        self.static[name] = _host_value(value)
                        types[name] = _array_type(value) if isinstance(value, np.ndarray) else None
                return
        if builder is None:
            self.problems.append(f"{node.describe()}: no converter for this op")
            return
        try:
            run = builder(node)
            unused = sorted(set(node.attrs) - node.used)
            if unused:
                raise Unsupported(f"attribute(s) {', '.join(unused)} not supported")
        except Unsupported as exc:
            self.problems.append(f"{node.describe()}: {exc}")
            return
        host = None
        if pure:
            try:
                host = _HostOp(proto, self.opsets)
            except Exception:
                host = None
        self.steps.append((node, run, host))
        for name in node.outputs:
            types.setdefault(name, None)

    def run(self, device: Device, env: dict[str, Any]) -> list[Any]:
        """Run the nodes on `env` (name -> value: the inputs, the parameters and, for a subgraph,
        the enclosing graph's values); the outputs in order. `env` gets every value computed."""
        env.update(self.static)
        for node, run, host in self.steps:
            args = [env[n] if n else None for n in node.inputs]
            outs = None
            if (
                host is not None
                and any(a is not None for a in args)
                and all(a is None or is_host(a) for a in args)
            ):
                try:
                    outs = [_host_value(o) for o in host(*args)]
                except Exception:
                    outs = None  # the converter runs it, and says what is wrong
            if outs is None:
                try:
                    out = run(Context(device, node, env), *args)
                except Exception as exc:
                    exc.add_note(f"while running ONNX node {node.describe()}")
                    raise
                outs = list(out) if isinstance(out, tuple) else [out]
            for name, value in zip(node.outputs, outs):
                if name:
                    env[name] = value
        return [env[n] for n in self.output_names]


_STATISTICS = {"BatchNormalization": (3, 4)}
"""Inputs that are running statistics (not trained by gradients), by op type."""


def _statistics(proto: Any, inits: dict[str, np.ndarray]) -> set[str]:
    """The floating initializers that the graph uses only as running statistics (BatchNorm's mean
    and variance): buffers of the module, as in torch, rather than Parameters."""
    return _used_only_at(
        proto, inits, lambda n: _STATISTICS.get(n.op_type, ()) if _domain(n.domain) == "" else ()
    )


def _read_on_host(proto: Any, inits: dict[str, np.ndarray], opsets: dict[str, int]) -> set[str]:
    """The floating initializers that every consumer reads on the host (Resize's scales, Pad's
    constant value: `converter(host_inputs=...)`): constants of the graph rather than Parameters,
    known at load time, so the model compiles."""

    def positions(n: Any) -> frozenset[int]:
        domain = _domain(n.domain)
        version = opsets.get(domain)
        return host_inputs(lookup(domain, n.op_type, version)) if version is not None else frozenset()

    return _used_only_at(proto, inits, positions)


def _used_only_at(proto: Any, inits: dict[str, np.ndarray], positions: Any) -> set[str]:
    """The floating initializers that every node reading them reads at one of `positions(node)`
    (and no subgraph or graph output reads)."""
    uses: dict[str, list[bool]] = {}
    for n in proto.node:
        where = positions(n)
        for i, name in enumerate(n.input):
            uses.setdefault(name, []).append(i in where)
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                for name in _outer_references(g):
                    uses.setdefault(name, []).append(False)
    for o in proto.output:
        uses.setdefault(o.name, []).append(False)
    return {n for n, v in inits.items() if _is_floating(v) and uses.get(n) and all(uses[n])}


def _array_type(value: np.ndarray) -> tuple[Any, tuple[int, ...]]:
    try:
        d = dtypes.as_dtype(value.dtype)
    except Exception:
        d = None
    return d, tuple(value.shape)


def _outer_references(graph: Any) -> list[str]:
    """The names a subgraph reads that it does not define (values of the enclosing graph)."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    refs: list[str] = []
    for n in graph.node:
        for i in n.input:
            if i and i not in defined:
                refs.append(i)
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                refs += [r for r in _outer_references(g) if r not in defined]
        defined.update(n.output)
    for o in graph.output:
        if o.name not in defined:
            refs.append(o.name)
    return refs


def _node_label(proto: Any) -> str:
    return f"{proto.op_type}" + (f" {proto.name!r}" if proto.name else "")


# ---------------------------------------------------------------------- the module
class OnnxModule(Module):
    """An imported ONNX graph as a Module: `model(*inputs)` runs it with agnostic ops.

    Inputs are positional in the graph's order, or by name: Tensors, or NumPy arrays (made Tensors
    of the declared dtype); a list for a sequence input, None for an empty optional. One output is
    returned as it is, several as a tuple. Floating initializers are Parameters under their ONNX
    names (dots make submodules, so `state_dict` keys are the file's names: a torch model's export
    loads its `state_dict`), except running statistics (BatchNorm's mean and variance), which are
    buffers, as in torch. The other initializers (integer shapes, indices) are constants of the
    graph, folded at load time; they are kept as non-persistent buffers, out of `parameters()`
    and `state_dict`."""

    def __init__(self, graph: Graph, device: Device, opsets: dict[str, int], producer: str = "") -> None:
        super().__init__()
        self._graph = graph
        self._device = device
        self.opsets = dict(opsets)
        self.producer = producer
        self._param_paths: dict[str, tuple[Module, str]] = {}
        for name, value in graph.initializers.items():
            try:
                dtype = dtypes.as_dtype(value.dtype)
            except (TypeError, ValueError):
                continue  # (uint32, strings...) used only on the host, in shape arithmetic
            holder, leaf = self._holder(name)
            if name in graph.constants:
                holder.register_buffer(leaf, device.tensor(value, dtype), persistent=False)
            elif name in graph.statistics:
                holder.register_buffer(leaf, device.tensor(value, dtype))
                self._param_paths[name] = (holder, leaf)
            elif dtype.is_floating:
                holder.register_parameter(leaf, Parameter(device.tensor(value, dtype)))
                self._param_paths[name] = (holder, leaf)
            else:
                holder.register_buffer(leaf, device.tensor(value, dtype), persistent=False)

    def _holder(self, name: str) -> tuple[Module, str]:
        parts = name.split(".")
        if len(parts) == 1 or any(p == "" for p in parts):
            return self, name
        holder: Module = self
        for part in parts[:-1]:
            child = holder._modules.get(part)
            if child is None:
                if part in holder._parameters or part in holder._buffers:
                    return self, name.replace(".", "_")
                child = Module()
                holder.add_module(part, child)
            holder = child
        leaf = parts[-1]
        if leaf in holder._modules or leaf in holder._parameters or leaf in holder._buffers:
            return self, name.replace(".", "_")
        return holder, leaf

    @property
    def input_names(self) -> list[str]:
        return list(self._graph.input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._graph.output_names)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        names = self._graph.input_names
        if len(args) > len(names):
            raise TypeError(f"ONNX model takes {len(names)} input(s) {names}, got {len(args)}")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"ONNX model has no input {k!r}; its inputs are {names}")
            if k in values:
                raise TypeError(f"ONNX model input {k!r} given twice")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"ONNX model input(s) {missing} missing; its inputs are {names}")
        device = self._current_device(values.values())
        env: dict[str, Any] = {}
        for name, t in zip(names, self._graph.input_io):
            env[name] = _as_input(values[name], t, device, name)
        for name, (holder, leaf) in self._param_paths.items():
            env[name] = getattr(holder, leaf)
        outs = self._graph.run(device, env)
        ctx = Context(device)
        outs = [_as_output(o, ctx) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _current_device(self, inputs: Iterable[Any]) -> Device:
        for v in inputs:
            if isinstance(v, Tensor):
                return v.device
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return self._device

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}, opsets={self.opsets}"


def opsets_of(model: Any, label: str) -> dict[str, int]:
    """The model's opset imports, checked: the default domain from MIN_OPSET to the newest the
    installed onnx knows."""
    onnx = _onnx()
    opsets = {_domain(o.domain): int(o.version) for o in model.opset_import}
    newest = onnx.defs.onnx_opset_version()
    if "" not in opsets:
        if any(_domain(n.domain) == "" for n in model.graph.node):
            raise OnnxImportError(
                f"{label} names no opset for the default ONNX domain, which its nodes use (an "
                "ONNX model lists its opsets in opset_import: a truncated or hand-made file?)"
            )
        opsets[""] = newest
    v = opsets[""]
    if v < MIN_OPSET:
        raise OnnxImportError(f"{label} uses opset {v}; agnostic reads opsets {MIN_OPSET} to {newest}")
    if v > newest:
        raise OnnxImportError(
            f"{label} uses opset {v}, newer than the installed onnx knows ({newest}): upgrade onnx"
        )
    return opsets


def _inline_functions(model: Any, label: str) -> Any:
    """The model with its model-local functions expanded in place (ONNX's own inliner: the
    functions are graphs of ONNX ops, not code)."""
    if not model.functions:
        return model
    _onnx()
    from onnx import inliner

    try:
        return inliner.inline_local_functions(model)
    except Exception as exc:
        raise OnnxImportError(f"{label}: its model-local functions cannot be expanded: {exc}") from exc


def load(source: Any, backend: Any = None) -> OnnxModule:
    """Load an ONNX model (a path, bytes or onnx.ModelProto) as a Module on `backend` (a Device,
    a backend name, or None for the default backend).

    Every node is checked at load time; if some cannot run, one OnnxImportError lists them all
    (op type, name, opset and why)."""
    model, label, folder = read_model(source)
    opsets = opsets_of(model, label)
    model = _inline_functions(model, label)
    graph = Graph(model.graph, opsets, folder, label)
    for kind, names, types in (
        ("input", graph.input_names, graph.input_io),
        ("output", graph.output_names, graph.output_io),
    ):
        for name, t in zip(names, types):
            problem = "it has no type" if t is None and kind == "input" else t and _io_problem(t)
            if problem:
                graph.problems.append(f"graph {kind} {name!r}: {problem}")
    if graph.problems:
        lines = "\n  ".join(graph.problems)
        raise OnnxImportError(f"{label}: {len(graph.problems)} part(s) agnostic cannot run:\n  {lines}")
    return OnnxModule(graph, as_device(backend), opsets, model.producer_name)
