"""``train``, ``evaluate``, ``predict``, ``similar``, ``recommend``, ``also-liked``: the text model."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..output import count, emit_json, positive_int, weight_argument
from .data import dataset_argument


def register(sub) -> None:
    p = sub.add_parser("train", help="train the text-CNN rating model and write a new model version",
                       description="Fit the user/movie text-CNN on a split of the ratings, then write the model, "
                                   "its vectors, vocabulary, test pairs and training curve as a new version.")
    dataset_argument(p)
    p.add_argument("--split", default="none",
                   help="none (default: every rating trains a model for use); or, for an evaluation model that "
                        "holds ratings out: random-80-20, random-90-10, leave-last-out, cold-start-10, random-A-B")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    p.add_argument("--test-pairs", metavar="FILE", help="CSV of user_id,movie_id pairs that form the test set")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the config's)")
    p.add_argument("--validation", choices=["random", "latest"], default=None,
                   help="the validation slice of the training ratings that early stopping and the ranking "
                        "model's settings are picked on: random (a random 5%%) or latest (each user's latest "
                        "rating, the shape of leave-last-out and of serving). Default: latest with --split none or "
                        "leave-last-out, else the config's (random)")
    p.add_argument("--config", default="best", metavar="best|reference|FILE.json",
                   help="best (default: tuned, early stopping), reference (the classic design), or a JSON file "
                        "of overrides of them, such as the one `posterec tune` writes")
    p.add_argument("--progress", type=int, choices=[0, 1, 2], default=2,
                   help="Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                   help="default: one process (as before); mirrored: this machine's devices; multiworker: the "
                        "cluster in $TF_CONFIG, one process per machine started with the same command (the "
                        "chief, or worker 0, writes the version)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="multiworker: where each task backs its training state up every epoch, so that the "
                        "job started again resumes (default: HOME/checkpoints/train-<run>)")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="RMSE/MAE on the test split; HR@10, NDCG@10, coverage on leave-last-out",
                       description="RMSE and MAE of the current model on its stored test split. Ranking metrics "
                                   "come from a second model with the same config fit on the leave-last-out "
                                   "training set, so the held-out movie is never seen in training.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--progress", type=int, choices=[0, 1, 2], default=None,
                   help="Keras verbosity of the leave-last-out fit (default: a bar on a terminal, else 0)")
    p.add_argument("--refit", action="store_true",
                   help="fit the leave-last-out model again even when its metrics are cached")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="predict ratings for user_id,movie_id pairs")
    p.add_argument("--pairs", required=True, metavar="FILE.csv", help="CSV with columns user_id,movie_id")
    p.add_argument("--out", required=True, metavar="OUT.csv", help="where to write user_id,movie_id,prediction")
    p.set_defaults(func=run_predict)

    for name, target, helptext in (
        ("similar", "MOVIE_ID", "movies whose vectors are closest (cosine) to a movie's"),
        ("recommend", "USER_ID", "the unseen movies a user is predicted to like most"),
        ("also-liked", "MOVIE_ID", "what the users who would rate a movie highest like best"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "recommend":
            _visitor_arguments(p)
        else:
            p.add_argument("id", type=int, metavar=target)
        p.add_argument("-n", type=count, default=10, help="how many results (default: 10)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if name != "also-liked":
            p.add_argument("--visual-weight", type=weight_argument, default=None, metavar="W",
                           help="0 = ratings only, 1 = posters only (default: the index's weight, "
                                "or 0 without posters)")
        p.set_defaults(func=run_query, query=name, parser=p)


def run_train(args) -> int:
    from ..pipeline import train

    result = train(args.home, args.dataset, split=args.split, seed=args.seed, test_pairs=args.test_pairs,
                   config=args.config, epochs=args.epochs, verbose=args.progress, strategy=args.strategy,
                   checkpoint_dir=args.checkpoint_dir, validation=args.validation)
    if result.version is None:  # a multiworker task other than the chief
        return 0
    shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items())
    purpose = result.version.manifest.get("purpose", "use")
    print(f"model version {result.version.name} ({purpose} model): {shown}")
    return 0


def run_evaluate(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from catalog import ArtifactError, ModelStore, load_dataset
    from catalog.store import write_json_atomic
    from text_model import TextModelConfig
    from text_model.artifacts import load_test_pairs
    from text_model.evaluation import ranking_metrics, rating_metrics
    from text_model.trainer import TextModel

    version = ModelStore(args.home).open_current()
    info = version.stage("train")
    if not info:
        raise ArtifactError(f"{version.path}: no rating model in this version; run `posterec train` first")
    tm = TextModel.load(version)
    result = {"rmse": None, "mae": None}
    if version.has("test_pairs"):
        users, movies, ratings = load_test_pairs(version)
        if len(ratings):
            result = rating_metrics(tm, users, movies, ratings)
    dataset = load_dataset(args.home, info["dataset"])
    config = TextModelConfig.from_dict(info["config"])
    seed = int(info["split"].get("seed", 0))
    cache = _evaluate_cache(args.home, version, seed)
    if cache.exists() and not args.refit:
        ranking = json.loads(cache.read_text())
        print(f"(leave-last-out metrics from {cache}; --refit to fit again)", file=sys.stderr)
    else:
        verbose = args.progress if args.progress is not None else (1 if sys.stderr.isatty() else 0)
        ranking = ranking_metrics(dataset, config, seed=seed, verbose=verbose)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache, ranking)
    result.update(ranking)
    result["version"] = version.name
    if args.json:
        emit_json(result)
        return 0
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"model {version.name} on {info['dataset']} ({info['split']['name']}, {result.get('n_test', 0)} test ratings)")
    print(f"  RMSE {fmt(result['rmse'])}  MAE {fmt(result['mae'])}")
    pop = result["most_popular"]
    print(f"  leave-last-out, {result['n_users']} users: HR@10 {fmt(result['hr_at_10'])}  "
          f"NDCG@10 {fmt(result['ndcg_at_10'])}  coverage@10 {fmt(result['coverage_at_10'])}")
    print(f"  most-popular baseline: HR@10 {fmt(pop['hr_at_10'])}  NDCG@10 {fmt(pop['ndcg_at_10'])}  "
          f"coverage@10 {fmt(pop['coverage_at_10'])}")
    return 0


def _evaluate_cache(home, version, seed: int):
    """Where the leave-last-out metrics of this dataset copy, config and seed are kept: they come
    from a second fit (tens of seconds) that depends on nothing else, so `evaluate` reuses them."""
    import hashlib

    from catalog.store import code_version

    info = version.stage("train")
    key = json.dumps({"dataset": version.manifest.get("dataset_checksum") or info.get("dataset"),
                      "config": info.get("config"), "seed": seed, "code": code_version()}, sort_keys=True)
    return Path(home) / "cache" / "evaluate" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def run_predict(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pandas as pd

    from catalog import DatasetError, ModelStore
    from text_model.trainer import TextModel

    path = Path(args.pairs)
    if not path.exists():
        raise DatasetError(f"{path}: no such pairs file")
    try:
        pairs = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    missing = {"user_id", "movie_id"} - set(pairs.columns)
    if missing:
        raise DatasetError(f"{path}: needs columns user_id,movie_id; missing {', '.join(sorted(missing))} "
                           f"(found {', '.join(map(str, pairs.columns)) or 'none'})")
    for col in ("user_id", "movie_id"):
        values = pd.to_numeric(pairs[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            k = int(bad.to_numpy().nonzero()[0][0])
            raise DatasetError(f"{path} line {k + 2}: {col} must be a whole number, got {pairs[col].iloc[k]!r}")
        pairs[col] = values.astype("int64")
    tm = TextModel.load(ModelStore(args.home).open_current())
    pred = tm.predict(pairs["user_id"].to_numpy(), pairs["movie_id"].to_numpy())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pd.DataFrame({"user_id": pairs["user_id"], "movie_id": pairs["movie_id"],
                  "prediction": pred.round(4)}).to_csv(tmp, index=False)
    os.replace(tmp, out)
    print(f"wrote {len(pairs)} predictions to {out}")
    return 0


def _visitor_arguments(p) -> None:
    """``recommend USER_ID``, or for a visitor ``--liked 1,50,181`` / ``--ratings FILE.csv``."""
    p.add_argument("id", type=int, metavar="USER_ID", nargs="?", default=None,
                   help="a user the model knows (or give --liked / --ratings instead)")
    p.add_argument("--liked", type=_id_list, metavar="IDS",
                   help="a visitor's liked movies, comma-separated movie ids (e.g. 1,50,181)")
    p.add_argument("--ratings", metavar="FILE.csv", help="a visitor's ratings: a CSV with columns movie_id,rating")


def _id_list(text: str) -> list[int]:
    import argparse

    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts or not all(t.isdigit() for t in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated movie ids such as 1,50,181, got {text!r}")
    return [int(t) for t in parts]


def read_visitor_ratings(path) -> list[tuple[int, float]]:
    """(movie_id, rating) pairs of a ``movie_id,rating`` CSV; `DatasetError` naming the line."""
    import csv

    from catalog import DatasetError

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such ratings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc})") from None
    if rows and [c.strip().lower() for c in rows[0]][:2] == ["movie_id", "rating"]:
        rows, first = rows[1:], 2
    else:
        first = 1
    out = []
    for k, row in enumerate(rows, first):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 or not row[0].strip().isdigit():
            raise DatasetError(f"{path} line {k}: expected movie_id,rating (e.g. 50,4.5), got {','.join(row)!r}")
        try:
            value = float(row[1])
        except ValueError:
            raise DatasetError(f"{path} line {k}: the rating {row[1]!r} is not a number") from None
        out.append((int(row[0]), value))
    return out


def run_query(args) -> int:
    from ..recommender import Recommender

    visitor = args.query == "recommend" and (args.liked is not None or args.ratings is not None)
    if args.query == "recommend":
        given = sum(x is not None for x in (args.id, args.liked, args.ratings))
        if given != 1:
            args.parser.error("give exactly one of USER_ID, --liked IDS or --ratings FILE.csv")
    ratings = read_visitor_ratings(args.ratings) if visitor and args.ratings is not None else None
    rec = Recommender.load(args.home)
    w = getattr(args, "visual_weight", None)
    if args.query == "similar":
        hits = rec.similar(args.id, args.n, visual_weight=w)
    elif visitor:
        hits = rec.recommend_for(ratings=ratings, liked=args.liked, n=args.n, visual_weight=w)
    elif args.query == "recommend":
        hits = rec.recommend(args.id, args.n, visual_weight=w)
    else:
        hits = rec.also_liked(args.id, args.n)
    results = rec.describe(hits)
    key = "user_id" if args.query == "recommend" else "movie_id"
    if args.json:
        head = {"query": args.query, key: args.id}
        if visitor:
            head = {"query": "recommend", "liked": args.liked or [], "ratings": dict(ratings or []),
                    "basis": "visitor" if (args.liked or ratings) else "popular"}
        emit_json({**head, "n": args.n, "model": rec.version, "results": results})
        return 0
    if visitor and not (args.liked or ratings):
        print("(nothing given: the most popular movies)")
    for k, r in enumerate(results, 1):
        year = "" if r["year"] is None else f" ({r['year']})"
        because = f"  <- {r['because']['title']}" if r.get("because") else ""
        print(f"{k:3d}. {r['score']:8.4f}  {r['movie_id']:>6}  {r['title']}{year}  [{'|'.join(r['genres'])}]{because}")
    return 0
