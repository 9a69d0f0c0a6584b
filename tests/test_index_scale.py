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
from index import AUTO_EXACT_MAX_CELLS, AUTO_HNSW_MAX, BruteForce, IndexConfig, MovieIndex, auto_kind, check_hits, pq_m_for
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
    index = MovieIndex.build(vectors, kind="ivfpq", nprobe=8, refine=0)  # codes only
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
    finer = MovieIndex.build(vectors, kind="ivfpq", nprobe=8, pq_m=16, refine=0)  # 2 dims per code: top 1 exact here
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


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_mmap_load_shares_the_file_instead_of_copying_it(tmp_path, kind):
    """In a fresh process the mapped index's vectors are file-backed pages, not private memory
    (for IVF-PQ: the full vectors its refine re-ranks with)."""
    n, dim = 20_000, 256  # 20 MB of vectors
    vectors = Vectors(np.arange(n, dtype=np.int64), np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32))
    options = {"nlist": 16, "pq_m": 16, "train_iter": 4} if kind == "ivfpq" else {}
    saved(tmp_path, MovieIndex.build(vectors, kind=kind, **options))
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
    lying = {**entry, "kind": "ivf", "config": {**entry["config"], "kind": "ivf", "refine": None}}
    with pytest.raises(ArtifactError, match="IndexIVFPQ with refine.*not the inner-product ivf index"):
        MovieIndex.load(version, lying)


def test_auto_is_exact_flat_below_the_threshold():
    vectors, q, _ = planted(clustered(500))
    index = MovieIndex.build(vectors, kind="auto")
    assert index.kind == "flat" and auto_kind(AUTO_EXACT_MAX_CELLS // 1280, 1280) == "flat"
    assert auto_kind(AUTO_EXACT_MAX_CELLS // 1280 + 1, 1280) != "flat"
    check_hits(index.search(q, n=10), BruteForce.build(vectors).search(q, n=10))


def test_auto_keeps_movielens_exact_and_goes_approximate_by_the_measured_sizes():
    # every MovieLens catalogue up to ml-1m (3,883 movies x 1,312 fused dims) exact; ml-25m's
    # 62,423 x 1,312 graph-searched (flat missed 10 ms a query there); 1M by IVF-PQ with refine
    assert auto_kind(3_883, 1_312) == auto_kind(9_742, 1_312) == "flat"
    assert auto_kind(62_423, 1_312) == "hnsw" and auto_kind(AUTO_HNSW_MAX, 1280) == "hnsw"
    assert auto_kind(AUTO_HNSW_MAX + 1, 1280) == auto_kind(1_000_000, 1280) == "ivfpq"
    assert auto_kind(1_000_000, 16) == "flat"  # 16M values: a short scan, however many vectors


def held_out(vectors: Vectors, q=60, seed=7) -> np.ndarray:
    """Fresh points of ``clustered``'s distribution (its centres, other noise): ordinary queries."""
    rng = np.random.default_rng(0)
    c = rng.normal(size=(30, vectors.dim))  # the same centres as clustered(seed=0)
    other = np.random.default_rng(seed)
    return (c[other.integers(0, 30, q)] + 0.3 * other.normal(size=(q, vectors.dim))).astype(np.float32)


def test_ivfpq_refine_returns_the_exact_top_k_whenever_its_candidates_hold_it():
    vectors = clustered()
    q = held_out(vectors)
    exact = BruteForce.build(vectors).search(q, n=10)
    nlist = 64
    codes = MovieIndex.build(vectors, kind="ivfpq", nlist=nlist, nprobe=nlist, pq_m=4, refine=0)
    refined = MovieIndex.build(vectors, kind="ivfpq", nlist=nlist, nprobe=nlist, pq_m=4, refine=8)
    assert refined.config.refine == 8 and codes.config.refine == 0
    wrong = sum(not np.array_equal(h.movie_ids, e.movie_ids) for h, e in zip(codes.search(q, n=10), exact))
    assert wrong > len(q) // 2  # 4 codes of 8 dims: the codes alone misrank most queries
    candidates = codes.search(q, n=80)  # every list probed: the 8 x 10 best by codes, as refine sees them
    held = [set(e.movie_ids.tolist()) <= set(c.movie_ids.tolist()) for e, c in zip(exact, candidates)]
    assert sum(held) >= len(q) // 2  # 41 of 60 here
    got = refined.search(q, n=10)
    for h, e, ok in zip(got, exact, held):
        if ok:
            np.testing.assert_array_equal(h.movie_ids, e.movie_ids)
            np.testing.assert_allclose(h.scores, e.scores, atol=1e-5)  # exact cosines, not code estimates
    refined.set_search_options(refine=1)  # no re-rank margin: back to roughly the codes' ranking
    assert sum(np.array_equal(h.movie_ids, e.movie_ids) for h, e in zip(refined.search(q, n=10), exact)) < sum(held)


def test_ivfpq_refine_memory_is_reported_in_full():
    dim = 32
    plain = MovieIndex.build(clustered(dim=dim), kind="ivfpq", refine=0)
    refined = MovieIndex.build(clustered(dim=dim), kind="ivfpq")
    code = faiss.downcast_index(plain._index.index).code_size
    assert plain.bytes_per_vector == plain.searched_bytes_per_vector == code + 16
    assert refined.config.refine >= 1
    assert refined.bytes_per_vector == code + 16 + 4 * dim  # the codes plus the full vector refine reads
    assert refined.searched_bytes_per_vector == code + 16
    d = refined.describe()
    assert (d["bytes_per_vector"], d["searched_bytes_per_vector"]) == (code + 16 + 4 * dim, code + 16)
    np.testing.assert_array_equal(refined.vectors([10, 13]).values,  # kept exactly, not reconstructed
                                  MovieIndex.build(clustered(dim=dim)).vectors([10, 13]).values)


def test_refine_settings_name_the_value():
    with pytest.raises(ValueError, match="refine re-ranks IVF-PQ.*kind 'ivf'"):
        IndexConfig(kind="ivf", refine=4)
    with pytest.raises(ValueError, match="refine must be a whole number.*got -1"):
        IndexConfig(kind="ivfpq", refine=-1)
    with pytest.raises(ValueError, match="keeps no full vectors"):
        MovieIndex.build(clustered(), kind="ivfpq", refine=0).set_search_options(refine=4)


def test_ivfpq_without_refine_from_before_refine_existed_still_loads(tmp_path):
    vectors, q, _ = planted(clustered())
    index = MovieIndex.build(vectors, kind="ivfpq", refine=0)
    version, entry = saved(tmp_path, index)
    old = {**entry, "config": {k: v for k, v in entry["config"].items() if k != "refine"}}
    loaded = MovieIndex.load(version, old)
    assert loaded.config.refine == 0
    check_hits(loaded.search(q, n=10), index.search(q, n=10), atol=0)


@pytest.mark.parametrize("refine", [0, 8])
def test_changed_compares_a_lossy_index_with_its_own_codes(refine):
    vectors = clustered()
    index = MovieIndex.build(vectors, kind="ivfpq", refine=refine)
    some = vectors.subset(vectors.ids[:200])
    assert len(index.changed(some)) == 0  # codes only: the stored vectors are approximations of these
    moved = Vectors(some.ids, some.values.copy())
    moved.values[:5] *= -1
    np.testing.assert_array_equal(index.changed(moved), some.ids[:5])
