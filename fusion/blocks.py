"""`fuse`: per-modality movie vectors -> one vector per movie whose cosine blends the modalities.

Each block (e.g. ``collaborative``, ``visual``) is L2-normalised row by row and scaled by
``sqrt(w_b)``, with the weights normalised to sum to 1, and the blocks are concatenated. For two
movies that have every block, the fused vectors have unit norm and

    cos(fused_a, fused_b) = sum_b w_b * cos(block_b(a), block_b(b))

exactly. A movie missing some blocks keeps the ones it has, reweighted over those alone: each
present block is scaled by ``sqrt(w_b / W)`` with ``W`` the sum of its present blocks' weights,
and the missing blocks' columns are zero. Its vector is still unit-norm; against a complete
movie its cosine is ``sum_{b present} sqrt(w_b / W) * sqrt(w_b) * cos_b``. A block of weight 0
is left out entirely (no columns); a movie that only has zero-weight blocks is left out too.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from catalog import Vectors


def normalize_rows(values: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    values = np.asarray(values, dtype=np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)


def resolve_weights(names, weights: Mapping[str, float]) -> dict[str, float]:
    """Weights for ``names`` normalised to sum to 1.

    A block without a weight raises; a weight for a block not given is ignored (that modality is
    simply absent, e.g. no posters yet).
    """
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"fuse: no weight for block(s) {', '.join(missing)}")
    out = {}
    for name in names:
        w = float(weights[name])
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"fuse: weight of {name!r} must be a finite number >= 0, got {weights[name]}")
        out[name] = w
    total = sum(out.values())
    if total <= 0:
        raise ValueError(f"fuse: weights {dict(weights)} sum to 0; give at least one block a positive weight")
    return {name: w / total for name, w in out.items()}


def fuse(blocks: Mapping[str, Vectors], weights: Mapping[str, float]) -> Vectors:
    """One vector per movie in any block with positive weight; see the module docstring."""
    if not blocks:
        raise ValueError("fuse: no blocks given")
    norm_weights = resolve_weights(list(blocks), weights)
    used = [name for name in blocks if norm_weights[name] > 0]
    ids = np.unique(np.concatenate([blocks[name].ids for name in used]))
    dims = [blocks[name].dim for name in used]
    out = np.zeros((len(ids), sum(dims)), dtype=np.float32)
    present_weight = np.zeros(len(ids), dtype=np.float64)
    rows_of = {}
    for name in used:
        rows = np.searchsorted(ids, blocks[name].ids)
        rows_of[name] = rows
        present_weight[rows] += norm_weights[name]
    start = 0
    for name, dim in zip(used, dims):
        rows = rows_of[name]
        scale = np.sqrt(norm_weights[name] / present_weight[rows]).astype(np.float32)[:, None]
        out[rows, start:start + dim] = normalize_rows(blocks[name].values) * scale
        start += dim
    return Vectors(ids, out)


def fusion_summary(blocks: Mapping[str, Vectors], weights: Mapping[str, float], fused: Vectors) -> dict:
    """What the manifest records about a fusion: weights, blocks, dims and coverage."""
    norm_weights = resolve_weights(list(blocks), weights)
    all_ids = {name: set(map(int, v.ids)) for name, v in blocks.items()}
    out = {"weights": norm_weights, "dim": fused.dim, "count": len(fused), "blocks": {}}
    for name, v in blocks.items():
        others = set().union(*(ids for other, ids in all_ids.items() if other != name)) if len(blocks) > 1 else set()
        out["blocks"][name] = {"dim": v.dim, "count": len(v), "used": norm_weights[name] > 0,
                               "only_in_this_block": len(all_ids[name] - others) if len(blocks) > 1 else len(v)}
    return out
