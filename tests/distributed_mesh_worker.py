"""A worker that tests/test_distributed_mesh.py runs in a subprocess with two host devices (not a
test module): XLA_FLAGS=--xla_force_host_platform_device_count=2 must be set before jax starts.

`python distributed_mesh_worker.py`: W1's MLP and a BatchNorm MLP trained 20 SGD steps by
MeshDataParallel over the two devices, eagerly and with the whole step `ag.compile`d, and on one
device with the same batch, the same two ways; prints one line "result JSON" with the largest
differences of the parameters (and running statistics) to the one-device run of the same way (a
compiled step rounds differently from the eager one: with this data one ReLU input sits within
rounding of 0 at step 5 of the MLP, so compiled and eager differ there by 1.5e-3, on one device too), how the batch and the parameters are
placed, whether the compiled program holds XLA's all-reduce, gradient accumulation under
no_sync, the errors for bad input, what `ag.distributed.DataParallel` gives at world size 1, and
`Learner(distributed=True)` over the two devices against the Learner on one.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

import agnostic as ag
from agnostic import functional as F
from agnostic import nn
from agnostic.distributed.mesh_parallel import MeshDataParallel

SIZES, STEPS, BATCH = (784, 512, 512, 10), 20, 16  # W1's MLP; the whole batch


def model(kind: str, device: ag.Device) -> nn.Module:
    ag.manual_seed(0)
    if kind == "mlp":
        layers = [nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU()]
    else:
        layers = [nn.Linear(SIZES[0], SIZES[1]), nn.BatchNorm1d(SIZES[1]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(SIZES[2], SIZES[3]), backend=device)


def state(m: nn.Module) -> np.ndarray:
    return np.concatenate([t.numpy().ravel() for t in [*m.parameters(), *m.buffers()] if t.dtype.is_floating])


def train(kind: str, mode: str, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, dict]:
    one = ag.backend("jax")
    net: nn.Module = model(kind, one)
    if mode.startswith("mesh"):
        net = MeshDataParallel(net)
    device = net.backend
    opt = ag.optim.SGD(list(net.parameters()), lr=0.05, momentum=0.9)

    def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    run = ag.compile(step) if mode.endswith("compiled") else step
    for i in range(STEPS):
        rows = slice(i * BATCH, (i + 1) * BATCH)
        run(device.tensor(xs[rows]), device.tensor(ys[rows]))
    info = {"device": device.device}
    if mode.startswith("mesh"):
        info["params_replicated"] = all(
            p._data.sharding.is_fully_replicated and len(p._data.sharding.device_set) == 2
            for p in net.parameters()
        )
    if mode.endswith("compiled"):
        texts = [e.run.as_text() for entries in run._cache.values() for e in entries]
        info["programs"] = len(texts)
        info["all_reduce_in_program"] = all("all-reduce" in t for t in texts)
    return state(net), info


def accumulated(xs: np.ndarray, ys: np.ndarray) -> float:
    """The largest difference of the gradients of three micro-batches, two under no_sync, to one
    device's accumulated ones."""
    grads = []
    for mesh in (False, True):
        net = model("mlp", ag.backend("jax"))
        if mesh:
            net = MeshDataParallel(net)
        device = net.backend
        for i in range(3):
            rows = slice(i * BATCH, (i + 1) * BATCH)
            with net.no_sync() if mesh and i < 2 else contextlib.nullcontext():
                F.cross_entropy(net(device.tensor(xs[rows])), device.tensor(ys[rows])).backward()
        grads.append(np.concatenate([p.grad.numpy().ravel() for p in net.parameters()]))
    return float(np.max(np.abs(grads[0] - grads[1])))


def errors() -> dict[str, str]:
    net = MeshDataParallel(model("mlp", ag.backend("jax")))
    device = net.backend
    out = {}
    cases = {
        "odd_batch": lambda: net(device.zeros(15, SIZES[0])),
        "scalar": lambda: net.shard(device.zeros(())),
        "other_backend": lambda: net(ag.backend("numpy").zeros(4, SIZES[0])),
        "numpy_model": lambda: MeshDataParallel(model("mlp", ag.backend("numpy"))),
    }
    for name, call in cases.items():
        try:
            call()
        except ValueError as e:
            out[name] = str(e)
        else:
            out[name] = "no error"
    return out


def learner(devices: str, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Two epochs of `Learner(distributed=True)` with the model on `devices` (a mesh, or one)."""
    from agnostic.data import DataLoader, TensorDataset
    from agnostic.train import Learner

    device = ag.backend("jax", device=devices)
    net = model("mlp", device)
    fit = Learner(
        net, ag.optim.SGD(net.parameters(), lr=0.05), F.cross_entropy, progress=False, distributed=True
    )
    loader = DataLoader(TensorDataset(xs, ys), batch_size=BATCH, device=device)
    history = fit.fit(loader, 2)
    return state(net), [{k: row[k] for k in ("loss", "step")} for row in history]


def main() -> None:
    import jax

    assert len(jax.devices("cpu")) == 2, "set XLA_FLAGS=--xla_force_host_platform_device_count=2"
    data = np.random.default_rng(0)
    xs = data.standard_normal((STEPS * BATCH, SIZES[0])).astype(np.float32)
    ys = data.integers(0, SIZES[-1], STEPS * BATCH)
    result: dict = {}
    for kind in ("mlp", "batchnorm"):
        for way in ("", "_compiled"):
            ref, _ = train(kind, "one" + way, xs, ys)
            got, info = train(kind, "mesh" + way, xs, ys)
            result[f"{kind}/mesh{way}"] = {"to_one_device": float(np.max(np.abs(got - ref))), **info}
    net = MeshDataParallel(model("mlp", ag.backend("jax")))
    batch = net.shard(net.backend.tensor(xs[:BATCH]))
    result["batch"] = {
        "devices": len(batch._data.sharding.device_set),
        "shard_shapes": sorted({tuple(s.data.shape) for s in batch._data.addressable_shards}),
        "equal": bool(np.array_equal(batch.numpy(), xs[:BATCH])),
    }
    forward = ag.compile(lambda x: net(x).sum())
    replicated = net.backend.tensor(xs[:BATCH])
    first, second = forward(replicated).item(), forward(net.shard(replicated)).item()
    result["compiled_takes_either_placement"] = {
        "programs": forward.compilations,
        "difference": abs(first - second),
    }
    result["accumulated_under_no_sync"] = accumulated(xs, ys)
    result["errors"] = errors()
    result["data_parallel"] = {
        where: type(ag.distributed.DataParallel(model("mlp", ag.backend("jax", device=where)))).__name__
        for where in ("cpu:0,1", "cpu")
    }
    (one, one_history), (two, two_history) = learner("cpu", xs, ys), learner("cpu:*", xs, ys)
    result["learner"] = {
        "to_one_device": float(np.max(np.abs(one - two))),
        "loss_difference": max(abs(a["loss"] - b["loss"]) for a, b in zip(one_history, two_history)),
        "steps": [row["step"] for row in two_history],
    }
    print("result " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
