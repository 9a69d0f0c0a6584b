"""text_model: the text-CNN user/movie rating network, its ranking model, training and evaluation.

Importing this package does not import TensorFlow. The read side of a model version is numpy:
`RatingVectors.load(version)` (tower vectors, scoring vectors, predict) and
`RankingVectors.load(version, rating_vectors)` (what recommend ranks by; see `text_model.ranking`).
Training (``fit_text_model``) and `TextModel.load` (the network, for predict) import Keras.
"""
from .config import CONFIGS, TextModelConfig, get_config
from .metrics import coverage, hit_rate_ndcg, mae, rmse, top_n
from .rating_vectors import RatingVectors
from .ranking import Blend, PureSVD, RankingVectors, RatingOnly, load_ranking
from .vocabulary import Vocabulary, tokenize


def fit_text_model(dataset, train, config=None, seed: int = 0, verbose: int = 1, **kwargs):
    """Fit the network (imports TensorFlow); see `text_model.trainer.fit_text_model`."""
    from .trainer import fit_text_model as _fit

    return _fit(dataset, train, config or get_config("best"), seed=seed, verbose=verbose, **kwargs)


def load_text_model(version):
    """Load a saved `TextModel` from a `catalog.ModelVersion` (imports TensorFlow)."""
    from .model import TextModel

    return TextModel.load(version)


__all__ = [
    "CONFIGS", "TextModelConfig", "get_config", "coverage", "hit_rate_ndcg", "mae", "rmse", "top_n",
    "RatingVectors", "RankingVectors", "PureSVD", "Blend", "RatingOnly",
    "load_ranking", "Vocabulary", "tokenize", "fit_text_model", "load_text_model",
]
