"""Dtypes and the one promotion table.

Every backend disagrees a little on promotion; agnostic decides here, once, and the Tensor layer casts
before it calls a backend. The table is the Python Array API standard's, extended where the standard
is silent with what PyTorch and JAX agree on (bool is below every number, integer with float gives
the float, float16 with bfloat16 gives float32, a real float with a complex gives the complex of the
wider precision). uint64 with a signed integer has no integer that holds both: like torch (and
array_api_strict) it is an error naming the fix, where NumPy gives float64 and loses precision.
Python scalars are weak: they take the tensor's dtype unless their kind is higher (a float scalar
with an integer tensor gives the default float; a complex scalar with a float32 tensor complex64).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DType",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "ALL_DTYPES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "COMPLEX_DTYPES",
    "default_float",
    "default_int",
    "default_complex",
    "real_dtype",
    "complex_dtype",
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
    """A dtype: a name, a kind ('b' bool, 'i' signed, 'u' unsigned, 'f' real float, 'c' complex)
    and a size in bytes. `is_floating` means real floating (as torch's `is_floating_point`);
    `is_complex` the complex dtypes; `is_inexact` either."""

    __slots__ = ("name", "kind", "itemsize", "is_floating", "is_integer", "is_complex", "is_inexact")

    def __init__(self, name: str, kind: str, itemsize: int) -> None:
        self.name = name
        self.kind = kind
        self.itemsize = itemsize
        # plain attributes, not properties: every op reads them, and a property call costs more
        self.is_floating: _builtin_bool = kind == "f"
        self.is_integer: _builtin_bool = kind in "iu"
        self.is_complex: _builtin_bool = kind == "c"
        self.is_inexact: _builtin_bool = kind in "fc"

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
uint16 = DType("uint16", "u", 2)
uint32 = DType("uint32", "u", 4)
uint64 = DType("uint64", "u", 8)
float16 = DType("float16", "f", 2)
bfloat16 = DType("bfloat16", "f", 2)
float32 = DType("float32", "f", 4)
float64 = DType("float64", "f", 8)
complex64 = DType("complex64", "c", 8)
complex128 = DType("complex128", "c", 16)

ALL_DTYPES: tuple[DType, ...] = (
    bool,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
    float16,
    bfloat16,
    float32,
    float64,
    complex64,
    complex128,
)
FLOAT_DTYPES: tuple[DType, ...] = (float16, bfloat16, float32, float64)
INT_DTYPES: tuple[DType, ...] = (int8, int16, int32, int64, uint8, uint16, uint32, uint64)
COMPLEX_DTYPES: tuple[DType, ...] = (complex64, complex128)
_BY_NAME = {d.name: d for d in ALL_DTYPES}

default_float = float32
default_int = int64
default_complex = complex64


def real_dtype(dtype: DType) -> DType:
    """The real dtype of a complex one's parts (complex64 -> float32); other dtypes unchanged."""
    return {complex64: float32, complex128: float64}.get(dtype, dtype)


def complex_dtype(dtype: DType) -> DType:
    """The complex dtype whose parts hold `dtype` (float64 -> complex128; float32, float16,
    bfloat16 and non-float dtypes -> complex64)."""
    if dtype.kind == "c":
        return dtype
    return complex128 if dtype is float64 else complex64


def _promote_pair(a: DType, b: DType) -> DType | None:
    if a is b:
        return a
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    if a.kind == "c" or b.kind == "c":
        wide = _promote_pair(real_dtype(a), real_dtype(b)) if a.kind == b.kind == "c" else None
        if wide is None:
            parts = [real_dtype(d) for d in (a, b) if d.kind in "fc"]
            wide = parts[0] if len(parts) == 1 else _promote_pair(*parts)
        return complex_dtype(wide)
    if a.kind == "f" or b.kind == "f":
        if a.kind != "f":
            return b
        if b.kind != "f":
            return a
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    if a.kind == b.kind:  # both signed or both unsigned
        return a if a.itemsize >= b.itemsize else b
    signed, unsigned = (a, b) if a.kind == "i" else (b, a)
    if signed.itemsize > unsigned.itemsize:
        return signed
    if unsigned.itemsize == 8:
        return None  # no integer holds both int64's and uint64's values
    return {2: int16, 4: int32, 8: int64}[max(signed.itemsize, 2 * unsigned.itemsize)]


_PROMOTION: dict[tuple[DType, DType], DType] = {
    (a, b): p for a in ALL_DTYPES for b in ALL_DTYPES if (p := _promote_pair(a, b)) is not None
}
"""Every pair with a promoted dtype; a pair that is missing (a signed integer with uint64) has
none, and `promote` raises for it."""


def promote(a: DType, b: DType) -> DType:
    """The promoted dtype of two dtypes; TypeError naming the fix where there is none."""
    try:
        return _PROMOTION[a, b]
    except KeyError:
        raise TypeError(
            f"no dtype holds both {a.name} and {b.name} values (int64 cannot hold uint64's, nor "
            f"uint64 negative numbers); cast one operand explicitly, e.g. x.astype(ag.int64) or "
            f"x.astype(ag.float64)"
        ) from None


def result_type(*args: object) -> DType:
    """The promoted dtype of tensors, dtypes and Python scalars (scalars weak), as the Array API names it."""
    tensor_dtype: DType | None = None
    scalars = []
    for a in args:
        if isinstance(a, (_builtin_bool, int, float, complex)):
            scalars.append(a)
            continue
        d = as_dtype(a.dtype if hasattr(a, "dtype") else a)
        tensor_dtype = d if tensor_dtype is None else promote(tensor_dtype, d)
    if tensor_dtype is None:
        if not scalars:
            raise TypeError("result_type: at least one tensor, dtype or scalar is needed")
        if any(isinstance(s, complex) for s in scalars):
            return default_complex
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
        return dtype if dtype.kind in "fc" else default_float
    if isinstance(scalar, complex):
        return complex_dtype(dtype) if dtype.kind in "fc" else default_complex
    raise TypeError(f"expected a Python bool, int, float or complex scalar, got {type(scalar).__name__}")


_NUMPY_DTYPES = {
    bool: np.dtype(np.bool_),
    int8: np.dtype(np.int8),
    int16: np.dtype(np.int16),
    int32: np.dtype(np.int32),
    int64: np.dtype(np.int64),
    uint8: np.dtype(np.uint8),
    uint16: np.dtype(np.uint16),
    uint32: np.dtype(np.uint32),
    uint64: np.dtype(np.uint64),
    float16: np.dtype(np.float16),
    float32: np.dtype(np.float32),
    float64: np.dtype(np.float64),
    complex64: np.dtype(np.complex64),
    complex128: np.dtype(np.complex128),
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
    elif obj is complex:
        return default_complex
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
    "complex floating": ("c",),
    "numeric": ("i", "u", "f", "c"),
}


def isdtype(dtype: DType, kind: object) -> _builtin_bool:
    """Array API `isdtype`: whether `dtype` is `kind` (a dtype, a kind name, or a tuple of them)."""
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, DType):
        return dtype is kind
    try:
        return dtype.kind in _KIND_NAMES[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"isdtype: unknown kind {kind!r}; use a dtype or one of {sorted(_KIND_NAMES)}"
        ) from None


def can_cast(from_: DType, to: DType) -> _builtin_bool:
    """Whether `from_` promotes to `to` without loss under the promotion table."""
    return _PROMOTION.get((as_dtype(from_), as_dtype(to))) is as_dtype(to)


class finfo_object(NamedTuple):
    """Machine limits of a floating dtype, as the Array API gives them: Python floats and an agnostic
    dtype (for a complex dtype, those of its real parts). `tiny` is torch's name for
    `smallest_normal`."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: DType

    @property
    def tiny(self) -> float:
        return self.smallest_normal


class iinfo_object(NamedTuple):
    """Machine limits of an integer dtype: Python ints and an agnostic dtype."""

    bits: int
    max: int
    min: int
    dtype: DType


def native_finfo(dtype: DType) -> Any:
    """NumPy's (or ml_dtypes') finfo of a real float dtype: for internal use of nmant and the like."""
    if dtype in _ML_DTYPES:
        import ml_dtypes

        return ml_dtypes.finfo(to_numpy_dtype(dtype))
    return np.finfo(to_numpy_dtype(dtype))


def finfo(dtype: object) -> finfo_object:
    """Machine limits of a float or complex dtype (bits, eps, max, min, smallest_normal, dtype)."""
    d = as_dtype(getattr(dtype, "dtype", dtype))
    if d.kind not in "fc":
        raise TypeError(f"finfo: {d} is not a floating-point dtype")
    real = real_dtype(d)
    fi = native_finfo(real)
    return finfo_object(
        real.bits, float(fi.eps), float(fi.max), float(fi.min), float(fi.smallest_normal), real
    )


def iinfo(dtype: object) -> iinfo_object:
    """Machine limits of an integer dtype (bits, max, min, dtype)."""
    d = as_dtype(getattr(dtype, "dtype", dtype))
    if d.kind not in "iu":
        raise TypeError(f"iinfo: {d} is not an integer dtype")
    ii = np.iinfo(to_numpy_dtype(d))
    return iinfo_object(d.bits, int(ii.max), int(ii.min), d)
