"""nn.SyncBatchNorm: BatchNorm exactly at world size 1 (forward, backward, running statistics, eval);
convert_sync_batchnorm keeps weights, statistics and mode; under `torchrun --nproc-per-node 2`
(tests/distributed_syncbn_worker.py) a conv + SyncBatchNorm + linear model trained data-parallel with
batch B per process equals one process with plain BatchNorm on the batch 2B."""

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
from agnostic import functional as F
from agnostic import nn

WORKER = Path(__file__).with_name("distributed_syncbn_worker.py")
ROOT = Path(__file__).resolve().parent.parent
LIMIT = 180  # seconds for a whole torchrun; a hung collective cannot hang pytest


def test_importing_nn_does_not_import_distributed() -> None:
    code = "import sys, agnostic.nn as nn; nn.SyncBatchNorm; print('agnostic.distributed' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("momentum", [0.1, None])
def test_world_size_1_is_batchnorm_exactly(momentum: float | None) -> None:
    dev = ag.backend("numpy")
    data = np.random.default_rng(0)
    ag.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=momentum, backend=dev).to(dtype="float64")
    sbn = nn.SyncBatchNorm(3, momentum=momentum, backend=dev).to(dtype="float64")
    for m in (bn, sbn):
        m.weight.assign(ag.asarray([0.5, 2.0, -1.0], device=dev, dtype="float64"))
        m.bias.assign(ag.asarray([0.1, 0.0, 0.3], device=dev, dtype="float64"))
    for _ in range(3):
        x = ag.asarray(data.standard_normal((4, 3, 5, 5)) * 3 + 1, device=dev).requires_grad_()
        x2 = ag.asarray(x.numpy(), device=dev).requires_grad_()
        w = ag.asarray(data.standard_normal((4, 3, 5, 5)), device=dev)
        y, y2 = bn(x), sbn(x2)
        (y * w).sum().backward()
        (y2 * w).sum().backward()
        np.testing.assert_array_equal(y.numpy(), y2.numpy())
        np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())
        for a, b in zip(bn.parameters(), sbn.parameters()):
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        for a, b in zip(bn.buffers(), sbn.buffers()):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(sbn.num_batches_tracked.item()) == 3
    bn.eval()
    sbn.eval()
    x = ag.asarray(data.standard_normal((2, 3, 5, 5)), device=dev)
    np.testing.assert_array_equal(bn(x).numpy(), sbn(x).numpy())
    assert list(sbn.state_dict()) == list(bn.state_dict())


def test_any_rank_from_2d_and_shape_errors() -> None:
    dev = ag.backend("numpy")
    for shape in ((4, 3), (4, 3, 5), (2, 3, 2, 2, 2)):
        y = nn.SyncBatchNorm(3, backend=dev)(
            ag.asarray(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
        )
        assert y.shape == shape
        np.testing.assert_allclose(
            y.numpy().mean(axis=tuple(i for i in range(len(shape)) if i != 1)), 0, atol=1e-5
        )
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected input .* at least 2D"):
        nn.SyncBatchNorm(3, backend=dev)(ag.ones((3,), device=dev))
    with pytest.raises(ValueError, match="SyncBatchNorm: expected 3 channels"):
        nn.SyncBatchNorm(3, backend=dev)(ag.ones((2, 4), device=dev))
    with pytest.raises(ValueError, match="process_group must be None"):
        nn.SyncBatchNorm(3, process_group="group", backend=dev)


def test_convert_sync_batchnorm_keeps_weights_statistics_and_mode() -> None:
    dev = ag.backend("numpy")
    ag.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4, momentum=0.3, eps=1e-3),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.BatchNorm1d(5, affine=False)),
        nn.BatchNorm1d(5, track_running_stats=False),
        backend=dev,
    ).to(dtype="float64")
    data = np.random.default_rng(1)
    model(ag.asarray(data.standard_normal((6, 3, 6, 6)), device=dev))  # running statistics move
    model[2][2].eval()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    params = {name: p for name, p in model.named_parameters()}
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    for name in ("1", "2.2", "3"):
        m = dict(converted.named_modules())[name]
        assert type(m) is nn.SyncBatchNorm, name
    old = dict(model.named_modules())
    bn, inner, plain = old["1"], old["2.2"], old["3"]
    assert (bn.eps, bn.momentum, bn.affine) == (1e-3, 0.3, True)
    assert (inner.affine, inner.weight, inner.training) == (False, None, False)
    assert (plain.track_running_stats, plain.running_mean) == (False, None)
    assert plain.training
    after = converted.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v)
        assert after[k].dtype == ag.float64 or k.endswith("num_batches_tracked")
    for name, p in converted.named_parameters():
        assert p is params[name]  # the same Parameter objects: an optimizer built before still works
    assert all(not isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in converted.modules())
    # a BatchNorm passed directly comes back converted, its Parameters kept
    single = nn.BatchNorm1d(4, backend=dev)
    out = nn.SyncBatchNorm.convert_sync_batchnorm(single)
    assert type(out) is nn.SyncBatchNorm and out.weight is single.weight and out.bias is single.bias
    # numerically the converted model is the original one (world size 1)
    ag.manual_seed(0)
    x = ag.asarray(data.standard_normal((6, 3, 6, 6)), device=dev)
    ref = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4, momentum=0.3, eps=1e-3),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.BatchNorm1d(5, affine=False)),
        nn.BatchNorm1d(5, track_running_stats=False),
        backend=dev,
    ).to(dtype="float64")
    ref.load_state_dict({k: ag.asarray(v, device=dev) for k, v in before.items()})
    ref[2][2].eval()
    np.testing.assert_array_equal(converted(x).numpy(), ref(x).numpy())


def test_convert_keeps_the_backend() -> None:
    pytest.importorskip("torch")
    dev = ag.backend("torch")
    bn = nn.BatchNorm2d(2, backend=dev)
    out = nn.SyncBatchNorm.convert_sync_batchnorm(bn)
    assert out.backend is dev and out.running_mean.device is dev
    y = out(ag.asarray(np.random.default_rng(0).standard_normal((3, 2, 2, 2)), device=dev, dtype="float32"))
    assert y.device is dev
    F.mse_loss(y, ag.zeros_like(y)).backward()
    assert out.weight.grad is not None


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_two_processes_equal_one_on_the_global_batch(backend: str, tmp_path: Path) -> None:
    pytest.importorskip(backend)
    launcher = two_processes(backend)
    cmd = [*launcher, str(WORKER), backend, str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])  # this checkout
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for r in range(2):
        d = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert "SyncBatchNorm" in d["kinds"] and "BatchNorm2d" not in d["kinds"], d
        assert d["between_replicas"] == 0.0, (r, d)
        assert d["num_batches_tracked"] == [5, 5], (r, d)
        assert d["running_var_moved"] > 0.1, (r, d)  # the statistics were updated
        # float64: the same numbers up to summation order (measured <= 1e-15)
        for key in (
            "to_one_process",
            "grads_to_one_process",
            "outputs_to_one_process",
            "eval_to_one_process",
        ):
            assert d[key] < 1e-10, (r, key, d)
        assert d["unsynced_to_one_process"] > 1e-4, (r, d)  # per-process BatchNorm is not the global one
        # plain BatchNorm: this rank equals a replica trained on its half alone, gradients averaged
        # (float64, measured <= 1e-15); the ranks' running statistics differ
        assert d["per_process"]["to_replica"] < 1e-10, (r, d)
        assert d["per_process"]["running_mean_between_ranks"] > 1e-3, (r, d)
