"""Fold-in: a visitor's vectors from a few (movie, rating) pairs, against the learned movie factors.

No retraining: each part of a ranking model gets its closed-form solution, and the parts are put
together exactly as `text_model.ranking` puts a known user's vectors together, so the visitor's
vector searches the same index with the same inner product.

- **Rating model** (``dot`` head: ``r = u.v + b_u + b_m + mean``): the unknowns are ``x = [u, b_u]``,
  solved as a ridge regression with the known users as its prior,

      x = argmin  ||F x - t||^2 / s2 + (x - x0)' P (x - x0)
        = (F'F / s2 + P)^-1 (F't / s2 + P x0)

  with ``F = [v_i, 1]`` and ``t = r_i - b_m - mean`` over the given movies, ``x0`` the mean of the
  known users' ``[u, b_u]``, ``P`` the inverse of their covariance (a Gaussian prior fitted to the
  population, ridge-regularised) and ``s2`` the residual variance of the training ratings. With no
  ratings the visitor is the average user; with many, the least-squares fit. The ranking vector is
  ``[u, b_u, 1, mean]``, the layout of `RatingVectors.scoring_users`. (The ``fc`` head has no inner
  product: there the plain tower vector ``u`` is fitted to ``r - mean`` the same way.)
- **PureSVD** (``score = p_u . V_i`` with ``V`` orthonormal columns): the projection
  ``p = V' x = sum of V_i over the given movies`` (``x`` the binary who-rated-what row). It is the
  ridge solution ``argmin ||V p - x||^2`` over *every* movie, unrated ones counting as 0, which is
  how PureSVD was fitted; for a known user with all their training movies it gives back ``U S``
  exactly (up to the randomised SVD's error).
- **Blend** ``puresvd+rating``: ``[rating_weight * [u, b_u, 1, mean], p]``, as `Blend.ranking_vectors`.
- **EASE** (``score = x . B[:, i]``): the visitor's binary row ``x`` over EASE's movies (1 at each
  given movie, whatever its rating, as EASE was fitted), exactly a known user's ranking vector;
  ``ease+rating``: ``[rating_weight * [u, b_u, 1, mean], x]``, as `text_model.ease.EaseBlend`. A
  given movie EASE has no column for (one estimated from its poster) adds nothing to ``x``.

A ranking model of another name is folded in by the generic ridge against its movie vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog import Vectors

PRIOR_RIDGE = 1e-2      # added to the prior covariance's diagonal (times its mean variance)
NOISE_SAMPLE = 200_000  # training ratings used to estimate the residual variance
EASE_NAMES = ("ease", "ease+rating")


def ridge(features: np.ndarray, targets: np.ndarray, prior_mean: np.ndarray, prior_precision: np.ndarray,
          noise: float = 1.0) -> np.ndarray:
    """``argmin ||F x - t||^2 / noise + (x - m)' P (x - m)`` in closed form (float64)."""
    f = np.asarray(features, np.float64)
    t = np.asarray(targets, np.float64)
    a = f.T @ f / noise + prior_precision
    b = f.T @ t / noise + prior_precision @ prior_mean
    return np.linalg.solve(a, b)


def gaussian_prior(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, precision) of rows ``values``: the inverse of their ridge-regularised covariance."""
    x = np.asarray(values, np.float64)
    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    cov = np.cov(x, rowvar=False) if len(x) > 1 else np.eye(x.shape[1])
    cov = np.atleast_2d(cov)
    scale = float(np.trace(cov) / len(cov)) or 1.0
    cov = cov + PRIOR_RIDGE * scale * np.eye(len(cov))
    return mean, np.linalg.inv(cov)


@dataclass(frozen=True, eq=False)
class FoldIn:
    """Folds visitors into a ranking model. Build once per model (`FoldIn.of`), then `vector`."""

    name: str                  # the ranking model's name
    movies: Vectors            # the ranking movie vectors searched (cold-start estimates included)
    scoring_width: int         # columns of the rating part in ``movies`` (0: none)
    dim: int                   # the rating towers' width (dot head) or scoring width (fc head)
    dot_head: bool
    global_mean: float
    rating_weight: float
    prior_mean: np.ndarray
    prior_precision: np.ndarray
    noise: float
    generic: bool = False
    implicit_ids: np.ndarray | None = None  # EASE: the movie of each column of the binary row
    recency: tuple[float, float] = (0.0, 0.0)  # EASE: (scale, boost) of its rows' recency weights

    @classmethod
    def of(cls, rating, ranking, movies: Vectors, interactions=None) -> "FoldIn":
        """For a `RatingVectors` ``rating``, its `RankingVectors` ``ranking`` (None: rank by the
        rating alone) and the ranking ``movies`` actually searched."""
        name = "rating" if ranking is None else ranking.name
        su = rating.scoring_users.values
        if rating.dot_head:
            users = np.hstack([rating.user_vectors, rating.user_bias.reshape(-1, 1)])
            dim = rating.user_vectors.shape[1]
        else:
            users, dim = rating.user_vectors, rating.user_vectors.shape[1]
        known = {"rating": su.shape[1], "puresvd": 0, "puresvd+rating": su.shape[1], "ease": 0,
                 "ease+rating": su.shape[1]}
        generic = name not in known
        weight = float((ranking.params if ranking is not None else {}).get("rating_weight", 1.0))
        if generic:  # an unfamiliar model: a ridge against its own movie vectors
            users = ranking.ranking_users.values
        mean, precision = gaussian_prior(users)
        noise = _residual_variance(rating, interactions) if not generic else 1.0
        width = 0 if generic else known[name]
        implicit = ranking.ranking_movies.ids if name in EASE_NAMES else None
        params = ranking.params if ranking is not None else {}
        recency = (float(params.get("recency_scale", 0.0)), float(params.get("recency_boost", 0.0)))
        return cls(name, movies, width, dim, rating.dot_head, float(rating.global_mean),
                   weight, mean, precision, noise, generic, implicit, recency)

    def vector(self, movie_ids: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The visitor's ranking vector from the given movies (ids in ``movies``) and ratings."""
        movie_ids = np.asarray(movie_ids, np.int64)
        r = np.asarray(ratings, np.float64)
        rows = self.movies.rows_of(movie_ids) if len(movie_ids) else np.zeros(0, np.int64)
        m = self.movies.values[rows].astype(np.float64)
        if self.generic:
            return ridge(m, r, self.prior_mean, self.prior_precision, self.noise).astype(np.float32)
        parts = []
        if self.scoring_width:
            parts.append(self.rating_part(m[:, : self.scoring_width], r))
        if self.name in ("puresvd", "puresvd+rating"):
            parts.append(m[:, self.scoring_width:].sum(axis=0))
        if self.name in EASE_NAMES:
            x = np.isin(self.implicit_ids, movie_ids).astype(np.float64)
            scale, boost = self.recency
            if boost and scale > 0:  # a visitor's movies are all their latest: ages 0, 1, ... larger ids first
                from .ease import recency_weights

                cols = np.flatnonzero(x)[::-1]
                x[cols] = recency_weights(np.arange(len(cols)), scale, boost)
            parts.append(x)
        if self.name in ("puresvd+rating", "ease+rating"):
            parts[0] = self.rating_weight * parts[0]
        return np.concatenate(parts).astype(np.float32)

    def rating_part(self, scoring: np.ndarray, r: np.ndarray) -> np.ndarray:
        if not self.dot_head:
            x = ridge(scoring, r - self.global_mean, self.prior_mean, self.prior_precision, self.noise)
            return x
        d = self.dim
        v, movie_bias = scoring[:, :d], scoring[:, d + 1]
        features = np.hstack([v, np.ones((len(v), 1))])
        x = ridge(features, r - movie_bias - self.global_mean, self.prior_mean, self.prior_precision, self.noise)
        return np.concatenate([x[:d], [x[d], 1.0, self.global_mean]])


def _residual_variance(rating, interactions, sample: int = NOISE_SAMPLE, seed: int = 0) -> float:
    """The variance of the rating model's errors on (a sample of) its training ratings; 1 without them."""
    if interactions is None or not len(interactions.movie_ids) or not rating.dot_head:
        return 1.0
    users = np.repeat(interactions.user_ids, interactions.user_counts())
    movies, ratings = interactions.movie_ids, np.asarray(interactions.ratings, np.float64)
    if len(movies) > sample:
        pick = np.random.default_rng(seed).choice(len(movies), sample, replace=False)
        users, movies, ratings = users[pick], movies[pick], ratings[pick]
    known = np.isin(users, rating.user_ids) & np.isin(movies, rating.movie_ids)
    if known.sum() < 2:
        return 1.0
    u, m = rating.user_rows(users[known]), rating.movie_rows(movies[known])
    pred = np.einsum("ij,ij->i", rating.user_vectors[u], rating.movie_vectors[m]).astype(np.float64)
    pred += rating.user_bias[u] + rating.movie_bias[m] + rating.global_mean
    return max(float(np.var(ratings[known] - pred)), 1e-3)
