"""`Hits` (ids with their scores, best first) and the one top-N kernel every exact search uses.

`top_n` is the only brute-force top-N in the project: `index.BruteForce`, the FAISS index's
exact re-scan and the evaluation metrics all call it, so every path ranks and breaks ties alike
(higher score first, then the smaller column).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Hits:
    """Ids with their scores, best first; ``len(hits)`` is the number of hits.

    ``because`` is optional: for recommendations, the id of the liked movie that explains each
    hit (-1 where none does); None for every other query.
    """

    movie_ids: np.ndarray
    scores: np.ndarray
    because: np.ndarray | None = None

    def __len__(self) -> int:
        return int(np.shape(self.movie_ids)[-1]) if np.ndim(self.movie_ids) else 0

    @classmethod
    def empty(cls) -> "Hits":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))


def top_n(scores: np.ndarray, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and scores of the ``n`` best scores per row, best first.

    ``scores``: (q, m), or (m,) for one row. ``exclude``: a boolean mask of the same shape, True
    where a cell may not be returned. Ties go to the smaller column. A row with fewer than ``n``
    allowed cells is padded with column -1 and score -inf (``np.isfinite`` tells them apart).
    """
    single = np.ndim(scores) == 1
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if exclude is not None:
        s = np.where(np.atleast_2d(exclude), -np.inf, s)
    q, m = s.shape
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    k = min(n, m)
    if k == 0:
        cols, vals = np.full((q, n), -1, np.int64), np.full((q, n), -np.inf)
    else:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (q, 1))
        # the k-th best may tie with cells left outside the partition: take every cell tied with it
        # so that the smaller column wins, as in a full sort
        if k < m:
            kth = np.take_along_axis(s, part, axis=1).min(axis=1, keepdims=True)
            tied = (s == kth).sum(axis=1) > (np.take_along_axis(s, part, 1) == kth).sum(axis=1)
            for r in np.flatnonzero(tied):  # rare: sort just those rows in full
                part[r] = np.lexsort((np.arange(m), -s[r]))[:k]
        vals = np.take_along_axis(s, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        cols, vals = np.take_along_axis(part, order, 1).astype(np.int64), np.take_along_axis(vals, order, 1)
        cols[~np.isfinite(vals)] = -1
        if k < n:
            cols = np.hstack([cols, np.full((q, n - k), -1, np.int64)])
            vals = np.hstack([vals, np.full((q, n - k), -np.inf)])
    return (cols[0], vals[0]) if single else (cols, vals)


def hits_from(ids: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> Hits:
    """One row of `top_n` output as `Hits` over ``ids``, with the padding dropped."""
    keep = cols >= 0
    return Hits(np.asarray(ids, np.int64)[cols[keep]], vals[keep].astype(np.float32))
