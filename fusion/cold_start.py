"""Cold start: estimate movie vectors for a movie that has only a poster and metadata.

`ColdStartMap` is ridge regression in closed form (numpy), from movie features (visual vectors,
genre one-hot, release-year bins, any other per-movie arrays) to a movie-vector space, fit on the
movies that have both. `select_alpha` picks its penalty by K-fold validation on those training
movies only. `evaluate_cold_start` ranks held-out movies for the users who rated them.

Which target space matters: the plain rating towers (``collab.npz``) carry no bias or popularity,
so a map into them ranks new movies no better than chance; the ranking vectors
(``ranking_users.npz`` / ``ranking_movies.npz``: PureSVD + predicted rating) do, and a map into
them is what ranks a cold movie for a user.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from catalog import Vectors

ALPHAS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


def genre_vectors(genres: Mapping[int, Sequence[str]], vocabulary: Sequence[str] | None = None) -> Vectors:
    """One-hot genre features per movie id (``vocabulary`` fixes the column order)."""
    vocab = list(vocabulary) if vocabulary is not None else sorted({g for gs in genres.values() for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    ids = np.fromiter(genres.keys(), dtype=np.int64, count=len(genres))
    out = np.zeros((len(ids), len(vocab)), dtype=np.float32)
    for row, movie_id in enumerate(ids):
        for g in genres[int(movie_id)]:
            if g in col:
                out[row, col[g]] = 1.0
    return Vectors(ids, out)


def year_vectors(years: Mapping[int, float | None], n_bins: int = 8) -> Vectors:
    """One-hot release-year bins (quantiles of the known years) plus a last "unknown year" column."""
    if n_bins < 1:
        raise ValueError(f"year_vectors: n_bins must be >= 1, got {n_bins}")
    ids = np.fromiter(years.keys(), dtype=np.int64, count=len(years))
    values = np.array([np.nan if years[int(m)] is None or years[int(m)] != years[int(m)] else float(years[int(m)])
                       for m in ids], dtype=np.float64)
    known = ~np.isnan(values)
    edges = np.unique(np.quantile(values[known], np.linspace(0, 1, n_bins + 1)[1:-1])) if known.any() else np.array([])
    out = np.zeros((len(ids), len(edges) + 2), dtype=np.float32)
    out[np.flatnonzero(known), np.searchsorted(edges, values[known], side="right")] = 1.0
    out[~known, -1] = 1.0
    return Vectors(ids, out)


def stack_features(*blocks: Vectors) -> Vectors:
    """Blocks side by side, for the movies present in every block."""
    if not blocks:
        raise ValueError("stack_features: no blocks")
    ids = blocks[0].ids
    for block in blocks[1:]:
        ids = np.intersect1d(ids, block.ids)
    ids = np.sort(ids)
    return Vectors(ids, np.hstack([b.values[b.rows_of(ids)] for b in blocks]) if len(ids) else
                   np.zeros((0, sum(b.dim for b in blocks)), np.float32))


def _paired(features: Vectors, targets: Vectors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.intersect1d(features.ids, targets.ids)
    return (ids, features.values[features.rows_of(ids)].astype(np.float64),
            targets.values[targets.rows_of(ids)].astype(np.float64))


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]):
    """(weights, bias) of the centred ridge fit for every alpha, from one SVD of the features."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    uty = u.T @ (y - y_mean)
    for alpha in alphas:
        w = vt.T @ ((s / (s ** 2 + alpha))[:, None] * uty)
        yield w, y_mean - x_mean @ w


@dataclass
class ColdStartMap:
    """Ridge regression ``target ~ features @ W + b`` (closed form; ``alpha`` is the L2 penalty)."""

    alpha: float = 1.0
    weights: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    n_fit: int = 0

    def fit(self, features: Vectors, targets: Vectors) -> "ColdStartMap":
        """Fit on the movies present in both ``features`` and ``targets``."""
        ids, x, y = _paired(features, targets)
        if len(ids) < 2:
            raise ValueError(f"ColdStartMap.fit: only {len(ids)} movies have both features and targets; need 2 or more")
        if self.alpha < 0:
            raise ValueError(f"ColdStartMap: alpha must be >= 0, got {self.alpha}")
        self.weights, self.bias = next(_ridge_path(x, y, [self.alpha]))
        self.n_fit = len(ids)
        return self

    def predict(self, features: Vectors) -> Vectors:
        """Estimated target vectors for every movie in ``features``."""
        if self.weights is None:
            raise ValueError("ColdStartMap.predict: call fit first")
        if features.dim != self.weights.shape[0]:
            raise ValueError(f"ColdStartMap.predict: fitted on {self.weights.shape[0]} features, got {features.dim}")
        return Vectors(features.ids, (features.values.astype(np.float64) @ self.weights + self.bias).astype(np.float32))


def select_alpha(features: Vectors, targets: Vectors, user_vectors: Vectors | None = None,
                 alphas: Sequence[float] = ALPHAS, folds: int = 5, seed: int = 0) -> tuple[float, dict]:
    """The ridge penalty with the least K-fold validation error over the movies in both inputs.

    Error is measured where it matters: with ``user_vectors``, on the scores ``user . movie`` of
    every user (``(m_hat - m) G (m_hat - m)`` with ``G`` the users' mean outer product); without,
    as the squared error of the vectors. Pass only *training* movies. Returns (alpha, {alpha: error}).
    """
    ids, x, y = _paired(features, targets)
    if len(ids) < 2 * folds or folds < 2:
        raise ValueError(f"select_alpha: {len(ids)} movies with features and targets; need {2 * max(folds, 2)} "
                         f"or more for {folds}-fold validation")
    if not alphas or min(alphas) < 0:
        raise ValueError(f"select_alpha: alphas must be a non-empty list of values >= 0, got {list(alphas)}")
    if user_vectors is not None:
        if user_vectors.dim != targets.dim:
            raise ValueError(f"select_alpha: user vectors have dimension {user_vectors.dim}, targets {targets.dim}")
        uv = user_vectors.values.astype(np.float64)
        gram = uv.T @ uv / max(len(uv), 1)
    else:
        gram = np.eye(y.shape[1])
    fold = np.random.default_rng(seed).permutation(len(ids)) % folds
    errors = np.zeros(len(alphas))
    for k in range(folds):
        fit, val = fold != k, fold == k
        for j, (w, b) in enumerate(_ridge_path(x[fit], y[fit], alphas)):
            diff = x[val] @ w + b - y[val]
            errors[j] += np.einsum("ij,jk,ik->", diff, gram, diff)
    errors /= len(ids)
    best = int(np.argmin(errors))
    return float(alphas[best]), {float(a): float(e) for a, e in zip(alphas, errors)}


def evaluate_ranking(user_vectors: Vectors, candidates: Vectors | None, test_users, test_movies, test_ratings,
                     n: int = 10, relevant: float = 4.0, scores: np.ndarray | None = None) -> dict:
    """Rank the candidate movies for each test user; a test movie rated >= ``relevant`` is a hit.

    Every candidate the user did not rate >= ``relevant`` (unrated or rated lower) counts as a
    miss. Scores are ``user . candidate`` unless ``scores`` (one per candidate, the same for every
    user, e.g. popularity) is given. Returns HR@n (share of users with a hit in the top n),
    recall@n, NDCG@n and AUC, averaged over the users with at least one relevant candidate.
    """
    users = np.asarray(test_users, dtype=np.int64)
    movies = np.asarray(test_movies, dtype=np.int64)
    ratings = np.asarray(test_ratings, dtype=np.float64)
    cand_ids = candidates.ids if candidates is not None else np.unique(movies)
    pos_of = {int(m): j for j, m in enumerate(cand_ids)}
    keep = (ratings >= relevant) & np.isin(movies, cand_ids)
    users, movies = users[keep], movies[keep]
    order = np.argsort(users, kind="stable")
    users, movies = users[order], movies[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], np.int64)
    hr = rec = ndcg = auc = 0.0
    counted = 0
    for lo, hi in zip(starts, np.r_[starts[1:], len(users)].astype(np.int64)):
        user = int(users[lo])
        if scores is None and user not in user_vectors:
            continue
        rel = np.unique(np.array([pos_of[int(m)] for m in movies[lo:hi]], dtype=np.int64))
        s = np.asarray(scores, np.float64) if scores is not None else candidates.values @ user_vectors.get(user)
        rank = np.empty(len(s), dtype=np.int64)
        rank[np.argsort(-s, kind="stable")] = np.arange(len(s))
        r = np.sort(rank[rel])
        top = r[r < n]
        hr += float(len(top) > 0)
        rec += len(top) / min(len(rel), n)
        ndcg += np.sum(1 / np.log2(top + 2)) / np.sum(1 / np.log2(np.arange(min(len(rel), n)) + 2))
        neg = len(s) - len(rel)
        auc += 1.0 if neg == 0 else float(np.mean((len(s) - 1 - r - (len(rel) - 1 - np.arange(len(rel)))) / neg))
        counted += 1
    if counted == 0:
        return {"users": 0, f"hr@{n}": None, f"recall@{n}": None, f"ndcg@{n}": None, "auc": None}
    return {"users": counted, "candidates": int(len(cand_ids)), f"hr@{n}": hr / counted,
            f"recall@{n}": rec / counted, f"ndcg@{n}": float(ndcg / counted), "auc": auc / counted}


def evaluate_cold_start(user_vectors: Vectors, movie_vectors: Vectors, features: Vectors, genre_features: Vectors,
                        held_out, test_users, test_movies, test_ratings, n: int = 10,
                        alpha: float | None = None, alphas: Sequence[float] = ALPHAS,
                        more: Mapping[str, Vectors] | None = None) -> dict:
    """The cold-start comparison on the held-out movies ``held_out``.

    ``user_vectors`` / ``movie_vectors`` are one space of the rating model (``dot`` = its score;
    use the ranking vectors). Every method ranks the same candidates: the held-out movies that have
    ``features`` and ``genre_features``; a candidate the user rated >= 4 is a hit.

    - ``mapping``: `ColdStartMap` from ``features``, fit on the training movies only (vectors of
      held-out movies are never read); ``alpha`` None picks it with `select_alpha` on them;
    - ``genre_only``: the same from ``genre_features`` alone; ``more`` adds named feature sets
      mapped the same way (e.g. ``{"metadata_only": genres + year}``);
    - ``random``: a seeded shuffle (the floor a useful estimate must clear);
    - ``popularity_oracle``: held-out movies by their number of *test* ratings. Not a baseline a
      real cold start can have (a new movie has no ratings); it shows the ceiling of popularity.
    """
    held = np.asarray(held_out, dtype=np.int64)
    train = movie_vectors.subset(np.setdiff1d(movie_vectors.ids, held))
    sets = {"mapping": features, "genre_only": genre_features, **dict(more or {})}
    cand_ids = held
    for feats in sets.values():
        cand_ids = np.intersect1d(cand_ids, feats.ids)
    out = {}
    for name, feats in sets.items():
        train_feats = feats.subset(np.setdiff1d(feats.ids, held))
        a, _ = (alpha, None) if alpha is not None else select_alpha(train_feats, train, user_vectors, alphas)
        estimate = ColdStartMap(a).fit(train_feats, train).predict(feats.subset(cand_ids))
        out[name] = {**evaluate_ranking(user_vectors, estimate, test_users, test_movies, test_ratings, n), "alpha": a}
    cand = Vectors(cand_ids, np.zeros((len(cand_ids), 1), np.float32))
    shuffled = np.random.default_rng(0).permutation(len(cand_ids)).astype(np.float64)
    out["random"] = evaluate_ranking(user_vectors, cand, test_users, test_movies, test_ratings, n, scores=shuffled)
    ids, counts = np.unique(np.asarray(test_movies, dtype=np.int64), return_counts=True)
    popularity = np.zeros(len(cand_ids))
    popularity[np.isin(cand_ids, ids)] = counts[np.isin(ids, cand_ids)]
    out["popularity_oracle"] = evaluate_ranking(user_vectors, cand, test_users, test_movies, test_ratings, n,
                                                scores=popularity)
    return out
