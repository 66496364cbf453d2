"""`python -m agnostic.distributed.launch -n N script.py args...`: N copies of a script on this machine
with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), for machines
without torchrun (a JAX-only install). Exits 0 when every worker does; when one fails, the others get
a grace period to notice and exit, are then stopped, and the launcher exits non-zero naming the
first failed rank.

Ctrl-C (or SIGTERM) to the launcher is passed on to every worker once, as torchrun does (the workers
run in sessions of their own, so a terminal's Ctrl-C does not reach them twice): a `Learner` stops at
its next optimizer step and saves; workers still running after the grace period are stopped.

Several machines, as torchrun's static rendezvous: run the launcher on each with the same `--nnodes`,
`--master-addr` (node 0's address) and `--master-port`, and its own `--node-rank`; ranks are
node_rank * N + local rank. On one machine MASTER_PORT is a free port unless --master-port gives one,
and unless AGNOSTIC_JAX_COORDINATOR_PORT is set the jax engine's coordination service gets a second
free port; across machines it uses MASTER_PORT + 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

COORDINATOR_PORT_ENV = "AGNOSTIC_JAX_COORDINATOR_PORT"  # the jax engine's; no jax import here
_POLL_S = 0.05
_TERM_S = 5.0  # after SIGTERM, how long a worker gets before SIGKILL


class _Stop(Exception):
    """SIGTERM to the launcher: stop as for Ctrl-C."""


def free_port() -> int:
    """A TCP port free on this machine now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _stop(workers: Sequence[subprocess.Popen]) -> None:
    """SIGTERM every worker still running, then SIGKILL those still there after _TERM_S."""
    alive = [w for w in workers if w.poll() is None]
    for w in alive:
        w.terminate()
    deadline = time.monotonic() + _TERM_S
    for w in alive:
        try:
            w.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _interrupt(workers: Sequence[subprocess.Popen], signum: int, grace: float) -> None:
    """Pass the signal on to every worker and give them `grace` seconds to finish (save, exit)."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signum)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(w.poll() is None for w in workers):
        time.sleep(_POLL_S)


def _supervise(workers: Sequence[subprocess.Popen], grace: float) -> int:
    """Wait for the workers; the exit code of the launcher."""
    while True:
        codes = [w.poll() for w in workers]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            first = failed[0]
            code = codes[first]
            print(
                f"agnostic.distributed.launch: rank {first} {_describe(code)}; stopping the other workers "
                f"(after {grace:g} s)",
                file=sys.stderr,
                flush=True,
            )
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(w.poll() is None for w in workers):
                time.sleep(_POLL_S)
            _stop(workers)
            return code if code > 0 else 1
        if all(c == 0 for c in codes):
            return 0
        time.sleep(_POLL_S)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, start the workers and return the launcher's exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m agnostic.distributed.launch",
        description="Start N processes of a script with torchrun's environment (RANK, WORLD_SIZE, ...).",
    )
    parser.add_argument("-n", "--nproc", type=int, required=True, help="number of processes")
    parser.add_argument("--master-port", type=int, default=None, help="MASTER_PORT (default: a free one)")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the workers get to exit after one fails or after Ctrl-C, before they are stopped",
    )
    parser.add_argument("--nnodes", type=int, default=1, help="number of machines (default 1)")
    parser.add_argument("--node-rank", type=int, default=0, help="this machine's index in [0, nnodes)")
    parser.add_argument(
        "--master-addr", default="127.0.0.1", help="MASTER_ADDR: node 0's address (default 127.0.0.1)"
    )
    parser.add_argument("script", help="the Python script each worker runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    ns = parser.parse_args(argv)
    if ns.nproc < 1:
        parser.error(f"-n must be at least 1, got {ns.nproc}")
    if ns.nnodes < 1 or not 0 <= ns.node_rank < ns.nnodes:
        parser.error(f"--node-rank must be in [0, --nnodes={ns.nnodes}), got {ns.node_rank}")
    if ns.nnodes > 1 and ns.master_port is None:
        parser.error("--nnodes > 1 needs --master-port: every machine must name the same one")
    env = dict(os.environ)
    env.update(
        WORLD_SIZE=str(ns.nproc * ns.nnodes),
        LOCAL_WORLD_SIZE=str(ns.nproc),
        MASTER_ADDR=ns.master_addr,
        MASTER_PORT=str(ns.master_port if ns.master_port is not None else free_port()),
    )
    if not env.get(COORDINATOR_PORT_ENV) and ns.nnodes == 1:
        env[COORDINATOR_PORT_ENV] = str(free_port())
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    workers: list[subprocess.Popen] = []
    try:
        for r in range(ns.nproc):
            worker_env = dict(env, RANK=str(ns.node_rank * ns.nproc + r), LOCAL_RANK=str(r))
            workers.append(
                subprocess.Popen(
                    [sys.executable, ns.script, *ns.args], env=worker_env, start_new_session=True
                )
            )
        return _supervise(workers, ns.grace)
    except (KeyboardInterrupt, _Stop) as exc:
        print(
            f"agnostic.distributed.launch: interrupted; stopping every worker (the signal is passed on; "
            f"those still running after {ns.grace:g} s are killed)",
            file=sys.stderr,
            flush=True,
        )
        _interrupt(workers, signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM, ns.grace)
        return 130
    finally:
        _stop(workers)
        signal.signal(signal.SIGTERM, previous)


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


if __name__ == "__main__":
    sys.exit(main())
