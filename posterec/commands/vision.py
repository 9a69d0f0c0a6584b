"""``embed`` and ``lookalike``: poster embeddings and the posters that look alike."""
from __future__ import annotations

import logging
import sys

from ..output import count, emit_json, positive_int
from .data import dataset_argument

log = logging.getLogger(__name__)


def register(sub) -> None:
    from vision_model import BACKBONES, POLICIES, VisionConfig

    d = VisionConfig()
    p = sub.add_parser("embed", help="embed every poster with a pretrained CNN into a new model version",
                       description="Run the poster store's ok posters through a keras.applications "
                                   "backbone (batched tf.data pipeline, TFLite inference) and write "
                                   "L2-normalised vectors into a new model version. Vectors "
                                   "are cached by (poster sha256, backbone config) under "
                                   "<home>/cache/embeddings/, so only new posters are embedded.")
    dataset_argument(p)
    p.add_argument("--backbone", default=d.backbone, metavar="NAME",
                   help=f"keras.applications model (default: {d.backbone}; known: "
                        f"{', '.join(s.name for s in BACKBONES.values())})")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help="width multiplier of MobileNet* (default: 0.35 for MobileNetV2 with imagenet weights, else 1.0)")
    p.add_argument("--quantize", choices=("none", "int8"), default=d.quantize,
                   help="int8: per-channel int8 TFLite model (faster, vectors within a checked cosine of float)")
    p.add_argument("--weights", default=d.weights, metavar="imagenet|PATH",
                   help="'imagenet' (Keras downloads them once, or reads $KERAS_HOME/models/) or a .h5 file")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"default: {d.batch_size}")
    p.add_argument("--image-size", type=positive_int, default=d.image_size, help=f"input side in pixels (default: {d.image_size})")
    p.add_argument("--policy", choices=POLICIES, default=d.policy,
                   help="poster aspect ratio: pad (keep the whole poster, default) or center-crop")
    p.add_argument("--runtime", choices=("tflite", "keras"), default="tflite",
                   help="inference runtime (default: tflite, same vectors, faster on CPU)")
    g = p.add_argument_group("cluster", "--engine ray: batch inference on Ray Data (pip install 'posterec[cluster]')")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: one model per Ray worker, same vectors and cache")
    g.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="Ray cluster to join (ray://HEAD:10001 or auto; default: $RAY_ADDRESS, else a local instance)")
    g.add_argument("--posters-url", metavar="URL", default=None,
                   help="where the workers read the store's poster files: a shared folder (NFS) or an object-store "
                        "URI such as s3://bucket/posters/ml-1m (default: the store's own folder)")
    g.add_argument("--workers", type=positive_int, default=1, help="model replicas (Ray actors; default: 1)")
    g.add_argument("--cpus-per-worker", type=positive_int, default=1,
                   help="CPUs (and TFLite threads) of each replica (default: 1)")
    p.set_defaults(func=run_embed)

    p = sub.add_parser("lookalike", help="movies whose posters look most like this one's")
    p.add_argument("movie_id", type=int)
    p.add_argument("-n", type=count, default=10, help="how many (default: 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--grid", metavar="FILE.png", help="also save a contact sheet of the query and its look-alikes")
    p.set_defaults(func=run_lookalike)


def vision_config(args):
    from pathlib import Path

    from vision_model import VisionConfig

    weights = args.weights
    if weights != "imagenet":
        weights = str(Path(weights).expanduser().resolve())
    return VisionConfig(backbone=args.backbone, alpha=args.alpha, weights=weights, quantize=args.quantize,
                        image_size=args.image_size, batch_size=args.batch_size, policy=args.policy)


def run_embed(args) -> int:
    from ..pipeline import embed

    config = vision_config(args)
    engine = None
    if args.engine == "ray":
        from vision_model.cluster import RayConfig

        engine = RayConfig(address=args.ray_address, workers=args.workers, cpus_per_worker=args.cpus_per_worker)
    s = embed(args.home, args.dataset, config, runtime=args.runtime, engine=engine, posters_url=args.posters_url)
    if s.strangers:
        log.warning("%d posters are for movies not in %s (ignored): %s", len(s.strangers), args.dataset, s.strangers[:10])
    r = s.result
    duplicates = max(0, len(r.vectors) - r.n_cached - r.n_embedded)
    print(f"{args.dataset}: {len(r.vectors) + len(r.failed)} posters: {r.n_embedded} embedded, {r.n_cached} from "
          f"cache, {duplicates} duplicates of others by sha256, {len(r.failed)} unusable; "
          f"{config.backbone} alpha={config.alpha:g}, dim {r.vectors.dim}; {len(s.missing)} movies without a "
          f"poster; model version {s.version.name}")
    for f in r.failed[:10]:
        print(f"  skipped movie {f.movie_id}: {f.error}")
    return 0


def run_lookalike(args) -> int:
    from ..recommender import Recommender

    rec = Recommender.load(args.home)
    query = rec.movie(args.movie_id)  # UnknownMovieError for an id not in the catalogue
    if rec.visual is not None and args.movie_id not in rec.visual:
        failed = rec.model.stage("embed").get("failed", [])
        why = next((f["error"] for f in failed if f["movie_id"] == args.movie_id), None)
        reason = f"its poster could not be used ({why})" if why else "it has no poster"
        from catalog import UnknownMovieError

        raise UnknownMovieError(f"movie {args.movie_id} ({query['title']}) has no poster embedding: {reason}; "
                                f"fetch it with `posterec scrape-posters`, then run `posterec embed`")
    results = rec.describe(rec.lookalike(args.movie_id, args.n))
    if args.grid:
        from vision_model import Tile, draw_contact_sheet

        label = lambda r: f"{r['title']} ({r['year']})" if r["year"] else r["title"]  # noqa: E731
        draw_contact_sheet(Tile(rec.poster_path(args.movie_id), f"query: {label(query)}"),
                           [Tile(rec.poster_path(r["movie_id"]), f"{r['score']:.3f} {label(r)}") for r in results],
                           args.grid)
    if args.json:
        emit_json({"query": query, "backbone": rec.model.stage("embed").get("backbone"), "results": results})
    else:
        print(f"posters like {query['movie_id']} {query['title']} ({query['year']}):")
        for r in results:
            print(f"  {r['score']:.3f}  {r['movie_id']:>6}  {r['title']} ({r['year']})  {'|'.join(r['genres'])}")
    if args.grid:
        print(f"contact sheet: {args.grid}", file=sys.stderr if args.json else sys.stdout)
    return 0
