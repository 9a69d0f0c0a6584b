"""Faults around model versions: kill -9 during `train`, then a rerun; spaces built once under load."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from catalog import ModelStore, Vectors
from posterec.cli import main
from posterec.pipeline import build_index
from posterec.recommender import Recommender
from version_helpers import write_planted_version

pytest.importorskip("keras")


def _cli(home, *argv):
    return [sys.executable, "-m", "posterec", "--home", str(home), *argv]


def test_kill_9_during_train_keeps_current_serving_and_a_rerun_completes(planted_home, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    train = _cli(planted_home, "train", "--dataset", "ml-100k", "--epochs", "1", "--progress", "0")
    assert subprocess.run(train, env=env, capture_output=True).returncode == 0
    served = ModelStore(planted_home).current_name()
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(1.0, 8.0)  # from start-up to writing the version
    proc = subprocess.Popen(train + ["--seed", "3"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    current = ModelStore(planted_home).current_name()
    assert current is not None, f"seed {seed}"
    if current == served:  # killed before the switch: the old version still answers
        assert main(["--home", str(planted_home), "recommend", "4", "-n", "3"]) == 0, f"seed {seed}"
    version = ModelStore(planted_home).open_current()
    assert version.report()["text_model"]["state"] == "ok", f"seed {seed}"
    assert subprocess.run(train + ["--seed", "3"], env=env, capture_output=True).returncode == 0
    assert list((planted_home / "models").glob(".staging-*")) == []  # the rerun removed the debris
    assert main(["--home", str(planted_home), "similar", "3", "-n", "3"]) == 0


@pytest.fixture
def planted_rec(planted_home):
    rng = np.random.default_rng(0)
    movies = Vectors(np.arange(1, 67), rng.normal(size=(66, 4)))
    users = Vectors(np.arange(1, 61), rng.normal(size=(60, 4)))
    write_planted_version(planted_home, users, movies, Vectors(np.arange(1, 67), rng.normal(size=(66, 6))),
                          [(1, 1, 5.0)])
    build_index(planted_home, visual_weight=0.25)
    return Recommender.load(planted_home)


def test_one_weight_is_fused_once_however_many_ask_at_once(planted_rec, monkeypatch):
    import fusion

    calls = []
    real = fusion.fuse

    def slow_fuse(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(fusion, "fuse", slow_fuse)
    threads = [threading.Thread(target=planted_rec.similar, args=(3, 5), kwargs={"visual_weight": w})
               for w in (0.6, 0.61, 0.62, 0.6, 0.59, 0.6)]  # all quantise to 0.6
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert planted_rec.similar(3, 5, visual_weight=0.25).movie_ids.tolist() == \
        planted_rec.similar(3, 5).movie_ids.tolist()  # the version's own index, no fusing
    assert len(calls) == 1


def test_the_space_cache_is_bounded(planted_rec):
    from posterec.recommender import SPACE_CACHE

    for w in np.linspace(0.0, 1.0, 21):
        planted_rec.similar(3, 3, visual_weight=float(w))
    assert len(planted_rec._spaces) <= SPACE_CACHE
