"""The digits CNN trained data-parallel: one process per device (or CPU share), the same script on
every backend.

    torchrun --nproc-per-node 2 examples/digits_ddp.py --backend numpy      # or torch, jax
    python -m agnostic.distributed.launch -n 2 examples/digits_ddp.py --backend jax   # no torchrun
    python examples/digits_ddp.py                                           # one process: world size 1
    torchrun --nproc-per-node 8 examples/digits_ddp.py --backend torch:cuda # one GPU per process

A device named without an index (`torch:cuda`, `jax:gpu`, `cupy`) is this process's own: index
LOCAL_RANK. `--threads 1` keeps the processes of a CPU run from fighting over the cores.

Each process sees its share of every epoch (`DistributedSampler`), computes gradients on it, and
`DistributedDataParallel` averages them across processes in buckets during the backward pass, so
every process takes the same optimizer step: the model stays identical everywhere. The global
batch is `--batch-size` times the number of processes. Rank 0 evaluates and prints. Needs
scikit-learn (`pip install -e '.[examples]'`).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from digits_cnn import DigitsCNN, load

import agnostic as ag
from agnostic import distributed as dist
from agnostic import optim
from agnostic.data import DataLoader, DistributedSampler, TensorDataset


def local_device(backend: str) -> str:
    """`backend` with this process's own accelerator: a GPU named without an index gets LOCAL_RANK."""
    name, _, device = backend.partition(":")
    if name == "cupy" and not device:
        device = "cuda"
    if device in ("cuda", "gpu") and "LOCAL_RANK" in os.environ:
        return f"{name}:{device}:{os.environ['LOCAL_RANK']}"
    return backend


def run(backend: str, epochs: int = 12, batch_size: int = 32, seed: int = 0) -> float:
    """Train data-parallel on `backend` (the process group from the launcher's environment, or a
    group of one), and return the test accuracy (the same on every rank)."""
    backend = local_device(backend)
    dist.init(backend)  # first: on JAX the process group must start before XLA does
    device = ag.backend(backend)
    try:
        x_train, y_train, x_test, y_test = load(seed)
        ag.manual_seed(seed)
        model = dist.DataParallel(DigitsCNN(backend=device))  # rank 0's initial weights everywhere
        sampler = DistributedSampler(TensorDataset(x_train, y_train), shuffle=True, seed=seed)
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size, sampler=sampler, device=device)
        opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
            model.train()
            total = ag.zeros((), device=device)
            for xb, yb in loader:
                opt.zero_grad()
                loss = ag.cross_entropy(model(xb), yb)
                loss.backward()  # gradients averaged over the processes here
                opt.step()
                total = total + loss.detach()
            mean_loss = dist.all_reduce(total / len(loader), "mean").item()
            if dist.rank() == 0:
                print(f"epoch {epoch + 1}/{epochs}: loss {mean_loss:.4f} ({dist.world_size()} processes)")
        model.eval()
        with ag.no_grad():
            predicted = ag.argmax(model(device.tensor(x_test)), axis=-1).numpy()
        accuracy = float(np.mean(predicted == y_test))
        if dist.rank() == 0:
            print(f"test accuracy {accuracy:.2%}")
        return accuracy
    finally:
        dist.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # a plain name (not the examples' --backend, which builds the backend at once): JAX must join
    # the process group before its runtime starts
    parser.add_argument(
        "--backend", default="numpy", help="NAME[:DEVICE]: numpy, torch, jax, torch:cuda, cupy..."
    )
    parser.add_argument("--threads", type=int, help="CPU threads per process (default: the libraries')")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        ag.set_num_threads(args.threads)  # before any JAX work: XLA sizes its pools when it starts
    run(args.backend, args.epochs, args.batch_size, args.seed)


if __name__ == "__main__":
    main()
