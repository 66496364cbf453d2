"""Tensor: a value holding its device (backend), native array and graph node.

Tensors are values: every op returns a new tensor. Methods and operators delegate to the functions of
`agnostic.ops`, which apply the one promotion table before any backend is called.
"""

from __future__ import annotations

import builtins
import math
import warnings
from typing import Any

import numpy as np

from agnostic import autodiff, dtypes
from agnostic.device import Device
from agnostic.dtypes import DType

__all__ = ["ElementCount", "Tensor"]

_new = object.__new__


class ElementCount(int):
    """`x.size`: the element count (the Array API's property, a plain int everywhere an int goes:
    arithmetic, comparisons, hashing, JSON) that is also callable as torch's `x.size()` (the shape)
    and `x.size(dim)` (one dimension's length)."""

    def __new__(cls, shape: tuple[int, ...]) -> ElementCount:
        self = int.__new__(cls, math.prod(shape))
        self._shape = shape
        return self

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self._shape
        nd = len(self._shape)
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"size: dim must be an int, got {dim!r}")
        if not -nd <= dim < nd:
            raise IndexError(f"size: dim {dim} is out of range for a tensor of {nd} dimensions")
        return self._shape[dim]

    def __repr__(self) -> str:
        return int.__repr__(self)

    def __reduce__(self) -> tuple:
        return (int, (int(self),))


class Tensor:
    """An n-dimensional array on one backend, differentiable when `requires_grad` is set."""

    __slots__ = ("_data", "_device", "_dtype", "_node", "requires_grad", "grad", "__weakref__")
    __array_priority__ = 1000  # NumPy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> None:
        from agnostic.ops import asarray

        t = asarray(data, dtype=dtype, device=device, copy=True)
        self._data, self._device, self._dtype = t._data, t._device, t._dtype
        self._node = None
        self.grad = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    @classmethod
    def _make(cls, data: Any, device: Device, dtype: DType | None = None) -> Tensor:
        """Wrap a native array (the fast path every op uses). `dtype` where it is known already
        (a compiled step's outputs) skips reading the array's, on JAX a Python property."""
        t = _new(cls)
        t._data = data
        t._device = device
        if dtype is None:
            table = device._dtype_table
            dtype = table[data.dtype] if table is not None else device._dtype_of(data)
        t._dtype = dtype
        t._node = None
        t.requires_grad = False
        t.grad = None
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._device._shape(self._data))

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._device._shape(self._data))

    @property
    def size(self) -> ElementCount:
        """The element count, an int; `x.size()` / `x.size(dim)` as in torch (see ElementCount)."""
        return ElementCount(tuple(self._device._shape(self._data)))

    @property
    def device(self) -> Device:
        return self._device

    @property
    def backend(self) -> Device:
        return self._device

    @property
    def data(self) -> Any:
        """The native array of the backend (torch.Tensor, jax.Array, numpy.ndarray...)."""
        return self._data

    @property
    def T(self) -> Tensor:
        if self.ndim != 2:
            raise ValueError(f"T: defined for 2-D tensors, got {self.ndim}-D; use .mT or permute")
        return self.permute((1, 0))

    @property
    def mT(self) -> Tensor:
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dimensions, got shape {self.shape}")
        nd = self.ndim
        return self.permute(tuple(range(nd - 2)) + (nd - 1, nd - 2))

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> autodiff.Node | None:
        return self._node

    # ------------------------------------------------------------------ host conversion
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array on the host (read-only where it shares memory)."""
        return self._device.ops.to_numpy(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self.numpy()
        if dtype is not None:
            a = a.astype(dtype)
        return np.array(a, copy=True) if copy else a

    def item(self) -> bool | int | float:
        """The single element as a Python scalar."""
        if self.size != 1:
            raise ValueError(f"item: tensor has {self.size} elements (shape {self.shape}); need exactly 1")
        return (
            self.numpy().reshape(()).item()
            if self._dtype is not dtypes.bfloat16
            else float(self.numpy().reshape(()))
        )

    def tolist(self) -> Any:
        """Nested Python lists of Python scalars."""
        a = self.numpy()
        if self._dtype in (dtypes.bfloat16, dtypes.float16):
            a = a.astype(np.float32)
        return a.tolist()

    def __dlpack__(
        self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
        dl_device: tuple[Any, int] | None = None, copy: bool | None = None,
    ) -> Any:  # fmt: skip
        """A DLPack capsule of the data (the Array API's exchange protocol); keywords left at None
        are not passed on, so libraries that predate them still export."""
        given = {"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy}
        return self._device.ops.to_dlpack(self._data, **{k: v for k, v in given.items() if v is not None})

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device.ops.dlpack_device(self._data)

    def to_device(self, device: Any, /, *, stream: Any = None) -> Tensor:
        """`self` on `device` (a Device, as `x.device` returns, or a backend name); gradients flow
        back through the move. `stream` must be None: moves use the library's default stream."""
        from agnostic import ops

        if stream is not None:
            raise ValueError(
                f"to_device: stream={stream!r}: agnostic moves tensors on the library's default "
                "stream; pass stream=None"
            )
        return ops.to_device(self, device)

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        if api_version not in (None, "2023.12", "2022.12", "2021.12"):
            raise ValueError(f"__array_namespace__: unsupported api_version {api_version!r}")
        import agnostic

        return agnostic

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        if self._dtype.is_complex:
            raise _complex_to_real("float", self._dtype)
        return float(self.item())

    def __int__(self) -> int:
        if self._dtype.is_complex:
            raise _complex_to_real("int", self._dtype)
        return int(self.item())

    def __index__(self) -> int:
        if not self._dtype.is_integer:
            raise TypeError(f"only integer tensors can be used as an index, got {self._dtype.name}")
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        body = np.array2string(
            np.asarray(self.numpy(), dtype=np.float32) if self._dtype is dtypes.bfloat16 else self.numpy(),
            separator=", ",
            prefix="tensor(",
            threshold=200,
        )
        extra = f", dtype={self._dtype.name}, backend={self._device.name!r}"
        if self._device.device != "cpu":
            extra += f", device={self._device.device!r}"
        if self._node is not None:
            extra += f", grad_fn={self._node!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------------ autodiff
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark this (leaf) tensor as one whose gradient `backward` accumulates into `.grad`."""
        if requires_grad and not self._dtype.is_inexact:
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got {self._dtype.name} "
                "(real or complex floating dtypes can)"
            )
        if not requires_grad and self._node is not None:
            raise RuntimeError(
                "requires_grad_(False): only leaf tensors can stop requiring grad; use detach()"
            )
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """The same values cut from the graph."""
        return Tensor._make(self._data, self._device)

    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
    ) -> None:
        """Accumulate gradients of this tensor into `.grad` of the leaves it depends on; the graph
        is freed on the way unless `retain_graph` (default: `create_graph`), as in torch."""
        autodiff.backward(self, gradient, retain_graph, create_graph)

    def _alias_for_grad(self) -> Tensor:
        """A differentiation input for `ag.grad`: same values, tied to `self` when `self` is tracked."""
        t = Tensor._make(self._data, self._device)
        t.requires_grad = True
        if self.requires_grad and autodiff.grad_enabled():
            t._node = autodiff.Node("alias", (autodiff.edge(self),), lambda g, out: (g,))
        return t

    def _like_full(self, value: float) -> Tensor:
        return Tensor._make(self._device.ops.full(self.shape, value, self._dtype), self._device)

    # ------------------------------------------------------------------ conversion
    def to(
        self, target: Any = None, dtype: Any = None, *, device: Any = None, non_blocking: bool = False,
        copy: bool = False,
    ) -> Tensor:  # fmt: skip
        """Another dtype (`x.to(ag.float64)`) and/or another backend or device
        (`x.to(ag.backend("torch"))`, `x.to("jax")`); gradients flow through the move. As in torch, a
        device string that names no backend ("cpu", "cuda:0") is a device of this tensor's backend,
        another tensor gives its dtype and device, and `copy=True` always returns a new tensor
        (`non_blocking` is accepted; moves finish before `to` returns)."""
        from agnostic import ops

        if isinstance(target, Tensor):
            if dtype is not None or device is not None:
                raise TypeError("to: give another tensor alone, or dtype and/or device")
            target, dtype, device = None, target._dtype, target._device
        if target is not None:
            try:
                dtype_from_target = dtypes.as_dtype(target) if not isinstance(target, Device) else None
            except TypeError:
                dtype_from_target = None
            if dtype_from_target is not None and dtype is None and device is None:
                dtype = dtype_from_target
            else:
                device = target
        out = self
        if device is not None:
            out = ops.to_device(out, self._device_named(device))
        if dtype is not None:
            out = ops.astype(out, dtype, copy=False)
        return ops.clone(out) if copy and out is self else out

    def _device_named(self, spec: Any) -> Any:
        """`spec` as a Device; a string naming no backend is a device of this tensor's backend."""
        from agnostic.backends import backend_names
        from agnostic.device import backend

        if isinstance(spec, str) and spec.partition(":")[0] not in backend_names():
            return backend(self._device.name, spec)
        return spec

    def astype(self, dtype: Any, copy: bool = True) -> Tensor:
        from agnostic import ops

        return ops.astype(self, dtype, copy=copy)

    def __getitem__(self, key: Any) -> Tensor:
        from agnostic import ops

        return ops.getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        """`x[key] = value` gives this tensor object the value `x.at[key].set(value)`. No array is
        written: every other tensor (a view or slice taken before included) keeps its value, as
        tensors are values; only the name `x` now holds the new one. Differentiable through the
        old value and `value`; a gradient rule recorded earlier that needs x's old value is refused
        at backward, as torch refuses a tensor modified in place."""
        from agnostic import autodiff

        if self.requires_grad and self._node is None and autodiff.grad_enabled():
            raise RuntimeError(
                f"setitem: a leaf tensor that requires grad (shape {self.shape}) cannot be assigned "
                "into while gradients are recorded; assign under `with ag.no_grad():` (to change a "
                "parameter's values), or use `y = x.at[key].set(value)`"
            )
        old = Tensor._make(self._data, self._device, self._dtype)
        old._node, old.requires_grad = self._node, self.requires_grad
        new = old.at[key].set(value)
        self._data, self._node, self.requires_grad = new._data, new._node, new.requires_grad
        autodiff.note_assignment(self)

    @property
    def at(self) -> Any:
        """Functional updates: `x.at[key].set(v)` / `.add(v)` return new tensors (JAX style)."""
        from agnostic.ops import _IndexUpdater

        return _IndexUpdater(self)

    # ------------------------------------------------------------------ torch's methods
    # torch's common Tensor methods, with torch's semantics where agnostic had no method of the
    # name; where NumPy and torch read one call differently the spelling decides (axis= NumPy,
    # dim= or positional torch) and a call neither settles raises or warns (AmbiguityWarning).
    def numel(self) -> int:
        """The element count (torch's numel)."""
        return int(self.size)

    def dim(self) -> int:
        """The number of dimensions (torch's dim)."""
        return self.ndim

    def view(self, *shape: Any) -> Tensor:
        """torch's view: a reshape (tensors are values, so no memory is shared), or with a dtype
        the same bytes read as that dtype (ag.bitcast)."""
        from agnostic import ops

        if len(shape) == 1 and not isinstance(shape[0], (builtins.int, np.integer, tuple, list)):
            return ops.bitcast(self, shape[0])
        return ops.reshape(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        """`self` reshaped to `other`'s shape."""
        from agnostic import ops

        return ops.reshape(self, other.shape)

    def contiguous(self, memory_format: Any = None) -> Tensor:
        """`self`: agnostic tensors have no strides to make contiguous."""
        return self

    def clone(self, memory_format: Any = None) -> Tensor:
        """A new tensor with these values; gradients flow through, as torch's clone."""
        from agnostic import ops

        return ops.clone(self)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        """torch's chunk: a tuple of at most `chunks` pieces of ceil(n / chunks) along `dim`."""
        from agnostic import ops

        return tuple(ops.chunk(self, chunks, axis=dim))

    def split(self, split_size_or_sections: int | list[int], dim: int = 0) -> tuple[Tensor, ...]:
        """torch's split: a tuple of pieces of `split_size_or_sections` (an int: each that long,
        the last one shorter; a list: the pieces' sizes) along `dim`. ag.split is NumPy's."""
        from agnostic import ops

        return tuple(ops.split(self, split_size_or_sections=split_size_or_sections, axis=dim))

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        """`value` where the bool `mask` (broadcast to self) is True, else self; the dtype stays
        self's, as torch's."""
        from agnostic import ops

        if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool:
            got = mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {got}")
        if isinstance(value, Tensor) and value.ndim:
            raise ValueError(f"masked_fill: value must be a scalar or a 0-d tensor, got shape {value.shape}")
        return ops.astype(ops.where(mask, value, self), self._dtype, copy=False)

    def where(self, condition: Tensor, other: Any) -> Tensor:
        """torch's `x.where(condition, y)`: ag.where(condition, x, y)."""
        from agnostic import ops

        return ops.where(condition, self, other)

    def type_as(self, other: Tensor) -> Tensor:
        """`self` in `other`'s dtype."""
        return self.astype(other.dtype, copy=False)

    def float(self) -> Tensor:
        """`self` as float32."""
        return self.astype(dtypes.float32, copy=False)

    def double(self) -> Tensor:
        """`self` as float64."""
        return self.astype(dtypes.float64, copy=False)

    def half(self) -> Tensor:
        """`self` as float16."""
        return self.astype(dtypes.float16, copy=False)

    def bfloat16(self) -> Tensor:
        """`self` as bfloat16."""
        return self.astype(dtypes.bfloat16, copy=False)

    def long(self) -> Tensor:
        """`self` as int64."""
        return self.astype(dtypes.int64, copy=False)

    def int(self) -> Tensor:
        """`self` as int32."""
        return self.astype(dtypes.int32, copy=False)

    def short(self) -> Tensor:
        """`self` as int16."""
        return self.astype(dtypes.int16, copy=False)

    def byte(self) -> Tensor:
        """`self` as uint8."""
        return self.astype(dtypes.uint8, copy=False)

    def bool(self) -> Tensor:
        """`self` as bool."""
        return self.astype(dtypes.bool, copy=False)

    def cpu(self) -> Tensor:
        """`self` on its backend's CPU device (torch's cpu(): host memory, same library); a backend
        with no CPU device (CuPy) moves to NumPy. On a CPU device, `self`."""
        from agnostic import ops
        from agnostic.backends import DeviceUnavailable
        from agnostic.device import backend

        if self._device.device == "cpu":
            return self
        try:
            target = backend(self._device.name, "cpu")
        except (DeviceUnavailable, ValueError):
            target = backend("numpy")
        return ops.to_device(self, target)

    def t(self) -> Tensor:
        """torch's t(): a 2-D tensor transposed; 0-D and 1-D tensors as they are."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape {self.shape}; use .mT")
        return self if self.ndim < 2 else self.permute((1, 0))

    def expand(self, *sizes: Any) -> Tensor:
        """torch's expand: broadcast to `sizes`, where -1 keeps that dimension's length; new
        dimensions go in front."""
        from agnostic import ops

        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {len(sizes)} sizes for a tensor of {self.ndim} dimensions")
        shape = []
        for i, s in enumerate(sizes):
            if s == -1:
                if i < lead:
                    raise ValueError(f"expand: -1 is not allowed for a new leading dimension, got {sizes}")
                s = self.shape[i - lead]
            shape.append(s)
        return ops.broadcast_to(self, tuple(shape))

    def expand_as(self, other: Tensor) -> Tensor:
        """`self` broadcast to `other`'s shape."""
        from agnostic import ops

        return ops.broadcast_to(self, other.shape)

    def repeat(self, *sizes: Any, axis: int | None = None) -> Tensor:
        """torch's repeat: `self` tiled `sizes` times along each dimension (ag.tile), with new
        dimensions in front. With `axis=`, NumPy's repeat instead: each element `sizes[0]` times
        along `axis` (ag.repeat, torch's repeat_interleave)."""
        from agnostic import ops

        if axis is not None:
            if len(sizes) != 1:
                raise TypeError(f"repeat: with axis= (NumPy's repeat) give one repeats value, got {sizes}")
            return ops.repeat(self, sizes[0], axis=axis)
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) < self.ndim:
            raise ValueError(
                f"repeat: {len(sizes)} repeat counts for a tensor of {self.ndim} dimensions; torch's "
                "repeat tiles and needs one per dimension (for NumPy's element repeat use "
                "x.repeat_interleave(n, dim) or x.repeat(n, axis=d))"
            )
        return ops.tile(self, sizes)

    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> Tensor:
        """Each element `repeats` times along `dim` (None: of the flattened tensor); ag.repeat."""
        from agnostic import ops

        return ops.repeat(self, repeats, axis=dim)

    def softmax(self, dim: int, dtype: Any = None) -> Tensor:
        """exp(x) / sum(exp(x)) along `dim` (integers compute in the default float dtype)."""
        return self._softmax(dim, dtype, log=False)

    def log_softmax(self, dim: int, dtype: Any = None) -> Tensor:
        """x - logsumexp(x) along `dim`."""
        return self._softmax(dim, dtype, log=True)

    def _softmax(self, dim: int, dtype: Any, log: bool) -> Tensor:
        from agnostic import ops
        from agnostic import primitives as P

        x = self if dtype is None else ops.astype(self, dtype, copy=False)
        if not x._dtype.is_floating:
            x = ops.astype(x, dtypes.default_float)
        op = "log_softmax" if log else "softmax"
        return (P.log_softmax if log else P.softmax)(x, ops._axis(dim, x.ndim, op, x.shape))

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """torch's max: with a dim (positional or `dim=`), the named tuple (values, indices); with a
        tensor, the elementwise maximum; with `axis=` (or nothing), the values (ag.max)."""
        return self._extremum("max", dim, keepdim, axis, keepdims)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """torch's min: see `max`."""
        return self._extremum("min", dim, keepdim, axis, keepdims)

    def _extremum(self, op: str, dim: Any, keepdim: bool, axis: Any, keepdims: bool) -> Any:
        from agnostic import ops

        if dim is not None and axis is not None:
            raise TypeError(
                f"{op}: got both axis= and dim=; axis= returns the values, dim= (values, indices)"
            )
        if isinstance(dim, Tensor):
            return (ops.maximum if op == "max" else ops.minimum)(self, dim)
        if dim is None:
            return getattr(ops, op)(self, axis=axis, keepdims=keepdims or keepdim)
        values = getattr(ops, op)(self, axis=dim, keepdims=keepdim)
        return ops.ValuesIndices(values, getattr(ops, "arg" + op)(self, axis=dim, keepdims=keepdim))

    def sort(
        self, dim: int = -1, descending: bool = False, stable: bool = False, *, axis: int | None = None
    ) -> Any:
        """torch's sort: the named tuple (values, indices) along `dim`; with `axis=`, the sorted
        values alone (ag.sort). Ties keep their order either way."""
        from agnostic import ops

        if axis is not None:
            return ops.sort(self, axis=axis, descending=descending)
        indices = ops.argsort(self, axis=dim, descending=descending)
        return ops.ValuesIndices(ops.take_along_axis(self, indices, axis=dim), indices)

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kwargs: Any) -> Tensor:
        """Standard deviation; see `var` for the correction."""
        return self._moment("std", dim, unbiased, keepdim, kwargs)

    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kwargs: Any) -> Tensor:
        """Variance dividing by N - correction. torch's default correction is 1, the Array API's 0:
        with a dim (positional or `dim=`) give `correction=` or `unbiased=`; with `axis=` it is 0;
        with neither, 0 and an AmbiguityWarning."""
        return self._moment("var", dim, unbiased, keepdim, kwargs)

    def _moment(self, op: str, dim: Any, unbiased: Any, keepdim: bool, kwargs: dict[str, Any]) -> Tensor:
        from agnostic import ops

        if isinstance(dim, builtins.bool):  # torch's std(unbiased)
            dim, unbiased = None, dim
        correction = kwargs.pop("correction", None)
        axis = kwargs.pop("axis", None)
        keepdims = kwargs.pop("keepdims", keepdim)
        if kwargs:
            raise TypeError(f"{op}: unexpected keyword arguments {sorted(kwargs)}")
        if unbiased is not None:
            if correction is not None:
                raise TypeError(f"{op}: give correction= or unbiased=, not both")
            correction = 1 if unbiased else 0
        if dim is not None:
            if axis is not None:
                raise TypeError(f"{op}: got both axis= and dim=; they are one argument, give one")
            if correction is None:
                raise TypeError(ops._correction_trap(op))
            axis = dim
        elif correction is None:
            if axis is None:
                warnings.warn(
                    f"{op}: torch's x.{op}() divides by N - 1, agnostic's (the Array API's) by N; pass "
                    f"correction=1 for torch's, correction=0 for NumPy's",
                    ops.AmbiguityWarning,
                    stacklevel=3,
                )
            correction = 0
        return getattr(ops, op)(self, axis=axis, correction=correction, keepdims=keepdims)

    def nonzero(self, *, as_tuple: builtins.bool | None = None) -> Any:
        """Indices of the non-zero elements: with `as_tuple=True` one int64 tensor per axis (NumPy's,
        ag.nonzero), with `as_tuple=False` one (N, ndim) tensor (torch's default). Without
        `as_tuple`, NumPy's tuple and an AmbiguityWarning."""
        from agnostic import ops

        if as_tuple is None:
            warnings.warn(
                "nonzero: torch's x.nonzero() is one (N, ndim) tensor, NumPy's (and agnostic's) a tuple of "
                "index tensors; pass as_tuple=True for the tuple, as_tuple=False for torch's tensor",
                ops.AmbiguityWarning,
                stacklevel=2,
            )
        found = ops.nonzero(self)
        return found if as_tuple is not False else ops.stack(found, axis=1)

    def new_zeros(self, size: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """Zeros of `size`, with self's dtype and device unless given."""
        return self.new_full(size, 0, dtype=dtype, device=device)

    def new_ones(self, size: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """Ones of `size`, with self's dtype and device unless given."""
        return self.new_full(size, 1, dtype=dtype, device=device)

    def new_empty(self, size: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """A tensor of `size` (zeros: agnostic has no uninitialized memory), self's dtype and device."""
        return self.new_full(size, 0, dtype=dtype, device=device)

    def new_full(self, size: Any, fill_value: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """`fill_value` in `size`, with self's dtype and device unless given."""
        from agnostic import ops

        return ops.full(
            size, fill_value, dtype=self._dtype if dtype is None else dtype,
            device=self._device if device is None else device,
        )  # fmt: skip

    def new_tensor(self, data: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """A copy of `data` with self's dtype and device unless given."""
        from agnostic import ops

        return ops.asarray(
            data, dtype=self._dtype if dtype is None else dtype,
            device=self._device if device is None else device, copy=True,
        )  # fmt: skip


def _complex_to_real(kind: str, dtype: DType) -> TypeError:
    """The Array API's TypeError for float() or int() of a complex tensor, with the fix."""
    return TypeError(
        f"{kind}() of a {dtype.name} tensor would drop its imaginary part; use {kind}(x.real), "
        f"{kind}(abs(x)) or complex(x)"
    )
