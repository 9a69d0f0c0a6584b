"""Deterministic splits: random holdout, leave-last-out, cold-start movies and a pairs file."""
from __future__ import annotations

import pandas as pd
import pytest

from catalog import DatasetError, load_dir, make_split


@pytest.fixture
def ratings(ml100k_dir):
    return load_dir(ml100k_dir, "ml100k", "x").ratings


def _keys(df):
    return set(zip(df["user_id"], df["movie_id"]))


@pytest.mark.parametrize("name,frac", [("random-80-20", 0.2), ("random-90-10", 0.1)])
def test_random_split_is_a_seeded_partition(ratings, name, frac):
    a = make_split(ratings, name, seed=3)
    b = make_split(ratings, name, seed=3)
    c = make_split(ratings, name, seed=4)
    assert len(a.test) == round(len(ratings) * frac)
    assert _keys(a.train) | _keys(a.test) == _keys(ratings)
    assert not _keys(a.train) & _keys(a.test)
    assert _keys(a.test) == _keys(b.test)
    assert _keys(a.test) != _keys(c.test)


def test_leave_last_out_holds_out_each_users_latest(ratings):
    s = make_split(ratings, "leave-last-out", seed=0)
    assert len(s.test) == ratings["user_id"].nunique()
    latest = ratings.groupby("user_id")["timestamp"].max()
    for row in s.test.itertuples():
        assert row.timestamp == latest[row.user_id]
    assert not _keys(s.train) & _keys(s.test)


def test_leave_last_out_keeps_single_rating_users_in_train():
    r = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [1, 2, 3], "rating": [4.0, 5.0, 3.0], "timestamp": [1, 2, 5]})
    s = make_split(r, "leave-last-out")
    assert _keys(s.test) == {(1, 2)}
    assert _keys(s.train) == {(1, 1), (2, 3)}


def test_cold_start_holds_out_whole_movies(ratings):
    s = make_split(ratings, "cold-start-10", seed=1)
    held = set(s.test["movie_id"])
    assert len(held) == round(ratings["movie_id"].nunique() * 0.1)
    assert not held & set(s.train["movie_id"])


def test_pairs_file_defines_the_test_set(ratings, tmp_path):
    pick = ratings.sample(25, random_state=0)[["user_id", "movie_id"]]
    path = tmp_path / "pairs.csv"
    pick.to_csv(path, index=False)
    s = make_split(ratings, test_pairs=path)
    assert _keys(s.test) == _keys(pick)
    assert len(s.train) == len(ratings) - 25


def test_pairs_not_in_ratings_are_an_error(ratings, tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": [1], "movie_id": [99999]}).to_csv(path, index=False)
    with pytest.raises(DatasetError, match="pairs.csv line 2: user 1 never rated movie 99999"):
        make_split(ratings, test_pairs=path)


def test_unknown_split_name(ratings):
    with pytest.raises(ValueError, match="unknown split"):
        make_split(ratings, "by-moon-phase")
