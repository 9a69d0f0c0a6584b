"""The two-tower network: (user row, movie row) -> predicted rating.

User tower: id, gender, age and occupation embeddings -> dense layers -> tanh user vector.
Movie tower: id embedding, pooled genre embedding and a text CNN over the title's words ->
dense layers -> tanh movie vector. Head: ``dot`` (biased dot product) or ``fc``.
Per-user and per-movie features live in constant tables inside the model, so the model's
inputs are just the two rows and the ``.keras`` file is self-contained.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .config import TextModelConfig
from .layers import BiasedDot, ColumnSlice, ImplicitPool, MaskedMeanPool, TableLookup, TextCNN, embedding


def _reg(value: float):
    return keras.regularizers.L2(value) if value else None


def _dense_stack(x, units, vector_dim, l2, prefix):
    for k, u in enumerate(units):
        x = layers.Dense(u, activation="relu", kernel_regularizer=_reg(l2), name=f"{prefix}_hidden_{k}")(x)
    return layers.Dense(vector_dim, activation="tanh", kernel_regularizer=_reg(l2), name=f"{prefix}_vector")(x)


def build_model(config: TextModelConfig, sizes: dict[str, int], max_genres: int, title_len: int,
                user_table: np.ndarray | None = None, movie_table: np.ndarray | None = None,
                global_mean: float = 0.0, interactions: tuple[np.ndarray, np.ndarray] | None = None) -> keras.Model:
    """``interactions`` = (user rows, movie rows) of the training ratings, for implicit feedback."""
    c = config
    sparse = c.embedding_updates == "sparse"
    implicit = []
    if c.implicit_dim and interactions is not None:
        u_rows, m_rows = interactions
        pooling = implicit_pooling(c, len(u_rows))
        implicit = [ImplicitPool(sizes["users"], sizes["movies"], len(u_rows), c.implicit_dim, c.l2,
                                 pooling, c.implicit_samples, sparse=sparse, name="user_implicit"),
                    ImplicitPool(sizes["movies"], sizes["users"], len(u_rows), c.implicit_dim, c.l2,
                                 pooling, c.implicit_samples, sparse=sparse, name="movie_implicit")]
        implicit[0].set_neighbours(u_rows, m_rows)
        implicit[1].set_neighbours(m_rows, u_rows)
    user_in = keras.Input(shape=(), dtype="int32", name="user")
    movie_in = keras.Input(shape=(), dtype="int32", name="movie")

    # user tower
    demo_lookup = TableLookup(sizes["users"], 3, name="user_features")
    demo = demo_lookup(user_in)
    parts = [embedding(sizes["users"], c.user_embedding_dim, c.l2, sparse, name="user_id_embedding")(user_in)]
    for k, key in enumerate(("genders", "ages", "occupations")):
        column = _column(demo, k, f"user_{key}_row")
        parts.append(layers.Embedding(sizes[key], c.demographic_embedding_dim, embeddings_regularizer=_reg(c.l2),
                                      name=f"user_{key}_embedding")(column))
    if implicit:
        parts.append(implicit[0](user_in))
    user_vec = _dense_stack(layers.Concatenate(name="user_features_concat")(parts), c.hidden_units,
                            c.vector_dim, c.l2, "user")

    # movie tower
    movie_lookup = TableLookup(sizes["movies"], max_genres + title_len, name="movie_features")
    feats = movie_lookup(movie_in)
    genre_rows = _slice(feats, 0, max_genres, "movie_genre_rows")
    title_rows = _slice(feats, max_genres, max_genres + title_len, "movie_title_rows")
    genre_emb = layers.Embedding(sizes["genres"], c.genre_embedding_dim, embeddings_regularizer=_reg(c.l2),
                                 name="genre_embedding")(genre_rows)
    mparts = [
        embedding(sizes["movies"], c.movie_embedding_dim, c.l2, sparse, name="movie_id_embedding")(movie_in),
        MaskedMeanPool(name="genre_pool")([genre_emb, genre_rows]),
        TextCNN(sizes["words"], c.word_embedding_dim, c.cnn_windows, c.cnn_filters, c.dropout, c.l2,
                name="title_cnn")(title_rows),
    ]
    if implicit:
        mparts.append(implicit[1](movie_in))
    movie_vec = _dense_stack(layers.Concatenate(name="movie_features_concat")(mparts), c.hidden_units,
                             c.vector_dim, c.l2, "movie")

    # head
    if c.head == "dot":
        rating = BiasedDot(sizes["users"], sizes["movies"], c.use_biases, c.bias_l2, global_mean, sparse,
                           name="rating")([user_vec, movie_vec, user_in, movie_in])
    else:
        x = layers.Concatenate(name="fc_concat")([user_vec, movie_vec])
        for k, u in enumerate(c.fc_units):
            x = layers.Dense(u, activation="relu", kernel_regularizer=_reg(c.l2), name=f"fc_{k}")(x)
        x = layers.Dense(1, bias_initializer=keras.initializers.Constant(global_mean), name="fc_out")(x)
        rating = layers.Reshape((), name="rating")(x)
    model = keras.Model({"user": user_in, "movie": movie_in}, rating, name="text_model")
    if user_table is not None:
        demo_lookup.set_table(user_table)
    if movie_table is not None:
        movie_lookup.set_table(movie_table)
    return model


def implicit_pooling(config: TextModelConfig, nnz: int) -> str:
    """The training pooling ``"auto"`` resolves to: every history on every step while that is cheap
    (at most 2 x batch x samples training ratings: a step of sampled pooling could gather about
    as many), else sampled pooling, whose step cost does not grow with the data."""
    if config.implicit_pooling != "auto":
        return config.implicit_pooling
    return "full" if nnz <= 2 * config.batch_size * config.implicit_samples else "sampled"


def _column(x, k, name):
    return _slice(x, k, k + 1, name, squeeze=True)


def _slice(x, start, stop, name, squeeze=False):
    return ColumnSlice(start, stop, squeeze, name=name)(x)


def towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(user row -> user vector, movie row -> movie vector) models sharing the trained layers."""
    user_in = model.get_layer("user").output
    movie_in = model.get_layer("movie").output
    return (keras.Model(user_in, model.get_layer("user_vector").output),
            keras.Model(movie_in, model.get_layer("movie_vector").output))
