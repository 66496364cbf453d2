"""The suite covers the whole op-set: every primitive and composite of the base Backend is named in
the COVERS set of some conformance module that exercises it."""

from __future__ import annotations

import importlib
import pkgutil

import agnostic.conformance as suite
from agnostic.backends.base import COMPOSITES, PRIMITIVES

# entries of the op-set that are plumbing, checked wherever any tensor is made or read
NOT_OPS = {"native_dtype", "dtype_of", "shape", "is_native"}


def test_every_primitive_and_composite_is_covered() -> None:
    covered: set[str] = set()
    for info in pkgutil.iter_modules(suite.__path__):
        if info.name.startswith("test_"):
            module = importlib.import_module(f"agnostic.conformance.{info.name}")
            covered |= set(getattr(module, "COVERS", ()))
    missing = sorted((set(PRIMITIVES) | set(COMPOSITES)) - NOT_OPS - covered)
    assert not missing, f"op-set entries no conformance module covers: {missing}"
