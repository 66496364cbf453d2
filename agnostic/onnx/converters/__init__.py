"""ONNX op converters, one module per family; importing this package registers them all."""

from agnostic.onnx.converters import (  # noqa: F401
    control,
    elementwise,
    ml,
    nn,
    quantize,
    sequence,
    shape,
    signal,
    training,
)
