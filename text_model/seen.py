"""`SeenItems`: every movie each user has rated, as CSR arrays (``seen.npz``); numpy only."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import ArtifactError, UnknownUserError


@dataclass(frozen=True)
class SeenItems:
    user_ids: np.ndarray   # int64 (u,), sorted
    indptr: np.ndarray     # int64 (u + 1,)
    movie_ids: np.ndarray  # int64 (nnz,)

    @classmethod
    def from_ratings(cls, ratings) -> "SeenItems":
        users = ratings["user_id"].to_numpy(np.int64)
        movies = ratings["movie_id"].to_numpy(np.int64)
        order = np.lexsort((movies, users))
        users, movies = users[order], movies[order]
        user_ids, counts = np.unique(users, return_counts=True)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(user_ids, indptr, movies)

    def __contains__(self, user_id) -> bool:
        k = np.searchsorted(self.user_ids, int(user_id))
        return bool(k < len(self.user_ids) and self.user_ids[k] == int(user_id))

    def of(self, user_id: int) -> np.ndarray:
        """Movie ids the user has rated (empty for a known user with none); raises for unknown."""
        k = int(np.searchsorted(self.user_ids, int(user_id)))
        if k >= len(self.user_ids) or self.user_ids[k] != int(user_id):
            raise UnknownUserError(f"user {int(user_id)} has no ratings in this model's dataset")
        return self.movie_ids[self.indptr[k]: self.indptr[k + 1]]

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, user_ids=self.user_ids, indptr=self.indptr, movie_ids=self.movie_ids)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SeenItems":
        path = Path(path)
        if not path.exists():
            raise ArtifactError(f"{path}: missing; train a model with `posterec train`")
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls(d["user_ids"].astype(np.int64), d["indptr"].astype(np.int64), d["movie_ids"].astype(np.int64))
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: not a valid seen-items file ({exc})") from None
