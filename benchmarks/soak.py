"""Soak: many clients against `posterec serve` for a while, with a rebuild every few seconds.

    python benchmarks/soak.py --home HOME            # the real Recommender in HOME
    python benchmarks/soak.py                        # builds a small home from the planted fixture
    python benchmarks/soak.py --fake --duration 10   # the tests' fake recommender (checks the script)

The server is the `posterec serve` command itself, in a subprocess on 127.0.0.1 (a free port),
with a fresh $POSTEREC_ADMIN_TOKEN. ``--clients`` keep-alive connections (default 50) each send
one request at a time for ``--duration`` seconds (default 60), drawn from a mix of /health,
/movies?q=, /movies/{id}, /similar (at the default and at varied visual weights), /lookalike,
/users/{id}/recommendations and /posters/{id}, all with ids the server said it knows, so every
answer must be a 200. Every ``--rebuild-every`` seconds (default 10) a client POSTs
/admin/rebuild; a 409 (the last one still running) is counted, not failed.

Reports requests, failures (any non-200, any broken connection), p50/p99/max latency overall and
per endpoint, the rebuilds and the model versions that answered, with the machine; appends a JSON
line to benchmarks/results/soak.jsonl; exits 1 if any request failed or any rebuild failed.
Client and server share the machine's cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))  # the planted fixture and the fake live with the tests

from common import machine, record
from serve_load import Connection  # the small keep-alive HTTP/1.1 client

TOKEN_ENV = "POSTEREC_ADMIN_TOKEN"

# `posterec serve` with the tests' fake recommender patched in (--fake only)
FAKE_SERVE = """
import sys
import posterec.server as server
from fake_recommender import FakeRecommender, fake_rebuild
server._default_loader = FakeRecommender.load
server._default_rebuilder = lambda home, visual_weight=None: fake_rebuild(home, visual_weight, {delay})
from posterec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict:
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


def posterec(home: Path, *args: str) -> None:
    """Run one `posterec` command; stop with its output if it fails."""
    cmd = [sys.executable, "-m", "posterec", "--home", str(home), *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    print(f"  posterec {' '.join(args)}: exit {done.returncode} in {time.perf_counter() - t0:.1f} s")
    if done.returncode != 0:
        raise SystemExit(f"`posterec {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")


def build_home(root: Path) -> Path:
    """A small real home: the planted MovieLens-format fixture, one epoch, an index."""
    from movielens_fixture import write_ml100k

    source = write_ml100k(root / "source")
    home = root / "home"
    print(f"building a small home in {home} from the planted fixture:")
    posterec(home, "download", "--dataset", "ml-100k", "--source", str(source))
    posterec(home, "train", "--dataset", "ml-100k", "--epochs", "1", "--progress", "0")
    posterec(home, "build-index")
    return home


def start_server(home: Path, token: str, fake_delay: float | None, log) -> tuple[subprocess.Popen, int]:
    """`posterec serve` on a free port of 127.0.0.1; its stderr goes to ``log`` (a file)."""
    if fake_delay is None:
        cmd = [sys.executable, "-m", "posterec"]
    else:
        cmd = [sys.executable, "-c", FAKE_SERVE.format(delay=fake_delay)]
    cmd += ["--home", str(home), "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, env={**_env(), TOKEN_ENV: token}, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    line = proc.stdout.readline()
    if "at http://127.0.0.1:" not in line:
        proc.kill()
        proc.wait()
        log.seek(0)
        raise SystemExit(f"the server did not start: {line!r}\n{log.read()}")
    return proc, int(line.split("at http://127.0.0.1:", 1)[1].split("/", 1)[0])


async def get_json(port: int, path: str, headers=None, method="GET", body=b""):
    conn = Connection(port)
    try:
        status, data = await conn.request(method, path, headers, body)
    finally:
        conn.close()
    return status, json.loads(data) if data else None


async def known(port: int) -> dict:
    """Ids the server knows: movies (with and without posters) and users."""
    movies = {}
    for q in "aeiost":
        _, body = await get_json(port, f"/movies?q={q}&n=100")
        movies.update({m["movie_id"]: m["has_poster"] for m in body["results"]})
    _, users = await get_json(port, "/users?n=100")
    _, health = await get_json(port, "/health")
    return {"movies": sorted(movies), "posters": sorted(m for m, p in movies.items() if p),
            "users": users["user_ids"], "has_posters": health["has_posters"],
            "version": health["version"]}


def request_mix(ids: dict, rng: random.Random):
    """A function returning (endpoint name, path) for the next request."""
    movies, users, posters = ids["movies"], ids["users"], ids["posters"]
    mix = [("health", lambda: "/health"),
           ("search", lambda: f"/movies?q={rng.choice('aeiost')}&n=20"),
           ("movie", lambda: f"/movies/{rng.choice(movies)}"),
           ("similar", lambda: f"/movies/{rng.choice(movies)}/similar?n=10"),
           ("similar_weight", lambda: f"/movies/{rng.choice(movies)}/similar?n=10"
                                      f"&visual_weight={rng.choice([0, 0.1, 0.25, 0.5, 0.73, 1])}"),
           ("recommend", lambda: f"/users/{rng.choice(users)}/recommendations?n=10")]
    if ids["has_posters"] and posters:
        mix += [("lookalike", lambda: f"/movies/{rng.choice(posters)}/lookalike?n=10"),
                ("poster", lambda: f"/posters/{rng.choice(posters)}")]

    def pick():
        name, path = rng.choice(mix)
        return name, path()
    return pick


async def soak(port: int, ids: dict, token: str, clients: int, duration: float, rebuild_every: float,
               seed: int) -> dict:
    latencies = defaultdict(list)
    failures: list[str] = []
    versions = set()
    rebuilds = {"posted": 0, "busy_409": 0, "succeeded": 0, "failed": 0, "errors": []}
    stop_at = time.perf_counter() + duration
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def client(c: int):
        rng = random.Random(seed * 1000 + c)
        pick = request_mix(ids, rng)
        conn = Connection(port)
        while time.perf_counter() < stop_at:
            name, path = pick()
            t0 = time.perf_counter()
            try:
                status, body = await conn.request("GET", path)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                failures.append(f"{path}: {type(exc).__name__}: {exc}")
                conn.close()
                continue
            latencies[name].append(time.perf_counter() - t0)
            if status != 200:
                failures.append(f"{path}: HTTP {status} {body[:120]!r}")
            elif name not in ("poster", "health", "movie"):
                versions.add(json.loads(body).get("version"))
        conn.close()

    async def rebuilder():
        finished_ids, befores = set(), []
        next_at = time.perf_counter() + rebuild_every
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += rebuild_every
            await record_finished(finished_ids)  # the last one's outcome, before a POST replaces it
            weight = random.Random(rebuilds["posted"]).choice([None, 0.25, 0.5])
            body = b"{}" if weight is None else json.dumps({"visual_weight": weight}).encode()
            try:
                status, reply = await get_json(port, "/admin/rebuild", auth, "POST", body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                rebuilds["errors"].append(f"POST: {type(exc).__name__}")
                continue
            if status == 202:
                rebuilds["posted"] += 1
                befores.append(reply["version_before"])
            elif status == 409:
                rebuilds["busy_409"] += 1
            else:
                rebuilds["errors"].append(f"POST: HTTP {status} {reply}")
        # wait (bounded) for the last rebuild to end, so its outcome is counted
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            _, state = await get_json(port, "/admin/rebuild", auth)
            if state["state"] != "running":
                break
            await asyncio.sleep(0.2)
        last = await record_finished(finished_ids)
        # Counted from the version chain, which no race can hide (a poll may miss a rebuild that
        # ends just before the next POST replaces its status): rebuild i succeeded when rebuild
        # i+1 started from a newer version; the last one by its final status.
        ok = sum(a != b for a, b in zip(befores, befores[1:]))
        ok += bool(befores) and last.get("state") == "succeeded"
        rebuilds["succeeded"], rebuilds["failed"] = int(ok), len(befores) - int(ok)

    async def record_finished(finished_ids: set):
        _, state = await get_json(port, "/admin/rebuild", auth)
        key = state.get("started_at")
        if state["state"] in ("succeeded", "failed") and key not in finished_ids:
            finished_ids.add(key)
            if state["state"] == "failed":
                rebuilds["errors"].append(state.get("error"))
            else:
                rebuilds.setdefault("took_s", []).append(round(state["finished_at"] - state["started_at"], 2))
        return state

    start = time.perf_counter()
    await asyncio.gather(rebuilder(), *(client(c) for c in range(clients)))
    wall = time.perf_counter() - start

    def stats(xs) -> dict:
        ms = np.array(xs) * 1000
        return {"requests": len(xs), "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)} \
            if len(xs) else {"requests": 0}

    every = [x for xs in latencies.values() for x in xs]
    return {"clients": clients, "duration_s": duration, "rebuild_every_s": rebuild_every,
            "seconds": round(wall, 2), "requests": len(every), "failed": len(failures),
            "failures": failures[:10], "requests_per_s": round(len(every) / wall, 1),
            **{k: v for k, v in stats(every).items() if k != "requests"},
            "by_endpoint": {k: stats(v) for k, v in sorted(latencies.items())},
            "rebuilds": rebuilds, "versions_answered": sorted(v for v in versions if v)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, help="a posterec home with a current model (default: build a "
                                             "small one from the planted fixture)")
    p.add_argument("--fake", action="store_true", help="serve the tests' fake recommender instead "
                                                       "(a check of this script, not of the model)")
    p.add_argument("--fake-movies", type=int, default=1682, help="movies in the fake home (default: 1682)")
    p.add_argument("--fake-rebuild-s", type=float, default=2.0, help="how long a fake rebuild takes")
    p.add_argument("--clients", type=int, default=50, help="concurrent connections (default: 50)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default: 60)")
    p.add_argument("--rebuild-every", type=float, default=10.0, help="seconds between rebuilds (default: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-record", action="store_true", help="do not append to results/")
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="posterec-soak-")
    try:
        if args.fake:
            from fake_recommender import make_fake_home

            home = make_fake_home(Path(tmp.name) / "home", n_movies=args.fake_movies, n_users=943)
            what = "fake (tests/fake_recommender.py)"
        elif args.home:
            home, what = args.home, f"real: {args.home}"
        else:
            home = build_home(Path(tmp.name))
            what = "real: planted fixture (tests/movielens_fixture.py), train --epochs 1"
        token = secrets.token_hex(16)
        with tempfile.TemporaryFile("w+") as log:
            proc, port = start_server(home, token, args.fake_rebuild_s if args.fake else None, log)
            try:
                ids = asyncio.run(known(port))
                result = asyncio.run(soak(port, ids, token, args.clients, args.duration,
                                          args.rebuild_every, args.seed))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.seek(0)
            server_err = log.read()
    finally:
        tmp.cleanup()

    tracebacks = server_err.count("Traceback")
    info = {"recommender": what, "movies_known": len(ids["movies"]), "server_tracebacks": tracebacks,
            "server_stderr_tail": server_err.strip().splitlines()[-5:]}
    print(f"machine: {machine()}")
    print(f"server: {what}; {len(ids['movies'])} known movies; first version {ids['version']}")
    print(f"{result['clients']} clients for {result['seconds']} s: {result['requests']} requests "
          f"({result['requests_per_s']} req/s), {result['failed']} failed; "
          f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms, max {result.get('max_ms')} ms")
    for name, s in result["by_endpoint"].items():
        print(f"  {name:15s} {s['requests']:7d}  p50 {s.get('p50_ms')} ms  p99 {s.get('p99_ms')} ms  "
              f"max {s.get('max_ms')} ms")
    rb = result["rebuilds"]
    print(f"rebuilds every {args.rebuild_every:g} s: {rb['posted']} started, {rb['succeeded']} succeeded, "
          f"{rb['failed']} failed, {rb['busy_409']} refused while one ran; took {rb.get('took_s')} s")
    print(f"versions answered: {result['versions_answered']}")
    print(f"server tracebacks in its log: {tracebacks}")
    if result["failures"]:
        print(f"first failures: {result['failures']}")
    if not args.no_record:
        print(f"appended to {record('soak', {**info, **result})}")
    ok = result["failed"] == 0 and rb["failed"] == 0 and not rb["errors"] and tracebacks == 0
    print("zero failed requests and rebuilds: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
