"""Activation checkpointing (`nn.utils.checkpoint`, `checkpoint_sequential`): gradients equal the
non-checkpointed ones on every backend (dropout masks replayed, seed streams untouched), nested
segments, captured tensors, several outputs, gradients of gradients against finite differences,
torch.utils.checkpoint.checkpoint_sequential on the same weights, `ag.compile` on torch and JAX
(the optimization barrier in the lowered program), memory measured with tracemalloc, bad input."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn
from agnostic.nn.utils import checkpoint, checkpoint_sequential

BACKENDS = [b for b in available_backends() if b.name != "cupy"]
IDS = [b.name for b in BACKENDS]


def test_cupy_is_skipped_with_a_reason() -> None:
    if "cupy" not in ag.backend_names():
        pytest.skip("cupy is not registered here")
    try:
        ag.backend("cupy")
    except Exception as exc:  # no CUDA device on this machine
        pytest.skip(f"cupy cannot run here: {type(exc).__name__}: {exc}")
    pytest.skip("cupy runs here, but these tests loop over the CPU backends only")


def _block(backend: ag.Device) -> nn.Module:
    ag.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.GELU(),
        nn.Dropout(0.3),
        nn.Linear(16, 6),
        nn.TransformerEncoderLayer(6, 2, 12, dropout=0.2, batch_first=True),
        backend=backend,
    )


def _numpy(t: ag.Tensor | None) -> np.ndarray:
    assert t is not None
    return np.asarray(t.numpy(), dtype=np.float64)


def _close(a: list[np.ndarray], b: list[np.ndarray], tol: float = 1e-6) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol)


# ---------------------------------------------------------------------- gradients, three ways
@pytest.mark.parametrize("way", ["backward", "grad", "gradients"])
@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gradients_equal_the_unchecckpointed_ones_with_dropout(backend: ag.Device, way: str) -> None:
    model = _block(backend)
    params = list(model.parameters())
    x0 = backend.randn(3, 4, 6, seed=11)

    def run(ck: bool) -> list[np.ndarray]:
        ag.manual_seed(5)
        x = x0.detach().requires_grad_()
        for p in params:
            p.grad = None

        def loss_of(x: ag.Tensor) -> ag.Tensor:
            y = checkpoint(model, x) if ck else model(x)
            return (y * y).sum()

        if way == "backward":
            loss_of(x).backward()
            grads = [x.grad, *(p.grad for p in params)]
        elif way == "grad":
            grads = [ag.grad(loss_of, argnums=0)(x)]
        else:
            grads = list(ag.gradients(loss_of(x), [x, *params]))
        after = ag.random.default_generator.next_seed()  # the seed stream moved as without
        return [_numpy(g) for g in grads] + [np.array(after, dtype=np.float64)]

    _close(run(True), run(False))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_explicit_generator_and_seed_draws_are_replayed(backend: ag.Device) -> None:
    w = backend.randn(5, 5, seed=1).requires_grad_()

    def f(x: ag.Tensor, gen: ag.Generator) -> ag.Tensor:
        a = x @ w * backend.rand(4, 5, generator=gen)
        b = ag.tanh(a) * backend.randn(4, 5, seed=9)
        return ag.functional.dropout(b, 0.5, training=True, generator=gen)

    def run(ck: bool) -> list[np.ndarray]:
        gen = ag.Generator(3)
        w.grad = None
        x = backend.randn(4, 5, seed=2).requires_grad_()
        y = checkpoint(f, x, gen) if ck else f(x, gen)
        (y.sum() * 1.0).backward()
        return [_numpy(y), _numpy(x.grad), _numpy(w.grad), np.array(float(gen.next_seed()))]

    _close(run(True), run(False))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_preserve_rng_state_false_draws_afresh(backend: ag.Device) -> None:
    x = backend.ones(64).requires_grad_()
    ag.manual_seed(0)
    y = checkpoint(lambda t: ag.functional.dropout(t, 0.5, training=True), x, preserve_rng_state=False)
    y.sum().backward()
    ag.manual_seed(0)
    mask = _numpy(ag.functional.dropout(backend.ones(64), 0.5, training=True)) != 0
    second = _numpy(ag.functional.dropout(backend.ones(64), 0.5, training=True)) != 0
    np.testing.assert_array_equal(_numpy(y) != 0, mask)
    np.testing.assert_array_equal(_numpy(x.grad) != 0, second)  # the recomputation drew the next mask


def test_a_different_draw_in_the_recomputation_is_refused() -> None:
    B = ag.backend("numpy")
    calls = []

    def f(t: ag.Tensor) -> ag.Tensor:
        calls.append(1)
        n = 3 if len(calls) == 1 else 4
        return t * B.rand(n).sum()

    y = checkpoint(f, B.ones(2).requires_grad_())
    with pytest.raises(RuntimeError, match="recomputation made a random draw"):
        y.sum().backward()


# ---------------------------------------------------------------------- structure
@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_nested_checkpoints_with_dropout(backend: ag.Device) -> None:
    ag.manual_seed(0)
    a, b = nn.Linear(4, 8, backend=backend), nn.Linear(8, 4, backend=backend)
    drop = nn.Dropout(0.4)

    def inner(h: ag.Tensor) -> ag.Tensor:
        return drop(ag.relu(a(h)))

    def outer(h: ag.Tensor, ck: bool) -> ag.Tensor:
        z = checkpoint(inner, h) if ck else inner(h)
        return drop(b(z)) + h

    def run(ck: bool) -> list[np.ndarray]:
        ag.manual_seed(7)
        for p in [*a.parameters(), *b.parameters()]:
            p.grad = None
        x = backend.randn(6, 4, seed=3).requires_grad_()
        y = checkpoint(outer, x, ck) if ck else outer(x, ck)
        ((y**2).sum()).backward()
        grads = [x.grad, a.weight.grad, a.bias.grad, b.weight.grad]
        return [_numpy(y), *map(_numpy, grads), np.array(float(ag.random.default_generator.next_seed()))]

    _close(run(True), run(False))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_a_captured_tensor_with_a_graph_gets_its_gradient(backend: ag.Device) -> None:
    x = backend.randn(3, 3, seed=1).requires_grad_()

    def run(ck: bool) -> list[np.ndarray]:
        x.grad = None
        h = ag.sin(x) * 2  # computed outside the segment, read by closure inside it
        v = backend.randn(3, 3, seed=2).requires_grad_()

        def f(v: ag.Tensor, *, scale: float) -> ag.Tensor:
            return ag.exp(h * v) * scale

        y = checkpoint(f, v, scale=3.0) if ck else f(v, scale=3.0)
        y.sum().backward()
        return [_numpy(y), _numpy(x.grad), _numpy(v.grad)]

    _close(run(True), run(False))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_several_outputs_recompute_once(backend: ag.Device) -> None:
    calls = []
    w = backend.randn(4, 4, seed=1).requires_grad_()

    def f(x: ag.Tensor, tag: str) -> tuple:
        calls.append(tag)
        h = x @ w
        return {"a": ag.tanh(h), "b": [h * h, ag.argmax(h, axis=1)]}, tag, x

    def run(ck: bool) -> list[np.ndarray]:
        calls.clear()
        w.grad = None
        x = backend.randn(3, 4, seed=2).requires_grad_()
        out, tag, same = checkpoint(f, x, "t") if ck else f(x, "t")
        assert tag == "t" and same is x  # non-tensors and inputs pass through
        assert out["b"][1].dtype.name == "int64" and not out["b"][1].requires_grad
        (out["a"].sum() + (out["b"][0] * 0.5).sum() + same.sum()).backward()
        return [_numpy(x.grad), _numpy(w.grad)]

    _close(run(True), run(False))
    run(True)
    assert len(calls) == 2  # the forward, and one recomputation for both outputs


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_no_grad_and_inputs_without_grad(backend: ag.Device) -> None:
    x = backend.randn(2, 3, seed=1)
    with ag.no_grad():
        y = checkpoint(ag.tanh, x.requires_grad_())
    assert y.grad_fn is None
    z = checkpoint(lambda t: t * 2, backend.ones(3))  # nothing requires grad: a plain call
    assert not z.requires_grad
    lin = nn.Linear(3, 2, backend=backend)
    out = checkpoint(lin, backend.ones((4, 3)))  # only the parameters require grad
    out.sum().backward()
    np.testing.assert_allclose(_numpy(lin.weight.grad), np.full((2, 3), 4.0))
    assert out.grad_fn is not None and out.grad_fn.name == "Checkpoint"


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_retain_graph_allows_a_second_backward(backend: ag.Device) -> None:
    x = backend.randn(3, seed=1).requires_grad_()
    y = checkpoint(lambda t: ag.functional.dropout(ag.sin(t), 0.5, training=True), x)
    y.sum().backward(retain_graph=True)
    first = _numpy(x.grad)
    y.sum().backward()
    np.testing.assert_allclose(_numpy(x.grad), 2 * first)


# ---------------------------------------------------------------------- higher order
@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gradients_of_gradients(backend: ag.Device) -> None:
    w = backend.randn(3, 3, seed=4)

    def f(x: ag.Tensor) -> ag.Tensor:
        return ag.tanh(x @ w) ** 2

    def loss(x: ag.Tensor, ck: bool) -> ag.Tensor:
        return (checkpoint(f, x) if ck else f(x)).sum()

    def hess_row(ck: bool) -> list[np.ndarray]:
        x = backend.randn(2, 3, seed=5).requires_grad_()
        (g,) = ag.gradients(loss(x, ck), [x], create_graph=True)
        (gg,) = ag.gradients((g * g).sum(), [x])
        second = ag.grad(lambda t: ag.grad(lambda u: loss(u, ck), argnums=0)(t).sum(), argnums=0)(x)
        return [_numpy(g), _numpy(gg), _numpy(second)]

    _close(hess_row(True), hess_row(False), tol=1e-5)


def test_second_order_against_finite_differences() -> None:
    B = ag.backend("numpy")
    w = B.tensor(np.random.default_rng(0).normal(size=(3, 3)), dtype="float64")
    x0 = np.random.default_rng(1).normal(size=(3,))

    def gsum(xv: np.ndarray) -> float:  # sum of the first gradient, checkpointed
        x = B.tensor(xv, dtype="float64").requires_grad_()
        y = checkpoint(lambda t: ag.sin(w @ t) * t, x).sum()
        (g,) = ag.gradients(y, [x])
        return float(g.sum().item())

    x = B.tensor(x0, dtype="float64").requires_grad_()
    y = checkpoint(lambda t: ag.sin(w @ t) * t, x).sum()
    (g,) = ag.gradients(y, [x], create_graph=True)
    (h,) = ag.gradients(g.sum(), [x])
    eps = 1e-6
    fd = [(gsum(x0 + eps * e) - gsum(x0 - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(_numpy(h), fd, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------- checkpoint_sequential
@pytest.mark.parametrize("segments", [1, 2, 5])
def test_checkpoint_sequential_matches_torch(segments: int) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.checkpoint import checkpoint_sequential as torch_cs

    B = ag.backend("numpy")
    ag.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2), backend=B)
    ref = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    ).double()
    with torch.no_grad():
        for p, q in zip(ref.parameters(), ours.parameters()):
            p.copy_(torch.from_numpy(_numpy(q)))
    xv = np.random.default_rng(2).normal(size=(3, 4))
    x = B.tensor(xv, dtype="float32").requires_grad_()
    y = checkpoint_sequential(ours, segments, x)
    (y**2).sum().backward()
    tx = torch.tensor(xv, requires_grad=True)
    ty = torch_cs(ref, segments, tx, use_reentrant=False)
    (ty**2).sum().backward()
    np.testing.assert_allclose(_numpy(y), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_numpy(x.grad), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    for p, q in zip(ours.parameters(), ref.parameters()):
        np.testing.assert_allclose(_numpy(p.grad), q.grad.numpy(), rtol=1e-5, atol=1e-6)
    # torch's chunk bounds: len // segments functions per checkpointed chunk, the last one plain
    y2 = checkpoint_sequential(list(ours.children()), segments, x)
    kinds = _checkpoint_nodes(y2)
    assert kinds == segments - 1


def _checkpoint_nodes(t: ag.Tensor) -> int:
    """How many checkpoint nodes the graph of `t` holds."""
    seen, stack, n = set(), [t.grad_fn], 0
    while stack:
        node = stack.pop()
        if id(node) in seen or not isinstance(node, ag.autodiff.Node):
            continue
        seen.add(id(node))
        n += node.name == "Checkpoint"
        stack.extend(node.edges)
    return n


def test_checkpoint_sequential_bad_input() -> None:
    B = ag.backend("numpy")
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), backend=B)
    x = B.ones((1, 2))
    with pytest.raises(ValueError, match="segments must be between 1 and the number of functions"):
        checkpoint_sequential(seq, 0, x)
    with pytest.raises(ValueError, match=r"between 1 and the number of functions \(2\), got 3"):
        checkpoint_sequential(seq, 3, x)
    with pytest.raises(TypeError, match="segments must be an int"):
        checkpoint_sequential(seq, 1.5, x)
    with pytest.raises(TypeError, match=r"functions\[1\] is not callable: int"):
        checkpoint_sequential([ag.tanh, 3], 1, x)
    with pytest.raises(TypeError, match=r"expected an nn\.Sequential or a list"):
        checkpoint_sequential(ag.tanh, 1, x)
    with pytest.raises(ValueError, match="unexpected keyword arguments: foo"):
        checkpoint_sequential(seq, 1, x, foo=1)


def test_checkpoint_bad_input() -> None:
    B = ag.backend("numpy")
    x = B.ones(2).requires_grad_()
    with pytest.raises(TypeError, match="checkpoint: expected a callable to run, got Tensor"):
        checkpoint(x, x)
    with pytest.raises(TypeError, match="use_reentrant must be a bool or None"):
        checkpoint(ag.tanh, x, use_reentrant="yes")
    with pytest.raises(TypeError, match="preserve_rng_state must be a bool"):
        checkpoint(ag.tanh, x, preserve_rng_state=None)
    assert _numpy(checkpoint(ag.tanh, x, use_reentrant=True)).shape == (2,)  # accepted, one implementation


def test_a_function_that_changes_between_runs_is_refused() -> None:
    B = ag.backend("numpy")
    state = {"n": 2}

    def f(t: ag.Tensor) -> ag.Tensor:
        state["n"] += 1
        return t[: state["n"] - 2] * 2

    y = checkpoint(f, B.ones(4).requires_grad_())
    with pytest.raises(RuntimeError, match=r"recomputation gave other outputs than the forward pass"):
        y.sum().backward()


# ---------------------------------------------------------------------- compile
def _compiled_step(backend: ag.Device, compiled: bool, ck: bool) -> tuple[list[float], list[np.ndarray]]:
    ag.manual_seed(0)
    layers = [
        nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.25), nn.Linear(8, 8))
        for _ in range(3)
    ]
    model = nn.Sequential(*layers, nn.Linear(8, 3), backend=backend)
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    x = backend.randn(4, 8, seed=1)

    def step(x: ag.Tensor) -> ag.Tensor:
        opt.zero_grad()
        h = x
        for layer in layers:
            h = checkpoint(layer, h) if ck else layer(h)
        loss = (model[3](h) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    fn = ag.compile(step) if compiled else step
    ag.manual_seed(3)
    losses = [float(fn(x).item()) for _ in range(3)]
    return losses, [_numpy(p) for p in [*model.parameters(), *model.buffers()]]


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_inside_compile_the_step_equals_the_eager_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = next((b for b in BACKENDS if b.name == name), None)
    if backend is None:
        pytest.skip(f"{name} is not available here")
    eager = _compiled_step(backend, False, False)
    programs = _programs(backend, monkeypatch) if name == "jax" else []
    compiled = _compiled_step(backend, True, True)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    _close(compiled[1], eager[1], tol=1e-5)
    if name == "jax":
        # the recomputation's inputs pass an optimization barrier, so XLA keeps the recomputed
        # tanh of each layer instead of merging it with the forward's (3 layers: 3 more tanh)
        (lowered, optimized), plain = programs[-1], None
        assert lowered.count("optimization_barrier") == 3
        _compiled_step(backend, True, False)
        plain = programs[-1]
        assert "optimization_barrier" not in plain[0]
        assert optimized.count(" tanh(") == plain[1].count(" tanh(") + 3


def _programs(backend: ag.Device, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Collects (the lowered program, XLA's optimized one) of each step JAX traces."""
    texts: list[tuple[str, str]] = []
    real = type(backend.ops).trace

    def trace(fn, inputs, mode):  # type: ignore[no-untyped-def]
        lowered = real(backend.ops, fn, inputs, mode)
        texts.append((lowered.as_text(), lowered.compile().as_text()))
        return lowered

    monkeypatch.setattr(backend.ops, "trace", trace)
    return texts


# ---------------------------------------------------------------------- memory
def test_checkpointing_lowers_the_peak_memory_on_numpy() -> None:
    B = ag.backend("numpy")
    ag.manual_seed(0)
    layers = [
        nn.Sequential(
            nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.Tanh()
        )
        for _ in range(8)
    ]
    model = nn.Sequential(*layers, backend=B)
    x = B.randn(1024, 256, seed=1)

    def measure(ck: bool) -> tuple[int, int]:
        for p in model.parameters():
            p.grad = None
        tracemalloc.start()
        h = x
        for layer in layers:
            h = checkpoint(layer, h) if ck else layer(h)
        kept = tracemalloc.get_traced_memory()[0]  # what the forward pass leaves for the backward
        (h * h).sum().backward()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return kept, top

    measure(True)
    plain, checkpointed = measure(False), measure(True)
    # without checkpointing each layer keeps 3 activations of 1 MiB (tanh's and relu's outputs,
    # which the next linear reads too: as torch saves), with it its input alone
    assert checkpointed[0] < 0.4 * plain[0], (plain, checkpointed)
    # the step's peak holds the 6 MiB of gradients too, and one layer's recomputation
    assert checkpointed[1] < 0.75 * plain[1], (plain, checkpointed)


def test_the_torch_compat_namespace_has_it() -> None:
    import agnostic.compat.torch as torch
    from agnostic.compat.torch.utils.checkpoint import checkpoint as compat_checkpoint

    assert (
        compat_checkpoint is checkpoint
        and torch.utils.checkpoint.checkpoint_sequential is checkpoint_sequential
    )
    x = torch.ones(2, 3, requires_grad=True)
    lin = torch.nn.Linear(3, 2)
    torch.utils.checkpoint.checkpoint(lin, x, use_reentrant=False).sum().backward()
    np.testing.assert_allclose(_numpy(x.grad), np.tile(_numpy(lin.weight).sum(0), (2, 1)), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_the_recomputation_runs_under_the_forwards_autocast(backend: ag.Device) -> None:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), backend=backend)
    x = backend.randn(5, 8, seed=1)

    def run(ck: bool) -> list[np.ndarray]:
        for p in model.parameters():
            p.grad = None
        with ag.autocast("bfloat16"):
            y = checkpoint(model, x) if ck else model(x)
        (y.to("float32") ** 2).sum().backward()  # outside the autocast block, as usual
        return [_numpy(y.to("float32")), *(_numpy(p.grad) for p in model.parameters())]

    _close(run(True), run(False), tol=0)


def test_an_input_changed_by_item_assignment_is_refused() -> None:
    B = ag.backend("numpy")
    w = B.ones(3).requires_grad_()
    x = B.ones(3)  # does not require grad, but the recomputation reads it
    y = checkpoint(lambda t: ag.sin(t * w), x)
    x[0] = 5.0
    with pytest.raises(RuntimeError, match="changed by item assignment"):
        y.sum().backward()


def _recording(log: list[int], i: int, tanh: Any) -> Any:
    """The i-th function of a chain: notes its call in `log`, then tanh(x) * (i + 1)."""

    def f(x: Any) -> Any:
        log.append(i)
        return tanh(x) * (i + 1)

    return f


@pytest.mark.parametrize(("n", "segments"), [(n, s) for n in (5, 7) for s in range(1, n + 1)])
def test_checkpoint_sequential_runs_and_recomputes_what_torch_does(n: int, segments: int) -> None:
    """Every chunk bound: the calls of each function, forward and recomputation in order, are
    torch's (plain functions, not modules, also accepted)."""
    torch = pytest.importorskip("torch")
    from torch.utils.checkpoint import checkpoint_sequential as torch_cs

    B = ag.backend("numpy")
    theirs: list[int] = []
    ours: list[int] = []
    tx = torch.linspace(-1, 1, 4, dtype=torch.float64, requires_grad=True)
    torch_cs(
        [_recording(theirs, i, torch.tanh) for i in range(n)], segments, tx, use_reentrant=False
    ).sum().backward()
    x = B.tensor(np.linspace(-1, 1, 4), dtype="float64").requires_grad_()
    checkpoint_sequential([_recording(ours, i, ag.tanh) for i in range(n)], segments, x).sum().backward()
    assert ours == theirs
    np.testing.assert_allclose(_numpy(x.grad), tx.grad.numpy(), rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_running_statistics_move_once_per_step(backend: ag.Device) -> None:
    """The recomputation runs BatchNorm in training mode again; its buffers are put back, so the
    running statistics are those of the non-checkpointed step (torch's checkpoint updates them
    twice)."""

    def run(ck: bool, sequential: bool) -> list[np.ndarray]:
        ag.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2), backend=backend)
        x = backend.randn(8, 3, seed=1)
        if not ck:
            y = model(x)
        elif sequential:
            y = checkpoint_sequential(model, 2, x)
        else:
            y = checkpoint(lambda t: model(t), x)
        (y**2).sum().backward()
        bn = model[1]
        stats = [bn.running_mean, bn.running_var, bn.num_batches_tracked]
        return [_numpy(t) for t in stats] + [_numpy(model[0].weight.grad)]

    _close(run(True, False), run(False, False))
    _close(run(True, True), run(False, False))


def test_an_error_inside_leaves_no_draw_log_behind() -> None:
    B = ag.backend("numpy")

    def boom(t: ag.Tensor) -> ag.Tensor:
        B.rand(2)
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        checkpoint(boom, B.ones(2).requires_grad_())
    assert ag.random.draw_logs.get() == ()
    ag.manual_seed(4)
    a = _numpy(B.rand(3))
    ag.manual_seed(4)
    assert checkpoint(lambda t: 7, B.ones(2).requires_grad_()) == 7  # a non-tensor result passes through
    np.testing.assert_array_equal(_numpy(B.rand(3)), a)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_several_outputs_through_several_backward_passes(backend: ag.Device) -> None:
    w = backend.randn(3, 3, seed=1).requires_grad_()

    def f(x: ag.Tensor) -> tuple[ag.Tensor, ag.Tensor]:
        h = ag.sin(x @ w)
        return h * 2, ag.exp(h)

    def run(ck: bool) -> list[np.ndarray]:
        w.grad = None
        x = backend.randn(2, 3, seed=2).requires_grad_()
        a, b = checkpoint(f, x) if ck else f(x)
        a.sum().backward(retain_graph=True)  # one sibling only: the recomputation is kept
        b.sum().backward(retain_graph=True)
        (a * b).sum().backward()
        return [_numpy(x.grad), _numpy(w.grad)]

    _close(run(True), run(False))
