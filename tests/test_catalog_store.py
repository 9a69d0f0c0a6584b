"""Model versions are immutable and CURRENT switches only when a version is complete."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import ArtifactError, ModelStore, UnknownMovieError, Vectors


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


def test_new_version_inherits_and_switches(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(ArtifactError, match="posterec .* train"):
        store.require_current()
    with store.new_version() as w:
        (w.path / "a.txt").write_text("one")
        w.manifest["stage_a"] = {"x": 1}
    first = store.require_current()
    with store.new_version() as w:
        assert (w.path / "a.txt").read_text() == "one"
        (w.path / "b.txt").write_text("two")
        w.manifest["stage_b"] = {"y": 2}
    second = store.require_current()
    assert second != first
    m = store.read_manifest(second)
    assert m["stage_a"] == {"x": 1} and m["stage_b"] == {"y": 2} and m["parent"] == first.name
    assert not (first / "b.txt").exists()  # the old version never changes


def test_failed_version_leaves_current(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version() as w:
        (w.path / "a.txt").write_text("one")
    before = store.current()
    with pytest.raises(RuntimeError):
        with store.new_version() as w:
            (w.path / "a.txt").unlink()
            raise RuntimeError("killed midway")
    assert store.current() == before
    assert (before / "a.txt").read_text() == "one"
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")] == []
