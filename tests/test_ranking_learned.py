"""The learned ranking model inside the product: `train` on a split, `build-index` fits `vbpr`,
`recommend` ranks with it; on the planted fixture, whose known answer is in the ratings and posters."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from test_fusion_vbpr import pixels
from version_helpers import write_planted_version

from catalog import ModelStore, Vectors, load_dataset, make_split
from posterec.pipeline import build_index, train
from posterec.recommender import Recommender
from text_model import TextModelConfig

COMEDY, HORROR = set(range(1, 31)), set(range(31, 61))
COLD_COMEDY, COLD_HORROR = 7, 37


@pytest.fixture
def learned_home(planted_home, planted_data):
    """Planted version: rating vectors, training ratings (none of the two cold movies), Pillow posters
    (comedies suns, horror stripes); its train config asks vbpr for positives rated 4 or more."""
    ratings, movies, users = planted_data
    movie_ids = [m for m, *_ in movies]
    rng = np.random.default_rng(0)
    user_ids = np.array([u for u, *_ in users])
    users_v = Vectors(user_ids, rng.normal(0, 0.1, (len(user_ids), 4)))
    movies_v = Vectors(np.array(movie_ids), rng.normal(0, 0.1, (len(movie_ids), 4)))
    posters = [m for m in movie_ids if m <= 60]
    visual = Vectors(np.array(posters), np.stack([pixels("sun" if m in COMEDY else "stripes", m) for m in posters]))
    rated = [r[:3] for r in ratings if r[1] not in (COLD_COMEDY, COLD_HORROR)]
    write_planted_version(planted_home, users_v, movies_v, visual, rated)
    cfg = TextModelConfig(vbpr_factors=8, vbpr_visual_factors=4, vbpr_epochs=30, vbpr_learning_rate=0.02,
                          vbpr_min_rating=4, learned_ranking=True)
    with ModelStore(planted_home).new_version() as w:
        w.set_stage("train", {"dataset": "ml-100k", "config": cfg.to_dict()})
    return planted_home


def test_build_index_fits_vbpr_and_recommend_ranks_with_it(learned_home):
    entry = build_index(learned_home)
    assert entry["ranking"]["name"] == "vbpr" and entry["ranking_chosen_by"]
    rec = Recommender.load(learned_home)
    assert rec.ranking_model.name == "vbpr"
    assert rec.model.stage("build-index")["ranking"]["config"]["min_rating"] == 4
    for user in (2, 4, 6, 8):
        hits = rec.recommend(user, 10)
        seen = set(rec.interactions.of(user).tolist())
        assert not seen & set(hits.movie_ids.tolist())          # never already rated
        k = min(10, len(COMEDY - seen - {COLD_COMEDY}))
        assert set(hits.movie_ids[:k].tolist()) <= COMEDY        # the liked kind, while there are unseen ones
        assert hits.because is not None and (hits.because >= 0).any()
        order = hits.movie_ids.tolist() + rec.recommend(user, 60, because=False).movie_ids.tolist()
        assert order.index(COLD_COMEDY) < order.index(COLD_HORROR)  # a cold comedy poster beats a cold horror one
    for user in (1, 3, 5):
        k = min(10, len(HORROR - set(rec.interactions.of(user).tolist()) - {COLD_HORROR}))
        assert set(rec.recommend(user, 10).movie_ids[:k].tolist()) <= HORROR


def test_a_cold_comedy_poster_ranks_first_among_new_movies_for_even_users(learned_home):
    build_index(learned_home)
    rec = Recommender.load(learned_home)
    users, movies = rec.ranking_model.ranking_users, rec.ranking_model.ranking_movies
    cold = np.array([COLD_COMEDY, COLD_HORROR])
    for user in users.ids:
        s = movies.subset(cold).values @ users.get(user)
        assert cold[np.argmax(s)] == (COLD_COMEDY if user % 2 == 0 else COLD_HORROR)


def test_by_default_build_index_keeps_the_base_ranking(planted_home, planted_data):
    ratings, movies, users = planted_data
    rng = np.random.default_rng(0)
    u = np.array([x for x, *_ in users])
    m = np.array([x for x, *_ in movies])
    write_planted_version(planted_home, Vectors(u, rng.normal(size=(len(u), 4))), Vectors(m, rng.normal(size=(len(m), 4))),
                          None, [r[:3] for r in ratings])
    assert build_index(planted_home)["ranking"]["name"] == "rating"
    assert build_index(planted_home, ranking_model="vbpr")["ranking"]["name"] == "vbpr"  # posters optional
    assert Recommender.load(planted_home).ranking_model.name == "vbpr"


def test_build_index_can_keep_the_base_ranking(learned_home):
    build_index(learned_home)
    entry = build_index(learned_home, ranking_model="base")
    rec = Recommender.load(learned_home)
    assert entry["ranking"]["name"] == rec.ranking_model.name == "rating"
    with pytest.raises(ValueError, match="ranking model must be one of"):
        build_index(learned_home, ranking_model="nope")


@pytest.mark.slow
def test_an_evaluation_model_can_recommend_its_held_out_movies(planted_home, tmp_path, monkeypatch):
    """Item 0 of issue 11: trained on leave-last-out, the model knows only its training ratings,
    so recommend can return each user's held-out movie (and never a training one)."""
    pytest.importorskip("keras")
    from text_model_helpers import TINY

    from text_model import config

    monkeypatch.setitem(config.CONFIGS, "best", TINY)
    split = make_split(load_dataset(planted_home, "ml-100k").ratings, "leave-last-out", 0)
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as fh:
        csv.writer(fh).writerows([("user_id", "movie_id"), *zip(split.test["user_id"], split.test["movie_id"])])
    result = train(planted_home, "ml-100k", test_pairs=pairs, epochs=2, verbose=0, announce=lambda *a: None)
    assert result.version.manifest["purpose"] == "evaluation"
    rec = Recommender.load(planted_home)
    held = dict(zip(split.test["user_id"].astype(int), split.test["movie_id"].astype(int)))
    for user, hits in zip(held, rec.recommend_many(list(held), 66)):
        assert held[user] in hits.movie_ids
        assert not np.isin(hits.movie_ids, split.train["movie_id"][split.train["user_id"] == user]).any()
