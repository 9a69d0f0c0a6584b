"""`SeenItems`: the movies each user has rated, as CSR arrays (``seen.npz``); numpy only."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .arrays import load_npz, save_npz
from .errors import ArtifactError


@dataclass(frozen=True)
class SeenItems:
    user_ids: np.ndarray   # int64 (u,), sorted, unique
    indptr: np.ndarray     # int64 (u + 1,)
    movie_ids: np.ndarray  # int64 (indptr[-1],)

    def __post_init__(self) -> None:
        user_ids = np.asarray(self.user_ids, dtype=np.int64).reshape(-1)
        indptr = np.asarray(self.indptr, dtype=np.int64).reshape(-1)
        movie_ids = np.asarray(self.movie_ids, dtype=np.int64).reshape(-1)
        if (len(indptr) != len(user_ids) + 1 or indptr[0] != 0 or indptr[-1] != len(movie_ids)
                or np.any(np.diff(indptr) < 0) or np.any(np.diff(user_ids) <= 0)):
            raise ValueError(f"seen items: indptr of length {len(indptr)} does not fit {len(user_ids)} sorted "
                             f"unique users and {len(movie_ids)} movie ids")
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "movie_ids", movie_ids)

    @classmethod
    def from_pairs(cls, user_ids, movie_ids) -> "SeenItems":
        users = np.asarray(user_ids, dtype=np.int64)
        movies = np.asarray(movie_ids, dtype=np.int64)
        order = np.lexsort((movies, users))
        users, movies = users[order], movies[order]
        uniq, counts = np.unique(users, return_counts=True)
        return cls(uniq, np.concatenate([[0], np.cumsum(counts)]), movies)

    @classmethod
    def from_ratings(cls, ratings) -> "SeenItems":
        return cls.from_pairs(ratings["user_id"].to_numpy(), ratings["movie_id"].to_numpy())

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

    def save(self, path: str | os.PathLike) -> None:
        save_npz(path, user_ids=self.user_ids, indptr=self.indptr, movie_ids=self.movie_ids)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SeenItems":
        data = load_npz(path, ("user_ids", "indptr", "movie_ids"), "seen-items file",
                        "train a model with `posterec train`")
        try:
            return cls(data["user_ids"], data["indptr"], data["movie_ids"])
        except ValueError as exc:
            raise ArtifactError(f"{path}: not a valid seen-items file ({exc})") from None
