"""agnostic against native code, per backend: `python -m benchmarks` (from the repository root)."""
