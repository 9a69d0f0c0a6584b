"""`TextModel`: the fitted network with its vocabulary, ranking model and persistence (imports Keras).

A model version holds it as three artifacts: ``keras_model`` (the network, for predict),
``text_model`` (`RatingVectors`: tower vectors, biases, vocabulary, config) and ``ranking``
(see `text_model.ranking`). The query path needs only the last two, and no TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog import SCHEMA, Vectors

from .config import TextModelConfig
from .rating_vectors import RatingVectors
from .vocabulary import Vocabulary

EXPORT_ROWS = 1024  # tower rows per call when exporting vectors: each pools its rows' whole histories
PREDICT_PAIRS = 8192  # (user, movie) pairs per network call in predict


def tower_values(model, n_users: int, n_movies: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Every user's and every movie's tower output, `EXPORT_ROWS` rows per call (inference: each
    row pools its whole history once, so the whole export costs the ratings, not more)."""
    from .network import towers

    user_tower, movie_tower = towers(model)

    def run(tower, n):
        parts = [np.asarray(tower(np.arange(s, min(s + EXPORT_ROWS, n), dtype=np.int32), training=False))
                 for s in range(0, n, EXPORT_ROWS)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)

    return run(user_tower, n_users), run(movie_tower, n_movies)


def dot_biases(model, n_users: int, n_movies: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(user biases, movie biases, global mean) of a ``dot``-head network (zeros without biases)."""
    layer = model.get_layer("rating")
    if not layer.use_biases:
        return np.zeros(n_users, np.float32), np.zeros(n_movies, np.float32), 0.0
    return (np.asarray(layer.user_bias.embeddings, np.float32).reshape(-1),
            np.asarray(layer.movie_bias.embeddings, np.float32).reshape(-1), float(np.asarray(layer.global_mean)))


@dataclass(eq=False)
class TextModel:
    config: TextModelConfig
    vocab: Vocabulary
    model: object                      # keras.Model
    rating_range: tuple[float, float]
    movie_counts: np.ndarray           # training ratings per movie row (int64)
    ranking: object = None             # text_model.ranking.RatingOnly | PureSVD | Blend
    history: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    _rating: RatingVectors | None = field(default=None, repr=False)

    # -- predictions ---------------------------------------------------------------------
    def predict_rows(self, user_rows: np.ndarray, movie_rows: np.ndarray, chunk: int = PREDICT_PAIRS) -> np.ndarray:
        """Predicted ratings of (user row, movie row) pairs, clipped to the rating scale if so configured.

        A ``dot`` head predicts from the exported vectors (`rating_vectors`) once they exist or
        when there are `PREDICT_PAIRS` pairs or more: the export pools each history once, where
        each network call pools its pairs' rows' whole histories, a popular movie's in nearly
        every call (at ml-25m's shape ~12M neighbours per call of 8,192 pairs)."""
        if self.config.head == "dot" and (self._rating is not None or len(user_rows) >= chunk):
            return self.rating_vectors().predict_rows(np.asarray(user_rows), np.asarray(movie_rows))
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
        return tower_values(self.model, len(self.vocab.user_ids), len(self.vocab.movie_ids), self.config.vector_dim)

    def rating_vectors(self) -> RatingVectors:
        """The model as arrays (tower outputs, biases, ...): what the ``text_model`` artifact holds."""
        if self._rating is None:
            u, m = self._tower_values()
            nu, nm = len(u), len(m)
            bu, bm, mean = dot_biases(self.model, nu, nm) if self.config.head == "dot" else \
                (np.zeros(nu, np.float32), np.zeros(nm, np.float32), 0.0)
            self._rating = RatingVectors(self.vocab.user_ids, self.vocab.movie_ids, u, m, bu, bm, mean,
                                         tuple(self.rating_range), np.asarray(self.movie_counts, np.int64),
                                         self.config, self.vocab.to_dict(ids=False), self.history)
        return self._rating

    def vectors(self) -> tuple[Vectors, Vectors]:
        """(user vectors, movie vectors) from the two towers, keyed by id."""
        rv = self.rating_vectors()
        return rv.users, rv.movies

    def scoring_vectors(self) -> tuple[Vectors, Vectors]:
        """Augmented vectors with ``dot(user, movie) == predicted rating`` (before clipping); see
        `RatingVectors.scoring_users`."""
        rv = self.rating_vectors()
        return rv.scoring_users, rv.scoring_movies

    def ranking_vectors(self) -> tuple[Vectors, Vectors]:
        """Vectors for recommend: dot == the ranking model's score (see `text_model.ranking`)."""
        rv = self.ranking_model().ranking_vectors()
        return rv.ranking_users, rv.ranking_movies

    def ranking_model(self):
        from .ranking import RatingOnly

        if self.ranking is None:
            self.ranking = RatingOnly(self.rating_vectors())
        return self.ranking

    # -- persistence ---------------------------------------------------------------------
    def save(self, writer) -> None:
        """Write the ``keras_model`` and ``text_model`` artifacts into a `catalog.VersionWriter`."""
        writer.write("keras_model", lambda tmp: self.model.save(tmp))
        self.rating_vectors().save(writer)

    @classmethod
    def load(cls, version) -> "TextModel":
        """From a `catalog.ModelVersion` (imports TensorFlow); `ArtifactError` naming a bad file."""
        import keras

        from . import layers  # noqa: F401  registers the custom layers
        from .ranking import load_ranking

        rv = RatingVectors.load(version)
        try:
            vocab = Vocabulary.from_dict(rv.vocabulary, rv.user_ids, rv.movie_ids)
        except ValueError as exc:
            raise version.invalid(SCHEMA["text_model"], str(exc)) from None
        path = version.file("keras_model")
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # keras raises many kinds for a foreign file
            raise version.invalid(SCHEMA["keras_model"], f"not a loadable Keras model ({type(exc).__name__})") from None
        tm = cls(rv.config, vocab, model, rv.rating_range, rv.movie_counts, None, rv.history, 0.0, rv)
        tm.ranking = load_ranking(version, rv)
        return tm
