"""A worker that tests/test_distributed_collectives.py runs under torchrun (not a test module).

`python distributed_worker.py BACKEND collectives` checks every collective, for each dtype, against
NumPy computed from every rank's inputs (each rank can rebuild the others': they depend on the rank
alone); it prints "rank R: N checks ok" and exits 0, or fails with the first mismatch.
`... BACKEND dead` makes rank 1 exit before an all_reduce; `... BACKEND hang` makes rank 1 sleep past
the timeout. Either way rank 0 must fail with a DistributedError within `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import agnostic as ag
from agnostic import distributed as dist

DTYPES = ("float32", "float64", "int64", "bool", "bfloat16")


def inputs(rank: int, dtype: str) -> np.ndarray:
    """Rank `rank`'s input, shape (4, 3): values every dtype holds exactly, different on each rank."""
    base = np.arange(12, dtype=np.float64).reshape(4, 3)
    if dtype == "bool":
        return (base + rank) % 3 == 0
    values = base * (rank + 1) - 5 * rank
    return values / 4 if dtype != "int64" else values


def reduce(stacked: np.ndarray, op: str) -> np.ndarray:
    if stacked.dtype == np.bool_:
        return {"sum": np.any, "max": np.any, "min": np.all}[op](stacked, axis=0)
    return {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[op](stacked, axis=0)


def check(name: str, got: ag.Tensor, want: np.ndarray, device: ag.Device, dtype: str) -> None:
    assert got.device is device, f"{name}: result on {got.device}, want {device}"
    assert got.dtype.name == dtype, f"{name}: dtype {got.dtype.name}, want {dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape}, want {want.shape}"
    host = got.numpy().astype(np.float64)
    assert np.array_equal(host, want.astype(np.float64)), f"{name}: got\n{host}\nwant\n{want}"


def collectives(device: ag.Device) -> int:
    """Every collective on every dtype; the number of checks that passed."""
    r, n = dist.rank(), dist.world_size()
    assert (n, dist.local_rank()) == (2, r), f"world size {n}, local rank {dist.local_rank()}, rank {r}"
    checks = 0
    for dtype in DTYPES:
        mine = inputs(r, dtype)
        stacked = np.stack([inputs(k, dtype) for k in range(n)])
        x = device.tensor(mine, dtype=dtype)
        ops = ("sum", "max", "min") + (("mean",) if dtype.startswith("float") or dtype == "bfloat16" else ())
        for op in ops:
            check(f"all_reduce {op} {dtype}", dist.all_reduce(x, op), reduce(stacked, op), device, dtype)
            want = reduce(stacked, op)[r * 2 : (r + 1) * 2]
            check(f"reduce_scatter {op} {dtype}", dist.reduce_scatter(x, op), want, device, dtype)
            checks += 2
        # a non-contiguous input (a transpose) reduces like its contiguous copy
        check(f"all_reduce T {dtype}", dist.all_reduce(x.T, "max"), reduce(stacked, "max").T, device, dtype)
        for src in range(n):
            check(f"broadcast {src} {dtype}", dist.broadcast(x, src), stacked[src], device, dtype)
        check(f"all_gather {dtype}", dist.all_gather(x), stacked, device, dtype)
        # tensors are values: no collective wrote into its input
        check(f"input unchanged {dtype}", x, mine, device, dtype)
        checks += 3 + n
        if dtype in ("int64", "bool"):
            try:
                dist.all_reduce(x, "mean")
            except TypeError as e:
                assert "mean" in str(e) and dtype in str(e), e
                checks += 1
            else:
                raise AssertionError(f"all_reduce mean on {dtype} did not raise")
    scalar = ag.sum(device.tensor([float(r + 1)]))  # 0-d (on NumPy, a NumPy scalar) stays 0-d
    check(
        "all_reduce 0-d",
        dist.all_reduce(scalar, "sum"),
        np.array(float(sum(range(1, n + 1)))),
        device,
        "float32",
    )
    dist.barrier()
    return checks + 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("mode", choices=("collectives", "dead", "hang"))
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    dist.init(args.backend, timeout=args.timeout)  # first: JAX joins a group only before its first array
    device = ag.backend(args.backend)
    r = dist.rank()
    if args.mode == "collectives":
        print(f"rank {r}: {collectives(device)} checks ok", flush=True)
    else:
        dist.barrier()  # every rank is in the group before rank 1 goes away
        if r == 1:
            if args.mode == "dead":
                os._exit(1)
            time.sleep(4 * args.timeout)
        dist.all_reduce(device.ones(3), "sum")
        print(f"rank {r}: all_reduce returned without its peer", flush=True)
    dist.shutdown()


if __name__ == "__main__":
    main()
