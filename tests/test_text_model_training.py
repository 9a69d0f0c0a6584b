"""Training on the planted fixture: even users love comedies (1-30), odd users horror (31-60)."""
import numpy as np
import pytest

from catalog import UnknownMovieError, UnknownUserError, fetch_dataset, load_dataset, make_split
from text_model import QueryModel, Vocabulary
from text_model.vocabulary import OOV
from text_model_helpers import TINY

pytest.importorskip("keras")

COMEDIES = set(range(1, 31))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from movielens_fixture import write_ml100k
    from text_model.artifacts import write_version
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    root = tmp_path_factory.mktemp("text_model")
    home = root / "home"
    fetch_dataset(home, "ml-100k", source=write_ml100k(root / "src"))
    dataset = load_dataset(home, "ml-100k")
    split = make_split(dataset.ratings, "random-80-20", 0)
    tm = fit_text_model(dataset, split.train, TINY, seed=0, verbose=0)
    metrics = rating_metrics(tm, split.test["user_id"], split.test["movie_id"], split.test["rating"])
    folder = write_version(home, dataset, split, tm, metrics)
    return home, folder, dataset, split, tm, metrics


def test_it_learns_the_planted_ratings(trained):
    *_, metrics = trained
    # ratings are 4-5 vs 1-2 by genre: predicting the global mean gives an RMSE of about 1.6
    assert metrics["rmse"] < 1.0


def test_similar_to_a_comedy_is_mostly_comedies(trained):
    _, folder, *_ = trained
    hits = QueryModel.load(folder).similar(3, n=10)
    assert 3 not in hits.movie_ids
    assert sum(int(m) in COMEDIES for m in hits.movie_ids) >= 8


def test_recommend_gives_an_even_user_unseen_comedies(trained):
    _, folder, dataset, *_ = trained
    qm = QueryModel.load(folder)
    rated = set(dataset.ratings.loc[dataset.ratings["user_id"] == 4, "movie_id"].tolist())
    hits = qm.recommend(4, n=5)
    assert len(hits.movie_ids) == 5
    assert not rated & set(hits.movie_ids.tolist())
    assert all(int(m) in COMEDIES for m in hits.movie_ids)
    odd = qm.recommend(5, n=5)
    assert sum(int(m) in COMEDIES for m in odd.movie_ids) <= 1


def test_also_liked_a_comedy_is_comedies(trained):
    _, folder, *_ = trained
    hits = QueryModel.load(folder).also_liked(3, n=5)
    assert 3 not in hits.movie_ids
    assert sum(int(m) in COMEDIES for m in hits.movie_ids) >= 4


def test_saved_files_follow_the_artifact_contract(trained):
    from catalog import ModelStore, Vectors

    home, folder, _, split, tm, _ = trained
    for name in ("text_model.keras", "collab.npz", "users.npz", "scoring_users.npz", "scoring_movies.npz",
                 "seen.npz", "vocab.json", "training_curve.png", "test.npz"):
        assert (folder / name).stat().st_size > 0, name
    manifest = ModelStore(home).read_manifest(folder)
    assert manifest["dataset"] == "ml-100k"
    info = manifest["text_model"]
    assert info["config"]["name"] == "tiny" and info["dataset_checksum"] and info["split"]["test"] == len(split.test)
    su, sm = Vectors.load(folder / "scoring_users.npz"), Vectors.load(folder / "scoring_movies.npz")
    users, movies = split.test["user_id"].to_numpy()[:50], split.test["movie_id"].to_numpy()[:50]
    dots = np.einsum("ij,ij->i", su.values[su.rows_of(users)], sm.values[sm.rows_of(movies)])
    np.testing.assert_allclose(np.clip(dots, 1, 5), tm.predict(users, movies), atol=1e-4)


def test_save_load_round_trip_predicts_identically(trained):
    from text_model.trainer import TextModel

    _, folder, _, split, tm, _ = trained
    again = TextModel.load(folder)
    users, movies = split.test["user_id"].to_numpy(), split.test["movie_id"].to_numpy()
    np.testing.assert_array_equal(tm.predict(users, movies), again.predict(users, movies))
    assert again.config == tm.config


def test_unknown_ids_raise(trained):
    _, folder, _, _, tm, _ = trained
    with pytest.raises(UnknownUserError):
        tm.predict([999], [1])
    with pytest.raises(UnknownMovieError):
        tm.predict([2], [999])
    qm = QueryModel.load(folder)
    with pytest.raises(UnknownMovieError):
        qm.similar(999)
    with pytest.raises(UnknownUserError):
        qm.recommend(999)
    with pytest.raises(UnknownMovieError):
        qm.also_liked(999)


def test_a_title_with_unseen_words_works(trained):
    _, folder, _, _, tm, _ = trained
    vocab = tm.vocab
    rows = vocab.encode_title("Zzyzx Quux Laugh")
    assert rows[0] == OOV and rows[1] == OOV and rows[2] > OOV
    cnn = tm.model.get_layer("title_cnn")
    out = np.asarray(cnn(rows[None, :], training=False))
    assert out.shape == (1, TINY.cnn_filters * len(TINY.cnn_windows)) and np.isfinite(out).all()
    saved = Vocabulary.load(folder / "vocab.json")
    np.testing.assert_array_equal(saved.encode_title("Zzyzx Quux Laugh"), rows)


def test_dataset_without_demographics_trains_with_the_fc_head(tmp_path, csv_dir):
    from text_model.trainer import TextModel, fit_text_model

    home = tmp_path / "home"
    fetch_dataset(home, "ml-latest-small", source=csv_dir)
    dataset = load_dataset(home, "ml-latest-small")
    assert not dataset.has_demographics
    split = make_split(dataset.ratings, "random-80-20", 0)
    config = TINY.with_overrides(epochs=1, validation_fraction=0.0, head="fc")
    tm = fit_text_model(dataset, split.train, config, seed=0, verbose=0, run_eagerly=True)
    pred = tm.predict(split.test["user_id"], split.test["movie_id"])
    assert pred.shape == (len(split.test),) and np.isfinite(pred).all()
    tm.save(tmp_path / "model")
    again = TextModel.load(tmp_path / "model")
    np.testing.assert_array_equal(again.predict(split.test["user_id"], split.test["movie_id"]), pred)
