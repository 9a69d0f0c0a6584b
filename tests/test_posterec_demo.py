"""`posterec demo` end to end on the planted fixture: collaborative-only first, then with posters."""
from __future__ import annotations

import pytest

from conftest import shared_path
from posterec.cli import main
from test_vision_model_embed import poster_bytes

pytestmark = pytest.mark.slow


def test_demo_runs_each_stage_once(tmp_path, ml100k_dir, capsys, monkeypatch):
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    weights = shared_path("weights", "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5")
    home = tmp_path / "home"
    base = ["--home", str(home), "demo", "--dataset", "ml-100k", "--source", str(ml100k_dir),
            "--epochs", "2", "--no-serve"]

    assert main(base) == 0
    out = capsys.readouterr().out
    assert "running collaborative-only" in out
    assert "ratings only (no posters)" in out
    assert "Top 5 for user" in out and "Movies like" in out

    posters = tmp_path / "posters"
    posters.mkdir()
    for m in list(range(1, 31)) + list(range(31, 61)):  # comedies 'sun', horror 'stripes'; dramas none
        (posters / f"{m}.jpg").write_bytes(poster_bytes("sun" if m <= 30 else "stripes", m))
    assert main(base + ["--posters", str(posters), "--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "train: the rating model is current" in out   # not trained again
    assert "embed: no poster embeddings" in out and "posters embedded" in out
    assert "build-index: " in out and "movies indexed" in out
    assert "ratings + posters" in out and "Posters that look like" in out

    assert main(base + ["--posters", str(posters), "--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "all 60 from" in out and "embed: the poster embeddings are current" in out
    assert "build-index: the index is current" in out and "train: the rating model is current" in out
    assert "posters embedded" not in out and "movies indexed" not in out


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-100k"])
def test_demo_without_network_gives_the_offline_command_and_leaves_nothing(tmp_path, capsys, monkeypatch, dataset):
    monkeypatch.setenv("POSTEREC_DATA_URL", "http://127.0.0.1:9")  # nothing listens: as offline
    home = tmp_path / "home"
    assert main(["--home", str(home), "demo", "--dataset", dataset, "--no-serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'make demo DEMO_ARGS="--dataset ml-100k --source DIR"' in err[0]
    assert not home.exists() or not any(home.rglob("*"))
