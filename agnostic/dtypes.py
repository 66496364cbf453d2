"""Dtypes and the one promotion table.

Every backend disagrees a little on promotion; agnostic decides here, once, and the Tensor layer casts
before it calls a backend. The table is the Python Array API standard's, extended where the standard
is silent with what PyTorch and JAX agree on (bool is below every number, integer with float gives
the float, float16 with bfloat16 gives float32). Python scalars are weak: they take the tensor's dtype
unless their kind is higher (a float scalar with an integer tensor gives the default float).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import ml_dtypes

__all__ = [
    "DType",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "ALL_DTYPES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "default_float",
    "default_int",
    "as_dtype",
    "result_type",
    "scalar_result_type",
    "to_numpy_dtype",
    "from_numpy_dtype",
    "numpy_dtype_tables",
    "CompletedTable",
    "isdtype",
    "can_cast",
    "finfo",
    "iinfo",
]

_builtin_bool = bool


class DType:
    """A dtype: a name, a kind ('b' bool, 'i' signed, 'u' unsigned, 'f' float) and a size in bytes."""

    __slots__ = ("name", "kind", "itemsize", "is_floating", "is_integer")

    def __init__(self, name: str, kind: str, itemsize: int) -> None:
        self.name = name
        self.kind = kind
        self.itemsize = itemsize
        # plain attributes, not properties: every op reads them, and a property call costs more
        self.is_floating: _builtin_bool = kind == "f"
        self.is_integer: _builtin_bool = kind in "iu"

    @property
    def bits(self) -> int:
        return self.itemsize * 8

    def __repr__(self) -> str:
        return f"ag.{self.name}"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> _builtin_bool:
        if isinstance(other, DType):
            return self is other
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


bool = DType("bool", "b", 1)
int8 = DType("int8", "i", 1)
int16 = DType("int16", "i", 2)
int32 = DType("int32", "i", 4)
int64 = DType("int64", "i", 8)
uint8 = DType("uint8", "u", 1)
float16 = DType("float16", "f", 2)
bfloat16 = DType("bfloat16", "f", 2)
float32 = DType("float32", "f", 4)
float64 = DType("float64", "f", 8)

ALL_DTYPES: tuple[DType, ...] = (
    bool,
    int8,
    int16,
    int32,
    int64,
    uint8,
    float16,
    bfloat16,
    float32,
    float64,
)
FLOAT_DTYPES: tuple[DType, ...] = (float16, bfloat16, float32, float64)
INT_DTYPES: tuple[DType, ...] = (int8, int16, int32, int64, uint8)
_BY_NAME = {d.name: d for d in ALL_DTYPES}

default_float = float32
default_int = int64


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    if a.kind == "f" or b.kind == "f":
        if a.kind != "f":
            return b
        if b.kind != "f":
            return a
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    if a.kind == b.kind:  # both signed (uint8 is our only unsigned type)
        return a if a.itemsize >= b.itemsize else b
    signed, unsigned = (a, b) if a.kind == "i" else (b, a)
    if signed.itemsize > unsigned.itemsize:
        return signed
    return {2: int16, 4: int32, 8: int64}[min(8, max(signed.itemsize, 2 * unsigned.itemsize))]


_PROMOTION: dict[tuple[DType, DType], DType] = {
    (a, b): _promote_pair(a, b) for a in ALL_DTYPES for b in ALL_DTYPES
}


def result_type(*args: object) -> DType:
    """The promoted dtype of tensors, dtypes and Python scalars (scalars weak), as the Array API names it."""
    tensor_dtype: DType | None = None
    scalars = []
    for a in args:
        if isinstance(a, (_builtin_bool, int, float)):
            scalars.append(a)
            continue
        d = as_dtype(a.dtype if hasattr(a, "dtype") else a)
        tensor_dtype = d if tensor_dtype is None else _PROMOTION[tensor_dtype, d]
    if tensor_dtype is None:
        if not scalars:
            raise TypeError("result_type: at least one tensor, dtype or scalar is needed")
        if any(isinstance(s, float) for s in scalars):
            return default_float
        if any(not isinstance(s, _builtin_bool) for s in scalars):
            return default_int
        return bool
    for s in scalars:
        tensor_dtype = scalar_result_type(tensor_dtype, s)
    return tensor_dtype


def scalar_result_type(dtype: DType, scalar: object) -> DType:
    """The dtype of `tensor op scalar`: the tensor's, unless the scalar's kind is higher."""
    if isinstance(scalar, _builtin_bool):
        return dtype
    if isinstance(scalar, int):
        return default_int if dtype.kind == "b" else dtype
    if isinstance(scalar, float):
        return dtype if dtype.kind == "f" else default_float
    raise TypeError(f"expected a Python bool, int or float scalar, got {type(scalar).__name__}")


_NUMPY_DTYPES = {
    bool: np.dtype(np.bool_),
    int8: np.dtype(np.int8),
    int16: np.dtype(np.int16),
    int32: np.dtype(np.int32),
    int64: np.dtype(np.int64),
    uint8: np.dtype(np.uint8),
    float16: np.dtype(np.float16),
    float32: np.dtype(np.float32),
    float64: np.dtype(np.float64),
}  # bfloat16 joins when ml_dtypes is loaded (_load_ml_dtypes)
_FROM_NUMPY = {v: k for k, v in _NUMPY_DTYPES.items()}
_ML_DTYPES = (bfloat16,)


def _load_ml_dtypes() -> None:
    """Import ml_dtypes (NumPy's bfloat16) and add its dtypes to the tables. It takes most of a
    second to import, so it is loaded when a bfloat16 is first needed, not with agnostic."""
    import ml_dtypes

    for d in _ML_DTYPES:
        native = np.dtype(getattr(ml_dtypes, d.name))
        _NUMPY_DTYPES[d], _FROM_NUMPY[native] = native, d


def to_numpy_dtype(dtype: DType) -> np.dtype:
    """The host NumPy dtype for `dtype` (bfloat16 through ml_dtypes, loaded on first need)."""
    try:
        return _NUMPY_DTYPES[dtype]
    except KeyError:
        if dtype not in _ML_DTYPES:
            raise
    _load_ml_dtypes()
    return _NUMPY_DTYPES[dtype]


def from_numpy_dtype(dtype: Any) -> DType:
    """The agnostic dtype of a NumPy dtype; a clear error for ones agnostic does not support."""
    native = np.dtype(dtype)
    try:
        return _FROM_NUMPY[native]
    except KeyError:
        pass
    if (
        "ml_dtypes" in sys.modules and bfloat16 not in _NUMPY_DTYPES
    ):  # its arrays exist only once it is imported
        _load_ml_dtypes()
        if native in _FROM_NUMPY:
            return _FROM_NUMPY[native]
    raise TypeError(
        f"dtype {native} is not supported by agnostic; supported: " + ", ".join(d.name for d in ALL_DTYPES)
    )


class CompletedTable(dict):
    """A lookup table (a backend's native dtype <-> DType) that completes itself on a miss with
    `complete(key)`: a backend's tables need no bfloat16 entry (and no ml_dtypes) until one is used,
    and an unsupported dtype gets `complete`'s clear error instead of a KeyError. Hits stay plain
    dict lookups."""

    def __init__(self, items: dict, complete: Callable[[Any], Any]) -> None:
        super().__init__(items)
        self._complete = complete

    def __missing__(self, key: Hashable) -> Any:
        value = self[key] = self._complete(key)
        return value


def numpy_dtype_tables() -> tuple[CompletedTable, CompletedTable]:
    """(DType -> NumPy dtype, NumPy dtype -> DType) tables for a backend on NumPy-typed arrays."""
    return (
        CompletedTable(_NUMPY_DTYPES, to_numpy_dtype),
        CompletedTable(_FROM_NUMPY, from_numpy_dtype),
    )


def as_dtype(obj: object) -> DType:
    """Accept an agnostic DType, its name, a NumPy dtype or a Python type (bool, int, float)."""
    if isinstance(obj, DType):
        return obj
    if isinstance(obj, str):
        try:
            return _BY_NAME[obj]
        except KeyError:
            pass
    elif obj is _builtin_bool:
        return bool
    elif obj is int:
        return default_int
    elif obj is float:
        return default_float
    else:
        try:
            return from_numpy_dtype(np.dtype(obj))
        except TypeError:
            pass
    raise TypeError(f"unknown dtype {obj!r}; known: " + ", ".join(d.name for d in ALL_DTYPES))


_KIND_NAMES = {
    "bool": ("b",),
    "signed integer": ("i",),
    "unsigned integer": ("u",),
    "integral": ("i", "u"),
    "real floating": ("f",),
    "numeric": ("i", "u", "f"),
}


def isdtype(dtype: DType, kind: object) -> _builtin_bool:
    """Array API `isdtype`: whether `dtype` is `kind` (a dtype, a kind name, or a tuple of them)."""
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, DType):
        return dtype is kind
    if kind == "complex floating":
        return False
    try:
        return dtype.kind in _KIND_NAMES[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"isdtype: unknown kind {kind!r}; use a dtype or one of {sorted(_KIND_NAMES)}"
        ) from None


def can_cast(from_: DType, to: DType) -> _builtin_bool:
    """Whether `from_` promotes to `to` without loss under the promotion table."""
    return _PROMOTION[as_dtype(from_), as_dtype(to)] is as_dtype(to)


def finfo(dtype: object) -> np.finfo | ml_dtypes.finfo:
    """Machine limits of a float dtype (bits, eps, max, min, smallest_normal, dtype)."""
    d = as_dtype(getattr(dtype, "dtype", dtype))
    if d.kind != "f":
        raise TypeError(f"finfo: {d} is not a floating-point dtype")
    if d in _ML_DTYPES:
        import ml_dtypes

        return ml_dtypes.finfo(to_numpy_dtype(d))
    return np.finfo(to_numpy_dtype(d))


def iinfo(dtype: object) -> np.iinfo:
    """Machine limits of an integer dtype (bits, max, min, dtype)."""
    d = as_dtype(getattr(dtype, "dtype", dtype))
    if d.kind not in "iu":
        raise TypeError(f"iinfo: {d} is not an integer dtype")
    return np.iinfo(to_numpy_dtype(d))
