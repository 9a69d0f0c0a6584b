"""Poster scraping: posters/s with 8 workers vs 1 against a local server with 50 ms latency,
and whether the shared token bucket holds its set rate (target: within 5%).

Both run the real `scrape_posters` against the fake TMDB image host of the tests
(ThreadingHTTPServer on 127.0.0.1) serving real JPEGs; nothing leaves the machine.

    python benchmarks/scrape.py [--posters 60] [--repeats 3] [--rate 40] [--rate-requests 200]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import machine, median, record  # noqa: E402
from fake_tmdb import FakeTmdb, Reply, jpeg_bytes  # noqa: E402


def throughput(workers: int, n: int, latency: float) -> float:
    from posters import PosterStore, UrlSource, scrape_posters

    with FakeTmdb(delay=latency) as fake, tempfile.TemporaryDirectory() as tmp:
        body = jpeg_bytes(300, 445)
        urls = {m: fake.route(f"/t/p/w342/{m}.jpg", Reply(body=body)) for m in range(1, n + 1)}
        store = PosterStore(tmp, "bench")
        t = time.perf_counter()
        summary = scrape_posters(store, UrlSource(urls), list(urls), workers=workers, rate=None, progress=False)
        seconds = time.perf_counter() - t
        if summary.counts.get("ok") != n:
            raise RuntimeError(f"expected {n} ok posters, got {dict(summary.counts)}")
    return n / seconds


def achieved_rate(rate: float, n: int, workers: int) -> dict:
    """Server-side arrival rate of ``n`` requests through the limiter, first to last."""
    from posters import PosterStore, UrlSource, scrape_posters

    with FakeTmdb() as fake, tempfile.TemporaryDirectory() as tmp:
        body = jpeg_bytes(300, 445)
        urls = {m: fake.route(f"/t/p/w342/{m}.jpg", Reply(body=body)) for m in range(1, n + 1)}
        scrape_posters(PosterStore(tmp, "bench"), UrlSource(urls), list(urls), workers=workers, rate=rate,
                       progress=False)
        times = sorted(fake.times)
    got = (len(times) - 1) / (times[-1] - times[0])
    return {"set": rate, "achieved": got, "error_pct": 100 * (got - rate) / rate, "requests": len(times),
            "workers": workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posters", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--rate", type=float, default=40.0)
    ap.add_argument("--rate-requests", type=int, default=200)
    args = ap.parse_args()

    import PIL
    import requests

    info = machine()
    print(f"cpu: {info['cpu']} ({info['cores']} cores), python {info['python']}, requests {requests.__version__}, "
          f"pillow {PIL.__version__}, threads active {threading.active_count()}")
    runs = {1: [], 8: []}
    for _ in range(args.repeats):  # alternate, so load drift hits both alike
        for workers in (1, 8):
            runs[workers].append(throughput(workers, args.posters, args.latency))
    one, eight = median(runs[1]), median(runs[8])
    print(f"throughput, {args.posters} posters, {args.latency * 1000:.0f} ms latency, median of {args.repeats}:")
    print(f"  1 worker : {one:7.1f} posters/s   runs {[round(x, 1) for x in runs[1]]}")
    print(f"  8 workers: {eight:7.1f} posters/s   runs {[round(x, 1) for x in runs[8]]}")
    print(f"  speed-up : {eight / one:.2f}x")
    limits = [achieved_rate(args.rate, args.rate_requests, 8) for _ in range(args.repeats)]
    errs = [r["error_pct"] for r in limits]
    worst = max(errs, key=abs)
    print(f"rate limiter, set {args.rate}/s, {args.rate_requests} requests, 8 workers: achieved "
          f"{[round(r['achieved'], 2) for r in limits]} /s; worst error {worst:+.2f}% "
          f"({'within' if abs(worst) <= 5 else 'OUTSIDE'} 5%)")
    path = record("scrape", {
        "posters": args.posters, "latency_s": args.latency, "repeats": args.repeats,
        "posters_per_s": {"1": one, "8": eight}, "runs": {str(k): v for k, v in runs.items()},
        "speedup": eight / one, "rate_limiter": limits, "rate_worst_error_pct": worst,
        "requests": requests.__version__, "pillow": PIL.__version__,
    })
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
