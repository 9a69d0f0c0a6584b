"""text_model: the text-CNN user/movie rating network, its training, evaluation and queries.

Importing this package does not import TensorFlow: the query path (`QueryModel`, `similar`,
`recommend`, `also_liked`) is numpy over saved ``.npz`` files. Training lives in
`text_model.trainer` (``fit_text_model``, ``TextModel``), which imports Keras when used.
"""
from .config import CONFIGS, TextModelConfig, get_config
from .metrics import coverage, hit_rate_ndcg, mae, rmse, top_n
from .queries import Hits, QueryModel, also_liked, recommend, similar
from catalog import SeenItems  # noqa: F401  (re-exported)
from .vocabulary import Vocabulary, tokenize


def fit_text_model(dataset, train, config=None, seed: int = 0, verbose: int = 1):
    """Fit the network (imports TensorFlow); see `text_model.trainer.fit_text_model`."""
    from .trainer import fit_text_model as _fit

    return _fit(dataset, train, config or get_config("best"), seed=seed, verbose=verbose)


def load_text_model(folder):
    """Load a saved `TextModel` (imports TensorFlow)."""
    from .trainer import TextModel

    return TextModel.load(folder)


__all__ = [
    "CONFIGS", "TextModelConfig", "get_config", "coverage", "hit_rate_ndcg", "mae", "rmse", "top_n",
    "Hits", "QueryModel", "also_liked", "recommend", "similar", "SeenItems", "Vocabulary", "tokenize",
    "fit_text_model", "load_text_model",
]
