"""Learner(distributed=True): two processes (tests/distributed_learner_worker.py, under torchrun or
agnostic's launcher) log and train what one process logs and trains on the global batch; a Ctrl-C on
one rank stops every rank at the same step and the checkpoint resumes on another world size to the
uninterrupted result; a dead worker ends the run in bounded time naming its rank; two "machines" over
loopback; the parts that need no process group (world size 1, errors) in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from torchrun_here import torchrun, two_processes

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.data import DataLoader, DistributedSampler, TensorDataset
from agnostic.distributed.data_parallel import DistributedDataParallel
from agnostic.distributed.launch import free_port
from agnostic.io import load, read_metadata
from agnostic.train import Learner, Metric

WORKER = str(Path(__file__).with_name("distributed_learner_worker.py"))
LIMIT = 240  # seconds for one multi-process run: a hung collective cannot hang pytest
EPOCHS, STEPS = 3, 18  # the worker's: 96 samples, a global batch of 16
# float32 rounding: summation order differs between one process and two (measured at most 1.2e-7)
PARAMS_TOL, LOSS_TOL = 1e-6, 1e-6


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(
    launcher: list[str], backend: str, out: Path, batch: int, *flags: str
) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    cmd = [*launcher, WORKER, backend, str(out), str(batch), *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT, env=_env(), check=False)


def _result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def _same_training(a: dict, b: dict) -> None:
    diff = max(float(np.max(np.abs(np.subtract(p, q)))) for p, q in zip(a["params"], b["params"]))
    assert diff < PARAMS_TOL, diff
    assert [r["step"] for r in a["history"]] == [r["step"] for r in b["history"]] == [6, 12, 18]
    for ra, rb in zip(a["history"], b["history"]):
        assert abs(ra["loss"] - rb["loss"]) < LOSS_TOL, (ra, rb)
        assert ra["accuracy"] == rb["accuracy"], (ra, rb)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_two_processes_log_and_train_as_one_on_the_global_batch(backend: str, tmp_path: Path) -> None:
    pytest.importorskip(backend if backend != "numpy" else "torch")
    one = _run([sys.executable], backend, tmp_path / "one", 16)
    assert one.returncode == 0, one.stdout + one.stderr
    two = _run(two_processes(backend), backend, tmp_path / "two", 8)
    assert two.returncode == 0, two.stdout + two.stderr
    a, b = _result(tmp_path / "one"), _result(tmp_path / "two")
    assert (a["world_size"], b["world_size"]) == (1, 2)
    _same_training(a, b)  # the epoch's metrics are every process's, summed before they are logged
    for epoch in range(1, EPOCHS + 1):  # rank 0 alone prints
        assert two.stdout.count(f"epoch {epoch}/{EPOCHS} ") == 1, two.stdout
    assert "rank 1 finished at step 18" in two.stdout
    files = sorted(os.listdir(tmp_path / "two" / "ck"))
    assert files == ["best.safetensors", "history.csv", "last.safetensors"], files
    assert len((tmp_path / "two" / "ck" / "history.csv").read_text().splitlines()) == EPOCHS + 1
    state = load(tmp_path / "two" / "ck" / "last.safetensors")
    assert not any(k.startswith("module.") for k in state["model"]), list(state["model"])  # unwrapped
    assert read_metadata(tmp_path / "two" / "ck" / "last.safetensors")["world_size"] == 2


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_compiled_steps_train_as_one_process(backend: str, tmp_path: Path) -> None:
    """Learner(compile=True): the forward/backward and the update compiled (jax.jit, a torch.fx
    graph), the gradient reduction after the program (torch) or inside it (JAX)."""
    pytest.importorskip(backend)
    one = _run([sys.executable], backend, tmp_path / "one", 16)
    assert one.returncode == 0, one.stdout + one.stderr
    two = _run(two_processes(backend), backend, tmp_path / "two", 8, "--compile")
    assert two.returncode == 0, two.stdout + two.stderr
    _same_training(_result(tmp_path / "one"), _result(tmp_path / "two"))


@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_a_ctrl_c_on_one_rank_stops_all_and_resumes_on_another_world_size(
    first: int, then: int, tmp_path: Path
) -> None:
    """Stopped mid-epoch 2 on `first` processes, resumed on `then`: the same parameters and history as
    the uninterrupted run (each process's batch scaled so the global batch stays 16)."""
    reference = _run([sys.executable], "numpy", tmp_path / "reference", 16)
    assert reference.returncode == 0, reference.stderr

    def launcher(n: int) -> list[str]:
        return two_processes("numpy") if n == 2 else [sys.executable]

    out = tmp_path / "run"
    stopped = _run(launcher(first), "numpy", out, 16 // first, "--stop-at", "8")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert _result(out)["step"] == 8 and _result(out)["interrupted"], _result(out)
    assert all(f"rank {r} finished at step 8" in stopped.stdout for r in range(first)), stopped.stdout
    meta = read_metadata(out / "ck" / "last.safetensors")
    assert (meta["step"], meta["reason"], meta["world_size"]) == (8, "interrupt", first)
    resumed = _run(launcher(then), "numpy", out, 16 // then, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stderr and "at epoch 2, step 8" in resumed.stderr
    assert _result(out)["world_size"] == then
    _same_training(_result(tmp_path / "reference"), _result(out))


@pytest.mark.parametrize("launcher", ["launch", "torchrun"])
def test_a_dead_worker_ends_the_run_in_bounded_time_naming_its_rank(launcher: str, tmp_path: Path) -> None:
    """Rank 1 is killed after step 5. agnostic's launcher gives the others --grace seconds, so rank 0's
    Learner reports where it stopped and which peer died; torchrun stops the others at once itself
    (SIGTERM) and its summary names the rank that failed first."""
    pytest.importorskip("torch")
    command = (
        [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2", "--grace", "60"]
        if launcher == "launch"
        else two_processes("numpy")
    )
    started = time.monotonic()
    done = _run(command, "numpy", tmp_path / "run", 8, "--die-at", "5")
    assert done.returncode != 0
    assert time.monotonic() - started < 150  # the worker's timeout is 30 s
    log = done.stdout + done.stderr
    if launcher == "launch":
        assert "Learner.fit (rank 0 of 2) stopped at epoch 1, optimizer step 5" in log, log[-4000:]
        assert "The peer, rank 1, probably died" in log, log[-4000:]
        assert "rank 1 was killed by SIGKILL" in log, log[-4000:]
    else:
        root_cause = log[log.index("Root Cause") :]
        assert "rank      : 1" in root_cause and "SIGKILL" in root_cause, log[-4000:]
    assert not (tmp_path / "run" / "result.json").exists()


def test_ctrl_c_to_agnostics_launcher_stops_every_worker_after_saving(tmp_path: Path) -> None:
    """The launcher passes SIGINT on once; the workers agree on a step, rank 0 saves, all exit 0.
    Both ranks wait after step 60 (mid-epoch 2) until the signal has reached them, so the step the run
    stops at does not depend on how busy the machine is."""
    pytest.importorskip("torch")
    out = tmp_path / "run"
    out.mkdir()
    cmd = [sys.executable, "-m", "agnostic.distributed.launch", "-n", "2", WORKER, "numpy", str(out), "1"]
    cmd += ["--wait-at", "60"]  # 48 steps an epoch, 144 in all
    launcher = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LIMIT
        while not all((out / f"waiting.{r}").exists() for r in range(2)):
            assert time.monotonic() < deadline and launcher.poll() is None, launcher.communicate()
            time.sleep(0.05)
        assert (out / "ck" / "history.csv").exists()  # an epoch is done: training is under way
        launcher.send_signal(signal.SIGINT)
        stdout, stderr = launcher.communicate(timeout=LIMIT)
    finally:
        launcher.kill()
    assert launcher.returncode == 130 and "interrupted; stopping every worker" in stderr, stderr
    result = _result(out)
    assert result["interrupted"] and result["step"] == 60, result
    assert "rank 1 finished at step 60" in stdout, stdout  # the same step on both
    assert read_metadata(out / "ck" / "last.safetensors")["reason"] == "interrupt"


def _two_machines(cmd_of: list[list[str]], backend: str, out: Path) -> list[subprocess.CompletedProcess]:
    out.mkdir()
    procs = [
        subprocess.Popen(
            [*cmd, WORKER, backend, str(out), "8"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in cmd_of
    ]
    done = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=LIMIT)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            p.kill()
    return done


def test_two_machines_over_loopback(tmp_path: Path) -> None:
    """torchrun's multi-node rendezvous (--nnodes/--rdzv-endpoint) and agnostic's launcher's
    (--nnodes/--node-rank/--master-addr), each as two one-process "machines" on this one."""
    port = str(free_port())
    rdzv = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    rdzv += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "loopback"]
    runs = {"torchrun": ([[torchrun(), *rdzv]] * 2, "numpy")}
    port = str(free_port())
    launch = [sys.executable, "-m", "agnostic.distributed.launch", "-n", "1", "--nnodes", "2"]
    launch += ["--master-addr", "127.0.0.1", "--master-port", port]
    runs["launch"] = ([[*launch, "--node-rank", str(n)] for n in range(2)], "jax")
    reference = _run([sys.executable], "numpy", tmp_path / "reference", 16)
    assert reference.returncode == 0, reference.stderr
    for name, (cmds, backend) in runs.items():
        done = _two_machines(cmds, backend, tmp_path / name)
        for d in done:
            assert d.returncode == 0, (name, d.stdout + d.stderr)
        assert _result(tmp_path / name)["world_size"] == 2
        _same_training(_result(tmp_path / "reference"), _result(tmp_path / name))


# ---------------------------------------------------------------------- one process


def _setup(**options) -> tuple[Learner, DataLoader]:
    ag.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
    ds = TensorDataset(x, (x[:, 0] > 0).astype(np.int64))
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    learner = Learner(
        model, ag.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, progress=False, **options
    )
    return learner, DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds))


def test_world_size_one_wraps_the_model_and_saves_it_unwrapped(tmp_path: Path) -> None:
    learner, loader = _setup(distributed=True, checkpoint_dir=tmp_path)
    try:
        assert isinstance(learner.model, DistributedDataParallel) and learner.distributed
        assert dist.is_initialized() and dist.world_size() == 1 and learner.is_main_process
        learner.fit(loader, 2)
        saved = load(tmp_path / "last.safetensors")["model"]
        assert sorted(saved) == sorted(learner.model.module.state_dict())
        plain, _ = _setup()
        plain.load_checkpoint(tmp_path / "last.safetensors")  # a plain model loads it
        assert loader.sampler.epoch == 1  # the learner called set_epoch for each epoch
    finally:
        dist.shutdown()


def test_a_wrapped_model_is_data_parallel_without_the_flag() -> None:
    ag.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(3, 2))
    learner = Learner(model, ag.optim.SGD(model.parameters(), lr=0.1), F.mse_loss, progress=False)
    assert learner.distributed and learner._module is model.module


def test_an_unsharded_loader_on_several_processes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    learner, loader = _setup(distributed=True)
    try:
        monkeypatch.setattr(dist, "world_size", lambda: 2)
        whole = DataLoader(loader.dataset, batch_size=8, shuffle=True)
        with pytest.raises(
            ValueError, match="no DistributedSampler, so every process would train on the whole"
        ):
            learner.fit(whole, 1)
    finally:
        monkeypatch.undo()
        dist.shutdown()


def test_a_metric_without_sync_says_so() -> None:
    class Median(Metric):
        name = "median"

        def reset(self) -> None:
            self.values: list[float] = []

        def update(self, output, target) -> None:
            self.values.append(0.0)

        def compute(self) -> float:
            return 0.0

    with pytest.raises(NotImplementedError, match=r"Median\.sync: this metric does not say how to combine"):
        Median().sync(lambda v: v)
