"""The numpy query functions on hand-checkable vectors, and the no-TensorFlow import rule."""
import subprocess
import sys

import numpy as np
import pytest

from catalog import UnknownMovieError, UnknownUserError, Vectors
from text_model import also_liked, recommend, similar
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


def test_ranking_metrics_by_hand():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    exclude = np.array([[True, False, False], [False, False, False]])
    top = top_n(scores, exclude, 2)
    assert top.tolist() == [[1, 2], [2, 1]]
    hr, ndcg = hit_rate_ndcg(top, np.array([2, 0]))
    assert hr == 0.5 and ndcg == pytest.approx(0.5 / np.log2(3))
    assert coverage(top, 3) == pytest.approx(2 / 3)
    # a row with fewer allowed cells than n is padded with -1, which coverage does not count
    padded = top_n(scores, np.array([[True, True, False], [False, False, False]]), 2)
    assert padded.tolist() == [[2, -1], [2, 1]] and coverage(padded, 3) == pytest.approx(2 / 3)


def test_chunked_top_n_equals_one_dense_top_n():
    from catalog import top_n as kernel
    from text_model.scoring import pair_matrix, top_n_dot

    rng = np.random.default_rng(0)
    q, items = rng.standard_normal((37, 4)).astype(np.float32), rng.standard_normal((23, 4)).astype(np.float32)
    rows, cols = rng.integers(0, 37, 200), rng.integers(0, 23, 200)
    mask = pair_matrix(rows, cols, (37, 23))
    want = kernel(q @ items.T, 5, mask.toarray())
    got = top_n_dot(q, items, 5, mask, cells=50)  # two rows per chunk
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1])


def test_query_path_does_not_import_tensorflow():
    code = "import sys, text_model, text_model.queries, text_model.ranking, text_model.scoring; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
