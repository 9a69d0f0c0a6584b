"""Look-alike quality: genre precision@10 of each poster's nearest posters, per backbone.

On ../shared/data/posters/ml-1m (genres from ml-1m.csv), for every poster: the share of its
10 nearest posters (cosine, never itself) that share at least one genre with it, averaged.
Baselines in the same run:
- random neighbours: the exact expectation (share of all other posters sharing a genre);
- genre frequency: neighbours drawn by genre popularity, i.e. a neighbour's genre g is drawn
  with probability p(g) (its share of all genre labels), so precision = sum of p(g) over the
  query's genres;
- popular-genre movies: the same 10 neighbours for every query, the posters that share a genre
  with the most others (mostly Drama/Comedy blends) - the strongest genre-only baseline.
Backbones: every one available offline (MobileNetV2 0.35/0.5 and MobileNet 0.25 through a
temporary KERAS_HOME linked to ../shared/keras/models, MobileNetV2 1.0 by path).

    python benchmarks/lookalike_quality.py [--limit N] [--policy pad] [--cache DIR]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))
POSTERS = SHARED / "data" / "posters"
WEIGHTS_1 = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
K = 10


class Entry(NamedTuple):
    movie_id: int
    path: Path
    sha256: str


def read_posters(limit: int | None):
    entries, genres = [], {}
    with open(POSTERS / "ml-1m.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            path = POSTERS / row["poster_file"] if row["poster_file"] else None
            if path is None or not path.exists() or row["poster_is_placeholder"] == "1":
                continue
            m = int(row["movieId"])
            entries.append(Entry(m, path, row["poster_sha256"] or hashlib.sha256(path.read_bytes()).hexdigest()))
            genres[m] = frozenset(g for g in row["genres"].split("|") if g)
    entries.sort(key=lambda e: e.movie_id)
    return (entries[:limit] if limit else entries), genres


def shares_genre_matrix(ids, genres):
    import numpy as np

    names = sorted({g for m in ids for g in genres[m]})
    onehot = np.array([[g in genres[m] for g in names] for m in ids], np.float32)
    return (onehot @ onehot.T) > 0, onehot


def precision_at_k(values, share, k=K) -> float:
    import numpy as np

    sims = values @ values.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    return float(np.mean(np.take_along_axis(share, top, axis=1)))


def baselines(share, onehot) -> dict:
    import numpy as np

    n = share.shape[0]
    off = share.copy()
    np.fill_diagonal(off, False)
    random_exact = float(np.mean(off.sum(1) / (n - 1)))
    rng = np.random.default_rng(0)
    picks = np.array([rng.choice(np.delete(np.arange(n), i), K, replace=False) for i in range(n)])
    random_sampled = float(np.mean(np.take_along_axis(share, picks, axis=1)))
    p = onehot.sum(0) / onehot.sum()
    freq = float(np.mean(onehot @ p))
    # the same K movies for every query: those sharing a genre with the most other posters
    hit_rate = off.sum(0)
    popular = np.argsort(-hit_rate, kind="stable")[: K + 1]
    prec = [np.mean(share[i, [j for j in popular if j != i][:K]]) for i in range(n)]
    return {"random_expected": random_exact, "random_sampled_seed0": random_sampled,
            "genre_frequency": freq, "popular_genre_movies": float(np.mean(prec))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, help="use only the first N posters")
    ap.add_argument("--policy", default="pad", choices=("pad", "center-crop"))
    ap.add_argument("--cache", help="embedding cache folder (default: a temporary one)")
    args = ap.parse_args()
    if not (POSTERS / "ml-1m.csv").exists():
        print(f"skipped: {POSTERS / 'ml-1m.csv'} is absent")
        return 0
    keras_home = Path(tempfile.mkdtemp(prefix="keras-home-"))
    (keras_home / "models").mkdir()
    for f in (SHARED / "keras" / "models").glob("*.h5"):
        (keras_home / "models" / f.name).symlink_to(f)
    os.environ["KERAS_HOME"] = str(keras_home)  # before Keras is imported

    import numpy as np  # noqa: E402

    from embed_throughput import environment  # noqa: E402 (same folder)
    from vision_model import VisionConfig, embed_posters  # noqa: E402

    entries, genres = read_posters(args.limit)
    ids = [e.movie_id for e in entries]
    share, onehot = shares_genre_matrix(ids, genres)
    base = baselines(share, onehot)
    env = environment()
    print(f"CPU: {env['cpu']} x{env['cores']} (load avg {env['loadavg_1m']}); TF {env['tf']}, Keras {env['keras']}")
    print(f"{len(entries)} ml-1m posters (placeholders excluded), genre precision@{K}, policy {args.policy}")
    print(f"  {'random neighbours (expected)':<34} {base['random_expected']:.3f}")
    print(f"  {'random neighbours (sampled, seed 0)':<34} {base['random_sampled_seed0']:.3f}")
    print(f"  {'genre-frequency baseline':<34} {base['genre_frequency']:.3f}")
    print(f"  {'popular-genre movies (fixed list)':<34} {base['popular_genre_movies']:.3f}")
    backbones = [("MobileNetV2", 0.35, "imagenet"), ("MobileNetV2", 0.5, "imagenet"),
                 ("MobileNetV2", 1.0, str(WEIGHTS_1)), ("MobileNet", 0.25, "imagenet")]
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="embed-cache-"))
    results = {}
    for name, alpha, weights in backbones:
        if weights != "imagenet" and not Path(weights).exists():
            print(f"  {name} alpha {alpha}: weights absent, skipped")
            continue
        config = VisionConfig(backbone=name, alpha=alpha, weights=weights, policy=args.policy)
        t = time.perf_counter()
        result = embed_posters(entries, config, cache_dir=cache, progress=False)
        seconds = time.perf_counter() - t
        v = result.vectors
        rows = v.rows_of(ids) if len(v) == len(ids) else None
        if rows is None:
            keep = [i for i, m in enumerate(ids) if m in v]
            prec = precision_at_k(v.subset([ids[i] for i in keep]).values, share[np.ix_(keep, keep)])
        else:
            prec = precision_at_k(v.values[rows], share)
        label = f"{name} alpha {alpha:g}" + (" (by path)" if weights != "imagenet" else "")
        results[label] = round(prec, 4)
        print(f"  {label:<34} {prec:.3f}   (dim {v.dim}, {len(v)} posters, {len(result.failed)} failed, "
              f"{result.n_embedded} embedded in {seconds:.0f} s)")
    result = {**env,
              "n_posters": len(entries), "k": K, "policy": args.policy,
              **{k: round(v, 4) for k, v in base.items()}, "backbones": results}
    from common import record

    print(f"appended to {record('lookalike_quality', result).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
