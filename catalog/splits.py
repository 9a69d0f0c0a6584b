"""Deterministic train/test splits of a ratings frame.

- ``random-80-20``, ``random-90-10`` (any ``random-A-B``): a random holdout of rows;
- ``leave-last-out``: each user's latest rating (by timestamp) is the test set, for ranking;
- ``cold-start-10`` (any ``cold-start-P``): P% of the rated movies are held out with all their ratings;
- ``none``: every rating trains the model (the default for a model put to use);
- a file of ``user_id,movie_id`` pairs that form the test set (``--test-pairs``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError

SPLITS = ("none", "random-80-20", "random-90-10", "leave-last-out", "cold-start-10")


@dataclass(frozen=True)
class Split:
    name: str
    seed: int
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def holds_out(self) -> bool:
        """Whether ratings were held out: a model fit on this split is for evaluation."""
        return len(self.test) > 0

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "train": len(self.train), "test": len(self.test)}


def random_split(ratings: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    n = len(ratings)
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.permutation(n)[: int(round(n * test_fraction))]] = True
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def latest_mask(ratings: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Which rows of ``ratings`` are their user's latest rating (timestamp ties broken by a seeded
    shuffle); a user with a single rating keeps it (False)."""
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(ratings))
    order = np.lexsort((tiebreak, ratings["timestamp"].to_numpy(), ratings["user_id"].to_numpy()))
    users = ratings["user_id"].to_numpy()[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = users[:-1] != users[1:]
    counts = np.bincount(np.unique(users, return_inverse=True)[1])
    single = np.repeat(counts == 1, counts)
    is_latest = np.zeros(len(ratings), dtype=bool)
    is_latest[order[last & ~single]] = True
    return is_latest


def leave_last_out(ratings: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest rating is held out; timestamp ties are broken by a seeded shuffle.

    Users with a single rating keep it in the training set.
    """
    is_test = latest_mask(ratings, seed)
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def cold_start_movies(ratings: pd.DataFrame, movie_fraction: float = 0.1, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a fraction of the rated movies together with all their ratings."""
    if not 0.0 < movie_fraction < 1.0:
        raise ValueError(f"movie fraction must be between 0 and 1, got {movie_fraction}")
    rng = np.random.default_rng(seed)
    movies = np.unique(ratings["movie_id"].to_numpy())
    held = rng.choice(movies, size=max(1, int(round(len(movies) * movie_fraction))), replace=False)
    is_test = np.isin(ratings["movie_id"].to_numpy(), held)
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def read_pairs(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such pairs file")
    try:
        pairs = pd.read_csv(path, dtype={"user_id": "int64", "movie_id": "int64"}, usecols=["user_id", "movie_id"])
    except ValueError as exc:
        raise DatasetError(f"{path}: expected a CSV with integer columns user_id,movie_id ({exc})") from None
    return pairs


def pairs_split(ratings: pd.DataFrame, pairs: pd.DataFrame, source: str = "pairs") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ratings named by ``pairs`` (user_id, movie_id) are the test set."""
    key = ratings["user_id"].to_numpy().astype(np.int64) << 32 | ratings["movie_id"].to_numpy().astype(np.int64)
    want = pairs["user_id"].to_numpy().astype(np.int64) << 32 | pairs["movie_id"].to_numpy().astype(np.int64)
    found = np.isin(want, key)
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        raise DatasetError(
            f"{source} line {k + 2}: user {int(pairs['user_id'].iloc[k])} never rated movie "
            f"{int(pairs['movie_id'].iloc[k])}; {int((~found).sum())} pairs are not in the ratings"
        )
    is_test = np.isin(key, want)
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def make_split(ratings: pd.DataFrame, name: str = "random-80-20", seed: int = 0, test_pairs: str | Path | None = None) -> Split:
    """Build a named split; ``test_pairs`` (a CSV path) overrides ``name``."""
    if test_pairs is not None:
        train, test = pairs_split(ratings, read_pairs(test_pairs), Path(test_pairs).name)
        return Split(f"pairs:{Path(test_pairs).name}", seed, train, test)
    m = re.fullmatch(r"random-(\d+)-(\d+)", name)
    if name == "none":
        return Split(name, seed, ratings.reset_index(drop=True), ratings.iloc[:0].reset_index(drop=True))
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a + b != 100 or b == 0:
            raise ValueError(f"split {name!r}: the two parts must add up to 100")
        train, test = random_split(ratings, b / 100, seed)
    elif name == "leave-last-out":
        train, test = leave_last_out(ratings, seed)
    elif (m := re.fullmatch(r"cold-start-(\d+)", name)):
        train, test = cold_start_movies(ratings, int(m.group(1)) / 100, seed)
    else:
        raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLITS)} (or random-A-B, cold-start-P)")
    return Split(name, seed, train, test)
