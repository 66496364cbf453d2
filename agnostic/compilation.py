"""`agnostic.compile`: a step written with ordinary agnostic code, compiled by its backend.

The step is traced into a pure function of native arrays and handed to the backend's compiler
(jax.jit on JAX; a torch.fx graph on PyTorch, given to torch.compile when a `mode` is asked for);
backends without a compiler run it eagerly. What the step reads and changes outside its arguments
is lifted into explicit inputs and outputs under the hood:

- the parameters and buffers of every module it calls, and the parameters' gradients where the
  step reads them before it sets them (gradient accumulation across calls);
- the state of every optimizer it uses: moment tensors, step counts, and the learning rate (a
  scheduler may change it between calls without a recompile);
- random draws (dropout): drawn on the host at each call, from the same seed stream and in the same
  order as the eager step, and fed in, so compiled and eager steps see the same numbers.
- the state the step replaces (new parameters, optimizer moments, running statistics) reuses the
  memory of the old values, as torch.optim's in-place update does: on torch the program writes each
  new value into the old array (and frees it at once), on JAX the old arrays are donated to XLA.
  Tensors stay values: an array that anything but its holder can see (a `detach()`, `p.data`, a
  `state_dict()` entry, a view) goes in as a private copy instead, and keeps its values
  (`_State.claim`).
- work that cannot be in the program (a collective on an engine that needs real buffers) is handed
  to the trace (`agnostic.tracing.Tracer.after_call`) and runs eagerly after every call, once the
  results, state and gradients are written back.

Holders are found in the function's closure, the globals it names and its arguments, and, while
tracing, whenever a module is called or an optimizer used (a trace that meets a new one is done
again). A step is traced and compiled once per signature: the shapes and dtypes of its tensor
arguments and state, the values of its other arguments, the modules' train/eval modes and plain
settings (Dropout's p), the optimizers' other hyper-parameters and the autocast dtype; past
`recompile_limit` programs a new signature runs eagerly, with one `RecompileWarning` naming what
differs. Inside the trace values are symbolic, so the step may not read them on the host
(`.item()`, `.numpy()`, `if tensor:`); checks that would (index bounds) are skipped, as under
jax.jit.
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from agnostic import autodiff, dtypes, tracing
from agnostic.autocast import state_key as _autocast_key
from agnostic.backends.base import TraceError, references
from agnostic.device import Device
from agnostic.nn import module as _module
from agnostic.nn.module import Module
from agnostic.nn.parameter import Parameter
from agnostic.optim.optimizer import Optimizer
from agnostic.random import next_seed
from agnostic.tensor import Tensor

__all__ = ["compile", "CompiledFunction", "CompileError", "RecompileWarning"]

_MAX_TRACES = 6


class CompileError(RuntimeError):
    """A step that cannot be compiled; the message says what in it and how to change it."""


class RecompileWarning(UserWarning):
    """A compiled step met more signatures than its `recompile_limit`: new ones run eagerly."""


def compile(
    fn: Callable[..., Any] | None = None, *, mode: str | None = None, recompile_limit: int | None = 8
) -> Any:
    """Compile `fn` (a training or inference step) with its backend's compiler.

    `mode` is PyTorch's opt-in: None runs the traced torch.fx graph as it is (no Python left in
    the step); "default", "reduce-overhead" or "max-autotune" hand that graph to torch.compile
    with that mode. Other backends ignore it. Use as `ag.compile(step)` or `@ag.compile(mode=...)`.

    `recompile_limit` bounds the programs kept (as torch.compile's, 8 by default; None: no
    bound): a signature met after that many runs eagerly, with one `RecompileWarning` naming what
    changed, so a value that changes at every call does not compile at every call.
    """
    if mode not in MODES:
        raise ValueError(f"compile: mode {mode!r} is not one of {list(MODES)}")
    if recompile_limit is not None and (
        not isinstance(recompile_limit, int) or isinstance(recompile_limit, bool) or recompile_limit < 1
    ):
        raise ValueError(f"compile: recompile_limit must be a positive int or None, got {recompile_limit!r}")
    if fn is None:
        return lambda f: CompiledFunction(f, mode, recompile_limit)
    return CompiledFunction(fn, mode, recompile_limit)


MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""torch.compile's modes (None: the traced graph as it is)."""


@dataclass
class _Draw:
    """A random draw the step makes: `ops.<kind>(*args, seed)`, the seed from `next_seed`."""

    device: Device
    kind: str
    args: tuple[Any, ...]
    seed: int | None
    generator: Any

    def now(self) -> Any:
        """Draw it eagerly: the seed stream moves on exactly as in the eager step."""
        return getattr(self.device.ops, self.kind)(*self.args, next_seed(self.seed, self.generator))

    def stand_in(self) -> Any:
        """An array of the draw's shape and dtype, for tracing (the seed stream does not move)."""
        dtype = dtypes.bool if self.kind == "random_bernoulli" else self.args[-1]
        return self.device.ops.full(self.args[0], False if dtype is dtypes.bool else 0, dtype)


@dataclass
class _Entry:
    """One compiled signature: what goes in besides the state and the arguments, what comes out."""

    grad_inputs: tuple[int, ...]  # the parameters (positions in the state) whose gradient it reads
    grad_signature: tuple[Any, ...]
    draws: list[_Draw]
    result_leaves: list[Any] = field(default_factory=list)
    result_tree: Any = None
    written: list[tuple[Any, ...]] = field(default_factory=list)  # state written, after the results
    grads: list[tuple[int, bool]] = field(default_factory=list)  # gradients set (or cleared)
    out_dtypes: list[Any] = field(default_factory=list)  # of every output, in order
    after: list[Callable[[], None]] = field(default_factory=list)  # run eagerly after every call
    run: Callable[..., Any] | None = None
    in_place: tuple[int, ...] = ()  # the slots whose memory the program reuses (see `_State.claim`)
    # Everything refers to the state by position, never to a holder's object: the same signature
    # may come back with other objects in the slots (a loaded optimizer state, a replaced layer).


@dataclass
class _Trace:
    """What a running trace meets that its inputs do not hold yet (`agnostic.tracing.Tracer`)."""

    fn: CompiledFunction
    device: Device
    state: _State
    known_draws: list[_Draw]
    draw_inputs: list[Any] = field(default_factory=list)
    draws: list[_Draw] = field(default_factory=list)
    new_holders: list[Any] = field(default_factory=list)
    grads_read: dict[int, Parameter] = field(default_factory=dict)
    grads_written: dict[int, Parameter] = field(default_factory=dict)
    after: list[Callable[[], None]] = field(default_factory=list)
    deferred: dict[int, Parameter] = field(default_factory=dict)  # gradients an `after` callback changes
    undo: list[Callable[[], None]] = field(default_factory=list)  # the new holders' state as met

    def draw(self, device: Any, kind: str, args: tuple[Any, ...], seed: int | None, generator: Any) -> Tensor:
        spec = _Draw(device, kind, args, seed, generator)
        i = len(self.draws)
        self.draws.append(spec)
        if i < len(self.known_draws) and self.known_draws[i] == spec:
            return Tensor._make(self.draw_inputs[i], device)
        return Tensor._make(spec.stand_in(), device)  # not an input yet: the step is traced again

    def uses(self, holder: Any) -> None:
        if id(holder) not in self.fn._holders and id(holder) not in self.state.modules:
            self.new_holders.append(holder)
            self.undo.append(_restorer(holder))

    def after_call(self, fn: Callable[[], None], grads: Any = ()) -> None:
        self.after.append(fn)
        for p in grads:
            self.deferred.setdefault(id(p), p)

    def grad_read(self, param: Any) -> None:
        if id(param) in self.deferred:
            raise CompileError(
                f"compile: {self.fn.__name__} reads a gradient (shape {tuple(param.shape)}) that is changed "
                "after each call of the compiled program (DistributedDataParallel's reduction, on an engine "
                "that cannot put collectives in the program); the step would use it "
                "unreduced. Split the step: compile the forward and backward in one function and the "
                "optimizer update in another (or run the update eagerly)"
            )
        if id(param) not in self.grads_written:
            self.grads_read.setdefault(id(param), param)
        self._lifted(param)

    def grad_written(self, param: Any) -> None:
        self.grads_written.setdefault(id(param), param)
        self._lifted(param)

    def _lifted(self, param: Any) -> None:
        if id(param) not in self.state.param_ids:
            self.new_holders.append(param)
            self.undo.append(_restorer(param))


class CompiledFunction:
    """A step compiled per signature (see the module docstring); call it like the function."""

    def __init__(
        self, fn: Callable[..., Any], mode: str | None = None, recompile_limit: int | None = 8
    ) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.mode = mode
        self.recompile_limit = recompile_limit
        self._warned = False
        self._holders: dict[int, Any] = {}
        self._cache: dict[Hashable, list[_Entry]] = {}
        self._lr_arrays: dict[float, Any] = {}
        self._known: _Known | None = None  # the holders' state as last gathered, while it holds
        self.compilations = 0
        """How many signatures were compiled (0 where the backend runs eagerly)."""
        self.traces = 0
        """How many times the step was traced (a trace that meets something new is done again)."""
        for obj in _referenced(fn):
            self._add_holder(obj)

    def _add_holder(self, obj: Any) -> None:
        if isinstance(obj, (Module, Optimizer, Parameter)) and id(obj) not in self._holders:
            self._holders[id(obj)] = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for obj in _walk((args, kwargs)):
            self._add_holder(obj)
        leaves, tree = _flatten((args, kwargs))
        stamp = self._stamp()
        device = self._device(leaves, stamp)
        if device is None or device.ops.compiler is None:
            return self._fn(*args, **kwargs)
        tensors = [t for t in leaves if isinstance(t, Tensor)]
        for _ in range(_MAX_TRACES):
            state = self._state(device, stamp)
            key = (tree, tuple(_signature(t) for t in tensors), state.key, _autocast_key())
            entry = next(
                (
                    e
                    for e in self._cache.get(key, ())
                    if _grad_signature(state, e.grad_inputs) == e.grad_signature
                ),
                None,
            )
            if entry is None:
                if self.recompile_limit is not None and self.compilations >= self.recompile_limit:
                    self._warn_limit(key, state)
                    return self._fn(*args, **kwargs)
                entry = self._trace(key, state, leaves, tree, device)
            if entry is not None:  # else the trace met a new holder: gather the state again
                return self._run(entry, state, tensors, device)
            stamp = self._stamp()
        raise CompileError(
            f"compile: {self.__name__} kept meeting new modules or optimizers ({_MAX_TRACES} traces)"
        )

    def _warn_limit(self, key: tuple[Any, ...], state: _State) -> None:
        if self._warned:
            return
        self._warned = True
        n = self.recompile_limit
        why = _what_changed(self._nearest(key), key, _slot_labels(state, self._holders.values()))
        warnings.warn(
            f"compile: {self.__name__} reached its recompile_limit ({n} program{'s' * (n != 1)}); a new "
            f"signature runs eagerly from now on. What differs from the nearest program: {why}. "
            "Keep a value that changes at every call in a tensor (an argument, or a buffer), or raise "
            "the limit: ag.compile(fn, recompile_limit=...)",
            RecompileWarning,
            stacklevel=3,
        )

    def _nearest(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """The compiled signature that shares the most parts with `key`."""

        def parts(k: tuple[Any, ...]) -> tuple[Any, ...]:
            return (k[0], k[1], *k[2].items, k[3])

        return max(self._cache, key=lambda k: sum(map(operator.eq, parts(k), parts(key))))

    def _stamp(self) -> tuple[Any, ...]:
        """What says cheaply whether the holders' structure may have changed (see `_Known`)."""
        opts = (h for h in self._holders.values() if isinstance(h, Optimizer))
        return (_module.changes.count, len(self._holders), *(_optimizer_stamp(o) for o in opts))

    def _state(self, device: Device, stamp: tuple[Any, ...]) -> _State:
        """The lifted state, gathered again only when the stamp moved or a slot's value no longer
        fits its signature (gathering walks every module: a noticeable part of a small step)."""
        known = self._known
        if known is not None and known.stamp == stamp and known.state.device is device and known.state.fits():
            return known.state
        state = _State.gather(list(self._holders.values()), device)
        self._known = _Known(self._stamp(), {p.device for p in state.params}, state)  # gather adds state
        return state

    def _device(self, leaves: list[Any], stamp: tuple[Any, ...]) -> Device | None:
        devices = {t.device for t in leaves if isinstance(t, Tensor)}
        known = self._known
        if known is not None and known.stamp == stamp:
            devices.update(known.devices)
        else:
            devices |= {p.device for p in _State.parameters(self._holders.values())}
        if len(devices) > 1:
            names = sorted(f"{d.name}:{d.device}" for d in devices)
            raise CompileError(
                f"compile: {self.__name__} uses tensors on several backends {names}; a step runs on one"
            )
        return next(iter(devices), None)

    def _inputs(
        self, entry: _Entry, state: _State, tensors: list[Tensor], device: Device, tracing: bool = False
    ) -> list[Any]:
        grads = [
            _RAW_GRAD.__get__(state.params[i]).data
            for i, sig in zip(entry.grad_inputs, entry.grad_signature)
            if sig
        ]
        draws = [d.stand_in() if tracing else d.now() for d in entry.draws]
        return state.inputs(device, self._lr_arrays) + grads + draws + [t.data for t in tensors]

    def _trace(
        self, key: Hashable, state: _State, leaves: list[Any], tree: Any, device: Device
    ) -> _Entry | None:
        """Trace until the draws and the gradients the step reads are inputs, then compile; None
        when the trace met a module, optimizer or parameter that is not lifted yet."""
        entry = _Entry((), (), [])
        tensors = [t for t in leaves if isinstance(t, Tensor)]
        for _ in range(_MAX_TRACES):
            record = _Trace(self, device, state, entry.draws)
            pure = functools.partial(self._pure, entry, state, leaves, tree, record)
            inputs = self._inputs(entry, state, tensors, device, tracing=True)
            self.traces += 1
            try:
                traced = device.ops.trace(pure, inputs, self.mode)
            except TraceError as exc:
                raise CompileError(
                    f"compile: {self.__name__} cannot be traced on {device.name}: {exc}. Inside a compiled "
                    "step values are symbolic: read them (.item(), .numpy(), `if tensor:`) outside it, "
                    "or compute with tensor ops"
                ) from exc
            if record.new_holders:  # (`_pure` put back what the trace wrote into them)
                for holder in record.new_holders:
                    self._add_holder(holder)
                return None
            read = tuple(state.position(p) for p in record.grads_read.values())
            if read == entry.grad_inputs and record.draws == entry.draws:
                entry.after = list(record.after)
                traced, entry.in_place = device.ops.in_place(traced, self._updates(entry, state))
                entry.run = device.ops.compile_traced(traced, self.mode)
                self.compilations += 1
                self._cache.setdefault(key, []).append(entry)
                return entry
            entry = _Entry(read, _grad_signature(state, read), record.draws)
        raise CompileError(
            f"compile: {self.__name__}: its random draws or gradients kept changing between traces"
        )

    @staticmethod
    def _updates(entry: _Entry, state: _State) -> list[tuple[int, int]]:
        """(output index, input index) of each slot the step writes as one (see `_State.claim`)."""
        first = sum(isinstance(t, Tensor) for t in entry.result_leaves)  # the state follows the results
        return [
            (first + j, ref[1])
            for j, ref in enumerate(entry.written)
            if ref[0] == "slot" and state.slots[ref[1]][0] != "lr"
        ]

    def _pure(
        self, entry: _Entry, state: _State, leaves: list[Any], tree: Any, record: _Trace, *arrays: Any
    ) -> list[Any]:
        """The step as a function of native arrays: state, gradients read, draws and tensor
        arguments in; tensor results and the state it changed out."""
        device = record.device
        arrays_in = iter(arrays)
        installed = state.install([next(arrays_in) for _ in state.slots], device)
        saved_grads = [(p, _RAW_GRAD.__get__(p)) for p in state.params]
        for p in state.params:  # a gradient the step reads is an input; the others start empty
            _RAW_GRAD.__set__(p, None)
        for i, sig in zip(entry.grad_inputs, entry.grad_signature):
            _RAW_GRAD.__set__(state.params[i], Tensor._make(next(arrays_in), device) if sig else None)
        record.draw_inputs = [next(arrays_in) for _ in entry.draws]
        record.after.clear()  # (a backend may run the function more than once to trace it)
        record.undo.clear()
        record.deferred.clear()
        call = [_rebuild(t, next(arrays_in), device) if isinstance(t, Tensor) else t for t in leaves]
        args, kwargs = _unflatten(tree, call)
        try:
            with tracing.tracing_with(record):
                result = self._fn(*args, **kwargs)
            written = state.written(installed)
            grads = [(p, _RAW_GRAD.__get__(p)) for p in record.grads_written.values()]
        finally:
            # the trace wrote traced values into holders it met that are not lifted yet (an
            # optimizer's first state, a parameter's update, a running statistic): what they held
            # goes back (oldest last), then the lifted state's
            for undo in reversed(record.undo):
                undo()
            state.restore(installed)
            for p, g in saved_grads:
                _RAW_GRAD.__set__(p, g)
        entry.result_leaves, entry.result_tree = _flatten(result)
        entry.written = [ref for ref, _ in written]
        # a parameter not lifted yet is a new holder: this trace is thrown away and done again
        entry.grads = [(state.param_ids.get(id(p), -1), g is not None) for p, g in grads]
        outputs = [t.data for t in entry.result_leaves if isinstance(t, Tensor)]
        outputs += [value for _, value in written]
        outputs += [g.data for _, g in grads if g is not None]
        entry.out_dtypes = [Tensor._make(a, device).dtype for a in outputs]
        return outputs

    def _run(self, entry: _Entry, state: _State, tensors: list[Tensor], device: Device) -> Any:
        assert entry.run is not None
        inputs = self._inputs(entry, state, tensors, device)
        copied = state.claim(entry.in_place, inputs, device.ops) if entry.in_place else ()
        # the gradients the call replaces need not live through it (those it reads are in
        # `inputs`), as an eager step's `zero_grad()` frees them before its backward
        for i, _ in entry.grads:
            _RAW_GRAD.__set__(state.params[i], None)
        arrays = entry.run(*inputs)
        out = iter(zip(arrays, entry.out_dtypes))

        def tensor() -> Tensor:
            array, dtype = next(out)
            return Tensor._make(array, device, dtype)

        leaves = [tensor() if isinstance(t, Tensor) else t for t in entry.result_leaves]
        for ref in entry.written:
            array, dtype = next(out)
            if array is not None:
                state.write(ref, array, dtype)
            elif ref[1] in copied:  # written into the private copy the slot went in as
                state.write(ref, inputs[ref[1]], dtype)
            # else written into the slot's own array, which the holder keeps
            if ref[0] == "slot" and state.slots[ref[1]][0] == "param":  # as Parameter.assign tells
                autodiff.note_assignment(state.slots[ref[1]][1], "a compiled step that updates it")
        for i, has in entry.grads:
            _RAW_GRAD.__set__(state.params[i], tensor() if has else None)
        for fn in entry.after:
            fn()
        return _unflatten(entry.result_tree, leaves)


_RAW_GRAD = Tensor.grad  # the gradient's slot, read and set without telling a trace


# ---------------------------------------------------------------------- state lifted into inputs
@dataclass
class _State:
    """The state of a step's holders on one device: slots in a fixed order, and the signature.

    Slots are (kind, where): "param" (a Parameter's array), "buffer" ((module, name)), "opt"
    (((state dict, name), ...): an optimizer's tensor, at every place that holds that object) and
    "lr" (a parameter group). A learning rate goes in as a float64 0-d array and stays a number in
    its group; an optimizer's step count becomes a float64 0-d tensor in its state (exact, and the
    compiled step keeps it on the device: no read back per call), as torch.optim keeps it. Equal
    counts in a group become one tensor, held by every parameter's state: one input, one output
    and one increment (`Optimizer.counts_steps`) instead of one per parameter."""

    params: list[Parameter]
    modules: set[int]  # ids of the modules whose parameters and buffers are lifted
    slots: list[tuple[str, Any]]
    key: Hashable
    tables: list[dict[str, Any]]  # the optimizers' per-parameter state dicts
    device: Device
    signatures: tuple[Any, ...]
    table_sizes: list[int]  # as gathered: a key added since (SGD's momentum buffer) is a change
    values: list[Any]  # each slot's value when last seen (gathered, or written by a call), weakly

    def __post_init__(self) -> None:
        # what each call reads, made once: a getter per slot, the parameters' requires_grad as
        # compiled, and the state tables' places that share one tensor
        self.getters = [_getter(kind, where) for kind, where in self.slots]
        self.grad_flags = [(w, sig[-1]) for (k, w), sig in zip(self.slots, self.signatures) if k == "param"]
        self.shared = [where for kind, where in self.slots if kind == "opt" and len(where) > 1]

    def fits(self) -> bool:
        """Whether every slot still holds a value of its signature and every state table its keys
        (a value the compiled step wrote is known to; another is checked)."""
        nows = [get() for get in self.getters]
        befores = [v() if type(v) is weakref.ref else v for v in self.values]
        if not all(map(operator.is_, nows, befores)):
            for (kind, where), now, before, sig in zip(self.slots, nows, befores, self.signatures):
                if now is before:
                    continue
                if kind == "lr":
                    if not isinstance(now, (int, float)):
                        return False
                elif _slot_signature(kind, where) != sig:
                    return False
        for where in self.shared:  # a shared count split (an eager step that skipped a parameter)
            table, name = where[0]
            if any(t[n] is not table[name] for t, n in where[1:]):
                return False
        return all(p.requires_grad == flag for p, flag in self.grad_flags) and all(
            len(table) == n for table, n in zip(self.tables, self.table_sizes)
        )

    @functools.cached_property
    def param_ids(self) -> dict[int, int]:
        return {id(p): i for i, p in enumerate(self.params)}

    def position(self, param: Parameter) -> int:
        return self.param_ids[id(param)]

    @staticmethod
    def parameters(holders: Any) -> list[Parameter]:
        seen: dict[int, Parameter] = {}
        for h in holders:
            if isinstance(h, Module):
                ps: Any = h.parameters()
            elif isinstance(h, Optimizer):
                ps = [p for g in h.param_groups for p in g["params"]]
            else:
                ps = [h] if isinstance(h, Parameter) else []
            for p in ps:
                seen.setdefault(id(p), p)
        return list(seen.values())

    @classmethod
    def gather(cls, holders: list[Any], device: Device) -> _State:
        params = cls.parameters(holders)
        slots: list[tuple[str, Any]] = [("param", p) for p in params]
        static: list[Any] = []
        tables: list[dict[str, Any]] = []
        modules: dict[int, Module] = {}
        for h in holders:
            if isinstance(h, Module):
                for m in h.modules():
                    modules.setdefault(id(m), m)
        for m in modules.values():  # its settings (training, Dropout's p, eps...) shape the program
            kind = type(m).__name__
            static += [(f"{kind}.{k}", _setting(v)) for k, v in vars(m).items() if k not in _MODULE_TABLES]
            for name, buf in m._buffers.items():
                if isinstance(buf, Tensor):
                    slots.append(("buffer", (m, name)))
                else:
                    static.append((f"{kind} buffer {name!r}", buf))
        held: dict[int, tuple[Tensor, list[tuple[dict[str, Any], str]]]] = {}  # id -> (tensor, where)
        for opt in (h for h in holders if isinstance(h, Optimizer)):
            for group in opt.param_groups:
                for k, v in group.items():
                    if k == "lr" and isinstance(v, (int, float)):
                        slots.append(("lr", group))
                    elif k != "params":
                        static.append((f"{type(opt).__name__}.{k}", _hashable(v)))
                numbers: dict[tuple[str, float], Tensor] = {}  # equal counts in a group: one tensor
                for p in group["params"]:
                    state = opt._state_of(p, group)
                    tables.append(state)
                    for name, value in state.items():
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            if (name, value) not in numbers:
                                full = device.ops.full((), float(value), dtypes.float64)
                                numbers[name, value] = Tensor._make(full, device)
                            value = state[name] = numbers[name, value]
                        if isinstance(value, Tensor):
                            held.setdefault(id(value), (value, []))[1].append((state, name))
                        else:
                            static.append((f"{type(opt).__name__} state {name!r}", _hashable(value)))
        slots += [("opt", tuple(where)) for _, where in held.values()]
        table_of = {id(t): i for i, t in enumerate(tables)}
        shared = tuple(tuple(table_of[id(t)] for t, _ in where) for kind, where in slots if kind == "opt")
        sig = tuple(_slot_signature(kind, where) for kind, where in slots)
        holder_ids = tuple(id(h) for h in holders)
        names = tuple(
            where[1] if kind == "buffer" else where[0][1] if kind == "opt" else kind for kind, where in slots
        )
        key = _Key((device, holder_ids, tuple(k for k, _ in slots), names, shared, sig, tuple(static)))
        values = [_weakly(_get(kind, where)) for kind, where in slots]
        return cls(params, set(modules), slots, key, tables, device, sig, [len(t) for t in tables], values)

    def inputs(self, device: Device, lr_arrays: dict[float, Any]) -> list[Any]:
        """The native arrays of the slots; `lr_arrays` keeps a learning rate's 0-d array while
        the rate stays the same (making one is a host-to-device copy)."""
        out = [get() for get in self.getters]
        for i, (kind, _) in enumerate(self.slots):
            value = out[i]
            if kind == "lr":
                if value not in lr_arrays:
                    lr_arrays.clear()
                    lr_arrays[value] = device.ops.full((), float(value), dtypes.float64)
                out[i] = lr_arrays[value]
            elif kind != "param":
                out[i] = value._data
        return out

    def install(self, arrays: list[Any], device: Device) -> list[tuple[str, Any, Any, Any]]:
        """Put traced inputs in the holders: (kind, where, original, installed) per slot; an
        optimizer state entry the step adds (SGD's momentum buffer) is recorded as added."""
        out = [("keys", table, set(table), None) for table in self.tables]
        for (kind, where), a in zip(self.slots, arrays):
            original = _get(kind, where)
            value = a if kind == "param" else Tensor._make(a, device)
            _put(kind, where, value)
            out.append((kind, where, original, value))
        return out

    def written(self, installed: list[tuple[str, Any, Any, Any]]) -> list[tuple[tuple[Any, ...], Any]]:
        """What the step changed, with the new native values: ("slot", i) for a slot, ("at", i, j)
        for location j of a shared slot i that did not change as one, ("key", t, name) for an entry
        it added to state table t."""
        out: list[tuple[tuple[Any, ...], Any]] = []
        n = len(self.tables)
        for pos, (kind, where, before, value) in enumerate(installed):
            if kind == "keys":
                out += [(("key", pos, k), where[k].data) for k in where if k not in before]
                continue
            now = _get(kind, where)
            if kind == "opt" and any(t[k] is not now for t, k in where[1:]):
                # a shared count that did not move as one: each place its own output
                out += [
                    (("at", pos - n, j), t[k].data) for j, (t, k) in enumerate(where) if t[k] is not value
                ]
            elif kind != "lr" and now is not value:
                out.append((("slot", pos - n), now.data if isinstance(now, Tensor) else now))
        return out

    @staticmethod
    def restore(installed: list[tuple[str, Any, Any, Any]]) -> None:
        for kind, where, original, _ in installed:
            if kind == "keys":
                for k in set(where) - original:
                    del where[k]
            else:
                _put(kind, where, original)

    def write(self, ref: tuple[Any, ...], array: Any, dtype: Any) -> None:
        """Store the compiled step's new value (a native array of `dtype`) of what `ref` (see
        `written`) names: a parameter's array as it is, anything else as a tensor."""
        if ref[0] != "slot":
            value = Tensor._make(array, self.device, dtype)
            if ref[0] == "key":  # a new entry in a state table: the next call gathers again
                self.tables[ref[1]][ref[2]] = value
            else:  # "at": one place of a shared slot, which is shared no more: the next call gathers again
                table, name = self.slots[ref[1]][1][ref[2]]
                table[name] = value
            return
        kind, where = self.slots[ref[1]]
        stored = array if kind == "param" else Tensor._make(array, self.device, dtype)
        _put(kind, where, stored)
        self.values[ref[1]] = _weakly(stored)  # known to fit (see `fits`)

    def claim(self, positions: tuple[int, ...], inputs: list[Any], ops: Any) -> set[int]:
        """Make the slots at `positions`, whose arrays (in `inputs`) the compiled program writes
        into or consumes (`Backend.in_place`), safe for that; returns the positions given a copy.

        Tensors are values: a program may reuse a slot's memory only when no tensor but the
        holder's can see it. A slot's array qualifies when the holder's reference (a parameter's
        `_data`; the tensor in a module's buffers or in the optimizer's state, at each place that
        holds it) and `inputs` are all that hold it, and nothing shares its memory
        (`Backend.exclusive`: no view, no NumPy or DLPack export). Anything a user took since the
        last call, `p.detach()`, `p.data`, `state_dict()`, `ag.clone(p)`, a result or graph that
        kept the old value, holds it too: that slot goes in as a private copy, which becomes the
        holder's new value, and the user's tensor keeps the old one, exactly as after an eager
        step. After a call the arrays the program wrote are the holders' alone again, so in a
        training loop every step after the first reuses the memory (the holders' state is held
        by weak references here: another compiled step over the same model does not count)."""
        copied: set[int] = set()
        for i in positions:
            kind, where = self.slots[i]
            if kind == "param":  # the parameter's `_data` and `inputs`
                mine = ops.exclusive(inputs[i], 2)
            else:  # the tensor: held by its places alone; its array: by its `_data` and `inputs`
                places = len(where) if kind == "opt" else 1
                mine = references(self.getters[i]()) == places and ops.exclusive(inputs[i], 2)
            if not mine:
                inputs[i] = ops.private_copy(inputs[i])
                copied.add(i)
        return copied


class _Key:
    """A state's signature as a dictionary key that hashes once: it is looked up at every call."""

    __slots__ = ("items", "_hash")

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items, self._hash = items, hash(items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self._hash == other._hash and self.items == other.items


@dataclass
class _Known:
    """The state last gathered, the stamp it was gathered under and its parameters' devices."""

    stamp: tuple[Any, ...]
    devices: set[Device]
    state: _State


def _optimizer_stamp(opt: Optimizer) -> tuple[Any, ...]:
    """An optimizer's structure and settings: its state table, and per group the parameter list
    and every hyper-parameter but the learning rate (a lifted input, not part of the signature)."""
    groups = tuple(
        (
            id(g["params"]),
            len(g["params"]),
            *((k, _by_value(v)) for k, v in g.items() if k not in ("params", "lr")),
        )
        for g in opt.param_groups
    )
    return (id(opt), id(opt.state), len(opt.state), len(opt.param_groups), groups)


def _by_value(v: Any) -> Any:
    """A setting as `==` can compare it: a tensor by identity (its `==` is elementwise)."""
    return id(v) if isinstance(v, Tensor) else v


def _slot_signature(kind: str, where: Any) -> Any:
    """What a slot's value must keep for a compiled step to take it: shape and dtype (and, for a
    parameter, whether it requires grad: the step computes gradients only for those that do)."""
    if kind == "lr":
        return kind
    if kind == "param":
        return (*_signature(where._data), where.requires_grad)
    return _signature(_get(kind, where))


def _getter(kind: str, where: Any) -> Callable[[], Any]:
    """A slot's value as a call without arguments (C-level: it runs at every call); an "opt"
    slot's places all hold the same tensor, so the first is read."""
    if kind == "param":
        return functools.partial(getattr, where, "_data")
    if kind == "lr":
        return functools.partial(where.__getitem__, "lr")
    table, name = where[0] if kind == "opt" else (where[0]._buffers, where[1])
    return functools.partial(table.__getitem__, name)


def _restorer(holder: Any) -> Callable[[], None]:
    """What puts back the state a trace may write into `holder`, a Module, Optimizer or Parameter
    that is not lifted into the trace's inputs yet (the trace is then thrown away)."""
    params: list[Parameter] = []
    buffers: list[tuple[dict[str, Any], dict[str, Any]]] = []
    tables: list[tuple[dict[Any, Any], dict[Any, Any]]] = []
    if isinstance(holder, Module):
        params = list(holder.parameters())
        buffers = [(m._buffers, dict(m._buffers)) for m in holder.modules()]
    elif isinstance(holder, Optimizer):
        params = [p for g in holder.param_groups for p in g["params"]]
        tables = [(holder.state, dict(holder.state))]
        tables += [(entry, dict(entry)) for entry in holder.state.values() if isinstance(entry, dict)]
        tables += [(g, dict(g)) for g in holder.param_groups]
    elif isinstance(holder, Parameter):
        params = [holder]
    values = [(p, p._data, _RAW_GRAD.__get__(p)) for p in params]

    def restore() -> None:
        for table, saved in (*buffers, *tables):
            table.clear()
            table.update(saved)
        for p, data, grad in values:
            p._data = data
            _RAW_GRAD.__set__(p, grad)

    return restore


def _weakly(value: Any) -> Any:
    """A weak reference to a slot's value (a number as it is): `_State` must not hold the
    holders' arrays, or `claim` would count it as another user."""
    try:
        return weakref.ref(value)
    except TypeError:
        return value


def _get(kind: str, where: Any) -> Any:
    return _getter(kind, where)()


def _put(kind: str, where: Any, value: Any) -> None:
    if kind == "param":
        where._data = value
    elif kind == "lr":
        where["lr"] = value
    elif kind == "opt":
        for table, name in where:
            table[name] = value
    else:
        module, name = where
        module._buffers[name] = value


# ---------------------------------------------------------------------- small pieces
def _what_changed(before: tuple[Any, ...], now: tuple[Any, ...], labels: list[str]) -> str:
    """The first difference between two signatures (`__call__`'s keys), in words; `labels`
    name the slots of `now`'s state."""
    (tree0, args0, state0, cast0), (tree1, args1, state1, cast1) = before, now
    if cast0 != cast1:
        return f"the autocast dtype (ag.autocast): {cast0} -> {cast1}"
    if tree0 != tree1:
        (args0_, kwargs0), (args1_, kwargs1) = tree0[1], tree1[1]
        if args0_ != args1_:
            return _tree_difference(args0_, args1_, "arguments")
        return _tree_difference(kwargs0, kwargs1, "keyword arguments")
    for i, (a, b) in enumerate(zip(args0, args1)):
        if a != b:
            return f"tensor argument {i}: {_shown(a)} -> {_shown(b)}"
    device0, holders0, *layout0, sig0, static0 = state0.items
    device1, holders1, *layout1, sig1, static1 = state1.items
    if device0 != device1:
        return f"the device: {device0} -> {device1}"
    if holders0 != holders1 or layout0 != layout1:
        return "the modules, optimizers or optimizer state the step uses"
    for label, a, b in zip(labels, sig0, sig1):
        if a != b:
            return f"{label}: {_shown(a)} -> {_shown(b)}"
    if len(static0) != len(static1):
        return "the settings the modules or optimizers have"
    for (label, a), (_, b) in zip(static0, static1):
        if a != b:
            return f"{label}: {_shown(a)} -> {_shown(b)}"
    return "the gradients the step reads (present or absent, their shapes)"


def _tree_difference(a: Any, b: Any, path: str) -> str:
    """Where two argument structures (`_flatten`'s nodes) first differ: "arguments[1]: 0.5 -> 0.25"."""
    kind = a[0]
    children: list[tuple[str, Any, Any]] = []
    if kind == b[0] and kind in ("tuple", "list", "dict") and len(a[1]) == len(b[1]):
        if kind != "dict":
            children = [(f"[{i}]", x, y) for i, (x, y) in enumerate(zip(a[1], b[1]))]
        elif [k for k, _ in a[1]] == [k for k, _ in b[1]]:
            children = [(f"[{k!r}]", x, y) for (k, x), (_, y) in zip(a[1], b[1])]
    for at, x, y in children:
        if x != y:
            return _tree_difference(x, y, path + at)
    shown = [_node(t) for t in (a, b)]
    return f"{path}: {shown[0]} -> {shown[1]}"


def _node(t: Any) -> str:
    if t[0] == "tensor":
        return "a tensor"
    if t[0] == "leaf":
        return _shown(t[1])
    if t[0] == "dict":
        return f"keys {tuple(k for k, _ in t[1])}"
    return f"a {t[0]} of {len(t[1])}"


def _shown(v: Any, limit: int = 120) -> str:
    """A signature part as a user wrote it (numbers without their type tags), shortened."""
    if isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], tuple) and isinstance(v[2], bool):
        dtype = str(v[1]).rsplit(".", 1)[-1]  # ag.float32, torch.float32 or numpy's float32
        return f"{dtype}{list(v[0])}{' requiring grad' * v[2]}"  # a tensor's signature
    text = repr(_plain(v))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(v: Any) -> Any:
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and type(v[1]).__name__ == v[0]:
        return v[1]  # `_hashable`'s (type name, value)
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    if isinstance(v, _Identity):
        return _Shown(f"<{type(v.obj).__name__} at {id(v.obj):#x}>")
    return v


class _Shown(str):
    def __repr__(self) -> str:
        return str(self)


def _slot_labels(state: _State, holders: Any) -> list[str]:
    """What each of a state's slots is, as a user names it ("parameter '0.weight'")."""
    names: dict[int, str] = {}
    for h in holders:
        if isinstance(h, Module):
            for prefix, m in h.named_modules():
                names.setdefault(id(m), prefix)
            for name, p in h.named_parameters():
                names.setdefault(id(p), name)
    labels = []
    for kind, where in state.slots:
        if kind == "param":
            labels.append(f"parameter {names.get(id(where), '?')!r}")
        elif kind == "buffer":
            prefix = names.get(id(where[0]), "?")
            labels.append(f"buffer {(prefix + '.' if prefix else '') + where[1]!r}")
        elif kind == "opt":
            labels.append(f"optimizer state {where[0][1]!r}")
        else:
            labels.append("a learning rate")
    return labels


def _signature(t: Any) -> Any:
    if isinstance(t, Tensor):
        return (t.shape, t.dtype, t.requires_grad)
    if hasattr(t, "shape") and hasattr(t, "dtype"):  # a native array
        return (tuple(t.shape), t.dtype)
    return _hashable(t)


def _grad_signature(state: _State, positions: tuple[int, ...]) -> tuple[Any, ...]:
    grads = [_RAW_GRAD.__get__(state.params[i]) for i in positions]
    return tuple(None if g is None else (g.shape, g.dtype) for g in grads)


def _rebuild(template: Tensor, array: Any, device: Device) -> Tensor:
    t = Tensor._make(array, device)
    if template.requires_grad:
        t.requires_grad_()
    return t


_MODULE_TABLES = frozenset({"_parameters", "_buffers", "_non_persistent", "_modules"})


def _setting(v: Any) -> Hashable:
    """A module's plain attribute as part of a signature: by value where it can be hashed, else
    by identity (a list, or an array held as a constant: the same object, the same program)."""
    if hasattr(v, "shape"):  # a tensor or a native array: `==` would compare elementwise
        return _Identity(v)
    try:
        return _hashable(v)
    except CompileError:
        return _Identity(v)


class _Identity:
    """An object compared by identity; it keeps the object alive, so its id is not reused."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def _hashable(v: Any) -> Hashable:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    try:
        hash(v)
    except TypeError:
        raise CompileError(
            f"compile: an argument or setting of type {type(v).__name__} is neither a tensor nor hashable; "
            "pass tensors, numbers, strings or tuples"
        ) from None
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return (type(v).__name__, v)


def _flatten(obj: Any) -> tuple[list[Any], Any]:
    """Leaves (tensors and other values) and a hashable structure; tensors are placeholders in
    the structure, other leaves are part of it (a new value is a new signature)."""
    leaves: list[Any] = []

    def go(o: Any) -> Any:
        if isinstance(o, (list, tuple)):
            return (type(o).__name__, tuple(go(x) for x in o))
        if isinstance(o, dict):
            return ("dict", tuple((k, go(o[k])) for k in o))
        leaves.append(o)
        return ("tensor",) if isinstance(o, Tensor) else ("leaf", _hashable(o))

    return leaves, go(obj)


def _unflatten(tree: Any, leaves: list[Any]) -> Any:
    it = iter(leaves)

    def go(t: Any) -> Any:
        kind = t[0]
        if kind in ("tensor", "leaf"):
            return next(it)
        if kind == "dict":
            return {k: go(v) for k, v in t[1]}
        items = [go(x) for x in t[1]]
        return items if kind == "list" else tuple(items)

    return go(tree)


def _walk(obj: Any) -> Any:
    """Objects inside nested lists, tuples and dicts."""
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _walk(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _walk(x)
    else:
        yield obj


def _referenced(fn: Callable[..., Any]) -> list[Any]:
    """What a function can reach without arguments: its closure, the globals its code names, and
    for a bound method its object and that object's attributes."""
    found: list[Any] = []
    target = getattr(fn, "__func__", fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        found.append(owner)
        found.extend(getattr(owner, "__dict__", {}).values())
    code = getattr(target, "__code__", None)
    if code is not None:
        for cell in getattr(target, "__closure__", None) or ():
            try:
                found.extend(_walk(cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        names = set(code.co_names)
        g = getattr(target, "__globals__", {})
        found.extend(_walk([g[n] for n in names if n in g]))
    return found
