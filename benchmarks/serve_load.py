"""Load on `posterec serve`: latency and throughput of /movies/{id}/similar, a rebuild under load,
and a schema fuzz.

    python benchmarks/serve_load.py                    # a fake ml-100k-sized home (1682 movies)
    python benchmarks/serve_load.py --home HOME        # the real Recommender in HOME

The server runs in a subprocess (uvicorn, 127.0.0.1 only, a free port). The client
is a small asyncio HTTP/1.1 keep-alive client (cheaper than httpx, so it steals less of the
shared CPU): C connections each send one request at a time, for a bounded time and count.
Steps:
  1. /health under the same load: the framework's floor (the baseline);
  2. /movies/{id}/similar with random known ids, closed loop (each connection sends its next
     request when the last is answered): the most requests/s; then open loop at --rate req/s
     spread over the C connections: p50/p99 latency at that load (with C connections always
     busy, Little's law makes latency = C / throughput, so p99 < 50 ms is only meaningful at a
     set rate);
  3. rebuild under load: POST /admin/rebuild while step 2's load runs; every request must succeed
     and the version must change;
  4. fuzz: schemathesis cases from the live OpenAPI schema; no response may be a 5xx;
  5. side by side, each in a fresh server, one after the other: 1 worker (answers kept, as `posterec
     serve` runs), 1 worker without kept answers (every /similar searched and encoded), and 2
     workers (`serve --workers 2`), with and without kept answers: /health and /similar at C
     connections (the throughput ratio: the median over --rounds interleaved slices), /similar at
     --few (8) connections (its p99), and the server's RSS and PSS summed over its processes after
     the load (PSS divides shared pages among their sharers: the honest total).
/similar asks about every movie of the catalogue at random, so kept answers must be earned: the
table says how many different movies were asked in how many requests. Steps 1-4 run on the first
configuration; --compare-only runs step 5 alone.
Appends a JSON line to benchmarks/results/serve_load.jsonl. Client and server share the cores.
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
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the fake recommender lives with the tests

from common import machine, record  # noqa: E402


# ---------------------------------------------------------------- the server (child process)


def serve_child(args) -> None:
    import socket

    import uvicorn

    from posterec.server import create_app

    kw = {"answer_mb": args.answer_mb}
    if args.workers > 1:  # one rebuild status for all workers, as `posterec serve --workers N` has
        import tempfile

        kw["shared"] = Path(tempfile.mkdtemp(prefix="serve-load-"))
    if args.fake:
        from fake_recommender import FakeRecommender, fake_rebuild, fake_version

        delay = args.fake_rebuild_s
        app = create_app(args.home, loader=FakeRecommender.load, watch=fake_version,
                         rebuilder=lambda home, visual_weight=None: fake_rebuild(home, visual_weight, delay), **kw)
    else:
        app = create_app(args.home, **kw)
    if args.workers > 1:  # as `posterec serve --workers N` does
        from posterec.workers import serve_workers

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        serve_workers(app, sock, args.workers,
                      started=lambda pids: print(f"PORT {sock.getsockname()[1]}", flush=True))
        return
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))

    async def main():
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        print(f"PORT {server.servers[0].sockets[0].getsockname()[1]}", flush=True)
        await task

    asyncio.run(main())


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (the workers of a pre-forked server)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return [pid, *(int(k) for k in kids)]


def memory_kb(pid: int) -> dict:
    """RSS and PSS (shared pages divided among the processes sharing them) of ``pid`` and its
    children, from /proc/PID/smaps_rollup, in kB."""
    total = {"rss_kb": 0, "pss_kb": 0, "processes": 0}
    for p in family(pid):
        try:
            lines = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total["processes"] += 1
        for line in lines:
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                total[f"{name.lower()}_kb"] += int(value.split()[0])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (its workers), Linux /proc."""
    total = 0.0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(pid: int, coro) -> dict:
    """Run a load step; add the server's CPU time per request (robust to a busy machine)."""
    before, client_before = cpu_seconds(pid), time.process_time()
    result = asyncio.run(coro)
    used, client = cpu_seconds(pid) - before, time.process_time() - client_before
    n = max(result["requests"], 1)
    result["server_cpu_ms_per_request"] = round(1000 * used / n, 3)
    result["client_cpu_ms_per_request"] = round(1000 * client / n, 3)
    return result


def start_server(home: Path, fake: bool, token: str, rebuild_s: float, workers: int = 1, answer_mb: float = 32.0):
    cmd = [sys.executable, __file__, "--child", "--home", str(home), "--fake-rebuild-s", str(rebuild_s),
           "--workers", str(workers), "--answer-mb", str(answer_mb)]
    if fake:
        cmd.append("--fake")
    env = {**os.environ, "POSTEREC_ADMIN_TOKEN": token, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


# ---------------------------------------------------------------- a tiny keep-alive client


class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict | None = None,
                      body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(port: int, paths, concurrency: int, duration: float, max_requests: int,
               during=None) -> dict:
    """Closed-loop load: `concurrency` connections, until `duration` s or `max_requests`."""
    latencies, failures, versions = [], [], set()
    sent = 0
    stop_at = time.perf_counter() + duration

    async def worker():
        nonlocal sent
        conn = Connection(port)
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            path = paths()
            t0 = time.perf_counter()
            try:
                status, body = await conn.request("GET", path)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                failures.append(f"{path}: {type(exc).__name__}")
                conn.close()
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                failures.append(f"{path}: HTTP {status}")
            elif during is not None:
                versions.add(json.loads(body).get("version"))
        conn.close()

    start = time.perf_counter()
    extra = asyncio.create_task(during(port)) if during else None
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    side = await extra if extra else None
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "failed": len(failures), "failures": failures[:5],
            "seconds": round(wall, 3), "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "versions_seen": sorted(v for v in versions if v), "rebuild": side, "_latencies_ms": lat}


async def paced(port: int, paths, concurrency: int, rate: float, duration: float) -> dict:
    """Open-loop load: request i is due at i/rate s, on connection i % concurrency. Latency is
    counted from when a request was due, so a server that falls behind is charged its queueing
    (no coordinated omission)."""
    total = int(rate * duration)
    latencies, failures = [], []
    start = time.perf_counter() + 0.05

    async def worker(w: int):
        conn = Connection(port)
        for i in range(w, total, concurrency):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path = paths()
            try:
                status, _ = await conn.request("GET", path)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                failures.append(f"{path}: {type(exc).__name__}")
                conn.close()
                continue
            latencies.append(time.perf_counter() - due)
            if status != 200:
                failures.append(f"{path}: HTTP {status}")
        conn.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {"offered_per_s": rate, "requests": len(latencies), "failed": len(failures),
            "failures": failures[:5], "seconds": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None}


async def get_json(port: int, path: str, headers=None, method="GET", body=b"") -> tuple[int, dict]:
    conn = Connection(port)
    try:
        status, data = await conn.request(method, path, headers, body)
    finally:
        conn.close()
    return status, json.loads(data)


def rebuild_during(token: str, after: float, timeout: float):
    async def run(port: int) -> dict:
        await asyncio.sleep(after)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        status, started = await get_json(port, "/admin/rebuild", auth, "POST", b"{}")
        if status != 202:
            return {"error": f"POST /admin/rebuild: HTTP {status} {started}"}
        while time.perf_counter() - t0 < timeout:
            await asyncio.sleep(0.1)
            _, state = await get_json(port, "/admin/rebuild", auth)
            if state["state"] != "running":
                return {**state, "took_s": round(time.perf_counter() - t0, 2)}
        return {"error": f"rebuild still running after {timeout} s"}
    return run


# ---------------------------------------------------------------- fuzz


def fuzz(port: int, ids: list[int], users: list[int], examples: int) -> dict:
    import schemathesis
    from hypothesis import HealthCheck, given, settings, strategies as st

    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    failures, calls = [], 0
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(), movie=st.sampled_from(ids), user=st.sampled_from(users),
               swap=st.booleans())
        def check(case, movie, user, swap):
            nonlocal calls
            if swap and case.path_parameters:
                if "movie_id" in case.path_parameters:
                    case.path_parameters["movie_id"] = movie
                if "user_id" in case.path_parameters:
                    case.path_parameters["user_id"] = user
            response = case.call(timeout=30)
            calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: "
                                f"{response.status_code}")

        check()
    return {"cases": calls, "server_errors": len(failures), "examples": failures[:5]}


# ---------------------------------------------------------------- main


def known_ids(port: int) -> tuple[list[int], list[int]]:
    async def collect():
        ids = set()
        for q in "aeiost":
            _, body = await get_json(port, f"/movies?q={q}&n=100")
            ids.update(m["movie_id"] for m in body["results"])
        _, users = await get_json(port, "/users?n=100")
        return sorted(ids), users["user_ids"]
    return asyncio.run(collect())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, help="a posterec home with a current model (default: a fake)")
    p.add_argument("--fake-movies", type=int, default=1682, help="movies in the fake home (ml-100k: 1682)")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per load step")
    p.add_argument("--max-requests", type=int, default=50_000, help="cap per load step")
    p.add_argument("--rate", type=float, nargs="+", default=[200.0, 500.0],
                   help="requests/s offered in the open-loop (paced) latency steps (default: 200 500)")
    p.add_argument("--fuzz-examples", type=int, default=30, help="cases per operation (0: skip)")
    p.add_argument("--fake-rebuild-s", type=float, default=2.0, help="how long the fake rebuild takes")
    p.add_argument("--no-record", action="store_true", help="do not append to results/")
    p.add_argument("--few", type=int, default=8, help="connections of the latency step (default: 8)")
    p.add_argument("--rounds", type=int, default=4,
                   help="slices each side-by-side step's --duration is cut into, interleaved (default: 4)")
    p.add_argument("--compare-only", action="store_true",
                   help="only the side-by-side table (1 worker, 1 worker without kept answers, 2 workers)")
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--answer-mb", type=float, default=32.0, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        serve_child(args)
        return

    fake = args.home is None
    tmp = None
    if fake:
        from fake_recommender import make_fake_home

        tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
        home = make_fake_home(Path(tmp.name) / "home", n_movies=args.fake_movies, n_users=943,
                              posters=False)
    else:
        home = args.home
    token = secrets.token_hex(16)
    catalogue = catalogue_ids(home, fake, args.fake_movies)
    c, d, m = args.concurrency, args.duration, args.max_requests
    health = sim = None
    at_rates, rebuild, fuzzed = [], None, None
    if not args.compare_only:
        proc, port = start_server(home, fake, token, args.fake_rebuild_s)
        try:
            ids, users = known_ids(port)
            rng = random.Random(0)
            similar = lambda: f"/movies/{rng.choice(catalogue)}/similar?n=10"  # noqa: E731
            asyncio.run(load(port, similar, c, 1.0, m))  # warm-up
            health = measured(proc.pid, load(port, lambda: "/health", c, d, m))
            sim = measured(proc.pid, load(port, similar, c, d, m))
            at_rates = [measured(proc.pid, paced(port, similar, c, rate, d)) for rate in args.rate]
            rebuild = measured(proc.pid, load(port, similar, c,
                                              max(d, args.fake_rebuild_s + 3) if fake else d * 4, 10**9,
                                              during=rebuild_during(token, 1.0, 600)))
            fuzzed = fuzz(port, ids, users, args.fuzz_examples) if args.fuzz_examples else None
        finally:
            proc.terminate()
            proc.wait(10)
    for r in [health, sim, rebuild]:
        if r is not None:
            r.pop("_latencies_ms", None)
    compared = compare(home, fake, token, args, catalogue)
    if tmp:
        tmp.cleanup()

    import fastapi
    import uvicorn

    info = {"recommender": "fake (tests/fake_recommender.py)" if fake else f"real: {home}",
            "movies": len(catalogue), "concurrency": c, "few": args.few,
            "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__}
    print(f"machine: {machine()}")
    print(f"server: {info}")
    if sim is not None:
        steps = [("/health (floor)", health), ("/similar", sim)]
        steps += [(f"/similar paced {r['offered_per_s']:g}/s", r) for r in at_rates]
        for name, r in steps + [("/similar during rebuild", rebuild)]:
            print(f"{name:26s} {r['requests']:6d} req in {r['seconds']:5.1f} s = {r['requests_per_s']:7.1f} req/s"
                  f"  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  CPU/req server {r['server_cpu_ms_per_request']}"
                  f" ms, client {r['client_cpu_ms_per_request']} ms  failed {r['failed']} {r['failures']}")
        for r in at_rates:
            print(f"p99 at {r['offered_per_s']:g} req/s offered over {c} connections: {r['p99_ms']} ms "
                  f"(achieved {r['requests_per_s']} req/s)")
        print(f"rebuild: {rebuild['rebuild']}; versions answered: {rebuild['versions_seen']}")
        if fuzzed:
            print(f"fuzz: {fuzzed['cases']} cases, {fuzzed['server_errors']} server errors {fuzzed['examples']}")
    print_comparison(compared, c, args.few)
    if not args.no_record:
        path = record("serve_load", {**info, "health": health, "similar": sim,
                                     "similar_paced": at_rates, "rebuild_under_load": rebuild,
                                     "fuzz": fuzzed, "compared": compared})
        print(f"appended to {path}")


# ---------------------------------------------------------------- the side-by-side table

CONFIGS = [("1 worker", 1, 32.0), ("1 worker, no kept answers", 1, 0.0), ("2 workers", 2, 32.0),
           ("2 workers, no kept answers", 2, 0.0)]


def catalogue_ids(home: Path, fake: bool, fake_movies: int) -> list[int]:
    """Every movie id of the served catalogue: /similar is asked about all of them, so kept answers
    have to be earned (1,682 different answers on ml-100k), not served from a few."""
    if fake:
        return list(range(1, fake_movies + 1))
    from catalog import ModelStore
    from posterec.pipeline import movie_list_of

    return list(movie_list_of(home, ModelStore(home).open_current()).movie_ids)


def interleaved(pid: int, port: int, steps: dict, rounds: int, seconds: float, cap: int) -> dict:
    """Run each of ``steps`` ({name: (paths, connections)}) for ``seconds / rounds`` at a time,
    in turn, ``rounds`` times, so that a change of load on a shared machine falls on all of them
    alike; the merged result of each, with its req/s in every round (``per_round``)."""
    parts: dict[str, list[dict]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, (paths, conns) in steps.items():
            parts[name].append(measured(pid, load(port, paths, conns, seconds / rounds, cap)))
    merged = {}
    for name, rs in parts.items():
        lat = np.concatenate([r.pop("_latencies_ms") for r in rs])
        n, wall = sum(r["requests"] for r in rs), sum(r["seconds"] for r in rs)
        merged[name] = {"requests": n, "seconds": round(wall, 3), "requests_per_s": round(n / wall, 1),
                        "failed": sum(r["failed"] for r in rs),
                        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
                        "server_cpu_ms_per_request": round(
                            sum(r["server_cpu_ms_per_request"] * r["requests"] for r in rs) / max(n, 1), 3),
                        "per_round": [r["requests_per_s"] for r in rs]}
    return merged


def compare(home: Path, fake: bool, token: str, args, catalogue: list[int]) -> list[dict]:
    """Each of `CONFIGS` in its own server, one after the other in this run: /health and /similar
    at C connections (closed loop) and /similar at `--few` connections (its p99), interleaved
    (`interleaved`), then the server's memory. The throughput ratio is the median of the rounds'
    ratios, each from two back-to-back slices."""
    rows = []
    c, few, d, m = args.concurrency, args.few, args.duration, args.max_requests
    for name, workers, answer_mb in CONFIGS:
        proc, port = start_server(home, fake, token, args.fake_rebuild_s, workers, answer_mb)
        try:
            rng = random.Random(1)
            asked: set[int] = set()

            def similar():
                movie = rng.choice(catalogue)
                asked.add(movie)
                return f"/movies/{movie}/similar?n=10"

            time.sleep(0.5)
            asyncio.run(load(port, similar, c, 1.0, m))  # warm-up: code paths, not every answer
            got = interleaved(proc.pid, port, {"health": (lambda: "/health", c), "similar": (similar, c),
                                               "similar_few": (similar, few)}, args.rounds, d, m)
            row = {"config": name, "workers": workers, "answer_mb": answer_mb, **got, "memory": memory_kb(proc.pid)}
            row["distinct_movies_asked"] = len(asked)
            row["similar_requests"] = got["similar"]["requests"] + got["similar_few"]["requests"]
            row["ratio"] = round(float(np.median([s / h for s, h in zip(got["similar"]["per_round"],
                                                                         got["health"]["per_round"])])), 3)
            rows.append(row)
        finally:
            proc.terminate()
            proc.wait(30)
    return rows


def print_comparison(rows: list[dict], c: int, few: int) -> None:
    print(f"\nside by side (each its own server, one after the other; {c} and {few} connections, closed loop, "
          f"the three steps interleaved; ratio: median over the rounds):")
    head = (f"{'server':28s} {'/health req/s':>13s} {'/similar req/s':>14s} {'ratio':>6s} {'CPU ms/req':>10s} "
            f"{'p50@' + str(few):>8s} {'p99@' + str(few):>8s} {'PSS MB':>7s} {'RSS MB':>7s}")
    print(head)
    for r in rows:
        h, s, f, mem = r["health"], r["similar"], r["similar_few"], r["memory"]
        print(f"{r['config']:28s} {h['requests_per_s']:13.1f} {s['requests_per_s']:14.1f} {r['ratio']:6.2f} "
              f"{s['server_cpu_ms_per_request']:10.3f} {f['p50_ms']:8.2f} {f['p99_ms']:8.2f} "
              f"{mem['pss_kb'] / 1024:7.1f} {mem['rss_kb'] / 1024:7.1f}"
              f"   ({mem['processes']} processes; {r['distinct_movies_asked']} movies asked in "
              f"{r['similar_requests']} /similar requests; failed {h['failed'] + s['failed'] + f['failed']})")
    base = next((r for r in rows if r["workers"] == 1 and r["answer_mb"] > 0), None)
    for kept in (True, False):
        one = next((r for r in rows if r["workers"] == 1 and (r["answer_mb"] > 0) == kept), None)
        two = next((r for r in rows if r["workers"] == 2 and (r["answer_mb"] > 0) == kept), None)
        if one and two:
            print(f"2 workers vs 1{'' if kept else ', no kept answers'}: /similar "
                  f"{two['similar']['requests_per_s'] / one['similar']['requests_per_s']:.2f}x req/s, /health "
                  f"{two['health']['requests_per_s'] / one['health']['requests_per_s']:.2f}x, PSS "
                  f"{two['memory']['pss_kb'] / one['memory']['pss_kb']:.2f}x")
    if base:
        print(f"targets: /similar >= 0.4x /health at {c} connections: {base['ratio']:.2f} "
              f"({'met' if base['ratio'] >= 0.4 else 'missed'}); p99 < 20 ms at {few} connections: "
              f"{base['similar_few']['p99_ms']:.1f} ms ({'met' if base['similar_few']['p99_ms'] < 20 else 'missed'})")


if __name__ == "__main__":
    main()
