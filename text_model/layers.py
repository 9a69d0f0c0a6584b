"""The network's custom layers, registered so a saved ``.keras`` file loads back without pickles."""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

PACKAGE = "text_model"


@keras.saving.register_keras_serializable(package=PACKAGE)
class TableLookup(layers.Layer):
    """Row ``i`` of a constant int32 table (per-user or per-movie features), saved with the model."""

    def __init__(self, rows: int, cols: int, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.cols = int(rows), int(cols)
        self.table = self.add_weight(shape=(self.rows, self.cols), dtype="int32",
                                     initializer="zeros", trainable=False, name="table")

    def set_table(self, table: np.ndarray) -> None:
        self.table.assign(np.asarray(table, dtype=np.int32).reshape(self.rows, self.cols))

    def call(self, index):
        return ops.take(self.table, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.cols,)

    def get_config(self):
        return {**super().get_config(), "rows": self.rows, "cols": self.cols}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMeanPool(layers.Layer):
    """Mean of token embeddings over the positions whose token is not 0 (padding)."""

    def call(self, inputs):
        embedded, tokens = inputs
        mask = ops.cast(ops.not_equal(tokens, 0), embedded.dtype)[..., None]
        total = ops.sum(embedded * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, input_shapes):
        shape = input_shapes[0]
        return (shape[0], shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextCNN(layers.Layer):
    """Title words -> embeddings -> Conv1D per window -> max over time -> concat -> dropout."""

    def __init__(self, vocab_size: int, embedding_dim: int, windows=(2, 3, 4, 5), filters: int = 8,
                 dropout: float = 0.5, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim = int(vocab_size), int(embedding_dim)
        self.windows, self.filters = tuple(int(w) for w in windows), int(filters)
        self.dropout_rate, self.l2 = float(dropout), float(l2)
        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        self.embedding = layers.Embedding(self.vocab_size, self.embedding_dim, embeddings_regularizer=reg,
                                          name="word_embedding")
        self.convs = [layers.Conv1D(self.filters, w, activation="relu", kernel_regularizer=reg,
                                    name=f"conv_{w}") for w in self.windows]
        self.pool = layers.GlobalMaxPooling1D()
        self.drop = layers.Dropout(self.dropout_rate)

    def build(self, input_shape):
        self.embedding.build(input_shape)
        emb_shape = tuple(input_shape) + (self.embedding_dim,)
        for conv in self.convs:
            conv.build(emb_shape)
        self.built = True

    def call(self, tokens, training=None):
        import tensorflow as tf  # row-wise unique: no keras.ops equivalent

        # a batch repeats popular titles many times: convolve each distinct title once
        unique, where = tf.raw_ops.UniqueV2(x=ops.cast(tokens, "int32"), axis=[0], out_idx="int32")
        x = self.embedding(unique)
        pooled = [self.pool(conv(x)) for conv in self.convs]
        out = ops.concatenate(pooled, axis=-1) if len(pooled) > 1 else pooled[0]
        return ops.take(self.drop(out, training=training), where, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters * len(self.windows))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "windows": list(self.windows), "filters": self.filters, "dropout": self.dropout_rate,
                "l2": self.l2}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BiasedDot(layers.Layer):
    """``global_mean + b_user + b_movie + <u, v>``; without biases just ``<u, v>``."""

    def __init__(self, n_users: int, n_movies: int, use_biases: bool = True, bias_l2: float = 0.0,
                 global_mean: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_movies = int(n_users), int(n_movies)
        self.use_biases, self.bias_l2 = bool(use_biases), float(bias_l2)
        self.initial_mean = float(global_mean)
        if self.use_biases:
            reg = keras.regularizers.L2(self.bias_l2) if self.bias_l2 else None
            self.user_bias = layers.Embedding(self.n_users, 1, embeddings_initializer="zeros",
                                              embeddings_regularizer=reg, name="user_bias")
            self.movie_bias = layers.Embedding(self.n_movies, 1, embeddings_initializer="zeros",
                                               embeddings_regularizer=reg, name="movie_bias")
        self.global_mean = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_mean),
                                           trainable=False, name="global_mean")

    def build(self, input_shapes):
        if self.use_biases:
            self.user_bias.build(input_shapes[2])
            self.movie_bias.build(input_shapes[3])
        self.built = True

    def call(self, inputs):
        user_vec, movie_vec, user_row, movie_row = inputs
        score = ops.sum(user_vec * movie_vec, axis=-1)
        if self.use_biases:
            score = score + self.global_mean
            score = score + ops.reshape(self.user_bias(user_row), (-1,)) + ops.reshape(self.movie_bias(movie_row), (-1,))
        return score

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

    def get_config(self):
        return {**super().get_config(), "n_users": self.n_users, "n_movies": self.n_movies,
                "use_biases": self.use_biases, "bias_l2": self.bias_l2, "global_mean": self.initial_mean}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ColumnSlice(layers.Layer):
    """Columns ``start:stop`` of a (batch, cols) tensor; ``squeeze`` drops a single column's axis."""

    def __init__(self, start: int, stop: int, squeeze: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop, self.squeeze = int(start), int(stop), bool(squeeze)

    def call(self, x):
        out = x[:, self.start:self.stop]
        return ops.squeeze(out, axis=-1) if self.squeeze else out

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) if self.squeeze else (input_shape[0], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop, "squeeze": self.squeeze}


POOLINGS = ("batch", "full")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImplicitPool(layers.Layer):
    """SVD++-style implicit feedback: row ``i`` -> sum of embeddings of its neighbours / sqrt(count).

    For a user the neighbours are the movies they rated in training (for a movie, the users who
    rated it). The neighbourhood is a constant CSR (``indptr``, ``cols``), saved with the model.

    ``pooling="batch"`` (the default) pools only the distinct rows of the batch: their neighbours
    are gathered from the CSR, so a step costs the batch's histories, whatever the number of
    rows outside it. ``pooling="full"`` pools every row with one sparse x dense product and then
    picks the batch's rows: the same numbers, at a cost of every history on every step (kept
    as the baseline that ``benchmarks/train_scaling.py`` compares against).
    """

    def __init__(self, n_rows: int, n_cols: int, nnz: int, dim: int, l2: float = 0.0, pooling: str = "batch",
                 **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"implicit pooling must be one of {POOLINGS}, got {pooling!r}")
        self.n_rows, self.n_cols, self.nnz, self.dim, self.l2 = int(n_rows), int(n_cols), int(nnz), int(dim), float(l2)
        self.pooling = pooling
        self.indptr = self.add_weight(shape=(self.n_rows + 1,), dtype="int32", initializer="zeros", trainable=False,
                                      name="indptr")
        self.cols = self.add_weight(shape=(self.nnz,), dtype="int32", initializer="zeros", trainable=False, name="cols")
        self.embeddings = self.add_weight(shape=(self.n_cols, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(stddev=0.05),
                                          regularizer=keras.regularizers.L2(self.l2) if self.l2 else None)

    def set_neighbours(self, rows: np.ndarray, cols: np.ndarray) -> None:
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=self.n_rows)
        self.indptr.assign(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        self.cols.assign(cols[order].astype(np.int32))

    def gathered(self, index):
        """(distinct rows of ``index``, where each entry of ``index`` is among them, neighbour
        positions into ``cols``, the distinct row each position belongs to, neighbour counts)."""
        import tensorflow as tf  # ragged ranges: no keras.ops equivalent

        rows, where = tf.unique(tf.reshape(tf.cast(index, "int32"), [-1]))
        starts, ends = tf.gather(self.indptr, rows), tf.gather(self.indptr, rows + 1)
        positions = tf.ragged.range(starts, ends)
        return rows, where, positions.flat_values, tf.cast(positions.value_rowids(), "int32"), ends - starts

    def call(self, index):
        import tensorflow as tf

        if self.pooling == "full":
            return self._full(index)
        rows, where, positions, owner, counts = self.gathered(index)
        neighbours = tf.gather(self.cols, positions)
        # the gradient is an IndexedSlices over the gathered rows only
        summed = tf.math.segment_sum(tf.gather(self.embeddings, neighbours), owner)
        summed = tf.pad(summed, [[0, tf.size(rows) - tf.shape(summed)[0]], [0, 0]])  # trailing empty rows
        scale = tf.math.rsqrt(tf.maximum(tf.cast(counts, summed.dtype), 1.0))
        return tf.reshape(tf.gather(summed * scale[:, None], where), tf.concat([tf.shape(index), [self.dim]], 0))

    def _full(self, index):
        import tensorflow as tf  # a sparse x dense product: no keras.ops equivalent

        counts = self.indptr[1:] - self.indptr[:-1]
        row_of = tf.repeat(tf.range(self.n_rows, dtype="int32"), counts)
        weights = tf.math.rsqrt(tf.maximum(tf.cast(tf.gather(counts, row_of), "float32"), 1.0))
        indices = tf.stack([tf.cast(row_of, "int64"), tf.cast(self.cols, "int64")], axis=1)
        matrix = tf.SparseTensor(indices, weights, (self.n_rows, self.n_cols))
        pooled = tf.sparse.sparse_dense_matmul(matrix, self.embeddings)
        return ops.take(pooled, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "n_rows": self.n_rows, "n_cols": self.n_cols, "nnz": self.nnz,
                "dim": self.dim, "l2": self.l2, "pooling": self.pooling}
