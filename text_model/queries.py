"""The three queries over vectors, numpy only (no TensorFlow on this path).

Plain functions over `catalog.Vectors` that return `catalog.Hits` (best first), all ranking
through `catalog.top_n`, the project's one brute-force top-N kernel.
"""
from __future__ import annotations

import numpy as np

from catalog import Hits, UnknownMovieError, UnknownUserError, Vectors, hits_from, top_n


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return int(n)


def _row(vectors: Vectors, id_: int, error) -> int:
    if id_ not in vectors:
        raise error
    return int(vectors.rows_of([id_])[0])


def _movie_row(vectors: Vectors, movie_id: int) -> int:
    return _row(vectors, movie_id, UnknownMovieError(
        f"movie {movie_id} is not known to the model; see `posterec stats` for the ids"))


def _top(scores: np.ndarray, ids: np.ndarray, n: int, exclude_ids=()) -> Hits:
    mask = np.isin(ids, np.asarray(exclude_ids, dtype=np.int64)) if len(exclude_ids) else None
    cols, vals = top_n(scores, n, mask)
    return hits_from(ids, cols, vals)


def similar(movie_vectors: Vectors, movie_id: int, n: int = 10) -> Hits:
    """The ``n`` movies whose vectors have the highest cosine with ``movie_id``'s; never itself."""
    n = _check_n(n)
    row = _movie_row(movie_vectors, movie_id)
    v = movie_vectors.values.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    norms[norms == 0] = 1.0
    cos = (v @ v[row]) / (norms * norms[row])
    return _top(cos, movie_vectors.ids, n, exclude_ids=[movie_id])


def recommend(user_vectors: Vectors, movie_vectors: Vectors, user_id: int, n: int = 10, seen=()) -> Hits:
    """The ``n`` movies with the highest ``dot(user, movie)``, never one in ``seen``."""
    n = _check_n(n)
    row = _row(user_vectors, user_id, UnknownUserError(
        f"user {user_id} is not known to the model ({len(user_vectors)} users)"))
    u = user_vectors.values[row].astype(np.float64)
    return _top(movie_vectors.values.astype(np.float64) @ u, movie_vectors.ids, n, exclude_ids=seen)


def also_liked(user_vectors: Vectors, movie_vectors: Vectors, movie_id: int, n: int = 10,
               n_users: int = 50, ranking_users: Vectors | None = None,
               ranking_movies: Vectors | None = None) -> Hits:
    """Movies that the users who score ``movie_id`` highest like best, excluding ``movie_id``.

    The ``n_users`` users with the highest predicted rating of the movie are found; each other
    movie scores the mean of those users' scores for it (ranking vectors if given, so that the
    favourites are ranked like ``recommend``).
    """
    n = _check_n(n)
    row = _movie_row(movie_vectors, movie_id)
    users = user_vectors.values.astype(np.float64)
    fans, _ = top_n(users @ movie_vectors.values[row].astype(np.float64), min(max(1, n_users), len(users)))
    if ranking_users is not None and ranking_movies is not None:
        fan_values = ranking_users.subset(user_vectors.ids[fans]).values.astype(np.float64)
        ids, mv = ranking_movies.ids, ranking_movies.values.astype(np.float64)
    else:
        fan_values, ids, mv = users[fans], movie_vectors.ids, movie_vectors.values.astype(np.float64)
    return _top((mv @ fan_values.T).mean(axis=1), ids, n, exclude_ids=[movie_id])
