"""save/load round trip, and clear ArtifactErrors for corrupt, truncated or mismatched files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from catalog import ArtifactError, Vectors
from index import MovieFilter, MovieIndex, MovieMetadata


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    return Vectors(np.arange(200, dtype=np.int64) * 3 + 1, rng.normal(size=(200, 12)).astype(np.float32))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_round_trip_gives_same_results(tmp_path, vectors, kind):
    meta = MovieMetadata.from_mapping({int(i): (("Drama",) if i % 2 else ("Comedy",), 1990) for i in vectors.ids})
    index = MovieIndex.build(vectors, kind=kind, metadata=meta)
    manifest = index.save(tmp_path)
    assert manifest["dim"] == 12 and manifest["count"] == 200 and manifest["kind"] == kind
    assert json.loads((tmp_path / "index.json").read_text())["file_sha256"] == manifest["file_sha256"]
    loaded = MovieIndex.load(tmp_path, dim=12)
    q = vectors.values[:5]
    a, b = index.search(q, n=7), loaded.search(q, n=7)
    np.testing.assert_array_equal(a.movie_ids, b.movie_ids)
    np.testing.assert_allclose(a.scores, b.scores)
    spec = MovieFilter(genres="Comedy")
    np.testing.assert_array_equal(loaded.search(q, 5, filter=spec).movie_ids, index.search(q, 5, filter=spec).movie_ids)
    assert loaded.config == index.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "index.json", "index_metadata.json"]


def test_dimension_mismatch_is_refused(tmp_path, vectors):
    MovieIndex.build(vectors).save(tmp_path)
    with pytest.raises(ArtifactError, match="dimension 12 but the queries have 64"):
        MovieIndex.load(tmp_path, dim=64)


def test_corrupted_file_is_refused(tmp_path, vectors):
    MovieIndex.build(vectors).save(tmp_path)
    data = bytearray((tmp_path / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupted"):
        MovieIndex.load(tmp_path)


def test_truncated_file_is_refused(tmp_path, vectors):
    MovieIndex.build(vectors).save(tmp_path)
    data = (tmp_path / "index.faiss").read_bytes()
    (tmp_path / "index.faiss").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="truncated"):
        MovieIndex.load(tmp_path)


def test_garbage_with_matching_manifest_is_refused(tmp_path, vectors):
    import hashlib

    MovieIndex.build(vectors).save(tmp_path)
    junk = b"not a faiss index" * 10
    (tmp_path / "index.faiss").write_bytes(junk)
    manifest = json.loads((tmp_path / "index.json").read_text())
    manifest.update(file_bytes=len(junk), file_sha256=hashlib.sha256(junk).hexdigest())
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not a readable FAISS index"):
        MovieIndex.load(tmp_path)


def test_missing_or_broken_manifest(tmp_path, vectors):
    with pytest.raises(ArtifactError, match="index.json: missing"):
        MovieIndex.load(tmp_path)
    MovieIndex.build(vectors).save(tmp_path)
    (tmp_path / "index.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        MovieIndex.load(tmp_path)


def test_save_never_writes_into_a_hard_linked_file(tmp_path, vectors):
    import os

    old, new = tmp_path / "old", tmp_path / "new"
    MovieIndex.build(vectors).save(old)
    new.mkdir()
    for name in ("index.faiss", "index.json"):
        os.link(old / name, new / name)
    before = (old / "index.faiss").read_bytes()
    MovieIndex.build(vectors.subset(vectors.ids[:50])).save(new)
    assert (old / "index.faiss").read_bytes() == before
    assert len(MovieIndex.load(old)) == 200 and len(MovieIndex.load(new)) == 50
