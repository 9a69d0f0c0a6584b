"""Ranking metrics by hand, chunked top-N, and the no-TensorFlow rule of the read side (the queries
themselves go through `Recommender` and `index`, tested there)."""
import subprocess
import sys

import numpy as np
import pytest

from text_model.metrics import coverage, hit_rate_ndcg, top_n



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
    code = "import sys, text_model, text_model.rating_vectors, text_model.ranking, text_model.scoring; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
