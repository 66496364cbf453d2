"""Activation checkpointing, written once in the autodiff layer: every backend, `.backward()`,
`ag.grad` / `ag.gradients`, gradients of gradients, and `ag.compile` traces.

`checkpoint(fn, *args)` runs `fn` and keeps only what is needed to run it again: the segment's
inputs (its tensor arguments, and the tensors it reads from outside: parameters, a tensor captured
by closure). Its outputs come back as fresh tensors whose one graph node has those inputs and a
rule that, in the backward pass, recomputes `fn` with grad recording on and differentiates the
recomputation down to the inputs. The segment's activations are freed after the forward pass and
live again only while its own backward runs.

How the inputs are found: the forward runs with grad recording on, so the segment's graph says what
its outputs depend on. The autodiff clock (`agnostic.autodiff.tick`) is moved when the segment
starts; walking the graph back from the outputs, every tensor whose node is older than that (made
before the segment), and every leaf that requires grad, is an input. The segment's own graph is
then dropped.

Random draws (dropout) are replayed: the forward records each draw in a log (`agnostic.random.
DrawLog`: eagerly the seed it used, inside a compile trace the drawn tensor) and the recomputation
takes its draws from the log, so the masks are the same and the seed streams (the global one and
every `Generator`) advance exactly as without checkpointing. Unlike torch, draws from explicit
generators and `seed=` are replayed too.

Inside `ag.compile` the recomputation is traced into the same program as the forward pass. XLA
would merge it with the forward (common-subexpression elimination) and save nothing, so on JAX its
inputs and the incoming cotangent go through `jax.lax.optimization_barrier` first, as
jax.checkpoint does (`Backend.optimization_barrier`; the identity elsewhere). A torch.fx graph runs
its ops as traced, the recomputation included, and frees each value after its last use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agnostic import autodiff, tracing
from agnostic.autodiff import Node, Position, tree_flatten, tree_unflatten
from agnostic.random import DrawLog, draw_logs
from agnostic.tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]


def checkpoint(
    function: Callable[..., Any],
    *args: Any,
    use_reentrant: bool | None = None,
    preserve_rng_state: bool = True,
    **kwargs: Any,
) -> Any:
    """`function(*args, **kwargs)`, keeping only its inputs for the backward pass, which runs it
    again (torch.utils.checkpoint.checkpoint).

    Tensors may sit anywhere in `args` and `kwargs` (nested lists, tuples, dicts) and the result may
    be any nesting of tensors and other values; outputs that do not require grad pass through.
    `use_reentrant` is accepted for code ported from torch and changes nothing: one implementation
    serves both (it works with `.backward()`, `ag.grad`, keyword arguments, inputs that do not
    require grad, and gradients of gradients, as torch's non-reentrant variant). With
    `preserve_rng_state=False` the recomputation draws afresh (other dropout masks, and the seed
    streams advance twice), as torch's. Outside grad mode (`no_grad`) it is a plain call."""
    if not callable(function):
        raise TypeError(f"checkpoint: expected a callable to run, got {type(function).__name__}")
    if use_reentrant not in (None, True, False):
        raise TypeError(f"checkpoint: use_reentrant must be a bool or None, got {use_reentrant!r}")
    if preserve_rng_state not in (True, False):
        raise TypeError(f"checkpoint: preserve_rng_state must be a bool, got {preserve_rng_state!r}")
    if not autodiff.grad_enabled():
        return function(*args, **kwargs)
    from agnostic.autocast import get_autocast_dtype

    log = DrawLog() if preserve_rng_state else None
    cast = get_autocast_dtype()  # the recomputation runs under the same autocast state, as torch's
    start = autodiff.tick()
    token = draw_logs.set(draw_logs.get() + (log,)) if log is not None else None
    try:
        result = function(*args, **kwargs)
    finally:
        if token is not None:
            draw_logs.reset(token)
    leaves, spec = tree_flatten(result)
    made = _made(leaves, start)
    if not made:
        return result
    if log is not None:
        log.replaying = True
    inputs = _segment_inputs(made, start)
    segment = _Segment(function, args, kwargs, inputs, log, made, cast)
    fresh: dict[int, Tensor] = {}
    for k, t in enumerate(made):
        new = Tensor._make(t._data, t._device, t._dtype)
        new.requires_grad = True
        new._node = Node("Checkpoint", inputs, segment.rule(k))
        fresh[id(t)] = new
    # the forward's outputs (and with them the segment's graph) are not kept
    return tree_unflatten(spec, [fresh.get(id(t), t) if isinstance(t, Tensor) else t for t in leaves])


def _made(leaves: list[Any], start: int) -> list[Tensor]:
    """The distinct tensors among `leaves` that require grad and were computed after the clock read
    `start` (in the segment): the outputs a checkpoint replaces. Tensors the function returns as
    they came in, and those that do not require grad, pass through."""
    made: dict[int, Tensor] = {}
    for t in leaves:
        if isinstance(t, Tensor) and t.requires_grad and t._node is not None and t._node.epoch >= start:
            made.setdefault(id(t), t)
    return list(made.values())


def _segment_inputs(outputs: Sequence[Tensor], start: int) -> tuple[Position, ...]:
    """Where the outputs depend on the graph outside the segment (see `autodiff.edge`): leaves that
    require grad (parameters, inputs) and nodes made before the segment began (`start`)."""
    found: dict[int, Position] = {}
    seen: set[int] = set()
    stack: list[Position] = [t._node for t in outputs]
    while stack:
        p = stack.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        if not isinstance(p, Node) or p.epoch < start:
            found[id(p)] = p
            continue
        stack.extend(
            e for e in p.edges
            if e is not None and id(e) not in seen and (isinstance(e, Node) or e.requires_grad)
        )  # fmt: skip
    return tuple(found.values())


class _Segment:
    """One checkpointed call: what it needs to run again, and the rule of each of its outputs.

    With several outputs the first rule to run recomputes once for all of them and keeps the
    recomputation (its graph retained) until each output that requires grad had its rule run."""

    def __init__(
        self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        inputs: tuple[Position, ...], log: DrawLog | None, outputs: list[Tensor], cast: Any,
    ) -> None:  # fmt: skip
        self.function, self.args, self.kwargs = function, args, kwargs
        self.cast = cast
        self.inputs = inputs
        self.log = log
        self.signature = [(t.shape, t.dtype) for t in outputs]
        self.count = len(outputs)
        self.left = self.count
        self.recomputed: list[Tensor] | None = None

    def rule(self, k: int) -> Callable[[Tensor, Tensor], Sequence[Any]]:
        # the rule captures every tensor argument: backward's check that none was changed by item
        # assignment since (autodiff._check_unassigned reads a rule's closure) covers them all
        held = tuple(t for t in tree_flatten((list(self.args), self.kwargs))[0] if isinstance(t, Tensor))

        def checkpoint_vjp(g: Tensor, out: Tensor) -> Sequence[Any]:
            held  # noqa: B018  (read, so the closure holds it)
            return self.vjp(k, g)

        return checkpoint_vjp

    def recompute(self, g: Tensor) -> list[Tensor]:
        """Run the function again with grad on and the draws replayed; its graph reaches the
        segment's inputs, where the differentiation stops."""
        swapped: list[tuple[Tensor, Any]] = []
        if tracing.tracing():  # keep the compiler from merging the recomputation with the forward
            swapped = self._barrier(g)
        log = self.log
        token = None
        if log is not None:
            log.position = 0
            token = draw_logs.set(draw_logs.get() + (log,))
        buffers = [(m, dict(m._buffers)) for m in _modules_of(self.function)]
        start = autodiff.tick()
        try:
            with autodiff.enable_grad(), self._autocast():
                result = self.function(*self.args, **self.kwargs)
        finally:
            if token is not None:
                draw_logs.reset(token)
            for t, data in swapped:
                t._data = data
            for m, before in buffers:  # the forward updated them already (BatchNorm's statistics)
                for name, value in before.items():
                    if m._buffers.get(name) is not value:
                        m._buffers[name] = value
        outs = _made(tree_flatten(result)[0], start)
        got = [(t.shape, t.dtype) for t in outs]
        if got != self.signature:
            raise RuntimeError(
                "checkpoint: the recomputation gave other outputs than the forward pass (shapes and "
                f"dtypes {_describe(got)} against {_describe(self.signature)}); the checkpointed "
                "function must compute the same thing each time it runs"
            )
        return outs

    def _autocast(self) -> Any:
        """The forward's autocast state (the backward usually runs outside the autocast block)."""
        from agnostic.autocast import autocast

        return autocast(enabled=False) if self.cast is None else autocast(self.cast)

    def _barrier(self, g: Tensor) -> list[tuple[Tensor, Any]]:
        """Route the recomputation's inputs (and the cotangent, which ties the recomputation to the
        backward pass in the schedule) through the backend's optimization barrier: each input
        tensor reads the barrier's result while the function runs again (restored after)."""
        tensors: dict[int, Tensor] = {}
        for t in (*tree_flatten((list(self.args), self.kwargs))[0], *self.inputs):  # leaves are Tensors
            if isinstance(t, Tensor):
                tensors.setdefault(id(t), t)
        if not tensors:
            return []
        held = list(tensors.values())
        ops = held[0]._device.ops
        arrays = ops.optimization_barrier([g._data, *(t._data for t in held)])
        swapped = [(t, t._data) for t in held]
        for t, a in zip(held, arrays[1:]):
            t._data = a
        return swapped

    def vjp(self, k: int, g: Tensor) -> list[Tensor | None]:
        outs = self.recomputed
        if outs is None:
            outs = self.recompute(g)
            if self.count > 1:
                self.recomputed = outs
        retain = True if self.left > 1 else None  # the last sibling frees the graph on the way
        found = autodiff._propagate(
            [outs[k]], [g], {id(i) for i in self.inputs}, autodiff.grad_enabled(), retain
        )
        if self.count > 1:
            self.left -= 1
            if self.left == 0:  # every sibling had its rule: the recomputation can go
                self.recomputed = None
                self.left = self.count
        result: list[Tensor | None] = []
        for inp in self.inputs:
            hit = found.get(id(inp))
            result.append(None if hit is None else hit[1])
        return result


def _modules_of(function: Any) -> list[Any]:
    """The modules `function` runs that can be found without running it: itself, the module of a
    bound method, and modules (or lists of them) in its closure, with their submodules. Their
    buffers are put back after a recomputation, so running statistics move once per step."""
    from agnostic.nn.module import Module

    found: dict[int, Any] = {}
    candidates: list[Any] = [function, getattr(function, "__self__", None)]
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        candidates.extend(value if isinstance(value, (list, tuple)) else (value,))
    for c in candidates:
        if isinstance(c, Module):
            for m in c.modules():
                found.setdefault(id(m), m)
    return list(found.values())


def _describe(sig: list[tuple[Any, Any]]) -> str:
    return "[" + ", ".join(f"{tuple(s)} {d.name}" for s, d in sig) + "]"


def checkpoint_sequential(
    functions: Any,
    segments: int,
    input: Any,
    use_reentrant: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Run `functions` (a Sequential, or a list of modules or functions) in order on `input`, in
    `segments` chunks, each but the last checkpointed (torch.utils.checkpoint.
    checkpoint_sequential, with its exact chunk bounds: chunks of len // segments functions, the
    last chunk taking the rest, and run without checkpointing since its output is needed at once).
    `preserve_rng_state` is the one keyword argument accepted, as in torch."""
    from agnostic.nn.module import Sequential

    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError(
            "checkpoint_sequential: unexpected keyword arguments: " + ", ".join(kwargs)
            + " (only preserve_rng_state and use_reentrant are accepted)"
        )  # fmt: skip
    if isinstance(functions, Sequential):
        functions = list(functions.children())
    elif isinstance(functions, (list, tuple)):
        functions = list(functions)
    else:
        raise TypeError(
            "checkpoint_sequential: expected an nn.Sequential or a list of modules or functions, "
            f"got {type(functions).__name__}"
        )
    for i, f in enumerate(functions):
        if not callable(f):
            raise TypeError(f"checkpoint_sequential: functions[{i}] is not callable: {type(f).__name__}")
    if not isinstance(segments, int) or isinstance(segments, bool):
        raise TypeError(f"checkpoint_sequential: segments must be an int, got {segments!r}")
    if not 1 <= segments <= len(functions):
        raise ValueError(
            f"checkpoint_sequential: segments must be between 1 and the number of functions "
            f"({len(functions)}), got {segments}"
        )

    def run(start: int, end: int) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for j in range(start, end + 1):
                x = functions[j](x)
            return x

        return forward

    size = len(functions) // segments
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, preserve_rng_state=preserve)
    return run(end + 1, len(functions) - 1)(input)
