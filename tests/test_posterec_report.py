"""``posterec report``: this model beside baselines fitted in the same run, and notes when inputs are missing."""
from __future__ import annotations

import base64
import re
import subprocess
import sys

import numpy as np
import pytest
from report_home import ROOT, trained_home

from catalog import ModelStore, load_dataset
from posterec import comparison
from posterec.cli import main
from posterec.comparison import CompareConfig, RankingTask, compare, hit_rate_ndcg
from posterec.report import build_report

TINY = CompareConfig(knn_k=10, svd_factors=8, svd_epochs=5, svdpp_factors=4, svdpp_epochs=3)


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def _section(text: str, section_id: str) -> str:
    start = text.index(f'<section id="{section_id}">')
    return text[start:text.index("</section>", start)]


def _table(text: str, table_id: str) -> dict[str, list[str]]:
    """{first cell: the other cells} of the table with that id."""
    start = text.index(f'<table id="{table_id}">')
    body = text[start:text.index("</table>", start)]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1]):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def evaluation_home(tmp_path_factory):
    return trained_home(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def evaluation_report(evaluation_home):
    pytest.importorskip("surprise", reason="scikit-surprise (the report extra) is not installed")
    return build_report(evaluation_home, config=TINY)


def test_report_puts_this_model_beside_baselines_fitted_in_the_same_run(evaluation_home, evaluation_report):
    from surprise import SVD, Dataset, Reader

    from catalog import Interactions
    from text_model.artifacts import load_test_pairs

    text = evaluation_report
    version = ModelStore(evaluation_home).open_current()
    table = _table(text, "comparison-table")
    assert {"text-CNN (this model)", "KNNBaseline (item-kNN)", "SVD", "SVD++", "most popular"} <= set(table)
    # the text-CNN's RMSE is this version's own, as measured by `train` on its test pairs
    assert table["text-CNN (this model)"][1] == f"{version.stage('train')['metrics']['rmse']:.4f}"
    for name in ("KNNBaseline (item-kNN)", "SVD", "SVD++"):
        assert re.fullmatch(r"\d\.\d{4}", table[name][1]), table[name]
    # SVD was fitted on this version's training ratings and measured on its test pairs: refit it here
    inter = Interactions.from_arrays(version.arrays("interactions"))
    users, movies, ratings = load_test_pairs(version)
    train_users = np.repeat(inter.user_ids, inter.user_counts())
    known = np.isin(users, train_users) & np.isin(movies, inter.movie_ids)
    import pandas as pd

    frame = pd.DataFrame({"user_id": train_users, "movie_id": inter.movie_ids, "rating": inter.ratings})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1.0, 5.0))).build_full_trainset()
    svd = SVD(n_factors=TINY.svd_factors, n_epochs=TINY.svd_epochs, random_state=TINY.seed).fit(trainset)
    pred = np.array([p.est for p in svd.test(list(zip(users[known], movies[known], ratings[known])))])
    assert table["SVD"][1] == f"{np.sqrt(np.mean((pred - ratings[known]) ** 2)):.4f}"
    # ranking columns: every ranker but the kNN has HR@10 and NDCG@10 in [0, 1]
    for name in ("text-CNN (this model)", "SVD", "SVD++", "most popular"):
        hr, ndcg = float(table[name][3]), float(table[name][4])
        assert 0 <= ndcg <= hr <= 1
    section = _section(text, "comparison")
    assert "this model&#x27;s own split (random-80-20, seed 0" in section
    assert len(_images(section)) == 2


def test_report_has_every_section_with_readable_plots(evaluation_report):
    import io

    from PIL import Image

    text = evaluation_report
    assert 'class="missing"' not in text
    assert "benchmarks/results" not in text
    counts = {"model": 0, "comparison": 2, "activity": 1, "popularity": 1, "training": 2, "ratings": 2,
              "poster-map": 1, "contact-sheets": 3}
    for section_id, n in counts.items():
        assert len(_images(_section(text, section_id))) == n, section_id
    activity = _table(text, "activity-table")
    assert set(activity) == {"text-CNN (this model)", "KNNBaseline (item-kNN)", "SVD", "SVD++"}
    assert "most popular" in _table(text, "popularity-table")
    for png in _images(text):
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and 300 <= im.width <= 1100 and im.height >= 150


@pytest.mark.parametrize("inherited_test_pairs", [False, True])
def test_a_model_for_use_is_not_measured_and_the_baselines_use_the_report_split(evaluation_home, tmp_path,
                                                                              inherited_test_pairs):
    """A model for use; with ``inherited_test_pairs`` it still lists its parent's test pairs, as
    `train --split none` on top of an evaluation version leaves them: it trained on them."""
    pytest.importorskip("surprise", reason="scikit-surprise (the report extra) is not installed")
    import shutil

    home = tmp_path / "use-home"
    shutil.copytree(evaluation_home, home)
    with ModelStore(home).new_version() as w:  # as if trained with --split none
        if not inherited_test_pairs:
            w.drop("test_pairs")
        w.manifest["purpose"] = "use"
        w.manifest["stages"]["train"]["split"] = {"name": "none", "seed": 0, "train": 2192, "test": 0}
        w.manifest["stages"]["train"]["metrics"] = {}
    text = build_report(home, config=TINY)
    section = _section(text, "comparison")
    assert "model for use" in section and "random-80-20, seed 0" in section
    assert "posterec train --split random-80-20 --seed 0" in section
    table = _table(text, "comparison-table")
    assert table["text-CNN (this model)"][1] == "—"
    assert re.fullmatch(r"\d\.\d{4}", table["SVD"][1])


def test_without_surprise_the_report_says_how_to_install_it(evaluation_home, monkeypatch):
    monkeypatch.setattr(comparison, "surprise_available", lambda: False)
    text = build_report(evaluation_home, config=TINY)
    section = _section(text, "comparison")
    assert "Surprise is not installed" in section and "pip install &#x27;posterec[report]&#x27;" in section
    table = _table(text, "comparison-table")
    assert "SVD" not in table and re.fullmatch(r"\d\.\d{4}", table["text-CNN (this model)"][1])


def test_no_baselines_flag_skips_them(evaluation_home, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["--home", str(evaluation_home), "report", "--out", str(out), "--no-baselines"]) == 0
    text = out.read_text()
    assert "skipped (--no-baselines)" in text and "SVD++" not in _table(text, "comparison-table")


def test_hit_rate_and_ndcg_known_answer():
    # user 0 likes column 2 and gets it first; user 1 likes columns 0 and 3 and gets 3 second
    task = RankingTask(users=np.array([10, 11]), movies=np.arange(4), seen=np.zeros((2, 4), bool),
                       pair_users=np.array([0, 1, 1]), pair_cols=np.array([2, 0, 3]))
    hr, ndcg = hit_rate_ndcg(task, np.array([[2, 1], [1, 3]]))
    ideal = 1 + 1 / np.log2(3)
    assert hr == 1.0 and ndcg == pytest.approx((1 + (1 / np.log2(3)) / ideal) / 2)


def test_svdpp_ranking_scores_are_surprise_estimates(evaluation_home):
    surprise = pytest.importorskip("surprise", reason="scikit-surprise is not installed")
    version = ModelStore(evaluation_home).open_current()
    data = comparison.evaluation_data(version, load_dataset(evaluation_home, "ml-100k"), TINY)
    task = comparison.ranking_task(data, TINY.liked)
    trainset = surprise.Dataset.load_from_df(data.train, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    for algo, plus in ((surprise.SVDpp(n_factors=4, n_epochs=3, random_state=0, cache_ratings=True), True),
                       (surprise.SVD(n_factors=4, n_epochs=3, random_state=0), False)):
        algo.fit(trainset)
        scores = comparison._factor_scores(task, algo, trainset, plus)(0, 3)
        for r in range(3):
            for c in (0, 5, 17):
                want = algo.estimate(trainset.to_inner_uid(int(task.users[r])),
                                     trainset.to_inner_iid(int(task.movies[c])))
                assert scores[r, c] == pytest.approx(want, rel=1e-9)


def test_activity_groups_cover_every_test_rating(evaluation_home):
    c = compare(ModelStore(evaluation_home).open_current(), load_dataset(evaluation_home, "ml-100k"),
                CompareConfig(baselines=False))
    labels, sizes, per_model = comparison.by_user_activity(c, 3)
    assert sum(sizes) == len(c.data.test) and len(labels) == len(sizes)
    assert set(per_model) == {"text-CNN (this model)"}
    labels, sizes, per_ranker = comparison.by_movie_popularity(c, 3)
    assert sum(sizes) == len(c.task.pair_cols) and "most popular" in per_ranker


def test_report_says_what_is_missing(tmp_path):
    text = build_report(tmp_path / "empty-home")
    assert text.count('class="missing"') == 6
    for hint in ("posterec train", "posterec embed", "posterec download"):
        assert hint in text
    assert _images(text) == []


def test_report_with_the_curve_png_but_no_history(planted_home):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(path):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [2, 1])
        fig.savefig(path, format="png")
        plt.close(fig)

    with ModelStore(planted_home).new_version() as w:
        w.write("training_curve", curve)
        w.manifest["dataset"] = "ml-100k"
        w.set_stage("train", {"metrics": {"rmse": 0.95}, "split": {"name": "none", "seed": 0}})
    text = build_report(planted_home, config=CompareConfig(baselines=False))
    assert len(_images(_section(text, "training"))) == 1
    assert "0.9500" in _section(text, "model")
    assert "no rating model" in _table(text, "comparison-table")["text-CNN (this model)"][-1]


def test_report_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["--home", str(tmp_path / "home"), "report", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert str(out) in capsys.readouterr().out


@pytest.mark.slow
def test_report_command_does_not_import_tensorflow(evaluation_home, tmp_path):
    out = tmp_path / "report.html"
    code = ("import sys; from posterec.cli import main; "
            f"rc = main(['--home', {str(evaluation_home)!r}, 'report', '--out', {str(out)!r}]); "
            "print(rc, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "False"]
    assert 'id="comparison-table"' in out.read_text()


def test_test_pairs_that_are_training_ratings_are_left_out_and_said(evaluation_home, tmp_path):
    import shutil

    import pandas as pd

    from catalog import Interactions
    from text_model.artifacts import load_test_pairs

    home = tmp_path / "leaky-home"
    shutil.copytree(evaluation_home, home)
    version = ModelStore(home).open_current()
    inter = Interactions.from_arrays(version.arrays("interactions"))
    users, movies, ratings = load_test_pairs(version)
    train = pd.DataFrame({"user_id": np.concatenate([np.repeat(inter.user_ids, inter.user_counts()), users[:5]]),
                          "movie_id": np.concatenate([inter.movie_ids, movies[:5]]),
                          "rating": np.concatenate([inter.ratings, ratings[:5]])})
    with ModelStore(home).new_version() as w:
        w.write_arrays("interactions", **Interactions.from_ratings(train).to_arrays())
    c = compare(ModelStore(home).open_current(), load_dataset(home, "ml-100k"), CompareConfig(baselines=False))
    assert c.data.trained_on == 5
    assert any("5 of this version's test pairs are also among its training ratings" in n for n in c.notes)
