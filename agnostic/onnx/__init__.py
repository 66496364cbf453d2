"""ONNX for agnostic: `export` a model for ONNX Runtime and other consumers, `load` an ONNX file as
a Module that runs and trains on any backend.

Needs the `onnx` package (`pip install agnostic[onnx]`); `import agnostic` does not import it.
"""

from __future__ import annotations

from agnostic.onnx.export import export
from agnostic.onnx.importer import OnnxImportError, OnnxModule, load
from agnostic.onnx.trace import ExportError

__all__ = ["export", "ExportError", "load", "OnnxImportError", "OnnxModule"]
