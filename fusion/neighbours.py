"""Neighbour smoothing: a movie's scores borrowed from its nearest neighbours in a feature space.

    nbrs = nearest_among(posters, query_ids, pool_ids, k=20)    # int64 (queries, k) pool ids, -1 pad
    s_nb = neighbour_mean(scores, catalogue, nbrs, query_ids)   # users x catalogue, NaN where none

For a movie with few ratings (a tail movie) the collaborative column is noisy; the mean column of
its ``k`` nearest neighbours among well-rated movies (the pool, e.g. head movies) by cosine of some
feature (poster embeddings; genres + year as the control) is a smoother guess of who likes it.
A query movie is never its own neighbour. A query without a feature row gets no neighbours (its
row of ids is all -1 and its column of `neighbour_mean` is NaN: the caller chooses the fallback).
Never imports TensorFlow.
"""
from __future__ import annotations

import numpy as np

from catalog import Vectors, top_n

from .blocks import normalize_rows


def nearest_among(features: Vectors, query_ids, pool_ids, k: int) -> np.ndarray:
    """int64 (len(query_ids), k): the ids of each query's ``k`` nearest pool movies by cosine of
    ``features``, best first (ties to the smaller pool id), -1 where fewer than ``k`` exist.

    Pool movies without a feature row (or with an all-zero row) are never neighbours; a query
    without one gets a row of -1.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"nearest_among: k must be >= 1, got {k}")
    query = np.asarray(query_ids, np.int64).reshape(-1)
    pool = np.unique(np.asarray(pool_ids, np.int64))
    pool = pool[np.isin(pool, features.ids)]
    out = np.full((len(query), k), -1, np.int64)
    has = np.isin(query, features.ids)
    if not len(pool) or not has.any():
        return out
    p = normalize_rows(features.subset(pool).values)
    q = normalize_rows(features.subset(query[has]).values)
    sims = q @ p.T
    exclude = (query[has][:, None] == pool[None, :]) | ~(np.linalg.norm(p, axis=1) > 0)[None, :]
    exclude |= ~(np.linalg.norm(q, axis=1) > 0)[:, None]
    cols, _ = top_n(sims, k, exclude)
    out[has] = np.where(cols >= 0, pool[np.maximum(cols, 0)], -1)
    return out


def neighbour_mean(scores: np.ndarray, catalogue, neighbours: np.ndarray, query_ids) -> np.ndarray:
    """float32 like ``scores`` (users, len(catalogue)): column ``query_ids[r]`` holds the mean of
    ``scores``' columns of ``neighbours[r]`` (ids in ``catalogue``; -1 and non-finite cells are
    skipped); every other column, and a query with no usable neighbour, is NaN."""
    catalogue = np.asarray(catalogue, np.int64)
    query = np.asarray(query_ids, np.int64).reshape(-1)
    nb = np.asarray(neighbours, np.int64)
    if nb.shape[0] != len(query):
        raise ValueError(f"neighbour_mean: {nb.shape[0]} neighbour rows for {len(query)} query movies")
    for name, ids in (("query", query), ("neighbour", nb[nb >= 0])):
        missing = np.setdiff1d(ids, catalogue)
        if len(missing):
            raise ValueError(f"neighbour_mean: {name} movie ids not in the catalogue: {missing[:5].tolist()}")
    s = np.asarray(scores, np.float64)
    out = np.full(s.shape, np.nan, np.float32)
    for r, q in enumerate(query):
        ids = nb[r][nb[r] >= 0]
        if not len(ids):
            continue
        cols = s[:, np.searchsorted(catalogue, ids)]
        ok = np.isfinite(cols)
        n = ok.sum(axis=1)
        total = np.where(ok, cols, 0.0).sum(axis=1)
        out[:, np.searchsorted(catalogue, q)] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out
