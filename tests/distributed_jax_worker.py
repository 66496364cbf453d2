"""One worker of tests/test_distributed_jax.py, started N times by a launcher (RANK, WORLD_SIZE...).

`python distributed_jax_worker.py collectives`: every collective on the jax backend, checked against
NumPy from every rank's known inputs; prints "rank R: ok" and exits 0.
`die`: rank 1 exits 1 at once, before joining (the launcher must stop the rest).
`die_after_init`: rank 1 exits 1 after one collective; the others must exit non-zero naming rank 1
(a DistributedError from their next collective, or JAX's runtime ending them on the missed heartbeats).
`mismatch`: rank 0 all-reduces a (2,) tensor, the others a (3,) one: every rank gets a
DistributedError within the timeout (no hang in the transport), prints it and exits 3.
`compiled`: every collective inside one `ag.compile`d step, checked against NumPy, and XLA's
all-reduce and all-gather in its compiled program; a compiled step without collectives run by rank
0 alone (it must stay process-local); prints "rank R: ok".
`compiled_alone`: rank 0 alone runs a compiled step that all-reduces: it gets a DistributedError
within the timeout (the barrier before each SPMD program), not a hang in XLA's transport; the
others wait at a barrier, get theirs too, and every rank prints it and exits 3.
`several_devices` (two host devices per process): a process group over a jax Device of two devices
refuses collectives, eager and compiled, saying to start one process per device; prints "rank R: ok".
`ddp`: W1's MLP trained 20 SGD steps by DistributedDataParallel with the forward and backward
`ag.compile`d, eagerly, and on one process with the global batch; prints "rank R: ddp" and the
largest parameter differences as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn

TIMEOUT_S = {
    "collectives": 60.0,
    "compiled": 60.0,
    "ddp": 60.0,
    "compiled_alone": 5.0,
    "several_devices": 30.0,
    "die_after_init": 10.0,
    "mismatch": 5.0,
}
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


def programs(step: ag.CompiledFunction) -> list[str]:
    """The optimized XLA text of every program `step` compiled."""
    return [e.run.as_text() for entries in step._cache.values() for e in entries]


def compiled(jx: ag.Device) -> None:
    r, n = dist.rank(), dist.world_size()
    k = 2
    for dtype in ("float32", "int64", "bool"):
        every = np.stack([inputs(p, n, dtype) for p in range(n)])
        if dtype == "bool":
            reduced = {"sum": every.any(0), "max": every.any(0), "min": every.all(0)}
        else:
            reduced = {"sum": every.sum(0, dtype=every.dtype), "max": every.max(0), "min": every.min(0)}
            if dtype == "float32":
                reduced["mean"] = (reduced["sum"] / n).astype(every.dtype)

        @ag.compile
        def step(x: ag.Tensor, ops: tuple[str, ...]) -> dict:
            return {
                "all_reduce": {op: dist.all_reduce(x, op) for op in ops},
                "reduce_scatter": {op: dist.reduce_scatter(x, op) for op in ops},
                "broadcast": [dist.broadcast(x, src) for src in range(n)],
                "all_gather": dist.all_gather(x),
                "all_gather_scalar": dist.all_gather(x[0, 0]),
            }

        out = step(jx.tensor(inputs(r, n, dtype)), tuple(reduced))
        for op, want in reduced.items():
            check = close if op == "mean" else expect
            check(out["all_reduce"][op].numpy(), want, f"compiled all_reduce {op} {dtype}")
            check(
                out["reduce_scatter"][op].numpy(),
                want[r * k : (r + 1) * k],
                f"compiled reduce_scatter {op} {dtype}",
            )
        for src in range(n):
            expect(out["broadcast"][src].numpy(), every[src], f"compiled broadcast src={src} {dtype}")
        expect(out["all_gather"].numpy(), every, f"compiled all_gather {dtype}")
        expect(out["all_gather_scalar"].numpy(), every[:, 0, 0], f"compiled all_gather of a scalar {dtype}")
        (text,) = programs(step)
        assert "all-reduce" in text and "all-gather" in text, text[:3000]

    @ag.compile
    def local(x: ag.Tensor) -> ag.Tensor:
        return (x * 2).sum()

    if r == 0:  # the others never run it: it must not wait for them
        assert local(jx.tensor([1.0, 2.0])).item() == 6.0
        (text,) = programs(local)
        assert "all-reduce" not in text and "all-gather" not in text, text
    dist.barrier()


SIZES, STEPS, BATCH = (784, 512, 512, 10), 20, 16  # W1's MLP; per-process batch


def mlp(device: ag.Device, seed: int) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
        nn.Linear(SIZES[2], SIZES[3]), backend=device,
    )  # fmt: skip


def train(mode: str, jx: ag.Device, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The parameters after STEPS SGD steps, and the programs compiled. "one": one process on the
    global batch; "eager" and "compiled": data-parallel, this rank's part of each batch."""
    r, n = dist.rank(), dist.world_size()
    model = mlp(jx, 0) if mode == "one" else dist.DataParallel(mlp(jx, r), bucket_cap_mb=1.0)
    opt = ag.optim.SGD(list(model.parameters()), lr=0.05, momentum=0.9)

    def forward_backward(x: ag.Tensor, y: ag.Tensor) -> None:
        F.cross_entropy(model(x), y).backward()

    run = ag.compile(forward_backward) if mode == "compiled" else forward_backward
    for i in range(STEPS):
        rows = slice(i * n * BATCH, (i + 1) * n * BATCH)
        if mode != "one":
            rows = slice(rows.start + r * BATCH, rows.start + (r + 1) * BATCH)
        run(jx.tensor(xs[rows]), jx.tensor(ys[rows]))
        opt.step()
        opt.zero_grad()
    params = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    return params, programs(run) if mode == "compiled" else []


def ddp(jx: ag.Device) -> None:
    data = np.random.default_rng(0)
    count = STEPS * dist.world_size() * BATCH
    xs = data.standard_normal((count, SIZES[0])).astype(np.float32)
    ys = data.integers(0, SIZES[-1], count)
    one, _ = train("one", jx, xs, ys)
    eager, _ = train("eager", jx, xs, ys)
    done, texts = train("compiled", jx, xs, ys)
    assert len(texts) == 1 and "all-reduce" in texts[0], [t[:2000] for t in texts]
    gathered = dist.all_gather(jx.tensor(done)).numpy()
    diffs = {
        "compiled_to_one": float(np.max(np.abs(done - one))),
        "compiled_to_eager": float(np.max(np.abs(done - eager))),
        "eager_to_one": float(np.max(np.abs(eager - one))),
        "between_replicas": float(np.max(np.abs(gathered - gathered[0]))),
    }
    # One write: with PYTHONUNBUFFERED, print's text and its newline are two writes to the shared pipe.
    sys.stdout.write(f"rank {dist.rank()}: ddp {json.dumps(diffs)}\n")
    sys.stdout.flush()


def several_devices(jx: ag.Device) -> None:
    assert jx.device == "cpu:0,1", jx
    try:
        dist.all_reduce(jx.ones(2))
    except dist.DistributedError as e:
        assert "lives on 2 devices" in str(e) and "one process per device" in str(e), e
    else:
        raise AssertionError("an eager collective over several devices per process must raise")
    try:
        ag.compile(lambda x: dist.all_reduce(x))(jx.ones(2))
    except ag.CompileError as e:
        assert "several devices" in str(e) and "one process per device" in str(e), e
    else:
        raise AssertionError("a compiled collective over several devices per process must raise")


def main(mode: str) -> int:
    name = "jax:cpu:0,1" if mode == "several_devices" else "jax"
    dist.init(name, timeout=TIMEOUT_S[mode])  # before any jax work: it starts JAX's runtime
    jx = ag.backend(name)
    r = dist.rank()
    if mode in ("collectives", "compiled", "ddp", "several_devices"):
        {"collectives": collectives, "compiled": compiled, "ddp": ddp, "several_devices": several_devices}[
            mode
        ](jx)
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
    if mode == "compiled_alone":
        step = ag.compile(lambda x: dist.all_reduce(x))
        try:
            step(jx.ones(2)) if r == 0 else dist.barrier()
        except dist.DistributedError as e:
            print(f"rank {r}: DistributedError: {e}", flush=True)
            os._exit(3)
        raise AssertionError("a compiled collective run by rank 0 alone must raise DistributedError")
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
