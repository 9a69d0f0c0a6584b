"""fusion.neighbours on hand-checkable 3-D vectors, and movie_features' whitened poster PCA."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import Vectors
from fusion.neighbours import nearest_among, neighbour_mean
from fusion.vbpr import movie_features

# movies 1-3 lean on x, 4-5 on y, 6 on z; 7 is all zeros (no direction)
SPACE = Vectors(np.arange(1, 8), np.array([[1, 0, 0], [0.9, 0.1, 0], [0.8, 0, 0.2], [0, 1, 0],
                                           [0.1, 0.9, 0], [0, 0, 1], [0, 0, 0]], np.float32))


def brute_force(query, pool, k):
    v = {int(i): r / (np.linalg.norm(r) or 1) for i, r in zip(SPACE.ids, SPACE.values)}
    out = []
    for q in query:
        cand = sorted((c for c in pool if c != q and np.linalg.norm(v[c]) > 0), key=lambda c: (-v[q] @ v[c], c))
        out.append((cand + [-1] * k)[:k])
    return np.array(out)


def test_nearest_among_the_pool_by_cosine_never_itself():
    query, pool = [1, 4, 6, 3], [1, 2, 4, 5, 7]
    got = nearest_among(SPACE, query, pool, k=2)
    np.testing.assert_array_equal(got, brute_force(query, pool, 2))
    assert got[0].tolist() == [2, 5] and got[1].tolist() == [5, 2]  # 1's nearest other is 2; 4's is 5


def test_a_query_without_features_and_a_short_pool_are_padded_with_minus_one():
    got = nearest_among(SPACE, [99, 1, 7], [2, 7], k=3)
    assert got[0].tolist() == [-1, -1, -1]        # no feature row
    assert got[1].tolist() == [2, -1, -1]         # 7 (zero vector) is never a neighbour
    assert got[2].tolist() == [-1, -1, -1]        # a zero query has no direction
    with pytest.raises(ValueError, match="k must be >= 1"):
        nearest_among(SPACE, [1], [2], k=0)


def test_neighbour_mean_averages_the_neighbour_columns_and_skips_missing_cells():
    catalogue = np.array([1, 2, 3, 4])
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, -np.inf, 30.0, 40.0]])
    out = neighbour_mean(scores, catalogue, np.array([[2, 3], [-1, -1]]), [1, 4])
    np.testing.assert_allclose(out[:, 0], [2.5, 30.0])  # user 2's cell of movie 2 is -inf: skipped
    assert np.isnan(out[:, 1:]).all()                   # movie 4 has no neighbour; 2, 3 were not asked
    with pytest.raises(ValueError, match="not in the catalogue: \\[9\\]"):
        neighbour_mean(scores, catalogue, np.array([[9, -1]]), [1])


def test_whitened_poster_pca_gives_every_axis_the_same_spread():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(200, 12)) * np.array([10, 5, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1])
    visual = Vectors(np.arange(200), raw.astype(np.float32))
    plain = movie_features(visual.ids, visual, poster_dim=4).values[:, :4]
    white = movie_features(visual.ids, visual, poster_dim=4, whiten=True).values[:, :4]
    sd_plain, sd_white = plain.std(axis=0), white.std(axis=0)
    assert sd_plain[0] > 2 * sd_plain[3]
    np.testing.assert_allclose(sd_white / sd_white[0], 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(white, axis=1).mean(), 1.0, rtol=1e-5)  # unit mean row norm

