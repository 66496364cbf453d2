"""Whether an `agnostic.compile` trace is running, asked by the low layers.

While a step is traced its tensors are symbolic (jax tracers, torch fake tensors): checks that read
values on the host (index bounds, target ranges) are skipped, as under jax.jit, random draws are
handed to the tracer (which feeds them in as inputs at every call, drawn as eagerly), and modules,
optimizers and parameters report that the step uses them, so their state is lifted into the
compiled function's inputs and outputs. The compiler (`agnostic.compilation`) sets `active`.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Tracer", "active", "tracing"]


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


active: Tracer | None = None
"""The running trace, or None (eager)."""


def tracing() -> bool:
    """Whether tensor values are symbolic now (inside an `agnostic.compile` trace)."""
    return active is not None
