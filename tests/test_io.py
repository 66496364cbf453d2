"""ag.save / ag.load: round trips on every backend pair, plain safetensors interop, clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

BACKENDS = [d.name for d in available_backends()]
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16", "float32", "float64"]


def _values(dtype: str) -> np.ndarray:
    """Awkward values for each dtype: extremes, negative zero, subnormal-free, inf and nan for floats."""
    np_dtype = ag.dtypes.to_numpy_dtype(ag.dtypes.as_dtype(dtype))
    if dtype == "bool":
        return np.array([[True, False, True]])
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(np_dtype)
        return np.array([[info.min, 0, info.max]], dtype=np_dtype)
    return np.array([[-0.0, np.inf, np.nan], [1.5, -3.25, 1e3]], dtype=np.float64).astype(np_dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("src", BACKENDS)
@pytest.mark.parametrize("dst", BACKENDS)
def test_round_trip_is_bit_identical_between_backends(tmp_path, src: str, dst: str, dtype: str) -> None:
    expected = _values(dtype)
    ag.save({"x": ag.backend(src).tensor(expected)}, tmp_path / "t.safetensors")
    got = ag.load(tmp_path / "t.safetensors", dst)["x"]
    assert got.backend.name == dst and got.dtype == ag.dtypes.as_dtype(dtype)
    assert got.numpy().tobytes() == expected.tobytes()


def test_nested_structure_round_trips(tmp_path) -> None:
    B = ag.backend("numpy")
    rng_state = np.random.Generator(np.random.Philox(7)).bit_generator.state
    obj = {
        "model": {"0.weight": B.tensor([[1.0, 2.0]]), "0.bias": B.tensor([0.5])},
        "optimizer": {
            "state": {0: {"step": 3, "exp_avg": B.tensor([0.25])}},
            "param_groups": [{"betas": (0.9, 0.99)}],
        },
        "rng": rng_state,
        "plain": [None, True, 2, 2.5, "s", float("inf"), float("nan")],
        "np_scalar": np.float32(1.25),
        "dtype": ag.bfloat16,
    }
    ag.save(obj, tmp_path / "c.safetensors")
    got = ag.load(tmp_path / "c.safetensors")
    assert got["model"]["0.weight"].numpy().tolist() == [[1.0, 2.0]]
    assert got["optimizer"]["state"][0]["step"] == 3  # int keys and ints stay ints
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)  # tuples stay tuples
    assert got["rng"]["state"]["key"].dtype == np.uint64  # NumPy arrays stay NumPy arrays
    np.testing.assert_array_equal(got["rng"]["state"]["key"], rng_state["state"]["key"])
    plain = got["plain"]
    assert plain[:6] == [None, True, 2, 2.5, "s", float("inf")] and np.isnan(plain[6])
    assert type(got["np_scalar"]) is np.float32 and got["np_scalar"] == 1.25
    assert got["dtype"] == ag.bfloat16
    restored = np.random.Generator(np.random.Philox(0))
    restored.bit_generator.state = got["rng"]
    assert restored.integers(0, 1 << 30) == np.random.Generator(np.random.Philox(7)).integers(0, 1 << 30)


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (1,)])
def test_shapes_round_trip_exactly(tmp_path, shape: tuple[int, ...]) -> None:
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    transposed = np.arange(6, dtype=np.int32).reshape(2, 3).T  # not C-contiguous
    ag.save({"t": ag.tensor(x), "a": x, "f": transposed}, tmp_path / "t.safetensors")
    got = ag.load(tmp_path / "t.safetensors")
    assert got["t"].shape == shape and got["a"].shape == shape
    np.testing.assert_array_equal(got["f"], transposed)


def test_load_casts_floats_only_and_places(tmp_path) -> None:
    B = ag.backend("numpy")
    ag.save({"w": B.tensor([1.0, 2.0], dtype=ag.float64), "i": B.tensor([1, 2])}, tmp_path / "t.safetensors")
    got = ag.load(tmp_path / "t.safetensors", dtype=ag.float16)
    assert got["w"].dtype == ag.float16 and got["i"].dtype == ag.int64
    with pytest.raises(ValueError, match="must be a float dtype"):
        ag.load(tmp_path / "t.safetensors", dtype=ag.int32)


def test_metadata_is_read_from_the_header(tmp_path) -> None:
    ag.save({"w": ag.tensor([1.0])}, tmp_path / "t.safetensors", metadata={"step": 12, "note": "best"})
    meta = ag.io.read_metadata(tmp_path / "t.safetensors")
    assert meta["step"] == 12 and meta["note"] == "best"
    assert meta["format"] == ag.io.FORMAT and meta["agnostic_version"] == ag.__version__
    with pytest.raises(TypeError, match="JSON"):
        ag.save({}, tmp_path / "u.safetensors", metadata={"x": object()})


def test_state_dict_keys_are_the_safetensors_names_both_ways(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    model = ag.nn.Linear(3, 2, backend=ag.backend("numpy"))
    ag.save(model.state_dict(), tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert sorted(theirs) == ["bias", "weight"]
    np.testing.assert_array_equal(theirs["weight"].numpy(), model.weight.numpy())
    st.save_file({"weight": torch.ones(2, 3, dtype=torch.bfloat16)}, str(tmp_path / "theirs.safetensors"))
    got = ag.load(tmp_path / "theirs.safetensors")
    assert list(got) == ["weight"] and got["weight"].dtype == ag.bfloat16


def test_objects_that_need_pickle_are_refused_with_the_path(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"entry 'a\.b' is a object.*no pickle"):
        ag.save({"a": {"b": object()}}, tmp_path / "t.safetensors")
    with pytest.raises(TypeError, match="keys must be"):
        ag.save({(1, 2): 1}, tmp_path / "t.safetensors")
    with pytest.raises(TypeError, match="only numeric arrays"):
        ag.save({"s": np.array(["a"])}, tmp_path / "t.safetensors")
    assert not os.listdir(tmp_path)  # nothing written on a refused save


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path) -> None:
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.tensor([1.0])}, path)
    with pytest.raises(TypeError):
        ag.save({"w": ag.tensor([2.0]), "bad": object()}, path)
    assert ag.load(path)["w"].numpy().tolist() == [1.0]
    assert os.listdir(tmp_path) == ["t.safetensors"]  # no temporary file left behind


def _corrupt(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 3])
    elif how == "tiny":
        path.write_bytes(data[:5])
    elif how == "header_garbage":
        n = int.from_bytes(data[:8], "little")
        path.write_bytes(data[:8] + b"\xff" * n + data[8 + n :])
    elif how == "foreign":
        path.write_bytes(b"PK\x03\x04 this is a zip file, not a checkpoint" * 4)
    elif how == "bad_tree":
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        header["__metadata__"]["agnostic.tree"] = '{"tensor": "missing"}'
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])


@pytest.mark.parametrize(
    "how, message",
    [
        ("truncated", "not a valid safetensors file"),
        ("tiny", "only 5 bytes long"),
        ("header_garbage", "header is not JSON"),
        ("foreign", "not a whole safetensors file"),
        ("bad_tree", "names tensor 'missing', which the file does not hold"),
    ],
)
def test_a_damaged_file_gives_an_error_naming_it(tmp_path, how: str, message: str) -> None:
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.tensor(np.arange(16, dtype=np.float32))}, path)
    _corrupt(path, how)
    with pytest.raises(ag.CheckpointError, match=message) as info:
        ag.load(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_file_not_found_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        ag.load(tmp_path / "nope.safetensors")


_SAVER = """
import sys
import numpy as np
import agnostic as ag

path, size = sys.argv[1], int(sys.argv[2])
i = 0
while True:  # saves until killed, alternating two whole versions, each a few tens of MB
    i += 1
    value = float(i % 2)
    ag.save({"w": ag.full((size,), value), "v": ag.full((size,), value)}, path, metadata={"i": i})
    print(i, flush=True)
"""


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_whole(tmp_path) -> None:
    """Kill -9 a real process while it saves, several times at different moments: the file is
    always one whole version (its two tensors agree with each other and with its metadata)."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "ck.safetensors"
    killed_mid_write = 0
    for attempt in range(20):  # until two kills have landed inside a write (about 2 in 5 do)
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path), str(4_000_000)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip()  # at least one save finished
        deadline = time.monotonic() + 10  # wait for the next write to begin (not a fixed sleep:
        while time.monotonic() < deadline and not any(  # a loaded machine saves slower)
            f.endswith(".tmp") for f in os.listdir(tmp_path)
        ):
            time.sleep(0.0005)
        time.sleep(0.003 * (attempt % 4))  # then kill at different moments of it
        temporaries = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        killed_mid_write += bool(leftovers or temporaries)
        got = ag.load(path)
        i = ag.io.read_metadata(path)["i"]
        w, v = got["w"].numpy(), got["v"].numpy()
        assert w.shape == v.shape == (4_000_000,)
        assert (w == float(i % 2)).all() and (v == float(i % 2)).all()
        for f in leftovers:
            os.remove(tmp_path / f)
        if killed_mid_write >= 2:
            break
    assert killed_mid_write, "no kill landed during a save; the test did not test anything"


def test_load_places_on_the_device_asked_for(tmp_path) -> None:
    if "jax" not in BACKENDS:
        pytest.skip("needs a backend with a second device here (jax with two host devices)")
    import jax

    if len(jax.devices("cpu")) < 2:
        pytest.skip(
            "jax sees one CPU device (XLA_FLAGS=--xla_force_host_platform_device_count=2 is set by conftest)"
        )
    ag.save({"w": ag.tensor([1.0, 2.0])}, tmp_path / "t.safetensors")
    got = ag.load(tmp_path / "t.safetensors", "jax", device="cpu:1")["w"]
    assert got.device == ag.backend("jax", device="cpu:1")
    assert next(iter(got.data.devices())) == jax.devices("cpu")[1]
    with pytest.raises(ValueError):
        ag.load(tmp_path / "t.safetensors", "numpy", device="cuda:7")
