"""The command line: `agnostic info | conformance | demo | onnx` (also `python -m agnostic ...`), and the
options every agnostic script shares, `--backend NAME[:DEVICE]` and `--threads N`.

The examples use the same two functions (`add_common_options`, `parse_args`), so a backend is named
the same way everywhere, and a bad name, device or thread count is one usage error (exit status 2)
rather than a traceback from deep inside the first op.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "add_common_options", "parse_args"]


class _FromEnvironment(str):
    """A --backend default read from AGNOSTIC_BACKEND: an error about it names the variable."""


_OWNER = "_agnostic_options_parser"  # the (sub)parser that took the options: its usage goes with an error


def add_common_options(parser: argparse.ArgumentParser, default_backend: str = "numpy") -> None:
    """Add `--backend NAME[:DEVICE]` (default: $AGNOSTIC_BACKEND, else `default_backend`) and
    `--threads N` to `parser`; `parse_args` then applies them."""
    env = os.environ.get("AGNOSTIC_BACKEND", "").strip()
    parser.set_defaults(**{_OWNER: parser})
    parser.add_argument(
        "--backend",
        default=_FromEnvironment(env) if env else default_backend,
        metavar="NAME[:DEVICE]",
        help=f"numpy, torch, jax, cupy or a registered backend, optionally with a device (torch:cuda:0, "
        f"jax:gpu); default: $AGNOSTIC_BACKEND, else {default_backend}",
    )
    parser.add_argument(
        "--threads",
        type=_thread_count,
        metavar="N",
        help="at most N CPU threads per op (NumPy's BLAS, OpenMP, torch, XLA); default: the libraries' "
        "own, one per core. On a small or busy machine (other jobs, parallel runs) 1 is often "
        "several times faster",
    )


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parser.parse_args(argv)`, then the common options take effect: `--threads` first (XLA sizes
    its thread pools once, when the JAX backend starts), then `--backend` becomes a Device. A backend
    that does not exist or cannot run here is `parser.error`: one line, exit status 2."""
    from agnostic.backends import BackendUnavailable
    from agnostic.device import as_device
    from agnostic.threads import set_num_threads

    args = parser.parse_args(argv)
    owner = vars(args).pop(_OWNER, parser)
    if getattr(args, "threads", None) is not None:
        set_num_threads(args.threads)
    spec = getattr(args, "backend", None)
    if isinstance(spec, str):
        try:
            args.backend = as_device(spec)
        except (ValueError, BackendUnavailable) as e:
            source = f"AGNOSTIC_BACKEND={spec!r}: " if isinstance(spec, _FromEnvironment) else ""
            owner.error(f"argument --backend: {source}{e}")
    return args


def _thread_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads, at least 1; got {text!r}")
    return n


_COMMANDS = {
    "info": "list the backends: available here or not and why, library version, devices",
    "conformance": "run the conformance suite on backends and print a table by area",
    "demo": "train a small network with gradient descent and show the loss falling",
    "onnx": "inspect an ONNX file, or run it on a backend and on ONNX Runtime and compare",
}


def _info() -> int:
    from agnostic.backends import backend_class, backend_names

    print(f"{'backend':<12}{'status':<14}{'version':<12}devices / reason")
    for name in backend_names():
        try:
            cls = backend_class(name)
            ok, why = cls.available()
            version = cls.library_version()  # installed but unusable (no device) still shows it
            detail = ", ".join(cls.devices()) if ok else why
        except Exception as e:  # a backend that cannot even load is reported, not fatal
            ok, version, detail = False, "", str(e)
        print(f"{name:<12}{'available' if ok else 'unavailable':<14}{version:<12}{detail}")
    return 0


def _onnx_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="onnx_command", required=True)
    text = "print a file's inputs, outputs, opsets and ops, and which ops agnostic supports"
    info = sub.add_parser("info", help=text, description=text[0].upper() + text[1:] + ".")
    info.add_argument("file", help="an .onnx file")
    text = "run a file on a backend and on ONNX Runtime with random inputs; print the largest difference"
    check = sub.add_parser("check", help=text, description=text[0].upper() + text[1:] + ".")
    check.add_argument("file", help="an .onnx file")
    add_common_options(check)
    check.add_argument("--batch", type=int, default=2, help="the size of every dynamic dimension (default 2)")
    check.add_argument("--seed", type=int, default=0, help="the random inputs' seed (default 0)")
    check.add_argument(
        "--atol", type=float, default=1e-4, help="exit status 1 when a difference is larger (default 1e-4)"
    )


def _onnx(args: argparse.Namespace) -> int:
    """`agnostic onnx info|check`: a file that cannot be read is one line on stderr, status 1."""
    try:
        from agnostic.onnx import OnnxImportError, tools
    except ImportError as exc:
        print(f"agnostic onnx: {exc}", file=sys.stderr)
        return 1
    try:
        if args.onnx_command == "info":
            print(tools.info(args.file))
            return 0
        report, worst = tools.check(args.file, args.backend, batch=args.batch, seed=args.seed)
    except (OnnxImportError, ImportError, OSError) as exc:
        print(f"agnostic onnx {args.onnx_command}: {exc}", file=sys.stderr)
        return 1
    print(report)
    ok = worst <= args.atol
    print(f"largest difference {worst:.3g}: {'within' if ok else 'OVER'} --atol {args.atol:g}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agnostic",
        description="agnostic: write a network once, run it on NumPy, CuPy, JAX or PyTorch. "
        "`agnostic COMMAND --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in _COMMANDS.items():
        sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    conf = sub.choices["conformance"]
    conf.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME[:DEVICE]",
        help="repeatable; default: every registered backend. One that cannot run here (its library "
        "missing, or a device this machine lacks) is skipped with its reason; an unknown name or "
        "device is an error",
    )
    conf.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    demo = sub.choices["demo"]
    add_common_options(demo)
    demo.add_argument("--steps", type=int, default=1500)
    _onnx_commands(sub.choices["onnx"])
    args = parse_args(parser, argv)
    if args.command == "info":
        return _info()
    if args.command == "conformance":
        from agnostic.conformance import run

        return run(args.backend, args.pytest_args)
    if args.command == "onnx":
        return _onnx(args)
    from agnostic.demo import run as run_demo

    run_demo(args.backend, steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
