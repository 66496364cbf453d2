"""A graph-recording backend: the op-set over symbolic values, for ONNX export.

Every op-set call is intercepted by one generic mechanism: its arguments are unwrapped, agnostic's
NumPy backend runs it (so shapes and dtypes come from really running the op, with no shape rule per
op) and the call is recorded as a `Node`. A composite is recorded as one node when the target opset
can lower it whole (`keep`), else its base-class default runs here and records primitives; so the
graph is the same whichever backend the model lives on.

Each `Value` carries two concrete arrays: `value` at the traced sizes and `shadow` with every dynamic
input axis at another size. A dimension that differs between the two is dynamic: `shape()` gives it
as a `Dim`, an int that remembers where it came from (Shape of a value at an axis, and arithmetic on
such dims), so a layer's Python shape arithmetic (`x.reshape(x.shape[0], -1)`) becomes Shape, Gather
and Mul nodes when the dim reaches an op's argument. A Python branch that would go differently at the
other size, a read of an input-derived value on the host and a random draw are `ExportError`s that
name the user's source line.
"""

from __future__ import annotations

import abc
import inspect
import operator
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import agnostic
from agnostic.backends.base import BINARY_OPS, COMPOSITES, PRIMITIVES, REDUCTIONS, UNARY_OPS, Backend
from agnostic.backends.numpy import NumpyBackend
from agnostic.dtypes import DType

__all__ = ["Dim", "ExportError", "Node", "Recorder", "Value", "user_line"]

_PACKAGE = os.path.dirname(os.path.abspath(agnostic.__file__)) + os.sep
_HOST_METHODS = frozenset({"native_dtype", "dtype_of", "shape", "is_native", "from_numpy", "to_numpy"})
OPS: tuple[str, ...] = tuple(sorted((set(PRIMITIVES) - _HOST_METHODS) | set(COMPOSITES)))
"""The op-set methods the recorder intercepts."""
_WHOLE = frozenset({"bitcast"})
"""Composites whose default is no graph of primitives (bitcast's is a round trip through host memory,
which would bake the value into a constant): recorded whole at every opset, so that the lowering
names the opset they need."""

_DECLARED = {
    **{n: ("a",) for n in UNARY_OPS}, **{n: ("a", "b") for n in BINARY_OPS},
    **{n: ("a", "axes", "keepdims") for n in REDUCTIONS},
}  # fmt: skip
"""Parameter names of the primitives the op-set declares as `op(self, *args)`."""


class ExportError(RuntimeError):
    """A model that cannot be exported to ONNX; the message names the op or the source line and the fix."""


def user_line() -> str:
    """`file:line` of the first stack frame outside the agnostic package: where the user's code is."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None:
        return "<agnostic>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Value:
    """A symbolic array of the trace: an input, a parameter or buffer, a constant or a node's output.

    `value` is its array at the traced sizes, `shadow` at the other sizes of the dynamic axes;
    `dynamic` says whether it depends on an input (then it cannot be read on the host)."""

    __slots__ = ("value", "shadow", "kind", "name", "dynamic", "_dims")

    def __init__(
        self, value: np.ndarray, shadow: np.ndarray, kind: str, name: str = "", dynamic: bool = False
    ):
        self.value, self.shadow, self.kind, self.name, self.dynamic = value, shadow, kind, name, dynamic
        self._dims: tuple[int, ...] | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def live(self) -> bool:
        """Whether it is part of the graph (an input, a parameter or computed from them)."""
        return self.kind != "const"

    def dims(self) -> tuple[int, ...]:
        """Its shape, with a `Dim` for each axis whose size follows a dynamic input axis."""
        if self._dims is None:
            self._dims = tuple(
                m if m == s else Dim(m, s, ("dim", self, i))
                for i, (m, s) in enumerate(zip(self.value.shape, self.shadow.shape))
            )
        return self._dims

    def __repr__(self) -> str:
        return f"Value({self.kind} {self.name!r}, {self.value.dtype}{list(self.value.shape)})"


def _shadow(x: Any) -> Any:
    return x.shadow if isinstance(x, Dim) else x


def _dim_op(name: str, fn: Callable[[int, int], int], reflected: bool = False) -> Callable[[Dim, Any], Any]:
    def op(self: Dim, other: Any) -> Any:
        if isinstance(other, bool) or not isinstance(other, (int, np.integer)):
            return NotImplemented
        other = other if isinstance(other, Dim) else int(other)
        a, b = (other, self) if reflected else (self, other)
        return Dim.make(fn(int(a), int(b)), fn(_shadow(a), _shadow(b)), (name, a, b))

    op.__name__ = f"__{'r' * reflected}{name}__"
    return op


def _dim_compare(fn: Callable[[Any, Any], bool]) -> Callable[[Dim, Any], Any]:
    def op(self: Dim, other: Any) -> Any:
        if isinstance(other, bool) or not isinstance(other, (int, float, np.integer, np.floating)):
            return NotImplemented
        now, then = fn(int(self), _main(other)), fn(self.shadow, _shadow(other))
        if now != then:
            raise ExportError(
                f"{user_line()}: a Python comparison of a dynamic size ({self.origin()}) goes one way "
                f"at the traced size and the other way at another, so the graph depends on that size; "
                "compute with tensor ops, or mark the axis static in dynamic_axes"
            )
        return now

    return op


def _main(x: Any) -> Any:
    return int(x) if isinstance(x, Dim) else x


class Dim(int):
    """A size that follows a dynamic input axis: its value at the traced sizes (the int itself),
    at the shadow sizes (`shadow`) and how to compute it in the graph (`expr`: ("dim", value, axis)
    or (op, a, b) over dims and ints)."""

    shadow: int
    expr: tuple[Any, ...]

    def __new__(cls, value: int, shadow: int, expr: tuple[Any, ...]) -> Dim:
        self = super().__new__(cls, value)
        self.shadow, self.expr = shadow, expr
        return self

    @staticmethod
    def make(value: int, shadow: int, expr: tuple[Any, ...]) -> int:
        """A Dim, or a plain int where both sizes agree (the result does not follow the axis)."""
        return value if value == shadow else Dim(value, shadow, expr)

    def origin(self) -> str:
        """The input axes this size comes from, in words."""
        found: list[str] = []

        def walk(d: Any) -> None:
            if isinstance(d, Dim):
                if d.expr[0] == "dim":
                    found.append(
                        f"axis {d.expr[2]} of {d.expr[1].kind} {d.expr[1].name!r}".replace(" ''", "")
                    )
                else:
                    for part in d.expr[1:]:
                        walk(part)

        walk(self)
        return ", ".join(dict.fromkeys(found)) or "a dynamic axis"

    def __neg__(self) -> int:
        return Dim.make(-int(self), -self.shadow, ("neg", self))

    def __pos__(self) -> Dim:
        return self

    __hash__ = int.__hash__
    __add__, __radd__ = _dim_op("add", operator.add), _dim_op("add", operator.add, True)
    __sub__, __rsub__ = _dim_op("sub", operator.sub), _dim_op("sub", operator.sub, True)
    __mul__, __rmul__ = _dim_op("mul", operator.mul), _dim_op("mul", operator.mul, True)
    __floordiv__ = _dim_op("floordiv", operator.floordiv)
    __rfloordiv__ = _dim_op("floordiv", operator.floordiv, True)
    __mod__, __rmod__ = _dim_op("mod", operator.mod), _dim_op("mod", operator.mod, True)
    __eq__, __ne__ = _dim_compare(operator.eq), _dim_compare(operator.ne)  # type: ignore[assignment]
    __lt__, __le__ = _dim_compare(operator.lt), _dim_compare(operator.le)  # type: ignore[assignment]
    __gt__, __ge__ = _dim_compare(operator.gt), _dim_compare(operator.ge)  # type: ignore[assignment]


@dataclass
class Node:
    """One recorded op-set call: `op` with its arguments bound to the Backend method's parameter
    names (Values, Dims and plain Python data), its output Values and the user's source line."""

    op: str
    params: dict[str, Any]
    outputs: list[Value | None]
    line: str


def walk(obj: Any) -> Iterator[Any]:
    """The Values and Dims inside nested arguments (tuples, lists, dicts, slices)."""
    if isinstance(obj, (Value, Dim)):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from walk(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from walk(x)
    elif isinstance(obj, slice):
        yield from walk((obj.start, obj.stop, obj.step))


def _concrete(obj: Any, shadow: bool) -> Any:
    """`obj` with Values as their arrays and Dims as plain ints (traced or shadow sizes)."""
    if isinstance(obj, Value):
        return obj.shadow if shadow else obj.value
    if isinstance(obj, Dim):
        return obj.shadow if shadow else int(obj)
    if isinstance(obj, tuple):
        return tuple(_concrete(x, shadow) for x in obj)
    if isinstance(obj, list):
        return [_concrete(x, shadow) for x in obj]
    if isinstance(obj, dict):
        return {k: _concrete(x, shadow) for k, x in obj.items()}
    if isinstance(obj, slice):
        return slice(*(_concrete(x, shadow) for x in (obj.start, obj.stop, obj.step)))
    return obj


class Recorder(Backend):
    """The op-set over `Value`s, recording every call into `nodes` (see the module docstring).

    `keep(name)` says whether a composite is recorded whole (the target opset can lower it);
    `axes` describes the dynamic input axes, for messages."""

    name = "onnx-trace"
    dtype_table = NumpyBackend.dtype_table

    def __init__(self, keep: Callable[[str], bool], axes: str) -> None:
        super().__init__(None)
        self.host = NumpyBackend("cpu")
        self.keep = keep
        self.axes = axes
        self.nodes: list[Node] = []

    # ------------------------------------------------------------------ host side
    def native_dtype(self, dtype: DType) -> Any:
        return self.host.native_dtype(dtype)

    def dtype_of(self, a: Any) -> DType:
        return self.dtype_table[a.dtype]

    def shape(self, a: Any) -> tuple[int, ...]:
        return a.dims()

    def is_native(self, obj: object) -> bool:
        return isinstance(obj, Value)

    def from_numpy(self, array: np.ndarray) -> Value:
        a = np.array(array, copy=True)
        return Value(a, a, "const")

    def to_numpy(self, a: Any) -> np.ndarray:
        if a.dynamic:
            raise ExportError(
                f"{user_line()}: the model reads a value computed from its inputs on the host (.item(), "
                ".numpy(), float(t), `if tensor:`); an ONNX graph cannot branch in Python on tensor values: "
                "compute with tensor ops (ag.where) instead"
            )
        view = a.value.view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ every op
    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run op `name` on the host, and record it when it involves the graph."""
        found = list(walk((args, kwargs)))
        if not any(isinstance(x, Dim) or x.live for x in found):
            return self._wrap(self._run(name, args, kwargs, False), None, "const", False)
        if name in COMPOSITES and name not in _WHOLE and not self.keep(name):
            return getattr(Backend, name)(self, *args, **kwargs)  # its default, recorded as primitives
        main = self._run(name, args, kwargs, False)
        line = user_line()
        try:
            shadow = self._run(name, args, kwargs, True)
        except Exception as exc:
            raise ExportError(
                f"{line}: {name} fails when {self.axes} change size ({type(exc).__name__}: {exc}), so the "
                "graph depends on that size; mark the axis static in dynamic_axes"
            ) from exc
        dynamic = any(isinstance(x, Dim) or x.dynamic for x in found)
        out = self._wrap(main, shadow, "node", dynamic)
        outputs = list(out) if isinstance(out, (tuple, list)) else [out]
        for o in outputs:
            if o is not None and (o.value.ndim != o.shadow.ndim or o.value.dtype != o.shadow.dtype):
                raise ExportError(
                    f"{line}: {name} gives results of another rank or dtype when {self.axes} change size"
                )
        if name in _DECLARED:
            params = dict(zip(_DECLARED[name], args))
        else:
            params = dict(inspect.signature(getattr(Backend, name)).bind(self, *args, **kwargs).arguments)
            params.pop("self")
        self.nodes.append(Node(name, params, outputs, line))
        return out

    def _run(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], shadow: bool) -> Any:
        return getattr(self.host, name)(*_concrete(args, shadow), **_concrete(kwargs, shadow))

    def _wrap(self, main: Any, shadow: Any, kind: str, dynamic: bool) -> Any:
        if isinstance(main, (tuple, list)):
            others = shadow if shadow is not None else main
            if len(others) != len(main):
                raise ExportError(
                    f"{user_line()}: an op gives {len(main)} results at the traced size and {len(others)} when "
                    f"{self.axes} change size, so the graph depends on that size; mark the axis static in "
                    "dynamic_axes"
                )
            return type(main)(self._wrap(m, s, kind, dynamic) for m, s in zip(main, others))
        if main is None:
            return None
        m = np.asarray(main)
        return Value(m, m if shadow is None else np.asarray(shadow), kind, dynamic=dynamic)


def _intercept(name: str) -> Callable[..., Any]:
    def op(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        return self.record(name, args, kwargs)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = getattr(Backend, name).__doc__
    return op


for _name in OPS:
    setattr(Recorder, _name, _intercept(_name))
abc.update_abstractmethods(Recorder)
