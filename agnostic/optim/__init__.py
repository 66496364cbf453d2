"""Optimizers written with tensor ops, so each runs on every backend; torch.optim's semantics and
state_dict layout."""

from agnostic.optim import lr_scheduler
from agnostic.optim.adam import Adam, AdamW
from agnostic.optim.adaptive import Adagrad, Lion, RMSprop
from agnostic.optim.optimizer import Optimizer
from agnostic.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Lion", "Optimizer", "lr_scheduler"]
