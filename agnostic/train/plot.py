"""The training history as a PNG, drawn with matplotlib's object API (no pyplot global state, no
display needed), so it works in scripts, servers and threads alike."""

from __future__ import annotations

import io
import os

from agnostic.io import atomic_write_bytes

__all__ = ["plot_history", "require_matplotlib"]

_NOT_PLOTTED = {"epoch", "step", "time", "lr"}


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plotting the training history needs matplotlib: pip install matplotlib (or agnostic[train])"
        ) from None


def plot_history(history: list[dict[str, float]], path: str | os.PathLike) -> None:
    """One panel per quantity (loss, accuracy, ...), training and validation curves together."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names: list[str] = []
    for row in history:
        for k in row:
            base = k.removeprefix("val_")
            if k not in _NOT_PLOTTED and base not in names:
                names.append(base)
    fig = Figure(figsize=(4.5 * max(len(names), 1), 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    epochs = [row["epoch"] for row in history]
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    atomic_write_bytes(path, out.getvalue())
