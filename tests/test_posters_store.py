"""PosterStore (manifest journal, atomic files), image checks, import, the rate limiter."""
from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from fake_tmdb import jpeg_bytes, png_bytes
from posters import (ImageLimits, InvalidImage, PosterStore, RateLimiter, Record, check_image,
                     import_posters, search_title)
from posters.limiter import Cancelled


def rec(movie_id, status="ok", **kw):
    return Record(movie_id=movie_id, source="test", status=status, **kw)


def test_entries_list_only_ok_posters_present_on_disk(tmp_path):
    store = PosterStore(tmp_path, "ml-100k")
    assert store.dir == tmp_path / "posters" / "ml-100k"
    assert store.entries() == []                      # nothing yet, no folder needed
    with store.journal() as j:
        store.write_image(1, jpeg_bytes(), "jpg")
        j.append(rec(1, sha256="a1"))
        store.write_image(2, png_bytes(), "png")
        j.append(rec(2, sha256="b2"))
        j.append(rec(3, "missing", error="HTTP 404"))
        j.append(rec(4, sha256="gone"))               # ok in the manifest, file absent
    entries = store.entries()
    assert [(e.movie_id, e.path.name, e.sha256) for e in entries] == [(1, "1.jpg", "a1"), (2, "2.png", "b2")]
    assert store.path(2) == store.dir / "2.png" and store.path(9) == store.dir / "9.jpg"
    assert not store.journal_path.exists()
    # a poster re-fetched in another format replaces the old file
    store.write_image(2, jpeg_bytes(), "jpg")
    assert store.path(2).name == "2.jpg" and not (store.dir / "2.png").exists()


def test_manifest_survives_a_torn_journal_and_round_trips_odd_text(tmp_path):
    store = PosterStore(tmp_path, "ml-1m")
    with store.journal() as j:
        j.append(rec(1, url="http://x/a,b.jpg", error='line one\nline "two", three'))
        j.append(rec(2, "failed", http_status=503))
    # a killed run: two whole journal lines, then half a line
    store.journal_path.write_text('3,test,,ok,200,10,abc,2026-01-01T00:00:00Z,\n2,test,,invalid,,,,,"bad\n'
                                  '4,test,,ok,200,10,de', encoding="utf-8")
    records = store.records()
    assert set(records) == {1, 2, 3}                 # 4 is torn and dropped
    assert records[2].status == "invalid"            # later lines win
    assert records[3].http_status == 200 and records[3].bytes == 10
    assert records[1].url == "http://x/a,b.jpg" and records[1].error == 'line one line "two", three'
    store.compact()
    assert not store.journal_path.exists()
    assert store.records() == records
    header = store.manifest_path.read_text().splitlines()[0]
    assert header == "movie_id,source,url,status,http_status,bytes,sha256,fetched_at,error"


def test_bad_status_is_refused():
    with pytest.raises(ValueError, match="status"):
        rec(1, "done")


def test_write_image_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    store = PosterStore(tmp_path, "ml-100k")
    store.write_image(5, jpeg_bytes(), "jpg")
    before = store.path(5).read_bytes()

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("posters.store.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write_image(5, b"half", "jpg")
    assert store.path(5).read_bytes() == before
    assert [p.name for p in store.dir.iterdir()] == ["5.jpg"]


@pytest.mark.parametrize("data, reason", [
    (b"<html><body>Access denied</body></html>", "HTML"),
    (jpeg_bytes(80, 120, noise=True)[:-200], "truncated"),
    (jpeg_bytes(80, 120)[:-2], "truncated"),
    (jpeg_bytes(20, 20), "smaller than 32"),
    (b"", "empty"),
    (b"GIF89a" + b"\0" * 20, "not an image|unrecognised|does not decode|unsupported"),
])
def test_check_image_rejects(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        check_image(data)


def test_check_image_limits_and_formats():
    big = jpeg_bytes(300, 300, noise=True)
    with pytest.raises(InvalidImage, match="over the limit"):
        check_image(big, ImageLimits(max_bytes=len(big) - 1))
    buf = io.BytesIO()
    Image.new("RGB", (7000, 40)).save(buf, "PNG")
    with pytest.raises(InvalidImage, match="larger than 6000"):
        check_image(buf.getvalue())
    jpg = jpeg_bytes(60, 90)
    got = check_image(jpg)
    assert (got.ext, got.width, got.height, got.data) == ("jpg", 60, 90, jpg)   # kept byte for byte
    assert check_image(png_bytes()).ext == "png"
    buf = io.BytesIO()
    Image.new("RGB", (50, 70), (1, 2, 3)).save(buf, "WEBP", lossless=True)
    webp = check_image(buf.getvalue())
    assert webp.ext == "png"
    with Image.open(io.BytesIO(webp.data)) as im:
        assert im.format == "PNG" and im.size == (50, 70) and im.getpixel((0, 0)) == (1, 2, 3)


def test_import_posters_checks_copies_and_is_idempotent(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "1.jpg").write_bytes(jpeg_bytes())
    (src / "2.JPEG").write_bytes(jpeg_bytes(color=(0, 0, 255)))
    (src / "3.png").write_bytes(png_bytes())
    (src / "4.jpg").write_bytes(b"<html>not a poster</html>")
    (src / "999.jpg").write_bytes(jpeg_bytes())       # not in the dataset
    (src / "notes.txt").write_text("hello")
    store = PosterStore(tmp_path / "home", "ml-100k")
    summary = import_posters(store, src, known_ids=range(1, 10), progress=False)
    assert summary.counts == {"ok": 3, "invalid": 1}
    assert summary.unknown == [999] and summary.ignored == ["notes.txt"]
    assert [(e.movie_id, e.path.name) for e in store.entries()] == [(1, "1.jpg"), (2, "2.jpg"), (3, "3.png")]
    assert store.path(1).read_bytes() == (src / "1.jpg").read_bytes()
    assert store.records()[4].status == "invalid" and store.records()[1].source == "import"
    again = import_posters(store, src, known_ids=range(1, 10), progress=False)
    assert again.counts == {"unchanged": 3, "invalid": 1}
    # a broken replacement never overwrites a good poster
    (src / "1.jpg").write_bytes(b"garbage")
    third = import_posters(store, src, known_ids=None, progress=False)
    assert third.counts["kept"] == 1 and store.records()[1].status == "ok"
    assert 999 in store.records()                     # with no dataset, ids are not checked


def test_import_rejects_a_missing_folder(tmp_path):
    from catalog import DatasetError

    with pytest.raises(DatasetError, match="not a folder"):
        import_posters(PosterStore(tmp_path, "ml-100k"), tmp_path / "nope", progress=False)


def test_search_title_moves_articles_and_drops_alt_titles():
    assert search_title("Usual Suspects, The") == "The Usual Suspects"
    assert search_title("Shanghai Triad (Yao a yao yao dao waipo qiao)") == "Shanghai Triad"
    assert search_title("Heat") == "Heat"


def test_rate_limiter_spaces_requests_across_threads():
    limiter = RateLimiter(rate=50)
    stamps, lock = [], threading.Lock()

    def worker():
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 40 <= achieved <= 55                       # 50/s set; generous for a loaded 2-core box


def test_rate_limiter_pause_holds_everyone_and_stop_cancels():
    limiter = RateLimiter(rate=None)
    limiter.acquire()                                 # unlimited: immediate
    limiter.pause(0.25)
    t0 = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - t0 >= 0.24
    limiter.pause(5)
    threading.Timer(0.1, limiter.stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        limiter.acquire()
    assert time.monotonic() - t0 < 2
    with pytest.raises(ValueError):
        RateLimiter(rate=0)
