"""`torch.utils`: activation checkpointing (`torch.utils.checkpoint`), agnostic's own."""

from . import checkpoint as checkpoint
