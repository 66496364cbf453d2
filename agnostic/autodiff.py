"""Reverse-mode automatic differentiation, written once above the op-set.

Every differentiable op records a `Node` on its output: edges to where its inputs sit in the
graph, and a vector-Jacobian rule written with Tensor ops that captures only the values it reads
(torch's saved tensors): an activation no rule reads is freed during the forward pass.
Backpropagation walks the graph in reverse topological order and calls the rules; with
`create_graph=True` the rules themselves are recorded, so gradients of gradients work on every
backend without any backend's own autograd.

Complex tensors follow torch's convention (see `agnostic.primitives`): the gradient of a real loss
of z = x + iy is dL/dx + i dL/dy, and a complex output needs an explicit cotangent.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import types
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agnostic.tensor import Tensor

__all__ = [
    "Node",
    "NOT_SAVED",
    "TensorMeta",
    "edge",
    "edges",
    "DeferredCotangent",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "backward",
    "gradients",
    "grad",
    "value_and_grad",
    "vjp",
    "tree_flatten",
    "tree_unflatten",
]


_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("agnostic.grad_enabled", default=True)
grad_enabled: Callable[[], bool] = _grad_enabled.get
"""Whether ops record the graph now. Kept in a ContextVar, as torch keeps grad mode per thread: each
thread and each asyncio task has its own, and a new thread starts with recording on."""


class Node:
    """How an output was made: where its inputs sit in the graph (`edges`) and the rule
    `vjp(g, out)` mapping the output's cotangent to one cotangent (or None) per edge.

    An edge is the input's own node, or the input itself for a leaf that requires grad, or None
    for an input that needs no gradient: edges never hold an intermediate tensor's data, so the
    graph keeps only what the rules read (each rule captures its own operands, a shape-only
    `TensorMeta` where the values are not needed), as torch's saved tensors. A rule that reads the
    output gets it from `saved` (the output's array with no node: no reference cycle), rebuilt at
    backward with this node as its node, so higher derivatives flow through it; a rule that does not
    gets `NOT_SAVED`. `epoch` is the autodiff clock when the node was made: it moves at each item
    assignment (see `note_assignment`) and at the start of each checkpointed segment (`tick`), which
    tells a segment's own nodes from older ones."""

    __slots__ = ("name", "edges", "vjp", "epoch", "saved")

    def __init__(
        self,
        name: str,
        edges: tuple[Node | Tensor | None, ...],
        vjp: Callable[[Tensor, Any], Sequence[Any]],
        saved: Tensor | None = None,
    ) -> None:
        self.name = name
        self.edges = edges
        self.vjp = vjp
        self.epoch = _assignments[0]
        self.saved = saved

    def output(self) -> Any:
        """The output as its rule sees it: the saved array tied to this node, or NOT_SAVED."""
        s = self.saved
        if s is None:
            return NOT_SAVED
        y = s._make(s._data, s._device, s._dtype)
        y._node = self
        y.requires_grad = True
        return y

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


class _NotSaved:
    """What a rule that did not ask for its output gets in its place: any use says which node."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "autodiff: a gradient rule read its output, but its node was recorded without saving it "
            "(record it with the output saved)"
        )

    def __repr__(self) -> str:
        return "NOT_SAVED"


NOT_SAVED: Any = _NotSaved()


def edge(t: Tensor) -> Node | Tensor | None:
    """Where `t` sits in the graph: its node, itself for a leaf that requires grad, else None."""
    node = t._node
    if node is not None:
        return node
    return t if t.requires_grad else None


def edges(inputs: Sequence[Tensor]) -> tuple[Node | Tensor | None, ...]:
    """The edges of a node made from `inputs` (see `edge`; a Node is always true)."""
    return tuple([t._node or (t if t.requires_grad else None) for t in inputs])


class TensorMeta:
    """A tensor's shape, dtype and device without its data: what a rule captures of an operand
    whose values its gradient does not read (an addend, a reshaped or cast input), so the graph
    does not keep the array alive (jax.ShapeDtypeStruct's role)."""

    __slots__ = ("shape", "_dtype", "_device")

    def __init__(self, t: Tensor) -> None:
        self.shape = t.shape
        self._dtype = t._dtype
        self._device = t._device

    @property
    def dtype(self) -> Any:
        return self._dtype

    @property
    def device(self) -> Any:
        return self._device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"TensorMeta(shape={self.shape}, dtype={self._dtype.name})"


_assignments = [0]
"""The autodiff clock: moved by each assignment (`x[key] = v`, a parameter's update) and by each
checkpointed segment's start (`tick`). A node costs one read of it (its `epoch`)."""
_latest_assignment = [0]
"""The clock at the latest assignment: a node made before it may hold a tensor whose value was
replaced since, and backward checks it (torch's version counter, paid only after an assignment)."""


def tick() -> int:
    """Move the clock and return its new value: every node made from now on has an epoch at least
    this, every older node a smaller one (how `agnostic.checkpointing` tells a segment's own graph
    from the tensors it captured)."""
    _assignments[0] += 1
    return _assignments[0]


_assigned: dict[int, tuple[weakref.ref, int, str]] = {}
"""Each live tensor given a new value by assignment (by id: a Tensor's `==` is elementwise), with
the assignment's number and what assigned it."""

ITEM = "item assignment (x[key] = v)"
"""`note_assignment`'s default cause; a parameter's update names its own (Parameter.assign)."""


def note_assignment(t: Tensor, how: str = ITEM) -> None:
    """Record that `t` now holds a new value (item assignment, or a parameter's update: `how` says
    which, for the error): a gradient rule recorded earlier that reads `t` would compute with the
    wrong values, and backward refuses it."""
    _assignments[0] += 1
    _latest_assignment[0] = _assignments[0]
    key = id(t)
    _assigned[key] = (weakref.ref(t, lambda _: _assigned.pop(key, None)), _assignments[0], how)


def assigned_since(t: Tensor, clock: int) -> bool:
    """Whether `t` was given a new value after the clock read `clock` (see `note_assignment`)."""
    entry = _assigned.get(id(t))
    return entry is not None and entry[1] > clock and entry[0]() is t


def clock() -> int:
    """The autodiff clock now (what `assigned_since` compares with)."""
    return _assignments[0]


def _check_unassigned(node: Node) -> None:
    """Raise if a tensor `node`'s rule reads was given a new value after the node was made (as
    torch's "modified by an inplace operation"): one its rule captured, or, for item assignment, a
    leaf it feeds (`x[key] = v` makes x another tensor; an updated parameter is the same leaf, and
    its gradient still accumulates, as torch's). A `TensorMeta` is only a shape: assignment cannot
    change it."""
    leaves = [e for e in node.edges if e is not None and not isinstance(e, Node)]
    for t, is_read in (*((t, True) for t in _captured(node.vjp)), *((t, False) for t in leaves)):
        entry = _assigned.get(id(t))
        if (
            entry is None
            or entry[0]() is not t
            or entry[1] <= node.epoch
            or not (is_read or entry[2] == ITEM)
        ):
            continue
        fix = (
            "assign into a copy (x = x.at[key].set(v) leaves the old value alone), or assign before using it"
            if entry[2] == ITEM
            else "differentiate before the update (loss.backward() before optimizer.step()), as torch "
            "refuses a parameter modified in place since the forward"
        )
        raise RuntimeError(
            f"backward: a tensor of shape {t.shape} that {node.name}'s gradient needs was changed by "
            f"{entry[2]} after it was used; {fix}"
        )


def _captured(rule: Callable[..., Any]) -> list[Any]:
    """What a rule captured: its closure's values (a tuple's or list's items), and those of the
    functions it captured (a composite's rule is wrapped in a function that captures it)."""
    found: list[Any] = []
    todo, seen = [rule], set()
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for cell in getattr(fn, "__closure__", None) or ():
            if _filled(cell):
                value = cell.cell_contents
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    (todo if isinstance(item, types.FunctionType) else found).append(item)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def is_grad_enabled() -> bool:
    """Whether ops on tensors that require grad are recorded for differentiation (in this thread or
    asyncio task)."""
    return _grad_enabled.get()


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode for a `with` block or a decorated function, in this thread or task only, and
    restores the previous mode exactly on exit (also when blocks of two threads overlap)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_grad_enabled.get())
        _grad_enabled.set(self._enabled)

    def __exit__(self, *exc: object) -> None:
        _grad_enabled.set(self._previous.pop())

    def _recreate_cm(
        self,
    ) -> _GradMode:  # a decorated function gets a fresh one per call (threads, recursion)
        return type(self)(self._enabled)


class set_grad_enabled(_GradMode):
    """Turn graph recording on or off: as a `with` block or decorator, restored on exit; called
    alone (`ag.set_grad_enabled(False)`) it sets the mode for the rest of this thread or task, as
    `torch.set_grad_enabled` does."""

    def __init__(self, enabled: bool) -> None:
        if enabled not in (True, False):
            raise TypeError(f"set_grad_enabled: expected a bool, got {enabled!r}")
        super().__init__(enabled)
        self._previous.append(_grad_enabled.get())
        _grad_enabled.set(self._enabled)

    def __enter__(self) -> None:  # the mode was set when the object was made
        pass

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """As a decorator it applies to the function's calls only: undo the mode set at creation."""
        _grad_enabled.set(self._previous.pop())
        return super().__call__(fn)

    def _recreate_cm(self) -> _GradMode:
        return _GradMode(self._enabled)


def no_grad() -> _GradMode:
    """Ops inside record nothing: for inference and parameter updates (a `with` block or decorator)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Turn recording back on inside a `no_grad` block (a `with` block or decorator)."""
    return _GradMode(True)


Position = Any
"""A place in the graph: a Node, or a leaf Tensor that requires grad (see `edge`)."""


def _topological(roots: Sequence[Position], stop: set[int]) -> list[Position]:
    """Graph positions reachable from `roots`, each after everything it depends on. An op's
    inputs are explored first to last, so its later inputs (a layer's weight and bias, after the
    activation) come after the activation's whole history: walked in reverse, a layer's parameters
    get their final gradient right after the layer, before the layers below it are differentiated.
    A leaf counts while it requires grad (`ag.grad` turns its inputs' off when it is done)."""
    order: list[Position] = []
    seen: set[int] = set()
    stack: list[tuple[Position, bool]] = [(r, False) for r in roots if r is not None]
    while stack:
        p, done = stack.pop()
        if done:
            order.append(p)
            continue
        if id(p) in seen:
            continue
        seen.add(id(p))
        stack.append((p, True))
        if p.__class__ is Node and id(p) not in stop:
            for e in reversed(p.edges):  # the stack pops the first input first
                if e is not None and id(e) not in seen and (e.__class__ is Node or e.requires_grad):
                    stack.append((e, False))
    return order


class DeferredCotangent:
    """A cotangent a VJP rule may hand back unassembled. The pieces an input receives are kept
    apart until its turn in the backward pass and then assembled at once by `assemble`: the n slices
    of an unstack or split (an RNN's time steps) become one concatenation, instead of n tensors of
    the input's full shape summed one by one (O(n) work, not O(n^2))."""

    __slots__ = ()

    @staticmethod
    def assemble(pieces: list[Any], dense: Tensor | None) -> Tensor:
        """The sum of `pieces` (all of this class) and `dense` (or None): one tensor's cotangent
        (each piece knows the shape of the whole)."""
        raise NotImplementedError


class _Pending:
    """Deferred pieces received so far for one tensor, and the sum of its ordinary cotangents."""

    __slots__ = ("pieces", "dense")

    def __init__(self, pieces: list[DeferredCotangent], dense: Tensor | None) -> None:
        self.pieces, self.dense = pieces, dense

    def assemble(self) -> Tensor:
        """Each kind of piece assembles its own, on top of the dense sum."""
        groups: dict[type, list[DeferredCotangent]] = {}
        for p in self.pieces:
            groups.setdefault(type(p), []).append(p)
        dense = self.dense
        for kind, pieces in groups.items():
            dense = kind.assemble(pieces, dense)
        return dense


def _accumulate(grads: dict[int, Any], key: int, c: Any) -> None:
    prev = grads.get(key)
    if isinstance(c, DeferredCotangent):
        if prev is None:
            grads[key] = _Pending([c], None)
        elif isinstance(prev, _Pending):
            prev.pieces.append(c)
        else:
            grads[key] = _Pending([c], prev)
    elif prev is None:
        grads[key] = c
    elif isinstance(prev, _Pending):
        prev.dense = c if prev.dense is None else prev.dense + c
    else:
        grads[key] = prev + c


def _freed(g: Tensor, out: Tensor) -> Sequence[Any]:
    raise RuntimeError(
        "backward: this part of the graph was already differentiated and its saved tensors freed; "
        "pass retain_graph=True to the first backward (or ag.gradients) to differentiate it again"
    )


def _propagate(
    roots: Sequence[Tensor],
    cotangents: Sequence[Tensor],
    stop: set[int],
    create_graph: bool,
    retain_graph: bool | None,
    on_final: Callable[[Position, Tensor], None] | None = None,
) -> dict[int, tuple[Position, Tensor]]:
    """(position, cotangent) of every graph position reached that is a leaf or in `stop` (ids of
    positions: see `edge`), by the position's id; or, with `on_final`, each such pair handed to it
    the moment its cotangent is complete, while the rest of the graph is still being differentiated
    (what lets data-parallel reduce gradients during the backward pass).

    Unless `retain_graph` (None: as `create_graph`), each node is emptied as soon as its rule has
    run, as torch's autograd frees saved tensors: what only the graph holds goes back to the
    allocator during the backward pass, not after it (a smaller peak, and memory the next step
    reuses)."""
    grads: dict[int, Any] = {}
    positions = []
    for r, c in zip(roots, cotangents):
        p = edge(r)
        positions.append(p)
        _accumulate(grads, id(p), c)
    results: dict[int, tuple[Position, Tensor]] = {}
    retain = create_graph if retain_graph is None else retain_graph
    order = _topological(positions, stop)
    with _GradMode(bool(create_graph)):
        while order:
            p = order.pop()
            g = grads.pop(id(p), None)
            if g is None:
                continue
            if isinstance(g, _Pending):
                g = g.assemble()
            if p.__class__ is not Node or id(p) in stop:
                if on_final is not None:
                    on_final(p, g)
                else:
                    results[id(p)] = (p, g)
                continue
            if p.epoch < _latest_assignment[0]:
                _check_unassigned(p)
            targets, rule, y = p.edges, p.vjp, p.output()
            if not retain:
                p.edges, p.vjp, p.saved = (), _freed, None
            for e, c in zip(targets, rule(g, y)):
                if c is None or e is None or (e.__class__ is not Node and not e.requires_grad):
                    continue
                _accumulate(grads, id(e), c)
    return results


def _reaches_outer(out: Tensor, inputs: Sequence[Tensor]) -> bool:
    """Whether `out` depends on a tracked tensor other than `inputs` (e.g. one an enclosing `grad`
    differentiates, captured by closure): then its gradients must be recorded (create_graph)."""
    stop = {id(edge(i)) for i in inputs}
    for p in _topological([edge(out)], stop):
        if id(p) not in stop and p.__class__ is not Node:
            return True
    return False


def _check_output(t: Tensor, op: str) -> None:
    if not t.dtype.is_inexact:
        raise TypeError(
            f"{op}: the output has dtype {t.dtype.name}; gradients are defined for floating-point "
            "outputs only (integer and boolean results, e.g. of argmax or comparisons, carry none)"
        )


def _check_implicit(t: Tensor, op: str) -> None:
    """An implicit cotangent (1) is only meaningful for a real output, as in torch."""
    if t.dtype.is_complex:
        raise TypeError(
            f"{op}: the output is {t.dtype.name}; a gradient can be implicitly created only for a real "
            "scalar output: differentiate a real loss (e.g. ag.abs(z) ** 2, ag.real(z)), or pass the "
            "cotangent of the complex output explicitly (backward(gradient=...), ag.vjp)"
        )


def backward(
    t: Tensor, gradient: Tensor | None = None, retain_graph: bool | None = None, create_graph: bool = False
) -> None:
    """Accumulate d(t)/d(leaf) into `.grad` of every leaf that requires grad (Tensor.backward),
    each as soon as its gradient is complete, then run that leaf's post-accumulate-grad hooks
    (`Parameter.register_post_accumulate_grad_hook`).

    As in torch, the graph is freed on the way unless `retain_graph` (default: `create_graph`):
    a second backward through it raises."""
    _check_output(t, "backward")
    if not t.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad: none of its inputs has requires_grad=True, "
            "or it was computed under no_grad() or through a non-differentiable op"
        )
    if gradient is None:
        _check_implicit(t, "backward")
        if t.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {t.shape}; pass `gradient=` (a tensor of that shape) "
                "or reduce it to one element first, e.g. y.sum().backward()"
            )
        gradient = t._like_full(1.0)
    else:
        gradient = _cotangent(t, gradient, "backward")

    def accumulate(leaf: Tensor, g: Tensor) -> None:
        if not create_graph:
            g = g.detach()
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        for hook in list((getattr(leaf, "_post_accumulate_grad_hooks", None) or {}).values()):
            hook(leaf)

    _propagate([t], [gradient], set(), create_graph, retain_graph, on_final=accumulate)


def _cotangent(t: Tensor, g: Any, op: str) -> Tensor:
    from agnostic.tensor import Tensor

    if not isinstance(g, Tensor):
        g = t.device.tensor(g, dtype=t.dtype)
    if g.shape != t.shape:
        raise ValueError(f"{op}: gradient has shape {g.shape} but the output has shape {t.shape}")
    if g.device is not t.device:
        raise ValueError(f"{op}: gradient is on {g.device} but the output is on {t.device}")
    return g.to(t.dtype) if g.dtype is not t.dtype else g


def gradients(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """d(outputs)/d(inputs) as a tuple, one per input (zeros where unused); like torch.autograd.grad,
    the graph above `inputs` is freed unless `retain_graph` (default: `create_graph`)."""
    outs = [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)
    ins = [inputs] if not isinstance(inputs, (list, tuple)) else list(inputs)
    if grad_outputs is None:
        cots = []
        for o in outs:
            _check_output(o, "gradients")
            _check_implicit(o, "gradients")
            if o.size != 1:
                raise RuntimeError(
                    f"gradients: output of shape {o.shape} needs grad_outputs (or reduce it first)"
                )
            cots.append(o._like_full(1.0))
    else:
        gouts = [grad_outputs] if not isinstance(grad_outputs, (list, tuple)) else list(grad_outputs)
        cots = [_cotangent(o, g, "gradients") for o, g in zip(outs, gouts)]
    for o in outs:
        _check_output(o, "gradients")
    live = [(o, c) for o, c in zip(outs, cots) if o.requires_grad]
    places = [edge(i) for i in ins]
    found = _propagate(
        [o for o, _ in live], [c for _, c in live], {id(p) for p in places}, create_graph, retain_graph
    )
    result = []
    for i, p in zip(ins, places):
        hit = None if p is None else found.get(id(p))
        if hit is None:
            result.append(i._like_full(0.0))
        else:
            result.append(hit[1] if create_graph else hit[1].detach())
    return tuple(result)


# ---------------------------------------------------------------------- pytrees of tensors
def tree_flatten(tree: Any) -> tuple[list[Any], Any]:
    """Leaves of nested lists, tuples and dicts, and a spec to rebuild the structure."""
    if isinstance(tree, (list, tuple)):
        leaves: list[Any] = []
        specs = []
        for item in tree:
            sub, spec = tree_flatten(item)
            leaves.extend(sub)
            specs.append((len(sub), spec))
        return leaves, (type(tree), specs)
    if isinstance(tree, dict):
        keys = list(tree)
        leaves, spec = tree_flatten([tree[k] for k in keys])
        return leaves, (dict, (keys, spec))
    return [tree], None


def tree_unflatten(spec: Any, leaves: Sequence[Any]) -> Any:
    """The inverse of `tree_flatten`."""
    if spec is None:
        return leaves[0]
    kind, inner = spec
    if kind is dict:
        keys, list_spec = inner
        return dict(zip(keys, tree_unflatten(list_spec, leaves)))
    out = []
    pos = 0
    for n, sub in inner:
        out.append(tree_unflatten(sub, leaves[pos : pos + n]))
        pos += n
    return kind(out) if kind is not list else out


def _is_tensor(x: Any) -> bool:
    from agnostic.tensor import Tensor

    return isinstance(x, Tensor)


def _normalize_argnums(argnums: int | Sequence[int] | None, nargs: int, fname: str) -> tuple[int, ...]:
    if argnums is None:
        return tuple(range(nargs))
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"{fname}: argnums {n} is out of range for {nargs} positional arguments")
    return tuple(n % nargs for n in nums)


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] | None = None, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """A function returning (f(*args), gradients of f with respect to positional args).

    Gradients have the structure of the arguments (tensors, or nested lists/dicts of them); other
    leaves, and integer tensors such as labels, get None unless `argnums` asks for them explicitly. With argnums=None (the default) the gradients are a tuple, one entry per
    positional argument; with an int, that argument's alone. Nested calls give higher derivatives.
    """

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _normalize_argnums(argnums, len(args), "grad")
        args = list(args)
        flat_inputs: list[Tensor] = []
        specs = {}
        outer = _grad_enabled.get() and any(
            _is_tensor(leaf) and leaf.requires_grad for n in nums for leaf in tree_flatten(args[n])[0]
        )
        for n in nums:
            leaves, spec = tree_flatten(args[n])
            new_leaves = []
            for leaf in leaves:
                if _is_tensor(leaf):
                    if not leaf.dtype.is_inexact:
                        if argnums is not None:
                            raise TypeError(
                                f"grad: argument {n} holds a {leaf.dtype.name} tensor; gradients are "
                                "defined for floating-point (real or complex) inputs only"
                            )
                        new_leaves.append(leaf)  # integer data (labels, indices) gets no gradient
                        continue
                    leaf = leaf._alias_for_grad()
                    flat_inputs.append(leaf)
                new_leaves.append(leaf)
            specs[n] = spec
            args[n] = tree_unflatten(spec, new_leaves)
        with _GradMode(True):
            result = f(*args, **kwargs)
        value, aux = result if has_aux else (result, None)
        if not _is_tensor(value):
            raise TypeError(f"grad: the function must return a tensor, got {type(value).__name__}")
        _check_output(value, "grad")
        _check_implicit(value, "grad")
        if value.size != 1:
            raise ValueError(
                f"grad: the function must return one element, got shape {value.shape}; reduce it "
                "(e.g. .sum()) or use ag.vjp"
            )
        outer = outer or (_grad_enabled.get() and _reaches_outer(value, flat_inputs))
        found = gradients(value, flat_inputs, create_graph=outer) if flat_inputs else ()
        for leaf in flat_inputs:  # done: an enclosing grad must not mistake these for its inputs
            if leaf._node is None:
                leaf.requires_grad = False
        pos = 0
        grads = []
        for n in nums:
            spec = specs[n]
            leaves = tree_flatten(args[n])[0]
            out_leaves = []
            for leaf in leaves:
                if _is_tensor(leaf) and leaf.dtype.is_inexact:
                    out_leaves.append(found[pos])
                    pos += 1
                else:
                    out_leaves.append(None)
            grads.append(tree_unflatten(spec, out_leaves))
        g = grads[0] if isinstance(argnums, int) else tuple(grads)
        if not outer:
            value = value.detach()
        return ((value, aux), g) if has_aux else (value, g)

    return wrapped


def grad(
    f: Callable[..., Any], argnums: int | Sequence[int] | None = None, has_aux: bool = False
) -> Callable[..., Any]:
    """A function returning the gradients of scalar-valued `f` (see `value_and_grad`)."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        (value_aux, g) = vg(*args, **kwargs)
        return (g, value_aux[1]) if has_aux else g

    return wrapped


def vjp(f: Callable[..., Tensor], *primals: Tensor) -> tuple[Tensor, Callable[[Tensor], tuple[Tensor, ...]]]:
    """(f(*primals), a function mapping a cotangent of the output to cotangents of each primal)."""
    for p in primals:
        if not _is_tensor(p) or not p.dtype.is_inexact:
            raise TypeError("vjp: every primal must be a floating-point tensor (real or complex)")
    inputs = [p._alias_for_grad() for p in primals]
    with _GradMode(True):
        out = f(*inputs)
    outer = _grad_enabled.get() and (any(p.requires_grad for p in primals) or _reaches_outer(out, inputs))

    def pullback(cotangent: Tensor) -> tuple[Tensor, ...]:
        return gradients(  # the pullback may be called again: the graph stays
            out,
            inputs,
            cotangent,
            retain_graph=True,
            create_graph=outer or (_grad_enabled.get() and cotangent.requires_grad),
        )

    return (out if outer else out.detach()), pullback
