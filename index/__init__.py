"""index stage: a FAISS top-N index over movie vectors (exact cosine by default), with filters.

    index = MovieIndex.build(vectors)                        # IndexIDMap2(IndexFlatIP), normalised
    hits = index.search(query, n=10, exclude=seen_ids)        # Hits(movie_ids, scores), best first
    index.save(dir); MovieIndex.load(dir, dim=...)            # verified against index.json

Never imports TensorFlow.
"""
from .filters import MovieFilter, MovieMetadata
from .movie_index import KINDS, Hits, IndexConfig, MovieIndex, search_exact
from .storage import INDEX_FILE, MANIFEST_FILE, load_index, read_manifest, save_index

__all__ = ["MovieFilter", "MovieMetadata", "KINDS", "Hits", "IndexConfig", "MovieIndex", "search_exact",
           "INDEX_FILE", "MANIFEST_FILE", "load_index", "read_manifest", "save_index"]
