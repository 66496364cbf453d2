"""The XLA programs of the compiled JAX steps against optax's: parameters and kernels of each.

`python -m benchmarks.programs` prints, for W1 and W3, how many parameters and kernels (fusions,
dots, custom calls) the entry computation of each compiled program has, as XLA:CPU built it. The
step times of BENCHMARKS.md say how fast; this says what runs, without the VM's noise."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from benchmarks import w1_mlp, w3_lm
from benchmarks.harness import Case

_KERNEL = re.compile(r"^\s*\S+ = (\S+?)(?:\{[^}]*\})? (fusion|dot|custom-call|convolution)\(", re.M)


def counts(hlo: str) -> dict[str, int]:
    """Parameters, kernels, and the kernels that compute one number (`f32[]`), of the entry
    computation of a compiled program's text."""
    entry = hlo.split("\nENTRY", 1)[1]
    kernels = _KERNEL.findall(entry)
    scalar = Counter(shape for shape, _ in kernels if shape.endswith("[]"))
    return {
        "parameters": len(re.findall(r" parameter\(\d+\)", entry)),
        "kernels": len(kernels),
        "scalar kernels": sum(scalar.values()),
    }


def agnostic_parts(module: Any) -> tuple[Case, str]:
    """The workload's compiled agnostic step, warmed up, and its XLA program's text."""
    case = module.agnostic_case("jax", compiled=True)
    for _ in range(2):
        case.sync(case.step())
    (entry,) = [e for entries in case.step._cache.values() for e in entries]
    return case, entry.run.as_text()


def optax_parts(module: Any) -> tuple[Case, str]:
    """The workload's native jax.jit + optax step, warmed up, and its XLA program's text."""
    case = module.native_case("jax")
    case.sync(case.step())
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
    update, state = cells["PjitFunction"], cells["list"]
    return case, update.lower(state[0], state[1]).compile().as_text()


def main() -> None:
    print("| workload | program | parameters | kernels | scalar kernels |")
    print("|---|---|---|---|---|")
    for name, module in (("W1", w1_mlp), ("W3", w3_lm)):
        for side, (_, hlo) in (("agnostic compiled", agnostic_parts(module)), ("optax", optax_parts(module))):
            c = counts(hlo)
            print(f"| {name} | {side} | {c['parameters']} | {c['kernels']} | {c['scalar kernels']} |")


if __name__ == "__main__":
    main()
