"""Whether an `agnostic.compile` trace is running, asked by the low layers.

While a step is traced its tensors are symbolic (jax tracers, torch fake tensors): checks that read
values on the host (index bounds, target ranges) are skipped, as under jax.jit, random draws are
handed to the tracer (which feeds them in as inputs at every call, drawn as eagerly), and modules,
optimizers and parameters report that the step uses them, so their state is lifted into the
compiled function's inputs and outputs. Work that cannot be part of the program (a collective on an
engine that needs real buffers) is handed to the trace with `after_call`, to run eagerly after every
call of the compiled program. The compiler (`agnostic.compilation`) sets the running trace
with `tracing_with`; it is kept per thread and asyncio task, so a trace in one thread never sees
another thread's eager work.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

__all__ = ["Tracer", "active", "tracing", "tracing_with"]


class Tracer(Protocol):
    """What the low layers tell a running trace."""

    def draw(self, device: Any, kind: str, args: tuple[Any, ...], seed: int | None, generator: Any) -> Any:
        """A random draw `device.ops.<kind>(*args, seed)` as a traced input; returns a Tensor."""

    def uses(self, holder: Any) -> None:
        """A Module, Optimizer or Parameter takes part in the step."""

    def grad_read(self, param: Any) -> None:
        """The step reads `param.grad`."""

    def grad_written(self, param: Any) -> None:
        """The step sets `param.grad`."""

    def after_call(self, fn: Callable[[], None], grads: Sequence[Any] = ()) -> None:
        """Run `fn()` eagerly after every call of the compiled program, once its results, state and
        gradients are written back (callbacks run in the order given). `fn` changes the gradients of
        the parameters `grads`: the rest of the step must not read them (it would see them before
        `fn` ran); the trace refuses such a step."""


_active: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("agnostic.tracer", default=None)

active: Callable[[], Tracer | None] = _active.get
"""The running trace in this thread or task, or None (eager)."""


def tracing() -> bool:
    """Whether tensor values are symbolic now (inside an `agnostic.compile` trace)."""
    return _active.get() is not None


@contextlib.contextmanager
def tracing_with(tracer: Tracer) -> Iterator[Tracer]:
    """Run a block as `tracer`'s trace (in this thread or task only), then restore the previous one."""
    token = _active.set(tracer)
    try:
        yield tracer
    finally:
        _active.reset(token)
