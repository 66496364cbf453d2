"""`ag.einsum`, as NumPy (and torch, and jax) define it, lowered to agnostic's permute, reshape, sum and matmul, so
autodiff and every backend need nothing new: operands are contracted pairwise, left to right."""

from __future__ import annotations

import math
import string

from agnostic import ops
from agnostic.autocast import _state as _autocast_on
from agnostic.autocast import autocast, cast_inputs
from agnostic.tensor import Tensor

__all__ = ["einsum"]


def _parse(equation: str, operands: tuple[Tensor, ...]) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, got {len(operands)}")
    free = [c for c in string.ascii_letters if c not in eq]
    ell = None
    out_terms = []
    for term, x in zip(terms, operands):
        if term.count("...") > 1 or "." in term.replace("...", ""):
            raise ValueError(f"einsum: bad subscripts {term!r} in {equation!r}")
        n_named = len(term.replace("...", ""))
        if "..." in term:
            k = x.ndim - n_named
            if k < 0:
                raise ValueError(f"einsum: {term!r} does not fit an operand of shape {x.shape}")
            ell = ell if ell is not None and len(ell) >= k else "".join(free[:k])
            term = term.replace("...", ell[len(ell) - k :] if k else "")
        if not all(c in string.ascii_letters for c in term) or len(term) != x.ndim:
            raise ValueError(f"einsum: subscripts {term!r} do not fit an operand of shape {x.shape}")
        if len(set(term)) != len(term):
            raise ValueError(f"einsum: repeated subscripts in one operand ({term!r}) are not supported")
        out_terms.append(term)
    ell = ell or ""
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: lhs.count(c) for c in set(lhs) if c in string.ascii_letters}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    for c in out:
        if not any(c in t for t in out_terms):
            raise ValueError(f"einsum: output subscript {c!r} of {equation!r} is not in any input")
    return out_terms, out


def _reduce_to(x: Tensor, term: str, keep: set[str]) -> tuple[Tensor, str]:
    """Sum away the axes of `x` whose subscript no later operand or the output needs."""
    drop = tuple(i for i, c in enumerate(term) if c not in keep)
    if not drop:
        return x, term
    return ops.sum(x, axis=drop), "".join(c for c in term if c in keep)


def _sizes(x: Tensor, term: str) -> dict[str, int]:
    return dict(zip(term, x.shape))


def _contract(a: Tensor, ta: str, b: Tensor, tb: str, keep: set[str]) -> tuple[Tensor, str]:
    """a (ta) times b (tb) summed over their shared subscripts not in `keep`, as one batched matmul."""
    sizes = {**_sizes(b, tb), **_sizes(a, ta)}
    for c in set(ta) & set(tb):
        sa, sb = _sizes(a, ta)[c], _sizes(b, tb)[c]
        if sa != sb and 1 not in (sa, sb):
            raise ValueError(f"einsum: subscript {c!r} has sizes {sa} and {sb}")
        sizes[c] = max(sa, sb)
    batch = [c for c in ta if c in tb and c in keep]
    summed = [c for c in ta if c in tb and c not in keep]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    a = ops.broadcast_to(ops.permute_dims(a, [ta.index(c) for c in batch + left + summed]),
                         [sizes[c] for c in batch + left + summed])  # fmt: skip
    b = ops.broadcast_to(ops.permute_dims(b, [tb.index(c) for c in batch + summed + right]),
                         [sizes[c] for c in batch + summed + right])  # fmt: skip
    nb = [sizes[c] for c in batch]
    m, k, n = (math.prod(sizes[c] for c in g) for g in (left, summed, right))
    out = ops.matmul(ops.reshape(a, nb + [m, k]), ops.reshape(b, nb + [k, n]))
    return ops.reshape(out, nb + [sizes[c] for c in left + right]), "".join(batch + left + right)


def einsum(equation: str, *operands: Tensor) -> Tensor:
    """torch.einsum: `einsum("bij,bjk->bik", a, b)`; operands may also be given as one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum: needs at least one operand")
    if _autocast_on.get() is not None:  # the operands in the low dtype; inside, no further casts
        operands = cast_inputs("einsum", *operands)
        with autocast(enabled=False):
            return einsum(equation, *operands)
    terms, out = _parse(equation, operands)
    x, tx = operands[0], terms[0]
    for i in range(1, len(operands)):
        later = set(out).union(*terms[i + 1 :])
        x, tx = _reduce_to(x, tx, later | set(terms[i]))
        y, ty = _reduce_to(operands[i], terms[i], later | set(tx))
        x, tx = _contract(x, tx, y, ty, later)
    x, tx = _reduce_to(x, tx, set(out))
    return ops.permute_dims(x, [tx.index(c) for c in out]) if tx != out else x
