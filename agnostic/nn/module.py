"""Module: parameters, buffers and submodules found automatically, with PyTorch's names.

A model is written once and built on a backend chosen at construction: `Model(..., backend=B)`
runs the model's `__init__` with B as the default backend, so every layer it creates lands on B
without being told. `model.to(other)` moves it. `state_dict()` uses PyTorch's names and layouts, so
weights move between a `torch.nn` model and its agnostic twin without renaming or reshaping.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from agnostic import dtypes, tracing
from agnostic.device import Device, as_device, default_backend
from agnostic.ops import asarray
from agnostic.tensor import Tensor

from .hooks import BackwardHook, RemovableHandle
from .parameter import Parameter

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict"]


class _Changes:
    """How many times any module's structure changed: an attribute, submodule, parameter or buffer
    set or removed, a train/eval mode, a move to another device or dtype. `agnostic.compile`
    gathers a step's state again only when this moved (and the values it lifted still fit)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


changes = _Changes()


_TENSOR_ARGS: dict[type, int] = {}
"""Per layer class: how many leading positional arguments of its forward must be Tensors."""


def _leading_tensor_args(cls: type) -> int:
    """The leading positional parameters of `cls.forward` annotated `Tensor`, for agnostic's own
    layers: they are checked on the way in, so a list or a NumPy array gets a TypeError that says
    what to do, not an AttributeError from inside the layer. (Users' modules are left as they are.)"""
    if not cls.__module__.startswith("agnostic."):
        return 0
    count = 0
    for p in list(inspect.signature(cls.forward).parameters.values())[1:]:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.annotation not in (
            "Tensor",
            Tensor,
        ):
            break
        count += 1
    return count


def _not_a_tensor_input(module: Module, index: int, value: Any) -> TypeError:
    name = list(inspect.signature(type(module).forward).parameters)[index + 1]
    return TypeError(
        f"{type(module).__name__}: {name} must be a Tensor, got {type(value).__name__}; make one on the "
        "layer's backend with ag.asarray(data, device=...)"
    )


def _bind_backend(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a Module subclass's `__init__` so that `backend=B` builds the module on B."""
    takes_backend = "backend" in inspect.signature(init).parameters

    @functools.wraps(init)
    def wrapped(self: Module, *args: Any, **kwargs: Any) -> None:
        backend = kwargs.get("backend") if takes_backend else kwargs.pop("backend", None)
        if "_parameters" not in self.__dict__:
            Module.__init__(self)  # a subclass that forgets super().__init__() still works
        if backend is None:
            init(self, *args, **kwargs)
            return
        with default_backend(backend):
            init(self, *args, **kwargs)
        self.to(backend)  # modules built before and passed in (Sequential(Linear(...), backend=B))

    return wrapped


class IncompatibleKeys(tuple):
    """What `load_state_dict` could not load: unpacks as PyTorch's `(missing_keys, unexpected_keys)`;
    `.mismatched_keys` names the entries whose shapes differ (loaded only with strict=False: skipped)."""

    def __new__(cls, missing: list[str], unexpected: list[str], mismatched: list[str]) -> IncompatibleKeys:
        self = super().__new__(cls, (missing, unexpected))
        self.mismatched_keys = mismatched
        return self

    @property
    def missing_keys(self) -> list[str]:
        return self[0]

    @property
    def unexpected_keys(self) -> list[str]:
        return self[1]

    def __repr__(self) -> str:
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys}, "
            f"mismatched_keys={self.mismatched_keys})"
        )


class Module:
    """The base of every layer and model. Subclasses assign Parameters, Modules and buffers as
    attributes in `__init__` and define `forward`."""

    training: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _bind_backend(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() (call super().__init__() first)"
            )
        changes.count += 1
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value  # an existing name keeps its place, as in PyTorch
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in buffers and (value is None or isinstance(value, Tensor)):
            buffers[name] = value
        elif name in params and value is None:
            params[name] = None
        elif name in params and isinstance(value, Tensor):
            raise TypeError(
                f"cannot assign a Tensor to parameter {name!r}: wrap it in nn.Parameter, or change "
                f"the value in place with self.{name}.assign(value)"
            )
        elif name in modules and value is None:
            modules[name] = None
        else:
            self._forget(name, keep=None)
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict | None) -> None:
        """Drop `name` from every table but `keep`, and from the plain attributes."""
        for table in (self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        if keep is not None:
            self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        changes.count += 1
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not trained (BatchNorm's running mean): saved in
        `state_dict` unless `persistent=False`, moved by `to`, never returned by `parameters()`."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}"
            )
        changes.count += 1
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        changes.count += 1
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        changes.count += 1
        self._modules[name] = module

    # ------------------------------------------------------------------ traversal
    def named_modules(
        self, memo: set[Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) of this module and every submodule, as torch: a module reachable
        twice appears once unless `remove_duplicate=False`."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(
        self, table: str, prefix: str, recurse: bool, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else iter([(prefix, self)])
        )
        for mod_prefix, m in mods:
            for name, t in getattr(m, table).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by two modules appears once unless
        `remove_duplicate=False`."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, persistent or not, as torch."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path `target` ("" is this module), as torch."""
        mod: Module = self
        if target == "":
            return mod
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path `target` ("layer.0.weight"), as torch."""
        return self._get_member(target, "_parameters", "an nn.Parameter")  # type: ignore[return-value]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path `target` ("bn.running_mean"), as torch."""
        return self._get_member(target, "_buffers", "a buffer")

    def _get_member(self, target: str, table: str, kind: str) -> Tensor:
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(f"{type(mod).__name__} has no attribute `{name}`")
        if name not in getattr(mod, table) or getattr(mod, table)[name] is None:
            raise AttributeError(f"`{name}` is not {kind}")
        return getattr(mod, table)[name]

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every submodule (children first, each once) and then on this module; returns
        self, as torch (`model.apply(init_weights)`)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Every parameter and persistent buffer by PyTorch's dotted name, detached (values). As in
        torch, a module or parameter reachable by two paths (tied weights) is saved under both."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for key, (m, name) in self._state_targets().items():
            out[key] = getattr(m, name).detach()
        return out

    def _state_targets(self) -> dict[str, tuple[Module, str]]:
        """Each state-dict key and the (module, attribute) it names."""
        targets: dict[str, tuple[Module, str]] = {}
        for prefix, m in self.named_modules(remove_duplicate=False):
            dot = f"{prefix}." if prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    targets[dot + name] = (m, name)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    targets[dot + name] = (m, name)
        return targets

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Load values by name (Tensors of any backend, NumPy arrays, torch tensors...).

        Every key and shape is checked first. With `strict=True` (the default) any missing,
        unexpected or wrongly shaped entry loads nothing and the error lists them all. With
        `strict=False` the entries that fit are loaded and the rest are reported in the result:
        `(missing_keys, unexpected_keys)` as in PyTorch, plus `.mismatched_keys`.

        Tied weights (one Parameter under several keys, GPT's `lm_head.weight is wte.weight`): a
        state that gives any one of the keys loads the shared Parameter, and the others are not
        missing (Hugging Face's GPT-2 files leave the tied key out); two keys with different values
        are an error."""
        targets = self._state_targets()
        tied: dict[tuple[int, str], list[str]] = {}  # one list of keys per parameter or buffer
        for key, (m, name) in targets.items():
            slot = (id(m._parameters[name]), "") if name in m._parameters else (id(m), name)
            tied.setdefault(slot, []).append(key)
        given = {k for keys in tied.values() if any(k2 in state for k2 in keys) for k in keys}
        missing = [k for k in targets if k not in given]
        unexpected = [k for k in state if k not in targets]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        values: dict[str, Tensor] = {}
        mismatched: list[str] = []
        for key, (m, name) in targets.items():
            if key not in state:
                continue
            current = getattr(m, name)
            v = _as_tensor(state[key], current)
            if v.shape != current.shape:
                mismatched.append(key)
                if strict:
                    problems.append(f"{key}: shape {v.shape} in the state, {current.shape} in the model")
            else:
                values[key] = v
        for keys in tied.values():
            present = [k for k in keys if k in values]
            first = present[0] if present else None
            for other in present[1:]:
                if not np.array_equal(values[first].numpy(), values[other].numpy()):
                    problems.append(
                        f"{first} and {other} are one tied parameter in the model but differ in the state"
                    )
        if problems:
            raise ValueError(
                f"load_state_dict into {type(self).__name__}: nothing was loaded; " + "; ".join(problems)
            )
        for key, v in values.items():
            m, name = targets[key]
            if name in m._parameters:
                m._parameters[name].assign(v)
            else:
                m._buffers[name] = v
        return IncompatibleKeys(missing, unexpected, mismatched)

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the state dict to a safetensors file (atomically; `ag.save`), with the class name and
        any `metadata` in its header. Any backend loads it back with `load`."""
        from agnostic.io import save

        save(self.state_dict(), path, metadata={"model": type(self).__name__, **(metadata or {})})

    def load(self, path: str | os.PathLike, strict: bool = True) -> Module:
        """Load a state dict file (`save`, `ag.save`, or `safetensors.torch.save_file` of a torch
        model's state dict) into this module, on its own backend; returns the module. With
        `strict=False`, what did not fit is reported in a warning."""
        import warnings

        from agnostic.io import load

        device = next((t.device for t in self.state_dict().values()), None)
        result = self.load_state_dict(load(path, device), strict=strict)
        if not strict and (result.missing_keys or result.unexpected_keys or result.mismatched_keys):
            warnings.warn(
                f"{type(self).__name__}.load({os.fspath(path)!r}, strict=False): {result}", stacklevel=2
            )
        return self

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True) -> Module:
        changes.count += 1
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients that `backward()` accumulated in every parameter."""
        for p in self.parameters():
            if set_to_none:  # a write, not a read: a compiled step then needs no incoming gradient
                p.grad = None
            elif p.grad is not None:
                p.grad = p.grad * 0

    def to(self, device: Device | str | None = None, *, dtype: Any = None) -> Module:
        """This module, moved in place to another backend or device (and/or a real or complex float
        dtype: its floating and complex parameters and buffers take it); returns self, as PyTorch
        does. Parameters stay the same objects."""
        dev = as_device(device) if device is not None else None
        if dtype is not None and not dtypes.as_dtype(dtype).is_inexact:
            raise TypeError(f"Module.to: dtype must be a floating or complex dtype, got {dtype}")
        changes.count += 1
        for p in self.parameters():
            if dev is not None:
                p._move(dev)
            if dtype is not None and p.dtype.is_inexact:  # complex to real: astype's error
                cast = p.detach().astype(dtype)
                p._data, p._dtype = cast._data, cast.dtype
        for m in self.modules():
            for name, b in m._buffers.items():
                if b is None:
                    continue
                if dev is not None:
                    b = b.to(dev)
                if dtype is not None and b.dtype.is_inexact:
                    b = b.astype(dtype)
                m._buffers[name] = b
        return self

    def half(self) -> Module:
        """Floating parameters and buffers cast to float16 (in place; returns self), as torch."""
        return self.to(dtype=dtypes.float16)

    def bfloat16(self) -> Module:
        """Floating parameters and buffers cast to bfloat16 (in place; returns self), as torch."""
        return self.to(dtype=dtypes.bfloat16)

    def double(self) -> Module:
        """Floating parameters and buffers cast to float64 (in place; returns self), as torch."""
        return self.to(dtype=dtypes.float64)

    def float(self) -> Module:
        """Floating parameters and buffers cast to float32 (in place; returns self), as torch."""
        return self.to(dtype=dtypes.float32)

    @property
    def backend(self) -> Device | None:
        """The backend of the first parameter or buffer (None for a module without state)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return None

    # ------------------------------------------------------------------ calling and printing
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (tracer := tracing.active()) is not None:  # an agnostic.compile trace lifts this module's state
            tracer.uses(self)
        hooks = self.__dict__.get("_hooks")
        if hooks is not None and any(hooks.values()):
            return self._call_with_hooks(hooks, args, kwargs)
        n = _TENSOR_ARGS.get(type(self))
        if n is None:
            n = _TENSOR_ARGS[type(self)] = _leading_tensor_args(type(self))
        if n:  # (0 for users' modules: nothing more per call)
            for i, a in enumerate(args[:n]):
                if not isinstance(a, Tensor):
                    raise _not_a_tensor_input(self, i, a)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, hooks: dict[str, OrderedDict], args: tuple[Any, ...], kwargs: dict) -> Any:
        """torch's call order: forward pre-hooks, the backward hooks' gate on the inputs, forward,
        forward hooks, the gate on the outputs; `always_call` forward hooks run even if forward raised."""
        for hook, with_kwargs, _ in list(hooks["forward_pre"].values()):
            if with_kwargs:
                new = hook(self, args, kwargs)
                if new is not None:
                    if not (isinstance(new, tuple) and len(new) == 2):
                        raise RuntimeError(
                            "forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                            f"but got {new}."
                        )
                    args, kwargs = new
            else:
                new = hook(self, args)
                if new is not None:
                    args = new if isinstance(new, tuple) else (new,)
        backward = None
        if hooks["backward"] or hooks["backward_pre"]:
            backward = BackwardHook(
                self,
                [h for h, _, _ in hooks["backward"].values()],
                [h for h, _, _ in hooks["backward_pre"].values()],
            )
            args = backward.setup_inputs(args)
        result, called = None, set()
        try:
            n = _TENSOR_ARGS.get(type(self)) or _leading_tensor_args(type(self))
            for i, a in enumerate(args[:n]):
                if not isinstance(a, Tensor):
                    raise _not_a_tensor_input(self, i, a)
            result = self.forward(*args, **kwargs)
            for key, (hook, with_kwargs, _) in list(hooks["forward"].items()):
                called.add(key)
                new = hook(self, args, kwargs, result) if with_kwargs else hook(self, args, result)
                if new is not None:
                    result = new
        except Exception:
            for key, (hook, with_kwargs, always) in list(hooks["forward"].items()):
                if always and key not in called:
                    try:
                        hook(self, args, kwargs, result) if with_kwargs else hook(self, args, result)
                    except Exception as e:
                        warnings.warn(
                            "module forward hook with ``always_call=True`` raised an exception that was "
                            f"silenced as another error was raised in forward: {e}",
                            stacklevel=2,
                        )
            raise
        return result if backward is None else backward.setup_outputs(result)

    def _add_hook(self, kind: str, entry: tuple[Callable, bool, bool], prepend: bool) -> RemovableHandle:
        hooks = self.__dict__.get("_hooks")
        if hooks is None:
            hooks = {k: OrderedDict() for k in ("forward_pre", "forward", "backward", "backward_pre")}
            object.__setattr__(self, "_hooks", hooks)
        changes.count += 1  # a compiled step traced without the hook must be traced again
        handle = RemovableHandle(hooks[kind], _changed)
        hooks[kind][handle.id] = entry
        if prepend:
            hooks[kind].move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """`hook(module, args)` (or `hook(module, args, kwargs)` with `with_kwargs`) before each
        forward; it may return replacement args (or `(args, kwargs)`). Returns a handle with `remove()`."""
        return self._add_hook("forward_pre", (hook, with_kwargs, False), prepend)

    def register_forward_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:  # fmt: skip
        """`hook(module, args, output)` (or `hook(module, args, kwargs, output)`) after each forward;
        it may return a replacement output. `always_call` runs it even when forward raises."""
        return self._add_hook("forward", (hook, with_kwargs, always_call), prepend)

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """`hook(module, grad_input, grad_output)` once the gradients w.r.t. the module's positional
        Tensor inputs are computed (None for the others); it may return replacement grad_input."""
        return self._add_hook("backward", (hook, False, False), prepend)

    def register_full_backward_pre_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """`hook(module, grad_output)` once the gradients w.r.t. the module's outputs are computed,
        before those w.r.t. its inputs; it may return replacement grad_output."""
        return self._add_hook("backward_pre", (hook, False, False), prepend)

    def extra_repr(self) -> str:
        """The layer's settings for `repr` (e.g. "in_features=2, out_features=3, bias=True")."""
        return ""

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self, *inputs: Any, **kwargs: Any) -> Any:
        """A table of the layers, their output shapes on `inputs` (Tensors or shapes) and their
        parameter counts; `print(model.summary((64, 1, 8, 8)))`. See `agnostic.nn.summary`."""
        from agnostic.nn.summary import summary

        return summary(self, *inputs, **kwargs)

    def __repr__(self) -> str:
        return self._repr(top=True)

    def _repr(self, top: bool) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        lines = []
        for name, m in self._modules.items():
            body = m._repr(top=False) if m is not None else "None"
            lines.append(f"({name}): " + body.replace("\n", "\n  "))
        text = head + ("\n  " + "\n  ".join(lines) + "\n)" if lines else ")")
        if top or not lines:
            count = self.num_parameters()
            if count:
                text += f"  # {count:,} parameters" if top else f"  # {count:,}"
        return text


def _changed() -> None:
    changes.count += 1


def _as_tensor(value: Any, like: Tensor) -> Tensor:
    """A state-dict value as a tensor on `like`'s device and dtype."""
    if isinstance(value, Tensor):
        v = value.detach()
        if v.device is not like.device:
            v = v.to(like.device)
    else:
        if not isinstance(value, np.ndarray) and hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        v = asarray(value, device=like.device, copy=True)  # never share the caller's memory
    return v if v.dtype is like.dtype else v.astype(like.dtype)


# ---------------------------------------------------------------------- containers
class Sequential(Module):
    """Modules applied in order; indexed and named like torch.nn.Sequential ("0", "1", ...)."""

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered ("0", "1", ...)."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()
