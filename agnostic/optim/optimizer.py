"""Optimizer: parameter groups, per-parameter state and PyTorch's state_dict format.

Updates are written with tensor ops, under `no_grad`, and stored with `Parameter.assign`, so every
optimizer runs unchanged on every backend. An optimizer with a fused backend composite (Adam's
`adam_step`) updates each device's parameters in one call; such a call may update the optimizer's
own state buffers (`optimizer.state`) in place, as torch.optim does, but never a parameter's array,
which other tensors may share. `state_dict()` has torch.optim's layout: parameters are
referred to by their index across the groups, state values are tensors or numbers.

torch.optim's implementation switches are accepted where torch has them, and kept in the groups (so
torch's optimizer state_dicts load): `foreach`, `fused` and `capturable` choose among torch's
kernels for one result, and agnostic already uses the backend's fused composite where it has one,
so they change nothing; `fused=True` with `foreach=True` is refused as torch refuses it.
`differentiable=True` (autograd through the update) is refused: updates run under `no_grad`.
`maximize` has torch's meaning (ascend the objective).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agnostic import tracing
from agnostic.autodiff import no_grad
from agnostic.backends.base import distinct
from agnostic.dtypes import DType
from agnostic.nn.parameter import Parameter
from agnostic.ops import asarray
from agnostic.tensor import Tensor

__all__ = ["Optimizer"]

Params = Iterable[Parameter] | Iterable[Mapping[str, Any]]


class Optimizer:
    """Base class: subclasses set `defaults` and implement `_update(p, grad, group, state)`."""

    counts_steps = False
    """Whether each parameter's state has a "step" count that `step()` advances before the update
    (Adam, RMSprop, Adagrad). Counts that are one object (a compiled step keeps one per group where
    they are equal) stay one object: one count advanced, not one per parameter."""

    complex_as_real = False
    """Whether `_update` sees a complex parameter, its gradient and its complex state as real pairs
    on a new last axis (torch.optim's view_as_real: RMSprop, Adagrad), so that squares and square
    roots act on each part; SGD's update is linear and takes complex numbers as they are."""

    def __init__(self, params: Params, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """A group of parameters with its own hyper-parameters (the rest from `defaults`)."""
        name = type(self).__name__
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        named = bool(params) and all(isinstance(p, tuple) and len(p) == 2 for p in params)
        if named:  # torch's `model.named_parameters()` form: the names are kept in "param_names"
            group = {**group, "param_names": [str(n) for n, _ in params]}
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: expected Parameters, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: a parameter appears in more than one parameter group")
        unknown = set(group) - set(self.defaults) - {"params", "param_names"}
        if unknown:
            raise ValueError(f"{name}: unknown options {sorted(unknown)}; known: {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self._check(full)
        self.param_groups.append(full)

    def _check(self, group: Mapping[str, Any]) -> None:
        """Validate a group's hyper-parameters (subclasses extend)."""
        name = type(self).__name__
        if group.get("lr", 0.0) < 0:
            raise ValueError(f"{name}: lr must be >= 0, got {group['lr']}")
        if group.get("fused") and group.get("foreach"):
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")
        if group.get("differentiable"):
            raise NotImplementedError(
                f"{name}: differentiable=True is not supported: agnostic's optimizers update parameters "
                "under no_grad; to differentiate through an update, write it as a function of the "
                "parameters and use ag.grad"
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        if (tracer := tracing.active()) is not None:  # an agnostic.compile trace lifts this optimizer's state
            tracer.uses(self)
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:  # a write, not a read: a compiled step then needs no incoming gradient
                    p.grad = None
                elif p.grad is not None:
                    p.grad = p.grad * 0

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One update of every parameter that has a gradient; `closure` re-evaluates the loss."""
        if (tracer := tracing.active()) is not None:
            tracer.uses(self)
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                by_device: dict[int, list[Parameter]] = {}
                for p in group["params"]:
                    if p.grad is not None:
                        by_device.setdefault(id(p._device), []).append(p)
                for params in by_device.values():
                    states = [self._state_of(p, group) for p in params]
                    if self.counts_steps:
                        _advance(states)
                    grads = [p.grad.detach() for p in params]
                    for p, value in zip(params, self._update_many(params, grads, group, states)):
                        p.assign(value)
        return loss

    def _state_of(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        """`p`'s state, made with `_initial_state` the first time."""
        state = self.state.get(id(p))
        if state is None:
            state = self.state[id(p)] = self._initial_state(p, group)
        return state

    def _initial_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        """A parameter's state before its first update (subclasses with buffers override). Made
        ahead of time for a compiled step, so its inputs keep one structure from the first call."""
        return {}

    def _update_many(
        self,
        params: list[Parameter],
        grads: list[Tensor],
        group: Mapping[str, Any],
        states: list[dict[str, Any]],
    ) -> list[Tensor]:
        """The new values of one device's parameters of a group. One at a time through `_update`
        here; an optimizer with a fused backend composite (Adam) updates the whole list in one call."""
        return [self._update_one(p.detach(), g, group, s) for p, g, s in zip(params, grads, states)]

    def _update_one(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        """`_update`, through real pairs for a complex parameter where `complex_as_real`."""
        if not (self.complex_as_real and p.dtype.is_complex):
            return self._update(p, grad, group, state)
        dev, dtype = p._device, p.dtype
        paired = [k for k, v in state.items() if isinstance(v, Tensor) and v.dtype.is_complex]
        for k in paired:
            state[k] = Tensor._make(real_pairs(dev.ops, state[k].data), dev)
        new = self._update(*(Tensor._make(real_pairs(dev.ops, t.data), dev) for t in (p, grad)), group, state)
        for k in paired:
            state[k] = Tensor._make(from_real_pairs(dev.ops, state[k].data, dtype), dev)
        return Tensor._make(from_real_pairs(dev.ops, new.data, dtype), dev)

    def _update(self, p: Tensor, grad: Tensor, group: Mapping[str, Any], state: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: {"state": {index: {...}}, "param_groups": [{..., "params": [index]}]}."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {  # a parameter with no state (plain SGD's) has no entry, as in torch
            index[k]: {n: _snapshot(v) for n, v in s.items()}
            for k, s in self.state.items()
            if k in index and s
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from `state_dict()` (of this or of an equal optimizer); tensors move to each
        parameter's backend. Group sizes are checked first; on a mismatch nothing changes."""
        name = type(self).__name__
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)
        ):
            raise ValueError(
                f"{name}.load_state_dict: the saved groups have "
                f"{[len(g['params']) for g in groups]} parameters, this optimizer "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        by_index = {i: p for a, b in zip(groups, self.param_groups) for i, p in zip(a["params"], b["params"])}
        new_state: dict[int, dict[str, Any]] = {}
        for i, values in state_dict["state"].items():
            p = by_index[int(i)]
            new_state[id(p)] = {k: _step_count(v) if k == "step" else _on(p, v) for k, v in values.items()}
        for a, b in zip(groups, self.param_groups):
            b.update({k: v for k, v in a.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def _advance(states: list[dict[str, Any]]) -> None:
    """Add one to every state's "step", once per distinct count object."""
    unique, index = distinct([s["step"] for s in states])
    advanced = [t + 1 for t in unique]
    for state, i in zip(states, index):
        state["step"] = advanced[i]


def _on(p: Parameter, value: Any) -> Any:
    """A saved state value on `p`'s backend, in a buffer of its own (numbers stay numbers)."""
    if isinstance(value, Tensor):
        return _snapshot(value.detach().to(p.device))  # to() may return the caller's tensor
    if hasattr(value, "shape"):  # a NumPy array, or another library's
        return asarray(value, device=p.device, copy=True)
    return value


def _step_count(value: Any) -> int | float:
    """A saved step count as a Python number: torch saves it as a float32 tensor, and a float32 count
    would make the bias corrections float32 too (torch reads it back as a Python number as well)."""
    count = float(value.numpy() if hasattr(value, "numpy") else value)
    return int(count) if count.is_integer() else count


def _snapshot(value: Any) -> Any:
    """A copy of a state tensor: a fused update may write the optimizer's buffers in place, so
    what goes out (state_dict) or comes in (load_state_dict) must not share them."""
    return asarray(value.data, device=value.device, copy=True) if isinstance(value, Tensor) else value


def native(x: Any) -> Any:
    """A number as it is, a tensor as its native array (an optimizer's step count or learning
    rate is a tensor while `agnostic.compile` traces a step)."""
    return x.data if isinstance(x, Tensor) else x


def like(x: Any, p: Tensor) -> Any:
    """A number as it is, a tensor in `p`'s dtype (a compiled step's learning rate and step count
    are float64 0-d tensors)."""
    return x.astype(p.dtype) if isinstance(x, Tensor) and x.dtype is not p.dtype else x


def real_pairs(ops: Any, a: Any) -> Any:
    """A complex array as real pairs on a new last axis, torch's view_as_real (a copy here)."""
    return ops.stack([ops.real(a), ops.imag(a)], -1)


def from_real_pairs(ops: Any, a: Any, dtype: DType) -> Any:
    """The inverse of `real_pairs`, in complex `dtype`."""
    re, im = (ops.cast(ops.getitem(a, (Ellipsis, i)), dtype) for i in (0, 1))
    return ops.add(re, ops.mul(im, 1j))
