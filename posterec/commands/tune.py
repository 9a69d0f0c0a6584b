"""``tune``: a seeded Optuna search over the rating model's and the ranking model's main settings.

Each trial fits, on the *training* ratings minus a validation slice (each user's latest training
rating; with ``--validation random`` a random tenth of the training ratings, the shape of a random
split's test part), the rating network (scored by RMSE on the slice) and the learned ranking model
``fusion.vbpr`` (scored by HR@10 on the slice: the slice's movie among the top 10 of the
catalogue, the user's fitted movies excluded). The two models are fit independently, so the best
configuration takes the rating settings of the trial with the lowest RMSE and the ranking settings
of the trial with the highest HR@10; it is written as JSON overrides where ``train --config`` reads
them. ``--rating-only`` fits and tunes the rating network alone (a trial is then several times
cheaper; the ranking settings stay the base config's). The test part of a split is never seen. The study lives in SQLite under the home, so Ctrl-C
stops it cleanly and the next ``tune`` resumes it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..output import positive_int
from .data import dataset_argument

RATING_SPACE = {  # name: (kind, low, high)
    "learning_rate": ("log", 1e-3, 2e-2),
    "l2": ("log", 1e-6, 1e-3),
    "dropout": ("float", 0.0, 0.5),
    "user_embedding_dim": ("int", 16, 64),
    "movie_embedding_dim": ("int", 16, 64),
    "implicit_dim": ("int", 0, 64),
    "lr_decay": ("float", 0.5, 1.0),
    "ema_epochs": ("float", 0.5, 3.0),
    "vector_dim": ("int", 16, 64),
    "bias_l2": ("log", 1e-6, 1e-3),
    "early_stopping_patience": ("int", 1, 3),
}
VALIDATION_FRACTION = 0.1
RANKING_SPACE = {
    "vbpr_factors": ("int", 16, 128),
    "vbpr_visual_factors": ("int", 4, 32),
    "vbpr_learning_rate": ("log", 1e-3, 2e-2),
    "vbpr_l2": ("log", 1e-6, 1e-2),
    "vbpr_item_dropout": ("float", 0.0, 0.5),
}


def register(sub) -> None:
    p = sub.add_parser("tune", help="search the rating and ranking models' settings on a validation slice",
                       description=__doc__.split("\n\n")[1])
    dataset_argument(p)
    p.add_argument("--trials", type=positive_int, default=20, help="trials in the study, earlier runs' included "
                                                                   "(default: 20)")
    p.add_argument("--split", default="none", help="tune on this split's training part (default: none = all ratings)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and the fits (default: 0)")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs of each rating-model fit")
    p.add_argument("--validation", choices=["latest", "random"], default="latest",
                   help="the validation slice: each user's latest training rating (default), or a random "
                        f"{VALIDATION_FRACTION:.0%} of the training ratings (the shape of a random split's test part)")
    p.add_argument("--rating-only", action="store_true",
                   help="tune the rating network alone (the ranking settings stay the base config's)")
    p.add_argument("--study", default=None,
                   help="study name (default: DATASET-SPLIT-seedSEED, then -random and -rating when those are set)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where the best config goes (default: HOME/tune/best_config.json)")
    p.add_argument("--progress", type=int, choices=[0, 1], default=1, help="1: a progress bar (default)")
    p.set_defaults(func=run_tune)


def suggest(trial, space: dict) -> dict:
    out = {}
    for name, (kind, lo, hi) in space.items():
        if kind == "int":
            out[name] = trial.suggest_int(name, lo, hi)
        else:
            out[name] = trial.suggest_float(name, lo, hi, log=kind == "log")
    return out


def base_point(config, space: dict) -> dict:
    """The settings of ``config`` named in ``space``, each clipped into its range (a trial to enqueue)."""
    out = {}
    for name, (kind, lo, hi) in space.items():
        value = min(max(getattr(config, name), lo), hi)
        out[name] = int(value) if kind == "int" else float(value)
    return out


def run_tune(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import optuna

    from catalog import (
        Interactions,
        ModelStore,
        PosterecError,
        load_dataset,
        make_split,
    )
    from catalog.splits import leave_last_out, random_split
    from fusion.vbpr import VBPRConfig, VisualBPR, movie_features
    from text_model import get_config
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    home = Path(args.home)
    data = load_dataset(home, args.dataset)
    train = make_split(data.ratings, args.split, args.seed).train
    if args.validation == "random":
        fit_part, val = random_split(train, VALIDATION_FRACTION, args.seed)
    else:
        fit_part, val = leave_last_out(train, args.seed)
    fit_i, val_i = Interactions.from_ratings(fit_part), Interactions.from_ratings(val)
    visual = None
    try:
        from ..pipeline import visual_vectors

        current = ModelStore(home).open_current()
        if current.manifest.get("dataset") == data.name:
            visual = visual_vectors(current)
    except PosterecError:
        pass
    movies = data.movies
    ids = movies["movie_id"].to_numpy()
    features = movie_features(np.union1d(ids, fit_i.movie_ids), visual,
                              {int(m): tuple(g) for m, g in zip(ids, movies["genres"])},
                              {int(m): (None if y != y else float(y))
                               for m, y in zip(ids, movies["year"].astype("float64"))})
    base = get_config("best")
    folder = home / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    name = args.study or (f"{data.name}-{args.split}-seed{args.seed}" + ("-random" if args.validation == "random" else "")
                          + ("-rating" if args.rating_only else ""))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{folder / 'studies.db'}", load_if_exists=True,
                                directions=["minimize", "maximize"], sampler=optuna.samplers.TPESampler(seed=args.seed))
    if study.trials:  # a resumed study: a sampler seeded as the first run's would draw that run's first points again
        study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))

    def objective(trial):
        rating = suggest(trial, RATING_SPACE)
        ranking = {} if args.rating_only else suggest(trial, RANKING_SPACE)
        cfg = base.with_overrides(**rating, epochs=args.epochs)
        tm = fit_text_model(data, fit_part, cfg, seed=args.seed, verbose=0)
        known = np.isin(val["user_id"], tm.vocab.user_ids) & np.isin(val["movie_id"], tm.vocab.movie_ids)
        rmse = float(rating_metrics(tm, val["user_id"][known], val["movie_id"][known], val["rating"][known])["rmse"])
        trial.set_user_attr("epochs_run", len(tm.history.get("loss", [])))
        if args.rating_only:
            return rmse, 0.0
        vcfg = VBPRConfig(**{**base.with_overrides(**ranking).vbpr_settings(), "seed": args.seed})
        model = VisualBPR(vcfg).fit(fit_i, features, val_i)
        trial.set_user_attr("vbpr_best_epoch", model.history.get("best_epoch"))
        return rmse, float(model.history["best_val_hr@10"])

    space = RATING_SPACE if args.rating_only else {**RATING_SPACE, **RANKING_SPACE}
    if not study.trials:  # trial 0 is the base config, so tune never returns worse than it on validation
        study.enqueue_trial(base_point(base, space))
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    todo = max(0, args.trials - done)
    print(f"study {name!r} in {folder / 'studies.db'}: {done} trials done, {todo} to run "
          f"({len(fit_part)} fit / {len(val)} validation ratings of the training part)", flush=True)
    interrupted = False
    try:
        if todo:
            study.optimize(objective, n_trials=todo, show_progress_bar=bool(args.progress), catch=())
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: finished trials are kept; run `posterec tune` again to resume", flush=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    print_trials(complete, space)
    if not complete:
        return 1 if interrupted else 0
    best_rating = min(complete, key=lambda t: t.values[0])
    best_ranking = max(complete, key=lambda t: t.values[1])
    chosen = {"name": "tuned", **{k: best_rating.params[k] for k in RATING_SPACE},
              **{k: best_ranking.params[k] for k in RANKING_SPACE if k in best_ranking.params}}
    epoch = None if args.rating_only else best_ranking.user_attrs.get("vbpr_best_epoch")
    if epoch:
        chosen["vbpr_epochs"] = int(epoch)
    get_config("best").from_dict({**base.to_dict(), **chosen})  # refuses what train would refuse
    out = Path(args.out) if args.out else folder / "best_config.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    ranking_line = ("ranking settings: the base config's (--rating-only)" if args.rating_only else
                    f"best ranking settings: trial {best_ranking.number} (validation HR@10 {best_ranking.values[1]:.4f})")
    print(f"best rating settings: trial {best_rating.number} (validation RMSE {best_rating.values[0]:.4f}); "
          + ranking_line)
    print(f"wrote {out}; use it with `posterec train --config {out}`")
    return 0


def print_trials(trials, space: dict | None = None) -> None:
    keys = list(space or {**RATING_SPACE, **RANKING_SPACE})
    short = {k: k.replace("vbpr_", "v_").replace("_embedding_dim", "_dim").replace("learning_rate", "lr")
             for k in keys}
    ranked = any(k in RANKING_SPACE for k in keys)
    head = ["trial", "rmse"] + (["hr@10"] if ranked else []) + [short[k] for k in keys]
    rows = [[str(t.number), f"{t.values[0]:.4f}"] + ([f"{t.values[1]:.4f}"] if ranked else [])
            + [f"{t.params[k]:.3g}" if isinstance(t.params[k], float) else str(t.params[k]) for k in keys]
            for t in trials]
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
