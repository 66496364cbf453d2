"""Test-run setup for this repository (not shipped): XLA flags for the JAX tests, set before
jax is imported (xdist's workers and the tests' subprocesses inherit them)."""

import os

_FLAGS = {
    # two host devices, for the conformance cases of a non-default device
    "--xla_force_host_platform_device_count": "2",
    # XLA:CPU compiles each new (op, shape) in ~60 ms, most of the JAX tests' time; without the
    # fusion emitters and LLVM's optimizations it takes ~33 ms. The programs compute the same
    # values (no fast-math either way); they only run slower, which tests do not measure.
    "--xla_cpu_use_fusion_emitters": "false",
    "--xla_backend_optimization_level": "0",
}
_have = os.environ.get("XLA_FLAGS", "")
_add = [f"{flag}={value}" for flag, value in _FLAGS.items() if flag not in _have]
if _add:
    os.environ["XLA_FLAGS"] = " ".join([_have, *_add]).strip()
