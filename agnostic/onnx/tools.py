"""`agnostic onnx info FILE` and `agnostic onnx check FILE --backend B`: what a file holds, whether
agnostic can run it, and how far agnostic's outputs are from ONNX Runtime's on random inputs."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from agnostic.onnx import dtypes as onnx_dtypes
from agnostic.onnx.importer import OnnxImportError, load, opsets_of, read_model
from agnostic.onnx.registry import lookup

__all__ = ["info", "check", "random_inputs"]


def _type_text(value_info: Any) -> str:
    t = value_info.type
    kind = t.WhichOneof("value")
    if kind != "tensor_type":
        return kind or "unknown"
    elem = onnx_dtypes.ONNX_NAMES.get(t.tensor_type.elem_type, "?").lower()
    dims = [
        d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in t.tensor_type.shape.dim
    ]
    return f"{elem}[{', '.join(dims)}]"


def info(path: str) -> str:
    """A report of `path`: producer, opsets, inputs, outputs, initializers, and each op used with
    its count and whether agnostic has a converter for it at the model's opset."""
    model, label, _ = read_model(path)
    opsets = opsets_of(model, label)
    g = model.graph
    inits = {t.name for t in g.initializer}
    producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown"
    lines = [f"{label}: made by {producer}, IR version {model.ir_version}"]
    lines.append("opsets: " + ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(opsets.items())))
    lines.append("inputs:")
    lines += [f"  {v.name}: {_type_text(v)}" for v in g.input if v.name not in inits]
    lines.append("outputs:")
    lines += [f"  {v.name}: {_type_text(v)}" for v in g.output]
    size = sum(int(np.prod(t.dims)) for t in g.initializer)
    lines.append(f"initializers: {len(g.initializer)} ({size} values)")
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def walk(graph: Any) -> None:
        for n in graph.node:
            counts[n.domain or "", n.op_type] += 1
            for a in n.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sub)

    walk(g)
    lines.append("ops:")
    missing = 0
    for (domain, op), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        version = opsets.get(domain)
        ok = version is not None and (op == "Constant" or lookup(domain, op, version) is not None)
        missing += not ok
        name = f"{domain}.{op}" if domain else op
        lines.append(f"  {name:<28}{n:>6}  {'supported' if ok else 'NOT SUPPORTED'}")
    try:
        load(path)
        lines.append("agnostic: loads and runs this model")
    except OnnxImportError as exc:
        lines.append(f"agnostic: cannot run this model: {exc}")
    except Exception as exc:  # loading shows what else is wrong (e.g. a missing external file)
        lines.append(f"agnostic: loading fails: {type(exc).__name__}: {exc}")
    return "\n".join(lines)


def random_inputs(model: Any, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """One random array per graph input, from its declared type: unknown and named dims take
    `batch`; floats are standard normal, integers in [0, 10), booleans fair coins."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for v in model.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dtype = onnx_dtypes.from_onnx(t.elem_type)
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else batch for d in t.shape.dim
        )
        np_dtype = np.dtype(dtype.name) if dtype.name != "bfloat16" else np.float32
        if dtype.is_floating:
            out[v.name] = rng.standard_normal(shape).astype(np_dtype)
        elif dtype.name == "bool":
            out[v.name] = rng.random(shape) < 0.5
        else:
            out[v.name] = rng.integers(0, 10, shape).astype(np_dtype)
    return out


def check(path: str, backend: Any, batch: int = 2, seed: int = 0) -> tuple[str, float]:
    """Run `path` on `backend` and on ONNX Runtime with the same random inputs; a report of the
    largest absolute and relative difference per output, and the largest absolute one."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("agnostic onnx check needs onnxruntime: pip install onnxruntime") from exc
    model, label, _ = read_model(path)
    module = load(path, backend=backend)
    module.eval()
    inputs = random_inputs(model, batch, seed)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    got = module(**inputs)
    got = list(got) if isinstance(got, tuple) else [got]
    lines = [
        f"{label} on {module._current_device(()).name}, inputs {[(k, v.shape) for k, v in inputs.items()]}:"
    ]
    worst = 0.0
    for name, e, g in zip(module.output_names, expected, got):
        g = np.asarray(g.numpy())
        e = np.asarray(e)
        if g.shape != e.shape:
            lines.append(f"  {name}: shape {g.shape}, ONNX Runtime gives {e.shape}")
            worst = float("inf")
            continue
        diff = np.abs(g.astype(np.float64) - e.astype(np.float64)) if e.size else np.zeros(0)
        largest = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(e.astype(np.float64)).max()) if e.size else 0.0
        worst = max(worst, largest)
        lines.append(
            f"  {name}: {g.dtype}{list(g.shape)}, largest difference {largest:.3g}"
            f" (relative to the largest value: {largest / scale if scale else 0.0:.3g})"
        )
    return "\n".join(lines), worst
