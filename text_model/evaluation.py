"""Evaluation: rating error on the stored test split, ranking quality on leave-last-out.

Leave-last-out needs its own model: the main model was trained on a random split, which holds
most users' latest rating in *training*. So `ranking_metrics` fits a second model, with the
same configuration and seed, on the leave-last-out training set (every user's latest rating
removed), then ranks, for each user, every movie they have not rated in that training set.
The held-out movie is never seen in training. A most-popular baseline (movies by number of
training ratings) and the same model ranked by predicted rating alone are measured alongside.
Recommend's ranking blends the predicted rating with PureSVD (see `text_model.ranking`).
Users are scored in chunks reduced to top-N at once: memory never holds users x movies.
"""
from __future__ import annotations

import time

import numpy as np

from catalog import make_split

from .config import TextModelConfig
from .metrics import mae, ranking_report, rmse
from .scoring import pair_matrix, top_n_chunked, top_n_dot


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
    n_movies = len(vocab.movie_ids)
    test_users = vocab.user_rows(split.test["user_id"].to_numpy(np.int64)).astype(np.int64)
    target = vocab.movie_rows(split.test["movie_id"].to_numpy(np.int64))
    # what each test user rated in training: never a candidate (a sparse mask, scored in chunks)
    row_of = np.full(len(vocab.user_ids), -1, dtype=np.int64)
    row_of[test_users] = np.arange(len(test_users))
    tr_u = row_of[vocab.user_rows(split.train["user_id"].to_numpy(np.int64))]
    tr_m = vocab.movie_rows(split.train["movie_id"].to_numpy(np.int64))
    keep = tr_u >= 0
    exclude = pair_matrix(tr_u[keep], tr_m[keep], (len(test_users), n_movies))
    counts = np.bincount(tr_m, minlength=n_movies).astype(np.float32)

    ranking = tm.ranking_model()
    ru, rm = tm.ranking_vectors()
    su, sm = tm.scoring_vectors()
    top, _ = top_n_dot(ru.values[test_users], rm.values, n, exclude)
    report = ranking_report(top, target, n_movies, n)
    top, _ = top_n_dot(su.values[test_users], sm.values, n, exclude)
    rating_only = ranking_report(top, target, n_movies, n)
    top, _ = top_n_chunked(lambda rows: np.broadcast_to(counts, (rows.stop - rows.start, n_movies)),
                           len(test_users), n_movies, n, exclude)
    popular = ranking_report(top, target, n_movies, n)
    return {**report,
            "most_popular": popular, "rating_only": rating_only,
            "ranking": {"name": ranking.name, "params": ranking.params},
            "ranking_choice": ranking.params.get("validation", {}), "n_users": int(len(test_users)),
            "ranking_fit_seconds": round(fit_seconds, 2),
            "protocol": "leave-last-out: a separate model with the same config fit without each user's "
                        "latest rating; all movies the user has not rated in that training set are candidates"}
