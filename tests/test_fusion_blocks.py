"""fuse: the weighted-cosine identity, missing blocks, zero weights; user taste and queries."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import Vectors
from fusion import fuse, user_queries, user_taste


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def blocks(n=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) + 1
    return {"collaborative": Vectors(ids, rng.normal(size=(n, 8)) * 3),
            "visual": Vectors(ids, rng.normal(size=(n, 20)) + 0.5)}


@pytest.mark.parametrize("w", [0.0001, 0.25, 0.5, 0.9])
def test_fused_cosine_is_weighted_sum_of_modality_cosines(w):
    b = blocks()
    fused = fuse(b, {"collaborative": 1 - w, "visual": w})
    assert fused.dim == 28
    np.testing.assert_allclose(np.linalg.norm(fused.values, axis=1), 1.0, atol=1e-5)
    for i, j in [(0, 1), (3, 17), (5, 39), (8, 8)]:
        want = (1 - w) * cos(b["collaborative"].values[i], b["collaborative"].values[j]) + \
            w * cos(b["visual"].values[i], b["visual"].values[j])
        assert float(fused.values[i] @ fused.values[j]) == pytest.approx(want, abs=1e-5)


def test_weights_are_normalised_to_sum_one():
    b = blocks()
    np.testing.assert_allclose(fuse(b, {"collaborative": 3, "visual": 1}).values,
                               fuse(b, {"collaborative": 0.75, "visual": 0.25}).values, atol=1e-6)


def test_missing_block_keeps_the_other_renormalised():
    b = blocks()
    collab = b["collaborative"].subset(np.arange(1, 31))      # movies 31-40: poster only
    visual = b["visual"].subset(np.arange(11, 41))            # movies 1-10: ratings only
    w = {"collaborative": 0.6, "visual": 0.4}
    fused = fuse({"collaborative": collab, "visual": visual}, w)
    assert fused.ids.tolist() == list(range(1, 41))
    np.testing.assert_allclose(np.linalg.norm(fused.values, axis=1), 1.0, atol=1e-5)
    poster_only, ratings_only, both = fused.get(35), fused.get(5), fused.get(20)
    assert np.all(poster_only[:8] == 0) and np.all(ratings_only[8:] == 0)
    # two poster-only movies compare purely by poster; a poster-only vs a complete movie by sqrt(w_v) * cos_v
    assert float(poster_only @ fused.get(38)) == pytest.approx(cos(visual.get(35), visual.get(38)), abs=1e-5)
    assert float(poster_only @ both) == pytest.approx(np.sqrt(0.4) * cos(visual.get(35), visual.get(20)), abs=1e-5)
    assert float(ratings_only @ both) == pytest.approx(np.sqrt(0.6) * cos(collab.get(5), collab.get(20)), abs=1e-5)


def test_zero_weight_block_is_left_out():
    b = blocks()
    b["visual"] = b["visual"].subset(np.arange(5, 45) if False else np.arange(5, 41))
    fused = fuse(b, {"collaborative": 1.0, "visual": 0.0})
    assert fused.dim == 8 and len(fused) == 40
    with pytest.raises(ValueError, match="sum to 0"):
        fuse(b, {"collaborative": 0, "visual": 0})
    with pytest.raises(ValueError, match="no weight"):
        fuse(b, {"visual": 1})
    with pytest.raises(ValueError, match=">= 0"):
        fuse(b, {"collaborative": -1, "visual": 1})


def test_user_taste_is_rating_weighted_mean_of_liked_posters():
    visual = Vectors(np.array([10, 20, 30]), np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    # user 1 (mean 3) likes 10 (5) and 20 (4) -> 5*[1,0] + 4*[0,1], normalised; 30 (rated 0.5) is not liked
    # user 2 (mean 3) likes 30 (4); user 3 (mean 3.5) likes only 99, which has no poster -> absent
    taste = user_taste([1, 1, 1, 2, 2, 3, 3], [10, 20, 30, 30, 99, 30, 99], [5, 4, 0.5, 4, 2, 2, 5], visual)
    assert taste.ids.tolist() == [1, 2]
    np.testing.assert_allclose(taste.get(1), np.array([5, 4]) / np.sqrt(41), atol=1e-6)
    np.testing.assert_allclose(taste.get(2), np.array([1, 1]) / np.sqrt(2), atol=1e-6)


def test_user_query_is_fused_like_movies():
    rng = np.random.default_rng(1)
    users = Vectors(np.array([1, 2]), rng.normal(size=(2, 8)))
    taste = Vectors(np.array([1]), rng.normal(size=(1, 20)))
    q = user_queries(users, taste, {"collaborative": 0.5, "visual": 0.5})
    assert q.dim == 28 and q.ids.tolist() == [1, 2]
    movies = fuse(blocks(), {"collaborative": 0.5, "visual": 0.5})
    m = blocks()
    want = 0.5 * cos(users.get(1), m["collaborative"].get(3)) + 0.5 * cos(taste.get(1), m["visual"].get(3))
    assert float(q.get(1) @ movies.get(3)) == pytest.approx(want, abs=1e-5)
