"""`SeenItems`: the movies each user has rated (``seen.npz``: CSR ``user_ids``, ``indptr``, ``movie_ids``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import ArtifactError


@dataclass(frozen=True)
class SeenItems:
    user_ids: np.ndarray  # int64 (u,)
    indptr: np.ndarray    # int64 (u + 1,)
    movie_ids: np.ndarray  # int64 (indptr[-1],)

    def __post_init__(self) -> None:
        user_ids = np.asarray(self.user_ids, dtype=np.int64).reshape(-1)
        indptr = np.asarray(self.indptr, dtype=np.int64).reshape(-1)
        movie_ids = np.asarray(self.movie_ids, dtype=np.int64).reshape(-1)
        if len(indptr) != len(user_ids) + 1 or indptr[0] != 0 or indptr[-1] != len(movie_ids) or np.any(np.diff(indptr) < 0):
            raise ValueError(f"seen items: indptr of length {len(indptr)} does not fit {len(user_ids)} users "
                             f"and {len(movie_ids)} movie ids")
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "movie_ids", movie_ids)
        object.__setattr__(self, "_row", {int(u): r for r, u in enumerate(user_ids)})

    @classmethod
    def from_pairs(cls, user_ids, movie_ids) -> "SeenItems":
        users = np.asarray(user_ids, dtype=np.int64)
        movies = np.asarray(movie_ids, dtype=np.int64)
        order = np.lexsort((movies, users))
        users, movies = users[order], movies[order]
        uniq, counts = np.unique(users, return_counts=True)
        return cls(uniq, np.concatenate([[0], np.cumsum(counts)]), movies)

    def of(self, user_id: int) -> np.ndarray:
        """Movie ids rated by ``user_id`` (empty for an unknown user)."""
        row = self._row.get(int(user_id))  # type: ignore[attr-defined]
        if row is None:
            return np.zeros(0, np.int64)
        return self.movie_ids[self.indptr[row]:self.indptr[row + 1]]

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SeenItems":
        path = Path(path)
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run `posterec train` to write it")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["user_ids"], data["indptr"], data["movie_ids"])
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: not a valid seen-items file ({exc})") from None
