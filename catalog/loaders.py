"""Parse the three MovieLens on-disk formats into one in-memory form.

- ml-1m ``.dat``: ``::``-separated, latin-1;
- ml-100k: ``u.data`` tab-separated, ``u.item``/``u.user`` pipe-separated, latin-1;
- ml-latest, ml-25m, ml-32m: CSV with a header, quoted titles, UTF-8, ``links.csv``.

Every malformed line raises `DatasetError` naming the file, the line and what was wrong; so
does content that parses but is wrong (`check_ratings`): no ratings at all, the same (user,
movie) pair twice, a rating off the release's scale.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import DATASETS, HALF_STARS, WHOLE_STARS
from .errors import DatasetError
from .movies import ML100K_GENRES, split_title  # noqa: F401 (their home before catalog.movies)
from .movies import read_lines as _read_lines, require as _require, rows_csv, rows_ml1m, rows_ml100k, whole as _int

RATING_DTYPES = {"user_id": "int32", "movie_id": "int32", "rating": "float32", "timestamp": "int64"}

# ml-1m README: occupation codes.
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]


@dataclass
class Dataset:
    """One MovieLens release in memory.

    ratings: user_id int32, movie_id int32, rating float32, timestamp int64.
    movies: movie_id int32, title (year removed), year (nullable Int16), genres (tuple of str),
            imdb_id and tmdb_id (nullable Int64, where known).
    users: user_id int32 and, where the dataset has them, gender, age, occupation, zip.
    """

    name: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame
    path: Path | None = None

    @property
    def has_demographics(self) -> bool:
        return {"gender", "age", "occupation"} <= set(self.users.columns)

    @property
    def genres(self) -> list[str]:
        return sorted({g for gs in self.movies["genres"] for g in gs})

    def movie(self, movie_id: int) -> pd.Series:
        from .errors import UnknownMovieError

        hit = self.movies.loc[self.movies["movie_id"] == int(movie_id)]
        if hit.empty:
            raise UnknownMovieError(f"movie {movie_id} is not in {self.name}")
        return hit.iloc[0]


# -- small helpers -------------------------------------------------------------------------
def _movies_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["movie_id", "title", "year", "genres"])
    df["movie_id"] = df["movie_id"].astype("int32")
    df["year"] = pd.array(df["year"], dtype="Int16")
    df["imdb_id"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df["tmdb_id"] = pd.array([pd.NA] * len(df), dtype="Int64")
    if df["movie_id"].duplicated().any():
        dup = int(df.loc[df["movie_id"].duplicated(), "movie_id"].iloc[0])
        raise DatasetError(f"movie id {dup} appears twice in the movie list")
    return df.sort_values("movie_id", ignore_index=True)


# -- ratings: a fast vectorised path, and a line-by-line diagnosis when it fails -----------
def _diagnose_ratings(path: Path, sep: str, encoding: str, header: bool) -> str:
    """Find the first bad line of a ratings file and describe it."""
    sep_name = {"\t": "a tab", "::": "'::'", ",": "','"}.get(sep, repr(sep))
    seen_data = False
    with open(path, encoding=encoding, newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if header and lineno == 1:
                continue
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(sep)
            if len(fields) != 4:
                return f"{path.name} line {lineno}: expected 4 fields separated by {sep_name}, got {len(fields)}"
            u, m, r, t = fields
            for name, value in (("user id", u), ("movie id", m), ("timestamp", t)):
                if not value.strip().lstrip("-").isdigit():
                    return f"{path.name} line {lineno}: {name} {value!r} is not an integer"
            try:
                rating = float(r)
            except ValueError:
                return f"{path.name} line {lineno}: rating {r!r} is not a number"
            if not (0.0 < rating <= 5.0) or np.isnan(rating):
                return f"{path.name} line {lineno}: rating {r!r} is outside 0.5-5"
            seen_data = True
    if not seen_data:
        return _no_ratings(path, header)
    return f"{path.name}: could not be parsed"


def _no_ratings(path: Path, header: bool) -> str:
    return (f"{path.name} line {2 if header else 1}: no ratings (the file is empty"
            f"{' after its header' if header else ''}); use a complete copy of the release")


# -- content checks: vectorised, the line found only when something is wrong -----------------
FORMAT_SCALES = {"ml100k": WHOLE_STARS, "ml1m": WHOLE_STARS, "csv": HALF_STARS}


def rating_scale(name: str, fmt: str) -> tuple[float, float, float]:
    """(lowest, highest, step) of the ratings of release ``name`` (by format when unknown)."""
    spec = DATASETS.get(name)
    return spec.rating_scale if spec is not None else FORMAT_SCALES[fmt]


def _data_lines(path: Path, encoding: str, header: bool, rows) -> dict[int, int]:
    """Line numbers of the data rows ``rows`` (0-based, blank lines not counted)."""
    want, out, k = {int(r) for r in rows}, {}, -1
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if (header and lineno == 1) or not line.strip():
                continue
            k += 1
            if k in want:
                out[k] = lineno
                if len(out) == len(want):
                    break
    return out


def _scale_text(scale) -> str:
    lo, hi, step = scale
    return f"whole stars {lo:g}-{hi:g}" if step == 1 else f"steps of {step:g} from {lo:g} to {hi:g}"


def check_ratings(frame: pd.DataFrame, path: Path, scale, name: str, encoding: str = "latin-1",
                  header: bool = False) -> None:
    """Refuse, naming the file and line, ratings that parse but cannot be right: none at all,
    a (user, movie) pair twice, or a rating off ``scale`` = (lowest, highest, step).

    O(n) when the file is sorted by (user, movie), as the big releases are (0.3 s for 25M
    rows); otherwise one sort of an int64 key (about 2.5 s for 25M shuffled rows)."""
    n = len(frame)
    if n == 0:
        raise DatasetError(_no_ratings(path, header))
    lo, hi, step = scale
    r = frame["rating"].to_numpy()
    steps = r / np.float32(step)
    bad = ~((r >= lo) & (r <= hi) & (steps == np.round(steps)))
    if bad.any():
        k = int(np.argmax(bad))
        line = _data_lines(path, encoding, header, [k]).get(k, "?")
        raise DatasetError(f"{path.name} line {line}: rating {float(r[k]):g} is off {name}'s scale "
                           f"({_scale_text(scale)})")
    key = (frame["user_id"].to_numpy().astype(np.int64) << 32) | \
        frame["movie_id"].to_numpy().astype(np.int64) & 0xFFFFFFFF
    if n > 1 and not bool(np.all(key[1:] > key[:-1])):  # sorted and unique: the common case
        sk = np.sort(key)
        if bool(np.all(sk[1:] != sk[:-1])):
            return
        order = np.argsort(key, kind="stable")   # only now: which rows, to name their lines
        sk = key[order]
        same = np.flatnonzero(sk[1:] == sk[:-1])
        if len(same):
            later = order[same + 1]        # rows that repeat an earlier row's pair
            k = int(later.min())
            first = int(order[np.searchsorted(sk, key[k])])
            lines = _data_lines(path, encoding, header, [first, k])
            u, m = int(frame["user_id"].iat[k]), int(frame["movie_id"].iat[k])
            raise DatasetError(f"{path.name} line {lines.get(k, '?')}: user {u} rated movie {m} again "
                               f"(first on line {lines.get(first, '?')}); {name} has one rating per "
                               f"user and movie ({len(same)} such repeats in all)")


class _ByteRange(io.RawIOBase):
    """A read-only view of ``length`` bytes of an open binary file, from where it stands."""

    def __init__(self, fh, length: int):
        self._fh, self._left = fh, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        n = self._fh.readinto(memoryview(buffer)[: min(len(buffer), self._left)])
        self._left -= n
        return n


def _line_ranges(fh, size: int, part_bytes: int, header: bool) -> list[tuple[int, int]]:
    """Split a file into byte ranges of about ``part_bytes`` that start at line starts."""
    fh.seek(0)
    if header:
        fh.readline()
    start = fh.tell()
    parts = max(1, -(-(size - start) // part_bytes))
    bounds = [start]
    for k in range(1, parts):
        fh.seek(start + (size - start) * k // parts)
        fh.readline()
        bounds.append(max(fh.tell(), bounds[-1]))
    bounds.append(size)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def read_ratings(path: Path, sep: str, encoding: str = "latin-1", header: bool = False,
                 part_bytes: int = 80 << 20, *, scale: tuple[float, float, float] | None = None,
                 name: str = "the dataset") -> pd.DataFrame:
    """Ratings in compact dtypes, with ``DatasetError`` naming the first bad line.

    With ``scale`` (lowest, highest, step) the content is checked too (`check_ratings`: not
    empty, no repeated (user, movie), every rating on the scale); without it, only that
    ratings lie in 0-5.

    The file is cut into byte ranges of about 80 MiB at line boundaries; pandas' C parser reads
    each straight into the final dtypes, and the rows are copied into arrays allocated once.
    The arrays are sized by an upper bound (a rating line has at least 8 bytes); pages never
    written are never resident. So the peak memory is about the final frame plus one part, at
    the parser's full speed (see benchmarks/load_ratings.py).
    """
    if len(sep) == 1:
        fh = open(path, "rb")
    else:  # '::' -> a byte the file cannot contain, so the C parser can do the work
        raw = path.read_bytes()
        if b"\x1f" in raw:
            raise DatasetError(f"{path.name}: contains control byte 0x1f")
        fh = io.BytesIO(raw.replace(sep.encode(), b"\x1f"))
        del raw
    try:
        size = fh.seek(0, io.SEEK_END)
        capacity = size // 8 + 1
        cols = {name: np.empty(capacity, dtype=dtype) for name, dtype in RATING_DTYPES.items()}
        filled = 0
        try:
            for start, end in _line_ranges(fh, size, part_bytes, header):
                fh.seek(start)
                part = pd.read_csv(
                    io.BufferedReader(_ByteRange(fh, end - start), 1 << 20),
                    sep=sep if len(sep) == 1 else "\x1f", header=None, names=list(RATING_DTYPES),
                    dtype=RATING_DTYPES, encoding=encoding, engine="c", quoting=csv.QUOTE_NONE,
                )
                k = len(part)
                for col, arr in cols.items():
                    arr[filled:filled + k] = part[col].to_numpy()
                filled += k
                del part
        except (ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError,
                UnicodeDecodeError, OverflowError):
            raise DatasetError(_diagnose_ratings(path, sep, encoding, header)) from None
    finally:
        fh.close()
    frame = pd.DataFrame({col: arr[:filled] for col, arr in cols.items()}, copy=False)
    if scale is not None:
        check_ratings(frame, path, scale, name, encoding, header)
        return frame
    r = frame["rating"].to_numpy()
    if filled and (np.isnan(r).any() or r.min() <= 0.0 or r.max() > 5.0):
        raise DatasetError(_diagnose_ratings(path, sep, encoding, header))
    return frame


# -- per-format loaders ---------------------------------------------------------------------
def movies_ml100k(root: Path, name: str = "ml-100k") -> pd.DataFrame:
    return _movies_frame(rows_ml100k(root, name))


def load_ml100k(root: Path, name: str = "ml-100k") -> Dataset:
    path = _require(root / "u.data", name)
    ratings = read_ratings(path, "\t", scale=rating_scale(name, "ml100k"), name=name)
    movies = movies_ml100k(root, name)
    users = []
    path = _require(root / "u.user", name)
    for lineno, line in _read_lines(path, "latin-1"):
        fields = line.split("|")
        if len(fields) != 5:
            raise DatasetError(f"{path.name} line {lineno}: expected 5 fields separated by '|', got {len(fields)}")
        try:
            users.append((_int(fields[0], "user id"), fields[2], _int(fields[1], "age"), fields[3], fields[4]))
        except ValueError as exc:
            raise DatasetError(f"{path.name} line {lineno}: {exc}") from None
    return _finish(name, root, ratings, movies, _users_frame(users))


def movies_ml1m(root: Path, name: str = "ml-1m") -> pd.DataFrame:
    return _movies_frame(rows_ml1m(root, name))


def load_ml1m(root: Path, name: str = "ml-1m") -> Dataset:
    path = _require(root / "ratings.dat", name)
    ratings = read_ratings(path, "::", scale=rating_scale(name, "ml1m"), name=name)
    movies = movies_ml1m(root, name)
    users = []
    path = _require(root / "users.dat", name)
    for lineno, line in _read_lines(path, "latin-1"):
        fields = line.split("::")
        if len(fields) != 5:
            raise DatasetError(f"{path.name} line {lineno}: expected 5 fields separated by '::', got {len(fields)}")
        try:
            occ = _int(fields[3], "occupation")
            if not 0 <= occ < len(ML1M_OCCUPATIONS):
                raise ValueError(f"occupation code {occ} is outside 0-{len(ML1M_OCCUPATIONS) - 1}")
            users.append((_int(fields[0], "user id"), fields[1], _int(fields[2], "age"), ML1M_OCCUPATIONS[occ], fields[4]))
        except ValueError as exc:
            raise DatasetError(f"{path.name} line {lineno}: {exc}") from None
    return _finish(name, root, ratings, movies, _users_frame(users))


def movies_csv(root: Path, name: str) -> pd.DataFrame:
    movies_df = _movies_frame(rows_csv(root, name))
    links = root / "links.csv"
    if links.exists():
        movies_df = merge_links(movies_df, read_links(links))
    return movies_df


def load_csv(root: Path, name: str) -> Dataset:
    path = _require(root / "ratings.csv", name)
    ratings = read_ratings(path, ",", encoding="utf-8", header=True, scale=rating_scale(name, "csv"),
                           name=name)
    movies_df = movies_csv(root, name)
    users = pd.DataFrame({"user_id": np.unique(ratings["user_id"].to_numpy()).astype("int32")})
    return _finish(name, root, ratings, movies_df, users)


def read_links(path: Path) -> pd.DataFrame:
    """A MovieLens ``links.csv``: movieId, imdbId, tmdbId (the last two may be empty)."""
    try:
        df = pd.read_csv(path, dtype={"movieId": "Int64", "imdbId": "Int64", "tmdbId": "Int64"})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path.name}: not a valid links file ({exc})") from None
    missing = {"movieId", "imdbId", "tmdbId"} - set(df.columns)
    if missing:
        raise DatasetError(f"{path.name} line 1: missing columns {', '.join(sorted(missing))}")
    return df.rename(columns={"movieId": "movie_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"})


def merge_links(movies: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    links = links.dropna(subset=["movie_id"]).drop_duplicates("movie_id")
    idx = links.set_index(links["movie_id"].astype("int64"))
    ids = movies["movie_id"].astype("int64")
    movies = movies.copy()
    movies["imdb_id"] = pd.array(idx["imdb_id"].reindex(ids).to_numpy(), dtype="Int64")
    movies["tmdb_id"] = pd.array(idx["tmdb_id"].reindex(ids).to_numpy(), dtype="Int64")
    return movies


def _users_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user_id", "gender", "age", "occupation", "zip"])
    df["user_id"] = df["user_id"].astype("int32")
    df["gender"] = df["gender"].astype("category")
    df["age"] = df["age"].astype("int16")
    df["occupation"] = df["occupation"].astype("category")
    return df.sort_values("user_id", ignore_index=True)


def _finish(name: str, root: Path, ratings, movies, users) -> Dataset:
    known = movies["movie_id"].to_numpy()
    unknown = np.setdiff1d(np.unique(ratings["movie_id"].to_numpy()), known)
    if len(unknown):
        raise DatasetError(
            f"{name}: {len(unknown)} rated movie ids are not in the movie list (first: {int(unknown[0])})"
        )
    if "gender" in users.columns:
        missing = np.setdiff1d(np.unique(ratings["user_id"].to_numpy()), users["user_id"].to_numpy())
        if len(missing):
            raise DatasetError(f"{name}: {len(missing)} rating user ids are not in the user list (first: {int(missing[0])})")
    return Dataset(name=name, ratings=ratings, movies=movies, users=users, path=root)


LOADERS = {"ml100k": load_ml100k, "ml1m": load_ml1m, "csv": load_csv}
MOVIE_LOADERS = {"ml100k": movies_ml100k, "ml1m": movies_ml1m, "csv": movies_csv}


def load_dir(root: Path, fmt: str, name: str) -> Dataset:
    return LOADERS[fmt](Path(root), name)


def load_movies_dir(root: Path, fmt: str, name: str) -> pd.DataFrame:
    """Only the movie list (fast: no ratings)."""
    return MOVIE_LOADERS[fmt](Path(root), name)


def detect_format(root: Path) -> str | None:
    root = Path(root)
    if (root / "u.data").exists():
        return "ml100k"
    if (root / "ratings.dat").exists() or (root / "movies.dat").exists():
        return "ml1m"
    if (root / "ratings.csv").exists():
        return "csv"
    return None
