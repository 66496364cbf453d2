"""Automatic mixed precision: `autocast` (which ops run in a low precision) and `GradScaler`
(loss scaling for float16), as `torch.amp` names them."""

from agnostic.amp.grad_scaler import GradScaler, GradScalerError
from agnostic.autocast import autocast, get_autocast_dtype, is_autocast_enabled

__all__ = ["autocast", "GradScaler", "GradScalerError", "is_autocast_enabled", "get_autocast_dtype"]
