"""`torch.nn`: agnostic's layers, which already have torch's names, constructor arguments (with
`inplace=`) and parameter layouts, plus torch-signature `functional`, `init` and `utils`."""
# ruff: noqa: F401, F403  (a namespace of re-exports)

from agnostic.nn import *
from agnostic.nn import init

from . import functional, utils
