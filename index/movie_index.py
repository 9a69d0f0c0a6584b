"""`MovieIndex`: a FAISS top-N index over id-keyed vectors, with filters, add and save/load.

Exact by default: ``IndexIDMap2(IndexFlatIP)`` over L2-normalised vectors, so scores are cosine
similarities. ``kind="hnsw"`` (``IndexHNSWFlat``) or ``kind="ivf"`` (``IndexIVFFlat``) trade a
little recall for speed on large catalogues; ``kind="ivfpq"`` (``IndexIVFPQ``) also compresses
each vector to ``pq_m * pq_nbits / 8`` bytes (160 instead of 5,120 for 1280 dims). Codes alone
rank poorly at 1280 dims (recall@10 0.60 at 1M, whatever nprobe), so by default IVF-PQ also keeps
the full vectors and re-ranks ``refine * n`` code candidates by their exact inner product (FAISS
``IndexRefineFlat``): the codes are searched in memory, the full vectors only read for the
candidates, which a memory-mapped load (`load(..., mmap=True)`) leaves in the file's page cache.
``refine=0`` keeps codes only (smallest index, approximate scores). ``kind="auto"`` picks by
size (`auto_kind`). ``normalize=False`` keeps raw inner products, for ranking vectors whose dot
product is a predicted score. ``describe()["bytes_per_vector"]`` is what one vector costs.

Exact (``flat``) searches take whichever path is faster (``exact_route="auto"``, the default).
A single query goes to FAISS on one thread, the fast path it has always had (FAISS's own SIMD
scan). A batch of 2 or more queries falls in one of the batch-size buckets of `BUCKETS`, and
each bucket is routed by its own measurement, made once per index on the first batches of that
size: they are answered alternately by numpy (`index.exact.exact_top`: blocked matmul, pruning,
`catalog.top_n`) and by FAISS ``IndexFlatIP.search``, ``TRIALS`` (3) each, timed per query; from
then on the bucket takes the path with the lower best time. The trials are real searches on the
full index, so the measurement costs nothing but the slower path's extra time on a few batches,
and it sees the index at its true size (a first version timed a cache-sized slice: at 100k x 256
and 256 queries the slice had numpy 1.2x ahead where the whole index had it 3.2x ahead, and
under load it picked FAISS twice where numpy was ~2x faster). One size does not fit
all: at 100k x 1280 FAISS won batches of 256 and lost batches of 20 (benchmarks/README.md).
Filtered searches are no fair trial (FAISS over-fetches): they take numpy until the bucket is
decided. Both paths give the same hits up to ties. ``set_search_options(exact_route="numpy"|
"faiss")`` forces one for every batch (the exports pin numpy so that reruns write the same
bytes); ``routes`` shows the winners measured so far.
"""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import faiss
import numpy as np

from catalog import ArtifactError, Hits, Vectors, hits_from

from .exact import Columns, exact_top
from .filters import MovieMetadata
from .topk import allowed_ids, check_n, per_query, prepared_queries, prepared_values, Searching

KINDS = ("flat", "hnsw", "ivf", "ivfpq")
AUTO = "auto"  # MovieIndex.build(kind="auto") / build-index --kind auto: `auto_kind` decides
# auto (`auto_kind`): exact flat while a query scans at most AUTO_EXACT_MAX_CELLS values (vectors x
# dims), HNSW from there up to AUTO_HNSW_MAX vectors, then AUTO_APPROXIMATE (benchmarks/index_scale.py
# and benchmarks/scale.py, 2 cores; the rule is the fastest kind with recall@10 >= 0.95):
# - flat costs a query its whole scan: `serve`'s /similar p50 14.1 ms at ml-25m's 62,423 x 1,312
#   (82M values, quiet machine), against a 10 ms target; 32M values keep it near 5 ms, and every
#   MovieLens catalogue up to ml-1m (3,883 x 1,312 = 5M) exact;
# - HNSW at 62,423 x 1,280: built in 84 s, recall@10 1.000 at ef_search 32-128, 0.5-1.5 ms a query
#   (IVF there: 0.920 at its default nprobe 32; IVF-PQ with refine 0.920, and a 573 s build); served
#   at 62,423 x 1,312: p50 1.41 ms. At 1M x 1280 its build did not finish in 20 minutes (600k added);
# - IVF-PQ with refine at 1M x 1280, load 6-7: recall@10 0.991 at nprobe 8 (6.4 ms per query, 151
#   q/s batch) and 0.993 at nprobe 32 (14.8 ms); IVF 0.997 at nprobe 8 (11.7 ms, 102 q/s) and 1.000 at
#   nprobe 32 (33.7 ms); IVF-PQ built in 1,046 s against IVF's 180 s (its PQ training: 742 s). Flat
#   answered one query in 215 ms at 1M. Between 250k and 1M no kind was measured.
AUTO_EXACT_MAX_CELLS = 32_000_000
AUTO_HNSW_MAX = 250_000
AUTO_APPROXIMATE = "ivfpq"
# IVF-PQ re-ranks REFINE * n code candidates exactly by default (IndexConfig.refine). At 1M x 1280,
# nprobe 16: recall@10 0.639 at refine 1 (the codes' own ranking), 0.844 at 2, 0.956 at 4, 0.992 at
# 8, 0.998 at 16 and 32, for 4.7-8.9 ms per query (benchmarks/README.md "Index at scale").
REFINE = 8
SCAN_FRACTION = 0.25   # over-fetching past this share of the index: scan exactly instead
SMALL_BATCH = 20       # below this FAISS does not use BLAS, and extra OpenMP threads only add waiting
# Batch-size buckets of exact flat searches, each routed by its own measurement: the smallest
# batch of each. 20 is where FAISS switches to its BLAS path; numpy's per-query cost stops
# falling once a batch fills one query block (`exact.block_rows`), FAISS's keeps falling up to
# 4,096 queries, so batches of 256 and more share one bucket (the exports search 256 at a time).
BUCKETS = (2, 5, 20, 64, 256)
TRIALS = 3  # timed batches per path and bucket before the bucket's route is fixed (the best of 3)
ROUTES = ("auto", "numpy", "faiss")


@dataclass(frozen=True)
class IndexConfig:
    """How the index is built. HNSW: ``m``, ``ef_construction``, ``ef_search``; IVF and IVF-PQ:
    ``nlist``, ``nprobe``, ``train_iter``; IVF-PQ: ``pq_m`` sub-quantizers of ``pq_nbits`` bits each.
    ``None`` means derived from the catalogue at build (`resolved`), and the built index records
    the values it used."""

    kind: str = "flat"
    normalize: bool = True
    m: int = 32
    ef_construction: int = 64
    ef_search: int = 128
    nlist: int | None = None  # IVF lists; default sqrt(n) as a power of two (`_default_nlist`)
    nprobe: int = 32
    train_iter: int = 10  # IVF k-means iterations
    pq_m: int | None = None  # IVF-PQ sub-quantizers (bytes per vector at 8 bits); default `pq_m_for(dim)`
    pq_nbits: int | None = None  # bits per sub-quantizer code; default 8 (fewer for tiny catalogues)
    refine: int | None = None  # IVF-PQ: exact re-rank of refine * n code candidates; 0 = codes only; default REFINE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("m", "ef_construction", "ef_search", "nprobe", "train_iter"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"index {name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("nlist", "pq_m"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"index {name} must be a positive integer (or None for the default), got {value!r}")
        if self.pq_nbits is not None and (not isinstance(self.pq_nbits, int) or not 1 <= self.pq_nbits <= 16):
            raise ValueError(f"index pq_nbits must be an integer from 1 to 16 (8 is usual), got {self.pq_nbits!r}")
        if self.refine is not None:
            if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
                raise ValueError(f"index refine must be a whole number of candidates per hit (0 = none), "
                                 f"got {self.refine!r}")
            if self.refine and self.kind != "ivfpq":
                raise ValueError(f"index refine re-ranks IVF-PQ's compressed candidates; kind {self.kind!r} "
                                 f"already scores exactly (use refine only with kind 'ivfpq')")

    def resolved(self, n: int, dim: int) -> "IndexConfig":
        """This config with the IVF/PQ sizes that a build over ``n`` vectors of ``dim`` uses; a
        ValueError naming the value when they cannot work (``pq_m`` must divide ``dim``)."""
        if self.kind not in ("ivf", "ivfpq"):
            return self
        nlist = max(1, min(self.nlist or _default_nlist(self.kind, n), n // 39 or 1))
        if self.kind == "ivf":
            return replace(self, nlist=nlist)
        pq_m = self.pq_m or pq_m_for(dim)
        if dim % pq_m:
            divisors = [d for d in range(1, dim + 1) if dim % d == 0 and 4 <= dim // d <= 32]
            raise ValueError(f"index pq_m {pq_m} does not divide the dimension {dim}; pick a divisor of {dim}, "
                             f"such as {', '.join(map(str, divisors[-4:]))}")
        nbits = self.pq_nbits or max(1, min(8, int(math.log2(max(n, 2) / 39)) if n >= 78 else 1))
        if n < 2 ** nbits:
            raise ValueError(f"index pq_nbits {nbits} needs at least {2 ** nbits} vectors to train its codes, "
                             f"got {n}; use fewer bits or kind 'flat' (exact) for a catalogue this small")
        refine = REFINE if self.refine is None else self.refine
        return replace(self, nlist=nlist, pq_m=pq_m, pq_nbits=nbits, refine=refine)


def pq_m_for(dim: int) -> int:
    """Default IVF-PQ sub-quantizers: the most whose sub-vectors are still 8 dims wide or more
    (1280 dims: 160 sub-quantizers, 160 bytes per vector at 8 bits); 1 for a dimension under 8."""
    return max([d for d in range(1, dim // 8 + 1) if dim % d == 0] or [1])


def auto_kind(n: int, dim: int) -> str:
    """The kind ``kind="auto"`` builds for ``n`` vectors of ``dim``: exact ``flat`` up to
    `AUTO_EXACT_MAX_CELLS` values, ``hnsw`` up to `AUTO_HNSW_MAX` vectors, else `AUTO_APPROXIMATE`
    (see their comment for the measurements behind them)."""
    if n * dim <= AUTO_EXACT_MAX_CELLS:
        return "flat"
    return "hnsw" if n <= AUTO_HNSW_MAX else AUTO_APPROXIMATE


class MovieIndex(Searching):
    """Top-N search over id-keyed vectors by FAISS. Make one with `build` or `load`.

    A filtered or excluding query still returns ``n`` hits whenever ``n`` ids pass: FAISS is asked
    again with a larger k, and past a quarter of the index the search is exact (numpy).
    """

    def __init__(self, faiss_index, config: IndexConfig, ids: np.ndarray, metadata: MovieMetadata | None = None,
                 mapped: bool = False):
        self._index = faiss_index
        self.mapped = mapped  # loaded memory-mapped, read-only: shared between processes, cannot `add`
        self.config = config
        self._columns = Columns(np.asarray(ids, dtype=np.int64))
        self.metadata = metadata
        self.exact_route = "auto"
        self._winners: dict[int, str] = {}  # bucket -> "numpy" | "faiss", measured once each
        self._trials: dict[int, dict[str, list[float]]] = {}  # bucket -> path -> seconds per query
        self._pending: dict[int, dict[str, int]] = {}  # trials running now (concurrent searches)
        self._measuring = threading.Lock()
        self._tune()

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: Vectors, kind: str = "flat", normalize: bool = True,
              metadata: MovieMetadata | None = None, **options) -> "MovieIndex":
        """Index ``vectors`` (inner product; cosine when ``normalize``). ``kind``: one of `KINDS`
        or "auto" (`auto_kind`). ``options``: `IndexConfig` fields."""
        if kind == AUTO:
            kind = auto_kind(len(vectors), vectors.dim)
        config = IndexConfig(kind=kind, normalize=normalize, **options).resolved(len(vectors), vectors.dim)
        values = prepared_values(vectors, normalize, "MovieIndex.build")
        inner = _new_inner(config, vectors.dim, len(vectors))
        if config.kind in ("ivf", "ivfpq"):
            train = values
            cap = max(config.nlist, 2 ** (config.pq_nbits or 0)) * 40  # FAISS wants >= 39 points per centroid
            if len(train) > cap:
                train = train[np.random.default_rng(0).choice(len(train), cap, replace=False)]
            train_inner(inner, train)
        index = faiss.IndexIDMap2(inner)
        index.add_with_ids(values, vectors.ids)
        return cls(index, config, vectors.ids.copy(), metadata)

    def add(self, vectors: Vectors) -> None:
        """Add the vectors of ids not yet indexed (an id already present raises ValueError)."""
        if self.mapped:
            raise ValueError("this index was loaded memory-mapped (read-only, MovieIndex.load(..., mmap=True)); "
                             "load it with mmap=False to add vectors")
        if vectors.dim != self.dim:
            raise ArtifactError(f"cannot add {vectors.dim}-dim vectors to a {self.dim}-dim index: rebuild it instead")
        clash = np.intersect1d(vectors.ids, self._columns.ids)
        if len(clash):
            raise ValueError(f"{len(clash)} ids are already indexed (e.g. {clash[:5].tolist()}); rebuild to replace vectors")
        if len(vectors) == 0:
            return
        self._index.add_with_ids(prepared_values(vectors, self.normalize, "MovieIndex.add"), vectors.ids)
        self._columns = Columns(np.concatenate([self._columns.ids, vectors.ids]))
        self._winners, self._trials, self._pending = {}, {}, {}  # a larger index: measure again

    # -- facts -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def normalize(self) -> bool:
        return self.config.normalize

    @property
    def movie_ids(self) -> np.ndarray:
        return self._columns.ids.copy()

    ids = movie_ids

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._columns

    def vectors(self, ids=None) -> Vectors:
        """The stored (normalised, if so built) vectors of ``ids`` (default: all)."""
        ids = self._columns.ids if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        matrix = self._matrix()
        return Vectors(ids.copy(), matrix[self._columns.positions(ids)])

    def describe(self) -> dict:
        """The facts a manifest records and `load` checks: dim, count, kind, metric, normalize,
        the build config and the sha256 of the indexed ids; and ``bytes_per_vector`` (`bytes_per_vector`)."""
        from .storage import ids_checksum

        return {"dim": self.dim, "count": len(self), "kind": self.kind,
                "metric": "cosine" if self.normalize else "inner_product",
                "normalize": self.normalize, "config": asdict(self.config),
                "bytes_per_vector": self.bytes_per_vector,
                "searched_bytes_per_vector": self.searched_bytes_per_vector,
                "ids_sha256": ids_checksum(self._columns.ids)}

    @property
    def bytes_per_vector(self) -> int:
        """Bytes one indexed vector costs in the saved index and in memory: its stored code (4 per
        dimension, or the PQ code), its 8-byte id, and for IVF its 8-byte list entry id, for HNSW its
        level-0 links (``2 * m`` of 4 bytes), for IVF-PQ with refine also its full vector (4 per
        dimension; see `searched_bytes_per_vector`). Excluded: fixed costs (centroids, codebooks)
        and the id -> position hash map FAISS rebuilds at load (~40 bytes per id)."""
        inner = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            return int(faiss.downcast_index(inner.storage).code_size) + 8 + 4 * 2 * self.config.m
        if isinstance(inner, faiss.IndexRefine):
            return self.searched_bytes_per_vector + int(faiss.downcast_index(inner.refine_index).code_size)
        extra = 8 if self.kind in ("ivf", "ivfpq") else 0
        return int(inner.code_size) + 8 + extra

    @property
    def searched_bytes_per_vector(self) -> int:
        """Of `bytes_per_vector`, what every search scans: all but an IVF-PQ refine's full vectors,
        of which a search reads only its ``refine * n`` candidates' (from the page cache when mapped)."""
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexRefine):
            return int(self._ivf().code_size) + 16
        return self.bytes_per_vector

    # -- searching ------------------------------------------------------------------------
    def _search(self, queries, n, exclude, filter) -> tuple[bool, list[Hits]]:
        n = check_n(n)
        single, q = prepared_queries(queries, self.dim, self.normalize)
        excludes = per_query(exclude, len(q))
        allowed = allowed_ids(filter, self.metadata)
        if len(self) == 0:
            return single, [Hits.empty() for _ in q]
        if self.kind != "flat":
            return single, self._faiss_top(q, n, excludes, allowed)
        path, trial = self._route(len(q), fair=allowed is None)
        search = self._exact if path == "numpy" else self._faiss_top
        if trial is None:
            return single, search(q, n, excludes, allowed)
        t, took = time.perf_counter(), None
        try:
            hits = search(q, n, excludes, allowed)
            took = (time.perf_counter() - t) / len(q)
        finally:
            self._record(trial, path, took)
        return single, hits

    def _route(self, q: int, fair: bool = True) -> tuple[str, int | None]:
        """The path ("numpy" or "faiss") of an exact search of ``q`` queries, and the bucket it is
        a timed trial of (None: not a trial). A single query: FAISS. A batch: its bucket's winner;
        before there is one, the path with fewer trials (numpy first), or numpy once enough trials
        are running or the search is filtered (``fair`` False)."""
        if self.exact_route != "auto":
            return self.exact_route, None
        return self._auto_route(q, fair)

    def _auto_route(self, q: int, fair: bool) -> tuple[str, int | None]:
        if q < 2:
            return "faiss", None
        bucket = bucket_of(q)
        with self._measuring:
            winner = self._winners.get(bucket)
            if winner is not None:
                return winner, None
            if not fair:
                return "numpy", None
            done = self._trials.setdefault(bucket, {"numpy": [], "faiss": []})
            pending = self._pending.setdefault(bucket, {"numpy": 0, "faiss": 0})
            path = min(("numpy", "faiss"), key=lambda p: len(done[p]) + pending[p])
            if len(done[path]) + pending[path] >= TRIALS:
                return "numpy", None  # all trials are running: this search runs untimed
            pending[path] += 1
            return path, bucket

    def _record(self, bucket: int, path: str, seconds_per_query: float | None) -> None:
        """Book one trial (None: it failed, try again); decide the bucket once both paths have
        `TRIALS` timings: the lower best time wins (the best is the least disturbed by load)."""
        with self._measuring:
            pending = self._pending.get(bucket)
            done = self._trials.get(bucket)
            if pending is None or done is None:  # reset by `add` meanwhile
                return
            pending[path] -= 1
            if seconds_per_query is not None:
                done[path].append(seconds_per_query)
            if all(len(done[p]) >= TRIALS for p in done):
                self._winners[bucket] = "numpy" if min(done["numpy"]) <= min(done["faiss"]) else "faiss"
                del self._trials[bucket], self._pending[bucket]

    def _faiss_top(self, q: np.ndarray, n: int, excludes: list[np.ndarray], allowed: np.ndarray | None) -> list[Hits]:
        total = len(self)
        results: list[Hits | None] = [None] * len(q)
        share = 1.0 if allowed is None else max(len(allowed), 1) / total
        k = min(total, int(math.ceil(n / share * 1.2)) + max(len(e) for e in excludes))
        pending = np.arange(len(q))
        while len(pending):
            if k > SCAN_FRACTION * total:
                for i, hits in zip(pending, self._exact(q[pending], n, [excludes[i] for i in pending], allowed)):
                    results[i] = hits
                break
            scores, ids = _faiss_search(self._index, q[pending], k)
            still = []
            for row, i in enumerate(pending):
                keep = ids[row] >= 0
                if allowed is not None:
                    keep &= np.isin(ids[row], allowed)
                if len(excludes[i]):
                    keep &= ~np.isin(ids[row], excludes[i])
                if keep.sum() >= n or k >= total:
                    results[i] = Hits(ids[row][keep][:n].astype(np.int64), scores[row][keep][:n].astype(np.float32))
                else:
                    still.append(i)
            pending = np.asarray(still, dtype=np.int64)
            k = min(total, k * 4)
        return results  # type: ignore[return-value]

    def _exact(self, q: np.ndarray, n: int, excludes: list[np.ndarray], allowed: np.ndarray | None) -> list[Hits]:
        """Exact top-n over every stored vector that passes, by numpy (the flat batch path and the re-scan)."""
        cols = [self._columns.of(e) for e in excludes]
        top, vals = exact_top(self._matrix(), q, n, cols if any(len(c) for c in cols) else None,
                              None if allowed is None else self._columns.of(allowed))
        ids = self._columns.ids
        return [hits_from(ids, c, v) for c, v in zip(top, vals)]

    def changed(self, vectors: Vectors) -> np.ndarray:
        """The ids of ``vectors`` (all already indexed) whose stored vector is not what indexing
        them now would store: for a lossy kind (IVF-PQ codes only) their own codes are compared,
        i.e. the stored reconstruction against the vectors' round trip through the same codes."""
        if len(vectors) == 0:
            return np.empty(0, dtype=np.int64)
        want = prepared_values(vectors, self.normalize, "MovieIndex.changed")
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexIVF):  # codes, not full vectors: compare like with like
            want = inner.sa_decode(inner.sa_encode(want))
        have = self.vectors(vectors.ids).values
        tol = 1e-5 if self.kind != "ivfpq" or isinstance(inner, faiss.IndexRefine) else 1e-4
        return vectors.ids[~np.isclose(have, want, atol=tol, rtol=0).all(axis=1)]

    def _ivf(self):
        """The IVF part of an IVF or IVF-PQ index (an IVF-PQ refine's base), or None."""
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexRefine):
            inner = faiss.downcast_index(inner.base_index)
        return inner if isinstance(inner, faiss.IndexIVF) else None

    def _matrix(self) -> np.ndarray:
        """The stored vectors in column order: a read-only view of FAISS's own storage for flat,
        HNSW and IVF-PQ with refine (no copy), reconstructed for IVF."""
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        if isinstance(inner, faiss.IndexRefine):
            inner = faiss.downcast_index(inner.refine_index)
        if isinstance(inner, faiss.IndexFlat):
            view = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(inner.ntotal, inner.d)
            view.flags.writeable = False
            return view
        return self._index.reconstruct_batch(self._columns.ids)

    # -- tuning ----------------------------------------------------------------------------
    def set_search_options(self, ef_search: int | None = None, nprobe: int | None = None,
                           exact_route: str | None = None, refine: int | None = None) -> None:
        """Change HNSW ``ef_search``, IVF ``nprobe`` or an IVF-PQ index's ``refine`` (candidates per
        hit re-ranked exactly; it must have been built with refine) for later searches, or how a
        flat index searches: ``exact_route`` "auto" (see the module doc), "numpy" or "faiss" (always)."""
        if ef_search is not None:
            self.config = replace(self.config, ef_search=int(ef_search))
        if nprobe is not None:
            self.config = replace(self.config, nprobe=int(nprobe))
        if refine is not None:
            if not self.config.refine:
                raise ValueError("this index keeps no full vectors to re-rank with (built with refine 0 or not "
                                 "IVF-PQ); rebuild it with kind 'ivfpq' and refine > 0")
            if not isinstance(refine, int) or refine < 1:
                raise ValueError(f"refine must be a positive whole number of candidates per hit, got {refine!r}")
            self.config = replace(self.config, refine=refine)
        if exact_route is not None:
            if exact_route not in ROUTES:
                raise ValueError(f"exact_route must be one of {', '.join(ROUTES)}, got {exact_route!r}")
            self.exact_route = exact_route
        self._tune()

    @property
    def routes(self) -> dict:
        """How exact searches are routed now: the setting, the single-query path, and per batch
        bucket (named by its smallest batch) the winner measured so far (None: not yet seen)."""
        return {"exact_route": self.exact_route, "single": "faiss",
                "buckets": {low: self._winners.get(b) for b, low in enumerate(BUCKETS)}}

    def _tune(self) -> None:
        inner = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            inner.hnsw.efSearch = self.config.ef_search
        elif self.kind in ("ivf", "ivfpq"):
            ivf = self._ivf()
            ivf.nprobe = self.config.nprobe
            ivf.make_direct_map()
            if isinstance(inner, faiss.IndexRefine):
                inner.k_factor = float(self.config.refine)

    # -- persistence (see index.storage) ---------------------------------------------------
    def save(self, writer, inputs: dict | None = None) -> dict:
        """Write the ``index`` artifact into a `catalog.VersionWriter`; returns `describe()`, the
        entry to keep in the manifest's stage entry and to hand back to `load`."""
        from .storage import save_index

        return save_index(self, writer, inputs)

    @classmethod
    def load(cls, version, entry: dict, metadata: MovieMetadata | None = None, mmap: bool = False) -> "MovieIndex":
        """Read the ``index`` artifact of a `catalog.ModelVersion`, checked against ``entry`` (what
        `save` returned); `catalog.ArtifactError` naming the file on any mismatch. ``mmap=True``
        maps the file read-only instead of copying it into memory, so processes serving the same
        version share its pages (the index then cannot `add`); see `index.storage`."""
        from .storage import load_index

        return load_index(version, entry, metadata, mmap=mmap)


@contextmanager
def one_thread():
    """FAISS on one OpenMP thread inside the block (the count is process-wide; restored after)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def train_inner(inner, train: np.ndarray) -> None:
    """Train an IVF or IVF-PQ index. IVF-PQ trains on one thread: its ``pq_m`` small k-means runs
    (160 for 1280 dims) are all thread barriers; on this 2-core box at load 13, 40 of them took
    39 s on one thread and 197 s on two."""
    base = faiss.downcast_index(inner.base_index) if isinstance(inner, faiss.IndexRefine) else inner
    if isinstance(base, faiss.IndexIVFPQ):
        with one_thread():
            inner.train(train)
    else:
        inner.train(train)


def bucket_of(q: int) -> int:
    """The `BUCKETS` position of a batch of ``q`` queries (2 or more)."""
    return max(b for b, low in enumerate(BUCKETS) if q >= low)


def _faiss_search(index, q: np.ndarray, k: int):
    """FAISS search; a small batch runs on one OpenMP thread (on a busy machine a team of threads
    waiting on each other costs more than the search: 25 ms vs 1.4 ms for one 4k x 256 query).
    The thread count is process-wide; it is restored afterwards."""
    if len(q) >= SMALL_BATCH:
        return index.search(q, k)
    with one_thread():
        return index.search(q, k)


def _default_nlist(kind: str, n: int) -> int:
    """IVF and IVF-PQ lists: sqrt(n) rounded to a power of two (1M: 1,024; 5M: 2,048). Not FAISS's
    usual 4-16 * sqrt(n): on a 2-core machine assigning n vectors to nlist centroids (n * nlist *
    dim multiply-adds, ~25 GFLOP/s here) dominates the build: 1M x 1280 at 4,000 lists is ~7 min
    of assignment plus ~11 min of k-means, at 1,024 lists under 2 min and under 1 min."""
    return 2 ** max(0, round(math.log2(math.sqrt(max(n, 1)))))


def _new_inner(config: IndexConfig, dim: int, n: int):
    if config.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if config.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.ef_construction
        return inner
    codes = "Flat" if config.kind == "ivf" else f"PQ{config.pq_m}x{config.pq_nbits}"
    made = faiss.index_factory(dim, f"IVF{config.nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    inner = faiss.downcast_index(made)
    made.this.disown()  # the downcast proxy owns the C++ object from here on
    inner.this.own(True)
    inner.cp.niter = config.train_iter
    if config.kind == "ivfpq" and config.refine:
        refined = faiss.IndexRefineFlat(inner)  # keeps the full vectors beside the codes, re-ranks exactly
        inner.this.disown()
        refined.own_fields = True
        refined.k_factor = float(config.refine)
        return refined
    return inner


__all__ = ["IndexConfig", "MovieIndex", "KINDS", "AUTO", "auto_kind", "pq_m_for"]
