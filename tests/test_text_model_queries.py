"""The numpy query functions on hand-checkable vectors, and the no-TensorFlow import rule."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from catalog import UnknownMovieError, UnknownUserError, Vectors
from text_model import SeenItems, also_liked, recommend, similar
from text_model.metrics import coverage, hit_rate_ndcg, top_n

MOVIES = Vectors(np.array([10, 20, 30, 40]), np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [-1, 0, 0]], np.float32))
USERS = Vectors(np.array([1, 2]), np.array([[1, 0, 0], [0, 1, 0]], np.float32))


def test_similar_is_cosine_and_never_the_query():
    hits = similar(MOVIES, 10, n=3)
    assert hits.movie_ids.tolist() == [20, 30, 40]
    assert hits.scores[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert 10 not in similar(MOVIES, 10, n=10).movie_ids


def test_recommend_excludes_seen():
    assert recommend(USERS, MOVIES, 1, n=2).movie_ids.tolist() == [10, 20]
    assert recommend(USERS, MOVIES, 1, n=2, seen=[10]).movie_ids.tolist() == [20, 30]


def test_also_liked_uses_the_fans_of_the_movie():
    hits = also_liked(USERS, MOVIES, 30, n=2, n_users=1)  # user 2 scores movie 30 highest
    assert 30 not in hits.movie_ids
    assert hits.movie_ids[0] == 20  # user 2's next favourite (0.1)


def test_unknown_ids_and_bad_n():
    with pytest.raises(UnknownMovieError):
        similar(MOVIES, 99)
    with pytest.raises(UnknownUserError):
        recommend(USERS, MOVIES, 99)
    with pytest.raises(UnknownMovieError):
        also_liked(USERS, MOVIES, 99)
    with pytest.raises(ValueError):
        similar(MOVIES, 10, n=0)


def test_seen_items_round_trip(tmp_path):
    ratings = pd.DataFrame({"user_id": [2, 1, 2, 1], "movie_id": [30, 10, 10, 40]})
    seen = SeenItems.from_ratings(ratings)
    assert seen.of(1).tolist() == [10, 40] and seen.of(2).tolist() == [10, 30]
    seen.save(tmp_path / "seen.npz")
    again = SeenItems.load(tmp_path / "seen.npz")
    assert again.of(2).tolist() == [10, 30]
    assert 3 not in again and again.of(3).tolist() == []


def test_ranking_metrics_by_hand():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    exclude = np.array([[True, False, False], [False, False, False]])
    top = top_n(scores, exclude, 2)
    assert top.tolist() == [[1, 2], [2, 1]]
    hr, ndcg = hit_rate_ndcg(top, np.array([2, 0]))
    assert hr == 0.5 and ndcg == pytest.approx(0.5 / np.log2(3))
    assert coverage(top, 3) == pytest.approx(2 / 3)


def test_query_path_does_not_import_tensorflow():
    code = "import sys, text_model, text_model.queries; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
