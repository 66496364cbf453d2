"""The public ops: Array API names and keywords, one promotion table, errors that say what is wrong.

Each function checks and normalizes its arguments (axes, shapes, backends), decides the result
dtype from `agnostic.dtypes`, casts, then calls the differentiable primitive. Backends never see a
mixed-dtype call, a negative axis or an unresolved -1 in a shape.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import math
import operator
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from agnostic import dtypes, tracing
from agnostic import primitives as P
from agnostic.autocast import POLICY as _AUTOCAST_POLICY
from agnostic.autocast import _state as _autocast_on
from agnostic.autocast import cast_inputs as _autocast
from agnostic.backends.base import allocation_error, check_allocation
from agnostic.device import Device, _size, as_device, get_default_backend
from agnostic.dtypes import DType
from agnostic.tensor import Tensor

_builtin_max = builtins.max
_SCALARS = (bool, int, float, complex)
_INT64_MAX = 2**63 - 1
_BOOL = dtypes.bool
_PROMOTE = dtypes._PROMOTION


# ====================================================================== conversion and creation
def asarray(
    obj: Any,
    dtype: Any = None,
    device: Device | str | None = None,
    copy: bool | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor from a tensor, a native array of the backend, a NumPy array, nested sequences or a
    scalar. Python numbers keep their full precision until `dtype` is applied; without one, Python
    floats become float32 and ints int64."""
    d = None if dtype is None else dtypes.as_dtype(dtype)
    if isinstance(obj, Tensor):
        dev = obj._device if device is None else as_device(device)
        out = obj if dev is obj._device else to_device(obj, dev)
        if d is not None and d is not out._dtype:
            out = astype(out, d)
        elif copy and out is obj:
            out = Tensor._make(out._data, out._device)
    else:
        dev = as_device(device)
        if dev.ops.is_native(obj):
            dev.ops.dtype_of(obj)  # a clear error for a dtype agnostic does not support
            if copy:  # a private copy: the caller may still write to its array (stack allocates anew)
                obj = dev.ops.reshape(dev.ops.stack([obj], 0), dev.ops.shape(obj))
            out = Tensor._make(obj, dev)
        else:
            out = Tensor._make(dev.ops.from_numpy(_host_array(obj, d)), dev)
        if d is not None and d is not out._dtype:
            out = astype(out, d)  # (complex to real refused, as for tensors)
    if requires_grad:
        if out is obj:
            out = Tensor._make(out._data, out._device)
        out.requires_grad_()
    return out


def _host_array(obj: Any, dtype: DType | None = None) -> np.ndarray:
    """A NumPy array for `obj`. NumPy data keeps its dtype. Python data is read at full precision
    (float64, int64) and rounded once, to `dtype` if it is floating, else to agnostic's defaults
    (float32, int64); a float going to an integer dtype stays float64 for the backend's cast, which
    decides NaN and out-of-range values the same on every backend."""
    if isinstance(obj, (np.ndarray, np.generic)):
        a = np.asarray(obj)
        dtypes.from_numpy_dtype(a.dtype)  # a clear error for unsupported dtypes
        return a
    if hasattr(obj, "__dlpack__") and not isinstance(obj, (list, tuple)):
        a = np.asarray(obj)
        dtypes.from_numpy_dtype(a.dtype)
        return a
    try:
        a = np.asarray(obj)
        if a.dtype == object and dtype is not None and dtype.is_floating and _has_big_int(obj):
            a = np.asarray(obj, dtype=np.float64)  # ints beyond int64 made floating (as torch)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"asarray: cannot make a tensor from {type(obj).__name__}: {e}") from None
    beyond = a.dtype.kind in "fO" and _ints_beyond_int64(obj, a)
    if beyond and dtype is not None and dtype.kind in "iu":
        a = _exact_ints(obj, dtype)
    elif (
        (a.dtype == object and _has_big_int(obj))
        or (a.dtype == np.uint64 and dtype is None)
        or (beyond and dtype is None)
    ):
        wanted = dtype if dtype is not None and dtype.is_integer else dtypes.int64
        info = dtypes.iinfo(wanted)
        hint = "; pass dtype=ag.uint64 for ints in [0, 2**64)" if dtype is None else ""
        raise OverflowError(
            f"asarray: a Python int in {_short(obj)} is out of range for {wanted.name} "
            f"[{info.min}, {info.max}]{hint}"
        )
    if a.dtype == object or a.dtype.kind not in "biufc":
        raise TypeError(
            f"asarray: cannot make a tensor from {_short(obj)} (not numbers: {a.dtype}); "
            "agnostic supports bool, integer, real and complex floating data"
        )
    if a.dtype.kind == "c" and dtype is not None and not dtype.is_complex:
        raise TypeError(
            f"asarray: {_short(obj)} holds complex numbers, which {dtype.name} cannot hold; make a "
            "complex tensor and take ag.real(x) or ag.abs(x) of it"
        )
    if a.dtype.kind in "iu" and dtype is not None and dtype.is_integer and a.size:
        info = dtypes.iinfo(dtype)
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise OverflowError(
                f"asarray: Python int {bad} is out of range for {dtype.name} [{info.min}, {info.max}]"
            )
    if dtype is None:  # agnostic's defaults
        dtype = {
            "f": dtypes.default_float,
            "i": dtypes.default_int,
            "u": dtypes.default_int,
            "c": dtypes.default_complex,
        }.get(a.dtype.kind)
    elif not dtype.is_inexact and a.dtype.kind == "f":
        dtype = None  # left to the backend's cast
    if dtype is None:
        return a
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf, silently, as in torch and JAX
        return a.astype(dtypes.to_numpy_dtype(dtype))


def _ints_beyond_int64(obj: Any, a: np.ndarray) -> bool:
    """Whether Python data `obj`, read by NumPy as `a`, holds only ints, some beyond int64: NumPy
    reads those as objects, or as float64 beside smaller ones ([1, 2**64 - 1]), losing digits. A
    NumPy array (a batch from a data loader) holds no Python ints: no pass over its values."""
    if not isinstance(obj, (list, tuple, int)):
        return False
    if a.dtype == object:
        return _only_ints(obj)
    return bool(a.size) and float(np.abs(a).max()) >= 2.0**63 and _only_ints(obj)


def _only_ints(obj: Any) -> bool:
    if isinstance(obj, (list, tuple)):
        return builtins.all(_only_ints(o) for o in obj)
    return isinstance(obj, int)


def _exact_ints(obj: Any, dtype: DType) -> np.ndarray:
    """Python ints as a host array of integer `dtype`, exactly, or an OverflowError naming the
    first one out of its range."""
    exact = np.array(obj, dtype=object)
    info = dtypes.iinfo(dtype)
    for v in exact.flat:
        if not info.min <= v <= info.max:
            raise OverflowError(
                f"asarray: Python int {v} is out of range for {dtype.name} [{info.min}, {info.max}]"
            )
    return exact.astype(dtypes.to_numpy_dtype(dtype))


def _has_big_int(obj: Any) -> bool:
    """Whether nested Python data holds an int that NumPy could not read as an integer."""
    if isinstance(obj, (list, tuple)):
        return builtins.any(_has_big_int(o) for o in obj)
    return isinstance(obj, int) and not isinstance(obj, bool)


def _short(obj: Any, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_device(x: Tensor, device: Device | str) -> Tensor:
    """`x` on another backend or device: DLPack zero-copy where both sides allow, a host copy
    otherwise; gradients flow back through the move."""
    dev = as_device(device)
    if dev is x._device:
        return x
    data = None
    if x._dtype is not dtypes.bfloat16:
        try:
            data = dev.ops.from_dlpack(x._data)
        except Exception:  # libraries refuse cross-device or unsupported DLPack; copy through the host
            data = None
    if data is None:
        data = dev.ops.from_numpy(np.ascontiguousarray(x._device.ops.to_numpy(x._data)))
    out = Tensor._make(data, dev)
    if P._tracking(x):
        source = x._device
        P._record(out, "to_device", (x,), lambda g, y: (to_device(g, source),))
    return out


def clone(x: Tensor, /) -> Tensor:
    """A new tensor with x's values (torch.clone); gradients flow through it. Tensors are values,
    so code written for agnostic never needs one."""
    x = _tensor(x, "clone")
    out = Tensor._make(x._data, x._device, x._dtype)
    if P._tracking(x):
        P._record(out, "clone", (x,), lambda g, y: (g,))
    return out


def astype(x: Tensor, dtype: Any, /, *, copy: bool = True, device: Device | str | None = None) -> Tensor:
    """`x` converted to `dtype` (and moved to `device`, if given). `copy=False` returns `x` itself
    when nothing changes."""
    x = _tensor(x, "astype")
    d = dtypes.as_dtype(dtype)
    if device is not None and as_device(device) is not x._device:
        return astype(to_device(x, device), d, copy=False)
    if d is x._dtype:
        return Tensor._make(x._data, x._device) if copy and not x.requires_grad else x
    if x._dtype.is_complex and not d.is_complex and d is not _BOOL:
        raise TypeError(
            f"astype: {x._dtype.name} to {d.name} would drop the imaginary parts, which the Array API "
            f"refuses; say which real number you want: ag.real(x).astype(ag.{d.name}) or "
            f"ag.abs(x).astype(ag.{d.name})"
        )
    return P.cast(x, d)


def bitcast(x: Tensor, /, dtype: Any) -> Tensor:
    """`x`'s bytes read as `dtype`, which must have the same item size: each element's bit pattern
    is kept, not its value (NumPy's `x.view(dtype)`, torch's `x.view(dtype)`, JAX's
    `lax.bitcast_convert_type`): float32 1.0 becomes int32 1065353216, NaN payloads and -0.0 keep
    their bits. A byte read as bool gives True where it is non-zero.

    Not differentiable: the result never requires grad (a float-to-float bitcast of a tensor that
    requires grad gives a result detached from the graph, as torch's `view(dtype)` does). The same
    dtype gives `x` itself."""
    x = _tensor(x, "bitcast")
    d = dtypes.as_dtype(dtype)
    if d is x._dtype:
        return x
    if d.itemsize != x._dtype.itemsize:
        raise TypeError(
            f"bitcast: {x._dtype.name} ({x._dtype.itemsize} byte{'s' * (x._dtype.itemsize > 1)}) to "
            f"{d.name} ({d.itemsize} byte{'s' * (d.itemsize > 1)}): item sizes differ; bitcast "
            "reinterprets each element's bytes, so both dtypes must have the same size (astype "
            "converts values)"
        )
    return Tensor._make(x._device.ops.bitcast(x._data, d), x._device)


def _device_of(device: Device | str | None) -> Device:
    return get_default_backend() if device is None else as_device(device)


def zeros(shape: Any, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return _device_of(device).zeros(shape, dtype=dtype)


def ones(shape: Any, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return _device_of(device).ones(shape, dtype=dtype)


def empty(shape: Any, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return _device_of(device).zeros(shape, dtype=dtype)


def full(
    shape: Any, fill_value: bool | float, *, dtype: Any = None, device: Device | str | None = None
) -> Tensor:
    return _device_of(device).full(shape, fill_value, dtype=dtype)


def zeros_like(x: Tensor, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return full_like(x, 0, dtype=dtype, device=device)


def ones_like(x: Tensor, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return full_like(x, 1, dtype=dtype, device=device)


def empty_like(x: Tensor, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    return full_like(x, 0, dtype=dtype, device=device)


def full_like(
    x: Tensor, fill_value: bool | float, *, dtype: Any = None, device: Device | str | None = None
) -> Tensor:
    dev = x._device if device is None else as_device(device)
    return dev.full(x.shape, fill_value, dtype=x._dtype if dtype is None else dtype)


def arange(
    start: float, /, stop: float | None = None, step: float = 1, *, dtype: Any = None,
    device: Device | str | None = None,
) -> Tensor:  # fmt: skip
    return _device_of(device).arange(start, stop, step, dtype=dtype)


def linspace(
    start: float, stop: float, /, num: int, *, dtype: Any = None, device: Device | str | None = None,
    endpoint: bool = True,
) -> Tensor:  # fmt: skip
    return _device_of(device).linspace(start, stop, num, endpoint=endpoint, dtype=dtype)


def eye(
    n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype: Any = None,
    device: Device | str | None = None,
) -> Tensor:  # fmt: skip
    return _device_of(device).eye(n_rows, n_cols, k, dtype=dtype)


def from_dlpack(x: Any, /, *, device: Device | str | None = None, copy: bool | None = None) -> Tensor:
    """A tensor from any DLPack-capable array: a view where the library allows (copy=None), always
    a copy (copy=True), or a view or a BufferError (copy=False). Without `device`, an agnostic
    tensor stays on its device and other arrays go to the default backend."""
    if device is None and isinstance(x, Tensor):
        dev = x._device
    else:
        dev = _device_of(device)
    if isinstance(x, Tensor) and x._device is dev:
        data = x._data
    elif isinstance(x, Tensor) and copy is not False:  # bfloat16 too, through the host if need be
        data = to_device(x.detach(), dev)._data
    elif copy is not False:
        data = dev.from_dlpack(x)._data
    else:
        data = _dlpack_view(x, dev)
    if copy:
        data = _native_copy(dev, data)
    return Tensor._make(data, dev)


def _dlpack_view(x: Any, dev: Device) -> Any:
    """from_dlpack's copy=False: a view of `x` on `dev`, or a BufferError saying why none exists."""
    try:
        data = dev.from_dlpack(x)._data
    except Exception as exc:  # bfloat16 to NumPy, say: DLPack has no code the library reads
        raise BufferError(
            f"from_dlpack: copy=False, but {dev} cannot view this {type(x).__name__} ({exc}); "
            "copy=None copies where a view is impossible"
        ) from exc
    source, target = x.__dlpack_device__(), dev.ops.dlpack_device(data)
    if (int(source[0]), int(source[1])) != (int(target[0]), int(target[1])):
        raise BufferError(
            f"from_dlpack: copy=False, but the array is on DLPack device {tuple(source)} and {dev} "
            f"on {tuple(target)}: moving it needs a copy (copy=None allows one)"
        )
    return data


def _native_copy(dev: Device, data: Any) -> Any:
    """A private copy of a native array (stack allocates anew on every library)."""
    return dev.ops.reshape(dev.ops.stack([data], 0), dev.ops.shape(data))


def tril(x: Tensor, /, *, k: int = 0) -> Tensor:
    """`x` with elements above the k-th diagonal of the last two axes set to zero."""
    return _triangle(x, k, lower=True)


def triu(x: Tensor, /, *, k: int = 0) -> Tensor:
    """`x` with elements below the k-th diagonal of the last two axes set to zero."""
    return _triangle(x, k, lower=False)


def _triangle(x: Tensor, k: int, lower: bool) -> Tensor:
    x = _tensor(x, "tril" if lower else "triu")
    if x.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: needs at least 2 dimensions, got shape {x.shape}")
    n, m = x.shape[-2:]
    rows = P.expand_dims(x._device.arange(n, dtype=dtypes.int64), (1,))
    cols = x._device.arange(m, dtype=dtypes.int64)
    keep = P.le(P.sub(cols, rows), k) if lower else P.ge(P.sub(cols, rows), k)
    return P.where(keep, x, False if x._dtype is dtypes.bool else 0)


def meshgrid(*arrays: Tensor, indexing: str = "xy") -> list[Tensor]:
    """Coordinate grids from 1-D tensors (Array API meshgrid)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    arrays = [_tensor(a, "meshgrid") for a in arrays]
    n = len(arrays)
    shape = [a.size for a in arrays]
    if indexing == "xy" and n >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, a in enumerate(arrays):
        pos = i
        if indexing == "xy" and n >= 2 and i < 2:
            pos = 1 - i
        view = [1] * n
        view[pos] = a.size
        check_allocation(a._device.ops, "meshgrid", tuple(shape), a._dtype)
        out.append(P.broadcast_to(P.reshape(a, tuple(view)), tuple(shape)))
    return out


# ====================================================================== argument checking
def _tensor(x: Any, op: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    raise _not_a_tensor(x, op)


def _not_a_tensor(x: Any, op: str) -> TypeError:
    return TypeError(f"{op}: expected a Tensor, got {type(x).__name__}; make one with ag.asarray(...)")


class AmbiguityWarning(UserWarning):
    """A call that NumPy and torch read differently; the message names both meanings and the
    keyword that makes the intended one explicit (which also silences the warning)."""


def _accepts_dim(refuse: str | None = None, unless: str | None = None) -> Any:
    """Let `fn` take torch's `dim=` / `keepdim=` as aliases of `axis=` / `keepdims=`.

    `refuse`: for functions whose torch namesake means something else when given a dim (max
    returning (values, indices), std's default correction), a message raised for `dim=` or a
    positional axis, unless the keyword `unless` (e.g. "correction") settles the meaning."""

    def wrap(fn: Any) -> Any:
        name = fn.__name__

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if "dim" in kwargs or "keepdim" in kwargs or (refuse is not None and len(args) > 1):
                kwargs = _torch_keywords(name, args, kwargs, refuse, unless)
            return fn(*args, **kwargs)

        return call

    return wrap


def _torch_keywords(
    op: str, args: tuple, kwargs: dict[str, Any], refuse: str | None, unless: str | None
) -> dict[str, Any]:
    if refuse is not None and (len(args) > 1 or "dim" in kwargs) and (unless is None or unless not in kwargs):
        raise TypeError(refuse)
    kwargs = dict(kwargs)
    for torch_name, name in (("dim", "axis"), ("keepdim", "keepdims")):
        if torch_name in kwargs:
            if name in kwargs:
                raise TypeError(
                    f"{op}: got both {name}= and {torch_name}=; they are one argument "
                    f"({torch_name} is torch's spelling), give one"
                )
            kwargs[name] = kwargs.pop(torch_name)
    return kwargs


class AxisError(ValueError, IndexError):
    """An axis out of range for a tensor's dimensions. Both a ValueError and an IndexError (as
    NumPy's AxisError): the Array API asks IndexError of expand_dims, code written for NumPy and
    torch catches either."""


def _axis(axis: Any, ndim: int, op: str, shape: tuple[int, ...] | None = None) -> int:
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be an int, got {axis!r}") from None
    if not -ndim <= a < ndim:
        where = f" (shape {shape})" if shape is not None else ""
        raise AxisError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions{where}")
    return a % ndim


def _axes(axis: Any, ndim: int, op: str, shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Normalize None / an int / a sequence of ints to sorted non-negative unique axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        out = tuple(sorted(_axis(a, ndim, op, shape) for a in axis))
        if len(set(out)) != len(out):
            raise ValueError(f"{op}: repeated axis in {tuple(axis)}")
        return out
    return (_axis(axis, ndim, op, shape),)


def _same_device(op: str, tensors: Sequence[Tensor]) -> Device:
    dev = tensors[0]._device
    for t in tensors[1:]:
        if t._device is not dev:
            raise ValueError(
                f"{op}: tensors are on different backends/devices: {dev} and {t._device}; "
                f"move one first, e.g. x.to({t._device!r} or {dev!r})"
            )
    return dev


def _broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    nd = _builtin_max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-nd, 0):
        size = 1
        for s in shapes:
            d = s[i] if -i <= len(s) else 1
            if d != 1:
                if size != 1 and d != size:
                    raise ValueError(
                        f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast: "
                        f"dimension {i} is {size} in one and {d} in another"
                    )
                size = d
        out.append(size)
    return tuple(out)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The broadcast shape of the given shapes, or a ValueError naming the mismatch."""
    return _broadcast_shapes("broadcast_shapes", *(tuple(s) for s in shapes))


def _check_scalar_fits(op: str, d: DType, s: Any) -> None:
    if d.kind in "iu" and isinstance(s, int) and not isinstance(s, bool):
        info = dtypes.iinfo(d)
        if not info.min <= s <= info.max:
            raise OverflowError(f"{op}: Python int {s} is out of range for {d.name} [{info.min}, {info.max}]")


def _promote_dtypes(op: str, d1: DType, d2: DType) -> DType:
    """The promoted dtype, or the TypeError of a pair with none (uint64 with a signed integer)
    naming the op."""
    try:
        return dtypes.promote(d1, d2)
    except TypeError as e:
        raise TypeError(f"{op}: {e}") from None


def _beyond_int64(s: Any, d: DType, like: Tensor) -> Any:
    """A Python scalar operand as it goes to a backend: as it is, but an int beyond int64 (a uint64
    value, 2**63 or more) as a 0-d tensor of `d`, or a float for a floating `d`: libraries read
    Python ints as int64 (JAX's jitted ops raise OverflowError for larger ones, torch's too)."""
    if type(s) is int and not -_INT64_MAX <= s <= _INT64_MAX:
        return float(s) if d.is_inexact else like._device.full((), s, dtype=d)
    return s


def _promote(op: str, x1: Any, x2: Any) -> tuple[Any, Any, DType]:
    """Two operands as tensors of one dtype (or a tensor and a weak Python scalar), and that dtype."""
    if isinstance(x1, Tensor):
        if isinstance(x2, Tensor):
            if x1._device is not x2._device:
                _same_device(op, (x1, x2))
            d1, d2 = x1._dtype, x2._dtype
            if d1 is d2:
                return x1, x2, d1
            d = _PROMOTE.get((d1, d2)) or _promote_dtypes(op, d1, d2)
            return (x1 if d1 is d else P.cast(x1, d)), (x2 if d2 is d else P.cast(x2, d)), d
        if isinstance(x2, _SCALARS):
            d = x1._dtype
            if type(x2) is float and d.is_floating:  # the common `x * 0.5`: a weak float keeps d
                return x1, x2, d
            d = dtypes.scalar_result_type(d, x2)
            _check_scalar_fits(op, d, x2)
            if type(x2) is int and not -_INT64_MAX <= x2 <= _INT64_MAX:
                x2 = _beyond_int64(x2, d, x1)
            return (x1 if d is x1._dtype else P.cast(x1, d)), x2, d
        return _promote(op, x1, _operand(x2, x1))
    if isinstance(x2, Tensor):
        if isinstance(x1, _SCALARS):
            d = x2._dtype
            if type(x1) is float and d.is_floating:
                return x1, x2, d
            d = dtypes.scalar_result_type(d, x1)
            _check_scalar_fits(op, d, x1)
            if type(x1) is int and not -_INT64_MAX <= x1 <= _INT64_MAX:
                x1 = _beyond_int64(x1, d, x2)
            return x1, (x2 if d is x2._dtype else P.cast(x2, d)), d
        return _promote(op, _operand(x1, x2), x2)
    raise TypeError(
        f"{op}: expected at least one Tensor operand, got {type(x1).__name__} and {type(x2).__name__}"
    )


def _operand(obj: Any, like: Tensor) -> Tensor:
    """A non-tensor operand as a tensor beside `like`. Python sequences are weak, as Python scalars
    are: they take `like`'s dtype when their kind fits (`x64 + [0.1]` is float64 and exact); NumPy
    arrays keep their own dtype."""
    if isinstance(obj, (list, tuple)):
        kind = np.asarray(obj).dtype.kind
        sample = {"b": True, "i": 0, "u": 0, "f": 0.0, "c": 0j}.get(kind)
        if sample is not None:
            return asarray(obj, dtype=dtypes.scalar_result_type(like._dtype, sample), device=like._device)
    return asarray(obj, device=like._device)


def _check_broadcast(op: str, a: Any, b: Any) -> tuple[int, ...]:
    """After a backend failed on `op`: raise the clear message when the shapes are the problem,
    else return the result's shape."""
    sa = a.shape if isinstance(a, Tensor) else ()
    sb = b.shape if isinstance(b, Tensor) else ()
    return _broadcast_shapes(op, sa, sb)


def _raise_out_of_memory(op: str, exc: Exception, dev: Device, shape: tuple[int, ...], d: DType) -> None:
    """After a backend failed on `op`, whose result has `shape` and `d`: raise OutOfMemoryError
    when the result cannot fit or the library ran out of memory. Checked after the call, not before,
    for the ops too small to pay for it (elementwise, matmul): libraries that run eagerly raise for
    an allocation they cannot make, and the JAX backend checks its asynchronous ops itself."""
    if (error := allocation_error(dev.ops, op, shape, d, exc)) is not None:
        raise error from exc


_COMPARISONS = frozenset({"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"})


# ====================================================================== elementwise
def _no_complex(op: str, d: DType) -> TypeError:
    """The error for an op the Array API does not define for complex numbers (ordering, rounding
    toward an integer, the real-only functions)."""
    return TypeError(
        f"{op}: not defined for complex tensors ({d.name}): the Array API defines it for real numbers "
        "only (complex numbers have no order); apply it to ag.real(x), ag.imag(x) or ag.abs(x)"
    )


def _arith(
    op: str, prim: Any, float_only: bool = False, no_bool: bool = False, check_scalar: Any = None,
    real_only: bool = False,
) -> Any:  # fmt: skip
    """The public binary op `op` on primitive `prim`; `check_scalar(x1, x2)` vets the operands before
    promotion when they are not two tensors of one dtype (the fast path never pays for it).
    `real_only`: complex operands are refused (ordering and the real-only functions)."""

    def fn(x1: Any, x2: Any, /) -> Tensor:
        # two tensors of one dtype on one device (the usual case) need no promotion: skip the call
        if (
            isinstance(x1, Tensor)
            and isinstance(x2, Tensor)
            and x1._dtype is x2._dtype
            and x1._device is x2._device
        ):
            a, b, d = x1, x2, x1._dtype
        else:
            if check_scalar is not None:
                check_scalar(x1, x2)
            a, b, d = _promote(op, x1, x2)
        if real_only and d.is_complex:
            raise _no_complex(op, d)
        if float_only and not d.is_inexact:
            f = dtypes.default_float
            a = P.cast(a, f) if isinstance(a, Tensor) else float(a)
            b = P.cast(b, f) if isinstance(b, Tensor) else float(b)
        elif no_bool and d is _BOOL:
            raise TypeError(f"{op}: not defined for bool tensors; cast with .astype(ag.int64) first")
        try:
            return prim(a, b)
        except Exception as exc:
            shape = _check_broadcast(op, a, b)
            t = a if isinstance(a, Tensor) else b
            _raise_out_of_memory(op, exc, t._device, shape, _BOOL if op in _COMPARISONS else t._dtype)
            raise

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op} with broadcasting and the agnostic promotion table."
    return fn


def _logical(op: str, prim: Any) -> Any:
    def fn(x1: Any, x2: Any, /) -> Tensor:
        a, b, d = _promote(op, x1, x2)
        if d is not dtypes.bool:
            a = P.ne(a, 0) if isinstance(a, Tensor) else builtins.bool(a)
            b = P.ne(b, 0) if isinstance(b, Tensor) else builtins.bool(b)
        try:
            return prim(a, b)
        except Exception as exc:
            shape = _check_broadcast(op, a, b)
            _raise_out_of_memory(op, exc, (a if isinstance(a, Tensor) else b)._device, shape, _BOOL)
            raise

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op} of truth values (non-bool inputs compare with zero)."
    return fn


def _bitwise(op: str, prim: Any, allow_bool: bool = True) -> Any:
    def fn(x1: Any, x2: Any, /) -> Tensor:
        a, b, d = _promote(op, x1, x2)
        if d.is_inexact or (d is dtypes.bool and not allow_bool):
            raise TypeError(f"{op}: needs integer{' or bool' if allow_bool else ''} tensors, got {d.name}")
        try:
            return prim(a, b)
        except Exception as exc:
            shape = _check_broadcast(op, a, b)
            _raise_out_of_memory(op, exc, (a if isinstance(a, Tensor) else b)._device, shape, d)
            raise

    fn.__name__ = fn.__qualname__ = op
    return fn


add = _arith("add", P.add)
subtract = _arith("subtract", P.sub, no_bool=True)
multiply = _arith("multiply", P.mul)
divide = _arith("divide", P.div, float_only=True)
floor_divide = _arith("floor_divide", P.floor_divide, no_bool=True, real_only=True)
remainder = _arith("remainder", P.remainder, no_bool=True, real_only=True)


def _no_negative_int_exponent(base: Any, exponent: Any) -> None:
    """pow's check of a Python exponent: integers to a negative power have no integer result. A
    Python exponent raises, as NumPy, torch and JAX all do; a tensor one, whose values only the
    device knows, gives the exact result truncated toward zero on every backend (1 for a base of
    1, -1 or 1 for -1, else 0)."""
    if isinstance(base, Tensor) and base._dtype.is_integer and type(exponent) is int and exponent < 0:
        raise ValueError(
            f"pow: an integer tensor ({base._dtype.name}) to the negative power {exponent} has no integer "
            f"result; use a float base (x.astype(ag.float32) ** {exponent}) or exponent "
            f"(x ** {float(exponent)})"
        )


pow = _arith("pow", P.pow, no_bool=True, check_scalar=_no_negative_int_exponent)
maximum = _arith("maximum", P.maximum, real_only=True)
minimum = _arith("minimum", P.minimum, real_only=True)
atan2 = _arith("atan2", P.atan2, float_only=True, real_only=True)
logaddexp = _arith("logaddexp", P.logaddexp, float_only=True, real_only=True)
hypot = _arith("hypot", P.hypot, float_only=True, real_only=True)
copysign = _arith("copysign", P.copysign, float_only=True, real_only=True)
nextafter = _arith("nextafter", P.nextafter, float_only=True, real_only=True)
equal = _arith("equal", P.eq)
not_equal = _arith("not_equal", P.ne)
less = _arith("less", P.lt, real_only=True)
less_equal = _arith("less_equal", P.le, real_only=True)
greater = _arith("greater", P.gt, real_only=True)
greater_equal = _arith("greater_equal", P.ge, real_only=True)
logical_and = _logical("logical_and", P.logical_and)
logical_or = _logical("logical_or", P.logical_or)
logical_xor = _logical("logical_xor", P.logical_xor)
bitwise_and = _bitwise("bitwise_and", P.bitwise_and)
bitwise_or = _bitwise("bitwise_or", P.bitwise_or)
bitwise_xor = _bitwise("bitwise_xor", P.bitwise_xor)
bitwise_left_shift = _bitwise("bitwise_left_shift", P.bitwise_left_shift, allow_bool=False)
bitwise_right_shift = _bitwise("bitwise_right_shift", P.bitwise_right_shift, allow_bool=False)


sub, mul, div, power = subtract, multiply, divide, pow


def _float_unary(op: str, prim: Any, real_only: bool = False) -> Any:
    def fn(x: Tensor, /) -> Tensor:
        if not isinstance(x, Tensor):
            raise _not_a_tensor(x, op)
        d = x._dtype
        if not d.is_floating:
            if not d.is_complex:
                x = P.cast(x, dtypes.default_float)
            elif real_only:
                raise _no_complex(op, d)
        return prim(x)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op}; integer and bool inputs compute in the default float dtype."
    return fn


def _numeric_unary(op: str, prim: Any, int_identity: bool = False, real_only: bool = False) -> Any:
    def fn(x: Tensor, /) -> Tensor:
        if not isinstance(x, Tensor):
            raise _not_a_tensor(x, op)
        d = x._dtype
        if not d.is_floating:
            if d is _BOOL:
                raise TypeError(f"{op}: not defined for bool tensors; cast with .astype(...) first")
            if d.is_complex:
                if real_only:
                    raise _no_complex(op, d)
            elif int_identity:
                return x
        return prim(x)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op}; keeps the input dtype."
    return fn


def _predicate(op: str, prim: Any, int_value: bool) -> Any:
    def fn(x: Tensor, /) -> Tensor:
        x = _tensor(x, op)
        if not x._dtype.is_inexact:
            return x._device.full(x.shape, int_value, dtype=dtypes.bool)
        return prim(x)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op} -> bool."
    return fn


negative = _numeric_unary("negative", P.neg)
abs = _numeric_unary("abs", P.abs)
sign = _numeric_unary("sign", P.sign)
square = _numeric_unary("square", P.square)
floor = _numeric_unary("floor", P.floor, int_identity=True, real_only=True)
ceil = _numeric_unary("ceil", P.ceil, int_identity=True, real_only=True)
round = _numeric_unary("round", P.round, int_identity=True)
trunc = _numeric_unary("trunc", P.trunc, int_identity=True, real_only=True)
exp = _float_unary("exp", P.exp)
expm1 = _float_unary("expm1", P.expm1)
log = _float_unary("log", P.log)
log1p = _float_unary("log1p", P.log1p)
log2 = _float_unary("log2", P.log2)
log10 = _float_unary("log10", P.log10)
sqrt = _float_unary("sqrt", P.sqrt)
rsqrt = _float_unary("rsqrt", P.rsqrt, real_only=True)
reciprocal = _float_unary("reciprocal", P.reciprocal)
sin = _float_unary("sin", P.sin)
cos = _float_unary("cos", P.cos)
tan = _float_unary("tan", P.tan)
asin = _float_unary("asin", P.asin)
acos = _float_unary("acos", P.acos)
atan = _float_unary("atan", P.atan)
sinh = _float_unary("sinh", P.sinh)
cosh = _float_unary("cosh", P.cosh)
tanh = _float_unary("tanh", P.tanh)
asinh = _float_unary("asinh", P.asinh)
acosh = _float_unary("acosh", P.acosh)
atanh = _float_unary("atanh", P.atanh)
sigmoid = _float_unary("sigmoid", P.sigmoid, real_only=True)
erf = _float_unary("erf", P.erf, real_only=True)
isnan = _predicate("isnan", P.isnan, False)
isinf = _predicate("isinf", P.isinf, False)
isfinite = _predicate("isfinite", P.isfinite, True)
neg = negative


def positive(x: Tensor, /) -> Tensor:
    """+x: the same values."""
    return _tensor(x, "positive")


def signbit(x: Tensor, /) -> Tensor:
    """Whether the sign bit is set (True for -0.0 and negative numbers) -> bool."""
    x = _tensor(x, "signbit")
    if x._dtype.is_complex:
        raise _no_complex("signbit", x._dtype)
    if not x._dtype.is_floating:
        return P.lt(x, 0) if x._dtype.kind == "i" else x._device.full(x.shape, False, dtype=dtypes.bool)
    return P.signbit(x)


def logical_not(x: Tensor, /) -> Tensor:
    """Elementwise not (non-bool inputs compare with zero)."""
    x = _tensor(x, "logical_not")
    return P.logical_not(x if x._dtype is dtypes.bool else P.ne(x, 0))


def bitwise_invert(x: Tensor, /) -> Tensor:
    """Elementwise ~x for integer and bool tensors."""
    x = _tensor(x, "bitwise_invert")
    if x._dtype.is_inexact:
        raise TypeError(f"bitwise_invert: needs an integer or bool tensor, got {x._dtype.name}")
    return P.bitwise_invert(x)


def where(condition: Tensor, x1: Any, x2: Any, /) -> Tensor:
    """Elementwise `x1 if condition else x2`, with broadcasting and promotion of x1 and x2."""
    condition = _tensor(condition, "where")
    if condition._dtype is not dtypes.bool:
        condition = P.ne(condition, 0)
    if not isinstance(x1, Tensor) and not isinstance(x2, Tensor):
        x1 = asarray(x1, device=condition._device)
    a, b, _ = _promote("where", x1, x2)
    _same_device("where", [condition] + [t for t in (a, b) if isinstance(t, Tensor)])
    try:
        return P.where(condition, a, b)
    except Exception as exc:
        tensors = [t for t in (a, b) if isinstance(t, Tensor)]
        shape = _broadcast_shapes("where", condition.shape, *(t.shape for t in tensors))
        _raise_out_of_memory("where", exc, condition._device, shape, tensors[0]._dtype)
        raise


def isclose(
    x1: Any, x2: Any, /, *, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    """Elementwise |x1 - x2| <= atol + rtol * |x2| -> bool (numpy.isclose, torch.isclose; not
    symmetric: x2 is the reference). Equal values are close, infinities of one sign included; an
    infinity is close to nothing else, however large the tolerance; NaN is close to NaN only with
    `equal_nan`. Integers and bools compare in float64, as NumPy does. No gradient flows."""
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, builtins.bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise ValueError(f"isclose: {name} must be a number >= 0, got {tol!r}")
    if not isinstance(x1, Tensor) and not isinstance(x2, Tensor):
        raise _not_a_tensor(x1, "isclose")
    a, b, d = _promote("isclose", *(t.detach() if isinstance(t, Tensor) else t for t in (x1, x2)))
    a, b = (asarray(t, device=(a if isinstance(a, Tensor) else b)._device) for t in (a, b))
    _same_device("isclose", (a, b))
    _broadcast_shapes("isclose", a.shape, b.shape)
    if not d.is_inexact:
        a, b = P.cast(a, dtypes.float64), P.cast(b, dtypes.float64)
    finite = isfinite(a) & isfinite(b)
    close = equal(a, b) | isnan(a) & isnan(b) if equal_nan else equal(a, b)
    a, b = where(finite, a, 0), where(finite, b, 0)  # no inf - inf (NumPy would warn of it)
    return close | finite & (abs(a - b) <= atol + rtol * abs(b))


def allclose(
    x1: Any, x2: Any, /, *, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    """Whether `isclose(x1, x2)` holds everywhere (numpy.allclose, torch.allclose): a Python bool,
    so it reads the values (not inside `ag.compile`)."""
    return builtins.bool(all(isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan)))


def clip(x: Tensor, /, min: Any = None, max: Any = None) -> Tensor:
    """`x` limited to [min, max]; either bound may be None, a scalar or a tensor."""
    x = _tensor(x, "clip")
    if x._dtype.is_complex:
        raise _no_complex("clip", x._dtype)
    if min is None and max is None:
        return x
    lo, hi = min, max
    d = x._dtype
    for bound in (lo, hi):
        if isinstance(bound, Tensor):
            _same_device("clip", (x, bound))
            d = _promote_dtypes("clip", d, bound._dtype)
        elif bound is not None:
            d = dtypes.scalar_result_type(d, bound)
            _check_scalar_fits("clip", d, bound)
    x = P.cast(x, d)
    lo = P.cast(lo, d) if isinstance(lo, Tensor) else _beyond_int64(lo, d, x)
    hi = P.cast(hi, d) if isinstance(hi, Tensor) else _beyond_int64(hi, d, x)
    return P.clip(x, lo, hi)


clamp = clip


# ====================================================================== reductions
def _accumulator(d: DType) -> DType:
    """The dtype sums and products of bool or integer dtype `d` accumulate in without `dtype=`:
    uint64 for unsigned ones, int64 for the others (the Array API's default integer dtypes)."""
    return dtypes.uint64 if d.kind == "u" else dtypes.int64


def _reduce(op: str, prim: Any, accumulate_ints: bool = False, float_only: bool = False,
            bool_only: bool = False, real_only: bool = False) -> Any:  # fmt: skip
    autocasts = op in _AUTOCAST_POLICY  # sum, prod, mean: float32 under autocast

    def fn(x: Tensor, /, *, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Tensor:
        x = _tensor(x, op)
        if autocasts and dtype is None and _autocast_on.get() is not None:
            (x,) = _autocast(op, x)
        axes = _axes(axis, x.ndim, op, x.shape)
        if real_only and x._dtype.is_complex:
            raise _no_complex(op, x._dtype)
        if dtype is not None:
            x = astype(x, dtype)
        elif bool_only:
            if x._dtype is not dtypes.bool:
                x = P.ne(x, 0)
        elif float_only and not x._dtype.is_inexact:
            x = P.cast(x, dtypes.default_float)
        elif accumulate_ints and x._dtype.kind in "biu" and x._dtype is not _accumulator(x._dtype):
            x = P.cast(x, _accumulator(x._dtype))
        if prim in (P.max, P.min) and builtins.any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{op}: reduction over an empty axis of shape {x.shape} has no identity")
        return prim(x, axes, keepdims)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"{op} over `axis` (None: all; an int or a tuple), optionally keeping reduced axes."
    return fn


def _extremum_trap(op: str) -> str:
    return (
        f"{op}: torch.{op}(x, dim) returns (values, indices) and torch.{op}(x, y) is elementwise; "
        f"ag.{op} returns the values alone (Array API). Write ag.{op}(x, axis=d) (or ag.a{op}(x, dim=d)) "
        f"for the values, ag.{op}imum(x, y) elementwise, or x.{op}(d) for torch's (values, indices)"
    )


sum = _accepts_dim()(_reduce("sum", P.sum, accumulate_ints=True))
prod = _accepts_dim()(_reduce("prod", P.prod, accumulate_ints=True))
mean = _accepts_dim()(_reduce("mean", P.mean, float_only=True))
max = _accepts_dim(refuse=_extremum_trap("max"))(_reduce("max", P.max, real_only=True))
min = _accepts_dim(refuse=_extremum_trap("min"))(_reduce("min", P.min, real_only=True))
amax = _accepts_dim()(_reduce("amax", P.max, real_only=True))
amin = _accepts_dim()(_reduce("amin", P.min, real_only=True))
any = _accepts_dim()(_reduce("any", P.any, bool_only=True))
all = _accepts_dim()(_reduce("all", P.all, bool_only=True))


@_accepts_dim()
def logsumexp(x: Tensor, /, *, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, computed stably."""
    x = _tensor(x, "logsumexp")
    if _autocast_on.get() is not None:
        (x,) = _autocast("logsumexp", x)
    axes = _axes(axis, x.ndim, "logsumexp", x.shape)
    if x._dtype.is_complex:
        raise _no_complex("logsumexp", x._dtype)
    if not x._dtype.is_floating:
        x = P.cast(x, dtypes.default_float)
    return P.logsumexp(x, axes, keepdims)


def _moment(op: str, prim: Any) -> Any:
    def fn(x: Tensor, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False) -> Tensor:
        x = _tensor(x, op)
        if _autocast_on.get() is not None:
            (x,) = _autocast(op, x)
        axes = _axes(axis, x.ndim, op, x.shape)
        if x._dtype.is_complex:
            raise _no_complex(op, x._dtype)
        if not x._dtype.is_floating:
            x = P.cast(x, dtypes.default_float)
        return prim(x, axes, float(correction), keepdims)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"{op} over `axis`, dividing by N - correction (correction=1 for the unbiased estimate)."
    return fn


def _correction_trap(op: str) -> str:
    return (
        f"{op}: torch's default correction is 1 (dividing by N - 1), agnostic's is 0 (Array API, NumPy's "
        f"ddof=0); with dim= or a positional dim give it explicitly: ag.{op}(x, axis=d, correction=1) "
        f"for torch's default, correction=0 for NumPy's"
    )


var = _accepts_dim(refuse=_correction_trap("var"), unless="correction")(_moment("var", P.var))
std = _accepts_dim(refuse=_correction_trap("std"), unless="correction")(_moment("std", P.std))


def _arg_extremum(op: str, prim: Any) -> Any:
    def fn(x: Tensor, /, *, axis: int | None = None, keepdims: bool = False) -> Tensor:
        x = _tensor(x, op)
        if x._dtype.is_complex:
            raise _no_complex(op, x._dtype)
        if x.size == 0:
            raise ValueError(f"{op}: empty tensor of shape {x.shape} has no {op[3:]}imum")
        if x._dtype is dtypes.bool:
            x = P.cast(x, dtypes.uint8)
        if axis is None:
            out = prim(P.reshape(x, (x.size,)), 0, False)
            return P.reshape(out, (1,) * x.ndim) if keepdims else out
        return prim(x, _axis(axis, x.ndim, op, x.shape), keepdims)

    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"int64 index of the first {op[3:]}imum along `axis` (None: of the flattened tensor)."
    return fn


argmax = _accepts_dim()(_arg_extremum("argmax", P.argmax))
argmin = _accepts_dim()(_arg_extremum("argmin", P.argmin))


def _cumulative(op: str, prim: Any) -> Any:
    def fn(
        x: Tensor, /, *, axis: int | None = None, dtype: Any = None, include_initial: bool = False
    ) -> Tensor:
        x = _tensor(x, op)
        if dtype is None and _autocast_on.get() is not None:
            (x,) = _autocast(op, x)
        if axis is None:
            if x.ndim > 1:
                raise ValueError(f"{op}: axis is required for tensors of more than one dimension")
            x = P.reshape(x, (x.size,))
            axis = 0
        ax = _axis(axis, x.ndim, op, x.shape)
        if dtype is not None:
            x = astype(x, dtype)
        elif x._dtype.kind in "biu" and x._dtype is not _accumulator(x._dtype):
            x = P.cast(x, _accumulator(x._dtype))
        out = prim(x, ax)
        if include_initial:
            shape = list(x.shape)
            shape[ax] = 1
            first = x._device.full(tuple(shape), 0 if op == "cumulative_sum" else 1, dtype=x._dtype)
            out = P.concat([first, out], ax)
        return out

    fn.__name__ = fn.__qualname__ = op
    return fn


cumulative_sum = _accepts_dim()(_cumulative("cumulative_sum", P.cumsum))
cumulative_prod = _accepts_dim()(_cumulative("cumulative_prod", P.cumprod))


@_accepts_dim()
def count_nonzero(x: Tensor, /, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """The number of non-zero elements (True for bool; a non-zero real or imaginary part for
    complex) over `axis` (None: all), as int64 (2024.12)."""
    x = _tensor(x, "count_nonzero")
    mask = x if x._dtype is _BOOL else P.ne(x, 0)
    return sum(mask, axis=axis, keepdims=keepdims, dtype=dtypes.int64)


@_accepts_dim()
def diff(x: Tensor, /, *, axis: int = -1, n: int = 1, prepend: Any = None, append: Any = None) -> Tensor:
    """The n-th forward difference `x[i+1] - x[i]` along `axis` (2024.12, NumPy's diff), after
    `prepend` / `append` are joined to x along it (tensors of x's shape but on that axis, or
    scalars, taken as length 1). Bool tensors give `x[i+1] != x[i]`, as in NumPy."""
    x = _tensor(x, "diff")
    if x.ndim == 0:
        raise ValueError("diff: needs a tensor of at least 1 dimension, got a 0-d tensor")
    ax = _axis(axis, x.ndim, "diff", x.shape)
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"diff: the order n must be non-negative, got {n}")
    parts = [_diff_edge(prepend, x, ax, "prepend")] if prepend is not None else []
    parts.append(x)
    parts += [_diff_edge(append, x, ax, "append")] if append is not None else []
    out = concat(parts, axis=ax) if len(parts) > 1 else x
    head = (slice(None),) * ax
    for _ in range(n):
        if out.shape[ax] == 0:
            break
        hi, lo = getitem(out, head + (slice(1, None),)), getitem(out, head + (slice(None, -1),))
        out = not_equal(hi, lo) if out._dtype is _BOOL else subtract(hi, lo)
    return out


def _diff_edge(value: Any, x: Tensor, ax: int, name: str) -> Tensor:
    """diff's prepend/append as a tensor beside x: a scalar fills a length-1 slice."""
    if isinstance(value, _SCALARS):
        d = dtypes.scalar_result_type(x._dtype, value)
        return full(x.shape[:ax] + (1,) + x.shape[ax + 1 :], value, dtype=d, device=x._device)
    value = value if isinstance(value, Tensor) else _operand(value, x)
    _same_device("diff", (x, value))
    if value.ndim != x.ndim or value.shape[:ax] + value.shape[ax + 1 :] != x.shape[:ax] + x.shape[ax + 1 :]:
        raise ValueError(
            f"diff: {name} has shape {value.shape}; it must match x's shape {x.shape} except along axis {ax}"
        )
    return value


@_accepts_dim()
def cumsum(x: Tensor, /, axis: int | None = None, *, dtype: Any = None) -> Tensor:
    """Inclusive cumulative sum along `axis` (NumPy/torch name; None flattens first)."""
    x = _tensor(x, "cumsum")
    if axis is None:
        x, axis = P.reshape(x, (x.size,)), 0
    return cumulative_sum(x, axis=axis, dtype=dtype)


@_accepts_dim()
def cumprod(x: Tensor, /, axis: int | None = None, *, dtype: Any = None) -> Tensor:
    """Inclusive cumulative product along `axis` (None flattens first)."""
    x = _tensor(x, "cumprod")
    if axis is None:
        x, axis = P.reshape(x, (x.size,)), 0
    return cumulative_prod(x, axis=axis, dtype=dtype)


# ====================================================================== linear algebra
def matmul(x1: Tensor, x2: Tensor, /) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands are vectors, batch dimensions broadcast."""
    if _autocast_on.get() is not None:
        x1, x2 = _autocast("matmul", x1, x2)
    if (
        isinstance(x1, Tensor)
        and isinstance(x2, Tensor)
        and x1._dtype is x2._dtype
        and x1._device is x2._device
    ):
        a, b, d = x1, x2, x1._dtype
    else:
        if isinstance(x1, _SCALARS) or isinstance(x2, _SCALARS):
            raise TypeError("matmul: operands must be tensors, not scalars; use * for scaling")
        a, b, d = _promote("matmul", x1, x2)
    if d is _BOOL:
        _check_matmul(a, b, d)  # raises: a backend may multiply bools, agnostic does not
    # shapes are checked only when the backend fails (as for elementwise broadcasting): reading
    # them first would cost more than the product of two small matrices
    try:
        return P.matmul(a, b)
    except Exception as exc:
        _raise_out_of_memory("matmul", exc, a._device, _check_matmul(a, b, d), d)
        raise


def _check_matmul(a: Tensor, b: Tensor, d: DType) -> tuple[int, ...]:
    """Raise the clear message for operands matmul does not accept, else return the result's shape."""
    sa, sb = a.shape, b.shape
    na, nb = len(sa), len(sb)
    if na == 0 or nb == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {sa} and {sb}")
    if d is _BOOL:
        raise TypeError("matmul: not defined for bool tensors")
    ka = sa[-1]
    kb = sb[-2] if nb > 1 else sb[0]
    if ka != kb:
        raise ValueError(f"matmul: shapes {sa} and {sb}: inner dimensions {ka} and {kb} differ")
    batch = _broadcast_shapes("matmul (batch dimensions)", sa[:-2], sb[:-2]) if na > 2 or nb > 2 else ()
    return batch + sa[-2:-1] + sb[-1:] if nb > 1 else batch + sa[-2:-1]


def matrix_transpose(x: Tensor, /) -> Tensor:
    """Swap the last two axes."""
    return _tensor(x, "matrix_transpose").mT


def tensordot(x1: Tensor, x2: Tensor, /, *, axes: int | tuple[Sequence[int], Sequence[int]] = 2) -> Tensor:
    """Sum products over the given axes of x1 and x2 (Array API tensordot)."""
    if _autocast_on.get() is not None:
        x1, x2 = _autocast("tensordot", x1, x2)
    a, b, _ = _promote("tensordot", x1, x2)
    if isinstance(axes, int):
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative, got {axes}")
        ax_a = tuple(range(a.ndim - axes, a.ndim))
        ax_b = tuple(range(axes))
    else:
        ax_a = tuple(_axis(i, a.ndim, "tensordot") for i in axes[0])
        ax_b = tuple(_axis(i, b.ndim, "tensordot") for i in axes[1])
    if len(ax_a) != len(ax_b) or builtins.any(a.shape[i] != b.shape[j] for i, j in zip(ax_a, ax_b)):
        raise ValueError(
            f"tensordot: contracted dimensions differ: {[a.shape[i] for i in ax_a]} of {a.shape} and "
            f"{[b.shape[j] for j in ax_b]} of {b.shape}"
        )
    free_a = tuple(i for i in range(a.ndim) if i not in ax_a)
    free_b = tuple(i for i in range(b.ndim) if i not in ax_b)
    k = math.prod(a.shape[i] for i in ax_a)
    am = P.reshape(P.permute(a, free_a + ax_a), (math.prod(a.shape[i] for i in free_a), k))
    bm = P.reshape(P.permute(b, ax_b + free_b), (k, math.prod(b.shape[i] for i in free_b)))
    out_shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b)
    return P.reshape(P.matmul(am, bm), out_shape)


@_accepts_dim()
def vecdot(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """Dot product of the vectors along `axis`, conj(x1) . x2, the other axes broadcast. The result
    keeps the promoted dtype (uint8 vectors give uint8). `axis` counts from the end (the standard's
    [-min(x1.ndim, x2.ndim), -1]; a non-negative one is accepted when both have as many dimensions);
    the contracted axes must have one size: they do not broadcast."""
    if _autocast_on.get() is not None:
        x1, x2 = _autocast("vecdot", x1, x2)
    a, b, d = _promote("vecdot", x1, x2)
    if d is _BOOL:
        raise TypeError("vecdot: not defined for bool tensors; cast with .astype(...) first")
    n = builtins.min(a.ndim, b.ndim)
    ax = operator.index(axis)
    if ax >= 0 and a.ndim == b.ndim:
        ax -= n
    if not -n <= ax <= -1:
        raise AxisError(
            f"vecdot: axis {axis} is out of range for shapes {a.shape} and {b.shape}: it counts from "
            f"the last axis, within the fewer dimensions (-{n} to -1)"
        )
    if a.shape[ax] != b.shape[ax]:
        raise ValueError(
            f"vecdot: shapes {a.shape} and {b.shape}: the contracted axis {axis} has sizes "
            f"{a.shape[ax]} and {b.shape[ax]}, which must be equal (it does not broadcast)"
        )
    if d.is_complex:
        a = P.conj(a)
    prod_ = multiply(a, b)
    return P.sum(prod_, (prod_.ndim + ax,), False)


def outer(x1: Tensor, x2: Tensor, /) -> Tensor:
    """Outer product of two 1-D tensors."""
    a, b, _ = _promote("outer", x1, x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"outer: needs 1-D tensors, got shapes {a.shape} and {b.shape}")
    return multiply(P.expand_dims(a, (1,)), b)


# ====================================================================== shape
def reshape(x: Tensor, /, shape: Sequence[int] | int, *more: int, copy: bool | None = None) -> Tensor:
    """`x` with a new shape of the same size; one dimension may be -1 (inferred)."""
    x = _tensor(x, "reshape")
    if more:
        shape = (shape,) + more
    elif isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(_size(s) for s in shape)
    size = math.prod(x.shape)  # a plain int: x.size builds a callable ElementCount
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise ValueError(
                f"reshape: cannot reshape tensor of shape {x.shape} ({size} elements) into {shape}"
            )
        shape = tuple(size // known if s == -1 else s for s in shape)
    if builtins.any(s < 0 for s in shape) or math.prod(shape) != size:
        raise ValueError(f"reshape: cannot reshape tensor of shape {x.shape} ({size} elements) into {shape}")
    if shape == x.shape:
        return x
    return P.reshape(x, shape)


def permute_dims(x: Tensor, /, axes: Sequence[int]) -> Tensor:
    """`x` with its axes reordered (Array API permute_dims; torch's permute)."""
    x = _tensor(x, "permute_dims")
    if len(axes) != x.ndim:
        raise ValueError(f"permute_dims: axes {tuple(axes)} do not match a tensor of {x.ndim} dimensions")
    norm = tuple(_axis(a, x.ndim, "permute_dims", x.shape) for a in axes)
    if sorted(norm) != list(range(x.ndim)):
        raise ValueError(f"permute_dims: axes {tuple(axes)} are not a permutation of {x.ndim} dimensions")
    if norm == tuple(range(x.ndim)):
        return x
    return P.permute(x, norm)


def permute(x: Tensor, /, *axes: Any) -> Tensor:
    """torch-style permute: `x.permute(1, 0)` or `x.permute((1, 0))`."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return permute_dims(x, axes)


def transpose(x: Tensor, /, axis0: int | None = None, axis1: int | None = None) -> Tensor:
    """`x` with two axes swapped (torch's transpose). Without axes, a matrix transposed and a 0-D
    or 1-D tensor as it is; for more dimensions, where NumPy reverses every axis and torch needs two,
    the call raises."""
    x = _tensor(x, "transpose")
    if axis0 is None and axis1 is None:
        if x.ndim > 2:
            raise ValueError(
                f"transpose: which axes? NumPy's transpose() reverses all {x.ndim} axes, torch's needs two; "
                "write ag.transpose(x, a, b) to swap two, ag.matrix_transpose(x) (x.mT) for the last two, "
                "or ag.permute_dims(x, axes) for any order"
            )
        if x.ndim < 2:
            return x
        axis0, axis1 = 0, 1
    elif axis0 is None or axis1 is None:
        raise TypeError("transpose: give both axes to swap, or neither")
    order = list(range(x.ndim))
    a0, a1 = _axis(axis0, x.ndim, "transpose", x.shape), _axis(axis1, x.ndim, "transpose", x.shape)
    order[a0], order[a1] = order[a1], order[a0]
    return permute_dims(x, order)


def moveaxis(x: Tensor, source: int | Sequence[int], destination: int | Sequence[int], /) -> Tensor:
    """Move axes of `x` to new positions, keeping the others in order."""
    x = _tensor(x, "moveaxis")
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of axes")
    src = [_axis(a, x.ndim, "moveaxis", x.shape) for a in src]
    dst = [_axis(a, x.ndim, "moveaxis", x.shape) for a in dst]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute_dims(x, order)


def broadcast_to(x: Tensor, /, shape: Sequence[int]) -> Tensor:
    """`x` broadcast to `shape`."""
    x = _tensor(x, "broadcast_to")
    shape = tuple(_size(s) for s in shape)
    if len(shape) < x.ndim or _broadcast_shapes("broadcast_to", x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    if shape == x.shape:
        return x
    # NumPy and torch would make a view, XLA the whole array: one rule, the tensor's own size
    return x._device._allocate("broadcast_to", shape, x._dtype, lambda: P.broadcast_to(x, shape))


def broadcast_arrays(*arrays: Tensor) -> list[Tensor]:
    """The tensors broadcast to their common shape."""
    shape = _broadcast_shapes("broadcast_arrays", *(_tensor(a, "broadcast_arrays").shape for a in arrays))
    return [broadcast_to(a, shape) for a in arrays]


@_accepts_dim()
def squeeze(x: Tensor, /, axis: int | Sequence[int] | None = None) -> Tensor:
    """`x` without the given size-1 axes (all size-1 axes when None)."""
    x = _tensor(x, "squeeze")
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = _axes(axis, x.ndim, "squeeze", x.shape)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ValueError(f"squeeze: axis {bad[0]} has size {x.shape[bad[0]]}, not 1 (shape {x.shape})")
    return P.squeeze(x, axes) if axes else x


@_accepts_dim()
def expand_dims(x: Tensor, /, axis: int | Sequence[int] = 0) -> Tensor:
    """`x` with new size-1 axes at `axis` (positions in the result)."""
    x = _tensor(x, "expand_dims")
    n = x.ndim + (1 if isinstance(axis, int) else len(axis))
    try:
        axes = _axes(axis, n, "expand_dims")
    except AxisError:
        raise AxisError(
            f"expand_dims: axis {axis} is out of range for a tensor of shape {x.shape}: the new "
            f"axes are positions in the result, of {n} dimensions (-{n} to {n - 1})"
        ) from None
    return P.expand_dims(x, axes)


def unsqueeze(x: Tensor, /, dim: int) -> Tensor:
    """torch name for expand_dims with one axis."""
    return expand_dims(x, axis=dim)


def flatten(x: Tensor, /, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one (torch's flatten)."""
    x = _tensor(x, "flatten")
    if x.ndim == 0:
        return reshape(x, (1,))
    s = _axis(start_dim, x.ndim, "flatten", x.shape)
    e = _axis(end_dim, x.ndim, "flatten", x.shape)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape
    return reshape(x, shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :])


def _join_inputs(op: str, arrays: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(arrays, Tensor) or not len(arrays):
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    ts = [_tensor(a, op) for a in arrays]
    _same_device(op, ts)
    d = ts[0]._dtype
    for t in ts[1:]:
        d = _promote_dtypes(op, d, t._dtype)
    return [P.cast(t, d) for t in ts]


@_accepts_dim()
def concat(arrays: Sequence[Tensor], /, *, axis: int | None = 0) -> Tensor:
    """Join tensors along an existing axis (None: flatten them first)."""
    ts = _join_inputs("concat", arrays)
    if axis is None:
        ts = [P.reshape(t, (t.size,)) for t in ts]
        axis = 0
    if ts[0].ndim == 0:
        raise ValueError("concat: zero-dimensional tensors cannot be concatenated; use stack")
    ax = _axis(axis, ts[0].ndim, "concat", ts[0].shape)
    for t in ts[1:]:
        if t.ndim != ts[0].ndim or builtins.any(
            s != s0 for i, (s, s0) in enumerate(zip(t.shape, ts[0].shape)) if i != ax
        ):
            raise ValueError(
                f"concat: shapes {ts[0].shape} and {t.shape} differ outside the concatenation axis {ax}"
            )
    return P.concat(ts, ax) if len(ts) > 1 else ts[0]


@_accepts_dim()
def stack(arrays: Sequence[Tensor], /, *, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    ts = _join_inputs("stack", arrays)
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: all tensors need one shape, got {ts[0].shape} and {t.shape}")
    return P.stack(ts, _axis(axis, ts[0].ndim + 1, "stack"))


@_accepts_dim()
def split(
    x: Tensor,
    indices_or_sections: int | Sequence[int] | None = None,
    /,
    axis: int = 0,
    *,
    sections: int | None = None,
    indices: Sequence[int] | None = None,
    split_size_or_sections: int | Sequence[int] | None = None,
) -> list[Tensor]:
    """Pieces of `x` along `axis`, by one of: `sections=k` (k equal pieces, NumPy), `indices=[i, j]`
    (cut before i and j, NumPy), `split_size_or_sections=s` (torch: pieces of size s, the last one
    shorter, or a list of piece sizes). The positional form is NumPy's, which torch reads differently:
    an int raises (sections or a piece size?) and a list warns (cut indices or sizes?)."""
    x = _tensor(x, "split")
    given = {
        k: v
        for k, v in (
            ("indices_or_sections", indices_or_sections),
            ("sections", sections),
            ("indices", indices),
            ("split_size_or_sections", split_size_or_sections),
        )
        if v is not None
    }
    if len(given) != 1:
        raise TypeError(
            "split: give exactly one of sections= (NumPy: that many equal pieces), indices= (NumPy: cut "
            f"points) or split_size_or_sections= (torch: piece size or sizes), got {sorted(given) or 'none'}"
        )
    ((how, arg),) = given.items()
    ax = _axis(axis, x.ndim, "split", x.shape)
    n = x.shape[ax]
    if how == "indices_or_sections":
        if isinstance(arg, (int, np.integer)):
            raise ValueError(
                f"split: an int is ambiguous: NumPy reads {int(arg)} as the number of equal sections, torch "
                f"as the size of each piece; write ag.split(x, sections={int(arg)}, axis={axis}) for NumPy's "
                f"meaning or ag.split(x, split_size_or_sections={int(arg)}, axis={axis}) "
                f"(x.split({int(arg)}, dim={axis})) for torch's"
            )
        warnings.warn(
            f"split: a list is ambiguous: NumPy reads {list(arg)} as cut indices, torch as piece sizes; "
            f"agnostic cuts at the indices (NumPy); write indices={list(arg)} to say so, or "
            f"split_size_or_sections={list(arg)} for torch's sizes",
            AmbiguityWarning,
            stacklevel=3,
        )
        how = "indices"
    if how == "sections":
        k = operator.index(arg)
        if k <= 0 or n % k:
            raise ValueError(f"split: axis {ax} of length {n} cannot be split into {k} equal sections")
        bounds = [i * (n // k) for i in range(k + 1)]
    elif how == "indices":
        bounds = [0] + [operator.index(i) for i in arg] + [n]
    else:
        bounds = _piece_bounds(arg, n, ax)
    head = (slice(None),) * ax
    return [getitem(x, head + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _piece_bounds(size_or_sizes: int | Sequence[int], n: int, ax: int) -> list[int]:
    """Cut points for torch's split: pieces of one size (the last shorter) or of the given sizes."""
    if isinstance(size_or_sizes, (int, np.integer)):
        s = int(size_or_sizes)
        if s <= 0:
            raise ValueError(f"split: piece size must be positive, got {s}")
        return [0, 0] if n == 0 else list(range(0, n, s)) + [n]
    sizes = [operator.index(s) for s in size_or_sizes]
    if builtins.any(s < 0 for s in sizes) or builtins.sum(sizes) != n:
        raise ValueError(f"split: piece sizes {sizes} must be non-negative and sum to axis {ax}'s length {n}")
    return [0] + list(itertools.accumulate(sizes))


@_accepts_dim()
def chunk(x: Tensor, chunks: int, /, axis: int = 0) -> list[Tensor]:
    """torch.chunk: at most `chunks` pieces of ceil(n / chunks) along `axis`, the last one shorter
    (fewer pieces when that size covers the axis sooner)."""
    x = _tensor(x, "chunk")
    k = operator.index(chunks)
    if k <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {k}")
    ax = _axis(axis, x.ndim, "chunk", x.shape)
    n = x.shape[ax]
    if n == 0:
        return [x] * k
    return split(x, split_size_or_sections=-(-n // k), axis=ax)


@_accepts_dim()
def unstack(x: Tensor, /, *, axis: int = 0) -> tuple[Tensor, ...]:
    """The slices of `x` along `axis`."""
    x = _tensor(x, "unstack")
    ax = _axis(axis, x.ndim, "unstack", x.shape)
    return tuple(P.getitem(x, (slice(None),) * ax + (i,)) for i in range(x.shape[ax]))


@_accepts_dim()
def flip(x: Tensor, /, *, axis: int | Sequence[int] | None = None) -> Tensor:
    """`x` reversed along `axis` (all axes when None)."""
    x = _tensor(x, "flip")
    axes = _axes(axis, x.ndim, "flip", x.shape)
    return P.flip(x, axes) if axes else x


@_accepts_dim()
def roll(x: Tensor, /, shift: int | Sequence[int], *, axis: int | Sequence[int] | None = None) -> Tensor:
    """Elements shifted cyclically along `axis` (None: of the flattened tensor)."""
    x = _tensor(x, "roll")
    if axis is None:
        return reshape(roll(reshape(x, (x.size,)), shift, axis=0), x.shape)
    shifts = [shift] if isinstance(shift, int) else list(shift)
    axes = [axis] if isinstance(axis, int) else list(axis)
    if len(shifts) != len(axes):
        raise ValueError("roll: shift and axis must have the same length")
    for s, a in zip(shifts, axes):
        ax = _axis(a, x.ndim, "roll", x.shape)
        n = x.shape[ax]
        if n == 0:
            continue
        s %= n
        if s:
            head = (slice(None),) * ax
            x = P.concat(
                [P.getitem(x, head + (slice(n - s, n),)), P.getitem(x, head + (slice(0, n - s),))], ax
            )
    return x


def pad(
    x: Tensor, widths: Any = None, /, mode: str = "constant", value: float = 0.0, *, pad_width: Any = None
) -> Tensor:
    """Pad with NumPy's `pad_width` ((before, after) per axis, or one pair / int for all axes);
    mode 'constant' (with value), 'reflect' or 'edge'. A flat pair given positionally to a tensor of
    more than one dimension raises: torch's F.pad reads it as the last axis's padding alone; say
    `pad_width=` for NumPy's meaning."""
    x = _tensor(x, "pad")
    if (widths is None) == (pad_width is None):
        raise TypeError("pad: give the widths once, positionally or as pad_width=")
    if pad_width is None:
        pad_width = widths
        _check_pad_reading(x, widths)
    if mode not in ("constant", "reflect", "edge"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect' or 'edge', got {mode!r}")
    widths = (
        np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2)) if x.ndim else np.zeros((0, 2))
    )
    if (widths < 0).any():
        raise ValueError(f"pad: widths must be non-negative, got {pad_width}")
    pairs = tuple((int(lo), int(hi)) for lo, hi in widths)
    for ax, ((lo, hi), n) in enumerate(zip(pairs, x.shape)):
        if mode == "reflect" and (lo >= n or hi >= n) and (lo or hi):
            raise ValueError(f"pad: reflect padding {(lo, hi)} must be smaller than axis {ax}'s length {n}")
        if mode == "edge" and n == 0 and (lo or hi):
            raise ValueError(f"pad: edge padding of an empty axis {ax}")
    if not builtins.any(lo or hi for lo, hi in pairs):
        return x
    if mode == "constant":
        _check_scalar_fits("pad", x._dtype, value)
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pairs))
    if mode == "constant" and type(value) is int and builtins.abs(value) > 2**53:
        return x._device._allocate("pad", shape, x._dtype, lambda: _pad_exact(x, pairs, value))
    return x._device._allocate("pad", shape, x._dtype, lambda: P.pad(x, pairs, mode, value))


def _pad_exact(x: Tensor, pairs: tuple[tuple[int, int], ...], value: int) -> Tensor:
    """Constant padding with an int no float64 holds exactly (torch's F.pad and JAX read the value
    as a float or an int64): zeros padded in, then the value written where the border is."""
    border = P.pad(x._device.full(x.shape, False, dtype=dtypes.bool), pairs, "constant", True)
    return P.where(border, x._device.full((), value, dtype=x._dtype), P.pad(x, pairs, "constant", 0))


def _check_pad_reading(x: Tensor, widths: Any) -> None:
    """Raise for positional widths that torch's F.pad reads as pairs from the last axis backwards:
    a flat pair on a tensor of more than one dimension (NumPy pads every axis by it) and a flat
    sequence of more than two ints (NumPy cannot read it)."""
    if isinstance(widths, (int, np.integer)):
        return
    flat = np.asarray(widths)
    if flat.ndim != 1 or flat.size < 2 or flat.size % 2 or (flat.size == 2 and x.ndim <= 1):
        return
    pairs = [(int(flat[i]), int(flat[i + 1])) for i in range(0, flat.size, 2)]
    if len(pairs) > x.ndim:
        raise ValueError(
            f"pad: torch-style {tuple(flat.tolist())} pads {len(pairs)} axes of a {x.ndim}-D tensor"
        )
    torch_reading = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    if len(pairs) > 1:
        raise ValueError(
            f"pad: {tuple(flat.tolist())} is torch's F.pad form (pairs from the last axis backwards); "
            f"agnostic's pad takes NumPy's (before, after) per axis: write ag.pad(x, {torch_reading})"
        )
    raise ValueError(
        f"pad: {pairs[0]} is ambiguous for a {x.ndim}-D tensor: NumPy pads every axis by it, torch's F.pad "
        f"the last axis alone; write ag.pad(x, pad_width={pairs[0]}) for NumPy's meaning or "
        f"ag.pad(x, {torch_reading}) for torch's"
    )


def tile(x: Tensor, /, repetitions: Sequence[int]) -> Tensor:
    """`x` repeated along each axis (Array API tile; leading axes are added as needed)."""
    x = _tensor(x, "tile")
    reps = tuple(int(r) for r in repetitions)
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tile: repetitions must be non-negative, got {reps}")
    if len(reps) < x.ndim:
        reps = (1,) * (x.ndim - len(reps)) + reps
    elif len(reps) > x.ndim:
        x = P.reshape(x, (1,) * (len(reps) - x.ndim) + x.shape)
    shape = tuple(n * r for n, r in zip(x.shape, reps))
    return x._device._allocate("tile", shape, x._dtype, lambda: P.tile(x, reps))


@_accepts_dim()
def repeat(x: Tensor, /, repeats: int | Tensor, *, axis: int | None = None) -> Tensor:
    """Each element repeated `repeats` times along `axis` (None: of the flattened tensor)."""
    x = _tensor(x, "repeat")
    if axis is None:
        x, axis = P.reshape(x, (x.size,)), 0
    ax = _axis(axis, x.ndim, "repeat", x.shape)
    if isinstance(repeats, Tensor):
        if repeats._dtype.kind not in "iu":
            raise TypeError(f"repeat: repeats must be integers, got {repeats._dtype.name}")
        repeats = P.cast(repeats, dtypes.int64)
        if repeats.ndim != 1 or repeats.shape[0] not in (1, x.shape[ax]):
            raise ValueError(
                f"repeat: repeats of shape {repeats.shape} do not match axis of length {x.shape[ax]}"
            )
    elif int(repeats) < 0:
        raise ValueError(f"repeat: repeats must be non-negative, got {repeats}")
    else:  # (a tensor of counts gives a size only the device knows)
        shape = x.shape[:ax] + (x.shape[ax] * int(repeats),) + x.shape[ax + 1 :]
        return x._device._allocate("repeat", shape, x._dtype, lambda: P.repeat(x, repeats, ax))
    return P.repeat(x, repeats, ax)


# ====================================================================== indexing
def _normalize_key(x: Tensor, key: Any, op: str = "getitem") -> tuple:
    """Index arrays as int64/bool Tensors on x's device, and a clear error for anything else."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    consumed = 0
    for k in key:
        if isinstance(k, (bool, np.bool_)):
            out.append(asarray(bool(k), device=x._device))
            continue
        if isinstance(k, (int, np.integer)):
            out.append(_size(k))
            consumed += 1
        elif isinstance(k, slice):
            if k.step == 0:
                raise ValueError(f"{op}: slice step cannot be zero")
            out.append(k)
            consumed += 1
        elif k is None or k is Ellipsis:
            out.append(k)
        else:
            t = k if isinstance(k, Tensor) else _index_array(k, x._device)
            if t._device is not x._device:
                raise ValueError(f"{op}: index on {t._device} but tensor on {x._device}")
            if t._dtype is dtypes.bool:
                consumed += t.ndim  # a 0-d mask adds an axis of length 1 or 0, as in NumPy
            elif t._dtype.kind in "iu":
                t = P.cast(t, dtypes.int64)
                consumed += 1
            else:
                raise IndexError(f"{op}: index tensors must be integer or bool, got {t._dtype.name}")
            out.append(t)
    if consumed > x.ndim:
        raise IndexError(f"{op}: too many indices ({consumed}) for a tensor of {x.ndim} dimensions")
    # bounds of plain ints (negative ones count from the end), with the dimension they index
    dim = 0
    ellipsis_span = x.ndim - consumed
    for i, k in enumerate(list(out)):
        if k is Ellipsis:
            dim += ellipsis_span
        elif isinstance(k, int):
            n = x.shape[dim]
            if not -n <= k < n:
                raise IndexError(f"{op}: index {k} is out of bounds for axis {dim} with size {n}")
            dim += 1
        elif isinstance(k, slice):
            dim += 1
        elif isinstance(k, Tensor):
            if k._dtype is dtypes.bool:
                indexed = x.shape[dim : dim + k.ndim]
                if k.shape != indexed:
                    # NumPy's rule: a mask with a zero-length dimension selects nothing
                    if not builtins.all(m in (n, 0) for m, n in zip(k.shape, indexed)):
                        raise IndexError(
                            f"{op}: boolean mask of shape {k.shape} does not match the indexed "
                            f"dimensions {indexed}"
                        )
                    out[i] = tuple(x._device.zeros((0,), dtype=dtypes.int64) for _ in range(k.ndim))
                dim += k.ndim
            else:
                n = x.shape[dim]
                if k.size and not tracing.tracing():  # values are symbolic in a compile trace
                    host = k._device.ops.to_numpy(k._data)
                    lo, hi = int(host.min()), int(host.max())
                    if lo < -n or hi >= n:
                        raise IndexError(
                            f"{op}: index {hi if hi >= n else lo} is out of bounds for axis {dim} with size {n}"
                        )
                dim += 1
    return tuple(_flatten_masks(out))


def _flatten_masks(key: list) -> list:
    """The key with each empty-selection mask (a tuple of empty int64 indices) spliced in place."""
    out = []
    for k in key:
        out.extend(k if isinstance(k, tuple) else (k,))
    return out


def _index_array(obj: Any, device: Device) -> Tensor:
    """An index from host data; an empty list indexes nothing (int64, as NumPy reads it)."""
    t = asarray(obj, device=device)
    return t if t.size or t._dtype.kind != "f" or isinstance(obj, np.ndarray) else P.cast(t, dtypes.int64)


def getitem(x: Tensor, key: Any) -> Tensor:
    """NumPy indexing: ints, slices with steps, None, Ellipsis, integer arrays and boolean masks."""
    if type(key) is int or type(key) is slice:
        n = x.shape[0] if x.ndim else 0
        if x.ndim == 0:
            raise IndexError("getitem: a 0-d tensor cannot be indexed by an int or slice")
        if type(key) is int and not -n <= key < n:
            raise IndexError(f"getitem: index {key} is out of bounds for axis 0 with size {n}")
        if type(key) is slice and key.step == 0:
            raise ValueError("getitem: slice step cannot be zero")
        return P.getitem(x, (key,))
    return P.getitem(x, _normalize_key(x, key))


class _IndexUpdater:
    """`x.at[key]`: functional updates that return new tensors."""

    __slots__ = ("_x",)

    def __init__(self, x: Tensor) -> None:
        self._x = x

    def __getitem__(self, key: Any) -> _IndexUpdate:
        return _IndexUpdate(self._x, key)


class _IndexUpdate:
    __slots__ = ("_x", "_key")

    def __init__(self, x: Tensor, key: Any) -> None:
        self._x, self._key = x, key

    def _values(self, op: str, key: tuple, values: Any) -> Tensor:
        x = self._x
        target_shape = P.getitem(x.detach(), key).shape
        if isinstance(values, _SCALARS):  # a Python scalar is weak: it takes x's dtype if it fits
            d = dtypes.scalar_result_type(x._dtype, values)
            _check_scalar_fits(op, d, values)
            v = asarray(values, dtype=d, device=x._device)
        else:
            v = values if isinstance(values, Tensor) else asarray(values, device=x._device)
            _, v, d = _promote(op, x, v)
        if d is not x._dtype:
            raise TypeError(f"{op}: values of dtype {v.dtype.name} do not fit a {x._dtype.name} tensor")
        return broadcast_to(v, target_shape)

    def add(self, values: Any) -> Tensor:
        """A copy of x with `values` added at the key (repeated indices accumulate)."""
        key = _normalize_key(self._x, self._key, "at[].add")
        return P.index_add(self._x, key, self._values("at[].add", key, values))

    def set(self, values: Any) -> Tensor:
        """A copy of x with the key's elements replaced by `values`; where an index repeats, the last
        value wins (as NumPy assignment)."""
        x = self._x
        key = _normalize_key(x, self._key, "at[].set")
        v = P.reshape(self._values("at[].set", key, values), (-1,))
        dev = x._device
        positions = P.getitem(P.reshape(dev.arange(x.size, dtype=dtypes.int64), x.shape), key)
        flat = positions.numpy().reshape(-1)
        unique, first_in_reversed = np.unique(flat[::-1], return_index=True)
        source = np.zeros(x.size, np.int64)  # for each element of x, the value that lands there
        source[unique] = flat.size - 1 - first_in_reversed
        hit = np.zeros(x.size, np.bool_)
        hit[unique] = True
        if not flat.size:
            return x
        placed = P.take(v, dev.tensor(source), 0)  # a gather: no arithmetic, any dtype, exact
        return P.reshape(P.where(dev.tensor(hit), placed, P.reshape(x, (x.size,))), x.shape)


@_accepts_dim()
def take(x: Tensor, indices: Any, /, *, axis: int | None = None) -> Tensor:
    """Elements at integer `indices` along `axis` (None: of the flattened tensor)."""
    x = _tensor(x, "take")
    idx = indices if isinstance(indices, Tensor) else _index_array(indices, x._device)
    if idx._dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got {idx._dtype.name}")
    _same_device("take", (x, idx))
    if axis is None:
        x, axis = P.reshape(x, (x.size,)), 0
    ax = _axis(axis, x.ndim, "take", x.shape)
    n = x.shape[ax]
    idx = _wrap_indices(P.cast(idx, dtypes.int64), n, "take", ax)
    return P.take(x, idx, ax)


def _wrap_indices(idx: Tensor, n: int, op: str, axis: int) -> Tensor:
    """Bounds-check integer indices (negative count from the end) and make them non-negative."""
    if idx.size == 0:
        return idx
    if tracing.tracing():  # symbolic values: no host check, as under jax.jit
        return P.where(P.lt(idx, 0), P.add(idx, n), idx)
    host = idx._device.ops.to_numpy(idx._data)
    lo, hi = int(host.min()), int(host.max())
    if lo < -n or hi >= n:
        bad = hi if hi >= n else lo
        raise IndexError(f"{op}: index {bad} is out of bounds for axis {axis} with size {n}")
    return P.where(P.lt(idx, 0), P.add(idx, n), idx) if lo < 0 else idx


@_accepts_dim()
def take_along_axis(x: Tensor, indices: Tensor, /, axis: int = -1) -> Tensor:
    """Values at `indices` along `axis` (torch.gather); indices broadcast with x elsewhere."""
    x = _tensor(x, "take_along_axis")
    idx = _tensor(indices, "take_along_axis")
    _same_device("take_along_axis", (x, idx))
    if idx._dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: indices must be integers, got {idx._dtype.name}")
    if idx.ndim != x.ndim:
        raise ValueError(
            f"take_along_axis: indices of shape {idx.shape} need the tensor's {x.ndim} dimensions (shape {x.shape})"
        )
    ax = _axis(axis, x.ndim, "take_along_axis", x.shape)
    idx = _wrap_indices(P.cast(idx, dtypes.int64), x.shape[ax], "take_along_axis", ax)
    return P.take_along_axis(x, idx, ax)


@_accepts_dim()
def gather(x: Tensor, indices: Tensor, /, axis: int = -1) -> Tensor:
    """take_along_axis under torch's name, in agnostic's argument order (x, indices, axis)."""
    if isinstance(indices, (int, np.integer)) and isinstance(axis, Tensor):
        raise TypeError(
            f"gather: agnostic's order is gather(x, indices, axis) and torch's gather(input, dim, index); "
            f"write ag.gather(x, index, axis={int(indices)})"
        )
    return take_along_axis(x, indices, axis=axis)


def scatter_add(x: Tensor, axis: int, indices: Tensor, src: Tensor) -> Tensor:
    """A copy of `x` with `src` added at `indices` along `axis` (torch.scatter_add)."""
    x = _tensor(x, "scatter_add")
    idx = _tensor(indices, "scatter_add")
    src = _tensor(src, "scatter_add")
    _same_device("scatter_add", (x, idx, src))
    if idx.shape != src.shape or idx.ndim != x.ndim:
        raise ValueError(
            f"scatter_add: indices {idx.shape} and src {src.shape} must have one shape with x's "
            f"{x.ndim} dimensions"
        )
    ax = _axis(axis, x.ndim, "scatter_add", x.shape)
    for i in range(x.ndim):
        if i != ax and idx.shape[i] > x.shape[i]:
            raise ValueError(f"scatter_add: indices shape {idx.shape} exceeds x shape {x.shape} on axis {i}")
    idx = _wrap_indices(P.cast(idx, dtypes.int64), x.shape[ax], "scatter_add", ax)
    return P.scatter_add(x, ax, idx, P.cast(src, x._dtype))


@_accepts_dim(
    refuse="sort: torch.sort(x, dim) returns (values, indices); ag.sort returns the values alone "
    "(Array API). Write ag.sort(x, axis=d) for the values, ag.argsort(x, axis=d) for the indices, or "
    "x.sort(d) for torch's (values, indices)"
)
def sort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Tensor:
    """`x` sorted along `axis` (NaN last; first when descending)."""
    x = _tensor(x, "sort")
    if x._dtype.is_complex:
        raise _no_complex("sort", x._dtype)
    return P.sort(x, _axis(axis, x.ndim, "sort", x.shape), descending, stable)


@_accepts_dim()
def argsort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Tensor:
    """int64 indices that sort `x` along `axis`."""
    x = _tensor(x, "argsort")
    if x._dtype.is_complex:
        raise _no_complex("argsort", x._dtype)
    return P.argsort(x, _axis(axis, x.ndim, "argsort", x.shape), descending, stable)


class ValuesIndices(NamedTuple):
    """Values and their int64 indices: what topk returns, and torch's x.max(dim) / x.sort(dim)."""

    values: Tensor
    indices: Tensor


@_accepts_dim()
def topk(x: Tensor, k: int, /, *, axis: int = -1, largest: bool = True) -> ValuesIndices:
    """The k largest (or smallest) values along `axis`, sorted, and their int64 indices."""
    x = _tensor(x, "topk")
    if x._dtype.is_complex:
        raise _no_complex("topk", x._dtype)
    ax = _axis(axis, x.ndim, "topk", x.shape)
    if not 0 <= k <= x.shape[ax]:
        raise ValueError(f"topk: k={k} is out of range for axis {ax} of length {x.shape[ax]}")
    return ValuesIndices(*P.topk(x, k, ax, largest))


def nonzero(x: Tensor, /) -> tuple[Tensor, ...]:
    """int64 indices of the non-zero elements, one tensor per axis."""
    x = _tensor(x, "nonzero")
    if x.ndim == 0:
        raise ValueError("nonzero: not defined for 0-d tensors")
    return tuple(Tensor._make(i, x._device) for i in x._device.ops.nonzero(x._data))


def one_hot(x: Tensor, /, num_classes: int, *, dtype: Any = None) -> Tensor:
    """A new last axis of `num_classes`, 1 at each index (default float32)."""
    x = _tensor(x, "one_hot")
    if x._dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got {x._dtype.name}")
    if x.size:
        host = x.numpy()
        if host.min() < 0 or host.max() >= num_classes:
            raise ValueError(
                f"one_hot: indices must be in [0, {num_classes}), got {host.min()}..{host.max()}"
            )
    d = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
    indices = P.cast(x, dtypes.int64)._data
    return x._device._allocate(
        "one_hot", x.shape + (num_classes,), d, lambda: x._device.ops.one_hot(indices, num_classes, d)
    )


# ====================================================================== data-dependent shapes (host)
class UniqueAllResult(NamedTuple):
    values: Tensor
    indices: Tensor
    inverse_indices: Tensor
    counts: Tensor


class UniqueCountsResult(NamedTuple):
    values: Tensor
    counts: Tensor


class UniqueInverseResult(NamedTuple):
    values: Tensor
    inverse_indices: Tensor


def _host_unique(x: Tensor, op: str) -> tuple[np.ndarray, ...]:
    """np.unique on the host: result sizes depend on the data, so these ops sync and are not
    differentiable. NaNs count as distinct (Array API)."""
    x = _tensor(x, op)
    host = np.asarray(x.numpy())
    values, index, inverse, counts = np.unique(
        host.reshape(-1), return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    return (
        values,
        index.astype(np.int64),
        inverse.reshape(host.shape).astype(np.int64),
        counts.astype(np.int64),
    )


def unique_values(x: Tensor, /) -> Tensor:
    """The sorted distinct values of `x` (flattened)."""
    values = _host_unique(x, "unique_values")[0]
    return x._device.tensor(values, dtype=x._dtype)


def unique_counts(x: Tensor, /) -> UniqueCountsResult:
    """The sorted distinct values and how often each occurs."""
    values, _, _, counts = _host_unique(x, "unique_counts")
    return UniqueCountsResult(x._device.tensor(values, dtype=x._dtype), x._device.tensor(counts))


def unique_inverse(x: Tensor, /) -> UniqueInverseResult:
    """The sorted distinct values and, for each element of x, the index of its value."""
    values, _, inverse, _ = _host_unique(x, "unique_inverse")
    return UniqueInverseResult(x._device.tensor(values, dtype=x._dtype), x._device.tensor(inverse))


def unique_all(x: Tensor, /) -> UniqueAllResult:
    """Distinct values, the first index of each, the inverse indices and the counts."""
    values, index, inverse, counts = _host_unique(x, "unique_all")
    d = x._device
    return UniqueAllResult(
        d.tensor(values, dtype=x._dtype), d.tensor(index), d.tensor(inverse), d.tensor(counts)
    )


def searchsorted(x1: Tensor, x2: Tensor, /, *, side: str = "left", sorter: Tensor | None = None) -> Tensor:
    """int64 insertion indices of x2's values into the sorted 1-D x1 (computed on the host)."""
    x1, x2 = _tensor(x1, "searchsorted"), _tensor(x2, "searchsorted")
    for t in (x1, x2):
        if t._dtype.is_complex:
            raise _no_complex("searchsorted", t._dtype)
    if x1.ndim != 1:
        raise ValueError(f"searchsorted: x1 must be 1-D, got shape {x1.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    order = None if sorter is None else np.asarray(sorter.numpy())
    idx = np.searchsorted(np.asarray(x1.numpy()), np.asarray(x2.numpy()), side=side, sorter=order)
    return x2._device.tensor(np.asarray(idx, dtype=np.int64))


def conj(x: Tensor, /) -> Tensor:
    """The complex conjugate; real tensors are their own conjugate (returned as they are)."""
    x = _tensor(x, "conj")
    return P.conj(x) if x._dtype.is_complex else x


def real(x: Tensor, /) -> Tensor:
    """The real part, of the real dtype of the parts (complex64 -> float32); real tensors are
    their own real part."""
    x = _tensor(x, "real")
    return P.real(x) if x._dtype.is_complex else x


def imag(x: Tensor, /) -> Tensor:
    """The imaginary part, of the real dtype of the parts (complex64 -> float32); zeros of the
    input's dtype for a real tensor."""
    x = _tensor(x, "imag")
    return P.imag(x) if x._dtype.is_complex else zeros_like(x)


# ====================================================================== methods
TENSOR_METHODS: tuple[str, ...] = (
    "abs", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "square", "reciprocal",
    "sin", "cos", "tan", "sinh", "cosh", "tanh", "sigmoid", "erf", "floor", "ceil", "round", "trunc",
    "sign", "isnan", "isinf", "isfinite", "logical_not", "clip", "clamp", "maximum", "minimum",
    "sum", "prod", "mean", "amax", "amin", "any", "all", "logsumexp", "argmax", "argmin", "cumsum",
    "cumprod", "reshape", "permute", "transpose", "squeeze", "expand_dims", "unsqueeze", "flatten",
    "broadcast_to", "flip", "roll", "tile", "take", "take_along_axis", "gather", "argsort", "topk",
    "matmul", "moveaxis", "add", "sub", "mul", "div", "pow", "neg", "logical_and",
    "logical_or", "logical_xor", "remainder", "floor_divide", "conj", "isclose", "allclose",
)  # fmt: skip
"""Ops also reachable as tensor methods (`x.sum(axis=0)`, `x.reshape(2, -1)`); Tensor defines the
methods whose torch meaning needs more than the op (max, sort, std, repeat, split, ...) itself."""

_TORCH_METHOD_NAMES = {
    "eq": equal, "ne": not_equal, "lt": less, "le": less_equal, "gt": greater, "ge": greater_equal,
}  # fmt: skip
"""torch's method names for ops agnostic names otherwise (`x.eq(y)`)."""

_POSITIONAL_AXIS: dict[str, tuple[int, tuple[str, ...]]] = {
    **dict.fromkeys(("sum", "prod", "mean"), (0, ("axis", "keepdims", "dtype"))),
    **dict.fromkeys(
        ("amax", "amin", "any", "all", "logsumexp", "argmax", "argmin"), (0, ("axis", "keepdims"))
    ),
    "argsort": (0, ("axis", "descending")),
    "flip": (0, ("axis",)),
    "roll": (1, ("axis",)),
    "topk": (1, ("axis", "largest")),
}
"""Methods that also take these keywords positionally after their own `n` positional arguments,
as torch's and NumPy's methods do (`x.sum(1)`, `x.topk(3, 0)`): both read them alike."""


def _positional_method(fn: Any, own: int, names: tuple[str, ...]) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        if len(args) > own:
            if len(args) > own + len(names):
                raise TypeError(
                    f"{fn.__name__}: takes at most {own + len(names)} positional arguments after the "
                    f"tensor, got {len(args)}"
                )
            for name, value in zip(names, args[own:]):
                if name in kwargs or {"axis": "dim", "keepdims": "keepdim"}.get(name) in kwargs:
                    raise TypeError(f"{fn.__name__}: got {name} twice, positionally and as a keyword")
                kwargs[name] = value
            args = args[:own]
        return fn(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


# Tensor's operators and methods are these functions (ops builds on Tensor, not the reverse).
def _reflected(fn: Any) -> Any:
    def method(self: Tensor, other: Any) -> Any:
        return fn(other, self)

    return method


_BINARY_OPERATORS = {
    "add": add,
    "sub": subtract,
    "mul": multiply,
    "truediv": divide,
    "floordiv": floor_divide,
    "mod": remainder,
    "pow": pow,
    "matmul": matmul,
    "and": bitwise_and,
    "or": bitwise_or,
    "xor": bitwise_xor,
    "lshift": bitwise_left_shift,
    "rshift": bitwise_right_shift,
}
for _dunder, _fn in _BINARY_OPERATORS.items():
    setattr(Tensor, f"__{_dunder}__", _fn)
    setattr(Tensor, f"__r{_dunder}__", _reflected(_fn))
for _dunder, _fn in {"eq": equal, "ne": not_equal, "lt": less, "le": less_equal,
                     "gt": greater, "ge": greater_equal, "neg": negative,
                     "pos": positive, "abs": abs, "invert": bitwise_invert}.items():  # fmt: skip
    setattr(Tensor, f"__{_dunder}__", _fn)
for _name in TENSOR_METHODS:
    if _name in vars(Tensor):
        raise RuntimeError(f"Tensor.{_name} is defined twice: in tensor.py and ops.TENSOR_METHODS")
    _fn = globals()[_name]
    setattr(
        Tensor, _name, _positional_method(_fn, *_POSITIONAL_AXIS[_name]) if _name in _POSITIONAL_AXIS else _fn
    )
for _name, _fn in _TORCH_METHOD_NAMES.items():
    setattr(Tensor, _name, _fn)
Tensor.real = property(real, doc="The real part (torch's and NumPy's `x.real`); see `ag.real`.")
Tensor.imag = property(imag, doc="The imaginary part (torch's and NumPy's `x.imag`); see `ag.imag`.")
