"""The three queries over saved vectors, numpy only (no TensorFlow on this path).

Each query is a plain function over `Vectors` that returns `Hits` (movie ids and scores, best
first), so a FAISS index can replace the brute-force inner products without touching callers.
`QueryModel.load(version_dir)` reads the ``.npz`` files a ``train`` run wrote.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from catalog import UnknownMovieError, UnknownUserError, Vectors

from catalog import SeenItems

COLLAB, USERS = "collab.npz", "users.npz"
SCORING_USERS, SCORING_MOVIES = "scoring_users.npz", "scoring_movies.npz"
RANKING_USERS, RANKING_MOVIES = "ranking_users.npz", "ranking_movies.npz"
SEEN = "seen.npz"


class Hits(NamedTuple):
    movie_ids: np.ndarray  # int64, best first
    scores: np.ndarray     # float32


def _top(scores: np.ndarray, ids: np.ndarray, n: int, exclude_ids=()) -> Hits:
    scores = scores.astype(np.float64)
    if len(exclude_ids):
        scores = np.where(np.isin(ids, np.asarray(exclude_ids, dtype=np.int64)), -np.inf, scores)
    n = min(int(n), int(np.isfinite(scores).sum()))
    if n <= 0:
        return Hits(np.empty(0, np.int64), np.empty(0, np.float32))
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.lexsort((ids[part], -scores[part]))]
    return Hits(ids[order].astype(np.int64), scores[order].astype(np.float32))


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return int(n)


def _movie_row(vectors: Vectors, movie_id: int) -> int:
    if movie_id not in vectors:
        raise UnknownMovieError(f"movie {movie_id} is not known to the model; see `posterec stats` for the ids")
    return int(vectors.rows_of([movie_id])[0])


def _user_row(vectors: Vectors, user_id: int) -> int:
    if user_id not in vectors:
        raise UnknownUserError(f"user {user_id} is not known to the model ({len(vectors)} users)")
    return int(vectors.rows_of([user_id])[0])


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
    u = user_vectors.values[_user_row(user_vectors, user_id)].astype(np.float64)
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
    fans = np.argsort(-(users @ movie_vectors.values[row].astype(np.float64)), kind="stable")[: max(1, n_users)]
    if ranking_users is not None and ranking_movies is not None:
        fan_values = ranking_users.subset(user_vectors.ids[fans]).values.astype(np.float64)
        ids, mv = ranking_movies.ids, ranking_movies.values.astype(np.float64)
    else:
        fan_values, ids, mv = users[fans], movie_vectors.ids, movie_vectors.values.astype(np.float64)
    return _top((mv @ fan_values.T).mean(axis=1), ids, n, exclude_ids=[movie_id])


@dataclass(frozen=True)
class QueryModel:
    """The saved vectors of one model version, ready for the three queries."""

    movie_vectors: Vectors    # collab.npz
    user_vectors: Vectors     # users.npz
    scoring_users: Vectors
    scoring_movies: Vectors
    ranking_users: Vectors
    ranking_movies: Vectors
    seen: SeenItems

    @classmethod
    def load(cls, folder: str | Path) -> "QueryModel":
        folder = Path(folder)
        ranking_u = folder / RANKING_USERS
        su, sm = Vectors.load(folder / SCORING_USERS), Vectors.load(folder / SCORING_MOVIES)
        ru = Vectors.load(ranking_u) if ranking_u.exists() else su
        rm = Vectors.load(folder / RANKING_MOVIES) if ranking_u.exists() else sm
        return cls(Vectors.load(folder / COLLAB), Vectors.load(folder / USERS), su, sm, ru, rm,
                   SeenItems.load(folder / SEEN))

    def similar(self, movie_id: int, n: int = 10) -> Hits:
        return similar(self.movie_vectors, movie_id, n)

    def recommend(self, user_id: int, n: int = 10) -> Hits:
        _user_row(self.ranking_users, user_id)
        seen = self.seen.of(user_id) if user_id in self.seen else np.empty(0, np.int64)
        return recommend(self.ranking_users, self.ranking_movies, user_id, n, seen=seen)

    def also_liked(self, movie_id: int, n: int = 10, n_users: int = 50) -> Hits:
        return also_liked(self.scoring_users, self.scoring_movies, movie_id, n, n_users,
                          self.ranking_users, self.ranking_movies)
