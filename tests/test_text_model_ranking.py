"""The ranking models on a checkerboard with a known answer, and their round trip through a version."""
import subprocess
import sys

import numpy as np
import pytest
from text_model_helpers import TINY, checkerboard, hand_rating_vectors, saved_and_loaded

from catalog import Interactions, ModelStore
from text_model import (
    Blend,
    PureSVD,
    RankingVectors,
    RatingOnly,
    RatingVectors,
)
from text_model.ranking import ranking_for

N_USERS, N_MOVIES = 40, 30


@pytest.fixture(scope="module")
def board():
    return checkerboard(N_USERS, N_MOVIES)


def _top1(model, board, user_id):
    train, _, _ = board
    return int(model.recommend(user_id, n=1, exclude=train.of(user_id)).movie_ids[0])


def test_puresvd_returns_each_users_hole(board):
    train, _, holes = board
    model = PureSVD(k=2).fit(train)
    for u, hole in holes.items():
        assert _top1(model, board, u) == hole


def test_blend_returns_each_users_hole_and_picks_on_validation(board):
    train, validation, holes = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    blend = Blend(ks=(1, 2), rating_weights=(0.0, 0.1)).fit(rating, train, validation)
    assert blend.name == "puresvd+rating"
    # rank 1 cannot tell the two blocks apart for both groups; rank 2 finds every hole
    assert blend.params["k"] == 2
    assert blend.validation["hit_rate_at_10"]["k=2,lam=0.0"] == 1.0
    for u, hole in holes.items():
        assert _top1(blend, board, u) == hole
    vectors = blend.ranking_vectors()
    u, m = 3, holes[3]
    score = vectors.ranking_users.get(u) @ vectors.ranking_movies.get(m)
    fu, fm = blend.implicit.vectors()
    predicted = rating.scoring_users.get(u) @ rating.scoring_movies.get(m)
    assert score == pytest.approx(fu.get(u) @ fm.get(m) + blend.rating_weight * predicted, rel=1e-5)


def test_rating_only_ranks_by_predicted_rating(board):
    train, _, _ = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    vectors = RatingOnly().fit(rating).ranking_vectors()
    assert vectors.name == "rating"
    hits = vectors.recommend(1, n=N_MOVIES)
    expect = rating.predict(np.full(N_MOVIES, 1), hits.movie_ids)
    assert np.all(np.diff(expect) <= 1e-6)  # best first by predicted rating
    assert ranking_for(TINY.with_overrides(ranking_factors=())).name == "rating"
    assert ranking_for(TINY.with_overrides(ranking_model="puresvd+rating")).name == "puresvd+rating"


@pytest.mark.parametrize("kind", ["blend", "puresvd", "rating"])
def test_ranking_round_trips_through_a_version(tmp_path, board, kind):
    train, validation, holes = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    model = {"blend": lambda: Blend(ks=(2,), rating_weights=(0.1,)).fit(rating, train, validation),
             "puresvd": lambda: PureSVD(k=2).fit(train, rating.user_ids, rating.movie_ids),
             "rating": lambda: RatingOnly().fit(rating)}[kind]()
    saved_and_loaded(tmp_path, rating, model)


def test_a_damaged_ranking_file_names_the_file(tmp_path, board):
    from catalog import ArtifactError

    train, _, _ = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        rating.save(w)
        PureSVD(k=2).fit(train, rating.user_ids, rating.movie_ids).save(w)
    version = store.open_current()
    path = version.file("ranking")
    path.write_bytes(path.read_bytes()[:100])
    version = store.open_current()
    with pytest.raises(ArtifactError, match=path.name):
        RankingVectors.load(version, RatingVectors.load(version))


def test_the_ranking_read_side_does_not_import_tensorflow(tmp_path, board):
    train, validation, _ = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        rating.save(w)
        Blend(ks=(2,), rating_weights=(0.1,)).fit(rating, train, validation).save(w)
    code = ("import sys\nfrom catalog import ModelStore\nfrom text_model import RatingVectors, RankingVectors\n"
            f"v = ModelStore({str(tmp_path)!r}).open_current()\nr = RatingVectors.load(v)\n"
            "k = RankingVectors.load(v, r)\nr.predict([1], [1]); k.recommend(1, 3)\n"
            "print(k.name, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_env())
    assert out.stdout.strip() == "puresvd+rating False False"


def _env():
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, str(Path(__file__).parent)])}


def test_pairs_outside_the_id_universe_are_refused(board):
    from catalog import UnknownUserError

    train, _, _ = board
    with pytest.raises(UnknownUserError):
        PureSVD(k=2).fit(train, user_ids=np.array([1, 2]), movie_ids=np.arange(1, N_MOVIES + 1))
    assert len(Interactions.from_pairs([1], [1])) == 1


def test_every_ranking_model_train_can_fit_loads_back():
    from text_model.config import RANKING_MODELS
    from text_model.ease import EASE, EaseBlend
    from text_model.ranking import LOADERS

    assert set(RANKING_MODELS) <= set(LOADERS), set(RANKING_MODELS) - set(LOADERS)
    assert {EASE.name, EaseBlend.name} <= set(LOADERS)


def test_the_blend_grid_on_a_sample_of_users_scores_exactly_those_users(board, monkeypatch):
    """Above GRID_USERS validation users the grid scores a seeded sample; the other users'
    validation ratings must be left out (they once indexed past the sample and raised)."""
    import text_model.ranking as ranking
    from catalog import Interactions

    train, validation, _ = board
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    monkeypatch.setattr(ranking, "GRID_USERS", 7)
    sampled = Blend(ks=(1, 2), rating_weights=(0.0, 0.1)).fit(rating, train, validation)
    chosen = ranking.grid_users(np.intersect1d(validation.user_ids, rating.user_ids), 0, 7)
    u = np.repeat(validation.user_ids, np.diff(validation.indptr))
    m, r = validation.movie_ids, validation.ratings
    mask = np.isin(u, chosen)
    only = Interactions.from_pairs(u[mask], m[mask], r[mask])
    monkeypatch.setattr(ranking, "GRID_USERS", 10_000)
    reference = Blend(ks=(1, 2), rating_weights=(0.0, 0.1)).fit(rating, train, only)
    assert len(chosen) == 7
    assert sampled.validation["hit_rate_at_10"] == reference.validation["hit_rate_at_10"]
