"""Test-run setup for this repository (not shipped): give JAX two host devices, so the
conformance cases for a non-default device run on a CPU-only machine too."""

import os

_FLAG = "--xla_force_host_platform_device_count=2"
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()
