"""Whether an `agnostic.compile` trace is running, asked by the low layers.

While a step is traced its tensors are symbolic (jax tracers, torch fake tensors): checks that read
values on the host (index bounds, target ranges) are skipped, as under jax.jit, random draws are
handed to the tracer (which feeds them in as inputs at every call, drawn as eagerly), and modules,
optimizers and parameters report that the step uses them, so their state is lifted into the
compiled function's inputs and outputs. The compiler (`agnostic.compilation`) sets the running trace
with `tracing_with`; it is kept per thread and asyncio task, so a trace in one thread never sees
another thread's eager work.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
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
