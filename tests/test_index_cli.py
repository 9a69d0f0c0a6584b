"""build-index / export-* on a home whose model versions the test writes itself."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from catalog import ModelStore, Vectors
from index import MovieIndex
from posterec.cli import main


def planted_blocks(n=60, seed=0):
    """Movies 1-30 'comedy' and 31-60 'horror' in both blocks; 61-64 poster only, 65-66 ratings only."""
    rng = np.random.default_rng(seed)
    kind = np.r_[np.zeros(30), np.ones(30), [0, 0, 1, 1], [0, 1]]
    ids = np.arange(1, 67)
    collab_v = np.stack([1 - 2 * kind, 0.1 * rng.normal(size=66), 0.1 * rng.normal(size=66)], axis=1)
    visual_v = 0.2 * rng.normal(size=(66, 5)) + np.outer(kind, [0, 0, 0, 0, 1.0]) + np.outer(1 - kind, [1.0, 0, 0, 0, 0])
    has_collab = np.r_[np.ones(60), np.zeros(4), np.ones(2)].astype(bool)
    has_visual = np.r_[np.ones(64), np.zeros(2)].astype(bool)
    return (Vectors(ids[has_collab], collab_v[has_collab]), Vectors(ids[has_visual], visual_v[has_visual]), kind)


def make_version(home, files: dict, manifest: dict | None = None):
    with ModelStore(home).new_version() as w:
        for name, vectors in files.items():
            vectors.save(w.path / name)
        w.manifest.update(manifest or {})
    return ModelStore(home).current()


def run(home, *argv):
    return main(["--home", str(home), *argv])


def test_build_index_uses_both_blocks_and_switches_current(tmp_path, capsys):
    home = tmp_path / "home"
    collab, visual, kind = planted_blocks()
    before = make_version(home, {"collab.npz": collab, "visual.npz": visual})
    assert run(home, "build-index", "--visual-weight", "0.5", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    store = ModelStore(home)
    current = store.current()
    assert current != before and out["version"] == current.name
    manifest = store.read_manifest(current)
    assert manifest["fusion"]["weights"] == {"collaborative": 0.5, "visual": 0.5}
    assert manifest["fusion"]["cold_start"]["estimated"] == 4  # movies 61-64 got collaborative estimates
    assert manifest["index"]["count"] == 66 and manifest["index"]["dim"] == 8
    fused = Vectors.load(current / "fused.npz")
    index = MovieIndex.load(current, dim=8)
    hits = index.search(fused.get(62), n=10, exclude=[62])  # a poster-only comedy
    assert (kind[hits.movie_ids - 1] == 0).all()
    assert not (before / "fused.npz").exists()  # the old version never changes


def test_build_index_with_one_block_says_what_it_used(tmp_path, capsys):
    home = tmp_path / "home"
    collab, _, _ = planted_blocks()
    make_version(home, {"collab.npz": collab})
    assert run(home, "build-index", "--kind", "hnsw") == 0
    out = capsys.readouterr().out
    assert "collaborative (62 x 3" in out and "not found: visual.npz" in out
    index = MovieIndex.load(ModelStore(home).current())
    assert index.dim == 3 and index.kind == "hnsw" and len(index) == 62


def test_build_index_without_any_vectors_fails_cleanly(tmp_path, capsys):
    home = tmp_path / "home"
    before = make_version(home, {})
    assert run(home, "build-index") == 1
    assert "neither collab.npz nor visual.npz" in capsys.readouterr().err
    assert ModelStore(home).current() == before


def test_add_only_adds_new_movies(tmp_path, capsys):
    home = tmp_path / "home"
    collab, visual, _ = planted_blocks()
    make_version(home, {"collab.npz": collab.subset(np.arange(1, 51)), "visual.npz": visual.subset(np.arange(1, 51))})
    assert run(home, "build-index", "--visual-weight", "0.3") == 0
    first = ModelStore(home).current()
    old_index = MovieIndex.load(first)
    make_version(home, {"collab.npz": collab, "visual.npz": visual})
    capsys.readouterr()
    assert run(home, "build-index", "--add") == 0
    assert "added 16 movies" in capsys.readouterr().out
    current = ModelStore(home).current()
    index = MovieIndex.load(current)
    assert len(index) == 66
    manifest = ModelStore.read_manifest(current)
    assert manifest["fusion"]["weights"]["visual"] == pytest.approx(0.3)
    np.testing.assert_array_equal(index.vectors(np.arange(1, 51)).values, old_index.vectors(np.arange(1, 51)).values)
    assert len(MovieIndex.load(first)) == 50  # the old version still serves its own index


def test_dimension_mismatch_leaves_current_serving(tmp_path, capsys):
    home = tmp_path / "home"
    collab, visual, _ = planted_blocks()
    make_version(home, {"collab.npz": collab, "visual.npz": visual})
    assert run(home, "build-index") == 0
    wider = Vectors(visual.ids, np.hstack([visual.values, visual.values]))
    served = make_version(home, {"visual.npz": wider})
    assert run(home, "build-index", "--add") == 1
    assert "dimension 8 but the fused vectors now have 13" in capsys.readouterr().err
    assert ModelStore(home).current() == served
    served2 = make_version(home, {}, {"vision": {"dim": 5}})
    assert run(home, "build-index") == 1
    assert "dimension 10 but the manifest's vision.dim is 5" in capsys.readouterr().err
    assert ModelStore(home).current() == served2


def test_failure_midway_leaves_current_and_no_debris(tmp_path, capsys, monkeypatch):
    import index.storage

    home = tmp_path / "home"
    collab, visual, _ = planted_blocks()
    make_version(home, {"collab.npz": collab, "visual.npz": visual})
    assert run(home, "build-index") == 0
    served = ModelStore(home).current()
    good = (served / "index.faiss").read_bytes()

    real_write = index.storage._write_atomic

    def crash_on_manifest(path, data):  # index.faiss gets replaced in staging, then the build dies
        if path.name == "index.json":
            raise RuntimeError("disk full (simulated)")
        real_write(path, data)

    monkeypatch.setattr(index.storage, "_write_atomic", crash_on_manifest)
    assert run(home, "build-index", "--visual-weight", "0.9") == 1
    assert "disk full" in capsys.readouterr().err
    assert ModelStore(home).current() == served
    assert (served / "index.faiss").read_bytes() == good
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".staging")]
    monkeypatch.undo()
    assert len(MovieIndex.load(served)) == 66


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_neighbours_every_movie_excluding_itself(tmp_path, capsys):
    home = tmp_path / "home"
    collab, visual, kind = planted_blocks()
    make_version(home, {"collab.npz": collab, "visual.npz": visual})
    out = tmp_path / "out" / "nb.csv"
    assert run(home, "export-neighbours", "--kind", "visual", "-n", "5", "--out", str(out)) == 0
    rows = read_csv(out)
    assert len(rows) == 64 * 5 and list(rows[0]) == ["movie_id", "rank", "neighbour_id", "score"]
    assert all(r["movie_id"] != r["neighbour_id"] for r in rows)
    assert all(kind[int(r["movie_id"]) - 1] == kind[int(r["neighbour_id"]) - 1] for r in rows)
    first = [r for r in rows if r["movie_id"] == "1"]
    assert [int(r["rank"]) for r in first] == [1, 2, 3, 4, 5]
    assert [float(r["score"]) for r in first] == sorted((float(r["score"]) for r in first), reverse=True)
    assert run(home, "export-neighbours", "--kind", "fused", "-n", "5", "--out", str(out)) == 1
    assert "fused.npz" in capsys.readouterr().err and len(read_csv(out)) == 64 * 5  # old file kept


def test_export_recommendations_excludes_seen(tmp_path):
    home = tmp_path / "home"
    rng = np.random.default_rng(0)
    users = Vectors(np.arange(1, 9), rng.normal(size=(8, 4)))
    movies = Vectors(np.arange(101, 131), rng.normal(size=(30, 4)))
    seen = {u: rng.choice(movies.ids, 10, replace=False) for u in users.ids}
    version = make_version(home, {"scoring_users.npz": users, "scoring_movies.npz": movies})
    seen_version = None
    with ModelStore(home).new_version() as w:
        np.savez(w.path / "seen.npz", user_ids=users.ids, indptr=np.arange(0, 90, 10),
                 movie_ids=np.concatenate([np.sort(seen[u]) for u in users.ids]))
        seen_version = w.path
    assert version != seen_version
    out = tmp_path / "recs.csv"
    assert run(home, "export-recommendations", "-n", "5", "--out", str(out)) == 0
    rows = read_csv(out)
    assert len(rows) == 8 * 5
    for u in users.ids:
        mine = [r for r in rows if int(r["user_id"]) == u]
        got = [int(r["movie_id"]) for r in mine]
        unseen = movies.subset(np.setdiff1d(movies.ids, seen[u]))
        scores = unseen.values @ users.get(u)
        want = unseen.ids[np.argsort(-scores)[:5]]
        assert got == want.tolist()
        np.testing.assert_allclose([float(r["score"]) for r in mine], np.sort(scores)[::-1][:5], rtol=1e-5)


def test_export_recommendations_needs_seen(tmp_path, capsys):
    home = tmp_path / "home"
    v = Vectors(np.arange(1, 4), np.eye(3))
    make_version(home, {"scoring_users.npz": v, "scoring_movies.npz": v})
    assert run(home, "export-recommendations", "-n", "2", "--out", str(tmp_path / "r.csv")) == 1
    assert "seen.npz: missing" in capsys.readouterr().err


def test_build_killed_midway_leaves_current_serving(tmp_path):
    """A real SIGKILL while the new version is half written: CURRENT and its index are untouched."""
    import os
    import signal
    import subprocess
    import sys

    home = tmp_path / "home"
    collab, visual, _ = planted_blocks()
    make_version(home, {"collab.npz": collab, "visual.npz": visual})
    assert run(home, "build-index") == 0
    served = ModelStore(home).current()
    code = ("import sys, time, index.storage as s\n"
            "real = s._write_atomic\n"
            "def slow(path, data):\n"
            "    real(path, data)\n"
            "    if path.name == 'index.faiss':\n"
            "        print('ready', flush=True); time.sleep(60)\n"
            "s._write_atomic = slow\n"
            "from posterec.cli import main\n"
            f"main(['--home', {str(home)!r}, 'build-index', '--visual-weight', '0.8'])\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert ModelStore(home).current() == served
    assert ModelStore.read_manifest(served)["fusion"]["weights"]["visual"] == pytest.approx(0.25)
    assert len(MovieIndex.load(served)) == 66
