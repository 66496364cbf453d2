"""`ag.OutOfMemoryError` from the inside: the size check and the translation of each library's own
out-of-memory error, and the JAX backend's checks before an asynchronous dispatch (where a failed
allocation would abort the process when read). The behaviour every backend must show is in the
conformance suite (agnostic/conformance/test_edge_cases.py); these are the parts behind it."""

from __future__ import annotations

import pickle

import pytest

import agnostic as ag
from agnostic.backends.base import Backend, allocation_error, check_allocation, host_memory

MIB = 2**20


class _Ops:
    """The two things the check asks of a backend."""

    name, device = "fake", "cpu"

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity

    def memory_capacity(self) -> int | None:
        return self.capacity

    is_out_of_memory = Backend.is_out_of_memory


def test_the_limit_is_the_capacity_itself() -> None:
    ops = _Ops(MIB)
    check_allocation(ops, "zeros", (MIB // 4,), ag.float32)  # exactly 1 MiB fits
    with pytest.raises(ag.OutOfMemoryError) as info:
        check_allocation(ops, "zeros", (MIB // 4 + 1,), ag.float32)
    assert str(info.value) == (
        "zeros: a tensor of shape (262145,) and dtype float32 needs 1048580 bytes (1.0 MiB), more than "
        "the 1.0 MiB of memory of backend 'fake' (cpu); use a smaller shape (a smaller batch, or the "
        "work in chunks) or a device with more memory"
    )


def test_without_a_known_capacity_only_unaddressable_sizes_are_refused() -> None:
    ops = _Ops(None)
    check_allocation(ops, "zeros", (2**60,), ag.bool)  # no capacity known: the library decides
    with pytest.raises(
        ag.OutOfMemoryError, match=r"needs 9223372036854775808 bytes \(8\.0 EiB\), more than any"
    ):
        check_allocation(ops, "zeros", (2**63,), ag.bool)


def test_allocation_error_translates_memory_errors_and_sizes_that_cannot_fit() -> None:
    ops = _Ops(MIB)
    said = allocation_error(ops, "add", (4, 4), ag.float32, MemoryError("malloc said no\nmore detail"))
    assert isinstance(said, ag.OutOfMemoryError)
    assert str(said).startswith("add: a tensor of shape (4, 4) and dtype float32 needs 64 bytes")
    assert "could not allocate it (malloc said no)" in str(said)
    # any error, when the result cannot fit (NumPy says ValueError for sizes past 2**63 bytes)
    too_big = allocation_error(ops, "add", (MIB,), ag.float32, ValueError("array is too big"))
    assert isinstance(too_big, ag.OutOfMemoryError) and too_big.nbytes == 4 * MIB
    assert allocation_error(ops, "add", (4, 4), ag.float32, ValueError("shapes differ")) is None


def test_the_error_pickles_with_what_was_asked_for() -> None:
    """(A DataLoader worker's error crosses a process boundary by pickle.)"""
    with pytest.raises(ag.OutOfMemoryError) as info:
        check_allocation(_Ops(MIB), "eye", (1024, 1024), ag.float64)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is ag.OutOfMemoryError and str(back) == str(info.value)
    assert (back.op, back.shape, back.dtype, back.nbytes) == ("eye", (1024, 1024), ag.float64, 8 * MIB)
    assert isinstance(back, MemoryError)


def test_cpu_backends_know_the_host_memory() -> None:
    total = host_memory()
    assert total is None or total > 2**28
    assert ag.backend("numpy").ops.memory_capacity() == total


def test_torch_says_which_of_its_errors_are_about_memory() -> None:
    torch = pytest.importorskip("torch")
    ops = ag.backend("torch").ops
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
        "tried to allocate 4000000000000 bytes. Error code 12 (Cannot allocate memory)"
    )
    assert ops.is_out_of_memory(cpu) and ops.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not ops.is_out_of_memory(RuntimeError("The size of tensor a (3) must match the size of tensor b"))
    assert ops.memory_capacity() == host_memory()


def test_jax_says_which_of_its_errors_are_about_memory() -> None:
    jax = pytest.importorskip("jax")
    ops = ag.backend("jax").ops
    assert ops.is_out_of_memory(
        jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4 bytes.")
    )
    assert not ops.is_out_of_memory(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: bad"))
    assert ops.memory_capacity() == host_memory()


@pytest.mark.parametrize(
    ("op", "make"),
    [
        ("add", lambda J: J.ones(8192, 1) + J.ones(1, 8192)),
        ("less", lambda J: J.ones(8192, 1) < J.ones(1, 8192) + J.zeros(2, 1, 1)),
        ("floor_divide", lambda J: J.ones(8192, 1) // J.ones(1, 8192)),
        ("pow", lambda J: J.ones(8192, 1) ** J.ones(1, 8192)),
        ("where", lambda J: ag.where(J.ones(8192, 1) > 0, J.ones(1, 8192), 0.0)),
        ("matmul", lambda J: J.ones(8192, 1) @ J.ones(1, 8192)),
    ],
)
def test_jax_checks_its_asynchronous_ops_before_dispatch(
    op: str, make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broadcast or outer product whose result does not fit is refused before it is dispatched
    (XLA would hand back a broken array, and reading it aborts the process). The device here
    pretends to hold 1 MiB: the 128 and 256 MiB results are refused, and nothing is allocated
    (results up to 64 MiB are not looked at)."""
    pytest.importorskip("jax")
    J = ag.backend("jax")
    monkeypatch.setattr(J.ops, "memory_capacity", lambda: MIB)
    monkeypatch.setattr("agnostic.backends.jax._matmul", lambda *a: pytest.fail("dispatched"))
    with pytest.raises(ag.OutOfMemoryError, match=rf"^{op}: a tensor of shape \((2, )?8192, 8192\)"):
        make(J)
    assert (J.ones(4, 1) + J.ones(1, 4)).shape == (4, 4)  # small results are not looked at
