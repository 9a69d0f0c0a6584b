"""Hybrid quality on ml-100k with the real posters: recommend's HR@10/NDCG@10 and similar's genre
precision@10 by visual weight, plus the cold-start comparison.

    python benchmarks/hybrid_quality.py [--home DIR] [--cold-home DIR] [--shared ../shared]
                                        [--weights-file H5] [--visual-weights 0,0.1,0.25,0.5,1]
                                        [--skip-cold-start]

1. ``--home`` gets ml-100k, the shared posters, ``train --split leave-last-out`` (seed 0),
   ``embed`` and ``build-index`` (each step skipped when the current model already has it; the
   embedding cache is shared with ``--cold-home``).
2. Leakage guard: the saved seen.npz and the ratings the Recommender loads for a user's visual
   taste hold every rating, the held-out one included. Here ``rec.seen`` is replaced by the
   training ratings' `SeenItems` and ``rec._ratings`` by the training ratings, so the held-out
   movie is a candidate and never part of the taste (the split is recomputed with
   `make_split(..., "leave-last-out", seed=0)` and checked against the model's test.npz).
3. recommend: HR@10 / NDCG@10 of the held-out movie among all unrated movies, per visual weight,
   against most-popular (train counts) in the same run.
4. similar: genre precision@10 (share of the 10 neighbours sharing >= 1 genre with the query)
   over every movie with vectors, per weight, against a random draw, the genre-frequency
   expectation (what any genre-blind method scores on average) and the 10 most-rated movies.
5. cold start: ``benchmarks/index_search.py``'s `cold_start` on ``--cold-home`` trained with
   ``--split cold-start-10`` (ridge map from poster + genres vs genre-only vs popularity/random).

Appends a JSON line to benchmarks/results/hybrid_quality.jsonl.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
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

DATASET = "ml-100k"
WEIGHTS_H5 = "weights/mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
N = 10


# -- set-up ------------------------------------------------------------------------------------
def _current_manifest(home: Path) -> dict:
    from catalog import ModelStore

    store = ModelStore(home)
    folder = store.current()
    return store.read_manifest(folder) if folder is not None else {}


def _cli(home: Path, *args: str) -> None:
    from posterec.cli import main

    t0 = time.perf_counter()
    print(f"$ posterec --home {home} {' '.join(args)}", flush=True)
    try:
        rc = main(["--home", str(home), *args])
    except SystemExit as exc:  # argparse / CLI errors
        rc = exc.code
    if rc not in (0, None):
        raise RuntimeError(f"posterec {args[0]} failed with exit code {rc}")
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def prepare(home: Path, split: str, shared: Path, weights_file: Path, build_index: bool) -> dict:
    """Make ``home``'s current model: ml-100k, posters, text_model on ``split``, visual (+ index)."""
    from catalog import load_dataset

    home.mkdir(parents=True, exist_ok=True)
    try:
        load_dataset(home, DATASET)
    except Exception:  # noqa: BLE001 – not imported yet (any catalog error)
        _cli(home, "download", "--dataset", DATASET, "--source", str(shared / "data" / DATASET))
    if not (home / "posters" / DATASET / "posters.csv").exists():
        _cli(home, "import-posters", str(shared / "data" / "posters" / DATASET), "--dataset", DATASET)
    m = _current_manifest(home)
    trained = (m.get("text_model") or {}).get("split") or {}
    if not (isinstance(trained, dict) and trained.get("name") == split and int(trained.get("seed", 0)) == 0):
        _cli(home, "train", "--dataset", DATASET, "--split", split, "--seed", "0", "--progress", "0")
    if "vision" not in _current_manifest(home):
        _cli(home, "embed", "--dataset", DATASET, "--weights", str(weights_file))
    if build_index and "index" not in _current_manifest(home):
        _cli(home, "build-index")
    return _current_manifest(home)


# -- recommend ---------------------------------------------------------------------------------
def ranking_metrics(ranked: dict[int, np.ndarray], held: dict[int, int]) -> dict:
    """HR@N and NDCG@N of one held-out movie per user."""
    hits, ndcg = [], []
    for user, target in held.items():
        top = ranked[user][:N]
        where = np.flatnonzero(top == target)
        hits.append(float(len(where) > 0))
        ndcg.append(float(1.0 / np.log2(where[0] + 2)) if len(where) else 0.0)
    return {"users": len(held), f"hr@{N}": float(np.mean(hits)), f"ndcg@{N}": float(np.mean(ndcg))}


def popular_ranked(train, users) -> dict[int, np.ndarray]:
    from catalog import SeenItems

    ids, counts = np.unique(train["movie_id"].to_numpy(np.int64), return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    seen = SeenItems.from_ratings(train)
    out = {}
    for u in users:
        out[u] = order[~np.isin(order, seen.of(u))][:N]
    return out


def evaluate_recommend(rec, held: dict[int, int], weights, train) -> dict:
    results = {"most_popular": ranking_metrics(popular_ranked(train, held), held)}
    # diagnostic: the fused path (cosine of the user's collaborative vector) with no poster weight,
    # to separate the cost of leaving the rating model's own ranking from the poster's effect
    space = rec._space(0.0)
    ranked = {}
    for u in held:
        q = rec.users.get(u)
        ranked[u] = space.search(q / np.linalg.norm(q), N, exclude=rec.seen.of(u)).movie_ids
    results["fused_cosine_w=0"] = ranking_metrics(ranked, held)
    for hybrid in ("rerank", "fused"):
        for w in weights:
            if hybrid == "fused" and w == 0:
                continue  # weight 0 is the rating model's ranking whatever the strategy
            t0 = time.perf_counter()
            ranked = {u: np.array([r["movie_id"] for r in rec.recommend(u, N, visual_weight=w, because=False,
                                                                        hybrid=hybrid)], np.int64)
                      for u in held}
            leaked = sum(int(np.isin(ranked[u], rec.seen.of(u)).any()) for u in held)
            if leaked:
                raise RuntimeError(f"w={w}: {leaked} users were recommended a movie they rated in training")
            key = f"w={w:g}" if hybrid == "rerank" else f"fused w={w:g}"
            results[key] = {**ranking_metrics(ranked, held), "seconds": round(time.perf_counter() - t0, 1)}
    return results


# -- similar -----------------------------------------------------------------------------------
def evaluate_similar(rec, weights, movies) -> dict:
    genres = {int(m): set(g) for m, g in zip(movies["movie_id"], movies["genres"])}
    queries = np.array(sorted(set(rec.collab.ids.tolist() if rec.collab is not None else [])
                              | set(rec.visual.ids.tolist() if rec.visual is not None else [])), np.int64)
    queries = queries[np.isin(queries, list(genres))]

    def precision(q, neighbours) -> float:
        return float(np.mean([len(genres[q] & genres.get(int(m), set())) > 0 for m in neighbours]))

    out = {"queries": int(len(queries))}
    # baselines over the same candidate pool (every movie with vectors, never the query)
    pool = queries
    vocab = sorted(set().union(*(genres[int(q)] for q in pool)))
    onehot = np.array([[g in genres[int(q)] for g in vocab] for q in pool], dtype=np.float32)
    shares = (onehot @ onehot.T) > 0
    np.fill_diagonal(shares, False)
    share = shares.sum(axis=1) / (len(pool) - 1)
    out["genre_frequency"] = {"precision@10": float(share.mean())}
    rng = np.random.default_rng(0)
    rand = [precision(int(q), rng.choice(pool[pool != q], N, replace=False)) for q in pool]
    out["random"] = {"precision@10": float(np.mean(rand))}
    ids, counts = np.unique(rec.seen.movie_ids, return_counts=True)
    popular = ids[np.lexsort((ids, -counts))][: N + 1]
    pop = [precision(int(q), [m for m in popular if m != q][:N]) for q in pool]
    out["most_rated"] = {"precision@10": float(np.mean(pop))}
    for w in weights:
        t0 = time.perf_counter()
        p = [precision(int(q), [r["movie_id"] for r in rec.similar(int(q), N, visual_weight=w)]) for q in queries]
        out[f"w={w:g}"] = {"precision@10": float(np.mean(p)), "seconds": round(time.perf_counter() - t0, 1)}
    return out


# -- cold start --------------------------------------------------------------------------------
def evaluate_cold_start(home: Path) -> dict:
    """``benchmarks/index_search.py --cold-start HOME``'s evaluation, without its own results file."""
    spec = importlib.util.spec_from_file_location("bench_index", HERE / "index_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "cold_start"):
        return {"skipped": "benchmarks/index_search.py has no cold_start evaluation"}
    return module.cold_start(home)


# -- main --------------------------------------------------------------------------------------
def leakage_free(rec, home: Path, manifest: dict):
    """Point ``rec`` at the training ratings only; return the split and {user: held-out movie}."""
    from catalog import SeenItems, load_dataset, make_split

    dataset = load_dataset(home, DATASET)
    split = make_split(dataset.ratings, "leave-last-out", seed=0)
    with np.load(rec.folder / "test.npz", allow_pickle=False) as d:
        saved = set(zip(d["user_ids"].tolist(), d["movie_ids"].tolist()))
    mine = set(zip(split.test["user_id"].astype(int).tolist(), split.test["movie_id"].astype(int).tolist()))
    if saved != mine:
        raise RuntimeError(f"the recomputed leave-last-out split differs from {rec.folder / 'test.npz'} "
                           f"({len(saved ^ mine)} pairs differ)")
    rec.seen = SeenItems.from_ratings(split.train)
    rec._ratings = split.train
    held = {int(u): int(m) for u, m in zip(split.test["user_id"], split.test["movie_id"])}
    if len(held) != len(split.test):
        raise RuntimeError("leave-last-out should hold out exactly one rating per user")
    return split, held, dataset


def table(rec_res: dict, sim_res: dict, weights) -> str:
    lines = ["| method | HR@10 | NDCG@10 | genre precision@10 of similar |", "|---|---|---|---|"]
    for w in weights:
        k = f"w={w:g}"
        lines.append(f"| visual weight {w:g} (recommend: rerank) | {rec_res[k]['hr@10']:.4f} | {rec_res[k]['ndcg@10']:.4f} | "
                     f"{sim_res[k]['precision@10']:.4f} |")
    c = rec_res["fused_cosine_w=0"]
    lines.append(f"| fused path at weight 0 (user·movie cosine, diagnostic) | {c['hr@10']:.4f} | {c['ndcg@10']:.4f} | – |")
    for w in weights:
        if f"fused w={w:g}" in rec_res:
            b = rec_res[f"fused w={w:g}"]
            lines.append(f"| recommend hybrid=\"fused\" at weight {w:g} | {b['hr@10']:.4f} | {b['ndcg@10']:.4f} | – |")
    p = rec_res["most_popular"]
    lines.append(f"| most popular (recommend) / 10 most-rated (similar) | {p['hr@10']:.4f} | {p['ndcg@10']:.4f} | "
                 f"{sim_res['most_rated']['precision@10']:.4f} |")
    lines.append(f"| random neighbours | – | – | {sim_res['random']['precision@10']:.4f} |")
    lines.append(f"| genre-frequency expectation | – | – | {sim_res['genre_frequency']['precision@10']:.4f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tmp = Path(tempfile.gettempdir()) / "posterec-hybrid-quality"
    parser.add_argument("--home", type=Path, default=tmp / "leave-last-out",
                        help="home trained on leave-last-out (made or reused; default: %(default)s)")
    parser.add_argument("--cold-home", type=Path, default=tmp / "cold-start-10",
                        help="home trained on cold-start-10 (made or reused; default: %(default)s)")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared")
    parser.add_argument("--weights-file", type=Path, default=None, help=f"MobileNetV2 .h5 (default: SHARED/{WEIGHTS_H5})")
    parser.add_argument("--visual-weights", default="0,0.1,0.25,0.5,1", help="comma separated (default: %(default)s)")
    parser.add_argument("--skip-cold-start", action="store_true")
    args = parser.parse_args()
    weights = [float(x) for x in args.visual_weights.split(",") if x.strip()]
    weights_file = args.weights_file or args.shared / WEIGHTS_H5
    needed = [args.shared / "data" / DATASET, args.shared / "data" / "posters" / DATASET, weights_file]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        print(f"skipped: hybrid quality needs the real ml-100k data, posters and MobileNetV2 weights; missing: "
              f"{', '.join(absent)}")
        return 0

    from common import machine, record

    info = machine()
    import faiss

    info["faiss"] = faiss.__version__
    print(info, flush=True)
    t_start = time.perf_counter()
    manifest = prepare(args.home, "leave-last-out", args.shared, weights_file, build_index=True)
    from posterec.recommender import Recommender

    rec = Recommender.load(args.home)
    split, held, dataset = leakage_free(rec, args.home, manifest)
    print(f"model {rec.version}: {len(split.train)} train ratings, {len(held)} held-out (one per user); "
          f"collab {len(rec.collab)}, visual {len(rec.visual)} movies; served index weight "
          f"{rec.default_visual_weight}", flush=True)
    rec_res = evaluate_recommend(rec, held, weights, split.train)
    for k, v in rec_res.items():
        print(f"recommend {k:12}: HR@10 {v['hr@10']:.4f}  NDCG@10 {v['ndcg@10']:.4f}", flush=True)
    sim_res = evaluate_similar(rec, weights, dataset.movies)
    for k, v in sim_res.items():
        if isinstance(v, dict):
            print(f"similar {k:16}: genre precision@10 {v['precision@10']:.4f}", flush=True)
    cold = None
    if not args.skip_cold_start:
        if (args.home / "cache").exists() and not (args.cold_home / "cache").exists():
            args.cold_home.mkdir(parents=True, exist_ok=True)
            (args.cold_home / "cache").symlink_to((args.home / "cache").resolve())  # reuse embeddings
        prepare(args.cold_home, "cold-start-10", args.shared, weights_file, build_index=False)
        cold = evaluate_cold_start(args.cold_home)
    print()
    print(table(rec_res, sim_res, weights))
    if cold:
        print("\n| cold start (cold-start-10) | users | HR@10 | NDCG@10 | AUC |\n|---|---|---|---|---|")
        for method, c in cold.items():
            if not isinstance(c, dict):
                continue
            if c.get("users"):
                print(f"| {method} | {c['users']} | {c['hr@10']:.4f} | {c['ndcg@10']:.4f} | {c['auc']:.4f} |")
    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.0f} s; {info}")
    path = record("hybrid_quality", {
        "dataset": DATASET, "home": str(args.home), "version": rec.version,
        "text_model": manifest.get("text_model", {}).get("split"), "vision": {k: manifest.get("vision", {}).get(k)
                                                                              for k in ("backbone", "alpha", "dim", "n")},
        "faiss": info["faiss"], "recommend": rec_res, "similar": sim_res, "cold_start": cold,
        "seconds": round(elapsed, 1)})
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
