"""Loading a 25M-row ratings.csv: our loader vs plain ``pandas.read_csv`` defaults.

Each loader runs in its own fresh subprocess (so peak RSS is its own), several times,
alternating; the script prints median wall time and peak RSS of each, and the ratios.
Target: at most half pandas' peak memory, and no slower.

    python benchmarks/load_ratings.py [--rows 25000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median, record  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
which, path = sys.argv[1], Path(sys.argv[2])
t = time.perf_counter()
if which == "pandas":
    import pandas as pd
    df = pd.read_csv(path)
else:
    from catalog.loaders import read_ratings
    df = read_ratings(path, ",", encoding="utf-8", header=True)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rows": len(df), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "frame_mib": df.memory_usage(deep=True).sum() / 2**20}))
"""


def generate(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with open(path, "w") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            u = rng.integers(1, 162_542, n)
            m = rng.integers(1, 209_172, n)
            r = rng.integers(1, 11, n) / 2
            t = rng.integers(789_652_009, 1_574_327_703, n)
            lines = "\n".join(f"{a},{b},{c:g},{d}" for a, b, c, d in zip(u.tolist(), m.tolist(), r.tolist(), t.tolist()))
            fh.write(lines + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=25_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        t = time.perf_counter()
        generate(path, args.rows)
        print(f"generated {args.rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s")
        runs: dict[str, list[dict]] = {"pandas": [], "posterec": []}
        env = dict(os.environ, PYTHONPATH=str(root))
        for _ in range(args.repeats):
            for which in ("pandas", "posterec"):
                out = subprocess.run([sys.executable, "-c", CHILD, which, str(path)], env=env,
                                     capture_output=True, text=True, check=True)
                runs[which].append(json.loads(out.stdout))
    summary = {}
    for which, rs in runs.items():
        summary[which] = {"seconds": median(r["seconds"] for r in rs), "peak_mib": median(r["peak_mib"] for r in rs),
                          "frame_mib": rs[0]["frame_mib"], "rows": rs[0]["rows"]}
    p, o = summary["pandas"], summary["posterec"]
    result = {"rows": args.rows, "repeats": args.repeats, **{f"{k}_{w}": v for w, s in summary.items() for k, v in s.items() if k != "rows"},
              "peak_ratio": o["peak_mib"] / p["peak_mib"], "speedup": p["seconds"] / o["seconds"]}
    print(json.dumps(machine()))
    print(f"{'loader':10} {'median s':>9} {'peak MiB':>9} {'frame MiB':>10}")
    for w, s in summary.items():
        print(f"{w:10} {s['seconds']:9.2f} {s['peak_mib']:9.0f} {s['frame_mib']:10.0f}")
    print(f"peak memory ratio posterec/pandas: {result['peak_ratio']:.2f} (target <= 0.50)")
    print(f"speed ratio pandas/posterec:       {result['speedup']:.2f}x (target >= 1.0)")
    record("load_ratings", result)


if __name__ == "__main__":
    main()
