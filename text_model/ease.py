"""EASE (Steck, 2019), a ranking model for ``recommend``: item-item weights in closed form (numpy).

    P = (X'X + lam I)^-1,   B = I - P / diag(P)   (so diag(B) = 0),   score(u, i) = x_u . B[:, i]

``X`` is the binary who-rated-what training matrix. Two models, named as `text_model.ranking`'s:

- `EASE` (name ``ease``): the score above alone;
- `EaseBlend` (name ``ease+rating``): ``ease(u, i) + rating_weight * predicted_rating(u, i)``.

Recency: a user's row may weigh their latest ratings more, ``x_u[i] = 1 + boost * exp(-age / scale)``
(``age`` 0 for the latest rating, 1 for the one before, ...): B is fit on the binary X, and only the
scored rows carry the weights. A user's next movie is most like the ones they rated last; on
ml-100k leave-last-out this lifts HR@10 well above EASE's (benchmarks/README.md, "Ranking quality").
``(scale, boost)`` is picked on the validation slice with the rest, among the config's
``ease_recency_scales`` x ``ease_recency_boosts`` and "off" (boost 0, chosen on ties). It needs
the ratings' times (`catalog.Interactions.times`); without them the rows stay binary.

``lam`` (and ``rating_weight``) are picked on the validation slice of the training data exactly as
the PureSVD blend's ``k``/``rating_weight`` are (`text_model.ranking.Blend`): the setting whose top
``n`` finds the most validation movies of a user (any they rated, or only those they liked: the
config's ``ranking_relevance``); then ``B`` is refit on every training pair
(the fitted part and the slice), since the users' rows it scores are their whole training rows.

Both are inner products, as every ranking model here: ``ranking_users`` are the users' binary
training rows (users x movies), ``ranking_movies`` the columns of ``B`` (movies x movies), so one
user's scores are their row times ``B``, computed per query or per chunk. The artifact holds ``B``
(float32) and the rows as CSR (``row_indptr``, ``row_indices``); the dense rows are rebuilt at load.

Size: ``B``, the Gram matrix and its inverse are each movies x movies, and the served vectors add
users x movies; `check_size` refuses above `EASE_MAX_MOVIES` or `EASE_MAX_BYTES` with one line
naming the alternative, and `text_model.ranking.ranking_for` falls back to ``puresvd+rating`` there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from catalog import SCHEMA, Hits, Interactions, Vectors
from catalog.version import json_array

from .rating_vectors import RatingVectors
from .scoring import chunks, dense_rows, pair_matrix

# Above this many movies the items x items matrices are too big to build on an ordinary machine:
# B, the Gram matrix and its inverse are each movies^2 floats (20,000 movies: 1.6 GB float32 per
# matrix, 3.2 GB for the float64 inverse) and the inversion is O(movies^3) (minutes at 20,000).
EASE_MAX_MOVIES = 20_000
# The fit's peak (Gram + inverse in float64, B in float32) plus the served vectors (the users' dense
# training rows and B's columns, float32) must stay under this: 4 GiB, half a shared 8 GiB budget.
EASE_MAX_BYTES = 4 << 30
LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
# Inverses up to this side run on one BLAS thread: a 943^2 Cholesky inverse took 0.17 s on one
# thread and 5.9 s on two on the shared 2-core benchmark machine at load 10 (LU: 0.47 s / 1.57 s);
# 2048^3 is about a second of one core, where threads gain little and lose much when cores are busy.
ONE_THREAD_INVERSE = 2048
# The validation grid keeps the validation users' predicted ratings across its lam values up to this size.
RATED_CACHE_BYTES = 256 << 20


class EaseSizeError(ValueError):
    """The catalogue is too large for EASE's dense items x items matrices."""


def ease_bytes(n_users: int, n_movies: int) -> int:
    """Estimated peak bytes of fitting and serving EASE: 2 float64 + 2 float32 movies^2 matrices
    (Gram, inverse; B and its served transpose) and the users' dense float32 rows."""
    m, u = int(n_movies), int(n_users)
    return 2 * 8 * m * m + 2 * 4 * m * m + 4 * u * m


def size_problem(n_users: int, n_movies: int) -> str | None:
    """Why EASE cannot run at this size (one line naming the setting and the alternative), or None."""
    need = ease_bytes(n_users, n_movies)
    if int(n_movies) <= EASE_MAX_MOVIES and need <= EASE_MAX_BYTES:
        return None
    return (f"EASE: {n_movies:,} movies x {n_users:,} users need about {need / 2**30:.1f} GiB (items x items "
            f"matrices; limits EASE_MAX_MOVIES={EASE_MAX_MOVIES:,}, EASE_MAX_BYTES={EASE_MAX_BYTES / 2**30:.0f} GiB); "
            f"set \"ranking_model\": \"puresvd+rating\" in the train config (`posterec train --config FILE.json`)")


def check_size(n_users: int, n_movies: int) -> None:
    problem = size_problem(n_users, n_movies)
    if problem:
        raise EaseSizeError(problem)


def binary_rows(interactions: Interactions, user_ids: np.ndarray, movie_ids: np.ndarray):
    """The binary CSR (scipy, float32) users x movies of who rated what, over the given id universes."""
    from scipy import sparse

    from .ranking import _pair_rows

    u, m = _pair_rows(interactions, user_ids, movie_ids)
    x = sparse.csr_matrix((np.ones(len(u), np.float32), (u, m)), shape=(len(user_ids), len(movie_ids)))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def recency_weights(ages, scale: float, boost: float) -> np.ndarray:
    """float32 ``1 + boost * exp(-age / scale)`` of each age (0: a user's latest rating); ones when
    ``boost`` is 0. The one formula of a row's recency weights (training rows, added ratings, visitors)."""
    ages = np.asarray(ages, np.float64)
    if not boost:
        return np.ones(len(ages), np.float32)
    if not float(scale) > 0:
        raise ValueError(f"EASE: a recency scale must be > 0, got {scale}")
    return (1.0 + float(boost) * np.exp(-ages / float(scale))).astype(np.float32)


def row_weights(interactions: Interactions, scale: float, boost: float) -> np.ndarray:
    """float32 `recency_weights` of each rating in ``interactions`` (its order), ``age`` counted from
    the user's latest rating (`Interactions.ages`)."""
    if not boost:
        return np.ones(len(interactions.movie_ids), np.float32)
    return recency_weights(interactions.ages(), scale, boost)


def weighted_rows(interactions: Interactions, user_ids: np.ndarray, movie_ids: np.ndarray,
                  scale: float = 0.0, boost: float = 0.0):
    """`binary_rows` with each rated pair weighted by `row_weights` (a pair rated twice: its larger
    weight): the rows EASE scores."""
    if not boost:
        return binary_rows(interactions, user_ids, movie_ids)
    from scipy import sparse

    from .ranking import _pair_rows

    u, m = _pair_rows(interactions, user_ids, movie_ids)
    w = row_weights(interactions, scale, boost)
    key = u * len(movie_ids) + m
    order = np.lexsort((-w, key))                      # per pair, its largest weight first
    _, first = np.unique(key[order], return_index=True)
    keep = order[first]
    return sparse.csr_matrix((w[keep], (u[keep], m[keep])), shape=(len(user_ids), len(movie_ids)), dtype=np.float32)


def ease_weights(x, lam: float) -> np.ndarray:
    """``B`` (float32 movies x movies, zero diagonal) of the binary CSR ``x`` at ridge ``lam``.

    With fewer users than movies (ml-100k: 943 x 1,682) the inverse goes through the users x users
    matrix (Woodbury): ``lam P = I - X'(XX' + lam I)^-1 X``, one users^3 inversion and two sparse
    products instead of one movies^3 inversion; ``B = I - P / diag(P)`` does not depend on P's scale.
    Otherwise it is the closed form above. Both in float64, ``B`` returned as float32.
    """
    _check_lam(lam)
    if _users_route(x):
        kx = _woodbury_rows(x, lam)
        p = np.asarray(x.T @ kx)                 # X'(XX' + lam I)^-1 X, movies x movies
        del kx
        p *= -1.0
        p[np.diag_indices_from(p)] += 1.0        # lam * P
    else:
        p = (x.T @ x).toarray().astype(np.float64)
        p[np.diag_indices_from(p)] += float(lam)
        p = _spd_inverse(p)
    p /= -np.diag(p)           # column j divided by -P_jj
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)


def _check_lam(lam: float) -> None:
    if not float(lam) > 0:
        raise ValueError(f"EASE: lam must be > 0, got {lam}")


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive definite float64 ``a`` by Cholesky (LAPACK potrf +
    potri: half the work of a general inverse); a general inverse if ``a`` is not numerically
    positive definite."""
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1 if len(a) <= ONE_THREAD_INVERSE else None, user_api="blas"):
        c, info = lapack.dpotrf(a, lower=0, clean=0, overwrite_a=0)
        if info == 0:
            inv, info = lapack.dpotri(c, lower=0, overwrite_c=1)
        if info != 0:
            return np.linalg.inv(a)
    upper = np.triu(inv)
    upper += np.triu(inv, 1).T
    return upper


def _users_route(x) -> bool:
    """Invert users x users (Woodbury) rather than movies x movies: the smaller of the two."""
    return x.shape[0] < x.shape[1]


def _woodbury_rows(x, lam: float) -> np.ndarray:
    """``(XX' + lam I)^-1 X`` (float64 users x movies) of the binary CSR ``x``. It is ``X P`` for
    ``P = (X'X + lam I)^-1``: the users' own rows times P, without the movies x movies matrix."""
    k = (x @ x.T).toarray().astype(np.float64)
    k[np.diag_indices_from(k)] += float(lam)
    k = _spd_inverse(k)
    return np.ascontiguousarray(np.asarray(x.T.astype(np.float64) @ k).T)


def fitted_scores(x, lam: float, rows=None, others=()):
    """A function of a row slice giving ``x[rows] @ B`` (float32) for B = `ease_weights` ``(x, lam)``:
    the fitted users' own EASE scores, as the validation grid needs them. Through the users route
    this is ``X - (XP) / diag(P)`` with ``XP = (XX' + lam I)^-1 X`` (`_woodbury_rows`), which needs
    no movies x movies matrix; otherwise B itself. ``rows`` (int positions) picks the scored users.

    ``others``: more sparse matrices shaped like ``x[rows]`` (the same users' recency weights); the
    function's second argument ``k`` then gives ``others[k][rows] @ B`` instead (default None:
    ``x``'s scores). On the users route ``R B = R - R P / diag(P)`` with
    ``R P = (R - (R X') (XX' + lam I)^-1 X) / lam``."""
    _check_lam(lam)
    picked = np.arange(x.shape[0]) if rows is None else np.asarray(rows, np.int64)
    fitted = x[picked]
    if not _users_route(x):
        b = ease_weights(x, lam)
        mats = [fitted, *others]
        return lambda r, k=None: np.asarray(mats[0 if k is None else k + 1][r] @ b, np.float32)
    kx = _woodbury_rows(x, lam)
    diag = (1.0 - np.asarray(x.multiply(kx).sum(axis=0)).ravel()) / float(lam)   # diag(P)
    # (R X') is nearly dense (users who share movies): a dense product, not a sparse one (40x slower)
    others_p = [(np.asarray(o.toarray(), np.float64) - (o @ x.T).toarray().astype(np.float64) @ kx) / float(lam) / diag
                for o in others]
    kx = kx[picked] / diag

    def score(r, k=None):
        if k is None:
            return (fitted[r].toarray() - kx[r]).astype(np.float32)
        return (others[k][r].toarray() - others_p[k][r]).astype(np.float32)
    return score


@dataclass(eq=False)
class EASE:
    """``score(u, i) = x_u . B[:, i]``; ``lam`` picked on the validation slice among ``lambdas``."""

    lambdas: tuple[float, ...] = LAMBDAS
    n: int = 10
    lam: float = 0.0
    user_ids: np.ndarray | None = None
    movie_ids: np.ndarray | None = None
    weights: np.ndarray | None = None       # B, float32 (movies, movies)
    rows: object = None                     # scipy CSR (users, movies): the training rows scored
    validation: dict = field(default_factory=dict)
    fit_seconds: float = 0.0                # the final fit alone (the grid not counted)
    # (scale, boost) recency settings the grid tries beside "off" (`row_weights`); the chosen one
    recency: tuple[tuple[float, float], ...] = ()
    recency_scale: float = 0.0
    recency_boost: float = 0.0
    relevance: str = "rated"   # what a validation hit is (`text_model.ranking.relevance_threshold`)

    name = "ease"

    def fit(self, rating: RatingVectors, train: Interactions, validation: Interactions | None = None) -> "EASE":
        """Over ``rating``'s user and movie ids: ``lam`` picked on ``validation``, then refit on both."""
        self.fit_pairs(train, rating.user_ids, rating.movie_ids, validation, rating)
        return self

    def fit_pairs(self, train: Interactions, user_ids=None, movie_ids=None, validation: Interactions | None = None,
                  rating: RatingVectors | None = None, rating_weights=(0.0,), liked_min: float | None = None) -> float:
        """Pick ``lam`` (and one of ``rating_weights`` for ``rating``'s predicted rating) on
        ``validation``, then refit on ``train`` plus ``validation``. Returns the chosen rating weight."""
        if not self.lambdas or min(float(v) for v in self.lambdas) <= 0:
            raise ValueError(f"EASE: lambdas must be values > 0, got {list(self.lambdas)}")
        self.user_ids = np.asarray(train.user_ids if user_ids is None else user_ids, np.int64)
        self.movie_ids = np.asarray(np.unique(train.movie_ids) if movie_ids is None else movie_ids, np.int64)
        check_size(len(self.user_ids), len(self.movie_ids))
        fit_x = binary_rows(train, self.user_ids, self.movie_ids)
        recency = self.recency if train.times is not None else ()
        choice = {"lam": float(self.lambdas[-1]), "scale": 0.0, "boost": 0.0, "w": float(rating_weights[0])}
        results = {}
        grid = len(self.lambdas) > 1 or len(rating_weights) > 1 or bool(recency)
        if validation is not None and len(validation.movie_ids) and grid:
            if liked_min is None:
                from .ranking import relevance_threshold

                lo, hi = rating.rating_range if rating is not None else \
                    (float(np.min(validation.ratings)), float(np.max(validation.ratings)))
                liked_min = relevance_threshold(self.relevance, lo, hi)
            results = _grid(fit_x, self.lambdas, rating_weights, self.user_ids, self.movie_ids, validation,
                            rating, self.n, liked_min, train, recency)
            best = -1.0
            for key, value in results.items():  # ties go to the later setting (larger lam; recency off)
                if value >= best:
                    best, choice = value, {**choice, **{p.split("=")[0]: float(p.split("=")[1]) for p in key.split(",")}}
        self.lam = float(choice["lam"])
        self.recency_scale, self.recency_boost = float(choice["scale"]), float(choice["boost"])
        every = train if validation is None or not len(validation.movie_ids) else _union(train, validation)
        x = binary_rows(every, self.user_ids, self.movie_ids)
        self.rows = weighted_rows(every, self.user_ids, self.movie_ids, self.recency_scale, self.recency_boost) \
            if self.recency_boost and every.times is not None else x
        t0 = time.perf_counter()
        self.weights = ease_weights(x, self.lam)
        self.fit_seconds = time.perf_counter() - t0
        self.validation = {"lam": self.lam, f"hit_rate_at_{self.n}": results}
        return float(choice["w"])

    def vectors(self) -> tuple[Vectors, Vectors]:
        """(users' dense training rows, B's columns): their dot is the EASE score."""
        return Vectors(self.user_ids, self.rows.toarray()), Vectors(self.movie_ids, self.weights.T)

    def ranking_vectors(self):
        from .ranking import RankingVectors

        users, movies = self.vectors()
        return RankingVectors(self.name, self.params, users, movies)

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        return self.ranking_vectors().recommend(user_id, n, exclude)

    @property
    def params(self) -> dict:
        return {"lam": float(self.lam), "recency_scale": float(self.recency_scale),
                "recency_boost": float(self.recency_boost), "fit_seconds": round(float(self.fit_seconds), 3),
                "validation": self.validation}

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"user_ids": self.user_ids, "movie_ids": self.movie_ids, "ease_weights": self.weights,
               "row_indptr": self.rows.indptr.astype(np.int64), "row_indices": self.rows.indices.astype(np.int32)}
        if self.recency_boost:  # the rows' recency weights (binary rows need none)
            out["row_data"] = np.asarray(self.rows.data, np.float32)
        return out

    def save(self, writer) -> None:
        from .ranking import ARTIFACT

        writer.write_arrays(ARTIFACT, name=json_array(self.name), params=json_array(self.params), **self.to_arrays())

    @classmethod
    def from_arrays(cls, a: dict, params: dict) -> "EASE":
        from scipy import sparse

        ui, mi = np.asarray(a["user_ids"], np.int64), np.asarray(a["movie_ids"], np.int64)
        b = np.asarray(a["ease_weights"], np.float32)
        indptr, indices = np.asarray(a["row_indptr"], np.int64), np.asarray(a["row_indices"], np.int64)
        if b.shape != (len(mi), len(mi)):
            raise ValueError(f"EASE weights {b.shape} do not fit {len(mi)} movies")
        if len(indptr) != len(ui) + 1 or indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0) \
                or (len(indices) and (indices.min() < 0 or indices.max() >= len(mi))):
            raise ValueError(f"EASE training rows do not fit {len(ui)} users and {len(mi)} movies")
        data = np.asarray(a["row_data"], np.float32) if "row_data" in a else np.ones(len(indices), np.float32)
        if len(data) != len(indices) or not np.all(np.isfinite(data)):
            raise ValueError(f"EASE row weights: {len(data)} values (finite?) for {len(indices)} rated pairs")
        rows = sparse.csr_matrix((data, indices, indptr), shape=(len(ui), len(mi)))
        return cls(lam=float(params.get("lam", 0.0)), user_ids=ui, movie_ids=mi, weights=b, rows=rows,
                   validation=params.get("validation") or {}, fit_seconds=float(params.get("fit_seconds", 0.0)),
                   recency_scale=float(params.get("recency_scale", 0.0)),
                   recency_boost=float(params.get("recency_boost", 0.0)))

    @classmethod
    def load(cls, version) -> "EASE":
        from .ranking import ARTIFACT, read_saved

        name, params, arrays = read_saved(version)
        try:
            return cls.from_arrays(arrays, params)
        except (ValueError, KeyError, TypeError) as exc:
            raise version.invalid(SCHEMA[ARTIFACT], f"not a valid EASE model ({exc})") from None


@dataclass(eq=False)
class EaseBlend:
    """``ease(u, i) + rating_weight * predicted_rating(u, i)``, named ``ease+rating``; ``lam`` and
    ``rating_weight`` picked together on the validation slice (`EASE.fit`)."""

    lambdas: tuple[float, ...] = LAMBDAS
    rating_weights: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    n: int = 10
    implicit: EASE | None = None
    rating: RatingVectors | None = None
    rating_weight: float = 0.0
    recency: tuple[tuple[float, float], ...] = ()   # (scale, boost) settings the grid tries (`EASE`)
    relevance: str = "rated"

    name = "ease+rating"

    def fit(self, rating: RatingVectors, train: Interactions, validation: Interactions | None = None) -> "EaseBlend":
        if not self.rating_weights:
            raise ValueError("EaseBlend: needs at least one rating weight")
        self.rating = rating
        self.implicit = EASE(tuple(self.lambdas), self.n, recency=tuple(self.recency), relevance=self.relevance)
        self.rating_weight = self.implicit.fit_pairs(train, rating.user_ids, rating.movie_ids, validation, rating,
                                               tuple(float(w) for w in self.rating_weights))
        return self

    @property
    def params(self) -> dict:
        p = self.implicit.params if self.implicit is not None else {}
        return {**p, "rating_weight": float(self.rating_weight)}

    def ranking_vectors(self):
        from .ranking import RankingVectors

        su, sm = self.rating.scoring_users, self.rating.scoring_movies
        eu, em = self.implicit.vectors()
        if not (np.array_equal(eu.ids, su.ids) and np.array_equal(em.ids, sm.ids)):
            raise ValueError("EaseBlend: the EASE model and the rating model know different ids")
        return RankingVectors(self.name, self.params, Vectors(su.ids, np.hstack([self.rating_weight * su.values, eu.values])),
                              Vectors(sm.ids, np.hstack([sm.values, em.values])))

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        return self.ranking_vectors().recommend(user_id, n, exclude)

    def save(self, writer) -> None:
        from .ranking import ARTIFACT

        writer.write_arrays(ARTIFACT, name=json_array(self.name), params=json_array(self.params),
                            **self.implicit.to_arrays())

    @classmethod
    def load(cls, version, rating: RatingVectors) -> "EaseBlend":
        from .ranking import ARTIFACT, read_saved

        name, params, arrays = read_saved(version)
        try:
            implicit = EASE.from_arrays(arrays, params)
            return cls(implicit=implicit, rating=rating, rating_weight=float(params["rating_weight"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise version.invalid(SCHEMA[ARTIFACT], f"not a valid {cls.name} model ({exc})") from None


def rows_with_ratings(arrays: dict, params: dict, user_id: int, movie_ids) -> dict:
    """A saved EASE model's ``arrays`` with ``movie_ids`` (just rated by the known ``user_id``) in
    that user's training row, so that their EASE scores count them (`posterec.additions`). With
    recency weights the new ratings are the latest (ages 0, 1, ... by `Interactions.ages`' rule for
    equal times) and the user's older ones age by as many; without, the row stays binary."""
    ui, mi = np.asarray(arrays["user_ids"], np.int64), np.asarray(arrays["movie_ids"], np.int64)
    indptr, indices = np.asarray(arrays["row_indptr"], np.int64), np.asarray(arrays["row_indices"], np.int64)
    data = np.asarray(arrays["row_data"], np.float32) if "row_data" in arrays else None
    u = int(np.searchsorted(ui, int(user_id)))
    if u >= len(ui) or ui[u] != int(user_id):
        raise ValueError(f"EASE: user {user_id} has no training row")
    new = np.asarray(movie_ids, np.int64)
    new = np.unique(new[np.isin(new, mi)])[::-1]          # larger ids first: ages 0, 1, ...
    lo, hi = indptr[u], indptr[u + 1]
    cols = np.concatenate([np.searchsorted(mi, new), indices[lo:hi]])
    cols, first = np.unique(cols, return_index=True)       # a movie rated again keeps its newest weight
    out = dict(arrays)
    out["row_indices"] = np.concatenate([indices[:lo], cols, indices[hi:]]).astype(np.int32)
    out["row_indptr"] = np.concatenate([indptr[: u + 1], indptr[u + 1:] + len(cols) - (hi - lo)]).astype(np.int64)
    if data is not None:
        scale, boost = float(params.get("recency_scale", 0.0)), float(params.get("recency_boost", 0.0))
        # each older rating ages by len(new): its recency part (weight - 1) shrinks by exp(-len(new) / scale)
        older = 1.0 + (data[lo:hi] - 1.0) * (np.exp(-len(new) / scale) if boost and scale > 0 else 1.0)
        weights = np.concatenate([recency_weights(np.arange(len(new)), scale, boost), older])[first]
        out["row_data"] = np.concatenate([data[:lo], weights, data[hi:]]).astype(np.float32)
    return out


def _union(a: Interactions, b: Interactions) -> Interactions:
    ua = np.repeat(a.user_ids, a.user_counts())
    ub = np.repeat(b.user_ids, b.user_counts())
    times = None if a.times is None or b.times is None else np.concatenate([a.times, b.times])
    return Interactions.from_pairs(np.concatenate([ua, ub]), np.concatenate([a.movie_ids, b.movie_ids]),
                                   np.concatenate([a.ratings, b.ratings]), times)


def _grid(fit_x, lambdas, rating_weights, user_ids, movie_ids, validation: Interactions,
          rating: RatingVectors | None, n: int, liked_min: float | None, train: Interactions | None = None,
          recency: tuple = ()) -> dict:
    """Validation hit rate at ``n`` of every (lam, recency (scale, boost), rating weight): a hit is a
    validation movie rated at least ``liked_min`` (None: the top quarter of the scale) in the top ``n``, fitted
    movies excluded. ``recency`` settings need ``train`` (the fitted pairs, with times); "off" (boost
    0) is always tried, last for each lam so that it wins ties."""
    from catalog import top_n

    from .ranking import _pair_rows

    if rating is not None:
        lo, hi = rating.rating_range
    else:
        lo, hi = float(np.min(validation.ratings)), float(np.max(validation.ratings))
    threshold = lo + 0.75 * (hi - lo) if liked_min is None else float(liked_min)
    val_users = np.intersect1d(validation.user_ids, user_ids)
    users = np.searchsorted(user_ids, val_users)
    n_movies = len(movie_ids)
    vu, vm = _pair_rows(validation, user_ids, movie_ids)
    liked = validation.ratings >= threshold
    pos = np.searchsorted(val_users, user_ids[vu[liked]])
    relevant = pair_matrix(pos, vm[liked], (len(users), n_movies))
    fitted = fit_x[users]
    weights = tuple(float(w) for w in rating_weights) if rating is not None else (0.0,)
    if any(weights):
        su, sm = rating.scoring_users.values, rating.scoring_movies.values.T.copy()
        urows = rating.user_rows(val_users)
    # the validation users' recency parts exp(-age / scale), one matrix per scale
    settings = [(float(sc), float(b)) for sc, b in recency if float(b)] + [(0.0, 0.0)]
    scales = sorted({sc for sc, b in settings if b})
    extra = [(weighted_rows(train, user_ids, movie_ids, sc, 1.0) - fit_x)[users] for sc in scales]
    # the predicted ratings do not depend on lam: kept across the lam grid when they fit in memory
    keep = any(weights) and len(users) * n_movies * 4 <= RATED_CACHE_BYTES
    cached: dict[int, np.ndarray] = {}

    def rated_rows(rows: slice):
        if not any(weights):
            return None
        if rows.start in cached:
            return cached[rows.start]
        out = su[urows[rows]] @ sm
        if keep:
            cached[rows.start] = out
        return out

    hits = {(lam, sc, b, w): 0 for lam in lambdas for sc, b in settings for w in weights}
    for lam in lambdas:
        score = fitted_scores(fit_x, lam, users, extra)
        for rows in chunks(len(users), n_movies):
            base = score(rows)
            parts = {sc: score(rows, k) for k, sc in enumerate(scales)}
            ex, rel = fitted[rows].toarray() > 0, dense_rows(relevant, rows)
            rated = rated_rows(rows)
            for sc, b in settings:
                implicit = base + b * parts[sc] if b else base
                for w in weights:
                    cols, _ = top_n(implicit + w * rated if w else implicit, n, ex)
                    got = np.take_along_axis(rel, np.maximum(cols, 0), axis=1) & (cols >= 0)
                    hits[(lam, sc, b, w)] += int(got.any(axis=1).sum())
    def name(lam, sc, b, w):  # the recency part only where recency was tried
        return f"lam={lam:g},scale={sc:g},boost={b:g},w={w:g}" if len(settings) > 1 else f"lam={lam:g},w={w:g}"
    return {name(*key): hits[key] / max(len(users), 1) for key in hits}
