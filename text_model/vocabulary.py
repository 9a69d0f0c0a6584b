"""`Vocabulary`: ids, genres, demographics and title words -> the integer rows the network uses.

Row 0 of every categorical table means "unknown / padding"; title word 1 is the OOV token,
which rare training words (fewer than ``min_word_count`` titles) are mapped to so that it is
trained and an unseen word lands somewhere sensible. Saved as JSON inside the ``text_model``
artifact; numpy only.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from catalog import UnknownMovieError, UnknownUserError

PAD, OOV = 0, 1
_WORD = re.compile(r"[a-z0-9]+")
MIN_TITLE_LEN = 5  # the widest CNN window must fit


def tokenize(title: str) -> list[str]:
    return _WORD.findall(str(title).lower())


@dataclass(frozen=True)
class Vocabulary:
    user_ids: np.ndarray      # int64, sorted; row = position
    movie_ids: np.ndarray     # int64, sorted
    genres: tuple[str, ...]   # genre row = position + 1
    words: tuple[str, ...]    # word row = position + 2
    genders: tuple[str, ...]
    ages: tuple[str, ...]
    occupations: tuple[str, ...]
    title_len: int
    max_genres: int

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, dataset, min_word_count: int = 2, max_windows: int = MIN_TITLE_LEN) -> "Vocabulary":
        users = dataset.users
        user_ids = np.union1d(users["user_id"].to_numpy(np.int64), dataset.ratings["user_id"].to_numpy(np.int64))
        movie_ids = np.union1d(dataset.movies["movie_id"].to_numpy(np.int64),
                               dataset.ratings["movie_id"].to_numpy(np.int64))
        counts = Counter(w for t in dataset.movies["title"] for w in set(tokenize(t)))
        words = tuple(sorted(w for w, c in counts.items() if c >= min_word_count))
        longest = max((len(tokenize(t)) for t in dataset.movies["title"]), default=1)
        most_genres = max((len(g) for g in dataset.movies["genres"]), default=1)

        def cats(col):
            if col not in users.columns:
                return ()
            return tuple(sorted({str(v) for v in users[col].dropna()}))

        return cls(user_ids, movie_ids, tuple(dataset.genres), words, cats("gender"), cats("age"),
                   cats("occupation"), max(longest, max_windows, 1), max(most_genres, 1))

    # -- sizes ---------------------------------------------------------------------------
    @property
    def sizes(self) -> dict[str, int]:
        return {"users": len(self.user_ids), "movies": len(self.movie_ids),
                "genres": len(self.genres) + 1, "words": len(self.words) + 2,
                "genders": len(self.genders) + 1, "ages": len(self.ages) + 1,
                "occupations": len(self.occupations) + 1}

    # -- id -> row -----------------------------------------------------------------------
    def user_rows(self, user_ids) -> np.ndarray:
        return _rows(self.user_ids, user_ids, lambda i: UnknownUserError(
            f"user {i} is not known to the model (it knows {len(self.user_ids)} users)"))

    def movie_rows(self, movie_ids) -> np.ndarray:
        return _rows(self.movie_ids, movie_ids, lambda i: UnknownMovieError(
            f"movie {i} is not known to the model (it knows {len(self.movie_ids)} movies)"))

    # -- feature tables ------------------------------------------------------------------
    def encode_title(self, title: str) -> np.ndarray:
        """Word rows of a title, padded/truncated to ``title_len``; unseen words -> OOV."""
        index = {w: k + 2 for k, w in enumerate(self.words)}
        rows = [index.get(w, OOV) for w in tokenize(title)][: self.title_len]
        out = np.full(self.title_len, PAD, dtype=np.int32)
        out[: len(rows)] = rows
        return out

    def encode_genres(self, genres) -> np.ndarray:
        index = {g: k + 1 for k, g in enumerate(self.genres)}
        rows = [index[g] for g in genres if g in index][: self.max_genres]
        out = np.zeros(self.max_genres, dtype=np.int32)
        out[: len(rows)] = rows
        return out

    def movie_table(self, movies) -> np.ndarray:
        """int32 (n_movies, max_genres + title_len): genre rows then word rows, per movie row."""
        table = np.zeros((len(self.movie_ids), self.max_genres + self.title_len), dtype=np.int32)
        known = np.isin(movies["movie_id"].to_numpy(np.int64), self.movie_ids)
        rows = self.movie_rows(movies["movie_id"].to_numpy(np.int64)[known])
        for r, (title, genres) in zip(rows, zip(movies["title"][known], movies["genres"][known])):
            table[r, : self.max_genres] = self.encode_genres(genres)
            table[r, self.max_genres:] = self.encode_title(title)
        return table

    def user_table(self, users) -> np.ndarray:
        """int32 (n_users, 3): gender, age, occupation rows (0 where unknown)."""
        table = np.zeros((len(self.user_ids), 3), dtype=np.int32)
        rows = self.user_rows(users["user_id"].to_numpy(np.int64))
        for k, (col, values) in enumerate((("gender", self.genders), ("age", self.ages),
                                           ("occupation", self.occupations))):
            if col not in users.columns or not values:
                continue
            index = {v: j + 1 for j, v in enumerate(values)}
            table[rows, k] = [index.get(str(v), 0) for v in users[col]]
        return table

    # -- persistence (inside the text_model artifact, see `text_model.rating_vectors`) --------
    def to_dict(self, ids: bool = True) -> dict:
        """JSON-ready; ``ids=False`` leaves out the id arrays (stored as arrays beside it)."""
        out = {"genres": list(self.genres), "words": list(self.words), "genders": list(self.genders),
               "ages": list(self.ages), "occupations": list(self.occupations),
               "title_len": self.title_len, "max_genres": self.max_genres}
        if ids:
            out.update(user_ids=self.user_ids.tolist(), movie_ids=self.movie_ids.tolist())
        return out

    @classmethod
    def from_dict(cls, d: dict, user_ids=None, movie_ids=None) -> "Vocabulary":
        """The inverse of `to_dict`; ``user_ids``/``movie_ids`` when ``d`` lacks them. ValueError if invalid."""
        try:
            return cls(np.asarray(d["user_ids"] if user_ids is None else user_ids, dtype=np.int64),
                       np.asarray(d["movie_ids"] if movie_ids is None else movie_ids, dtype=np.int64),
                       tuple(d["genres"]), tuple(d["words"]), tuple(d["genders"]), tuple(d["ages"]),
                       tuple(d["occupations"]), int(d["title_len"]), int(d["max_genres"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a valid vocabulary ({exc!r})") from None

def _rows(sorted_ids: np.ndarray, ids, error) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    pos = np.searchsorted(sorted_ids, ids)
    pos_c = np.minimum(pos, len(sorted_ids) - 1)
    bad = (pos >= len(sorted_ids)) | (sorted_ids[pos_c] != ids)
    if bad.any():
        raise error(int(ids[np.flatnonzero(bad)[0]]))
    return pos_c.astype(np.int32)
