"""Rating accuracy of text_model vs Surprise's SVD, SVD++ and KNNBaseline on one ml-100k split.

    python benchmarks/rating_accuracy.py [--shared ../shared] [--seed 0] [--skip-ranking] [--skip-ml1m]

All models see the same fixed random 80/20 split (seed 0). Prints RMSE, MAE and fit time of each,
then recommend's HR@10/NDCG@10 on leave-last-out against a most-popular baseline (a separate
text_model fit without each user's latest rating), and an ml-1m training-time estimate from one
epoch timed on ml-1m-sized ratings (the real ml-1m users and movies, random ratings: the cost
of an epoch does not depend on the rating values). Appends a JSON line to
benchmarks/results/rating_accuracy.jsonl. Needs the ``bench`` extra (scikit-surprise).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def cpu_info() -> dict:
    from common import machine

    return machine()


def versions() -> dict:
    import keras
    import surprise
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "surprise": surprise.__version__,
            "numpy": np.__version__}


def surprise_models():
    from surprise import SVD, KNNBaseline, SVDpp

    return {
        "surprise SVD": lambda: SVD(random_state=0),
        "surprise SVD++": lambda: SVDpp(random_state=0),
        "surprise KNNBaseline (item, pearson_baseline)": lambda: KNNBaseline(
            sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False),
    }


def run_surprise(split) -> dict:
    from surprise import Dataset as SDataset, Reader

    train = split.train[["user_id", "movie_id", "rating"]].astype({"rating": "float64"})
    trainset = SDataset.load_from_df(train, Reader(rating_scale=(1, 5))).build_full_trainset()
    test = list(zip(split.test["user_id"].tolist(), split.test["movie_id"].tolist(), split.test["rating"].astype(float).tolist()))
    out = {}
    for name, make in surprise_models().items():
        algo = make()
        start = time.perf_counter()
        algo.fit(trainset)
        fit = time.perf_counter() - start
        preds = algo.test(test)
        est = np.array([p.est for p in preds])
        truth = np.array([p.r_ui for p in preds])
        out[name] = {"rmse": float(np.sqrt(np.mean((est - truth) ** 2))), "mae": float(np.mean(np.abs(est - truth))),
                     "fit_seconds": fit}
        print(f"{name:48s} RMSE {out[name]['rmse']:.4f}  MAE {out[name]['mae']:.4f}  fit {fit:7.1f} s", flush=True)
    return out


def run_ours(dataset, split, name: str, seed: int) -> tuple[dict, object]:
    from text_model import get_config
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    config = get_config(name)
    start = time.perf_counter()
    tm = fit_text_model(dataset, split.train, config, seed=seed, verbose=2)
    fit = time.perf_counter() - start
    m = rating_metrics(tm, split.test["user_id"], split.test["movie_id"], split.test["rating"])
    res = {"rmse": m["rmse"], "mae": m["mae"], "fit_seconds": fit, "epochs": len(tm.history.get("loss", []))}
    print(f"{'text_model ' + Path(name).name:48s} RMSE {res['rmse']:.4f}  MAE {res['mae']:.4f}  fit {fit:7.1f} s "
          f"({res['epochs']} epochs)", flush=True)
    return res, tm


def ml1m_epoch_seconds(shared: Path, best_epochs: int, seed: int, steps: int = 12) -> dict | None:
    """Time training steps of the best config at ml-1m scale and extrapolate to a full fit.

    The real ml-1m users and movies with 1,000,209 random ratings (ratings.dat is not in
    ../shared; the cost of a step does not depend on the rating values). ``steps`` steps are timed
    after two warm-up steps (graph tracing), then scaled to an epoch and to ``best_epochs``.
    """
    import keras
    import pandas as pd

    from catalog import load_dir
    from text_model import Vocabulary, get_config
    from text_model.network import build_model

    src = shared / "data" / "ml-1m"
    if not (src / "movies.dat").exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for f in ("movies.dat", "users.dat"):
            os.symlink(src / f, tmp / f)
        movies = pd.read_csv(src / "movies.dat", sep="::", engine="python", header=None, encoding="latin-1")[0].to_numpy()
        users = pd.read_csv(src / "users.dat", sep="::", engine="python", header=None, encoding="latin-1")[0].to_numpy()
        rng = np.random.default_rng(seed)
        n = 1_000_209
        key = np.unique(rng.integers(0, len(users) * len(movies), size=int(n * 1.1)))[:n]
        rng.shuffle(key)
        u, m = users[key // len(movies)], movies[key % len(movies)]
        r = rng.integers(1, 6, size=len(key))
        with open(tmp / "ratings.dat", "w") as fh:
            fh.writelines(f"{a}::{b}::{c}::978300760\n" for a, b, c in zip(u, m, r))
        dataset = load_dir(tmp, "ml1m", "ml-1m")
    config = get_config("best")
    fit_n = int(len(dataset.ratings) * 0.8 * (1 - config.validation_fraction))
    vocab = Vocabulary.build(dataset, config.min_word_count, max(config.cnn_windows))
    ur = vocab.user_rows(dataset.ratings["user_id"].to_numpy()[:fit_n])
    mr = vocab.movie_rows(dataset.ratings["movie_id"].to_numpy()[:fit_n])
    y = dataset.ratings["rating"].to_numpy(np.float32)[:fit_n]
    start = time.perf_counter()
    model = build_model(config, vocab.sizes, vocab.max_genres, vocab.title_len, vocab.user_table(dataset.users),
                        vocab.movie_table(dataset.movies), float(y.mean()), (ur, mr))
    model.compile(keras.optimizers.Adam(config.learning_rate), "mse")
    model.optimizer.build(model.trainable_variables)  # as fit_text_model does: one trace, not two
    bs = config.batch_size
    for k in range(2):
        model.train_on_batch({"user": ur[k * bs:(k + 1) * bs], "movie": mr[k * bs:(k + 1) * bs]}, y[k * bs:(k + 1) * bs])
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(2, 2 + steps):
        model.train_on_batch({"user": ur[k * bs:(k + 1) * bs], "movie": mr[k * bs:(k + 1) * bs]}, y[k * bs:(k + 1) * bs])
    per_step = (time.perf_counter() - start) / steps
    per_epoch = per_step * np.ceil(fit_n / bs)
    return {"seconds_per_step": per_step, "seconds_per_epoch": per_epoch, "warmup_seconds": warm,
            "epochs_like_ml100k": best_epochs, "estimated_fit_seconds": warm + per_epoch * best_epochs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ranking", action="store_true", help="skip the leave-last-out HR@10 comparison")
    parser.add_argument("--skip-ml1m", action="store_true", help="skip the ml-1m training-time estimate")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--only-ml1m", action="store_true", help="only the ml-1m estimate (epochs from --epochs)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs assumed by --only-ml1m (default: 4)")
    parser.add_argument("--config", default="best", help="our config: a name or the JSON file `posterec tune` "
                                                         "wrote, as `train --config` reads it (default: best)")
    args = parser.parse_args(argv)
    source = args.shared / "data" / "ml-100k"
    if not (source / "u.data").exists():
        print(f"no ml-100k at {source}; pass --shared", file=sys.stderr)
        return 1

    from catalog import fetch_dataset, load_dataset, make_split
    from text_model import get_config
    from text_model.evaluation import ranking_metrics

    info = {**cpu_info(), **versions()}
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    if args.only_ml1m:
        print(json.dumps(ml1m_epoch_seconds(args.shared, args.epochs, args.seed)), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as home:
        fetch_dataset(home, "ml-100k", source=source)
        dataset = load_dataset(home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", args.seed)
    print(f"ml-100k random-80-20 seed {args.seed}: {len(split.train)} train / {len(split.test)} test", flush=True)

    results: dict = {}
    results["text_model best"], _ = run_ours(dataset, split, args.config, args.seed)
    results["text_model best"]["config"] = args.config
    if not args.skip_reference:
        results["text_model reference"], _ = run_ours(dataset, split, "reference", args.seed)
    results.update(run_surprise(split))

    best = results["text_model best"]
    baselines = {k: v for k, v in results.items() if k.startswith("surprise")}
    svdpp = results["surprise SVD++"]["fit_seconds"]
    summary = {
        "best_rmse_beats_all_surprise": all(best["rmse"] < v["rmse"] for v in baselines.values()),
        "best_rmse_vs_best_surprise": best["rmse"] / min(v["rmse"] for v in baselines.values()),
        "best_fit_vs_svdpp_fit": best["fit_seconds"] / svdpp,
    }
    print(f"\nbest RMSE / best Surprise RMSE = {summary['best_rmse_vs_best_surprise']:.4f} "
          f"(beats all: {summary['best_rmse_beats_all_surprise']}); "
          f"best fit / SVD++ fit = {summary['best_fit_vs_svdpp_fit']:.2f}", flush=True)

    ranking = None
    if not args.skip_ranking:
        ranking = ranking_metrics(dataset, get_config("best"), seed=args.seed)
        pop, ro = ranking["most_popular"], ranking["rating_only"]
        print(f"leave-last-out ({ranking['n_users']} users, all unrated movies as candidates):\n"
              f"  text_model best recommend (PureSVD + rating blend, picked on validation: {ranking['ranking_choice'].get('k')}, "
              f"lam {ranking['ranking_choice'].get('rating_weight')}): HR@10 {ranking['hr_at_10']:.4f} "
              f"NDCG@10 {ranking['ndcg_at_10']:.4f} coverage@10 {ranking['coverage_at_10']:.4f}\n"
              f"  same model, predicted rating only: HR@10 {ro['hr_at_10']:.4f} NDCG@10 {ro['ndcg_at_10']:.4f} "
              f"coverage@10 {ro['coverage_at_10']:.4f}\n"
              f"  most popular: HR@10 {pop['hr_at_10']:.4f} NDCG@10 {pop['ndcg_at_10']:.4f} "
              f"coverage@10 {pop['coverage_at_10']:.4f}", flush=True)

    estimate = None
    if not args.skip_ml1m:
        estimate = ml1m_epoch_seconds(args.shared, best["epochs"], args.seed)
        if estimate:
            print(f"ml-1m estimate: {estimate['seconds_per_step']:.2f} s/step at ml-1m scale -> "
                  f"{estimate['seconds_per_epoch']:.0f} s/epoch x {best['epochs']} epochs + {estimate['warmup_seconds']:.0f} s "
                  f"warm-up = {estimate['estimated_fit_seconds']:.0f} s; linear scaling of the ml-100k fit by the "
                  f"number of ratings would say {best['fit_seconds'] * 10:.0f} s", flush=True)

    out = ROOT / "benchmarks" / "results" / "rating_accuracy.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        fh.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "seed": args.seed, **info,
                             "results": results, "summary": summary, "ranking": ranking,
                             "ml1m_estimate": estimate}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
