"""MeshDataParallel and the jax Device over several local devices: one process, two host devices.

XLA takes its device count when jax starts, so every check runs in a subprocess (with a timeout)
started with XLA_FLAGS=--xla_force_host_platform_device_count=2; the worker is
tests/distributed_mesh_worker.py.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

WORKER = Path(__file__).with_name("distributed_mesh_worker.py")
LIMIT_S = 240
TOLERANCE = 1e-6
"""float32 rounding over 20 steps: sums over the batch are added in another order (measured: the MLP
3e-8, the BatchNorm model 1.5e-7)."""


def _run(*args: str) -> subprocess.CompletedProcess:
    # PJRT_NPROC: XLA's CPU client runs each host device's part of a program on its thread pool, and
    # an all-reduce waits (40 s at most, then aborts) until every device's part has arrived: on a
    # busy 2-core machine a pool of 2 was seen to starve one device, so give the pool room for both
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PJRT_NPROC="8",
        PYTHONUNBUFFERED="1",
    )
    env.pop("AGNOSTIC_BACKEND", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=LIMIT_S)


@functools.cache
def _result() -> dict:
    done = _run(str(WORKER))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("result ")), None)
    assert done.returncode == 0 and line is not None, (
        f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return json.loads(line[len("result ") :])


@pytest.mark.parametrize("kind", ["mlp", "batchnorm"])
@pytest.mark.parametrize("way", ["", "_compiled"])
def test_training_over_two_devices_equals_one_device(kind: str, way: str) -> None:
    """Parameters (and BatchNorm's running statistics: over the whole batch) after 20 SGD steps
    equal one device's on the same batch; the parameters stay replicated on both devices; a
    compiled step's program holds the all-reduce XLA inserted for the gradients."""
    got = _result()[f"{kind}/mesh{way}"]
    assert got["device"] == "cpu:0,1", got
    assert got["to_one_device"] < TOLERANCE, got
    assert got["params_replicated"], got
    if way:
        assert got["all_reduce_in_program"] and got["programs"] == 2, got  # before and after SGD's momentum


def test_the_batch_is_split_over_both_devices() -> None:
    assert _result()["batch"] == {"devices": 2, "shard_shapes": [[8, 784]], "equal": True}


def test_a_compiled_step_takes_a_batch_placed_either_way() -> None:
    """Traced with a replicated batch, then called with one split over the devices: one program."""
    got = _result()["compiled_takes_either_placement"]
    assert got["programs"] == 1 and got["difference"] < 1e-4, got


def test_gradients_accumulate_under_no_sync_as_on_one_device() -> None:
    assert _result()["accumulated_under_no_sync"] < TOLERANCE


def test_bad_input_is_a_clear_error() -> None:
    errors = _result()["errors"]
    assert "batch of 15" in errors["odd_batch"] and "multiple of 2" in errors["odd_batch"], errors
    assert "no batch axis (0-d)" in errors["scalar"], errors
    assert "is on Device('numpy', 'cpu'), the model on Device('jax', 'cpu:0,1')" in errors["other_backend"]
    assert "the model is on the numpy backend" in errors["numpy_model"], errors
    assert "torchrun" in errors["numpy_model"], errors


def test_device_names_over_several_devices() -> None:
    code = (
        "import agnostic as ag\n"
        "from agnostic.backends.base import DeviceUnavailable\n"
        "print(ag.backend('jax', 'cpu:*').device, ag.backend('jax', 'cpu:1,0').device, ag.backend('jax', 'cpu:0').device)\n"
        "assert ag.backend('jax', 'cpu:0,1') is ag.backend('jax', 'cpu:*')\n"
        "x = ag.backend('jax', 'cpu:0,1').ones(3)\n"
        "print(sorted(d.id for d in x._data.sharding.device_set), x._data.sharding.is_fully_replicated)\n"
        "for bad in ('cpu:0,2', 'cpu:0,0', 'cpu:0,x'):\n"
        "    try:\n"
        "        ag.backend('jax', bad)\n"
        "    except (ValueError, DeviceUnavailable) as e:\n"
        "        print(type(e).__name__, e)\n"
    )
    done = _run("-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "cpu:0,1 cpu:1,0 cpu", lines
    assert lines[1] == "[0, 1] True", lines
    assert lines[2].startswith("DeviceUnavailable backend 'jax': device 'cpu:0,2': JAX sees 2 CPU"), lines
    assert "xla_force_host_platform_device_count" in lines[2], lines
    assert lines[3].startswith("ValueError backend 'jax': device 'cpu:0,0': name distinct device numbers"), (
        lines
    )
    assert lines[4].startswith("ValueError backend 'jax': device 'cpu:0,x'"), lines


def test_data_parallel_at_world_size_one_is_over_the_devices() -> None:
    assert _result()["data_parallel"] == {"cpu:0,1": "MeshDataParallel", "cpu": "DistributedDataParallel"}


def test_the_learner_trains_over_the_devices_as_on_one() -> None:
    got = _result()["learner"]
    assert got["to_one_device"] < TOLERANCE and got["loss_difference"] < TOLERANCE, got
    assert got["steps"] == [20, 40], got
