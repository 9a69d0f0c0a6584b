"""Faults found by trying the server and the CLI as a hostile user and a careless operator would
(issue 10, items 10-15; issue 13's busy port and `-v`). Each test fails on the code before the fix.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import served
from fake_recommender import FakeRecommender, fake_rebuild, make_fake_home
from posterec.protocol import RecommenderLike, protocol_gaps
from posterec.server import TOKEN_ENV, create_app

TOKEN = "s3cret-token"
ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
GET_ROUTES = ["/", "/health", "/movies?q=laugh", "/movies/3", "/movies/3/similar",
              "/movies/3/lookalike", "/users", "/users/4/recommendations", "/posters/1",
              "/posters/2", "/static/app.js", "/openapi.json", "/docs"]


@pytest.fixture
def home(tmp_path):
    return make_fake_home(tmp_path / "home", n_movies=40, n_users=20)


def _client(home, monkeypatch, token: str | None, loader=FakeRecommender.load):
    if token is None:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, token)
    quick = lambda h, visual_weight=None: fake_rebuild(h, visual_weight, delay=0)
    return TestClient(create_app(home, loader=loader, rebuilder=quick), raise_server_exceptions=False)


@pytest.fixture
def client(home, monkeypatch):
    with _client(home, monkeypatch, None) as c:
        yield c


@pytest.fixture
def admin(home, monkeypatch):
    with _client(home, monkeypatch, TOKEN) as c:
        yield c


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def no_tracebacks(caplog):
    text = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)
    assert "Traceback" not in text and not any(r.exc_info for r in caplog.records), text[:2000]


# ---------------------------------------------------------------- 10: the admin body

BAD_BODIES = [b'{"visual_weight": NaN}', b'{"visual_weight": Infinity}', b'{"visual_weight": -Infinity}',
              b'{"visual_weight": 3}', b'{"visual_weight": "0.5"}', b'{"visual_weight": true}',
              b'{"visual_weight": [0.5]}', b'{"visual_weight": 1e999}', b'{"other": 1}', b"[1, 2]",
              b'"text"', b"42", b"{", b"\xff\xfe\x00", b"[" * 5000, b'{"visual_weight": 0.5}' + b" " * 5000]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_rebuild_body_is_not_read_before_the_token(client, home, monkeypatch, body, caplog):
    caplog.set_level(logging.DEBUG)
    for headers in ({}, auth(), auth("wrong")):  # admin off: 404 whatever the body
        r = client.post("/admin/rebuild", content=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 404 and "disabled" in r.json()["detail"], (body[:40], r.status_code, r.text)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # admin on, no or a wrong token: 401/403 whatever the body
    assert client.post("/admin/rebuild", content=body).status_code == 401
    assert client.post("/admin/rebuild", content=body, headers=auth("wrong")).status_code == 403
    no_tracebacks(caplog)


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_bad_rebuild_body_with_the_token_is_a_422(admin, body, caplog):
    caplog.set_level(logging.DEBUG)
    r = admin.post("/admin/rebuild", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code in (413, 422), (body[:40], r.status_code, r.text)
    assert r.json()["detail"]
    assert admin.get("/admin/rebuild", headers=auth()).json()["state"] == "idle"  # nothing started
    no_tracebacks(caplog)


@pytest.mark.parametrize("body", [b"", b"null", b"{}", b'{"visual_weight": null}', b'{"visual_weight": 0.33}'])
def test_good_rebuild_bodies_start_a_rebuild(admin, body):
    r = admin.post("/admin/rebuild", content=body, headers=auth())
    assert r.status_code == 202, r.text
    assert r.json()["visual_weight"] in (None, 0.35)  # 0.33 is quantised to 0.05 steps


def test_fuzzed_bodies_and_parameters_give_no_5xx_and_no_traceback(home, monkeypatch, caplog):
    from hypothesis import HealthCheck, given, settings, strategies as st

    caplog.set_level(logging.DEBUG)
    json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
                               | st.integers() | st.text(max_size=8),
                               lambda kids: st.lists(kids, max_size=3)
                               | st.dictionaries(st.sampled_from(["visual_weight", "x", ""]), kids, max_size=2),
                               max_leaves=6)
    bodies = (json_values.map(lambda v: json.dumps(v).encode())
              | st.builds(lambda v: json.dumps({"visual_weight": v}).encode(), json_values)
              | st.binary(max_size=64))
    text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
        ["1_0", "0x10", "+5", " 5", "05", "nan", "inf", "-0", "1e3", "1.0", "99999999999999999999", "", "%00"])
    paths = ["/movies/{}", "/movies/{}/similar", "/movies/{}/lookalike", "/posters/{}",
             "/users/{}/recommendations"]
    failures = []
    for token in (None, TOKEN):
        with _client(home, monkeypatch, token) as c:
            @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(body=bodies, header=st.sampled_from([{}, auth(), auth("x"), {"Authorization": "Bearer"}]))
            def post(body, header):
                r = c.post("/admin/rebuild", content=body, headers=header)
                if r.status_code >= 500:
                    failures.append(("POST", body[:40], r.status_code))
                if r.status_code == 202:
                    c.app.state.posterec.rebuild.join(10)

            @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(path=st.sampled_from(paths), method=st.sampled_from(["GET", "HEAD"]), ident=text,
                   n=text, weight=text, q=text)
            def query(path, method, ident, n, weight, q):
                url = path.format(quote(ident, safe="") or "1")
                r = c.request(method, url, params={"n": n, "visual_weight": weight, "q": q})
                if r.status_code >= 500:
                    failures.append((method, url, n, weight, r.status_code))

            post()
            query()
    assert failures == []
    no_tracebacks(caplog)


# ---------------------------------------------------------------- 11: HEAD


@pytest.mark.parametrize("url", GET_ROUTES)
def test_head_is_answered_wherever_get_is(client, url):
    get = client.get(url)
    head = client.head(url)
    assert get.status_code == 200, (url, get.status_code)
    assert head.status_code == 200, (url, head.status_code)
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if url != "/health":  # its uptime_s, hence its length, changes between the two requests
        assert head.headers.get("content-length") == get.headers.get("content-length")


def test_head_of_an_unknown_id_is_a_404(client):
    assert client.head("/movies/999").status_code == 404
    assert client.head("/posters/7").status_code == 404  # a known movie without a poster


def test_head_over_a_real_socket_has_no_body(live_server):
    with socket.create_connection(("127.0.0.1", live_server)) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    first, second = data.split(b"HTTP/1.1 ", 2)[1:]
    assert first.startswith(b"200") and first.endswith(b"\r\n\r\n")  # headers only
    assert second.startswith(b"200") and b'"status":"ok"' in second


# ---------------------------------------------------------------- 12: strict ids


@pytest.mark.parametrize("url", ["/posters/1_0", "/movies/1_0", "/movies/1_0/similar", "/movies/+10",
                                 "/movies/%2010", "/movies/010", "/movies/1%20", "/users/1_0/recommendations",
                                 "/movies/١٠", "/posters/0x0a", "/movies/3?n=1_0", "/movies/3/similar?n=1_0",
                                 "/movies/3/similar?visual_weight=0_5", "/movies/3/similar?visual_weight=nan",
                                 "/movies/3/similar?visual_weight=inf", "/movies/3/similar?visual_weight=%200.5"])
def test_ids_and_numbers_are_parsed_strictly(client, url):
    r = client.get(url)
    if "?" in url and url.startswith("/movies/3?"):  # /movies/{id} takes no n: ignored
        assert r.status_code == 200
        return
    assert r.status_code in (404, 422), (url, r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/json"


def test_poster_1_0_is_not_poster_10(client, home):
    r = client.get("/posters/1_0")
    assert r.status_code == 422
    assert r.content != (home / "posters/fake-planted/10.png").read_bytes()
    assert client.get("/posters/10").status_code == 200  # the plain id still works


# ---------------------------------------------------------------- 13: off the event loop


class SlowFake(FakeRecommender):
    """similar() takes 0.5 s of the CPU-bound kind (it never yields to the event loop)."""

    def similar(self, movie_id, n=10, visual_weight=None):
        time.sleep(0.5)
        return super().similar(movie_id, n, visual_weight)


@pytest.fixture
def live_server(home, monkeypatch):
    """A real uvicorn on 127.0.0.1 in a thread, serving SlowFake: yields the port."""

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app = create_app(home, loader=SlowFake.load, rebuilder=fake_rebuild)
    with served(app, server_header=False) as port:
        yield port


def test_health_stays_fast_while_a_slow_query_computes(live_server):
    base = f"http://127.0.0.1:{live_server}"
    slow_status = []

    def slow(w):
        slow_status.append(httpx.get(f"{base}/movies/2/similar?visual_weight={w}", timeout=30).status_code)

    threads = [threading.Thread(target=slow, args=(w,)) for w in (0.1, 0.2, 0.3)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # the slow queries are now computing
    with httpx.Client(base_url=base, timeout=30) as c:
        took = []
        for _ in range(5):
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            took.append(time.perf_counter() - t0)
    for t in threads:
        t.join()
    assert slow_status == [200, 200, 200]
    assert max(took) < 0.25, took  # on the event loop, each would wait for the 0.5 s computations


def test_visual_weight_is_quantised_before_the_recommender_sees_it(home, monkeypatch):
    asked = []

    class Recording(FakeRecommender):
        def similar(self, movie_id, n=10, visual_weight=None):
            asked.append(visual_weight)
            return super().similar(movie_id, n, visual_weight)

        def recommend(self, user_id, n=10, visual_weight=None):
            asked.append(visual_weight)
            return super().recommend(user_id, n, visual_weight)

    with _client(home, monkeypatch, None, loader=Recording.load) as c:
        weights = [0.0, 0.01, 0.024, 0.026, 0.333, 0.5, 0.7749, 0.99, 1.0]
        answered = [c.get("/movies/2/similar", params={"visual_weight": w}).json()["visual_weight"]
                    for w in weights]
        assert c.get("/users/4/recommendations", params={"visual_weight": 0.123}).json()["visual_weight"] == 0.1
        assert c.get("/movies/2/similar").json()["visual_weight"] is None
    expected = [0.0, 0.0, 0.0, 0.05, 0.35, 0.5, 0.75, 1.0, 1.0]
    assert answered == expected
    assert asked == [*expected, 0.1, None]
    assert len({a for a in asked if a is not None}) <= 21


# ---------------------------------------------------------------- 14: security headers


@pytest.mark.parametrize("url", [*GET_ROUTES, "/movies/999", "/nope", "/movies/abc"])
def test_security_headers_on_every_response(client, url):
    r = client.get(url)
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    if url != "/docs":
        assert "script-src 'self';" in csp and "unsafe" not in csp and "http" not in csp
    assert "server" not in r.headers


def test_security_headers_on_a_500_too(home, monkeypatch):
    class Broken(FakeRecommender):
        def similar(self, movie_id, n=10, visual_weight=None):
            raise RuntimeError("a bug, not the client's fault")

    with _client(home, monkeypatch, None, loader=Broken.load) as c:
        r = c.get("/movies/2/similar")
    assert r.status_code == 500
    assert r.headers["x-content-type-options"] == "nosniff" and "content-security-policy" in r.headers


def test_the_page_needs_nothing_its_csp_forbids(client):
    """index.html and app.js: no inline script or style, no other origin, no eval."""
    import re

    static = ROOT / "posterec" / "static"
    html = (static / "index.html").read_text()
    js = (static / "app.js").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # every script is a file
    assert "<style" not in html and " style=" not in html and re.search(r"\son[a-z]+=", html) is None
    assert not re.search(r"https?://", html + js + (static / "style.css").read_text())
    assert "eval(" not in js and "new Function" not in js and "setAttribute(\"style\"" not in js
    assert "innerHTML" not in js


def test_the_page_runs_under_its_csp_in_chromium(home, monkeypatch):
    """A CSP violation in real Chromium (if installed) fails the test."""
    import shutil

    if not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    import uvicorn

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app = create_app(home, loader=FakeRecommender.load, rebuilder=fake_rebuild)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            messages = []
            page.on("console", lambda m: messages.append(m.text))
            page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                 "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")
            page.goto(url + "/#movie/7")  # movie 7 has no poster: the placeholder sets a style
            page.wait_for_selector("#similar .card", timeout=10000)
            page.goto(url + "/#user/4")
            page.wait_for_selector("#recs .card", timeout=10000)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert not [m for m in messages if "Content Security Policy" in m or "CSP violation" in m], messages


# ---------------------------------------------------------------- 9: the Protocol


def test_the_fake_implements_exactly_the_protocol(home):
    fake = FakeRecommender.load(home)
    assert isinstance(fake, RecommenderLike) and protocol_gaps(fake) == []
    for name, member in vars(RecommenderLike).items():
        if callable(member) and not name.startswith("_"):
            want = inspect.signature(member)
            got = inspect.signature(getattr(FakeRecommender, name))
            assert list(got.parameters) == list(want.parameters), name
            assert [p.default for p in got.parameters.values()] == \
                   [p.default for p in want.parameters.values()], name


def test_a_loader_that_returns_something_else_is_refused_at_load(home):
    class Partial:
        version, dataset, has_posters = "x", "y", False

    with pytest.raises(TypeError, match="RecommenderLike.*default_visual_weight"):
        create_app(home, loader=lambda h: Partial())


def test_health_reports_missing_optional_and_stale(tmp_path, monkeypatch):
    bare = make_fake_home(tmp_path / "bare", n_movies=20, posters=False)
    (bare / "fake" / "STALE").write_text("index\n")
    with _client(bare, monkeypatch, None) as c:
        body = c.get("/health").json()
    assert body["missing_optional"] == ["visual"] and body["stale"] == ["index"]


# ---------------------------------------------------------------- the command: 14 and 13


def run_cli(args, home, timeout=60, **kw):
    code = ("import sys, posterec.server as s; from fake_recommender import FakeRecommender; "
            "s._default_loader = FakeRecommender.load; from posterec.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    env.pop(TOKEN_ENV, None)
    return subprocess.Popen([sys.executable, "-c", code, "--home", str(home), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_a_busy_port_is_one_line_and_exit_1(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(["serve", "--port", str(port)], home)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--port" in lines[0] and str(port) in lines[0], err
    assert "Errno" not in err and "Traceback" not in err


def _serve_and_read(home, host):
    proc = run_cli(["serve", "--host", host, "--port", "0"], home)
    try:
        line = proc.stdout.readline()
        assert "http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split("at http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    return r, err


def test_serve_sends_no_server_banner_and_no_warning_on_loopback(home):
    r, err = _serve_and_read(home, "127.0.0.1")
    assert r.status_code == 200 and "server" not in r.headers, dict(r.headers)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "warning" not in err


def test_serve_on_all_interfaces_warns_and_names_the_token_endpoints(home):
    r, err = _serve_and_read(home, "0.0.0.0")
    assert r.status_code == 200
    assert "warning" in err and "reachable from the network" in err, err
    assert "/admin/rebuild" in err and TOKEN_ENV in err


def test_network_warning_only_for_non_loopback_hosts():
    from posterec.commands.serve import network_warning

    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert network_warning(host, False) is None, host
    for host in ("0.0.0.0", "::", "", "192.0.2.7"):
        assert "reachable from the network" in network_warning(host, True), host


# ---------------------------------------------------------------- 15: the CLI


def test_n_above_the_cap_is_a_usage_error(capsys):
    from posterec.cli import main
    from posterec.output import MAX_N

    for n in (str(MAX_N + 1), "5000"):
        with pytest.raises(SystemExit) as exc:
            main(["similar", "3", "-n", n])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"at most {MAX_N}" in err and "usage:" in err, err


def test_count_type_refuses_zero_and_above_the_cap():
    import argparse

    from posterec.output import MAX_N, count

    assert count("1") == 1 and count(str(MAX_N)) == MAX_N
    for bad in ("0", "-1", str(MAX_N + 1), "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            count(bad)


def test_verbose_after_the_command(monkeypatch):
    from posterec.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["similar", "1", "-v"]).verbose is True
    assert parser.parse_args(["-v", "similar", "1"]).verbose is True
    assert parser.parse_args(["similar", "1"]).verbose is False
    assert parser.parse_args(["serve", "--verbose"]).verbose is True


SPEW = """
import sys, types
import posterec.cli as cli
mod = types.ModuleType("spew_command")
def register(sub):
    p = sub.add_parser("spew")
    p.add_argument("--json", action="store_true")
    def run(args):
        if args.json:
            from posterec.output import emit_json
            emit_json([{"movie_id": i, "title": "x" * 50} for i in range(50000)])
        else:
            for i in range(200000):
                print(f"{i} a line of a long listing")
        return 0
    p.set_defaults(func=run)
mod.register = register
sys.modules["spew_command"] = mod
cli.COMMAND_MODULES.append("spew_command")
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_output_into_a_closed_pipe_ends_quietly(flags):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SPEW, "spew", *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(30)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert proc.returncode == 141
