"""Serving from several processes: kept answers, following a version another process made
current, one rebuild status for all workers, and ``serve --workers 2`` end to end (fake model)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fake_recommender import FakeRecommender, fake_rebuild, fake_version, make_fake_home
from posterec.server import TOKEN_ENV, Answers, create_app

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(tmp_path):
    return make_fake_home(tmp_path / "home", n_movies=40, n_users=20)


def _app(home, **kw):
    quick = lambda h, visual_weight=None: fake_rebuild(h, visual_weight, delay=0.2)  # noqa: E731
    return create_app(home, loader=FakeRecommender.load, rebuilder=quick, watch=fake_version, **kw)


def _until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("timed out")


def test_kept_answers_are_the_computed_ones(home, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with TestClient(_app(home)) as plain, TestClient(_app(home, answer_mb=1)) as kept:
        answers = kept.app.state.posterec.current.answers
        for url in ["/movies/3/similar?n=5", "/movies/3/similar?n=5&visual_weight=0.26",
                    "/movies/3/lookalike?n=4", "/users/4/recommendations?n=3", "/users/4/recommendations"]:
            first, again = kept.get(url), kept.get(url)
            assert first.status_code == again.status_code == 200
            assert first.content == again.content == plain.get(url).content
            assert again.headers["content-type"] == "application/json"
        assert len(answers) == 5  # weight 0.26 is kept as 0.25; n=3 and n=10 apart
        assert kept.get("/movies/999/similar").status_code == 404  # errors are not kept
        assert len(answers) == 5


def test_answers_stay_within_their_budget():
    answers = Answers(max_bytes=1600)
    for k in range(50):
        answers.put(("similar", k), b"x" * 100)
    assert len(answers) == 16 and answers.get(("similar", 49)) and answers.get(("similar", 0)) is None
    answers.put(("big",), b"x" * 200)  # more than a sixteenth of the budget: not kept
    assert answers.get(("big",)) is None
    assert Answers(0).get(("similar", 1)) is None


def test_a_worker_follows_a_version_another_made_current(home, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with TestClient(_app(home, check_every=0.05, answer_mb=1)) as a, \
            TestClient(_app(home, check_every=0.05, answer_mb=1)) as b:
        before = b.get("/movies/3/similar").json()["version"]
        assert before == "fake-v1" and b.get("/health").json()["version"] == "fake-v1"
        assert a.post("/admin/rebuild", headers=AUTH).status_code == 202
        _until(lambda: a.get("/admin/rebuild", headers=AUTH).json()["state"] == "succeeded")
        _until(lambda: b.get("/health").json()["version"] == "fake-v2")
        assert b.get("/movies/3/similar").json()["version"] == "fake-v2"  # not the answer kept for v1


def test_without_the_watcher_a_worker_keeps_its_version(home, monkeypatch):
    """What the watcher fixes: the worker that did not rebuild would serve the old model for ever."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with TestClient(_app(home, check_every=0.05)) as a, TestClient(_app(home, check_every=-1)) as b:
        a.post("/admin/rebuild", headers=AUTH)
        _until(lambda: a.get("/health").json()["version"] == "fake-v2")
        time.sleep(0.3)
        assert b.get("/health").json()["version"] == "fake-v1"


def test_a_version_that_will_not_load_leaves_the_old_one_serving(home, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with TestClient(_app(home, check_every=0.05)) as c:
        (home / "fake" / "catalog.json").rename(home / "fake" / "catalog.moved")
        fake_rebuild(home, delay=0)  # fake-v2 is current on disk, but cannot be read
        for _ in range(10):
            assert c.get("/health").json()["version"] == "fake-v1"
            time.sleep(0.03)


def test_workers_share_one_rebuild_status(home, tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    shared = tmp_path / "shared"
    shared.mkdir()
    with TestClient(_app(home, shared=shared)) as a, TestClient(_app(home, shared=shared)) as b:
        assert a.post("/admin/rebuild", headers=AUTH).status_code == 202
        assert b.get("/admin/rebuild", headers=AUTH).json()["state"] == "running"
        assert b.post("/admin/rebuild", headers=AUTH).status_code == 409  # one rebuild for all workers
        done = _until(lambda: (s := b.get("/admin/rebuild", headers=AUTH).json())["state"] == "succeeded" and s)
        assert done["version_after"] == "fake-v2"
        assert b.post("/admin/rebuild", headers=AUTH).status_code == 202  # the lock was let go


SERVE_FAKE = """
import socket, sys, tempfile
from fake_recommender import FakeRecommender, fake_rebuild, fake_version
from posterec.server import create_app
from posterec.workers import serve_workers
home = sys.argv[1]
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
shared = tempfile.mkdtemp()
app = create_app(home, loader=FakeRecommender.load, watch=fake_version, check_every=0.1, answer_mb=1,
                 rebuilder=lambda h, visual_weight=None: fake_rebuild(h, visual_weight, delay=0.2), shared=shared)
def started(pids):
    print("PORT", sock.getsockname()[1], "PIDS", *pids, flush=True)
sys.exit(serve_workers(app, sock, 2, started=started))
"""


def _get(port, path, headers=None, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:  # a new connection each time
        return resp.status, json.loads(resp.read())


def _median_ms(port, path, n=21):
    """The median time of ``n`` requests one after another on one keep-alive connection."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    took = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        conn.getresponse().read()
        took.append(1000 * (time.perf_counter() - t))
    conn.close()
    return sorted(took)[n // 2]


def test_a_plain_socket_becomes_one_that_says_tcp():
    import socket

    from posterec.workers import tcp_socket

    with socket.socket() as plain:
        assert plain.proto == 0
        with tcp_socket(plain) as tcp:
            assert tcp.proto == socket.IPPROTO_TCP and tcp.fileno() != plain.fileno()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as already:
        assert tcp_socket(already) is already


def test_serve_two_workers_end_to_end(home):
    env = {**os.environ, TOKEN_ENV: TOKEN,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", SERVE_FAKE, str(home)], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    try:
        words = proc.stdout.readline().split()
        assert words[0] == "PORT", words
        port, pids = int(words[1]), [int(w) for w in words[3:]]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
        assert {_get(port, "/health")[1]["version"] for _ in range(10)} == {"fake-v1"}
        assert _median_ms(port, "/movies/3/similar") < 30  # not Nagle's 40 ms (the script's socket says proto 0)
        assert _get(port, "/admin/rebuild", AUTH, "POST")[0] == 202
        _until(lambda: _get(port, "/admin/rebuild", AUTH)[1]["state"] == "succeeded")  # whichever worker answers
        _until(lambda: all(_get(port, "/health")[1]["version"] == "fake-v2" for _ in range(20)))
        os.kill(pids[0], signal.SIGKILL)  # a worker that dies is replaced
        _until(lambda: _get(port, "/movies/3/similar")[0] == 200 and not Path(f"/proc/{pids[0]}/status").exists())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(Path(f"/proc/{p}/status").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
                       for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
