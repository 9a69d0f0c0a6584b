"""The ranking part of ``recommend``: its own models, saved as the ``ranking`` artifact (numpy only).

Rating error alone ranks obscure movies with a few high ratings first, and loses to "most
popular" at finding what a user watches next. So recommend ranks with one of:

- `RatingOnly` (name ``rating``): the predicted rating alone (the ``reference`` config);
- `PureSVD` (name ``puresvd``): a truncated SVD of the binary who-rated-what matrix
  (Cremonesi et al., 2010): it models *which* movies a user rates;
- `Blend` (name ``puresvd+rating``): ``puresvd(u, i) + rating_weight * predicted_rating(u, i)``,
  a composed step over a `PureSVD` and the rating model, whose ``k`` and ``rating_weight`` are
  picked on the validation slice of the training data;
- `text_model.ease.EASE` / `EaseBlend` (names ``ease``, ``ease+rating``): EASE's closed-form
  item-item weights (Steck 2019), alone or blended with the predicted rating the same way; the
  config's ``ranking_model`` picks one (`ranking_for`), ``ease+rating`` by default.

Each is an inner product of vectors, so `RankingVectors` (``ranking_users``, ``ranking_movies``,
dot == ranking score) serve brute-force and FAISS search alike; they are computed at load time
from the factors and the rating model, never stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog import SCHEMA, Hits, Interactions, Vectors, hits_from, top_n
from catalog.version import from_json_array, json_array

from .config import RELEVANCE
from .rating_vectors import RatingVectors, _rows
from .scoring import chunks, dense_rows, pair_matrix

ARTIFACT = "ranking"
# where TextModelConfig.ranking_model's default comes from (recorded in the train stage's manifest entry)
RANKING_CHOSEN_BY = ("benchmarks/ranking_quality.py on ml-100k, leave-last-out and random 80/20 "
                     "(benchmarks/README.md, Ranking quality): the best HR@10/NDCG@10 of the ranking models")


@dataclass(frozen=True, eq=False)
class RankingVectors:
    """Vectors whose inner product is a ranking model's score, keyed by user and movie id."""

    name: str
    params: dict
    ranking_users: Vectors
    ranking_movies: Vectors

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        """The ``n`` best-scored movies for ``user_id``, never one in ``exclude`` (brute force)."""
        return _recommend(self.ranking_users, self.ranking_movies, user_id, n, exclude)

    @classmethod
    def load(cls, version, rating: RatingVectors) -> "RankingVectors":
        """The ranking vectors of a `catalog.ModelVersion` whose rating model is ``rating``."""
        return load_ranking(version, rating).ranking_vectors()


def _recommend(users: Vectors, movies: Vectors, user_id: int, n: int, exclude=()) -> Hits:
    row = users.rows_of([user_id])[0] if user_id in users else None
    if row is None:
        from catalog import UnknownUserError

        raise UnknownUserError(f"user {int(user_id)} is not known to the ranking model ({len(users)} users)")
    scores = movies.values @ users.values[row]
    mask = np.isin(movies.ids, np.asarray(exclude, np.int64)) if len(exclude) else None
    cols, vals = top_n(scores, n, mask)
    return hits_from(movies.ids, cols, vals)


# -- PureSVD -----------------------------------------------------------------------------

def pure_svd(user_rows: np.ndarray, movie_rows: np.ndarray, n_users: int, n_movies: int, k: int,
             seed: int = 0, power_iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(user factors U*S (n_users, k), movie factors V (n_movies, k)) of the binary matrix.

    Randomised SVD (Halko et al.) with sparse products: memory (users + movies) x k, not their product.
    """
    from scipy import sparse

    k = int(min(k, n_users, n_movies))
    r = sparse.csr_matrix((np.ones(len(user_rows), np.float32), (user_rows, movie_rows)), shape=(n_users, n_movies))
    r.data[:] = 1.0  # duplicates collapse to 1
    rng = np.random.default_rng(seed)
    q = r @ rng.standard_normal((n_movies, k + 10)).astype(np.float32)
    for _ in range(power_iterations):
        q, _ = np.linalg.qr(q)
        q, _ = np.linalg.qr(r.T @ q)
        q = r @ q
    q, _ = np.linalg.qr(q)
    b = (r.T @ q).T                                   # (k + 10, n_movies)
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    u = (q @ ub[:, :k]) * s[:k]
    return u.astype(np.float32), vt[:k].T.astype(np.float32)


def _pair_rows(interactions: Interactions, user_ids: np.ndarray, movie_ids: np.ndarray):
    """(user rows, movie rows) of every rated pair, against the sorted id universes."""
    from catalog import UnknownMovieError, UnknownUserError

    users = np.repeat(interactions.user_ids, interactions.user_counts())
    u = _rows(user_ids, users, lambda i: UnknownUserError(f"user {i} has ratings but is not among the user ids"))
    m = _rows(movie_ids, interactions.movie_ids,
              lambda i: UnknownMovieError(f"movie {i} has ratings but is not among the movie ids"))
    return u.astype(np.int64), m.astype(np.int64)


@dataclass(eq=False)
class PureSVD:
    """Rank-``k`` SVD of who rated what; ``score(u, i) = dot(user_factors[u], movie_factors[i])``."""

    k: int = 64
    seed: int = 0
    power_iterations: int = 4
    user_ids: np.ndarray | None = None
    movie_ids: np.ndarray | None = None
    user_factors: np.ndarray | None = None   # float32 (users, k): U * S
    movie_factors: np.ndarray | None = None  # float32 (movies, k): V

    name = "puresvd"

    def fit(self, train: Interactions, user_ids=None, movie_ids=None) -> "PureSVD":
        """Fit on who rated what in ``train``; ``user_ids``/``movie_ids`` (sorted) default to those rated."""
        if int(self.k) < 1:
            raise ValueError(f"PureSVD: k must be >= 1, got {self.k}")
        self.user_ids = np.asarray(train.user_ids if user_ids is None else user_ids, np.int64)
        self.movie_ids = np.asarray(np.unique(train.movie_ids) if movie_ids is None else movie_ids, np.int64)
        u, m = _pair_rows(train, self.user_ids, self.movie_ids)
        self.user_factors, self.movie_factors = pure_svd(u, m, len(self.user_ids), len(self.movie_ids), self.k,
                                                         self.seed, self.power_iterations)
        return self

    def truncated(self, k: int) -> "PureSVD":
        """The first ``k`` factors (the model a rank-``k`` fit would give, up to the randomised error)."""
        k = int(min(k, self.user_factors.shape[1]))
        return PureSVD(k, self.seed, self.power_iterations, self.user_ids, self.movie_ids,
                       self.user_factors[:, :k].copy(), self.movie_factors[:, :k].copy())

    def vectors(self) -> tuple[Vectors, Vectors]:
        return Vectors(self.user_ids, self.user_factors), Vectors(self.movie_ids, self.movie_factors)

    def ranking_vectors(self) -> RankingVectors:
        users, movies = self.vectors()
        return RankingVectors(self.name, self.params, users, movies)

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        users, movies = self.vectors()
        return _recommend(users, movies, user_id, n, exclude)

    @property
    def params(self) -> dict:
        return {"k": int(self.user_factors.shape[1]) if self.user_factors is not None else int(self.k),
                "seed": int(self.seed), "power_iterations": int(self.power_iterations)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "movie_ids": self.movie_ids, "user_factors": self.user_factors,
                "movie_factors": self.movie_factors}

    def save(self, writer) -> None:
        writer.write_arrays(ARTIFACT, name=json_array(self.name), params=json_array(self.params),
                            **self.to_arrays())

    @classmethod
    def from_arrays(cls, a: dict, params: dict) -> "PureSVD":
        uf, mf = np.asarray(a["user_factors"], np.float32), np.asarray(a["movie_factors"], np.float32)
        ui, mi = np.asarray(a["user_ids"], np.int64), np.asarray(a["movie_ids"], np.int64)
        if uf.ndim != 2 or mf.ndim != 2 or uf.shape[1] != mf.shape[1] or len(uf) != len(ui) or len(mf) != len(mi):
            raise ValueError(f"factors {uf.shape} and {mf.shape} do not fit {len(ui)} users and {len(mi)} movies")
        return cls(uf.shape[1], int(params.get("seed", 0)), int(params.get("power_iterations", 4)), ui, mi, uf, mf)

    @classmethod
    def load(cls, version) -> "PureSVD":
        name, params, arrays = read_saved(version)
        if "user_factors" not in arrays:
            raise version.invalid(SCHEMA[ARTIFACT], f"ranking model {name!r} has no PureSVD factors")
        try:
            return cls.from_arrays(arrays, params)
        except (ValueError, KeyError) as exc:
            raise version.invalid(SCHEMA[ARTIFACT], str(exc)) from None


# -- the rating model alone, and the blend --------------------------------------------------

@dataclass(eq=False)
class RatingOnly:
    """Rank by the predicted rating alone (scoring vectors of the rating model)."""

    rating: RatingVectors | None = None
    name = "rating"

    def fit(self, rating: RatingVectors, train: Interactions | None = None,
            validation: Interactions | None = None) -> "RatingOnly":
        self.rating = rating
        return self

    params = property(lambda self: {})

    def ranking_vectors(self) -> RankingVectors:
        return RankingVectors(self.name, {}, self.rating.scoring_users, self.rating.scoring_movies)

    def save(self, writer) -> None:
        writer.write_arrays(ARTIFACT, name=json_array(self.name), params=json_array({}))


@dataclass(eq=False)
class Blend:
    """``puresvd(u, i) + rating_weight * predicted_rating(u, i)``, named ``puresvd+rating``.

    `fit` fits one PureSVD of rank ``max(ks)`` on the training pairs, then picks the ``k`` (a
    prefix of its factors) and the ``rating_weight`` whose top ``n`` finds the most validation
    movies of a user (``relevance`` "rated", the default: any movie they rated, the rule the
    benchmark and its peers use; "liked": only those rated in the top quarter of the scale). Users
    are scored in chunks, reduced to top-``n`` at once.
    """

    ks: tuple[int, ...] = (16, 32, 64)
    rating_weights: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    seed: int = 0
    n: int = 10
    implicit: PureSVD | None = None
    rating: RatingVectors | None = None
    rating_weight: float = 0.0
    validation: dict = field(default_factory=dict)
    relevance: str = "rated"   # what a validation hit is (`relevance_threshold`)

    name = "puresvd+rating"

    def fit(self, rating: RatingVectors, train: Interactions, validation: Interactions | None = None) -> "Blend":
        if not self.ks or not self.rating_weights:
            raise ValueError("Blend: needs at least one k and one rating weight")
        self.rating = rating
        full = PureSVD(max(self.ks), self.seed).fit(train, rating.user_ids, rating.movie_ids)
        choice = (max(self.ks), float(self.rating_weights[0]))
        results: dict[str, float] = {}
        if validation is not None and len(validation.movie_ids) and (len(self.ks) > 1 or len(self.rating_weights) > 1):
            results = self._grid(full, rating, train, validation)
            best = -1.0
            for key, value in results.items():  # ties go to the later (larger) setting, as they always have
                if value >= best:
                    best, choice = value, _parse(key)
        k, self.rating_weight = int(choice[0]), float(choice[1])
        self.implicit = full.truncated(k)
        k = int(self.implicit.user_factors.shape[1])  # at most the smaller side of the matrix
        self.validation = {"k": k, "rating_weight": self.rating_weight, f"hit_rate_at_{self.n}": results}
        return self

    def _grid(self, full: PureSVD, rating: RatingVectors, train: Interactions, validation: Interactions) -> dict:
        lo, hi = rating.rating_range
        val_users = grid_users(np.intersect1d(validation.user_ids, rating.user_ids), self.seed, GRID_USERS)
        n_movies = len(rating.movie_ids)
        users = rating.user_rows(val_users)
        # what each validation user rated in the fitted part (never recommended) and liked in validation
        tu, tm = _pair_rows(train, rating.user_ids, rating.movie_ids)
        keep = np.isin(tu, users)
        pos = np.searchsorted(users, tu[keep])  # users is sorted (val_users is)
        exclude = pair_matrix(pos, tm[keep], (len(users), n_movies))
        vu, vm = _pair_rows(validation, rating.user_ids, rating.movie_ids)
        # liked, by the grid's users only: above GRID_USERS the others are not scored
        liked = (validation.ratings >= relevance_threshold(self.relevance, lo, hi)) & np.isin(vu, users)
        relevant = pair_matrix(np.searchsorted(users, vu[liked]), vm[liked], (len(users), n_movies))
        su, sm = rating.scoring_users.values, rating.scoring_movies.values.T.copy()
        hits = {(k, w): 0 for k in self.ks for w in self.rating_weights}
        for rows in chunks(len(users), n_movies):
            rated = su[users[rows]] @ sm
            ex, rel = dense_rows(exclude, rows), dense_rows(relevant, rows)
            for k in self.ks:
                implicit = full.user_factors[users[rows], :k] @ full.movie_factors[:, :k].T
                for w in self.rating_weights:
                    cols, _ = top_n(implicit + w * rated, self.n, ex)
                    got = np.take_along_axis(rel, np.maximum(cols, 0), axis=1) & (cols >= 0)
                    hits[(k, w)] += int(got.any(axis=1).sum())
        return {f"k={k},lam={w}": hits[(k, w)] / max(len(users), 1) for (k, w) in hits}

    @property
    def params(self) -> dict:
        return {"k": int(self.implicit.user_factors.shape[1]) if self.implicit is not None else None,
                "rating_weight": float(self.rating_weight), "validation": self.validation}

    def ranking_vectors(self) -> RankingVectors:
        su, sm = self.rating.scoring_users, self.rating.scoring_movies
        fu, fm = self.implicit.vectors()
        if not (np.array_equal(fu.ids, su.ids) and np.array_equal(fm.ids, sm.ids)):
            raise ValueError("Blend: the PureSVD factors and the rating model know different ids")
        return RankingVectors(self.name, self.params,
                              Vectors(su.ids, np.hstack([self.rating_weight * su.values, fu.values])),
                              Vectors(sm.ids, np.hstack([sm.values, fm.values])))

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        return self.ranking_vectors().recommend(user_id, n, exclude)

    def save(self, writer) -> None:
        writer.write_arrays(ARTIFACT, name=json_array(self.name), params=json_array(self.params),
                            **self.implicit.to_arrays())

    @classmethod
    def load(cls, version, rating: RatingVectors) -> "Blend":
        name, params, arrays = read_saved(version)
        try:
            implicit = PureSVD.from_arrays(arrays, {})
            validation = params.get("validation") or {}
            return cls(implicit=implicit, rating=rating, rating_weight=float(params["rating_weight"]),
                       validation=validation)
        except (ValueError, KeyError, TypeError) as exc:
            raise version.invalid(SCHEMA[ARTIFACT], f"not a valid {cls.name} model ({exc})") from None


GRID_USERS = 10_000  # validation users the (k, rating_weight) grid scores at most (a seeded sample above)


def grid_users(user_ids: np.ndarray, seed: int = 0, limit: int = GRID_USERS) -> np.ndarray:
    """``user_ids`` (sorted), or a seeded sample of ``limit`` of them, sorted: the grid's cost is
    users x movies x settings (at ml-25m: 160k x 62k x 18 top-N), and the hit rate of 10,000
    users already tells the settings apart to about +-0.005."""
    if len(user_ids) <= limit:
        return user_ids
    return np.sort(np.random.default_rng(seed).choice(user_ids, int(limit), replace=False))


def _parse(key: str) -> tuple[int, float]:
    k, lam = (part.split("=")[1] for part in key.split(","))
    return int(k), float(lam)


def read_saved(version) -> tuple[str, dict, dict]:
    """(model name, params, the other named arrays) of a version's ranking artifact."""
    arrays = version.arrays(ARTIFACT)
    try:
        name, params = from_json_array(arrays.pop("name")), from_json_array(arrays.pop("params"))
    except (KeyError, ValueError) as exc:
        raise version.invalid(SCHEMA[ARTIFACT], f"has no ranking model name/params ({exc})") from None
    if not isinstance(params, dict):
        raise version.invalid(SCHEMA[ARTIFACT], "its params are not a JSON object")
    return str(name), params, arrays


def _ease(version, rating):
    from .ease import EASE

    return EASE.load(version)


def _ease_blend(version, rating):
    from .ease import EaseBlend

    return EaseBlend.load(version, rating)


# every ranking model a version can name, and how it loads: (version, rating vectors) -> model.
# `config.RANKING_MODELS` (what `train` fits) must be a subset (tests/test_text_model_ranking.py)
LOADERS = {
    RatingOnly.name: lambda version, rating: RatingOnly(rating),
    PureSVD.name: lambda version, rating: PureSVD.load(version),
    Blend.name: Blend.load,
    "ease": _ease,
    "ease+rating": _ease_blend,
}


def load_ranking(version, rating: RatingVectors):
    """The ranking model of a version, by its saved name (`LOADERS`).

    A version whose manifest lists no ranking artifact ranks by the predicted rating alone.
    """
    if not version.has(ARTIFACT):
        return RatingOnly(rating)
    name = str(from_json_array(version.arrays(ARTIFACT, ("name",))["name"]))
    if name not in LOADERS:
        raise version.invalid(SCHEMA[ARTIFACT], f"unknown ranking model {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](version, rating)


def ranking_for(config, seed: int = 0, n_users: int | None = None, n_movies: int | None = None):
    """The ranking model a `TextModelConfig` asks for (unfitted): its ``ranking_model``.

    EASE (``ease``, ``ease+rating``; `text_model.ease`) falls back to ``puresvd+rating`` when
    ``n_users`` x ``n_movies`` is too large for its items x items matrices (`ranking_fallback`).
    """
    name = getattr(config, "ranking_model", Blend.name)
    if not config.ranking_factors or name == RatingOnly.name:
        return RatingOnly()
    if name in ("ease", "ease+rating") and ranking_fallback(config, n_users, n_movies) is None:
        from .ease import EASE, EaseBlend

        lambdas = tuple(float(v) for v in config.ease_lambdas)
        recency, relevance = recency_settings(config), config.ranking_relevance
        if name == EASE.name:
            return EASE(lambdas, recency=recency, relevance=relevance)
        return EaseBlend(lambdas, tuple(float(w) for w in config.rating_weights), recency=recency,
                         relevance=relevance)
    return Blend(tuple(int(k) for k in config.ranking_factors), tuple(float(w) for w in config.rating_weights), seed,
                 relevance=config.ranking_relevance)


def relevance_threshold(relevance: str, lo: float, hi: float) -> float:
    """The lowest validation rating that counts as a hit: every rating ("rated"), or the top
    quarter of the scale ``lo``..``hi`` ("liked")."""
    if relevance not in RELEVANCE:
        raise ValueError(f"ranking relevance must be one of {', '.join(RELEVANCE)}, got {relevance!r}")
    return -np.inf if relevance == "rated" else lo + 0.75 * (hi - lo)


def recency_settings(config) -> tuple[tuple[float, float], ...]:
    """The (scale, boost) recency settings EASE's validation grid tries beside "off": only on the
    ``latest`` validation slice, the one that holds the order of a user's ratings out (a random
    slice measures it only weakly: on ml-100k 80/20 it picked settings that lowered test NDCG@10,
    benchmarks/README.md "Ranking quality")."""
    if getattr(config, "validation_slice", "random") != "latest":
        return ()
    return tuple((float(sc), float(b)) for sc in getattr(config, "ease_recency_scales", ())
                 for b in getattr(config, "ease_recency_boosts", ()) if float(b))


def uses_times(config, n_users: int | None = None, n_movies: int | None = None) -> bool:
    """Whether ``config``'s ranking model reads the order of a user's ratings (EASE's recency weights)."""
    return (getattr(config, "ranking_model", None) in ("ease", "ease+rating") and bool(config.ranking_factors)
            and bool(recency_settings(config)) and ranking_fallback(config, n_users, n_movies) is None)


def ranking_fallback(config, n_users: int | None, n_movies: int | None) -> str | None:
    """Why ``config``'s EASE ranking model falls back to ``puresvd+rating`` at this size, or None."""
    if getattr(config, "ranking_model", None) not in ("ease", "ease+rating") or n_movies is None:
        return None
    from .ease import size_problem

    return size_problem(int(n_users or 0), int(n_movies))


# -- a learned ranking model kept beside the base one -------------------------------------------
LEARNED = "learned."


def save_learned(writer, version, name: str | None, params: dict, arrays: dict) -> None:
    """Rewrite the ``ranking`` artifact of ``version`` into ``writer`` with a learned ranking model
    (e.g. ``vbpr``, fit by ``build-index``) beside the base model's arrays, which stay as they were:
    `load_ranking` still reads the base model; `read_learned` reads the learned one. ``name`` None
    removes the learned model."""
    base = {k: v for k, v in version.arrays(ARTIFACT).items()
            if not k.startswith(LEARNED) and k not in ("learned_name", "learned_params")}
    if name is None:
        writer.write_arrays(ARTIFACT, **base)
        return
    writer.write_arrays(ARTIFACT, **base, learned_name=json_array(name), learned_params=json_array(params),
                        **{LEARNED + k: v for k, v in arrays.items()})


def read_learned(version) -> tuple[str, dict, dict] | None:
    """(name, params, arrays) of the learned ranking model in a version's ``ranking`` artifact, or None."""
    if not version.has(ARTIFACT):
        return None
    arrays = version.arrays(ARTIFACT)
    if "learned_name" not in arrays:
        return None
    try:
        name, params = from_json_array(arrays["learned_name"]), from_json_array(arrays["learned_params"])
    except (KeyError, ValueError) as exc:
        raise version.invalid(SCHEMA[ARTIFACT], f"its learned ranking model has no valid name/params ({exc})") from None
    return str(name), params, {k[len(LEARNED):]: v for k, v in arrays.items() if k.startswith(LEARNED)}
