"""Reading a safetensors file that may be anything: a checkpoint, a damaged one, someone else's file,
or one made to hurt the reader.

Nothing in the file is trusted before it is checked against the format: only regular files are
opened (a FIFO or a device would block or never end), the header's length against the file's size,
its JSON against the format's types, and the tensors' offsets against each other and the data (they
tile it, no gaps, no overlaps, as the safetensors library requires). Every failure is a
`CheckpointError` naming the file. Each tensor is read into an array of its own size, so reading
takes the file's size in memory, whatever the header says.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

__all__ = ["CheckpointError", "Entry", "code_of", "read_header", "read_tensors"]

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
_MAX_DIMS = 64  # NumPy's; no array library takes more

# safetensors dtype codes: item sizes, and NumPy dtypes (BF16 is looked up when met: ml_dtypes)
_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "U16": 2,
    "I16": 2,
    "U32": 4,
    "I32": 4,
    "U64": 8,
    "I64": 8,
    "F16": 2,
    "BF16": 2,
    "F32": 4,
    "F64": 8,
}
_NUMPY_OF_CODE = {
    "BOOL": np.dtype(bool),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
}


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint (truncated, corrupted, foreign), or one that does not
    fit what it is loaded into. The message names the file and what is wrong."""


@dataclass(frozen=True)
class Entry:
    """One tensor of the header: its dtype code, shape and byte range in the data."""

    code: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _numpy_dtype(code: str) -> np.dtype:
    """The NumPy dtype of a safetensors dtype code (bfloat16 through ml_dtypes, imported on first use)."""
    if code == "BF16":
        from agnostic import dtypes

        return dtypes.to_numpy_dtype(dtypes.bfloat16)
    return _NUMPY_OF_CODE[code]


def code_of(dtype: np.dtype) -> str | None:
    """The safetensors code of a NumPy dtype, or None if safetensors cannot hold it."""
    for code, known in _NUMPY_OF_CODE.items():
        if dtype == known:
            return code
    return "BF16" if dtype.name == "bfloat16" and dtype == _numpy_dtype("BF16") else None


def read_header(path: str | os.PathLike, who: str) -> tuple[dict[str, str], dict[str, Entry]]:
    """The header's metadata and tensor entries, checked against the file's size without reading
    the tensor data (a truncated file is caught here). `who` starts every error message."""
    name = os.fspath(path)
    with _open_regular_file(name, who) as f:
        header = _parse_header(f, name, who)
        body = os.fstat(f.fileno()).st_size - f.tell()
    return _check_header(header, body, name, who)


def read_tensors(path: str | os.PathLike, who: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The header's metadata and every tensor, each a NumPy array of its own, read in one pass."""
    name = os.fspath(path)
    with _open_regular_file(name, who) as f:
        header = _parse_header(f, name, who)
        metadata, entries = _check_header(header, os.fstat(f.fileno()).st_size - f.tell(), name, who)
        arrays = {}
        for key, e in sorted(entries.items(), key=lambda item: item[1].begin):  # the file's order
            try:
                array = np.empty(e.shape, _numpy_dtype(e.code))
            except ValueError as exc:  # zero elements, but dimensions beyond NumPy's limits
                raise CheckpointError(
                    f"{who}: {name}: tensor {key!r} has shape {list(e.shape)}: {exc}"
                ) from None
            if f.readinto(array.reshape(-1).view(np.uint8)) != e.end - e.begin:
                raise CheckpointError(f"{who}: {name} ended early: was it cut while being read?")
            arrays[key] = array
    return metadata, arrays


def _open_regular_file(name: str, who: str) -> BinaryIO:
    """Open without blocking (a FIFO's open waits for a writer), then refuse what is not a regular
    file: checked on the open descriptor, so the file cannot be swapped in between."""
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(mode):
            raise CheckpointError(
                f"{who}: {name} is not a regular file (it is {_kind(mode)}); checkpoints are read from "
                "regular files only"
            )
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next(
        (kind for test, kind in kinds if test(mode)), "a socket" if stat.S_ISSOCK(mode) else "not a file"
    )


def _parse_header(f: BinaryIO, name: str, who: str) -> Any:
    """The header's JSON, after checking its length prefix against the file."""
    head = f.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{who}: {name} is not a safetensors file: it is only {len(head)} bytes long")
    n = int.from_bytes(head, "little")
    size = os.fstat(f.fileno()).st_size
    if n > size - 8:
        raise CheckpointError(
            f"{who}: {name} is not a whole safetensors file: its header claims {n} bytes but the file has "
            f"{size - 8} after the length (truncated, or not a safetensors file)"
        )
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{who}: {name}: its header claims {n} bytes, over the safetensors limit of {MAX_HEADER_BYTES}"
        )
    try:
        return json.loads(f.read(n).decode("utf-8"))
    except RecursionError:
        raise CheckpointError(
            f"{who}: {name} is not a safetensors file: its header is JSON nested too deeply to read"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int of too many digits
        raise CheckpointError(
            f"{who}: {name} is not a safetensors file: its header is not JSON ({exc})"
        ) from None


def _check_header(header: Any, body: int, name: str, who: str) -> tuple[dict[str, str], dict[str, Entry]]:
    """The metadata and entries of a parsed header whose file holds `body` bytes of tensor data."""

    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"{who}: {name} is not a valid safetensors file: {problem}")

    if not isinstance(header, dict):
        raise fail(f"its header is a JSON {type(header).__name__}, not an object")
    metadata = header.get("__metadata__", {})
    if metadata is None:  # as serde reads an Option
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("its __metadata__ is not an object of strings")
    entries = {key: _entry(key, info, fail) for key, info in header.items() if key != "__metadata__"}
    end = 0
    for key, e in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if e.begin != end:
            raise fail(
                f"tensor {key!r} starts at byte {e.begin} of the data, where {end} was expected (the "
                "tensors must tile the data, without gaps or overlaps)"
            )
        end = e.end
    if end != body:
        raise fail(
            f"its tensors need {end} bytes of data but the file holds {body} after the header"
            + (" (truncated?)" if end > body else "")
        )
    return metadata, entries


def _entry(key: str, info: Any, fail: Any) -> Entry:
    if not isinstance(info, dict):
        raise fail(f"the entry of tensor {key!r} is not an object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(code, str) or code not in _ITEMSIZE:
        raise fail(
            f"tensor {key!r} has dtype {code!r}, which agnostic does not support (supported: {', '.join(_ITEMSIZE)})"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(_is_count(d) and d < 2**63 for d in shape)
    ):
        raise fail(
            f"tensor {key!r} has shape {shape!r:.80}; a shape is a list of at most {_MAX_DIMS} "
            "non-negative ints below 2**63"
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise fail(
            f"tensor {key!r} has data_offsets {offsets!r:.80}; they are [begin, end] with 0 <= begin <= end"
        )
    begin, end = offsets
    if math.prod(shape) * _ITEMSIZE[code] != end - begin:
        raise fail(
            f"tensor {key!r} of dtype {code} and shape {shape} needs {math.prod(shape) * _ITEMSIZE[code]} bytes, "
            f"but its data_offsets span {end - begin}"
        )
    return Entry(code, tuple(shape), begin, end)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
