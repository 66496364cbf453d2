"""agnostic.nn.init, activations, Dropout and Embedding against torch.nn / torch.nn.init, in float64 on
every available backend; random initializers give the same values on every backend for one seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic.nn import init
from agnostic.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from agnostic.nn.dropout import Dropout
from agnostic.nn.parameter import Parameter
from agnostic.nn.sparse import Embedding

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")


BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)


def _param(backend: ag.Device, shape: tuple[int, ...]) -> Parameter:
    return Parameter(backend.zeros(shape, dtype=ag.float64))


# ====================================================================== init
NONLINEARITIES = [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
    ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
    ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None),
]  # fmt: skip


@pytest.mark.parametrize("name,param", NONLINEARITIES)
def test_calculate_gain_equals_torch(name: str, param: float | None) -> None:
    assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), abs=0)


def test_calculate_gain_errors() -> None:
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="calculate_gain: negative_slope True"):
        init.calculate_gain("leaky_relu", True)


def _fan_torch(shape: tuple[int, ...]) -> tuple[int, int]:
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2), (6, 2, 3, 3), (2, 3, 1, 2, 2)])
def test_uniform_variants_bounds_match_torch_formulas(shape: tuple[int, ...]) -> None:
    fan_in, fan_out = _fan_torch(shape)
    p = _param(ag.backend("numpy"), shape)
    cases = [
        # the bounds exactly as torch.nn.init computes them
        (
            lambda: init.xavier_uniform_(p, gain=2.0),
            math.sqrt(3.0) * (2.0 * math.sqrt(2.0 / (fan_in + fan_out))),
        ),
        (lambda: init.kaiming_uniform_(p), math.sqrt(3.0) * (math.sqrt(2.0) / math.sqrt(fan_in))),
        (
            lambda: init.kaiming_uniform_(p, a=math.sqrt(5), mode="fan_out"),
            math.sqrt(3.0) * (torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_out)),
        ),
        (
            lambda: init.kaiming_uniform_(p, nonlinearity="tanh"),
            math.sqrt(3.0) * ((5 / 3) / math.sqrt(fan_in)),
        ),
        (lambda: init.uniform_(p, -0.3, 0.3), 0.3),
    ]
    for fill, bound in cases:
        ag.manual_seed(1)
        host = fill().numpy()
        ag.manual_seed(1)  # the same draw as a direct uniform with the exact bound
        want = ag.backend("numpy").uniform(shape, -bound, bound, dtype=ag.float64).numpy()
        np.testing.assert_array_equal(host, want)
        assert np.abs(host).max() <= bound


def test_normal_variants_std_match_torch_formulas() -> None:
    shape = (400, 100, 3)
    fan_in, fan_out = _fan_torch(shape)
    p = _param(ag.backend("numpy"), shape)
    cases = [
        (lambda: init.xavier_normal_(p, gain=0.5), 0.5 * math.sqrt(2.0 / (fan_in + fan_out)), 0.0),
        (lambda: init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu"), math.sqrt(2.0 / fan_out), 0.0),
        (lambda: init.kaiming_normal_(p, a=0.1), math.sqrt(2.0 / 1.01) / math.sqrt(fan_in), 0.0),
        (lambda: init.normal_(p, 1.5, 0.25), 0.25, 1.5),
    ]
    for fill, std, mean in cases:
        host = fill().numpy()
        assert host.mean() == pytest.approx(mean, abs=5 * std / math.sqrt(host.size))
        assert host.std() == pytest.approx(std, rel=0.01)


def test_constants_and_trunc_normal() -> None:
    p = _param(ag.backend("numpy"), (3, 4))
    assert init.constant_(p, 2.5) is p and np.all(p.numpy() == 2.5)
    assert np.all(init.ones_(p).numpy() == 1) and np.all(init.zeros_(p).numpy() == 0)
    counts = Parameter(ag.zeros((2,), dtype=ag.int64), requires_grad=False)
    assert init.constant_(counts, 3).numpy().tolist() == [3, 3] and counts.dtype is ag.int64
    with pytest.raises(TypeError, match="normal_: the tensor must be floating-point, got int64"):
        init.normal_(counts)
    big = _param(ag.backend("numpy"), (200, 100))
    host = init.trunc_normal_(big, mean=0.5, std=1.0, a=-0.5, b=1.0).numpy()
    assert host.min() >= -0.5 and host.max() <= 1.0
    want_mean = torch.nn.init.trunc_normal_(torch.empty(2000, 1000, dtype=torch.float64), 0.5, 1.0, -0.5, 1.0)
    assert host.mean() == pytest.approx(float(want_mean.mean()), abs=0.01)
    assert host.std() == pytest.approx(float(want_mean.std()), abs=0.01)


@pytest.mark.parametrize("shape,gain", [((6, 4), 1.0), ((3, 8), 2.0), ((4, 2, 3, 3), 0.5)])
def test_orthogonal(shape: tuple[int, ...], gain: float) -> None:
    p = _param(ag.backend("numpy"), shape)
    q = init.orthogonal_(p, gain=gain).numpy().reshape(shape[0], -1) / gain
    rows, cols = q.shape
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-5)


@pytest.mark.parametrize(
    "fill",
    [
        lambda p, g: init.uniform_(p, -1, 2, generator=g),
        lambda p, g: init.normal_(p, 0, 3, generator=g),
        lambda p, g: init.trunc_normal_(p, generator=g),
        lambda p, g: init.xavier_uniform_(p, generator=g),
        lambda p, g: init.xavier_normal_(p, generator=g),
        lambda p, g: init.kaiming_uniform_(p, generator=g),
        lambda p, g: init.kaiming_normal_(p, generator=g),
        lambda p, g: init.orthogonal_(p, generator=g),
    ],
)
def test_one_seed_gives_the_same_values_on_every_backend(fill) -> None:
    values = []
    for b in BACKENDS:
        for dtype in (ag.float32, ag.float64):
            p = Parameter(b.zeros((4, 3, 2), dtype=dtype))
            out = fill(p, ag.Generator(11))
            assert out is p and p.device is b and p.dtype is dtype
            values.append((dtype, p.numpy()))
        ag.manual_seed(5)  # and the global stream when no generator is given
        p = Parameter(b.zeros((4, 3, 2), dtype=ag.float64))
        values.append(("global", fill(p, None).numpy()))
    for key in (ag.float32, ag.float64, "global"):
        same = [v for k, v in values if k is key or k == key]
        for v in same[1:]:
            np.testing.assert_array_equal(v, same[0])
    assert not np.array_equal(values[1][1], values[2][1])  # the generator and the global stream differ


def test_init_errors_name_the_function() -> None:
    vec = _param(ag.backend("numpy"), (5,))
    mat = _param(ag.backend("numpy"), (5, 3))
    for fn in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_):
        with pytest.raises(ValueError, match=f"{fn.__name__}: fan in and fan out can not be computed"):
            fn(vec)
    with pytest.raises(ValueError, match="orthogonal_: only tensors with 2 or more dimensions"):
        init.orthogonal_(vec)
    with pytest.raises(ValueError, match="kaiming_normal_: mode 'fan_avg' not supported"):
        init.kaiming_normal_(mat, mode="fan_avg")
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'gelu'"):
        init.kaiming_uniform_(mat, nonlinearity="gelu")
    with pytest.raises(TypeError, match="uniform_: expected a Parameter"):
        init.uniform_(ag.zeros((2, 2)))
    with pytest.raises(ValueError, match="trunc_normal_: need a < b"):
        init.trunc_normal_(mat, a=1.0, b=0.0)


# ====================================================================== activations
ACTIVATIONS = [
    (ReLU(), torch.nn.ReLU(), "ReLU()"),
    (GELU(), torch.nn.GELU(), "GELU(approximate='none')"),
    (GELU("tanh"), torch.nn.GELU("tanh"), "GELU(approximate='tanh')"),
    (SiLU(), torch.nn.SiLU(), "SiLU()"),
    (Tanh(), torch.nn.Tanh(), "Tanh()"),
    (Sigmoid(), torch.nn.Sigmoid(), "Sigmoid()"),
    (Softmax(dim=1), torch.nn.Softmax(dim=1), "Softmax(dim=1)"),
    (Softmax(-1), torch.nn.Softmax(-1), "Softmax(dim=-1)"),
    (LogSoftmax(dim=0), torch.nn.LogSoftmax(dim=0), "LogSoftmax(dim=0)"),
    (LeakyReLU(0.2), torch.nn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
    (LeakyReLU(), torch.nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (ELU(alpha=0.7), torch.nn.ELU(alpha=0.7), "ELU(alpha=0.7)"),
    (Softplus(), torch.nn.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (Softplus(beta=2.0, threshold=3.0), torch.nn.Softplus(beta=2.0, threshold=3.0), "Softplus(beta=2.0, threshold=3.0)"),
]  # fmt: skip


@pytest.mark.parametrize("ours,theirs,text", ACTIVATIONS, ids=lambda v: v if isinstance(v, str) else "")
@by_name
def test_activation_outputs_and_grads_match_torch(backend: ag.Device, ours, theirs, text: str) -> None:
    assert repr(ours) == repr(theirs) == text
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5)) * 3
    g = rng.standard_normal((3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    ax = backend.tensor(x, dtype=ag.float64, requires_grad=True)
    ay = ours(ax)
    assert ay.device is backend and ay.dtype is ag.float64
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_softmax_without_dim_follows_torch_legacy_rule() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for ours, theirs in ((Softmax(), torch.nn.Softmax()), (LogSoftmax(), torch.nn.LogSoftmax())):
        for arr in (x, x[0], x[0, 0]):
            with pytest.warns(UserWarning, match="Implicit dimension"):
                got = ours(ag.tensor(arr, dtype=ag.float64)).numpy()
            with pytest.warns(UserWarning):
                want = theirs(torch.tensor(arr)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gelu_rejects_unknown_approximation() -> None:
    with pytest.raises(ValueError, match="GELU: approximate must be"):
        GELU("erf")


# ====================================================================== dropout
@by_name
def test_dropout_eval_is_identity_and_train_drops_and_scales(backend: ag.Device) -> None:
    x = backend.tensor(np.random.default_rng(1).uniform(1, 2, (200, 100)), dtype=ag.float64)
    d = Dropout(0.3)
    assert repr(d) == "Dropout(p=0.3)" and d.training
    d.eval()
    assert np.array_equal(d(x).numpy(), x.numpy())
    d.train()
    y, host = d(x).numpy(), x.numpy()
    dropped = y == 0
    assert dropped.mean() == pytest.approx(0.3, abs=0.015)
    np.testing.assert_allclose(y[~dropped], host[~dropped] / 0.7, rtol=1e-15)
    assert np.array_equal(Dropout(0.0)(x).numpy(), host) and np.all(Dropout(1.0)(x).numpy() == 0)


def test_dropout_seeded_runs_reproduce_across_backends() -> None:
    x = np.ones((8, 16))
    runs = []
    for b in BACKENDS:
        ag.manual_seed(42)
        d = Dropout(0.5)
        runs.append([d(b.tensor(x, dtype=ag.float64)).numpy() for _ in range(2)])
    assert not np.array_equal(runs[0][0], runs[0][1])  # the stream advances between calls
    for r in runs[1:]:
        np.testing.assert_array_equal(r[0], runs[0][0])
        np.testing.assert_array_equal(r[1], runs[0][1])


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_validates_p(p) -> None:
    with pytest.raises(ValueError, match="Dropout: probability p has to be a number in \\[0, 1\\]"):
        Dropout(p)


# ====================================================================== embedding
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@by_name
def test_embedding_values_and_weight_grads_match_torch(backend: ag.Device, padding_idx: int | None) -> None:
    theirs = torch.nn.Embedding(7, 4, padding_idx=padding_idx).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(7, 4, dtype=torch.float64))  # a non-zero padding row too
    ours = Embedding(7, 4, padding_idx=padding_idx, backend=backend, dtype=ag.float64)
    assert repr(ours).split("  #")[0] == repr(theirs)
    ours.load_state_dict(theirs.state_dict())
    idx = np.array([[0, 2, 6], [2, 2, 5], [1, 6, 3], [4, 0, 2]])
    g = np.random.default_rng(2).standard_normal(idx.shape + (4,))
    ty = theirs(torch.tensor(idx))
    ty.backward(torch.tensor(g))
    ay = ours(backend.tensor(idx))
    assert ay.shape == (4, 3, 4) and ay.device is backend
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), rtol=0, atol=0)
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    one = ours(backend.tensor(np.array(3)))  # a 0-d index gives one row
    assert one.shape == (4,)


def test_embedding_init_is_standard_normal_with_zero_padding_row_on_every_backend() -> None:
    weights = []
    for b in BACKENDS:
        ag.manual_seed(9)
        e = Embedding(50, 40, padding_idx=3, backend=b)
        assert e.weight.shape == (50, 40) and e.weight.device is b and e.weight.dtype is ag.float32
        weights.append(e.weight.numpy())
    w = weights[0]
    assert np.all(w[3] == 0) and abs(w.std() - 1) < 0.05
    for other in weights[1:]:
        np.testing.assert_array_equal(other, w)


def test_embedding_errors() -> None:
    e = Embedding(5, 2)
    with pytest.raises(TypeError, match="Embedding: indices must be integers, got float32"):
        e(ag.tensor(np.array([0.0, 1.0], np.float32)))
    with pytest.raises(IndexError, match=r"Embedding: index 5 is out of range \[0, 5\)"):
        e(ag.tensor(np.array([0, 5])))
    with pytest.raises(IndexError, match=r"Embedding: index -1 is out of range"):
        e(ag.tensor(np.array([-1, 2])))
    with pytest.raises(ValueError, match="Embedding: padding_idx=5 must be within num_embeddings=5"):
        Embedding(5, 2, padding_idx=5)
