"""Poster embedding throughput: our pipeline vs the naive loop, in one run.

Naive: PIL load + pad, then ``model.predict`` on one image at a time. Pipeline: `PosterEmbedder`
(tf.data parallel decode with DCT downscaling, fixed-shape batches, TFLite or Keras inference).
The default backbone (`VisionConfig()`: MobileNetV2 alpha 0.35, 224, ImageNet weights through a
temporary KERAS_HOME linked to ../shared/keras/models) and the former default (alpha 1.0,
weights by path from ../shared) side by side. Also checks that the fast paths keep the vectors:
cosine of TFLite vs Keras, and of DCT-reduced decoding vs full decoding.
The speed-quality table of every backbone/size/int8 variant is benchmarks/embed_tradeoff.py.

    python benchmarks/embed_throughput.py [--n-naive 50] [--n-pipeline 320] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
POSTERS = SHARED / "data" / "posters" / "ml-1m"


def environment() -> dict:
    import keras
    import tensorflow as tf
    from common import machine

    return {**machine(), "tf": tf.__version__, "keras": keras.__version__,
            "tf_threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                           tf.config.threading.get_inter_op_parallelism_threads()]}


def naive_loop(model, paths, size: int) -> list[float]:
    """Seconds per image: PIL decode + pad to a square, then model.predict on one image."""
    import numpy as np
    from PIL import Image, ImageOps

    times = []
    for p in paths:
        t = time.perf_counter()
        with Image.open(p) as img:
            x = np.asarray(ImageOps.pad(img.convert("RGB"), (size, size), color=(0, 0, 0)), np.float32)
        model.predict(x[None], verbose=0)
        times.append(time.perf_counter() - t)
    return times


CPU_MS: dict[str, float] = {}  # process CPU time per image (all threads): robust to a busy box
CPU_RUNS: dict[str, list[float]] = {}


def pipeline_rate(embedder, paths, repeats: int, label: str) -> list[float]:
    """img/s of ``repeats`` runs; CPU_MS[label] is the median CPU ms/img over every run of ``label``."""
    rates = []
    cpu = CPU_RUNS.setdefault(label, [])
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        idx, _, errors = embedder.embed_files(paths, progress=False)
        rates.append(len(idx) / (time.perf_counter() - t))
        cpu.append((time.process_time() - c) * 1000 / max(1, len(idx)))
        CPU_MS[label] = round(statistics.median(cpu), 2)
        if errors:
            print(f"  {len(errors)} unusable files", file=sys.stderr)
    return rates


def min_cosine(a, b) -> float:
    import numpy as np

    return float(np.min(np.sum(a * b, axis=1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-naive", type=int, default=50)
    ap.add_argument("--n-pipeline", type=int, default=320)
    ap.add_argument("--n-keras", type=int, default=128, help="images for the Keras-runtime pipeline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    if not WEIGHTS.exists() or not POSTERS.exists() or not (SHARED / "keras" / "models").exists():
        print(f"skipped: needs {WEIGHTS}, {SHARED / 'keras' / 'models'} and {POSTERS}")
        return 0
    from lookalike_quality import offline_keras_home

    offline_keras_home()  # before Keras is imported
    import numpy as np

    from vision_model import PosterEmbedder, VisionConfig, build_embedder
    from vision_model.images import poster_dataset

    paths = sorted(POSTERS.glob("*.jpg"))
    config = VisionConfig(batch_size=args.batch_size)
    former = VisionConfig(alpha=1.0, weights=str(WEIGHTS), batch_size=args.batch_size)
    env = environment()
    load_start = os.getloadavg()
    print(f"CPU: {env['cpu']} x{env['cores']} (load avg {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}); "
          f"TF {env['tf']}, Keras {env['keras']}, numpy {env['numpy']}; {len(paths)} posters available")
    print(f"default {config.backbone} alpha {config.alpha:g} {config.image_size} ({config.weights}); "
          f"former default alpha 1.0 (by path)")

    model = build_embedder(config)
    size = config.image_size
    model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)
    c = time.process_time()
    naive = naive_loop(model, paths[: args.n_naive], size)
    CPU_MS["naive"] = round((time.process_time() - c) * 1000 / len(naive), 2)
    naive_rate = 1.0 / statistics.median(naive)

    t = time.perf_counter()
    fast = PosterEmbedder(config, model=model, runtime="tflite")  # converts (no cache dir given)
    convert_s = time.perf_counter() - t
    fast.embed_files(paths[: args.batch_size], progress=False)  # warm-up
    keras_rt = PosterEmbedder(config, model=model, runtime="keras")
    keras_rt.embed_files(paths[: args.batch_size], progress=False)
    old = PosterEmbedder(former, runtime="tflite")
    old.embed_files(paths[: args.batch_size], progress=False)
    rates: dict[str, list[float]] = {"tflite": [], "keras": [], "former": []}
    for _ in range(args.repeats):  # alternate, so a burst of load hits every variant alike
        rates["tflite"] += pipeline_rate(fast, paths[: args.n_pipeline], 1, "tflite")
        rates["former"] += pipeline_rate(old, paths[: args.n_pipeline], 1, "former")
        rates["keras"] += pipeline_rate(keras_rt, paths[: args.n_keras], 1, "keras")
    med = {k: statistics.median(v) for k, v in rates.items()}

    print(f"\n  {'variant':<52} {'images':>7} {'img/s (median)':>15} {'CPU ms/img':>11}")
    print(f"  {'naive: PIL + predict per image (default backbone)':<52} {len(naive):>7} {naive_rate:15.1f} "
          f"{CPU_MS['naive']:11.2f}")
    print(f"  {'pipeline, Keras tf.function runtime (default backbone)':<52} {args.n_keras:>4} x{args.repeats} "
          f"{med['keras']:15.1f} {CPU_MS['keras']:11.2f}")
    print(f"  {'pipeline, TFLite, former default (alpha 1.0)':<52} {args.n_pipeline:>4} x{args.repeats} "
          f"{med['former']:15.1f} {CPU_MS['former']:11.2f}")
    print(f"  {'pipeline, TFLite, default (alpha 0.35)':<52} {args.n_pipeline:>4} x{args.repeats} "
          f"{med['tflite']:15.1f} {CPU_MS['tflite']:11.2f}")
    print(f"  runs: TFLite default {', '.join(f'{r:.1f}' for r in rates['tflite'])}; former "
          f"{', '.join(f'{r:.1f}' for r in rates['former'])}; one-off TFLite conversion {convert_s:.1f} s (cached afterwards)")

    # do the fast paths keep the vectors?
    sample = [str(p) for p in paths[:64]]
    images = np.concatenate([x.numpy() for _, x in poster_dataset(sample, size, "pad", 32)])
    exact = np.concatenate([x.numpy() for _, x in poster_dataset(sample, size, "pad", 32, slack=1.0)])
    cos_tflite = min_cosine(fast_vecs := fast.embed_images(images), keras_rt.embed_images(images))
    full_vecs = fast.embed_images(exact)
    cos_dct = min_cosine(fast_vecs, full_vecs)
    mean_dct = float(np.mean(np.sum(fast_vecs * full_vecs, axis=1)))
    print(f"cosine over 64 posters: TFLite vs Keras min {cos_tflite:.6f}; "
          f"DCT-reduced vs full decode min {cos_dct:.4f}, mean {mean_dct:.4f}")

    ratio = med["tflite"] / naive_rate
    cores = os.cpu_count() or 1
    load_end = os.getloadavg()
    print(f"default vs naive: {ratio:.1f}x wall, {CPU_MS['naive'] / CPU_MS['tflite']:.1f}x CPU time; "
          f"default vs former default: {med['tflite'] / med['former']:.2f}x wall, "
          f"{CPU_MS['former'] / CPU_MS['tflite']:.2f}x less CPU per image")
    print(f"target >= 150 img/s: {med['tflite']:.0f} img/s measured at load {load_start[0]:.1f}-{load_end[0]:.1f} "
          f"on {cores} cores; CPU-bound ceiling on {cores} idle cores {1000 * cores / CPU_MS['tflite']:.0f} img/s")
    result = {**env, "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in load_end],
              "backbone": config.backbone, "alpha": config.alpha, "image_size": size, "batch_size": args.batch_size,
              "naive_img_s": round(naive_rate, 2), "n_naive": len(naive),
              "pipeline_tflite_img_s": [round(r, 2) for r in rates["tflite"]], "n_pipeline": args.n_pipeline,
              "pipeline_former_img_s": [round(r, 2) for r in rates["former"]],
              "pipeline_keras_img_s": [round(r, 2) for r in rates["keras"]], "n_keras": args.n_keras,
              "speedup_median": round(ratio, 2), "cpu_ms_per_img": CPU_MS, "tflite_convert_s": round(convert_s, 1),
              "min_cos_tflite_vs_keras": round(cos_tflite, 6), "min_cos_dct_vs_full": round(cos_dct, 4),
              "mean_cos_dct_vs_full": round(mean_dct, 4)}
    from common import record

    print(f"appended to {record('embed_throughput', result).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
