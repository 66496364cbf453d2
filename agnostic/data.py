"""Datasets and a batching loader with torch.utils.data's semantics.

Batches are built on the host (NumPy) and moved to the target backend once per batch, so an
accelerator sees one transfer per batch, not one per sample. Shuffles and splits draw their seed from
an agnostic `Generator` (or the global stream) and permute on the host, so the same seed gives the
same order on every backend.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agnostic.device import Device, as_device
from agnostic.random import Generator, next_seed
from agnostic.tensor import Tensor

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "default_collate",
    "to_device",
    "DataLoader",
    "DistributedSampler",
]


@runtime_checkable
class Dataset(Protocol):
    """Anything indexable by an int in `range(len(ds))`: what `DataLoader` and `Subset` need."""

    def __getitem__(self, index: int) -> Any: ...

    def __len__(self) -> int: ...


def _permutation(n: int, generator: Generator | None) -> np.ndarray:
    """A permutation of range(n) on the host, seeded from the agnostic stream (backend-independent)."""
    seed = next_seed(generator=generator)
    return np.random.Generator(np.random.Philox(seed)).permutation(n)


def _host(x: Tensor | np.ndarray) -> np.ndarray:
    return x.numpy() if isinstance(x, Tensor) else x


class TensorDataset:
    """Samples are rows of several tensors (or NumPy arrays) that share their first dimension."""

    def __init__(self, *tensors: Tensor | np.ndarray) -> None:
        if not tensors:
            raise ValueError("TensorDataset: need at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, (Tensor, np.ndarray)):
                raise TypeError(
                    f"TensorDataset: argument {i} must be an agnostic Tensor or a NumPy array, "
                    f"got {type(t).__name__}"
                )
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; need a first dimension to index")
        sizes = [int(t.shape[0]) for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: tensors must share their first dimension, got sizes {sizes}")
        self.tensors = tensors
        self._host_cache: tuple[np.ndarray, ...] | None = None

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def _host_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """A whole batch by one fancy index per tensor on host copies (made once), for the loader's
        default collate: the same values and dtypes as stacking the samples, without per-sample
        device reads."""
        if self._host_cache is None:
            self._host_cache = tuple(np.asarray(_host(t)) for t in self.tensors)
        return tuple(a[indices] for a in self._host_cache)


class Subset:
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    def _host_batch(self, indices: np.ndarray) -> Any:
        return self.dataset._host_batch(np.asarray(self.indices, dtype=np.int64)[indices])  # type: ignore[attr-defined]

    def _has_host_batch(self) -> bool:
        return _has_host_batch(self.dataset)


def _has_host_batch(dataset: Any) -> bool:
    if isinstance(dataset, Subset):
        return dataset._has_host_batch()
    return isinstance(dataset, TensorDataset)


def random_split(
    dataset: Dataset, lengths: Sequence[int | float], generator: Generator | None = None
) -> list[Subset]:
    """Disjoint random subsets of the given lengths (ints summing to len(dataset), or fractions
    summing to 1, with the remainder dealt round-robin as torch does); the same seed gives the same
    split on every backend."""
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in lengths):
        sizes = [int(x) for x in lengths]
        if any(s < 0 for s in sizes):
            raise ValueError(f"random_split: lengths must be non-negative, got {sizes}")
        if sum(sizes) != n:
            raise ValueError(
                f"random_split: lengths {sizes} sum to {sum(sizes)}, not the dataset's length {n}"
            )
    else:
        fracs = [float(x) for x in lengths]
        if any(not 0.0 <= f <= 1.0 for f in fracs):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {fracs}")
        total = sum(fracs)
        if not (math.isclose(total, 1.0) and total <= 1.0 + 1e-12):
            raise ValueError(f"random_split: fractions {fracs} sum to {total}, not 1")
        sizes = [math.floor(n * f) for f in fracs]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    perm = _permutation(n, generator).tolist()
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start : start + s]))
        start += s
    return out


# ---------------------------------------------------------------------- distributed sampler
_TORCH_RANDPERM_SMALL = (2**32 - 1) // 20
"""torch.randperm draws one 32-bit word per swap below this size and switches algorithm above it."""


def _torch_randperm(n: int, seed: int) -> np.ndarray:
    """torch.randperm(n, generator=torch.Generator().manual_seed(seed)), without torch: the same
    Fisher-Yates swaps driven by the same MT19937 stream (NumPy's legacy seeding is torch's), so a
    DistributedSampler gives torch's indices exactly, on every backend."""
    if n >= _TORCH_RANDPERM_SMALL:
        raise ValueError(
            f"DistributedSampler: a shuffled dataset of {n} samples is beyond the {_TORCH_RANDPERM_SMALL} "
            "for which torch.randperm's order is reproduced; pass shuffle=False and shuffle a Subset"
        )
    words = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, size=max(n - 1, 0), dtype=np.uint32)
    steps = np.arange(max(n - 1, 0), dtype=np.int64)
    targets = (words.astype(np.int64) % (n - steps) + steps).tolist()
    out = list(range(n))
    for i, j in enumerate(targets):  # sequential by nature: each swap sees the previous ones
        out[i], out[j] = out[j], out[i]
    return np.asarray(out, dtype=np.int64)


class DistributedSampler:
    """The indices of `dataset` that this process (`rank` of `num_replicas`) trains on, with
    torch.utils.data.DistributedSampler's exact semantics: a permutation seeded with `seed + epoch`
    (torch's, index for index; call `set_epoch` before each epoch), padded by repeating indices from
    the start, or cut (`drop_last`), to a multiple of `num_replicas`, then every `num_replicas`-th
    index from `rank`: every process gets the same number of samples, so none waits on a collective
    the others never make. Defaults: agnostic.distributed's rank() and world_size() (0 and 1 without
    a process group)."""

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            # Imported here: agnostic.distributed sits above data in the layers, and a sampler given
            # both numbers needs no process group.
            from agnostic import distributed

            num_replicas = distributed.world_size() if num_replicas is None else num_replicas
            rank = distributed.rank() if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be an int >= 1, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.start = 0  # where in the epoch's order iteration begins: past 0 only in a resumed epoch
        self._size()

    def _size(self) -> None:
        """num_samples (per replica) and total_size (padded) of what is left of the epoch from `start`."""
        n = len(self.dataset) - self.start
        if self.drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        indices = _torch_randperm(n, self.seed + self.epoch) if self.shuffle else np.arange(n, dtype=np.int64)
        indices = indices[self.start :]
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding and len(indices):
                indices = np.concatenate([indices, np.resize(indices, padding)])
        else:
            indices = indices[: self.total_size]
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use this epoch's permutation (seed + epoch): call it at the start of every epoch, on every
        process, or each epoch repeats the first one's order. (`Learner` calls it.)"""
        self.epoch = int(epoch)
        self.start = 0
        self._size()

    def position_after(self, taken: int) -> int:
        """Where the epoch's order stands once every replica has taken `taken` samples: replica r
        takes positions r, r + num_replicas, ... of it, so together they took the first
        `taken * num_replicas` (counted from `start`), whatever the number of replicas."""
        return min(self.start + taken * self.num_replicas, len(self.dataset))

    def state_dict(self, taken: int = 0) -> dict[str, Any]:
        """The epoch and how far into its order the replicas are after `taken` samples each: a
        resume point that holds for any number of replicas (see `load_state_dict`)."""
        return {
            "epoch": self.epoch,
            "position": self.position_after(taken),
            "seed": self.seed,
            "shuffle": self.shuffle,
            "dataset_size": len(self.dataset),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue an epoch where `state_dict` left it, possibly with another number of replicas:
        the samples of the epoch's order not taken yet are dealt out afresh (padded or cut as at the
        start of an epoch), so a run stopped on 2 processes resumes on 1 or 4 without repeating or
        skipping a sample."""
        mine = {"seed": self.seed, "shuffle": self.shuffle, "dataset_size": len(self.dataset)}
        differs = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if differs:
            raise ValueError(
                "DistributedSampler.load_state_dict: the saved sampler had "
                + ", ".join(f"{k}={a!r} (this one {b!r})" for k, (a, b) in differs.items())
                + "; was the checkpoint taken on another dataset or with another seed?"
            )
        position = state["position"]
        if not isinstance(position, (int, np.integer)) or not 0 <= position <= len(self.dataset):
            raise ValueError(
                f"DistributedSampler.load_state_dict: position {position!r} is not in [0, {len(self.dataset)}]"
            )
        self.epoch, self.start = int(state["epoch"]), int(position)
        self._size()


# ---------------------------------------------------------------------- collate
def _collate_host(batch: Sequence[Any]) -> Any:
    """Stack a list of samples along a new first axis into NumPy arrays, keeping the structure.
    Python floats become float32 and ints int64 (agnostic's defaults); arrays and tensors keep their
    dtype; strings stay a list."""
    first = batch[0]
    if isinstance(first, Tensor):
        return np.stack([_host(x) for x in batch])
    if isinstance(first, (np.ndarray, np.generic)):
        return np.stack([np.asarray(x) for x in batch])
    if isinstance(first, bool):
        return np.asarray(batch, dtype=np.bool_)
    if isinstance(first, int):
        return np.asarray(batch, dtype=np.int64)
    if isinstance(first, float):
        return np.asarray(batch, dtype=np.float32)
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        keys = list(first)
        for s in batch:
            if not isinstance(s, Mapping) or set(s) != set(keys):
                raise ValueError(f"default_collate: samples have different keys: {keys} vs {list(s)}")
        return {k: _collate_host([s[k] for s in batch]) for k in keys}
    if isinstance(first, (tuple, list)):
        size = len(first)
        if any(len(s) != size for s in batch):
            raise ValueError("default_collate: samples' sequences have different lengths")
        fields = [_collate_host(list(col)) for col in zip(*batch)]
        if isinstance(first, tuple) and hasattr(first, "_fields"):
            return type(first)(*fields)
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(
        f"default_collate: cannot batch samples of type {type(first).__name__}; expected Tensors, "
        "NumPy arrays, numbers, strings, or dicts/tuples/lists of them (or pass collate_fn=)"
    )


def _same_device(a: Device, b: Device) -> bool:
    return a.name == b.name and a.device == b.device


def to_device(tree: Any, device: Device) -> Any:
    """Move every NumPy array / Tensor in `tree` to `device` (one transfer per leaf), keeping dtypes."""
    if isinstance(tree, np.ndarray):
        return device.from_numpy(tree)
    if isinstance(tree, Tensor):
        return tree if _same_device(tree.device, device) else tree.to(device)
    if isinstance(tree, Mapping):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(to_device(v, device) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(to_device(v, device) for v in tree)
    return tree


def default_collate(batch: Sequence[Any], device: Device | str | None = None) -> Any:
    """Stack samples (nested dicts/tuples/lists of Tensors, arrays, numbers) along a new first axis
    into agnostic Tensors on `device` (default: the default backend), built on the host first."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    return to_device(_collate_host(batch), as_device(device))


# ---------------------------------------------------------------------- loader
_DONE = object()


class _WorkerError:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class DataLoader:
    """Batches of a dataset, optionally shuffled (a fresh seeded permutation each epoch) and loaded
    ahead in a background thread (`prefetch=N` batches). A `sampler` (e.g. a DistributedSampler)
    chooses the indices and their order instead, as in torch; it excludes `shuffle=True`.

    With the default collate, batches are Tensors on `device` (default: the default backend when
    iteration starts). A custom `collate_fn`'s output is returned as is, unless `device` is given, in
    which case its arrays and Tensors are moved there.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        generator: Generator | None = None,
        device: Device | str | None = None,
        prefetch: int = 0,
        sampler: Iterable[int] | None = None,
    ) -> None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(prefetch, (int, np.integer)) or isinstance(prefetch, bool) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(
                f"DataLoader: generator must be an agnostic Generator, got {type(generator).__name__}"
            )
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError("DataLoader: collate_fn must be callable")
        if sampler is not None and shuffle:
            raise ValueError(
                "DataLoader: sampler option is mutually exclusive with shuffle; shuffle in the sampler "
                "(DistributedSampler(..., shuffle=True)) and pass shuffle=False"
            )
        if sampler is not None and (not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__")):
            raise TypeError(
                f"DataLoader: sampler must define __iter__ and __len__, got {type(sampler).__name__}"
            )
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"DataLoader: dataset must define __getitem__ and __len__, got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = generator
        self.device = None if device is None else as_device(device)
        self.prefetch = int(prefetch)
        self.sampler = sampler
        self._order: np.ndarray | None = None  # the current epoch's order, and batches handed out
        self._position = 0
        self._resume: tuple[np.ndarray, int] | None = None

    def _num_samples(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._batch_count(self._num_samples())

    def _batch_count(self, n: int) -> int:
        """The number of batches `n` samples make."""
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches_of_indices(self, order: np.ndarray) -> list[np.ndarray]:
        n = len(order)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        return [order[i : min(i + self.batch_size, stop)] for i in range(0, stop, self.batch_size)]

    def _epoch_order(self) -> tuple[np.ndarray, int]:
        """This epoch's sample order and how many of its batches to skip: a fresh (seeded) order, or
        the one a `load_state_dict` restored, without drawing from the seed stream again."""
        if self._resume is not None:
            order, position = self._resume
            self._resume = None
            return order, position
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64), 0
        n = len(self.dataset)
        return (_permutation(n, self.generator) if self.shuffle else np.arange(n)), 0

    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands, for resuming mid-epoch: this epoch's order and the number of batches
        handed out so far (none between epochs), and the loader's own generator's state."""
        mid_epoch = self._order is not None and 0 < self._position < self._batch_count(len(self._order))
        state = {
            "order": self._order.copy() if mid_epoch else None,
            "position": self._position if mid_epoch else 0,
            "generator": None if self.generator is None else self.generator.get_state(),
        }
        if mid_epoch and isinstance(self.sampler, DistributedSampler):
            # not this replica's order but the epoch's position, valid for any number of replicas
            state.update(
                order=None, position=0, sampler=self.sampler.state_dict(self._position * self.batch_size)
            )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next iteration continue where `state_dict()` was taken: the same order, starting
        after the batches already handed out (an exact resume; the seed stream is not redrawn)."""
        order, position = state["order"], int(state["position"])
        if state.get("sampler") is not None:
            if not isinstance(self.sampler, DistributedSampler):
                raise ValueError(
                    "DataLoader.load_state_dict: the saved loader had a DistributedSampler, this one "
                    f"{'has ' + type(self.sampler).__name__ if self.sampler is not None else 'has no sampler'}"
                )
            self.sampler.load_state_dict(state["sampler"])
        if order is not None and len(order) != self._num_samples():
            raise ValueError(
                f"DataLoader.load_state_dict: the saved epoch order covers {len(order)} samples, but the "
                f"{'sampler' if self.sampler is not None else 'dataset'} has {self._num_samples()}; was the "
                "checkpoint taken on another dataset?"
            )
        if (state.get("generator") is None) != (self.generator is None):
            raise ValueError(
                "DataLoader.load_state_dict: the saved loader "
                f"{'had' if state.get('generator') is not None else 'had no'} generator of its own, this one "
                f"{'has' if self.generator is not None else 'has none'}"
            )
        if self.generator is not None:
            self.generator.set_state(state["generator"])
        self._resume = None if order is None else (np.asarray(order, dtype=np.int64), position)

    def _load_host(self, idx: np.ndarray) -> Any:
        """Indexing and collate on the host: what the prefetch thread runs."""
        if self.collate_fn is None and _has_host_batch(self.dataset):
            return self.dataset._host_batch(idx)  # type: ignore[attr-defined]
        samples = [self.dataset[int(i)] for i in idx]
        if self.collate_fn is not None:
            return self.collate_fn(samples)
        return _collate_host(samples)

    def __iter__(self) -> Iterator[Any]:
        # The order and target device are fixed here, in the caller's thread, so the global seed
        # stream and default backend are read deterministically.
        order, skip = self._epoch_order()
        batches = self._batches_of_indices(order)[skip:]
        self._order, self._position = order, skip
        target = self.device if (self.device is not None or self.collate_fn is not None) else as_device(None)

        def finish(host: Any) -> Any:
            return host if target is None else to_device(host, target)

        if self.prefetch == 0:
            for idx in batches:
                batch = finish(self._load_host(idx))
                self._position += 1
                yield batch
            return
        for batch in self._prefetched(batches, finish):
            self._position += 1
            yield batch

    def _prefetched(self, batches: list[np.ndarray], finish: Callable[[Any], Any]) -> Iterator[Any]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for idx in batches:
                    if stop.is_set() or not put(self._load_host(idx)):
                        return
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(_WorkerError(exc))
                return
            put(_DONE)

        thread = threading.Thread(target=work, name="agnostic-DataLoader-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, _WorkerError):
                    raise item.exc
                yield finish(item)
        finally:
            # Early break, an exception, or the end: stop the worker and wait for it, so no thread
            # outlives the iteration.
            stop.set()
            thread.join()
