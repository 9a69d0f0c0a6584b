"""The `Recommender` facade over a model version with planted vectors (no training needed).

Comedies (movies 1-30) and horror films (31-60) are apart in both spaces; movie 5 has a poster
but no ratings, movie 40 ratings but no poster. Even users like comedies, odd users horror.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from catalog import ArtifactError, ModelStore, UnknownMovieError, UnknownUserError, Vectors
from posterec.cli import main
from posterec.pipeline import build_index, visual_vectors
from posterec.recommender import Recommender
from version_helpers import write_planted_version

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
    rated = [r[:3] for r in ratings if r[1] != 5]  # movie 5: a poster, no ratings
    write_planted_version(planted_home, Vectors(np.asarray(user_ids), user_vecs), collab, visual, rated)
    build_index(planted_home, visual_weight=0.5)
    return planted_home


def ids(hits):
    return hits.movie_ids.tolist()


def test_similar_follows_the_planted_genres_at_every_weight(home):
    rec = Recommender.load(home)
    for w in (0.0, 0.5, 1.0):
        hits = rec.similar(3, 10, visual_weight=w)
        assert len(hits.movie_ids) == 10
        assert 3 not in ids(hits)
        assert set(ids(hits)) <= COMEDY
        assert hits.scores.tolist() == sorted(hits.scores.tolist(), reverse=True)


def test_a_movie_without_ratings_is_found_by_its_poster_and_the_reverse(home):
    rec = Recommender.load(home)
    assert set(ids(rec.similar(5, 8, visual_weight=0.0))) <= COMEDY  # no ratings
    assert set(ids(rec.similar(40, 8, visual_weight=1.0))) <= HORROR  # no poster
    assert 5 in ids(rec.lookalike(7, 29))
    with pytest.raises(UnknownMovieError, match="no poster"):
        rec.lookalike(40)


def test_recommend_returns_unseen_liked_genre(home, planted_data):
    ratings = planted_data[0]
    rec = Recommender.load(home)
    seen = {m for u, m, *_ in ratings if u == 4 and m != 5}  # what the model was given (movie 5: none)
    for w in (0.0, 0.5, 1.0):
        hits = rec.recommend(4, 5, visual_weight=w)
        assert ids(hits) and set(ids(hits)) <= COMEDY - seen
        assert set(hits.because.tolist()) <= COMEDY
        described = rec.describe(hits)
        assert [d["because"]["movie_id"] for d in described] == hits.because.tolist()
    assert set(ids(rec.recommend(7, 5, visual_weight=0.0))) <= HORROR


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


def test_a_new_rating_model_drops_the_old_index(home):
    """After a new rating model the old fused index (built at weight 0.5) is gone from the version,
    and similar answers from the new vectors."""
    old = ModelStore(home).open_current()
    assert old.has("index")
    new = _planted_vectors([m for m in range(1, 67) if m != 5], 8, 3, flip=True)
    users = Vectors(np.arange(1, 61), np.eye(8, dtype=np.float32)[np.arange(60) % 2])
    version = write_planted_version(home, users, new, visual_vectors(old))
    assert not version.has("index") and not version.has("cold_start")
    rec = Recommender.load(home)
    visual = visual_vectors(version)

    def cos(v, a, b):
        x, y = v.get(a), v.get(b)
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    hits = rec.similar(3, 5, visual_weight=0.5)
    for m, score in zip(ids(hits), hits.scores):
        assert score == pytest.approx(0.5 * cos(new, 3, m) + 0.5 * cos(visual, 3, m), abs=1e-5)


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
    version = ModelStore(home).open_current()
    assert version.has("cold_start")
    rec = Recommender.load(home)
    everything = rec.recommend(4, 60, visual_weight=0.0)
    assert 5 in ids(everything)
    rank = ids(everything).index(5)
    horror_ranks = [k for k, m in enumerate(ids(everything)) if m in HORROR]
    assert rank < min(horror_ranks)


def test_also_liked_goes_to_the_fans_favourites(home):
    rec = Recommender.load(home)
    hits = rec.also_liked(3, 10)  # comedy fans (even users) like comedies
    assert 3 not in ids(hits) and set(ids(hits)) <= COMEDY


def test_export_recommendations_ranks_as_recommend(home, tmp_path):
    out = tmp_path / "recs.csv"
    assert main(["--home", str(home), "export-recommendations", "-n", "5", "--out", str(out)]) == 0
    import csv

    rows = list(csv.DictReader(open(out)))
    rec = Recommender.load(home)
    for user in (4, 7, 10):
        exported = [int(r["movie_id"]) for r in rows if int(r["user_id"]) == user]
        assert exported == ids(rec.recommend(user, 5, visual_weight=0.0))
