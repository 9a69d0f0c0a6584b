"""Ranking quality on ml-100k, measured through what a user calls, against the usual baselines.

    python benchmarks/ranking_quality.py [--work DIR] [--shared ../shared] [--weights-file H5]
                                         [--splits leave-last-out,random-80-20] [--skip-cold-start]
                                         [--skip-vbpr] [--skip-peers] [--variant-features posters,no-posters,...]
                                         [--neighbours posters,genres-year] [--neighbour-k 10,30] [--residual]
                                         [--variant-validation pairs|split] [--vbpr-seed N] [--test-at-every-alpha]

For each split (seed 0; `catalog.make_split`): the held-out pairs go to a CSV, and a home under
``--work`` gets ``download``, ``import-posters``, ``embed`` (the embedding cache is shared by the
homes) and ``train --test-pairs CSV``: posterec fits on the training part only. Then:

- posterec, as a user queries it: ``Recommender.load(home).recommend_many`` (visual weight 0: the
  ``puresvd+rating`` blend that ``train`` fits) and ``recommend(user, visual_weight=0.25 / 0.5)``;
  then ``build-index`` (which fits the learned ranking ``vbpr``) and ``recommend_many`` again;
- fusion.vbpr ablations through its own API: no features (BPR-MF) and metadata without posters;
- peers through their own libraries, each with a small grid tuned on a validation slice of the
  training data (the same rule as the split: each user's last training rating, or a random 10%):
  most popular, EASE (closed form), implicit's ALS and BPR.

Every list is a full ranking over the catalogue, the user's training movies excluded (a list that
holds one is an error). Metrics: HR@10, NDCG@10, Recall@20 (hits / min(held-out, 20)), catalogue
coverage@10; also for the held-out movies in the head (top 20% of movies by training count) and in
the tail. Cold start (``cold-start-10``: 10% of movies held out with all their ratings): the
held-out movies that have a poster are ranked for each user who rated one of them (a hit: a movie
the user rated) by today's ridge map (poster + genres + year -> ranking vectors, what build-index
writes), the same map from genres + year only, vbpr (through the version build-index wrote),
vbpr without posters, and random.

Prints the table with the machine and appends a JSON line to benchmarks/results/ranking_quality.jsonl.
"""
from __future__ import annotations

import argparse
import csv
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

import numpy as np

DATASET = "ml-100k"
WEIGHTS_H5 = "weights/mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
N, N_RECALL = 10, 20
SEED = 0
FIT_REPEATS = 3  # ALS refits and EASE final fits timed this many times; the median is reported
ALS_GRID = [dict(factors=f, regularization=r, alpha=a) for f in (32, 64, 128) for r in (0.01, 0.1) for a in (1.0, 10.0)]
BPR_GRID = [dict(factors=f, learning_rate=lr, iterations=it) for f in (32, 64, 128) for lr in (0.01, 0.05)
            for it in (100,)]
EASE_GRID = [50.0, 200.0, 500.0, 1000.0, 2000.0]
SKIP_VBPR = False        # --skip-vbpr: no build-index vbpr row and no vbpr ablations (seeded: they repeat exactly)
VARIANT_FEATURES = None  # --variant-features: which vbpr feature sets the poster variants fit (None: all)
NEIGHBOURS = ()          # --neighbours: spaces for tail neighbour smoothing ("posters", "genres-year")
NEIGHBOUR_K = (20,)      # --neighbour-k
RESIDUAL = False         # --residual: poster signals on top of the genres + year term (the control)
SKIP_PEERS = False       # --skip-peers: no w=0.25/0.5, most popular, EASE, ALS, BPR rows
VBPR_SEED = 0            # --vbpr-seed: the seed of the poster variants' vbpr fits
TEST_AT_EVERY_ALPHA = False  # --test-at-every-alpha: a diagnostic, never used to choose
VARIANT_VALIDATION = "pairs"  # --variant-validation: "pairs" (train's own random slice) or "split" (as the peers)


# -- homes ----------------------------------------------------------------------------------------
def cli(home: Path, *args: str) -> None:
    from posterec.cli import main

    t0 = time.perf_counter()
    print(f"$ posterec --home {home} {' '.join(args)}", flush=True)
    try:
        rc = main(["--home", str(home), *args])
    except SystemExit as exc:
        rc = exc.code
    if rc not in (0, None):
        raise RuntimeError(f"posterec {args[0]} failed with exit code {rc}")
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def prepare(home: Path, shared: Path, cache: Path, embed_args: list[str]) -> None:
    """``home`` with ml-100k, its posters and their embeddings (the cache folder shared)."""
    from catalog import ModelStore, PosterecError, load_dataset

    home.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    if not (home / "cache").exists():
        (home / "cache").symlink_to(cache.resolve())
    try:
        load_dataset(home, DATASET)
    except PosterecError:
        cli(home, "download", "--dataset", DATASET, "--source", str(shared / "data" / DATASET))
    if not (home / "posters" / DATASET / "posters.csv").exists():
        cli(home, "import-posters", str(shared / "data" / "posters" / DATASET), "--dataset", DATASET)
    try:
        has_visual = ModelStore(home).open_current().has("visual")
    except PosterecError:
        has_visual = False
    if not has_visual:
        cli(home, "embed", "--dataset", DATASET, *embed_args)


def train_on(home: Path, split, name: str) -> float:
    """``train --test-pairs`` on ``split``'s test pairs; the fit's seconds."""
    from posterec.pipeline import train

    pairs = home / f"test-pairs-{name}.csv"
    with open(pairs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "movie_id"])
        w.writerows(zip(split.test["user_id"].astype(int), split.test["movie_id"].astype(int)))
    t0 = time.perf_counter()
    # the validation slice of the split's own shape, as the peers are tuned (`validation_of`)
    train(home, DATASET, seed=SEED, test_pairs=pairs, verbose=0,
          validation="latest" if name == "leave-last-out" else "random")
    return time.perf_counter() - t0


# -- metrics --------------------------------------------------------------------------------------
def score_lists(lists: dict[int, np.ndarray], train, test, head: np.ndarray, n_catalogue: int) -> dict:
    """HR@10, NDCG@10, Recall@20 over all/head/tail held-out movies, and coverage@10."""
    out = {}
    for part in ("all", "head", "tail"):
        hr, ndcg, rec, users = [], [], [], 0
        for u, top in lists.items():
            rel = test.of(u)
            if part != "all":
                rel = rel[np.isin(rel, head) == (part == "head")]
            if not len(rel):
                continue
            users += 1
            hit = np.isin(top[:N_RECALL], rel)
            hr.append(float(hit[:N].any()))
            pos = np.flatnonzero(hit[:N])
            ndcg.append(float(np.sum(1 / np.log2(pos + 2)) / np.sum(1 / np.log2(np.arange(min(len(rel), N)) + 2))))
            rec.append(float(hit.sum()) / min(len(rel), N_RECALL))
        out[part] = {"users": users, "hr@10": float(np.mean(hr)) if hr else None,
                     "ndcg@10": float(np.mean(ndcg)) if ndcg else None,
                     "recall@20": float(np.mean(rec)) if rec else None}
        if part == "all":  # per user, for the paired comparison (`paired`); not recorded
            out["per_user"] = {"hr@10": np.array(hr), "ndcg@10": np.array(ndcg)}
    tops = [t[:N] for t in lists.values()]
    out["coverage@10"] = float(len(np.unique(np.concatenate(tops))) / n_catalogue) if tops else 0.0
    leaked = sum(int(np.isin(t, train.of(u)).any()) for u, t in lists.items())
    if leaked:
        raise RuntimeError(f"{leaked} lists hold a movie their user rated in training")
    return out


def val_hr(lists: dict[int, np.ndarray], val) -> float:
    return float(np.mean([np.isin(t[:N], val.of(u)).any() for u, t in lists.items()])) if lists else 0.0


# -- peers (their own libraries; numpy for EASE) -------------------------------------------------------
class Matrix:
    """The binary user x movie matrix of a training part, over the whole catalogue."""

    def __init__(self, train, movie_ids: np.ndarray):
        from scipy import sparse

        self.train, self.movie_ids, self.user_ids = train, movie_ids, train.user_ids
        rows = np.repeat(np.arange(len(train.user_ids)), train.user_counts())
        cols = np.searchsorted(movie_ids, train.movie_ids)
        self.x = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                   shape=(len(train.user_ids), len(movie_ids)))

    def top(self, scores: np.ndarray, users: np.ndarray) -> dict[int, np.ndarray]:
        from catalog import top_n

        rows = np.searchsorted(self.user_ids, users)
        cols, _ = top_n(scores[rows] if len(scores) == len(self.user_ids) else scores,
                        N_RECALL, self.x[rows].toarray() > 0)
        return {int(u): self.movie_ids[c] for u, c in zip(users, cols)}


def popular(m: Matrix, users) -> dict[int, np.ndarray]:
    counts = np.asarray(m.x.sum(axis=0)).ravel()
    return m.top(np.tile(counts, (len(users), 1)), users)


def ease(m: Matrix, lam: float) -> np.ndarray:
    g = (m.x.T @ m.x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(m.x @ b, np.float32)


def implicit_lists(model, m: Matrix, users) -> dict[int, np.ndarray]:
    rows = np.searchsorted(m.user_ids, users)
    ids, _ = model.recommend(rows, m.x[rows], N=N_RECALL, filter_already_liked_items=True)
    return {int(u): m.movie_ids[np.asarray(r)[np.asarray(r) >= 0]] for u, r in zip(users, ids)}


def fit_als(m: Matrix, p: dict):
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                                    iterations=15, random_state=SEED, num_threads=1)
    model.fit(m.x, show_progress=False)
    return model


def fit_bpr(m: Matrix, p: dict):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"], regularization=0.01,
                                        iterations=p["iterations"], random_state=SEED, num_threads=1)
    model.fit(m.x, show_progress=False)
    return model


def tuned(name, grid, fit_lists, fit_sub: Matrix, val, full: Matrix, users):
    """The grid point with the best validation HR@10 (fit on the fit part), refit on all training."""
    results = []
    for p in grid:
        results.append((val_hr(fit_lists(fit_sub, p, val.user_ids), val), p))
    best_hr, best = max(results, key=lambda r: r[0])
    t0 = time.perf_counter()
    lists = fit_lists(full, best, users)
    seconds = time.perf_counter() - t0
    print(f"  {name}: best {best} (validation HR@10 {best_hr:.4f} of {len(grid)} settings), refit {seconds:.1f} s",
          flush=True)
    return lists, {"params": best, "validation_hr@10": best_hr, "fit_seconds": round(seconds, 2)}


def validation_of(split_name: str, train_frame):
    from catalog import Interactions
    from catalog.splits import leave_last_out, random_split

    sub, val = leave_last_out(train_frame, SEED) if split_name == "leave-last-out" else \
        random_split(train_frame, 0.1, SEED + 1)
    return Interactions.from_ratings(sub), Interactions.from_ratings(val)


# -- one warm split -------------------------------------------------------------------------------
def warm_split(name: str, home: Path, shared: Path, cache: Path, embed_args, dataset) -> dict:
    from catalog import Interactions, make_split
    from fusion.vbpr import fit_vbpr, movie_features
    from posterec.pipeline import build_index
    from posterec.recommender import Recommender

    split = make_split(dataset.ratings, name, SEED)
    prepare(home, shared, cache, embed_args)
    train, test = Interactions.from_ratings(split.train), Interactions.from_ratings(split.test)
    catalogue = np.sort(dataset.movies["movie_id"].to_numpy(np.int64))
    ids, counts = train.movie_counts()
    order = ids[np.lexsort((ids, -counts))]
    head = order[: int(round(0.2 * len(ids)))]
    users = test.user_ids
    results, info = {}, {}

    def add(key, lists, extra=None):
        results[key] = {**score_lists(lists, train, test, head, len(catalogue)), **(extra or {})}
        a = results[key]["all"]
        t = results[key]["tail"]
        print(f"  {key:34} HR@10 {a['hr@10']:.4f}  NDCG@10 {a['ndcg@10']:.4f}  tail HR@10 {t['hr@10']:.4f} "
              f"({round(t['hr@10'] * t['users'])}/{t['users']})  tail NDCG@10 {t['ndcg@10']:.4f}", flush=True)

    fit_seconds = train_on(home, split, name)
    rec = Recommender.load(home)
    if not np.array_equal(np.sort(rec.interactions.movie_ids), np.sort(train.movie_ids)):
        raise RuntimeError("the trained model's interactions are not the split's training part")
    info["train_seconds"] = round(fit_seconds, 1)
    hits = rec.recommend_many(users, N_RECALL)
    base_name = rec.ranking_model.name if rec.ranking_model is not None else "rating"
    add(f"posterec recommend, w=0 ({base_name})", {int(u): h.movie_ids for u, h in zip(users, hits)},
        {"ranking": rec.ranking_model.name if rec.ranking_model is not None else None})
    for w in () if SKIP_PEERS else (0.25, 0.5):
        add(f"posterec recommend, w={w:g}",
            {int(u): rec.recommend(int(u), N_RECALL, visual_weight=w, because=False).movie_ids for u in users})
    entry = {}
    if not SKIP_VBPR:
        t0 = time.perf_counter()
        entry = build_index(home, ranking_model="vbpr")
        info["build_index_seconds"] = round(time.perf_counter() - t0, 1)
        rec = Recommender.load(home)
        hits = rec.recommend_many(users, N_RECALL)
        add("posterec recommend after build-index (vbpr)", {int(u): h.movie_ids for u, h in zip(users, hits)},
            {"ranking": entry.get("ranking")})
    # ablations of the learned model, through fusion.vbpr's own API (same fit as build-index)
    movies = dataset.movies
    genres = {int(m): tuple(g) for m, g in zip(movies["movie_id"], movies["genres"])}
    years = {int(m): (None if y != y else float(y)) for m, y in zip(movies["movie_id"], movies["year"].astype("float64"))}
    m_full = Matrix(train, catalogue)
    for key, feats in () if SKIP_VBPR else (
            ("vbpr without posters (genres + year)", movie_features(catalogue, None, genres, years)),
            ("vbpr without features (BPR-MF)", None)):
        t0 = time.perf_counter()
        model = fit_vbpr(train, feats)
        results_key_seconds = time.perf_counter() - t0
        add(key, _model_lists(model, m_full, users),
            {"fit_seconds": round(results_key_seconds, 1)})
    if not SKIP_PEERS:
        _peers(name, split, catalogue, m_full, users, add, info)
    info["vbpr_fit_seconds"] = (entry.get("ranking") or {}).get("fit_seconds")
    # the ranking models train can fit, refit beside its rating model on its own validation slice,
    # then the poster variants on top of the default one (benchmarks/ranking_variants.py)
    from ranking_variants import poster_variants, refit_candidates

    seen = m_full.x[np.searchsorted(m_full.user_ids, users)].toarray() > 0
    print("  ranking models beside the trained rating model:", flush=True)
    ctx = refit_candidates(home, name, DATASET, SEED, catalogue, users, seen, add)
    if VARIANT_VALIDATION == "split":  # the peers' validation slice: the split's own rule on the training part
        ctx = {**ctx, **dict(zip(("fit", "val"), validation_of(name, split.train)))}
    for cand, model in ctx["models"].items():
        info[f"{cand}_final_fit_seconds"] = model.params.get("fit_seconds")
        ease_model = model if cand == "ease" else getattr(model, "implicit", None)
        if cand in ("ease", "ease+rating") and ease_model is not None:
            from text_model.ease import ease_weights

            times = []
            for _ in range(FIT_REPEATS):  # the final fit again, as `EASE.fit_pairs` times it
                t0 = time.perf_counter()
                ease_weights(ease_model.rows, ease_model.lam)
                times.append(time.perf_counter() - t0)
            info[f"{cand}_final_fit_seconds_median"] = round(float(np.median(times)), 3)
            info[f"{cand}_final_fit_seconds_all"] = [round(t, 3) for t in times]
    t0 = time.perf_counter()
    print(f"  poster variants on {base_name}:", flush=True)
    feats = variant_features(VARIANT_FEATURES, catalogue, rec.visual, genres, years)
    spaces = {"posters": (rec.visual, True),
              "genres + year": (movie_features(catalogue, None, genres, years), False)}
    spaces = {k: v for k, v in spaces.items() if k.replace(" + ", "-") in NEIGHBOURS}
    info["poster_variants"] = poster_variants(ctx, base_name, rec.visual, feats, catalogue, users, seen, train, add,
                                              neighbours=spaces, neighbour_k=NEIGHBOUR_K, residual=RESIDUAL,
                                              vbpr_seed=VBPR_SEED, measure=None if not TEST_AT_EVERY_ALPHA else
                                              lambda lists: score_lists(lists, train, test, head, len(catalogue)))
    info["variant_validation"], info["vbpr_seed"] = VARIANT_VALIDATION, VBPR_SEED
    info["poster_variants_seconds"] = round(time.perf_counter() - t0, 1)
    return {"split": split.describe(), "head_movies": len(head), "models": results, **info}


def _peers(name, split, catalogue, m_full, users, add, info) -> None:
    """Most popular, EASE, implicit ALS and BPR, each grid tuned on the validation slice."""
    sub, val = validation_of(name, split.train)
    m_sub = Matrix(sub, catalogue)
    add("most popular", popular(m_full, users))
    lists, meta = tuned("EASE", EASE_GRID, lambda m, lam, us: m.top(ease(m, lam), us), m_sub, val, m_full, users)
    add("EASE", lists, meta)
    lists, meta = tuned("ALS", ALS_GRID, lambda m, p, us: implicit_lists(fit_als(m, p), m, us), m_sub, val, m_full,
                        users)
    add("implicit ALS", lists, meta)
    als_times = []
    for _ in range(FIT_REPEATS):  # the median of a few refits: one timing on a shared machine is noise
        t0 = time.perf_counter()
        fit_als(m_full, meta["params"])
        als_times.append(time.perf_counter() - t0)
    info["als_fit_seconds"] = round(float(np.median(als_times)), 3)
    info["als_fit_seconds_all"] = [round(t, 3) for t in als_times]
    lists, meta = tuned("BPR", BPR_GRID, lambda m, p, us: implicit_lists(fit_bpr(m, p), m, us), m_sub, val, m_full,
                        users)
    add("implicit BPR", lists, meta)


def variant_features(names, catalogue, visual, genres, years) -> dict:
    """label -> (vbpr feature Vectors, has posters) for the poster variants, by short name:
    ``posters`` (poster PCA 64 + genres + year), ``no-posters`` (genres + year), ``posters-pcaN``
    (PCA N + genres + year), ``poster-only-pcaN`` (PCA N alone); a trailing ``w`` whitens the PCA."""
    import re

    from fusion.vbpr import movie_features

    out = {}
    for name in ("posters", "no-posters") if names is None else [n for n in names if n not in ("", "none")]:
        m = re.fullmatch(r"(posters|poster-only)(?:-pca(\d+)(w?))?", name)
        if name == "no-posters":
            out["genres + year, no posters"] = (movie_features(catalogue, None, genres, years), False)
        elif m and not (m.group(1) == "poster-only" and m.group(2) is None):
            dim, white = int(m.group(2) or 64), m.group(3) == "w"
            only = m.group(1) == "poster-only"
            label = (f"posters (PCA {dim}{', whitened' if white else ''})" + ("" if only else " + genres + year")
                     if m.group(2) else "posters + genres + year")
            out[label] = (movie_features(catalogue, visual, None if only else genres, None if only else years,
                                         poster_dim=dim, whiten=white), True)
        else:
            raise SystemExit(f"--variant-features: unknown feature set {name!r}; known: posters, no-posters, "
                             "posters-pcaN, poster-only-pcaN, each PCA optionally ending in w (whitened)")
    return out


def _model_lists(model, m: Matrix, users) -> dict[int, np.ndarray]:
    """Top lists of a fusion.vbpr model over the catalogue (movies it does not know score -inf)."""
    from catalog import top_n

    scores = np.full((len(users), len(m.movie_ids)), -np.inf, np.float32)
    known = np.isin(m.movie_ids, model.movie_ids)
    scores[:, known] = model.scores(users)[:, np.searchsorted(model.movie_ids, m.movie_ids[known])]
    rows = np.searchsorted(m.user_ids, users)
    cols, _ = top_n(scores, N_RECALL, m.x[rows].toarray() > 0)
    return {int(u): m.movie_ids[c[c >= 0]] for u, c in zip(users, cols)}


# -- cold start -----------------------------------------------------------------------------------
def cold_split(home: Path, shared: Path, cache: Path, embed_args, dataset) -> dict:
    from catalog import Interactions, ModelStore, make_split
    from fusion import ColdStartMap, select_alpha
    from fusion.vbpr import fit_vbpr, movie_features
    from posterec import pipeline
    from posterec.recommender import Recommender

    split = make_split(dataset.ratings, "cold-start-10", SEED)
    prepare(home, shared, cache, embed_args)
    train_on(home, split, "cold-start-10")
    version = ModelStore(home).open_current()
    rating, base = pipeline.text_vectors(version)
    visual = pipeline.visual_vectors(version)
    movies = dataset.movies
    test = Interactions.from_ratings(split.test)
    cold = np.intersect1d(np.unique(test.movie_ids), visual.ids)
    users = test.user_ids[[np.isin(test.of(u), cold).any() for u in test.user_ids]]
    ranked: dict[str, np.ndarray] = {}
    uv = base.ranking_users.values[base.ranking_users.rows_of(users)]
    # the rating model's movie tower gives a held-out movie vectors from its genres and title
    # (PureSVD has none for it): recommend's order for it today
    ranked[f"posterec recommend today ({base.name}; text tower only)"] = uv @ base.ranking_movies.subset(cold).values.T
    # today's ridge map (what build-index fits for poster-only movies), fit on the warm movies
    warm = np.unique(split.train["movie_id"].to_numpy(np.int64))
    targets = base.ranking_movies.subset(warm)
    ids = movies["movie_id"].to_numpy()
    genres = {int(m): tuple(g) for m, g in zip(ids, movies["genres"])}
    years = {int(m): (None if y != y else float(y)) for m, y in zip(ids, movies["year"].astype("float64"))}
    cinfo = {}
    for key, feats in (("ridge map: poster + genres + year (build-index today)",
                        pipeline._cold_start_features(visual, movies)[0]),
                       ("ridge map: genres + year", movie_features(ids, None, genres, years))):
        alpha, _ = select_alpha(feats, targets, base.ranking_users)
        est = ColdStartMap(alpha).fit(feats, targets).predict(feats.subset(cold))
        ranked[key] = uv @ est.values.T
        cinfo[key] = {"alpha": alpha}
    pipeline.build_index(home, ranking_model="vbpr")
    rec = Recommender.load(home)
    users_v, movies_v = rec.ranking_model.ranking_users, rec.ranking_model.ranking_movies
    ranked[f"{rec.ranking_model.name}: poster + genres + year (build-index)"] = \
        users_v.values[users_v.rows_of(users)] @ movies_v.subset(cold).values.T
    train = Interactions.from_ratings(split.train)
    model = fit_vbpr(train, movie_features(np.union1d(ids, train.movie_ids), None, genres, years),
                     user_ids=users)
    ranked["vbpr: genres + year, no posters"] = model.scores(users)[:, np.searchsorted(model.movie_ids, cold)]
    ranked["random"] = np.random.default_rng(SEED).random((len(users), len(cold)))
    out = {"cold_movies": len(cold), "users": len(users), "ridge": cinfo}
    for key, s in ranked.items():
        order = np.argsort(-s, axis=1, kind="stable")
        hr, ndcg = [], []
        for k, u in enumerate(users):
            rel = np.isin(cold[order[k]], test.of(u))
            pos = np.flatnonzero(rel[:N])
            hr.append(float(len(pos) > 0))
            ndcg.append(float(np.sum(1 / np.log2(pos + 2)) / np.sum(1 / np.log2(np.arange(min(rel.sum(), N)) + 2))))
        out[key] = {"hr@10": float(np.mean(hr)), "ndcg@10": float(np.mean(ndcg))}
        print(f"  cold {key:52} HR@10 {out[key]['hr@10']:.4f}  NDCG@10 {out[key]['ndcg@10']:.4f}", flush=True)
    # through recommend itself: a held-out movie the user rated among their top 10 of the whole catalogue
    hits = rec.recommend_many(users, N)
    out["recommend top 10 of the catalogue holds a held-out movie the user rated"] = float(np.mean(
        [np.isin(h.movie_ids, test.of(u)).any() for u, h in zip(users, hits)]))
    return out


# -- output ---------------------------------------------------------------------------------------
def paired(a: dict, b: dict, repeats: int = 2000) -> dict:
    """Mean per-user difference a - b of HR@10 and NDCG@10 over the same held-out users, with a 95%
    interval from a seeded paired bootstrap over users (the lists are scored on the same users)."""
    rng = np.random.default_rng(SEED)
    out = {}
    for metric in ("hr@10", "ndcg@10"):
        d = a["per_user"][metric] - b["per_user"][metric]
        means = d[rng.integers(0, len(d), (repeats, len(d)))].mean(axis=1)
        out[metric] = [float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]
    return out


def paired_lines(res: dict) -> str:
    models = res["models"]
    ours = next(k for k in models if k.startswith("posterec recommend, w=0 "))
    lines = [f"| {ours} minus | HR@10 (95% paired bootstrap) | NDCG@10 (95% paired bootstrap) |", "|---|---|---|"]
    for peer in ("EASE", "implicit ALS", "implicit BPR", "most popular"):
        if peer in models:
            p = paired(models[ours], models[peer])
            lines.append(f"| {peer} | " + " | ".join(f"{v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]" for v in p.values()) + " |")
    return "\n".join(lines)


def table(name: str, res: dict) -> str:
    f = lambda v: "–" if v is None else f"{v:.4f}"
    lines = [f"**{name}** ({res['split']['train']} training / {res['split']['test']} held-out ratings)", "",
             "| model | HR@10 | NDCG@10 | Recall@20 | coverage@10 | head HR@10 | head NDCG@10 | tail HR@10 | "
             "tail NDCG@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for key, r in res["models"].items():
        lines.append(f"| {key} | {f(r['all']['hr@10'])} | {f(r['all']['ndcg@10'])} | {f(r['all']['recall@20'])} | "
                     f"{f(r['coverage@10'])} | {f(r['head']['hr@10'])} | {f(r['head']['ndcg@10'])} | "
                     f"{f(r['tail']['hr@10'])} | {f(r['tail']['ndcg@10'])} |")
    return "\n".join(lines)


def main() -> int:
    global SKIP_VBPR, VARIANT_FEATURES, SEED, NEIGHBOURS, NEIGHBOUR_K, RESIDUAL, SKIP_PEERS, VARIANT_VALIDATION
    global VBPR_SEED, TEST_AT_EVERY_ALPHA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "posterec-ranking-quality")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the shared data folder (default: ../shared beside the repository)")
    parser.add_argument("--weights-file", type=Path, default=None, help=f"MobileNetV2 .h5 (default: SHARED/{WEIGHTS_H5})")
    parser.add_argument("--splits", default="leave-last-out,random-80-20")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the splits and the fits (default: {SEED})")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--skip-vbpr", action="store_true",
                        help="skip build-index's vbpr and the vbpr ablation rows (fixed seeds: they repeat exactly)")
    parser.add_argument("--variant-features", default=None,
                        help="poster variants: vbpr feature sets to fit, comma-separated among 'posters' "
                             "(posters + genres + year), 'no-posters' (genres + year), 'posters-pcaN' "
                             "(poster PCA N + genres + year), 'poster-only-pcaN'; 'w' after N whitens "
                             "(default: posters,no-posters)")
    parser.add_argument("--neighbours", default="",
                        help="tail neighbour smoothing spaces, comma-separated among 'posters' and 'genres-year'")
    parser.add_argument("--neighbour-k", default="20", help="neighbour counts, comma-separated (default 20)")
    parser.add_argument("--residual", action="store_true",
                        help="also each poster signal on top of the genres + year vbpr term (needs no-posters)")
    parser.add_argument("--variant-validation", choices=("pairs", "split"), default="pairs",
                        help="the slice the poster variants' alpha is picked on: 'pairs' (train's own random "
                             "validation pairs, default) or 'split' (the peers' slice: the split's rule on the "
                             "training part, e.g. each user's last training rating for leave-last-out)")
    parser.add_argument("--vbpr-seed", type=int, default=0, help="seed of the poster variants' vbpr fits (default 0)")
    parser.add_argument("--test-at-every-alpha", action="store_true",
                        help="diagnostic: record each poster variant's test metrics at every alpha (the choice "
                             "stays validation's)")
    parser.add_argument("--skip-peers", action="store_true",
                        help="skip the w=0.25/0.5 recommend rows and the peers (most popular, EASE, ALS, BPR)")
    args = parser.parse_args()
    VARIANT_VALIDATION, VBPR_SEED = args.variant_validation, args.vbpr_seed
    TEST_AT_EVERY_ALPHA = args.test_at_every_alpha
    NEIGHBOURS = tuple(s.strip() for s in args.neighbours.split(",") if s.strip())
    bad = [n for n in NEIGHBOURS if n not in ("posters", "genres-year")]
    if bad:
        parser.error(f"--neighbours: unknown space(s) {', '.join(bad)}; known: posters, genres-year")
    NEIGHBOUR_K = tuple(int(k) for k in args.neighbour_k.split(",") if k.strip())
    RESIDUAL, SKIP_PEERS = args.residual, args.skip_peers
    SKIP_VBPR, SEED = args.skip_vbpr, args.seed
    VARIANT_FEATURES = None if args.variant_features is None else [s.strip() for s in args.variant_features.split(",")]
    weights_file = args.weights_file or args.shared / WEIGHTS_H5
    needed = [args.shared / "data" / DATASET, args.shared / "data" / "posters" / DATASET, weights_file]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        print(f"skipped: ranking quality needs the real ml-100k data, posters and weights; missing: {', '.join(absent)}")
        return 0
    import implicit
    from common import machine, record

    info = {**machine(), "implicit": implicit.__version__}
    print(info, flush=True)
    t_start = time.perf_counter()
    embed_args = ["--weights", str(weights_file)]
    cache = args.work / "cache"
    from catalog import load_dataset

    base = args.work / "base"
    prepare(base, args.shared, cache, embed_args)
    dataset = load_dataset(base, DATASET)
    out = {}
    for name in [s for s in args.splits.split(",") if s]:
        print(f"\n== {name}", flush=True)
        out[name] = warm_split(name, args.work / name, args.shared, cache, embed_args, dataset)
        record("ranking_quality_partial", {"split": name, "result": {**out[name], "models": {
            k: {m: v for m, v in r.items() if m != "per_user"} for k, r in out[name]["models"].items()}}})
    cold = None
    if not args.skip_cold_start:
        print("\n== cold-start-10", flush=True)
        cold = cold_split(args.work / "cold-start-10", args.shared, cache, embed_args, dataset)
    print()
    for name, res in out.items():
        print(table(name, res) + "\n")
        print(paired_lines(res) + "\n")
        res["paired"] = {peer: paired(res["models"][k], res["models"][peer]) for k in res["models"]
                         if k.startswith("posterec recommend, w=0 ") for peer in ("EASE", "implicit ALS", "implicit BPR")
                         if peer in res["models"]}
        for r in res["models"].values():
            r.pop("per_user", None)
        finals = ", ".join(f"{c} {res.get(f'{c}_final_fit_seconds')} (median of {FIT_REPEATS} more: "
                           f"{res.get(f'{c}_final_fit_seconds_median')})" for c in ("ease", "ease+rating"))
        print(f"fit seconds: posterec train {res['train_seconds']}, build-index {res.get('build_index_seconds')} "
              f"(vbpr {res['vbpr_fit_seconds']}), implicit ALS {res.get('als_fit_seconds')} (median of {FIT_REPEATS} "
              f"refits {res.get('als_fit_seconds_all')}); final EASE fit (the grid not counted, as ALS's refit): "
              f"{finals}\n")
    if cold:
        print(f"| cold start ({cold['cold_movies']} held-out movies with a poster, {cold['users']} users) | HR@10 | "
              f"NDCG@10 |\n|---|---|---|")
        for key, v in cold.items():
            if isinstance(v, dict) and "hr@10" in v:
                print(f"| {key} | {v['hr@10']:.4f} | {v['ndcg@10']:.4f} |")
    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.0f} s; {info}")
    path = record("ranking_quality", {"dataset": DATASET, "splits": out, "cold_start": cold, "implicit":
                                      info["implicit"], "seconds": round(elapsed, 1)})
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
