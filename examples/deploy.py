"""Train on one backend, deploy on another: the path a model takes from a training box to a small
CPU server that has nothing but numpy and agnostic.

    python examples/deploy.py train                      # trains on torch (--backend to change), saves
    python examples/deploy.py serve --port 8000          # NumPy backend: POST /predict {"inputs": [[64 floats], ...]}
    python examples/deploy.py predict < inputs.json      # the same, once, JSON in and out
    python examples/deploy.py export                     # the trained model as ONNX: runs/deploy/model.onnx
    python examples/deploy.py serve --model runs/deploy/model.onnx --runtime onnxruntime
                                                         # the ONNX file served by ONNX Runtime (or by
                                                         # agnostic on --backend: --runtime agnostic)

The model is an MLP on scikit-learn's 8x8 digits (flattened, scaled to [0, 1]). `train` writes one
safetensors file: the weights, and in its header the architecture, so `serve` rebuilds the model
from the file alone. Serving imports only numpy and agnostic (scikit-learn, torch and the rest are
imported by `train` only). `export` writes the same model as an ONNX file, which ONNX Runtime (or
any ONNX consumer) serves without agnostic, and which agnostic itself loads on any backend.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

import agnostic as ag
from agnostic import nn
from agnostic.cli import add_common_options, parse_args

DEFAULT_MODEL = "runs/deploy/model.safetensors"
DEFAULT_ONNX = "runs/deploy/model.onnx"


class DigitsMLP(nn.Module):
    """in -> hidden... -> classes, ReLU between; the sizes are all a server needs to rebuild it."""

    def __init__(self, in_features: int, hidden: Sequence[int], classes: int) -> None:
        super().__init__()
        self.config = {"in_features": in_features, "hidden": list(hidden), "classes": classes}
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], classes))

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return self.net(x)


def train(
    backend: str | ag.Device = "torch",
    out: str = DEFAULT_MODEL,
    epochs: int = 15,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train on `backend` and save the model (weights + architecture) to `out`."""
    from sklearn.datasets import load_digits

    from agnostic import optim
    from agnostic.data import DataLoader, TensorDataset
    from agnostic.train import Accuracy, Learner

    B = ag.backend(backend)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    ag.manual_seed(seed)
    model = DigitsMLP(64, [128, 64], 10, backend=B)
    train_loader = DataLoader(TensorDataset(x[order[:cut]], y[order[:cut]]), 64, shuffle=True, device=B)
    test_loader = DataLoader(TensorDataset(x[order[cut:]], y[order[cut:]]), 256, device=B)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    learner = Learner(model, opt, ag.cross_entropy, metrics=[Accuracy()], progress=progress)
    learner.fit(train_loader, epochs)
    accuracy = learner.evaluate(test_loader)["accuracy"]
    model.save(out, metadata={**model.config, "trained_on": str(B), "test_accuracy": accuracy})
    print(f"trained on {B}: test accuracy {accuracy:.2%}; saved to {out}")
    return {"test_accuracy": accuracy, "path": out}


def rebuild(path: str, backend: str | ag.Device = "numpy") -> tuple[DigitsMLP, dict]:
    """The model saved by `train`, on `backend`, in eval mode, and the file's metadata."""
    meta = ag.io.read_metadata(path)
    if meta.get("model") != "DigitsMLP":
        raise ValueError(f"{path} holds a {meta.get('model')!r} model, not a DigitsMLP")
    model = DigitsMLP(int(meta["in_features"]), meta["hidden"], int(meta["classes"]), backend=backend)
    model.load(path).eval()
    return model, meta


def export(path: str = DEFAULT_MODEL, out: str = DEFAULT_ONNX) -> str:
    """The model saved by `train` as an ONNX file (a dynamic batch axis), for ONNX Runtime."""
    model, meta = rebuild(path)
    example = ag.zeros((1, int(meta["in_features"])))
    ag.onnx.export(model, (example,), out, input_names=["inputs"], output_names=["logits"])
    print(f"exported {path} to {out}")
    return out


class Predictor:
    """A saved model answering batches of inputs: a safetensors file from `train`, rebuilt on a
    backend (NumPy by default), or an ONNX file run by agnostic on that backend or by ONNX Runtime
    (`runtime="onnxruntime"`)."""

    def __init__(
        self, path: str = DEFAULT_MODEL, backend: str | ag.Device = "numpy", runtime: str = "agnostic"
    ) -> None:
        self.device = ag.backend(backend)
        self.session = None
        if not path.endswith(".onnx"):
            self.model, self.meta = rebuild(path, self.device)
            self.in_features = int(self.meta["in_features"])
            return
        if runtime == "onnxruntime":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            shape = self.session.get_inputs()[0].shape
        else:
            self.model = ag.onnx.load(path, backend=self.device).eval()
            shape = self.model._graph.input_types[0][1]
        self.in_features = int(shape[-1])
        self.meta = {"model": "DigitsMLP (ONNX)", "path": path, "runtime": runtime}

    @property
    def where(self) -> str:
        """What runs the model: ONNX Runtime, or agnostic's backend."""
        return "ONNX Runtime" if self.session is not None else str(self.device)

    def predict(self, inputs: Any) -> dict[str, list]:
        x = np.asarray(inputs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"inputs must be a list of rows of {self.in_features} numbers, got shape {x.shape}"
            )
        if self.session is not None:
            logits = ag.asarray(self.session.run(None, {self.session.get_inputs()[0].name: x})[0])
        else:
            with ag.no_grad():
                logits = self.model(self.device.tensor(x))
        probs = ag.softmax(logits, axis=-1).numpy()
        return {
            "classes": probs.argmax(-1).tolist(),
            "probabilities": probs.astype(np.float64).round(6).tolist(),
        }


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000) -> None:
    """A small JSON-over-HTTP server: POST /predict, GET /health."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/health":
                return self._reply(404, {"error": "GET /health or POST /predict"})
            self._reply(200, {"status": "ok", "backend": predictor.where, "model": predictor.meta})

        def do_POST(self) -> None:
            if self.path != "/predict":
                return self._reply(404, {"error": "POST /predict"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._reply(200, predictor.predict(body["inputs"]))
            except (ValueError, KeyError, TypeError) as exc:
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})

        def log_message(self, *args: Any) -> None:  # quiet: one line per request is noise here
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    print(
        f"serving {predictor.meta['model']} on {predictor.where} at http://{host}:{server.server_port}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train and save")
    add_common_options(p_train, default_backend="torch")
    p_train.add_argument("--epochs", type=int, default=15)
    p_train.add_argument("--out", default=DEFAULT_MODEL)
    p_export = sub.add_parser("export", help="write the trained model as an ONNX file")
    p_export.add_argument("--model", default=DEFAULT_MODEL)
    p_export.add_argument("--out", default=DEFAULT_ONNX)
    for name in ("serve", "predict"):
        p = sub.add_parser(name, help="serve over HTTP" if name == "serve" else "predict JSON from stdin")
        p.add_argument(
            "--model", default=DEFAULT_MODEL, help="a safetensors file from train, or an .onnx file"
        )
        p.add_argument(
            "--runtime",
            choices=("agnostic", "onnxruntime"),
            default="agnostic",
            help="what runs an .onnx model: agnostic on --backend, or ONNX Runtime",
        )
        add_common_options(p)
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=8000)
    args = parse_args(parser, argv)
    if args.command == "train":
        train(args.backend, args.out, args.epochs)
    elif args.command == "export":
        export(args.model, args.out)
    elif args.command == "serve":
        serve(Predictor(args.model, args.backend, args.runtime), args.host, args.port)
    else:
        predictor = Predictor(args.model, args.backend, args.runtime)
        print(json.dumps(predictor.predict(json.load(sys.stdin)["inputs"])))


if __name__ == "__main__":
    main()
