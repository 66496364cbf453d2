"""benchmarks.components: each part's agnostic and native steps compute the same gradients, and
the table has a row per part and backend."""

from __future__ import annotations

import pytest

from benchmarks import components

pytest.importorskip("jax")
pytest.importorskip("torch")


def test_every_part_runs_on_both_backends_with_the_native_gradients(
    capsys: pytest.CaptureFixture[str],
) -> None:
    components.main(["--windows", "1", "--window-ms", "0"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    names = [p.name for p in components.parts()]
    assert [(r[0].lstrip("| "), r[1]) for r in rows] == [
        (name, backend) for name in names for backend in ("agnostic[jax] compiled", "agnostic[torch]")
    ]
    for row in rows:
        assert float(row[-1].rstrip(" |")) < 1e-5, row  # float32 rounding, not another computation
        assert float(row[-2]) > 0


def test_a_wrong_gradient_shows_in_the_difference() -> None:
    part = components.parts()[1]  # layer norm
    broken = components.Part(
        part.name,
        part.shapes,
        lambda F, p, d: part.agnostic(F, p, d) * 1.01,
        part.jax,
        part.torch,
        part.weights,
    )
    assert components.largest_difference(broken, "torch") > 5e-3
