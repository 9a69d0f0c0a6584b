"""Poster embedding throughput: our pipeline vs the naive loop, in one run.

Naive: PIL load + pad, then ``model.predict`` on one image at a time. Pipeline: `PosterEmbedder`
(tf.data parallel decode with DCT downscaling, fixed-shape batches, TFLite or Keras inference).
MobileNetV2 alpha 1.0, weights by path from ../shared. Also checks that the fast paths keep the
vectors: cosine of TFLite vs Keras, and of DCT-reduced decoding vs full decoding.

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


def pipeline_rate(embedder, paths, repeats: int, label: str) -> list[float]:
    rates = []
    cpu = []
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
    if not WEIGHTS.exists() or not POSTERS.exists():
        print(f"skipped: needs {WEIGHTS} and {POSTERS}")
        return 0
    import numpy as np

    from vision_model import PosterEmbedder, VisionConfig, build_embedder
    from vision_model.images import poster_dataset

    paths = sorted(POSTERS.glob("*.jpg"))
    config = VisionConfig(weights=str(WEIGHTS), batch_size=args.batch_size)
    env = environment()
    print(f"CPU: {env['cpu']} x{env['cores']} (load avg {env['loadavg_1m']}); TF {env['tf']}, "
          f"Keras {env['keras']}, numpy {env['numpy']}; {len(paths)} posters available")

    model = build_embedder(config)
    model.predict(np.zeros((1, 224, 224, 3), np.float32), verbose=0)
    c = time.process_time()
    naive = naive_loop(model, paths[: args.n_naive], config.image_size)
    CPU_MS["naive"] = round((time.process_time() - c) * 1000 / len(naive), 2)
    naive_rate = 1.0 / statistics.median(naive)
    print(f"naive loop (PIL + predict per image), {len(naive)} images: {naive_rate:.1f} img/s "
          f"({CPU_MS['naive']:.1f} CPU ms/img)")

    t = time.perf_counter()
    fast = PosterEmbedder(config, model=model, runtime="tflite")  # converts (no cache dir given)
    convert_s = time.perf_counter() - t
    fast.embed_files(paths[: args.batch_size], progress=False)  # warm-up
    tfl = pipeline_rate(fast, paths[: args.n_pipeline], args.repeats, "tflite")
    print(f"pipeline tf.data + TFLite, {args.n_pipeline} images x{args.repeats}: median "
          f"{statistics.median(tfl):.1f} img/s (runs {', '.join(f'{r:.1f}' for r in tfl)}; "
          f"{CPU_MS['tflite']:.1f} CPU ms/img; one-off TFLite conversion {convert_s:.1f} s, cached afterwards)")

    keras_rt = PosterEmbedder(config, model=model, runtime="keras")
    keras_rt.embed_files(paths[: args.batch_size], progress=False)
    krs = pipeline_rate(keras_rt, paths[: args.n_keras], args.repeats, "keras")
    print(f"pipeline tf.data + Keras tf.function, {args.n_keras} images x{args.repeats}: median "
          f"{statistics.median(krs):.1f} img/s ({CPU_MS['keras']:.1f} CPU ms/img)")

    # do the fast paths keep the vectors?
    sample = [str(p) for p in paths[:64]]
    images = np.concatenate([x.numpy() for _, x in poster_dataset(sample, 224, "pad", 32)])
    exact = np.concatenate([x.numpy() for _, x in poster_dataset(sample, 224, "pad", 32, slack=1.0)])
    cos_tflite = min_cosine(fast_vecs := fast.embed_images(images), keras_rt.embed_images(images))
    full_vecs = fast.embed_images(exact)
    cos_dct = min_cosine(fast_vecs, full_vecs)
    mean_dct = float(np.mean(np.sum(fast_vecs * full_vecs, axis=1)))
    print(f"cosine over 64 posters: TFLite vs Keras min {cos_tflite:.6f}; "
          f"DCT-reduced vs full decode min {cos_dct:.4f}, mean {mean_dct:.4f}")

    ratio = statistics.median(tfl) / naive_rate
    print(f"speed-up vs naive: {ratio:.1f}x wall, {CPU_MS['naive'] / CPU_MS['tflite']:.1f}x CPU time "
          f"(target >= 10x and >= 150 img/s); CPU-bound ceiling on {os.cpu_count()} idle cores: "
          f"{1000 * (os.cpu_count() or 1) / CPU_MS['tflite']:.0f} img/s")
    result = {**env,
              "backbone": "MobileNetV2", "alpha": 1.0, "batch_size": args.batch_size,
              "naive_img_s": round(naive_rate, 2), "n_naive": len(naive),
              "pipeline_tflite_img_s": [round(r, 2) for r in tfl], "n_pipeline": args.n_pipeline,
              "pipeline_keras_img_s": [round(r, 2) for r in krs], "n_keras": args.n_keras,
              "speedup_median": round(ratio, 2), "cpu_ms_per_img": CPU_MS, "tflite_convert_s": round(convert_s, 1),
              "min_cos_tflite_vs_keras": round(cos_tflite, 6), "min_cos_dct_vs_full": round(cos_dct, 4),
              "mean_cos_dct_vs_full": round(mean_dct, 4)}
    from common import record

    print(f"appended to {record('embed_throughput', result).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
