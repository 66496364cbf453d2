"""agnostic.distributed on the torch.distributed engine: every collective under `torchrun
--nproc-per-node 2` (tests/distributed_worker.py) checked against NumPy, world size 1 in-process,
and a dead or hung worker turning into a DistributedError in bounded time."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from torchrun_here import torchrun

import agnostic as ag
from agnostic import distributed as dist
from agnostic.distributed.launch import free_port

WORKER = Path(__file__).with_name("distributed_worker.py")
LIMIT = 120  # seconds for a whole torchrun (start-up included); a hung collective cannot hang pytest


def _launch(*args: str, monitor_interval: float = 0.1) -> tuple[subprocess.CompletedProcess, float]:
    """torchrun with two workers; its result and how long it took. A longer `monitor_interval`
    lets a failing worker write its error before torchrun stops it for a peer's exit."""
    cmd = [
        torchrun(), "--nproc-per-node", "2", "--master-port", str(free_port()),
        "--monitor-interval", str(monitor_interval), str(WORKER), *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT, env=env, check=False)
    return done, time.monotonic() - start


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_collective_matches_numpy(backend: str) -> None:
    done, _ = _launch(backend, "collectives")
    assert done.returncode == 0, done.stdout + done.stderr
    for r in range(2):
        assert f"rank {r}: 65 checks ok" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["dead", "hang"])
def test_a_lost_peer_is_a_distributed_error_in_bounded_time(mode: str) -> None:
    timeout = 5
    done, took = _launch("numpy", mode, "--timeout", str(timeout), monitor_interval=3)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert took < timeout + 60, f"torchrun took {took:.0f} s"
    assert "all_reduce returned without its peer" not in out
    assert "DistributedError: distributed.all_reduce: rank 0 of world size 2" in out, out
    assert "The peer, rank 1, probably died" in out, out


def test_world_size_one_without_init() -> None:
    assert not dist.is_initialized()
    assert (dist.rank(), dist.world_size()) == (0, 1)
    dist.barrier()
    x = ag.backend("numpy").tensor(np.arange(6.0).reshape(2, 3))
    for op in dist.REDUCE_OPS:
        assert np.array_equal(dist.all_reduce(x, op).numpy(), x.numpy())
        assert np.array_equal(dist.reduce_scatter(x, op).numpy(), x.numpy())
    assert np.array_equal(dist.broadcast(x, 0).numpy(), x.numpy())
    assert dist.all_gather(x).shape == (1, 2, 3)
    with pytest.raises(TypeError, match=r"mean.*int64"):
        dist.all_reduce(x.astype("int64"), "mean")
    with pytest.raises(ValueError, match="src must be a rank"):
        dist.broadcast(x, 1)
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(x, "prod")


def test_init_without_a_launcher_is_a_group_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    torchrun()
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    device = ag.backend("torch")
    dist.init(device, timeout=10)
    try:
        assert dist.is_initialized() and (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
        dist.barrier()
        x = device.tensor([1.0, 2.0])
        assert dist.all_reduce(x, "mean").tolist() == [1.0, 2.0]
        with pytest.raises(dist.DistributedError, match="started for"):
            dist.all_reduce(ag.backend("numpy").tensor([1.0]))
    finally:
        dist.shutdown()
    assert not dist.is_initialized()


def test_an_incomplete_launcher_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    torchrun()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(dist.DistributedError, match=r"MASTER_ADDR, MASTER_PORT.*torchrun"):
        dist.init("numpy", timeout=5)
    assert not dist.is_initialized()


def test_a_group_the_script_started_is_joined_and_left_to_it() -> None:
    torchrun()
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        dist.init("numpy", timeout=10)
        assert dist.world_size() == 1
        dist.shutdown()
        assert tdist.is_initialized()  # agnostic did not destroy the script's group
    finally:
        tdist.destroy_process_group()
