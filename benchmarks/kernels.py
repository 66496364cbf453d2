"""Where the compiled JAX step's time goes, kernel by kernel, against optax's step.

`python -m benchmarks.kernels` (`--workload w1|w3`, `--steps N`) runs the two steps in turn under
`jax.profiler`, which records every kernel XLA:CPU runs and on which thread. A kernel counts for
the step whose annotation it falls in. It prints kernel time by kind (summed over threads), and how
long one kernel ran alone and how long two or more ran at once. The step times of BENCHMARKS.md
say how fast; this says where the kernels' time goes. The profiler's own cost per kernel can
outweigh a difference between the programs: under it, W3's forward and backward looked faster
than optax's while they were 7 % slower (ninth session). `benchmarks.components` times the
parts without it."""

from __future__ import annotations

import argparse
import bisect
import collections
import gzip
import json
import operator
import pathlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import w1_mlp, w3_lm
from benchmarks.programs import agnostic_parts, optax_parts

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", re.M)


@dataclass
class Profile:
    """One step's kernels, per step: ms by kind (summed over threads), ms with one kernel running
    and with two or more, and the step's wall time (ms)."""

    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    alone: float = 0.0
    together: float = 0.0
    wall: float = 0.0


def kind(name: str) -> str:
    """A kernel's kind: its name without XLA's numbering (`ynn_fusion.73` -> `ynn_fusion`)."""
    return re.sub(r"[._]\d+$", "", name)


def instructions(hlo: str) -> set[str]:
    """The names of the entry computation's instructions: what the profiler names kernels."""
    return set(_INSTRUCTION.findall(hlo.split("\nENTRY", 1)[1]))


def profile(module: Any, steps: int) -> dict[str, Profile]:
    """Run agnostic's compiled step and optax's `steps` times each, in turn, under the profiler."""
    import jax

    sides = {"agnostic compiled": agnostic_parts(module), "optax": optax_parts(module)}
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0  # Python frames traced would slow agnostic's side more
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True, profiler_options=options):
            for i in range(steps):  # each side first in every other round
                for name, (case, _) in list(sides.items())[:: 1 if i % 2 else -1]:
                    with jax.profiler.TraceAnnotation(name):
                        case.sync(case.step())
        (path,) = pathlib.Path(logdir).rglob("*.trace.json.gz")
        events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    return attribute(events, {name: instructions(hlo) for name, (_, hlo) in sides.items()}, steps)


def attribute(events: list[dict[str, Any]], kernels: dict[str, set[str]], steps: int) -> dict[str, Profile]:
    """Per side: the kernels (events named as one of its instructions) inside its annotations."""
    complete = sorted(
        ((e["ts"], e["ts"] + e["dur"], e["name"]) for e in events if e.get("ph") == "X"),
        key=operator.itemgetter(0),
    )
    starts = [s for s, _, _ in complete]
    out = {name: Profile() for name in kernels}
    for start, end, side in (c for c in complete if c[2] in kernels):
        first, last = bisect.bisect_left(starts, start), bisect.bisect_right(starts, end)
        inside = [c for c in complete[first:last] if c[2] in kernels[side]]
        p = out[side]
        p.wall += (end - start) / 1e3 / steps
        for s, t, name in inside:
            p.kinds[kind(name)] += (t - s) / 1e3 / steps
        edges = sorted([(s, 1) for s, _, _ in inside] + [(t, -1) for _, t, _ in inside])
        running, at = 0, start
        for ts, change in edges:
            if running == 1:
                p.alone += (ts - at) / 1e3 / steps
            elif running > 1:
                p.together += (ts - at) / 1e3 / steps
            running, at = running + change, ts
    return out


def table(profiles: dict[str, Profile], rows: int = 12) -> list[str]:
    """Markdown: the step, the time alone and together, then the `rows` kinds that take longest."""
    total: collections.Counter[str] = collections.Counter()
    for p in profiles.values():
        total.update(p.kinds)
    top = [k for k, _ in total.most_common(rows)]
    lines = [f"| ms per step | {' | '.join(profiles)} |", "|---|" + "---|" * len(profiles)]

    def row(label: str, value: Callable[[Profile], float]) -> None:
        lines.append(f"| {label} | {' | '.join(f'{value(p):.2f}' for p in profiles.values())} |")

    row("step (wall, profiled)", lambda p: p.wall)
    row("one kernel running", lambda p: p.alone)
    row("two or more at once", lambda p: p.together)
    row("all kernels, summed over threads", lambda p: sum(p.kinds.values()))
    for k in top:
        row(f"`{k}`", lambda p, k=k: p.kinds[k])
    row("other kinds", lambda p: sum(v for k, v in p.kinds.items() if k not in top))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("w1", "w3"), default="w3")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    module = {"w1": w1_mlp, "w3": w3_lm}[args.workload]
    print("\n".join(table(profile(module, args.steps))))


if __name__ == "__main__":
    main()
