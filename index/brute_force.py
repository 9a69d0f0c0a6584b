"""`BruteForce`: exact top-N by numpy (`index.exact.exact_top`), the reference every index is tested against.

    top = BruteForce.build(vectors)                    # cosine; normalize=False for inner product
    hits = top.search(query, n=10, exclude=seen_ids)   # catalog.Hits, best first

Nothing to save: build it from the vectors at load time. Same interface as `MovieIndex` (`TopK`).
"""
from __future__ import annotations

import numpy as np

from catalog import Hits, Vectors, hits_from

from .exact import Columns, exact_top
from .filters import MovieMetadata
from .topk import allowed_ids, check_n, per_query, prepared_queries, prepared_values, Searching


class BruteForce(Searching):
    """Exact search over every stored vector; memory per search is bounded (queries go in blocks)."""

    def __init__(self, vectors: Vectors, normalize: bool = True, metadata: MovieMetadata | None = None):
        self._values = prepared_values(vectors, normalize, "BruteForce")
        self._columns = Columns(vectors.ids.copy())
        self._normalize = bool(normalize)
        self.metadata = metadata

    @classmethod
    def build(cls, vectors: Vectors, normalize: bool = True, metadata: MovieMetadata | None = None) -> "BruteForce":
        """Index ``vectors`` (inner product; cosine when ``normalize``)."""
        return cls(vectors, normalize, metadata)

    # -- facts -----------------------------------------------------------------------------
    @property
    def movie_ids(self) -> np.ndarray:
        return self._columns.ids.copy()

    ids = movie_ids

    @property
    def dim(self) -> int:
        return int(self._values.shape[1])

    @property
    def normalize(self) -> bool:
        return self._normalize

    def __len__(self) -> int:
        return len(self._columns)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._columns

    def vectors(self, ids=None) -> Vectors:
        """The stored (normalised, if so built) vectors of ``ids`` (default: all)."""
        if ids is None:
            return Vectors(self._columns.ids.copy(), self._values.copy())
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return Vectors(ids, self._values[self._columns.positions(ids)])

    # -- searching ------------------------------------------------------------------------
    def _search(self, queries, n, exclude, filter) -> tuple[bool, list[Hits]]:
        n = check_n(n)
        single, q = prepared_queries(queries, self.dim, self._normalize)
        excludes = [self._columns.of(e) for e in per_query(exclude, len(q))]
        allowed = allowed_ids(filter, self.metadata)
        cols, vals = exact_top(self._values, q, n, excludes if any(len(e) for e in excludes) else None,
                               None if allowed is None else self._columns.of(allowed))
        ids = self._columns.ids
        return single, [hits_from(ids, c, v) for c, v in zip(cols, vals)]
