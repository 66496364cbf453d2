"""`torch.nn.init`: agnostic's initializers, which already have torch's names, signatures and fan
rules; each replaces a Parameter's value (`Parameter.assign`) and returns it."""
# ruff: noqa: F403  (a namespace of re-exports)

from agnostic.nn.init import *
