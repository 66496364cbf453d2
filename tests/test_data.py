"""agnostic.data against torch.utils.data's semantics: batching, seeded shuffles and splits, default
collate, device placement on every backend, and the prefetch thread's lifetime."""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Iterator

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic.data import DataLoader, Subset, TensorDataset, default_collate, random_split

BACKENDS = available_backends()


@pytest.fixture(autouse=True)
def _keep_global_seed_stream() -> Iterator[None]:
    """Tests that reset the global stream leave it where they found it, for the tests after them."""
    state = ag.random.default_generator.get_state()
    yield
    ag.random.default_generator.set_state(state)


class Squares:
    """A plain map-style dataset: sample i is (i, i*i as float)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, i: int) -> tuple[int, float]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i, float(i * i)

    def __len__(self) -> int:
        return self.n


def _ids(loader: DataLoader) -> list[list[int]]:
    return [b[0].numpy().tolist() for b in loader]


def _order(loader: DataLoader) -> list[int]:
    return [i for batch in _ids(loader) for i in batch]


# ---------------------------------------------------------------------- batching
def test_batches_and_last_partial_batch() -> None:
    loader = DataLoader(Squares(10), batch_size=4)
    assert len(loader) == 3
    assert _ids(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    i, sq = next(iter(loader))
    assert i.dtype == ag.int64 and sq.dtype == ag.float32
    np.testing.assert_array_equal(sq.numpy(), [0.0, 1.0, 4.0, 9.0])


def test_drop_last() -> None:
    loader = DataLoader(Squares(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert _ids(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(Squares(3), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(Squares(3), batch_size=4, drop_last=True)) == []


def test_seeded_shuffle_reproducible_new_each_epoch_and_complete() -> None:
    loader = DataLoader(Squares(50), batch_size=7, shuffle=True, generator=ag.Generator(3))
    e1, e2 = _order(loader), _order(loader)
    assert sorted(e1) == list(range(50)) and sorted(e2) == list(range(50))
    assert e1 != e2  # a new permutation each epoch
    again = DataLoader(Squares(50), batch_size=7, shuffle=True, generator=ag.Generator(3))
    assert _order(again) == e1 and _order(again) == e2
    # the global stream, reset by manual_seed, gives the same orders too
    ag.manual_seed(11)
    g1 = _order(DataLoader(Squares(50), batch_size=7, shuffle=True))
    ag.manual_seed(11)
    assert _order(DataLoader(Squares(50), batch_size=7, shuffle=True)) == g1
    assert g1 != list(range(50))


def test_shuffle_order_is_backend_independent() -> None:
    orders = []
    for dev in BACKENDS:
        loader = DataLoader(Squares(20), batch_size=5, shuffle=True, generator=ag.Generator(7), device=dev)
        orders.append(_order(loader))
    assert all(o == orders[0] for o in orders)


# ---------------------------------------------------------------------- collate
def test_collate_nested_dict_tuple_and_dtypes() -> None:
    Pair = namedtuple("Pair", ["a", "b"])
    samples = [
        {
            "x": np.full((2, 3), i, dtype=np.float64),
            "y": i,
            "w": 0.5 * i,
            "flag": i % 2 == 0,
            "pair": Pair(np.int32(i), ag.asarray([i, i], dtype=ag.float16)),
            "seq": [i, float(i)],
            "name": f"s{i}",
        }
        for i in range(3)
    ]
    out = default_collate(samples)
    assert set(out) == {"x", "y", "w", "flag", "pair", "seq", "name"}
    assert out["x"].shape == (3, 2, 3) and out["x"].dtype == ag.float64  # arrays keep their dtype
    assert out["y"].dtype == ag.int64 and out["y"].numpy().tolist() == [0, 1, 2]
    assert out["w"].dtype == ag.float32
    assert out["flag"].dtype == ag.bool and out["flag"].numpy().tolist() == [True, False, True]
    assert isinstance(out["pair"], Pair)
    assert out["pair"].a.dtype == ag.int32
    assert out["pair"].b.dtype == ag.float16 and out["pair"].b.shape == (3, 2)  # tensors keep dtype
    assert (
        isinstance(out["seq"], list) and out["seq"][0].dtype == ag.int64 and out["seq"][1].dtype == ag.float32
    )
    assert out["name"] == ["s0", "s1", "s2"]


def test_tensor_dataset_mixed_and_matches_per_sample_collate() -> None:
    x = ag.asarray(np.arange(24, dtype=np.float32).reshape(12, 2))
    y = np.arange(12, dtype=np.int32)
    ds = TensorDataset(x, y)
    assert len(ds) == 12
    xi, yi = ds[5]
    np.testing.assert_array_equal(xi.numpy(), [10.0, 11.0])
    assert int(yi) == 5
    fast = list(DataLoader(ds, batch_size=5, shuffle=True, generator=ag.Generator(1)))
    slow = list(
        DataLoader(ds, batch_size=5, shuffle=True, generator=ag.Generator(1), collate_fn=default_collate)
    )
    assert len(fast) == len(slow) == 3
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.dtype == sx.dtype == ag.float32 and fy.dtype == sy.dtype == ag.int32
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_custom_collate_fn() -> None:
    loader = DataLoader(Squares(5), batch_size=2, collate_fn=lambda b: [s[0] for s in b])
    assert list(loader) == [[0, 1], [2, 3], [4]]


# ---------------------------------------------------------------------- devices
@pytest.mark.parametrize("dev", BACKENDS, ids=lambda d: d.name)
def test_device_placement(dev: ag.Device) -> None:
    ds = TensorDataset(np.arange(6, dtype=np.float32).reshape(3, 2), np.arange(3))
    for loader in (
        DataLoader(ds, batch_size=2, device=dev),
        DataLoader(Squares(3), batch_size=2, device=dev.name),
        DataLoader(Squares(3), batch_size=2, device=dev, prefetch=1),
    ):
        for batch in loader:
            assert all(t.device.name == dev.name for t in batch)
    with ag.default_backend(dev):
        batch = next(iter(DataLoader(Squares(3), batch_size=2)))
        assert batch[0].device.name == dev.name
    # a dataset of tensors on this backend, loaded onto numpy, keeps dtypes
    src = TensorDataset(ag.asarray(np.ones((4, 2), np.float32), device=dev).astype(ag.bfloat16))
    (b,) = next(iter(DataLoader(src, batch_size=4, device="numpy")))
    assert b.device.name == "numpy" and b.dtype == ag.bfloat16 and b.shape == (4, 2)


# ---------------------------------------------------------------------- random_split
def test_random_split_sizes_disjoint_reproducible() -> None:
    ds = Squares(10)
    parts = random_split(ds, [3, 7], generator=ag.Generator(5))
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) for p in parts)
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    again = random_split(ds, [3, 7], generator=ag.Generator(5))
    assert [p.indices for p in again] == [p.indices for p in parts]
    assert parts[0][0] == ds[parts[0].indices[0]]
    other = random_split(ds, [3, 7], generator=ag.Generator(6))
    assert [p.indices for p in other] != [p.indices for p in parts]
    ag.manual_seed(2)
    g = random_split(ds, [5, 5])
    ag.manual_seed(2)
    assert [p.indices for p in random_split(ds, [5, 5])] == [p.indices for p in g]


def test_random_split_fractions_like_torch() -> None:
    parts = random_split(Squares(10), [0.25, 0.25, 0.5], generator=ag.Generator(0))
    # floor gives 2, 2, 5; the remaining 1 goes to the first split, as torch does
    assert [len(p) for p in parts] == [3, 2, 5]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))
    assert [len(p) for p in random_split(Squares(7), [0.5, 0.5])] == [4, 3]


def test_subset_of_tensor_dataset_loads() -> None:
    ds = TensorDataset(np.arange(10) * 10)
    train, _ = random_split(ds, [0.6, 0.4], generator=ag.Generator(9))
    (got,) = next(iter(DataLoader(train, batch_size=6)))
    assert got.numpy().tolist() == [10 * i for i in train.indices]


# ---------------------------------------------------------------------- prefetch
def test_prefetch_same_batches_as_without() -> None:
    ds = TensorDataset(np.random.default_rng(0).normal(size=(23, 3)).astype(np.float32), np.arange(23))
    plain = list(DataLoader(ds, batch_size=4, shuffle=True, generator=ag.Generator(4)))
    pre = list(DataLoader(ds, batch_size=4, shuffle=True, generator=ag.Generator(4), prefetch=2))
    assert len(plain) == len(pre) == 6
    for (a, b), (c, d) in zip(plain, pre):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    assert _ids(DataLoader(Squares(9), batch_size=2, prefetch=3)) == _ids(
        DataLoader(Squares(9), batch_size=2)
    )


def test_early_break_stops_the_thread() -> None:
    before = threading.active_count()
    loader = DataLoader(Squares(1000), batch_size=2, prefetch=2)
    for k, _ in enumerate(loader):
        if k == 3:
            break
    assert threading.active_count() == before
    it = iter(loader)
    next(it)
    assert threading.active_count() == before + 1
    it.close()
    assert threading.active_count() == before


def test_worker_exception_is_reraised() -> None:
    class Bad(Squares):
        def __getitem__(self, i: int) -> tuple[int, float]:
            if i == 5:
                raise KeyError("sample 5 is broken")
            return super().__getitem__(i)

    before = threading.active_count()
    seen = []
    with pytest.raises(KeyError, match="sample 5 is broken"):
        for batch in DataLoader(Bad(10), batch_size=2, prefetch=2):
            seen.append(batch[0].numpy().tolist())
    assert seen == [[0, 1], [2, 3]]
    assert threading.active_count() == before
    with pytest.raises(KeyError):
        list(DataLoader(Bad(10), batch_size=2))


def test_consumer_exception_stops_the_thread() -> None:
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="consumer"):
        for _ in DataLoader(Squares(100), batch_size=1, prefetch=1):
            raise RuntimeError("consumer")
    assert threading.active_count() == before


# ---------------------------------------------------------------------- errors
def test_errors_name_the_culprit() -> None:
    with pytest.raises(ValueError, match=r"DataLoader: batch_size"):
        DataLoader(Squares(3), batch_size=0)
    with pytest.raises(ValueError, match=r"DataLoader: prefetch"):
        DataLoader(Squares(3), prefetch=-1)
    with pytest.raises(TypeError, match=r"DataLoader: generator"):
        DataLoader(Squares(3), generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"DataLoader: dataset"):
        DataLoader(object())
    with pytest.raises(ValueError, match=r"TensorDataset: .*sizes \[3, 4\]"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match=r"TensorDataset: argument 0"):
        TensorDataset([1, 2, 3])
    with pytest.raises(ValueError, match=r"random_split: fractions .* not 1"):
        random_split(Squares(10), [0.5, 0.3])
    with pytest.raises(ValueError, match=r"random_split: lengths \[3, 3\] sum to 6, not .* 10"):
        random_split(Squares(10), [3, 3])
    with pytest.raises(ValueError, match=r"random_split: fractions must lie"):
        random_split(Squares(10), [1.5, -0.5])
    with pytest.raises(TypeError, match=r"default_collate: cannot batch"):
        default_collate([object(), object()])
    with pytest.raises(ValueError, match=r"default_collate: samples have different keys"):
        default_collate([{"a": 1}, {"b": 2}])


@pytest.mark.parametrize("own_generator", [True, False])
def test_state_dict_resumes_mid_epoch_exactly(tmp_path, own_generator: bool) -> None:
    """Stop after 3 batches, save the loader's state through ag.save, restore it in a new loader: the
    rest of the epoch and the next epoch are the batches the uninterrupted loader gives."""
    data = TensorDataset(np.arange(20, dtype=np.int64))

    def loader() -> DataLoader:
        gen = ag.Generator(5) if own_generator else None
        return DataLoader(data, batch_size=3, shuffle=True, generator=gen, device="numpy")

    ag.manual_seed(1)
    whole = loader()
    expected = [b[0].numpy().tolist() for _ in range(2) for b in whole]

    ag.manual_seed(1)
    first = loader()
    it = iter(first)
    seen = [next(it)[0].numpy().tolist() for _ in range(3)]
    ag.save(
        {"loader": first.state_dict(), "rng": ag.random.default_generator.get_state()},
        tmp_path / "s.safetensors",
    )
    saved = ag.load(tmp_path / "s.safetensors")

    ag.manual_seed(999)  # a different stream position: the restore must not depend on it
    second = loader()
    second.load_state_dict(saved["loader"])
    ag.random.default_generator.set_state(saved["rng"])
    rest = [b[0].numpy().tolist() for b in second] + [b[0].numpy().tolist() for b in second]
    assert seen + rest == expected


def test_state_dict_between_epochs_holds_no_order() -> None:
    loader = DataLoader(TensorDataset(np.arange(6)), batch_size=2, shuffle=True, device="numpy")
    list(loader)
    assert loader.state_dict()["order"] is None and loader.state_dict()["position"] == 0


def test_load_state_dict_refuses_another_dataset() -> None:
    small = DataLoader(TensorDataset(np.arange(6)), batch_size=2, shuffle=True, device="numpy")
    it = iter(small)
    next(it)
    state = small.state_dict()
    big = DataLoader(TensorDataset(np.arange(8)), batch_size=2, shuffle=True, device="numpy")
    with pytest.raises(ValueError, match="covers 6 samples, but the dataset has 8"):
        big.load_state_dict(state)
    own = DataLoader(TensorDataset(np.arange(6)), batch_size=2, shuffle=True, generator=ag.Generator(0))
    with pytest.raises(ValueError, match="had no generator of its own, this one has"):
        own.load_state_dict(state)
