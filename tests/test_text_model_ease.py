"""EASE (`text_model.ease`) on planted data with a known answer, its size limit, its round trip
through a version, and the visitor fold-in."""
import numpy as np
import pytest

from catalog import Interactions, ModelStore
from text_model import RankingVectors, RatingVectors, load_ranking
from text_model.ease import EASE, EaseBlend, EaseSizeError, check_size, ease_weights, size_problem
from text_model.ranking import Blend, ranking_fallback, ranking_for
from text_model_helpers import TINY, checkerboard, hand_rating_vectors

N_USERS, N_MOVIES = 40, 30
PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8))  # planted partners: whoever rates A also rates B


def planted(seed: int = 0) -> tuple[Interactions, dict[int, int]]:
    """Users each rate one planted pair and two random fillers (movies 9-20); then one user per
    pair movie has rated only that movie. Returns (pairs, {single user: the partner expected})."""
    rng = np.random.default_rng(seed)
    users, movies, expect = [], [], {}
    for u in range(1, 81):
        a, b = PAIRS[u % len(PAIRS)]
        for m in (a, b, *rng.choice(np.arange(9, 21), 2, replace=False)):
            users.append(u)
            movies.append(int(m))
    for k, (a, b) in enumerate(PAIRS):
        for m, partner in ((a, b), (b, a)):
            u = 100 + 2 * k + (m == b)
            users.append(u)
            movies.append(m)
            expect[u] = partner
    return Interactions.from_pairs(users, movies, [4.0] * len(users)), expect


def test_ease_recovers_a_planted_item_item_structure():
    train, expect = planted()
    model = EASE(lambdas=(10.0,))
    model.fit_pairs(train)
    for u, partner in expect.items():
        hits = model.recommend(u, n=3, exclude=train.of(u))
        assert int(hits.movie_ids[0]) == partner, (u, hits)
    b = model.weights
    assert np.all(np.diag(b) == 0)
    # the read side is the user's training row times B
    users, movies = model.ranking_vectors().ranking_users, model.ranking_vectors().ranking_movies
    row = np.zeros(len(model.movie_ids), np.float32)
    row[np.searchsorted(model.movie_ids, train.of(100))] = 1
    np.testing.assert_allclose(movies.values @ users.get(100), row @ b, rtol=1e-6)


def test_ease_weights_match_the_closed_form():
    from scipy import sparse

    x = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32))
    lam = 2.0
    p = np.linalg.inv(x.T.toarray() @ x.toarray() + lam * np.eye(3))
    expect = np.eye(3) - p / np.diag(p)
    np.testing.assert_allclose(ease_weights(x, lam), expect, atol=1e-6)


def test_ease_blend_picks_on_validation_and_finds_each_hole():
    train, validation, holes = checkerboard(N_USERS, N_MOVIES)
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    blend = EaseBlend(lambdas=(5.0, 50.0), rating_weights=(0.0, 0.1)).fit(rating, train, validation)
    assert blend.name == "ease+rating"
    assert set(blend.params["validation"]["hit_rate_at_10"]) == {"lam=5,w=0", "lam=5,w=0.1", "lam=50,w=0",
                                                                 "lam=50,w=0.1"}
    assert blend.params["lam"] in (5.0, 50.0) and blend.rating_weight in (0.0, 0.1)
    # refit on the fitted pairs and the validation slice: each hole is now a training movie
    for u, hole in holes.items():
        assert hole in blend.implicit.movie_ids[blend.implicit.rows[np.searchsorted(train.user_ids, u)].indices]
    vectors = blend.ranking_vectors()
    eu, em = blend.implicit.vectors()
    u, m = 3, 7
    score = vectors.ranking_users.get(u) @ vectors.ranking_movies.get(m)
    predicted = rating.scoring_users.get(u) @ rating.scoring_movies.get(m)
    assert score == pytest.approx(eu.get(u) @ em.get(m) + blend.rating_weight * predicted, rel=1e-5, abs=1e-6)


def test_ease_picks_lambda_on_validation_before_refitting():
    train, validation, holes = checkerboard(N_USERS, N_MOVIES)
    model = EASE(lambdas=(1.0, 10.0))
    model.fit_pairs(train, validation=validation)
    hr = model.validation["hit_rate_at_10"]
    assert set(hr) == {"lam=1,w=0", "lam=10,w=0"} and max(hr.values()) == 1.0
    # with the holes fitted, a user has nothing left in their block: the top movie is another block's
    assert int(model.recommend(1, n=1, exclude=np.append(train.of(1), holes[1])).movie_ids[0]) > N_MOVIES * 0.6


def test_ease_refuses_a_catalogue_too_large_and_the_config_falls_back(monkeypatch):
    import text_model.ease as ease

    problem = size_problem(100, ease.EASE_MAX_MOVIES + 1)
    assert problem and "EASE_MAX_MOVIES" in problem and "puresvd+rating" in problem and "\n" not in problem
    with pytest.raises(EaseSizeError, match="puresvd\\+rating"):
        check_size(1000, 30_000)
    assert size_problem(943, 1682) is None  # ml-100k fits
    monkeypatch.setattr(ease, "EASE_MAX_MOVIES", 10)
    train, _ = planted()
    with pytest.raises(EaseSizeError, match="EASE_MAX_MOVIES=10"):
        EASE(lambdas=(10.0,)).fit_pairs(train)
    config = TINY.with_overrides(ranking_model="ease+rating")
    assert isinstance(ranking_for(config, 0, 100, 20), Blend)
    assert "EASE_MAX_MOVIES" in ranking_fallback(config, 100, 20)
    assert isinstance(ranking_for(config, 0, 100, 5), EaseBlend) and ranking_fallback(config, 100, 5) is None


def test_the_config_names_ease_and_refuses_an_unknown_ranking_model():
    assert ranking_for(TINY).name == TINY.ranking_model
    assert ranking_for(TINY.with_overrides(ranking_model="ease")).name == "ease"
    assert ranking_for(TINY.with_overrides(ranking_model="puresvd+rating")).name == "puresvd+rating"
    with pytest.raises(ValueError, match="ranking_model must be one of"):
        TINY.with_overrides(ranking_model="nope")
    with pytest.raises(ValueError, match="ease_lambdas"):
        TINY.with_overrides(ease_lambdas=(0.0,))


@pytest.mark.parametrize("kind", ["ease", "ease+rating"])
def test_ease_round_trips_through_a_version_and_reads_as_fitted(tmp_path, kind):
    train, validation, holes = checkerboard(N_USERS, N_MOVIES)
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    model = (EASE(lambdas=(5.0, 50.0)) if kind == "ease" else
             EaseBlend(lambdas=(5.0, 50.0), rating_weights=(0.0, 0.1))).fit(rating, train, validation)
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        rating.save(w)
        model.save(w)
    version = store.open_current()
    again = load_ranking(version, RatingVectors.load(version))
    assert type(again) is type(model) and again.name == kind and again.params == model.params
    a, b = model.ranking_vectors(), RankingVectors.load(version, RatingVectors.load(version))
    np.testing.assert_array_equal(a.ranking_users.values, b.ranking_users.values)
    np.testing.assert_array_equal(a.ranking_movies.values, b.ranking_movies.values)
    for u in (1, 30):
        seen = np.append(train.of(u), holes[u])
        assert np.array_equal(model.recommend(u, 5, seen).movie_ids, b.recommend(u, 5, seen).movie_ids)


def test_a_damaged_ease_artifact_names_the_file(tmp_path):
    from catalog import ArtifactError
    from catalog.version import json_array

    train, validation, _ = checkerboard(N_USERS, N_MOVIES)
    model = EASE(lambdas=(5.0,))
    model.fit_pairs(train)
    arrays = model.to_arrays()
    arrays["ease_weights"] = arrays["ease_weights"][:3]
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        w.write_arrays("ranking", name=json_array("ease"), params=json_array(model.params), **arrays)
    version = store.open_current()
    with pytest.raises(ArtifactError, match="ranking"):
        load_ranking(version, None)


@pytest.mark.parametrize("kind", ["ease", "ease+rating"])
def test_a_visitor_with_a_users_training_movies_folds_in_to_that_user(kind):
    from text_model.fold_in import FoldIn

    train, validation, _ = checkerboard(N_USERS, N_MOVIES)
    rating = hand_rating_vectors(train.user_ids, np.arange(1, N_MOVIES + 1))
    model = (EASE(lambdas=(5.0,)) if kind == "ease" else
             EaseBlend(lambdas=(5.0,), rating_weights=(0.1,))).fit(rating, train)
    vectors = model.ranking_vectors()
    fold = FoldIn.of(rating, vectors, vectors.ranking_movies)
    u = 5
    given = train.of(u)
    v = fold.vector(given, np.full(len(given), 5.0))
    known = vectors.ranking_users.get(u)
    width = 0 if kind == "ease" else rating.scoring_users.dim
    np.testing.assert_array_equal(v[width:], known[width:])  # the binary row, exactly
    assert len(v) == len(known)
