"""Issue 23 part 4's benchmark cases: W1-W3 under bfloat16 autocast (agnostic eager and compiled,
torch.autocast, the jmp-style JAX step), the float32 cases left as they were, the CLI, the GPU
script's checkpointed and autocast GPT cases on CPU devices, and the NumPy backend's bfloat16
products (float32 BLAS on the exactly widened inputs, one rounding) against float64 NumPy."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import agnostic as ag
import agnostic.functional as F
from benchmarks import precision, w1_mlp, w2_cnn, w3_lm
from benchmarks.gpu import SMALL_GPT

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKLOADS = {"w1": w1_mlp, "w2": w2_cnn, "w3": w3_lm}
BF16 = "bf16-mixed"


def _needs(backend: str) -> None:
    if backend in ("torch", "jax"):
        pytest.importorskip(backend)
    if backend == "jax":
        pytest.importorskip("optax", reason="the native JAX reference uses optax (pip install optax)")


def _losses(case: Any, steps: int = 2) -> list[float]:
    """The loss of each of `steps` training steps, as a Python float (from either library)."""
    out = []
    for _ in range(steps):
        value = case.step()
        case.sync(value)
        value = getattr(value, "data", value)  # an agnostic Tensor's native array
        out.append(float(value.detach() if hasattr(value, "detach") else value))
    return out


def _closure(case: Any) -> dict[str, Any]:
    return {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}


# ------------------------------------------------------------------ the agnostic and native cases
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_bf16_mixed_steps_run_in_bfloat16_near_the_float32_step(workload: str, backend: str) -> None:
    """Each bf16-mixed case trains: its losses are finite, differ from the float32 step's (bfloat16
    products did run) and stay within bfloat16's rounding of them; the parameters stay float32."""
    _needs(backend)
    module = WORKLOADS[workload]
    pairs = [(module.agnostic_case(backend, precision=BF16), module.agnostic_case(backend))]
    native = module.native_case(backend, precision=BF16)
    if backend == "numpy":
        assert native is None  # NumPy has no native bfloat16 step
    else:
        pairs.append((native, module.native_case(backend)))
    for low, full in pairs:
        assert low.name == f"{full.name} {BF16}"
        got, want = _losses(low), _losses(full)
        assert all(np.isfinite(got)), (low.name, got)
        assert got != want, f"{low.name}: the same losses as float32: nothing ran in bfloat16"
        np.testing.assert_allclose(got, want, rtol=2e-2, err_msg=low.name)
    model = _closure(pairs[0][0]).get("Sequential") or _closure(pairs[0][0]).get("Model")
    assert {p.dtype for p in model.parameters()} == {ag.float32}  # master weights


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bf16_mixed_compiled_steps_match_eager(backend: str) -> None:
    """`ag.compile` on the autocast step: the same losses as the eager autocast step (W1)."""
    _needs(backend)
    eager = _losses(w1_mlp.agnostic_case(backend, precision=BF16), 3)
    compiled = w1_mlp.agnostic_case(backend, compiled=True, precision=BF16)
    assert compiled.name == f"agnostic[{backend}] {BF16} compiled"
    np.testing.assert_allclose(_losses(compiled, 3), eager, rtol=1e-3)


def test_the_jax_reference_casts_to_bfloat16_only_when_mixed() -> None:
    """The jmp-style JAX step's program has bfloat16 products; the float32 program has none."""
    _needs("jax")
    for module in WORKLOADS.values():
        for prec, has in ((BF16, True), ("32", False)):
            cells = _closure(module.native_case("jax", precision=prec))
            state = cells["list"]
            text = cells["PjitFunction"].lower(state[0], state[1]).as_text()
            assert ("bf16" in text) is has, (module.__name__, prec)
            assert {leaf.dtype.name for leaf in __import__("jax").tree.leaves(state[0])} == {"float32"}


def test_float32_cases_are_unchanged() -> None:
    """The default precision is "32": the same names, and no autocast in the step."""
    assert w1_mlp.agnostic_case("numpy").name == "agnostic[numpy]"
    assert w1_mlp.native_case("numpy").name == "native numpy (hand-written)"
    assert w1_mlp.native_case("numpy", precision=BF16) is None
    np.testing.assert_array_equal(
        _losses(w2_cnn.agnostic_case("numpy")), _losses(w2_cnn.agnostic_case("numpy", precision="32"))
    )


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision 'fp8': choose from '32', 'bf16-mixed'"):
        w1_mlp.agnostic_case("numpy", precision="fp8")


# ------------------------------------------------------------------ checkpointing in the GPT cases
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_checkpointed_lm_trains_as_the_plain_one(backend: str) -> None:
    """`LM(checkpoint=True)` (every layer recomputed in the backward) gives the same losses."""
    _needs(backend)
    plain, ckpt = SMALL_GPT, replace(SMALL_GPT, checkpoint=True)
    makers = [lambda lm: w3_lm.agnostic_case(backend, lm=lm)]
    if backend != "numpy":
        makers.append(lambda lm: w3_lm.native_case(backend, lm=lm))
    for make in makers:
        np.testing.assert_allclose(_losses(make(ckpt), 3), _losses(make(plain), 3), rtol=1e-5)


# ------------------------------------------------------------------ the command lines
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_the_precision_table_runs() -> None:
    _needs("torch")
    out = _run(
        "benchmarks", "--precision", BF16, "--only", "w1", "--backends", "numpy,torch",
        "--windows", "1", "--steps", "1", "--window-ms", "0", "--threads", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "threads: 1 (ag.set_num_threads" in out.stdout and "PJRT_NPROC=1" in out.stdout
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| W1")]
    by_case = {r[2]: r for r in rows}
    assert set(by_case) == {
        "agnostic[numpy]", "agnostic[torch]", "agnostic[torch], ag.compile", "torch (eager, torch.optim)",
    }  # fmt: skip
    assert by_case["agnostic[numpy]"][6] == "no native bf16 step"
    for row in rows:
        assert float(row[5]) > 0  # bf16-mixed / float32
    assert float(by_case["agnostic[torch]"][6]) > 0 and float(by_case["agnostic[torch]"][7].rstrip(" |")) > 0


def test_the_precision_command_line_refuses_bad_choices() -> None:
    out = _run("benchmarks", "--precision", BF16, "--only", "w4")
    assert out.returncode == 2 and "--only ['w4']: choose from w1, w2, w3, products, programs" in out.stderr
    out = _run("benchmarks", "--precision", "fp8")
    assert out.returncode == 2 and "invalid choice: 'fp8'" in out.stderr
    out = _run("benchmarks", "--threads", "0")
    assert out.returncode == 2 and "--threads 0: at least 1" in out.stderr


def test_the_gpu_scripts_gpt_cases_run_on_cpu_devices() -> None:
    """`benchmarks.gpu --cpu --memory` with issue 23's GPT case of both kinds at once (autocast with
    float32 weights, every layer checkpointed): both libraries, agnostic eager and compiled and
    native; on NumPy, which has no autocast case, a comment says so."""
    _needs("torch")
    _needs("jax")
    out = _run(
        "benchmarks.gpu", "--cpu", "--only", "gpt-amp-ckpt", "--backends", "numpy,torch,jax",
        "--windows", "1", "--steps", "1", "--warmup", "1", "--memory",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| GPT")]
    # --memory: the compiled JAX programs' temporary buffers; nothing read for the others on a CPU
    memory = {(r[1], r[3]): r[9].rstrip(" |") for r in rows}
    assert memory["jax", f"agnostic[jax] {BF16} compiled"].endswith(" MiB")
    assert memory["jax", f"native jax (jit, optax) {BF16}"].endswith(" MiB")
    assert memory["torch", f"agnostic[torch] {BF16}"] == "-"
    assert rows and all(
        r[0].endswith("autocast bf16 (float32 weights), checkpoint every layer") for r in rows
    )
    got = {(r[1], r[2], r[3]) for r in rows}
    for b in ("torch", "jax"):
        assert {(b, BF16, f"agnostic[{b}] {BF16}"), (b, BF16, f"agnostic[{b}] {BF16} compiled")} <= got
        assert any(r[:2] == (b, BF16) and r[2].startswith("native") for r in got)
    assert not any(r[0] == "numpy" for r in got)
    assert "checkpoint every layer: not on numpy (bfloat16 autocast runs on torch, jax)" in out.stdout
    assert all(float(r[6]) > 0 for r in rows if r[6] != "-")


def test_threads_are_reported() -> None:
    assert precision.set_threads(None).startswith("threads: the libraries' defaults")


# ------------------------------------------------------------------ NumPy's bfloat16 products
def _bf16(a: np.ndarray) -> np.ndarray:
    import ml_dtypes

    return a.astype(ml_dtypes.bfloat16)


def test_numpy_bf16_matmul_is_float32_blas_rounded_once() -> None:
    """ml_dtypes' matmul runs NumPy's float32 loop (BLAS) on the widened inputs, and the backend
    rounds the result once to bfloat16: torch's CPU kernels' fp32 accumulation. Exact where the
    float32 sums are (small integers); else within one bfloat16 rounding of float64's."""
    B = ag.backend("numpy")
    rng = np.random.default_rng(0)
    ints = (
        _bf16(rng.integers(-8, 9, (64, 96)).astype(np.float32)),
        _bf16(rng.integers(-8, 9, (96, 48)).astype(np.float32)),
    )
    got = B.ops.matmul(*ints)
    assert got.dtype.name == "bfloat16"
    want = _bf16(ints[0].astype(np.float64) @ ints[1].astype(np.float64))
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))
    a, b = _bf16(rng.normal(size=(128, 784))), _bf16(rng.normal(size=(784, 64)))
    got = ag.matmul(B.tensor(a), B.tensor(b)).numpy().astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = a64 @ b64
    # one rounding to bfloat16 (half a step: at most 2**-8 relative) of a float32 sum, whose
    # error is at most n float32 roundings of the absolute terms; a bfloat16 accumulation is not
    bound = 2.0**-8 * np.abs(exact) + 784 * 2.0**-24 * (np.abs(a64) @ np.abs(b64))
    assert np.all(np.abs(got - exact) <= bound)
    acc = np.zeros_like(exact, dtype=a.dtype)  # the control: a sum accumulated in bfloat16
    for k in range(a.shape[1]):
        acc = (acc + a[:, k : k + 1] * b[k]).astype(a.dtype)
    assert not np.all(np.abs(acc.astype(np.float64) - exact) <= bound)
    assert np.matmul(a, b).dtype == np.float32, "ml_dtypes no longer uses the float32 (BLAS) loop"


def test_numpy_bf16_conv_matches_float64_rounded() -> None:
    B = ag.backend("numpy")
    rng = np.random.default_rng(1)
    x, w = _bf16(rng.normal(size=(4, 3, 10, 10))), _bf16(rng.normal(size=(8, 3, 3, 3)))
    got = F.conv2d(B.tensor(x), B.tensor(w), padding=1)
    assert got.dtype == ag.bfloat16
    torch = pytest.importorskip("torch")
    exact = torch.nn.functional.conv2d(
        torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), padding=1
    ).numpy()
    np.testing.assert_allclose(
        got.numpy().astype(np.float64), exact, rtol=2.0**-7, atol=2.0**-7 * np.abs(exact).max()
    )


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_the_products_run_in_both_dtypes(backend: str) -> None:
    """`benchmarks.precision`'s products alone: the bfloat16 case computes in bfloat16 (NumPy: its
    result is float32, ml_dtypes' widened BLAS loop), close to the float32 case."""
    _needs(backend)
    for what in precision.PRODUCTS:
        pair = precision.product_cases(backend, what)
        if pair is None:
            assert backend == "numpy" and "conv" in what
            continue
        low, full = (
            np.asarray(case.step(), dtype=np.float64) if backend != "torch" else case.step().double().numpy()
            for case in pair
        )
        scale = np.abs(full).max()
        assert 0 < np.abs(low - full).max() <= 2e-2 * scale, what


def test_the_jax_program_table_prints_both_programs(capsys: pytest.CaptureFixture[str]) -> None:
    _needs("jax")
    precision.jax_programs(["w1"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| W1")]
    assert [r[1] for r in rows] == ["agnostic, ag.compile", "jax.jit, jmp-style"]
    assert all(int(r[2]) > 0 and int(r[3]) > 0 for r in rows)  # kernels, converts
