"""Imported-model inference: an ONNX file run by `agnostic.onnx.load` on each backend (eager, and
through `ag.compile` where the backend has a compiler) against ONNX Runtime on the same file, in one
process, interleaved (benchmarks.harness), as ratios.

    python -m benchmarks.onnx                      # numpy, torch, jax; ONNX Runtime's default threads
    python -m benchmarks.onnx --threads 1          # every library on one thread
    python -m benchmarks.onnx --backends torch --windows 11

The files are made by `agnostic.onnx.export` from the workloads' networks (W2's CNN, W3's
transformer LM; forward only, batch 64 and 16): the same graphs a user would deploy. For the CNN
the same forward hand-written in torch and in jax.jit (the file's weights) runs beside them: the
backend's own speed, which bounds agnostic's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import w2_cnn, w3_lm
from benchmarks.harness import Case, fix_malloc_thresholds, format_time, measure, paired_ratio


def cnn_file(folder: str) -> tuple[str, dict[str, np.ndarray]]:
    """W2's CNN exported (eval mode), and a batch of its input."""
    import agnostic as ag
    from agnostic import nn

    ag.manual_seed(0)
    model = nn.Sequential(*w2_cnn._layers(nn))
    x = w2_cnn.data()[0]
    path = os.path.join(folder, "cnn.onnx")
    ag.onnx.export(model, (ag.asarray(x),), path, input_names=["images"], output_names=["logits"])
    return path, {"images": x}


def lm_file(folder: str) -> tuple[str, dict[str, np.ndarray]]:
    """W3's transformer LM exported (forward to the logits), and a batch of token ids."""
    import agnostic as ag
    from agnostic import nn

    lm = w3_lm.W3
    ag.manual_seed(0)
    mask = nn.Transformer.generate_square_subsequent_mask(lm.seq)
    model = w3_lm._lm(nn, ag.arange(lm.seq), mask, lm)()
    ids = w3_lm.data()[0].astype(np.int64)
    path = os.path.join(folder, "lm.onnx")
    ag.onnx.export(model, (ag.asarray(ids),), path, input_names=["ids"], output_names=["logits"])
    return path, {"ids": ids}


def ort_case(path: str, feed: dict[str, np.ndarray], threads: int | None) -> Case:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return Case("onnxruntime", lambda: session.run(None, feed))


def agnostic_cases(path: str, feed: dict[str, np.ndarray], backend: str) -> list[Case]:
    import agnostic as ag

    device = ag.backend(backend)
    model = ag.onnx.load(path, backend=device)
    model.eval()
    inputs = {k: device.tensor(v) for k, v in feed.items()}

    def forward() -> Any:
        with ag.no_grad():
            return model(**inputs)

    sync: Callable[[Any], Any] = _sync if backend == "jax" else (lambda r: r)
    cases = [Case(f"agnostic {backend}", forward, sync)]
    if device.ops.compiler is not None:
        compiled = ag.compile(forward)
        cases.append(Case(f"agnostic {backend}, compiled", compiled, sync))
    return cases


def native_cnn_case(path: str, feed: dict[str, np.ndarray], backend: str) -> Case | None:
    """W2's CNN forward hand-written in the backend's own library with the file's weights (torch
    eager; jax.jit): what the backend itself does, beside what agnostic and ONNX Runtime do."""
    import onnx
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    x = feed["images"]
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        t = {k: torch.from_numpy(np.array(v)) for k, v in w.items()}
        xt = torch.from_numpy(x)

        def forward() -> Any:
            with torch.no_grad():
                h = F.max_pool2d(F.relu(F.conv2d(xt, t["0.weight"], t["0.bias"], padding=1)), 2)
                h = F.max_pool2d(F.relu(F.conv2d(h, t["3.weight"], t["3.bias"], padding=1)), 2)
                return F.linear(h.flatten(1), t["7.weight"], t["7.bias"])

        return Case("native torch", forward)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        j = {k: jnp.asarray(v) for k, v in w.items()}

        def conv_relu_pool(h: Any, k: Any, b: Any) -> Any:
            h = jax.lax.conv_general_dilated(h, k, (1, 1), ((1, 1), (1, 1))) + b[None, :, None, None]
            h = jax.nn.relu(h)
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

        @jax.jit
        def run(p: Any, x: Any) -> Any:
            h = conv_relu_pool(x, p["0.weight"], p["0.bias"])
            h = conv_relu_pool(h, p["3.weight"], p["3.bias"])
            return h.reshape(h.shape[0], -1) @ p["7.weight"].T + p["7.bias"]

        xj = jnp.asarray(x)
        return Case("native jax.jit", lambda: run(j, xj), lambda r: r.block_until_ready())
    return None


def _sync(result: Any) -> Any:
    result.numpy()  # a host copy waits for the device: the only portable way
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="numpy,torch,jax")
    parser.add_argument("--windows", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--window-ms", type=float, default=100.0)
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for every library (default: each library's own)"
    )
    args = parser.parse_args()
    import agnostic as ag
    from benchmarks.__main__ import available, machine

    if args.threads:
        ag.set_num_threads(args.threads)
    fix_malloc_thresholds()
    backends = available(args.backends.split(","))
    threads = f"{args.threads} thread(s) per library" if args.threads else "each library's default threads"
    print(f"Machine: {machine()}; {threads}\n")
    print(
        "| model | backend | agnostic | ONNX Runtime | agnostic / ONNX Runtime | steps / window |\n"
        "|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as folder:
        for title, make in (("W2's CNN, batch 64", cnn_file), ("W3's LM, batch 16 x 64 tokens", lm_file)):
            path, feed = make(folder)
            reference = ort_case(path, feed, args.threads)
            for b in backends:
                ours = agnostic_cases(path, feed, b)
                native = native_cnn_case(path, feed, b) if make is cnn_file else None
                ours += [native] if native is not None else []
                measure(
                    [*ours, reference],
                    windows=args.windows,
                    steps=args.steps,
                    window_seconds=args.window_ms / 1e3,
                )
                for case in ours:
                    what = case.name.removeprefix("agnostic ")
                    what = f"{what} (no agnostic)" if case is native else what
                    print(
                        f"| {title} | {what} | {format_time(case.median)} | {format_time(reference.median)} | "
                        f"{paired_ratio(case, reference):.2f} | {case.steps} / {reference.steps} |"
                    )


if __name__ == "__main__":
    main()
