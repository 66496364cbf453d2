"""What the torch backend's uint16/32/64 emulation promises beyond the conformance suite (which holds
its values to NumPy's, in agnostic/conformance/test_unsigned.py): the ops torch runs natively never
reach it, other errors pass through it unchanged, and an op it does not emulate raises one clear
error naming the op, the dtype and the backend."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'agnostic[torch]')")

from agnostic.backends import _torch_unsigned  # noqa: E402 (imports torch)


@pytest.fixture(scope="module")
def T() -> ag.Device:
    return ag.backend("torch")


def test_ops_torch_runs_natively_are_not_emulated(T: ag.Device, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("emulated an op torch runs natively")

    monkeypatch.setattr(_torch_unsigned, "emulate", refuse)
    for d in (ag.uint16, ag.uint32, ag.uint64):
        x = T.tensor(np.array([3, 1, 2]), dtype=d)
        assert (x * x).numpy().tolist() == [9, 1, 4]
        assert (x == 1).numpy().tolist() == [False, True, False]
        assert (x & 2).numpy().tolist() == [2, 0, 2]
        assert ag.sort(x).numpy().tolist() == [1, 2, 3]
        assert ag.concat([x, x]).shape == (6,)
        assert x.astype(ag.float32).numpy().tolist() == [3.0, 1.0, 2.0]
        with pytest.raises(AssertionError, match="emulated"):
            x + x  # and the refusal is reached where torch has no kernel


def test_an_op_without_emulation_raises_one_clear_error(T: ag.Device) -> None:
    a = torch.tensor([1, 0], dtype=torch.uint32)
    with pytest.raises(
        TypeError, match=r"logical_not: uint32 is not supported on the torch backend .*cast to int64"
    ) as e:
        T.ops.logical_not(a)  # the Tensor layer sends bools; a direct caller of the primitive may not
    assert isinstance(e.value.__cause__, NotImplementedError)  # torch's own error, kept


def test_other_errors_pass_through_unchanged(T: ag.Device) -> None:
    with pytest.raises(RuntimeError, match="size of tensor"):
        T.ops.add(torch.ones(2), torch.ones(3))
    with pytest.raises(RuntimeError, match="size of tensor"):  # emulated, and still torch's error
        T.ops.add(torch.ones(2, dtype=torch.uint32), torch.ones(3, dtype=torch.uint32))


def test_uint64_is_read_in_place(T: ag.Device) -> None:
    """uint64's emulation reads the same memory as int64: no copy, exact at every bit."""
    top = 2**64 - 1
    a = torch.tensor([top, 2**63], dtype=torch.uint64)
    out = T.ops.add(a, a)
    assert out.dtype == torch.uint64
    assert out.view(torch.int64).tolist() == [-2, 0]
    assert T.ops.floor_divide(a, torch.tensor([2**63, 3], dtype=torch.uint64)).view(torch.int64).tolist() == [
        1,
        2**63 // 3,
    ]
