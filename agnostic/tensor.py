"""Tensor: a value holding its device (backend), native array and graph node.

Tensors are values: every op returns a new tensor. Methods and operators delegate to the functions of
`agnostic.ops`, which apply the one promotion table before any backend is called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agnostic import autodiff, dtypes
from agnostic.device import Device
from agnostic.dtypes import DType

__all__ = ["Tensor"]

_new = object.__new__


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
    def size(self) -> int:
        n = 1
        for s in self._device._shape(self._data):
            n *= s
        return n

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

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._device.ops.to_dlpack(self._data, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device.ops.dlpack_device(self._data)

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
        return float(self.item())

    def __int__(self) -> int:
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
        if requires_grad and not self._dtype.is_floating:
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got {self._dtype.name}"
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
            t._node = autodiff.Node("alias", (self,), lambda g, out: (g,))
        return t

    def _like_full(self, value: float) -> Tensor:
        return Tensor._make(self._device.ops.full(self.shape, value, self._dtype), self._device)

    # ------------------------------------------------------------------ conversion
    def to(self, target: Any = None, dtype: Any = None, *, device: Any = None) -> Tensor:
        """Another dtype (`x.to(ag.float64)`) and/or another backend or device
        (`x.to(ag.backend("torch"))`, `x.to("jax")`); gradients flow through the move."""
        from agnostic import ops

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
            out = ops.to_device(out, device)
        if dtype is not None:
            out = ops.astype(out, dtype)
        return out

    def astype(self, dtype: Any, copy: bool = True) -> Tensor:
        from agnostic import ops

        return ops.astype(self, dtype, copy=copy)

    def __getitem__(self, key: Any) -> Tensor:
        from agnostic import ops

        return ops.getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(
            "tensors are values and do not support item assignment; use ag.where(mask, value, x), "
            "x.at[key].set(value) or x.at[key].add(value)"
        )

    @property
    def at(self) -> Any:
        """Functional updates: `x.at[key].set(v)` / `.add(v)` return new tensors (JAX style)."""
        from agnostic.ops import _IndexUpdater

        return _IndexUpdater(self)
