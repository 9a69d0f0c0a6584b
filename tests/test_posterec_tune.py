"""`posterec tune` on the planted fixture: a seeded Optuna study under the home, a table of
trials, the best config written where `train --config` reads it, and a resumed study."""
from __future__ import annotations

import json

import pytest

from catalog import ModelStore
from posterec.cli import main

pytest.importorskip("keras")
pytest.importorskip("optuna")


@pytest.fixture
def tiny_best(monkeypatch):
    import dataclasses

    import text_model.config as config
    from text_model_helpers import TINY

    monkeypatch.setitem(config.CONFIGS, "best", dataclasses.replace(TINY, name="best"))


@pytest.mark.slow
def test_tune_writes_the_config_train_reads_and_resumes(planted_home, tiny_best, capsys):
    home = str(planted_home)
    assert main(["--home", home, "tune", "--trials", "3", "--epochs", "1", "--progress", "0"]) == 0
    out = capsys.readouterr().out
    assert "0 trials done, 3 to run" in out and "rmse" in out and "hr@10" in out
    best = planted_home / "tune" / "best_config.json"
    chosen = json.loads(best.read_text())
    assert {"learning_rate", "vbpr_factors", "vbpr_item_dropout"} <= set(chosen)
    assert (planted_home / "tune" / "studies.db").is_file()

    assert main(["--home", home, "train", "--config", str(best), "--epochs", "1", "--progress", "0"]) == 0
    saved = ModelStore(planted_home).open_current().stage("train")["config"]
    assert saved["name"] == "tuned"
    for key, value in chosen.items():
        assert saved[key] == pytest.approx(value) if isinstance(value, float) else saved[key] == value
    assert saved["batch_size"] == 64  # the rest comes from the base config

    assert main(["--home", home, "tune", "--trials", "4", "--epochs", "1", "--progress", "0"]) == 0
    assert "3 trials done, 1 to run" in capsys.readouterr().out
    import optuna

    trials = optuna.load_study(study_name=None,
                               storage=f"sqlite:///{planted_home / 'tune' / 'studies.db'}").trials
    # the resumed trial is a new point, not the first run's trial 1 drawn again by a re-seeded sampler
    assert trials[3].params != trials[1].params


def test_a_bad_config_file_is_one_clear_error(planted_home, tmp_path, capsys):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"nope": 1}))
    assert main(["--home", str(planted_home), "train", "--config", str(bad), "--progress", "0"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "nope" in err


def test_the_first_trial_is_the_base_config_clipped_into_the_space():
    """tune enqueues the base config as trial 0, so its result is never worse than the base on validation."""
    from posterec.commands.tune import RANKING_SPACE, RATING_SPACE, base_point
    from text_model import TextModelConfig

    base = TextModelConfig()
    point = base_point(base, {**RATING_SPACE, **RANKING_SPACE})
    assert point["learning_rate"] == base.learning_rate and point["implicit_dim"] == base.implicit_dim
    assert point["vbpr_factors"] == base.vbpr_factors
    small = base_point(TextModelConfig(user_embedding_dim=4, l2=0.0), RATING_SPACE)
    assert small["user_embedding_dim"] == RATING_SPACE["user_embedding_dim"][1]
    assert small["l2"] == RATING_SPACE["l2"][1]


@pytest.mark.slow
def test_rating_only_on_a_random_slice_writes_rating_settings_alone(planted_home, tiny_best, capsys):
    home = str(planted_home)
    assert main(["--home", home, "tune", "--trials", "2", "--epochs", "1", "--progress", "0",
                 "--validation", "random", "--rating-only"]) == 0
    out = capsys.readouterr().out
    assert "-random-rating' in" in out and "0 trials done, 2 to run" in out
    assert "hr@10" not in out and "v_factors" not in out and "the base config's (--rating-only)" in out
    chosen = json.loads((planted_home / "tune" / "best_config.json").read_text())
    assert "learning_rate" in chosen and not any(k.startswith("vbpr_") for k in chosen)


def test_the_random_validation_slice_is_a_tenth_of_the_training_part():
    import numpy as np
    import pandas as pd

    from catalog.splits import random_split
    from posterec.commands.tune import VALIDATION_FRACTION

    train = pd.DataFrame({"user_id": np.repeat(np.arange(50), 20), "movie_id": np.tile(np.arange(20), 50),
                          "rating": 3.0, "timestamp": 0})
    fit_part, val = random_split(train, VALIDATION_FRACTION, 0)
    assert len(val) == 100 and len(fit_part) == 900
    both = pd.concat([fit_part, val])
    assert not both.duplicated(["user_id", "movie_id"]).any() and len(both) == len(train)
