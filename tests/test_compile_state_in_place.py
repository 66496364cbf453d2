"""A compiled step reuses the memory of the state it replaces (issue 23): on torch the program
writes new parameters, optimizer moments and buffers into their arrays (`aten.copy_`, or the fused
kernel updating them directly), on JAX the replaced arrays are donated. Tensors stay values: a
snapshot a user took before the step (`detach`, `p.data`, `state_dict`, `ag.clone`, a NumPy or
DLPack view, the optimizer's state tensor) keeps its value, and a donated array is never one a
user still holds. See `agnostic.compilation._State.claim` for the rule."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn, optim
from agnostic.conformance.test_compile import _loss_step

BACKENDS = [b for b in available_backends() if b.name in ("numpy", "torch", "jax")]
_IDS = {"ids": lambda b: b.name}


def _backend(name: str) -> ag.Device:
    found = [b for b in BACKENDS if b.name == name]
    if not found:
        pytest.skip(f"backend {name} is not available here")
    return found[0]


def _setup(backend: ag.Device, kind: str = "adam", batch: int = 6):
    ag.manual_seed(0)
    # (the BatchNorm after the ReLU: a bias right before it has no gradient but rounding noise,
    # which Adam's normalized step would magnify into differences between programs)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3), backend=backend)
    if kind == "adam":
        opt = optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    r = np.random.default_rng(1)
    x = backend.tensor(r.normal(size=(batch, 4)).astype(np.float32))
    y = backend.tensor(r.integers(0, 3, batch))

    return model, opt, x, y, _loss_step(model, opt)


def _values(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}


def _opt_values(opt: optim.Optimizer) -> list[np.ndarray]:
    """The optimizer's state, in order (a compiled step keeps a step count as a 0-d tensor)."""
    return [
        np.array(v.numpy() if isinstance(v, ag.Tensor) else v, dtype=np.float64, copy=True)
        for s in opt.state.values()
        for _, v in sorted(s.items())
    ]


def _run(backend: ag.Device, kind: str, compiled: bool, steps: int = 4, mode: str | None = None):
    model, opt, x, y, step = _setup(backend, kind)
    fn = ag.compile(step, mode=mode) if compiled else step
    losses = [fn(x, y).item() for _ in range(steps)]
    return losses, _values(model), _opt_values(opt), fn


def _entries(fn) -> list:
    return [e for entries in fn._cache.values() for e in entries]


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("backend", BACKENDS, **_IDS)
def test_compiled_steps_match_the_eager_ones(backend: ag.Device, kind: str) -> None:
    eager, compiled = _run(backend, kind, False), _run(backend, kind, True)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    for key in eager[1]:
        np.testing.assert_allclose(compiled[1][key], eager[1][key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(compiled[2]) == len(eager[2])
    for a, b in zip(compiled[2], eager[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if backend.name != "numpy":
        # (SGD adds its momentum buffers at the first step: the second program is the loop's)
        assert _entries(compiled[3])[-1].in_place, "the program reuses no state's memory"


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_torch_writes_the_state_into_its_own_arrays(kind: str) -> None:
    torch = pytest.importorskip("torch")
    model, opt, x, y, step = _setup(_backend("torch"), kind)
    fn = ag.compile(step)
    fn(x, y)  # (SGD adds its momentum buffers at the first step: the state is gathered again)
    fn(x, y)

    def pointers() -> list[int]:
        arrays = [t.data for t in (*model.parameters(), model[2].running_mean, model[2].running_var)]
        arrays += [
            v.data for s in opt.state.values() for v in s.values() if isinstance(v, ag.Tensor) and v.ndim
        ]
        assert all(isinstance(a, torch.Tensor) for a in arrays)
        return [a.data_ptr() for a in arrays]

    before = pointers()
    for _ in range(3):
        fn(x, y)
    assert pointers() == before
    (entry,) = [e for e in _entries(fn) if e.in_place][-1:]
    assert "copy_" in entry.run.code or "_fused_adam_" in entry.run.code
    # the new parameters are no outputs of the program any more: written into the inputs
    assert entry.run.code.count("None, None") > 0


def test_torch_inductor_writes_the_state_into_its_own_arrays() -> None:
    pytest.importorskip("torch")
    backend = _backend("torch")
    eager, compiled = _run(backend, "adam", False), _run(backend, "adam", True, mode="default")
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-4)
    for key in eager[1]:
        np.testing.assert_allclose(compiled[1][key], eager[1][key], rtol=1e-4, atol=1e-5, err_msg=key)
    fn = compiled[3]
    (entry,) = _entries(fn)
    assert entry.in_place
    model_ptrs = []
    model, _, x, y, step = _setup(backend, "adam")
    fn = ag.compile(step, mode="default")
    for _ in range(3):
        fn(x, y)
        model_ptrs.append([p.data.data_ptr() for p in model.parameters()])
    assert model_ptrs[1] == model_ptrs[2]


def _snapshots(
    model: nn.Module, opt: optim.Optimizer, backend: ag.Device
) -> list[tuple[str, object, np.ndarray]]:
    """Every way a user can hold the state's current values, with a copy of those values."""
    w, bn = model[0].weight, model[2]
    taken: list[tuple[str, object]] = [
        ("detach", w.detach()),
        ("p.data", w.data),
        ("clone", ag.clone(w)),
        ("reshape", w.reshape(-1)),
        ("state_dict", model.state_dict()["0.weight"]),
        ("buffer tensor", bn.running_mean),
        ("buffer state_dict", model.state_dict()["2.running_var"]),
        ("numpy view", w.numpy()),
        ("optimizer state", opt.state[id(w)]["exp_avg"]),
        ("optimizer state's array", opt.state[id(model[3].weight)]["exp_avg_sq"].data),
    ]
    if backend.name == "torch":
        import torch

        taken.append(("dlpack", torch.from_dlpack(model[3].bias)))
        taken.append(("native view", model[3].bias.data[1:]))
    return [(name, obj, np.array(_as_numpy(obj), copy=True)) for name, obj in taken]


def _as_numpy(obj: object) -> np.ndarray:
    if isinstance(obj, ag.Tensor):
        return obj.numpy()
    if hasattr(obj, "detach"):  # a torch tensor
        return obj.detach().cpu().numpy()
    return np.asarray(obj)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "numpy"], **_IDS)
def test_a_snapshot_taken_before_a_compiled_step_keeps_its_value(backend: ag.Device) -> None:
    model, opt, x, y, step = _setup(backend, "adam")
    fn = ag.compile(step)
    fn(x, y)
    fn(x, y)
    taken = _snapshots(model, opt, backend)
    reference = _run(backend, "adam", False, steps=5)
    for _ in range(3):
        loss = fn(x, y)
    for name, obj, values in taken:  # (a donated JAX array would raise "Array has been deleted")
        np.testing.assert_array_equal(_as_numpy(obj), values, err_msg=name)
    # and the training went on as the eager one does
    np.testing.assert_allclose(loss.item(), reference[0][-1], rtol=1e-5)
    for key, values in _values(model).items():
        np.testing.assert_allclose(values, reference[1][key], rtol=1e-5, atol=1e-6, err_msg=key)
    # no snapshot changed the state's values: they changed at every step
    assert not np.array_equal(model[0].weight.numpy(), taken[0][2])


def test_torch_writes_in_place_again_once_the_snapshots_are_gone() -> None:
    pytest.importorskip("torch")
    model, _, x, y, step = _setup(_backend("torch"), "adam")
    fn = ag.compile(step)
    fn(x, y)
    snap = model[0].weight.detach()
    old = snap.numpy().copy()
    fn(x, y)  # the weight goes in as a copy: a new array
    np.testing.assert_array_equal(snap.numpy(), old)
    assert model[0].weight.data.data_ptr() != snap.data.data_ptr()
    del snap
    ptr = model[0].weight.data.data_ptr()
    fn(x, y)
    fn(x, y)
    assert model[0].weight.data.data_ptr() == ptr


def test_jax_donates_the_state_it_replaces() -> None:
    pytest.importorskip("jax")
    backend = _backend("jax")
    model, _, x, y, step = _setup(backend, "adam")
    fn = ag.compile(step)
    fn(x, y)
    (entry,) = _entries(fn)
    assert entry.in_place
    assert "input_output_alias" in entry.run.as_text()  # XLA builds outputs in donated inputs
    program, calls = entry.run, []

    def spy(*arrays):  # (holds the inputs only once `claim` has looked at them)
        out = program(*arrays)
        calls.append({i: arrays[i] for i in entry.in_place})
        return out

    entry.run = spy
    held = model[0].weight.data  # a user's reference: this array must not be donated
    old = np.array(held, copy=True)
    fn(x, y)
    assert not held.is_deleted()
    np.testing.assert_array_equal(np.asarray(held), old)
    assert all(a.is_deleted() for a in calls[-1].values())  # the others, and a copy of `held`, were
    assert all(a is not held for a in calls[-1].values())
    del held
    fn(x, y)  # nobody holds the state now but its holders: every replaced array is donated
    assert all(a.is_deleted() for a in calls[-1].values())
    assert model[0].weight.data.is_deleted() is False


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "numpy"], **_IDS)
def test_a_result_that_views_a_parameter_keeps_its_value(backend: ag.Device) -> None:
    """The step returns the weight as it was before its update (the program's output is the input
    array itself, or a view of it): that input is not written in place. (The optimizer is met
    only inside the trace, through `step`: the state it made there is not kept.)"""
    model, _, x, y, step = _setup(backend, "adam")

    def with_weights(x: ag.Tensor, y: ag.Tensor):
        before = model[0].weight.detach()
        viewed = model[3].weight.reshape(-1)
        return step(x, y), before, viewed

    fn = ag.compile(with_weights)
    results = [fn(x, y) for _ in range(3)]
    copies = [(b.numpy().copy(), v.numpy().copy()) for _, b, v in results]
    fn(x, y)
    for (_, b, v), (b0, v0) in zip(results, copies):
        np.testing.assert_array_equal(b.numpy(), b0)
        np.testing.assert_array_equal(v.numpy(), v0)
    assert not np.array_equal(copies[0][0], copies[1][0])
    assert not np.array_equal(copies[0][1], copies[1][1])
    reference = _run(backend, "adam", False, steps=4)
    for key, values in _values(model).items():
        np.testing.assert_allclose(values, reference[1][key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "numpy"], **_IDS)
def test_a_new_shape_compiles_again_and_still_matches(backend: ag.Device) -> None:
    model, _, x, y, step = _setup(backend, "adam", batch=6)
    eager_model, _, _, _, eager_step = _setup(backend, "adam", batch=6)
    fn = ag.compile(step)
    r = np.random.default_rng(2)
    x2 = backend.tensor(r.normal(size=(9, 4)).astype(np.float32))
    y2 = backend.tensor(r.integers(0, 3, 9))
    for args in [(x, y), (x2, y2), (x, y), (x2, y2)]:
        np.testing.assert_allclose(fn(*args).item(), eager_step(*args).item(), rtol=1e-4)
    assert fn.compilations == 2
    assert all(e.in_place for e in _entries(fn))
    for key, values in _values(eager_model).items():
        np.testing.assert_allclose(_values(model)[key], values, rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "numpy"], **_IDS)
def test_the_gradients_a_step_replaces_are_freed_before_it_runs(backend: ag.Device) -> None:
    """As an eager step's `zero_grad()` frees them before its backward: the old and the new
    gradients are never alive together. A gradient a user holds keeps its value."""
    import weakref

    model, _, x, y, step = _setup(backend, "adam")
    fn = ag.compile(step)
    fn(x, y)
    fn(x, y)
    entry = _entries(fn)[-1]
    program, seen = entry.run, []
    old = weakref.ref(model[0].weight.grad.data)
    held = model[3].weight.grad
    held_values = held.numpy().copy()

    def spy(*arrays):
        seen.append(old() is None)
        return program(*arrays)

    entry.run = spy
    fn(x, y)
    assert seen == [True]
    np.testing.assert_array_equal(held.numpy(), held_values)
    assert model[3].weight.grad is not held


@pytest.mark.parametrize("backend", BACKENDS, **_IDS)
def test_a_graph_from_before_a_compiled_step_is_refused(backend: ag.Device) -> None:
    """An eager forward, then a compiled step that updates the parameters (on torch into their very
    arrays), then the eager backward: refused, as after an eager optimizer step, instead of a
    gradient computed from the new weights."""
    model, _, x, y, step = _setup(backend, "sgd")
    fn = ag.compile(step)
    fn(x, y)  # traced; later calls write in place where they may
    fn(x, y)
    layer = model[3]
    h = ag.relu(x @ ag.ones((4, 8), device=backend)).requires_grad_()  # so linear's rule reads the weight
    loss = (layer(h) ** 2).sum()
    fn(x, y)
    # (NumPy runs a compiled step eagerly: its optimizer's assign is what updated the weight)
    how = "Parameter.assign" if backend.name == "numpy" else "a compiled step that updates it"
    with pytest.raises(RuntimeError, match=f"linear's gradient needs was changed by {how}"):
        loss.backward()
