"""Save and load nested structures of tensors as one safetensors file; no pickle anywhere.

Tensors go into the safetensors body (any tool that reads safetensors sees them under their dotted
paths: a state dict's keys stay exactly its keys). Everything else, the shape of the structure and
its plain values (ints, floats, strings, None), goes into a JSON entry of the header, so loading
never runs code from the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from agnostic import dtypes
from agnostic.device import Device, as_device
from agnostic.dtypes import DType, as_dtype
from agnostic.io.atomic import atomic_write_bytes
from agnostic.io.safetensors_file import CheckpointError, code_of, read_header, read_tensors
from agnostic.tensor import Tensor

__all__ = ["CheckpointError", "save", "load", "read_metadata", "FORMAT"]

FORMAT = "agnostic.tree/1"
_TREE_KEY = "agnostic.tree"
_USER_KEY = "agnostic.metadata"
# Structures nested deeper than this are refused (a training state is a handful of levels deep);
# the number of nodes needs no limit: each takes bytes of the header, which the file's size bounds.
MAX_DEPTH = 100


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
    NumPy arrays come back as NumPy arrays. The file is untrusted: anything that is not a checkpoint
    (damaged, foreign, hostile, not a regular file) is a `CheckpointError` naming it, and reading
    takes memory in proportion to the file's size (a structure that names one tensor twice is refused).
    """
    target = as_device(backend) if device is None else _device_of(backend, device)
    cast = None if dtype is None else as_dtype(dtype)
    if cast is not None and not cast.is_floating:
        raise ValueError(
            f"ag.load: dtype= casts floating-point tensors, so it must be a float dtype, got {cast}"
        )
    name = os.fspath(path)
    header, arrays = read_tensors(name, "ag.load")
    tree_text = header.get(_TREE_KEY)
    if tree_text is None:  # a plain safetensors file: a flat state dict
        decoder = _Decoder(arrays, target, cast, name)
        return {key: decoder.tensor(key) for key in list(arrays)}
    return _Decoder(arrays, target, cast, name).decode(_json(tree_text, name, "ag.load", "structure"))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The user metadata stored by `save(..., metadata=)`, plus the writer's format and version
    (under "format" and "agnostic_version"), from the header alone (a truncated file is an error)."""
    name = os.fspath(path)
    header, _ = read_header(name, "ag.io.read_metadata")
    user = _json(header.get(_USER_KEY) or "{}", name, "ag.io.read_metadata", "metadata")
    if not isinstance(user, dict):
        raise CheckpointError(
            f"ag.io.read_metadata: {name}: the metadata entry of the header is a JSON "
            f"{type(user).__name__}, not an object"
        )
    return {**user, "format": header.get("format"), "agnostic_version": header.get("agnostic.version")}


def _json(text: str, name: str, who: str, entry: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckpointError(
            f"{who}: {name}: the {entry} entry of the header is nested too deeply"
        ) from None
    except ValueError as exc:
        raise CheckpointError(f"{who}: {name}: the {entry} entry of the header is not JSON ({exc})") from None


# -- encoding -------------------------------------------------------------------------------------


def _encode(obj: Any, path: str, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(
            f"ag.save: {_where(path)} is nested more than {MAX_DEPTH} levels deep, which ag.load refuses"
        )
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
            items.append([k, _encode(v, f"{path}.{k}" if path else str(k), arrays, depth + 1)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {
            kind: [
                _encode(v, f"{path}.{i}" if path else str(i), arrays, depth + 1) for i, v in enumerate(obj)
            ]
        }
    raise TypeError(
        f"ag.save: {_where(path)} is a {type(obj).__name__}; a checkpoint holds tensors, NumPy arrays, "
        "dicts, lists, tuples, str, int, float, bool and None (no pickle: arbitrary objects cannot be saved)"
    )


def _c_order(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _put(arrays: dict[str, np.ndarray], path: str, array: np.ndarray) -> str:
    if code_of(array.dtype) is None:
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


def _device_of(backend: Device | str | None, device: str | int) -> Device:
    from agnostic.device import backend as get_backend

    name = backend if backend is not None else as_device(None).name
    return get_backend(name, device=device)


class _Decoder:
    """Rebuilds the structure from the header's JSON, checking every node: the file is untrusted."""

    def __init__(self, arrays: dict[str, np.ndarray], target: Device, cast: DType | None, name: str):
        self.arrays, self.target, self.cast, self.name = arrays, target, cast, name
        self.taken: set[str] = set()

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"ag.load: {self.name}: {problem}")

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"the structure is nested more than {MAX_DEPTH} levels deep")
        if not isinstance(node, dict) or len(node) != 1:
            raise self.fail(f"malformed structure entry {node!r:.80}")
        ((kind, value),) = node.items()
        if kind in ("tensor", "ndarray", "npscalar"):
            return self.array(kind, value)
        if kind == "value":
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            raise self.fail(f"a plain value in the structure is a JSON {type(value).__name__}: {value!r:.80}")
        if kind == "float":
            return self.float(value)
        if kind == "dtype":
            if isinstance(value, str) and value in {d.name for d in dtypes.ALL_DTYPES}:
                return as_dtype(value)
            raise self.fail(f"the structure names dtype {value!r:.80}, which agnostic does not have")
        if kind in ("dict", "list", "tuple") and not isinstance(value, list):
            raise self.fail(f"a {kind} in the structure holds a JSON {type(value).__name__}, not a list")
        if kind == "dict":
            return dict(self.item(item, depth) for item in value)
        if kind == "list":
            return [self.decode(v, depth + 1) for v in value]
        if kind == "tuple":
            return tuple(self.decode(v, depth + 1) for v in value)
        raise self.fail(f"unknown structure entry kind {kind!r:.80} (written by a newer agnostic?)")

    def item(self, item: Any, depth: int) -> tuple[Any, Any]:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], (str, int, float, bool, type(None)))
        ):
            raise self.fail(f"a dict item in the structure is {item!r:.80}, not a [key, value] pair")
        return item[0], self.decode(item[1], depth + 1)

    def float(self, value: Any) -> float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        raise self.fail(f"the structure holds {value!r:.80} where a float's repr belongs")

    def array(self, kind: str, key: Any) -> Any:
        if not isinstance(key, str):
            raise self.fail(f"the structure names tensor {key!r:.80}, which the file does not hold")
        if key in self.taken:  # ag.save names each once; sharing would let a small file fill memory
            raise self.fail(
                f"the structure names tensor {key!r} more than once (a file written by ag.save names each "
                "tensor once)"
            )
        if key not in self.arrays:
            raise self.fail(f"the structure names tensor {key!r:.80}, which the file does not hold")
        self.taken.add(key)
        if kind == "tensor":
            return self.tensor(key)
        a = self.arrays.pop(key)  # each array is the loaded structure's own
        if kind == "ndarray":
            return a
        if a.ndim:
            raise self.fail(f"the structure names tensor {key!r} of shape {a.shape} as a NumPy scalar")
        return a[()]

    def tensor(self, key: str) -> Tensor:
        a = self.arrays.pop(key)  # freed once copied to the backend: the file's size is the peak
        try:
            dtypes.from_numpy_dtype(a.dtype)
        except TypeError as exc:
            raise self.fail(f"tensor {key!r}: {exc}") from None
        t = self.target.tensor(a)
        if self.cast is not None and t.dtype.is_floating and t.dtype != self.cast:
            t = t.astype(self.cast)
        return t
