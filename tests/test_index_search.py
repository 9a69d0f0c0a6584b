"""MovieIndex search equals a numpy brute force; filters still return n; add; batches."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import ArtifactError, Vectors
from index import MovieFilter, MovieIndex, MovieMetadata, search_exact


def random_vectors(n=500, dim=24, seed=0, offset=1000):
    rng = np.random.default_rng(seed)
    return Vectors(rng.permutation(n).astype(np.int64) + offset, rng.normal(size=(n, dim)).astype(np.float32))


def normalized(values):
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def assert_same_up_to_ties(hits_ids, hits_scores, ref_ids, ref_scores, atol=1e-5):
    np.testing.assert_allclose(hits_scores, ref_scores, atol=atol)
    for got, want, s in zip(np.atleast_2d(hits_ids), np.atleast_2d(ref_ids), np.atleast_2d(ref_scores)):
        clear = s > s[-1] + atol  # ids above the last (possibly tied) score must match exactly
        assert set(got[clear]) == set(want[clear])


def test_flat_search_equals_numpy_brute_force():
    v = random_vectors()
    index = MovieIndex.build(v)
    queries = np.random.default_rng(1).normal(size=(40, v.dim)).astype(np.float32)
    hits = index.search(queries, n=15)
    assert hits.movie_ids.shape == (40, 15) and hits.scores.shape == (40, 15)
    ref = search_exact(normalized(v.values), v.ids, normalized(queries), 15)
    assert_same_up_to_ties(hits.movie_ids, hits.scores, ref.movie_ids, ref.scores)
    assert np.all(np.diff(hits.scores, axis=1) <= 1e-6)  # best first


def test_single_query_gives_1d_and_self_is_best():
    v = random_vectors()
    index = MovieIndex.build(v)
    hits = index.search(v.values[7], n=3)
    assert hits.movie_ids.shape == (3,)
    assert hits.movie_ids[0] == v.ids[7]
    assert hits.scores[0] == pytest.approx(1.0, abs=1e-5)


def test_hand_checkable_3d():
    v = Vectors(np.array([1, 2, 3]), np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32))
    hits = MovieIndex.build(v).search(np.array([2.0, 0, 0]), n=3)
    assert hits.movie_ids.tolist() == [1, 3, 2]
    np.testing.assert_allclose(hits.scores, [1.0, np.sqrt(0.5), 0.0], atol=1e-6)


def test_unnormalised_inner_product_for_recommend():
    v = Vectors(np.array([1, 2, 3]), np.array([[1, 0], [3, 0], [0, 5]], dtype=np.float32))
    hits = MovieIndex.build(v, normalize=False).search(np.array([2.0, 1.0]), n=3)
    assert hits.movie_ids.tolist() == [2, 3, 1]
    np.testing.assert_allclose(hits.scores, [6.0, 5.0, 2.0])


def test_exclude_shared_and_per_query_still_returns_n():
    v = random_vectors()
    index = MovieIndex.build(v)
    q = v.values[:4]
    plain = index.search(q, n=30)
    per_query = [plain.movie_ids[i, :25] for i in range(4)]  # exclude the 25 best of each
    hits = index.search(q, n=10, exclude=per_query)
    assert hits.movie_ids.shape == (4, 10)
    for i in range(4):
        assert not set(hits.movie_ids[i]) & set(per_query[i])
        keep = ~np.isin(v.ids, per_query[i])
        ref = search_exact(normalized(v.values[keep]), v.ids[keep], normalized(q[i:i + 1]), 10)
        assert_same_up_to_ties(hits.movie_ids[i], hits.scores[i], ref.movie_ids[0], ref.scores[0])
    shared = index.search(q[0], n=5, exclude=plain.movie_ids[0, :3])
    assert shared.movie_ids.tolist() == plain.movie_ids[0, 3:8].tolist()


def metadata_for(v):
    rng = np.random.default_rng(5)
    genres = {int(i): (("Horror",) if rng.random() < 0.05 else ("Comedy", "Drama")) for i in v.ids}
    years = {int(i): (None if k % 10 == 0 else 1950 + k % 50) for k, i in enumerate(v.ids)}
    return MovieMetadata.from_mapping({i: (genres[i], years[i]) for i in genres})


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_rare_genre_and_year_filters_still_return_n(kind):
    v = random_vectors(n=2000, dim=16)
    meta = metadata_for(v)
    index = MovieIndex.build(v, kind=kind, metadata=meta)
    q = np.random.default_rng(2).normal(size=(3, 16)).astype(np.float32)
    spec = MovieFilter(genres=("Horror",))
    allowed = meta.allowed_ids(spec)
    assert 40 < len(allowed) < 200
    hits = index.search(q, n=25, filter=spec)
    assert hits.movie_ids.shape == (3, 25) and np.isin(hits.movie_ids, allowed).all()
    if kind == "flat":
        keep = np.isin(v.ids, allowed)
        ref = search_exact(normalized(v.values[keep]), v.ids[keep], normalized(q), 25)
        assert_same_up_to_ties(hits.movie_ids, hits.scores, ref.movie_ids, ref.scores)
    years = MovieFilter(year_min=1990, year_max=1994)
    hits = index.search(q, n=20, filter=years, exclude=allowed)
    ok = meta.ids[(meta.years >= 1990) & (meta.years <= 1994)]
    assert hits.movie_ids.shape == (3, 20)
    assert np.isin(hits.movie_ids, ok).all() and not np.isin(hits.movie_ids, allowed).any()


def test_fewer_available_than_n_trims_honestly():
    v = random_vectors(n=50, dim=8)
    meta = MovieMetadata.from_mapping({int(i): (("Drama",) if k < 4 else ("Comedy",), 2000) for k, i in enumerate(v.ids)})
    index = MovieIndex.build(v, metadata=meta)
    hits = index.search(v.values[0], n=10, filter=MovieFilter(genres="Drama"))
    assert sorted(hits.movie_ids.tolist()) == sorted(v.ids[:4].tolist()) and (hits.movie_ids >= 0).all()
    each = index.search_each(v.values[:2], n=49, exclude=[v.ids[:1], v.ids[:5]])
    assert [len(h.movie_ids) for h in each] == [49, 45]
    batch = index.search(v.values[:2], n=49, exclude=[v.ids[:1], v.ids[:5]])
    assert batch.movie_ids.shape == (2, 45) and (batch.movie_ids >= 0).all()
    assert index.search(v.values[0], n=5, exclude=v.ids).movie_ids.shape == (0,)


def test_add_new_ids_matches_full_build():
    v = random_vectors(n=300)
    first, rest = v.subset(v.ids[:200]), v.subset(v.ids[200:])
    index = MovieIndex.build(first)
    index.add(rest)
    assert len(index) == 300 and v.ids[250] in index
    q = np.random.default_rng(3).normal(size=(10, v.dim)).astype(np.float32)
    full = MovieIndex.build(v).search(q, n=10)
    hits = index.search(q, n=10)
    assert_same_up_to_ties(hits.movie_ids, hits.scores, full.movie_ids, full.scores)
    with pytest.raises(ValueError, match="already indexed"):
        index.add(rest)
    with pytest.raises(ArtifactError, match="dimension|dim"):
        index.add(Vectors(np.array([1]), np.ones((1, v.dim + 1), np.float32)))


def test_bad_queries_are_clear_errors():
    index = MovieIndex.build(random_vectors(n=20, dim=4))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        index.search(np.ones(5), n=3)
    with pytest.raises(ValueError, match="n must be"):
        index.search(np.ones(4), n=0)
    with pytest.raises(ValueError, match="metadata"):
        index.search(np.ones(4), n=3, filter=MovieFilter(genres="Drama"))
    with pytest.raises(ValueError, match="index kind"):
        MovieIndex.build(random_vectors(n=20, dim=4), kind="lsh")


def test_hnsw_recall_is_high_on_small_data():
    v = random_vectors(n=3000, dim=16)
    q = np.random.default_rng(4).normal(size=(50, 16)).astype(np.float32)
    exact = MovieIndex.build(v).search(q, n=10).movie_ids
    approx = MovieIndex.build(v, kind="hnsw").search(q, n=10).movie_ids
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9
