"""The training step every workload times, built once per library: zero the gradients, forward,
loss, backward, Adam update (agnostic and torch eager); the same step under jax.jit with optax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case

LR = 1e-3


def agnostic_adam_case(
    backend: str, model: Any, x: Any, y: Any, loss: Callable[[Any, Any], Any], compiled: bool = False
) -> Case:
    """The eager step, or the same step through `ag.compile`."""
    import agnostic as ag
    from agnostic import optim

    if not compiled:
        return _eager_case(f"agnostic[{backend}]", optim.Adam, model, x, y, loss, sync=_all_done(model))
    opt = optim.Adam(model.parameters(), lr=LR)

    @ag.compile
    def step() -> Any:
        opt.zero_grad()
        value = loss(model(x), y)
        value.backward()
        opt.step()
        return value

    # one compiled call is one program (one XLA execution): its outputs, the loss and the new
    # parameters, are ready together, so waiting for the loss is waiting for all, as for native
    # jax (reading every parameter back to the host, as the eager case must, cost 34 us per step)
    return Case(f"agnostic[{backend}] compiled", step, sync=lambda value: value.item())


def torch_adam_case(model: Any, x: Any, y: Any, loss: Callable[[Any, Any], Any]) -> Case:
    import torch

    return _eager_case("native torch (eager, torch.optim)", torch.optim.Adam, model, x, y, loss)


def _all_done(model: Any) -> Callable[[Any], Any]:
    """Wait for the loss and for the updated parameters. JAX runs eager ops asynchronously: the
    loss is ready before the optimizer's update, which would otherwise run on into the next case's
    window (the compiled step's, in the interleaved run)."""

    def sync(value: Any) -> Any:
        for p in model.parameters():
            p.numpy()
        return value.item()

    return sync


def _eager_case(
    name: str,
    adam: Any,
    model: Any,
    x: Any,
    y: Any,
    loss: Callable[[Any, Any], Any],
    sync: Callable[[Any], Any] = lambda value: value.item(),
) -> Case:
    """The same eager step for agnostic and torch: their modules and optimizers share the API."""
    opt = adam(model.parameters(), lr=LR)

    def step() -> Any:
        opt.zero_grad()
        value = loss(model(x), y)
        value.backward()
        opt.step()
        return value

    return Case(name, step, sync=sync)


def jax_adam_case(params: Any, loss_fn: Callable[[Any], Any]) -> Case:
    """`loss_fn(params)` closes over the batch; the whole step is one jax.jit."""
    import jax
    import optax

    kinds = {leaf.dtype.name for leaf in jax.tree.leaves(params)}
    if kinds != {"float32"}:  # x64 is on (agnostic's JAX backend): a NumPy float64 scalar promotes
        raise TypeError(f"the native JAX reference must be float32 throughout, got {sorted(kinds)}")
    tx = optax.adam(LR)
    state = [params, tx.init(params)]

    @jax.jit
    def update(p: Any, opt_state: Any) -> Any:
        value, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    def step() -> Any:
        state[0], state[1], value = update(state[0], state[1])
        return value

    return Case("native jax (jit, optax)", step, sync=lambda value: value.block_until_ready())
