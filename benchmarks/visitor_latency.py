"""`recommend_for` latency on an ml-1m-sized catalogue: the real ml-1m users and movies, with
1M generated ratings (ml-1m's own ratings are not available offline) and its real posters.

    python benchmarks/visitor_latency.py [--shared ../shared] [--calls 300] [--home DIR]

Builds the home through the CLI (download --source, train --epochs 1, import-posters, embed,
build-index), then times `Recommender.recommend_for` for visitors who give 5 ratings, and for
visitors who like 5 posters, at visual weight 0 and 0.5: median and p95 over the calls.
Appends a JSON line to benchmarks/results/visitor_latency.jsonl.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))

import numpy as np  # noqa: E402

from common import machine, posterec_cli as cli, record  # noqa: E402


def generated_ratings(src: Path, n: int = 1_000_000, seed: int = 0) -> None:
    """ratings.dat with power-law user activity and movie popularity over the real ids."""
    rng = np.random.default_rng(seed)
    users = np.array([int(l.split("::")[0]) for l in (src / "users.dat").read_text().splitlines() if l])
    movies = np.array([int(l.split("::")[0]) for l in (src / "movies.dat").read_text(encoding="latin-1").splitlines() if l])
    activity = rng.pareto(1.2, len(users)) + 1
    popularity = rng.pareto(1.0, len(movies)) + 1
    u = rng.choice(users, n, p=activity / activity.sum())
    m = rng.choice(movies, n, p=popularity / popularity.sum())
    key = np.unique(u.astype(np.int64) << 32 | m)
    u, m = (key >> 32).astype(np.int64), (key & 0xFFFFFFFF).astype(np.int64)
    r = np.clip(np.round(3.6 + rng.normal(0, 1.1, len(u))), 1, 5).astype(int)
    t = 956703932 + rng.integers(0, 10**7, len(u))
    with open(src / "ratings.dat", "w") as fh:
        fh.writelines(f"{a}::{b}::{c}::{d}\n" for a, b, c, d in zip(u, m, r, t))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--home", type=Path, default=None, help="reuse a home this script built")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="visitor-latency-")) / "home"
    if not (home / "models" / "CURRENT").exists():
        src = home.parent / "src-ml-1m"
        src.mkdir(parents=True, exist_ok=True)
        for f in ("users.dat", "movies.dat"):
            shutil.copy(args.shared / "data" / "ml-1m" / f, src / f)
        generated_ratings(src)
        keras_home = home.parent / "keras-home" / "models"
        keras_home.mkdir(parents=True, exist_ok=True)
        for w in (args.shared / "keras" / "models").iterdir():
            (keras_home / w.name).unlink(missing_ok=True)
            (keras_home / w.name).symlink_to(w)
        os.environ["KERAS_HOME"] = str(keras_home.parent)
        cli(home, "download", "--dataset", "ml-1m", "--source", str(src))
        cli(home, "train", "--dataset", "ml-1m", "--epochs", "1", "--progress", "0")
        cli(home, "import-posters", str(args.shared / "data" / "posters" / "ml-1m"), "--dataset", "ml-1m")
        cli(home, "embed", "--dataset", "ml-1m")
        cli(home, "build-index")
    from posterec.recommender import Recommender

    rec = Recommender.load(home)
    rng = np.random.default_rng(1)
    popular = np.array([m["movie_id"] for m in rec.popular_movies(500, with_poster=True)])
    out = {"movies": rec.counts()["movies"], "users": rec.counts()["users"], "posters": rec.counts()["posters"]}
    for kind in ("ratings", "liked"):
        for w in (0.0, 0.5):
            times = []
            for _ in range(args.calls):
                picks = rng.choice(popular, 5, replace=False)
                t0 = time.perf_counter()
                if kind == "ratings":
                    rec.recommend_for(ratings={int(m): float(rng.integers(1, 6)) for m in picks}, n=10, visual_weight=w)
                else:
                    rec.recommend_for(liked=[int(m) for m in picks], n=10, visual_weight=w)
                times.append(time.perf_counter() - t0)
            times = np.array(times[5:]) * 1000  # the first calls build the fused space of w
            out[f"{kind}_w{w}"] = {"median_ms": round(float(np.median(times)), 2),
                                   "p95_ms": round(float(np.percentile(times, 95)), 2)}
    print(f"machine: {machine()}")
    print(f"catalogue: {out['movies']} movies, {out['users']} users, {out['posters']} posters")
    for key, v in out.items():
        if isinstance(v, dict):
            print(f"  recommend_for {key:<12} median {v['median_ms']:7.2f} ms   p95 {v['p95_ms']:7.2f} ms")
    record("visitor_latency", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
