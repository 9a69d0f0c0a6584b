"""Training on the planted fixture: even users love comedies (1-30), odd users horror (31-60)."""
import numpy as np
import pytest

from catalog import (SCHEMA, Interactions, ModelStore, UnknownMovieError, UnknownUserError, fetch_dataset,
                     load_dataset, make_split)
from posterec.recommender import Recommender
from text_model import RankingVectors, RatingVectors, Vocabulary
from text_model.artifacts import load_test_pairs
from text_model.rating_vectors import ARRAYS as RATING_ARRAYS
from text_model.vocabulary import OOV
from text_model_helpers import TINY

pytest.importorskip("keras")

COMEDIES = set(range(1, 31))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from movielens_fixture import write_ml100k
    from text_model.artifacts import save_trained
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    root = tmp_path_factory.mktemp("text_model")
    home = root / "home"
    fetch_dataset(home, "ml-100k", source=write_ml100k(root / "src"))
    dataset = load_dataset(home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", 0)
    tm = fit_text_model(dataset, split.train, TINY, seed=0, verbose=0)
    metrics = rating_metrics(tm, split.test["user_id"], split.test["movie_id"], split.test["rating"])
    store = ModelStore(home)
    with store.new_version() as w:
        save_trained(w, tm, dataset, split, metrics, home)
    return home, store.open_current(), dataset, split, tm, metrics


def _read_side(version):
    return RatingVectors.load(version), RankingVectors.load(version, RatingVectors.load(version))


def _recommend(home, user_id, n):
    """What `recommend` returns: the production path (`Recommender`, the index), ratings only."""
    return Recommender.load(home).recommend(user_id, n, visual_weight=0.0)


def test_it_learns_the_planted_ratings(trained):
    *_, metrics = trained
    # ratings are 4-5 vs 1-2 by genre: predicting the global mean gives an RMSE of about 1.6
    assert metrics["rmse"] < 1.0


def test_similar_to_a_comedy_is_mostly_comedies(trained):
    home, *_ = trained
    hits = Recommender.load(home).similar(3, n=10)
    assert 3 not in hits.movie_ids
    assert sum(int(m) in COMEDIES for m in hits.movie_ids) >= 8


def test_recommend_gives_an_even_user_unseen_comedies(trained):
    home, version, dataset, split, *_ = trained
    rated = set(split.train.loc[split.train["user_id"] == 4, "movie_id"].tolist())
    assert set(Interactions.from_arrays(version.arrays("interactions")).of(4).tolist()) == rated
    hits = _recommend(home, 4, 5)
    assert len(hits.movie_ids) == 5
    assert not rated & set(hits.movie_ids.tolist())
    assert all(int(m) in COMEDIES for m in hits.movie_ids)
    odd = _recommend(home, 5, 5)
    assert sum(int(m) in COMEDIES for m in odd.movie_ids) <= 1


def test_also_liked_a_comedy_is_comedies(trained):
    home, *_ = trained
    hits = Recommender.load(home).also_liked(3, 5)
    assert 3 not in hits.movie_ids
    assert sum(int(m) in COMEDIES for m in hits.movie_ids) >= 4


def test_saved_files_follow_the_artifact_schema(trained):
    home, version, dataset, split, tm, metrics = trained
    on_disk = {p.name for p in version.path.iterdir()} - {"manifest.json"}
    want = {SCHEMA[k].file for k in ("keras_model", "text_model", "ranking", "interactions", "test_pairs",
                                      "training_curve")}
    assert on_disk == want == set(version.files)
    report = version.report()
    assert all(report[k]["state"] == "ok" for k in ("keras_model", "text_model", "ranking", "interactions"))
    assert version.manifest["dataset"] == "ml-100k" and version.manifest["purpose"] == "evaluation"
    assert version.manifest["dataset_checksum"]
    info = version.stage("train")
    assert info["config"]["name"] == "tiny" and info["dataset_checksum"] == version.manifest["dataset_checksum"]
    assert info["split"]["test"] == len(split.test) and info["metrics"]["rmse"] == metrics["rmse"]
    assert info["ranking"]["name"] == TINY.ranking_model == "ease+rating"
    assert info["ranking"]["params"]["lam"] in TINY.ease_lambdas  # chosen on the validation slice
    assert info["n_users"] == len(tm.vocab.user_ids) and info["vector_dim"] == TINY.vector_dim
    assert set(version.arrays("text_model")) == set(RATING_ARRAYS)
    # a model knows only its training ratings
    seen = Interactions.from_arrays(version.arrays("interactions"))
    assert len(seen.movie_ids) == len(split.train)
    users, movies, ratings = load_test_pairs(version)
    assert len(users) == len(split.test)
    np.testing.assert_array_equal(ratings, split.test["rating"].to_numpy(np.float32))


def _network(tm, users, movies):
    """The network's own clipped output (`TextModel.predict` may answer from the exported vectors)."""
    batch = {"user": tm.vocab.user_rows(users).astype(np.int32), "movie": tm.vocab.movie_rows(movies).astype(np.int32)}
    return np.clip(np.asarray(tm.model(batch, training=False)).reshape(-1), *tm.rating_range)


def test_numpy_read_side_predicts_like_the_network_without_tensorflow(trained):
    import subprocess
    import sys

    _, version, _, split, tm, _ = trained
    users, movies = split.test["user_id"].to_numpy()[:200], split.test["movie_id"].to_numpy()[:200]
    rating = RatingVectors.load(version)
    np.testing.assert_allclose(rating.predict(users, movies), _network(tm, users, movies), atol=1e-4)
    np.testing.assert_allclose(tm.predict(users, movies), _network(tm, users, movies), atol=1e-4)
    su, sm = rating.scoring_users, rating.scoring_movies
    dots = np.einsum("ij,ij->i", su.values[su.rows_of(users)], sm.values[sm.rows_of(movies)])
    np.testing.assert_allclose(np.clip(dots, 1, 5), _network(tm, users, movies), atol=1e-4)
    assert rating.users.dim == TINY.vector_dim and len(rating.movies) == len(tm.vocab.movie_ids)
    code = ("import sys\nfrom catalog import ModelVersion\nfrom text_model import RatingVectors, RankingVectors\n"
            f"v = ModelVersion.open({str(version.path)!r})\nr = RatingVectors.load(v)\n"
            "print(float(r.predict([2], [1])[0]))\nk = RankingVectors.load(v, r)\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    value, imported = out.stdout.strip().splitlines()
    assert imported == "False False"
    assert float(value) == pytest.approx(float(tm.predict([2], [1])[0]), abs=1e-4)


def test_ranking_vectors_dot_is_the_blended_score(trained):
    _, version, _, split, tm, _ = trained
    rating, ranking = _read_side(version)
    blend = tm.ranking
    assert ranking.name == blend.name == TINY.ranking_model and ranking.params == blend.params
    fu, fm = blend.implicit.vectors()
    u, m = 4, 7
    want = fu.get(u) @ fm.get(m) + blend.rating_weight * (rating.scoring_users.get(u) @ rating.scoring_movies.get(m))
    assert ranking.ranking_users.get(u) @ ranking.ranking_movies.get(m) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_save_load_round_trip_predicts_identically(trained):
    from text_model.model import TextModel

    _, version, _, split, tm, _ = trained
    again = TextModel.load(version)
    users, movies = split.test["user_id"].to_numpy(), split.test["movie_id"].to_numpy()
    np.testing.assert_array_equal(tm.predict(users, movies), again.predict(users, movies))
    assert again.config == tm.config and again.ranking.name == tm.ranking.name
    np.testing.assert_array_equal(again.vocab.encode_title("Laugh Night"), tm.vocab.encode_title("Laugh Night"))


def test_unknown_ids_raise(trained):
    _, version, _, _, tm, _ = trained
    with pytest.raises(UnknownUserError):
        tm.predict([999], [1])
    with pytest.raises(UnknownMovieError):
        tm.predict([2], [999])
    rating, ranking = _read_side(version)
    with pytest.raises(UnknownUserError):
        rating.predict([999], [1])
    with pytest.raises(UnknownMovieError):
        rating.predict([2], [999])
    with pytest.raises(UnknownMovieError):
        Recommender.load(trained[0]).similar(999)
    with pytest.raises(UnknownUserError):
        ranking.recommend(999)


def test_a_title_with_unseen_words_works(trained):
    _, version, _, _, tm, _ = trained
    vocab = tm.vocab
    rows = vocab.encode_title("Zzyzx Quux Laugh")
    assert rows[0] == OOV and rows[1] == OOV and rows[2] > OOV
    cnn = tm.model.get_layer("title_cnn")
    out = np.asarray(cnn(rows[None, :], training=False))
    assert out.shape == (1, TINY.cnn_filters * len(TINY.cnn_windows)) and np.isfinite(out).all()
    rating = RatingVectors.load(version)
    saved = Vocabulary.from_dict(rating.vocabulary, rating.user_ids, rating.movie_ids)
    np.testing.assert_array_equal(saved.encode_title("Zzyzx Quux Laugh"), rows)


def test_without_ranking_factors_recommend_ranks_by_predicted_rating(tmp_path, planted_home):
    """As the ``reference`` config does: no PureSVD, the ranking model is the rating alone."""
    from text_model.artifacts import save_trained
    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    split = make_split(dataset.ratings, "random-90-10", 0)
    config = TINY.with_overrides(epochs=1, ranking_factors=(), rating_weights=(1.0,), validation_fraction=0.0)
    tm = fit_text_model(dataset, split.train, config, seed=0, verbose=0, run_eagerly=True)
    store = ModelStore(planted_home)
    with store.new_version() as w:
        save_trained(w, tm, dataset, make_split(dataset.ratings, "random-90-10", 0), {}, planted_home)
    version = store.open_current()
    rating, ranking = _read_side(version)
    assert ranking.name == "rating" and version.stage("train")["ranking"]["name"] == "rating"
    hits = ranking.recommend(4, n=len(rating.movie_ids))
    scores = rating.scoring_users.get(4) @ rating.scoring_movies.subset(hits.movie_ids).values.T
    assert np.all(np.diff(scores) <= 1e-5)


def test_a_use_model_holds_no_test_pairs(tmp_path, planted_home):
    from catalog import Split
    from text_model.artifacts import save_trained
    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    split = Split("all", 0, dataset.ratings, dataset.ratings.iloc[:0])
    # and the large-data training step: sampled pooling with sparse (lazy) embedding updates
    config = TINY.with_overrides(epochs=1, ranking_factors=(8,), rating_weights=(0.1,), implicit_pooling="sampled",
                                 implicit_samples=8, embedding_updates="sparse")
    tm = fit_text_model(dataset, split.train, config, seed=0, verbose=0)
    assert tm.model.get_layer("user_implicit").pooling == "sampled"
    store = ModelStore(planted_home)
    with store.new_version() as w:
        save_trained(w, tm, dataset, split, {}, planted_home)
    version = store.open_current()
    assert version.manifest["purpose"] == "use" and not version.has("test_pairs")
    assert len(load_test_pairs(version)[0]) == 0
    from text_model.model import TextModel

    users, movies = dataset.ratings["user_id"].to_numpy()[:100], dataset.ratings["movie_id"].to_numpy()[:100]
    again = TextModel.load(version)  # inference pools exactly: the same predictions every call
    np.testing.assert_array_equal(again.predict(users, movies), tm.predict(users, movies))
    np.testing.assert_allclose(RatingVectors.load(version).predict(users, movies), tm.predict(users, movies), atol=1e-4)


def test_dataset_without_demographics_trains_with_the_fc_head(tmp_path, csv_dir):
    from text_model.model import TextModel
    from text_model.trainer import fit_text_model

    home = tmp_path / "home"
    fetch_dataset(home, "ml-latest-small", source=csv_dir)
    dataset = load_dataset(home, "ml-latest-small")
    assert not dataset.has_demographics
    split = make_split(dataset.ratings, "random-80-20", 0)
    config = TINY.with_overrides(epochs=1, validation_fraction=0.0, head="fc")
    tm = fit_text_model(dataset, split.train, config, seed=0, verbose=0, run_eagerly=True)
    pred = tm.predict(split.test["user_id"], split.test["movie_id"])
    assert pred.shape == (len(split.test),) and np.isfinite(pred).all()
    store = ModelStore(home)
    with store.new_version() as w:
        tm.save(w)
    version = store.open_current()
    again = TextModel.load(version)
    np.testing.assert_array_equal(again.predict(split.test["user_id"], split.test["movie_id"]), pred)
    rating = RatingVectors.load(version)  # the fc head: scoring vectors are the plain towers
    np.testing.assert_array_equal(rating.scoring_users.values, rating.users.values)
    with pytest.raises(ValueError, match="fc rating head"):
        rating.predict(split.test["user_id"][:1], split.test["movie_id"][:1])
