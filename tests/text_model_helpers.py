"""A tiny text_model configuration for fast tests on the planted fixture."""
from text_model import TextModelConfig

TINY = TextModelConfig(
    name="tiny", user_embedding_dim=8, demographic_embedding_dim=2, movie_embedding_dim=8,
    genre_embedding_dim=4, word_embedding_dim=8, cnn_filters=4, vector_dim=8, dropout=0.1,
    batch_size=64, epochs=4, learning_rate=1e-2, lr_decay=1.0, validation_fraction=0.1,
    early_stopping_patience=0, l2=0.0, bias_l2=0.0, implicit_dim=16, ema_epochs=0.0,
)


def checkerboard(n_users: int = 40, n_movies: int = 30, seed: int = 0):
    """A planted who-rated-what matrix with a known answer, as implicit's tests use.

    Two unequal blocks: users of the first 60% rate the first 60% of the movies, the rest the
    rest. Every user rated all of their block but one movie, their "hole" (held out as a
    validation rating of 5). Each user's best unseen movie is therefore their hole.
    Returns (train Interactions, validation Interactions, {user_id: hole movie_id}); ids from 1.
    """
    import numpy as np

    from catalog import Interactions

    rng = np.random.default_rng(seed)
    split_u, split_m = int(n_users * 0.6), int(n_movies * 0.6)
    users, movies, ratings, holes = [], [], [], {}
    for u in range(1, n_users + 1):
        block = np.arange(1, split_m + 1) if u <= split_u else np.arange(split_m + 1, n_movies + 1)
        holes[u] = int(block[u % len(block)])
        for m in block:
            if m != holes[u]:
                users.append(u)
                movies.append(int(m))
                ratings.append(float(rng.integers(4, 6)))
    train = Interactions.from_pairs(users, movies, ratings)
    validation = Interactions.from_pairs(list(holes), list(holes.values()), [5.0] * len(holes))
    return train, validation, holes


def hand_rating_vectors(user_ids, movie_ids, dim: int = 2, seed: int = 0):
    """A small `RatingVectors` (dot head, biases, ratings 1-5) with seeded near-constant ratings."""
    import numpy as np

    from text_model import RatingVectors, TextModelConfig

    rng = np.random.default_rng(seed)
    u, m = len(user_ids), len(movie_ids)
    return RatingVectors(np.asarray(user_ids, np.int64), np.asarray(movie_ids, np.int64),
                         (0.1 * rng.standard_normal((u, dim))).astype(np.float32),
                         (0.1 * rng.standard_normal((m, dim))).astype(np.float32),
                         np.zeros(u, np.float32), (0.01 * rng.standard_normal(m)).astype(np.float32), 3.0,
                         (1.0, 5.0), np.ones(m, np.int64), TextModelConfig(name="hand"))


def saved_and_loaded(tmp_path, rating, model):
    """Write ``rating`` and the ranking ``model`` as a version, read both back; check the round trip
    (same model type, name and params; the same ranking vectors) and return the read-side vectors."""
    import numpy as np

    from catalog import ModelStore
    from text_model import RankingVectors, RatingVectors, load_ranking

    store = ModelStore(tmp_path)
    with store.new_version() as w:
        rating.save(w)
        model.save(w)
    version = store.open_current()
    again = load_ranking(version, RatingVectors.load(version))
    assert type(again) is type(model) and again.name == model.name and again.params == model.params
    a, b = model.ranking_vectors(), RankingVectors.load(version, RatingVectors.load(version))
    np.testing.assert_array_equal(a.ranking_users.values, b.ranking_users.values)
    np.testing.assert_array_equal(a.ranking_movies.values, b.ranking_movies.values)
    assert b.name == model.name
    return b
