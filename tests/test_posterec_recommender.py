"""The `Recommender` facade over a model version with planted vectors (no training needed).

Comedies (movies 1-30) and horror films (31-60) are apart in both spaces; movie 5 has a poster
but no ratings, movie 40 ratings but no poster. Even users like comedies, odd users horror.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from catalog import ArtifactError, ModelStore, SeenItems, UnknownMovieError, UnknownUserError, Vectors
from posterec.cli import main
from posterec.commands.index import build_index
from posterec.recommender import Recommender

COMEDY, HORROR = set(range(1, 31)), set(range(31, 61))


def _planted_vectors(ids, dim, seed, flip=False):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 0.15, (len(ids), dim)).astype(np.float32)
    for k, m in enumerate(ids):
        values[k, 0 if (m in COMEDY) != flip else 1] += 1.0
        if m > 60:
            values[k, 2] += 1.0
    return Vectors(np.asarray(ids), values)


@pytest.fixture
def home(planted_home, planted_data):
    ratings, movies, users = planted_data
    movie_ids = [m for m, *_ in movies]
    user_ids = [u for u, *_ in users]
    collab = _planted_vectors([m for m in movie_ids if m != 5], 8, 1)
    visual = _planted_vectors([m for m in movie_ids if m != 40], 16, 2)
    user_vecs = np.zeros((len(user_ids), 8), np.float32)
    for k, u in enumerate(user_ids):
        user_vecs[k, 0 if u % 2 == 0 else 1] = 1.0
    users = Vectors(np.asarray(user_ids), user_vecs)
    with ModelStore(planted_home).new_version() as w:
        collab.save(w.path / "collab.npz")
        visual.save(w.path / "visual.npz")
        users.save(w.path / "users.npz")
        for prefix in ("scoring", "ranking"):
            users.save(w.path / f"{prefix}_users.npz")
            collab.save(w.path / f"{prefix}_movies.npz")
        SeenItems.from_pairs([r[0] for r in ratings], [r[1] for r in ratings]).save(w.path / "seen.npz")
        w.manifest["dataset"] = "ml-100k"
    build_index(ModelStore(planted_home), visual_weight=0.5)
    return planted_home


def test_similar_follows_the_planted_genres_at_every_weight(home):
    rec = Recommender.load(home)
    for w in (0.0, 0.5, 1.0):
        hits = rec.similar(3, 10, visual_weight=w)
        assert len(hits) == 10
        assert 3 not in [h["movie_id"] for h in hits]
        assert {h["movie_id"] for h in hits} <= COMEDY
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_a_movie_without_ratings_is_found_by_its_poster_and_the_reverse(home):
    rec = Recommender.load(home)
    assert {h["movie_id"] for h in rec.similar(5, 8, visual_weight=0.0)} <= COMEDY  # no ratings
    assert {h["movie_id"] for h in rec.similar(40, 8, visual_weight=1.0)} <= HORROR  # no poster
    assert 5 in {h["movie_id"] for h in rec.lookalike(7, 29)}
    with pytest.raises(UnknownMovieError, match="no poster"):
        rec.lookalike(40)


def test_recommend_returns_unseen_liked_genre(home, planted_data):
    ratings = planted_data[0]
    rec = Recommender.load(home)
    seen = {m for u, m, *_ in ratings if u == 4}
    for w, hybrid in ((0.0, "rerank"), (0.5, "rerank"), (1.0, "rerank"), (0.5, "fused")):
        hits = rec.recommend(4, 5, visual_weight=w, hybrid=hybrid)
        ids = {h["movie_id"] for h in hits}
        assert ids and ids <= COMEDY - seen
        assert all(h["because"]["movie_id"] in COMEDY for h in hits)
    assert {h["movie_id"] for h in rec.recommend(7, 5, visual_weight=0.0)} <= HORROR


def test_errors_and_search(home):
    rec = Recommender.load(home)
    with pytest.raises(UnknownMovieError):
        rec.similar(999)
    with pytest.raises(UnknownUserError):
        rec.recommend(999)
    with pytest.raises(ValueError, match="visual weight"):
        rec.similar(3, visual_weight=1.5)
    with pytest.raises(ValueError, match="n must be"):
        rec.similar(3, 0)
    found = rec.search_movies("laugh", 50)
    assert found and all("laugh" in f["title"].lower() for f in found)
    assert rec.counts()["posters"] == 65


def test_a_stale_index_is_not_used(home):
    """After a new collab.npz the old fused index (built at weight 0.5) must not answer."""
    store = ModelStore(home)
    new = _planted_vectors([m for m in range(1, 67) if m != 5], 8, 3, flip=True)
    with store.new_version() as w:
        new.save(w.path / "collab.npz")
    rec = Recommender.load(home)
    visual = Vectors.load(store.current() / "visual.npz")

    def cos(v, a, b):
        x, y = v.get(a), v.get(b)
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    for hit in rec.similar(3, 5, visual_weight=0.5):
        m = hit["movie_id"]
        assert hit["score"] == pytest.approx(0.5 * cos(new, 3, m) + 0.5 * cos(visual, 3, m), abs=1e-5)


def test_cli_queries_json(home, capsys):
    assert main(["--home", str(home), "similar", "3", "-n", "4", "--visual-weight", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [set(r) >= {"movie_id", "title", "year", "genres", "score"} for r in out["results"]] == [True] * 4
    assert main(["--home", str(home), "recommend", "999"]) == 1
    assert "user 999" in capsys.readouterr().err


def test_no_model_is_a_clear_error(planted_home):
    with pytest.raises(ArtifactError, match="posterec .*train"):
        Recommender.load(planted_home)


def test_a_poster_only_movie_can_be_recommended(home):
    """build-index estimates ranking vectors for movie 5 (poster, no ratings) from its poster and
    metadata; it lands among the comedies an even user is offered."""
    assert (ModelStore(home).current() / "ranking_cold.npz").exists()
    rec = Recommender.load(home)
    users, movies = rec.ranking
    assert 5 in movies
    scores = {int(m): float(v @ users.get(4)) for m, v in zip(movies.ids, movies.values)}
    comedy = [scores[m] for m in COMEDY if m != 5 and m in scores]
    horror = [scores[m] for m in HORROR if m in scores]
    assert scores[5] > np.mean(horror) and scores[5] > np.percentile(comedy, 10)
