"""The CuPy backend: the NumPy implementation (`_xp.py`) run on a CUDA device.

Only this module imports cupy, and only when the backend is first asked for. Without cupy, or
without a visible CUDA device, asking for it raises a clear error and its conformance run is
skipped with that reason. CuPy has no bfloat16, so this backend refuses it by name.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy
import cupyx
import numpy as np

from agnostic import dtypes
from agnostic.backends._xp import XPBackend
from agnostic.backends.base import COMPOSITES, DEFAULTS, PRIMITIVES, Array, DeviceUnavailable
from agnostic.dtypes import DType


class CupyBackend(XPBackend):
    """Primitives on CuPy arrays on one CUDA device."""

    name = "cupy"
    xp = cupy

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as e:
            return False, f"CuPy sees no CUDA device ({e})"
        if count == 0:
            return False, "CuPy sees no CUDA device"
        return True, ""

    @classmethod
    def library_version(cls) -> str:
        return cupy.__version__

    @classmethod
    def devices(cls) -> list[str]:
        ok, _ = cls.available()
        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())] if ok else []

    @classmethod
    def canonical_device(cls, device: str | int | None) -> str:
        if device is None or device == "cuda":
            device = 0
        if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
            device = int(device[5:])  # ("cuda:x" stays a string: an unknown device below)
        if not isinstance(device, int) or f"cuda:{device}" not in cls.devices():
            error = DeviceUnavailable if isinstance(device, int) and device >= 0 else ValueError
            raise error(f"backend 'cupy': unknown device {device!r}; available: {', '.join(cls.devices())}")
        return f"cuda:{device}"

    def __init__(self, device: str | int | None = None) -> None:
        super().__init__(device)
        self._cuda_device = cupy.cuda.Device(int(self.device.split(":", 1)[1]))
        self._total_memory: int | None = None

    def memory_capacity(self) -> int | None:
        if self._total_memory is None:  # asked of the driver once: (free, total) bytes
            self._total_memory = int(self._cuda_device.mem_info[1])
        return self._total_memory

    def native_dtype(self, dtype: DType) -> Any:
        if dtype is dtypes.bfloat16:
            raise TypeError("backend 'cupy': CuPy has no bfloat16; use float16 or float32 on this backend")
        return self._native_dtypes[dtype]

    def cast(self, a: Array, dtype: DType) -> Array:
        return a.astype(self.native_dtype(dtype))

    def from_numpy(self, array: np.ndarray) -> Array:
        if array.dtype == dtypes.to_numpy_dtype(dtypes.bfloat16):
            self.native_dtype(dtypes.bfloat16)
        return cupy.array(array, copy=True)

    def to_numpy(self, a: Array) -> np.ndarray:
        return cupy.asnumpy(a)

    def _add_at(self, out: Array, key: tuple, values: Array) -> None:
        cupyx.scatter_add(out, key, values)

    def erf(self, a: Array) -> Array:
        import cupyx.scipy.special  # loads CUDA libraries: only once a device is in use

        return cupyx.scipy.special.erf(a)


def _on_own_device(fn: Any) -> Any:
    """CuPy runs each call on the *current* CUDA device: make it this backend's for the call, so a
    tensor on cuda:1 is computed on cuda:1 whatever device the user's code made current."""

    @functools.wraps(fn)
    def method(self: CupyBackend, *args: Any, **kwargs: Any) -> Any:
        with self._cuda_device:
            return fn(self, *args, **kwargs)

    return method


# no device work: keep them lean
_METADATA = {"native_dtype", "dtype_of", "shape", "is_native", "is_out_of_memory"}
for _name in sorted((set(PRIMITIVES) | set(COMPOSITES) | set(DEFAULTS)) - _METADATA):
    setattr(CupyBackend, _name, _on_own_device(getattr(CupyBackend, _name)))
