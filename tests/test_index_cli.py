"""build-index / export-* on a home whose model versions the test writes through the stage writers."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from catalog import ModelStore, Vectors
from index import MovieIndex, MovieMetadata
from posterec.cli import main
from posterec.pipeline import visual_vectors
from version_helpers import write_planted_version


def planted_blocks(seed=0):
    """Movies 1-30 'comedy' and 31-60 'horror' in both blocks; 61-64 poster only, 65-66 ratings only."""
    rng = np.random.default_rng(seed)
    kind = np.r_[np.zeros(30), np.ones(30), [0, 0, 1, 1], [0, 1]]
    ids = np.arange(1, 67)
    collab_v = np.stack([1 - 2 * kind, 0.1 * rng.normal(size=66), 0.1 * rng.normal(size=66)], axis=1)
    visual_v = 0.2 * rng.normal(size=(66, 5)) + np.outer(kind, [0, 0, 0, 0, 1.0]) + np.outer(1 - kind, [1.0, 0, 0, 0, 0])
    has_collab = np.r_[np.ones(60), np.zeros(4), np.ones(2)].astype(bool)
    has_visual = np.r_[np.ones(64), np.zeros(2)].astype(bool)
    return (Vectors(ids[has_collab], collab_v[has_collab]), Vectors(ids[has_visual], visual_v[has_visual]), kind)


USERS = Vectors(np.arange(1, 9), np.eye(3, dtype=np.float32)[np.arange(8) % 3])


def make_version(home, collab=None, visual=None, ratings=None):
    return write_planted_version(home, USERS if collab is not None else None, collab, visual,
                                 ratings if ratings is not None else [(1, 1, 5.0)])


def run(home, *argv):
    return main(["--home", str(home), *argv])


def load_index(version):
    entry = version.stage("build-index")["index"]
    return MovieIndex.load(version, entry, MovieMetadata.from_mapping({}))


def test_build_index_uses_both_blocks_and_switches_current(planted_home, capsys):
    collab, visual, kind = planted_blocks()
    before = make_version(planted_home, collab, visual)
    assert run(planted_home, "build-index", "--visual-weight", "0.5", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    current = ModelStore(planted_home).open_current()
    assert current.name != before.name and out["version"] == current.name
    built = current.stage("build-index")
    assert built["fusion"]["weights"] == {"collaborative": 0.5, "visual": 0.5}
    assert built["cold_start"]["estimated"] == 4  # movies 61-64 got collaborative estimates
    assert built["index"]["count"] == 66 and built["index"]["dim"] == 8
    index = load_index(current)
    hits = index.search(index.vectors([62]).values[0], n=10, exclude=[62])  # a poster-only comedy
    assert (kind[hits.movie_ids - 1] == 0).all()
    assert not before.has("index")  # the old version never changes


def test_build_index_with_one_block_says_what_it_used(planted_home, capsys):
    collab, _, _ = planted_blocks()
    make_version(planted_home, collab)
    assert run(planted_home, "build-index", "--kind", "hnsw") == 0
    out = capsys.readouterr().out
    assert "collaborative (62 x 3" in out and "not found: visual vectors" in out
    index = load_index(ModelStore(planted_home).open_current())
    assert index.dim == 3 and index.kind == "hnsw" and len(index) == 62


def test_build_index_without_any_vectors_fails_cleanly(planted_home, capsys):
    before = make_version(planted_home)
    assert run(planted_home, "build-index") == 1
    assert "no rating model and no poster embeddings" in capsys.readouterr().err
    assert ModelStore(planted_home).current_name() == before.name


def test_add_only_adds_new_movies(planted_home, capsys):
    collab, visual, _ = planted_blocks()
    make_version(planted_home, collab.subset(np.arange(1, 51)), visual.subset(np.arange(1, 51)))
    assert run(planted_home, "build-index", "--visual-weight", "0.3") == 0
    first = ModelStore(planted_home).open_current()
    old_index = load_index(first)
    make_version(planted_home, collab, visual)  # more movies arrive: the new version has no index
    assert not ModelStore(planted_home).open_current().has("index")
    capsys.readouterr()
    assert run(planted_home, "build-index", "--add") == 0
    assert "added 16 movies" in capsys.readouterr().out
    current = ModelStore(planted_home).open_current()
    index = load_index(current)
    assert len(index) == 66
    assert current.stage("build-index")["visual_weight"] == pytest.approx(0.3)
    np.testing.assert_array_equal(index.vectors(np.arange(1, 51)).values, old_index.vectors(np.arange(1, 51)).values)
    assert len(load_index(first)) == 50  # the old version still serves its own index
    make_version(planted_home, Vectors(collab.ids, -collab.values), visual)  # other vectors: no --add
    assert run(planted_home, "build-index", "--add") == 1
    assert "have changed since it was built" in capsys.readouterr().err


def test_failure_midway_leaves_current_and_no_debris(planted_home, capsys, monkeypatch):
    import index.storage

    collab, visual, _ = planted_blocks()
    make_version(planted_home, collab, visual)
    assert run(planted_home, "build-index") == 0
    served = ModelStore(planted_home).open_current()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(index.storage, "save_index", crash)
    assert run(planted_home, "build-index", "--visual-weight", "0.9") == 1
    assert "disk full" in capsys.readouterr().err
    assert ModelStore(planted_home).current_name() == served.name
    assert not [p for p in (planted_home / "models").iterdir() if p.name.startswith(".staging")]
    monkeypatch.undo()
    assert len(load_index(ModelStore(planted_home).open_current())) == 66


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_neighbours_every_movie_excluding_itself(planted_home, capsys, tmp_path):
    collab, visual, kind = planted_blocks()
    make_version(planted_home, collab, visual)
    out = tmp_path / "out" / "nb.csv"
    assert run(planted_home, "export-neighbours", "--kind", "visual", "-n", "5", "--out", str(out)) == 0
    rows = read_csv(out)
    assert len(rows) == 64 * 5 and list(rows[0]) == ["movie_id", "rank", "neighbour_id", "score"]
    assert all(r["movie_id"] != r["neighbour_id"] for r in rows)
    assert all(kind[int(r["movie_id"]) - 1] == kind[int(r["neighbour_id"]) - 1] for r in rows)
    first = [r for r in rows if r["movie_id"] == "1"]
    assert [int(r["rank"]) for r in first] == [1, 2, 3, 4, 5]
    assert [float(r["score"]) for r in first] == sorted((float(r["score"]) for r in first), reverse=True)
    with ModelStore(planted_home).new_version() as w:  # a version without posters
        w.drop("visual")
    assert run(planted_home, "export-neighbours", "--kind", "visual", "-n", "5", "--out", str(out)) == 1
    assert "no visual vectors" in capsys.readouterr().err and len(read_csv(out)) == 64 * 5  # old file kept


def test_export_recommendations_excludes_seen(planted_home, tmp_path):
    rng = np.random.default_rng(0)
    users = Vectors(np.arange(1, 9), rng.normal(size=(8, 4)))
    movies = Vectors(np.arange(1, 31), rng.normal(size=(30, 4)))
    seen = {int(u): rng.choice(movies.ids, 10, replace=False) for u in users.ids}
    write_planted_version(planted_home, users, movies, None, [(u, m, 4.0) for u, ms in seen.items() for m in ms])
    out = tmp_path / "recs.csv"
    for by in ("ranking", "rating"):  # ranked by the rating alone here, so both agree
        assert run(planted_home, "export-recommendations", "-n", "5", "--by", by, "--out", str(out)) == 0
        rows = read_csv(out)
        assert len(rows) == 8 * 5
        for u in users.ids:
            mine = [r for r in rows if int(r["user_id"]) == u]
            unseen = movies.subset(np.setdiff1d(movies.ids, seen[int(u)]))
            scores = unseen.values @ users.get(u)
            assert [int(r["movie_id"]) for r in mine] == unseen.ids[np.argsort(-scores)[:5]].tolist()
            np.testing.assert_allclose([float(r["score"]) for r in mine], np.sort(scores)[::-1][:5], rtol=1e-5)


def test_build_killed_midway_leaves_current_serving(planted_home):
    """A real SIGKILL while the new version is half written: CURRENT and its index are untouched."""
    collab, visual, _ = planted_blocks()
    make_version(planted_home, collab, visual)
    assert run(planted_home, "build-index") == 0
    served = ModelStore(planted_home).open_current()
    code = ("import time, index.storage as s\n"
            "real = s.save_index\n"
            "def slow(*a, **k):\n"
            "    out = real(*a, **k)\n"
            "    print('ready', flush=True); time.sleep(60)\n"
            "    return out\n"
            "s.save_index = slow\n"
            "from posterec.cli import main\n"
            f"main(['--home', {str(planted_home)!r}, 'build-index', '--visual-weight', '0.8'])\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert ModelStore(planted_home).current_name() == served.name
    assert served.stage("build-index")["visual_weight"] == pytest.approx(0.25)
    assert len(load_index(served)) == 66
    assert len(list((planted_home / "models").glob(".staging-*"))) == 1
    make_version(planted_home, collab, visual_vectors(served))  # the next writer cleans it up
    assert list((planted_home / "models").glob(".staging-*")) == []


def _recs_version(home, n_users=40):
    rng = np.random.default_rng(1)
    users = Vectors(np.arange(1, n_users + 1), rng.normal(size=(n_users, 4)))
    movies = Vectors(np.arange(1, 31), rng.normal(size=(30, 4)))
    seen = [(int(u), int(m), 4.0) for u in users.ids for m in rng.choice(movies.ids, 5, replace=False)]
    write_planted_version(home, users, movies, None, seen)


def test_export_recommendations_resumes_after_an_interruption(planted_home, tmp_path, monkeypatch):
    """Killed after some chunks, a rerun continues after the last complete chunk and writes the
    same file, byte for byte, as one uninterrupted run; stale chunks of another setting are dropped."""
    from posterec.commands import index as index_cmd
    from posterec.recommender import Recommender

    _recs_version(planted_home)
    # the "auto" exact route is picked by a timing, which differs between processes: pinned to numpy
    faiss_calls = []
    real_faiss_top = MovieIndex._faiss_top
    monkeypatch.setattr(MovieIndex, "_faiss_top", lambda self, *a: faiss_calls.append(1) or real_faiss_top(self, *a))
    monkeypatch.setattr(MovieIndex, "_auto_route", lambda self, *a, **k: ("faiss", None))  # "faiss is faster"
    monkeypatch.setattr(index_cmd, "CHUNK_USERS", 8)  # 5 chunks of 8 users
    monkeypatch.setattr(index_cmd, "BATCH", 3)        # 3 batches per chunk
    whole, out = tmp_path / "whole.csv", tmp_path / "out" / "recs.csv"
    assert run(planted_home, "export-recommendations", "-n", "4", "--out", str(whole)) == 0
    assert not (tmp_path / ".whole.csv.parts").exists()  # checkpoints removed once joined

    original, calls = Recommender.recommend_many, []

    def interrupted(self, ids, n=10, by="ranking"):
        calls.append(list(ids))
        if len(calls) == 8:  # the 3rd chunk's 2nd batch: chunks 0 and 1 complete
            raise KeyboardInterrupt
        return original(self, ids, n, by)

    monkeypatch.setattr(Recommender, "recommend_many", interrupted)
    assert run(planted_home, "export-recommendations", "-n", "4", "--out", str(out)) == 130  # Ctrl-C
    parts = out.with_name(".recs.csv.parts")
    assert not out.exists() and sorted(p.name for p in parts.glob("part-*")) == ["part-000000.csv", "part-000001.csv"]
    assert not [p for p in parts.iterdir() if p.name.endswith(".tmp")]  # the torn chunk left nothing

    calls.clear()
    monkeypatch.setattr(Recommender, "recommend_many", lambda self, ids, n=10, by="ranking":
                        calls.append(list(ids)) or original(self, ids, n, by))
    assert run(planted_home, "export-recommendations", "-n", "4", "--out", str(out)) == 0
    assert calls[0][0] == 17 and sum(map(len, calls)) == 40 - 16  # only chunks 2, 3, 4 were computed
    assert out.read_bytes() == whole.read_bytes() and not parts.exists()

    # chunks left by a run with other settings (-n 4) are not reused for -n 3
    monkeypatch.setattr(Recommender, "recommend_many", interrupted)
    calls.clear()
    assert run(planted_home, "export-recommendations", "-n", "4", "--out", str(out)) == 130
    monkeypatch.setattr(Recommender, "recommend_many", original)
    assert run(planted_home, "export-recommendations", "-n", "3", "--out", str(out)) == 0
    three = tmp_path / "three.csv"
    assert run(planted_home, "export-recommendations", "-n", "3", "--out", str(three)) == 0
    assert out.read_bytes() == three.read_bytes() and len(read_csv(out)) == 40 * 3
    assert not faiss_calls  # every chunk searched by the same (numpy) route


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_add_to_an_approximate_index(planted_home, capsys, kind):
    collab, visual, _ = planted_blocks()
    make_version(planted_home, collab.subset(np.arange(1, 51)), visual.subset(np.arange(1, 51)))
    assert run(planted_home, "build-index", "--kind", kind) == 0
    if kind == "ivfpq":  # the full vectors refine reads are reported, not just the codes
        assert "of them scanned per search" in capsys.readouterr().out
    make_version(planted_home, collab, visual)
    capsys.readouterr()
    assert run(planted_home, "build-index", "--add") == 0, capsys.readouterr().err
    assert "added 16 movies" in capsys.readouterr().out
    index = load_index(ModelStore(planted_home).open_current())
    assert index.kind == kind and len(index) == 66
    make_version(planted_home, Vectors(collab.ids, -collab.values), visual)  # changed vectors are still caught
    assert run(planted_home, "build-index", "--add") == 1
    assert "have changed since it was built" in capsys.readouterr().err
