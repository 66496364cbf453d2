"""Convolution, pooling and normalization layers against torch.nn with the same weights (float64):
outputs, input and parameter gradients, BatchNorm running statistics, state_dict keys, repr and
argument errors, on every available backend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic.nn import conv, normalization, pooling

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note
TOL = {"rtol": 1e-10, "atol": 1e-10}

# (id, module holding the class, class name, args, kwargs, input shape); the same class name,
# args and kwargs build the torch.nn twin.
CASES: list[tuple[str, Any, str, tuple, dict, tuple[int, ...]]] = [
    ("conv1d-stride-groups", conv, "Conv1d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, (2, 4, 9)),
    ("conv2d-same-dilated", conv, "Conv2d", (3, 4, (3, 2)), {"padding": "same", "dilation": (2, 1)}, (2, 3, 6, 5)),
    ("conv2d-valid-nobias-unbatched", conv, "Conv2d", (2, 4, 3), {"padding": "valid", "bias": False}, (2, 5, 5)),
    ("conv3d", conv, "Conv3d", (2, 3, 2), {"stride": (1, 2, 1), "padding": 1}, (1, 2, 4, 4, 3)),
    ("convT1d-groups", conv, "ConvTranspose1d", (4, 6, 3),
     {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 5)),
    ("convT2d-dilated", conv, "ConvTranspose2d", (3, 2, (3, 2)),
     {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "output_padding": (1, 0)}, (2, 3, 4, 3)),
    ("maxpool1d-ceil", pooling, "MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 8)),
    ("maxpool2d-dilated", pooling, "MaxPool2d", ((2, 3),), {"stride": (2, 1), "padding": 1, "dilation": (2, 1)},
     (2, 2, 7, 6)),
    ("avgpool1d-nopad-count", pooling, "AvgPool1d", (3,),
     {"stride": 2, "padding": 1, "count_include_pad": False, "ceil_mode": True}, (2, 3, 8)),
    ("avgpool2d", pooling, "AvgPool2d", (3,), {"stride": 2, "padding": 1}, (2, 2, 7, 6)),
    ("adaptive1d", pooling, "AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
    ("adaptive2d-none", pooling, "AdaptiveAvgPool2d", ((3, None),), {}, (2, 2, 7, 5)),
    ("adaptive2d-upsample-unbatched", pooling, "AdaptiveAvgPool2d", (4,), {}, (2, 3, 6)),
    ("layernorm", normalization, "LayerNorm", ((3, 4),), {}, (2, 5, 3, 4)),
    ("layernorm-nobias", normalization, "LayerNorm", (4,), {"bias": False, "eps": 1e-3}, (3, 4)),
    ("layernorm-noaffine", normalization, "LayerNorm", (4,), {"elementwise_affine": False}, (3, 4)),
    ("groupnorm", normalization, "GroupNorm", (2, 6), {}, (2, 6, 3, 2)),
    ("groupnorm-noaffine", normalization, "GroupNorm", (3, 6), {"affine": False, "eps": 1e-3}, (2, 6, 5)),
    ("rmsnorm", normalization, "RMSNorm", (4,), {}, (2, 3, 4)),
    ("rmsnorm-2d-eps", normalization, "RMSNorm", ((3, 4),), {"eps": 1e-3}, (2, 3, 4)),
    ("rmsnorm-noaffine", normalization, "RMSNorm", (4,), {"elementwise_affine": False}, (2, 3, 4)),
    ("batchnorm1d-2d", normalization, "BatchNorm1d", (3,), {}, (5, 3)),
    ("batchnorm2d-nobias", normalization, "BatchNorm2d", (3,), {"bias": False}, (2, 3, 2, 2)),
]  # fmt: skip


def _pair(case: tuple, backend: ag.Device | None) -> tuple[Any, Any]:
    """Our layer on `backend` (float64) holding the torch twin's weights (randomized, so ones and
    zeros in norm layers do not hide a mistake)."""
    _, mod, name, args, kwargs, _ = case
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1.5, 1.5)
    ours = (
        getattr(mod, name)(*args, **kwargs, backend=backend)
        if backend
        else getattr(mod, name)(*args, **kwargs)
    )
    ours.to(dtype=ag.float64)
    missing, unexpected = ours.load_state_dict(theirs.state_dict())
    assert missing == [] and unexpected == []
    return ours, theirs


def _run_both(ours: Any, theirs: Any, x: np.ndarray, backend: ag.Device, seed: int) -> None:
    """Forward and backward through both with the same upstream gradient; compare everything."""
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    g = np.random.default_rng(seed).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    ax = backend.tensor(x, dtype=ag.float64, requires_grad=True)
    ay = ours(ax)
    assert ay.device is backend and ay.shape == tuple(ty.shape)
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), **TOL)
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), **TOL)
    tparams = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(tparams)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[n].grad.numpy(), err_msg=n, **TOL)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch_in_values_and_gradients(case: tuple, backend: ag.Device) -> None:
    ours, theirs = _pair(case, backend)
    x = np.random.default_rng(1).standard_normal(case[5])
    _run_both(ours, theirs, x, backend, seed=2)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_state_dict_keys_shapes_and_repr_match_torch(case: tuple) -> None:
    _, mod, name, args, kwargs, _ = case
    ours, theirs = getattr(mod, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    assert ours.extra_repr() == theirs.extra_repr()


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_maxpool_return_indices_match_torch(backend: ag.Device) -> None:
    x = np.random.default_rng(5).standard_normal((2, 2, 7, 6))
    out, idx = pooling.MaxPool2d(3, stride=2, padding=1, return_indices=True)(backend.tensor(x))
    tout, tidx = torch.nn.MaxPool2d(3, stride=2, padding=1, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(out.numpy(), tout.numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


# ---------------------------------------------------------------------- BatchNorm statistics
BN_CASES = [
    ("bn1d-3d", "BatchNorm1d", {}, (4, 3, 5)),
    ("bn1d-cumulative", "BatchNorm1d", {"momentum": None}, (6, 3)),
    ("bn2d-momentum", "BatchNorm2d", {"momentum": 0.3}, (3, 3, 2, 2)),
    ("bn2d-untracked", "BatchNorm2d", {"track_running_stats": False, "affine": False}, (3, 3, 2, 2)),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("case", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batchnorm_running_stats_follow_torch_then_eval_uses_them(case: tuple, backend: ag.Device) -> None:
    cid, name, kwargs, shape = case
    ours, theirs = _pair((cid, normalization, name, (3,), kwargs, shape), backend)
    rng = np.random.default_rng(3)
    for step in range(2):  # training: batch statistics, running statistics updated
        x = rng.standard_normal(shape) * (step + 1) + step
        _run_both(ours, theirs, x, backend, seed=10 + step)
        ours.zero_grad()
        theirs.zero_grad()
    tbufs = dict(theirs.named_buffers())
    assert [n for n, _ in ours.named_buffers()] == list(tbufs)
    for n, b in ours.named_buffers():
        assert b.device is backend
        np.testing.assert_allclose(b.numpy(), tbufs[n].numpy(), err_msg=n, **TOL)
        assert b.dtype.name == str(tbufs[n].dtype).removeprefix("torch.").replace("long", "int64"), n
    ours.eval()
    theirs.eval()
    _run_both(ours, theirs, rng.standard_normal(shape), backend, seed=20)
    if kwargs.get("track_running_stats", True):
        assert int(ours.num_batches_tracked.item()) == 2
        assert not ours.running_mean.requires_grad and not ours.running_var.requires_grad


def test_batchnorm_state_dict_round_trips_into_torch() -> None:
    ours = normalization.BatchNorm2d(3).to(dtype=ag.float64)
    ours(ag.asarray(np.random.default_rng(4).standard_normal((2, 3, 2, 2))))
    theirs = torch.nn.BatchNorm2d(3).double()
    theirs.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in ours.state_dict().items()})
    assert int(theirs.num_batches_tracked) == 1 and theirs.num_batches_tracked.dtype == torch.int64
    np.testing.assert_allclose(theirs.running_var.numpy(), ours.running_var.numpy(), **TOL)


# ---------------------------------------------------------------------- initialization
INIT_CASES = [
    ("Conv2d", (4, 8, 3), {"groups": 2}),
    ("Conv1d", (3, 5, 4), {}),
    ("ConvTranspose2d", (4, 6, (3, 2)), {"groups": 2}),
    ("ConvTranspose1d", (2, 6, 3), {}),
]


@pytest.mark.parametrize("case", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_conv_default_init_has_torchs_bounds_and_one_seed_builds_the_same_layer(case: tuple) -> None:
    name, args, kwargs = case
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(theirs.weight)
    bound = 1 / math.sqrt(fan_in)
    built = []
    for backend in BACKENDS:
        ag.manual_seed(11)
        layer = getattr(conv, name)(*args, **kwargs, backend=backend)
        assert layer.weight.shape == tuple(theirs.weight.shape) and layer.weight.device is backend
        built.append({k: v.numpy() for k, v in layer.state_dict().items()})
    for k, v in built[0].items():
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound, k
        for other in built[1:]:
            np.testing.assert_array_equal(other[k], v, err_msg=k)


def test_norm_layers_start_as_torch_does() -> None:
    ln, bn = normalization.LayerNorm(4), normalization.BatchNorm1d(2)
    np.testing.assert_array_equal(ln.weight.numpy(), np.ones(4))
    np.testing.assert_array_equal(ln.bias.numpy(), np.zeros(4))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(2))
    assert bn.num_batches_tracked.dtype is ag.int64 and bn.num_batches_tracked.shape == ()
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]


# ---------------------------------------------------------------------- errors
ERRORS = [
    (lambda: conv.Conv2d(2, 2, 3, padding_mode="reflect"), "Conv2d.*padding_mode"),
    (lambda: conv.Conv1d(3, 4, 3, groups=2), "Conv1d.*in_channels=3.*groups=2"),
    (lambda: conv.Conv2d(4, 3, 3, groups=2), "Conv2d.*out_channels=3.*groups=2"),
    (lambda: conv.Conv2d(2, 2, 3, stride=2, padding="same"), "Conv2d.*'same'.*strided"),
    (lambda: conv.Conv2d(2, 2, 3, padding="full"), "Conv2d.*padding"),
    (lambda: conv.Conv3d(2, 2, (3, 3)), "Conv3d.*kernel_size needs 3"),
    (lambda: conv.ConvTranspose1d(2, 2, 3, padding="same"), "ConvTranspose1d.*padding"),
    (lambda: conv.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2), "ConvTranspose2d.*output_padding"),
    (lambda: conv.Conv2d(2, 2, 3)(ag.zeros((1, 3, 5, 5))), "Conv2d.*expected input"),
    (lambda: pooling.MaxPool2d(0), "MaxPool2d.*kernel_size"),
    (lambda: pooling.AvgPool1d(2, padding=-1), "AvgPool1d.*padding"),
    (lambda: pooling.MaxPool1d(2)(ag.zeros((1, 2, 3, 4))), "MaxPool1d.*expected"),
    (lambda: pooling.AdaptiveAvgPool2d((1, 2, 3)), "AdaptiveAvgPool2d.*output_size"),
    (lambda: normalization.GroupNorm(4, 6), "GroupNorm.*num_channels=6.*num_groups=4"),
    (lambda: normalization.GroupNorm(2, 4)(ag.zeros((1, 6, 2))), "GroupNorm.*expected input"),
    (lambda: normalization.LayerNorm(4)(ag.zeros((2, 3))), "LayerNorm.*does not end in"),
    (lambda: normalization.RMSNorm((0,)), "RMSNorm.*normalized_shape"),
    (lambda: normalization.BatchNorm2d(3)(ag.zeros((2, 3))), "BatchNorm2d.*4D"),
    (lambda: normalization.BatchNorm1d(3)(ag.zeros((2, 4))), "BatchNorm1d.*3 channels"),
    (lambda: normalization.BatchNorm1d(3)(ag.zeros((1, 3))), "BatchNorm1d.*more than 1 value"),
    (lambda: normalization.BatchNorm1d(3, momentum=2.0), "BatchNorm1d.*momentum"),
]


@pytest.mark.parametrize(
    "make, message", ERRORS, ids=[m.split(".")[0] + str(i) for i, (_, m) in enumerate(ERRORS)]
)
def test_bad_arguments_raise_errors_naming_the_layer(make: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()
