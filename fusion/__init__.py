"""fusion stage: visual + collaborative movie vectors in one space, users in it, and cold start.

    fused = fuse({"collaborative": collab, "visual": visual}, {"collaborative": 0.5, "visual": 0.5})
    taste = user_taste(user_ids, movie_ids, ratings, visual)        # rating-weighted, L2-normalised
    query = user_queries(user_vectors, taste, weights)               # the hybrid user query
    alpha, _ = select_alpha(features, ranking_movies, ranking_users)  # K-fold on training movies
    estimate = ColdStartMap(alpha).fit(features, ranking_movies).predict(poster_only_features)

Never imports TensorFlow.
"""
from .blocks import fuse, fusion_summary, normalize_rows, resolve_weights
from .cold_start import (ColdStartMap, evaluate_cold_start, evaluate_ranking, genre_vectors, select_alpha,
                         stack_features, year_vectors)
from .taste import user_queries, user_taste

__all__ = ["fuse", "fusion_summary", "normalize_rows", "resolve_weights", "ColdStartMap",
           "evaluate_cold_start", "evaluate_ranking", "genre_vectors", "select_alpha", "stack_features",
           "year_vectors",
           "user_queries", "user_taste"]
