"""Attention and Transformer layers with torch.nn's parameters, submodule names, initialization, shapes
and mask semantics, so a torch state_dict loads unchanged and the same weights give the same outputs.

Masks follow torch: a bool mask marks with True the positions that may NOT be attended to; a float
mask is added to the attention scores. Inputs are (L, N, E), or (N, L, E) with `batch_first=True`,
or unbatched (L, E).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import agnostic.functional as F
import agnostic.ops as ops
from agnostic import dtypes
from agnostic.device import get_default_backend
from agnostic.tensor import Tensor

from . import init
from .dropout import Dropout
from .linear import Linear
from .module import Module, ModuleList
from .normalization import LayerNorm
from .parameter import Parameter

__all__ = [
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "Transformer",
]


def _positive_int(value: Any, name: str, layer: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def _empty(shape: tuple[int, ...], dtype: Any) -> Parameter:
    """A zero parameter on the default backend (the one `Module(..., backend=B)` set), to be filled."""
    dt = dtypes.default_float if dtype is None else dtype
    return Parameter(get_default_backend().full(shape, 0.0, dtype=dt))


def _additive(mask: Tensor | None, like: Tensor, name: str, layer: str) -> Tensor | None:
    """torch's _canonical_mask: a bool mask becomes 0 / -inf (True = not allowed) in `like`'s dtype;
    a float mask is kept (cast to `like`'s dtype); other dtypes are refused."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        mask = ops.asarray(mask, device=like.device)
    if mask.dtype is dtypes.bool:
        return ops.where(mask, ops.full(mask.shape, -math.inf, dtype=like.dtype, device=like.device), 0.0)
    if not mask.dtype.is_floating:
        raise TypeError(f"{layer}: only bool and floating {name} are supported, got {mask.dtype.name}")
    return mask if mask.dtype is like.dtype else mask.astype(like.dtype)


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention (without add_bias_kv / add_zero_attn): queries, keys and values are
    projected (`in_proj_weight` (3E, E), or `q_proj_weight`, `k_proj_weight`, `v_proj_weight` when
    kdim/vdim differ from embed_dim), split into `num_heads` heads, attended and recombined by
    `out_proj`. Returns (output, attention weights or None)."""

    def __init__(
        self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
        batch_first: bool = False, kdim: int | None = None, vdim: int | None = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        layer = "MultiheadAttention"
        embed_dim = _positive_int(embed_dim, "embed_dim", layer)
        num_heads = _positive_int(num_heads, "num_heads", layer)
        if embed_dim % num_heads:
            raise ValueError(f"{layer}: embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{layer}: dropout has to be a number in [0, 1], got {dropout!r}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, float(dropout)
        self.kdim = embed_dim if kdim is None else _positive_int(kdim, "kdim", layer)
        self.vdim = embed_dim if vdim is None else _positive_int(vdim, "vdim", layer)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.batch_first = bool(batch_first)
        # torch's registration order, so state_dict keys come in torch's order
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _empty((3 * embed_dim, embed_dim), dtype)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = _empty((embed_dim, embed_dim), dtype)
            self.k_proj_weight = _empty((embed_dim, self.kdim), dtype)
            self.v_proj_weight = _empty((embed_dim, self.vdim), dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _empty((3 * embed_dim,), dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        # torch's _reset_parameters
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if bias:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self) -> tuple[list[Tensor], list[Tensor | None]]:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = [w[:e], w[e : 2 * e], w[2 * e :]]
        else:
            weights = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        b = self.in_proj_bias
        biases = [None, None, None] if b is None else [b[:e], b[e : 2 * e], b[2 * e :]]
        return weights, biases

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
        need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        layer = "MultiheadAttention"
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                f"{layer}: query, key and value must all be 3-D (batched) or all 2-D (unbatched), got "
                f"shapes {query.shape}, {key.shape}, {value.shape}"
            )
        batched = query.ndim == 3
        if not batched:
            q, k, v = (ops.expand_dims(t, axis=0) for t in (query, key, value))
        elif self.batch_first:
            q, k, v = query, key, value
        else:
            q, k, v = (ops.transpose(t, 0, 1) for t in (query, key, value))
        n, tgt_len, e = q.shape
        src_len = k.shape[1]
        if e != self.embed_dim or k.shape[-1] != self.kdim or v.shape[-1] != self.vdim:
            raise ValueError(
                f"{layer}: expected query, key and value feature sizes ({self.embed_dim}, {self.kdim}, "
                f"{self.vdim}), got shapes {query.shape}, {key.shape}, {value.shape}"
            )
        if k.shape[:2] != v.shape[:2] or k.shape[0] != n:
            raise ValueError(
                f"{layer}: key {key.shape} and value {value.shape} must share batch size and sequence "
                f"length, and match the query's batch size ({query.shape})"
            )
        h, hd = self.num_heads, self.head_dim

        attn_mask = _additive(attn_mask, q, "attn_mask", layer)
        key_padding_mask = _additive(key_padding_mask, q, "key_padding_mask", layer)
        if is_causal and attn_mask is None:
            raise ValueError(
                f"{layer}: is_causal is a hint that attn_mask is causal and needs attn_mask (use "
                "Transformer.generate_square_subsequent_mask)"
            )
        mask = None
        if attn_mask is not None:
            if attn_mask.ndim == 2:
                if attn_mask.shape != (tgt_len, src_len):
                    raise ValueError(
                        f"{layer}: 2-D attn_mask must have shape {(tgt_len, src_len)}, got {attn_mask.shape}"
                    )
                mask = attn_mask
            elif attn_mask.ndim == 3:
                want = (n * h if batched else h, tgt_len, src_len)
                if attn_mask.shape != want:
                    raise ValueError(f"{layer}: 3-D attn_mask must have shape {want}, got {attn_mask.shape}")
                mask = ops.reshape(attn_mask, (n, h, tgt_len, src_len))
            else:
                raise ValueError(f"{layer}: attn_mask must be 2-D or 3-D, got shape {attn_mask.shape}")
        use_causal = bool(is_causal) and key_padding_mask is None and not need_weights
        if use_causal:
            mask = None  # torch hands the hint to scaled_dot_product_attention and drops the mask
        if key_padding_mask is not None:
            want_kpm = (n, src_len) if batched else (src_len,)
            if key_padding_mask.shape != want_kpm:
                raise ValueError(
                    f"{layer}: key_padding_mask must have shape {want_kpm}, got {key_padding_mask.shape}"
                )
            kpm = ops.reshape(key_padding_mask, (n, 1, 1, src_len))
            mask = kpm if mask is None else mask + kpm

        if self._qkv_same_embed_dim and query is key and key is value:
            # self-attention: one product with the packed weight, as torch does (one larger matrix
            # product each way; the three gradients join into one, not through a concatenation)
            projected = ops.split(F.linear(q, self.in_proj_weight, self.in_proj_bias), sections=3, axis=-1)
        else:
            (wq, wk, wv), (bq, bk, bv) = self._projections()
            projected = [F.linear(x, w, b) for x, w, b in ((q, wq, bq), (k, wk, bk), (v, wv, bv))]
        qh, kh, vh = (  # (N, H, len, hd)
            ops.permute(ops.reshape(y, (n, length, h, hd)), (0, 2, 1, 3))
            for y, length in zip(projected, (tgt_len, src_len, src_len))
        )

        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or p > 0.0:
            scores = ops.matmul(qh * math.sqrt(1.0 / hd), ops.matrix_transpose(kh))
            if mask is not None:
                scores = scores + mask
            if use_causal:
                causal = ops.tril(ops.full((tgt_len, src_len), True, dtype=dtypes.bool, device=q.device))
                scores = ops.where(causal, scores, -math.inf)
            attn = F.softmax(scores, axis=-1)
            if p > 0.0:
                attn = F.dropout(attn, p, training=True)
            if need_weights:
                weights = attn  # after dropout, as torch returns them
            out = ops.matmul(attn, vh)
        else:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=use_causal)
        out = ops.reshape(ops.permute(out, (0, 2, 1, 3)), (n, tgt_len, self.embed_dim))
        out = self.out_proj(out)
        if weights is not None and average_attn_weights:
            weights = ops.mean(weights, axis=1)
        if not batched:
            out = ops.squeeze(out, axis=0)
            if weights is not None:
                weights = ops.squeeze(weights, axis=0)
        elif not self.batch_first:
            out = ops.transpose(out, 0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}"
        )


def _activation(activation: str | Callable[[Tensor], Tensor], layer: str) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if isinstance(activation, str) or not callable(activation):
        raise ValueError(f"{layer}: activation should be 'relu', 'gelu' or a callable, got {activation!r}")
    return activation


class TransformerEncoderLayer(Module):
    """torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with a residual
    connection and LayerNorm (after the block, or before it with `norm_first=True`)."""

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
        batch_first: bool = False, norm_first: bool = False, bias: bool = True, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        layer = "TransformerEncoderLayer"
        _positive_int(dim_feedforward, "dim_feedforward", layer)
        act = _activation(activation, layer)
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = act

    def forward(
        self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:  # fmt: skip
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, mask: Tensor | None, kpm: Tensor | None, is_causal: bool) -> Tensor:
        y = self.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(y)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """torch.nn.TransformerDecoderLayer: self-attention, attention over the encoder's output (memory)
    and a feed-forward block, each with a residual connection and LayerNorm."""

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
        batch_first: bool = False, norm_first: bool = False, bias: bool = True, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        layer = "TransformerDecoderLayer"
        _positive_int(dim_feedforward, "dim_feedforward", layer)
        act = _activation(activation, layer)
        kw = {"dropout": dropout, "bias": bias, "batch_first": batch_first, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = act

    def forward(
        self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False, memory_is_causal: bool = False,
    ) -> Tensor:  # fmt: skip
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(
                x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            )
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, mask: Tensor | None, kpm: Tensor | None, is_causal: bool) -> Tensor:
        y = self.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(y)

    def _mha_block(
        self, x: Tensor, mem: Tensor, mask: Tensor | None, kpm: Tensor | None, is_causal: bool
    ) -> Tensor:
        y = self.multihead_attn(
            x, mem, mem, attn_mask=mask, key_padding_mask=kpm, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout2(y)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _clones(module: Module, n: Any, layer: str) -> ModuleList:
    n = _positive_int(n, "num_layers", layer)
    if not isinstance(module, Module):
        raise TypeError(f"{layer}: expected a layer Module to copy, got {type(module).__name__}")
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: `num_layers` independent copies of `encoder_layer` (`layers.0`, ...)
    applied in turn, then the optional `norm`."""

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:  # fmt: skip
        x = src
        for mod in self.layers:
            x = mod(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: `num_layers` independent copies of `decoder_layer` (`layers.0`, ...)
    applied in turn, then the optional `norm`."""

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None, memory_is_causal: bool = False,
    ) -> Tensor:  # fmt: skip
        x = tgt
        for mod in self.layers:
            x = mod(
                x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal,
            )  # fmt: skip
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """torch.nn.Transformer: an encoder and a decoder stack, each ending in a LayerNorm
    (`encoder.norm`, `decoder.norm`); matrices initialized xavier-uniform, as torch does."""

    def __init__(
        self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
        dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu", custom_encoder: Module | None = None,
        custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
        norm_first: bool = False, bias: bool = True, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        kw = {
            "dim_feedforward": dim_feedforward, "dropout": dropout, "activation": activation,
            "layer_norm_eps": layer_norm_eps, "batch_first": batch_first, "norm_first": norm_first,
            "bias": bias, "dtype": dtype,
        }  # fmt: skip
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            enc_layer = TransformerEncoderLayer(d_model, nhead, **kw)
            enc_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.encoder = TransformerEncoder(enc_layer, num_encoder_layers, enc_norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            dec_layer = TransformerDecoderLayer(d_model, nhead, **kw)
            dec_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.decoder = TransformerDecoder(dec_layer, num_decoder_layers, dec_norm)
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)

    def forward(
        self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
        src_is_causal: bool | None = None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False,
    ) -> Tensor:  # fmt: skip
        batched = src.ndim == 3
        if batched and tgt.ndim == 3:
            axis = 0 if self.batch_first else 1
            if src.shape[axis] != tgt.shape[axis]:
                raise ValueError(
                    f"Transformer: the batch sizes of src {src.shape} and tgt {tgt.shape} must be equal"
                )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(
                f"Transformer: the feature size of src {src.shape} and tgt {tgt.shape} must equal "
                f"d_model={self.d_model}"
            )
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )
        return self.decoder(
            tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )  # fmt: skip

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
        """(sz, sz) float mask: 0 on and below the diagonal, -inf above (position i sees j <= i)."""
        dev = get_default_backend() if device is None else device
        dt = dtypes.default_float if dtype is None else dtype
        return ops.triu(ops.full((sz, sz), -math.inf, dtype=dt, device=dev), k=1)
