"""New visitors on ml-100k: fold-in from a few ratings, or from a few liked posters, against most
popular, genre-only taste and the model retrained with those users (the upper bound).

    python benchmarks/new_visitors.py [--home DIR] [--shared ../shared] [--ks 1,3,5,10] [--skip-posters]

1. Hold out 10% of users entirely (seed 0): the model (``train`` with their ratings as test pairs)
   never sees them.
2. Ratings fold-in: each held-out user's first k ratings by time are folded in
   (`Recommender.recommend_for(ratings=...)`); the rest are the test set: HR@10 (a test movie
   rated >= 4 in the top 10) and NDCG@10 (binary relevance = rated >= 4). Baselines in the same
   run: most popular (training counts, the k given excluded) and the model retrained with the
   held-out users' first k ratings (``train`` with only the rest as test pairs), ranked by
   `recommend` for those users.
3. Posters only: the visitor "likes" the posters of their first k movies rated >= 4 (users with
   k such posters); the test set is what they rated after the k-th, the movies rated up to it
   excluded from every list. Variants, all through `Recommender.recommend_for`:
   ``liked=...`` at the default weight (co-ratings of the liked movies, `posterec.visitor.CoRatings`),
   ``visual_weight=0.5`` and ``1`` (re-ranked by look), and ``ratings={m: 5}`` (the likes folded
   into the ranking model, the default before); against most popular and genre-only taste (movies
   ranked by the share of the liked movies' genres they have, ties by popularity).
4. Latency of `recommend_for` (median and p95 over the held-out users).

``--tune`` instead picks the posters-only settings on a validation slice of the *training* users
(30 % of the users not held out, seed 2): the model is trained without the held-out and the
validation users, the posters-only protocol runs on the validation users for each visual weight
in `TUNE_WEIGHTS`, and nothing about the held-out users is looked at. It leaves the validation
users in ``<home>/validation-users.csv`` for `benchmarks/visitor_variants.py`.

Appends a JSON line to benchmarks/results/new_visitors.jsonl (``new_visitors_tune`` with --tune).
"""
from __future__ import annotations

import argparse
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

from common import machine, posterec_cli as cli, record  # noqa: E402

DATASET = "ml-100k"
LIKED = 4.0
TUNE_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)


def metrics(ranked: list[int], relevant: set[int]) -> tuple[float, float]:
    hits = [1.0 if m in relevant else 0.0 for m in ranked[:10]]
    dcg = sum(h / np.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1 / np.log2(i + 2) for i in range(min(10, len(relevant))))
    return float(any(hits)), float(dcg / ideal) if ideal else 0.0


def train_without(home: Path, pairs, tag: str, embed=None):
    """Train on every rating but ``pairs`` (user, movie) and return the loaded Recommender."""
    from posterec import pipeline
    from posterec.recommender import Recommender

    path = home / f"test-pairs-{tag}.csv"
    with open(path, "w") as fh:
        fh.write("user_id,movie_id\n")
        for u, m in pairs:
            fh.write(f"{u},{m}\n")
    t = time.perf_counter()
    pipeline.train(home, DATASET, test_pairs=str(path), verbose=0, announce=lambda *a: None)
    if embed is not None and not _has_visual(home):
        embed()
    if _has_visual(home):
        pipeline.build_index(home)
    print(f"  trained without {len(pairs)} pairs ({tag}) in {time.perf_counter() - t:.0f} s", flush=True)
    return Recommender.load(home)


def _has_visual(home: Path) -> bool:
    from catalog import ModelStore

    return ModelStore(home).open_current().has("visual")


def histories(ratings, users) -> dict[int, list[tuple[int, float]]]:
    """Each user's (movie_id, rating) pairs by time (ties by movie id)."""
    out = {}
    for u in users:
        r = ratings[ratings["user_id"] == u].sort_values(["timestamp", "movie_id"])
        out[int(u)] = list(zip(r["movie_id"].astype(int), r["rating"].astype(float)))
    return out


class Baselines:
    """Most popular (training counts, ties by id) and genre-only taste, both never a movie excluded."""

    def __init__(self, popular: list[int], popularity: dict[int, int], genres: dict[int, set]):
        self.order, self.popularity, self.genres = popular, popularity, genres

    @classmethod
    def of(cls, rec, movies) -> "Baselines":
        pop_ids, pop_counts = rec.interactions.movie_counts()
        popular = [int(m) for m in pop_ids[np.lexsort((pop_ids, -pop_counts))]]
        genres = {int(m): set(g) for m, g in zip(movies["movie_id"], movies["genres"])}
        return cls(popular, dict(zip(pop_ids.tolist(), pop_counts.tolist())), genres)

    def popular(self, exclude) -> list[int]:
        return [m for m in self.order if m not in exclude][:10]

    def genre(self, liked, exclude) -> list[int]:
        share = {}
        for m, g in self.genres.items():
            if m in exclude:
                continue
            share[m] = sum(len(g & self.genres[x]) / max(len(self.genres[x]), 1) for x in liked)
        return sorted(share, key=lambda m: (-share[m], -self.popularity.get(m, 0), m))[:10]


def _liked(w):
    return lambda rec, liked, n: rec.recommend_for(liked=liked, n=n, visual_weight=w)


# posters-only variants: name -> (rec, liked ids, n) -> Hits, every one the public recommend_for
POSTER_VARIANTS = {
    "posters_only": _liked(None),                  # the default: co-ratings of the liked movies
    "posters_w0.5": _liked(0.5),
    "posters_w1": _liked(1.0),                     # by look among the co-rating candidates
    "fold_in_likes": lambda rec, liked, n: rec.recommend_for(ratings={m: 5.0 for m in liked}, n=n,
                                                             visual_weight=0.0),
}


def posters_only(rec, by_user, k: int, baselines: Baselines, variants) -> dict:
    """The posters-only protocol at ``k`` liked posters: HR@10 / NDCG@10 of each variant and of the
    baselines, over the users with k liked posters and something liked after them."""
    got = {name: [] for name in [*variants, "most_popular", "genre_only"]}
    times = {name: [] for name in variants}
    for rs in by_user.values():
        liked = [m for m, r in rs if r >= LIKED and m in rec.visual][:k]
        if len(liked) < k:
            continue
        cut = max(i for i, (m, _) in enumerate(rs) if m in liked) + 1
        relevant = {m for m, r in rs[cut:] if r >= LIKED}
        if not relevant:
            continue
        seen = {m for m, _ in rs[:cut]}
        for name, variant in variants.items():
            t = time.perf_counter()
            hits = variant(rec, liked, 10 + len(seen))
            times[name].append(time.perf_counter() - t)
            got[name].append(metrics([m for m in hits.movie_ids.tolist() if m not in seen], relevant))
        got["most_popular"].append(metrics(baselines.popular(seen), relevant))
        got["genre_only"].append(metrics(baselines.genre(liked, seen), relevant))
    out = {name: np.mean(v, axis=0).round(4).tolist() for name, v in got.items()}
    out["users"] = len(got["most_popular"])
    out["median_ms"] = {name: round(1000 * float(np.median(t)), 2) for name, t in times.items() if t}
    return out


def tune(home: Path, ratings, movies, held, ks, embed) -> int:
    """Posters-only settings on validation users drawn from the training users (see the docstring)."""
    users = np.unique(ratings["user_id"].to_numpy())
    rest = np.setdiff1d(users, held)
    val = np.sort(np.random.default_rng(2).choice(rest, size=int(len(rest) * 0.3), replace=False))
    (home / "validation-users.csv").write_text("user_id\n" + "".join(f"{u}\n" for u in val))
    out = ratings[ratings["user_id"].isin(np.concatenate([held, val]))]
    t0 = time.perf_counter()
    rec = train_without(home, list(zip(out["user_id"].astype(int), out["movie_id"].astype(int))), "tune",
                        embed=embed)
    by_user = histories(ratings, val)
    baselines = Baselines.of(rec, movies)
    variants = {f"w{w:g}": _liked(w) for w in TUNE_WEIGHTS}
    variants["fold_in_likes"] = POSTER_VARIANTS["fold_in_likes"]
    res = {k: posters_only(rec, by_user, k, baselines, variants) for k in ks}
    names = [*variants, "most_popular", "genre_only"]
    lines = ["| variant | " + " | ".join(f"k={k} HR@10 / NDCG@10" for k in ks) + " | mean HR@10 |",
             "|---" * (len(ks) + 2) + "|"]
    for name in names:
        cells = [f"{res[k][name][0]:.3f} / {res[k][name][1]:.3f}" for k in ks]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean([res[k][name][0] for k in ks]):.3f} |")
    lines.append("| users | " + " | ".join(str(res[k]["users"]) for k in ks) + " | |")
    print("\n".join(lines))
    record("new_visitors_tune", {"posters": res, "validation_users": int(len(val)),
                                 "seconds": round(time.perf_counter() - t0, 1), "machine": machine()})
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--ks", default="1,3,5,10")
    ap.add_argument("--skip-posters", action="store_true")
    ap.add_argument("--tune", action="store_true", help="pick the posters-only weight on validation users")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    src = args.shared / "data" / DATASET
    if not src.exists():
        print(f"skipped: {src} is absent")
        return 0
    home = args.home or Path(tempfile.mkdtemp(prefix="posterec-visitors-"))
    from catalog import fetch_dataset, load_dataset

    if not (home / "data" / DATASET).exists():
        fetch_dataset(home, DATASET, source=src)
    posters = args.shared / "data" / "posters" / DATASET
    weights = args.shared / "weights" / "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
    with_posters = not args.skip_posters and posters.exists() and weights.exists()
    data = load_dataset(home, DATASET)
    ratings = data.ratings
    if with_posters and not (home / "posters" / DATASET / "posters.csv").exists():
        cli(home, "import-posters", str(posters), "--dataset", DATASET)
    users = np.unique(ratings["user_id"].to_numpy())
    rng = np.random.default_rng(0)
    held = np.sort(rng.choice(users, size=len(users) // 10, replace=False))
    embed = (lambda: cli(home, "embed", "--dataset", DATASET, "--weights", str(weights))) if with_posters else None
    if args.tune:
        if not with_posters:
            print("skipped: --tune needs the posters and the weights")
            return 0
        return tune(home, ratings, data.movies, held, ks, embed)
    by_user = histories(ratings, held)
    all_pairs = [(u, m) for u, rs in by_user.items() for m, _ in rs]
    t0 = time.perf_counter()
    # the model that never saw the held-out users (embed once, after the first train)
    rec = train_without(home, all_pairs, "all", embed=embed)
    baselines = Baselines.of(rec, data.movies)
    popular_top = baselines.popular
    results = {"ratings": {}, "posters": {}, "latency_ms": {}}
    times = []
    for k in ks:
        fold, pop = [], []
        for u, rs in by_user.items():
            given, rest = rs[:k], rs[k:]
            relevant = {m for m, r in rest if r >= LIKED}
            if not relevant:
                continue
            given_ids = {m for m, _ in given}
            t = time.perf_counter()
            hits = rec.recommend_for(ratings=given, n=10, visual_weight=0.0)
            times.append(time.perf_counter() - t)
            fold.append(metrics(hits.movie_ids.tolist(), relevant))
            pop.append(metrics(popular_top(given_ids), relevant))
        results["ratings"][k] = {"users": len(fold), "fold_in": np.mean(fold, axis=0).round(4).tolist(),
                                 "most_popular": np.mean(pop, axis=0).round(4).tolist()}
        if with_posters:
            results["posters"][k] = posters_only(rec, by_user, k, baselines, POSTER_VARIANTS)
        print(k, results["ratings"][k], results["posters"].get(k), flush=True)
    results["latency_ms"] = {"median": round(1000 * float(np.median(times)), 2),
                             "p95": round(1000 * float(np.percentile(times, 95)), 2), "calls": len(times)}
    # the upper bound: retrained with each held-out user's first k ratings
    for k in ks:
        rest_pairs = [(u, m) for u, rs in by_user.items() for m, _ in rs[k:]]
        full = train_without(home, rest_pairs, f"k{k}")
        got = []
        for u, rs in by_user.items():
            relevant = {m for m, r in rs[k:] if r >= LIKED}
            if not relevant:
                continue
            got.append(metrics(full.recommend(u, 10, visual_weight=0.0).movie_ids.tolist(), relevant))
        results["ratings"][k]["retrained"] = np.mean(got, axis=0).round(4).tolist()
        r = results["ratings"][k]
        r["fold_in_share_of_retrained_hr"] = round(r["fold_in"][0] / r["retrained"][0], 3) if r["retrained"][0] else None
        print(k, r, flush=True)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["held_out_users"] = int(len(held))
    print(table(results))
    record("new_visitors", {**results, "machine": machine()})
    return 0


def _has_current(home: Path) -> bool:
    return (home / "models" / "CURRENT").exists()


def table(res: dict) -> str:
    lines = ["| k | fold-in HR@10 / NDCG@10 | most popular | retrained (upper bound) | fold-in / retrained HR |",
             "|---|---|---|---|---|"]
    for k, r in res["ratings"].items():
        f = lambda x: "n/a" if x is None else f"{x[0]:.3f} / {x[1]:.3f}"  # noqa: E731
        lines.append(f"| {k} | {f(r['fold_in'])} | {f(r['most_popular'])} | {f(r.get('retrained'))} | "
                     f"{r.get('fold_in_share_of_retrained_hr')} |")
    if res["posters"]:
        names = [*POSTER_VARIANTS, "most_popular", "genre_only"]
        lines += ["", "| k liked posters | " + " | ".join(names) + " | users |", "|---" * (len(names) + 2) + "|"]
        for k, r in res["posters"].items():
            lines.append(f"| {k} | " + " | ".join(f"{r[x][0]:.3f} / {r[x][1]:.3f}" for x in names) +
                         f" | {r['users']} |")
    lat = res["latency_ms"]
    lines.append(f"\nrecommend_for latency: median {lat['median']} ms, p95 {lat['p95']} ms over {lat['calls']} calls")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
