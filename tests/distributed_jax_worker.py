"""One worker of tests/test_distributed_jax.py, started N times by a launcher (RANK, WORLD_SIZE...).

`python distributed_jax_worker.py collectives`: every collective on the jax backend, checked against
NumPy from every rank's known inputs; prints "rank R: ok" and exits 0.
`die`: rank 1 exits 1 at once, before joining (the launcher must stop the rest).
`die_after_init`: rank 1 exits 1 after one collective; the others must exit non-zero naming rank 1
(a DistributedError from their next collective, or JAX's runtime ending them on the missed heartbeats).
`mismatch`: rank 0 all-reduces a (2,) tensor, the others a (3,) one: every rank gets a
DistributedError within the timeout (no hang in the transport), prints it and exits 3.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import agnostic as ag
from agnostic import distributed as dist

TIMEOUT_S = {"collectives": 60.0, "die_after_init": 10.0, "mismatch": 5.0}
"""Short timeouts where a failure is the point, so that it comes well within the test's limit."""


def inputs(rank: int, n: int, dtype: str) -> np.ndarray:
    """Rank `rank`'s input for `dtype`: (2n, 3), values only the dtype can hold exactly."""
    i = np.arange(2 * n * 3).reshape(2 * n, 3)
    if dtype == "float32":
        return (i * (rank + 1) + rank * 0.5 - 7).astype(np.float32)
    if dtype == "float64":
        return 1.0 + (i + 1) * 1e-13 * (rank + 1) - rank
    if dtype == "int64":
        return (2**40 + i * (rank + 3) - rank * 2**35).astype(np.int64)
    return (i + rank) % 3 == 0  # bool


def expect(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
        raise AssertionError(
            f"rank {dist.rank()}: {what}: got {a.dtype}{a.shape} {a!r}, want {b.dtype}{b.shape} {b!r}"
        )


def close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if (
        a.dtype != b.dtype
        or a.shape != b.shape
        or not np.allclose(a, b, rtol=1e-15 if a.dtype == np.float64 else 1e-6)
    ):
        raise AssertionError(f"rank {dist.rank()}: {what}: got {a.dtype} {a!r}, want {b.dtype} {b!r}")


def collectives(jx: ag.Device) -> None:
    r, n = dist.rank(), dist.world_size()
    assert (r, n, dist.local_rank()) == (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), r), (r, n)
    assert n >= 2, "run with at least 2 processes"
    k = 2  # rows per rank in reduce_scatter: (2n, 3) split n ways
    for dtype in ("float32", "float64", "int64", "bool"):
        every = np.stack([inputs(p, n, dtype) for p in range(n)])
        x = jx.tensor(inputs(r, n, dtype))
        assert x.dtype == getattr(ag, dtype), x.dtype
        if dtype == "bool":
            reduced = {"sum": every.any(0), "max": every.any(0), "min": every.all(0)}
        else:
            reduced = {"sum": every.sum(0, dtype=every.dtype), "max": every.max(0), "min": every.min(0)}
            if dtype != "int64":
                reduced["mean"] = (reduced["sum"] / n).astype(every.dtype)
        for op, want in reduced.items():
            got = dist.all_reduce(x, op)
            assert got.device is jx and got.dtype == x.dtype, (op, got.device, got.dtype)
            assert got._data.dtype == np.dtype(dtype), (op, got._data.dtype)  # really 64-bit in jax
            (close if op == "mean" and dtype.startswith("float") else expect)(
                got.numpy(), want, f"all_reduce {op} {dtype}"
            )
            scattered = dist.reduce_scatter(x, op)
            (close if op == "mean" and dtype.startswith("float") else expect)(
                scattered.numpy(), want[r * k : (r + 1) * k], f"reduce_scatter {op} {dtype}"
            )
        for src in range(n):
            expect(dist.broadcast(x, src).numpy(), every[src], f"broadcast src={src} {dtype}")
        expect(dist.all_gather(x).numpy(), every, f"all_gather {dtype}")
        expect(dist.all_gather(x[0, 0]).numpy(), every[:, 0, 0], f"all_gather of a scalar {dtype}")
    dist.barrier()


def main(mode: str) -> int:
    dist.init("jax", timeout=TIMEOUT_S[mode])  # before any jax work: it starts JAX's runtime
    jx = ag.backend("jax")
    r = dist.rank()
    if mode == "collectives":
        collectives(jx)
        dist.shutdown()
        print(f"rank {r}: ok", flush=True)
        return 0
    if mode == "die_after_init":
        dist.all_reduce(jx.tensor([1.0]))
        if r == 1:
            os._exit(1)
        try:
            dist.all_reduce(jx.tensor([2.0]))
        except dist.DistributedError as e:
            print(f"rank {r}: DistributedError: {e}", flush=True)
            os._exit(3)  # no shutdown barrier with a dead peer
        raise AssertionError("all_reduce with a dead peer must raise DistributedError")
    if mode == "mismatch":
        try:
            dist.all_reduce(jx.ones(2 if r == 0 else 3))
        except dist.DistributedError as e:
            print(f"rank {r}: DistributedError: {e}", flush=True)
            os._exit(3)
        raise AssertionError("all_reduce of different shapes must raise DistributedError")
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "collectives"
    if mode == "die" and os.environ.get("RANK") == "1":
        sys.exit(1)
    sys.exit(main("die_after_init" if mode == "die" else mode))
