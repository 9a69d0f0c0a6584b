"""Evaluation: rating error on the stored test split, ranking quality on leave-last-out.

Leave-last-out needs its own model: the main model was trained on a random split, which holds
most users' latest rating in *training*. So `ranking_metrics` fits a second model, with the
same configuration and seed, on the leave-last-out training set (every user's latest rating
removed), then ranks, for each user, every movie they have not rated in that training set.
The held-out movie is never seen in training. A most-popular baseline (movies by number of
training ratings) and the same model ranked by predicted rating alone are measured alongside.
Recommend's ranking blends the predicted rating with PureSVD (see `text_model.implicit`).
"""
from __future__ import annotations

import time

import numpy as np

from catalog import make_split

from .config import TextModelConfig
from .metrics import mae, ranking_report, rmse


def rating_metrics(tm, user_ids, movie_ids, ratings) -> dict:
    pred = tm.predict(user_ids, movie_ids)
    return {"rmse": rmse(ratings, pred), "mae": mae(ratings, pred), "n_test": int(len(ratings))}


def ranking_metrics(dataset, config: TextModelConfig, seed: int = 0, n: int = 10, verbose: int = 0) -> dict:
    from .trainer import fit_text_model

    split = make_split(dataset.ratings, "leave-last-out", seed)
    start = time.perf_counter()
    tm = fit_text_model(dataset, split.train, config, seed=seed, verbose=verbose)
    fit_seconds = time.perf_counter() - start
    vocab = tm.vocab
    test_users = vocab.user_rows(split.test["user_id"].to_numpy(np.int64))
    target = vocab.movie_rows(split.test["movie_id"].to_numpy(np.int64))
    exclude = np.zeros((len(test_users), len(vocab.movie_ids)), dtype=bool)
    row_of = np.full(len(vocab.user_ids), -1, dtype=np.int64)
    row_of[test_users] = np.arange(len(test_users))
    tr_u = vocab.user_rows(split.train["user_id"].to_numpy(np.int64))
    tr_m = vocab.movie_rows(split.train["movie_id"].to_numpy(np.int64))
    keep = row_of[tr_u] >= 0
    exclude[row_of[tr_u[keep]], tr_m[keep]] = True
    counts = np.bincount(tr_m, minlength=len(vocab.movie_ids)).astype(np.float64)

    ru, rm = tm.ranking_vectors()
    scores = ru.values[test_users] @ rm.values.T
    report = ranking_report(scores, exclude, target, n)
    su, sm = tm.scoring_vectors()
    rating_only = ranking_report(su.values[test_users] @ sm.values.T, exclude, target, n)
    popular = ranking_report(np.broadcast_to(counts, exclude.shape), exclude, target, n)
    return {**report,
            "most_popular": popular, "rating_only": rating_only,
            "ranking_choice": tm.ranking_validation, "n_users": int(len(test_users)),
            "ranking_fit_seconds": round(fit_seconds, 2),
            "protocol": "leave-last-out: a separate model with the same config fit without each user's "
                        "latest rating; all movies the user has not rated in that training set are candidates"}
