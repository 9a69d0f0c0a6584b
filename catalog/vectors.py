"""`Vectors`: the one currency between stages, rows of float32 keyed by int64 ids."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .arrays import load_npz, save_npz
from .errors import ArtifactError, UnknownMovieError


@dataclass(frozen=True)
class Vectors:
    """Vectors keyed by id (movie ids for movie vectors, user ids for user vectors).

    ``ids`` is int64 (n,), unique; ``values`` is float32 (n, dim).
    """

    ids: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        ids = np.ascontiguousarray(self.ids, dtype=np.int64).reshape(-1)
        values = np.ascontiguousarray(self.values, dtype=np.float32)
        if values.ndim != 2:
            raise ValueError(f"Vectors.values must be 2-D (n, dim), got shape {values.shape}")
        if values.shape[0] != ids.shape[0]:
            raise ValueError(f"Vectors: {ids.shape[0]} ids but {values.shape[0]} rows of values")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("Vectors: ids must be unique")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_row", None)

    @property
    def movie_ids(self) -> np.ndarray:
        return self.ids

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __contains__(self, id_: object) -> bool:
        return int(id_) in self._rows()  # type: ignore[arg-type]

    def _rows(self) -> dict[int, int]:
        if self._row is None:
            object.__setattr__(self, "_row", {int(i): r for r, i in enumerate(self.ids)})
        return self._row  # type: ignore[return-value]

    def rows_of(self, ids) -> np.ndarray:
        """Array positions of ``ids``; raises UnknownMovieError for an id not held."""
        rows = self._rows()
        out = np.empty(len(ids), dtype=np.int64)
        for k, i in enumerate(ids):
            try:
                out[k] = rows[int(i)]
            except KeyError:
                raise UnknownMovieError(f"id {int(i)} has no vector") from None
        return out

    def get(self, id_: int) -> np.ndarray:
        return self.values[self.rows_of([id_])[0]]

    def subset(self, ids) -> "Vectors":
        ids = np.asarray(ids, dtype=np.int64)
        return Vectors(ids, self.values[self.rows_of(ids)])

    def save(self, path: str | os.PathLike) -> None:
        """Write as .npz (no pickles), atomically."""
        save_npz(path, ids=self.ids, values=self.values)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vectors":
        data = load_npz(path, ("ids", "values"), "vectors file")
        try:
            return cls(data["ids"], data["values"])
        except ValueError as exc:
            raise ArtifactError(f"{path}: not a valid vectors file ({exc})") from None
