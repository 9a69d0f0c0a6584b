"""The network's custom layers, registered so a saved ``.keras`` file loads back without pickles."""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

PACKAGE = "text_model"


@keras.saving.register_keras_serializable(package=PACKAGE)
def squared_error(y_true, y_pred):
    """Per-rating squared error: Keras averages it over the batch (``"mse"`` on 1-D ratings)."""
    return ops.square(ops.subtract(y_pred, ops.cast(y_true, y_pred.dtype)))


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


def embedding(rows: int, dim: int, l2: float, sparse: bool, **kwargs):
    """An id embedding: L2 on the whole table (dense updates), or on the looked-up rows (sparse)."""
    if sparse:
        return RowEmbedding(rows, dim, l2, **kwargs)
    return layers.Embedding(rows, dim, embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BiasedDot(layers.Layer):
    """``global_mean + b_user + b_movie + <u, v>``; without biases just ``<u, v>``."""

    def __init__(self, n_users: int, n_movies: int, use_biases: bool = True, bias_l2: float = 0.0,
                 global_mean: float = 0.0, sparse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_movies = int(n_users), int(n_movies)
        self.use_biases, self.bias_l2 = bool(use_biases), float(bias_l2)
        self.initial_mean, self.sparse = float(global_mean), bool(sparse)
        if self.use_biases:
            self.user_bias = embedding(self.n_users, 1, self.bias_l2, self.sparse, name="user_bias",
                                       embeddings_initializer="zeros")
            self.movie_bias = embedding(self.n_movies, 1, self.bias_l2, self.sparse, name="movie_bias",
                                        embeddings_initializer="zeros")
        self.global_mean = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_mean),
                                           trainable=False, name="global_mean")

    def build(self, input_shapes):
        if self.use_biases:
            self.user_bias.build(input_shapes[2])
            self.movie_bias.build(input_shapes[3])
        self.built = True

    def call(self, inputs, training=None):
        user_vec, movie_vec, user_row, movie_row = inputs
        score = ops.sum(user_vec * movie_vec, axis=-1)
        if self.use_biases:
            score = score + self.global_mean
            kw = {"training": training} if self.sparse else {}
            score = (score + ops.reshape(self.user_bias(user_row, **kw), (-1,))
                     + ops.reshape(self.movie_bias(movie_row, **kw), (-1,)))
        return score

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

    def get_config(self):
        return {**super().get_config(), "n_users": self.n_users, "n_movies": self.n_movies,
                "use_biases": self.use_biases, "bias_l2": self.bias_l2, "global_mean": self.initial_mean,
                "sparse": self.sparse}


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


def sparse_read(variable, index):
    """Rows ``index`` of ``variable``, read as a sparse gather (``ResourceGather``).

    A table that a step updates row by row (`SparseAdam`'s scatters) is in TensorFlow's
    copy-on-read mode: a dense read of it, which ``ops.take(variable, ...)`` makes, copies the whole
    table first, on every step (28 ms for a 1.6M x 32 table, against 0.6 ms for this read), so the
    step would cost the table's size, not the batch's."""
    import tensorflow as tf

    return tf.gather(variable.value, index)


POOLINGS = ("sampled", "batch", "full")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImplicitPool(layers.Layer):
    """SVD++-style implicit feedback: row ``i`` -> sum of embeddings of its neighbours / sqrt(count).

    For a user the neighbours are the movies they rated in training (for a movie, the users who
    rated it). The neighbourhood is a constant CSR (``indptr``, ``cols``), saved with the model.

    Inference (``training`` false) always pools exactly. In training, the pooling is one of:

    - ``"sampled"``: each distinct row of the batch pools all its neighbours when it has at most
      ``samples`` of them, else ``samples`` drawn uniformly with replacement, rescaled so that
      the pooled vector and its gradient are unbiased (``sqrt(count) * mean of the sample``). A
      step then costs at most ``distinct rows x samples``, whatever the size of the data;
    - ``"batch"``: each distinct row of the batch pools all its neighbours, gathered from the
      CSR: a step costs the batch's histories, however many rows lie outside the batch (but
      under power-law popularity, the popular movies' histories grow with the data);
    - ``"full"``: every row with one sparse x dense product, then the batch's rows are picked:
      every history on every step (the old way; kept as a baseline for the benchmarks).
    """

    def __init__(self, n_rows: int, n_cols: int, nnz: int, dim: int, l2: float = 0.0, pooling: str = "batch",
                 samples: int = 128, seed: int | None = None, sparse: bool = False, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"implicit pooling must be one of {POOLINGS}, got {pooling!r}")
        self.n_rows, self.n_cols, self.nnz, self.dim, self.l2 = int(n_rows), int(n_cols), int(nnz), int(dim), float(l2)
        self.pooling, self.samples, self.seed, self.sparse = pooling, max(1, int(samples)), seed, bool(sparse)
        self.seed_generator = keras.random.SeedGenerator(seed, name="implicit_seed")
        self.indptr = self.add_weight(shape=(self.n_rows + 1,), dtype="int32", initializer="zeros", trainable=False,
                                      name="indptr")
        self.cols = self.add_weight(shape=(self.nnz,), dtype="int32", initializer="zeros", trainable=False, name="cols")
        self.embeddings = self.add_weight(shape=(self.n_cols, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(stddev=0.05),
                                          regularizer=keras.regularizers.L2(self.l2)
                                          if self.l2 and (not sparse or pooling == "full") else None)

    def set_neighbours(self, rows: np.ndarray, cols: np.ndarray) -> None:
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=self.n_rows)
        self.indptr.assign(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        self.cols.assign(cols[order].astype(np.int32))

    def gathered(self, index, sample: bool = False):
        """What a step gathers for ``index``: (distinct rows, where each entry of ``index`` is
        among them, neighbour positions into ``cols``, the distinct row each position belongs to,
        the scale of each distinct row's sum). ``sample``: at most ``samples`` per row."""
        import tensorflow as tf  # ragged ranges: no keras.ops equivalent

        rows, where = tf.unique(tf.reshape(tf.cast(index, "int32"), [-1]))
        starts, ends = sparse_read(self.indptr, rows), sparse_read(self.indptr, rows + 1)
        counts = ends - starts
        taken = tf.minimum(counts, self.samples) if sample else counts
        local = tf.ragged.range(taken)
        owner = tf.cast(local.value_rowids(), "int32")
        offset = local.flat_values
        if sample:  # rows with more neighbours than samples: uniform draws with replacement
            n = tf.gather(counts, owner)
            draw = tf.cast(tf.floor(keras.random.uniform(tf.shape(offset), seed=self.seed_generator)
                                    * tf.cast(n, "float32")), "int32")
            offset = tf.where(n > self.samples, tf.minimum(draw, n - 1), offset)
        positions = tf.gather(starts, owner) + offset
        c, t = tf.maximum(tf.cast(counts, "float32"), 1.0), tf.maximum(tf.cast(taken, "float32"), 1.0)
        return rows, where, positions, owner, tf.sqrt(c) / t  # sum / sqrt(count), estimated from the sample

    def call(self, index, training=None):
        import tensorflow as tf

        if self.pooling == "full":
            return self._full(index)
        rows, where, positions, owner, scale = self.gathered(index, sample=bool(training) and self.pooling == "sampled")
        # each distinct neighbour's row is read once: the gradient is an IndexedSlices over those
        # rows only (at most the table's), whatever the number of gathered positions
        neighbours, which = tf.unique(sparse_read(self.cols, positions))
        rows_used = sparse_read(self.embeddings, neighbours)
        if self.sparse and self.l2 and training:  # L2 on the rows this step touches, once each
            self.add_loss(self.l2 * tf.reduce_sum(tf.square(rows_used)))
        summed = tf.math.segment_sum(tf.gather(rows_used, which), owner)
        summed = tf.pad(summed, [[0, tf.size(rows) - tf.shape(summed)[0]], [0, 0]])  # trailing empty rows
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
                "dim": self.dim, "l2": self.l2, "pooling": self.pooling, "samples": self.samples, "seed": self.seed, "sparse": self.sparse}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RowEmbedding(layers.Embedding):
    """An ``Embedding`` whose L2 penalty falls on the rows a training step looks up (once each),
    not on the whole table: its gradient stays sparse, so `SparseAdam` touches only those rows."""

    def __init__(self, input_dim: int, output_dim: int, row_l2: float = 0.0, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.row_l2 = float(row_l2)

    def call(self, inputs, training=None):
        if self.row_l2 and training:
            import tensorflow as tf

            rows = tf.unique(tf.reshape(tf.cast(inputs, "int32"), [-1]))[0]
            self.add_loss(self.row_l2 * tf.reduce_sum(tf.square(sparse_read(self.embeddings, rows))))
        return ops.cast(sparse_read(self.embeddings, ops.cast(inputs, "int32")), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "row_l2": self.row_l2}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseAdam(keras.optimizers.Adam):
    """Adam that, for a sparse gradient (an embedding's looked-up rows), updates only those rows'
    moments and values ("lazy" Adam): a step costs the batch, not the table.

    With ``use_ema`` the moving average of such a table is lazy too, and exact: a row's value does
    not change between the steps that look it up, so when a step looks it up again its average is
    first brought up to date in one go (``m^k a + (1 - m^k) w`` for the ``k`` steps it missed),
    then moved as Keras moves every average (``m a + (1 - m) w``; the first step's average is that
    step's weights). `sync_average` brings every row up to date (at an epoch's end). Keras' own
    update reads whole tables on every step, which at ml-25m's shape costs more than the step.
    """

    def build(self, variables):
        super().build(variables)
        self._sparse_averages: set[int] = set()  # which variables' averages move lazily (traced steps)
        self._average_steps = []
        if self.use_ema:
            for k, (var, average) in enumerate(zip(variables, self._model_variables_moving_average)):
                average.assign(var)  # rows a step never looks up keep their initial value (Keras: zeros, then
                # step 0's weights, the same value for those rows)
                self._average_steps.append(self.add_variable(
                    shape=(int(var.shape[0]) if len(var.shape) else 1,), dtype="int64",
                    initializer=keras.initializers.Constant(-1), name=f"average_step_{k}"))

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step))
        rows, where = tf.unique(gradient.indices)
        g = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), where, tf.size(rows))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = b1 * tf.gather(m.value, rows) + (1 - b1) * g
        v_rows = b2 * tf.gather(v.value, rows) + (1 - b2) * g * g
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        delta = m_rows * alpha / (ops.sqrt(v_rows) + self.epsilon)
        if self.use_ema:
            self._sparse_averages.add(index)
            old = tf.gather(variable, rows)  # constant since each row's last update
            average, last = self._model_variables_moving_average[index], self._average_steps[index]
            t = ops.cast(self.iterations, "int64")
            shape = tf.concat([[-1], tf.ones([tf.rank(old) - 1], "int32")], 0)
            momentum = ops.cast(self.ema_momentum, dtype)
            behind = ops.cast(t - 1 - tf.gather(last.value, rows), dtype)
            decay = tf.reshape(ops.power(momentum, behind), shape)
            caught_up = decay * tf.gather(average.value, rows) + (1 - decay) * old
            now = ops.where(t > 0, momentum, ops.zeros_like(momentum))
            self.assign(average, tf.IndexedSlices(now * caught_up + (1 - now) * (old - delta), rows))
            self.assign(last, tf.IndexedSlices(tf.fill(tf.shape(rows), t), rows))
        self.assign_sub(variable, tf.IndexedSlices(delta, rows))

    def _update_model_variables_moving_average(self, trainable_variables):
        """Keras' per-step update of the averages, for the variables with dense gradients only."""
        if not self.use_ema:
            return
        for k, (var, average) in enumerate(zip(trainable_variables, self._model_variables_moving_average)):
            if average is None or k in self._sparse_averages:
                continue
            momentum = ops.multiply(ops.cast(ops.not_equal(self.iterations, 0), var.dtype), self.ema_momentum)
            average.assign(ops.add(ops.multiply(momentum, average), ops.multiply(ops.subtract(1, momentum), var)))

    def sync_average(self) -> None:
        """Bring every lazily averaged row up to the last step taken (its value constant since)."""
        if not self.use_ema:
            return
        t = int(self.iterations.numpy())
        for k in sorted(self._sparse_averages):
            var, average, last = (self._trainable_variables[k], self._model_variables_moving_average[k],
                                  self._average_steps[k])
            behind = (t - 1 - last.numpy()).astype(np.float64)
            decay = np.power(float(self.ema_momentum), behind).reshape((-1,) + (1,) * (len(var.shape) - 1))
            average.assign((decay * average.numpy() + (1 - decay) * var.numpy()).astype(average.dtype))
            last.assign(np.full(last.shape, t - 1, np.int64))
