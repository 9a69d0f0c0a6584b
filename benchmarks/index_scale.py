"""A large catalogue in the index: flat, HNSW, IVF and IVF-PQ at 1M and 5M poster-sized vectors.

    nice -n 10 python benchmarks/index_scale.py --sizes 1000000 --kinds flat,ivf,ivfpq
    nice -n 15 python benchmarks/index_scale.py --sizes 1000000 --kinds hnsw --hnsw-m 16 --hnsw-ef-construction 40 \
        --max-build-s 1200 --truth-dir /tmp/index-truth
    nice -n 15 python benchmarks/index_scale.py --sizes 5000000 --kinds flat,hnsw,ivf,ivfpq,ivfpq-mmap

Vectors: synthetic, of the real poster dimension (1280: MobileNetV2 alpha 0.35, average-pooled,
`posterec embed`'s default), shaped like 600 real ml-1m poster embeddings measured for this
(mean direction with cosine ~0.54 between random posters; variance spread over the dimensions
as lambda_k ~ (k + 5)^-1.3, the real spectrum's slope; 1,000 cluster centres carrying half the
variance), L2-normalised, top-10 by inner product = cosine. They are generated in chunks of 50k
from a seed per chunk, so no process ever holds the whole float matrix unless the kind stores it.

Each case runs in a fresh subprocess (build, then measure), so its peak RSS is its own:
  truth   exact top-10 of the queries by a chunked scan of the stream (numpy), saved for the others;
  flat    `MovieIndex` kind flat (IndexFlatIP): routed exact search;
  hnsw    kind hnsw (IndexHNSWFlat; M and efConstruction from --hnsw-m / --hnsw-ef-construction,
          else IndexConfig's 32 / 64), ef_search swept;
  ivf     kind ivf (IndexIVFFlat, default nlist), nprobe swept;
  ivfpq   kind ivfpq (IndexRefineFlat over IndexIVFPQ, default nlist / pq_m / pq_nbits / refine),
          written, read back memory-mapped as `serve` does, then nprobe and refine swept;
  ivfpq-mmap  the same search for catalogues whose full vectors do not fit in memory even to build:
          codes-only IVF-PQ in memory, the full vectors written to a float file (under the temporary
          directory) while adding, candidates re-scored from that file memory-mapped (numpy).
Indexes are built with the production `IndexConfig.resolved` defaults and searched through
`MovieIndex.search`. A kind whose build would hold more than ``--max-gb`` (7) of vectors in
memory is not run and is reported as "does not fit" with that size; when nothing fits the exact
truth is not computed either. ``--max-build-s`` stops a build after the chunk that passes it and
reports the measured add rate and a (lower-bound) extrapolation instead. Per case: build seconds,
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
_REFINED = ([{"nprobe": p, "refine": 8} for p in (8, 16, 32)]
            + [{"nprobe": 16, "refine": r} for r in (1, 2, 4, 16, 32)])
SWEEPS = {"hnsw": [{"ef_search": e} for e in (32, 64, 128, 256)], "ivf": [{"nprobe": p} for p in (8, 16, 32, 64)],
          "ivfpq": _REFINED, "ivfpq-mmap": _REFINED}
MAPPED = ("ivfpq", "ivfpq-mmap")  # searched as servers do: loaded memory-mapped


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


def case_kind(kind: str, n: int, nq: int, truth: Path, singles: int, tmp: Path, opts: dict) -> dict:
    """Build ``kind`` over the stream and measure it. ``opts``: ``config`` (IndexConfig fields over
    the defaults) and ``max_build_s``: past it the build stops after the current chunk and the row
    reports the measured add rate and its extrapolation instead of recall."""
    import faiss

    from index import IndexConfig, MovieIndex
    from index.movie_index import _new_inner, train_inner

    mmap_file = kind == "ivfpq-mmap"  # IVF-PQ codes in memory, full vectors in a float file refined from
    config = IndexConfig(kind="ivfpq" if mmap_file else kind, **opts.get("config", {}),
                         **({"refine": 0} if mmap_file else {})).resolved(n, DIM)
    budget = opts.get("max_build_s")
    floats = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.float32, (n, DIM)) if mmap_file else None
    t = time.perf_counter()
    inner = _new_inner(config, DIM, n)
    if config.kind in ("ivf", "ivfpq"):
        need = max(config.nlist, 2 ** (config.pq_nbits or 0)) * 40  # as MovieIndex.build samples
        train = np.concatenate([c for _, c in zip(range((need + CHUNK - 1) // CHUNK), (v for _, v in chunks(n)))])
        train_inner(inner, train[:need])
        del train
    train_s = time.perf_counter() - t
    index = faiss.IndexIDMap2(inner)
    marks = []  # (vectors added, seconds since the start of the adds)
    t_add = time.perf_counter()
    for start, values in chunks(n):
        index.add_with_ids(values, np.arange(start, start + len(values), dtype=np.int64))
        if floats is not None:
            floats[start:start + len(values)] = values
        marks.append((start + len(values), time.perf_counter() - t_add))
        print(json.dumps({"progress": kind, "added": marks[-1][0], "add_s": round(marks[-1][1], 1)}),
              file=sys.stderr, flush=True)
        if budget and time.perf_counter() - t > budget and marks[-1][0] < n:
            return stopped_row(kind, n, config, train_s, marks, budget)
    build_s = time.perf_counter() - t
    movie_index = MovieIndex(index, config, np.arange(n, dtype=np.int64))
    rss_built, _ = rss_gb()
    per_vector = movie_index.bytes_per_vector + (4 * DIM if mmap_file else 0)
    searched = movie_index.searched_bytes_per_vector
    path = tmp / f"{kind}.faiss"
    faiss.write_index(index, str(path))
    file_bytes = path.stat().st_size + (floats.nbytes if mmap_file else 0)
    row = {"case": kind, "n": n, "dim": DIM, "config": {k: v for k, v in vars(config).items()},
           "train_s": train_s, "build_s": build_s, "bytes_per_vector": per_vector,
           "searched_bytes_per_vector": searched, "index_bytes": file_bytes, "rss_after_build_gb": rss_built,
           "sweep": []}
    if kind in MAPPED:  # as `serve` loads it: mapped read-only, the full vectors left in the page cache
        del movie_index, index, inner  # all of the built index's memory, before the mapped read
        raw = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        index = faiss.downcast_index(raw)
        raw.this.disown()
        index.this.own(True)
        movie_index = MovieIndex(index, config, np.arange(n, dtype=np.int64), mapped=True)
        row["rss_anon_mapped_gb"] = rss_parts()["RssAnon"]
    if floats is not None:
        floats.flush()
        del floats
        floats = np.load(tmp / "vectors.npy", mmap_mode="r")
    q = queries(nq)
    want = np.load(truth)
    for setting in SWEEPS.get(kind, [{}]):
        search = searcher(movie_index, floats, setting)
        t = time.perf_counter()
        got = search(q)
        batch_s = time.perf_counter() - t
        recall = float(np.mean([len(set(g.tolist()) & set(w.tolist())) / N_TOP for g, w in zip(got, want)]))
        single = []
        for i in range(min(singles, nq)):
            t = time.perf_counter()
            search(q[i:i + 1])
            single.append(time.perf_counter() - t)
        row["sweep"].append({**(setting or {"exact": None}), "recall@10": recall, "batch_qps": nq / batch_s,
                             "single_ms": float(np.median(single)) * 1e3,
                             "single_qps": 1.0 / float(np.median(single))})
        print(json.dumps({"progress": kind, **row["sweep"][-1]}), file=sys.stderr, flush=True)
    row["peak_rss_gb"] = rss_gb()[1]
    row["rss_end"] = {k: round(v, 3) for k, v in rss_parts().items()}
    for f in (path, tmp / "vectors.npy"):
        f.unlink(missing_ok=True)
    return row


def searcher(movie_index, floats, setting: dict):
    """``search(q) -> (q, 10) ids`` for one sweep setting. With ``floats`` (ivfpq-mmap) the codes-only
    index gives ``refine * 10`` candidates and numpy re-scores them from the memory-mapped float file,
    which is what `MovieIndex`'s IndexRefineFlat does from a mapped index file."""
    if floats is None:
        movie_index.set_search_options(**setting)

        def search(q):
            return [h.movie_ids for h in movie_index.search(q, N_TOP)]
        return search
    movie_index.set_search_options(nprobe=setting["nprobe"])
    k = N_TOP * setting["refine"]

    def search(q):
        out = []
        for query, hits in zip(q, movie_index.search(q, k)):
            rows = np.sort(hits.movie_ids)  # ids are rows here; sorted reads of the file
            scores = floats[rows] @ query
            out.append(rows[np.argsort(-scores, kind="stable")[:N_TOP]])
        return out
    return search


def rss_parts() -> dict:
    """RssAnon (private) and RssFile (mapped file pages) of this process, GB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) / 1e6
    return out


def stopped_row(kind: str, n: int, config, train_s: float, marks: list, budget: float) -> dict:
    """A build stopped at its time budget: the measured add rate over the last half of what was
    added (HNSW inserts slow down as the graph grows) and the extrapolation to ``n``, labelled."""
    done, secs = marks[-1]
    half = next(m for m in marks if m[0] >= done / 2)
    rate = (done - half[0]) / max(secs - half[1], 1e-9) if done > half[0] else done / secs
    return {"case": kind, "n": n, "dim": DIM, "config": dict(vars(config)), "stopped": True,
            "budget_s": budget, "train_s": train_s, "added": done, "add_s": secs, "marks": marks,
            "late_rate_per_s": rate,
            "extrapolated_build_s": train_s + secs + (n - done) / rate,  # a lower bound: the rate keeps falling
            "peak_rss_gb": rss_gb()[1]}


# -- the driver -------------------------------------------------------------------------------------
def stored_gb(kind: str, n: int) -> float:
    """What a kind's stored vectors alone need (GB): the reason for "does not fit"."""
    from index import IndexConfig

    if kind in ("ivfpq", "ivfpq-mmap"):
        c = IndexConfig(kind="ivfpq").resolved(n, DIM)
        per = c.pq_m * c.pq_nbits / 8 + 16  # the codes; IndexRefineFlat also holds the full vectors to build:
        per += 4 * DIM if kind == "ivfpq" and c.refine else 0  # ivfpq-mmap writes those to a file instead
    else:
        per = 4 * DIM + 8 + (8 if kind == "ivf" else 0) + (4 * 2 * 32 if kind == "hnsw" else 0)
    return n * per / 1e9


def total_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30


def run_case(argv: list[str]) -> dict:
    """One case in a fresh process; its progress lines go straight to this stderr."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out = subprocess.run([sys.executable, __file__, "--case", *argv], stdout=subprocess.PIPE, text=True, env=env)
    if out.returncode != 0:
        return {"case": argv[0], "error": f"exit {out.returncode} (its traceback is above)"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_row(r: dict) -> None:
    if r.get("stopped"):
        print(f"  {r['case']:6} n={r['n']:,}: STOPPED at the {r['budget_s']:.0f} s budget after {r['added']:,} vectors "
              f"({r['add_s']:.0f} s of adds, late rate {r['late_rate_per_s']:.0f} vectors/s); EXTRAPOLATED build "
              f">= {r['extrapolated_build_s']:.0f} s; peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
        return
    if "sweep" not in r:
        print(f"  {r['case']:6} n={r.get('n')}: {r.get('skipped') or r.get('error') or r}", flush=True)
        return
    head = (f"  {r['case']:6} n={r['n']:,}: build {r['build_s']:.0f} s (train {r['train_s']:.0f} s), "
            f"{r['bytes_per_vector']} B/vector ({r['searched_bytes_per_vector']} scanned), index "
            f"{r['index_bytes'] / 1e9:.2f} GB, peak RSS {r['peak_rss_gb']:.2f} GB, at the end {r['rss_end']}"
            + (f", private after the mapped load {r['rss_anon_mapped_gb']:.2f} GB" if "rss_anon_mapped_gb" in r else ""))
    print(head, flush=True)
    for s in r["sweep"]:
        setting = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("recall@10", "batch_qps", "single_ms", "single_qps"))
        print(f"      {setting}: recall@10 {s['recall@10']:.3f}, single {s['single_ms']:.2f} ms "
              f"({s['single_qps']:.0f} q/s), batch {s['batch_qps']:.0f} q/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,5000000", help="catalogue sizes, comma separated")
    parser.add_argument("--kinds", default="flat,hnsw,ivf,ivfpq", help="kinds, comma separated")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall and batch QPS (default 200)")
    parser.add_argument("--singles", type=int, default=30, help="single queries timed one by one (default 30)")
    parser.add_argument("--max-gb", type=float, default=7.0, help="skip kinds whose stored vectors need more (GB)")
    parser.add_argument("--hnsw-m", type=int, help="HNSW links per node (default: IndexConfig's)")
    parser.add_argument("--hnsw-ef-construction", type=int, help="HNSW efConstruction (default: IndexConfig's)")
    parser.add_argument("--max-build-s", type=float, help="stop a build past this many seconds and report its "
                        "measured add rate and the extrapolated build time instead")
    parser.add_argument("--truth-dir", type=Path, help="keep the exact top-10 here and reuse it on the next run")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        name, n, nq, *rest = args.case
        if name == "truth":
            row = case_truth(int(n), int(nq), Path(rest[0]))
        else:
            row = case_kind(name, int(n), int(nq), Path(rest[0]), int(rest[1]), Path(rest[2]), json.loads(rest[3]))
        print(json.dumps(row))
        return
    import faiss

    from common import machine, record

    info = {**machine(), "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
            "command": " ".join(["python", "benchmarks/index_scale.py", *sys.argv[1:]])}
    print(json.dumps(info), flush=True)
    hnsw = {k: v for k, v in (("m", args.hnsw_m), ("ef_construction", args.hnsw_ef_construction)) if v}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            truth = (args.truth_dir or Path(tmp)) / f"truth-{n}-{args.queries}.npy"
            if all(stored_gb(kind, n) > args.max_gb for kind in args.kinds.split(",")):
                pass  # nothing will be measured: no exact truth needed
            elif truth.exists():
                print(f"n={n:,}: exact truth for {args.queries} queries reused from {truth}", flush=True)
            else:
                truth.parent.mkdir(parents=True, exist_ok=True)
                row = run_case(["truth", str(n), str(args.queries), str(truth)])
                print(f"n={n:,}: exact truth for {args.queries} queries in {row.get('seconds', 0):.0f} s "
                      f"(peak RSS {row.get('peak_rss_gb', 0):.2f} GB)", flush=True)
                rows.append({**row, "loadavg_1m": os.getloadavg()[0]})
            for kind in args.kinds.split(","):
                need = stored_gb(kind, n)
                opts = {"config": hnsw if kind == "hnsw" else {}, "max_build_s": args.max_build_s}
                if need > args.max_gb:
                    r = {"case": kind, "n": n, "skipped": f"does not fit: its build holds {need:.1f} GB of vectors in "
                         f"memory (limit --max-gb {args.max_gb} GB; this machine has {total_gb():.0f} GB in all)"
                         + ("; ivfpq-mmap keeps only the codes in memory" if kind != "ivfpq-mmap" else "")}
                else:
                    r = run_case([kind, str(n), str(args.queries), str(truth), str(args.singles), tmp, json.dumps(opts)])
                r["loadavg_1m"] = os.getloadavg()[0]
                print_row(r)
                rows.append(r)
    print(f"appended to {record('index_scale', {**info, 'rows': rows, 'load_after': os.getloadavg()[0]})}")


if __name__ == "__main__":
    main()
