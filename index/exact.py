"""Exact top-N over a matrix of vectors: blocked numpy matmul, then `catalog.top_n`.

`exact_top` is what `BruteForce` searches with, what the FAISS index's exact re-scan uses and
where flat batch searches are routed (it beats the faiss-cpu wheel's bundled BLAS; see
benchmarks/README.md). Queries are processed in blocks so that one block's scores stay under
``BLOCK_BYTES`` whatever the batch size.

Ranking is `catalog.top_n`'s (higher score first, ties to the smaller column). Before it, each
block is pruned, exactly: the ``n``-th best score of a strided sample of a row's columns is a
lower bound of the row's ``n``-th best score, so every column scoring below it can be dropped
without changing the answer, ties included (the kept columns stay in column order). On wide
rows this leaves ``top_n`` a few hundred columns instead of all of them (3-4x faster).
"""
from __future__ import annotations

import numpy as np

from catalog import UnknownMovieError, top_n

BLOCK_BYTES = 32 << 20  # float32 scores per query block
SAMPLE_PER_HIT = 32     # sample size for the pruning bound: this many columns per hit wanted, at least
MIN_SAMPLE = 256


class Columns:
    """Column positions of ids in an int64 id array (each id once)."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, dtype=np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, id_: object) -> bool:
        try:
            value = int(id_)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        at = int(np.searchsorted(self._sorted, value))
        return at < len(self._sorted) and int(self._sorted[at]) == value

    def of(self, ids: np.ndarray) -> np.ndarray:
        """Sorted column positions of those ``ids`` that are present (others are ignored)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0 or len(self._sorted) == 0:
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self._sorted, ids), len(self._sorted) - 1)
        found = self._sorted[at] == ids
        return np.sort(self._order[at[found]])

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Column positions of ``ids``, in their order; `UnknownMovieError` for an id not held."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self._sorted, ids), max(len(self._sorted) - 1, 0))
        found = self._sorted[at] == ids if len(self._sorted) else np.zeros(len(ids), bool)
        if not found.all():
            raise UnknownMovieError(f"id {int(ids[~found][0])} is not in the index")
        return self._order[at]


def block_rows(m: int) -> int:
    """Queries per block over ``m`` columns: one block's float32 scores stay under ``BLOCK_BYTES``."""
    return max(1, BLOCK_BYTES // (4 * max(m, 1)))


def exact_top(matrix: np.ndarray, queries: np.ndarray, n: int, exclude: list[np.ndarray] | None = None,
              allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Columns and scores of the ``n`` best rows of ``matrix`` for each query, best first.

    ``matrix``: float32 (m, dim); ``queries``: float32 (q, dim), already normalised if need be.
    ``exclude``: one array of column positions per query that may not be returned. ``allowed``:
    sorted column positions that may be returned (None: all). Returns ``(cols, vals)`` of shape
    (q, n), padded with column -1 and score -inf where fewer than ``n`` columns pass.
    """
    q = len(queries)
    cols_out = np.full((q, n), -1, np.int64)
    vals_out = np.full((q, n), -np.inf, np.float32)
    if allowed is not None:
        matrix = matrix[allowed]
        if exclude is not None:
            exclude = [_within(allowed, e) for e in exclude]
    m = len(matrix)
    if m == 0 or q == 0:
        return cols_out, vals_out
    rows = block_rows(m)
    for start in range(0, q, rows):
        stop = min(q, start + rows)
        scores = queries[start:stop] @ matrix.T
        if exclude is not None:
            for r, cols in enumerate(exclude[start:stop]):
                if len(cols):
                    scores[r, cols] = -np.inf
        cols, vals = _pruned_top(scores, n)
        if allowed is not None:
            cols = np.where(cols >= 0, allowed[np.maximum(cols, 0)], -1)
        cols_out[start:stop] = cols
        vals_out[start:stop] = vals
    return cols_out, vals_out


def _within(allowed: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Positions inside ``allowed`` (sorted) of those ``cols`` that are in it."""
    if len(cols) == 0 or len(allowed) == 0:
        return np.zeros(0, np.int64)
    at = np.minimum(np.searchsorted(allowed, cols), len(allowed) - 1)
    return at[allowed[at] == cols]


def _pruned_top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`top_n` of ``scores`` (q, m), after dropping columns that cannot be among the ``n`` best."""
    q, m = scores.shape
    k = min(n, m)
    stride = m // max(SAMPLE_PER_HIT * k, MIN_SAMPLE)
    if stride < 4:
        return top_n(scores, n)
    # the k-th best of a subset of a row is <= the k-th best of the row
    bound = np.partition(scores[:, ::stride], -k, axis=1)[:, -k]
    keep = scores >= bound[:, None]  # a -inf bound (too many excluded) keeps everything
    counts = keep.sum(axis=1)
    wide = counts > m // 4  # pruning would not pay: those rows go to top_n whole
    if wide.all():
        return top_n(scores, n)
    cols_out = np.empty((q, n), np.int64)
    vals_out = np.empty((q, n), np.float64)
    if wide.any():
        cols_out[wide], vals_out[wide] = top_n(scores[wide], n)
    narrow = np.flatnonzero(~wide)
    keep, counts = keep[narrow], counts[narrow]
    width = int(counts.max())
    rows, cols = np.nonzero(keep)  # row-major: each row's columns ascending, so ties break alike
    first = np.repeat(np.cumsum(counts) - counts, counts)
    slot = np.arange(len(rows)) - first
    cand = np.zeros((len(narrow), width), np.int64)
    cand[rows, slot] = cols
    vals = np.full((len(narrow), width), -np.inf, np.float32)
    vals[rows, slot] = scores[narrow[rows], cols]
    c, v = top_n(vals, n)
    cols_out[narrow] = np.where(c >= 0, np.take_along_axis(cand, np.maximum(c, 0), axis=1), -1)
    vals_out[narrow] = v
    return cols_out, vals_out
