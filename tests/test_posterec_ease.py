"""`recommend`, `export-recommendations`, `also_liked` and visitors' fold-in over a version whose
ranking model is EASE (``ease+rating``, what `train` writes by default), on the planted fixture:
comedies are movies 1-30, horror films 31-60; even users rate comedies, odd users horror."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from catalog import ModelStore, Vectors
from posterec.cli import main
from posterec.recommender import Recommender
from version_helpers import write_planted_version

COMEDY, HORROR = set(range(1, 31)), set(range(31, 61))


@pytest.fixture(params=["ease", "ease+rating"])
def ease_home(request, planted_home, planted_data):
    from text_model.ease import EASE, EaseBlend

    ratings, movies, users = planted_data
    movie_ids = np.array([m for m, *_ in movies])
    user_ids = np.array([u for u, *_ in users])
    rng = np.random.default_rng(0)
    user_vecs = np.zeros((len(user_ids), 8), np.float32)
    user_vecs[np.arange(len(user_ids)), np.where(user_ids % 2 == 0, 0, 1)] = 1.0
    movie_vecs = rng.normal(0, 0.15, (len(movie_ids), 8)).astype(np.float32)
    movie_vecs[np.arange(len(movie_ids)), np.where(movie_ids <= 30, 0, np.where(movie_ids <= 60, 1, 2))] += 1.0
    # who rated what is random here (the genres are in the ratings): EASE alone has no genre to
    # find, the blend finds it through its rating part
    model = (EASE(lambdas=(50.0,)) if request.param == "ease" else
             EaseBlend(lambdas=(50.0,), rating_weights=(1.0,)))
    write_planted_version(planted_home, Vectors(user_ids, user_vecs), Vectors(movie_ids, movie_vecs),
                          ratings=[r[:3] for r in ratings], ranking=model.fit)
    return planted_home


def test_recommend_with_ease_returns_unseen_movies_of_the_liked_genre(ease_home):
    rec = Recommender.load(ease_home)
    assert rec.ranking_model.name in ("ease", "ease+rating")
    for user in (2, 4, 7, 9):
        hits = rec.recommend(user, 5)
        seen = set(rec.interactions.of(user).tolist())
        assert not seen & set(hits.movie_ids.tolist())
        genre = COMEDY if user % 2 == 0 else HORROR
        if rec.ranking_model.name == "ease+rating":
            assert set(hits.movie_ids.tolist()) <= genre, (user, hits.movie_ids)
        assert len(hits.because) == len(hits.movie_ids)


def test_export_recommendations_ranks_as_recommend_with_ease(ease_home, tmp_path):
    out = tmp_path / "recs.csv"
    assert main(["--home", str(ease_home), "export-recommendations", "-n", "5", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    rec = Recommender.load(ease_home)
    for user in (4, 7, 10):
        exported = [int(r["movie_id"]) for r in rows if int(r["user_id"]) == user]
        assert exported == rec.recommend(user, 5, visual_weight=0.0).movie_ids.tolist()


def test_also_liked_with_ease_stays_in_the_genre(ease_home):
    rec = Recommender.load(ease_home)
    hits = rec.also_liked(3, 5)
    assert 3 not in hits.movie_ids.tolist() and len(hits.movie_ids) == 5
    if rec.ranking_model.name == "ease+rating":
        assert set(hits.movie_ids.tolist()) <= COMEDY


def test_a_visitor_with_a_known_users_ratings_gets_their_recommendations(ease_home):
    """EASE fold-in is the visitor's binary row: exactly a known user's ranking vector."""
    rec = Recommender.load(ease_home)
    for user in range(1, 13):
        movies, ratings = rec.interactions.ratings_of(user)
        given = dict(zip(movies.tolist(), ratings.tolist()))
        folded = rec.visitor_vector(ratings=list(given.items()))
        own = rec._ranking_users.get(user)
        width = rec.rating.scoring_users.dim if rec.ranking_model.name == "ease+rating" else 0
        np.testing.assert_array_equal(folded[width:], own[width:])
        mine = rec.recommend(user, 10).movie_ids.tolist()
        theirs = rec.recommend_for(ratings=given, n=10).movie_ids.tolist()
        if width == 0:
            assert mine == theirs
        else:  # the rating part is a ridge fold-in: close, not equal
            assert len(set(mine) & set(theirs)) >= 8


@pytest.mark.parametrize("limit", [None, 10])
def test_train_records_the_ranking_model_and_falls_back_above_the_limit(planted_home, monkeypatch, limit):
    """`train` fits the config's ranking model (ease+rating by default) and records it, what was
    asked for and where the default comes from; above EASE's size limit it falls back to
    puresvd+rating and says why."""
    pytest.importorskip("keras")
    import text_model.ease as ease
    from posterec.pipeline import train
    from text_model import config
    from text_model_helpers import TINY

    monkeypatch.setitem(config.CONFIGS, "best", TINY)
    if limit:
        monkeypatch.setattr(ease, "EASE_MAX_MOVIES", limit)
    train(planted_home, "ml-100k", epochs=1, verbose=0, announce=lambda *a: None)
    entry = ModelStore(planted_home).open_current().stage("train")["ranking"]
    assert entry["requested"] == "ease+rating" and "ranking_quality" in entry["default_chosen_by"]
    rec = Recommender.load(planted_home)
    if limit:
        assert entry["name"] == rec.ranking_model.name == "puresvd+rating"
        assert "EASE_MAX_MOVIES=10" in entry["fallback"]
    else:
        assert entry["name"] == rec.ranking_model.name == "ease+rating" and "fallback" not in entry
        assert entry["params"]["lam"] in TINY.ease_lambdas
    user = int(rec.known_users()[0])
    assert not np.isin(rec.recommend(user, 5).movie_ids, rec.interactions.of(user)).any()
