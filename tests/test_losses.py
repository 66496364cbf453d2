"""agnostic.functional losses and agnostic.nn.loss modules against torch.nn.functional / torch.nn, in
float64 on every available backend: values for every reduction, gradients for the input (and the
target where torch has one), edge cases and errors. Few shapes, so JAX compiles little."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.functional as F
from agnostic.nn import loss as L

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")
TF = torch.nn.functional


BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
REDUCTIONS = ("mean", "sum", "none")

rng = np.random.default_rng(7)
X = rng.standard_normal((4, 3)) * 2
Y = rng.standard_normal((4, 3)) * 2
LOGITS = rng.standard_normal((4, 3, 2))
CLASSES = np.array([[0, 2], [1, -100], [2, 2], [-100, 0]])
CLASS_W = np.array([0.5, 2.0, 1.3])
PROBS = rng.uniform(0.05, 0.95, (4, 3))
SOFT = rng.uniform(0, 1, (4, 3))
ELEM_W = rng.uniform(0.5, 1.5, (3,))


def _softmax(a: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(a - a.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


LOGP = np.log(_softmax(X, 1))
TARGET_P = _softmax(Y, 1)
TARGET_P0 = TARGET_P.copy()
TARGET_P0[0, 1] = 0.0  # 0 log 0 = 0


def _compare(backend, ours, theirs, arrays, grads, tensors=(), rtol=1e-10, atol=1e-12) -> None:
    """ours(*agnostic tensors) vs theirs(*torch tensors): values, then gradients of <out, g> for the
    arrays whose flag in `grads` is set. `tensors` are extra float64 arrays (weights), no gradient."""
    tt = [torch.tensor(a, requires_grad=bool(r)) for a, r in zip(arrays, grads)]
    at = [
        backend.tensor(a, dtype=(ag.float64 if a.dtype.kind == "f" else ag.int64), requires_grad=bool(r))
        for a, r in zip(arrays, grads)
    ]
    extra_t = [None if w is None else torch.tensor(w) for w in tensors]
    extra_a = [None if w is None else backend.tensor(w, dtype=ag.float64) for w in tensors]
    ty = theirs(*tt, *extra_t)
    ay = ours(*at, *extra_a)
    assert ay.device is backend and ay.dtype is ag.float64 and ay.shape == tuple(ty.shape)
    np.testing.assert_allclose(ay.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    if not any(grads):
        return
    g = np.random.default_rng(1).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    (ay * backend.tensor(g, dtype=ag.float64)).sum().backward()
    for a, t, r in zip(at, tt, grads):
        if r:
            np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


# (id, ours, theirs, arrays, which arrays get gradients, extra float tensors)
CASES = [
    ("mse", F.mse_loss, lambda a, b, r: TF.mse_loss(a, b, reduction=r), (X, Y), (1, 1), ()),
    ("l1", F.l1_loss, lambda a, b, r: TF.l1_loss(a, b, reduction=r), (X, Y), (1, 1), ()),
    ("smooth_l1", lambda a, b, r: F.smooth_l1_loss(a, b, r, beta=0.8),
     lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r, beta=0.8), (X, Y), (1, 1), ()),
    ("smooth_l1_beta0", lambda a, b, r: F.smooth_l1_loss(a, b, r, beta=0.0),
     lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r, beta=0.0), (X, Y), (1, 1), ()),
    ("huber", lambda a, b, r: F.huber_loss(a, b, r, delta=0.7),
     lambda a, b, r: TF.huber_loss(a, b, reduction=r, delta=0.7), (X, Y), (1, 1), ()),
    ("kl_div", F.kl_div, lambda a, b, r: TF.kl_div(a, b, reduction=r), (LOGP, TARGET_P), (1, 1), ()),
    ("kl_div_zero_target", F.kl_div, lambda a, b, r: TF.kl_div(a, b, reduction=r), (LOGP, TARGET_P0), (1, 0), ()),
    ("kl_div_log_target", lambda a, b, r: F.kl_div(a, b, r, log_target=True),
     lambda a, b, r: TF.kl_div(a, b, reduction=r, log_target=True), (LOGP, np.log(TARGET_P)), (1, 1), ()),
    ("bce", lambda a, b, r, w: F.binary_cross_entropy(a, b, w, r),
     lambda a, b, r, w: TF.binary_cross_entropy(a, b, w, reduction=r), (PROBS, SOFT), (1, 0), (ELEM_W,)),
    ("bce_logits", lambda a, b, r, w, pw: F.binary_cross_entropy_with_logits(a, b, w, r, pw),
     lambda a, b, r, w, pw: TF.binary_cross_entropy_with_logits(a, b, w, reduction=r, pos_weight=pw),
     (X * 3, SOFT), (1, 1), (ELEM_W, np.array([1.0, 3.0, 0.5]))),
    ("bce_logits_plain", lambda a, b, r, w, pw: F.binary_cross_entropy_with_logits(a, b, w, r, pw),
     lambda a, b, r, w, pw: TF.binary_cross_entropy_with_logits(a, b, w, reduction=r, pos_weight=pw),
     (X * 3, SOFT), (1, 1), (None, None)),
    ("nll", lambda a, b, r, w: F.nll_loss(a, b, w, reduction=r),
     lambda a, b, r, w: TF.nll_loss(a, b, w, reduction=r), (LOGITS, CLASSES), (1, 0), (CLASS_W,)),
    ("nll_unweighted", lambda a, b, r: F.nll_loss(a, b, reduction=r),
     lambda a, b, r: TF.nll_loss(a, b, reduction=r), (LOGITS, CLASSES), (1, 0), ()),
    ("nll_1d", lambda a, b, r, w: F.nll_loss(a, b, w, reduction=r),
     lambda a, b, r, w: TF.nll_loss(a, b, w, reduction=r), (LOGITS[0, :, 0], np.array(1)), (1, 0), (CLASS_W,)),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
@by_name
def test_functional_losses_match_torch(backend: ag.Device, case) -> None:
    _, ours, theirs, arrays, grads, extra = case
    for reduction in REDUCTIONS:
        _compare(
            backend,
            lambda *a, r=reduction: ours(a[0], a[1], r, *a[2:]),
            lambda *a, r=reduction: theirs(a[0], a[1], r, *a[2:]),
            arrays,
            grads,
            extra,
        )


@by_name
def test_kl_div_batchmean_matches_torch(backend: ag.Device) -> None:
    for log_target, target in ((False, TARGET_P), (True, np.log(TARGET_P))):
        _compare(
            backend,
            lambda a, b, lt=log_target: F.kl_div(a, b, "batchmean", lt),
            lambda a, b, lt=log_target: TF.kl_div(a, b, reduction="batchmean", log_target=lt),
            (LOGP, target),
            (1, 1),
        )


# ====================================================================== modules
def _modules(backend: ag.Device) -> list:
    w3 = backend.tensor(CLASS_W, dtype=ag.float64)
    return [
        (L.CrossEntropyLoss(weight=w3, ignore_index=2, label_smoothing=0.1, reduction="sum"),
         torch.nn.CrossEntropyLoss(torch.tensor(CLASS_W), ignore_index=2, label_smoothing=0.1, reduction="sum"),
         (LOGITS, np.where(CLASSES < 0, 1, CLASSES))),
        (L.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), (LOGITS, np.where(CLASSES < 0, 1, CLASSES))),
        (L.NLLLoss(weight=w3), torch.nn.NLLLoss(torch.tensor(CLASS_W)), (LOGITS, CLASSES)),
        (L.NLLLoss(ignore_index=0, reduction="none"), torch.nn.NLLLoss(ignore_index=0, reduction="none"),
         (LOGITS, np.where(CLASSES < 0, 1, CLASSES))),
        (L.MSELoss(), torch.nn.MSELoss(), (X, Y)),
        (L.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), (X, Y)),
        (L.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), (X, Y)),
        (L.HuberLoss(delta=2.0, reduction="none"), torch.nn.HuberLoss(delta=2.0, reduction="none"), (X, Y)),
        (L.BCELoss(weight=backend.tensor(ELEM_W, dtype=ag.float64)),
         torch.nn.BCELoss(torch.tensor(ELEM_W)), (PROBS, SOFT)),
        (L.BCEWithLogitsLoss(pos_weight=backend.tensor(ELEM_W, dtype=ag.float64)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(ELEM_W)), (X, SOFT)),
        (L.KLDivLoss(reduction="batchmean", log_target=True),
         torch.nn.KLDivLoss(reduction="batchmean", log_target=True), (LOGP, np.log(TARGET_P))),
    ]  # fmt: skip


@by_name
def test_modules_match_torch(backend: ag.Device) -> None:
    for ours, theirs, arrays in _modules(backend):
        grads = (1, 0) if arrays[1].dtype.kind == "i" else (1, 1)
        if isinstance(ours, L.BCELoss):
            grads = (1, 0)
        _compare(backend, ours, theirs, arrays, grads)


def test_module_reprs_and_buffers_move_with_to() -> None:
    assert repr(L.MSELoss()) == "MSELoss()"
    assert repr(L.L1Loss(reduction="sum")) == "L1Loss(reduction='sum')"
    assert repr(L.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(beta=0.5)"
    assert repr(L.HuberLoss(reduction="none", delta=2.0)) == "HuberLoss(reduction='none', delta=2.0)"
    assert (
        repr(L.KLDivLoss("batchmean", log_target=True)) == "KLDivLoss(reduction='batchmean', log_target=True)"
    )
    assert repr(L.CrossEntropyLoss(ignore_index=3, label_smoothing=0.2)) == (
        "CrossEntropyLoss(ignore_index=3, label_smoothing=0.2)"
    )
    w = ag.backend("numpy").tensor(CLASS_W, dtype=ag.float64)
    m = L.BCEWithLogitsLoss(weight=w, pos_weight=w * 2)
    assert repr(m) == "BCEWithLogitsLoss(weight=Tensor(shape=(3,)), pos_weight=Tensor(shape=(3,)))"
    assert set(dict(m.named_buffers())) == {"weight", "pos_weight"} and not list(m.parameters())
    for b in BACKENDS:
        m.to(b)
        assert m.weight.device is b and m.pos_weight.device is b
        nll = L.NLLLoss(weight=w).to(b)
        assert nll.weight.device is b and nll.backend is b


# ====================================================================== edge cases
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's 0 / 0 for the mean
@by_name
def test_all_targets_ignored(backend: ag.Device) -> None:
    ignored = np.full((4, 2), -100)
    for weight in (None, CLASS_W):
        for reduction in REDUCTIONS:
            _compare(
                backend,
                lambda a, b, w, r=reduction: F.nll_loss(a, b, w, reduction=r),
                lambda a, b, w, r=reduction: TF.nll_loss(a, b, w, reduction=r),
                (LOGITS, ignored),
                (1, 0) if reduction != "mean" else (0, 0),
                (weight,),
            )
            _compare(
                backend,
                lambda a, b, w, r=reduction: F.cross_entropy(a, b, w, reduction=r),
                lambda a, b, w, r=reduction: TF.cross_entropy(a, b, w, reduction=r),
                (LOGITS, ignored),
                (0, 0),
                (weight,),
            )


@by_name
def test_bce_at_probabilities_zero_and_one(backend: ag.Device) -> None:
    p = np.array([[0.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    t = np.array([[0.0, 1.0, 1.0], [0.0, 0.3, 0.7]])
    for reduction in REDUCTIONS:
        _compare(
            backend,
            lambda a, b, r=reduction: F.binary_cross_entropy(a, b, reduction=r),
            lambda a, b, r=reduction: TF.binary_cross_entropy(a, b, reduction=r),
            (p, t),
            (0, 0),
        )
    # the gradient stays finite (torch's divides by max(p (1 - p), 1e-12) instead)
    x = backend.tensor(p, dtype=ag.float64, requires_grad=True)
    F.binary_cross_entropy(x, backend.tensor(t, dtype=ag.float64)).backward()
    assert np.isfinite(x.grad.numpy()).all()


@by_name
def test_bce_with_logits_large_logits(backend: ag.Device) -> None:
    x = np.array([[1000.0, -1000.0, 40.0], [-40.0, 700.0, -800.0]])
    t = np.array([[0.0, 1.0, 0.2], [1.0, 1.0, 0.0]])
    pw = np.array([2.0, 0.5, 1.0])
    for reduction in REDUCTIONS:
        _compare(
            backend,
            lambda a, b, w, r=reduction: F.binary_cross_entropy_with_logits(a, b, reduction=r, pos_weight=w),
            lambda a, b, w, r=reduction: TF.binary_cross_entropy_with_logits(a, b, reduction=r, pos_weight=w),
            (x, t),
            (1, 1),
            (pw,),
        )


@by_name
def test_empty_batch(backend: ag.Device) -> None:
    e = np.zeros((0, 3))
    cases = [
        (F.mse_loss, lambda a, b, r: TF.mse_loss(a, b, reduction=r)),
        (F.l1_loss, lambda a, b, r: TF.l1_loss(a, b, reduction=r)),
        (lambda a, b, r: F.smooth_l1_loss(a, b, r), lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r)),
        (lambda a, b, r: F.huber_loss(a, b, r), lambda a, b, r: TF.huber_loss(a, b, reduction=r)),
        (lambda a, b, r: F.binary_cross_entropy(a, b, reduction=r),
         lambda a, b, r: TF.binary_cross_entropy(a, b, reduction=r)),
        (lambda a, b, r: F.binary_cross_entropy_with_logits(a, b, reduction=r),
         lambda a, b, r: TF.binary_cross_entropy_with_logits(a, b, reduction=r)),
        (F.kl_div, lambda a, b, r: TF.kl_div(a, b, reduction=r)),
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's mean of nothing
        warnings.simplefilter("ignore", UserWarning)  # torch's kl_div 'mean' advice
        for ours, theirs in cases:
            for reduction in REDUCTIONS:
                _compare(backend, lambda a, b, r=reduction, f=ours: f(a, b, r),
                         lambda a, b, r=reduction, f=theirs: f(a, b, r), (e, e), (0, 0))  # fmt: skip
        for reduction in REDUCTIONS:
            _compare(
                backend,
                lambda a, b, r=reduction: F.nll_loss(a, b, reduction=r),
                lambda a, b, r=reduction: TF.nll_loss(a, b, reduction=r),
                (e, np.zeros((0,), np.int64)),
                (0, 0),
            )


# ====================================================================== errors
FUNCTIONS = [
    ("nll_loss", lambda r: F.nll_loss(ag.tensor(LOGITS), ag.tensor(CLASSES), reduction=r)),
    ("l1_loss", lambda r: F.l1_loss(ag.tensor(X), ag.tensor(Y), reduction=r)),
    ("smooth_l1_loss", lambda r: F.smooth_l1_loss(ag.tensor(X), ag.tensor(Y), reduction=r)),
    ("huber_loss", lambda r: F.huber_loss(ag.tensor(X), ag.tensor(Y), reduction=r)),
    ("binary_cross_entropy", lambda r: F.binary_cross_entropy(ag.tensor(PROBS), ag.tensor(SOFT), reduction=r)),
    ("binary_cross_entropy_with_logits",
     lambda r: F.binary_cross_entropy_with_logits(ag.tensor(X), ag.tensor(SOFT), reduction=r)),
    ("kl_div", lambda r: F.kl_div(ag.tensor(LOGP), ag.tensor(TARGET_P), reduction=r)),
    ("mse_loss", lambda r: F.mse_loss(ag.tensor(X), ag.tensor(Y), reduction=r)),
    ("cross_entropy", lambda r: F.cross_entropy(ag.tensor(LOGITS), ag.tensor(CLASSES), reduction=r)),
]  # fmt: skip


@pytest.mark.parametrize("name,call", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_bad_reduction_names_the_function(name: str, call) -> None:
    with pytest.raises(ValueError, match=f"^{name}: reduction must be"):
        call("avg")
    if name != "kl_div":
        with pytest.raises(ValueError, match=f"^{name}: reduction must be"):
            call("batchmean")


def test_shape_and_argument_errors_name_the_function() -> None:
    a, b = ag.tensor(X), ag.tensor(X[:, :2])
    for fn in (F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
               F.binary_cross_entropy_with_logits, F.kl_div):  # fmt: skip
        with pytest.raises(
            ValueError, match=rf"^{fn.__name__}: target shape \(4, 2\) must match input shape"
        ):
            fn(a, b)
    with pytest.raises(ValueError, match=r"^nll_loss: target shape"):
        F.nll_loss(ag.tensor(LOGITS), ag.tensor(CLASSES[:, :1]))
    with pytest.raises(ValueError, match=r"^nll_loss: weight has shape"):
        F.nll_loss(ag.tensor(LOGITS), ag.tensor(CLASSES), weight=ag.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"^nll_loss: target values must be in \[0, 3\)"):
        F.nll_loss(ag.tensor(LOGITS), ag.tensor(np.full((4, 2), 3)))
    with pytest.raises(TypeError, match=r"^nll_loss: target must hold class indices"):
        F.nll_loss(ag.tensor(LOGITS), ag.tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: weight of shape"):
        F.binary_cross_entropy(ag.tensor(PROBS), ag.tensor(SOFT), weight=ag.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: input values must be probabilities"):
        F.binary_cross_entropy(ag.tensor(X), ag.tensor(SOFT))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy_with_logits: pos_weight of shape"):
        F.binary_cross_entropy_with_logits(ag.tensor(X), ag.tensor(SOFT), pos_weight=ag.tensor(np.ones(4)))
    with pytest.raises(ValueError, match=r"^smooth_l1_loss: beta must be non-negative"):
        F.smooth_l1_loss(a, a, beta=-1.0)
    with pytest.raises(ValueError, match=r"^huber_loss: delta must be positive"):
        F.huber_loss(a, a, delta=0.0)
    with pytest.raises(ValueError, match=r"^MSELoss: reduction must be one of"):
        L.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"^NLLLoss: reduction must be one of"):
        L.NLLLoss(reduction="batchmean")
    with pytest.raises(ValueError, match=r"^HuberLoss: delta must be positive"):
        L.HuberLoss(delta=-1.0)
    with pytest.raises(ValueError, match=r"^CrossEntropyLoss: label_smoothing"):
        L.CrossEntropyLoss(label_smoothing=2.0)
    with pytest.raises(TypeError, match=r"^BCELoss: weight must be a Tensor"):
        L.BCELoss(weight=[1.0, 2.0])
