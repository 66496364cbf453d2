"""The command line: `agnostic info | conformance | demo` (also `python -m agnostic ...`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agnostic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="list backends: available or not and why, version, devices")
    conf = sub.add_parser("conformance", help="run the conformance suite and print a table by area")
    conf.add_argument(
        "--backend", action="append", default=[], help="NAME or NAME:DEVICE (repeatable; default all)"
    )
    conf.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    demo = sub.add_parser(
        "demo", help="train a small network with gradient descent and show the loss falling"
    )
    demo.add_argument("--backend", default="numpy")
    demo.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    if args.command == "conformance":
        from agnostic.conformance import run

        return run(args.backend, args.pytest_args)
    from agnostic.demo import run as run_demo

    run_demo(args.backend, steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
