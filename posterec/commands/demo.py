"""``demo``: the whole pipeline end to end, each stage skipped when its output is current.

dataset -> posters (import or scrape) -> train -> embed -> build-index -> a few answers -> serve.
"""
from __future__ import annotations

import os
from pathlib import Path

from catalog import DATASETS

from ..output import port_argument, weight_argument
from .data import _checksum


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline, show a few answers, then serve the page",
                       description="Fetch the dataset (or import it with --source), get posters "
                                   "(--posters DIR, or scrape TMDB when $TMDB_API_KEY is set), train, "
                                   "embed, build the index, print a few recommendations and serve the "
                                   "web page. A stage whose output is current is skipped. With no "
                                   "posters it runs collaborative-only and says so.")
    p.add_argument("--dataset", choices=list(DATASETS), default="ml-1m", help="MovieLens release (default: ml-1m)")
    p.add_argument("--source", metavar="DIR_OR_ZIP", help="import the dataset from a local folder or zip")
    p.add_argument("--checksum", type=_checksum, metavar="ALGO:HEX", help="expected checksum of the downloaded zip")
    p.add_argument("--posters", metavar="DIR", help="import <movie_id>.jpg|png posters from this folder")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    p.add_argument("--weights", default=None, metavar="imagenet|PATH",
                   help="poster CNN weights (default: the embed command's, imagenet)")
    p.add_argument("--alpha", type=float, default=None, help="MobileNetV2 width (default: the embed command's)")
    p.add_argument("--visual-weight", type=weight_argument, default=None, help="poster weight of the index (0..1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_argument, default=8000)
    p.add_argument("--no-serve", action="store_true", help="stop after showing the answers")
    p.set_defaults(func=run_demo)


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _run(args, *argv: str) -> None:
    from catalog import PosterecError

    from ..cli import main

    argv_full = ["--home", str(args.home), *(["-v"] if args.verbose else []), *argv]
    _say("posterec " + " ".join(argv))
    if main(argv_full) != 0:
        raise PosterecError(f"`posterec {' '.join(argv)}` failed (see the error above)")


def run_demo(args) -> int:
    from catalog import DatasetError, PosterecError, fetch_dataset
    from posters import PosterStore

    home, ds = Path(args.home), args.dataset
    # 1. the dataset
    try:
        result = fetch_dataset(home, ds, source=args.source, checksum=args.checksum)
    except DatasetError as exc:
        if args.source:
            raise
        raise DatasetError(f"{exc}. Offline? Point the demo at a local MovieLens copy: "
                           f"make demo DEMO_ARGS=\"--dataset ml-100k --source DIR\" "
                           f"(or posterec demo --dataset ml-100k --source DIR), DIR holding u.data, u.item, u.user") from None
    _say(f"dataset {ds}: {'installed from ' + result.source if result.fetched else 'already present'}")

    # 2. posters
    store = PosterStore(home, ds)
    have = {e.movie_id for e in store.entries()}
    if args.posters:
        folder = Path(args.posters)
        offered = {int(p.stem) for p in folder.glob("*") if p.stem.isdigit() and p.suffix.lower() in (".jpg", ".jpeg", ".png")} \
            if folder.is_dir() else set()
        if offered and offered <= have:
            _say(f"posters: all {len(offered)} from {folder} already imported")
        else:
            _run(args, "import-posters", str(folder), "--dataset", ds)
    elif os.environ.get("TMDB_API_KEY"):
        _run(args, "scrape-posters", "--dataset", ds)
    elif not have:
        _say("posters: none (no --posters DIR and no $TMDB_API_KEY): running collaborative-only")
    have = {e.movie_id for e in store.entries()}

    # 3-5. the models, each stage run only when the manifest's recorded inputs say it is stale
    from .. import pipeline

    embed_config = None
    if have:
        from dataclasses import replace

        from vision_model import VisionConfig

        changes = {}
        if args.weights:
            changes["weights"] = args.weights if args.weights == "imagenet" else str(Path(args.weights).expanduser().resolve())
        if args.alpha is not None:
            changes["alpha"] = args.alpha
        embed_config = replace(VisionConfig(), **changes)
    why = pipeline.stale(home, ds, store.entries() if have else None, embed_config)
    if why["train"]:
        _say(f"train: {why['train']}")
        pipeline.train(home, ds, epochs=args.epochs, verbose=2, announce=_say)
    else:
        _say("train: the rating model is current")
    if have:
        why = pipeline.stale(home, ds, store.entries(), embed_config)
        if why["embed"]:
            _say(f"embed: {why['embed']}")
            try:
                s = pipeline.embed(home, ds, embed_config)
                _say(f"embed: {len(s.result.vectors)} posters embedded ({s.result.n_embedded} new, "
                     f"{s.result.n_cached} from cache)")
            except PosterecError as exc:
                _say(f"embed failed ({exc}); going on collaborative-only")
        else:
            _say("embed: the poster embeddings are current")
    why = pipeline.stale(home, ds, store.entries() if have else None, embed_config)
    if why["build-index"] or args.visual_weight is not None:
        _say(f"build-index: {why['build-index'] or 'another visual weight was asked for'}")
        result = pipeline.build_index(home, visual_weight=args.visual_weight)
        _say(f"build-index: {result['index']['count']} movies indexed -> version {result['version']}")
    else:
        _say("build-index: the index is current")

    # 6. a few answers
    show_answers(home)
    if args.no_serve:
        return 0
    _say("serving the web page (Ctrl-C to stop)")
    return _run(args, "serve", "--host", args.host, "--port", str(args.port)) or 0


def show_answers(home: Path) -> None:
    from ..recommender import Recommender

    rec = Recommender.load(home)
    counts = rec.counts()
    mode = "ratings + posters" if rec.has_posters else "ratings only (no posters)"
    _say(f"model {rec.version}: {counts['movies']} movies, {counts['users']} users, "
         f"{counts['posters']} poster embeddings; {mode}")
    users = rec.sample_users(1)
    if users:
        print(f"\nTop 5 for user {users[0]}:")
        for r in rec.describe(rec.recommend(users[0], 5)):
            because = f"  (because you liked {r['because']['title']})" if r.get("because") else ""
            print(f"  {r['score']:6.3f}  {r['title']} ({r['year']}){because}")
    showcase = rec.popular_movies(1, with_poster=rec.has_posters) or rec.popular_movies(1)
    if not showcase:
        return
    query = showcase[0]
    print(f"\nMovies like {query['title']} ({query['year']}):")
    for r in rec.describe(rec.similar(query["movie_id"], 5)):
        print(f"  {r['score']:6.3f}  {r['title']} ({r['year']})  {'|'.join(r['genres'])}")
    if rec.has_posters and query["movie_id"] in rec.visual:
        print(f"\nPosters that look like {query['title']}'s:")
        for r in rec.describe(rec.lookalike(query["movie_id"], 5)):
            print(f"  {r['score']:6.3f}  {r['title']} ({r['year']})")
    else:
        print(f"\n(no poster look-alikes: {'this model has no posters' if not rec.has_posters else query['title'] + ' has no poster'})")
    print()
