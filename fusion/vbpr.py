"""`VisualBPR`: a learned visual-collaborative ranking model (numpy; VBPR, He & McAuley 2016).

    score(u, i) = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta . f_i

``f_i`` is a movie's feature row (`movie_features`: the poster embedding reduced by PCA, a
"has poster" flag, genres and release-year bins), ``E`` a learned projection into a small visual
factor that the user's visual taste ``theta_u`` meets, ``beta`` a learned feature bias. It is
trained with BPR (a rated movie above a random one) on who rated what, mini-batch Adam, and the
best epoch is kept by hit rate on a validation slice of the training data.

- A movie with no poster has zeros in the poster block and its flag off: it is scored through its
  genres and year (and its ratings).
- A movie with no ratings has ``b_i = 0`` and ``gamma_i = 0``: it is scored through ``E f_i`` and
  ``beta . f_i``. ``item_dropout`` trains for that case: each step drops the collaborative part
  (``b_i``, ``gamma_i``) of a share of the sampled movies, so the feature path learns to carry a
  movie on its own (DropoutNet-style), which also helps movies with few ratings.

The score is one inner product (`VisualBPR.vectors`: users ``[gamma_u, theta_u, 1]``, movies
``[gamma_i, E f_i, b_i + beta . f_i]``), so any top-K index serves it. Never imports TensorFlow.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from catalog import Hits, Interactions, Vectors, hits_from, top_n

from .cold_start import genre_vectors, year_vectors

NAME = "vbpr"


@dataclass(frozen=True)
class VBPRConfig:
    """Settings of `VisualBPR`; ``visual_factors`` 0 and no features give plain BPR-MF."""

    factors: int = 64            # gamma: collaborative factors
    visual_factors: int = 16     # theta / E: visual factors
    epochs: int = 40
    batch_size: int = 1024
    learning_rate: float = 0.005
    l2: float = 1e-4             # on the rows of a batch (gamma, theta, b)
    feature_l2: float = 1e-4     # on E and beta
    item_dropout: float = 0.2    # share of sampled movies scored without their collaborative part
    eval_every: int = 5          # epochs between validation checks (the best is kept)
    min_rating: float = 0.0      # positives: movies rated at least this (0: every rated movie)
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("factors", "epochs", "batch_size", "eval_every"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"VBPRConfig: {key} must be >= 1, got {getattr(self, key)}")
        if int(self.visual_factors) < 0:
            raise ValueError(f"VBPRConfig: visual_factors must be >= 0, got {self.visual_factors}")
        if not 0.0 <= float(self.item_dropout) < 1.0:
            raise ValueError(f"VBPRConfig: item_dropout must be in [0, 1), got {self.item_dropout}")
        if float(self.learning_rate) <= 0 or float(self.l2) < 0 or float(self.feature_l2) < 0:
            raise ValueError("VBPRConfig: learning_rate must be > 0, l2 and feature_l2 >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> VBPRConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vbpr settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def with_overrides(self, **changes) -> VBPRConfig:
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self


# -- features -------------------------------------------------------------------------------------
def movie_features(movie_ids, visual: Vectors | None = None, genres: Mapping[int, Sequence[str]] | None = None,
                   years: Mapping[int, float | None] | None = None, poster_dim: int = 64,
                   fit_ids=None, whiten: bool = False) -> Vectors:
    """One feature row per movie of ``movie_ids``: [poster PCA | has poster | genres | year bins].

    The poster block is the embedding centred and projected on its first ``poster_dim`` principal
    axes (computed on ``fit_ids``' posters, default all), scaled to unit mean row norm; a movie
    without a poster gets zeros there and its flag 0. ``whiten``: each axis is first divided by its
    standard deviation on the fit posters, so every axis has the same spread (the leading ones no
    longer dominate). Blocks not given are left out.
    """
    ids = np.unique(np.asarray(movie_ids, np.int64))
    blocks = []
    if visual is not None and len(visual) and poster_dim > 0:
        has = np.isin(ids, visual.ids)
        base = visual.values.astype(np.float64)
        fit = base if fit_ids is None else base[np.isin(visual.ids, np.asarray(fit_ids, np.int64))]
        if len(fit) < 2:
            fit = base
        mean = fit.mean(axis=0)
        _, sv, vt = np.linalg.svd(fit - mean, full_matrices=False)
        proj = vt[: min(poster_dim, vt.shape[0])].T
        if whiten:
            proj = proj / np.maximum(sv[: proj.shape[1]] / np.sqrt(max(len(fit) - 1, 1)), 1e-12)
        low = (base - mean) @ proj
        low /= max(float(np.linalg.norm((fit - mean) @ proj, axis=1).mean()), 1e-12)
        block = np.zeros((len(ids), proj.shape[1] + 1), np.float32)
        rows = visual.rows_of(ids[has])
        block[has, :-1] = low[rows]
        block[has, -1] = 1.0
        blocks.append(block)
    if genres is not None:
        g = genre_vectors({int(m): tuple(genres.get(int(m), ())) for m in ids},
                          sorted({x for gs in genres.values() for x in gs}))
        blocks.append(g.values)
    if years is not None:
        blocks.append(year_vectors({int(m): years.get(int(m)) for m in ids}).values)
    values = np.hstack(blocks) if blocks else np.zeros((len(ids), 0), np.float32)
    return Vectors(ids, values.astype(np.float32))


# -- the model ------------------------------------------------------------------------------------
@dataclass(eq=False)
class VisualBPR:
    config: VBPRConfig = field(default_factory=VBPRConfig)
    user_ids: np.ndarray | None = None
    movie_ids: np.ndarray | None = None       # every movie with features or ratings, sorted
    features: np.ndarray | None = None        # float32 (movies, d)
    user_factors: np.ndarray | None = None    # gamma_u (users, k)
    movie_factors: np.ndarray | None = None   # gamma_i (movies, k); 0 for movies without ratings
    user_visual: np.ndarray | None = None     # theta_u (users, kv)
    projection: np.ndarray | None = None      # E (d, kv)
    movie_bias: np.ndarray | None = None      # b_i (movies,)
    feature_bias: np.ndarray | None = None    # beta (d,)
    history: dict = field(default_factory=dict)
    fit_seconds: float = 0.0

    name = NAME

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, train: Interactions, features: Vectors | None = None,
            validation: Interactions | None = None, progress=None) -> VisualBPR:
        """Fit on who rated what in ``train``; movies of ``features`` without ratings are scored too.

        ``validation`` (pairs held out of the training data) picks the best epoch by HR@10.
        """
        c = self.config
        start = time.perf_counter()
        rng = np.random.default_rng(c.seed)
        self.user_ids = np.asarray(train.user_ids, np.int64)
        rated = np.unique(train.movie_ids)
        feat = features if features is not None else Vectors(rated, np.zeros((len(rated), 0), np.float32))
        self.movie_ids = np.union1d(rated, feat.ids)
        d = feat.dim
        f = np.zeros((len(self.movie_ids), d), np.float32)
        f[np.searchsorted(self.movie_ids, feat.ids)] = feat.values
        self.features = f
        nu, ni, k, kv = len(self.user_ids), len(self.movie_ids), int(c.factors), int(c.visual_factors if d else 0)
        positive = train.ratings >= float(c.min_rating)
        users = np.repeat(np.arange(nu), train.user_counts())[positive]
        items = np.searchsorted(self.movie_ids, train.movie_ids)[positive]
        if not len(users):
            raise ValueError(f"VisualBPR.fit: no training interactions rated {c.min_rating} or more")
        p = {"gu": rng.normal(0, 0.1, (nu, k)), "gi": rng.normal(0, 0.1, (ni, k)),
             "tu": rng.normal(0, 0.1, (nu, kv)), "E": rng.normal(0, 0.1, (d, kv)) / np.sqrt(max(d, 1)),
             "b": np.zeros(ni), "beta": np.zeros(d)}
        p["gi"][~np.isin(self.movie_ids, rated)] = 0.0
        adam = _Adam(p, c.learning_rate)
        val = _Validation(validation, self.user_ids, self.movie_ids, train, c.min_rating) \
            if validation is not None else None
        best, best_params, best_epoch, curve = -1.0, None, None, []
        n_batches = int(np.ceil(len(users) / c.batch_size))
        for epoch in range(1, c.epochs + 1):
            order = rng.permutation(len(users))
            loss = 0.0
            for b in range(n_batches):
                sel = order[b * c.batch_size:(b + 1) * c.batch_size]
                loss += self._step(p, adam, users[sel], items[sel], rng.integers(0, len(rated), len(sel)), rated, rng)
            entry = {"epoch": epoch, "loss": loss / len(users)}
            if val is not None and (epoch % c.eval_every == 0 or epoch == c.epochs):
                self._set(p)
                entry["val_hr@10"] = hr = val.hit_rate(self)
                if hr > best:
                    best, best_epoch, best_params = hr, epoch, {key: v.copy() for key, v in p.items()}
            curve.append(entry)
            if progress is not None:
                progress(entry)
        if best_params is not None:
            p = best_params
        self._set(p)
        self.history = {"curve": curve, "best_val_hr@10": best if val is not None else None,
                        "best_epoch": best_epoch}
        self.fit_seconds = time.perf_counter() - start
        return self

    def _step(self, p, adam, u, i, j_rated, rated, rng) -> float:
        c = self.config
        j = np.searchsorted(self.movie_ids, rated[j_rated])
        f_i, f_j = self.features[i], self.features[j]
        keep_i = (rng.random(len(i)) >= c.item_dropout).astype(np.float64)
        keep_j = (rng.random(len(j)) >= c.item_dropout).astype(np.float64)
        gu, gi, gj, tu = p["gu"][u], p["gi"][i], p["gi"][j], p["tu"][u]
        df = (f_i - f_j).astype(np.float64)
        vis = df @ p["E"]                                    # E (f_i - f_j), (B, kv)
        x = (keep_i * p["b"][i] - keep_j * p["b"][j]) + np.einsum("bk,bk->b", gu, keep_i[:, None] * gi
                                                                - keep_j[:, None] * gj) \
            + np.einsum("bk,bk->b", tu, vis) + df @ p["beta"]
        g = -_sigmoid(-x)                                    # d(-log sigmoid x)/dx
        loss = float(np.logaddexp(0.0, -x).sum())
        grads = {key: np.zeros_like(v) for key, v in p.items()}
        np.add.at(grads["gu"], u, g[:, None] * (keep_i[:, None] * gi - keep_j[:, None] * gj) + c.l2 * gu)
        np.add.at(grads["gi"], i, (g * keep_i)[:, None] * gu + c.l2 * gi)
        np.add.at(grads["gi"], j, -(g * keep_j)[:, None] * gu + c.l2 * gj)
        np.add.at(grads["tu"], u, g[:, None] * vis + c.l2 * tu)
        np.add.at(grads["b"], i, g * keep_i + c.l2 * p["b"][i])
        np.add.at(grads["b"], j, -g * keep_j + c.l2 * p["b"][j])
        if p["E"].size:
            grads["E"] = df.T @ (g[:, None] * tu) + c.feature_l2 * p["E"]
        if p["beta"].size:
            grads["beta"] = df.T @ g + c.feature_l2 * p["beta"]
        adam.update(p, grads, len(u))
        return loss

    def _set(self, p) -> None:
        self.user_factors, self.movie_factors = p["gu"].astype(np.float32), p["gi"].astype(np.float32)
        self.user_visual, self.projection = p["tu"].astype(np.float32), p["E"].astype(np.float32)
        self.movie_bias, self.feature_bias = p["b"].astype(np.float32), p["beta"].astype(np.float32)

    def add_users(self, user_ids) -> None:
        """Know ``user_ids`` too; a user without ratings gets zero factors (ranked by movie bias)."""
        new = np.setdiff1d(np.asarray(user_ids, np.int64), self.user_ids)
        if not len(new):
            return
        ids = np.concatenate([self.user_ids, new])
        order = np.argsort(ids)
        pad = lambda a: np.vstack([a, np.zeros((len(new), a.shape[1]), a.dtype)])[order]  # noqa: E731
        self.user_ids, self.user_factors, self.user_visual = ids[order], pad(self.user_factors), pad(self.user_visual)

    # -- scoring ---------------------------------------------------------------------------
    def vectors(self) -> tuple[Vectors, Vectors]:
        """(users, movies) whose inner product is the score."""
        f = self.features.astype(np.float32)
        movies = np.hstack([self.movie_factors, f @ self.projection,
                            (self.movie_bias + f @ self.feature_bias)[:, None]])
        users = np.hstack([self.user_factors, self.user_visual, np.ones((len(self.user_ids), 1), np.float32)])
        return Vectors(self.user_ids, users), Vectors(self.movie_ids, movies)

    def scores(self, user_ids) -> np.ndarray:
        """float32 (len(user_ids), movies): the score of every movie of ``movie_ids`` per user."""
        users, movies = self.vectors()
        return users.values[users.rows_of(np.asarray(user_ids, np.int64))] @ movies.values.T

    def recommend(self, user_id: int, n: int = 10, exclude=()) -> Hits:
        scores = self.scores([user_id])[0]
        mask = np.isin(self.movie_ids, np.asarray(exclude, np.int64)) if len(exclude) else None
        cols, vals = top_n(scores, n, mask)
        return hits_from(self.movie_ids, cols, vals)

    # -- saving (named arrays, no pickles) ---------------------------------------------------
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        names = ("user_ids", "movie_ids", "features", "user_factors", "movie_factors", "user_visual",
                 "projection", "movie_bias", "feature_bias")
        return {prefix + n: getattr(self, n) for n in names}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], config: Mapping | None = None,
                    prefix: str = "") -> VisualBPR:
        a = {n[len(prefix):]: v for n, v in arrays.items() if n.startswith(prefix)}
        m = cls(VBPRConfig.from_dict(config or {}))
        try:
            m.user_ids, m.movie_ids = np.asarray(a["user_ids"], np.int64), np.asarray(a["movie_ids"], np.int64)
            for n in ("features", "user_factors", "movie_factors", "user_visual", "projection", "movie_bias",
                      "feature_bias"):
                setattr(m, n, np.asarray(a[n], np.float32))
        except KeyError as exc:
            raise ValueError(f"vbpr arrays lack {exc}") from None
        nu, ni = len(m.user_ids), len(m.movie_ids)
        ok = (m.features.shape[0] == ni and m.user_factors.shape[0] == nu and m.movie_factors.shape[0] == ni
              and m.user_factors.shape[1] == m.movie_factors.shape[1] and m.user_visual.shape[0] == nu
              and m.projection.shape == (m.features.shape[1], m.user_visual.shape[1])
              and m.movie_bias.shape == (ni,) and m.feature_bias.shape == (m.features.shape[1],))
        if not ok:
            raise ValueError(f"vbpr arrays do not fit together ({nu} users, {ni} movies)")
        return m


# -- helpers --------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Adam:
    def __init__(self, params: dict, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def update(self, params: dict, grads: dict, batch: int) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, g in grads.items():
            if not g.size:
                continue
            g = g / batch
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            params[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


class _Validation:
    """HR@10 of validation pairs, rated training movies excluded (for picking the best epoch)."""

    def __init__(self, validation: Interactions, user_ids, movie_ids, train: Interactions, min_rating: float = 0.0,
                 n: int = 10):
        liked = {int(u): m[r >= min_rating] for u in validation.user_ids for m, r in [validation.ratings_of(u)]}
        self.users = np.array([u for u in validation.user_ids if u in set(user_ids.tolist()) and len(liked[int(u)])],
                              np.int64)
        self.n = n
        self.relevant = [np.isin(movie_ids, liked[int(u)]) for u in self.users]
        self.seen = [np.isin(movie_ids, train.of(u)) for u in self.users]

    def hit_rate(self, model: VisualBPR) -> float:
        if not len(self.users):
            return 0.0
        hits = 0
        for lo in range(0, len(self.users), 256):
            s = model.scores(self.users[lo:lo + 256])
            ex = np.vstack(self.seen[lo:lo + 256])
            cols, _ = top_n(s, self.n, ex)
            rel = np.vstack(self.relevant[lo:lo + 256])
            got = np.take_along_axis(rel, np.maximum(cols, 0), axis=1) & (cols >= 0)
            hits += int(got.any(axis=1).sum())
        return hits / len(self.users)


# -- fitting as a stage does --------------------------------------------------------------------
def validation_split(train: Interactions, min_ratings: int = 5, seed: int = 0) -> tuple[Interactions, Interactions]:
    """(fit part, validation part): one random rated movie of every user with ``min_ratings`` or more."""
    rng = np.random.default_rng(seed)
    counts = train.user_counts()
    users = np.repeat(train.user_ids, counts)
    pick = np.zeros(len(users), bool)
    for k in np.flatnonzero(counts >= min_ratings):
        pick[train.indptr[k] + int(rng.integers(counts[k]))] = True
    return (Interactions.from_pairs(users[~pick], train.movie_ids[~pick], train.ratings[~pick]),
            Interactions.from_pairs(users[pick], train.movie_ids[pick], train.ratings[pick]))


def fit_vbpr(train: Interactions, features: Vectors | None, config: VBPRConfig | None = None,
             user_ids=None, progress=None) -> VisualBPR:
    """Pick the epoch count on a validation slice of ``train`` (`validation_split`), then refit on
    all of ``train`` for that many epochs. ``user_ids``: users to know besides those who rated
    (they get zero factors: the movie biases rank for them)."""
    config = config or VBPRConfig()
    fit_part, val = validation_split(train, seed=config.seed)
    trial = VisualBPR(config).fit(fit_part, features, val if len(val) else None, progress)
    epochs = int(trial.history.get("best_epoch") or config.epochs)
    model = VisualBPR(config.with_overrides(epochs=epochs)).fit(train, features, None, progress)
    model.history.update(validation={"best_epoch": epochs, "hr@10": trial.history.get("best_val_hr@10"),
                                     "users": len(val)})
    if user_ids is not None:
        model.add_users(user_ids)
    return model
