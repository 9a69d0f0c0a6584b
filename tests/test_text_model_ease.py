"""EASE (`text_model.ease`) on planted data with a known answer, its size limit, its round trip
through a version, and the visitor fold-in."""
import numpy as np
import pytest
from text_model_helpers import TINY, checkerboard, hand_rating_vectors, saved_and_loaded

from catalog import Interactions, ModelStore
from text_model import load_ranking
from text_model.ease import (
    EASE,
    EaseBlend,
    EaseSizeError,
    check_size,
    ease_weights,
    size_problem,
)
from text_model.ranking import Blend, ranking_fallback, ranking_for

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
    from text_model import ease

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
    assert model.name == kind
    b = saved_and_loaded(tmp_path, rating, model)
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


def _random_rows(n_users: int, n_movies: int, seed: int = 0):
    """A seeded binary CSR users x movies, every user and movie with at least one rating."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_movies)) < 0.3
    dense[np.arange(n_users), rng.integers(0, n_movies, n_users)] = True
    dense[rng.integers(0, n_users, n_movies), np.arange(n_movies)] = True
    return sparse.csr_matrix(dense.astype(np.float32))


def _reference_weights(x, lam: float) -> np.ndarray:
    """EASE as the paper writes it: P = (X'X + lam I)^-1 by a general inverse, B = I - P / diag(P)."""
    dense = x.toarray().astype(np.float64)
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(dense.shape[1]))
    b = np.eye(len(p)) - p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


@pytest.mark.parametrize("shape", [(30, 50), (70, 25)], ids=["fewer users (Woodbury)", "fewer movies (direct)"])
@pytest.mark.parametrize("lam", [0.5, 20.0, 500.0])
def test_ease_weights_match_a_general_inverse_on_both_routes(shape, lam):
    from text_model.ease import _users_route

    x = _random_rows(*shape)
    assert _users_route(x) == (shape[0] < shape[1])
    b = ease_weights(x, lam)
    assert b.dtype == np.float32 and b.shape == (shape[1], shape[1]) and np.all(np.diag(b) == 0)
    ref = _reference_weights(x, lam)
    np.testing.assert_allclose(b, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("shape", [(30, 50), (70, 25)], ids=["fewer users (Woodbury)", "fewer movies (direct)"])
def test_fitted_scores_are_the_rows_times_b(shape):
    from text_model.ease import fitted_scores

    x = _random_rows(*shape, seed=1)
    rows = np.arange(1, shape[0], 2)
    score = fitted_scores(x, 7.0, rows)
    ref = x[rows].toarray() @ _reference_weights(x, 7.0)
    got = np.vstack([score(slice(0, 5)), score(slice(5, len(rows)))])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_the_spd_inverse_falls_back_when_the_matrix_is_not_positive_definite():
    from text_model.ease import _spd_inverse

    spd = np.array([[4.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(_spd_inverse(spd.copy()), np.linalg.inv(spd))
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(_spd_inverse(indefinite.copy()), np.linalg.inv(indefinite))


@pytest.mark.parametrize("shape", [(30, 50), (70, 25)], ids=["fewer users (Woodbury)", "fewer movies (direct)"])
@pytest.mark.parametrize("cache", [True, False], ids=["ratings kept across lam", "ratings per lam"])
def test_the_validation_grid_equals_a_plain_reference_grid(shape, cache, monkeypatch):
    """`_grid` (Woodbury scores, Cholesky inverses, predicted ratings computed once) gives the hit
    rates of the plain loop: B by a general inverse per lam, scores = row @ B + w * rating, top 10."""
    from text_model import ease

    if not cache:
        monkeypatch.setattr(ease, "RATED_CACHE_BYTES", 0)
    n_users, n_movies = shape
    x = _random_rows(n_users, n_movies, seed=2)
    user_ids, movie_ids = np.arange(1, n_users + 1) * 10, np.arange(1, n_movies + 1) * 3
    rng = np.random.default_rng(3)
    dense = x.toarray() > 0
    vu, vm, vr = [], [], []
    for u in range(0, n_users, 2):       # every other user holds out two unrated movies, liked or not
        free = np.flatnonzero(~dense[u])
        for m in rng.choice(free, min(2, len(free)), replace=False):
            vu.append(user_ids[u])
            vm.append(movie_ids[m])
            vr.append(float(rng.choice([2.0, 5.0])))
    validation = Interactions.from_pairs(vu, vm, vr)
    rating = hand_rating_vectors(user_ids, movie_ids, seed=4)
    lambdas, weights = (1.0, 10.0, 100.0), (0.0, 0.1, 1.0)
    got = ease._grid(x, lambdas, weights, user_ids, movie_ids, validation, rating, 10, None)

    predicted = rating.scoring_users.values @ rating.scoring_movies.values.T
    expect = {}
    for lam in lambdas:
        b = _reference_weights(x, lam)
        for w in weights:
            hits, users = 0, sorted(set(vu))
            for uid in users:
                u = int(np.searchsorted(user_ids, uid))
                s = dense[u] @ b + w * predicted[rating.user_rows([uid])[0]]
                s[dense[u]] = -np.inf
                top = np.argsort(-s, kind="stable")[:10]
                liked = {int(np.searchsorted(movie_ids, m)) for a, m, r in zip(vu, vm, vr) if a == uid and r >= 4.0}
                hits += bool(liked & set(top.tolist()))
            expect[f"lam={lam:g},w={w:g}"] = hits / len(users)
    assert got == expect
    assert len(set(got.values())) > 1  # the grid tells its settings apart
