"""interpolate / Upsample and Bilinear against torch with the same inputs and weights (float64):
outputs, input and parameter gradients, repr, default init and argument errors, on every
available backend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.functional as F
from agnostic.nn.bilinear import Bilinear
from agnostic.nn.upsampling import Upsample

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()
TOL = {"rtol": 1e-10, "atol": 1e-10}

# (id, input shape, kwargs for interpolate / Upsample)
CASES: list[tuple[str, tuple[int, ...], dict[str, Any]]] = [
    ("nearest1d-x2", (2, 3, 5), {"scale_factor": 2}),
    ("nearest1d-x1.7", (2, 3, 6), {"scale_factor": 1.7}),
    ("nearest1d-down0.6", (2, 2, 9), {"scale_factor": 0.6}),
    ("nearest1d-size-up", (2, 2, 4), {"size": 11}),
    ("nearest1d-size-down", (2, 2, 10), {"size": 4}),
    ("nearest2d-x3", (2, 2, 3, 4), {"scale_factor": 3}),
    ("nearest2d-mixed", (2, 2, 5, 6), {"scale_factor": (1.5, 0.5)}),
    ("nearest2d-size", (1, 3, 4, 7), {"size": (9, 3)}),
    ("linear-x2", (2, 3, 5), {"scale_factor": 2, "mode": "linear"}),
    ("linear-x2-corners", (2, 3, 5), {"scale_factor": 2, "mode": "linear", "align_corners": True}),
    ("linear-x2.5", (2, 2, 4), {"scale_factor": 2.5, "mode": "linear"}),
    ("linear-down0.4-corners", (2, 2, 11), {"scale_factor": 0.4, "mode": "linear", "align_corners": True}),
    ("linear-down0.4", (2, 2, 11), {"scale_factor": 0.4, "mode": "linear"}),
    ("linear-size7", (2, 2, 3), {"size": 7, "mode": "linear", "align_corners": False}),
    ("linear-size1-corners", (1, 2, 5), {"size": 1, "mode": "linear", "align_corners": True}),
    ("linear-from1", (1, 2, 1), {"size": 4, "mode": "linear"}),
    ("bilinear-x2", (2, 2, 3, 4), {"scale_factor": 2, "mode": "bilinear"}),
    ("bilinear-x2-corners", (2, 2, 3, 4), {"scale_factor": 2, "mode": "bilinear", "align_corners": True}),
    ("bilinear-mixed", (2, 3, 6, 5), {"scale_factor": (0.5, 1.6), "mode": "bilinear"}),
    ("bilinear-size-corners", (1, 2, 7, 4), {"size": (3, 9), "mode": "bilinear", "align_corners": True}),
    ("bilinear-size", (1, 2, 7, 4), {"size": (3, 9), "mode": "bilinear"}),
    ("bilinear-x1.3", (2, 1, 5, 5), {"scale_factor": 1.3, "mode": "bilinear"}),
]


def _compare(fn: Any, tfn: Any, xs: list[np.ndarray], backend: ag.Device, params: Any = None) -> None:
    """fn on backend tensors vs tfn on torch tensors: output, input gradients and (params: pairs of
    ours/theirs named parameters) parameter gradients, with one upstream gradient."""
    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    ty = tfn(*txs)
    g = np.random.default_rng(7).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    axs = [backend.tensor(x, dtype=ag.float64, requires_grad=True) for x in xs]
    ay = fn(*axs)
    assert ay.device is backend and ay.shape == tuple(ty.shape)
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), **TOL)
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    for ax, tx in zip(axs, txs):
        np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), **TOL)
    for (n, p), (tn, tp) in params or ():
        assert n == tn
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), err_msg=n, **TOL)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_interpolate_matches_torch_in_values_and_gradients(case: tuple, backend: ag.Device) -> None:
    _, shape, kwargs = case
    x = np.random.default_rng(1).standard_normal(shape)
    _compare(
        lambda t: F.interpolate(t, **kwargs),
        lambda t: torch.nn.functional.interpolate(t, **kwargs),
        [x],
        backend,
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_upsample_module_matches_torch(backend: ag.Device) -> None:
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    for kwargs in ({"scale_factor": 2.5, "mode": "bilinear"}, {"size": (6, 3)}):
        ours, theirs = Upsample(**kwargs, backend=backend), torch.nn.Upsample(**kwargs)
        _compare(ours, theirs, [x], backend)


def test_nearest_indices_follow_torch_forward_over_many_sizes() -> None:
    """The source-index rule (float32 floor) agrees with torch's forward at every size tried,
    including the rounding edge cases (14 -> 46 by size, 5 -> 5 by scale 1.1)."""
    for n_in in range(1, 24):
        for sf in (0.3, 0.45, 0.5, 2 / 3, 0.9, 1.1, 1.25, 1.5, 1.7, 2.0, 2.2, 3.3, 4.0):
            n_out = math.floor(n_in * sf)
            if n_out < 1:
                continue
            x = np.arange(float(n_in)).reshape(1, 1, n_in)
            for kwargs in ({"scale_factor": sf}, {"size": n_out}):
                want = torch.nn.functional.interpolate(torch.tensor(x), **kwargs).numpy()
                got = F.interpolate(ag.asarray(x), **kwargs).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f"{n_in} {kwargs}")
                for mode in ("linear",):
                    for corners in (False, True):
                        w = torch.nn.functional.interpolate(
                            torch.tensor(x), **kwargs, mode=mode, align_corners=corners
                        ).numpy()
                        o = F.interpolate(ag.asarray(x), **kwargs, mode=mode, align_corners=corners)
                        np.testing.assert_allclose(o.numpy(), w, err_msg=f"{n_in} {kwargs} {corners}", **TOL)


def test_upsample_repr_matches_torch() -> None:
    for kwargs in ({"scale_factor": 2}, {"scale_factor": (2, 1.5), "mode": "bilinear"},
                   {"size": (3, 4), "mode": "bilinear", "align_corners": True}, {"size": 5, "mode": "linear"}):  # fmt: skip
        assert repr(Upsample(**kwargs)) == repr(torch.nn.Upsample(**kwargs))


@pytest.mark.parametrize(
    "kwargs, shape, match",
    [
        ({"size": 4, "scale_factor": 2}, (1, 1, 3), "exactly one of size or scale_factor"),
        ({}, (1, 1, 3), "exactly one of size or scale_factor"),
        ({"size": 4, "mode": "bicubic"}, (1, 1, 3, 3), "mode must be one of"),
        ({"size": 4, "align_corners": True}, (1, 1, 3), "align_corners can only be set"),
        ({"size": 4, "mode": "bilinear"}, (1, 1, 3), "expects a 4-d"),
        ({"size": 4, "mode": "linear"}, (1, 1, 3, 3), "expects a 3-d"),
        ({"size": 4}, (1, 3), "expects a 3-d or 4-d"),
        ({"size": (4, 4, 4)}, (1, 1, 3, 3), "size must be"),
        ({"scale_factor": -1.0}, (1, 1, 3), "scale_factor must be"),
        ({"scale_factor": 0.1}, (1, 1, 3), "empty output"),
    ],
)
def test_interpolate_errors_name_the_function(kwargs: dict, shape: tuple, match: str) -> None:
    x = ag.zeros(shape)
    with pytest.raises(ValueError, match=f"^interpolate: .*{match}"):
        F.interpolate(x, **kwargs)
    with pytest.raises(ValueError, match=f"^interpolate: .*{match}"):
        Upsample(**kwargs)(x)


# ---------------------------------------------------------------------- Bilinear
BILINEAR_CASES = [
    ("batched", (2, 3, 4), True, (5, 2)),
    ("nobias", (3, 2, 1), False, (4,)),
    ("unbatched", (2, 3, 4), True, ()),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", BILINEAR_CASES, ids=[c[0] for c in BILINEAR_CASES])
def test_bilinear_matches_torch_in_values_and_gradients(case: tuple, backend: ag.Device) -> None:
    _, (in1, in2, out), bias, lead = case
    theirs = torch.nn.Bilinear(in1, in2, out, bias=bias).double()
    ours = Bilinear(in1, in2, out, bias=bias, backend=backend).to(dtype=ag.float64)
    missing, unexpected = ours.load_state_dict(theirs.state_dict())
    assert missing == [] and unexpected == []
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal(lead + (in1,)), rng.standard_normal(lead + (in2,))
    _compare(ours, theirs, [x1, x2], backend, zip(ours.named_parameters(), theirs.named_parameters()))


def test_bilinear_state_dict_repr_and_default_init_match_torch() -> None:
    theirs = torch.nn.Bilinear(4, 3, 5)
    bound = 1 / math.sqrt(4)
    built = []
    for backend in BACKENDS:
        ag.manual_seed(11)
        layer = Bilinear(4, 3, 5, backend=backend)
        assert layer.extra_repr() == theirs.extra_repr()
        sd = layer.state_dict()
        assert list(sd) == list(theirs.state_dict())
        assert all(sd[k].shape == tuple(v.shape) for k, v in theirs.state_dict().items())
        assert layer.weight.device is backend
        built.append({k: v.numpy() for k, v in sd.items()})
    for k, v in built[0].items():
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound, k
        for other in built[1:]:
            np.testing.assert_array_equal(other[k], v, err_msg=k)
    assert Bilinear(2, 3, 1, bias=False).extra_repr() == torch.nn.Bilinear(2, 3, 1, bias=False).extra_repr()


def test_bilinear_errors_name_the_layer() -> None:
    layer = Bilinear(2, 3, 4)
    with pytest.raises(ValueError, match=r"^Bilinear: input1"):
        layer(ag.zeros((5, 3)), ag.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"^Bilinear: input2"):
        layer(ag.zeros((5, 2)), ag.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"^Bilinear: input1 .* same leading"):
        layer(ag.zeros((5, 2)), ag.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"^Bilinear: in2_features"):
        Bilinear(2, -1, 4)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_nearest_gradient_is_the_adjoint_of_the_forward_where_torch_backward_disagrees(
    backend: ag.Device,
) -> None:
    """5 -> 5 by scale 1.1: torch's forward reads sources [0, 0, 1, 2, 3] but its backward kernel
    takes the out == in shortcut (identity); ours sends each output's gradient to the source it read."""
    x = backend.tensor(np.arange(5.0).reshape(1, 1, 5), dtype=ag.float64, requires_grad=True)
    y = F.interpolate(x, scale_factor=1.1)
    np.testing.assert_array_equal(y.numpy().ravel(), [0, 0, 1, 2, 3])
    (
        y * backend.tensor(np.array([1.0, 10, 100, 1000, 10000]).reshape(1, 1, 5), dtype=ag.float64)
    ).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [11, 100, 1000, 10000, 0])
