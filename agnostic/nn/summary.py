"""`model.summary(x)`: a model's layers as a table, with output shapes and parameter counts.

As Keras's `model.summary()` and torchinfo's `summary(model, input_size)` show it: one row per
module, nested modules indented under their parent, the shape of what each returned when the model
ran once on the given input (a module called twice shows its first call), the parameters each holds
itself (a shared one is counted once, at its first holder, so the column adds up to the total), and
total / trainable / non-trainable counts. Looking changes nothing: the model runs in eval mode under
`no_grad`, and every module's train/eval mode and buffers (BatchNorm's running statistics) are put
back as they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from agnostic.autodiff import no_grad
from agnostic.device import get_default_backend
from agnostic.nn.module import Module, changes
from agnostic.tensor import Tensor

__all__ = ["Summary", "SummaryRow", "summary"]


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One module: its dotted name ("" for the model), class, nesting depth, output shapes (None
    when it did not run) and the number of parameters it holds itself."""

    name: str
    kind: str
    depth: int
    output: str | None
    params: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """The table (its `str`) and its numbers. Buffers are state that is not trained (running
    statistics): not parameters, as in PyTorch, but saved in the state dict."""

    rows: tuple[SummaryRow, ...]
    total: int
    trainable: int
    buffers: int
    ran: bool

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    def __str__(self) -> str:
        labels = [
            "  " * r.depth + (f"{r.name.rsplit('.', 1)[-1]} ({r.kind})" if r.depth else r.kind)
            for r in self.rows
        ]
        params = [f"{r.params:,}" if r.params else "--" for r in self.rows]
        columns = [("Layer (type)", labels, "<")]
        if self.ran:
            columns.append(("Output shape", [r.output or "--" for r in self.rows], "<"))
        columns.append(("Params", params, ">"))
        widths = [max(len(head), *(len(v) for v in values)) for head, values, _ in columns]

        def line(cells: Sequence[str]) -> str:
            return "   ".join(
                f"{c:{align}{w}}" for c, w, (_, _, align) in zip(cells, widths, columns)
            ).rstrip()

        rule = "=" * (sum(widths) + 3 * (len(widths) - 1))
        body = [line(cells) for cells in zip(*(values for _, values, _ in columns))]
        return "\n".join(
            [
                line([head for head, _, _ in columns]),
                rule,
                *body,
                rule,
                f"Total params: {self.total:,}",
                f"Trainable params: {self.trainable:,}",
                f"Non-trainable params: {self.non_trainable:,}",
                *([f"Buffers (not parameters): {self.buffers:,} values"] if self.buffers else []),
            ]
        )

    __repr__ = __str__


def summary(model: Module, *inputs: Any, **kwargs: Any) -> Summary:
    """The table of `model`'s layers. With `inputs` (Tensors, NumPy arrays, or shapes such as
    `(64, 1, 8, 8)` for float32 zeros on the model's backend) and any keyword arguments of its
    `forward`, the model runs once to find each layer's output shapes; without, the table has the
    parameter counts only."""
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected an nn.Module, got {type(model).__name__}")
    args = tuple(_input(x, i, model) for i, x in enumerate(inputs))
    named = list(model.named_modules())
    ran = bool(args or kwargs)
    outputs = _output_shapes(model, [m for _, m in named], args, kwargs) if ran else {}
    rows, seen, total, trainable = [], set(), 0, 0
    for name, m in named:
        own = 0
        for p in m._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                own += p.size
                trainable += p.size if p.requires_grad else 0
        total += own
        rows.append(SummaryRow(name, type(m).__name__, name.count(".") + 1 if name else 0,
                               outputs.get(id(m)), own))  # fmt: skip
    buffers = sum(b.size for _, b in model.named_buffers())
    return Summary(tuple(rows), total, trainable, buffers, ran)


def _input(x: Any, index: int, model: Module) -> Any:
    """A positional input of the forward as a Tensor on the model's backend."""
    if isinstance(x, Tensor):
        return x
    device = model.backend or get_default_backend()
    if isinstance(x, np.ndarray):
        return device.tensor(x)
    if isinstance(x, (tuple, list)) and all(isinstance(d, int) and not isinstance(d, bool) for d in x):
        return device.zeros(tuple(x))
    raise TypeError(
        f"summary({type(model).__name__}): input {index} must be a Tensor, a NumPy array or a shape "
        f"(a tuple of ints, for float32 zeros), got {type(x).__name__} {x!r}; pass other arguments "
        "of forward as keywords"
    )


def _output_shapes(model: Module, modules: list[Module], args: tuple, kwargs: dict) -> dict[int, str]:
    """Run `model(*args, **kwargs)` once with every module's forward wrapped to note what it returns;
    put every module back as it was."""
    shapes: dict[int, str] = {}
    saved = [(m, m.training, dict(m._buffers), m.__dict__.get("forward")) for m in modules]

    def noting(m: Module, forward: Any) -> Any:
        def forward_noting_shapes(*a: Any, **k: Any) -> Any:
            out = forward(*a, **k)
            shapes.setdefault(id(m), _shape_text(out))
            return out

        return forward_noting_shapes

    try:
        for m in modules:
            m.__dict__["forward"] = noting(m, m.forward)
        model.eval()
        with no_grad():
            model(*args, **kwargs)
    finally:
        for m, training, buffers, forward in saved:
            if forward is None:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = forward
            object.__setattr__(m, "training", training)
            m._buffers.clear()
            m._buffers.update(buffers)
        changes.count += 1  # modes were switched and back: a compiled step gathers its state again
    return shapes


def _shape_text(out: Any) -> str:
    """[2, 5, 16] for a tensor; nested in parentheses for a tuple or list (LSTM's (output, (h, c)))."""
    if isinstance(out, Tensor):
        return str(list(out.shape))
    if isinstance(out, (tuple, list)):
        return "(" + ", ".join(_shape_text(o) for o in out) + ")"
    if isinstance(out, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in out.items()) + "}"
    return "None" if out is None else type(out).__name__
