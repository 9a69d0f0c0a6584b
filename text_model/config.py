"""`TextModelConfig`: every knob of the text-CNN rating model, in one frozen dataclass.

Two named configurations: ``reference`` reproduces the classic design (200-d tanh towers, a
plain dot product, Adam, batch 256, 5 epochs, no validation); ``best`` (the default) is tuned
for accuracy on ml-100k (biases + global mean, L2, early stopping, a decaying learning rate,
weight averaging).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

HEADS = ("dot", "fc")
VALIDATION_SLICES = ("random", "latest")
RELEVANCE = ("rated", "liked")   # what the ranking grid counts as a validation hit
RANKING_MODELS = ("ease+rating", "ease", "puresvd+rating", "rating")


@dataclass(frozen=True)
class TextModelConfig:
    name: str = "best"
    # user tower
    user_embedding_dim: int = 32
    demographic_embedding_dim: int = 8
    # movie tower
    movie_embedding_dim: int = 32
    genre_embedding_dim: int = 16
    word_embedding_dim: int = 16
    cnn_windows: tuple[int, ...] = (2, 3, 4, 5)
    cnn_filters: int = 8
    dropout: float = 0.3
    min_word_count: int = 2          # rarer title words train the OOV token
    # SVD++-style implicit feedback: each user tower also pools embeddings of the movies the user
    # rated in training, each movie tower those of its raters (0: off)
    implicit_dim: int = 32
    # how a training step pools the histories (inference always pools them exactly): "sampled"
    # (at most implicit_samples neighbours per row of the batch, unbiased), "batch" (the batch
    # rows' whole histories), "full" (every history on every step: the old way, cheap on small
    # data) or "auto" ("full" up to 2 x batch_size x implicit_samples ratings, else "sampled")
    implicit_pooling: str = "auto"
    implicit_samples: int = 128
    # "dense": L2 on whole id-embedding tables and Adam moving every row every step (a step costs
    # the tables); "sparse": L2 on the rows a step looks up and Adam moving only those (lazy Adam)
    embedding_updates: str = "sparse"
    # both towers: hidden dense layers, then a tanh output of vector_dim
    hidden_units: tuple[int, ...] = ()
    vector_dim: int = 32
    # rating head
    head: str = "dot"                # "dot" or "fc"
    fc_units: tuple[int, ...] = (64,)
    use_biases: bool = True          # user/movie biases + the global mean (dot head)
    l2: float = 2e-5                 # on embeddings and dense kernels
    bias_l2: float = 2e-5
    # training
    learning_rate: float = 6e-3
    lr_decay: float = 0.7            # learning rate multiplied by this each epoch
    batch_size: int = 1024
    epochs: int = 30
    validation_fraction: float = 0.05
    # the validation slice (early stopping, and the ranking model's settings): "random" (a random
    # validation_fraction of the training ratings) or "latest" (each user's latest training rating:
    # the shape of a leave-last-out split, and of serving, where the next movie is after the rest)
    validation_slice: str = "random"
    early_stopping_patience: int = 1  # 0: no early stopping (the best epoch's weights are kept)
    # weight averaging: > 0, an exponential moving average of the trainable weights (Keras' optimizer
    # EMA) over a window of about this many epochs (momentum 1 - 1 / (ema_epochs x steps per epoch)
    # each step); at each epoch's end the model holds the average, so validation, early stopping and
    # the saved model all use it, and the next epoch trains on from the raw weights. 0: off. 1.5 and
    # implicit_dim 32: tune's validation slices of ml-100k random 80/20, seeds 0-2, mean RMSE
    # 0.9041 -> 0.8950 (benchmarks/README.md, "Ranking quality", round 4)
    ema_epochs: float = 1.5
    clip_predictions: bool = True     # predictions clipped to the rating scale
    # ranking (recommend): score = puresvd(user, movie) + lam * predicted rating, where puresvd is a
    # rank-k SVD of the binary who-rated-what matrix; k and lam are picked on the validation slice
    # among these. No factors: rank by predicted rating alone.
    ranking_factors: tuple[int, ...] = (16, 32, 64)
    rating_weights: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    # the ranking model recommend uses (text_model.ranking / text_model.ease): "ease+rating" (EASE's
    # item-item scores + lam * predicted rating), "ease", "puresvd+rating" or "rating". The default is
    # the best on benchmarks/README.md "Ranking quality" (ml-100k, both splits); EASE falls back to
    # puresvd+rating when the catalogue is too large for its items x items matrices
    ranking_model: str = "ease+rating"
    # what the ranking grid counts as a validation hit: "rated" (any held-out movie of the user, the
    # rule of benchmarks/ranking_quality.py and its peers; the better of the two there on both splits'
    # NDCG@10) or "liked" (rated in the top quarter of the scale)
    ranking_relevance: str = "rated"
    ease_lambdas: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)  # picked on validation
    # EASE's recency weights (text_model.ease): a user's row weighs each rating 1 + boost * exp(-age / scale),
    # age 0 for their latest; every (scale, boost) pair and "off" are tried on validation. () : off
    ease_recency_scales: tuple[float, ...] = (3.0, 10.0)
    ease_recency_boosts: tuple[float, ...] = (1.0, 4.0, 16.0)
    # the learned visual-collaborative ranking model (fusion.vbpr): on, `build-index` fits it and
    # recommend ranks with it; off (the default, from benchmarks/README.md "Ranking quality", where
    # it ranks below the blend above), recommend keeps the blend (`build-index(ranking_model="vbpr")`
    # fits it anyway)
    learned_ranking: bool = False
    vbpr_factors: int = 64
    vbpr_visual_factors: int = 16
    vbpr_epochs: int = 40            # at most; the best epoch on the validation slice is kept
    vbpr_learning_rate: float = 0.005
    vbpr_l2: float = 1e-4
    vbpr_item_dropout: float = 0.2
    vbpr_min_rating: float = 0.0     # positives: movies rated at least this (0: every rated movie)

    def __post_init__(self) -> None:
        if self.implicit_pooling not in ("auto", "sampled", "batch", "full"):
            raise ValueError(f"config {self.name!r}: implicit_pooling must be 'auto', 'sampled', 'batch' or "
                             f"'full', got {self.implicit_pooling!r}")
        if self.embedding_updates not in ("dense", "sparse"):
            raise ValueError(f"config {self.name!r}: embedding_updates must be 'dense' or 'sparse', "
                             f"got {self.embedding_updates!r}")
        if int(self.implicit_samples) < 1:
            raise ValueError(f"config {self.name!r}: implicit_samples must be >= 1, got {self.implicit_samples}")
        if self.head not in HEADS:
            raise ValueError(f"config {self.name!r}: head must be one of {HEADS}, got {self.head!r}")
        for key in ("user_embedding_dim", "movie_embedding_dim", "genre_embedding_dim",
                    "word_embedding_dim", "cnn_filters", "vector_dim", "batch_size", "epochs",
                    "demographic_embedding_dim", "min_word_count"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"config {self.name!r}: {key} must be >= 1, got {getattr(self, key)}")
        if not self.cnn_windows or min(self.cnn_windows) < 1:
            raise ValueError(f"config {self.name!r}: cnn_windows must be positive, got {self.cnn_windows}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config {self.name!r}: dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ValueError(f"config {self.name!r}: validation_fraction must be in [0, 0.5)")
        if self.ranking_relevance not in RELEVANCE:
            raise ValueError(f"config {self.name!r}: ranking_relevance must be one of {', '.join(RELEVANCE)}, "
                             f"got {self.ranking_relevance!r}")
        if self.validation_slice not in VALIDATION_SLICES:
            raise ValueError(f"config {self.name!r}: validation_slice must be one of {', '.join(VALIDATION_SLICES)}, "
                             f"got {self.validation_slice!r}")
        if not float(self.ema_epochs) >= 0.0:
            raise ValueError(f"config {self.name!r}: ema_epochs must be >= 0 (0: no weight averaging), "
                             f"got {self.ema_epochs}")
        if self.early_stopping_patience and not self.validation_fraction:
            raise ValueError(f"config {self.name!r}: early stopping needs validation_fraction > 0")
        if not self.rating_weights:
            raise ValueError(f"config {self.name!r}: rating_weights needs at least one value")
        if self.ranking_model not in RANKING_MODELS:
            raise ValueError(f"config {self.name!r}: ranking_model must be one of {', '.join(RANKING_MODELS)}, "
                             f"got {self.ranking_model!r}")
        if not self.ease_lambdas or min(float(v) for v in self.ease_lambdas) <= 0:
            raise ValueError(f"config {self.name!r}: ease_lambdas must be values > 0, got {list(self.ease_lambdas)}")
        if any(not float(v) > 0 for v in self.ease_recency_scales) or any(float(v) < 0 for v in self.ease_recency_boosts):
            raise ValueError(f"config {self.name!r}: ease_recency_scales must be > 0 and ease_recency_boosts >= 0, "
                             f"got {list(self.ease_recency_scales)} and {list(self.ease_recency_boosts)}")
        if any(int(k) < 1 for k in self.ranking_factors):
            raise ValueError(f"config {self.name!r}: ranking_factors must be >= 1")

    def vbpr_settings(self) -> dict:
        """The `fusion.vbpr.VBPRConfig` settings this config asks for."""
        return {"factors": self.vbpr_factors, "visual_factors": self.vbpr_visual_factors, "epochs": self.vbpr_epochs,
                "learning_rate": self.vbpr_learning_rate, "l2": self.vbpr_l2, "item_dropout": self.vbpr_item_dropout,
                "min_rating": self.vbpr_min_rating}

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "TextModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown text_model config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def with_overrides(self, **changes) -> "TextModelConfig":
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self


CONFIGS: dict[str, TextModelConfig] = {
    "best": TextModelConfig(),
    "reference": TextModelConfig(
        name="reference", user_embedding_dim=32, demographic_embedding_dim=16,
        movie_embedding_dim=32, genre_embedding_dim=32, word_embedding_dim=32,
        cnn_windows=(2, 3, 4, 5), cnn_filters=8, dropout=0.5, min_word_count=1,
        hidden_units=(200,), vector_dim=200, head="dot", use_biases=False, l2=0.0, bias_l2=0.0,
        implicit_dim=0, ema_epochs=0.0, embedding_updates="dense", learning_rate=1e-3, lr_decay=1.0, batch_size=256, epochs=5, validation_fraction=0.0,
        early_stopping_patience=0, clip_predictions=False, ranking_factors=(), rating_weights=(1.0,), ranking_model="rating",
    ),
}


def get_config(name: str) -> TextModelConfig:
    """A named config (``best``, ``reference``), or the path of a JSON file of overrides of one
    (its ``"name"`` picks the base when it names one, else ``best``), as ``posterec tune`` writes."""
    if name in CONFIGS:
        return CONFIGS[name]
    if str(name).endswith(".json") or Path(name).is_file():
        return config_from_file(name)
    raise ValueError(f"unknown text_model config {name!r}; use one of {', '.join(CONFIGS)}, or a JSON file "
                     f"of overrides (`posterec tune` writes one)")


def config_from_file(path) -> TextModelConfig:
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file; run `posterec tune` to write one") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON config ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of text_model settings, got a {type(data).__name__}")
    base = CONFIGS.get(str(data.get("name")), CONFIGS["best"])
    try:
        merged = {**base.to_dict(), **data}
        merged.setdefault("name", base.name)
        return TextModelConfig.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
