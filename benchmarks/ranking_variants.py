"""Ranking models refit beside a trained rating model, and poster variants for tail items.

Used by ``ranking_quality.py`` inside one warm split (not a script of its own):

- `refit_candidates`: each ranking model ``train`` can fit (``puresvd+rating``, ``ease``,
  ``ease+rating``) refit on the version's rating model with *the same* fitted/validation pairs
  ``train`` used (`text_model.trainer.ranking_pairs`), settings picked on that validation slice.
- `poster_variants`: a base ranking plus ``alpha`` times a poster signal, per user z-scored,
  ``alpha`` picked on the same validation slice (a liked validation movie in the top 10, fitted
  movies excluded) among `ALPHAS`; the base and the signal are refit on all training for the test.
  Signals: the vbpr feature term ``theta_u . E f_i + beta . f_i`` (posters + genres + year, and the
  control without posters), and the cosine of the user's poster taste, each on every movie or on
  tail movies only (the 80% of movies below the top 20% by training count); the vbpr feature sets
  are named by ``ranking_quality.py --variant-features`` (poster PCA 64/N, whitened or not, with or
  without genres + year).
- Tail neighbour smoothing (``--neighbours``): a tail movie's base column plus alpha times the mean
  base column of its k nearest head movies by poster cosine, against the same by genres + year.
- Residual (``--residual``): the control is the base plus the no-poster vbpr term on the tail (its
  alpha as validation chose it); each poster signal is added on top with its own validation alpha,
  so "with posters" and "without" are one model and alpha 0 gives the control back exactly.
"""
from __future__ import annotations

import time

import numpy as np

ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
CANDIDATES = ("puresvd+rating", "ease", "ease+rating")
N = 10


def scores_over(users_v, movies_v, user_ids, catalogue) -> np.ndarray:
    """float32 (users, catalogue): inner products; movies the vectors lack score -inf."""
    out = np.full((len(user_ids), len(catalogue)), -np.inf, np.float32)
    known = np.isin(catalogue, movies_v.ids)
    u = users_v.values[users_v.rows_of(user_ids)]
    out[:, known] = u @ movies_v.subset(catalogue[known]).values.T
    return out


def lists_of(scores: np.ndarray, exclude: np.ndarray, user_ids, catalogue, n: int = 20) -> dict[int, np.ndarray]:
    from catalog import top_n

    cols, _ = top_n(scores, n, exclude)
    return {int(u): catalogue[c[c >= 0]] for u, c in zip(user_ids, cols)}


def seen_mask(part, user_ids, catalogue) -> np.ndarray:
    m = np.zeros((len(user_ids), len(catalogue)), bool)
    for k, u in enumerate(user_ids):
        m[k, np.searchsorted(catalogue, part.of(int(u)))] = True
    return m


def zscore(s: np.ndarray) -> np.ndarray:
    finite = np.isfinite(s)
    x = np.where(finite, s, np.nan)
    mu, sd = np.nanmean(x, axis=1, keepdims=True), np.nanstd(x, axis=1, keepdims=True)
    z = (x - mu) / np.maximum(sd, 1e-12)
    return np.where(finite, z, -np.inf).astype(np.float32)


def tail_of(part, catalogue) -> np.ndarray:
    """Boolean over the catalogue: not in the top 20% of movies by training count in ``part``."""
    ids, counts = part.movie_counts()
    order = ids[np.lexsort((ids, -counts))]
    head = order[: int(round(0.2 * len(ids)))]
    return ~np.isin(catalogue, head)


def refit_candidates(home, split_name: str, dataset_name: str, seed: int, catalogue, users, seen, add) -> dict:
    """Fit each candidate ranking model beside the version's rating model; returns what the poster
    variants need."""
    from catalog import ModelStore, load_dataset, make_split
    from posterec.pipeline import train_config
    from text_model import RatingVectors
    from text_model.ranking import ranking_for
    from text_model.trainer import ranking_pairs

    version = ModelStore(home).open_current()
    rating = RatingVectors.load(version)
    data = load_dataset(home, dataset_name)
    chosen = make_split(data.ratings, split_name, seed, test_pairs=home / f"test-pairs-{split_name}.csv")
    cfg = train_config(version)  # the settings `train` fit this version with (its validation slice included)
    fit_p, val_p = ranking_pairs(chosen.train, cfg, seed)
    models = {}
    for name in CANDIDATES:
        t0 = time.perf_counter()
        model = ranking_for(cfg.with_overrides(ranking_model=name), seed).fit(rating, fit_p, val_p)
        seconds = time.perf_counter() - t0
        rv = model.ranking_vectors()
        params = {k: v for k, v in model.params.items() if k != "validation"}
        add(f"ranking {name} (refit, validation-chosen)",
            lists_of(scores_over(rv.ranking_users, rv.ranking_movies, users, catalogue), seen, users, catalogue),
            {"params": params, "fit_seconds_with_grid": round(seconds, 2)})
        print(f"    {name}: {params}, fit with its validation grid {seconds:.2f} s", flush=True)
        models[name] = model
    return {"rating": rating, "fit": fit_p, "val": val_p, "models": models, "train": chosen.train}


def _validation_base(model, rating, fit_p, val_users, catalogue) -> np.ndarray:
    """The base model's scores for validation users as fitted *without* the validation slice."""
    from text_model.ease import binary_rows, ease_weights, weighted_rows

    if model.name in ("ease", "ease+rating"):
        ease = model if model.name == "ease" else model.implicit
        x = binary_rows(fit_p, ease.user_ids, ease.movie_ids)
        b = ease_weights(x, ease.lam)
        if ease.recency_boost and fit_p.times is not None:  # the scored rows carry the chosen recency weights
            x = weighted_rows(fit_p, ease.user_ids, ease.movie_ids, ease.recency_scale, ease.recency_boost)
        s = np.asarray(x[np.searchsorted(ease.user_ids, val_users)] @ b, np.float32)
        w = float(getattr(model, "rating_weight", 0.0))
        if w:
            s = s + w * (rating.scoring_users.values[rating.user_rows(val_users)] @ rating.scoring_movies.values.T)
        out = np.full((len(val_users), len(catalogue)), -np.inf, np.float32)
        known = np.isin(catalogue, ease.movie_ids)
        out[:, known] = s[:, np.searchsorted(ease.movie_ids, catalogue[known])]
        return out
    rv = model.ranking_vectors()  # puresvd+rating is fit on the fitted pairs only
    return scores_over(rv.ranking_users, rv.ranking_movies, val_users, catalogue)


def _vbpr_term(train, feats, user_ids, catalogue, seed: int = 0) -> np.ndarray:
    """theta_u . E f_i + beta . f_i of a fusion.vbpr model fit on ``train`` (0 for unknown movies)."""
    from fusion.vbpr import VBPRConfig, fit_vbpr

    model = fit_vbpr(train, feats, VBPRConfig(seed=seed), user_ids=user_ids)
    f = model.features.astype(np.float32)
    theta = model.user_visual[np.searchsorted(model.user_ids, user_ids)]
    term = theta @ (f @ model.projection).T + (f @ model.feature_bias)[None, :]
    out = np.zeros((len(user_ids), len(catalogue)), np.float32)
    known = np.isin(catalogue, model.movie_ids)
    out[:, known] = term[:, np.searchsorted(model.movie_ids, catalogue[known])]
    return out


def _taste_cosine(train, visual, user_ids, catalogue, liked: float) -> np.ndarray:
    from fusion import user_taste
    from fusion.blocks import normalize_rows

    users = np.repeat(train.user_ids, train.user_counts())
    taste = user_taste(users, train.movie_ids, train.ratings, visual, threshold=liked)
    out = np.zeros((len(user_ids), len(catalogue)), np.float32)
    has = np.isin(catalogue, visual.ids)
    posters = normalize_rows(visual.subset(catalogue[has]).values)
    known = np.isin(user_ids, taste.ids)
    out[np.ix_(known, has)] = taste.subset(user_ids[known]).values @ posters.T
    # a movie without a poster, or a user without taste, gets the user's mean (z = 0 after z-scoring)
    mean = out[:, has].mean(axis=1, keepdims=True) if has.any() else 0
    out[:, ~has] = mean
    return out


def _val_hr(scores, seen, relevant) -> float:
    from catalog import top_n

    cols, _ = top_n(scores, N, seen)
    got = np.take_along_axis(relevant, np.maximum(cols, 0), axis=1) & (cols >= 0)
    return float(got.any(axis=1).mean()) if len(got) else 0.0


def _neighbour_signal(base: np.ndarray, space, catalogue, head: np.ndarray, k: int) -> np.ndarray:
    """Each movie's column replaced by the mean base column of its ``k`` nearest head movies in
    ``space`` (cosine; fusion.neighbours); a movie with no neighbour gets the user's mean (z = 0)."""
    from fusion.neighbours import nearest_among, neighbour_mean

    nbrs = nearest_among(space, catalogue, catalogue[head], k)
    out = neighbour_mean(base, catalogue, nbrs, catalogue)
    fill = np.nanmean(np.where(np.isfinite(out), out, np.nan), axis=1, keepdims=True)
    return np.where(np.isfinite(out), out, np.nan_to_num(fill)).astype(np.float32)


def _pick(base_val, sv, mv, val_seen, relevant) -> tuple[float, dict]:
    hrs = {a: _val_hr(base_val + a * sv * mv, val_seen, relevant) for a in ALPHAS}
    return max(ALPHAS, key=lambda a: (hrs[a], -a)), hrs  # ties go to the smaller weight (less change)


def _brief(m: dict) -> dict:
    t = m["tail"]
    return {"hr@10": m["all"]["hr@10"], "ndcg@10": m["all"]["ndcg@10"], "tail_hits": round(t["hr@10"] * t["users"]),
            "tail_users": t["users"], "tail_ndcg@10": t["ndcg@10"]}


CONTROL = "vbpr term (genres + year, no posters)"


def poster_variants(ctx: dict, base_name: str, visual, features: dict, catalogue, users, seen, test_train, add,
                    neighbours: dict | None = None, neighbour_k=(), residual: bool = False, vbpr_seed: int = 0,
                    measure=None):
    """Each poster variant on top of ``base_name``, alpha picked on validation; adds a row per variant.

    ``features``: label -> (feature Vectors, has posters) for the vbpr term. ``neighbours``: label ->
    (movie Vectors to find neighbours in, has posters), each smoothed with every k of ``neighbour_k``,
    tail only. ``residual``: the control (base + alpha_g x the no-poster vbpr term on the tail, alpha_g
    as validation picked it) plus alpha x each poster signal on the tail, alpha picked on validation again.
    """
    rating, fit_p, val_p, model = ctx["rating"], ctx["fit"], ctx["val"], ctx["models"][base_name]
    lo, hi = rating.rating_range
    liked_min = lo + 0.75 * (hi - lo)
    liked = val_p.ratings >= liked_min
    val_users = np.intersect1d(np.repeat(val_p.user_ids, val_p.user_counts())[liked], rating.user_ids)
    relevant = np.zeros((len(val_users), len(catalogue)), bool)
    vu = np.repeat(val_p.user_ids, val_p.user_counts())
    keep = liked & np.isin(vu, val_users)
    relevant[np.searchsorted(val_users, vu[keep]), np.searchsorted(catalogue, val_p.movie_ids[keep])] = True
    val_seen = seen_mask(fit_p, val_users, catalogue)
    base_val = zscore(_validation_base(model, rating, fit_p, val_users, catalogue))
    rv = model.ranking_vectors()
    base_test = zscore(scores_over(rv.ranking_users, rv.ranking_movies, users, catalogue))
    tail_val, tail_test = tail_of(fit_p, catalogue), tail_of(test_train, catalogue)
    print(f"    validation: {len(val_users)} users with a liked validation movie, "
          f"{int((relevant & tail_val[None, :]).any(axis=1).sum())} of them with a tail one", flush=True)
    signals, posters, scopes = {}, {}, {}
    for fname, (feats, has_posters) in features.items():
        t0 = time.perf_counter()
        key = f"vbpr term ({fname})"
        signals[key] = (zscore(_vbpr_term(fit_p, feats, val_users, catalogue, vbpr_seed)),
                        zscore(_vbpr_term(test_train, feats, users, catalogue, vbpr_seed)))
        posters[key], scopes[key] = has_posters, ("all movies", "tail only")
        print(f"    {key}: two fits {time.perf_counter() - t0:.0f} s", flush=True)
    if visual is not None:
        key = "poster taste cosine"
        signals[key] = (zscore(_taste_cosine(fit_p, visual, val_users, catalogue, liked_min)),
                        zscore(_taste_cosine(test_train, visual, users, catalogue, liked_min)))
        posters[key], scopes[key] = True, ("all movies", "tail only")
    for nname, (space, has_posters) in (neighbours or {}).items():
        for k in neighbour_k:
            key = f"{nname} neighbours' mean column (k={k})"
            signals[key] = (zscore(_neighbour_signal(base_val, space, catalogue, ~tail_val, k)),
                            zscore(_neighbour_signal(base_test, space, catalogue, ~tail_test, k)))
            posters[key], scopes[key] = has_posters, ("tail only",)
    out = {}

    def row(key, test_scores, alpha, hrs, extra=None, at=None):
        if measure is not None and at is not None:  # at(a): the test scores at alpha a
            extra = {**(extra or {}), "test_at_alpha": {a: _brief(measure(lists_of(at(a), seen, users, catalogue)))
                                                        for a in ALPHAS}}
        add(key, lists_of(test_scores, seen, users, catalogue),
            {"alpha": alpha, "validation_hr@10": hrs, **(extra or {})})
        out[key] = {"alpha": alpha, "validation_hr@10": hrs, **(extra or {})}
        print(f"    {key}: alpha {alpha} (validation HR@10 {hrs[alpha]:.4f}; alpha 0: {hrs[0.0]:.4f})", flush=True)

    for sname, (sv, st) in signals.items():
        for scope in scopes[sname]:
            mv = tail_val[None, :] if scope == "tail only" else 1.0
            mt = tail_test[None, :] if scope == "tail only" else 1.0
            best, hrs = _pick(base_val, sv, mv, val_seen, relevant)
            row(f"{base_name} + alpha x {sname}, {scope}", base_test + best * st * mt, best, hrs,
                at=lambda a, st=st, mt=mt: base_test + a * st * mt)
    if residual and CONTROL in signals:
        cv, ct = signals[CONTROL]
        a_g = out[f"{base_name} + alpha x {CONTROL}, tail only"]["alpha"]
        control_val = base_val + a_g * cv * tail_val[None, :]
        control_test = base_test + a_g * ct * tail_test[None, :]
        for sname in [s for s in signals if posters[s]] + [CONTROL]:  # the control again: more of the same
            sv, st = signals[sname]
            best, hrs = _pick(control_val, sv, tail_val[None, :], val_seen, relevant)
            again = " again" if sname == CONTROL else ""
            row(f"{base_name} + {a_g:g} x {CONTROL} + alpha x {sname}{again}, tail only",
                control_test + best * st * tail_test[None, :], best, hrs, {"control_alpha": a_g},
                at=lambda a, st=st: control_test + a * st * tail_test[None, :])
    return out
