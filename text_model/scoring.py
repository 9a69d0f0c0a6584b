"""Scoring many users against every movie in chunks, reduced to top-N at once (numpy + scipy).

Memory stays bounded by ``CHUNK_CELLS`` (user rows x movies per chunk), never a dense users x
movies matrix: ranking validation, `evaluate` and the ranking metrics all score through here.
The top-N kernel itself is `catalog.top_n`, the project's one.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from catalog import top_n

CHUNK_CELLS = 1 << 21  # scores per chunk: about 2M cells, tens of MB of temporaries


def chunks(n_rows: int, n_cols: int, cells: int = CHUNK_CELLS) -> Iterator[slice]:
    """Row slices of at most ``cells // n_cols`` rows (at least one) covering ``n_rows``."""
    step = max(1, int(cells) // max(int(n_cols), 1))
    for start in range(0, int(n_rows), step):
        yield slice(start, min(start + step, int(n_rows)))


def pair_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """A boolean CSR (scipy) matrix, True at every (row, col) pair."""
    from scipy import sparse

    m = sparse.csr_matrix((np.ones(len(rows), np.bool_), (np.asarray(rows), np.asarray(cols))), shape=shape)
    m.sum_duplicates()
    return m


def dense_rows(matrix, rows: slice) -> np.ndarray | None:
    """Rows of a CSR matrix as a dense boolean block (None for no matrix)."""
    return None if matrix is None else matrix[rows].toarray().astype(bool, copy=False)


def top_n_chunked(score: Callable[[slice], np.ndarray], n_rows: int, n_cols: int, n: int,
                  exclude=None, cells: int = CHUNK_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """`catalog.top_n` of ``score(rows)`` (a (len(rows), n_cols) block) for every row, in chunks.

    ``exclude``: a boolean CSR (n_rows, n_cols), True where a cell may not be returned.
    """
    cols = np.full((n_rows, n), -1, np.int64)
    vals = np.full((n_rows, n), -np.inf)
    for rows in chunks(n_rows, n_cols, cells):
        cols[rows], vals[rows] = top_n(score(rows), n, dense_rows(exclude, rows))
    return cols, vals


def top_n_dot(queries: np.ndarray, items: np.ndarray, n: int, exclude=None,
              cells: int = CHUNK_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """Top-N of ``queries @ items.T`` per query row, in chunks (see `top_n_chunked`)."""
    items_t = np.ascontiguousarray(np.asarray(items, np.float32).T)
    q = np.asarray(queries, np.float32)
    return top_n_chunked(lambda rows: q[rows] @ items_t, len(q), items_t.shape[1], n, exclude, cells)
