"""`torch.optim.lr_scheduler`: agnostic's schedulers, with torch's names and arguments."""
# ruff: noqa: F403  (a namespace of re-exports)

from agnostic.optim.lr_scheduler import *
