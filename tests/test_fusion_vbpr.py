"""fusion.vbpr on planted data with a known answer: even users like comedies, odd users horror;
comedy posters are yellow with a red sun, horror posters black with white stripes (Pillow)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from movielens_fixture import planted
from test_vision_model_embed import poster_bytes

from catalog import Interactions, Vectors
from fusion.vbpr import (
    VBPRConfig,
    VisualBPR,
    fit_vbpr,
    movie_features,
    validation_split,
)

CONFIG = VBPRConfig(factors=8, visual_factors=4, epochs=30, batch_size=256, learning_rate=0.02, seed=0,
                    min_rating=4)  # everyone rates both kinds: what they like is in the ratings


def pixels(kind: str, seed: int) -> np.ndarray:
    """A poster as the model sees a poster embedding: its 8x6 thumbnail, flattened."""
    from PIL import Image

    img = Image.open(io.BytesIO(poster_bytes(kind, seed))).convert("RGB").resize((6, 8))
    return np.asarray(img, np.float32).reshape(-1) / 255.0


def planted_world(cold=(), no_poster=()):
    ratings, movies, _ = planted()
    kinds = {m: g[0] for m, _t, _y, g in movies}
    cold = set(cold)
    rows = np.array([(u, m, r) for u, m, r, _ in ratings if m not in cold], np.float64)
    train = Interactions.from_pairs(rows[:, 0], rows[:, 1], rows[:, 2])
    with_poster = [m for m in kinds if kinds[m] in ("Comedy", "Horror") and m not in set(no_poster)]
    visual = Vectors(np.array(with_poster), np.stack([pixels("sun" if kinds[m] == "Comedy" else "stripes", m)
                                                      for m in with_poster]))
    return train, visual, kinds, movies


def test_a_cold_comedy_poster_ranks_first_for_even_users():
    _, _, kinds, _ = planted_world()
    comedy = [m for m, k in kinds.items() if k == "Comedy"][:2]
    horror = [m for m, k in kinds.items() if k == "Horror"][:2]
    cold = comedy + horror
    train, visual, kinds, _ = planted_world(cold=cold)
    features = movie_features(list(kinds), visual, poster_dim=8)   # posters only: no genre to lean on
    model = VisualBPR(CONFIG).fit(train, features)
    assert set(cold) <= set(model.movie_ids.tolist()) and not np.isin(cold, train.movie_ids).any()
    cold = np.array(cold)
    scores = model.scores(train.user_ids)[:, np.searchsorted(model.movie_ids, cold)]
    first = cold[np.argmax(scores, axis=1)]
    even = train.user_ids % 2 == 0
    assert np.isin(first[even], comedy).all()
    assert np.isin(first[~even], horror).all()


def test_without_posters_the_cold_movies_are_not_told_apart():
    """The known answer above comes from the posters: with the poster block off it is chance."""
    _, _, kinds, _ = planted_world()
    comedy = [m for m, k in kinds.items() if k == "Comedy"][:2]
    horror = [m for m, k in kinds.items() if k == "Horror"][:2]
    train, _, kinds, _ = planted_world(cold=comedy + horror)
    model = VisualBPR(CONFIG).fit(train, Vectors(np.array(comedy + horror), np.zeros((4, 0), np.float32)))
    s = model.scores(train.user_ids)[:, np.searchsorted(model.movie_ids, comedy + horror)]
    assert np.allclose(s, s[:, :1])  # every cold movie scores the same: nothing to go on


def test_a_movie_without_a_poster_falls_back_to_its_genres():
    _, _, kinds, movies = planted_world()
    comedy = [m for m, k in kinds.items() if k == "Comedy"][0]
    horror = [m for m, k in kinds.items() if k == "Horror"][0]
    train, visual, kinds, movies = planted_world(cold=[comedy, horror], no_poster=[comedy, horror])
    genres = {m: g for m, _t, _y, g in movies}
    features = movie_features(list(kinds), visual, genres, poster_dim=8)
    model = VisualBPR(CONFIG).fit(train, features)
    s = model.scores(train.user_ids)[:, np.searchsorted(model.movie_ids, [comedy, horror])]
    even = train.user_ids % 2 == 0
    assert (s[even, 0] > s[even, 1]).all() and (s[~even, 1] > s[~even, 0]).all()


def test_recommend_never_returns_an_excluded_movie_and_arrays_round_trip():
    train, visual, kinds, _ = planted_world()
    model = fit_vbpr(train, movie_features(list(kinds), visual, poster_dim=8), CONFIG, user_ids=[999])
    seen = train.of(2)
    hits = model.recommend(2, 10, exclude=seen)
    assert len(hits) == 10 and not np.isin(hits.movie_ids, seen).any()
    assert kinds[int(hits.movie_ids[0])] == "Comedy"
    again = VisualBPR.from_arrays(model.to_arrays("x."), model.config.to_dict(), prefix="x.")
    np.testing.assert_allclose(again.scores([2, 3, 999]), model.scores([2, 3, 999]), rtol=1e-6)
    assert model.history["validation"]["best_epoch"] >= 1
    assert np.all(model.scores([999])[0] == model.movie_bias + model.features @ model.feature_bias)


def test_validation_split_holds_out_one_movie_of_each_user_with_enough_ratings():
    train, _, _, _ = planted_world()
    fit, val = validation_split(train, min_ratings=5, seed=1)
    assert len(val.movie_ids) == len(val) == int((train.user_counts() >= 5).sum())
    assert len(fit.movie_ids) + len(val.movie_ids) == len(train.movie_ids)
    for u in val.user_ids:
        assert not np.isin(val.of(u), fit.of(u)).any()


def test_bad_settings_are_refused_with_the_name():
    with pytest.raises(ValueError, match="item_dropout"):
        VBPRConfig(item_dropout=1.5)
    with pytest.raises(ValueError, match="unknown vbpr settings: nope"):
        VBPRConfig.from_dict({"nope": 1})
