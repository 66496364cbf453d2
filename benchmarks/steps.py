"""The training step every workload times, built once per library: zero the gradients, forward,
loss, backward, Adam update (agnostic and torch eager); the same step under jax.jit with optax.

`precision` (issue 23 part 4): "32" is the float32 step; "bf16-mixed" runs the forward and the
loss inside `ag.autocast("bfloat16")` (agnostic) or `torch.autocast(..., dtype=torch.bfloat16)`
(torch), the backward and the update outside it, on float32 parameters (master weights). JAX has
no autocast: each workload's JAX reference casts by hand, as jmp users write it (see there)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case

LR = 1e-3

PRECISIONS = {"32": None, "bf16-mixed": "bfloat16"}
"""A precision's name (Learner's) -> the autocast dtype of its forward (None: no autocast)."""


def autocast_dtype(precision: str) -> str | None:
    """The autocast dtype of `precision`; a clear error for a name that is not one."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(map(repr, PRECISIONS))}")
    return PRECISIONS[precision]


def jmp_casts(precision: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(to_compute, to_float32) for a hand-written JAX reference: with "bf16-mixed", casts to
    bfloat16 and back to float32, as jmp's policy.cast_to_compute / cast_to_output; with "32",
    the identity, so the float32 program is the one it always was."""
    if autocast_dtype(precision) is None:
        return (lambda t: t), (lambda t: t)
    import jax.numpy as jnp

    low = getattr(jnp, autocast_dtype(precision))
    return (lambda t: t.astype(low)), (lambda t: t.astype(jnp.float32))


def precision_label(precision: str) -> str:
    """What a case's name says of its precision: nothing for float32 (the names stay as they were)."""
    return "" if autocast_dtype(precision) is None else f" {precision}"


def agnostic_adam_case(
    backend: str,
    model: Any,
    x: Any,
    y: Any,
    loss: Callable[[Any, Any], Any],
    compiled: bool = False,
    precision: str = "32",
) -> Case:
    """The eager step, or the same step through `ag.compile`; with "bf16-mixed", the forward and
    the loss under `ag.autocast("bfloat16")`."""
    import agnostic as ag
    from agnostic import optim

    dtype = autocast_dtype(precision)
    autocast = (lambda: ag.autocast(dtype)) if dtype else contextlib.nullcontext
    name = f"agnostic[{backend}]{precision_label(precision)}"
    if not compiled:
        return _eager_case(name, optim.Adam, model, x, y, loss, sync=_all_done(model), autocast=autocast)
    opt = optim.Adam(model.parameters(), lr=LR)

    @ag.compile
    def step() -> Any:
        opt.zero_grad()
        with autocast():
            value = loss(model(x), y)
        value.backward()
        opt.step()
        return value

    # one compiled call is one program (one XLA execution): its outputs, the loss and the new
    # parameters, are ready together, so waiting for the loss is waiting for all, as for native jax
    return Case(f"{name} compiled", step, sync=lambda value: wait([value.data]))


def torch_adam_case(
    model: Any, x: Any, y: Any, loss: Callable[[Any, Any], Any], precision: str = "32"
) -> Case:
    """torch eager and torch.optim.Adam; with "bf16-mixed", the forward and the loss under
    `torch.autocast(x.device.type, dtype=torch.bfloat16)`, as torch's AMP recipe writes it."""
    import torch

    dtype = autocast_dtype(precision)
    autocast = contextlib.nullcontext
    if dtype:
        autocast = functools.partial(torch.autocast, x.device.type, dtype=getattr(torch, dtype))
    name = f"native torch (eager, torch.optim){precision_label(precision)}"
    return _eager_case(name, torch.optim.Adam, model, x, y, loss, autocast=autocast)


def wait(arrays: list[Any]) -> None:
    """Wait until the work that computes these native arrays is done: JAX and CUDA run
    asynchronously (a step's optimizer update is still running when its loss is ready, and would
    run on into the next case's window). Nothing is copied to the host."""
    kind = type(arrays[0]).__module__.split(".")[0]
    if kind in ("jax", "jaxlib"):
        import jax

        jax.block_until_ready(arrays)
    elif kind == "torch" and arrays[0].is_cuda:
        import torch

        torch.cuda.synchronize(arrays[0].device)
    elif kind == "cupy":
        arrays[0].device.synchronize()


def _all_done(model: Any) -> Callable[[Any], Any]:
    """Wait for the loss and for the updated parameters (see `wait`)."""

    def sync(value: Any) -> Any:
        wait([value.data, *(p.data for p in model.parameters())])
        return value

    return sync


def _eager_case(
    name: str,
    adam: Any,
    model: Any,
    x: Any,
    y: Any,
    loss: Callable[[Any, Any], Any],
    sync: Any = None,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> Case:
    """The same eager step for agnostic and torch: their modules and optimizers share the API
    (and their autocast contexts: the forward and the loss inside, the backward outside)."""
    opt = adam(model.parameters(), lr=LR)

    def step() -> Any:
        opt.zero_grad()
        with autocast():  # (float32: a nullcontext, well under a microsecond a step)
            value = loss(model(x), y)
        value.backward()
        opt.step()
        return value

    return Case(name, step, sync=sync or (lambda value: wait([value.data])))


def jax_device(device: str | None) -> Any:
    """The jax.Device that agnostic's JAX backend names `device` ("cpu", "gpu:0"; None: the CPU,
    agnostic's default, where jax itself would take a GPU first)."""
    import jax

    platform, _, index = (device or "cpu").partition(":")
    return jax.devices(platform)[int(index or 0)]


def on_jax_device(build: Callable[..., Case]) -> Callable[..., Case]:
    """A native JAX case's builder, `build(device, ...)`, run with that device as jax's default:
    the batch and the constants it makes are made there, beside the parameters."""

    @functools.wraps(build)
    def run(device: str | None, *args: Any) -> Case:
        import jax

        with jax.default_device(jax_device(device)):
            return build(device, *args)

    return run


def jax_adam_update(loss_fn: Callable[[Any], Any]) -> tuple[Any, Callable[[Any, Any], Any]]:
    """optax's Adam and the whole step under jax.jit: `update(params, opt_state)` gives the new
    parameters, the new optimizer state and the loss."""
    import jax
    import optax

    tx = optax.adam(LR)

    @jax.jit
    def update(p: Any, opt_state: Any) -> Any:
        value, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    return tx, update


def jax_adam_case(
    params: Any,
    loss_fn: Callable[[Any], Any],
    device: str | None = None,
    dtype: str = "float32",
    precision: str = "32",
) -> Case:
    """`loss_fn(params)` closes over the batch; the whole step is one jax.jit, on `device` (the
    parameters are put there, so the program runs there). `dtype` is the parameters' (checked);
    `precision` only names the case: a "bf16-mixed" `loss_fn` casts inside itself."""
    import jax

    kinds = {leaf.dtype.name for leaf in jax.tree.leaves(params)}
    if kinds != {dtype}:  # with JAX_ENABLE_X64=1 a NumPy float64 scalar promotes
        raise TypeError(f"the native JAX reference must be {dtype} throughout, got {sorted(kinds)}")
    tx, update = jax_adam_update(loss_fn)
    # the whole state committed to the device: the first call's inputs then place as every later
    # call's (its outputs), and the step compiles once, not twice
    state = list(jax.device_put((params, tx.init(params)), jax_device(device)))

    def step() -> Any:
        state[0], state[1], value = update(state[0], state[1])
        return value

    name = f"native jax (jit, optax){precision_label(precision)}"
    return Case(name, step, sync=lambda value: value.block_until_ready())
