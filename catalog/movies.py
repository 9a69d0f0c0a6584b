"""The movie lists of the three MovieLens formats, read with the standard library alone.

`read_movies(root, fmt, name)` gives a `MovieList` (ids, titles, years, genres; sorted by id)
without importing pandas, so a query command that only needs titles starts fast;
`catalog.loaders` builds its movies frame from the same rows. Every malformed line raises
`DatasetError` naming the file, the line and what was wrong.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .errors import DatasetError

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]
_NO_GENRE = {"(no genres listed)", "unknown", ""}
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$")

# (movie_id, title, year or None, genres)
Row = tuple[int, str, "int | None", tuple[str, ...]]


@dataclass(frozen=True)
class MovieList:
    """A catalogue's movies, sorted by id: what queries need of it (no pandas)."""

    movie_ids: tuple[int, ...]
    titles: tuple[str, ...]
    years: tuple[int | None, ...]
    genres: tuple[tuple[str, ...], ...]

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> "MovieList":
        """From ``(movie_id, title, year, genres)`` rows; `DatasetError` for an id given twice."""
        rows = sorted(((int(m), str(t), None if y is None else int(y), tuple(str(g) for g in gs))
                       for m, t, y, gs in rows), key=lambda r: r[0])
        for a, b in zip(rows, rows[1:]):
            if a[0] == b[0]:
                raise DatasetError(f"movie id {a[0]} appears twice in the movie list")
        if not rows:
            return cls((), (), (), ())
        ids, titles, years, genres = zip(*rows)
        return cls(ids, titles, years, genres)

    def __len__(self) -> int:
        return len(self.movie_ids)

    def rows(self) -> Iterator[Row]:
        return zip(self.movie_ids, self.titles, self.years, self.genres)

    def plus(self, rows: Iterable[Row]) -> "MovieList":
        """This list and ``rows`` (movies added to a model version), sorted by id."""
        rows = list(rows)
        return self if not rows else MovieList.from_rows([*self.rows(), *rows])


def split_title(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> ``(raw, None)``."""
    raw = raw.strip()
    m = _TITLE_YEAR.match(raw)
    if not m:
        return raw, None
    return m.group("title"), int(m.group("year"))


def require(path: Path, dataset: str) -> Path:
    if not path.exists():
        raise DatasetError(
            f"{path}: missing; fetch it with `posterec download --dataset {dataset}` "
            f"(or --source DIR_OR_ZIP for a local copy)"
        )
    return path


def whole(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an integer") from None


def genres_of(names) -> tuple[str, ...]:
    return tuple(g for g in names if g not in _NO_GENRE)


def read_lines(path: Path, encoding: str):
    with open(path, encoding=encoding, newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def rows_ml100k(root: Path, name: str = "ml-100k") -> list[Row]:
    genre_names = list(ML100K_GENRES)
    genre_file = root / "u.genre"
    if genre_file.exists():
        listed = [line.split("|")[0] for _, line in read_lines(genre_file, "latin-1")]
        if listed:
            genre_names = listed
    movies = []
    path = require(root / "u.item", name)
    for lineno, line in read_lines(path, "latin-1"):
        fields = line.split("|")
        want = 5 + len(genre_names)
        if len(fields) != want:
            raise DatasetError(f"{path.name} line {lineno}: expected {want} fields separated by '|', got {len(fields)}")
        try:
            movie_id = whole(fields[0], "movie id")
            try:
                flags = [int(f) for f in fields[5:]]
            except ValueError:  # say which
                flags = [whole(f, "genre flag") for f in fields[5:]]
        except ValueError as exc:
            raise DatasetError(f"{path.name} line {lineno}: {exc}") from None
        title, year = split_title(fields[1])
        if year is None and fields[2][-4:].isdigit():
            year = int(fields[2][-4:])
        movies.append((movie_id, title, year, tuple(g for g, f in zip(genre_names, flags) if f and g not in _NO_GENRE)))
    return movies


def rows_ml1m(root: Path, name: str = "ml-1m") -> list[Row]:
    movies = []
    path = require(root / "movies.dat", name)
    for lineno, line in read_lines(path, "latin-1"):
        fields = line.split("::")
        if len(fields) != 3:
            raise DatasetError(f"{path.name} line {lineno}: expected 3 fields separated by '::', got {len(fields)}")
        movies.append(_row(path, lineno, fields))
    return movies


def _row(path: Path, lineno: int, fields: list[str]) -> Row:
    """(id, title, year, genres) of a movie line's three fields: ``id``, ``Title (Year)``, ``A|B``."""
    try:
        movie_id = whole(fields[0], "movie id")
    except ValueError as exc:
        raise DatasetError(f"{path.name} line {lineno}: {exc}") from None
    title, year = split_title(fields[1])
    return (movie_id, title, year, genres_of(fields[2].split("|")))


def rows_csv(root: Path, name: str) -> list[Row]:
    movies = []
    path = require(root / "movies.csv", name)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != ["movieId", "title", "genres"]:
            raise DatasetError(f"{path.name} line 1: expected header movieId,title,genres, got {','.join(header or [])}")
        for fields in reader:
            lineno = reader.line_num
            if not fields:
                continue
            if len(fields) != 3:
                raise DatasetError(f"{path.name} line {lineno}: expected 3 comma-separated fields, got {len(fields)}")
            movies.append(_row(path, lineno, fields))
    return movies


ROW_READERS = {"ml100k": rows_ml100k, "ml1m": rows_ml1m, "csv": rows_csv}


def read_movies(root: Path, fmt: str, name: str) -> MovieList:
    """The movie list of the dataset folder ``root`` in format ``fmt`` (no ratings, no pandas)."""
    return MovieList.from_rows(ROW_READERS[fmt](Path(root), name))
