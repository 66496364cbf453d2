"""benchmarks.memory: the harness measures a tiny case per backend in a fresh subprocess, the graph
walk counts what a forward keeps, and bad arguments get an error that names the choices."""

from __future__ import annotations

import math

import pytest

from benchmarks import memory


def _runs(name: str) -> bool:
    import agnostic as ag

    try:
        ag.backend(name)
    except Exception:
        return False
    return True


@pytest.mark.parametrize(
    "backend, kind",
    [("numpy", "eager"), ("torch", "native"), ("torch", "eager"), ("jax", "native"), ("jax", "compiled")],
)
def test_tiny_case_in_a_fresh_process(backend: str, kind: str) -> None:
    if not _runs(backend):
        pytest.skip(f"backend {backend} does not run here")
    r = memory.measure("tiny", backend, kind, "plain", steps=2, prewarm=False, timeout=300)
    assert r.error == "", r.error
    for value in (r.base_mb, r.first_mb, r.step_mb, r.kept_mb):
        assert math.isfinite(value)
    assert r.base_mb > 10  # the interpreter and the library at least
    assert r.first_mb >= r.kept_mb - 1  # the first step's peak covers what it keeps
    assert math.isfinite(r.loss) and 3.0 < r.loss < 5.0  # ln(64) = 4.16 at the start


def test_unbuilt_or_failing_case_reports_its_error() -> None:
    """A case that cannot run (no native NumPy reference) is a row with the reason, not a crash."""
    r = memory.measure("tiny", "numpy", "native", "plain", steps=2, prewarm=False, timeout=300)
    assert "no native case for backend 'numpy'" in r.error
    assert "no native case" in memory.table([r])


def test_cases_leave_out_what_does_not_exist() -> None:
    got = set(memory.cases(["numpy", "torch"], list(memory.KINDS), ["plain"]))
    assert ("numpy", "native", "plain") not in got and ("numpy", "compiled", "plain") not in got
    assert {("torch", k, "plain") for k in memory.KINDS} <= got


def test_table_ratios_against_native_and_plain() -> None:
    R = memory.Result
    rows = [
        R("w3_256", "torch", "native", "plain", 4, step_mb=100.0, first_mb=1, kept_mb=1, seconds=1),
        R("w3_256", "torch", "eager", "plain", 4, step_mb=105.0, first_mb=1, kept_mb=1, seconds=1),
        R("w3_256", "torch", "native", "ckpt", 4, step_mb=50.0, first_mb=1, kept_mb=1, seconds=1),
        R("w3_256", "torch", "eager", "ckpt", 4, step_mb=60.0, first_mb=1, kept_mb=1, seconds=1),
    ]
    text = memory.table(rows)
    assert "| w3_256 | torch | eager | plain | 105 | 1.05 | - |" in text
    assert "| w3_256 | torch | eager | ckpt | 60 | 1.20 | 0.57 |" in text
    assert "| w3_256 | torch | native | ckpt | 50 | - | 0.50 |" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "w9"], "--models: unknown ['w9']"),
        (["--variants", "fp8"], "--variants: unknown ['fp8']"),
        (["--kinds", "jit"], "--kinds: unknown ['jit']"),
        (["--steps", "1"], "--steps: at least 2"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        memory.main(argv)
    assert message in capsys.readouterr().err


def test_graph_bytes_counts_the_saved_activations() -> None:
    """The walk finds every op's saved tensors once; agnostic keeps at least what torch saves
    (matmul inputs, attention, norms) and not more than every tensor the forward made."""
    if not _runs("torch"):
        pytest.skip("the comparison needs torch")
    rows = memory.graph_bytes("numpy", "tiny")
    ours, theirs = sum(r[1] for r in rows), sum(r[2] for r in rows)
    assert ours > 0 and theirs > 0
    lm = memory.MODELS["tiny"]
    activation = lm.batch * lm.seq * lm.d * 4
    assert ours >= activation and theirs >= activation
    assert {r[0] for r in rows if r[1]} >= {"linear", "layer_norm"}


@pytest.mark.parametrize("variant", ["plain", "bf16"])
def test_graph_keeps_what_torch_saves(variant: str) -> None:
    """A node keeps only what its rule reads: the graph after the forward holds the bytes torch's
    saved tensors hold (within 2%), in float32 and under bf16 autocast, where a cast's float32
    input is not kept (it was twice torch's before nodes stopped pinning their inputs)."""
    if not _runs("torch"):
        pytest.skip("the comparison needs torch")
    rows = memory.graph_bytes("torch", "tiny", variant)
    ours, theirs = sum(r[1] for r in rows), sum(r[2] for r in rows)
    assert ours <= 1.02 * theirs, rows
