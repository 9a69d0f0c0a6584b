"""Fitting the network: a tf.data pipeline, the Keras progress bar, then the ranking model.

``fit_text_model(dataset, train, config)`` returns a `text_model.model.TextModel`.
"""
from __future__ import annotations

import os
import time

import numpy as np

from catalog import Interactions

from . import memory
from .config import TextModelConfig
from .distribute import Distribution
from .model import TextModel
from .ranking import ranking_fallback, ranking_for, uses_times
from .vocabulary import Vocabulary


def fit_text_model(dataset, train, config: TextModelConfig, seed: int = 0, verbose: int = 1,
                   run_eagerly: bool = False, memory_budget: float | None = None,
                   distribution: Distribution | None = None) -> TextModel:
    """Fit on the ``train`` ratings of ``dataset``; a slice of them is held out for validation.

    Refuses first (`text_model.memory.MemoryBudgetError`, one line) a run whose estimated peak
    memory exceeds ``memory_budget`` bytes (default: what the machine has available).
    ``run_eagerly`` skips graph tracing (seconds): only worth it for tiny data such as tests.
    ``distribution`` (`text_model.distribute`, default: one process) builds the model and its
    optimizer under its strategy's scope, shards the input by worker and backs the training
    state up; the ranking model is fit by its chief only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if len(train) == 0:
        raise ValueError("no training ratings")
    vocab = Vocabulary.build(dataset, config.min_word_count, max(config.cnn_windows))
    memory.check(len(train), len(vocab.user_ids), len(vocab.movie_ids), config, budget=memory_budget)
    # rows as int32: 4 bytes a rating per column (the network's inputs are int32 anyway)
    users = vocab.user_rows(train["user_id"].to_numpy(np.int64)).astype(np.int32)
    movies = vocab.movie_rows(train["movie_id"].to_numpy(np.int64)).astype(np.int32)
    y = train["rating"].to_numpy(np.float32)
    is_val = validation_rows(train, config, seed)
    fit = ~is_val
    keras.utils.set_random_seed(seed)
    global_mean = float(y[fit].mean())
    steps = int(np.ceil(fit.sum() / config.batch_size))
    lr = config.learning_rate
    if config.lr_decay < 1.0:
        lr = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=steps, decay_rate=config.lr_decay,
                                                         staircase=True)
    from .layers import SparseAdam

    adam = SparseAdam if config.embedding_updates == "sparse" else keras.optimizers.Adam
    dist = distribution or Distribution("default")
    if config.ema_epochs and dist.strategy is not None:  # the fitted model's config says what was done
        import sys
        from dataclasses import replace

        print(f"config {config.name!r}: weight averaging (ema_epochs {config.ema_epochs}) does not run under a "
              f"distribution strategy; training without it (ema_epochs 0)", file=sys.stderr, flush=True)
        config = replace(config, ema_epochs=0.0)
    averaging = {"use_ema": True, "ema_momentum": ema_momentum(config, steps)} if config.ema_epochs else {}
    with dist.scope():  # the variables: the network's, the optimizer's and the metric's
        model = _build(config, vocab, dataset, global_mean, (users[fit], movies[fit]))
        model.compile(optimizer=adam(lr, **averaging), loss=dist.loss,
                      metrics=[keras.metrics.RootMeanSquaredError(name="rmse")], run_eagerly=run_eagerly)
        # Adam's slots now, not inside the first traced step: creating variables there makes
        # tf.function trace the whole training step twice (seconds)
        model.optimizer.build(model.trainable_variables)
    dist.prepare(model)

    def pipeline(mask, shuffle):
        return dist.shard(_pipeline(tf, users[mask], movies[mask], y[mask], config.batch_size, seed,
                                    config.epochs if shuffle else None))

    timer = _EpochTimer()
    callbacks, val = [timer, *dist.callbacks()], None
    if is_val.any() and config.head == "dot" and dist.strategy is None:
        # from the exported vectors: each history pooled once per epoch, where `evaluate` pools
        # every batch's rows' whole histories (`_VectorValidation`); first, so the timer counts it
        callbacks.insert(0, _VectorValidation(users[is_val], movies[is_val], y[is_val], len(vocab.user_ids),
                                              len(vocab.movie_ids), config.vector_dim))
    elif is_val.any():
        val = pipeline(is_val, False)
    if averaging:  # first: every later callback (validation, early stopping) sees the averaged weights
        callbacks.insert(0, _AveragedWeights(model.optimizer))
    if is_val.any():
        if config.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_rmse", patience=config.early_stopping_patience,
                                                           restore_best_weights=True))
    start = time.perf_counter()
    hist = model.fit(pipeline(fit, True), validation_data=val, epochs=config.epochs, callbacks=callbacks,
                     steps_per_epoch=steps, verbose=verbose, shuffle=False)  # the tf.data pipeline shuffles
    seconds = time.perf_counter() - start
    counts = np.bincount(movies[fit], minlength=len(vocab.movie_ids)).astype(np.int64)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    history["epoch_seconds"] = [round(t, 3) for t in timer.seconds]
    history["step_seconds_median"] = [round(t, 5) for t in timer.step_medians]
    tm = TextModel(config, vocab, model, (float(y.min()), float(y.max())), counts, history=history,
                   fit_seconds=seconds)
    # the ranking model, fit on the same training pairs and chosen on the same validation slice
    # ids of each part only (not of every rating, then masked: 16 bytes a rating less at the peak)
    # (and the ratings' times where the ranking model reads a user's order: EASE's recency weights)
    times = _times(train, config, len(vocab.user_ids), len(vocab.movie_ids))
    train_pairs = _part(vocab.user_ids[users[fit]], vocab.movie_ids[movies[fit]], y, times, fit)
    val_pairs = _part(vocab.user_ids[users[is_val]], vocab.movie_ids[movies[is_val]], y, times, is_val)
    if dist.is_chief:  # closed forms (EASE, PureSVD) in numpy, on one machine: not distributed
        fallback = ranking_fallback(config, len(vocab.user_ids), len(vocab.movie_ids))
        if fallback:
            import sys

            print(f"ranking: {fallback}; falling back to puresvd+rating", file=sys.stderr, flush=True)
        tm.ranking = ranking_for(config, seed, len(vocab.user_ids), len(vocab.movie_ids)).fit(
            tm.rating_vectors(), train_pairs, val_pairs)
    return tm


def validation_rows(train, config: TextModelConfig, seed: int = 0) -> np.ndarray:
    """Which training ratings (rows of the frame ``train``) form the validation slice, by the config's
    ``validation_slice``: a random ``validation_fraction`` (`validation_mask`), or each user's
    latest rating (`catalog.splits.latest_mask`; none without ``validation_fraction``)."""
    if config.validation_slice == "latest" and config.validation_fraction:
        if "timestamp" not in train:
            raise ValueError("validation_slice 'latest' needs the ratings' timestamps; use \"validation_slice\": \"random\"")
        from catalog.splits import latest_mask

        return latest_mask(train, seed)
    return validation_mask(len(train), config.validation_fraction, seed)


def ema_momentum(config: TextModelConfig, steps_per_epoch: int) -> float:
    """The per-step momentum of a moving average whose window is ``config.ema_epochs`` epochs."""
    return max(0.0, 1.0 - 1.0 / (float(config.ema_epochs) * max(1, int(steps_per_epoch))))


def validation_mask(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Which of ``n`` training ratings (in their order) form the validation slice: a seeded random
    ``fraction`` of them, the same for the rating model and the ranking model's grid."""
    is_val = np.zeros(int(n), dtype=bool)
    if fraction > 0:
        is_val[np.random.default_rng(seed).permutation(int(n))[: max(1, int(round(n * fraction)))]] = True
    return is_val


def ranking_pairs(train, config: TextModelConfig, seed: int = 0):
    """(fitted pairs, validation pairs or None) of a training frame, as `fit_text_model` splits them
    for its ranking model (for benchmarks that refit ranking models beside a trained one)."""
    u, m = train["user_id"].to_numpy(np.int64), train["movie_id"].to_numpy(np.int64)
    y = train["rating"].to_numpy(np.float32)
    is_val = validation_rows(train, config, seed)
    fit = ~is_val
    t = _times(train, config, len(np.unique(u)), len(np.unique(m)))
    return _part(u[fit], m[fit], y, t, fit), _part(u[is_val], m[is_val], y, t, is_val)


def _part(user_ids, movie_ids, ratings, times, mask) -> Interactions | None:
    """The `Interactions` of the ``mask``ed ratings (ids already masked; ``times`` optional), None if empty."""
    if not mask.any():
        return None
    return Interactions.from_pairs(user_ids, movie_ids, ratings[mask], None if times is None else times[mask])


def _times(train, config: TextModelConfig, n_users: int, n_movies: int) -> np.ndarray | None:
    """The training ratings' times (int64) when the ranking model reads them and the frame has them."""
    if "timestamp" not in train or not uses_times(config, n_users, n_movies):
        return None
    return train["timestamp"].to_numpy(np.int64)


def _pipeline(tf, users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, batch_size: int, seed: int,
              epochs: int | None):
    """Batches of ``({"user", "movie"}, rating)`` gathered from the compact arrays, in graph.

    ``epochs`` set: a fresh permutation of the rows each epoch (stateless, seeded by the epoch),
    then ``steps`` slices of it, one gather per batch; the dataset holds ``epochs`` epochs and is
    iterated once by ``fit(steps_per_epoch=...)``. A ``shuffle(n)`` buffer instead holds one
    tensor per rating: ~190 bytes a rating and ~10 s per million ratings to fill, every epoch
    (benchmarks/scale.py). ``epochs`` None: the rows in order, once (validation).
    """
    n = len(ratings)
    u, m, r = tf.constant(users, tf.int32), tf.constant(movies, tf.int32), tf.constant(ratings, tf.float32)
    steps = -(-n // batch_size)

    def batches(rows):
        return tf.data.Dataset.range(steps).map(lambda i: rows[i * batch_size:tf.minimum((i + 1) * batch_size, n)])

    if epochs is None:
        ds = batches(tf.range(n, dtype=tf.int32))
    else:
        def epoch(e):
            key = tf.stack([tf.constant(seed, tf.int64), e])
            return batches(tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=key))

        ds = tf.data.Dataset.range(epochs).flat_map(epoch)

    @tf.autograph.experimental.do_not_convert
    def gather(rows):
        return {"user": tf.gather(u, rows), "movie": tf.gather(m, rows)}, tf.gather(r, rows)

    return ds.map(gather).prefetch(tf.data.AUTOTUNE)


def _build(config, vocab, dataset, global_mean, interactions):
    from .network import build_model

    return build_model(config, vocab.sizes, vocab.max_genres, vocab.title_len,
                       vocab.user_table(dataset.users), vocab.movie_table(dataset.movies), global_mean,
                       interactions)


def _VectorValidation(users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, n_users: int, n_movies: int,
                      dim: int):
    """The epoch's ``val_rmse`` (unclipped, as Keras' metric sees the network's output) from the
    towers' exported vectors and the biases of a ``dot`` head: O(ratings) per epoch.

    Keras' own validation pass (`evaluate`) pools, for every batch, the whole histories of its
    distinct users and movies, and a popular movie is in nearly every batch: at ml-25m's shape a
    batch of 1,024 validation ratings pools ~6M neighbours, ~7.6 billion for the 5% slice.
    """
    import keras

    from .model import dot_biases, tower_values
    from .rating_vectors import dot_scores

    class VectorValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            u, m = tower_values(self.model, n_users, n_movies, dim)
            bu, bm, mean = dot_biases(self.model, n_users, n_movies)
            pred = dot_scores(u, m, bu, bm, mean, users, movies).astype(np.float64)
            if logs is not None:
                logs["val_rmse"] = float(np.sqrt(np.mean(np.square(pred - ratings))))

    return VectorValidation()


def _AveragedWeights(optimizer):
    """At each epoch's end the model's trainable weights become the optimizer's moving average of
    them (``use_ema``), so the epoch's validation, early stopping's best weights and, after the last
    epoch, the fitted model are the averaged ones; the next epoch starts from the raw weights again.

    Keras' own `SwapEMAWeights(swap_on_epoch=True)` swaps the two sets in place: when early stopping
    ends the fit before the last planned epoch, `fit`'s closing `finalize_variable_values` then writes
    the *raw* weights (held in the average's slot) over the model. Here the average is copied, both
    slots hold it at the end, and that closing step is a no-op.
    """
    import keras

    class AveragedWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._raw = None

        def on_epoch_begin(self, epoch, logs=None):
            if self._raw is not None:
                for var, value in zip(optimizer._trainable_variables, self._raw):
                    var.assign(value)
                self._raw = None

        def on_epoch_end(self, epoch, logs=None):
            if hasattr(optimizer, "sync_average"):  # `SparseAdam`'s lazily averaged rows, up to date
                optimizer.sync_average()
            pairs = list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average))
            self._raw = [np.array(var.numpy()) for var, _ in pairs]
            for var, average in pairs:
                var.assign(average)

    return AveragedWeights()


def _EpochTimer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds of each epoch (its validation pass included) and its median training step."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.step_medians: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._steps = time.perf_counter(), []

        def on_train_batch_begin(self, batch, logs=None):
            self._step = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._steps.append(time.perf_counter() - self._step)

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.step_medians.append(float(np.median(self._steps)) if self._steps else 0.0)

    return EpochTimer()
