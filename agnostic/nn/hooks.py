"""Module hooks as torch.nn has them: removable handles, and the full backward hooks.

A full backward hook needs every gradient w.r.t. a module's inputs at once, but the graph gives each
tensor its cotangent separately. So one call's inputs are passed through a *gate*: each input
becomes an alias whose only graph input is one shared gate tensor, and the gate's inputs are the
real inputs. Backpropagation reaches the gate only after every alias (everything that used the
inputs) is done, so the gate's rule sees all of them together, calls the hooks (which may replace
them) and hands each on to its real input. The outputs go through a second gate the same way, which
collects grad_output and runs the backward pre-hooks.
"""

from __future__ import annotations

import itertools
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from agnostic import autodiff
from agnostic.tensor import Tensor

__all__ = ["RemovableHandle", "BackwardHook"]

_ids = itertools.count()


class RemovableHandle:
    """What `register_*_hook` returns: `handle.remove()` (or leaving its `with` block) takes the
    hook off again."""

    def __init__(self, table: OrderedDict[int, Any], on_change: Callable[[], None]) -> None:
        self.id = next(_ids)
        self._table = table
        self._on_change = on_change

    def remove(self) -> None:
        if self._table.pop(self.id, None) is not None:
            self._on_change()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _Piece(autodiff.DeferredCotangent):
    """One aliased tensor's cotangent on its way to a gate, by position; the gate's pieces are
    assembled into {position: cotangent}."""

    __slots__ = ("index", "value")

    def __init__(self, index: int, value: Tensor) -> None:
        self.index, self.value = index, value

    @staticmethod
    def assemble(pieces: list[Any], dense: Tensor | None) -> Any:
        return {p.index: p.value for p in pieces}


def _gate(
    values: Sequence[Any], name: str, rule: Callable[[tuple[Any, ...]], Sequence[Any]]
) -> tuple[Any, ...]:
    """`values` with each tracked tensor replaced by an alias behind one gate; once every alias has
    its cotangent, `rule(cotangents by position, None where none came)` returns the cotangents to
    pass on, one per position."""
    tracked = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
    if not tracked or not autodiff.grad_enabled():
        return tuple(values)
    first = values[tracked[0]]

    def gate_rule(collected: dict[int, Tensor], out: Tensor) -> list[Any]:
        grads = rule(tuple(collected.get(i) for i in range(len(values))))
        return [grads[i] for i in tracked]

    gate = Tensor._make(first._data, first._device, first._dtype)
    gate.requires_grad = True
    gate._node = autodiff.Node(name, autodiff.edges([values[i] for i in tracked]), gate_rule)
    out = list(values)
    for i in tracked:
        alias = Tensor._make(values[i]._data, values[i]._device, values[i]._dtype)
        alias.requires_grad = True
        alias._node = autodiff.Node(name, (gate._node,), lambda g, _, i=i: (_Piece(i, g),))
        out[i] = alias
    return tuple(out)


def _replaced(result: Any, given: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    """A hook's return value as the tuple it replaces (None keeps `given`)."""
    if result is None:
        return given
    new = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if len(new) != len(given):
        raise RuntimeError(
            f"backward hook returned an invalid number of {what}, got {len(new)}, but expected {len(given)}"
        )
    return new


def _zeros_like(t: Tensor) -> Tensor:
    return Tensor._make(t._device.ops.full(t.shape, 0, t._dtype), t._device, t._dtype)


class BackwardHook:
    """One forward call's full backward hooks and backward pre-hooks: wraps its inputs and outputs."""

    def __init__(self, module: Any, hooks: Sequence[Callable], pre_hooks: Sequence[Callable]) -> None:
        self.module, self.hooks, self.pre_hooks = module, list(hooks), list(pre_hooks)
        self.inputs: tuple[Any, ...] = ()
        self.inputs_tracked = False
        self.grad_output: tuple[Any, ...] = ()

    def setup_inputs(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.inputs = args
        self.inputs_tracked = any(isinstance(a, Tensor) and a.requires_grad for a in args)
        return _gate(args, "BackwardHookInputs", self._on_inputs)

    def setup_outputs(self, result: Any) -> Any:
        if isinstance(result, Tensor):
            return _gate((result,), "BackwardHookOutputs", self._on_outputs)[0]
        if isinstance(result, tuple):
            gated = _gate(result, "BackwardHookOutputs", self._on_outputs)
            return type(result)(*gated) if hasattr(result, "_fields") else gated  # a namedtuple stays one
        warnings.warn(
            f"{type(self.module).__name__}: for backward hooks to be called, the module's output should be "
            f"a Tensor or a tuple of Tensors, but received {type(result).__name__}",
            stacklevel=3,
        )
        return result

    def _on_outputs(self, grad_output: tuple[Any, ...]) -> tuple[Any, ...]:
        for hook in self.pre_hooks:
            grad_output = _replaced(hook(self.module, grad_output), grad_output, "grad_output")
        self.grad_output = grad_output
        if not self.inputs_tracked and self.hooks:  # no input gradient to wait for: torch calls them here
            warnings.warn(
                f"{type(self.module).__name__}: full backward hook is firing when gradients are computed "
                "with respect to module outputs since no inputs require gradients",
                stacklevel=2,
            )
            grad_input = (None,) * len(self.inputs)
            for hook in self.hooks:
                _replaced(hook(self.module, grad_input, grad_output), grad_input, "grad_input")
        return grad_output

    def _on_inputs(self, grad_input: tuple[Any, ...]) -> tuple[Any, ...]:
        grad_input = tuple(  # a Tensor input no gradient reached gets zeros, as torch materializes it
            _zeros_like(a) if g is None and isinstance(a, Tensor) else g
            for g, a in zip(grad_input, self.inputs)
        )
        for hook in self.hooks:
            grad_input = _replaced(hook(self.module, grad_input, self.grad_output), grad_input, "grad_input")
        return grad_input
