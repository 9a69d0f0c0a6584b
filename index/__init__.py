"""index stage: one top-N interface (`TopK`) over id-keyed vectors, exact or approximate, with filters.

    top = BruteForce.build(vectors)                   # numpy, exact; nothing to save
    index = MovieIndex.build(vectors)                 # FAISS IndexIDMap2(IndexFlatIP), normalised
    hits = index.search(query, n=10, exclude=seen_ids)        # (dim,) -> catalog.Hits, best first
    each = index.search(queries, n=10, exclude=per_query)     # (q, dim) -> list of Hits
    entry = index.save(writer); MovieIndex.load(version, entry, metadata)   # catalog.version

Never imports TensorFlow.
"""
from .brute_force import BruteForce
from .evaluation import check_hits
from .filters import MovieFilter, MovieMetadata
from .movie_index import AUTO, AUTO_APPROXIMATE, AUTO_EXACT_MAX_CELLS, AUTO_HNSW_MAX, KINDS, IndexConfig, MovieIndex, auto_kind, pq_m_for
from .topk import TopK

__all__ = ["TopK", "BruteForce", "MovieIndex", "IndexConfig", "KINDS", "AUTO", "AUTO_EXACT_MAX_CELLS", "AUTO_HNSW_MAX", "AUTO_APPROXIMATE",
           "auto_kind", "pq_m_for", "MovieFilter", "MovieMetadata",
           "check_hits"]
