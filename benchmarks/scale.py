"""The whole chain at MovieLens 25M's shape on one machine: wall time and peak memory of each stage.

    python benchmarks/scale.py [--fraction 1.0] [--epochs 2] [--posters 3000] [--workdir DIR]
                               [--stages generate,download,...] [--requests 300] [--weights PATH]

Generates a dataset of ml-25m's shape (162,541 users, 62,423 movies, 25M ratings at
``--fraction 1``; every count scaled by ``--fraction``) with planted taste and power-law skew
(`benchmarks/synthetic.py`), in the ml-25m CSV layout, plus ``--posters`` Pillow posters for
the most-rated movies. Then runs each stage as a user runs it, a fresh ``python -m posterec``
process: ``download --dataset ml-25m --source DIR``, ``import-posters``, ``train``, ``embed``,
``build-index``, ``export-recommendations`` (every user) and ``serve`` (warm
``/movies/{id}/similar`` p50 and p99 over ``--requests`` requests, one client, keep-alive).

Peak memory: each CLI stage runs under GNU ``/usr/bin/time -v``, whose "Maximum resident set
size" is the largest RSS of the stage's process (the kernel's ``ru_maxrss``, not a sampled
value; the stages are single processes); ``logs/<stage>.rss.tsv`` also keeps the tree's RSS
sampled every second, to see when the peak comes; the server's is its ``VmHWM`` from ``/proc`` after the requests. ``generate`` runs
in this process (its RSS delta from ``ru_maxrss``). ``--workdir`` keeps everything, so a stage
can be rerun alone (``--stages train,embed``). Appends one JSON line to benchmarks/results/scale.jsonl.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import socket
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

from common import machine, record  # noqa: E402
from synthetic import ML25M, generate, generate_posters  # noqa: E402

STAGES = ("generate", "download", "import-posters", "train", "embed", "build-index", "export-recommendations",
          "serve")
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"


def timed_cli(home: Path, args: list[str], log: Path) -> dict:
    """``posterec --home HOME ARGS`` under ``/usr/bin/time -v``: wall seconds, peak RSS, exit code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "posterec", "--home", str(home), *args]
    start = time.perf_counter()
    samples = []
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:  # an RSS timeline of the tree (1 s), to see *when* the peak comes
            samples.append((round(time.perf_counter() - start, 1), tree_rss_kb(proc.pid)))
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
    out = proc
    wall = time.perf_counter() - start
    log.with_suffix(".rss.tsv").write_text("".join(f"{t}\t{kb}\n" for t, kb in samples))
    peak_at = max(samples, key=lambda x: x[1])[0] if samples else None
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    tail = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("\t")][-3:]
    return {"wall_s": round(wall, 1), "peak_rss_gb": int(rss.group(1)) / 2**20 if rss else None,
            "rc": out.returncode, "tail": " | ".join(tail)[-400:], "log": str(log),
            "sampled_peak_at_s": peak_at,
            "sampled_peak_gb": max((kb for _, kb in samples), default=0) / 2**20}


def tree_rss_kb(pid: int) -> int:
    """VmRSS (kB) of ``pid`` and its descendants, from /proc (0 for a process gone meanwhile)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, movie_ids: np.ndarray, requests: int, log: Path) -> dict:
    """Start ``posterec serve``, wait for /health, then time ``/movies/{id}/similar`` (warm)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "posterec", "--home", str(home), "serve", "--port", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        conn = None
        while time.perf_counter() - start < 600:
            if proc.poll() is not None:
                return {"rc": proc.returncode, "tail": log.read_text()[-400:]}
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/health")
                if conn.getresponse().read() and True:
                    break
            except OSError:
                time.sleep(0.5)
        ready = time.perf_counter() - start
        rng = np.random.default_rng(0)
        ids = rng.choice(movie_ids, size=requests + 20)
        times, statuses = [], {}
        for k, movie_id in enumerate(ids):
            t = time.perf_counter()
            conn.request("GET", f"/movies/{int(movie_id)}/similar?n=10")
            resp = conn.getresponse()
            resp.read()
            if k >= 20:  # the first 20 warm the caches
                times.append(time.perf_counter() - t)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        floor = []
        for k in range(requests // 3 + 20):  # the framework's floor under the same load
            t = time.perf_counter()
            conn.request("GET", "/health")
            conn.getresponse().read()
            if k >= 20:
                floor.append(time.perf_counter() - t)
        hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{proc.pid}/status").read_text())
        ms = np.asarray(times) * 1e3
        return {"wall_s": round(ready, 1), "peak_rss_gb": int(hwm.group(1)) / 2**20 if hwm else None, "rc": 0,
                "similar_p50_ms": round(float(np.median(ms)), 2),
                "similar_p99_ms": round(float(np.percentile(ms, 99)), 2), "requests": len(ms),
                "health_p50_ms": round(float(np.median(floor)) * 1e3, 2),
                "statuses": statuses, "log": str(log)}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=1.0, help="of ml-25m's counts (default: 1.0)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (default: 2)")
    parser.add_argument("--posters", type=int, default=3000, help="generated posters (default: 3000)")
    parser.add_argument("--requests", type=int, default=300, help="timed /similar requests (default: 300)")
    parser.add_argument("--workdir", type=Path, help="keep data, home and logs here (default: a temporary folder)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {','.join(STAGES)}")
    parser.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.exists() else "imagenet",
                        help="embed --weights (default: the MobileNetV2 file in ../shared/weights if there)")
    parser.add_argument("--config", default="best", help="train --config (default: best)")
    parser.add_argument("--index-kind", default="flat", choices=("flat", "hnsw", "ivf"),
                        help="build-index --kind (default: flat, exact)")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {', '.join(unknown)}; known: {', '.join(STAGES)}")
    info = {**machine(), "nproc": os.cpu_count()}
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory()
        args.workdir = Path(tmp.name)
    work = args.workdir.resolve()
    src, posters, home, logs = work / "src", work / "posters", work / "home", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    counts_file = work / "counts.json"
    n = {k: max(1, int(round(v * args.fraction))) for k, v in ML25M.items()}
    rows = []

    def report(stage: str, res: dict, notes: str = "") -> None:
        res = {"stage": stage, **res, "notes": notes, "loadavg_1m": round(os.getloadavg()[0], 2)}
        rows.append(res)
        rss = "-" if res.get("peak_rss_gb") is None else f"{res['peak_rss_gb']:.2f} GB"
        extra = f"  FAILED rc={res['rc']}: {res.get('tail', '')}" if res.get("rc") else ""
        print(f"{stage:24s} {res.get('wall_s', 0):9.1f} s  peak RSS {rss:>9s}  load {res['loadavg_1m']}  "
              f"{notes}{extra}", flush=True)

    for stage in stages:
        if stage == "generate":
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.perf_counter()
            counts = generate(src, n["n_ratings"], n["n_users"], n["n_movies"], seed=0)
            order = np.argsort(-_movie_counts(src, counts), kind="stable")[: args.posters] + 1
            generate_posters(posters, order, seed=0)
            counts["posters"] = int(len(order))
            counts_file.write_text(json.dumps(counts))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            report(stage, {"wall_s": round(time.perf_counter() - t, 1), "peak_rss_gb": peak / 2**20, "rc": 0},
                   f"{counts['n_ratings']:,} ratings, {counts['n_users']:,} users, {counts['n_movies']:,} movies, "
                   f"{counts['posters']:,} posters (in-process; RSS before {before / 2**20:.2f} GB)")
        elif stage == "download":
            report(stage, timed_cli(home, ["download", "--dataset", "ml-25m", "--source", str(src)], logs / f"{stage}.log"))
        elif stage == "import-posters":
            report(stage, timed_cli(home, ["import-posters", str(posters), "--dataset", "ml-25m"], logs / f"{stage}.log"))
        elif stage == "train":
            res = timed_cli(home, ["train", "--dataset", "ml-25m", "--epochs", str(args.epochs), "--config", args.config,
                                   "--progress", "2"], logs / f"{stage}.log")
            report(stage, res, f"{args.epochs} epochs, config {args.config}; " + _train_notes(logs / f"{stage}.log"))
        elif stage == "embed":
            report(stage, timed_cli(home, ["embed", "--dataset", "ml-25m", "--weights", args.weights],
                                    logs / f"{stage}.log"), f"weights {Path(args.weights).name}")
        elif stage == "build-index":
            report(stage, timed_cli(home, ["build-index", "--kind", args.index_kind], logs / f"{stage}-{args.index_kind}.log"),
                   f"--kind {args.index_kind}")
        elif stage == "export-recommendations":
            out = work / "recommendations.csv"
            res = timed_cli(home, ["export-recommendations", "-n", "10", "--out", str(out)], logs / f"{stage}.log")
            lines = _count_lines(out) if out.exists() else 0
            report(stage, res, f"{lines - 1 if lines else 0:,} rows (top 10 for every user)")
        elif stage == "serve":
            counts = json.loads(counts_file.read_text())
            order = np.argsort(-_movie_counts(src, counts), kind="stable")[:1000] + 1  # the most-rated movies
            res = serve(home, order, args.requests, logs / f"serve-{args.index_kind}.log")
            report(stage, res, f"warm /movies/{{id}}/similar p50 {res.get('similar_p50_ms')} ms, "
                               f"p99 {res.get('similar_p99_ms')} ms over {res.get('requests')} requests "
                               f"(/health p50 {res.get('health_p50_ms')} ms); "
                               f"wall = start-up to ready")
        if rows and rows[-1].get("rc"):
            break
    print("\n| stage | wall time | peak RSS | notes |\n|---|---|---|---|")
    for r in rows:
        rss = "-" if r.get("peak_rss_gb") is None else f"{r['peak_rss_gb']:.2f} GB"
        print(f"| {r['stage']} | {r.get('wall_s', 0):.1f} s | {rss} | {r['notes']}"
              f"{' FAILED rc=' + str(r['rc']) if r.get('rc') else ''} |")
    path = record("scale", {"fraction": args.fraction, "epochs": args.epochs, "posters": args.posters,
                            "nproc": os.cpu_count(), "rows": rows})
    print(f"appended to {path}")
    if tmp is not None:
        tmp.cleanup()
    return 1 if any(r.get("rc") for r in rows) else 0


def _movie_counts(src: Path, counts: dict) -> np.ndarray:
    """Ratings per movie row of the generated ratings.csv (read in chunks, movieId column only)."""
    import pandas as pd

    n_movies = sum(1 for _ in open(src / "movies.csv")) - 1
    total = np.zeros(n_movies, np.int64)
    for chunk in pd.read_csv(src / "ratings.csv", usecols=["movieId"], dtype=np.int32, chunksize=2_000_000):
        total += np.bincount(chunk["movieId"].to_numpy() - 1, minlength=n_movies)
    return total


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))


def _train_notes(log: Path) -> str:
    """The epoch lines Keras printed (seconds per epoch) and the version line."""
    text = log.read_text(errors="replace")
    epochs = re.findall(r"(\d+)/\d+ - (\d+)s", text)
    last = [ln for ln in text.splitlines() if ln.startswith("model version")]
    return (f"epochs {', '.join(s + ' s' for _, s in epochs)}; " if epochs else "") + (last[-1] if last else "")


if __name__ == "__main__":
    raise SystemExit(main())
