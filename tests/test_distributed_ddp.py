"""DistributedDataParallel: two processes under `torchrun --nproc-per-node 2`
(tests/distributed_ddp_worker.py) train to the parameters of one process on the global batch; the
bucketed reduction, no_sync and the wrapper's names in-process (world size 1, and a stand-in group of
two whose peer is this process's twin); the post-accumulate-grad hook it relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torchrun_here import two_processes

import agnostic as ag
from agnostic import distributed as dist
from agnostic import functional as F
from agnostic import nn
from agnostic.distributed.data_parallel import DistributedDataParallel

WORKER = Path(__file__).with_name("distributed_ddp_worker.py")
LIMIT = 180  # seconds for a whole torchrun; a hung collective cannot hang pytest


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_two_processes_train_as_one_on_the_global_batch(backend: str, tmp_path: Path) -> None:
    pytest.importorskip(backend)
    launcher = two_processes(backend)
    cmd = [*launcher, str(WORKER), backend, str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for r in range(2):
        result = json.loads((tmp_path / f"rank{r}.json").read_text())
        for run, d in result.items():
            assert d["between_replicas"] == 0.0, (r, run, d)  # the same averaged gradients everywhere
            assert d["buckets"] == 4, (r, run, d)  # 1 MB buckets over W1's 2.7 MB of float32
            if run.endswith("float64"):  # exact up to summation order
                assert d["to_one_process"] < 1e-10 and d["grads_to_one_process"] < 1e-10, (r, run, d)
            elif run == "accumulate_adam_float32":
                # Adam divides by |grad|: float32 rounding of a gradient near zero moves an update by a
                # good part of lr, and the runs drift apart (measured up to 3.4e-3); float64 is exact.
                assert d["to_one_process"] < 1e-2, (r, run, d)
            else:  # float32: measured at most 6e-6 (Adam), 6e-8 (SGD)
                assert d["to_one_process"] < 1e-4 and d["grads_to_one_process"] < 1e-5, (r, run, d)


# ---------------------------------------------------------------------- in-process
def _mlp(seed: int = 0) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def _loss(model: nn.Module, seed: int) -> ag.Tensor:
    rng = np.random.default_rng(seed)
    x = ag.asarray(rng.standard_normal((8, 6)).astype(np.float32))
    y = ag.asarray(rng.integers(0, 3, 8))
    return F.cross_entropy(model(x), y)


def test_world_size_one_is_a_transparent_wrapper() -> None:
    assert not dist.is_initialized()
    model = _mlp()
    ddp = DistributedDataParallel(model)
    assert ddp.module is model
    assert list(ddp.state_dict()) == ["module." + k for k in model.state_dict()]
    plain = _mlp()
    _loss(ddp, 1).backward()
    _loss(plain, 1).backward()
    for p, q in zip(ddp.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    other = DistributedDataParallel(_mlp(5))
    other.load_state_dict(ddp.state_dict())
    for p, q in zip(other.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


class _TwinGroup:
    """A stand-in process group of two whose other process is this one's twin (same data): every
    all_reduce returns twice its input, so averaged gradients equal the local ones. Records calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reduced: list[int] = []
        self.broadcast: list[int] = []
        monkeypatch.setattr(dist, "world_size", lambda: 2)
        monkeypatch.setattr(dist, "all_reduce", self.all_reduce)
        monkeypatch.setattr(dist, "all_reduce_async", self.all_reduce_async)
        monkeypatch.setattr(dist, "broadcast", self.bcast)

    def all_reduce(self, t: ag.Tensor, op: str = "sum") -> ag.Tensor:
        assert op == "sum" and t.ndim == 1
        self.reduced.append(t.size)
        return t * 2

    def all_reduce_async(self, t: ag.Tensor, op: str = "sum") -> dist.Pending:
        done = self.all_reduce(t, op)
        return dist.Pending(lambda: done._data, t)

    def bcast(self, t: ag.Tensor, src: int = 0) -> ag.Tensor:
        assert src == 0
        self.broadcast.append(t.size)
        return t + 0


def _grads(model: nn.Module) -> list[np.ndarray]:
    return [p.grad.numpy() for p in model.parameters()]


def test_one_collective_per_bucket_in_reverse_order(monkeypatch: pytest.MonkeyPatch) -> None:
    group = _TwinGroup(monkeypatch)
    ddp = DistributedDataParallel(_mlp())
    assert group.broadcast == [30 + 5 + 20 + 4 + 12 + 3]  # all parameters in one broadcast
    _loss(ddp, 1).backward()
    assert group.reduced == [30 + 5 + 20 + 4 + 12 + 3]  # one bucket, one all_reduce
    plain = _mlp()
    _loss(plain, 1).backward()
    for g, h in zip(_grads(ddp), _grads(plain)):
        np.testing.assert_allclose(g, h, rtol=1e-6)

    group.reduced.clear()
    tiny = DistributedDataParallel(_mlp(), bucket_cap_mb=60 / 2**20)  # 60 bytes: 15 float32s
    _loss(tiny, 1).backward()
    assert group.reduced == [3 + 12, 4, 20, 5, 30]  # reverse parameter order; 60 bytes fit the last two
    for g, h in zip(_grads(tiny), _grads(plain)):
        np.testing.assert_allclose(g, h, rtol=1e-6)


class _AsyncTwin:
    """A stand-in engine of two twins with an asynchronous all-reduce; it logs when each reduction
    starts and when it is waited for."""

    name = "twin"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def world_size(self) -> int:
        return 2

    def rank(self) -> int:
        return 0

    def broadcast(self, a: np.ndarray, src: int) -> np.ndarray:
        return a.copy()

    def all_reduce_async(self, a: np.ndarray, op: str) -> object:
        self.log.append(f"start {a.size}")
        log = self.log

        class Work:
            def wait(self) -> np.ndarray:
                log.append(f"wait {a.size}")
                return a * 2

        return Work()


def test_buckets_are_reduced_while_backward_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(dist, "_engine", _AsyncTwin(log))
    monkeypatch.setattr(dist, "_device", ag.backend("numpy"))
    model = _mlp()
    for name, p in model.named_parameters():  # registered first: runs before DDP's own hook
        p.register_post_accumulate_grad_hook(lambda p, name=name: log.append(f"grad {name}"))
    ddp = DistributedDataParallel(model, bucket_cap_mb=60 / 2**20)  # buckets [3+12, 4, 20, 5, 30]
    _loss(ddp, 1).backward()
    assert log.index("start 15") < log.index("grad 2.bias")  # bucket 0 travels during backward...
    assert log.index("start 20") < log.index("grad 0.weight")
    last = log.index("grad 0.weight")  # the last gradient of backward
    assert [e for e in log[:last] if e.startswith("wait")] == []  # ...and is waited for only at its end
    assert log[last + 1 :] == ["start 30", "wait 15", "wait 4", "wait 20", "wait 5", "wait 30"]
    plain = _mlp()
    _loss(plain, 1).backward()
    for g, h in zip(_grads(ddp), _grads(plain)):
        np.testing.assert_allclose(g, h, rtol=1e-6)


def test_no_sync_accumulates_then_reduces_the_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    group = _TwinGroup(monkeypatch)
    ddp = DistributedDataParallel(_mlp())
    plain = _mlp()
    with ddp.no_sync():
        _loss(ddp, 1).backward()
        _loss(ddp, 2).backward()
    assert group.reduced == []
    _loss(ddp, 3).backward()
    assert len(group.reduced) == 1
    for s in (1, 2, 3):
        _loss(plain, s).backward()
    for g, h in zip(_grads(ddp), _grads(plain)):
        np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-7)
    assert ddp.require_backward_grad_sync


class _WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = _mlp()
        self.extra = nn.Linear(2, 2)

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return self.body(x)


def test_an_unused_parameter_is_named_at_the_next_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    _TwinGroup(monkeypatch)
    ddp = DistributedDataParallel(_WithUnused(), bucket_cap_mb=60 / 2**20)
    _loss(ddp, 1).backward()
    with pytest.raises(
        dist.DistributedError, match=r"rank 0.*extra\.weight, extra\.bias.*requires_grad=False"
    ):
        _loss(ddp, 2)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"expected an agnostic nn\.Module"):
        DistributedDataParallel(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        DistributedDataParallel(_mlp(), bucket_cap_mb=0)


def test_post_accumulate_grad_hook_runs_during_backward() -> None:
    model = _mlp()
    first, last = model[0].weight, model[4].weight
    seen: list[tuple[str, bool]] = []

    def hook(p: nn.Parameter) -> None:
        assert p.grad is not None
        seen.append(("last" if p is last else "first", first.grad is None))

    handles = [p.register_post_accumulate_grad_hook(hook) for p in (first, last)]
    _loss(model, 1).backward()
    # The last layer's gradient is complete (and hooked) before the first layer's is computed.
    assert seen == [("last", True), ("first", False)]
    for h in handles:
        h.remove()
    _loss(model, 1).backward()
    assert len(seen) == 2
    with pytest.raises(TypeError, match="must be callable"):
        first.register_post_accumulate_grad_hook(3)  # type: ignore[arg-type]


def test_nn_parallel_is_lazy() -> None:
    code = (
        "import sys, agnostic.nn.parallel as p\n"
        "assert 'agnostic.distributed' not in sys.modules\n"
        "from agnostic.distributed.data_parallel import DistributedDataParallel as D\n"
        "assert p.DistributedDataParallel is D\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_buffers_stay_per_process_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    group = _TwinGroup(monkeypatch)
    ag.manual_seed(0)
    ddp = DistributedDataParallel(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)))
    # Wrapping sends rank 0's state in one broadcast per dtype: float32 weights and statistics, int64 count.
    assert group.broadcast == [24 + 4 + 4 + 4 + 4 + 4, 1]
    x = ag.asarray(np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32))
    ddp(x)
    assert len(group.broadcast) == 2  # BatchNorm's running statistics stay this process's own
    synced = DistributedDataParallel(ddp.module, broadcast_buffers=True)
    group.broadcast.clear()
    synced(x)
    assert group.broadcast == [4, 4, 1]  # rank 0's statistics before every training forward
    synced.eval()
    synced(x)
    assert len(group.broadcast) == 3
