"""Every top-N path equals numpy brute force (`BruteForce`), up to ties, through one helper (`check_hits`)."""
from __future__ import annotations

import numpy as np
import pytest

import index.exact
import index.movie_index
from catalog import ArtifactError, Hits, UnknownMovieError, Vectors, top_n
from index import BruteForce, MovieFilter, MovieIndex, MovieMetadata, TopK, check_hits

# every implementation and route the production code can take; "flat" routes by batch size,
# "flat-faiss" and "flat-numpy" force one route for every batch size
IMPLS = ["brute", "flat", "flat-faiss", "flat-numpy", "hnsw", "ivf"]


def make(impl: str, vectors: Vectors, normalize: bool = True, metadata=None) -> TopK:
    if impl == "brute":
        return BruteForce.build(vectors, normalize=normalize, metadata=metadata)
    kind = impl.split("-")[0]
    options = {"hnsw": {"ef_search": 2 * len(vectors) + 16}, "ivf": {"nprobe": 4096}}.get(kind, {})
    built = MovieIndex.build(vectors, kind=kind, normalize=normalize, metadata=metadata, **options)
    if impl in ("flat-faiss", "flat-numpy"):
        built.set_search_options(exact_route=impl.split("-")[1])
    return built


def random_vectors(n=400, dim=12, seed=0, offset=1000):
    rng = np.random.default_rng(seed)
    return Vectors(rng.permutation(n).astype(np.int64) + offset, rng.normal(size=(n, dim)).astype(np.float32))


def queries(n, dim, seed=1):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_checkable_3d(impl):
    v = Vectors(np.array([1, 2, 3, 4]), np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.float32))
    top = make(impl, v)
    hits = top.search(np.array([2.0, 0, 0]), n=4)
    assert isinstance(hits, Hits) and hits.movie_ids[:2].tolist() == [1, 3]
    assert sorted(hits.movie_ids[2:].tolist()) == [2, 4]  # tied at 0
    np.testing.assert_allclose(hits.scores, [1.0, np.sqrt(0.5), 0.0, 0.0], atol=1e-6)
    check_hits(hits, Hits(np.array([1, 3, 2, 4]), np.array([1.0, np.sqrt(0.5), 0, 0])))
    assert top.search(np.array([0, 0, 5.0]), n=1).movie_ids.tolist() == [4]


@pytest.mark.parametrize("impl", IMPLS)
def test_raw_inner_product_for_ranking_vectors(impl):
    v = Vectors(np.array([1, 2, 3]), np.array([[1, 0], [3, 0], [0, 5]], np.float32))
    hits = make(impl, v, normalize=False).search(np.array([2.0, 1.0]), n=3)
    assert hits.movie_ids.tolist() == [2, 3, 1]
    np.testing.assert_allclose(hits.scores, [6.0, 5.0, 2.0])


def test_brute_force_breaks_ties_to_the_first_indexed():
    v = Vectors(np.array([30, 10, 20]), np.ones((3, 2), np.float32))
    assert BruteForce.build(v).search(np.ones(2), n=3).movie_ids.tolist() == [30, 10, 20]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("normalize", [True, False])
def test_every_path_equals_brute_force(impl, normalize):
    v = random_vectors()
    q = queries(45, v.dim)
    top, ref = make(impl, v, normalize), BruteForce.build(v, normalize)
    for n in (1, 10, 37):
        got = top.search(q, n=n)
        assert isinstance(got, list) and all(len(h) == n for h in got)
        check_hits(got, ref.search(q, n=n))
        check_hits(top.search(q[3], n=n), ref.search(q[3], n=n))
        check_hits(top.search_each(q[:5], n=n), ref.search_each(q[:5], n=n))


def tie_heavy(n=3000, dim=6, seed=0):
    """Vectors on a tiny integer grid, many repeated: many exact score ties."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-1, 2, size=(n, dim)).astype(np.float32)
    return Vectors(rng.permutation(n).astype(np.int64) * 7 + 3, values)


@pytest.mark.parametrize("normalize", [True, False])
def test_exact_batch_routes_equal_brute_force_including_ties(normalize):
    v = tie_heavy()
    q = np.vstack([v.values[:30], np.random.default_rng(2).integers(-2, 3, size=(30, v.dim))]).astype(np.float32)
    q[~q.any(axis=1)] = 1  # no zero query
    ref = BruteForce.build(v, normalize)
    want = ref.search(q, n=25)
    assert sum(len(np.unique(h.scores)) < 25 for h in want) > 50  # the test is about ties
    numpy_route = make("flat-numpy", v, normalize)
    faiss_route = make("flat-faiss", v, normalize)
    routed = make("flat", v, normalize)
    for top in (numpy_route, faiss_route, routed):
        check_hits(top.search(q, n=25), want)
        check_hits(top.search(q, n=25, exclude=v.ids[:500]), ref.search(q, n=25, exclude=v.ids[:500]))
    # same kernel over the same columns: the numpy route breaks ties exactly as BruteForce does
    for got, exp in zip(numpy_route.search(q, n=25), want):
        assert got.movie_ids.tolist() == exp.movie_ids.tolist()


def test_every_batch_bucket_on_either_route_equals_brute_force_including_ties():
    """Each bucket's trials run both routes on real batches: every answer, on either route and at
    every batch size, is brute force's, ties included, also with per-query excludes."""
    v = tie_heavy(n=2000)
    rng = np.random.default_rng(4)
    q = rng.integers(-2, 3, size=(300, v.dim)).astype(np.float32)
    q[~q.any(axis=1)] = 1
    ref, top = BruteForce.build(v), MovieIndex.build(v)
    for b in (1, 3, 7, 25, 70, 300):
        exclude = [v.ids[i:i + 40] for i in range(b)]
        want = ref.search_each(q[:b], n=12, exclude=exclude)
        assert sum(len(np.unique(h.scores)) < 12 for h in want) >= b // 2  # ties inside the top 12
        for _ in range(2 * index.movie_index.TRIALS + 1):  # both routes' trials, then the winner
            check_hits(top.search_each(q[:b], n=12, exclude=exclude), want)
        check_hits(top.search_each(q[:b], n=12), ref.search_each(q[:b], n=12))
    assert None not in top.routes["buckets"].values()


class FakeClock:
    """A clock that only the searches move: numpy costs ``q`` units for ``q`` queries, FAISS
    ``40 + q / 2``, so numpy wins batches under 80 and FAISS the larger ones. Records each path."""

    def __init__(self, monkeypatch, numpy_cost=lambda q: q, faiss_cost=lambda q: 40 + q / 2):
        self.now, self.used = 0.0, []
        monkeypatch.setattr(index.movie_index, "time", self)
        for name, path, cost in (("_exact", "numpy", numpy_cost), ("_faiss_top", "faiss", faiss_cost)):
            real = getattr(MovieIndex, name)

            def timed(index_, q, *a, _real=real, _path=path, _cost=cost):
                self.used.append((_path, len(q)))
                self.now += _cost(len(q))
                return _real(index_, q, *a)

            monkeypatch.setattr(MovieIndex, name, timed)

    def perf_counter(self):
        return self.now


def test_batch_sizes_take_their_own_route_each_measured_once(monkeypatch):
    clock = FakeClock(monkeypatch)
    v = random_vectors(n=3000, dim=8)
    top, ref = MovieIndex.build(v), BruteForce.build(v)
    q = queries(300, v.dim, seed=5)
    trials = 2 * index.movie_index.TRIALS
    for b in (3, 10, 40, 100, 300):  # one batch size per bucket
        for _ in range(trials + 3):
            check_hits(top.search_each(q[:b], n=7), ref.search_each(q[:b], n=7))
        paths = [p for p, size in clock.used if size == b]
        assert paths[:trials] == ["numpy", "faiss"] * index.movie_index.TRIALS  # the trials alternate
        winner = "numpy" if b < 80 else "faiss"
        assert paths[trials:] == [winner] * 3  # then the bucket's winner, measured once
    assert top.routes == {"exact_route": "auto", "single": "faiss",
                          "buckets": {2: "numpy", 5: "numpy", 20: "numpy", 64: "faiss", 256: "faiss"}}
    clock.used.clear()
    for b in (4, 19, 63, 255, 1000):  # other sizes of the same buckets: no new trials
        top.search(np.resize(q, (b, v.dim)), n=7)
    assert clock.used == [("numpy", 4), ("numpy", 19), ("numpy", 63), ("faiss", 255), ("faiss", 1000)]
    clock.used.clear()
    top.search(q[0], n=7)
    top.search(q[:1], n=7)
    assert clock.used == [("faiss", 1), ("faiss", 1)]  # single queries: FAISS, never timed
    top.set_search_options(exact_route="faiss")  # a pin overrides every bucket
    top.search(q[:40], n=7)
    top.set_search_options(exact_route="numpy")
    top.search(q[:300], n=7)
    assert clock.used[2:] == [("faiss", 40), ("numpy", 300)]
    top.set_search_options(exact_route="auto")
    top.add(random_vectors(n=10, dim=8, seed=9, offset=10**6))  # a larger index is measured afresh
    assert set(top.routes["buckets"].values()) == {None}
    with pytest.raises(ValueError, match="exact_route"):
        top.set_search_options(exact_route="gpu")


def test_trials_are_per_query_and_use_the_best_time(monkeypatch):
    # numpy: 10 per query, once disturbed (500); FAISS: 20 per query. Best times: numpy wins.
    costs = iter([500.0, 10.0])
    FakeClock(monkeypatch, numpy_cost=lambda q: next(costs, 10.0) * q, faiss_cost=lambda q: 20.0 * q)
    v = random_vectors(n=500, dim=8)
    top = MovieIndex.build(v)
    for b in (20, 63) * index.movie_index.TRIALS:  # same bucket, different sizes: compared per query
        top.search(v.values[:b], n=5)
    assert top.routes["buckets"][20] == "numpy"


def test_filtered_and_failed_searches_are_no_trial(monkeypatch):
    clock = FakeClock(monkeypatch)
    v = random_vectors(n=2000, dim=16)
    meta = metadata_for(v)
    top = MovieIndex.build(v, metadata=meta)
    for _ in range(5):
        top.search(v.values[:30], n=5, filter=MovieFilter(genres=("Horror",)))
    assert [p for p, _ in clock.used] == ["numpy"] * 5 and top.routes["buckets"][20] is None
    monkeypatch.setattr(index.movie_index, "exact_top", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        top.search(v.values[:30], n=5)
    monkeypatch.undo()
    clock = FakeClock(monkeypatch)
    for _ in range(2 * index.movie_index.TRIALS):
        top.search(v.values[:30], n=5)
    assert [p for p, _ in clock.used] == ["numpy", "faiss"] * index.movie_index.TRIALS  # the failed trial is retried
    assert top.routes["buckets"][20] == "numpy"


def test_concurrent_trials_are_handed_out_once():
    v = random_vectors(n=200, dim=4)
    top = MovieIndex.build(v)
    handed = [top._route(30) for _ in range(2 * index.movie_index.TRIALS + 2)]  # none finished yet
    assert handed == [("numpy", 2), ("faiss", 2)] * index.movie_index.TRIALS + [("numpy", None)] * 2
    for path, bucket in handed[:-2]:
        top._record(bucket, path, 1.0 if path == "numpy" else 2.0)
    assert top._route(30) == ("numpy", None) and top.routes["buckets"][20] == "numpy"


def test_pruned_kernel_equals_top_n_with_ties(monkeypatch):
    widths = []
    real = index.exact.top_n
    monkeypatch.setattr(index.exact, "top_n", lambda s, n: widths.append(np.shape(s)[1]) or real(s, n))
    rng = np.random.default_rng(3)
    for m, n in ((10_000, 10), (50_000, 3), (4_000, 60), (100, 5)):
        scores = rng.integers(0, 40, size=(17, m)).astype(np.float32)  # massive ties
        scores[0, ::3] = -np.inf  # a row with many excluded cells
        one_left = np.full((2, m), -np.inf, np.float32)
        one_left[:, 5] = 1.0  # nothing to prune by: falls back to the whole row
        for matrix in (scores, one_left):
            widths.clear()
            cols, vals = index.exact._pruned_top(matrix, n)
            ref_cols, ref_vals = top_n(matrix, n)
            np.testing.assert_array_equal(cols, ref_cols)
            np.testing.assert_array_equal(vals, ref_vals.astype(np.float32))
            if matrix is scores and m >= 10_000:
                assert min(widths) < m // 4  # it did prune


def test_blocks_bound_memory_and_change_nothing(monkeypatch):
    v = random_vectors(n=1000)
    q = queries(64, v.dim)
    want = BruteForce.build(v).search(q, n=10, exclude=[v.ids[i:i + 3] for i in range(64)])
    monkeypatch.setattr(index.exact, "BLOCK_BYTES", 4 * 1000 * 5)  # 5 queries a block
    for impl in ("brute", "flat-numpy"):
        got = make(impl, v).search(q, n=10, exclude=[v.ids[i:i + 3] for i in range(64)])
        for g, w in zip(got, want):
            assert g.movie_ids.tolist() == w.movie_ids.tolist()


@pytest.mark.parametrize("impl", IMPLS)
def test_exclude_shared_and_per_query_still_returns_n(impl):
    v = random_vectors()
    top, ref = make(impl, v), BruteForce.build(v)
    q = queries(4, v.dim)
    best = [h.movie_ids for h in ref.search(q, n=30)]
    per_query = [b[:25] for b in best]  # exclude each query's 25 best
    got = top.search(q, n=10, exclude=per_query)
    assert all(len(h) == 10 and not set(h.movie_ids) & set(e) for h, e in zip(got, per_query))
    check_hits(got, ref.search(q, n=10, exclude=per_query))
    check_hits(top.search(q, n=10, exclude=np.stack(per_query)), ref.search(q, n=10, exclude=per_query))
    shared = top.search(q[0], n=5, exclude=best[0][:3])
    check_hits(shared, ref.search(q[0], n=5, exclude=best[0][:3]))
    assert not set(shared.movie_ids) & set(best[0][:3].tolist())
    many = v.ids[: len(v) // 2]  # more than a quarter excluded: the exact re-scan
    check_hits(top.search(q[0], n=10, exclude=many), ref.search(q[0], n=10, exclude=many))
    check_hits(top.search(q[0], n=3, exclude=[int(best[0][0]), 999_999]), ref.search(q[0], n=3, exclude=best[0][:1]))


def metadata_for(v):
    rng = np.random.default_rng(5)
    genres = {int(i): (("Horror",) if rng.random() < 0.05 else ("Comedy", "Drama")) for i in v.ids}
    years = {int(i): (None if k % 10 == 0 else 1950 + k % 50) for k, i in enumerate(v.ids)}
    return MovieMetadata.from_mapping({i: (genres[i], years[i]) for i in genres})


@pytest.mark.parametrize("impl", IMPLS)
def test_rare_genre_and_year_filters_still_return_n(impl):
    v = random_vectors(n=2000, dim=16)
    meta = metadata_for(v)
    top, ref = make(impl, v, metadata=meta), BruteForce.build(v, metadata=meta)
    q = queries(3, 16, seed=2)
    spec = MovieFilter(genres=("Horror",))
    allowed = meta.allowed_ids(spec)
    assert 40 < len(allowed) < 200
    got = top.search(q, n=25, filter=spec)
    assert all(len(h) == 25 and np.isin(h.movie_ids, allowed).all() for h in got)
    check_hits(got, ref.search(q, n=25, filter=spec))
    years = MovieFilter(year_min=1990, year_max=1994)
    got = top.search(q, n=20, filter=years, exclude=allowed)
    ok = meta.ids[(meta.years >= 1990) & (meta.years <= 1994)]
    assert all(len(h) == 20 for h in got)
    assert all(np.isin(h.movie_ids, ok).all() and not np.isin(h.movie_ids, allowed).any() for h in got)
    check_hits(got, ref.search(q, n=20, filter=years, exclude=allowed))
    check_hits(top.search(q[0], n=20, filter=years), ref.search(q[0], n=20, filter=years))


@pytest.mark.parametrize("impl", IMPLS)
def test_fewer_available_than_n_gives_fewer_hits_never_minus_one(impl):
    v = random_vectors(n=50, dim=8)
    meta = MovieMetadata.from_mapping({int(i): (("Drama",) if k < 4 else ("Comedy",), 2000)
                                       for k, i in enumerate(v.ids)})
    top = make(impl, v, metadata=meta)
    hits = top.search(v.values[0], n=10, filter=MovieFilter(genres="Drama"))
    assert sorted(hits.movie_ids.tolist()) == sorted(v.ids[:4].tolist())
    each = top.search(v.values[:2], n=49, exclude=[v.ids[:1], v.ids[:5]])
    assert [len(h) for h in each] == [49, 45] and all((h.movie_ids >= 0).all() for h in each)
    assert len(top.search(v.values[0], n=60)) == 50
    assert top.search(v.values[0], n=5, exclude=v.ids).movie_ids.shape == (0,)
    assert top.search_each(v.values[0], n=3)[0].movie_ids.shape == (3,)


def test_add_new_ids_matches_full_build():
    v = random_vectors(n=300)
    first, rest = v.subset(v.ids[:200]), v.subset(v.ids[200:])
    top = MovieIndex.build(first)
    top.add(rest)
    assert len(top) == 300 and v.ids[250] in top and 5 not in top
    q = queries(25, v.dim, seed=3)
    check_hits(top.search(q, n=10), BruteForce.build(v).search(q, n=10))
    check_hits(top.search(q[0], n=10), BruteForce.build(v).search(q[0], n=10))
    with pytest.raises(ValueError, match="already indexed"):
        top.add(rest)
    with pytest.raises(ArtifactError, match="dim"):
        top.add(Vectors(np.array([1]), np.ones((1, v.dim + 1), np.float32)))


@pytest.mark.parametrize("impl", IMPLS)
def test_facts_and_stored_vectors(impl):
    v = random_vectors(n=60, dim=5)
    top = make(impl, v)
    assert isinstance(top, TopK) and len(top) == 60 and top.dim == 5 and top.normalize
    assert top.movie_ids.tolist() == v.ids.tolist() and int(v.ids[3]) in top and -1 not in top
    some = top.vectors(v.ids[[4, 1]])
    assert some.ids.tolist() == v.ids[[4, 1]].tolist()
    np.testing.assert_allclose(some.values, v.values[[4, 1]] / np.linalg.norm(v.values[[4, 1]], axis=1, keepdims=True),
                               atol=1e-6)
    assert len(top.vectors()) == 60
    with pytest.raises(UnknownMovieError, match="12345"):
        top.vectors([12345])


@pytest.mark.parametrize("impl", ["brute", "flat"])
def test_bad_input_is_a_clear_error(impl):
    top = make(impl, random_vectors(n=20, dim=4))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        top.search(np.ones(5), n=3)
    with pytest.raises(ValueError, match="n must be"):
        top.search(np.ones(4), n=0)
    with pytest.raises(ValueError, match="NaN"):
        top.search(np.array([1, np.nan, 0, 0]), n=3)
    with pytest.raises(ValueError, match="metadata"):
        top.search(np.ones(4), n=3, filter=MovieFilter(genres="Drama"))
    with pytest.raises(ValueError, match="per-query"):
        top.search(np.ones((3, 4)), n=3, exclude=[[1], [2]])
    with pytest.raises(ValueError, match="NaN or inf"):
        make(impl, Vectors(np.array([1, 2]), np.array([[1, 0], [np.inf, 0]], np.float32)))
    with pytest.raises(ValueError, match="no vectors"):
        make(impl, Vectors(np.zeros(0, np.int64), np.zeros((0, 4), np.float32)))
    with pytest.raises(ValueError, match="index kind"):
        MovieIndex.build(random_vectors(n=20, dim=4), kind="lsh")


def test_hnsw_recall_is_high_with_default_settings():
    v = random_vectors(n=3000, dim=16)
    q = queries(50, 16, seed=4)
    exact = BruteForce.build(v).search(q, n=10)
    approx = MovieIndex.build(v, kind="hnsw").search(q, n=10)
    recall = np.mean([len(set(a.movie_ids) & set(e.movie_ids)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9
