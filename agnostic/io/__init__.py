"""Saving and loading: one safetensors file per object, written atomically, read without pickle.

`ag.save(obj, path)` / `ag.load(path, backend=...)` take a state dict, an optimizer state, or any
nested structure of tensors and plain values; `agnostic.train` builds its checkpoints on them.
"""

from agnostic.io.atomic import atomic_write_bytes
from agnostic.io.safetensors_file import CheckpointError
from agnostic.io.tree_file import FORMAT, load, read_metadata, save

__all__ = ["FORMAT", "CheckpointError", "atomic_write_bytes", "load", "read_metadata", "save"]
