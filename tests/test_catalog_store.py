"""Model versions: immutable, listed with checksums, dependents dropped, CURRENT switched last."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from catalog import SCHEMA, ArtifactError, ModelStore, UnknownMovieError, Vectors
from catalog.version import dependents, read_manifest


def test_vectors_round_trip_and_lookup(tmp_path):
    v = Vectors(np.array([10, 3, 7]), np.arange(6, dtype=np.float64).reshape(3, 2))
    assert v.values.dtype == np.float32 and v.ids.dtype == np.int64
    v.save(tmp_path / "v.npz")
    w = Vectors.load(tmp_path / "v.npz")
    np.testing.assert_array_equal(w.ids, v.ids)
    np.testing.assert_array_equal(w.get(7), [4, 5])
    assert 3 in w and 4 not in w
    with pytest.raises(UnknownMovieError):
        w.rows_of([4])
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ArtifactError):
        Vectors.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="unique"):
        Vectors(np.array([1, 1]), np.zeros((2, 2)))


def _write(w, key, value=1.0):
    w.write_arrays(key, values=np.full(3, value, np.float32))


def test_new_version_inherits_records_and_switches(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(ArtifactError, match="posterec .* train"):
        store.open_current()
    with store.new_version() as w:
        _write(w, "visual")
        w.set_stage("embed", {"x": 1})
    first = store.open_current()
    with store.new_version() as w:
        assert w.has("visual")
        _write(w, "interactions")
    second = store.open_current()
    assert second.name != first.name and second.manifest["parent"] == first.name
    assert second.stage("embed") == {"x": 1}
    on_disk = sorted(p.name for p in second.path.iterdir() if p.name != "manifest.json")
    assert on_disk == sorted(second.files) == sorted([SCHEMA["visual"].file, SCHEMA["interactions"].file])
    for record in second.files.values():
        assert len(record["sha256"]) == 64 and record["bytes"] > 0 and "inputs" in record
    assert not first.has("interactions")  # the old version never changes
    assert not (first.path / SCHEMA["interactions"].file).exists()


def test_writing_an_artifact_drops_what_was_made_from_it(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        for key in ("text_model", "ranking", "visual", "cold_start", "index"):
            _write(w, key)
    assert set(dependents("text_model")) == {"cold_start", "index"}
    with store.new_version() as w:
        _write(w, "text_model", 2.0)  # a new train
        assert not w.has("index") and not w.has("cold_start") and w.has("visual")
    v = store.open_current()
    assert not v.has("index") and not v.has("cold_start")
    assert not (v.path / SCHEMA["index"].file).exists() and not (v.path / SCHEMA["cold_start"].file).exists()


def test_index_records_the_checksums_of_its_inputs(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        _write(w, "text_model")
        _write(w, "visual")
        _write(w, "index")
    v = store.open_current()
    inputs = v.files[SCHEMA["index"].file]["inputs"]
    assert inputs == {"text_model": v.files[SCHEMA["text_model"].file]["sha256"],
                      "visual": v.files[SCHEMA["visual"].file]["sha256"]}


@pytest.mark.parametrize("damage", ["delete", "truncate", "random"])
def test_a_damaged_file_is_an_error_naming_it(tmp_path, damage):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        _write(w, "visual")
    v = store.open_current()
    path = v.path / SCHEMA["visual"].file
    data = path.read_bytes()
    os.unlink(path)  # versions are hard-linked: replace, never write through
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    with pytest.raises(ArtifactError, match=r"visual\.npz.*posterec.* embed"):
        ModelStore(tmp_path).open_current().arrays("visual")
    assert ModelStore(tmp_path).open_current().report()["visual"]["state"] == "damaged"


@pytest.mark.parametrize("text", ["[1, 2]", "not json", '{"format": 1, "files": {}}', '{"format": 2, "files": []}'])
def test_a_foreign_manifest_is_an_error(tmp_path, text):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        _write(w, "visual")
    manifest = store.current() / "manifest.json"
    manifest.unlink()
    manifest.write_text(text)
    with pytest.raises(ArtifactError, match="manifest.json"):
        read_manifest(store.current())


def test_failed_version_leaves_current(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        _write(w, "visual")
    before = store.current()
    with pytest.raises(RuntimeError):
        with store.new_version() as w:
            w.drop("visual")
            raise RuntimeError("killed midway")
    assert store.current() == before
    assert (before / SCHEMA["visual"].file).exists()
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".staging")] == []


def test_a_killed_writer_leaves_staging_that_the_next_run_removes(tmp_path):
    code = ("import os, signal, numpy as np; from catalog import ModelStore\n"
            "with ModelStore(%r).new_version() as w:\n"
            "    w.write_arrays('visual', values=np.zeros(10**6, np.float32))\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n" % str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -9
    left = [p.name for p in (tmp_path / "models").glob(".staging-*")]
    assert len(left) == 1
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        assert [p.name for p in (tmp_path / "models").glob(".staging-*")] == [w.path.name]  # ours only
        _write(w, "visual")
    assert list((tmp_path / "models").glob(".staging-*")) == []
    assert store.current_name() is not None
    assert json.loads((store.current() / "manifest.json").read_text())["format"] == 2


def test_a_stage_run_again_carries_none_of_its_earlier_files(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        _write(w, "text_model")
        _write(w, "test_pairs")  # an evaluation model
        _write(w, "visual")
        w.set_stage("train", {"split": "random-80-20"})
    with store.new_version() as w:  # train again, on every rating: no test pairs this time
        w.start_stage("train")
        _write(w, "text_model", 2.0)
        w.set_stage("train", {"split": "none"})
    v = store.open_current()
    assert not v.has("test_pairs") and not (v.path / SCHEMA["test_pairs"].file).exists()
    assert v.has("visual") and v.stage("train") == {"split": "none"}
