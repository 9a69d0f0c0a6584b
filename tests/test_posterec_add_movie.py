"""`add-movie` and ``POST /admin/movies``: a new movie with its poster, without retraining.

The planted fixture of test_posterec_visitors (Pillow posters, embedded by `pixel_embedding`);
the new movie's poster is a horror-red one, so its look-alikes are horror films and a horror
poster's look-alikes include it.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from catalog import DatasetError, ModelStore
from posterec.additions import add_movie
from posterec.recommender import Recommender
from test_posterec_visitors import HORROR, home, pixel_embedding, poster_image  # noqa: F401


def embed(path):
    from PIL import Image

    with Image.open(path) as img:
        return pixel_embedding(img)


def poster_files(home) -> list[str]:
    """The poster store's files (its writer lock file aside)."""
    return sorted(p.name for p in (home / "posters" / "ml-100k").iterdir() if p.name != ".writer.lock")


def poster_bytes(genre="Horror", seed=999, fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    poster_image(genre, seed).save(buf, fmt)
    return buf.getvalue()


def test_an_added_movie_is_found_at_once(home):
    before = ModelStore(home).open_current().name
    added = add_movie(home, "Night of the Added", 2024, "Horror|Thriller", poster_bytes(), embed=embed)
    assert added["movie_id"] == 67 and added["version"] != before
    rec = Recommender.load(home)
    movie = rec.movie(67)
    assert movie["title"] == "Night of the Added" and movie["genres"] == ["Horror", "Thriller"] and movie["has_poster"]
    assert rec.poster_path(67) is not None
    assert 67 in rec.lookalike(34, 30).movie_ids.tolist()
    assert set(rec.lookalike(67, 10).movie_ids.tolist()) <= HORROR
    assert 67 in rec.similar(34, 30, visual_weight=0.5).movie_ids.tolist()
    horror_fan = rec.recommend(7, 66)
    assert 67 in horror_fan.movie_ids.tolist()
    assert 67 in rec.recommend_for(liked=[34, 45, 52], n=40, visual_weight=1.0).movie_ids.tolist()
    # and a second one keeps the first
    add_movie(home, "Second", None, "Comedy", poster_bytes("Comedy", 5, "PNG"), movie_id=500, embed=embed)
    rec = Recommender.load(home)
    assert rec.movie(67)["title"] == "Night of the Added" and rec.movie(500)["year"] is None


@pytest.mark.parametrize("kw, says", [
    ({"title": ""}, "title"),
    ({"year": 1500}, "year"),
    ({"genres": ""}, "genres"),
    ({"genres": "Horror|<b>"}, "genres"),
    ({"movie_id": 3}, "already in the catalogue"),
    ({"poster": b"not an image"}, "poster is not usable"),
    ({"poster": b""}, "poster is not usable"),
])
def test_bad_input_adds_nothing(home, kw, says):
    before = ModelStore(home).open_current().name
    posters = poster_files(home)
    args = {"title": "T", "year": 2000, "genres": "Horror", "poster": poster_bytes(), **kw}
    with pytest.raises((ValueError, DatasetError), match=says):
        add_movie(home, args["title"], args["year"], args["genres"], args["poster"],
                  movie_id=args.get("movie_id"), embed=embed)
    assert ModelStore(home).open_current().name == before
    assert poster_files(home) == posters


def test_a_failure_while_writing_leaves_nothing_half_added(home):
    before = ModelStore(home).open_current().name
    posters = poster_files(home)

    def broken(path):
        raise RuntimeError("the embedder died")

    with pytest.raises(RuntimeError):
        add_movie(home, "T", 2000, "Horror", poster_bytes(), embed=broken)
    with pytest.raises(DatasetError, match="shape"):
        add_movie(home, "T", 2000, "Horror", poster_bytes(), embed=lambda p: np.ones(3))
    assert ModelStore(home).open_current().name == before
    assert poster_files(home) == posters
    with pytest.raises(Exception):
        Recommender.load(home).movie(67)


def test_cli_add_movie(home, tmp_path, capsys, monkeypatch):
    import posterec.additions as additions
    from posterec.cli import main

    monkeypatch.setattr(additions, "default_embedder", lambda version, home: embed)
    path = tmp_path / "p.jpg"
    path.write_bytes(poster_bytes())
    assert main(["--home", str(home), "add-movie", "--title", "Cli Movie", "--year", "2020", "--genres",
                 "Horror", "--poster", str(path)]) == 0
    assert "added movie 67" in capsys.readouterr().out
    assert main(["--home", str(home), "add-movie", "--title", "X", "--genres", "Horror",
                 "--poster", str(tmp_path / "nope.jpg")]) == 1
    assert "no such poster file" in capsys.readouterr().err


def test_admin_movies_endpoint(home, monkeypatch):
    from fastapi.testclient import TestClient

    import posterec.additions as additions
    from posterec.server import TOKEN_ENV, create_app

    monkeypatch.setattr(additions, "default_embedder", lambda version, home: embed)
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    body = {"title": "Api Movie", "year": 2021, "genres": ["Horror"],
            "poster": base64.b64encode(poster_bytes()).decode()}
    with TestClient(create_app(home)) as c:
        assert c.post("/admin/movies", json=body).status_code == 401
        assert c.post("/admin/movies", json=body, headers={"Authorization": "Bearer no"}).status_code == 403
        r = c.post("/admin/movies", json=body, headers=auth)
        assert r.status_code == 201, r.text
        assert r.json()["movie_id"] == 67
        assert c.get("/movies/67").json()["title"] == "Api Movie"
        looks = c.get("/movies/34/lookalike?n=30").json()["results"]
        assert 67 in [m["movie_id"] for m in looks]
        bad = c.post("/admin/movies", json={**body, "poster": "!!!"}, headers=auth)
        assert bad.status_code == 422 and "base64" in bad.text
        bad = c.post("/admin/movies", json={**body, "poster": base64.b64encode(b"junk").decode()}, headers=auth)
        assert bad.status_code == 422 and "poster" in bad.text
        assert c.post("/admin/movies", json={**body, "year": "x"}, headers=auth).status_code == 422


def test_new_ratings_of_a_known_user_change_their_recommendations(home, monkeypatch):
    """User 4 likes comedies; after rating 12 horror films 5 and 12 comedies 1, horror comes first."""
    from fastapi.testclient import TestClient

    from posterec.additions import add_ratings
    from posterec.server import TOKEN_ENV, create_app
    from test_posterec_visitors import COMEDY

    rec = Recommender.load(home)
    assert set(rec.recommend(4, 5).movie_ids.tolist()) <= COMEDY
    unseen = [m for m in range(31, 61) if m not in set(rec.interactions.of(4).tolist())]
    flip = {**{m: 5.0 for m in range(31, 61)}, **{m: 1.0 for m in range(1, 31)}}
    with pytest.raises(ValueError, match="from 1 to 5"):
        add_ratings(home, 4, {31: 9})
    from catalog import UnknownUserError
    with pytest.raises(UnknownUserError):
        add_ratings(home, 999, {31: 4})
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    with TestClient(create_app(home)) as c:
        body = {"ratings": {str(m): r for m, r in flip.items() if m not in unseen[:6]}}
        assert c.post("/users/4/ratings", json=body).status_code == 401
        assert c.post("/users/4/ratings", json={"ratings": {"9999": 4}},
                      headers={"Authorization": "Bearer s3cret"}).status_code == 422
        r = c.post("/users/4/ratings", json=body, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 201, r.text
        got = [m["movie_id"] for m in c.get("/users/4/recommendations?n=5").json()["results"]]
    assert set(got) <= set(unseen[:6]), got


def test_embed_after_add_movie_keeps_the_added_movie(home, monkeypatch):
    import vision_model
    from catalog import Vectors
    from posterec import pipeline
    from vision_model import VisionConfig
    from vision_model.embedder import EmbedResult

    add_movie(home, "Night of the Added", 2024, "Horror", poster_bytes(), embed=embed)

    def fake_embed_posters(entries, config, cache_dir=None, runtime=None, **kw):
        ids = np.array([e.movie_id for e in entries], np.int64)
        return EmbedResult(Vectors(ids, np.vstack([embed(e.path) for e in entries])), n_embedded=len(ids))

    monkeypatch.setattr(vision_model, "embed_posters", fake_embed_posters)
    summary = pipeline.embed(home, "ml-100k", VisionConfig())
    assert 67 in summary.result.vectors.ids and 67 not in summary.strangers
    assert Recommender.load(home).movie(67)["title"] == "Night of the Added"
