"""Fitting the network (tf.data pipeline, Keras progress bar) and the fitted `TextModel`.

``fit_text_model(dataset, train, config)`` returns a `TextModel` that predicts ratings, exports
user/movie vectors (plain, rating-scoring and ranking-scoring ones) and saves/loads itself.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog import ArtifactError, Vectors
from catalog.arrays import save_npz

from .config import TextModelConfig
from .metrics import top_n
from .vocabulary import Vocabulary

MODEL_FILE = "text_model.keras"
STATE_FILE = "text_model.json"
VOCAB_FILE = "vocab.json"
FACTORS_FILE = "ranking_factors.npz"


@dataclass
class TextModel:
    config: TextModelConfig
    vocab: Vocabulary
    model: object                      # keras.Model
    rating_range: tuple[float, float]
    movie_counts: np.ndarray           # training ratings per movie row (int64)
    rating_weight: float = 1.0         # lam in: ranking score = puresvd + lam * predicted rating
    ranking_factors: tuple | None = None  # PureSVD (user rows x k, movie rows x k), or None
    history: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    ranking_validation: dict = field(default_factory=dict)

    # -- predictions ---------------------------------------------------------------------
    def predict_rows(self, user_rows: np.ndarray, movie_rows: np.ndarray, chunk: int = 65536) -> np.ndarray:
        out = np.empty(len(user_rows), dtype=np.float32)
        for s in range(0, len(user_rows), chunk):
            batch = {"user": np.asarray(user_rows[s:s + chunk], np.int32),
                     "movie": np.asarray(movie_rows[s:s + chunk], np.int32)}
            out[s:s + chunk] = np.asarray(self.model(batch, training=False)).reshape(-1)
        if self.config.clip_predictions:
            np.clip(out, *self.rating_range, out=out)
        return out

    def predict(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted ratings; UnknownUserError / UnknownMovieError for ids the model lacks."""
        return self.predict_rows(self.vocab.user_rows(user_ids), self.vocab.movie_rows(movie_ids))

    # -- vectors -------------------------------------------------------------------------
    def _tower_values(self) -> tuple[np.ndarray, np.ndarray]:
        from .network import towers

        user_tower, movie_tower = towers(self.model)
        users = np.asarray(user_tower(np.arange(len(self.vocab.user_ids), dtype=np.int32), training=False))
        movies = np.asarray(movie_tower(np.arange(len(self.vocab.movie_ids), dtype=np.int32), training=False))
        return users.astype(np.float32), movies.astype(np.float32)

    def vectors(self) -> tuple[Vectors, Vectors]:
        """(user vectors, movie vectors) from the two towers, keyed by id."""
        u, m = self._tower_values()
        return Vectors(self.vocab.user_ids, u), Vectors(self.vocab.movie_ids, m)

    def scoring_vectors(self) -> tuple[Vectors, Vectors]:
        """Augmented vectors with ``dot(user, movie) == predicted rating`` (before clipping).

        Exact for the ``dot`` head: user = [u, b_u, 1, mean], movie = [v, 1, b_m, 1]. For the
        ``fc`` head no inner product reproduces the head, so these are the plain tower vectors.
        """
        u, m = self._tower_values()
        if self.config.head != "dot":
            return Vectors(self.vocab.user_ids, u), Vectors(self.vocab.movie_ids, m)
        layer = self.model.get_layer("rating")
        nu, nm = len(u), len(m)
        if layer.use_biases:
            bu = np.asarray(layer.user_bias.embeddings).reshape(-1, 1)
            bm = np.asarray(layer.movie_bias.embeddings).reshape(-1, 1)
            mean = float(np.asarray(layer.global_mean))
        else:
            bu, bm, mean = np.zeros((nu, 1)), np.zeros((nm, 1)), 0.0
        users = np.hstack([u, bu, np.ones((nu, 1)), np.full((nu, 1), mean)])
        movies = np.hstack([m, np.ones((nm, 1)), bm, np.ones((nm, 1))])
        return Vectors(self.vocab.user_ids, users), Vectors(self.vocab.movie_ids, movies)

    def ranking_vectors(self) -> tuple[Vectors, Vectors]:
        """Vectors for recommend: ``dot == puresvd score + rating_weight * predicted rating``.

        Without PureSVD factors (the reference config) they are the scoring vectors.
        """
        u, m = self.scoring_vectors()
        if self.ranking_factors is None:
            return u, m
        fu, fm = self.ranking_factors
        return (Vectors(u.ids, np.hstack([self.rating_weight * u.values, fu])),
                Vectors(m.ids, np.hstack([m.values, fm])))

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{MODEL_FILE}.partial.keras"
        self.model.save(tmp)
        os.replace(tmp, folder / MODEL_FILE)
        self.vocab.save(folder / VOCAB_FILE)
        state = {"config": self.config.to_dict(), "rating_range": list(self.rating_range),
                 "movie_counts": self.movie_counts.tolist(), "rating_weight": self.rating_weight,
                 "history": self.history, "fit_seconds": self.fit_seconds,
                 "ranking_validation": self.ranking_validation}
        tmp = folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, folder / STATE_FILE)
        if self.ranking_factors is not None:
            save_npz(folder / FACTORS_FILE, users=self.ranking_factors[0], movies=self.ranking_factors[1])

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "TextModel":
        import keras

        from . import layers  # noqa: F401  registers the custom layers

        folder = Path(folder)
        path = folder / MODEL_FILE
        if not path.exists():
            raise ArtifactError(f"{path}: missing; train a model with `posterec train`")
        try:
            state = json.loads((folder / STATE_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{folder / STATE_FILE}: missing or unreadable ({exc})") from None
        model = keras.saving.load_model(path, compile=False)
        factors = None
        if (folder / FACTORS_FILE).exists():
            with np.load(folder / FACTORS_FILE, allow_pickle=False) as d:
                factors = (d["users"], d["movies"])
        return cls(TextModelConfig.from_dict(state["config"]), Vocabulary.load(folder / VOCAB_FILE), model,
                   tuple(state["rating_range"]), np.asarray(state["movie_counts"], dtype=np.int64),
                   float(state["rating_weight"]), factors, state.get("history", {}),
                   float(state.get("fit_seconds", 0.0)), state.get("ranking_validation", {}))


def fit_text_model(dataset, train, config: TextModelConfig, seed: int = 0, verbose: int = 1,
                   run_eagerly: bool = False) -> TextModel:
    """Fit on the ``train`` ratings of ``dataset``; a slice of them is held out for validation.

    ``run_eagerly`` skips graph tracing (seconds): only worth it for tiny data such as tests.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if len(train) == 0:
        raise ValueError("no training ratings")
    vocab = Vocabulary.build(dataset, config.min_word_count, max(config.cnn_windows))
    users = vocab.user_rows(train["user_id"].to_numpy(np.int64))
    movies = vocab.movie_rows(train["movie_id"].to_numpy(np.int64))
    y = train["rating"].to_numpy(np.float32)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), dtype=bool)
    if config.validation_fraction > 0:
        is_val[rng.permutation(len(y))[: max(1, int(round(len(y) * config.validation_fraction)))]] = True
    fit = ~is_val
    keras.utils.set_random_seed(seed)
    global_mean = float(y[fit].mean())
    model = _build(config, vocab, dataset, global_mean, (users[fit], movies[fit]))
    steps = int(np.ceil(fit.sum() / config.batch_size))
    lr = config.learning_rate
    if config.lr_decay < 1.0:
        lr = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=steps, decay_rate=config.lr_decay,
                                                         staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")], run_eagerly=run_eagerly)
    # Adam's slots now, not inside the first traced step: creating variables there makes
    # tf.function trace the whole training step twice (seconds)
    model.optimizer.build(model.trainable_variables)

    def pipeline(mask, shuffle):
        # shuffle and batch row positions, then gather each batch at once: several times
        # cheaper per epoch than shuffling and batching (user, movie, rating) elements one by one
        u, m, r = (tf.constant(a[mask]) for a in (users, movies, y))
        ds = tf.data.Dataset.range(int(mask.sum()))
        if shuffle:
            ds = ds.shuffle(int(mask.sum()), seed=seed, reshuffle_each_iteration=True)

        @tf.autograph.experimental.do_not_convert
        def gather(rows):
            return {"user": tf.gather(u, rows), "movie": tf.gather(m, rows)}, tf.gather(r, rows)

        return ds.batch(config.batch_size).map(gather).prefetch(tf.data.AUTOTUNE)

    callbacks, val = [], None
    if is_val.any():
        val = pipeline(is_val, False)
        if config.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_rmse", patience=config.early_stopping_patience,
                                                           restore_best_weights=True))
    start = time.perf_counter()
    hist = model.fit(pipeline(fit, True), validation_data=val, epochs=config.epochs, callbacks=callbacks,
                     verbose=verbose, shuffle=False)  # the tf.data pipeline shuffles
    seconds = time.perf_counter() - start
    counts = np.bincount(movies[fit], minlength=len(vocab.movie_ids)).astype(np.int64)
    tm = TextModel(config, vocab, model, (float(y.min()), float(y.max())), counts,
                   history={k: [float(v) for v in vals] for k, vals in hist.history.items()},
                   fit_seconds=seconds)
    _fit_ranking(tm, users, movies, y, fit, is_val, seed)
    return tm


def _build(config, vocab, dataset, global_mean, interactions):
    from .network import build_model

    return build_model(config, vocab.sizes, vocab.max_genres, vocab.title_len,
                       vocab.user_table(dataset.users), vocab.movie_table(dataset.movies), global_mean,
                       interactions)


def _fit_ranking(tm: TextModel, users, movies, ratings, fit, is_val, seed: int, n: int = 10) -> None:
    """PureSVD factors of the fitted ratings, and the (k, lam) that best find liked validation movies.

    Only training data is used: for every user with validation ratings, movies in the fitted
    part are excluded and a hit is any validation movie the user rated in the top quarter of the
    scale (>= 4 of 5) appearing in the top ``n``: a recommender should find what users watch *and* like.
    """
    from .implicit import pure_svd

    c = tm.config
    if not c.ranking_factors:
        tm.rating_weight, tm.ranking_factors = float(c.rating_weights[0]), None
        return
    fu, fm = pure_svd(users[fit], movies[fit], len(tm.vocab.user_ids), len(tm.vocab.movie_ids),
                      max(c.ranking_factors), seed)
    choice = (max(c.ranking_factors), float(c.rating_weights[0]))
    results: dict[str, float] = {}
    if is_val.any() and (len(c.ranking_factors) > 1 or len(c.rating_weights) > 1):
        val_users = np.unique(users[is_val])
        row_of = np.full(len(tm.vocab.user_ids), -1, dtype=np.int64)
        row_of[val_users] = np.arange(len(val_users))
        exclude = np.zeros((len(val_users), len(tm.vocab.movie_ids)), dtype=bool)
        keep = fit & (row_of[users] >= 0)
        exclude[row_of[users[keep]], movies[keep]] = True
        relevant = np.zeros_like(exclude)
        liked = is_val & (ratings >= tm.rating_range[0] + 0.75 * (tm.rating_range[1] - tm.rating_range[0]))
        relevant[row_of[users[liked]], movies[liked]] = True
        su, sm = tm.scoring_vectors()
        rating = su.values[val_users] @ sm.values.T
        for k in c.ranking_factors:
            implicit = fu[val_users, :k] @ fm[:, :k].T
            for lam in c.rating_weights:
                top = top_n(implicit + lam * rating, exclude, n)
                results[f"k={k},lam={lam}"] = float(np.take_along_axis(relevant, top, axis=1).any(axis=1).mean())
                best = max(results.values())
                if results[f"k={k},lam={lam}"] == best:
                    choice = (int(k), float(lam))
    k, tm.rating_weight = choice
    tm.ranking_factors = (fu[:, :k].copy(), fm[:, :k].copy())
    tm.ranking_validation = {"k": k, "rating_weight": tm.rating_weight, f"hit_rate_at_{n}": results}
