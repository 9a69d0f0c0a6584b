"""The text-model commands end to end through `posterec.cli.main` on the planted fixture."""
import json

import pytest

from posterec.cli import main

pytest.importorskip("keras")


@pytest.fixture
def trained_home(planted_home, monkeypatch):
    import text_model.config as config
    from text_model_helpers import TINY

    # the CLI offers the named configs; a tiny "best" keeps the test fast
    monkeypatch.setitem(config.CONFIGS, "best", TINY)
    assert main(["--home", str(planted_home), "train", "--dataset", "ml-100k", "--progress", "0",
                 "--epochs", "3", "--split", "random-80-20"]) == 0
    return planted_home


def test_train_evaluate_predict_and_queries(trained_home, tmp_path, capsys):
    home = str(trained_home)
    capsys.readouterr()
    assert main(["--home", home, "evaluate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("rmse", "mae", "hr_at_10", "ndcg_at_10", "coverage_at_10"):
        assert 0 <= report[key] < 5, key
    assert report["rmse"] < 1.2  # the planted ratings are easy: the global mean scores ~1.6
    assert "most_popular" in report
    assert main(["--home", home, "evaluate", "--json"]) == 0  # the leave-last-out fit is not redone
    again, err = capsys.readouterr()
    assert "leave-last-out metrics from" in err and json.loads(again)["hr_at_10"] == report["hr_at_10"]

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,movie_id\n2,1\n2,40\n3,1\n")
    out = tmp_path / "out.csv"
    assert main(["--home", home, "predict", "--pairs", str(pairs), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id,movie_id,prediction" and len(lines) == 4
    pred = {tuple(map(int, l.split(",")[:2])): float(l.split(",")[2]) for l in lines[1:]}
    assert pred[(2, 1)] > pred[(2, 40)]  # user 2 (even) prefers comedy 1 to horror 40

    capsys.readouterr()
    assert main(["--home", home, "similar", "3", "-n", "5", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert len(sim["results"]) == 5
    assert set(sim["results"][0]) >= {"movie_id", "title", "year", "genres", "score"}
    assert all(r["movie_id"] != 3 for r in sim["results"])
    assert main(["--home", home, "recommend", "4", "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert main(["--home", home, "also-liked", "3", "-n", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3

    # errors: unknown ids and bad files exit 1 with one line; a bad -n is a usage error (2)
    assert main(["--home", home, "similar", "999"]) == 1
    assert "movie 999" in capsys.readouterr().err
    assert main(["--home", home, "recommend", "999"]) == 1
    assert "user 999" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--home", home, "similar", "3", "-n", "0"])
    assert exc.value.code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("user,movie\n1,2\n")
    assert main(["--home", home, "predict", "--pairs", str(bad), "--out", str(tmp_path / "o.csv")]) == 1
    assert "user_id,movie_id" in capsys.readouterr().err
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("user_id,movie_id\n1,999\n")
    assert main(["--home", home, "predict", "--pairs", str(unknown), "--out", str(tmp_path / "o.csv")]) == 1
    assert "movie 999" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_evaluate_without_a_model(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "empty"), "evaluate"]) == 1
    assert "posterec --home" in capsys.readouterr().err
