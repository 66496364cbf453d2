"""The jax engine (jax.distributed) and `python -m agnostic.distributed.launch`, with 2 real processes.

Every multi-process run is a subprocess with a timeout: a hung collective fails the test, never
hangs pytest. The workers are tests/distributed_jax_worker.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agnostic.distributed.launch import free_port

WORKER = Path(__file__).with_name("distributed_jax_worker.py")
LIMIT_S = 180
LAUNCHER_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "AGNOSTIC_JAX_COORDINATOR_PORT",
)
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")


def _env() -> dict[str, str]:
    """This process's environment without a launcher's variables (pytest may run under one)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _launch(
    *args: str, grace: float = 30.0, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2", "--grace", str(grace), *args]
    start = time.monotonic()
    done = subprocess.run(cmd, env=_env() | (env or {}), capture_output=True, text=True, timeout=LIMIT_S)
    return done, time.monotonic() - start


def _log(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


@needs_jax
def test_every_collective_through_the_launcher() -> None:
    done, _ = _launch(str(WORKER), "collectives")
    assert done.returncode == 0, _log(done)
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout, _log(done)


@needs_jax
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_every_collective_throughtorchrun() -> None:
    """torchrun's store takes MASTER_PORT; the jax engine's coordinator takes MASTER_PORT + 1."""
    cmd = [
        "torchrun",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        str(WORKER),
        "collectives",
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, _log(done)
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout, _log(done)


@needs_jax
def test_the_launcher_stops_the_others_when_a_worker_dies_at_once() -> None:
    """Rank 1 exits 1 before joining; rank 0 waits in init until the launcher stops it."""
    done, took = _launch(str(WORKER), "die", grace=3.0)
    assert done.returncode == 1, _log(done)
    assert "rank 1 exited with code 1" in done.stderr, _log(done)
    assert took < 60, f"took {took:.0f} s\n{_log(done)}"


@needs_jax
def test_a_dead_peer_ends_the_others_naming_its_rank() -> None:
    """Rank 1 dies after a collective: rank 0 exits non-zero by itself (long before the launcher's
    grace period ends), with rank 1 named by agnostic's DistributedError or by JAX's runtime."""
    done, took = _launch(str(WORKER), "die_after_init", grace=120.0)
    assert done.returncode != 0, _log(done)
    assert "rank 1 exited with code 1" in done.stderr, _log(done)
    assert took < 100, f"rank 0 did not exit by itself: {took:.0f} s\n{_log(done)}"
    out = done.stdout + done.stderr
    assert "rank(s) [1] died" in out or "stopped sending heartbeats):\n1\n" in out, _log(done)


@needs_jax
def test_mismatched_collectives_raise_within_the_timeout() -> None:
    """Rank 0 all-reduces shape (2,), rank 1 shape (3,): a DistributedError on both, not a hang."""
    done, took = _launch(str(WORKER), "mismatch", grace=60.0)
    assert done.returncode == 3, _log(done)
    for r in (0, 1):
        assert f"rank {r}: DistributedError: distributed.all_reduce: rank {r} of 2" in done.stdout, _log(done)
    assert took < 60, f"took {took:.0f} s\n{_log(done)}"


@needs_jax
def test_init_after_xla_started_says_to_init_first() -> None:
    code = (
        "import agnostic as ag\n"
        "from agnostic.distributed import DistributedError\n"
        "from agnostic.distributed.jax_engine import start\n"
        "ag.backend('jax').ones(2)\n"
        "try:\n"
        "    start(5.0)\n"
        "except DistributedError as e:\n"
        "    print(e)\n"
    )
    env = dict(_env(), RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=LIMIT_S
    )
    assert done.returncode == 0, _log(done)
    assert "XLA has already started" in done.stdout, _log(done)
    assert "call agnostic.distributed.init() before any jax work" in done.stdout, _log(done)


@needs_jax
def test_without_a_launcher_jax_is_a_world_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import agnostic as ag
    from agnostic import distributed as dist

    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    dist.init("jax", timeout=5)
    try:
        assert (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
        x = ag.backend("jax").tensor([1.5, -2.0])
        assert dist.all_reduce(x, "mean").tolist() == [1.5, -2.0]
        assert dist.all_gather(x).shape == (1, 2)
        dist.barrier()
    finally:
        dist.shutdown()


def test_the_launcher_sets_the_environment_and_forwards_the_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "env.py"
    script.write_text(
        "import os, sys, time\n"
        "v = [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')]\n"
        "print('env', *v, sys.argv[1:], flush=True)\n"
        f"marker = {str(tmp_path / 'rank0-printed')!r}\n"
        "if v[0] == '0':\n"
        "    open(marker, 'w').close()\n"
        "    sys.exit(0)\n"
        "end = time.monotonic() + 60\n"
        "while not os.path.exists(marker) and time.monotonic() < end:  # rank 0 printed before rank 1 fails\n"
        "    time.sleep(0.05)\n"
        "sys.exit(7)\n"
    )
    done, _ = _launch("--master-port", "29123", str(script), "--lr", "3", grace=1.0)
    assert "env 0 2 0 127.0.0.1 29123 ['--lr', '3']" in done.stdout, _log(done)
    assert "env 1 2 1 127.0.0.1 29123 ['--lr', '3']" in done.stdout, _log(done)
    assert done.returncode == 7 and "rank 1 exited with code 7" in done.stderr, _log(done)


def test_ctrl_c_stops_every_worker(tmp_path: Path) -> None:
    script = tmp_path / "sleep.py"
    script.write_text(
        "import os, sys, time\n"
        f"open(os.path.join({str(tmp_path)!r}, os.environ['RANK']), 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    cmd = [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2", str(script)]
    launcher = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / r).exists() and (tmp_path / r).read_text() for r in "01"):
            assert time.monotonic() < deadline and launcher.poll() is None, "the workers did not start"
            time.sleep(0.1)
        pids = [int((tmp_path / r).read_text()) for r in "01"]
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == 130 and "interrupted; stopping every worker" in err, err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@needs_jax
def test_collectives_inside_a_compiled_step_through_the_launcher() -> None:
    """Every collective in one `ag.compile`d step equals NumPy's, its XLA program holds the
    all-reduce and all-gather, and a compiled step without collectives runs on rank 0 alone."""
    done, _ = _launch(str(WORKER), "compiled")
    assert done.returncode == 0, _log(done)
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout, _log(done)


@needs_jax
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_collectives_inside_a_compiled_step_through_torchrun() -> None:
    cmd = ["torchrun", "--nproc-per-node", "2", "--master-port", str(free_port()), str(WORKER), "compiled"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, _log(done)
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout, _log(done)


@needs_jax
def test_a_compiled_collective_run_by_one_rank_alone_raises_within_the_timeout() -> None:
    done, took = _launch(str(WORKER), "compiled_alone", grace=60.0)
    assert done.returncode == 3, _log(done)
    assert "rank 0: DistributedError: distributed.compiled_step: rank 0 of 2" in done.stdout, _log(done)
    assert "rank 1: DistributedError: distributed.barrier: rank 1 of 2" in done.stdout, _log(done)
    assert took < 60, f"took {took:.0f} s\n{_log(done)}"


@needs_jax
def test_collectives_over_several_devices_per_process_say_to_start_one_process_per_device() -> None:
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done, _ = _launch(str(WORKER), "several_devices", env=flags)
    assert done.returncode == 0, _log(done)
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout, _log(done)


@needs_jax
def test_compiled_data_parallel_training_equals_eager_and_one_process() -> None:
    """W1's MLP, 20 SGD steps, the all-reduce inside the compiled forward/backward: the same
    parameters as eager DDP and as one process on the global batch, to float32 rounding (measured:
    3.2e-8; the bound 1e-6), and the replicas identical."""
    done, _ = _launch(str(WORKER), "ddp")
    assert done.returncode == 0, _log(done)
    for r in (0, 1):
        # The ranks share one pipe: find each rank's report wherever the other's output cut in.
        found = re.search(rf"rank {r}: ddp (\{{[^}}]*\}})", done.stdout)
        assert found is not None, _log(done)
        diffs = json.loads(found.group(1))
        assert diffs["between_replicas"] == 0.0, diffs
        for key in ("compiled_to_one", "compiled_to_eager", "eager_to_one"):
            assert diffs[key] < 1e-6, (key, diffs)
