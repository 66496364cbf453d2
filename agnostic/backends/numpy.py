"""The NumPy backend: the embedded default, CPU only, complete for the whole op-set."""

from __future__ import annotations

import numpy as np

from agnostic.backends._xp import XPBackend
from agnostic.backends.base import Array


class NumpyBackend(XPBackend):
    """Primitives on NumPy arrays (bfloat16 through ml_dtypes)."""

    name = "numpy"
    xp = np

    @classmethod
    def library_version(cls) -> str:
        return np.__version__

    def to_numpy(self, a: Array) -> np.ndarray:
        view = np.asarray(a).view()  # reductions may hand back NumPy scalars
        view.flags.writeable = False  # tensors are values: the host view must not change them
        return view
