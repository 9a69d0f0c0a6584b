"""Large-catalogue index kinds: IVF-PQ, kind "auto", and memory-mapped loading (small generated data)."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from catalog import SCHEMA, ArtifactError, ModelStore, Vectors
from index import AUTO_EXACT_MAX, BruteForce, IndexConfig, MovieIndex, auto_kind, check_hits, pq_m_for
from index import storage

INDEX_FILE = SCHEMA["index"].file
ROOT = Path(__file__).resolve().parent.parent


def clustered(n=3000, dim=32, centers=30, seed=0) -> Vectors:
    """``n`` vectors around ``centers`` centres; ids 10, 13, 16, ..."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    values = c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, dim))
    return Vectors(np.arange(n, dtype=np.int64) * 3 + 10, values.astype(np.float32))


def planted(vectors: Vectors, seed=1, k=40):
    """``k`` stored vectors moved off every cluster (each to its own random direction) and queries
    that are those plus a little noise: each query's nearest neighbour is known."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), k, replace=False)
    far = (5 * rng.normal(size=(k, vectors.dim))).astype(np.float32)
    values = vectors.values.copy()
    values[rows] = far
    q = far + 0.05 * rng.normal(size=(k, vectors.dim)).astype(np.float32)
    return Vectors(vectors.ids, values), q, vectors.ids[rows]


def saved(home, index):
    store = ModelStore(home)
    with store.new_version() as writer:
        entry = index.save(writer)
        writer.set_stage("build-index", {"index": entry})
    return store.open_current(), entry


def test_ivfpq_builds_saves_loads_and_finds_the_planted_neighbour(tmp_path):
    vectors, q, want = planted(clustered())
    index = MovieIndex.build(vectors, kind="ivfpq", nprobe=8)
    cfg = index.config
    assert (cfg.kind, cfg.pq_m, cfg.pq_nbits) == ("ivfpq", pq_m_for(32), 6)  # 3000 / 39 -> 2^6 codes
    assert cfg.nlist == 64  # 2 ** round(log2(sqrt(3000)))
    entry_bytes = index.describe()["bytes_per_vector"]
    assert entry_bytes == faiss.downcast_index(index._index.index).code_size + 16 < 4 * 32
    for candidate in (index, MovieIndex.load(*saved(tmp_path, index))):
        hits = candidate.search(q, n=10)
        assert all(w in h.movie_ids for h, w in zip(hits, want))  # PQ scores are approximate:
        assert sum(int(h.movie_ids[0]) == w for h, w in zip(hits, want)) >= 0.85 * len(want)  # 36 of 40 seen
        assert all(len(h.movie_ids) == 10 for h in hits)
    finer = MovieIndex.build(vectors, kind="ivfpq", nprobe=8, pq_m=16)  # 2 dims per code: top 1 exact here
    assert [int(h.movie_ids[0]) for h in finer.search(q, n=10)] == want.tolist()
    version, entry = saved(tmp_path / "again", index)
    assert entry["bytes_per_vector"] == entry_bytes and entry["kind"] == "ivfpq"
    assert MovieIndex.load(version, entry).config == cfg


@pytest.mark.parametrize("options, bad", [({"pq_m": 5}, "pq_m 5 does not divide the dimension 32"),
                                          ({"pq_nbits": 0}, r"pq_nbits must be an integer from 1 to 16 \(8 is usual\), got 0"),
                                          ({"pq_nbits": 12}, "pq_nbits 12 needs at least 4096 vectors"),
                                          ({"nlist": 0}, "nlist must be a positive integer"),
                                          ({"nprobe": -1}, "nprobe must be a positive integer, got -1")])
def test_ivfpq_bad_settings_name_the_value(options, bad):
    with pytest.raises(ValueError, match=bad):
        MovieIndex.build(clustered(), kind="ivfpq", **options)


def test_default_pq_m_keeps_sub_vectors_at_least_8_wide():
    assert pq_m_for(1280) == 160 and pq_m_for(1344) == 168 and pq_m_for(64) == 8 and pq_m_for(5) == 1
    assert IndexConfig(kind="ivfpq").resolved(1_000_000, 1280).nlist == 1024
    assert IndexConfig(kind="ivfpq").resolved(5_000_000, 1280).nlist == 2048


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_mmap_load_gives_the_same_results_and_refuses_to_add(tmp_path, kind):
    vectors, q, _ = planted(clustered())
    version, entry = saved(tmp_path, MovieIndex.build(vectors, kind=kind))
    plain = MovieIndex.load(version, entry)
    mapped = MovieIndex.load(version, entry, mmap=True)
    assert mapped.mapped and not plain.mapped
    for ix in (plain, mapped):  # the same exact route for both: "auto" picks one by a timing
        ix.set_search_options(exact_route="faiss")
    check_hits(mapped.search(q, n=10), plain.search(q, n=10), atol=0)
    check_hits(mapped.search(q[0], n=5, exclude=vectors.ids[:50]), plain.search(q[0], n=5, exclude=vectors.ids[:50]),
               atol=0)
    assert mapped.describe() == plain.describe() == entry
    np.testing.assert_array_equal(mapped.vectors(vectors.ids[:7]).values, plain.vectors(vectors.ids[:7]).values)
    with pytest.raises(ValueError, match="memory-mapped.*mmap=False"):
        mapped.add(Vectors(np.array([1], np.int64), np.ones((1, 32), np.float32)))


def test_mmap_load_shares_the_file_instead_of_copying_it(tmp_path):
    """In a fresh process the mapped index's vectors are file-backed pages, not private memory."""
    n, dim = 20_000, 256  # 20 MB of vectors
    vectors = Vectors(np.arange(n, dtype=np.int64), np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32))
    saved(tmp_path, MovieIndex.build(vectors))
    code = ("import sys, numpy as np\n"
            "from catalog import ModelStore\nfrom index import MovieIndex\n"
            "def anon():\n"
            "    return int([l for l in open('/proc/self/status') if l.startswith('RssAnon')][0].split()[1])\n"
            f"v = ModelStore({str(tmp_path)!r}).open_current()\n"
            "before = anon()\n"
            "ix = MovieIndex.load(v, v.stage('build-index')['index'], mmap=sys.argv[1] == '1')\n"
            f"ix.search(np.ones({dim}, np.float32), 10)\n"  # one query: a FAISS scan of every vector
            "print(anon() - before)\n")
    grown = {}
    for flag in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        grown[flag] = int(out.stdout.split()[-1])
    assert grown["0"] > 15_000  # kB: read normally, the 20 MB are private memory
    assert grown["1"] < grown["0"] - 15_000  # mapped: they are page cache, shared between processes


def test_mmap_failure_falls_back_to_a_normal_read_with_the_reason_logged(tmp_path, monkeypatch, caplog):
    vectors = clustered(300)
    version, entry = saved(tmp_path, MovieIndex.build(vectors))

    real = faiss.read_index

    def refuse(what, flags=0):
        if flags & faiss.IO_FLAG_MMAP_IFC:
            raise RuntimeError("mmap not supported here")
        return real(what, flags)

    monkeypatch.setattr(storage.faiss, "read_index", refuse)
    with caplog.at_level(logging.WARNING, logger="index.storage"):
        index = MovieIndex.load(version, entry, mmap=True)
    assert not index.mapped and len(index) == 300
    assert "cannot memory-map" in caplog.text and "mmap not supported here" in caplog.text


def written(home, data: bytes):
    store = ModelStore(home)
    with store.new_version() as writer:
        writer.write("index", lambda tmp: tmp.write_bytes(data))
    return store.open_current()


@pytest.mark.parametrize("mmap", [False, True])
def test_corrupted_ivfpq_artifact_is_an_artifact_error(tmp_path, mmap):
    index = MovieIndex.build(clustered(), kind="ivfpq")
    data = faiss.serialize_index(index._index).tobytes()
    version = written(tmp_path / "cut", data[: len(data) // 2])  # listed with its true sha256: bad bytes
    with pytest.raises(ArtifactError, match=rf"{INDEX_FILE}: not a readable FAISS index"):
        MovieIndex.load(version, index.describe(), mmap=mmap)
    version, entry = saved(tmp_path / "flipped", index)
    path = version.path / INDEX_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # changed after the manifest recorded its sha256
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=INDEX_FILE):
        MovieIndex.load(version, entry, mmap=mmap)


def test_ivfpq_entry_for_another_kind_is_an_artifact_error(tmp_path):
    index = MovieIndex.build(clustered(), kind="ivfpq")
    version, entry = saved(tmp_path, index)
    lying = {**entry, "kind": "ivf", "config": {**entry["config"], "kind": "ivf"}}
    with pytest.raises(ArtifactError, match="IndexIVFPQ.*not the inner-product ivf index"):
        MovieIndex.load(version, lying)


def test_auto_is_exact_flat_below_the_threshold():
    vectors, q, _ = planted(clustered(500))
    index = MovieIndex.build(vectors, kind="auto")
    assert index.kind == "flat" and auto_kind(AUTO_EXACT_MAX - 1, 1280) == "flat"
    assert auto_kind(AUTO_EXACT_MAX, 1280) != "flat"
    check_hits(index.search(q, n=10), BruteForce.build(vectors).search(q, n=10))
