"""Fuzzing the checkpoint reader: `ag.load` and `ag.io.read_metadata` on files a broken disk, a
wrong download or an attacker could hand them.

Whatever the bytes, a read either succeeds or raises `ag.CheckpointError` naming the file; it never
raises anything else, never runs longer than a watchdog's generous limit (a hang, not a slow read, is
what it catches), and never allocates more than a constant times the file's size (tracemalloc's peak,
which sees NumPy's buffers too). Three sources of files: random bytes; valid files with bytes
overwritten, cut or inserted; and valid files whose header is rewritten as valid JSON with wrong
types, shapes, offsets, dtypes, metadata or structure.

CI runs a modest number of examples per source (about ten seconds in all). A longer run:

    AGNOSTIC_FUZZ_EXAMPLES=20000 python -m pytest -q -p no:cacheprovider -n 0 tests/test_io_fuzz.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agnostic as ag

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the watchdog needs SIGALRM")
EXAMPLES = int(os.environ.get("AGNOSTIC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the watchdog below bounds time without failing a slow but finite read
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
WATCHDOG_S = 30
MEMORY_FACTOR, MEMORY_SLACK = 64, 2 << 20  # peak allocation <= 64 x file size + 2 MiB


def _valid_file(tmp: Path) -> bytes:
    """A checkpoint with every kind of entry: tensors of several dtypes, a NumPy array and scalar,
    nested dicts with int keys, a tuple, non-finite floats, a dtype, None, and a larger tensor (a
    structure that names it many times would multiply memory)."""
    path = tmp / "valid.safetensors"
    obj = {
        "model": {
            "w": ag.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
            "b": ag.tensor([1.0, 2.0], dtype=ag.bfloat16),
            "big": ag.tensor(np.zeros(16384, dtype=np.float32)),
        },
        "opt": {"state": {0: {"step": 3, "m": ag.tensor([1, 2], dtype=ag.int64)}}, "betas": (0.9, 0.99)},
        "rng": np.arange(4, dtype=np.uint64),
        "scalar": np.float32(1.5),
        "plain": [None, True, "s", float("nan"), float("-inf")],
        "dtype": ag.float16,
    }
    ag.save(obj, path, metadata={"step": 7})
    return path.read_bytes()


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: Any, body: bytes) -> bytes:
    text = json.dumps(header, allow_nan=True).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return len(text).to_bytes(8, "little") + text + body


@contextlib.contextmanager
def _watchdog(seconds: int) -> Iterator[None]:
    """Turn a hang into a failure (SIGALRM interrupts a blocking open or read)."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the reader ran past the {seconds} s watchdog")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check(path: Path, data: bytes) -> None:
    """Both readers on `data`: success, or a CheckpointError naming the file; bounded memory."""
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with _watchdog(WATCHDOG_S):
            for read in (ag.io.read_metadata, ag.load):
                try:
                    read(path)
                except ag.CheckpointError as exc:
                    assert str(path) in str(exc), f"the error does not name the file: {exc}"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_FACTOR * len(data) + MEMORY_SLACK, (
        f"reading a {len(data)}-byte file allocated {peak} bytes at its peak"
    )


class _Files:
    """Where each example is written, and the valid file the mutations start from (with a short
    repr, as hypothesis prints the arguments of a failing example)."""

    def __init__(self, tmp: Path) -> None:
        self.path, self.valid = tmp / "case.safetensors", _valid_file(tmp)

    def __repr__(self) -> str:
        return f"<files in {self.path.parent}>"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> _Files:
    return _Files(tmp_path_factory.mktemp("fuzz"))


# -- strategies ------------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_NAMES = st.sampled_from(["model.w", "model.b", "model.big", "opt.state.0.m", "rng", "scalar", "nope"])
_LEAF_NODES = (
    st.builds(lambda k, n: {k: n}, st.sampled_from(["tensor", "ndarray", "npscalar"]), _NAMES | JSON)
    | st.builds(lambda v: {"value": v}, JSON)
    | st.builds(lambda v: {"float": v}, st.sampled_from(["nan", "inf", "-inf", "1e400", "x", ""]) | JSON)
    | st.builds(lambda v: {"dtype": v}, st.sampled_from(["float16", "bfloat16", "float128", ""]) | JSON)
    | JSON
)
TREES = st.recursive(
    _LEAF_NODES,
    lambda inner: (
        st.builds(lambda k, v: {k: v}, st.sampled_from(["list", "tuple"]), st.lists(inner, max_size=6))
        | st.builds(lambda v: {"dict": v}, st.lists(st.lists(JSON | inner, max_size=3), max_size=5))
        | st.dictionaries(st.sampled_from(["dict", "list", "tensor", "other"]), inner, max_size=3)
    ),
    max_leaves=20,
)
_TENSOR_FIELDS = st.sampled_from(["dtype", "shape", "data_offsets"])
_FIELD_VALUES = (
    JSON
    | st.sampled_from(["F32", "BF16", "F8_E4M3", "C64", "U64", "BOOL"])
    | st.lists(st.integers(-3, 2**64), max_size=4)
    | st.lists(st.integers(0, 64), min_size=2, max_size=2)
)


# -- the fuzz tests --------------------------------------------------------------------------------


@FUZZ
@given(
    data=st.binary(max_size=1024)
    | st.builds(lambda n, b: n.to_bytes(8, "little") + b, st.integers(0, 2048), st.binary(max_size=1024))
)
def test_random_bytes(files, data: bytes) -> None:
    _check(files.path, data)


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.none() | st.integers(0, 1 << 20),
    insert=st.none() | st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
)
def test_mutated_valid_files(files, edits: list[tuple[int, int]], cut: int | None, insert) -> None:
    path, valid = files.path, files.valid
    data = bytearray(valid)
    for position, value in edits:
        data[position % len(data)] = value
    if insert is not None:
        position, extra = insert
        data[position % len(data) : position % len(data)] = extra
    if cut is not None:
        del data[cut % len(data) :]
    _check(path, bytes(data))


@FUZZ
@given(entry=st.integers(0, 100), field=_TENSOR_FIELDS, value=_FIELD_VALUES, drop=st.booleans())
def test_headers_with_wrong_tensor_entries(files, entry: int, field: str, value: Any, drop: bool) -> None:
    path, valid = files.path, files.valid
    header, body = _split(valid)
    names = sorted(k for k in header if k != "__metadata__")
    name = names[entry % len(names)]
    if drop:
        del header[name][field]
    else:
        header[name][field] = value
    _check(path, _join(header, body))


@FUZZ
@given(
    key=st.sampled_from(["agnostic.tree", "agnostic.metadata", "format", "__metadata__", "whole"]),
    value=JSON,
    as_text=st.booleans(),
)
def test_headers_with_wrong_metadata(files, key: str, value: Any, as_text: bool) -> None:
    path, valid = files.path, files.valid
    header, body = _split(valid)
    text = json.dumps(value) if as_text else value
    if key == "whole":
        header = value
    elif key == "__metadata__":
        header["__metadata__"] = value
    else:
        header["__metadata__"][key] = text
    _check(path, _join(header, body))


@FUZZ
@given(
    tree=TREES
    | st.builds(lambda v, n: {"dict": [[str(i), v] for i in range(n)]}, _LEAF_NODES, st.integers(2, 300))
)
def test_headers_with_wrong_structure(files, tree: Any) -> None:
    path, valid = files.path, files.valid
    header, body = _split(valid)
    header["__metadata__"]["agnostic.tree"] = json.dumps(tree, allow_nan=True)
    _check(path, _join(header, body))


@pytest.mark.parametrize("depth", [50, 5000, 200_000])
@pytest.mark.parametrize("where", ["header", "structure", "metadata"])
def test_deep_nesting_is_refused_cleanly(files, where: str, depth: int) -> None:
    path, valid = files.path, files.valid
    header, body = _split(valid)
    deep = "[" * depth + "]" * depth
    nodes = '{"list": [' * depth + "]}" * depth
    if where == "header":
        text = ('{"x": ' + deep + "}").encode()
        _check(path, len(text).to_bytes(8, "little") + text + body)
        return
    header["__metadata__"]["agnostic.tree" if where == "structure" else "agnostic.metadata"] = (
        nodes if where == "structure" else deep
    )
    _check(path, _join(header, body))
