"""A third-party backend as a user would publish one: its own native array type, found through
the `agnostic.backends` entry-point group, and proved by `agnostic conformance --backend boxed`.

`Boxed` is an array type the rest of agnostic has never seen: an opaque box around a NumPy array,
with no operators and no attributes. `BoxedBackend` implements every primitive of the op-set by
unboxing its arguments, calling NumPy (through agnostic's own NumPy op-set, so this file stays
short) and boxing the results. The composites (softmax, cross_entropy, attention...) are the base
class's defaults, written with `self.<primitive>`, so they too run on boxes. The suite passing on
it shows that nothing above the op-set assumes a native array is a NumPy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agnostic.backends.base import PRIMITIVES, Backend
from agnostic.backends.numpy import NumpyBackend

_NUMPY = NumpyBackend()


class Boxed:
    """The native array type of this backend: nothing but a private payload."""

    __slots__ = ("_payload",)

    def __init__(self, payload: np.ndarray) -> None:
        self._payload = payload


def _unbox(obj: Any) -> Any:
    if isinstance(obj, Boxed):
        return obj._payload
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unbox(o) for o in obj)
    return obj


def _box(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return tuple(_box(o) for o in obj)
    if isinstance(obj, list):
        return [_box(o) for o in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return Boxed(np.asarray(obj))
    return obj


def _delegate(name: str) -> Any:
    def method(self: BoxedBackend, *args: Any, **kwargs: Any) -> Any:
        out = getattr(_NUMPY, name)(*_unbox(args), **{k: _unbox(v) for k, v in kwargs.items()})
        return _box(out)

    method.__name__ = method.__qualname__ = name
    return method


_PLUMBING = {"native_dtype", "dtype_of", "shape", "is_native", "from_numpy", "to_numpy"}


class BoxedBackend(Backend):
    """Every primitive on `Boxed` arrays; the composites are the base class's defaults."""

    name = "boxed"

    @classmethod
    def library_version(cls) -> str:
        return "0.1"

    def native_dtype(self, dtype: Any) -> Any:
        return _NUMPY.native_dtype(dtype)

    def dtype_of(self, a: Boxed) -> Any:
        return _NUMPY.dtype_of(a._payload)

    def shape(self, a: Boxed) -> tuple[int, ...]:
        return tuple(a._payload.shape)

    def is_native(self, obj: object) -> bool:
        return isinstance(obj, Boxed)

    def from_numpy(self, array: np.ndarray) -> Boxed:
        return Boxed(np.array(array, copy=True))

    def to_numpy(self, a: Boxed) -> np.ndarray:
        return _NUMPY.to_numpy(a._payload)

    def to_dlpack(self, a: Boxed, **kwargs: Any) -> Any:
        return a._payload.__dlpack__(**kwargs)

    def dlpack_device(self, a: Boxed) -> tuple[int, int]:
        return a._payload.__dlpack_device__()


for _name in sorted(set(PRIMITIVES) - _PLUMBING):
    setattr(BoxedBackend, _name, _delegate(_name))
BoxedBackend.__abstractmethods__ = frozenset()
