"""`torch.optim`: agnostic's optimizers, which already take torch's arguments (param-group dicts,
`betas=`, and `foreach=` / `fused=` / `capturable=` accepted) and keep torch's state_dict layout."""
# ruff: noqa: F401, F403  (a namespace of re-exports)

from agnostic.optim import *

from . import lr_scheduler
