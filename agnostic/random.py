"""Seeds for random ops: one seed gives the same numbers on every backend.

Backends draw from a counter-based generator keyed by an integer seed. A `Generator` hands out a
reproducible stream of such seeds; the global one is reset with `manual_seed` (as in PyTorch), and
any random op also takes an explicit `seed=` (as a JAX key).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Generator", "manual_seed", "default_generator", "next_seed"]


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
