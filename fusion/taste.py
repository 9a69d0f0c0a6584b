"""Users in the fused space: visual taste from rated movies, and the hybrid user query."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from catalog import Vectors

from .blocks import fuse, normalize_rows


def user_taste(user_ids, movie_ids, ratings, visual: Vectors, threshold: str | float = "mean") -> Vectors:
    """Each user's visual taste: the rating-weighted mean of the visual vectors of the movies they
    rated highly, L2-normalised.

    "Highly" means ``rating >= threshold``; ``threshold="mean"`` uses each user's own mean rating
    over all their ratings. Highly rated movies without a visual vector are skipped; a user left
    with none is absent from the result.
    """
    users = np.asarray(user_ids, dtype=np.int64)
    movies = np.asarray(movie_ids, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    if not (len(users) == len(movies) == len(r)):
        raise ValueError(f"user_taste: {len(users)} user ids, {len(movies)} movie ids, {len(r)} ratings")
    uniq, inverse = np.unique(users, return_inverse=True)
    if threshold == "mean":
        means = np.bincount(inverse, weights=r, minlength=len(uniq)) / np.bincount(inverse, minlength=len(uniq))
        high = r >= means[inverse] - 1e-9
    else:
        high = r >= float(threshold)
    has = np.isin(movies, visual.ids)
    keep = high & has & (r > 0)
    if not keep.any():
        return Vectors(np.zeros(0, np.int64), np.zeros((0, visual.dim), np.float32))
    rows = visual.rows_of(movies[keep])
    sums = np.zeros((len(uniq), visual.dim), dtype=np.float64)
    np.add.at(sums, inverse[keep], visual.values[rows].astype(np.float64) * r[keep, None])
    present = np.bincount(inverse[keep], minlength=len(uniq)) > 0
    return Vectors(uniq[present], normalize_rows(sums[present].astype(np.float32)))


def user_queries(collaborative: Vectors, taste: Vectors, weights: Mapping[str, float]) -> Vectors:
    """The hybrid user query: the user's collaborative and visual-taste vectors fused exactly like
    movies (`fuse` with blocks ``collaborative`` and ``visual``), so it can search the fused index."""
    return fuse({"collaborative": collaborative, "visual": taste}, weights)
