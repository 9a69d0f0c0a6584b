"""The web page in real headless Chromium (Debian's), driven by Playwright, against a live server."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import served
from fake_recommender import FakeRecommender, fake_rebuild, make_fake_home

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture
def live_url(tmp_path):
    """The app on 127.0.0.1 at a free port, served by uvicorn in a thread."""

    from posterec.server import create_app

    home = make_fake_home(tmp_path / "home", n_movies=40, n_users=20)
    app = create_app(home, loader=FakeRecommender.load, rebuilder=fake_rebuild)
    with served(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page():
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists()
                                                         else shutil.which("chromium")),
                                     args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.external_requests = []

            def record(request):
                if not request.url.startswith(("http://127.0.0.1", "data:")):
                    pg.external_requests.append(request.url)

            pg.on("request", record)
            pg.console_errors = []
            pg.on("console", lambda msg: msg.type == "error" and pg.console_errors.append(msg.text))
            yield pg
        finally:
            browser.close()


def test_search_click_and_see_the_grids(live_url, page):
    page.goto(live_url + "/")
    page.wait_for_selector("#model:has-text('fake-v1')")
    page.fill("#search", "laugh story 1")
    page.wait_for_selector("#results .result")
    titles = page.locator("#results .result strong").all_inner_texts()
    assert titles and all("Laugh Story 1" in t for t in titles)

    page.click("#results .result[data-movie-id='1']")
    page.wait_for_selector("#lookalike .card")
    page.wait_for_selector("#similar .card")
    assert page.inner_text("#hero-title").startswith("Laugh Story 1")
    lookalike = page.locator("#lookalike .card")
    assert lookalike.count() == 12
    # look-alikes of a comedy poster are yellow comedy posters, and their images loaded
    ids = [int(x) for x in page.eval_on_selector_all(
        "#lookalike .card", "cards => cards.map(c => c.dataset.movieId)")]
    assert all(i <= 20 and i % 7 for i in ids)
    page.wait_for_function("() => [...document.querySelectorAll('#lookalike img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    scores = page.locator("#similar .score").all_inner_texts()
    assert len(scores) == 12 and all(float(s) > 0 for s in scores)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "movie_page.png"), full_page=True)

    # the slider re-queries similar movies with the chosen weight
    with page.expect_response(lambda r: "visual_weight=1" in r.url and "/similar" in r.url):
        page.eval_on_selector("#weight", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }")
    page.wait_for_selector("#weight-label:has-text('100% posters')")

    # a movie without a poster shows a placeholder (see test_a_movie_without_a_poster_is_a_calm_empty_state)
    page.goto(live_url + "/#movie/7")
    page.wait_for_selector("#hero-poster .placeholder")

    # a user's recommendations, each with its "because you liked" line
    page.goto(live_url + "/#user/4")
    page.wait_for_selector("#recs .card")
    because = page.locator("#recs .because").all_inner_texts()
    assert because and all(b.startswith("because you liked Laugh Story") for b in because)
    page.screenshot(path=str(ARTIFACTS / "user_page.png"), full_page=True)

    page.goto(live_url + "/#user/9999")
    page.wait_for_selector("#user-note:has-text('9999')")
    assert page.external_requests == []
    assert [e for e in page.console_errors if "404" not in e] == []


def test_a_movie_without_a_poster_is_a_calm_empty_state(live_url, page):
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(live_url + "/#movie/7")  # every seventh fake movie has no poster
    page.wait_for_selector("#hero-poster .no-poster:has-text('No poster for this movie')")
    page.wait_for_selector("#lookalike-note:has-text('Look-alikes need a poster')")
    page.wait_for_selector("#similar .card")
    assert page.locator("#lookalike .card").count() == 0
    assert not [u for u in asked if "/posters/7" in u or "/lookalike" in u]
    assert page.console_errors == []  # no 404 at all


def test_the_slider_starts_at_the_models_default(live_url, page):
    def health(route):  # the model's default as /health states it
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "default_visual_weight": 0.4})

    page.route("**/health", health)
    page.goto(live_url + "/#movie/1")
    page.wait_for_selector("#weight-label:has-text('model default (60% ratings · 40% posters)')")
    assert page.input_value("#weight") == "0.4"
    with page.expect_response(lambda r: "visual_weight=0.9" in r.url and "/similar" in r.url):
        page.eval_on_selector("#weight", "el => { el.value = 0.9; el.dispatchEvent(new Event('input')); }")
    page.click("#weight-reset")
    page.wait_for_selector("#weight-label:has-text('model default')")
    assert page.input_value("#weight") == "0.4"


def test_the_slider_reads_the_default_from_a_similar_response(live_url, page):
    def similar(route):
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "default_visual_weight": 0.3})

    page.route("**/similar?*", similar)
    page.goto(live_url + "/#movie/1")
    page.wait_for_selector("#weight-label:has-text('70% ratings · 30% posters')")
    assert page.input_value("#weight") == "0.3"


def test_enter_in_the_search_box_opens_the_first_match(live_url, page):
    page.goto(live_url + "/")
    page.wait_for_selector("#model:has-text('fake-v1')")
    page.fill("#search", "scream story 3")
    page.press("#search", "Enter")  # before the search's debounce has fired
    page.wait_for_function("() => location.hash.startsWith('#movie/')")
    first = page.get_attribute("#results .result", "data-movie-id")
    assert page.evaluate("location.hash") == f"#movie/{first}"
    page.wait_for_selector("#hero-title:has-text('Scream Story 3')")


def test_scores_are_explained_in_tooltips(live_url, page):
    page.goto(live_url + "/#movie/1")
    page.wait_for_selector("#similar .card")
    page.wait_for_selector("#lookalike .card")
    assert "Cosine similarity in the blended space" in page.get_attribute("#similar .score", "title")
    assert "posters' embeddings" in page.get_attribute("#lookalike .score", "title")
    assert "Cosine" in page.get_attribute("#similar-help", "title")
    page.goto(live_url + "/#user/4")
    page.wait_for_selector("#recs .card")
    tip = page.get_attribute("#recs .score", "title")
    assert "Ranking score" in tip and "not a predicted rating" in tip
    assert page.is_visible("#recs-help")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    pytest.importorskip("surprise", reason="scikit-surprise (the report extra) is not installed")
    from report_home import trained_home

    from posterec.comparison import CompareConfig
    from posterec.report import write_report

    root = tmp_path_factory.mktemp("browser-report")
    tiny = CompareConfig(knn_k=10, svd_factors=8, svd_epochs=5, svdpp_factors=4, svdpp_epochs=3)
    return write_report(trained_home(root), root / "report.html", config=tiny)


def test_the_report_shows_this_model_beside_the_baselines(report_file, page):
    page.goto(report_file.as_uri())
    table = page.locator("#comparison-table")
    table.wait_for()
    rows = {r[0]: r[1:] for r in page.eval_on_selector_all(
        "#comparison-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")}
    for name in ("text-CNN (this model)", "KNNBaseline (item-kNN)", "SVD", "SVD++", "most popular"):
        assert name in rows
    for name in ("text-CNN (this model)", "KNNBaseline (item-kNN)", "SVD"):
        assert 0 < float(rows[name][1]) < 5  # RMSE, fitted in this run on the same split
    # every chart decoded, none wider than the page (nothing cut off)
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    too_wide = page.evaluate("() => [...document.images].filter(i => i.getBoundingClientRect().right > "
                             "document.documentElement.clientWidth).length")
    assert too_wide == 0
    assert page.evaluate("document.images.length") >= 10
    assert all(u.startswith("file://") for u in page.external_requests)
    assert page.console_errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
