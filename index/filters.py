"""Query filters: which movies a search may return (genre, year range), from a small metadata table.

The metadata is not saved with the index: callers derive it from the movies (`MovieMetadata.from_movies`)
and pass it at build or load time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class MovieFilter:
    """Keep only movies with at least one of ``genres`` and a year in ``[year_min, year_max]``.

    ``None`` means "no constraint". A movie without metadata (or without a year, when a year
    bound is set) does not pass a constraint it cannot be checked against.
    """

    genres: tuple[str, ...] | None = None
    year_min: int | None = None
    year_max: int | None = None

    def __post_init__(self) -> None:
        if self.genres is not None:
            genres = (self.genres,) if isinstance(self.genres, str) else tuple(self.genres)
            if not genres:
                raise ValueError("MovieFilter.genres: give at least one genre, or None for any")
            object.__setattr__(self, "genres", genres)
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError(f"MovieFilter: year_min {self.year_min} is after year_max {self.year_max}")

    @property
    def is_empty(self) -> bool:
        return self.genres is None and self.year_min is None and self.year_max is None


@dataclass(frozen=True)
class MovieMetadata:
    """Genres and year per movie id, just what the filters need.

    ``years`` is float64 with NaN for an unknown year.
    """

    ids: np.ndarray
    genres: tuple[tuple[str, ...], ...]
    years: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        years = np.asarray(self.years, dtype=np.float64).reshape(-1)
        if not (len(ids) == len(self.genres) == len(years)):
            raise ValueError(f"MovieMetadata: {len(ids)} ids, {len(self.genres)} genre tuples, {len(years)} years")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "years", years)
        object.__setattr__(self, "genres", tuple(tuple(str(g) for g in gs) for gs in self.genres))

    @classmethod
    def from_mapping(cls, mapping: Mapping[int, tuple[Iterable[str], int | None]]) -> "MovieMetadata":
        """From ``{movie_id: (genres, year_or_None)}``."""
        ids = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        genres = tuple(tuple(mapping[int(i)][0]) for i in ids)
        years = np.array([np.nan if mapping[int(i)][1] is None else float(mapping[int(i)][1]) for i in ids])
        return cls(ids, genres, years)

    @classmethod
    def from_movies(cls, movies) -> "MovieMetadata":
        """From a catalogue movies frame (columns movie_id, genres, year; year may be <NA>)."""
        years = np.array([np.nan if _missing(y) else float(y) for y in movies["year"]], dtype=np.float64)
        return cls(movies["movie_id"].to_numpy(), tuple(tuple(g) for g in movies["genres"]), years)

    def allowed_ids(self, spec: MovieFilter) -> np.ndarray:
        """The sorted movie ids that pass ``spec``."""
        keep = np.ones(len(self.ids), dtype=bool)
        if spec.genres is not None:
            wanted = set(spec.genres)
            keep &= np.fromiter((bool(wanted.intersection(g)) for g in self.genres), dtype=bool, count=len(self.ids))
        with np.errstate(invalid="ignore"):
            if spec.year_min is not None:
                keep &= self.years >= spec.year_min
            if spec.year_max is not None:
                keep &= self.years <= spec.year_max
        return np.sort(self.ids[keep])


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except TypeError:  # pandas.NA
        return True
