"""ag.save / ag.load: round trips on every backend pair, plain safetensors interop, clear errors."""

from __future__ import annotations

import faulthandler
import json
import os
import stat
import sys
import threading

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

BACKENDS = [d.name for d in available_backends()]
DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "bfloat16",
    "float32", "float64",
]  # fmt: skip


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
        if leftovers:  # the next save to the folder removes what the killed one left
            ag.save({"w": ag.tensor([0.0])}, tmp_path / "next.safetensors")
            assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
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


# -- untrusted files -------------------------------------------------------------------------------


def _rewrite_header(path, change) -> None:
    """Apply `change` to the parsed header of the file at `path` and write it back, re-padded."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])


def _set(key: str, value):
    def change(header: dict) -> None:
        header["__metadata__"][key] = value

    return change


def _set_entry(name: str, field: str, value):
    def change(header: dict) -> None:
        header[name][field] = value

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (
            _set("agnostic.tree", '{"dict": [1, 2]}'),
            r"a dict item in the structure is 1, not a \[key, value\] pair",
        ),
        (
            _set("agnostic.tree", '{"dict": [[[1], {"value": 1}]]}'),
            r"a dict item in the structure is \[\[1\]",
        ),
        (_set("agnostic.tree", '{"dict": 5}'), "a dict in the structure holds a JSON int, not a list"),
        (_set("agnostic.tree", '{"list": [{"float": "abc"}]}'), "holds 'abc' where a float's repr belongs"),
        (_set("agnostic.tree", '{"value": [1, 2]}'), "a plain value in the structure is a JSON list"),
        (
            _set("agnostic.tree", '{"dtype": "float128"}'),
            "names dtype 'float128', which agnostic does not have",
        ),
        (_set("agnostic.tree", '{"tensor": 3}'), "names tensor 3, which the file does not hold"),
        (_set("agnostic.tree", '{"npscalar": "w"}'), r"names tensor 'w' of shape \(16,\) as a NumPy scalar"),
        (_set("agnostic.tree", '{"tensor": "w", "list": []}'), "malformed structure entry"),
        (_set("agnostic.tree", '{"set": []}'), "unknown structure entry kind 'set'"),
        (_set("agnostic.tree", "{"), "the structure entry of the header is not JSON"),
        (_set("agnostic.tree", '{"list": [' * 102 + "]}" * 102), "nested more than 100 levels deep"),
        (
            _set("agnostic.tree", "[" * 100_000 + "]" * 100_000),
            "the structure entry of the header is nested too deeply",
        ),
        (_set_entry("w", "dtype", "C64"), "tensor 'w' has dtype 'C64', which agnostic does not support"),
        (_set_entry("w", "shape", [4, -4]), "tensor 'w' has shape \\[4, -4\\]; a shape is a list"),
        (_set_entry("w", "shape", "16"), "tensor 'w' has shape '16'"),
        (_set_entry("w", "shape", [8]), "needs 32 bytes, but its data_offsets span 64"),
        (_set_entry("w", "data_offsets", [0, 64.0]), "has data_offsets \\[0, 64.0\\]"),
        (
            _set_entry("w", "data_offsets", [8, 72]),
            "tensor 'w' starts at byte 8 of the data, where 0 was expected",
        ),
        (
            lambda h: h["w"].update(shape=[18], data_offsets=[0, 72]),
            r"tensors need 72 bytes of data but the file holds 64 after the header \(truncated\?\)",
        ),
        (
            lambda h: h["w"].update(shape=[8], data_offsets=[0, 32]),
            r"tensors need 32 bytes of data but the file holds 64 after the header$",
        ),
        (
            lambda h: h.update(z={"dtype": "F32", "shape": [0, 2**62, 4], "data_offsets": [64, 64]}),
            r"tensor 'z' has shape \[0, 4611686018427387904, 4\]: array is too big",
        ),
        (
            lambda h: h.update(v={"dtype": "F32", "shape": [4], "data_offsets": [48, 64]}),
            "tensor 'v' starts at byte 48",
        ),
        (lambda h: h.update(__metadata__={"format": 1}), "its __metadata__ is not an object of strings"),
        (lambda h: h.update(w=[]), "the entry of tensor 'w' is not an object"),
    ],
)
def test_a_malformed_header_is_a_checkpoint_error_naming_the_file(tmp_path, change, message) -> None:
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.tensor(np.arange(16, dtype=np.float32))}, path)
    _rewrite_header(path, change)
    with pytest.raises(ag.CheckpointError, match=message) as info:
        ag.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "metadata, message",
    [("{", "the metadata entry of the header is not JSON"), ("[1]", "is a JSON list, not an object")],
)
def test_read_metadata_refuses_metadata_that_is_not_a_json_object(
    tmp_path, metadata: str, message: str
) -> None:
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.tensor([1.0])}, path)
    _rewrite_header(path, _set("agnostic.metadata", metadata))
    with pytest.raises(ag.CheckpointError, match=message) as info:
        ag.io.read_metadata(path)
    assert str(path) in str(info.value)


def test_read_metadata_sees_a_truncated_file_from_its_header(tmp_path) -> None:
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.tensor(np.arange(16, dtype=np.float32))}, path, metadata={"step": 3})
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(
        ag.CheckpointError, match=r"need 64 bytes of data but the file holds 60 .*\(truncated\?\)"
    ):
        ag.io.read_metadata(path)


def test_a_structure_naming_one_tensor_many_times_is_refused(tmp_path) -> None:
    """A 260 KB file whose structure names its one 256 KB tensor 200 times would otherwise load as
    200 copies (51 MB); ag.save names each tensor once."""
    path = tmp_path / "t.safetensors"
    ag.save({"w": ag.zeros((65536,))}, path)
    _rewrite_header(path, _set("agnostic.tree", json.dumps({"list": [{"tensor": "w"}] * 200})))
    with pytest.raises(ag.CheckpointError, match="names tensor 'w' more than once") as info:
        ag.load(path)
    assert str(path) in str(info.value)


def test_saving_a_structure_too_deep_to_load_is_refused(tmp_path) -> None:
    deep: list = []
    for _ in range(ag.io.tree_file.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match=r"nested more than 100 levels deep, which ag\.load refuses"):
        ag.save(deep, tmp_path / "t.safetensors")
    deep = deep[0]
    ag.save(deep, tmp_path / "t.safetensors")
    assert ag.load(tmp_path / "t.safetensors") == deep


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_only_regular_files_are_read(tmp_path) -> None:
    """A FIFO would block the reader until a writer came, then feed it without end."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    faulthandler.dump_traceback_later(
        120, exit=True, file=sys.__stderr__
    )  # a hang ends the run with a traceback
    try:
        for read in (ag.load, ag.io.read_metadata):
            with pytest.raises(
                ag.CheckpointError, match=r"pipe\.safetensors is not a regular file \(it is a FIFO\)"
            ):
                read(fifo)
    finally:
        faulthandler.cancel_dump_traceback_later()
    with pytest.raises(IsADirectoryError):
        ag.load(tmp_path)


# -- saving: permissions and leftovers -------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask, new_mode", [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_a_new_file_gets_the_umask_and_a_replaced_file_keeps_its_mode(
    tmp_path, umask: int, new_mode: int
) -> None:
    """As open(path, "w") and torch.save: a server running as another user can read the model."""
    previous = os.umask(umask)
    try:
        ag.save({"w": ag.tensor([1.0])}, tmp_path / "new.safetensors")
        for mode in (0o644, 0o600, 0o664):
            path = tmp_path / f"old-{mode:o}.safetensors"
            path.write_bytes(b"")
            os.chmod(path, mode)
            ag.save({"w": ag.tensor([1.0])}, path)
            assert stat.S_IMODE(os.stat(path).st_mode) == mode
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.safetensors").st_mode) == new_mode


@pytest.mark.skipif(os.name != "posix", reason="the sweep locks with flock (POSIX)")
def test_the_next_save_removes_only_our_own_stale_temporaries(tmp_path) -> None:
    stale = [".ck.safetensors.agnostic-0123456789abcdef.tmp", ".other.csv.agnostic-fedcba9876543210.tmp"]
    foreign = [
        ".ck.safetensors.abc123xy.tmp",  # tempfile's pattern: not ours
        ".bashrc",
        "notes.agnostic-0123456789abcdef.tmp",  # no leading dot
        ".x.agnostic-0123.tmp",  # too few digits
        ".x.agnostic-0123456789ABCDEF.tmp",  # not our (lower-case) digits
    ]
    for name in stale + foreign:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".d.agnostic-00000000000000aa.tmp").mkdir()  # our pattern, but a directory
    (tmp_path / "target").write_bytes(b"keep me")
    os.symlink(tmp_path / "target", tmp_path / ".s.agnostic-00000000000000bb.tmp")  # ... or a link
    ag.save({"w": ag.tensor([1.0])}, tmp_path / "ck.safetensors")
    left = set(os.listdir(tmp_path))
    assert not left & set(stale)
    assert left == {
        *foreign,
        ".d.agnostic-00000000000000aa.tmp",
        ".s.agnostic-00000000000000bb.tmp",
        "target",
        "ck.safetensors",
    }
    assert (tmp_path / "target").read_bytes() == b"keep me"


@pytest.mark.skipif(os.name != "posix", reason="the sweep locks with flock (POSIX)")
def test_a_save_in_progress_keeps_its_temporary_file(tmp_path, monkeypatch) -> None:
    """A save held between its write and its rename; another save to the folder sweeps it: the
    first one's temporary file stays, and the first save completes."""
    writing, release = threading.Event(), threading.Event()
    fsync = os.fsync

    def held_fsync(fd: int) -> None:
        if threading.current_thread().name == "held-save":
            writing.set()
            release.wait(120)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    held = threading.Thread(
        target=ag.save, args=({"w": ag.tensor([1.0])}, tmp_path / "held.safetensors"), name="held-save"
    )
    held.start()
    try:
        assert writing.wait(120)
        (temporary,) = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        ag.save({"v": ag.tensor([2.0])}, tmp_path / "other.safetensors")
        assert temporary in os.listdir(tmp_path)
    finally:
        release.set()
        held.join(120)
    assert sorted(os.listdir(tmp_path)) == ["held.safetensors", "other.safetensors"]
    assert ag.load(tmp_path / "held.safetensors")["w"].numpy().tolist() == [1.0]
