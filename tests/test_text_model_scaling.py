"""Training cost follows the batch, and a run that cannot fit in memory is refused up front."""
import numpy as np
import pytest

from catalog import DatasetError, load_dataset, make_split
from text_model import memory
from text_model_helpers import TINY

pytest.importorskip("keras")

BATCH_USERS = np.arange(0, 1000, 4, dtype=np.int32)  # 250 users, some repeated in the batch below


def _history(n_users: int, seed: int = 0):
    """Every user rates 20 of 500 movies; the same users get the same histories whatever n_users."""
    rng = np.random.default_rng(seed)
    movies = np.stack([rng.choice(500, 20, replace=False) for _ in range(n_users)])
    return np.repeat(np.arange(n_users), 20), movies.reshape(-1)


def test_a_steps_gathered_rows_do_not_depend_on_users_outside_the_batch():
    import tensorflow as tf

    from text_model.layers import ImplicitPool

    batch = tf.constant(np.concatenate([BATCH_USERS, BATCH_USERS[:100]]))  # 350 entries, 250 distinct
    gathered, outputs = {}, {}
    for n_users in (1_000, 50_000):
        rows, cols = _history(n_users)
        for pooling in ("batch", "full"):
            pool = ImplicitPool(n_users, 500, len(rows), 4, pooling=pooling)
            pool.set_neighbours(rows, cols)
            pool.embeddings.assign(np.random.default_rng(1).standard_normal((500, 4)).astype(np.float32))
            outputs[n_users, pooling] = pool(batch).numpy()
        _, _, positions, _, _ = pool.gathered(batch)
        gathered[n_users] = int(tf.size(positions))
    # the distinct batch users' histories, gathered once each: 250 x 20 rows, for 1k or 50k users
    assert gathered[1_000] == gathered[50_000] == len(BATCH_USERS) * 20
    # the same numbers whatever the users outside the batch, and as pooling every history
    np.testing.assert_allclose(outputs[1_000, "batch"], outputs[50_000, "batch"], atol=1e-6)
    np.testing.assert_allclose(outputs[50_000, "batch"], outputs[50_000, "full"], atol=1e-5)


def test_a_sampled_step_gathers_at_most_samples_per_distinct_row_whatever_the_users_outside():
    import tensorflow as tf

    from text_model.layers import ImplicitPool

    batch = tf.constant(np.concatenate([BATCH_USERS, BATCH_USERS[:100]]))
    counts = {}
    for n_users in (1_000, 50_000):
        rows, cols = _history(n_users)
        pool = ImplicitPool(n_users, 500, len(rows), 4, pooling="sampled", samples=8, seed=0)
        pool.set_neighbours(rows, cols)
        _, _, positions, owner, _ = pool.gathered(batch, sample=True)
        counts[n_users] = int(tf.size(positions))
        # every sampled position lies within its own row's history
        starts = np.asarray(pool.indptr)[BATCH_USERS]
        p, o = positions.numpy(), owner.numpy()
        assert np.all((p >= starts[o]) & (p < starts[o] + 20))
    assert counts[1_000] == counts[50_000] == len(BATCH_USERS) * 8


def test_sampled_pooling_is_unbiased_and_inference_is_exact():
    import tensorflow as tf

    from text_model.layers import ImplicitPool

    rows, cols = _history(1_000)
    pool = ImplicitPool(1_000, 500, len(rows), 4, pooling="sampled", samples=5, seed=0)
    pool.set_neighbours(rows, cols)
    exact = ImplicitPool(1_000, 500, len(rows), 4, pooling="full")
    exact.set_neighbours(rows, cols)
    exact.embeddings.assign(np.asarray(pool.embeddings))
    batch = tf.constant(BATCH_USERS[:10])
    want = exact(batch).numpy()
    np.testing.assert_allclose(pool(batch, training=False).numpy(), want, atol=1e-6)
    draws = np.stack([pool(batch, training=True).numpy() for _ in range(1000)])
    standard_error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - want) < 5 * standard_error + 1e-6)
    assert np.abs(pool(batch, training=True).numpy() - want).max() > 1e-4  # it does sample


def test_sparse_adam_moves_only_the_rows_a_step_touches():
    import keras
    import tensorflow as tf

    from text_model.layers import SparseAdam

    start = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    sparse_var, dense_var = keras.Variable(start.copy()), keras.Variable(start.copy())
    sparse, dense = SparseAdam(0.1), keras.optimizers.Adam(0.1)
    sparse.build([sparse_var])
    dense.build([dense_var])
    grad = tf.IndexedSlices(tf.ones((3, 3)), tf.constant([1, 3, 1]), tf.constant([6, 3]))
    sparse.apply([grad], [sparse_var])
    dense.apply([tf.convert_to_tensor(grad)], [dense_var])
    np.testing.assert_allclose(np.asarray(sparse_var), np.asarray(dense_var), atol=1e-6)  # step 1: the same
    moved = np.flatnonzero(np.abs(np.asarray(sparse_var) - start).sum(axis=1) > 0)
    assert moved.tolist() == [1, 3]
    after_one = np.asarray(sparse_var).copy()
    sparse.apply([tf.IndexedSlices(tf.ones((1, 3)), tf.constant([2]), tf.constant([6, 3]))], [sparse_var])
    changed = np.flatnonzero(np.abs(np.asarray(sparse_var) - after_one).sum(axis=1) > 0)
    assert changed.tolist() == [2]  # rows 1 and 3 keep still: no momentum step outside the batch


def test_the_batch_pooling_gradient_touches_only_the_batchs_neighbours():
    import tensorflow as tf

    from text_model.layers import ImplicitPool

    rows, cols = _history(50_000)
    pool = ImplicitPool(50_000, 500, len(rows), 4)
    pool.set_neighbours(rows, cols)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(pool(tf.constant(BATCH_USERS)))
    grad = tape.gradient(loss, pool.embeddings)
    assert isinstance(grad, tf.IndexedSlices)  # sparse: one row per distinct neighbour of the batch
    distinct = np.unique(cols.reshape(-1, 20)[BATCH_USERS])
    assert sorted(grad.indices.numpy().tolist()) == distinct.tolist()


def test_a_run_that_cannot_fit_is_refused_with_one_line(planted_home):
    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", 0)
    with pytest.raises(DatasetError) as exc:
        fit_text_model(dataset, split.train, TINY, verbose=0, memory_budget=0.5 * memory.GB)
    message = str(exc.value)
    assert "\n" not in message and "GB are available" in message and memory.ENV in message
    assert isinstance(exc.value, memory.MemoryBudgetError)


def test_the_estimate_names_the_setting_to_change(monkeypatch):
    big = TINY.with_overrides(ranking_factors=(4096,))
    with pytest.raises(memory.MemoryBudgetError, match="lower ranking_factors"):
        memory.check(1_000_000, 2_000_000, 50_000, big, budget=16 * memory.GB)
    with pytest.raises(memory.MemoryBudgetError, match="fewer ratings"):
        memory.check(200_000_000, 100_000, 50_000, TINY, budget=16 * memory.GB)
    # measured (benchmarks/scale.py): 1.40 GB peak at 2.49M ratings, 16k users, 6k movies; the estimate errs high
    assert 1.4 * memory.GB < sum(memory.estimate(2_492_355, 16_254, 6_242, TINY).values()) < 3 * memory.GB
    monkeypatch.setenv(memory.ENV, "0.1")
    with pytest.raises(memory.MemoryBudgetError):
        memory.check(1_000, 10, 10, TINY)


def test_an_epoch_streams_every_row_once_in_a_new_order_each_epoch():
    """The training pipeline slices a per-epoch permutation of the compact arrays: each epoch
    yields every (user, movie, rating) exactly once, epochs differ, and validation keeps its order."""
    import tensorflow as tf

    from text_model.trainer import _pipeline

    n, batch = 1000, 64
    users = np.arange(n, dtype=np.int32)
    movies = (users * 7 % 101).astype(np.int32)
    ratings = (users % 10 / 2 + 0.5).astype(np.float32)
    ds = _pipeline(tf, users, movies, ratings, batch, seed=3, epochs=3)
    steps = -(-n // batch)
    got = [(x["user"].numpy(), x["movie"].numpy(), y.numpy()) for x, y in ds]
    assert len(got) == 3 * steps and all(len(g[0]) <= batch for g in got)
    epochs = [np.concatenate([g[0] for g in got[e * steps:(e + 1) * steps]]) for e in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(n))  # every row once
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    for u, m, r in got:  # the columns stay aligned
        np.testing.assert_array_equal(m, movies[u])
        np.testing.assert_array_equal(r, ratings[u])
    again = np.concatenate([x["user"].numpy() for x, _ in _pipeline(tf, users, movies, ratings, batch, 3, 3)])
    np.testing.assert_array_equal(again[:n], epochs[0])  # seeded
    val = np.concatenate([x["user"].numpy() for x, _ in _pipeline(tf, users, movies, ratings, batch, 3, None)])
    np.testing.assert_array_equal(val, users)


def test_the_estimate_fits_ml25m_under_8gb_and_refuses_what_cannot_fit():
    from text_model import get_config

    best = get_config("best")
    ml25m = sum(memory.estimate(25_000_095, 162_541, 62_423, best).values())
    assert ml25m < 8 * memory.GB  # the target of issue 15; measured by benchmarks/scale.py
    memory.check(25_000_095, 162_541, 62_423, best, budget=8 * memory.GB)
    with pytest.raises(memory.MemoryBudgetError, match="fewer ratings") as exc:  # ml-25m x 10 on 24 GB
        memory.check(250_000_000, 1_625_410, 62_423, best, budget=24 * memory.GB)
    assert "\n" not in str(exc.value) and "250,000,000 ratings" in str(exc.value)


def test_dense_movies_x_movies_is_refused_with_the_reason_and_the_alternative():
    assert memory.check_dense_items(3_000, "EASE", "use PureSVD", budget=24 * memory.GB) == 3 * 4 * 3_000 ** 2
    with pytest.raises(memory.MemoryBudgetError) as exc:
        memory.check_dense_items(62_423, "EASE", "use ranking puresvd (sparse, (users + movies) x k)",
                                 budget=24 * memory.GB)
    message = str(exc.value)
    assert "\n" not in message and "62,423 x 62,423" in message and "use ranking puresvd" in message
    with pytest.raises(memory.MemoryBudgetError, match="GB available"):  # small enough, but not in this budget
        memory.check_dense_items(10_000, "item-item", "use PureSVD", budget=0.5 * memory.GB)


def test_the_ranking_grid_scores_a_seeded_sample_of_validation_users():
    from text_model.ranking import grid_users

    few = np.arange(10, 60, dtype=np.int64)
    assert grid_users(few, 0, limit=100) is few
    many = np.arange(100_000, dtype=np.int64) * 3
    a, b = grid_users(many, 0, limit=1000), grid_users(many, 0, limit=1000)
    assert len(a) == 1000 and np.array_equal(a, b) and np.all(np.diff(a) > 0) and np.isin(a, many).all()
    assert not np.array_equal(a, grid_users(many, 1, limit=1000))


def _dense_reads(fn, variables):
    """How many ops in ``fn``'s traced graph (forward and gradient) read one of ``variables``
    densely (``ReadVariableOp``: after a row-wise update, TensorFlow copies the whole table)."""
    import tensorflow as tf

    graph = tf.function(fn).get_concrete_function().graph
    handles = {id(v.value.handle) for v in variables}
    inner = {internal.name for external, internal in graph.captures if id(external) in handles}
    return sum(1 for op in graph.get_operations()
               if op.type == "ReadVariableOp" and op.inputs[0].name in inner)


def test_a_training_step_reads_the_id_tables_row_by_row_never_whole():
    """The tables a step updates row by row are read by rows (``ResourceGather``), so a step does
    not copy a users- or movies-sized table: its cost is the batch's, not the table's."""
    import tensorflow as tf

    from text_model.layers import ImplicitPool, RowEmbedding

    emb = RowEmbedding(50, 4, row_l2=1e-3)
    emb.build((None,))
    pool = ImplicitPool(5, 50, 8, 4, l2=1e-3, pooling="sampled", samples=2, sparse=True)
    pool.set_neighbours(np.array([0, 0, 1, 2, 2, 2, 3, 4]), np.array([1, 7, 3, 9, 4, 2, 8, 0]))
    index = tf.constant([0, 2, 2, 4])

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(emb(index, training=True)) + tf.reduce_sum(pool(index, training=True))
        return tape.gradient(loss, [emb.embeddings.value, pool.embeddings.value])

    assert _dense_reads(step, [emb.embeddings, pool.embeddings, pool.cols, pool.indptr]) == 0


def test_the_epochs_validation_pools_each_history_once_not_per_batch(planted_home, monkeypatch):
    """Validation comes from the exported vectors (O(ratings)); Keras' evaluate would pool every
    batch's rows' whole histories, a popular movie's in nearly every batch."""
    import keras

    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", 0)

    def no_evaluate(*args, **kwargs):
        raise AssertionError("fit ran a Keras validation pass (evaluate) over the validation slice")

    monkeypatch.setattr(keras.Model, "evaluate", no_evaluate)
    tm = fit_text_model(dataset, split.train, TINY, verbose=0)
    assert len(tm.history["val_rmse"]) == len(tm.history["rmse"]) == TINY.epochs
    assert all(np.isfinite(tm.history["val_rmse"]))


def test_the_vector_validation_equals_keras_evaluate_on_the_same_rows(planted_home):
    from text_model.trainer import _VectorValidation, fit_text_model, validation_mask

    dataset = load_dataset(planted_home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", 0)
    tm = fit_text_model(dataset, split.train, TINY, verbose=0)
    is_val = validation_mask(len(split.train), TINY.validation_fraction, 0)
    users = tm.vocab.user_rows(split.train["user_id"].to_numpy()[is_val]).astype(np.int32)
    movies = tm.vocab.movie_rows(split.train["movie_id"].to_numpy()[is_val]).astype(np.int32)
    ratings = split.train["rating"].to_numpy(np.float32)[is_val]
    check = _VectorValidation(users, movies, ratings, len(tm.vocab.user_ids), len(tm.vocab.movie_ids),
                              TINY.vector_dim)
    check.set_model(tm.model)
    logs = {}
    check.on_epoch_end(0, logs)
    keras_rmse = tm.model.evaluate({"user": users, "movie": movies}, ratings, batch_size=64, verbose=0,
                                   return_dict=True)["rmse"]
    assert logs["val_rmse"] == pytest.approx(keras_rmse, abs=1e-4)
    # and predict from the vectors equals the network's own output (clipped as predict clips)
    net = np.clip(np.asarray(tm.model({"user": users, "movie": movies}, training=False)).reshape(-1),
                  *tm.rating_range)
    np.testing.assert_allclose(tm.predict_rows(users, movies), net, atol=1e-4)
