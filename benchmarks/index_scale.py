"""A large catalogue in the index: flat, HNSW, IVF and IVF-PQ at 1M and 5M poster-sized vectors.

    nice -n 10 python benchmarks/index_scale.py --sizes 1000000 --kinds flat,ivf,ivfpq
    nice -n 10 python benchmarks/index_scale.py --sizes 5000000 --kinds flat,hnsw,ivf,ivfpq --queries 100

Vectors: synthetic, of the real poster dimension (1280: MobileNetV2 alpha 0.35, average-pooled,
`posterec embed`'s default), shaped like 600 real ml-1m poster embeddings measured for this
(mean direction with cosine ~0.54 between random posters; variance spread over the dimensions
as lambda_k ~ (k + 5)^-1.3, the real spectrum's slope; 1,000 cluster centres carrying half the
variance), L2-normalised, top-10 by inner product = cosine. They are generated in chunks of 50k
from a seed per chunk, so no process ever holds the whole float matrix unless the kind stores it.

Each case runs in a fresh subprocess (build, then measure), so its peak RSS is its own:
  truth   exact top-10 of the queries by a chunked scan of the stream (numpy), saved for the others;
  flat    `MovieIndex` kind flat (IndexFlatIP): routed exact search;
  hnsw    kind hnsw (IndexHNSWFlat, M 32, efConstruction 64), ef_search swept;
  ivf     kind ivf (IndexIVFFlat, default nlist), nprobe swept;
  ivfpq   kind ivfpq (IndexIVFPQ, default nlist / pq_m / pq_nbits), nprobe swept.
Indexes are built with the production `IndexConfig.resolved` defaults and searched through
`MovieIndex.search`. A kind whose stored vectors alone would exceed ``--max-gb`` (7) is not run
and is reported as "does not fit: N GB needed" from its computed size. Per case: build seconds,
bytes per vector and index bytes (the serialised file), recall@10 against exact, single-query
QPS (median of ``--singles`` queries one by one) and batch QPS (all queries in one call), peak
RSS. Prints the machine and appends one JSON line to benchmarks/results/index_scale.jsonl.
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

DIM = 1280
CHUNK = 50_000
CENTERS = 1000
N_TOP = 10
SWEEPS = {"hnsw": ("ef_search", (64, 128, 256)), "ivf": ("nprobe", (8, 16, 32, 64)),
          "ivfpq": ("nprobe", (8, 16, 32, 64, 128))}


# -- data ----------------------------------------------------------------------------------------
def _model(dim: int, seed: int):
    """The fixed parts: per-dimension scales (the real spectrum's slope, dims shuffled so every
    PQ sub-vector gets a mix), the mean direction and the cluster centres."""
    rng = np.random.default_rng([seed, 0])
    scale = np.sqrt((np.arange(1, dim + 1) + 5.0) ** -1.3)[rng.permutation(dim)].astype(np.float32)
    total = float((scale ** 2).sum())  # variance of a point: half between clusters, half within
    mean = rng.standard_normal(dim).astype(np.float32)
    mean *= np.sqrt(1.17 * 2 * total) / np.linalg.norm(mean)  # |mean|^2 / (|mean|^2 + var) ~ 0.54
    centers = (rng.standard_normal((CENTERS, dim), dtype=np.float32) * scale + mean).astype(np.float32)
    return scale, centers


def chunk(i: int, n: int, dim: int = DIM, seed: int = 0, model=None) -> np.ndarray:
    """Rows [i*CHUNK, min(n, (i+1)*CHUNK)) of the catalogue, L2-normalised float32."""
    scale, centers = model or _model(dim, seed)
    m = min(CHUNK, n - i * CHUNK)
    rng = np.random.default_rng([seed, 1, i])
    out = centers[rng.integers(0, CENTERS, m)]
    out += rng.standard_normal((m, dim), dtype=np.float32) * scale
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def queries(q: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Fresh points of the same distribution (not stored)."""
    scale, centers = _model(dim, seed)
    rng = np.random.default_rng([seed, 2])
    out = centers[rng.integers(0, CENTERS, q)] + rng.standard_normal((q, dim), dtype=np.float32) * scale
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def chunks(n: int):
    model = _model(DIM, 0)
    for i in range((n + CHUNK - 1) // CHUNK):
        yield i * CHUNK, chunk(i, n, model=model)


# -- cases (each in its own process) --------------------------------------------------------------
def rss_gb() -> tuple[float, float]:
    """(current, peak) resident set of this process, GB."""
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            current = int(line.split()[1]) / 1e6
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def case_truth(n: int, nq: int, out: Path) -> dict:
    """Exact top-10 ids of the queries over the whole stream, chunk by chunk."""
    from catalog import top_n

    q = queries(nq)
    best_s = np.full((nq, N_TOP), -np.inf, np.float32)
    best_i = np.full((nq, N_TOP), -1, np.int64)
    t = time.perf_counter()
    for start, values in chunks(n):
        scores = np.concatenate([best_s, q @ values.T], axis=1)
        ids = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(values)), (nq, len(values)))], 1)
        cols, vals = top_n(scores, N_TOP)
        best_s, best_i = vals, np.take_along_axis(ids, cols, 1)
    np.save(out, best_i)
    return {"case": "truth", "n": n, "queries": nq, "seconds": time.perf_counter() - t, "peak_rss_gb": rss_gb()[1]}


def case_kind(kind: str, n: int, nq: int, truth: Path, singles: int, tmp: Path) -> dict:
    import faiss

    from catalog import Vectors
    from index import IndexConfig, MovieIndex
    from index.movie_index import _new_inner, train_inner

    config = IndexConfig(kind=kind).resolved(n, DIM)
    t = time.perf_counter()
    inner = _new_inner(config, DIM, n)
    if kind in ("ivf", "ivfpq"):
        need = max(config.nlist, 2 ** (config.pq_nbits or 0)) * 40  # as MovieIndex.build samples
        train = np.concatenate([c for _, c in zip(range((need + CHUNK - 1) // CHUNK), (v for _, v in chunks(n)))])
        train_inner(inner, train[:need])
        del train
    train_s = time.perf_counter() - t
    index = faiss.IndexIDMap2(inner)
    for start, values in chunks(n):
        index.add_with_ids(values, np.arange(start, start + len(values), dtype=np.int64))
    build_s = time.perf_counter() - t
    movie_index = MovieIndex(index, config, np.arange(n, dtype=np.int64))
    rss_built, _ = rss_gb()
    path = tmp / f"{kind}.faiss"
    faiss.write_index(index, str(path))
    file_bytes = path.stat().st_size
    path.unlink()
    q = queries(nq)
    want = np.load(truth)
    row = {"case": kind, "n": n, "dim": DIM, "config": {k: v for k, v in vars(config).items()},
           "train_s": train_s, "build_s": build_s, "bytes_per_vector": movie_index.bytes_per_vector,
           "index_bytes": file_bytes, "rss_after_build_gb": rss_built, "sweep": []}
    knob, values = SWEEPS.get(kind, (None, (None,)))
    for value in values:
        if knob:
            movie_index.set_search_options(**{knob: value})
        t = time.perf_counter()
        got = movie_index.search(q, N_TOP)
        batch_s = time.perf_counter() - t
        recall = float(np.mean([len(set(h.movie_ids.tolist()) & set(w.tolist())) / N_TOP for h, w in zip(got, want)]))
        single = []
        for i in range(min(singles, nq)):
            t = time.perf_counter()
            movie_index.search(q[i], N_TOP)
            single.append(time.perf_counter() - t)
        row["sweep"].append({knob or "exact": value, "recall@10": recall, "batch_qps": nq / batch_s,
                             "single_ms": float(np.median(single)) * 1e3,
                             "single_qps": 1.0 / float(np.median(single))})
        print(json.dumps({"progress": kind, **row["sweep"][-1]}), file=sys.stderr, flush=True)
    row["peak_rss_gb"] = rss_gb()[1]
    return row


# -- the driver -------------------------------------------------------------------------------------
def stored_gb(kind: str, n: int) -> float:
    """What a kind's stored vectors alone need (GB): the reason for "does not fit"."""
    from index import IndexConfig

    if kind == "ivfpq":
        c = IndexConfig(kind=kind).resolved(n, DIM)
        per = c.pq_m * c.pq_nbits / 8 + 16
    else:
        per = 4 * DIM + 8 + (8 if kind == "ivf" else 0) + (4 * 2 * 32 if kind == "hnsw" else 0)
    return n * per / 1e9


def run_case(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out = subprocess.run([sys.executable, __file__, "--case", *argv], capture_output=True, text=True, env=env)
    sys.stderr.write(out.stderr[-3000:])
    if out.returncode != 0:
        return {"case": argv[0], "error": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:] or ''}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_row(r: dict) -> None:
    if "sweep" not in r:
        print(f"  {r['case']:6} n={r.get('n')}: {r.get('skipped') or r.get('error') or r}", flush=True)
        return
    head = (f"  {r['case']:6} n={r['n']:,}: build {r['build_s']:.0f} s (train {r['train_s']:.0f} s), "
            f"{r['bytes_per_vector']} B/vector, index {r['index_bytes'] / 1e9:.2f} GB, peak RSS {r['peak_rss_gb']:.2f} GB")
    print(head, flush=True)
    for s in r["sweep"]:
        knob = next(iter(s))
        print(f"      {knob}={s[knob]}: recall@10 {s['recall@10']:.3f}, single {s['single_ms']:.2f} ms "
              f"({s['single_qps']:.0f} q/s), batch {s['batch_qps']:.0f} q/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,5000000", help="catalogue sizes, comma separated")
    parser.add_argument("--kinds", default="flat,hnsw,ivf,ivfpq", help="kinds, comma separated")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall and batch QPS (default 200)")
    parser.add_argument("--singles", type=int, default=30, help="single queries timed one by one (default 30)")
    parser.add_argument("--max-gb", type=float, default=7.0, help="skip kinds whose stored vectors need more (GB)")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        name, n, nq, *rest = args.case
        if name == "truth":
            row = case_truth(int(n), int(nq), Path(rest[0]))
        else:
            row = case_kind(name, int(n), int(nq), Path(rest[0]), int(rest[1]), Path(rest[2]))
        print(json.dumps(row))
        return
    import faiss

    from common import machine, record

    info = {**machine(), "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
            "command": " ".join(["python", "benchmarks/index_scale.py", *sys.argv[1:]])}
    print(json.dumps(info), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            truth = Path(tmp) / f"truth-{n}.npy"
            row = run_case(["truth", str(n), str(args.queries), str(truth)])
            print(f"n={n:,}: exact truth for {args.queries} queries in {row.get('seconds', 0):.0f} s "
                  f"(peak RSS {row.get('peak_rss_gb', 0):.2f} GB)", flush=True)
            rows.append({**row, "loadavg_1m": os.getloadavg()[0]})
            for kind in args.kinds.split(","):
                need = stored_gb(kind, n)
                if need > args.max_gb:
                    r = {"case": kind, "n": n, "skipped": f"does not fit: {need:.1f} GB needed (limit {args.max_gb} GB)"}
                else:
                    r = run_case([kind, str(n), str(args.queries), str(truth), str(args.singles), tmp])
                r["loadavg_1m"] = os.getloadavg()[0]
                print_row(r)
                rows.append(r)
    print(f"appended to {record('index_scale', {**info, 'rows': rows, 'load_after': os.getloadavg()[0]})}")


if __name__ == "__main__":
    main()
