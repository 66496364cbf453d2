"""ONNX converters: the classic machine-learning ops (ai.onnx.ml) and TfIdfVectorizer.

These ops carry their model in attributes (trees, lookup tables, n-gram pools), which are decoded
once at load time into constant matrices; at run time the input only meets them through
comparisons, gathers and matmuls, so every batch runs as a few vectorized agnostic ops on any
backend. String keys, values and pools are unsupported: agnostic has no string dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import agnostic as ag
from agnostic import dtypes
from agnostic.onnx.registry import Context, Node, Run, Unsupported, converter
from agnostic.tensor import Tensor

_ML = "ai.onnx.ml"


def _no_strings(node: Node, *names: str) -> None:
    for name in names:
        if node.has(name):
            node.attr(name)
            raise Unsupported(f"attribute {name!r} holds strings, and agnostic has no string dtype")


# ---------------------------------------------------------------------- ArrayFeatureExtractor, Binarizer
@converter("ArrayFeatureExtractor", since=1, domain=_ML)
def _array_feature_extractor(node: Node) -> Run:
    """The last axis's elements at the (flattened) indices; a 1-D input gives one row, as onnxruntime."""

    def run(ctx: Context, x: Any, indices: Any) -> Tensor:
        x, index = ctx.tensor(x), ctx.tensor(indices).reshape((-1,))
        if x.ndim == 0:
            raise ValueError(f"{node.describe()}: X must have at least one axis, got a scalar")
        y = ag.take(x, index.astype(ag.int64), axis=-1)
        return y.reshape((1, index.shape[0]) if x.ndim == 1 else y.shape)

    return run


@converter("Binarizer", since=1, domain=_ML)
def _binarizer(node: Node) -> Run:
    threshold = float(node.attr("threshold", 0.0))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        above = (x if x.dtype.is_floating else x.astype(ag.float64)) > threshold  # a float threshold
        return above.astype(x.dtype)

    return run


# ---------------------------------------------------------------------- LabelEncoder
def _table(node: Node, kind: str) -> np.ndarray | None:
    """keys_* or values_*: int64s, floats or (opset 4) a tensor."""
    ints, floats, tensor = node.attr(f"{kind}_int64s", None), node.attr(f"{kind}_floats", None), None
    if node.version >= 4:
        tensor = node.attr(f"{kind}_tensor", None)
    given = [v for v in (ints, floats, tensor) if v is not None]
    if len(given) != 1:
        raise Unsupported(f"exactly one of the {kind}_* attributes must be given (strings are unsupported)")
    if ints is not None:
        return np.asarray(ints, dtype=np.int64)
    if floats is not None:
        return np.asarray(floats, dtype=np.float32)
    return np.asarray(tensor).reshape(-1)


@converter("LabelEncoder", since=2, domain=_ML)
def _label_encoder(node: Node) -> Run:
    """Each element's value in the keys -> values table, or the default: a binary search of the
    sorted keys (a repeated key maps to its last value, as a dict built from the lists)."""
    _no_strings(node, "keys_strings", "values_strings")
    node.attr("default_string", None)
    keys, values = _table(node, "keys"), _table(node, "values")
    if keys.dtype.kind not in "iuf" or values.dtype.kind not in "iuf":
        raise Unsupported(f"keys of dtype {keys.dtype} and values of {values.dtype}: agnostic maps numbers")
    if len(keys) != len(values) or len(keys) == 0:
        raise Unsupported(f"{len(keys)} keys and {len(values)} values: they must pair up, and not be empty")
    if values.dtype.kind == "f":
        default = node.attr("default_float", -0.0)
    else:
        default = node.attr("default_int64", -1)
    if node.version >= 4 and node.has("default_tensor"):
        default = np.asarray(node.attr("default_tensor")).reshape(-1)[0].item()
    table = {k: v for k, v in zip(keys.tolist(), values.tolist())}
    order = sorted(table)
    sorted_keys = np.asarray(order, dtype=keys.dtype)
    sorted_values = np.asarray([table[k] for k in order], dtype=values.dtype)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        k, v = ctx.tensor(sorted_keys), ctx.tensor(sorted_values)
        if x.dtype != k.dtype:
            raise TypeError(f"{node.describe()}: input dtype {x.dtype} differs from the keys' {k.dtype}")
        at = ag.clip(ag.searchsorted(k, x.reshape((-1,))), 0, len(order) - 1).astype(ag.int64)
        found = ag.take(k, at) == x.reshape((-1,))
        out = ag.where(found, ag.take(v, at), ag.full((), default, dtype=v.dtype, device=ctx.device))
        return out.reshape(x.shape)

    return run


# ---------------------------------------------------------------------- TreeEnsemble
_LEQ, _LT, _GTE, _GT, _EQ, _NEQ, _MEMBER = range(7)
_SUM, _AVERAGE, _MIN, _MAX = 1, 0, 2, 3


def _tree_paths(node: Node) -> tuple[list[int], list[list[tuple[int, bool]]], list[int]]:
    """Every root-to-leaf path of the ensemble: its leaf, its (node, branch taken) steps, its tree."""
    true_ids, false_ids = node.attr("nodes_truenodeids"), node.attr("nodes_falsenodeids")
    true_leaf, false_leaf = node.attr("nodes_trueleafs"), node.attr("nodes_falseleafs")
    leaves: list[int] = []
    paths: list[list[tuple[int, bool]]] = []
    trees: list[int] = []

    def walk(i: int, steps: list[tuple[int, bool]], tree: int) -> None:
        if len(steps) > len(true_ids):
            raise Unsupported(f"tree {tree} has a cycle through node {i}")
        for branch, ids, leaf in ((True, true_ids, true_leaf), (False, false_ids, false_leaf)):
            path = steps + [(i, branch)]
            if leaf[i]:
                leaves.append(ids[i])
                paths.append(path)
                trees.append(tree)
            else:
                walk(ids[i], path, tree)

    for tree, root in enumerate(node.attr("tree_roots")):
        if true_leaf[root] and false_leaf[root] and true_ids[root] == false_ids[root]:
            leaves.append(true_ids[root])  # a tree that is one leaf
            paths.append([])
            trees.append(tree)
        else:
            walk(root, [], tree)
    return leaves, paths, trees


def _members(node: Node, modes: np.ndarray) -> np.ndarray:
    """membership_values (NaN-separated sets, one per BRANCH_MEMBER node in node order) as a
    NaN-padded (nodes, largest set) matrix."""
    values = node.attr("membership_values", None)
    count = int(np.sum(modes == _MEMBER))
    if not count:
        return np.full((len(modes), 1), np.nan)
    if values is None:
        raise Unsupported("BRANCH_MEMBER nodes need the membership_values attribute")
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    cuts = np.flatnonzero(np.isnan(flat))
    if len(cuts) != count:
        raise Unsupported(
            f"membership_values holds {len(cuts)} NaN-ended sets for {count} BRANCH_MEMBER nodes"
        )
    sets = np.split(flat, cuts + 1)[:count]
    table = np.full((len(modes), max(len(s) for s in sets)), np.nan)
    for i, s in zip(np.flatnonzero(modes == _MEMBER), sets):
        table[i, : len(s) - 1] = s[:-1]
    return table


@converter("TreeEnsemble", since=5, domain=_ML)
def _tree_ensemble(node: Node) -> Run:
    """Every node's test on every row at once, then each root-to-leaf path's conjunction of them
    (a matmul counting the tests a row passes on the path), then the reached leaves' weights
    aggregated per target (a matmul for sum and average, masked min/max)."""
    modes = np.asarray(node.attr("nodes_modes")).reshape(-1).astype(np.int64)
    splits = np.asarray(node.attr("nodes_splits")).astype(np.float64).reshape(-1)
    features = np.asarray(node.attr("nodes_featureids"), dtype=np.int64)
    missing = np.asarray(node.attr("nodes_missing_value_tracks_true", [0] * len(modes)), dtype=bool)
    node.attr("nodes_hitrates", None)  # a profiling hint, no effect on results
    n_targets, aggregate = int(node.attr("n_targets")), int(node.attr("aggregate_function", _SUM))
    post = int(node.attr("post_transform", 0))
    if post not in (0, 1, 2):
        raise Unsupported(f"post_transform={post}: agnostic runs NONE (0), SOFTMAX (1) and LOGISTIC (2)")
    if aggregate not in (_SUM, _AVERAGE, _MIN, _MAX):
        raise Unsupported(f"aggregate_function={aggregate}: ONNX defines 0 to 3")
    if np.any((modes < 0) | (modes > _MEMBER)):
        raise Unsupported(f"nodes_modes {sorted(set(modes.tolist()))}: ONNX defines 0 to 6")
    members = _members(node, modes)
    leaves, paths, trees = _tree_paths(node)
    weights = np.asarray(node.attr("leaf_weights")).astype(np.float64).reshape(-1)[leaves]
    targets = np.asarray(node.attr("leaf_targetids"), dtype=np.int64)[leaves]
    if np.any((targets < 0) | (targets >= n_targets)):
        raise Unsupported(
            f"leaf_targetids {sorted(set(targets.tolist()))} must lie in [0, n_targets={n_targets})"
        )
    on_true, on_false = np.zeros((len(modes), len(paths))), np.zeros((len(modes), len(paths)))
    for p, path in enumerate(paths):
        for i, branch in path:
            (on_true if branch else on_false)[i, p] += 1
    steps = np.asarray([len(path) for path in paths], dtype=np.float64)
    to_target = (targets[:, None] == np.arange(n_targets)[None, :]).astype(np.float64)
    n_trees = len(set(trees))

    def tests(ctx: Context, v: Tensor) -> Tensor:
        """(rows, nodes): whether each row passes each node's test."""
        s = ctx.tensor(splits)
        compare = {_LEQ: v <= s, _LT: v < s, _GTE: v >= s, _GT: v > s, _EQ: v == s, _NEQ: v != s}
        passed = ag.zeros(v.shape, dtype=ag.bool, device=ctx.device)
        for mode in sorted(set(modes.tolist())):
            if mode == _MEMBER:
                hit = ag.any(v[:, :, None] == ctx.tensor(members)[None], axis=-1)
            else:
                hit = compare[mode]
            passed = ag.where(ctx.tensor(modes == mode), hit, passed)
        return ag.logical_or(passed, ag.logical_and(ag.isnan(v), ctx.tensor(missing)))

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        if x.ndim != 2 or not x.dtype.is_floating:
            raise ValueError(
                f"{node.describe()}: X must be a floating (rows, features) matrix, got {x.shape} {x.dtype}"
            )
        if len(features) and int(features.max()) >= x.shape[1]:
            raise ValueError(
                f"{node.describe()}: a node tests feature {int(features.max())}; X has {x.shape[1]}"
            )
        passed = tests(ctx, ag.take(x.astype(ag.float64), ctx.tensor(features), axis=1)).astype(ag.float64)
        agreed = ag.matmul(passed, ctx.tensor(on_true)) + ag.matmul(1.0 - passed, ctx.tensor(on_false))
        reached = agreed == ctx.tensor(steps)
        if aggregate in (_SUM, _AVERAGE):
            y = ag.matmul(reached.astype(ag.float64), ctx.tensor(weights[:, None] * to_target))
            y = y * (1.0 / n_trees) if aggregate == _AVERAGE else y
        else:
            info = ag.finfo(x.dtype)
            bound = float(info.max if aggregate == _MIN else info.min)
            mask = ag.logical_and(reached[:, :, None], ctx.tensor(to_target > 0)[None])
            picked = ag.where(mask, ctx.tensor(weights)[None, :, None], bound)
            y = ag.min(picked, axis=1) if aggregate == _MIN else ag.max(picked, axis=1)
        if post == 1:
            y = ag.softmax(y, axis=-1)
        elif post == 2:
            y = ag.sigmoid(y)
        return y.astype(x.dtype)

    return run


# ---------------------------------------------------------------------- TfIdfVectorizer
def _ngrams(node: Node, pool: list[int], counts: list[int]) -> dict[tuple[int, ...], int]:
    """The pool's n-grams (by length: counts[i] is where the (i + 1)-grams start) -> their ids, in
    the lengths min_gram_length..max_gram_length (a repeated n-gram keeps its last id)."""
    lo, hi = int(node.attr("min_gram_length")), int(node.attr("max_gram_length"))
    grams: dict[tuple[int, ...], int] = {}
    gram_id = 0
    for i, start in enumerate(counts):
        end, size = counts[i + 1] if i + 1 < len(counts) else len(pool), i + 1
        for s in range(start, end - size + 1, size):
            if lo <= size <= hi:
                grams[tuple(pool[s : s + size])] = gram_id
            gram_id += 1
    return grams


@converter("TfIdfVectorizer", since=9)
def _tfidf_vectorizer(node: Node) -> Run:
    """Counts of the pool's n-grams in each row (n-grams of 2+ items also with skips of up to
    max_skip_count between items), mapped to output columns by ngram_indexes, then weighted (TF:
    counts, IDF: weights where present, TFIDF: weights * counts)."""
    _no_strings(node, "pool_strings")
    mode, skips = node.attr("mode"), int(node.attr("max_skip_count"))
    if mode not in ("TF", "IDF", "TFIDF"):
        raise Unsupported(f"mode={mode!r}: ONNX defines TF, IDF and TFIDF")
    pool, counts = node.attr("pool_int64s"), node.attr("ngram_counts")
    indexes = np.asarray(node.attr("ngram_indexes"), dtype=np.int64)
    weights = node.attr("weights", None)
    width = int(indexes.max()) + 1 if len(indexes) else 0
    grams = _ngrams(node, pool, counts)
    if any(i >= len(indexes) for i in grams.values()):
        raise Unsupported(f"{len(indexes)} ngram_indexes for {max(grams.values()) + 1} n-grams in the pool")
    by_size: dict[int, list[tuple[int, ...]]] = {}
    for gram in grams:
        by_size.setdefault(len(gram), []).append(gram)
    # (size, skip, grams' items, one-hot of their output columns)
    plan = []
    for size, group in sorted(by_size.items()):
        column = np.zeros((len(group), width))
        column[np.arange(len(group)), indexes[[grams[g] for g in group]]] = 1.0
        for skip in range(1, skips + 2) if size > 1 else (1,):
            plan.append((size, skip, np.asarray(group, dtype=np.int64), column))
    scale = None if weights is None else np.asarray(weights, dtype=np.float32)

    def run(ctx: Context, x: Any) -> Tensor:
        x = ctx.tensor(x)
        if x.dtype not in (dtypes.int32, dtypes.int64) or x.ndim > 2:
            raise TypeError(
                f"{node.describe()}: X must be int32 or int64 of rank 0 to 2, got {x.shape} {x.dtype}"
            )
        rows = x.reshape((1, -1)) if x.ndim < 2 else x
        freq = ag.zeros((rows.shape[0], width), dtype=ag.float32, device=ctx.device)
        length = rows.shape[1]
        for size, skip, items, column in plan:
            starts = length - skip * (size - 1)
            if starts <= 0:
                continue
            match = None
            for j in range(size):
                window = rows[:, j * skip : j * skip + starts].astype(ag.int64)
                hit = window[:, None, :] == ctx.tensor(items[:, j])[None, :, None]
                match = hit if match is None else ag.logical_and(match, hit)
            found = ag.sum(match.astype(ag.float32), axis=-1)
            freq = freq + ag.matmul(found, ctx.tensor(column.astype(np.float32)))
        if mode == "IDF":
            freq = (freq > 0).astype(ag.float32)
        if mode != "TF" and scale is not None:
            freq = freq * ctx.tensor(scale)
        return freq.reshape((width,)) if x.ndim < 2 else freq

    return run
