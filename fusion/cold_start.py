"""Cold start: estimate a collaborative vector for a movie that has only a poster and metadata.

`ColdStartMap` is ridge regression in closed form (numpy), from movie features (visual vectors,
genre one-hot, any other per-movie arrays) to collaborative vectors, fit on the movies that have
both. `evaluate_cold_start` ranks held-out movies for the users who rated them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from catalog import Vectors


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


@dataclass
class ColdStartMap:
    """Ridge regression ``target ~ features @ W + b`` (closed form; ``alpha`` is the L2 penalty)."""

    alpha: float = 1.0
    weights: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    n_fit: int = 0

    def fit(self, features: Vectors, targets: Vectors) -> "ColdStartMap":
        """Fit on the movies present in both ``features`` and ``targets``."""
        ids = np.intersect1d(features.ids, targets.ids)
        if len(ids) < 2:
            raise ValueError(f"ColdStartMap.fit: only {len(ids)} movies have both features and targets; need 2 or more")
        if self.alpha < 0:
            raise ValueError(f"ColdStartMap: alpha must be >= 0, got {self.alpha}")
        x = features.values[features.rows_of(ids)].astype(np.float64)
        y = targets.values[targets.rows_of(ids)].astype(np.float64)
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.weights = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
        self.bias = y_mean - x_mean @ self.weights
        self.n_fit = len(ids)
        return self

    def predict(self, features: Vectors) -> Vectors:
        """Estimated target vectors for every movie in ``features``."""
        if self.weights is None:
            raise ValueError("ColdStartMap.predict: call fit first")
        if features.dim != self.weights.shape[0]:
            raise ValueError(f"ColdStartMap.predict: fitted on {self.weights.shape[0]} features, got {features.dim}")
        return Vectors(features.ids, (features.values.astype(np.float64) @ self.weights + self.bias).astype(np.float32))


def evaluate_ranking(user_vectors: Vectors, candidates: Vectors | None, test_users, test_movies, test_ratings,
                     n: int = 10, relevant: float = 4.0, scores: np.ndarray | None = None) -> dict:
    """Rank the candidate movies for each test user; a test movie rated >= ``relevant`` is a hit.

    Scores are ``user . candidate`` unless ``scores`` (one per candidate, the same for every user,
    e.g. popularity) is given. Returns HR@n (share of users with a hit in the top n), recall@n,
    NDCG@n and AUC, averaged over the users with at least one relevant candidate.
    """
    users = np.asarray(test_users, dtype=np.int64)
    movies = np.asarray(test_movies, dtype=np.int64)
    ratings = np.asarray(test_ratings, dtype=np.float64)
    cand_ids = candidates.ids if candidates is not None else np.unique(movies)
    pos_of = {int(m): j for j, m in enumerate(cand_ids)}
    hr = rec = ndcg = auc = 0.0
    counted = 0
    for user in np.unique(users):
        mine = (users == user) & (ratings >= relevant)
        rel = np.array([pos_of[int(m)] for m in movies[mine] if int(m) in pos_of], dtype=np.int64)
        if len(rel) == 0 or (scores is None and user not in user_vectors):
            continue
        s = np.asarray(scores, np.float64) if scores is not None else candidates.values @ user_vectors.get(int(user))
        order = np.argsort(-s, kind="stable")
        rank = np.empty(len(s), dtype=np.int64)
        rank[order] = np.arange(len(s))
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
            f"recall@{n}": rec / counted, f"ndcg@{n}": ndcg / counted, "auc": auc / counted}


def evaluate_cold_start(user_vectors: Vectors, collaborative: Vectors, features: Vectors, genre_features: Vectors,
                        held_out, test_users, test_movies, test_ratings, n: int = 10, alpha: float = 1.0) -> dict:
    """The cold-start comparison on the held-out movies ``held_out``:

    - ``mapping``: `ColdStartMap` from ``features`` fit on the training movies (collaborative
      vectors of held-out movies are never used), users scored by ``user . estimate``;
    - ``genre_only``: the same map from ``genre_features`` alone;
    - ``popularity``: held-out movies by their number of test ratings (an oracle: it knows how
      popular each new movie turns out to be, which a real cold start does not);
    - ``random``: a seeded shuffle.
    """
    held = np.asarray(held_out, dtype=np.int64)
    train = collaborative.subset(np.setdiff1d(collaborative.ids, held))
    out = {}
    for name, feats in (("mapping", features), ("genre_only", genre_features)):
        cand = feats.subset(np.intersect1d(feats.ids, held))
        estimate = ColdStartMap(alpha).fit(feats, train).predict(cand)
        out[name] = evaluate_ranking(user_vectors, estimate, test_users, test_movies, test_ratings, n)
    cand_ids = np.intersect1d(features.ids, held)
    cand = Vectors(cand_ids, np.zeros((len(cand_ids), 1), np.float32))
    counts = np.array([np.sum(np.asarray(test_movies) == m) for m in cand_ids], dtype=np.float64)
    out["popularity"] = evaluate_ranking(user_vectors, cand, test_users, test_movies, test_ratings, n, scores=counts)
    shuffled = np.random.default_rng(0).permutation(len(cand_ids)).astype(np.float64)
    out["random"] = evaluate_ranking(user_vectors, cand, test_users, test_movies, test_ratings, n, scores=shuffled)
    return out
