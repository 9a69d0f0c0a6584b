"""ColdStartMap recovers a planted linear map; the cold-start evaluation ranks as it should."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import Vectors
from fusion import (ColdStartMap, evaluate_cold_start, evaluate_ranking, genre_vectors, select_alpha, stack_features,
                    year_vectors)
from fusion.cold_start import ALPHAS


def planted(n=400, f=12, d=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) + 1
    x = rng.normal(size=(n, f))
    w = rng.normal(size=(f, d))
    b = rng.normal(size=d)
    y = x @ w + b + 0.01 * rng.normal(size=(n, d))
    return Vectors(ids, x), Vectors(ids, y), w, b


def test_ridge_recovers_planted_map_and_predicts_held_out():
    x, y, w, b = planted()
    train, held = x.ids[:300], x.ids[300:]
    model = ColdStartMap(alpha=1e-3).fit(x.subset(train), y)
    np.testing.assert_allclose(model.weights, w, atol=0.01)
    np.testing.assert_allclose(model.bias, b, atol=0.01)
    pred = model.predict(x.subset(held))
    assert pred.ids.tolist() == held.tolist()
    np.testing.assert_allclose(pred.values, y.subset(held).values, atol=0.05)
    assert model.n_fit == 300


def test_ridge_shrinks_with_alpha_and_checks_inputs():
    x, y, _, _ = planted()
    small = ColdStartMap(alpha=1e-3).fit(x, y)
    big = ColdStartMap(alpha=1e5).fit(x, y)
    assert np.linalg.norm(big.weights) < 0.1 * np.linalg.norm(small.weights)
    with pytest.raises(ValueError, match="call fit"):
        ColdStartMap().predict(x)
    with pytest.raises(ValueError, match="fitted on 12"):
        small.predict(Vectors(np.array([1]), np.ones((1, 3))))
    with pytest.raises(ValueError, match="need 2"):
        ColdStartMap().fit(x.subset([1]), y)


def test_genre_vectors_and_stack():
    g = genre_vectors({1: ("Comedy",), 2: ("Horror", "Comedy"), 3: ()}, ["Comedy", "Horror"])
    np.testing.assert_array_equal(g.values, [[1, 0], [1, 1], [0, 0]])
    s = stack_features(g, Vectors(np.array([2, 3, 4]), np.eye(3)))
    assert s.ids.tolist() == [2, 3] and s.dim == 5


def test_ranking_metrics_perfect_and_reversed():
    users = Vectors(np.array([7]), np.array([[1.0]]))
    cand = Vectors(np.array([1, 2, 3, 4]), np.array([[4.0], [3.0], [2.0], [1.0]]))
    good = evaluate_ranking(users, cand, [7, 7], [1, 2], [5, 4], n=2)
    assert good["hr@2"] == 1 and good["ndcg@2"] == pytest.approx(1) and good["auc"] == pytest.approx(1)
    bad = evaluate_ranking(users, cand, [7, 7], [3, 4], [5, 4], n=2)
    assert bad["hr@2"] == 0 and bad["auc"] == pytest.approx(0)


def test_cold_start_evaluation_beats_random_when_posters_carry_taste():
    """Planted: collaborative taste is a linear function of the poster; two user groups."""
    rng = np.random.default_rng(3)
    n, held = 300, np.arange(241, 301)
    ids = np.arange(1, n + 1)
    kind = rng.integers(0, 2, n)                      # hidden "comedy"/"horror"
    visual = Vectors(ids, rng.normal(size=(n, 10)) + 3.0 * kind[:, None] * np.eye(10)[0])
    collab = Vectors(ids, np.stack([2 * kind - 1, 0.1 * rng.normal(size=n)], axis=1))
    genres = genre_vectors({int(i): () for i in ids}, ["Comedy"])  # uninformative genres
    users = Vectors(np.arange(1, 21), np.stack([np.where(np.arange(20) % 2, 1.0, -1.0), np.zeros(20)], axis=1))
    tu, tm, tr = [], [], []
    for u in range(1, 21):
        for m in held:  # every user rated every held-out movie
            likes = (kind[m - 1] == 1) == (u % 2 == 0)
            tu.append(u), tm.append(m), tr.append(5.0 if likes else 1.0)
    out = evaluate_cold_start(users, collab, stack_features(visual, genres), genres, held, tu, tm, tr, n=10)
    assert out["mapping"]["users"] == 20
    assert out["mapping"]["auc"] > 0.85 > out["genre_only"]["auc"]
    assert out["mapping"]["ndcg@10"] > out["random"]["ndcg@10"]


def test_select_alpha_prefers_shrinkage_on_noise_and_little_on_clean_signal():
    x, y, _, _ = planted(n=200, f=12, d=6)
    clean, errors = select_alpha(x, y, alphas=(0.01, 100.0, 1e5))
    assert clean == 0.01 and set(errors) == {0.01, 100.0, 1e5}
    noise = Vectors(y.ids, np.random.default_rng(1).normal(size=(200, 6)))  # features explain nothing
    assert select_alpha(x, noise, alphas=(0.01, 100.0, 1e5))[0] == 1e5
    users = Vectors(np.arange(1, 4), np.ones((3, 6)))
    assert select_alpha(x, y, users, alphas=(0.01, 1e5))[0] == 0.01
    with pytest.raises(ValueError, match="need 10"):
        select_alpha(x.subset(x.ids[:5]), y)
    with pytest.raises(ValueError, match="dimension 2"):
        select_alpha(x, y, Vectors(np.arange(1, 4), np.ones((3, 2))))


def test_year_vectors_bins_and_unknown():
    v = year_vectors({1: 1950, 2: 1990, 3: None, 4: 1995, 5: float("nan")}, n_bins=2)
    assert v.dim == 3  # 2 bins + unknown
    rows = v.values
    assert rows.sum(axis=1).tolist() == [1, 1, 1, 1, 1]
    assert rows[2, -1] == 1 and rows[4, -1] == 1 and rows[0, 0] == 1 and rows[3, 1] == 1
    with pytest.raises(ValueError, match="n_bins"):
        year_vectors({1: 1990}, n_bins=0)


def test_cold_start_ranks_same_candidates_and_labels_the_oracle():
    """Genre-only may cover more held-out movies than the poster features; all methods rank the same ones."""
    rng = np.random.default_rng(5)
    ids = np.arange(1, 101)
    collab = Vectors(ids, rng.normal(size=(100, 3)))
    visual = Vectors(ids[:-5], rng.normal(size=(95, 4)))  # the last 5 movies have no poster
    genres = genre_vectors({int(i): ("Comedy",) if i % 2 else ("Horror",) for i in ids})
    users = Vectors(np.arange(1, 6), rng.normal(size=(5, 3)))
    held = ids[80:]
    tu = np.repeat(np.arange(1, 6), 20)
    tm = np.tile(held, 5)
    tr = rng.choice([1.0, 5.0], size=len(tm))
    out = evaluate_cold_start(users, collab, stack_features(visual, genres), genres, held, tu, tm, tr, n=5)
    assert {"mapping", "genre_only", "random", "popularity_oracle"} <= set(out)
    assert {m["candidates"] for m in out.values()} == {15}
    assert out["mapping"]["alpha"] in ALPHAS
