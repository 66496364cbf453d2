"""Recurrent layers (LSTM, GRU and their one-step cells) with torch.nn's constructors, parameter names,
layouts, gate order, default initialization and shapes, so torch weights load unchanged and one seed
builds the same layer on every backend.

Written with tensor ops only (one matmul projects the input of every time step, then a Python loop
runs the recurrence), so autodiff works on every backend."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import agnostic.functional as F
import agnostic.ops as ops
from agnostic.tensor import Tensor

from .module import Module
from .parameter import fan_in_uniform

__all__ = ["LSTM", "GRU", "LSTMCell", "GRUCell"]


def _check_positive_int(layer: str, name: str, v: Any) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")


def _lstm_step(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM update from the summed pre-activations (gate order i, f, g, o, as torch)."""
    i, f, g, o = ops.split(gates, sections=4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _gru_step(xg: Tensor, hg: Tensor, h: Tensor) -> Tensor:
    """One GRU update (gate order r, z, n): n = tanh(x_n + r * (W_hn h + b_hn)), h' = (1-z) n + z h."""
    xr, xz, xn = ops.split(xg, sections=3, axis=-1)
    hr, hz, hn = ops.split(hg, sections=3, axis=-1)
    r = ops.sigmoid(xr + hr)
    z = ops.sigmoid(xz + hz)
    n = ops.tanh(xn + r * hn)
    return n + z * (h - n)


def _affine(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x @ w.T + b. The weight goes to `linear` as it is (not transposed first), so under autocast
    it is the parameter that is cast, once per region (autocast's cache), not once per time step;
    the bias is added after, so the gates stay float32 under autocast."""
    y = F.linear(x, w)
    return y if b is None else y + b


class _RNNBase(Module):
    """Shared by LSTM and GRU: argument checks, parameters (torch's names and order), init, forward."""

    _gates: int = 0

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        layer = type(self).__name__
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            _check_positive_int(layer, name, v)
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= float(dropout) <= 1  # type: ignore[arg-type]
        ):
            raise ValueError(f"{layer}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:  # type: ignore[operator]
            warnings.warn(
                f"{layer}: dropout={dropout} has no effect with num_layers=1 (dropout is applied "
                "between layers, after all but the last)",
                UserWarning,
                stacklevel=3,
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)  # type: ignore[arg-type]
        dirs = 2 if bidirectional else 1
        gh = self._gates * hidden_size
        names: list[list[tuple[str, str, str | None, str | None]]] = []
        for k in range(num_layers):
            in_size = input_size if k == 0 else hidden_size * dirs
            per_layer = []
            for d in range(dirs):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                # drawn in torch's registration order, so one seed gives one layer on every backend
                setattr(self, "weight_ih" + sfx, fan_in_uniform((gh, in_size), hidden_size, dtype))
                setattr(self, "weight_hh" + sfx, fan_in_uniform((gh, hidden_size), hidden_size, dtype))
                if bias:
                    setattr(self, "bias_ih" + sfx, fan_in_uniform((gh,), hidden_size, dtype))
                    setattr(self, "bias_hh" + sfx, fan_in_uniform((gh,), hidden_size, dtype))
                per_layer.append(
                    ("weight_ih" + sfx, "weight_hh" + sfx, "bias_ih" + sfx if bias else None,
                     "bias_hh" + sfx if bias else None)
                )  # fmt: skip
            names.append(per_layer)
        self._param_names = names

    # ------------------------------------------------------------------ checks
    def _check_input(self, x: Any) -> tuple[Tensor, bool]:
        layer = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{layer}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            raise ValueError(
                f"{layer}: expected a 2-D (unbatched) or 3-D (batched) input, got shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{layer}: input of shape {x.shape} does not end in input_size={self.input_size}"
            )
        if not x.dtype.is_floating:
            raise TypeError(f"{layer}: input must be a floating tensor, got {x.dtype}")
        return x, x.ndim == 3

    def _check_state(self, h: Any, name: str, batched: bool, n: int) -> Tensor:
        layer = type(self).__name__
        layers = self.num_layers * (2 if self.bidirectional else 1)
        expected = (layers, n, self.hidden_size) if batched else (layers, self.hidden_size)
        if not isinstance(h, Tensor):
            raise TypeError(f"{layer}: {name} must be a Tensor, got {type(h).__name__}")
        if h.shape != expected:
            kind = "a batched" if batched else "an unbatched"
            raise ValueError(f"{layer}: for {kind} input, {name} must have shape {expected}, got {h.shape}")
        return h if batched else ops.expand_dims(h, axis=1)

    # ------------------------------------------------------------------ forward
    def _prepare(self, x: Tensor) -> tuple[Tensor, bool]:
        x, batched = self._check_input(x)
        if not batched:
            x = ops.expand_dims(x, axis=1)
        elif self.batch_first:
            x = ops.permute_dims(x, (1, 0, 2))
        return x, batched  # (L, N, H_in)

    def _finish(self, out: Tensor, batched: bool) -> Tensor:
        if not batched:
            return ops.squeeze(out, axis=1)
        return ops.permute_dims(out, (1, 0, 2)) if self.batch_first else out

    def _run(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[list[Tensor]]]:
        """x: (L, N, H_in); states: the initial state tensors, each (layers * dirs, N, H).
        Returns the last layer's output (L, N, dirs * H) and, per state, the final value per
        (layer, direction) in torch's order."""
        dirs = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in states]
        steps = x.shape[0]
        for k, per_layer in enumerate(self._param_names):
            outs = []
            for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(per_layer):
                w_ih_, w_hh_ = getattr(self, w_ih), getattr(self, w_hh)
                b_ih_ = getattr(self, b_ih) if b_ih else None
                b_hh_ = getattr(self, b_hh) if b_hh else None
                proj = ops.unstack(_affine(x, w_ih_, b_ih_), axis=0)  # every time step in one matmul
                cur = [s[k * dirs + d] for s in states]
                seq: list[Tensor] = [None] * steps  # type: ignore[list-item]
                order = range(steps - 1, -1, -1) if d else range(steps)
                for t in order:
                    hg = _affine(cur[0], w_hh_, b_hh_)
                    cur = self._step(proj[t], hg, cur)
                    seq[t] = cur[0]
                for i, v in enumerate(cur):
                    finals[i].append(v)
                outs.append(ops.stack(seq, axis=0))
            x = outs[0] if dirs == 1 else ops.concat(outs, axis=-1)
            if self.dropout > 0 and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, finals

    def _step(self, xg: Tensor, hg: Tensor, cur: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def _zeros(self, x: Tensor) -> Tensor:
        layers = self.num_layers * (2 if self.bidirectional else 1)
        return ops.zeros((layers, x.shape[1], self.hidden_size), dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(_RNNBase):
    """Multi-layer LSTM as torch.nn.LSTM (no proj_size): forward(input, (h_0, c_0)=None) returns
    (output, (h_n, c_n)); input (L, N, H_in), (N, L, H_in) with batch_first, or (L, H_in) unbatched;
    states (num_layers * directions, N, H) or (num_layers * directions, H) unbatched."""

    _gates = 4

    def _step(self, xg: Tensor, hg: Tensor, cur: list[Tensor]) -> list[Tensor]:
        h, c = _lstm_step(xg + hg, cur[1])
        return [h, c]

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x, batched = self._prepare(input)
        if hx is None:
            h0 = c0 = self._zeros(x)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a pair (h_0, c_0), got {type(hx).__name__}")
            h0 = self._check_state(hx[0], "h_0", batched, x.shape[1])
            c0 = self._check_state(hx[1], "c_0", batched, x.shape[1])
        out, (hs, cs) = self._run(x, [h0, c0])
        h_n, c_n = ops.stack(hs, axis=0), ops.stack(cs, axis=0)
        if not batched:
            h_n, c_n = ops.squeeze(h_n, axis=1), ops.squeeze(c_n, axis=1)
        return self._finish(out, batched), (h_n, c_n)


class GRU(_RNNBase):
    """Multi-layer GRU as torch.nn.GRU: forward(input, h_0=None) returns (output, h_n), with
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); shapes as LSTM."""

    _gates = 3

    def _step(self, xg: Tensor, hg: Tensor, cur: list[Tensor]) -> list[Tensor]:
        return [_gru_step(xg, hg, cur[0])]

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._prepare(input)
        h0 = self._zeros(x) if hx is None else self._check_state(hx, "hx", batched, x.shape[1])
        out, (hs,) = self._run(x, [h0])
        h_n = ops.stack(hs, axis=0)
        if not batched:
            h_n = ops.squeeze(h_n, axis=1)
        return self._finish(out, batched), h_n


class _CellBase(Module):
    """Shared by LSTMCell and GRUCell: weight_ih (G*H, H_in), weight_hh (G*H, H), bias_ih, bias_hh,
    all U(-1/sqrt(H), 1/sqrt(H)) as torch."""

    _gates = 0

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        layer = type(self).__name__
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            _check_positive_int(layer, name, v)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        gh = self._gates * hidden_size
        self.weight_ih = fan_in_uniform((gh, input_size), hidden_size, dtype)
        self.weight_hh = fan_in_uniform((gh, hidden_size), hidden_size, dtype)
        self.bias_ih = fan_in_uniform((gh,), hidden_size, dtype) if bias else None
        self.bias_hh = fan_in_uniform((gh,), hidden_size, dtype) if bias else None

    def _check_input(self, x: Any) -> tuple[Tensor, bool]:
        layer = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{layer}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{layer}: expected input (N, {self.input_size}) or ({self.input_size},), got shape {x.shape}"
            )
        if not x.dtype.is_floating:
            raise TypeError(f"{layer}: input must be a floating tensor, got {x.dtype}")
        batched = x.ndim == 2
        return (x if batched else ops.expand_dims(x, axis=0)), batched

    def _check_state(self, h: Any, name: str, batched: bool, n: int) -> Tensor:
        layer = type(self).__name__
        expected = (n, self.hidden_size) if batched else (self.hidden_size,)
        if not isinstance(h, Tensor):
            raise TypeError(f"{layer}: {name} must be a Tensor, got {type(h).__name__}")
        if h.shape != expected:
            kind = "a batched" if batched else "an unbatched"
            raise ValueError(f"{layer}: for {kind} input, {name} must have shape {expected}, got {h.shape}")
        return h if batched else ops.expand_dims(h, axis=0)

    def _zeros(self, x: Tensor) -> Tensor:
        return ops.zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


class LSTMCell(_CellBase):
    """One LSTM step as torch.nn.LSTMCell: forward(input, (h, c)=None) returns (h', c');
    input (N, H_in) or (H_in,)."""

    _gates = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._check_input(input)
        if hx is None:
            h = c = self._zeros(x)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTMCell: hx must be a pair (h, c), got {type(hx).__name__}")
            h = self._check_state(hx[0], "h", batched, x.shape[0])
            c = self._check_state(hx[1], "c", batched, x.shape[0])
        gates = _affine(x, self.weight_ih, self.bias_ih) + _affine(h, self.weight_hh, self.bias_hh)
        h, c = _lstm_step(gates, c)
        if not batched:
            h, c = ops.squeeze(h, axis=0), ops.squeeze(c, axis=0)
        return h, c


class GRUCell(_CellBase):
    """One GRU step as torch.nn.GRUCell: forward(input, h=None) returns h'; input (N, H_in) or (H_in,)."""

    _gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._check_input(input)
        h = self._zeros(x) if hx is None else self._check_state(hx, "hx", batched, x.shape[0])
        h = _gru_step(_affine(x, self.weight_ih, self.bias_ih), _affine(h, self.weight_hh, self.bias_hh), h)
        return h if batched else ops.squeeze(h, axis=0)
