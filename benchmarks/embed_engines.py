"""Poster embedding engines side by side: the local process vs Ray Data, on the real posters.

Local: `PosterEmbedder.embed_files` (tf.data decode, TFLite with one thread per CPU), today's
`posterec embed`. Ray: `vision_model.cluster.RayEmbedder` on a local Ray instance of ``--cpus``
CPUs, as 1 worker x all CPUs and as one 1-CPU worker per CPU; the same TFLite flatbuffer, shipped
by the driver. Runs alternate (local, ray A, ray B, local, ...), so a burst of load from other
jobs hits every variant alike. A Ray run's wall time includes starting its workers (each imports
TensorFlow), as every `posterec embed --engine ray` job pays; ``ray.init`` is timed apart (a
real cluster is already up). The vectors of every engine are compared with the local ones.

    POSTEREC_SHARED=/work/shared python benchmarks/embed_engines.py [--repeats 3] [--cpus 2] [--n 0]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))
POSTER_DIRS = [SHARED / "data" / "posters" / "ml-1m", SHARED / "data" / "posters" / "ml-100k"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default: 2)")
    ap.add_argument("--n", type=int, default=0, help="posters to embed (default 0: all of them)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    paths = sorted(str(p) for d in POSTER_DIRS if d.exists() for p in d.glob("*.jpg"))
    if not paths or not (SHARED / "keras" / "models").exists():
        print(f"skipped: needs posters in {POSTER_DIRS} and {SHARED / 'keras' / 'models'}")
        return 0
    try:
        import ray
        import ray.data
    except ImportError:
        print("skipped: needs the extra posterec[cluster] (ray[data])")
        return 0
    from lookalike_quality import offline_keras_home

    offline_keras_home()  # before Keras is imported; forwarded to the Ray workers
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p)
    import numpy as np
    import tensorflow as tf
    from common import machine, record

    from vision_model import PosterEmbedder, VisionConfig
    from vision_model.cluster import FORWARDED_ENV, RayConfig, RayEmbedder

    paths = paths[: args.n] if args.n else paths
    config = VisionConfig(batch_size=args.batch_size)
    cache = Path(tempfile.mkdtemp(prefix="embed-engines-"))  # holds the one converted TFLite model
    env = machine()
    load_start = os.getloadavg()
    print(f"CPU: {env['cpu']} x{env['cores']} (load avg {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}); "
          f"TF {tf.__version__}, Ray {ray.__version__}; {len(paths)} posters; {config.backbone} "
          f"alpha {config.alpha:g} {config.image_size}, batch {config.batch_size}, TFLite")

    local = PosterEmbedder(config, runtime="tflite", cache_dir=cache, threads=args.cpus)
    local.embed_files(paths[: config.batch_size], progress=False)  # warm-up (the conversion is cached)
    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=1 << 30,
             runtime_env={"env_vars": {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}})
    init_s = time.perf_counter() - t
    ray.data.DataContext.get_current().enable_progress_bars = False
    variants = {f"local (1 process, TFLite x{args.cpus} threads)": local,
                f"ray, 1 worker x {args.cpus} CPUs": RayEmbedder(config, RayConfig(workers=1, cpus_per_worker=args.cpus),
                                                                  cache_dir=cache),
                f"ray, {args.cpus} workers x 1 CPU": RayEmbedder(config, RayConfig(workers=args.cpus, cpus_per_worker=1),
                                                                  cache_dir=cache)}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    firsts: dict[str, list[float]] = {k: [] for k in variants}   # s until the first batch came back
    steady: dict[str, list[float]] = {k: [] for k in variants}   # img/s after it
    loads: dict[str, list[float]] = {k: [] for k in variants}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        for name, embedder in variants.items():
            first: list = []

            def on_batch(i, v, first=first):
                if not first:
                    first.extend([time.perf_counter(), len(i)])

            t = time.perf_counter()
            idx, values, errors = embedder.embed_files(paths, progress=False, on_batch=on_batch)
            wall = time.perf_counter() - t
            rates[name].append(len(idx) / wall)
            firsts[name].append(first[0] - t)
            steady[name].append((len(idx) - first[1]) / max(1e-9, t + wall - first[0]))
            loads[name].append(os.getloadavg()[0])
            print(f"  run {r + 1} {name:<40} {len(idx):>5} img in {wall:6.1f} s = {rates[name][-1]:6.1f} img/s "
                  f"(first batch at {firsts[name][-1]:.1f} s, then {steady[name][-1]:.1f} img/s; load {loads[name][-1]:.1f}){f', {len(errors)} unusable' if errors else ''}", flush=True)
            vectors.setdefault(name, np.zeros((len(paths), values.shape[1]), np.float32))[idx] = values
    ray.shutdown()
    load_end = os.getloadavg()
    base = next(iter(variants))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nray.init (local instance, {args.cpus} CPUs): {init_s:.1f} s, not in the rates below")
    print(f"  {'engine':<40} {'posters':>7} {'img/s median':>12} {'vs local':>9} {'1st batch s':>11} "
          f"{'img/s after':>11} {'max |diff| vs local':>20} load")
    diffs = {}
    for name in variants:
        diffs[name] = float(np.abs(vectors[name] - vectors[base]).max())
        print(f"  {name:<40} {len(paths):>7} {med[name]:12.1f} {med[name] / med[base]:8.2f}x "
              f"{statistics.median(firsts[name]):11.1f} {statistics.median(steady[name]):11.1f} {diffs[name]:20.2e} "
              f"{statistics.median(loads[name]):.1f}")
    print("  runs: " + "; ".join(f"{k}: {', '.join(f'{x:.1f}' for x in v)}" for k, v in rates.items()))
    print(f"load avg {load_start[0]:.1f} at start, {load_end[0]:.1f} at end, on {env['cores']} cores")
    result = {**env, "ray": ray.__version__, "tf": tf.__version__, "n_posters": len(paths), "cpus": args.cpus,
              "backbone": config.backbone, "alpha": float(config.alpha), "batch_size": config.batch_size,
              "ray_init_s": round(init_s, 2), "img_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
              "median_img_s": {k: round(v, 2) for k, v in med.items()},
              "first_batch_s": {k: [round(x, 2) for x in v] for k, v in firsts.items()},
              "img_s_after_first_batch": {k: [round(x, 2) for x in v] for k, v in steady.items()}, "max_abs_diff_vs_local": diffs,
              "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in load_end],
              "load_per_variant": loads}
    print(f"appended to {record('embed_engines', result).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
