"""agnostic.data.DistributedSampler against torch.utils.data.DistributedSampler (index for index),
and the DataLoader's `sampler=`."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from agnostic.data import DataLoader, DistributedSampler, TensorDataset

torch = pytest.importorskip("torch")


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, i: int) -> int:
        return i

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 64, 101, 1000])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [True, False])
def test_indices_equal_torch(n: int, replicas: int, drop_last: bool, shuffle: bool) -> None:
    ds = Sized(n)
    for seed in (0, 1, 12345, 2**33 + 7):
        for epoch in (0, 1, 5):
            for rank in range(replicas):
                ours = DistributedSampler(ds, replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
                theirs = torch.utils.data.DistributedSampler(
                    ds, replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last
                )
                ours.set_epoch(epoch)
                theirs.set_epoch(epoch)
                got = list(ours)
                assert got == list(theirs), (n, replicas, rank, seed, epoch)
                assert len(ours) == len(theirs) == len(got)
                assert all(type(i) is int for i in got)
            if not shuffle:
                break


def test_ranks_partition_and_pad() -> None:
    ds = Sized(10)
    parts = [list(DistributedSampler(ds, 4, r, seed=3)) for r in range(4)]
    assert [len(p) for p in parts] == [3] * 4  # padded from 10 to 12
    flat = [i for p in parts for i in p]
    assert set(flat) == set(range(10)) and len(flat) == 12
    dropped = [list(DistributedSampler(ds, 4, r, seed=3, drop_last=True)) for r in range(4)]
    assert [len(p) for p in dropped] == [2] * 4 and len({i for p in dropped for i in p}) == 8


def test_epochs_differ_and_repeat() -> None:
    s = DistributedSampler(Sized(50), 2, 0, seed=9)
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first


def test_defaults_without_process_group() -> None:
    s = DistributedSampler(Sized(5))
    assert (s.num_replicas, s.rank) == (1, 0)
    assert sorted(s) == list(range(5))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_replicas": 2, "rank": 2}, {"num_replicas": 2, "rank": -1}, {"num_replicas": 0, "rank": 0}],
)
def test_bad_rank_is_an_error(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="DistributedSampler"):
        DistributedSampler(Sized(5), **kwargs)


def test_dataloader_takes_sampler() -> None:
    x = np.arange(10, dtype=np.float32)[:, None]
    ds = TensorDataset(x)
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=4)
    loader = DataLoader(ds, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    got = np.concatenate([b[0].numpy()[:, 0] for b in loader]).astype(int).tolist()
    assert got == list(sampler)
    sampler.set_epoch(1)
    again = np.concatenate([b[0].numpy()[:, 0] for b in loader]).astype(int).tolist()
    assert again == list(sampler) and again != got
    assert len(DataLoader(ds, batch_size=2, sampler=sampler, drop_last=True)) == 2


def test_dataloader_sampler_resume() -> None:
    ds = TensorDataset(np.arange(12, dtype=np.float32))
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, seed=1)
    loader = DataLoader(ds, batch_size=2, sampler=sampler)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    rest = [b[0].numpy().tolist() for b in it]
    fresh = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, num_replicas=2, rank=0, seed=1))
    fresh.load_state_dict(state)
    assert [b[0].numpy().tolist() for b in fresh] == rest


def test_sampler_excludes_shuffle() -> None:
    ds = Sized(4)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=DistributedSampler(ds, 1, 0))
    with pytest.raises(TypeError, match="sampler must define"):
        DataLoader(ds, sampler=object())  # type: ignore[arg-type]
    assert ag  # the package imports without a process group


@pytest.mark.parametrize("before", [1, 2, 3])
@pytest.mark.parametrize("after", [1, 2, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_an_epoch_resumes_on_another_number_of_replicas(before: int, after: int, drop_last: bool) -> None:
    """Stopped after 2 batches on `before` replicas, the epoch finishes on `after`: together the two
    halves take every sample of the epoch once (plus the padding that evens out the last ranks)."""
    n, batch = 37, 3
    ds = TensorDataset(np.arange(n, dtype=np.float32))

    def loaders(replicas: int) -> list[DataLoader]:
        out = []
        for r in range(replicas):
            sampler = DistributedSampler(ds, replicas, r, seed=9, drop_last=drop_last)
            sampler.set_epoch(3)
            out.append(DataLoader(ds, batch_size=batch, sampler=sampler))
        return out

    taken, states = [], []
    for loader in loaders(before):
        it = iter(loader)
        taken += [int(v) for _ in range(2) for v in next(it)[0].numpy()]
        states.append(loader.state_dict())
    assert all(s == states[0] for s in states)  # the same resume point on every replica
    assert states[0]["sampler"]["position"] == 2 * batch * before
    rest = []
    for loader in loaders(after):
        loader.load_state_dict(states[0])
        rest.append([int(v) for b in loader for v in b[0].numpy()])
    assert len({len(r) for r in rest}) == 1  # every replica gets as many samples
    sampler = DistributedSampler(ds, 1, 0, seed=9)
    sampler.set_epoch(3)
    order = list(sampler)
    seen = taken + [v for r in rest for v in r]
    unique = set(seen)
    if drop_last:  # a tail shorter than the replicas is cut, at most after - 1 samples
        assert len(seen) == len(unique) and n - len(unique) < after
        assert set(order[: len(unique)]) == unique
    else:
        assert unique == set(range(n)) and len(seen) - n < after
    fresh = DistributedSampler(ds, after, 0, seed=9, drop_last=drop_last)
    fresh.load_state_dict(states[0]["sampler"])
    fresh.set_epoch(4)  # the next epoch is whole again
    assert len(fresh) == len(DistributedSampler(ds, after, 0, drop_last=drop_last))


def test_a_resume_point_from_another_dataset_or_seed_is_refused() -> None:
    ds = TensorDataset(np.arange(12, dtype=np.float32))
    state = DistributedSampler(ds, 2, 0, seed=1).state_dict(2)
    with pytest.raises(ValueError, match="had seed=1 \\(this one 2\\)"):
        DistributedSampler(ds, 2, 0, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="dataset_size=12 \\(this one 5\\)"):
        DistributedSampler(TensorDataset(np.arange(5.0)), 2, 0, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="position 99 is not in"):
        DistributedSampler(ds, 2, 0, seed=1).load_state_dict({**state, "position": 99})
    loader = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, 0, seed=1))
    it = iter(loader)
    next(it)
    with pytest.raises(
        ValueError, match="the saved loader had a DistributedSampler, this one has no sampler"
    ):
        DataLoader(ds, batch_size=2).load_state_dict(loader.state_dict())
