"""torch.inference_mode: no_grad that can also be switched off (`inference_mode(False)`)."""

from __future__ import annotations

import contextlib

from agnostic.autodiff import no_grad

__all__ = ["inference_mode"]


class inference_mode(contextlib.ContextDecorator):
    """Record nothing inside (a `with` block or decorator); `inference_mode(False)` changes nothing.
    agnostic has one no-grad mode, so this is `no_grad` (tensors made inside may later be used
    with autodiff, which torch forbids)."""

    def __init__(self, mode: bool = True) -> None:
        self._mode = bool(mode)
        self._inner: list[contextlib.AbstractContextManager] = []

    def __enter__(self) -> None:
        cm = no_grad() if self._mode else contextlib.nullcontext()
        cm.__enter__()
        self._inner.append(cm)

    def __exit__(self, *exc: object) -> None:
        self._inner.pop().__exit__(*exc)

    def _recreate_cm(self) -> inference_mode:
        return type(self)(self._mode)
