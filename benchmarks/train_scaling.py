"""Training cost against data size: does a rating-epoch cost the same at 0.1M and 3M ratings?

    python benchmarks/train_scaling.py [--sizes 0.1,0.3,1,3] [--epochs 2] [--baseline-sizes 0.1,0.3]
                                       [--ml100k] [--shared ../shared]

Generated data (`benchmarks/synthetic.py`) in the ml-25m CSV layout, with planted taste (users prefer some genres; movies
have a quality; half-star ratings), power-law movie popularity and user activity, 81 ratings
per user and 162 per movie on average at every size (3.25M ratings: 40k users, 20k movies, as
in issue 16). Each case runs in a fresh subprocess: load the dataset, a random 90/10 split,
fit the ``best`` config for ``--epochs`` epochs, rating metrics on the 10%, write a model
version (`text_model.artifacts.save_trained`) and answer one ``recommend`` from it. Reported:
seconds per epoch (the last epoch: the first one also traces the graph), µs per rating-epoch,
the median training step of that epoch (robust to the shared machine's bursts),
peak RSS of the worker, RMSE. ``--baseline-sizes`` also runs the old training step
(``full/dense``: every history pooled on every step, L2 and Adam over whole tables) at those
sizes; ``--ml100k`` fits both on the real ml-100k (random-80-20, seed 0, all epochs) and
compares their RMSE.
Appends one JSON line to benchmarks/results/train_scaling.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from synthetic import generate  # noqa: E402  the generated data (planted taste, power laws)


def worker(home: str, dataset_name: str, split_name: str, pooling: str, epochs: int | None) -> dict:
    """One fit, end to end, in this (fresh) process; returns its numbers."""
    from catalog import Interactions, ModelStore, load_dataset, make_split
    from text_model import RankingVectors, RatingVectors, get_config
    from text_model.artifacts import save_trained
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    t0 = time.perf_counter()
    dataset = load_dataset(home, dataset_name)
    split = make_split(dataset.ratings, split_name, 0)
    config = get_config("best").with_overrides(epochs=epochs, **variant(pooling))
    t1 = time.perf_counter()
    tm = fit_text_model(dataset, split.train, config, seed=0, verbose=0)
    t2 = time.perf_counter()
    metrics = rating_metrics(tm, split.test["user_id"], split.test["movie_id"], split.test["rating"])
    store = ModelStore(home)
    with store.new_version() as w:
        save_trained(w, tm, dataset, split, metrics, home)
    t3 = time.perf_counter()
    version = store.open_current()
    rating = RatingVectors.load(version)
    ranking = RankingVectors.load(version, rating)
    user = int(rating.user_ids[0])
    hits = ranking.recommend(user, 10, exclude=Interactions.from_arrays(version.arrays("interactions")).of(user))
    epoch_seconds = tm.history["epoch_seconds"]
    n_fit = int(round(len(split.train) * (1 - config.validation_fraction)))
    last = epoch_seconds[-1]
    step = float(np.median(tm.history["step_seconds_median"][-1:]))  # the last epoch's median step
    return {
        "pooling": pooling, "n_train": len(split.train), "n_fit": n_fit, "epochs_run": len(epoch_seconds),
        "epoch_seconds": epoch_seconds, "last_epoch_seconds": last,
        "us_per_rating_epoch": 1e6 * last / n_fit, "median_step_ms": 1e3 * step,
        "us_per_rating_step": 1e6 * step / config.batch_size, "fit_seconds": round(t2 - t1, 2),
        "load_seconds": round(t1 - t0, 2), "after_fit_seconds": round(t3 - t2, 2), "rmse": metrics["rmse"],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "version": version.name, "recommend_n": len(hits), "ranking": tm.ranking_model().name,
    }


def variant(spec: str) -> dict:
    """Config overrides of a variant: ``default`` (the ``best`` config as it is) or
    ``POOLING[:SAMPLES][/UPDATES]``, e.g. ``sampled:64/sparse``, ``full/dense`` (the old training step)."""
    if spec == "default":
        return {}
    pooling, _, updates = spec.partition("/")
    mode, _, samples = pooling.partition(":")
    return {"implicit_pooling": mode, "implicit_samples": int(samples) if samples else None,
            "embedding_updates": updates or None}


def run_worker(home: Path, dataset_name: str, split_name: str, pooling: str, epochs: int | None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, __file__, "--worker", str(home), dataset_name, split_name, pooling, str(epochs or 0)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        return {"pooling": pooling, "error": f"exit {out.returncode}: " + " | ".join(tail)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def versions() -> dict:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.1,0.3,1,3", help="millions of ratings (default: 0.1,0.3,1,3)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variant", default="default", help="the candidate (default: the best config as is)")
    parser.add_argument("--baseline", default="full/dense",
                        help="the baseline variant (default: full/dense, the old training step)")
    parser.add_argument("--baseline-sizes", default="0.1,0.3,1",
                        help="sizes also run with the baseline ('' for none)")
    parser.add_argument("--ml100k", action="store_true", help="RMSE of both poolings on the real ml-100k")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        home, name, split_name, pooling, epochs = args.worker
        print(json.dumps(worker(home, name, split_name, pooling, int(epochs) or None)), flush=True)
        return 0

    from common import machine, median, record

    from catalog import fetch_dataset

    info = {**machine(), **versions()}
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    baseline = {float(s) for s in args.baseline_sizes.split(",") if s}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            n = int(round(size * 1e6 if size != 3 else 3_253_142))
            home = Path(tmp) / f"home-{size}"
            counts = generate(Path(tmp) / f"src-{size}", n)
            fetch_dataset(home, "ml-25m", source=Path(tmp) / f"src-{size}")
            for pooling in ([args.variant, args.baseline] if size in baseline else [args.variant]):
                start = time.perf_counter()
                res = {"size_m": size, **counts, **run_worker(home, "ml-25m", "random-90-10", pooling, args.epochs),
                       "wall_seconds": round(time.perf_counter() - start, 1), "loadavg_1m": round(os.getloadavg()[0], 2)}
                rows.append(res)
                _print_row(res)
        ml100k = []
        if args.ml100k:
            source = args.shared / "data" / "ml-100k"
            if not (source / "u.data").exists():
                print(f"no ml-100k at {source}; pass --shared", file=sys.stderr)
            else:
                home = Path(tmp) / "home-ml100k"
                fetch_dataset(home, "ml-100k", source=source)
                for pooling in (args.variant, args.baseline):
                    res = {"dataset": "ml-100k", **run_worker(home, "ml-100k", "random-80-20", pooling, None)}
                    ml100k.append(res)
                    _print_row(res)
                if all("rmse" in r for r in ml100k):
                    print(f"ml-100k RMSE {args.variant} {ml100k[0]['rmse']:.4f} vs {args.baseline} {ml100k[1]['rmse']:.4f} "
                          f"(difference {ml100k[0]['rmse'] - ml100k[1]['rmse']:+.4f}); "
                          f"seconds per epoch {median(ml100k[0]['epoch_seconds'][1:] or ml100k[0]['epoch_seconds']):.2f}"
                          f" vs {median(ml100k[1]['epoch_seconds'][1:] or ml100k[1]['epoch_seconds']):.2f}")
    for name in (args.variant, args.baseline):
        ok = [r for r in rows if r.get("pooling") == name and "us_per_rating_epoch" in r]
        if len(ok) >= 2:
            print(f"{ok[-1]['size_m']}M / {ok[0]['size_m']}M ({name}): µs per rating-epoch "
                  f"{ok[-1]['us_per_rating_epoch'] / ok[0]['us_per_rating_epoch']:.2f}x, median step "
                  f"{ok[-1]['median_step_ms'] / ok[0]['median_step_ms']:.2f}x")
    for size in sizes:
        pair = {r.get("pooling"): r for r in rows if r.get("size_m") == size and "us_per_rating_epoch" in r}
        if len(pair) == 2:
            print(f"{size}M: {args.baseline} / {args.variant}: µs per rating-epoch "
                  f"{pair[args.baseline]['us_per_rating_epoch'] / pair[args.variant]['us_per_rating_epoch']:.2f}x, "
                  f"median step {pair[args.baseline]['median_step_ms'] / pair[args.variant]['median_step_ms']:.2f}x")
    path = record("train_scaling", {"epochs": args.epochs, "versions": versions(), "rows": rows, "ml100k": ml100k})
    print(f"appended to {path}")
    return 0


def _print_row(r: dict) -> None:
    if "error" in r:
        print(f"{r.get('size_m', r.get('dataset'))} {r['pooling']}: FAILED {r['error']}", flush=True)
        return
    label = f"{r['size_m']}M" if "size_m" in r else r["dataset"]
    print(f"{label:>8s} {r['pooling']:10s} train {r['n_fit']:>9,d}  epoch {r['last_epoch_seconds']:7.1f} s  "
          f"{r['us_per_rating_epoch']:6.1f} µs/rating-epoch  median step {r['median_step_ms']:6.1f} ms "
          f"({r['us_per_rating_step']:5.1f} µs/rating)  fit {r['fit_seconds']:7.1f} s  after fit "
          f"{r['after_fit_seconds']:6.1f} s  peak RSS {r['peak_rss_gb']:.2f} GB  RMSE {r['rmse']:.4f}  "
          f"recommend {r['recommend_n']}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
