"""`RatingVectors`: the trained rating model as plain arrays, the read side of the query path.

numpy only: loading and using it never imports TensorFlow. It is the ``text_model`` artifact of a
model version, one ``.npz`` of named arrays:

- ``user_ids``, ``movie_ids`` (int64, sorted): the ids the model knows, row = position;
- ``user_vectors``, ``movie_vectors`` (float32): the two towers' outputs;
- ``user_bias``, ``movie_bias`` (float32), ``global_mean``: what the ``dot`` head adds
  (zeros and 0 when the head has no biases; unused by the ``fc`` head);
- ``rating_range`` (lo, hi), ``movie_counts`` (training ratings per movie);
- ``config``, ``vocabulary``, ``history``: JSON (see `catalog.version.json_array`).

The scoring view (``dot(scoring_users, scoring_movies)`` == the predicted rating before clipping)
is computed here at load time, never stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from catalog import SCHEMA, UnknownMovieError, UnknownUserError, Vectors
from catalog.version import from_json_array, json_array

from .config import TextModelConfig
from .vocabulary import _rows

ARTIFACT = "text_model"
ARRAYS = ("user_ids", "movie_ids", "user_vectors", "movie_vectors", "user_bias", "movie_bias", "global_mean",
          "rating_range", "movie_counts", "config", "vocabulary", "history")
PREDICT_CHUNK = 1 << 18  # pairs per gather in `dot_scores` (~70 MB at 32 dims)


def dot_scores(user_vectors, movie_vectors, user_bias, movie_bias, global_mean: float, u, m) -> np.ndarray:
    """``<user, movie> + b_user + b_movie + global mean`` of rows ``u`` and ``m`` (float32, unclipped),
    in chunks of `PREDICT_CHUNK` pairs so memory stays bounded however many pairs."""
    out = np.empty(len(u), dtype=np.float32)
    for s in range(0, len(u), PREDICT_CHUNK):
        cu, cm = u[s:s + PREDICT_CHUNK], m[s:s + PREDICT_CHUNK]
        out[s:s + PREDICT_CHUNK] = (np.einsum("ij,ij->i", user_vectors[cu], movie_vectors[cm])
                                    + user_bias[cu] + movie_bias[cm] + np.float32(global_mean))
    return out


@dataclass(frozen=True, eq=False)
class RatingVectors:
    user_ids: np.ndarray        # int64 (u,), sorted
    movie_ids: np.ndarray       # int64 (m,), sorted
    user_vectors: np.ndarray    # float32 (u, d)
    movie_vectors: np.ndarray   # float32 (m, d)
    user_bias: np.ndarray       # float32 (u,)
    movie_bias: np.ndarray      # float32 (m,)
    global_mean: float
    rating_range: tuple[float, float]
    movie_counts: np.ndarray    # int64 (m,)
    config: TextModelConfig = field(default_factory=TextModelConfig)
    vocabulary: dict = field(default_factory=dict)  # `Vocabulary.to_dict(ids=False)`
    history: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        u, m = len(self.user_ids), len(self.movie_ids)
        shapes = {"user_vectors": (self.user_vectors.shape[0], u), "movie_vectors": (self.movie_vectors.shape[0], m),
                  "user_bias": (len(self.user_bias), u), "movie_bias": (len(self.movie_bias), m),
                  "movie_counts": (len(self.movie_counts), m)}
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"rating vectors: {name} has {got} rows for {want} ids")
        if self.user_vectors.ndim != 2 or self.movie_vectors.ndim != 2 or \
                self.user_vectors.shape[1] != self.movie_vectors.shape[1]:
            raise ValueError(f"rating vectors: user vectors {self.user_vectors.shape} and movie vectors "
                             f"{self.movie_vectors.shape} must be 2-D of one width")
        for name in ("user_ids", "movie_ids"):
            ids = getattr(self, name)
            if np.any(np.diff(ids) <= 0):
                raise ValueError(f"rating vectors: {name} must be sorted and unique")

    # -- views ---------------------------------------------------------------------------
    @property
    def dot_head(self) -> bool:
        return self.config.head == "dot"

    @cached_property
    def users(self) -> Vectors:
        """The user tower's vectors, keyed by user id."""
        return Vectors(self.user_ids, self.user_vectors)

    @cached_property
    def movies(self) -> Vectors:
        """The movie tower's vectors, keyed by movie id (the collaborative movie vectors)."""
        return Vectors(self.movie_ids, self.movie_vectors)

    @cached_property
    def scoring_users(self) -> Vectors:
        """``[u, b_u, 1, mean]``: with `scoring_movies`, dot == predicted rating (before clipping).

        Exact for the ``dot`` head; for the ``fc`` head no inner product reproduces the head, so
        these are the plain tower vectors.
        """
        if not self.dot_head:
            return self.users
        n = len(self.user_ids)
        return Vectors(self.user_ids, np.hstack([self.user_vectors, self.user_bias.reshape(-1, 1),
                                                 np.ones((n, 1), np.float32),
                                                 np.full((n, 1), self.global_mean, np.float32)]))

    @cached_property
    def scoring_movies(self) -> Vectors:
        """``[v, 1, b_m, 1]``: see `scoring_users`."""
        if not self.dot_head:
            return self.movies
        n = len(self.movie_ids)
        return Vectors(self.movie_ids, np.hstack([self.movie_vectors, np.ones((n, 1), np.float32),
                                                  self.movie_bias.reshape(-1, 1), np.ones((n, 1), np.float32)]))

    # -- id -> row -----------------------------------------------------------------------
    def user_rows(self, user_ids) -> np.ndarray:
        return _rows(self.user_ids, user_ids, lambda i: UnknownUserError(
            f"user {i} is not known to the model (it knows {len(self.user_ids)} users)"))

    def movie_rows(self, movie_ids) -> np.ndarray:
        return _rows(self.movie_ids, movie_ids, lambda i: UnknownMovieError(
            f"movie {i} is not known to the model (it knows {len(self.movie_ids)} movies)"))

    # -- predictions ---------------------------------------------------------------------
    def predict(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted ratings (float32), clipped as the model clips them; exact for the ``dot`` head.

        The ``fc`` head needs the network: use `text_model.TextModel.load` (TensorFlow).
        """
        if not self.dot_head:
            raise ValueError("this model has an fc rating head: predicting needs the network, "
                             "use text_model.TextModel.load(version).predict (imports TensorFlow)")
        return self.predict_rows(self.user_rows(user_ids), self.movie_rows(movie_ids))

    def predict_rows(self, u: np.ndarray, m: np.ndarray, clip: bool | None = None) -> np.ndarray:
        """`predict` by row (not id); ``clip`` None: as the model's config says."""
        out = dot_scores(self.user_vectors, self.movie_vectors, self.user_bias, self.movie_bias, self.global_mean, u, m)
        if self.config.clip_predictions if clip is None else clip:
            np.clip(out, *self.rating_range, out=out)
        return out

    # -- persistence ---------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids.astype(np.int64), "movie_ids": self.movie_ids.astype(np.int64),
                "user_vectors": self.user_vectors.astype(np.float32),
                "movie_vectors": self.movie_vectors.astype(np.float32),
                "user_bias": self.user_bias.astype(np.float32), "movie_bias": self.movie_bias.astype(np.float32),
                "global_mean": np.float64(self.global_mean), "rating_range": np.asarray(self.rating_range, np.float64),
                "movie_counts": self.movie_counts.astype(np.int64), "config": json_array(self.config.to_dict()),
                "vocabulary": json_array(self.vocabulary), "history": json_array(self.history)}

    def save(self, writer) -> None:
        writer.write_arrays(ARTIFACT, **self.to_arrays())

    @classmethod
    def from_arrays(cls, a: dict) -> "RatingVectors":
        lo, hi = (float(v) for v in np.asarray(a["rating_range"]).reshape(-1)[:2])
        return cls(np.asarray(a["user_ids"], np.int64), np.asarray(a["movie_ids"], np.int64),
                   np.asarray(a["user_vectors"], np.float32), np.asarray(a["movie_vectors"], np.float32),
                   np.asarray(a["user_bias"], np.float32).reshape(-1),
                   np.asarray(a["movie_bias"], np.float32).reshape(-1), float(a["global_mean"]), (lo, hi),
                   np.asarray(a["movie_counts"], np.int64), TextModelConfig.from_dict(from_json_array(a["config"])),
                   from_json_array(a["vocabulary"]), from_json_array(a["history"]))

    @classmethod
    def load(cls, version) -> "RatingVectors":
        """From a `catalog.ModelVersion`; `ArtifactError` naming the file when it is not a rating model."""
        arrays = version.arrays(ARTIFACT)
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise version.invalid(SCHEMA[ARTIFACT], f"lacks the arrays {', '.join(missing)}")
        try:
            return cls.from_arrays(arrays)
        except (ValueError, TypeError, KeyError) as exc:
            raise version.invalid(SCHEMA[ARTIFACT], f"not a valid rating model ({' '.join(str(exc).split())})") from None

