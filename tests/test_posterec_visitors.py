"""Visitors the model has never seen: fold-in (`Recommender.recommend_for`), the poster wall,
the CLI flags and ``POST /recommendations``, on the planted fixture.

Comedies are movies 1-30, horror films 31-60, dramas 61-66. Posters are Pillow images: yellow
for comedies, dark red for horror (grey for dramas), embedded by `pixel_embedding` (a small
colour thumbnail), so the poster taste follows what the images show.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from catalog import Interactions, ModelStore, UnknownMovieError, Vectors
from conftest import served
from posterec.cli import main
from posterec.pipeline import build_index
from posterec.recommender import Recommender
from version_helpers import write_planted_version

COMEDY, HORROR, DRAMA = set(range(1, 31)), set(range(31, 61)), set(range(61, 67))
COLOURS = {"Comedy": (236, 200, 40), "Horror": (110, 12, 20), "Drama": (120, 120, 130)}


def genre_of(m: int) -> str:
    return "Comedy" if m in COMEDY else "Horror" if m in HORROR else "Drama"


def poster_image(genre: str, seed: int):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    colour = tuple(int(c) for c in np.clip(np.array(COLOURS[genre]) + rng.normal(0, 15, 3), 0, 255))
    img = Image.new("RGB", (60, 90), colour)
    d = ImageDraw.Draw(img)
    y = int(rng.integers(40, 70))
    d.rectangle([5, y, 55, y + 15], fill=(20, 20, 20))
    return img


def pixel_embedding(img) -> np.ndarray:
    """A poster's look as a vector: its 4x6 colour thumbnail, centred and L2-normalised."""
    x = np.asarray(img.convert("RGB").resize((4, 6)), np.float32).reshape(-1) / 255.0
    x = np.concatenate([x, [1.0]])
    return (x / np.linalg.norm(x)).astype(np.float32)


def write_posters(home, movie_ids, dataset="ml-100k") -> Vectors:
    folder = home / "posters" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    values = []
    for m in movie_ids:
        img = poster_image(genre_of(m), m)
        img.save(folder / f"{m}.jpg", "JPEG", quality=90)
        values.append(pixel_embedding(img))
    return Vectors(np.asarray(movie_ids, np.int64), np.vstack(values))


def planted_collab(ids, dim=8, seed=1):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 0.15, (len(ids), dim)).astype(np.float32)
    for k, m in enumerate(ids):
        values[k, 0 if m in COMEDY else 1 if m in HORROR else 2] += 1.0
    return Vectors(np.asarray(ids, np.int64), values)


@pytest.fixture
def home(planted_home, planted_data):
    """A rating model ranked by the predicted rating, Pillow posters, an index."""
    ratings, movies, users = planted_data
    movie_ids = [m for m, *_ in movies]
    user_ids = np.array([u for u, *_ in users])
    user_vecs = np.zeros((len(user_ids), 8), np.float32)
    user_vecs[np.arange(len(user_ids)), np.where(user_ids % 2 == 0, 0, 1)] = 1.0
    visual = write_posters(planted_home, movie_ids)
    write_planted_version(planted_home, Vectors(user_ids, user_vecs), planted_collab(movie_ids), visual,
                          [r[:3] for r in ratings])
    build_index(planted_home, visual_weight=0.5)
    return planted_home


@pytest.fixture
def blend_home(planted_home, planted_data):
    """The same with the `puresvd+rating` blend as the ranking model (what `train` writes)."""
    from text_model.ranking import Blend

    ratings, movies, users = planted_data
    movie_ids = np.array([m for m, *_ in movies])
    user_ids = np.array([u for u, *_ in users])
    user_vecs = np.zeros((len(user_ids), 8), np.float32)
    user_vecs[np.arange(len(user_ids)), np.where(user_ids % 2 == 0, 0, 1)] = 1.0
    write_planted_version(planted_home, Vectors(user_ids, user_vecs), planted_collab(movie_ids),
                          ratings=[r[:3] for r in ratings],
                          ranking=Blend(ks=(4,), rating_weights=(0.3,)).fit)
    return planted_home


def ids(hits):
    return hits.movie_ids.tolist()


def test_a_visitor_who_likes_three_comedies_gets_comedies(home):
    rec = Recommender.load(home)
    for w in (0.0, 0.5, 1.0):
        hits = rec.recommend_for(liked=[2, 7, 11], n=8, visual_weight=w)
        assert len(hits) == 8
        assert set(ids(hits)) <= COMEDY - {2, 7, 11}
        assert set(hits.because.tolist()) <= {2, 7, 11}
    d = rec.describe(rec.recommend_for(liked=[2, 7, 11], n=3))
    assert all(x["because"]["movie_id"] in (2, 7, 11) for x in d)


def test_ratings_steer_the_visitor_both_ways(home):
    rec = Recommender.load(home)
    hits = rec.recommend_for(ratings={3: 1, 5: 1.5, 33: 5, 40: 4.5}, n=10)
    assert set(ids(hits)) <= HORROR - {33, 40}
    hits = rec.recommend_for(ratings=[(3, 5), (33, 1)], liked=[9], n=10)
    assert set(ids(hits)) <= COMEDY - {3, 9}


def test_three_horror_posters_get_horror_by_looks(home):
    """A model whose rating part knows nothing of genres (random collaborative vectors): only
    the posters can tell, and under visual_weight=1 they do."""
    old = ModelStore(home).open_current()
    from posterec.pipeline import visual_vectors

    rng = np.random.default_rng(5)
    movie_ids = np.arange(1, 67)
    users = Vectors(np.arange(1, 61), rng.normal(0, 1, (60, 8)).astype(np.float32))
    collab = Vectors(movie_ids, rng.normal(0, 1, (66, 8)).astype(np.float32))
    write_planted_version(home, users, collab, visual_vectors(old), [(u, 1 + u % 66, 3) for u in range(1, 61)])
    rec = Recommender.load(home)
    hits = rec.recommend_for(liked=[34, 45, 52], n=10, visual_weight=1.0)
    assert set(ids(hits)) <= HORROR - {34, 45, 52}
    assert set(ids(rec.lookalike(34, 10))) <= HORROR


def test_co_ratings_are_the_cosine_of_likes():
    """Hand-checkable: 4 users, 4 movies; a like is a rating >= 4."""
    from posterec.visitor import CoRatings

    rows = [(1, 10, 5), (1, 20, 4), (1, 30, 1), (2, 10, 4), (2, 20, 5), (3, 10, 5), (3, 30, 5),
            (4, 40, 2), (4, 20, 4)]
    u, m, r = (np.array(c, np.float64) for c in zip(*rows))
    inter = Interactions.from_pairs(u, m, r)
    co = CoRatings.of(inter, [10, 20, 30, 40, 50], liked_min=4.0)
    likes = np.zeros((4, 5))
    for a, b, c in rows:
        if c >= 4:
            likes[a - 1, [10, 20, 30, 40, 50].index(b)] = 1
    n = likes.sum(axis=0)
    cos = likes.T @ likes / np.sqrt(np.outer(np.maximum(n, 1), np.maximum(n, 1)))
    np.fill_diagonal(cos, 0)
    got = co.contributions([20, 10, 50, 999])
    np.testing.assert_allclose(got[0], cos[1])          # 20 with 10: 2 / sqrt(3 * 3)
    assert got[0, 0] == pytest.approx(2 / 3) and got[0, 2] == 0  # nobody liked both 20 and 30
    np.testing.assert_allclose(got[1], cos[0])
    assert not got[2].any() and not got[3].any()        # liked by nobody / not in the catalogue
    # a capped sample of likers is scaled back to all of them
    one = CoRatings.of(inter, [10, 20, 30, 40, 50], liked_min=4.0, max_likers=1).contributions([10])[0]
    assert one[0] == 0 and one.any() and set(np.round(one[1:] * np.sqrt(n[1:].clip(1)) * np.sqrt(3) / 3, 6)) <= {0.0, 1.0}


@pytest.fixture
def uninformed_home(home, planted_data):
    """The planted ratings (even users like comedies, odd users horror) with a ranking model
    that knows nothing (random vectors): only who liked what can tell the genres apart."""
    from posterec.pipeline import visual_vectors

    old = ModelStore(home).open_current()
    rng = np.random.default_rng(5)
    users = Vectors(np.arange(1, 61), rng.normal(0, 1, (60, 8)).astype(np.float32))
    collab = Vectors(np.arange(1, 67), rng.normal(0, 1, (66, 8)).astype(np.float32))
    write_planted_version(home, users, collab, visual_vectors(old), [r[:3] for r in planted_data[0]])
    return home


def test_likes_alone_are_scored_by_who_liked_them(uninformed_home):
    rec = Recommender.load(uninformed_home)
    liked = [2, 7, 11]
    hits = rec.recommend_for(liked=liked, n=10)
    assert set(ids(hits)) <= COMEDY - set(liked)
    # each "because" is the liked movie whose likers liked the recommendation most
    part = rec._co_ratings()[0].contributions(liked)
    cols = np.searchsorted(rec._co_ratings()[0].movie_ids, hits.movie_ids)
    assert hits.because.tolist() == [liked[t] for t in np.argmax(part[:, cols], axis=0)]
    np.testing.assert_allclose(hits.scores, part[:, cols].sum(axis=0), rtol=1e-5)
    # ratings keep the fold-in (here: a ranking model that knows nothing)
    folded = rec.recommend_for(ratings={m: 5 for m in liked}, n=10)
    assert ids(folded) != ids(hits)


def test_likes_alone_under_visual_weight_1_are_ranked_by_look(uninformed_home):
    rec = Recommender.load(uninformed_home)
    liked = [34, 45, 52]
    hits = rec.recommend_for(liked=liked, n=20, visual_weight=1.0)
    taste = rec._visitor_taste(rec._visitor(None, liked))
    others = np.array([m for m in range(1, 67) if m not in liked])
    v = rec.visual.subset(others).values
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ taste
    assert ids(hits) == others[np.argsort(-cos, kind="stable")][:20].tolist()
    assert set(ids(hits)[:10]) <= HORROR
    looks = rec.recommend_for(liked=liked, n=5, visual_weight=1.0).because
    near = [liked[int(np.argmax([rec.visual.get(m) @ rec.visual.get(x) /
                                 np.linalg.norm(rec.visual.get(m)) / np.linalg.norm(rec.visual.get(x))
                                 for x in liked]))] for m in ids(hits)[:5]]
    assert looks.tolist() == near


def test_never_a_movie_given_and_n_is_kept(home):
    rec = Recommender.load(home)
    given = {m: 5 for m in range(1, 25)}
    hits = rec.recommend_for(ratings=given, n=60)
    assert not set(ids(hits)) & set(given)
    assert len(hits) == 66 - 24 == len(set(ids(hits)))  # every other movie
    with pytest.raises(ValueError, match="n must be"):
        rec.recommend_for(liked=[1], n=100_000)


def test_input_rules(home):
    rec = Recommender.load(home)
    with pytest.raises(UnknownMovieError, match="9999, 8888"):
        rec.recommend_for(ratings={9999: 4}, liked=[1, 8888])
    with pytest.raises(ValueError, match=r"from 1 to 5.*movie 3: 7.*movie 4: 0"):
        rec.recommend_for(ratings={3: 7, 4: 0, 5: 4})
    with pytest.raises(ValueError, match="movie 3: nan"):
        rec.recommend_for(ratings={3: float("nan")})
    empty = rec.recommend_for(n=5)
    popular = [m["movie_id"] for m in rec.popular_movies(5)]
    assert ids(empty) == popular and set(empty.because.tolist()) == {-1}


def test_folding_in_a_known_users_ratings_gives_their_own_recommendations(blend_home):
    """puresvd+rating: the fold-in of a known user's training ratings lands in the blend's
    augmented space next to their learned vector, so the recommendations agree."""
    rec = Recommender.load(blend_home)
    assert rec.ranking_model.name == "puresvd+rating"
    overlaps = []
    for user in range(1, 21):
        movies, ratings = rec.interactions.ratings_of(user)
        own = rec._ranking_users.get(user)
        folded = rec.visitor_vector(ratings=list(zip(movies.tolist(), ratings.tolist())))
        k = rec.ranking_model.params["k"]
        # PureSVD part: V'x == U S, exact up to the randomised SVD's error
        assert np.linalg.norm(folded[-k:] - own[-k:]) < 0.1 * np.linalg.norm(own[-k:])
        mine = set(ids(rec.recommend(user, 10)))
        theirs = set(ids(rec.recommend_for(ratings=dict(zip(movies.tolist(), ratings.tolist())), n=10)))
        overlaps.append(len(mine & theirs) / 10)
    assert np.mean(overlaps) >= 0.8, overlaps


def test_poster_wall_is_spread_and_dealt_anew(home):
    rec = Recommender.load(home)
    wall = rec.poster_wall(24, seed=0)
    got = [m["movie_id"] for m in wall]
    assert len(got) == 24 == len(set(got)) and all(m["has_poster"] for m in wall)
    kinds = {genre_of(m) for m in got}
    assert kinds == {"Comedy", "Horror", "Drama"}
    assert rec.poster_wall(24, seed=0) == wall
    other = [m["movie_id"] for m in rec.poster_wall(24, seed=1)]
    assert other != got
    assert not {1, 2, 3} & {m["movie_id"] for m in rec.poster_wall(24, seed=0, exclude=[1, 2, 3])}


def test_recommend_for_is_fast(home):
    import time

    rec = Recommender.load(home)
    rec.recommend_for(liked=[1, 2, 3])
    t = time.perf_counter()
    for _ in range(20):
        rec.recommend_for(liked=[1, 2, 3], ratings={40: 2}, visual_weight=0.5)
    assert (time.perf_counter() - t) / 20 < 0.05


def test_cli_liked_and_ratings_file(home, tmp_path, capsys):
    assert main(["--home", str(home), "recommend", "--liked", "2,7,11", "-n", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 4 and {r["movie_id"] for r in out["results"]} <= COMEDY
    path = tmp_path / "mine.csv"
    path.write_text("movie_id,rating\n33,5\n40,4.5\n3,1\n")
    assert main(["--home", str(home), "recommend", "--ratings", str(path), "-n", "3"]) == 0
    assert capsys.readouterr().out.count("\n") == 3
    path.write_text("movie_id,rating\n33,9\n")
    assert main(["--home", str(home), "recommend", "--ratings", str(path)]) == 1
    assert "from 1 to 5" in capsys.readouterr().err
    assert main(["--home", str(home), "recommend", "--liked", "1,9999"]) == 1
    assert "9999" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "recommend", "4", "--liked", "1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "recommend"])
    assert exc.value.code == 2


# -- HTTP ---------------------------------------------------------------------------------------

@pytest.fixture
def client(home):
    from fastapi.testclient import TestClient

    from posterec.server import create_app

    with TestClient(create_app(home)) as c:
        yield c


def test_post_recommendations_answers_like_a_users_recommendations(client):
    r = client.post("/recommendations", json={"liked": [2, 7], "ratings": {"11": 4.5}, "n": 5,
                                              "visual_weight": 0.5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["basis"] == "visitor" and body["visual_weight"] == 0.5
    items = body["results"]
    assert len(items) == 5 and {i["movie_id"] for i in items} <= COMEDY - {2, 7, 11}
    user_items = client.get("/users/4/recommendations?n=5").json()["results"]
    assert set(items[0]) == set(user_items[0])
    assert all(i["because"]["movie_id"] in (2, 7, 11) for i in items)
    popular = client.post("/recommendations", json={}).json()
    assert popular["basis"] == "popular" and len(popular["results"]) == 10
    assert client.post("/recommendations", json={"liked": [1], "n": 5000}).status_code == 200


@pytest.mark.parametrize("body, says", [
    ({"liked": [1, 9999, 8888]}, "9999, 8888"),
    ({"ratings": {"3": 7}}, "from 1 to 5"),
    ({"ratings": {"3": -1, "4": 4}}, "movie 3"),
    ({"ratings": {"x": 4}}, "pattern"),
    ({"ratings": {"3": "four"}}, "number"),
    ({"liked": ["1"]}, "integer"),
    ({"liked": [1], "extra": 1}, "Extra"),
    ({"n": 0}, "greater than"),
    ({"visual_weight": 2}, "less than"),
])
def test_post_recommendations_422(client, body, says):
    r = client.post("/recommendations", json=body)
    assert r.status_code == 422, r.text
    assert says in json.dumps(r.json())


def test_post_recommendations_bad_json_and_big_bodies(client):
    r = client.post("/recommendations", content=b'{"liked": [1,', headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/recommendations", content=b'{"ratings": {"1": NaN}}')
    assert r.status_code == 422
    assert client.post("/recommendations", content=b"[" * 70_000).status_code == 413


def test_wall_and_visitor_page(client):
    wall = client.get("/wall?n=12&seed=3").json()
    assert wall["seed"] == 3 and len(wall["results"]) == 12
    assert all(m["poster_url"] for m in wall["results"])
    assert client.get("/wall?exclude=1,x").status_code == 422
    page = client.get("/visitor")
    assert page.status_code == 200 and "visitor.js" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_fake_recommender_speaks_the_visitor_protocol(tmp_path):
    from fastapi.testclient import TestClient

    from fake_recommender import FakeRecommender, make_fake_home
    from posterec.server import create_app

    home = make_fake_home(tmp_path / "fake-home")
    with TestClient(create_app(home, loader=FakeRecommender.load)) as c:
        items = c.post("/recommendations", json={"liked": [1, 2, 3]}).json()["results"]
        assert all(i["movie_id"] <= 20 for i in items)
        assert c.post("/recommendations", json={"liked": [999]}).status_code == 422
        assert len(c.get("/wall?n=6").json()["results"]) == 6


# -- the page in real Chromium --------------------------------------------------------------------

from test_posterec_browser import page  # noqa: E402,F401  (the Chromium fixture; skips without it)


@pytest.fixture
def live_home_url(home):
    from posterec.server import create_app

    with served(create_app(home)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.browser
def test_visitor_page_likes_three_posters_and_recommendations_follow(live_home_url, page, tmp_path):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.goto(f"{live_home_url}/visitor")
    page.wait_for_selector("#wall .wall-card")
    page.wait_for_selector("#recs .card")
    assert "most popular" in page.inner_text("#recs-note")
    assert page.locator("#wall .wall-card").count() == 24

    def recs():
        return [int(h.split("/")[-1]) for h in page.eval_on_selector_all("#recs .card", "els => els.map(e => e.getAttribute('href'))")]

    before = recs()
    horror_cards = [c for c in page.locator("#wall .wall-card").all() if int(c.get_attribute("data-movie-id")) in HORROR]
    picked = [int(c.get_attribute("data-movie-id")) for c in horror_cards[:3]]
    horror_cards[0].click()
    horror_cards[1].click()
    horror_cards[2].focus()
    page.keyboard.press("Enter")  # the keyboard likes a poster too
    page.wait_for_selector("#recs-note:has-text('3 posters')")
    page.wait_for_timeout(300)
    after = recs()
    assert after != before
    assert set(after) <= HORROR - set(picked), after
    assert all(page.locator(f'.wall-card[data-movie-id="{m}"]').get_attribute("aria-pressed") == "true" for m in picked)
    assert "because you liked" in page.inner_text("#recs")
    assert sorted(int(x) for x in page.url.split("liked=")[1].split("&")[0].split(",")) == sorted(picked)

    page.fill("#weight", "1")
    page.dispatch_event("#weight", "input")
    page.wait_for_selector("#recs .because:has-text('looks like')")
    assert "w=1" in page.url
    page.screenshot(path=str(tmp_path / "visitor.png"), full_page=True)

    first_wall = page.eval_on_selector_all("#wall .wall-card", "els => els.map(e => e.dataset.movieId)")
    page.click("#deal")
    for _ in range(100):  # (the CSP forbids wait_for_function's eval)
        page.wait_for_timeout(50)
        dealt = page.eval_on_selector_all("#wall .wall-card", "els => els.map(e => e.dataset.movieId)")
        if dealt and dealt != first_wall:
            break
    assert dealt and dealt != first_wall
    assert "seed=1" in page.url

    page.goto(page.url)  # a shared link restores the likes
    page.wait_for_selector("#recs-note:has-text('3 posters')")
    assert page.locator("#liked-line .chip").count() == 3
    assert not errors, errors
    assert not page.external_requests
