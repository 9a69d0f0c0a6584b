"""Fault suite for the poster store: concurrent writers, kill -9, slow-drip servers, hostile
import folders. Every server is a local fake on 127.0.0.1; every run writes under tmp_path."""
from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_tmdb import FakeTmdb, Reply, jpeg_bytes
from PIL import Image

from posters import (
    FetchConfig,
    ImageLimits,
    PosterStore,
    StoreBusy,
    UrlSource,
    import_posters,
    scrape_posters,
)
from posters.store import TEMP_PREFIX

ROOT = Path(__file__).resolve().parent.parent
FAST = FetchConfig(connect_timeout=1.0, read_timeout=1.0, total_timeout=5.0, retries=1,
                   backoff=0.01, backoff_max=0.02, max_retry_after=1.0)
LIMITS = ImageLimits(min_side=32, max_side=2000, max_bytes=60_000)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), e.get("PYTHONPATH", "")])
    return e


def url_list(path: Path, fake: FakeTmdb, ids) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["movie_id", "url"])
        for m in ids:
            w.writerow([m, f"{fake.image_url}/w342/{m}.jpg"])
    return path


def scrape_cmd(home: Path, urls: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "posterec", "--home", str(home), "scrape-posters", "--dataset", "ml-100k",
            "--source", "urls", str(urls), "--rate", "0", "--workers", "4", "--connect-timeout", "2",
            "--read-timeout", "2", *extra]


def manifest_rows(store: PosterStore) -> dict[int, dict]:
    with open(store.manifest_path, newline="") as fh:
        return {int(r["movie_id"]): r for r in csv.DictReader(fh)}


def assert_consistent(store: PosterStore, ids) -> None:
    """Every movie has an ok row whose file is there and matches its sha256; nothing stray."""
    assert not store.journal_path.exists()
    assert not list(store.dir.glob(f"{TEMP_PREFIX}*"))
    rows = manifest_rows(store)
    assert sorted(rows) == sorted(ids)
    assert {r["status"] for r in rows.values()} == {"ok"}
    for m in ids:
        p = store.path(m)
        assert hashlib.sha256(p.read_bytes()).hexdigest() == rows[m]["sha256"], p.name
        with Image.open(p) as im:
            im.load()
    on_disk = {int(p.stem) for p in list(store.dir.glob("*.jpg")) + list(store.dir.glob("*.png"))}
    assert on_disk == set(ids)


@pytest.fixture
def fake():
    with FakeTmdb() as server:
        yield server


# -- 1. two writers on one store ---------------------------------------------------------------
def test_two_concurrent_scrapes_keep_every_manifest_row(tmp_path, fake):
    fake.delay = 0.02
    ids = list(range(1, 121))
    home, urls = tmp_path / "home", url_list(tmp_path / "urls.csv", fake, ids)
    first = subprocess.Popen(scrape_cmd(home, urls), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(0.3)
    second = subprocess.Popen(scrape_cmd(home, urls), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert_consistent(PosterStore(home, "ml-100k"), ids)
    assert "FileNotFoundError" not in out1 + out2 + err1 + err2
    # each movie was fetched once: whoever came second waited, then found everything done
    assert sum(n for path, n in fake.hits.items() if path.startswith("/t/p/")) == len(ids)


def test_a_second_writer_waits_with_a_message_naming_the_holder(tmp_path, fake):
    store = PosterStore(tmp_path / "home", "ml-100k")
    source = UrlSource({m: f"{fake.image_url}/w342/{m}.jpg" for m in (1, 2, 3)})
    said, released = [], threading.Event()

    def hold():
        with store.writer_lock(command="posterec add-movie 99"):
            time.sleep(0.8)
        released.set()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    summary = scrape_posters(store, source, [1, 2, 3], rate=None, workers=2, config=FAST, limits=LIMITS,
                             progress=False, notify=said.append)
    t.join()
    assert released.is_set() and time.monotonic() - t0 >= 0.4
    assert summary.counts["ok"] == 3
    assert len(said) == 1 and "waiting" in said[0]
    assert f"pid {os.getpid()}" in said[0] and "posterec add-movie 99" in said[0] and "since" in said[0]
    assert_consistent(store, [1, 2, 3])


def test_no_wait_exits_1_naming_the_holder(tmp_path, fake):
    ids = [1, 2]
    home, urls = tmp_path / "home", url_list(tmp_path / "urls.csv", fake, ids)
    store = PosterStore(home, "ml-100k")
    with store.writer_lock(command="posterec import-posters /x"):
        errors = []

        def other_thread():
            try:
                with PosterStore(home, "ml-100k").writer_lock(wait=False):
                    pass  # pragma: no cover
            except StoreBusy as exc:
                errors.append(str(exc))

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(errors) == 1 and "import-posters /x" in errors[0]
        r = subprocess.run(scrape_cmd(home, urls, "--no-wait"), env=env(), capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 1
    assert f"pid {os.getpid()}" in r.stderr and "posterec import-posters /x" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not store.manifest_path.exists()
    # once released, the same command runs
    r = subprocess.run(scrape_cmd(home, urls, "--no-wait"), env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert_consistent(store, ids)


def test_temp_files_of_a_live_writer_are_never_removed(tmp_path):
    store = PosterStore(tmp_path / "home", "ml-100k")
    store.dir.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        mine = store.dir / f"{TEMP_PREFIX}p{live.pid}-5-abc.part"
        theirs = store.dir / f"{TEMP_PREFIX}p{dead.pid}-6-abc.part"
        legacy = store.dir / f"{TEMP_PREFIX}7-abc.part"
        for p in (mine, theirs, legacy):
            p.write_bytes(b"x")
        assert store.remove_temp_files() == 1
        assert mine.exists() and legacy.exists() and not theirs.exists()
        old = time.time() - 7200
        os.utime(legacy, (old, old))
        assert store.remove_temp_files() == 1 and not legacy.exists()
    finally:
        live.kill()
        live.wait()


# -- kill -9 at random points, then a rerun ----------------------------------------------------
def test_kill_9_during_scrape_then_rerun_completes_consistently(tmp_path, fake):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    fake.delay = 0.03
    ids = list(range(1, 161))
    home, urls = tmp_path / "home", url_list(tmp_path / "urls.csv", fake, ids)
    store = PosterStore(home, "ml-100k")
    for _round in range(2):
        proc = subprocess.Popen(scrape_cmd(home, urls), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # whatever was left is readable: every ok record's file exists and matches
        for e in store.entries():
            assert hashlib.sha256(e.path.read_bytes()).hexdigest() == e.sha256, f"seed {seed}"
    r = subprocess.run(scrape_cmd(home, urls), env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"seed {seed}: {r.stderr}"
    assert_consistent(store, ids)


# -- 2. a server that trickles the body ----------------------------------------------------------
def test_a_trickling_server_hits_the_download_deadline(tmp_path, fake):
    body = jpeg_bytes(200, 300, noise=True)[:6000]
    urls = {m: f"{fake.image_url}/w342/{m}.jpg" for m in (1, 2, 3)}
    urls[4] = fake.route("/t/p/w342/drip.jpg", Reply(body=body, trickle=1.0))  # 64 bytes a second
    store = PosterStore(tmp_path / "home", "ml-100k")
    config = FetchConfig(connect_timeout=1.0, read_timeout=5.0, total_timeout=2.5, retries=2,
                         backoff=0.01, backoff_max=0.02)
    seen = []
    t0 = time.monotonic()
    summary = scrape_posters(store, UrlSource(urls), [1, 2, 3, 4], rate=None, workers=2, config=config,
                             limits=LIMITS, progress=False, on_record=lambda r: seen.append(r.movie_id))
    took = time.monotonic() - t0
    assert took < 6.0, took          # today: ~94 s per attempt (6000 bytes at 64 B/s), times retries
    assert summary.counts["ok"] == 3 and summary.counts["failed"] == 1
    assert seen.index(4) == 3        # the others were recorded while the drip went on
    row = manifest_rows(store)[4]
    assert row["status"] == "failed" and "deadline" in row["error"]
    assert fake.hits["/t/p/w342/drip.jpg"] == 1  # not retried: a dripping server drips again


def test_a_trickling_server_is_cut_off_by_the_minimum_rate(tmp_path, fake):
    body = jpeg_bytes(200, 300, noise=True)[:6000]
    url = fake.route("/t/p/w342/drip.jpg", Reply(body=body, trickle=0.5))  # 128 B/s
    store = PosterStore(tmp_path / "home", "ml-100k")
    config = FetchConfig(connect_timeout=1.0, read_timeout=5.0, total_timeout=60.0, min_rate=1000.0,
                         min_rate_grace=1.0, retries=0)
    t0 = time.monotonic()
    summary = scrape_posters(store, UrlSource({7: url}), [7], rate=None, workers=1, config=config,
                             limits=LIMITS, progress=False)
    assert time.monotonic() - t0 < 4.0
    assert summary.counts["failed"] == 1
    assert "too slow" in manifest_rows(store)[7]["error"]


def test_cli_has_a_download_timeout(tmp_path, fake):
    body = jpeg_bytes(200, 300, noise=True)[:3000]
    fake.route("/t/p/w342/1.jpg", Reply(body=body, trickle=1.0))
    home, urls = tmp_path / "home", url_list(tmp_path / "urls.csv", fake, [1, 2])
    t0 = time.monotonic()
    r = subprocess.run(scrape_cmd(home, urls, "--download-timeout", "2", "--json"), env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 15
    rows = manifest_rows(PosterStore(home, "ml-100k"))
    assert rows[1]["status"] == "failed" and "2s deadline" in rows[1]["error"]
    assert rows[2]["status"] == "ok"


# -- 8. import-posters and links -----------------------------------------------------------------
def test_import_refuses_links_and_never_copies_their_bytes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(jpeg_bytes())
    (folder / "5.jpg").symlink_to("/etc/passwd")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_bytes(70, 100))
    (folder / "6.jpg").symlink_to(outside)           # a good image, but outside DIR via a link
    (folder / "7.jpg").mkdir()                         # a folder named like a poster
    os.mkfifo(folder / "8.jpg")                        # a FIFO: reading it would block for ever
    (folder / "9.jpg").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")  # a regular text file
    store = PosterStore(tmp_path / "home", "ml-100k")
    summary = import_posters(store, folder, progress=False)
    refused = {line.split(":")[0] for line in summary.refused}
    assert refused == {"5.jpg", "6.jpg", "7.jpg", "8.jpg"}
    assert summary.counts["ok"] == 1 and summary.counts["invalid"] == 1
    manifest = store.manifest_path.read_text()
    assert "root:x" not in manifest and "/etc/passwd" not in manifest and "/bin/bash" not in manifest
    assert "root:x" not in summary.line()
    rows = manifest_rows(store)
    assert sorted(rows) == [1, 9]
    assert rows[9]["status"] == "invalid" and "text" in rows[9]["error"]
    assert not store.path(5).exists() and not store.path(6).exists()


# -- 3. kill -9 during embed: the cache keeps finished batches and stays readable ---------------
EMBED_CHILD = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from pathlib import Path
from typing import NamedTuple
import keras
from vision_model import PosterEmbedder, VisionConfig, embed_posters

class Entry(NamedTuple):
    movie_id: int
    path: Path
    sha256: str

model_file, cache_dir, listing = sys.argv[1:4]
entries = [Entry(int(m), Path(p), s) for m, p, s in (line.split("\t") for line in Path(listing).read_text().splitlines())]
config = VisionConfig(image_size=32, batch_size=4)
embedder = PosterEmbedder(config, model=keras.models.load_model(model_file), runtime="keras")
run = embedder._run
def slow(images):  # a real backbone takes this long per batch; the tiny one needs help
    time.sleep(0.05)
    return run(images)
embedder._run = slow
print("start", flush=True)
r = embed_posters(entries, config, cache_dir=cache_dir, embedder=embedder, progress=False, checkpoint_every=0)
print("done", r.n_embedded, r.n_cached, flush=True)
"""


def test_kill_9_during_embed_then_rerun_finishes_from_the_cache(tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from vision_model import PosterEmbedder, VisionConfig, embed_posters
    from vision_model.cache import EmbeddingCache

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    config = VisionConfig(image_size=32, batch_size=4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.UnitNormalization()])
    model_file = tmp_path / "tiny.keras"
    model.save(model_file)
    folder = tmp_path / "posters"
    folder.mkdir()
    listing, entries = [], []
    from typing import NamedTuple

    class Entry(NamedTuple):
        movie_id: int
        path: Path
        sha256: str

    for m in range(1, 121):
        data = jpeg_bytes(40 + m % 30, 60 + m // 30, color=(m * 2 % 256, 40, 200))
        p = folder / f"{m}.jpg"
        p.write_bytes(data)
        e = Entry(m, p, hashlib.sha256(data).hexdigest())
        entries.append(e)
        listing.append(f"{m}\t{p}\t{e.sha256}")
    (tmp_path / "entries.tsv").write_text("\n".join(listing) + "\n")
    cache_dir = tmp_path / "cache"
    child = tmp_path / "child.py"
    child.write_text(EMBED_CHILD)
    proc = subprocess.Popen([sys.executable, str(child), str(model_file), str(cache_dir), str(tmp_path / "entries.tsv")],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cache = EmbeddingCache(cache_dir, config.cache_key())
    deadline = time.monotonic() + 60
    while not cache.part_paths() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.8))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"seed {seed}: the embed finished before the kill"
    survived = len(EmbeddingCache(cache_dir, config.cache_key()))
    assert 0 < survived < len(entries), f"seed {seed}"
    embedder = PosterEmbedder(config, model=keras.models.load_model(model_file), runtime="keras")
    rerun = embed_posters(entries, config, cache_dir=cache_dir, embedder=embedder, progress=False)
    assert rerun.n_cached == survived and rerun.n_embedded == len(entries) - survived, f"seed {seed}"
    fresh = embed_posters(entries, config, embedder=embedder, progress=False)
    np.testing.assert_allclose(rerun.vectors.values, fresh.vectors.values, atol=1e-5)
    again = EmbeddingCache(cache_dir, config.cache_key())
    assert len(again) == len(entries) and not again.part_paths()


def test_import_takes_the_same_lock(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(jpeg_bytes())
    store = PosterStore(tmp_path / "home", "ml-100k")
    held, done = threading.Event(), threading.Event()

    def hold():
        with store.writer_lock(command="posterec scrape-posters --dataset ml-100k"):
            held.set()
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        with pytest.raises(StoreBusy, match="scrape-posters"):
            import_posters(store, folder, progress=False, wait=False)
    finally:
        done.set()
        t.join()
    assert import_posters(store, folder, progress=False, wait=False).counts["ok"] == 1
