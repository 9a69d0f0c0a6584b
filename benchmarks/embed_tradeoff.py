"""Poster embedding speed against look-alike quality, every variant in one run.

Variants: the backbones whose ImageNet weights are in ../shared (MobileNetV2 alpha 0.35 and 0.5
and MobileNet alpha 0.25 through a temporary KERAS_HOME linked to ../shared/keras/models;
MobileNetV2 alpha 1.0 by path), at input sizes 224, 192 and 160 (the 224 weights run at the
smaller size, `vision_model.backbones.build_backbone`), float and int8 (per-channel weights,
activations calibrated on the first 64 posters), on the TFLite runtime (LiteRT, XNNPACK); the
Keras runtime at 224 for each backbone. Everything goes through the production path:
`PosterEmbedder.embed_files` (tf.data decode + resize, fixed-shape batches), vectors scored by
benchmarks/lookalike_quality.py's measures through `index.MovieIndex`.

Each TFLite variant embeds all ml-1m posters once (that run is timed: img/s wall and CPU ms per
image = process CPU time / images, all threads), then the first ``--n-repeat`` posters again.
Quality differences are paired against the reference (today's former default, MobileNetV2 1.0
224 float) on the same bootstrap resamples; "within noise" = every one of macro, split lift and
franchise is no worse than the reference by more than 2 standard errors of the difference.

    python benchmarks/embed_tradeoff.py [--sizes 224,192,160] [--n-repeat 480] [--n-keras 96]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import lookalike_quality as lq  # noqa: E402

NOISE_SE = 2.0
QUALITY = ("macro", "macro_split", "franchise")


def timed(fn, n_of):
    """(result, img/s wall, CPU ms per image) of ``fn()``; ``n_of(result)`` counts the images."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    n = max(1, n_of(out))
    return out, n / wall, cpu * 1000 / n


def decode_cost(paths, size: int, policy: str = "pad", batch: int = 32):
    from vision_model.images import poster_dataset

    def go():
        return sum(int(i.shape[0]) for i, _ in poster_dataset(paths, size, policy, batch))

    go()  # warm (file cache, graph tracing)
    _, rate, cpu = timed(go, lambda n: n)
    return rate, cpu


def variants(sizes):
    from vision_model import VisionConfig

    nets = [("MobileNetV2", 1.0, str(lq.WEIGHTS_1)), ("MobileNetV2", 0.5, "imagenet"),
            ("MobileNetV2", 0.35, "imagenet"), ("MobileNet", 0.25, "imagenet")]
    for name, alpha, weights in nets:
        for size in sizes:
            yield VisionConfig(backbone=name, alpha=alpha, weights=weights, image_size=size)


def label(c) -> str:
    q = "int8" if c.quantize == "int8" else "float"
    return f"{'V2' if c.backbone == 'MobileNetV2' else 'V1'} a{c.alpha:g} {c.image_size} {q}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="224,192,160")
    ap.add_argument("--n-repeat", type=int, default=480, help="posters in the second timed run")
    ap.add_argument("--n-keras", type=int, default=96, help="posters for each Keras-runtime run")
    ap.add_argument("--limit", type=int, help="only the first N ml-1m posters (a quick check)")
    ap.add_argument("--no-int8", action="store_true")
    args = ap.parse_args()
    if not lq.AVAILABLE["ml-1m"].exists() or not lq.WEIGHTS_1.exists():
        print(f"skipped: needs {lq.AVAILABLE['ml-1m']} and {lq.WEIGHTS_1}")
        return 0
    lq.offline_keras_home()
    import keras
    import tensorflow as tf

    from common import machine, record
    from vision_model import PosterEmbedder, VisionConfig, build_embedder
    from catalog import Vectors

    env = {**machine(), "tf": tf.__version__, "keras": keras.__version__}
    try:
        import ai_edge_litert

        env["litert"] = getattr(ai_edge_litert, "__version__", "installed")
    except ImportError:
        env["litert"] = None
    load_start = os.getloadavg()
    print(f"CPU: {env['cpu']} x{env['cores']}, load avg {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}; "
          f"TF {env['tf']}, Keras {env['keras']}, LiteRT {env['litert']}, numpy {env['numpy']}")
    data = lq.read_ml1m(args.limit)
    truth = lq.Truth.of(data)
    weights = lq.resamples(len(truth))
    paths = [str(e.path) for e in data.entries]
    ids = np.array([e.movie_id for e in data.entries], np.int64)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{len(paths)} ml-1m posters; {sum(len(s) > 0 for s in truth.siblings)} franchise queries")

    decode = {s: decode_cost(paths[:args.n_repeat], s) for s in sizes}
    for s, (rate, cpu) in decode.items():
        print(f"  decode + resize only, {s}: {rate:.0f} img/s, {cpu:.2f} CPU ms/img", flush=True)

    rows, scores, float_vectors, reference = [], {}, {}, None
    for base in variants(sizes):
        t = time.perf_counter()
        model = build_embedder(base)
        build_s = time.perf_counter() - t
        quants = ["none"] if args.no_int8 else ["none", "int8"]
        for quant in quants:
            config = replace(base, quantize=quant)
            t = time.perf_counter()
            emb = PosterEmbedder(config, model=model, runtime="tflite")
            emb.embed_files(paths[:64], progress=False)  # int8: calibrates on these 64; warms up
            convert_s = time.perf_counter() - t
            (idx, values, _), rate, cpu = timed(lambda: emb.embed_files(paths, progress=False), lambda r: len(r[0]))
            _, rate2, cpu2 = timed(lambda: emb.embed_files(paths[:args.n_repeat], progress=False), lambda r: len(r[0]))
            vectors = Vectors(ids[idx], values)
            s = lq.score_vectors(vectors, truth)
            key = label(config)
            scores[key] = s
            if reference is None:
                reference = key
            row = {"variant": key, "backbone": config.backbone, "alpha": config.alpha, "size": config.image_size,
                   "quantize": quant, "runtime": "tflite", "dim": vectors.dim, "n": len(idx),
                   "img_s": round(rate, 1), "cpu_ms": round(cpu, 2), "img_s_repeat": round(rate2, 1),
                   "cpu_ms_repeat": round(cpu2, 2), "build_s": round(build_s, 1), "convert_s": round(convert_s, 1),
                   "load_1m": round(os.getloadavg()[0], 2),
                   **{k: round(v, 4) for k, v in lq.summarise(s, weights, scores[reference]).items()}}
            if quant == "none":
                float_vectors[key] = values
            else:
                fv = float_vectors[label(replace(config, quantize="none"))]
                cos = np.sum(values * fv, axis=1)
                row.update(cos_min=round(float(cos.min()), 4), cos_mean=round(float(cos.mean()), 4))
            rows.append(row)
            print(f"  {key:<18} {rate:6.1f} img/s (repeat {rate2:.1f}) {cpu:6.2f} CPU ms/img | micro {row['micro']:.3f} "
                  f"macro {row['macro']:.3f} split lift {row['macro_split']:.3f} franchise {row['franchise']:.3f}"
                  + (f" | cos to float min {row['cos_min']:.3f} mean {row['cos_mean']:.3f}" if quant != "none" else "")
                  + f" | load {row['load_1m']}", flush=True)
        if base.image_size == 224:  # the Keras runtime, same model
            emb = PosterEmbedder(base, model=model, runtime="keras")
            emb.embed_files(paths[:base.batch_size], progress=False)
            (idx, values, _), rate, cpu = timed(lambda: emb.embed_files(paths[:args.n_keras], progress=False),
                                                lambda r: len(r[0]))
            cos = np.sum(values * float_vectors[label(base)][:len(values)], axis=1)
            rows.append({"variant": label(base) + " keras", "backbone": base.backbone, "alpha": base.alpha,
                         "size": 224, "quantize": "none", "runtime": "keras", "n": len(idx), "img_s": round(rate, 1),
                         "cpu_ms": round(cpu, 2), "cos_min_vs_tflite": round(float(cos.min()), 6),
                         "load_1m": round(os.getloadavg()[0], 2)})
            print(f"  {label(base) + ' keras':<18} {rate:6.1f} img/s {cpu:6.2f} CPU ms/img ({len(idx)} posters; "
                  f"cos to TFLite min {cos.min():.6f})", flush=True)
        del model
        keras.backend.clear_session()

    ref = next(r for r in rows if r["variant"] == reference)
    print(f"\nTable (reference {reference}; Δ = variant - reference, paired bootstrap SE; "
          f"ok = no measure worse by > {NOISE_SE:g} SE; ceiling = 1000 x {os.cpu_count()} cores / CPU ms):")
    print(f"  {'variant':<18} {'img/s':>6} {'CPU ms':>7} {'x CPU':>6} {'ceiling':>7} {'micro':>6} {'macro':>6} "
          f"{'split':>6} {'fran.':>6} {'Δmacro':>13} {'Δsplit':>13} {'Δfran.':>13} {'cos':>6}  ok")
    for r in rows:
        if r["runtime"] != "tflite":
            print(f"  {r['variant']:<18} {r['img_s']:6.1f} {r['cpu_ms']:7.2f} {ref['cpu_ms'] / r['cpu_ms']:6.2f}"
                  f" {1000 * (os.cpu_count() or 1) / r['cpu_ms']:7.0f}  (Keras runtime: vectors = TFLite's, "
                  f"min cos {r['cos_min_vs_tflite']:.6f})")
            continue
        ok = all(r[f"{k}_diff"] >= -NOISE_SE * r[f"{k}_diff_se"] for k in QUALITY)
        r["within_noise"] = ok
        diffs = " ".join(f"{r[f'{k}_diff']:+6.3f}±{r[f'{k}_diff_se']:.3f}" for k in QUALITY)
        cos = f"{r['cos_min']:.3f}" if "cos_min" in r else "-"
        print(f"  {r['variant']:<18} {r['img_s']:6.1f} {r['cpu_ms']:7.2f} {ref['cpu_ms'] / r['cpu_ms']:6.2f} "
              f"{1000 * (os.cpu_count() or 1) / r['cpu_ms']:7.0f} {r['micro']:6.3f} {r['macro']:6.3f} "
              f"{r['macro_split']:6.3f} {r['franchise']:6.3f} {diffs} {cos:>6}  {'yes' if ok else 'no'}")
    fine = [r for r in rows if r.get("within_noise")]
    best = min(fine, key=lambda r: r["cpu_ms"])
    default = VisionConfig()
    print(f"\ncheapest variant within noise of {reference}: {best['variant']} ({best['cpu_ms']:.2f} CPU ms/img, "
          f"{best['img_s']:.0f} img/s in this run); VisionConfig() default: {label(default)}")
    load_end = os.getloadavg()
    print(f"load avg at the end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    result = {**env, "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in load_end],
              "n_posters": len(paths), "reference": reference, "decode": {str(s): {"img_s": round(r, 1), "cpu_ms": round(c, 2)}
                                                                          for s, (r, c) in decode.items()},
              "rows": rows, "cheapest_within_noise": best["variant"], "default": label(default)}
    print(f"appended to {record('embed_tradeoff', result).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
