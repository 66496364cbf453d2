"""Seeds for random ops: one seed gives the same numbers on every backend.

Backends draw from a counter-based generator keyed by an integer seed. A `Generator` hands out a
reproducible stream of such seeds; the global one is reset with `manual_seed` (as in PyTorch), and
any random op also takes an explicit `seed=` (as a JAX key).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Generator", "manual_seed", "default_generator", "next_seed", "DrawLog", "draw_logs"]


class Generator:
    """A reproducible stream of seeds for random ops."""

    __slots__ = ("_rng", "initial_seed")

    def __init__(self, seed: int = 0) -> None:
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed`."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
        self.initial_seed = int(seed)
        self._rng = np.random.Generator(np.random.Philox(int(seed)))
        return self

    def next_seed(self) -> int:
        """The next seed of the stream."""
        return int(self._rng.integers(0, 2**63 - 1))

    def get_state(self) -> dict:
        """The stream position, for checkpoints (plain JSON-able data)."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a position from `get_state`."""
        self._rng.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Reset the global seed stream; every later random op without `seed=` follows from it."""
    return default_generator.manual_seed(seed)


def next_seed(seed: int | None = None, generator: Generator | None = None) -> int:
    """The seed a random op uses: `seed` if given, else the next one from `generator` or the global."""
    if seed is not None:
        if generator is not None:
            raise ValueError("pass either seed= or generator=, not both")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        return int(seed)
    return (generator or default_generator).next_seed()


class DrawLog:
    """The random draws of a checkpointed segment, in order: recorded while its forward runs and
    replayed by its recomputation, so dropout draws the same masks twice and the seed streams
    (the global one and every `Generator`) move once, as without checkpointing. An entry is what
    reproduces a draw: eagerly the int seed it used; inside an `agnostic.compile` trace the drawn
    tensor (a traced input of the step)."""

    __slots__ = ("entries", "replaying", "position")

    def __init__(self) -> None:
        self.entries: list[tuple[Any, Any]] = []  # (what was drawn: kind and args, entry)
        self.replaying = False
        self.position = 0


draw_logs: contextvars.ContextVar[tuple[DrawLog, ...]] = contextvars.ContextVar(
    "agnostic.draw_logs", default=()
)
"""The draw logs in effect in this thread or task, outermost first (nested checkpoints): empty
outside checkpointed segments, which then pay one ContextVar read per draw."""


def logged_draw(
    logs: tuple[DrawLog, ...], what: Any, fresh: Callable[[], tuple[Any, Any]], again: Callable[[Any], Any]
) -> Any:
    """A draw under `logs`: the nearest replaying log gives it (`again(entry)`), else it is drawn
    (`fresh()` returns (entry, value)); its entry is appended to every recording log nearer than
    the replaying one. `what` (the op and its arguments) must match the replayed draw's."""
    start = 0
    value: Any = None
    entry: Any = None
    for i in range(len(logs) - 1, -1, -1):
        log = logs[i]
        if log.replaying:
            if log.position >= len(log.entries) or log.entries[log.position][0] != what:
                raise RuntimeError(
                    "checkpoint: the recomputation made a random draw the forward pass did not "
                    f"make ({what[0]} of shape {what[1]}); a checkpointed function must make the same "
                    "draws each time it runs (or pass preserve_rng_state=False)"
                )
            entry = log.entries[log.position][1]
            log.position += 1
            value = again(entry)
            start = i + 1
            break
    else:
        entry, value = fresh()
    for log in logs[start:]:
        log.entries.append((what, entry))
    return value
