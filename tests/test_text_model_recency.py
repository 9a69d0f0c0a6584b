"""EASE's recency weights (`text_model.ease`): the order of a user's ratings, the weighted rows, the
validation grid that picks them on the ``latest`` slice, their round trip, and the slice itself."""
import numpy as np
import pandas as pd
import pytest
from text_model_helpers import hand_rating_vectors, saved_and_loaded

from catalog import Interactions
from text_model import get_config
from text_model.ease import EASE, EaseBlend, fitted_scores, row_weights, weighted_rows
from text_model.ranking import ranking_for, recency_settings, uses_times
from text_model.trainer import ranking_pairs, validation_rows

BLOCK_A, BLOCK_B = np.arange(1, 11), np.arange(11, 21)
N_MIXED = 30


def test_ages_count_from_each_users_latest_rating():
    i = Interactions.from_pairs([2, 1, 1, 1, 2], [5, 3, 4, 9, 1], [1, 2, 3, 4, 5], [10, 30, 20, 30, 5])
    # user 1: movie 9 and 3 at time 30 (the larger id first), then 4; user 2: 5, then 1
    assert i.movie_ids.tolist() == [3, 4, 9, 1, 5]
    assert i.ages().tolist() == [1, 2, 0, 1, 0]
    w = row_weights(i, scale=1.0, boost=2.0)
    np.testing.assert_allclose(w, 1 + 2 * np.exp(-np.array([1, 2, 0, 1, 0], float)), rtol=1e-6)
    assert np.all(row_weights(i, 1.0, 0.0) == 1)
    with pytest.raises(ValueError, match="no times"):
        Interactions.from_pairs([1], [1]).ages()
    with pytest.raises(ValueError, match="times do not fit"):
        Interactions([1], [0, 1], [1], [4.0], times=[1, 2])


def test_weighted_rows_keep_the_largest_weight_of_a_pair_rated_twice():
    i = Interactions.from_pairs([1, 1, 1], [7, 7, 8], [3, 4, 5], [1, 9, 5])   # movie 7 rated at 1 and at 9
    x = weighted_rows(i, np.array([1]), np.array([7, 8]), scale=1.0, boost=1.0)
    np.testing.assert_allclose(x.toarray(), [[2.0, 1 + np.exp(-1.0)]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(30, 50), (70, 25)], ids=["fewer users (Woodbury)", "fewer movies (direct)"])
def test_other_rows_are_scored_through_the_same_b(shape):
    from scipy import sparse

    from text_model.ease import ease_weights

    rng = np.random.default_rng(5)
    dense = rng.random(shape) < 0.3
    dense[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = True
    x = sparse.csr_matrix(dense.astype(np.float32))
    rows = np.arange(0, shape[0], 3)
    other = sparse.csr_matrix(dense[rows] * rng.random((len(rows), shape[1])).astype(np.float32))
    score = fitted_scores(x, 4.0, rows, [other])
    b = ease_weights(x, 4.0).astype(np.float64)
    np.testing.assert_allclose(score(slice(0, len(rows))), x[rows].toarray() @ b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(score(slice(0, len(rows)), 0), other.toarray() @ b, rtol=1e-4, atol=1e-5)


def two_blocks():
    """Two blocks of movies that co-occur (60 users rate six of one block only), and mixed users who
    rated four of each block, one block long ago and the other lately; their next movie, each mixed
    user's latest rating (the validation slice), is from the block they rated lately (block B for
    even users, block A for odd). Returns (fitted, validation, {mixed user: its latest block})."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 61):
        block = BLOCK_A if u % 2 else BLOCK_B
        rows += [(u, int(m), 4.0, 100) for m in rng.choice(block, 6, replace=False)]
    latest, validation = {}, []
    for u in range(100, 100 + N_MIXED):
        old, new = (BLOCK_A, BLOCK_B) if u % 2 == 0 else (BLOCK_B, BLOCK_A)
        picks_old, picks_new = rng.choice(old, 4, replace=False), rng.choice(new, 5, replace=False)
        rows += [(u, int(m), 4.0, 1_000 + t) for t, m in enumerate(picks_old)]
        rows += [(u, int(m), 4.0, 2_000 + t) for t, m in enumerate(picks_new[:4])]
        validation.append((u, int(picks_new[4]), 5.0, 3_000))
        latest[u] = set(new.tolist())
    f, v = pd.DataFrame(rows), pd.DataFrame(validation)
    return (Interactions.from_pairs(f[0], f[1], f[2], f[3]), Interactions.from_pairs(v[0], v[1], v[2], v[3]),
            latest)


def _top_blocks(model: EASE, latest: dict) -> float:
    """Share of the mixed users whose top 3 unseen movies are all from their latest block."""
    vectors = model.ranking_vectors()
    ok = 0
    for u, block in latest.items():
        seen = model.rows[int(np.searchsorted(model.user_ids, u))].indices
        hits = vectors.recommend(u, 3, exclude=model.movie_ids[seen])
        ok += set(hits.movie_ids.tolist()) <= block
    return ok / len(latest)


def test_recency_is_picked_on_the_latest_slice_and_ranks_the_latest_block_first():
    fitted, validation, latest = two_blocks()
    movies = np.arange(1, 21)
    recency = ((3.0, 4.0), (10.0, 1.0))
    on = EASE((10.0, 100.0), recency=recency)
    on.fit_pairs(fitted, None, movies, validation)
    assert (on.recency_scale, on.recency_boost) in recency
    assert on.validation["hit_rate_at_10"]  # the grid ran, recency settings included
    assert any("boost=0," in k for k in on.validation["hit_rate_at_10"])
    assert _top_blocks(on, latest) == 1.0
    # the same data without recency cannot tell the blocks apart: the test can fail
    off = EASE((10.0, 100.0))
    off.fit_pairs(fitted, None, movies, validation)
    assert off.recency_boost == 0.0 and _top_blocks(off, latest) < 0.75
    # without the ratings' times, the rows stay binary whatever the settings
    untimed = EASE((10.0, 100.0), recency=recency)
    untimed.fit_pairs(Interactions(fitted.user_ids, fitted.indptr, fitted.movie_ids, fitted.ratings), None, movies,
                      Interactions(validation.user_ids, validation.indptr, validation.movie_ids, validation.ratings))
    assert untimed.recency_boost == 0.0 and np.all(untimed.rows.data == 1)


def test_a_recency_weighted_blend_survives_its_round_trip(tmp_path):
    fitted, validation, latest = two_blocks()
    user_ids, movie_ids = np.union1d(fitted.user_ids, validation.user_ids), np.arange(1, 21)
    rating = hand_rating_vectors(user_ids, movie_ids)
    blend = EaseBlend((10.0, 100.0), (0.0, 0.01), recency=((3.0, 4.0),)).fit(rating, fitted, validation)
    assert blend.implicit.recency_boost == 4.0 and not np.all(blend.implicit.rows.data == 1)
    saved_and_loaded(tmp_path, rating, blend)


def test_the_config_tries_recency_on_the_latest_slice_only():
    best = get_config("best")
    assert best.validation_slice == "random" and recency_settings(best) == ()
    latest = best.with_overrides(validation_slice="latest")
    assert len(recency_settings(latest)) == len(best.ease_recency_scales) * len(best.ease_recency_boosts)
    assert uses_times(latest, 100, 50) and not uses_times(best, 100, 50)
    assert ranking_for(latest).recency == recency_settings(latest)
    assert not uses_times(latest.with_overrides(ease_recency_boosts=(0.0,)), 100, 50)
    with pytest.raises(ValueError, match="validation_slice"):
        best.with_overrides(validation_slice="newest")
    with pytest.raises(ValueError, match="ease_recency"):
        best.with_overrides(ease_recency_scales=(0.0,))


def test_the_latest_slice_holds_out_each_users_latest_rating():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3], "movie_id": [10, 11, 12, 10, 13, 11],
                          "rating": [4.0, 3.0, 5.0, 2.0, 4.0, 5.0], "timestamp": [5, 9, 7, 3, 1, 8]})
    cfg = get_config("best").with_overrides(validation_slice="latest")
    mask = validation_rows(frame, cfg)
    assert mask.tolist() == [False, True, False, True, False, False]   # user 3 has one rating: kept
    fit, val = ranking_pairs(frame, cfg)
    assert val.user_ids.tolist() == [1, 2] and val.movie_ids.tolist() == [11, 10]
    assert fit.times is not None and val.times.tolist() == [9, 3]      # EASE's recency reads them
    assert ranking_pairs(frame, get_config("best"))[0].times is None
    with pytest.raises(ValueError, match="timestamps"):
        validation_rows(frame.drop(columns="timestamp"), cfg)


def test_train_picks_on_the_latest_slice_for_use_and_leave_last_out(planted_home, monkeypatch):
    import text_model.config as config
    from text_model_helpers import TINY

    from catalog import ModelStore
    from posterec.cli import main

    monkeypatch.setitem(config.CONFIGS, "best", TINY)
    args = ["--home", str(planted_home), "train", "--dataset", "ml-100k", "--progress", "0", "--epochs", "1"]
    slices = {}
    for extra in ((), ("--validation", "random"), ("--split", "random-80-20")):
        assert main([*args, *extra]) == 0
        slices[extra] = ModelStore(planted_home).open_current().stage("train")["config"]["validation_slice"]
    assert slices == {(): "latest", ("--validation", "random"): "random", ("--split", "random-80-20"): "random"}


def test_rows_with_ratings_puts_new_ratings_first_and_ages_the_rest():
    from text_model.ease import rows_with_ratings

    arrays = {"user_ids": np.array([1, 2]), "movie_ids": np.arange(10, 16), "row_indptr": np.array([0, 2, 4]),
              "row_indices": np.array([0, 1, 2, 3], np.int32), "row_data": np.array([3.0, 1.5, 2.0, 1.0], np.float32)}
    params = {"recency_scale": 2.0, "recency_boost": 2.0}
    out = rows_with_ratings(arrays, params, 1, [15, 11, 99])  # 99 is not a known movie: left out
    assert out["row_indptr"].tolist() == [0, 3, 5] and out["row_indices"].tolist() == [0, 1, 5, 2, 3]
    # 15 is the latest (age 0), then 11 (rated again: age 1); movie 10 ages by 2
    expect = [1 + 2.0 * np.exp(-2 / 2.0), 1 + 2 * np.exp(-1 / 2.0), 1 + 2.0, 2.0, 1.0]
    np.testing.assert_allclose(out["row_data"], expect, rtol=1e-6)
    binary = {k: v for k, v in arrays.items() if k != "row_data"}
    out = rows_with_ratings(binary, {}, 2, [10])
    assert out["row_indices"].tolist() == [0, 1, 0, 2, 3] and "row_data" not in out
    with pytest.raises(ValueError, match="no training row"):
        rows_with_ratings(arrays, params, 3, [10])


def test_new_ratings_reach_the_users_ease_row(planted_home, monkeypatch):
    import text_model.config as config
    from text_model_helpers import TINY

    from catalog import ModelStore
    from posterec.additions import add_ratings
    from posterec.cli import main
    from posterec.recommender import Recommender
    from text_model import RatingVectors, load_ranking

    monkeypatch.setitem(config.CONFIGS, "best", TINY)
    assert main(["--home", str(planted_home), "train", "--dataset", "ml-100k", "--progress", "0", "--epochs", "1"]) == 0
    def ease_of():
        version = ModelStore(planted_home).open_current()
        return load_ranking(version, RatingVectors.load(version)).implicit

    before, seen = ease_of(), Recommender.load(planted_home).interactions
    user, other = int(seen.user_ids[0]), int(seen.user_ids[1])
    unseen = [int(m) for m in before.movie_ids if m not in set(seen.of(user).tolist())][:3]
    add_ratings(planted_home, user, {m: 5.0 for m in unseen})
    after = ease_of()
    row = lambda e, u: set(e.movie_ids[e.rows[int(np.searchsorted(e.user_ids, u))].indices].tolist())  # noqa: E731
    assert row(after, user) == row(before, user) | set(unseen)
    assert row(after, other) == row(before, other)
    assert not set(Recommender.load(planted_home).recommend(user, 10).movie_ids.tolist()) & set(unseen)


def test_a_visitors_movies_are_weighted_as_their_latest():
    from text_model.fold_in import FoldIn

    fitted, validation, _ = two_blocks()
    user_ids, movie_ids = np.union1d(fitted.user_ids, validation.user_ids), np.arange(1, 21)
    rating = hand_rating_vectors(user_ids, movie_ids)
    blend = EaseBlend((10.0, 100.0), (0.0, 0.01), recency=((3.0, 4.0),)).fit(rating, fitted, validation)
    rv = blend.ranking_vectors()
    fold = FoldIn.of(rating, rv, rv.ranking_movies)
    ease_part = fold.vector(np.array([3, 12, 7]), np.array([5.0, 5.0, 5.0]))[fold.scoring_width:]
    expect = np.zeros(20)
    expect[[11, 6, 2]] = 1 + 4.0 * np.exp(-np.arange(3) / 3.0)   # movie 12 the latest, then 7, then 3
    np.testing.assert_allclose(ease_part, expect, rtol=1e-6)
    plain = FoldIn.of(rating, EaseBlend((10.0,), (0.0,)).fit(rating, fitted, validation).ranking_vectors(),
                      rv.ranking_movies)
    assert set(plain.vector(np.array([3, 12]), np.array([5.0, 5.0]))[plain.scoring_width:].tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("model", ["ease", "ease+rating", "puresvd+rating"])
def test_relevance_decides_what_a_validation_hit_is(model):
    """Every validation rating is a 1: "liked" finds nothing to hit, "rated" finds each hole."""
    from text_model_helpers import checkerboard

    train, validation, holes = checkerboard(40, 30)
    low = Interactions(validation.user_ids, validation.indptr, validation.movie_ids, np.ones_like(validation.ratings))
    rating = hand_rating_vectors(train.user_ids, np.arange(1, 31))
    cfg = get_config("best").with_overrides(ranking_model=model, ranking_factors=(2, 4))
    rates = {}
    for relevance in ("liked", "rated"):
        fitted = ranking_for(cfg.with_overrides(ranking_relevance=relevance)).fit(rating, train, low)
        grid = fitted.params["validation"]["hit_rate_at_10"]
        rates[relevance] = max(grid.values())
    assert rates == {"liked": 0.0, "rated": 1.0}
    with pytest.raises(ValueError, match="ranking_relevance"):
        cfg.with_overrides(ranking_relevance="watched")
