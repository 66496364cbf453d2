"""`torch.utils.checkpoint`: agnostic's activation checkpointing with torch's signatures
(`use_reentrant` accepted; one implementation serves both variants)."""

from agnostic.checkpointing import checkpoint, checkpoint_sequential

__all__ = ["checkpoint", "checkpoint_sequential"]
