"""The XLA programs of the compiled JAX steps against optax's: parameters and kernels of each.

`python -m benchmarks.programs` prints, for W1 and W3, how many parameters and kernels (fusions,
dots, custom calls) the entry computation of each compiled program has, as XLA:CPU built it. The
step times of BENCHMARKS.md say how fast; this says what runs, without the VM's noise."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from benchmarks import w1_mlp, w3_lm

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


def agnostic_program(module: Any) -> str:
    case = module.agnostic_case("jax", compiled=True)
    for _ in range(2):
        case.sync(case.step())
    (entry,) = [e for entries in case.step._cache.values() for e in entries]
    return entry.run.as_text()


def optax_program(module: Any) -> str:
    case = module.native_case("jax")
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
    update, state = cells["PjitFunction"], cells["list"]
    return update.lower(state[0], state[1]).compile().as_text()


def main() -> None:
    print("| workload | program | parameters | kernels | scalar kernels |")
    print("|---|---|---|---|---|")
    for name, module in (("W1", w1_mlp), ("W3", w3_lm)):
        for side, hlo in (("agnostic compiled", agnostic_program(module)), ("optax", optax_program(module))):
            c = counts(hlo)
            print(f"| {name} | {side} | {c['parameters']} | {c['kernels']} | {c['scalar kernels']} |")


if __name__ == "__main__":
    main()
