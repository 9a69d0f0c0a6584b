"""Exact search: numpy vs FAISS vs the routed `MovieIndex` path; approximate indexes at 1M; rebuild and cold load.

    python benchmarks/index_search.py                 # full run (several minutes on 2 cores)
    python benchmarks/index_search.py --quick         # 4k and 100k only, no 1M
    python benchmarks/index_search.py --skip-rebuild --rounds 7 --cells '100000x1280:5,20,256'

Exact top-10, three paths in one process, alternating rounds, medians:
  numpy   the plain baseline: ``q @ M.T`` + ``argpartition`` + ``argsort`` of the n best;
  faiss   `MovieIndex` forced onto FAISS ``IndexFlatIP.search`` for every batch size;
  routed  `MovieIndex` as shipped: FAISS on one thread for a single query; a batch by its
          batch-size bucket (`index.movie_index.BUCKETS`): numpy (`index.exact.exact_top`:
          blocked matmul, pruning, `catalog.top_n`) or FAISS, whichever was faster on the
          bucket's first batches (TRIALS, 3, timed on each path, on the full index). Those trials run
          before the timed rounds (each batch size's trial calls are reported as ms/call).
Every path is checked against `BruteForce` with `index.check_hits` (equal up to ties).
Prints the machine (CPU, cores, load, library versions, FAISS threads) and appends one JSON line
to benchmarks/results/index.jsonl. Data are synthetic and clustered (a mixture of Gaussians,
like real embeddings), L2-normalised, so inner product = cosine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from catalog import Vectors  # noqa: E402
from common import machine, record  # noqa: E402
from index import BruteForce, MovieIndex, check_hits  # noqa: E402
from index.movie_index import TRIALS  # noqa: E402

N_TOP = 10
ROUNDS = 5


def cpu_info() -> dict:
    return {**machine(), "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__}


def clustered(n: int, dim: int, seed: int, centers: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):  # chunked to bound the temporaries
        m = min(step, n - s)
        out[s:s + m] = c[rng.integers(0, centers, m)] + 0.7 * rng.standard_normal((m, dim), dtype=np.float32)
    faiss.normalize_L2(out)
    return out


def _queries(dim: int, q: int, seed: int) -> np.ndarray:
    # same centres as the data (seed 0), fresh noise: queries look like catalogue items
    rng = np.random.default_rng(0)
    c = rng.standard_normal((1000, dim), dtype=np.float32)
    rq = np.random.default_rng(seed)
    out = c[rq.integers(0, 1000, q)] + 0.7 * rq.standard_normal((q, dim), dtype=np.float32)
    faiss.normalize_L2(out)
    return out


def seconds(fn, at_least: float = 0.05) -> float:
    """Seconds per call of ``fn``, calling it until ``at_least`` seconds have passed (short calls
    are averaged over many, so a busy machine's scheduling hiccups weigh less)."""
    calls, t = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t
        if elapsed >= at_least:
            return elapsed / calls


def median_time(fn, repeat: int) -> float:
    return float(np.median([seconds(fn, 0) for _ in range(repeat)]))


def numpy_top(matrix: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    scores = q @ matrix.T
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
    return np.take_along_axis(top, order, 1)


def agrees(got, want) -> bool:
    try:
        check_hits(got, want, atol=1e-4)
        return True
    except AssertionError as exc:
        print(f"  MISMATCH: {exc}", flush=True)
        return False


def flat_paths(n: int, dim: int, batches: tuple[int, ...], singles: int) -> dict:
    """numpy vs FAISS vs routed on one n x dim catalogue: single queries and each batch size."""
    data = clustered(n, dim, seed=0)
    ids = np.arange(n, dtype=np.int64) + 1
    vectors = Vectors(ids, data)
    t = time.perf_counter()
    routed = MovieIndex.build(vectors)
    build_s = time.perf_counter() - t
    forced = MovieIndex.build(vectors)
    forced.set_search_options(exact_route="faiss")  # FAISS for every batch size
    q = _queries(dim, max(max(batches), singles), seed=7)
    want = BruteForce.build(vectors).search(q[:max(batches)], N_TOP)
    first_s, routed_ok = {}, []
    for b in batches:  # each batch size's first routed searches: its bucket's trials, if new
        t = time.perf_counter()
        for _ in range(2 * TRIALS):
            routed_ok.append(agrees(routed.search(q[:b], N_TOP), want[:b]))
        first_s[b] = (time.perf_counter() - t) / (2 * TRIALS)
    exact = {"routed": all(routed_ok),
             "faiss": agrees(forced.search(q[:max(batches)], N_TOP), want),
             "routed_single": agrees([routed.search(q[i], N_TOP) for i in range(singles)], want[:singles])}
    paths = {"numpy": lambda b: numpy_top(data, b, N_TOP), "faiss": lambda b: forced.search(b, N_TOP),
             "routed": lambda b: routed.search(b, N_TOP)}
    single_paths = {"numpy": lambda b: numpy_top(data, b.reshape(1, -1), N_TOP),
                    "faiss": lambda b: forced.search(b, N_TOP), "routed": lambda b: routed.search(b, N_TOP)}
    times: dict = {("single", p): [] for p in paths}
    times.update({(b, p): [] for b in batches for p in paths})
    for _ in range(ROUNDS):  # alternate the paths: load from other jobs hits all alike
        for p, fn in single_paths.items():
            times[("single", p)].append(seconds(lambda: [fn(q[i]) for i in range(singles)]) / singles)
        for b in batches:
            for p, fn in paths.items():
                times[(b, p)].append(seconds(lambda: fn(q[:b])))
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {"n": n, "dim": dim, "build_s": build_s, "exact_equals_brute_force": exact, "routes": routed.routes,
           "single_ms": {p: med[("single", p)] * 1e3 for p in paths},
           "batches": [{"batch": b, **{f"qps_{p}": b / med[(b, p)] for p in paths},
                        "trial_call_s": first_s[b], "route": _route_of(routed, b),
                        "routed_vs_numpy": med[(b, "numpy")] / med[(b, "routed")],
                        "faiss_vs_numpy": med[(b, "numpy")] / med[(b, "faiss")]} for b in batches]}
    s = row["single_ms"]
    print(f"flat n={n:>8} dim={dim:>5}  exact==brute force {exact}; build {build_s:.2f} s; "
          f"buckets routed to {routed.routes['buckets']}", flush=True)
    print(f"  single query: numpy {s['numpy']:.2f} ms, faiss {s['faiss']:.2f} ms, routed {s['routed']:.2f} ms "
          f"(routed x{s['numpy'] / s['routed']:.2f} numpy)", flush=True)
    for r in row["batches"]:
        print(f"  batch {r['batch']:>4}: q/s numpy {r['qps_numpy']:>8.0f}  faiss {r['qps_faiss']:>8.0f}  routed "
              f"{r['qps_routed']:>8.0f} ({r['route']})  | routed x{r['routed_vs_numpy']:.2f} numpy, "
              f"x{r['qps_routed'] / r['qps_faiss']:.2f} faiss; faiss x{r['faiss_vs_numpy']:.2f} numpy; "
              f"trials {r['trial_call_s'] * 1e3:.0f} ms/call", flush=True)
    return row


def _route_of(index: MovieIndex, batch: int) -> str:
    """The path a batch of ``batch`` queries takes (its bucket's winner; FAISS for one query)."""
    from index.movie_index import BUCKETS, bucket_of

    return "faiss" if batch < 2 else index.routes["buckets"][BUCKETS[bucket_of(batch)]]


def approximate_at(n: int, dim: int, nq: int, kinds: list[str], nlist: int) -> list[dict]:
    data = clustered(n, dim, seed=0)
    ids = np.arange(n, dtype=np.int64) + 1
    vectors = Vectors(ids, data)
    del data
    q = _queries(dim, nq, seed=11)
    t = time.perf_counter()
    flat = MovieIndex.build(vectors)
    flat_build = time.perf_counter() - t
    t = time.perf_counter()
    truth = [h.movie_ids for h in flat.search(q, N_TOP)]
    flat_s = time.perf_counter() - t
    del flat
    flat_qps = nq / flat_s
    print(f"flat  n={n} dim={dim}: build {flat_build:.1f} s, routed batch {nq}: {flat_qps:.0f} q/s", flush=True)
    rows = []
    for kind in kinds:
        t = time.perf_counter()
        index = MovieIndex.build(vectors, kind=kind, **({"nlist": nlist} if kind == "ivf" else {}))
        build_s = time.perf_counter() - t
        sweep = [("nprobe", p) for p in (8, 16, 32, 64)] if kind == "ivf" else [("ef_search", e) for e in (32, 64, 128)]
        for knob, value in sweep:
            index.set_search_options(**{knob: value})
            s = median_time(lambda: index.search(q, N_TOP), 3)
            got = [h.movie_ids for h in index.search(q, N_TOP)]
            recall = float(np.mean([len(set(a) & set(b)) / N_TOP for a, b in zip(got, truth)]))
            row = {"kind": kind, "n": n, "dim": dim, knob: value, "build_s": build_s, "recall@10": recall,
                   "qps": nq / s, "flat_qps": flat_qps, "speedup_vs_flat": flat_s / s}
            rows.append(row)
            print(f"{kind:5} n={n} dim={dim} {knob}={value}: build {build_s:.1f} s, recall@10 {recall:.3f}, "
                  f"{row['qps']:.0f} q/s = x{row['speedup_vs_flat']:.1f} flat", flush=True)
        index = None  # free it before the next kind
    return rows


def rebuild_4k() -> dict:
    """Fuse, build and save 4,000 movies into a model version; then load + first query in a fresh process."""
    from catalog import ModelStore
    from fusion import fuse

    rng = np.random.default_rng(3)
    ids = np.arange(1, 4001)
    collab = Vectors(ids, rng.standard_normal((4000, 64), dtype=np.float32))
    visual = Vectors(ids[:3800], rng.standard_normal((3800, 1280), dtype=np.float32))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(tmp)
        for _ in range(5):
            t = time.perf_counter()
            fused = fuse({"collaborative": collab, "visual": visual}, {"collaborative": 0.75, "visual": 0.25})
            index = MovieIndex.build(fused)
            with store.new_version() as writer:
                entry = index.save(writer)
                writer.set_stage("build-index", {"index": entry})
            times.append(time.perf_counter() - t)
        code = ("import time; t0 = time.perf_counter()\n"
                "import sys, numpy as np\n"
                "from catalog import ModelStore\n"
                "from index import MovieIndex\n"
                "t1 = time.perf_counter()\n"
                f"v = ModelStore({tmp!r}).open_current()\n"
                "ix = MovieIndex.load(v, v.stage('build-index')['index'])\n"
                f"h = ix.search(np.ones({fused.dim}, np.float32), 10)\n"
                "t2 = time.perf_counter()\n"
                "print(t1 - t0, t2 - t1, any(m.startswith('tensorflow') for m in sys.modules))")
        cold = []
        for _ in range(3):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=HERE.parent)
            total = time.perf_counter() - t
            imp, load_query, tf = out.stdout.split()
            cold.append((float(imp), float(load_query), total, tf == "True"))
    row = {"rebuild_4k_s": float(np.median(times)), "fused_dim": fused.dim,
           "import_s": float(np.median([c[0] for c in cold])), "load_first_query_s": float(np.median([c[1] for c in cold])),
           "process_total_s": float(np.median([c[2] for c in cold])), "tensorflow_imported": any(c[3] for c in cold)}
    print(f"rebuild 4,000 movies (fuse 64 + 1280 dims, build flat, save into a version): {row['rebuild_4k_s'] * 1e3:.0f} ms; "
          f"fresh process: import {row['import_s'] * 1e3:.0f} ms, load + first query {row['load_first_query_s'] * 1e3:.1f} ms, "
          f"whole process {row['process_total_s'] * 1e3:.0f} ms, tensorflow imported: {row['tensorflow_imported']}", flush=True)
    return row


def cold_start(home: Path) -> dict:
    """The cold-start comparison on a trained model (ideally trained with ``--split cold-start-10``).

    Maps poster + genres + release year into the rating model's ranking space (ranking_users /
    ranking_movies: what recommend ranks with), ridge alpha chosen by 5-fold validation on the
    training movies. The same map into the plain rating towers (collab.npz / users.npz, the first
    design) is kept as ``collab_space`` for comparison.
    """
    from catalog import ModelStore, load_dataset, make_split
    from fusion import evaluate_cold_start, genre_vectors, stack_features, year_vectors

    store = ModelStore(home)
    current = store.require_current()
    manifest = store.read_manifest(current)
    split = (manifest.get("text_model") or {}).get("split") or {}
    name = split.get("name", "cold-start-10") if isinstance(split, dict) else str(split)
    seed = int(split.get("seed", 0)) if isinstance(split, dict) else 0
    if not name.startswith("cold-start"):
        print(f"warning: the model was trained on split {name!r}, not cold-start-P: users have seen the "
              f"held-out movies, so these numbers are optimistic; re-running on cold-start-10 seed {seed}")
        name = "cold-start-10"
    dataset = load_dataset(home, manifest["dataset"])
    test = make_split(dataset.ratings, name, seed).test
    movie_ids = dataset.movies["movie_id"].to_numpy()
    genres = genre_vectors({int(m): tuple(g) for m, g in zip(movie_ids, dataset.movies["genres"])}, dataset.genres)
    years = year_vectors({int(m): (None if y != y else float(y))
                          for m, y in zip(movie_ids, dataset.movies["year"].astype("float64"))})
    visual = Vectors.load(current / "visual.npz")
    args = (stack_features(visual, genres, years), genres, np.unique(test["movie_id"].to_numpy()),
            test["user_id"].to_numpy(), test["movie_id"].to_numpy(), test["rating"].to_numpy())
    more = {"metadata_only": stack_features(genres, years), "poster_only": visual}
    spaces = {"ranking_space": ("ranking_users.npz", "ranking_movies.npz"), "collab_space": ("users.npz", "collab.npz")}
    result = {}
    for space, (users_file, movies_file) in spaces.items():
        if not (current / movies_file).exists():
            print(f"cold start: {current / movies_file} absent, skipping {space}")
            continue
        out = evaluate_cold_start(Vectors.load(current / users_file), Vectors.load(current / movies_file), *args,
                                  more=more)
        for method, metrics in out.items():
            print(f"cold start {space} {method:17}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()), flush=True)
        result[space] = out
    main_space = result.get("ranking_space") or result.get("collab_space") or {}
    return {"split": name, "seed": seed, "dataset": manifest["dataset"], "version": current.name,
            "features": "poster + genres + year bins", **main_space,
            "collab_space": result.get("collab_space")}


def _cells(text: str) -> list[tuple[int, int, tuple[int, ...], int]]:
    """``--cells``: 'NxDIM:B,B;NxDIM:B' -> (n, dim, batches, single queries timed) per cell."""
    try:
        out = []
        for cell in filter(None, text.split(";")):
            size, batches = cell.split(":")
            n, dim = (int(x) for x in size.lower().split("x"))
            out.append((n, dim, tuple(int(b) for b in batches.split(",")), 20 if n * dim > 10_000_000 else 50))
        return out
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cells {text!r}: write 'NxDIM:B,B;NxDIM:B', e.g. '100000x1280:5,20,256'")


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 1M runs")
    parser.add_argument("--approx", default="ivf", help="approximate kinds at 1M, comma separated (default: ivf)")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists at 1M (default: 1024)")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall/QPS at 1M (default: 200)")
    parser.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads (default: all cores)")
    parser.add_argument("--skip-rebuild", action="store_true", help="skip the rebuild / cold-load timing")
    parser.add_argument("--cells", type=_cells, default=None, metavar="NxDIM:B,B;...",
                        help="only these exact-search cells, e.g. '100000x1280:5,20,256;4000x256:1,10', "
                             "and no 1M runs (default: the built-in grid)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating timing rounds (default: {ROUNDS})")
    parser.add_argument("--cold-start", type=Path, metavar="HOME",
                        help="only run the cold-start evaluation on HOME's current model (collab, users, visual)")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    ROUNDS = args.rounds
    info = cpu_info()
    print(json.dumps(info), flush=True)
    if args.cold_start:
        path = record("index", {**info, "cold_start": cold_start(args.cold_start)})
        print(f"appended to {path}")
        return
    result: dict = {"faiss_info": {k: info[k] for k in ("faiss", "faiss_threads")}, "flat": [], "approximate": []}
    sweep = (1, 5, 10, 20, 64, 256)
    plan = [(4_000, 256, sweep, 200), (4_000, 1280, (256,), 200), (100_000, 256, sweep, 50),
            (100_000, 1280, (5, 20, 64, 256), 20)]
    if not args.quick and not args.cells:
        plan.append((1_000_000, 256, (20, 100), 5))  # 1M x 1280 (5 GB, twice) does not fit a shared 24 GB box
    if args.cells:
        plan = args.cells
    for n, dim, batches, singles in plan:
        result["flat"].append(flat_paths(n, dim, batches, singles))
    if not args.skip_rebuild:
        result["rebuild"] = rebuild_4k()
    if not args.quick and not args.cells:
        result["approximate"] = approximate_at(1_000_000, 256, args.queries, [k for k in args.approx.split(",") if k], args.nlist)
    result["load_after"] = machine()["loadavg_1m"]
    print(f"appended to {record('index', result)}")


if __name__ == "__main__":
    main()
