"""Nearest posters by cosine: a numpy brute force over `Vectors` (no TensorFlow)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from catalog import UnknownMovieError, Vectors


class Hits(NamedTuple):
    """Movie ids with their cosine scores, best first."""

    movie_ids: np.ndarray  # int64 (k,)
    scores: np.ndarray     # float32 (k,)


def nearest_posters(vectors: Vectors, movie_id: int, n: int = 10) -> Hits:
    """The ``n`` posters most similar to ``movie_id``'s by cosine, never the query itself.

    Ties are broken by the smaller movie id. Raises UnknownMovieError when ``movie_id`` has no
    vector.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if movie_id not in vectors:
        raise UnknownMovieError(f"movie {movie_id} has no poster embedding")
    values = vectors.values
    norms = np.linalg.norm(values, axis=1)
    norms[norms == 0] = 1.0
    unit = values / norms[:, None]
    query = unit[vectors.rows_of([movie_id])[0]]
    scores = unit @ query
    keep = vectors.ids != int(movie_id)
    ids, scores = vectors.ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:n]
    return Hits(ids[order], scores[order].astype(np.float32))
