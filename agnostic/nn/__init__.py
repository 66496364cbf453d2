"""Neural-network modules: write a model once, build it on any backend.

`Module` finds parameters, buffers and submodules automatically and names them as PyTorch does;
`Model(..., backend=B)` builds a model and every layer it creates on B.
"""

from agnostic.nn.linear import Flatten, Identity, Linear, Unflatten
from agnostic.nn.module import Module, ModuleDict, ModuleList, Sequential
from agnostic.nn.parameter import Parameter

__all__ = [
    "Flatten", "Identity", "Linear", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential",
    "Unflatten",
]  # fmt: skip
