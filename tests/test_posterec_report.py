"""``posterec report``: every section from generated inputs, and notes when inputs are missing."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from catalog import ModelStore, Vectors
from posterec.cli import main
from posterec.report import build_report


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def _section(text: str, title: str) -> str:
    start = text.index(f"<h2>{title}</h2>")
    end = text.find("<section>", start)
    return text[start:end if end != -1 else None]


@pytest.fixture
def model_home(planted_home):
    """The planted dataset plus a model version with metrics, history, visual.npz and posters."""
    from PIL import Image

    ids = np.arange(1, 61, dtype=np.int64)  # comedies 1-30 and horror 31-60 have posters
    rng = np.random.default_rng(0)
    centre = np.where(ids <= 30, 1.0, -1.0)[:, None]
    values = np.hstack([centre, rng.normal(0, 0.2, (60, 7))]).astype(np.float32)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    pdir = planted_home / "posters" / "ml-100k"
    pdir.mkdir(parents=True)
    for mid in ids:
        colour = (230, 200, 40) if mid <= 30 else (110, 10, 20)
        Image.new("RGB", (40, 60), colour).save(pdir / f"{mid}.jpg")
    with ModelStore(planted_home).new_version() as w:
        Vectors(ids, values).save(w.path / "visual.npz")
        w.manifest["dataset"] = "ml-100k"
        w.manifest["text_model"] = {"metrics": {"test": {"rmse": 0.91, "mae": 0.72}},
                                    "history": {"loss": [1.5, 1.1, 0.9], "val_loss": [1.6, 1.2, 1.0]},
                                    "epochs_run": 3}
    return planted_home


def test_report_has_every_section_with_plots(model_home, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "accuracy.jsonl").write_text(
        json.dumps({"when": "old", "models": {"popularity": {"rmse": 9.0}}}) + "\n" +
        json.dumps({"when": "new", "models": {"popularity": {"rmse": 1.02},
                                              "text_cnn": {"rmse": 0.91, "ndcg@10": 0.3}}}) + "\n")
    (results / "speed.jsonl").write_text(json.dumps({"requests_per_s": 800}) + "\n")
    text = build_report(model_home, results_dir=results)
    assert 'class="missing"' not in text
    ratings = _section(text, "Ratings")
    assert "ml-100k" in ratings and len(_images(ratings)) == 1
    training = _section(text, "Training")
    assert len(_images(training)) == 1 and "test.rmse" in training and "0.91" in training
    accuracy = _section(text, "Accuracy against baselines")
    assert "models.popularity.rmse" in accuracy and "1.02" in accuracy and "9.0" not in accuracy
    assert "requests_per_s" not in accuracy  # not an accuracy measure
    assert len(_images(accuracy)) == 1  # rmse reported by two models -> one bar chart
    assert len(_images(_section(text, "Poster embeddings (PCA)"))) == 1
    sheets = _section(text, "Look-alike contact sheets")
    assert len(_images(sheets)) == 3
    for png in _images(text):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_says_what_is_missing(tmp_path):
    text = build_report(tmp_path / "empty-home", results_dir=tmp_path / "no-results")
    assert text.count('class="missing"') == 5
    assert "Not measured" in text and "posterec train" in text and "posterec embed" in text
    assert _images(text) == []


def test_report_with_the_curve_png_but_no_history(planted_home, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with ModelStore(planted_home).new_version() as w:
        fig, ax = plt.subplots()
        ax.plot([1, 2], [2, 1])
        fig.savefig(w.path / "training_curve.png")
        plt.close(fig)
        w.manifest["text_model"] = {"metrics": {"rmse": 0.95}}
    text = build_report(planted_home, results_dir=tmp_path)
    training = _section(text, "Training")
    assert len(_images(training)) == 1 and "0.95" in training


def test_report_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["--home", str(tmp_path / "home"), "report", "--out", str(out),
                 "--results", str(tmp_path)]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert str(out) in capsys.readouterr().out


@pytest.mark.slow
def test_report_command_does_not_import_tensorflow(model_home, tmp_path):
    out = tmp_path / "report.html"
    code = ("import sys; from posterec.cli import main; "
            f"rc = main(['--home', {str(model_home)!r}, 'report', '--out', {str(out)!r}, "
            f"'--results', {str(tmp_path)!r}]); "
            "print(rc, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "False"]
    assert len(_images(out.read_text())) == 6  # no accuracy results: no bar chart
