"""`TopK`: the one top-N search interface, with the checks every implementation shares.

Two implementations: `index.BruteForce` (numpy, exact) and `index.MovieIndex` (FAISS: exact
``flat``, or approximate ``hnsw``/``ivf``). Ids are int64 and generic: movie ids for movie
vectors, user ids for user vectors.

Result shape (one rule, no flags):

- ``search(query)`` with a ``(dim,)`` query returns one `catalog.Hits`, best first;
- ``search(queries)`` with ``(q, dim)`` queries returns a ``list`` of `Hits`, one per query;
- ``search_each(queries)`` always returns the list (a ``(dim,)`` query gives a list of one).

Each `Hits` holds at most ``n`` hits and fewer only when fewer ids pass the exclusions and the
filter; an id is never -1. ``exclude`` is either one array of ids shared by every query, or one
array per query (a sequence of ``q`` arrays, or a 2-D array of ``q`` rows). ``filter`` is a
`MovieFilter`, checked against the metadata given at build or load.
"""
from __future__ import annotations

from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

from catalog import Hits, Vectors

from .filters import MovieFilter, MovieMetadata

Exclude = Union[None, np.ndarray, Sequence[int], Sequence[np.ndarray]]


@runtime_checkable
class TopK(Protocol):
    """Top-N search over id-keyed vectors (inner product; cosine when ``normalize``)."""

    @property
    def movie_ids(self) -> np.ndarray: ...  # int64 (n,), every indexed id, in column order

    @property
    def dim(self) -> int: ...

    @property
    def normalize(self) -> bool: ...

    def __len__(self) -> int: ...

    def __contains__(self, id_: object) -> bool: ...

    def vectors(self, ids=None) -> Vectors: ...

    def search(self, queries, n: int = 10, exclude: Exclude = None,
               filter: MovieFilter | None = None) -> Hits | list[Hits]: ...

    def search_each(self, queries, n: int = 10, exclude: Exclude = None,
                    filter: MovieFilter | None = None) -> list[Hits]: ...


def normalized(values: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), float32, a fresh C-contiguous array."""
    out = np.array(values, dtype=np.float32, order="C", copy=True)
    if out.size:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
    return out


def prepared_queries(queries, dim: int, normalize: bool) -> tuple[bool, np.ndarray]:
    """``(single, q)``: the queries as float32 ``(q, dim)``, normalised when asked."""
    q = np.asarray(queries, dtype=np.float32)
    single = q.ndim == 1
    q = q.reshape(1, -1) if single else q
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must be ({dim},) or (q, {dim}), got shape {np.shape(queries)}")
    if not np.isfinite(q).all():
        raise ValueError("queries contain NaN or infinite values")
    return single, normalized(q) if normalize else np.ascontiguousarray(q)


def prepared_values(vectors: Vectors, normalize: bool, who: str) -> np.ndarray:
    if len(vectors) == 0:
        raise ValueError(f"{who}: no vectors to index")
    if not np.isfinite(vectors.values).all():
        bad = vectors.ids[~np.isfinite(vectors.values).all(axis=1)]
        raise ValueError(f"{who}: the vectors of {len(bad)} ids hold NaN or inf (e.g. id {int(bad[0])})")
    return normalized(vectors.values) if normalize else np.array(vectors.values, np.float32, order="C")


def check_n(n) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return int(n)


def per_query(exclude: Exclude, q: int) -> list[np.ndarray]:
    """``exclude`` as one sorted unique int64 id array per query."""
    if exclude is None:
        return [np.zeros(0, np.int64)] * q
    if isinstance(exclude, np.ndarray) and exclude.dtype != object:
        if exclude.ndim <= 1:
            return [np.unique(exclude.astype(np.int64).reshape(-1))] * q
        if exclude.ndim == 2 and len(exclude) == q:
            return [np.unique(row.astype(np.int64)) for row in exclude]
        raise ValueError(f"exclude: a {exclude.ndim}-D array of shape {exclude.shape} for {q} queries; "
                         f"give one id array for all, or one row per query")
    items = list(exclude)
    if all(np.isscalar(x) for x in items):
        return [np.unique(np.asarray(items, dtype=np.int64))] * q
    if len(items) != q:
        raise ValueError(f"exclude: got {len(items)} per-query id lists for {q} queries")
    return [np.unique(np.asarray(x, dtype=np.int64).reshape(-1)) for x in items]


def allowed_ids(spec: MovieFilter | None, metadata: MovieMetadata | None) -> np.ndarray | None:
    """The sorted ids a filter lets through, or None for no filter."""
    if spec is None or spec.is_empty:
        return None
    if metadata is None:
        raise ValueError("a genre/year filter needs movie metadata: pass metadata= when building or loading the index")
    return metadata.allowed_ids(spec)


class Searching:
    """`search` and `search_each` over one ``_search(queries, n, exclude, filter) -> (single, hits)``
    that each implementation writes; the shapes of `TopK` are kept here, once."""

    def search(self, queries, n: int = 10, exclude: Exclude = None,
               filter: MovieFilter | None = None) -> Hits | list[Hits]:
        """The ``n`` best ids per query, best first; see `index.topk` for shapes and arguments."""
        single, hits = self._search(queries, n, exclude, filter)
        return hits[0] if single else hits

    def search_each(self, queries, n: int = 10, exclude: Exclude = None,
                    filter: MovieFilter | None = None) -> list[Hits]:
        """Like `search`, always one `Hits` per query."""
        return self._search(queries, n, exclude, filter)[1]

    def _search(self, queries, n, exclude, filter) -> tuple[bool, list[Hits]]:
        raise NotImplementedError
