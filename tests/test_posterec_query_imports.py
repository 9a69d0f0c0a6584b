"""The query commands (similar, lookalike, recommend, also-liked, info) import neither pandas nor
TensorFlow: each runs in a fresh interpreter over a planted model version, answers, and lists
the heavy packages it ended up importing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog import Vectors
from posterec.pipeline import build_index
from version_helpers import write_planted_version

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "tensorflow", "keras", "pyarrow")
PROBE = ("import json, sys, posterec.cli\n"
         "rc = posterec.cli.main(sys.argv[1:])\n"
         "print(json.dumps({'rc': rc, 'heavy': sorted({m.split('.')[0] for m in sys.modules} & set(%r))}))\n"
         % (HEAVY,))


@pytest.fixture
def home(planted_home, planted_data):
    ratings, movies, users = planted_data
    rng = np.random.default_rng(0)
    movie_ids = np.array([m for m, *_ in movies])
    user_ids = np.array([u for u, *_ in users])
    write_planted_version(planted_home, Vectors(user_ids, rng.normal(size=(len(user_ids), 8)).astype(np.float32)),
                          Vectors(movie_ids, rng.normal(size=(len(movie_ids), 8)).astype(np.float32)),
                          Vectors(movie_ids, rng.normal(size=(len(movie_ids), 16)).astype(np.float32)),
                          [r[:3] for r in ratings])
    build_index(planted_home, visual_weight=0.5)
    return planted_home


def run_query(home: Path, *argv: str) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", PROBE, "--home", str(home), *argv], capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    *answer, last = proc.stdout.strip().splitlines()
    return json.loads(last), "\n".join(answer)


@pytest.mark.parametrize("argv", [("similar", "3", "-n", "4"), ("lookalike", "3", "-n", "4"),
                                  ("recommend", "4", "-n", "4"), ("recommend", "--liked", "1,2", "-n", "4"),
                                  ("also-liked", "3", "-n", "4"), ("similar", "3", "--json"), ("info",)])
def test_a_query_command_imports_neither_pandas_nor_tensorflow(home, argv):
    probe, answer = run_query(home, *argv)
    assert probe == {"rc": 0, "heavy": []}
    assert answer  # it did answer


def test_the_movie_list_matches_the_pandas_frame(home):
    """The pandas-free catalogue the queries read is the one the training stages read."""
    from catalog import ModelStore
    from posterec.pipeline import movie_list_of, movies_of

    version = ModelStore(home).open_current()
    frame, listed = movies_of(home, version), movie_list_of(home, version)
    assert list(listed.movie_ids) == frame["movie_id"].tolist()
    assert list(listed.titles) == frame["title"].tolist()
    assert list(listed.genres) == [tuple(g) for g in frame["genres"]]
    assert list(listed.years) == [None if y is None or y != y else int(y) for y in frame["year"].astype("float64")]
