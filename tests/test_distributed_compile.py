"""DistributedDataParallel inside `agnostic.compile`d steps on the engines that cannot put a
collective in the compiled program (torch.distributed, for the torch and numpy backends): two
processes under torchrun (tests/distributed_compile_worker.py) train as the eager data-parallel run
and as one process on the global batch; in-process, with a stand-in engine, the reduction runs after
each call of the program in bucket order, a step that would update with unreduced gradients is
refused, and a collective called inside a compiled step says what to do."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from torchrun_here import two_processes

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.compilation import CompileError
from agnostic.distributed.data_parallel import DistributedDataParallel

WORKER = Path(__file__).with_name("distributed_compile_worker.py")
LIMIT = 240  # seconds for a whole torchrun; a hung collective cannot hang pytest


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_compiled_steps_train_as_eager_ddp_and_as_one_process(backend: str, tmp_path: Path) -> None:
    pytest.importorskip(backend)
    launcher = two_processes(backend)
    cmd = [*launcher, str(WORKER), backend]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(ag.__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [*cmd, str(tmp_path)], capture_output=True, text=True, timeout=LIMIT, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for r in range(2):
        result = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert set(result) == {"eager", "compiled", "split", "fused", "eager_accumulate", "accumulate"}
        for mode, d in result.items():
            assert d["between_replicas"] == 0.0, (r, mode, d)
            # float32 SGD with momentum, 20 steps: measured at most 6e-8 (parameters) and 3e-8
            # (gradients) from one process on the global batch; the compiled steps run the same
            # ops as the eager ones (0.0 measured)
            assert d["to_one_process"] < 1e-5 and d["grads_to_one_process"] < 1e-5, (r, mode, d)
            assert d["to_eager_ddp"] < 1e-6, (r, mode, d)
            if backend != "numpy" and not mode.startswith("eager"):
                assert d["compilations"] > 0, (r, mode, d)  # it ran compiled, not eagerly
                # the gradient reduction is in the torch.fx graph (torch's functional collectives)
                assert d["all_reduce_in_program"], (r, mode, d)


# ---------------------------------------------------------------------- in-process
class _Twin:
    """A stand-in engine for a group of two whose other process is this one's twin (same data):
    an all-reduce gives twice its input. Blocking only, and it cannot trace collectives."""

    name = "twin"

    def __init__(self) -> None:
        self.reduced: list[int] = []

    def world_size(self) -> int:
        return 2

    def rank(self) -> int:
        return 0

    def all_reduce(self, a, op):
        self.reduced.append(int(a.numel() if hasattr(a, "numel") else a.size))
        return a * 2

    def broadcast(self, a, src):
        return a + 0


@pytest.fixture
def torch_twin(monkeypatch: pytest.MonkeyPatch) -> tuple[ag.Device, _Twin]:
    pytest.importorskip("torch")
    device = ag.backend("torch")
    twin = _Twin()
    monkeypatch.setattr(dist, "_engine", twin)
    monkeypatch.setattr(dist, "_device", device)
    return device, twin


def _mlp(device: ag.Device) -> nn.Module:
    ag.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), backend=device
    )


def _batch(device: ag.Device, seed: int) -> tuple[ag.Tensor, ag.Tensor]:
    rng = np.random.default_rng(seed)
    x = ag.asarray(rng.standard_normal((8, 6)).astype(np.float32), device=device)
    return x, ag.asarray(rng.integers(0, 3, 8), device=device)


def test_the_reduction_runs_after_each_call_in_bucket_order(torch_twin: tuple[ag.Device, _Twin]) -> None:
    device, twin = torch_twin
    ddp = DistributedDataParallel(_mlp(device), bucket_cap_mb=60 / 2**20)  # 60 bytes: 15 float32s

    @ag.compile
    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        loss = F.cross_entropy(ddp(x), y)
        loss.backward()
        return loss

    plain = _mlp(device)
    for seed in range(3):
        for p, q in zip(ddp.parameters(), plain.parameters()):
            p.grad = q.grad = None
        twin.reduced.clear()
        step(*_batch(device, seed))
        assert twin.reduced == [3 + 12, 4, 20, 5, 30]  # every call, in reverse parameter order
        F.cross_entropy(plain(_batch(device, seed)[0]), _batch(device, seed)[1]).backward()
        for p, q in zip(ddp.parameters(), plain.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-8)
    assert step.compilations == 1  # traced once: the reduction is not traced, it is run after


def test_a_step_that_updates_with_unreduced_gradients_is_refused(torch_twin: tuple[ag.Device, _Twin]) -> None:
    device, _ = torch_twin
    ddp = DistributedDataParallel(_mlp(device))
    opt = ag.optim.SGD(list(ddp.parameters()), lr=0.1)

    @ag.compile
    def fused(x: ag.Tensor, y: ag.Tensor) -> None:
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    with pytest.raises(CompileError, match=r"unreduced\. Split the step"):
        fused(*_batch(device, 0))


@pytest.mark.parametrize("collective", ["all_reduce", "broadcast", "all_gather", "reduce_scatter"])
def test_a_collective_in_a_compiled_step_says_what_to_do(
    torch_twin: tuple[ag.Device, _Twin], collective: str
) -> None:
    device, _ = torch_twin

    @ag.compile
    def step(x: ag.Tensor) -> ag.Tensor:
        return getattr(dist, collective)(x * 2)

    with pytest.raises(
        dist.DistributedError, match=rf"{collective} \(rank 0\).*outside the compiled function"
    ):
        step(ag.ones((4,), device=device))


def test_an_engine_that_traces_collectives_gets_the_symbolic_arrays(
    torch_twin: tuple[ag.Device, _Twin], monkeypatch: pytest.MonkeyPatch
) -> None:
    device, twin = torch_twin
    monkeypatch.setattr(_Twin, "traces_collectives", True, raising=False)
    ddp = DistributedDataParallel(_mlp(device))

    @ag.compile
    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        F.cross_entropy(ddp(x), y).backward()
        return dist.all_reduce(x)

    x, y = _batch(device, 0)
    out = step(x, y)
    assert twin.reduced == [74, 48] * step.traces  # at each trace, into the program: the bucket, then x
    step(x, y)
    assert twin.reduced == [74, 48] * step.traces  # and not at a call (nothing runs after it)
    np.testing.assert_allclose(out.numpy(), 2 * x.numpy())
