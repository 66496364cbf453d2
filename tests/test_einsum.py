"""`ag.einsum` against NumPy's (float64) on every backend, its gradient against finite differences,
and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("i,i->", [(7,), (7,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bi,bj", [(2, 3), (2, 4)]),  # implicit output: the sorted subscripts used once
]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize(("equation", "shapes"), CASES)
def test_einsum_equals_numpy(backend: str, equation: str, shapes: list) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    got = ag.einsum(equation, *(ag.asarray(a, device=ag.backend(backend)) for a in arrays))
    np.testing.assert_allclose(got.numpy(), np.einsum(equation, *arrays), rtol=1e-10, atol=1e-12)


def test_einsum_gradient_equals_finite_differences() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x = ag.asarray(a).requires_grad_()
    ag.sum(ag.einsum("ij,jk->ik", x, ag.asarray(b)) ** 2).backward()
    eps, numeric = 1e-6, np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (np.sum((up @ b) ** 2) - np.sum((down @ b) ** 2)) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-6, atol=1e-6)


def test_einsum_errors_name_the_equation() -> None:
    x = ag.ones((2, 3))
    with pytest.raises(ValueError, match=r"einsum: 'ij,jk->ik' names 2 operands, got 1"):
        ag.einsum("ij,jk->ik", x)
    with pytest.raises(ValueError, match="einsum: subscript 'j' has sizes 3 and 4"):
        ag.einsum("ij,jk->ik", x, ag.ones((4, 5)))
