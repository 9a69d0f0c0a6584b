"""Model versions with planted vectors, written through the stages' own artifact writers.

`write_planted_version(home, ...)` saves a rating model whose tower vectors are given (zero
biases, so the predicted rating is ``user . movie``), ranked by that rating alone, plus the
training ratings and, optionally, poster embeddings: what `train` and `embed` would write, without
training. Tests of the query path use it to check the production code on known answers.
"""
from __future__ import annotations

import numpy as np

from catalog import Interactions, ModelStore, Vectors, dataset_checksum
from text_model import TextModelConfig
from text_model.ranking import RatingOnly
from text_model.rating_vectors import RatingVectors


def rating_vectors(users: Vectors, movies: Vectors, rating_range=(1.0, 5.0)) -> RatingVectors:
    uo, mo = np.argsort(users.ids), np.argsort(movies.ids)
    return RatingVectors(users.ids[uo], movies.ids[mo], users.values[uo], movies.values[mo],
                         np.zeros(len(users), np.float32), np.zeros(len(movies), np.float32), 0.0,
                         tuple(rating_range), np.ones(len(movies), np.int64),
                         TextModelConfig(clip_predictions=False))


def write_planted_version(home, users: Vectors | None = None, movies: Vectors | None = None,
                          visual: Vectors | None = None, ratings=None, dataset: str = "ml-100k", ranking=None):
    """A new CURRENT version holding what is given; ``ratings``: (user, movie, rating) rows.
    ``ranking(rating_vectors, training_interactions)`` -> a fitted ranking model to save
    (default: the predicted rating alone)."""
    with ModelStore(home).new_version() as w:
        if users is not None and movies is not None:
            rv = rating_vectors(users, movies)
            rv.save(w)
            rows = np.asarray(ratings, dtype=np.float64) if ratings is not None else np.zeros((0, 3))
            train = Interactions.from_pairs(rows[:, 0], rows[:, 1], rows[:, 2])
            (ranking(rv, train) if ranking is not None else RatingOnly(rv)).save(w)
            w.write_arrays("interactions", **train.to_arrays())
            w.set_stage("train", {"dataset": dataset})
        if visual is not None:
            w.write_arrays("visual", movie_ids=visual.ids, values=visual.values)
            w.set_stage("embed", {"dataset": dataset, "dim": visual.dim, "n": len(visual)})
        w.manifest.update(dataset=dataset, dataset_checksum=dataset_checksum(home, dataset), purpose="use")
    return ModelStore(home).open_current()
