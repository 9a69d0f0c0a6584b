"""`Interactions`: who rated what, and how, as CSR arrays keyed by user id (numpy only).

The one record of a model's *training* ratings: ``recommend`` never returns a movie in it,
"because you liked" reads the liked movies from it, and popularity counts come from it. A model
trained on a split knows only its training part.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interactions:
    user_ids: np.ndarray   # int64 (u,), sorted, unique
    indptr: np.ndarray     # int64 (u + 1,)
    movie_ids: np.ndarray  # int64 (indptr[-1],), sorted within each user
    ratings: np.ndarray    # float32 (indptr[-1],)
    # when each rating was made (int64, any increasing clock: unix seconds in MovieLens), or None.
    # Carried only where a model reads the order of a user's ratings (EASE's recency weights); the
    # saved record of a model's training ratings (`to_arrays`) never holds it.
    times: np.ndarray | None = None

    def __post_init__(self) -> None:
        user_ids = np.asarray(self.user_ids, dtype=np.int64).reshape(-1)
        indptr = np.asarray(self.indptr, dtype=np.int64).reshape(-1)
        movie_ids = np.asarray(self.movie_ids, dtype=np.int64).reshape(-1)
        ratings = np.asarray(self.ratings, dtype=np.float32).reshape(-1)
        if (len(indptr) != len(user_ids) + 1 or indptr[0] != 0 or indptr[-1] != len(movie_ids)
                or len(ratings) != len(movie_ids) or np.any(np.diff(indptr) < 0)
                or np.any(np.diff(user_ids) <= 0)):
            raise ValueError(f"interactions: indptr of length {len(indptr)}, {len(movie_ids)} movie ids and "
                             f"{len(ratings)} ratings do not fit {len(user_ids)} sorted unique users")
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "movie_ids", movie_ids)
        object.__setattr__(self, "ratings", ratings)
        if self.times is not None:
            times = np.asarray(self.times, dtype=np.int64).reshape(-1)
            if len(times) != len(movie_ids):
                raise ValueError(f"interactions: {len(times)} times do not fit {len(movie_ids)} ratings")
            object.__setattr__(self, "times", times)

    @classmethod
    def from_pairs(cls, user_ids, movie_ids, ratings=None, times=None) -> "Interactions":
        users = np.asarray(user_ids, dtype=np.int64)
        movies = np.asarray(movie_ids, dtype=np.int64)
        r = np.ones(len(users), np.float32) if ratings is None else np.asarray(ratings, dtype=np.float32)
        order = np.lexsort((movies, users))
        users, movies, r = users[order], movies[order], r[order]
        t = None if times is None else np.asarray(times, dtype=np.int64)[order]
        uniq, counts = np.unique(users, return_counts=True)
        return cls(uniq, np.concatenate([[0], np.cumsum(counts)]), movies, r, t)

    @classmethod
    def from_ratings(cls, ratings) -> "Interactions":
        """From a ratings frame with columns user_id, movie_id, rating."""
        return cls.from_pairs(ratings["user_id"].to_numpy(), ratings["movie_id"].to_numpy(),
                              ratings["rating"].to_numpy())

    def ages(self) -> np.ndarray:
        """Each rating's place among its user's ratings counted from the latest (int64: 0 is the
        latest; equal times go to the larger movie id first), in the order of ``movie_ids``."""
        if self.times is None:
            raise ValueError("interactions: no times, so no order of a user's ratings")
        rows = np.repeat(np.arange(len(self.user_ids)), np.diff(self.indptr))
        order = np.lexsort((-self.movie_ids, -self.times, rows))   # per user, latest first
        ages = np.empty(len(order), np.int64)
        ages[order] = np.arange(len(order)) - self.indptr[rows[order]]
        return ages

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "indptr": self.indptr, "movie_ids": self.movie_ids,
                "ratings": self.ratings}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Interactions":
        return cls(arrays["user_ids"], arrays["indptr"], arrays["movie_ids"], arrays["ratings"])

    def _row(self, user_id) -> int | None:
        k = int(np.searchsorted(self.user_ids, int(user_id)))
        return k if k < len(self.user_ids) and self.user_ids[k] == int(user_id) else None

    def __contains__(self, user_id) -> bool:
        return self._row(user_id) is not None

    def __len__(self) -> int:
        return len(self.user_ids)

    def of(self, user_id: int) -> np.ndarray:
        """Movie ids rated by ``user_id`` (empty for an unknown user)."""
        k = self._row(user_id)
        if k is None:
            return np.zeros(0, np.int64)
        return self.movie_ids[self.indptr[k]:self.indptr[k + 1]]

    def ratings_of(self, user_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, ratings) of ``user_id`` (empty for an unknown user)."""
        k = self._row(user_id)
        if k is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        s = slice(self.indptr[k], self.indptr[k + 1])
        return self.movie_ids[s], self.ratings[s]

    def movie_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, number of ratings), for popularity."""
        return np.unique(self.movie_ids, return_counts=True)

    def user_counts(self) -> np.ndarray:
        return np.diff(self.indptr)
