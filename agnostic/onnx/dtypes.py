"""ONNX element types and agnostic dtypes: the one table both directions read."""

from __future__ import annotations

from agnostic import dtypes
from agnostic.dtypes import DType

# TensorProto.DataType numbers (onnx.TensorProto), written out so this table needs no onnx import
_ONNX_TO_AG: dict[int, DType] = {
    1: dtypes.float32,
    2: dtypes.uint8,
    3: dtypes.int8,
    5: dtypes.int16,
    6: dtypes.int32,
    7: dtypes.int64,
    4: dtypes.uint16,
    9: dtypes.bool,
    10: dtypes.float16,
    11: dtypes.float64,
    12: dtypes.uint32,
    13: dtypes.uint64,
    14: dtypes.complex64,
    15: dtypes.complex128,
    16: dtypes.bfloat16,
}
_AG_TO_ONNX: dict[str, int] = {d.name: code for code, d in _ONNX_TO_AG.items()}

ONNX_NAMES: dict[int, str] = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
    7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
    14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ",
    19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1",
    24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
}  # fmt: skip


class UnsupportedDType(TypeError):
    """An ONNX element type agnostic has no dtype for (strings, float8, float4, int4, int2)."""


def from_onnx(code: int) -> DType:
    """The agnostic dtype of ONNX element type `code`."""
    try:
        return _ONNX_TO_AG[code]
    except KeyError:
        name = ONNX_NAMES.get(code, str(code))
        raise UnsupportedDType(
            f"ONNX element type {name} has no agnostic dtype (supported: "
            f"{', '.join(ONNX_NAMES[c] for c in sorted(_ONNX_TO_AG))})"
        ) from None


def to_onnx(dtype: DType) -> int:
    """The ONNX element type of agnostic dtype `dtype`."""
    return _AG_TO_ONNX[dtypes.as_dtype(dtype).name]
