"""Process state (grad mode, the default backend, the running compile trace) is per thread and per
asyncio task: two threads training at once give the results each gives alone, overlapping blocks in
two threads restore exactly, and a new thread starts from the defaults."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim, tracing

BACKENDS = available_backends()


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Make the interpreter switch threads every few bytecodes, so races show up in a short test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _in_threads(*fns: Callable[[], Any]) -> list[Any]:
    """Run each function in its own thread at the same time; their results, or the first error raised."""
    results: list[Any] = [None] * len(fns)
    errors: list[BaseException] = []
    start = threading.Barrier(len(fns))

    def run(i: int, fn: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[i] = fn()
        except BaseException as e:  # handed to the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def _model_and_data(device: ag.Device) -> tuple[nn.Module, optim.Optimizer, ag.Tensor, ag.Tensor]:
    ag.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3), backend=device)
    rng = np.random.default_rng(0)
    x = device.tensor(rng.standard_normal((32, 4)).astype(np.float32))
    y = device.tensor(rng.integers(0, 3, 32))
    return model, optim.Adam(model.parameters(), lr=1e-2), x, y


def _train(
    model: nn.Module, opt: optim.Optimizer, x: ag.Tensor, y: ag.Tensor, steps: int = 40
) -> list[float]:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ag.cross_entropy(model(x), y)
        loss.backward()
        opt.step()  # updates under no_grad: the other thread must keep recording meanwhile
        with ag.no_grad():
            losses.append(float(ag.cross_entropy(model(x), y).item()))
    return losses


@pytest.mark.parametrize(
    "devices",
    [(BACKENDS[0], BACKENDS[0]), *itertools.combinations(BACKENDS, 2)],
    ids=lambda d: f"{d[0].name}+{d[1].name}",
)
def test_two_threads_train_two_models_as_each_does_alone(devices: tuple[ag.Device, ag.Device]) -> None:
    alone = [_train(*_model_and_data(d)) for d in devices]
    runs = [_model_and_data(d) for d in devices]
    together = _in_threads(*(lambda r=r: _train(*r) for r in runs))
    for a, t in zip(alone, together):
        np.testing.assert_allclose(t, a, rtol=1e-6)


def test_overlapping_no_grad_blocks_in_two_threads_restore_exactly() -> None:
    """A enters, B enters, A leaves, B leaves: each thread sees only its own block, and recording is on
    everywhere afterwards (a process-wide mode was switched off for good by this order)."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def a() -> None:
        with ag.no_grad():
            a_in.set()
            b_in.wait(10)
            seen["a inside"] = ag.is_grad_enabled()
        a_out.set()
        seen["a after"] = ag.is_grad_enabled()

    def b() -> None:
        a_in.wait(10)
        seen["b before"] = ag.is_grad_enabled()
        with ag.no_grad():
            b_in.set()
            a_out.wait(10)
            seen["b inside after a left"] = ag.is_grad_enabled()
        x = ag.asarray([1.0, 2.0], requires_grad=True)
        seen["b records after"] = (x * x).sum().requires_grad

    _in_threads(a, b)
    assert seen == {
        "a inside": False,
        "b before": True,
        "b inside after a left": False,
        "a after": True,
        "b records after": True,
    }
    assert ag.is_grad_enabled()


def test_a_new_thread_starts_from_the_defaults() -> None:
    other = BACKENDS[-1]
    with ag.no_grad(), ag.default_backend(other):
        (grad_on, default) = _in_threads(lambda: (ag.is_grad_enabled(), ag.get_default_backend()))[0]
        assert not ag.is_grad_enabled() and ag.get_default_backend() is other
    assert grad_on is True
    assert default is ag.backend()


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends that can run here")
def test_default_backend_in_one_thread_does_not_move_another_threads_tensors() -> None:
    first, second = BACKENDS[0], BACKENDS[1]
    inside, go_on = threading.Event(), threading.Event()

    def switches() -> ag.Device:
        with ag.default_backend(second):
            inside.set()
            go_on.wait(10)
            return ag.zeros(2).device

    def creates() -> ag.Device:
        inside.wait(10)
        try:
            with ag.default_backend(first):
                return ag.zeros(2).device
        finally:
            go_on.set()

    assert _in_threads(switches, creates) == [second, first]


def test_set_grad_enabled_called_alone_sets_this_thread_only() -> None:
    def off() -> tuple[bool, bool]:
        ag.set_grad_enabled(False)
        x = ag.asarray([1.0], requires_grad=True)
        return ag.is_grad_enabled(), (x * 2).requires_grad

    assert _in_threads(off) == [(False, False)]
    assert ag.is_grad_enabled()


def test_nesting_restores_exactly() -> None:
    states = []
    with ag.no_grad():
        states.append(ag.is_grad_enabled())
        with ag.enable_grad():
            states.append(ag.is_grad_enabled())
            with ag.set_grad_enabled(False):
                states.append(ag.is_grad_enabled())
            states.append(ag.is_grad_enabled())
        states.append(ag.is_grad_enabled())
    states.append(ag.is_grad_enabled())
    assert states == [False, True, False, True, False, True]


def test_no_grad_as_a_decorator_from_two_threads() -> None:
    @ag.no_grad()
    def inside() -> bool:
        return ag.is_grad_enabled()

    assert _in_threads(inside, inside, ag.is_grad_enabled) == [False, False, True]
    assert inside() is False and ag.is_grad_enabled()


def test_set_grad_enabled_as_a_decorator_leaves_the_caller_alone() -> None:
    @ag.set_grad_enabled(False)
    def inside() -> bool:
        return ag.is_grad_enabled()

    assert ag.is_grad_enabled()
    assert inside() is False and ag.is_grad_enabled()


def test_set_grad_enabled_wants_a_bool() -> None:
    with pytest.raises(TypeError, match="set_grad_enabled: expected a bool, got None"):
        ag.set_grad_enabled(None)  # type: ignore[arg-type]
    assert ag.is_grad_enabled()


def test_asyncio_tasks_each_have_their_own_grad_mode_and_default_backend() -> None:
    other = BACKENDS[-1]

    async def no_grad_task(gate: asyncio.Event, seen: list[Any]) -> None:
        with ag.no_grad(), ag.default_backend(other):
            gate.set()
            await asyncio.sleep(0.01)
            seen.append(("no_grad task", ag.is_grad_enabled(), ag.get_default_backend() is other))

    async def plain_task(gate: asyncio.Event, seen: list[Any]) -> None:
        await gate.wait()  # runs while the other task is inside its blocks
        x = ag.asarray([1.0], requires_grad=True)
        seen.append(("plain task", (x * 2).requires_grad, ag.zeros(1).device is ag.backend()))

    async def main() -> list[Any]:
        gate, seen = asyncio.Event(), []
        await asyncio.gather(no_grad_task(gate, seen), plain_task(gate, seen))
        return seen

    assert sorted(asyncio.run(main())) == [("no_grad task", False, True), ("plain task", True, True)]
    assert ag.is_grad_enabled()


def test_a_compile_trace_in_one_thread_is_not_seen_by_another() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.used: list[Any] = []

        def uses(self, holder: Any) -> None:
            self.used.append(holder)

    recorder, traced, other_done = Recorder(), threading.Event(), threading.Event()
    mine, theirs = nn.Linear(2, 2), nn.Linear(2, 2)

    def tracing_thread() -> bool:
        with tracing.tracing_with(recorder):  # type: ignore[arg-type]
            traced.set()
            other_done.wait(10)
            return tracing.tracing()

    def eager_thread() -> bool:
        traced.wait(10)
        try:
            theirs(ag.ones((1, 2)))
            return tracing.tracing()
        finally:
            other_done.set()

    assert _in_threads(tracing_thread, eager_thread) == [True, False]
    assert theirs not in recorder.used and mine not in recorder.used
    assert not tracing.tracing()
