"""Save and load nested structures of tensors as one safetensors file; no pickle anywhere.

Tensors go into the safetensors body (any tool that reads safetensors sees them under their dotted
paths: a state dict's keys stay exactly its keys). Everything else, the shape of the structure and
its plain values (ints, floats, strings, None), goes into a JSON entry of the header, so loading
never runs code from the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from agnostic.device import Device, as_device
from agnostic.dtypes import DType, as_dtype
from agnostic.io.atomic import atomic_write_bytes
from agnostic.tensor import Tensor

__all__ = ["CheckpointError", "save", "load", "read_metadata", "FORMAT"]

FORMAT = "agnostic.tree/1"
_TREE_KEY = "agnostic.tree"
_USER_KEY = "agnostic.metadata"

# safetensors dtype codes <-> NumPy dtypes (bfloat16 through ml_dtypes, as agnostic's NumPy backend).
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
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
}


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint (truncated, corrupted, foreign), or one that does not
    fit what it is loaded into. The message names the file and what is wrong."""


def save(obj: Any, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write `obj` (a tensor, or nested dicts/lists/tuples of tensors, NumPy arrays and plain values)
    to `path` atomically: an interrupted save leaves the previous file whole.

    `metadata` is user data (JSON-able) kept in the header; `read_metadata(path)` returns it without
    reading the tensors. A flat dict of tensors (a state dict) is stored under its own keys, so
    `safetensors.torch.load_file(path)` gives the same names.
    """
    import safetensors.numpy

    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, "", arrays)
    header = {
        "format": FORMAT,
        _TREE_KEY: json.dumps(tree, allow_nan=True),
        _USER_KEY: _dumps_metadata(metadata),
        "agnostic.version": _version(),
    }
    data = safetensors.numpy.save(arrays, metadata=header)
    atomic_write_bytes(path, data)


def load(
    path: str | os.PathLike,
    backend: Device | str | None = None,
    *,
    device: str | int | None = None,
    dtype: Any = None,
) -> Any:
    """Read a file written by `save` (or any safetensors file: then a flat dict of tensors) with its
    tensors on `backend` (a Device or backend name; default: the default backend), placed on `device`.

    `dtype` casts floating-point tensors (integer and bool tensors keep theirs). NumPy arrays saved as
    NumPy arrays come back as NumPy arrays.
    """
    target = as_device(backend) if device is None else _device_of(backend, device)
    cast = None if dtype is None else as_dtype(dtype)
    if cast is not None and not cast.is_floating:
        raise ValueError(
            f"ag.load: dtype= casts floating-point tensors, so it must be a float dtype, got {cast}"
        )
    header, arrays = _read(path)
    tree_text = header.get(_TREE_KEY)
    if tree_text is None:  # a plain safetensors file: a flat state dict
        return {name: _tensor(a, target, cast) for name, a in arrays.items()}
    try:
        tree = json.loads(tree_text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"ag.load: {os.fspath(path)}: the structure entry of the header is not JSON ({exc})"
        ) from None
    return _decode(tree, arrays, target, cast, os.fspath(path))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The user metadata stored by `save(..., metadata=)`, plus the writer's format and version
    (under "format" and "agnostic_version"), from the header alone."""
    header = _read_header(path)
    user = json.loads(header.get(_USER_KEY, "{}") or "{}")
    return {**user, "format": header.get("format"), "agnostic_version": header.get("agnostic.version")}


# -- encoding -------------------------------------------------------------------------------------


def _encode(obj: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, Tensor):
        return {"tensor": _put(arrays, path, _c_order(obj.numpy()))}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.kind in "USV":
            raise TypeError(
                f"ag.save: {_where(path)} is a NumPy array of dtype {obj.dtype}; only numeric arrays can be saved"
            )
        return {"ndarray": _put(arrays, path, _c_order(obj))}
    if isinstance(obj, np.generic):
        return {"npscalar": _put(arrays, path, np.asarray(obj))}
    if isinstance(obj, DType):
        return {"dtype": obj.name}
    if obj is None or isinstance(obj, (bool, int, str)):
        return {"value": obj}
    if isinstance(obj, float):
        return {"value": obj} if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise TypeError(
                    f"ag.save: {_where(path)} has a key of type {type(k).__name__}; keys must be str, int, float, bool or None"
                )
            items.append([k, _encode(v, f"{path}.{k}" if path else str(k), arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, f"{path}.{i}" if path else str(i), arrays) for i, v in enumerate(obj)]}
    raise TypeError(
        f"ag.save: {_where(path)} is a {type(obj).__name__}; a checkpoint holds tensors, NumPy arrays, "
        "dicts, lists, tuples, str, int, float, bool and None (no pickle: arbitrary objects cannot be saved)"
    )


def _c_order(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _put(arrays: dict[str, np.ndarray], path: str, array: np.ndarray) -> str:
    if array.dtype not in _NUMPY_OF_CODE.values():
        raise TypeError(f"ag.save: {_where(path)} has dtype {array.dtype}, which safetensors cannot hold")
    name, n = path or "tensor", 1
    while name in arrays:  # "a.b" as a key and as a path: keep both, the second one renamed
        name, n = f"{path}#{n}", n + 1
    arrays[name] = array
    return name


def _where(path: str) -> str:
    return f"entry {path!r}" if path else "the object"


def _dumps_metadata(metadata: Mapping[str, Any] | None) -> str:
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise TypeError(f"ag.save: metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.dumps(dict(metadata))
    except TypeError as exc:
        raise TypeError(f"ag.save: metadata must be JSON-serialisable ({exc})") from None


def _version() -> str:
    from agnostic import __version__

    return __version__


# -- decoding -------------------------------------------------------------------------------------


def _read_header(path: str | os.PathLike) -> dict[str, str]:
    """The header's metadata dict, read without the tensor data."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        return _header(f, name)


def _header(f: Any, name: str) -> dict[str, str]:
    """Check the length prefix and parse the JSON header of an open safetensors file."""
    head = f.read(8)
    if len(head) < 8:
        raise CheckpointError(f"ag.load: {name} is not a safetensors file: it is only {len(head)} bytes long")
    n = int.from_bytes(head, "little")
    size = os.fstat(f.fileno()).st_size
    if n > size - 8:
        raise CheckpointError(
            f"ag.load: {name} is not a whole safetensors file: its header claims {n} bytes but the file has "
            f"{size - 8} after the length (truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"ag.load: {name} is not a safetensors file: its header is not JSON ({exc})"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"ag.load: {name} is not a safetensors file: its header is not a JSON object")
    return header.get("__metadata__") or {}


def _read(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    import safetensors

    name = os.fspath(path)
    with open(name, "rb") as f:  # one open: the header checked first, then the whole file
        header = _header(f, name)
        f.seek(0)
        data = f.read()
    try:
        entries = safetensors.deserialize(data)
    except Exception as exc:  # SafetensorError: truncated body, overlapping offsets, bad dtype...
        raise CheckpointError(f"ag.load: {name} is not a valid safetensors file: {exc}") from None
    arrays = {}
    for key, entry in entries:
        code = entry["dtype"]
        if code not in _NUMPY_OF_CODE:
            raise CheckpointError(
                f"ag.load: {name}: tensor {key!r} has safetensors dtype {code}, which agnostic does not support "
                f"(supported: {', '.join(_NUMPY_OF_CODE)})"
            )
        arrays[key] = np.frombuffer(entry["data"], dtype=_NUMPY_OF_CODE[code]).reshape(entry["shape"])
    return header, arrays


def _device_of(backend: Device | str | None, device: str | int) -> Device:
    from agnostic.device import backend as get_backend

    name = backend if backend is not None else as_device(None).name
    return get_backend(name, device=device)


def _tensor(array: np.ndarray, target: Device, cast: DType | None) -> Tensor:
    t = target.tensor(array)
    if cast is not None and t.dtype.is_floating and t.dtype != cast:
        t = t.astype(cast)
    return t


def _decode(
    node: Any, arrays: Mapping[str, np.ndarray], target: Device, cast: DType | None, name: str
) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise CheckpointError(f"ag.load: {name}: malformed structure entry {node!r:.80}")
    ((kind, value),) = node.items()
    if kind in ("tensor", "ndarray", "npscalar"):
        if value not in arrays:
            raise CheckpointError(
                f"ag.load: {name}: the structure names tensor {value!r}, which the file does not hold"
            )
        a = arrays[value]
        if kind == "tensor":
            return _tensor(a, target, cast)
        return a.copy() if kind == "ndarray" else a[()]
    if kind == "value":
        return value
    if kind == "float":
        return float(value)
    if kind == "dtype":
        return as_dtype(value)
    if kind == "dict":
        return {k: _decode(v, arrays, target, cast, name) for k, v in value}
    if kind == "list":
        return [_decode(v, arrays, target, cast, name) for v in value]
    if kind == "tuple":
        return tuple(_decode(v, arrays, target, cast, name) for v in value)
    raise CheckpointError(
        f"ag.load: {name}: unknown structure entry kind {kind!r} (written by a newer agnostic?)"
    )
