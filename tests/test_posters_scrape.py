"""The scraper against a local fake TMDB (127.0.0.1 only): every failure mode ends in the right
manifest status with nothing corrupt on disk; resume fetches only the rest; the key stays secret."""
from __future__ import annotations

import csv
import logging
import time

import pytest
from PIL import Image

from fake_tmdb import FakeTmdb, Reply, jpeg_bytes, png_bytes
from posters import (FetchConfig, ImageLimits, PosterStore, TmdbSource, UrlSource, scrape_posters)
from posters.store import TEMP_PREFIX

FAST = FetchConfig(connect_timeout=1.0, read_timeout=0.8, total_timeout=5.0, retries=2,
                   backoff=0.01, backoff_max=0.02, max_retry_after=2.0)
LIMITS = ImageLimits(min_side=32, max_side=2000, max_bytes=60_000)


@pytest.fixture
def fake():
    with FakeTmdb() as server:
        yield server


def scrape(store, source, ids=None, **kw):
    kw.setdefault("rate", None)
    kw.setdefault("workers", 4)
    kw.setdefault("config", FAST)
    kw.setdefault("limits", LIMITS)
    return scrape_posters(store, source, ids if ids is not None else source.movie_ids(), progress=False, **kw)


def manifest_rows(store) -> dict[int, dict]:
    with open(store.manifest_path, newline="") as fh:
        return {int(r["movie_id"]): r for r in csv.DictReader(fh)}


def assert_store_sound(store) -> None:
    """No temp files or journal left; every image decodes; ok rows match their files."""
    assert not list(store.dir.glob(f"{TEMP_PREFIX}*"))
    assert not store.journal_path.exists()
    rows = manifest_rows(store)
    for p in list(store.dir.glob("*.jpg")) + list(store.dir.glob("*.png")):
        with Image.open(p) as im:
            im.load()
        assert rows[int(p.stem)]["status"] == "ok", p.name
    for e in store.entries():
        import hashlib

        assert hashlib.sha256(e.path.read_bytes()).hexdigest() == e.sha256


def test_each_failure_mode_ends_in_its_status(tmp_path, fake):
    big_noise = jpeg_bytes(400, 400, noise=True)
    assert len(big_noise) > LIMITS.max_bytes
    tall = Image.new("RGB", (40, 2500), (1, 2, 3))
    import io

    buf = io.BytesIO()
    tall.save(buf, "PNG")
    urls = {
        1: fake.route("/t/p/w342/good.jpg", Reply(body=jpeg_bytes(60, 90))),
        2: fake.route("/t/p/w342/gone.jpg", Reply(404, b"nope", content_type="text/plain")),
        3: fake.route("/t/p/w342/busy.jpg", Reply(429, b"", {"Retry-After": "0.3"}), Reply(body=jpeg_bytes())),
        4: fake.route("/t/p/w342/flaky.jpg", Reply(500, b"oops"), Reply(body=jpeg_bytes())),
        5: fake.route("/t/p/w342/slow.jpg", Reply(body=jpeg_bytes(), delay=2.0)),
        6: fake.route("/t/p/w342/html.jpg", Reply(body=b"<!DOCTYPE html><html>captcha</html>")),
        7: fake.route("/t/p/w342/cut.jpg", Reply(body=jpeg_bytes(200, 300, noise=True)[:3000])),
        8: fake.route("/t/p/w342/huge.jpg", Reply(body=big_noise)),
        9: fake.route("/t/p/w342/tall.png", Reply(body=buf.getvalue(), content_type="image/png")),
        10: fake.route("/t/p/w342/loop.jpg", Reply(302, headers={"Location": "/t/p/w342/loop.jpg"})),
        11: fake.route("/t/p/w342/ftp.jpg", Reply(302, headers={"Location": "ftp://127.0.0.1/x.jpg"})),
        12: fake.route("/t/p/w342/file.jpg", Reply(301, headers={"Location": "file:///etc/passwd"})),
        13: fake.route("/t/p/w342/moved.jpg", Reply(302, headers={"Location": "/t/p/w342/poster.png"})),
        14: fake.route("/t/p/w342/always500.jpg", Reply(503, b"down")),
    }
    fake.route("/t/p/w342/poster.png", Reply(body=png_bytes(), content_type="image/png"))
    store = PosterStore(tmp_path / "home", "ml-100k")
    t0 = time.monotonic()
    summary = scrape(store, UrlSource(urls))
    elapsed = time.monotonic() - t0
    rows = manifest_rows(store)
    status = {m: r["status"] for m, r in rows.items()}
    assert status == {1: "ok", 2: "missing", 3: "ok", 4: "ok", 5: "failed", 6: "invalid", 7: "invalid",
                      8: "invalid", 9: "invalid", 10: "failed", 11: "invalid", 12: "invalid", 13: "ok",
                      14: "failed"}
    assert summary.counts == {"ok": 4, "missing": 1, "failed": 3, "invalid": 6}
    assert rows[2]["http_status"] == "404"
    assert "HTML" in rows[6]["error"] and "image/jpeg" in rows[6]["error"]
    assert "truncated" in rows[7]["error"]
    assert "limit" in rows[8]["error"]
    assert "2500" in rows[9]["error"]
    assert "redirect" in rows[10]["error"] and "redirect" in rows[11]["error"] and "file" in rows[12]["error"]
    assert "timed out" in rows[5]["error"]
    # retries: 429 and 500 each cost one extra hit; slow and always-503 use 1 + retries attempts
    assert fake.hits["/t/p/w342/busy.jpg"] == 2 and fake.hits["/t/p/w342/flaky.jpg"] == 2
    assert fake.hits["/t/p/w342/slow.jpg"] == 3 and fake.hits["/t/p/w342/always500.jpg"] == 3
    assert fake.hits["/t/p/w342/loop.jpg"] == FAST.max_redirects + 1
    assert elapsed >= 0.3  # the Retry-After pause was honoured
    assert store.path(13).suffix == ".png" and store.path(1).suffix == ".jpg"
    assert [e.movie_id for e in store.entries()] == [1, 3, 4, 13]
    assert_store_sound(store)


def test_resume_fetches_only_failed_and_new(tmp_path, fake):
    urls = {m: fake.route(f"/t/p/w342/{m}.jpg", Reply(body=jpeg_bytes())) for m in range(1, 6)}
    urls[6] = fake.route("/t/p/w342/6.jpg", Reply(503), Reply(503), Reply(503), Reply(body=jpeg_bytes()))
    urls[7] = fake.route("/t/p/w342/7.jpg", Reply(404))
    store = PosterStore(tmp_path, "ml-1m")
    first = scrape(store, UrlSource(urls))
    assert first.counts == {"ok": 5, "failed": 1, "missing": 1}
    second = scrape(store, UrlSource(urls))
    assert second.todo == 1 and second.skipped == 6 and second.counts == {"ok": 1}
    assert fake.hits["/t/p/w342/6.jpg"] == 4
    assert all(fake.hits[f"/t/p/w342/{m}.jpg"] == 1 for m in (1, 2, 3, 4, 5, 7))
    # --retry-all fetches everything again; a 404 now does not erase an ok poster
    fake.route("/t/p/w342/1.jpg", Reply(404))
    third = scrape(store, UrlSource(urls), retry_all=True)
    assert third.todo == 7 and third.counts["kept"] == 1
    assert manifest_rows(store)[1]["status"] == "ok" and store.path(1).exists()
    assert_store_sound(store)


def test_killed_midway_then_restarted_fetches_only_the_rest(tmp_path, fake):
    n = 24
    urls = {m: fake.route(f"/t/p/w342/{m}.jpg", Reply(body=jpeg_bytes(), delay=0.02)) for m in range(1, n + 1)}
    store = PosterStore(tmp_path, "ml-100k")
    seen = []

    def ctrl_c_after_six(rec):
        seen.append(rec.movie_id)
        if len(seen) == 6:
            raise KeyboardInterrupt

    first = scrape(store, UrlSource(urls), workers=3, on_record=ctrl_c_after_six)
    assert first.interrupted
    done = set(manifest_rows(store))
    assert 6 <= len(done) < n            # in-flight ones may finish; the rest never started
    assert_store_sound(store)
    hits_before = sum(fake.hits.values())
    assert hits_before == len(done)      # nothing was fetched without being recorded
    second = scrape(store, UrlSource(urls), workers=3)
    assert not second.interrupted and second.counts == {"ok": n - len(done)}
    assert all(fake.hits[f"/t/p/w342/{m}.jpg"] == 1 for m in urls)
    assert len(store.entries()) == n
    assert_store_sound(store)


def test_limit_takes_only_k(tmp_path, fake):
    urls = {m: fake.route(f"/t/p/w342/{m}.jpg", Reply(body=jpeg_bytes())) for m in range(1, 11)}
    store = PosterStore(tmp_path, "ml-100k")
    assert scrape(store, UrlSource(urls), limit=3).counts == {"ok": 3}
    assert sum(fake.hits.values()) == 3
    assert scrape(store, UrlSource(urls)).counts == {"ok": 7}


def test_tmdb_by_id_and_by_search_and_key_never_leaks(tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.movies.update({862: "/toy.jpg", 8844: None, 15602: "/gone.jpg"})
    fake.route("/t/p/w342/gone.jpg", Reply(404))
    fake.search[("The Usual Suspects", "1995")] = [{"id": 629, "poster_path": "/suspects.jpg"}]
    fake.search[("Nothing Here", "1990")] = []
    fake.route("/3/movie/15602", Reply(500, b"boom"), Reply(200))  # API 500 then 200
    ids = {1: 862, 2: 8844, 3: 404404, 4: 15602}
    titles = {5: ("Usual Suspects, The", 1995), 6: ("Nothing Here", 1990), 7: ("Heat", None)}
    source = TmdbSource(fake.key, ids, titles, api_url=fake.api_url, image_url=fake.image_url)
    store = PosterStore(tmp_path, "ml-1m")
    scrape(store, source, list(range(1, 8)) + [99])
    rows = manifest_rows(store)
    status = {m: r["status"] for m, r in rows.items()}
    assert status == {1: "ok", 2: "missing", 3: "missing", 4: "missing", 5: "ok", 6: "missing", 7: "ok",
                      99: "missing"}
    assert rows[1]["url"] == f"{fake.image_url}/w342/toy.jpg"
    assert rows[5]["url"].endswith("/w342/suspects.jpg")
    assert "404404" in rows[3]["error"]
    assert fake.hits["/3/movie/15602"] == 2
    assert any("query=The+Usual+Suspects" in q and "year=1995" in q for _, q in fake.requests)
    # the key went to the API but never to the manifest, the logs or the image host
    assert all(f"api_key={fake.key}" in q for p, q in fake.requests if p.startswith("/3/"))
    assert not any(q for p, q in fake.requests if p.startswith("/t/p/"))
    assert fake.key not in store.manifest_path.read_text()
    assert fake.key not in caplog.text
    assert_store_sound(store)


def test_key_redacted_from_errors_of_an_unreachable_api(tmp_path, caplog):
    import socket

    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connection refused
    key = "zz-private-key-987654321"
    source = TmdbSource(key, {1: 5}, {}, api_url=f"http://127.0.0.1:{port}/3", image_url=f"http://127.0.0.1:{port}/t/p")
    store = PosterStore(tmp_path, "ml-1m")
    summary = scrape(store, source, [1])
    assert summary.counts == {"failed": 1}
    text = store.manifest_path.read_text()
    assert "connection" in text.lower()
    assert key not in text and key not in caplog.text


def test_bearer_token_and_rejected_key(tmp_path):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"
    with FakeTmdb(key=token) as fake:
        fake.movies[1] = "/a.jpg"
        store = PosterStore(tmp_path, "ml-1m")
        ok = scrape(store, TmdbSource(token, {10: 1}, {}, api_url=fake.api_url, image_url=fake.image_url), [10])
        assert ok.counts == {"ok": 1}
        assert not any(token in q for _, q in fake.requests)  # sent as a header, not in the URL
    with FakeTmdb() as fake:
        from catalog import ScrapeError

        bad = TmdbSource("wrong-key", {m: m for m in range(20, 30)}, {}, api_url=fake.api_url,
                         image_url=fake.image_url)
        with pytest.raises(ScrapeError, match="401"):
            scrape(store, bad, list(range(20, 30)), workers=2)
        assert "wrong-key" not in store.manifest_path.read_text()
        assert_store_sound(store)


def test_redirect_to_another_host_drops_authorization_and_follows(tmp_path, fake):
    with FakeTmdb() as other:
        target = other.route("/img/x.jpg", Reply(body=jpeg_bytes()))
        url = fake.route("/t/p/w342/r.jpg", Reply(307, headers={"Location": target}))
        store = PosterStore(tmp_path, "ml-1m")
        assert scrape(store, UrlSource({1: url})).counts == {"ok": 1}
        assert manifest_rows(store)[1]["url"] == target
