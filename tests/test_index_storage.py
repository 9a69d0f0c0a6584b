"""MovieIndex.save/load through a real model version; a truncated, foreign or mismatched index is an ArtifactError."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from catalog import SCHEMA, ArtifactError, ModelStore, Vectors
from index import BruteForce, MovieFilter, MovieIndex, MovieMetadata, check_hits

INDEX_FILE = SCHEMA["index"].file


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    return Vectors(np.arange(200, dtype=np.int64) * 3 + 1, rng.normal(size=(200, 12)).astype(np.float32))


def saved(home, index, stage_entry=None):
    """Write ``index`` into a new version of ``home``; the version and the entry save returned."""
    store = ModelStore(home)
    with store.new_version() as writer:
        entry = index.save(writer)
        writer.set_stage("build-index", {"index": entry} if stage_entry is None else stage_entry)
    return store.open_current(), entry


def written(home, data: bytes):
    """A version whose index file is ``data``, listed in the manifest with its true sha256 and size."""
    store = ModelStore(home)
    with store.new_version() as writer:
        writer.write("index", lambda tmp: tmp.write_bytes(data))
    return store.open_current()


def metadata_of(ids):
    return MovieMetadata.from_mapping({int(i): (("Drama",) if i % 2 else ("Comedy",), 1990) for i in ids})


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("normalize", [True, False])
def test_round_trip_gives_same_results(tmp_path, vectors, kind, normalize):
    index = MovieIndex.build(vectors, kind=kind, normalize=normalize)
    version, entry = saved(tmp_path, index)
    assert entry == index.describe()
    assert {k: entry[k] for k in ("dim", "count", "kind", "normalize")} == \
        {"dim": 12, "count": 200, "kind": kind, "normalize": normalize}
    assert entry["metric"] == ("cosine" if normalize else "inner_product") and len(entry["ids_sha256"]) == 64
    assert sorted(p.name for p in version.path.iterdir()) == sorted([INDEX_FILE, "manifest.json"])
    assert version.stage("build-index")["index"] == entry
    loaded = MovieIndex.load(version, version.stage("build-index")["index"], metadata=metadata_of(vectors.ids))
    assert loaded.config == index.config and loaded.movie_ids.tolist() == vectors.ids.tolist()
    q = vectors.values[:25]
    check_hits(loaded.search(q, n=7), index.search(q, n=7))
    spec = MovieFilter(genres="Comedy")
    check_hits(loaded.search(q, n=5, filter=spec),
               BruteForce.build(vectors, normalize, metadata_of(vectors.ids)).search(q, n=5, filter=spec))
    with pytest.raises(ValueError, match="metadata"):
        MovieIndex.load(version, entry).search(q[0], n=5, filter=spec)


def test_truncated_file_written_into_the_version_is_an_artifact_error(tmp_path, vectors):
    index = MovieIndex.build(vectors)
    data = faiss.serialize_index(index._index).tobytes()
    version = written(tmp_path, data[: len(data) // 3])
    with pytest.raises(ArtifactError, match=rf"{INDEX_FILE}: not a readable FAISS index.*build-index") as err:
        MovieIndex.load(version, index.describe())
    assert str(version.path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("junk", [b"", b"not a faiss index" * 10, np.random.default_rng(1).bytes(5000)])
def test_foreign_bytes_are_an_artifact_error(tmp_path, vectors, junk):
    index = MovieIndex.build(vectors)
    version = written(tmp_path, junk)
    with pytest.raises(ArtifactError, match=f"{INDEX_FILE}: not a readable FAISS index"):
        MovieIndex.load(version, index.describe())


def test_foreign_faiss_indexes_are_artifact_errors(tmp_path, vectors):
    entry = MovieIndex.build(vectors).describe()
    bare = faiss.IndexFlatIP(12)
    bare.add(vectors.values)
    version = written(tmp_path / "a", faiss.serialize_index(bare).tobytes())
    with pytest.raises(ArtifactError, match="IndexFlatIP, not the IndexIDMap2"):
        MovieIndex.load(version, entry)
    l2 = faiss.IndexIDMap2(faiss.IndexFlatL2(12))
    l2.add_with_ids(vectors.values, vectors.ids)
    version = written(tmp_path / "b", faiss.serialize_index(l2).tobytes())
    with pytest.raises(ArtifactError, match="not the inner-product flat index"):
        MovieIndex.load(version, entry)


def test_file_changed_after_writing_is_an_artifact_error(tmp_path, vectors):
    version, entry = saved(tmp_path, MovieIndex.build(vectors))
    path = version.path / INDEX_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated or replaced"):
        MovieIndex.load(version, entry)
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(ArtifactError, match="sha256"):
        MovieIndex.load(ModelStore(tmp_path).open_current(), entry)
    path.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        MovieIndex.load(ModelStore(tmp_path).open_current(), entry)


def test_entry_that_does_not_match_the_file_is_an_artifact_error(tmp_path, vectors):
    version, entry = saved(tmp_path, MovieIndex.build(vectors))
    other = MovieIndex.build(vectors.subset(vectors.ids[:50])).describe()
    with pytest.raises(ArtifactError, match="holds 200 vectors of dimension 12 but its manifest entry says 50"):
        MovieIndex.load(version, other)
    shuffled = MovieIndex.build(vectors.subset(vectors.ids[::-1])).describe()
    with pytest.raises(ArtifactError, match="other ids"):
        MovieIndex.load(version, shuffled)
    with pytest.raises(ArtifactError, match="holds a FAISS IndexFlatIP"):
        MovieIndex.load(version, MovieIndex.build(vectors, kind="hnsw").describe())
    with pytest.raises(ArtifactError, match="lacks count, ids_sha256"):
        MovieIndex.load(version, {k: v for k, v in entry.items() if k not in ("count", "ids_sha256")})
    with pytest.raises(ArtifactError, match="not an object"):
        MovieIndex.load(version, [entry])
    with pytest.raises(ArtifactError, match="bad config"):
        MovieIndex.load(version, dict(entry, config=dict(entry["config"], colour="red")))
    with pytest.raises(ArtifactError, match="kind 'hnsw'"):
        MovieIndex.load(version, dict(entry, kind="hnsw"))


def test_version_without_an_index_says_how_to_make_one(tmp_path, vectors):
    store = ModelStore(tmp_path)
    with store.new_version() as writer:
        writer.write_arrays("visual", ids=vectors.ids, values=vectors.values)
    with pytest.raises(ArtifactError, match=f"{INDEX_FILE}: not in model version.*build-index"):
        MovieIndex.load(store.open_current(), MovieIndex.build(vectors).describe())


def test_new_visual_vectors_drop_the_old_index(tmp_path, vectors):
    store = ModelStore(tmp_path)
    saved(tmp_path, MovieIndex.build(vectors))
    with store.new_version() as writer:
        writer.write_arrays("visual", ids=vectors.ids, values=vectors.values)
    version = store.open_current()
    assert not version.has("index") and not (version.path / INDEX_FILE).exists()


def test_added_vectors_round_trip(tmp_path, vectors):
    index = MovieIndex.build(vectors.subset(vectors.ids[:150]))
    index.add(vectors.subset(vectors.ids[150:]))
    version, entry = saved(tmp_path, index)
    loaded = MovieIndex.load(version, entry)
    assert len(loaded) == 200 and int(vectors.ids[190]) in loaded
    check_hits(loaded.search(vectors.values[:30], n=8), BruteForce.build(vectors).search(vectors.values[:30], n=8))
