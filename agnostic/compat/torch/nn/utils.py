"""`torch.nn.utils`: agnostic's gradient clipping, with torch's names and arguments."""
# ruff: noqa: F403  (a namespace of re-exports)

from agnostic.nn.utils import *
