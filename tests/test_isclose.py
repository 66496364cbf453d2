"""ag.isclose / ag.allclose on every backend here, against numpy.isclose (and torch's rule where the
two differ: an infinity is close only to itself, even with atol=inf); the errors of bad input."""

from __future__ import annotations

import numpy as np
import pytest

import agnostic as ag
from tests.backends_here import available_backends

BACKENDS = available_backends()
INF, NAN = np.inf, np.nan
EDGES = np.array([0.0, -0.0, 1.0, 1.0 + 1e-6, 1e10, 1.00001e10, 1e-9, INF, -INF, NAN, 3.0])


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    """Every pair of edge values, plus random values near each other."""
    a, b = np.meshgrid(EDGES, EDGES)
    rng = np.random.default_rng(0)
    near = rng.normal(size=200)
    return np.concatenate([a.ravel(), near]), np.concatenate(
        [b.ravel(), near * (1 + rng.normal(size=200) * 1e-5)]
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "tolerances", [{}, {"rtol": 0.0, "atol": 0.0}, {"rtol": 1e-3, "atol": 1e-6}, {"atol": INF}]
)
@pytest.mark.parametrize("equal_nan", [False, True])
@pytest.mark.filterwarnings("ignore:One of rtol or atol is not valid")  # NumPy's, of atol=inf
def test_isclose_matches_numpy(backend: ag.Device, dtype: str, tolerances: dict, equal_nan: bool) -> None:
    a, b = (x.astype(dtype) for x in _pairs())
    want = np.isclose(a, b, equal_nan=equal_nan, **tolerances)
    infinite = np.isinf(a) | np.isinf(
        b
    )  # NumPy calls inf close to a finite x1 under atol=inf; torch does not
    want[infinite] = (a == b)[infinite]
    got = ag.isclose(
        ag.tensor(a, device=backend), ag.tensor(b, device=backend), equal_nan=equal_nan, **tolerances
    )
    assert got.dtype == ag.bool and got.shape == a.shape
    np.testing.assert_array_equal(got.numpy(), want)
    assert ag.allclose(
        ag.tensor(a, device=backend), ag.tensor(b, device=backend), equal_nan=equal_nan, **tolerances
    ) is bool(want.all())


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_isclose_broadcasts_promotes_and_takes_scalars(backend: ag.Device) -> None:
    a = np.linspace(-2, 2, 12).reshape(3, 4)
    b = (a[1] * (1 + 1e-6)).astype(np.float32)
    got = ag.isclose(ag.tensor(a, device=backend), ag.tensor(b, device=backend))  # float64 with float32
    np.testing.assert_array_equal(got.numpy(), np.isclose(a, b.astype(np.float64)))
    np.testing.assert_array_equal(ag.isclose(ag.tensor(a, device=backend), 2.0).numpy(), np.isclose(a, 2.0))
    np.testing.assert_array_equal(ag.isclose(0.0, ag.tensor(a, device=backend)).numpy(), np.isclose(0.0, a))
    ints = np.array([0, 1, 2**40, -(2**40)], np.int64)
    got = ag.isclose(ag.tensor(ints, device=backend), ag.tensor(ints + 3, device=backend), rtol=1e-12)
    np.testing.assert_array_equal(got.numpy(), np.isclose(ints, ints + 3, rtol=1e-12))
    flags = ag.tensor(np.array([True, False]), device=backend)
    np.testing.assert_array_equal(ag.isclose(flags, flags).numpy(), [True, True])
    z = np.array([1 + 1j, 1j * INF, NAN + 0j, 2 - 2j], np.complex128)
    w = np.array([1 + 1.000001j, 1j * INF, NAN + 0j, 2 - 2.1j], np.complex128)
    for equal_nan in (False, True):
        got = ag.isclose(ag.tensor(z, device=backend), ag.tensor(w, device=backend), equal_nan=equal_nan)
        np.testing.assert_array_equal(got.numpy(), np.isclose(z, w, equal_nan=equal_nan))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_isclose_is_a_method_and_carries_no_gradient(backend: ag.Device) -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True, device=backend)
    assert x.isclose(x + 1e-9).numpy().tolist() == [True, True]
    assert x.allclose(x * 1.1) is False
    assert not ag.isclose(x, x).requires_grad


def test_isclose_is_not_symmetric_as_in_numpy() -> None:
    """The tolerance scales with the second operand (x2 is the reference)."""
    a, b = np.float64(1.0), np.float64(2.0)
    assert bool(ag.isclose(ag.tensor(a), ag.tensor(b), rtol=0.5, atol=0)) == bool(
        np.isclose(a, b, rtol=0.5, atol=0)
    )
    assert bool(ag.isclose(ag.tensor(b), ag.tensor(a), rtol=0.5, atol=0)) == bool(
        np.isclose(b, a, rtol=0.5, atol=0)
    )
    assert bool(ag.isclose(ag.tensor(a), ag.tensor(b), rtol=0.5, atol=0)) != bool(
        ag.isclose(ag.tensor(b), ag.tensor(a), rtol=0.5, atol=0)
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: ag.isclose(ag.tensor([1.0]), ag.tensor([1.0]), rtol=-1e-5),
            ValueError,
            "rtol must be a number >= 0, got -1e-05",
        ),
        (
            lambda: ag.isclose(ag.tensor([1.0]), ag.tensor([1.0]), atol=float("nan")),
            ValueError,
            "atol must be a number >= 0, got nan",
        ),
        (
            lambda: ag.isclose(ag.tensor([1.0]), ag.tensor([1.0]), atol="0.1"),
            ValueError,
            "atol must be a number >= 0",
        ),
        (
            lambda: ag.isclose(ag.tensor([1.0]), ag.tensor([1.0]), rtol=True),
            ValueError,
            "rtol must be a number >= 0, got True",
        ),
        (lambda: ag.isclose(1.0, 1.0), TypeError, "isclose"),
        (lambda: ag.isclose(ag.tensor([1.0, 2.0]), ag.tensor([1.0, 2.0, 3.0])), ValueError, "isclose"),
        (lambda: ag.allclose(ag.tensor(np.ones((2, 3))), ag.tensor(np.ones((3, 2)))), ValueError, "isclose"),
    ],
)
def test_isclose_bad_input(call: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()
