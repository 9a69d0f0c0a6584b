"""`MovieIndex`: a FAISS top-N index over movie vectors, with filters, save/load and add.

Exact by default: ``IndexIDMap2(IndexFlatIP)`` over L2-normalised vectors, so scores are cosine
similarities. ``kind="hnsw"`` (``IndexHNSWFlat``) or ``kind="ivf"`` (``IndexIVFFlat``) trade a
little recall for speed on large catalogues. ``normalize=False`` keeps raw inner products, for
recommendation vectors whose dot product is a predicted rating.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import faiss
import numpy as np

from catalog import ArtifactError, Vectors

from .filters import MovieFilter, MovieMetadata

KINDS = ("flat", "hnsw", "ivf")
SCAN_FRACTION = 0.25  # over-fetching past this share of the catalogue: scan exactly instead


class Hits(NamedTuple):
    """Movie ids with their scores, best first: (n,) for one query, (q, n) for a batch."""

    movie_ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class IndexConfig:
    """How the index is built. HNSW: ``m``, ``ef_construction``, ``ef_search``; IVF: ``nlist``, ``nprobe``."""

    kind: str = "flat"
    normalize: bool = True
    m: int = 32
    ef_construction: int = 64
    ef_search: int = 128
    nlist: int | None = None  # IVF lists; default 4 * sqrt(n)
    nprobe: int = 32
    train_iter: int = 10  # IVF k-means iterations

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


class MovieIndex:
    """Top-N search over movie vectors. Build with `MovieIndex.build` or `MovieIndex.load`."""

    def __init__(self, faiss_index, config: IndexConfig, ids: np.ndarray, metadata: MovieMetadata | None = None):
        self._index = faiss_index
        self.config = config
        self._ids = np.asarray(ids, dtype=np.int64)
        self.metadata = metadata
        self._tune()

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: Vectors, kind: str = "flat", normalize: bool = True,
              metadata: MovieMetadata | None = None, **options) -> "MovieIndex":
        """Index ``vectors`` (inner product; cosine when ``normalize``)."""
        config = IndexConfig(kind=kind, normalize=normalize, **options)
        if len(vectors) == 0:
            raise ValueError("MovieIndex.build: no vectors to index")
        values = _prepared(vectors.values, normalize)
        inner = _new_inner(config, vectors.dim, len(vectors))
        if config.kind == "ivf":
            train = values
            cap = _ivf_nlist(config, len(vectors)) * 40  # FAISS wants >= 39 points per list
            if len(train) > cap:
                train = train[np.random.default_rng(0).choice(len(train), cap, replace=False)]
            inner.train(train)
        index = faiss.IndexIDMap2(inner)
        index.add_with_ids(values, vectors.ids)
        return cls(index, config, vectors.ids.copy(), metadata)

    def add(self, vectors: Vectors) -> None:
        """Add vectors of movies not yet indexed (an id already present raises ValueError)."""
        if vectors.dim != self.dim:
            raise ArtifactError(f"cannot add {vectors.dim}-dim vectors to a {self.dim}-dim index: rebuild it instead")
        clash = np.intersect1d(vectors.ids, self._ids)
        if len(clash):
            raise ValueError(f"{len(clash)} ids are already indexed (e.g. {clash[:5].tolist()}); rebuild to replace vectors")
        if len(vectors) == 0:
            return
        self._index.add_with_ids(_prepared(vectors.values, self.config.normalize), vectors.ids)
        self._ids = np.concatenate([self._ids, vectors.ids])

    # -- facts -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def movie_ids(self) -> np.ndarray:
        return self._ids.copy()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __contains__(self, movie_id: object) -> bool:
        return bool(np.any(self._ids == int(movie_id)))  # type: ignore[arg-type]

    def vectors(self, ids=None) -> Vectors:
        """The stored (normalised, if so built) vectors of ``ids`` (default: all)."""
        ids = self._ids if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        missing = np.setdiff1d(ids, self._ids)
        if len(missing):
            from catalog import UnknownMovieError

            raise UnknownMovieError(f"movie {int(missing[0])} is not in the index")
        return Vectors(ids, self._index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim), np.float32))

    # -- searching ------------------------------------------------------------------------
    def search(self, queries, n: int = 10, exclude=None, filter: MovieFilter | None = None,
               metadata: MovieMetadata | None = None) -> Hits:
        """The ``n`` best movies for each query, best first.

        ``queries``: (dim,) gives 1-D hits; (q, dim) gives (q, m) hits. ``exclude``: ids to leave
        out, either one array for every query or a sequence of one array per query. ``filter``:
        a `MovieFilter`, checked against ``metadata`` (default: the one given at build/load).
        A filtered query still returns ``n`` hits whenever ``n`` movies pass: the index is
        searched again with a larger k, and past a quarter of the catalogue scanned exactly.
        Fewer movies passing means fewer hits: a batch is trimmed to the shortest row, so
        every row is full (use `search_each` for ragged per-query lists). Ids are never -1.
        """
        single, hits = self._search(queries, n, exclude, filter, metadata)
        if single:
            return hits[0]
        width = min((len(h.movie_ids) for h in hits), default=0)
        ids = np.stack([h.movie_ids[:width] for h in hits]) if hits else np.zeros((0, 0), np.int64)
        scores = np.stack([h.scores[:width] for h in hits]) if hits else np.zeros((0, 0), np.float32)
        return Hits(ids, scores)

    def search_each(self, queries, n: int = 10, exclude=None, filter: MovieFilter | None = None,
                    metadata: MovieMetadata | None = None) -> list[Hits]:
        """Like `search` on a batch, but one `Hits` per query, each as long as it can be (<= n)."""
        return self._search(queries, n, exclude, filter, metadata)[1]

    def _search(self, queries, n, exclude, filter, metadata) -> tuple[bool, list[Hits]]:
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        n = int(n)
        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        q = q.reshape(1, -1) if single else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be ({self.dim},) or (q, {self.dim}), got shape {np.shape(queries)}")
        q = _prepared(q, self.config.normalize)
        excludes = _per_query(exclude, len(q))
        allowed = self._allowed(filter, metadata)
        return single, self._top(q, n, excludes, allowed)

    def _allowed(self, spec: MovieFilter | None, metadata: MovieMetadata | None) -> np.ndarray | None:
        if spec is None or spec.is_empty:
            return None
        metadata = metadata or self.metadata
        if metadata is None:
            raise ValueError("a genre/year filter needs movie metadata: pass metadata= to build/load or search")
        return metadata.allowed_ids(spec)

    def _top(self, q: np.ndarray, n: int, excludes: list[np.ndarray], allowed: np.ndarray | None) -> list[Hits]:
        total = len(self)
        results: list[Hits | None] = [None] * len(q)
        if total == 0:
            return [Hits(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in q]
        share = 1.0 if allowed is None else max(len(allowed), 1) / total
        k = min(total, int(math.ceil(n / share * 1.2)) + max(len(e) for e in excludes))
        pending = np.arange(len(q))
        while len(pending):
            if k > SCAN_FRACTION * total and not (self.kind == "flat" and k >= total):
                for chunk in np.array_split(pending, max(1, len(pending) // 64)):
                    for i, hits in zip(chunk, self._scan(q[chunk], n, [excludes[i] for i in chunk], allowed)):
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

    def _scan(self, q: np.ndarray, n: int, excludes: list[np.ndarray], allowed: np.ndarray | None) -> list[Hits]:
        """Exact top-n over every stored vector that passes, by numpy."""
        ids = self._ids if allowed is None else self._ids[np.isin(self._ids, allowed)]
        if len(ids) == 0:
            return [Hits(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in q]
        matrix = self._index.reconstruct_batch(ids)
        scores = q @ matrix.T
        out = []
        for row, excl in enumerate(excludes):
            s = scores[row].copy()
            if len(excl):
                s[np.isin(ids, excl)] = -np.inf
            m = min(n, int(np.isfinite(s).sum()))
            top = np.argpartition(-s, m - 1)[:m] if 0 < m < len(s) else np.flatnonzero(np.isfinite(s))
            top = top[np.argsort(-s[top], kind="stable")]
            out.append(Hits(ids[top].astype(np.int64), s[top].astype(np.float32)))
        return out

    # -- tuning ----------------------------------------------------------------------------
    def set_search_options(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change HNSW ``ef_search`` or IVF ``nprobe`` (recall vs speed) for later searches."""
        if ef_search is not None:
            self.config = replace(self.config, ef_search=int(ef_search))
        if nprobe is not None:
            self.config = replace(self.config, nprobe=int(nprobe))
        self._tune()

    def _tune(self) -> None:
        inner = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            inner.hnsw.efSearch = self.config.ef_search
        elif self.kind == "ivf":
            inner.nprobe = self.config.nprobe
            inner.make_direct_map()

    def describe(self) -> dict:
        """Facts for a manifest: dim, count, metric, kind, normalize and the build config."""
        return {"dim": self.dim, "count": len(self), "kind": self.kind,
                "metric": "cosine" if self.config.normalize else "inner_product",
                "normalize": self.config.normalize, "config": asdict(self.config)}

    # -- persistence (see index.storage) ---------------------------------------------------
    def save(self, directory) -> dict:
        from .storage import save_index

        return save_index(self, directory)

    @classmethod
    def load(cls, directory, dim: int | None = None) -> "MovieIndex":
        from .storage import load_index

        return load_index(directory, dim=dim)


SMALL_BATCH = 20  # below this FAISS does not use BLAS, and extra OpenMP threads only add waiting


def _faiss_search(index, q: np.ndarray, k: int):
    """FAISS search; a small batch runs on one OpenMP thread (on a busy machine a team of threads
    waiting on each other costs more than the search: 25 ms vs 1.4 ms for one 4k x 256 query).
    The thread count is process-wide; it is restored afterwards."""
    if len(q) >= SMALL_BATCH:
        return index.search(q, k)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(q, k)
    finally:
        faiss.omp_set_num_threads(threads)


def _prepared(values: np.ndarray, normalize: bool) -> np.ndarray:
    out = np.array(values, dtype=np.float32, order="C", copy=True)
    if normalize and len(out):
        faiss.normalize_L2(out)
    return out


def _per_query(exclude, q: int) -> list[np.ndarray]:
    if exclude is None:
        return [np.zeros(0, np.int64)] * q
    if isinstance(exclude, np.ndarray) and exclude.dtype != object:
        shared = np.unique(exclude.astype(np.int64).reshape(-1))
        return [shared] * q
    items = list(exclude)
    if items and all(np.isscalar(x) for x in items):
        shared = np.unique(np.asarray(items, dtype=np.int64))
        return [shared] * q
    if len(items) != q:
        raise ValueError(f"exclude: got {len(items)} per-query id lists for {q} queries")
    return [np.unique(np.asarray(x, dtype=np.int64).reshape(-1)) for x in items]


def _ivf_nlist(config: IndexConfig, n: int) -> int:
    nlist = config.nlist or int(4 * math.sqrt(n))
    return max(1, min(nlist, n // 39 or 1))


def _new_inner(config: IndexConfig, dim: int, n: int):
    if config.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if config.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.ef_construction
        return inner
    made = faiss.index_factory(dim, f"IVF{_ivf_nlist(config, n)},Flat", faiss.METRIC_INNER_PRODUCT)
    inner = faiss.downcast_index(made)
    made.this.disown()  # the downcast proxy owns the C++ object from here on
    inner.this.own(True)
    inner.cp.niter = config.train_iter
    return inner


def search_exact(values: np.ndarray, ids: np.ndarray, queries: np.ndarray, n: int) -> Hits:
    """Numpy brute force (no FAISS): the reference the tests and benchmark compare against."""
    scores = np.atleast_2d(queries).astype(np.float32) @ np.asarray(values, np.float32).T
    n = min(n, scores.shape[1])
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
    return Hits(np.asarray(ids)[top], np.take_along_axis(scores, top, 1))


__all__ = ["Hits", "IndexConfig", "MovieIndex", "KINDS", "search_exact"]
