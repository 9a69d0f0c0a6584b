"""`Recommender`: the one facade that combines the stages for the CLI, the HTTP API and the page.

    rec = Recommender.load(home)                  # the CURRENT model version; all I/O happens here
    hits = rec.similar(movie_id, n=10, visual_weight=0.25)   # catalog.Hits: ids and scores, best first
    rec.lookalike(movie_id, n=10)                 # by poster alone
    rec.recommend(user_id, n=10)                  # never a movie the user rated; hits.because explains each
    rec.also_liked(movie_id, n=10)
    rec.describe(hits)                            # titles, years, genres joined at the edge

Every query goes through one top-K interface (`index.MovieIndex`, FAISS); nothing here imports
TensorFlow.

Spaces, by visual weight ``w`` (0 = ratings only, 1 = posters only):
- ``similar``: cosine in the fused space of weight ``w`` (`fusion.fuse`): each block normalised and
  scaled by the square root of its weight, so the score is ``(1-w) cos_collab + w cos_visual``. A
  movie with only one block keeps it, renormalised, so a movie with no ratings is still found by
  its poster and one with no poster by its ratings. The version's own index (built by
  ``build-index`` at its weight) is used as is; other weights are quantised to steps of
  `WEIGHT_STEP`, fused on first use and kept in a small cache.
- ``recommend``: at ``w = 0`` (its default) the ranking model's own order (an inner-product search
  over the ranking vectors: PureSVD blended with the predicted rating); above 0 the ranking
  model's top candidates re-ranked with the user's visual taste (see `Recommender.recommend`).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from catalog import (ArtifactError, Hits, Interactions, ModelStore, UnknownMovieError, UnknownUserError, Vectors)
from catalog.movies import MovieList

from . import pipeline
from .output import MAX_N
LIKED_MIN_RATING = 4.0
RERANK_POOL = 200          # ranking-model candidates a hybrid recommendation re-ranks
DEFAULT_RECOMMEND_WEIGHT = 0.0  # chosen from benchmarks/ranking_quality.py (see benchmarks/README.md)
WEIGHT_STEP = 0.05         # visual weights are quantised to this step, so a few spaces serve them all
SPACE_CACHE = 4            # fused spaces kept besides the version's own index
ALSO_LIKED_FANS = 50
DEFAULT_LIKED_WEIGHT = 0.0  # visitors who only like posters: chosen by benchmarks/new_visitors.py --tune


def check_weight(visual_weight) -> float:
    try:
        w = float(visual_weight)
    except (TypeError, ValueError):
        raise ValueError(f"visual weight must be a number between 0 and 1, got {visual_weight!r}") from None
    if not np.isfinite(w) or not 0.0 <= w <= 1.0:
        raise ValueError(f"visual weight must be between 0 and 1, got {visual_weight}")
    return round(round(w / WEIGHT_STEP) * WEIGHT_STEP, 4)


def check_n(n) -> int:
    n = int(n)
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}, got {n}")
    return n


class Recommender:
    """Queries over one model version. Thread-safe for reads; build with `Recommender.load`."""

    def __init__(self, home: Path, version, movies: MovieList, *, rating=None, ranking=None, interactions=None,
                 visual: Vectors | None = None, cold=None, index=None, poster_ids=(), metadata=None):
        from index import MovieIndex

        self.home = Path(home)
        self.model = version
        self.version = version.name
        self.manifest = version.manifest
        self.dataset = self.manifest.get("dataset") or ""
        self.rating, self.ranking_model = rating, ranking
        self.interactions: Interactions | None = interactions
        self.visual = visual
        self.has_posters = visual is not None and len(visual) > 0
        self.blocks = pipeline.fusion_blocks(rating, visual, cold)
        built = version.stage("build-index")
        self.default_visual_weight = float(built.get("visual_weight", pipeline.DEFAULT_VISUAL_WEIGHT)) \
            if self.has_posters else 0.0
        self.default_recommend_weight = DEFAULT_RECOMMEND_WEIGHT
        self._metadata = metadata if metadata is not None else _metadata(movies)
        self._lock = threading.Lock()
        self._building: dict[float, threading.Event] = {}
        self._spaces: OrderedDict[float, MovieIndex] = OrderedDict()
        self._own_space = None
        if index is not None:
            self._own_space = (check_weight(built["visual_weight"]), index)
        self._visual_index = MovieIndex.build(visual) if self.has_posters else None
        self._ranking_users = self._ranking_index = self._rating_index = None
        self._exact_route: str | None = None  # see pin_exact_route
        if rating is not None:
            users, movies_v = (ranking.ranking_users, ranking.ranking_movies) if ranking is not None else \
                (rating.scoring_users, rating.scoring_movies)
            ranked = pipeline.stack(movies_v, None if cold is None else cold[1])
            self._ranking_users = users
            self._ranking_index = MovieIndex.build(ranked, normalize=False)
            self._fans = MovieIndex.build(rating.scoring_users, normalize=False)
        self._popularity: dict[int, int] = {}
        if interactions is not None and len(interactions.movie_ids):
            ids, counts = interactions.movie_counts()
            self._popularity = dict(zip(ids.tolist(), counts.tolist()))
        self._poster_dir = self.home / "posters" / self.dataset
        with_poster = {int(m) for m in poster_ids}
        self._info = {m: {"movie_id": m, "title": t, "year": y, "genres": list(g), "has_poster": m in with_poster}
                      for m, t, y, g in movies.rows()}
        self._titles_lower = [(m, d["title"].lower()) for m, d in self._info.items()]
        self._absent = [k for k, entry in version.report(verify=False).items()
                        if entry["state"] == "absent" and entry["optional"]]

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, home) -> "Recommender":
        """Read the CURRENT version; a missing, damaged or foreign file is an `ArtifactError`."""
        from index import MovieIndex

        home = Path(home)
        version = ModelStore(home).open_current()
        movies = pipeline.movie_list_of(home, version)
        rating, ranking = pipeline.text_vectors(version)
        visual = pipeline.visual_vectors(version)
        if rating is None and visual is None:
            raise ArtifactError(f"{version.path}: no movie vectors; run `posterec train` (and `posterec embed`)")
        interactions = None
        if version.has("interactions"):
            try:
                interactions = Interactions.from_arrays(version.arrays("interactions"))
            except (KeyError, ValueError) as exc:
                raise version.invalid(pipeline.version_artifact("interactions"), str(exc)) from None
        elif rating is not None:
            raise version.invalid(pipeline.version_artifact("interactions"),
                                  "the rating model has no record of its training ratings")
        cold = pipeline.cold_start_vectors(version)
        index = None
        metadata = _metadata(movies)
        if version.has("index"):
            entry = version.stage("build-index")
            index = MovieIndex.load(version, entry.get("index") or {}, metadata=metadata,
                                    mmap=True)  # read-only pages shared by `serve --workers N`
        return cls(home, version, movies, rating=rating, ranking=ranking, interactions=interactions,
                   visual=visual, cold=cold, index=index, poster_ids=_poster_ids(home, version.manifest),
                   metadata=metadata)

    # -- catalogue -------------------------------------------------------------------------
    def _require_movie(self, movie_id) -> int:
        movie_id = int(movie_id)
        if movie_id not in self._info:
            raise UnknownMovieError(f"movie {movie_id} is not in the {self.dataset} catalogue")
        return movie_id

    def poster_path(self, movie_id) -> Path | None:
        if not self._info.get(int(movie_id), {}).get("has_poster"):
            return None
        for ext in ("jpg", "png"):
            p = self._poster_dir / f"{int(movie_id)}.{ext}"
            if p.is_file():
                return p
        return None

    def movie(self, movie_id) -> dict:
        movie_id = self._require_movie(movie_id)
        return {**self._info[movie_id], "ratings": self._popularity.get(movie_id, 0)}

    def describe(self, hits: Hits) -> list[dict]:
        """The movies of ``hits`` with their scores (and "because" for recommendations)."""
        out = []
        because = hits.because
        for k, (m, s) in enumerate(zip(hits.movie_ids, hits.scores)):
            d = self.movie(int(m))
            d["score"] = float(s)
            if because is not None:
                b = int(because[k])
                d["because"] = None if b < 0 else {"movie_id": b, "title": self._info[b]["title"]}
            out.append(d)
        return out

    def search_movies(self, q: str, n: int = 20) -> list[dict]:
        """Titles containing ``q`` (case-insensitive): prefix matches first, then the most rated."""
        q = (q or "").strip().lower()
        n = check_n(n)
        if not q:
            return []
        found = [(not t.startswith(q), -self._popularity.get(m, 0), m) for m, t in self._titles_lower if q in t]
        return [self.movie(m) for _, _, m in sorted(found)[:n]]

    def popular_movies(self, n: int = 10, with_poster: bool = False) -> list[dict]:
        """The ``n`` most rated movies (only those with a poster, if asked)."""
        ids = sorted(self._popularity, key=lambda m: (-self._popularity[m], m))
        if with_poster:
            ids = [m for m in ids if self._info.get(m, {}).get("has_poster")]
        return [self.movie(m) for m in ids[: check_n(n)] if m in self._info]

    def sample_users(self, n: int = 20) -> list[int]:
        """The ``n`` most active users (a stable, useful sample for the page)."""
        if self.interactions is None:
            return []
        counts = self.interactions.user_counts()
        order = np.lexsort((self.interactions.user_ids, -counts))[: check_n(n)]
        return [int(u) for u in self.interactions.user_ids[order]]

    def counts(self) -> dict:
        return {"movies": len(self._info), "users": 0 if self.interactions is None else len(self.interactions),
                "rated_movies": 0 if self.rating is None else len(self.rating.movies),
                "posters": 0 if self.visual is None else len(self.visual)}

    def health(self) -> dict:
        """Optional artifacts this version lacks by design, and what is stale (for ``/health``)."""
        return {"missing_optional": list(self._absent), "stale": []}

    # -- spaces ----------------------------------------------------------------------------
    def space(self, w: float):
        """The fused index of visual weight ``w`` (quantised): the version's own, or one fused on
        first use and cached (a few at a time). Concurrent first uses of one weight build it once."""
        from fusion import fuse
        from index import MovieIndex

        key = check_weight(w)
        if self._own_space is not None and self._own_space[0] == key:
            return self._own_space[1]
        while True:
            with self._lock:
                if key in self._spaces:
                    self._spaces.move_to_end(key)
                    return self._spaces[key]
                event = self._building.get(key)
                if event is None:
                    event = self._building[key] = threading.Event()
                    break
            event.wait()
        try:
            fused = fuse(self.blocks, pipeline.weights_for(self.blocks, key))
            space = MovieIndex.build(fused, metadata=self._metadata)
            with self._lock:
                self._spaces[key] = space
                while len(self._spaces) > SPACE_CACHE:
                    self._spaces.popitem(last=False)
            return space
        finally:
            with self._lock:
                self._building.pop(key, None)
            event.set()

    def _resolve_weight(self, visual_weight, default: float) -> float:
        w = default if visual_weight is None else check_weight(visual_weight)
        if not self.has_posters:
            return 0.0
        if "collaborative" not in self.blocks:
            return 1.0
        return w

    # -- queries ---------------------------------------------------------------------------
    def similar(self, movie_id, n: int = 10, visual_weight=None) -> Hits:
        """Movies most like ``movie_id`` in the fused space of ``visual_weight``; never itself."""
        movie_id, n = self._require_movie(movie_id), check_n(n)
        space = self.space(self._resolve_weight(visual_weight, self.default_visual_weight))
        if movie_id not in space:
            # no block of positive weight for this movie (e.g. no ratings at w=0): use what it has
            space = self.space(1.0 if self.visual is not None and movie_id in self.visual else 0.0)
            if movie_id not in space:
                raise UnknownMovieError(f"movie {movie_id} has neither ratings nor a poster in model {self.version}")
        return space.search(space.vectors([movie_id]).values[0], n, exclude=np.array([movie_id]))

    def lookalike(self, movie_id, n: int = 10) -> Hits:
        """Movies whose posters look most like ``movie_id``'s (cosine of poster embeddings)."""
        movie_id, n = self._require_movie(movie_id), check_n(n)
        if self._visual_index is None:
            raise ArtifactError(f"model {self.version} has no poster embeddings; run `posterec embed`")
        if movie_id not in self.visual:
            raise UnknownMovieError(f"movie {movie_id} has no poster embedding in model {self.version}")
        return self._visual_index.search(self.visual.get(movie_id), n, exclude=np.array([movie_id]))

    def liked(self, user_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The movies ``user_id`` rated highly in training (>= 4, else their own best), with the ratings."""
        if self.interactions is None:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        movies, ratings = self.interactions.ratings_of(user_id)
        if not len(movies):
            return movies, ratings
        keep = ratings >= min(LIKED_MIN_RATING, float(ratings.max()))
        return movies[keep], ratings[keep]

    def recommend(self, user_id, n: int = 10, visual_weight=None, because: bool = True) -> Hits:
        """The ``n`` movies best for ``user_id`` that they have not rated, each with the liked movie
        nearest to it (``hits.because``).

        ``visual_weight`` 0 is the ranking model's own order. Above 0 the model's top candidates
        are re-ranked by ``(1-w) z(ranking score) + w z(cosine to the user's poster taste)``.
        """
        user_id, n = int(user_id), check_n(n)
        if self._ranking_index is None or user_id not in self._ranking_users:
            raise UnknownUserError(f"user {user_id} is not known to model {self.version}")
        w = self._resolve_weight(visual_weight, self.default_recommend_weight)
        seen = self.interactions.of(user_id) if self.interactions is not None else np.empty(0, np.int64)
        if w == 0.0:
            hits = self._ranking_index.search(self._ranking_users.get(user_id), n, exclude=seen)
        else:
            hits = self._rerank(user_id, n, w, seen)
        if because:
            hits = replace(hits, because=self._because(user_id, hits.movie_ids, self.space(w)))
        return hits

    def _rerank(self, user_id: int, n: int, w: float, seen) -> Hits:
        from fusion import user_taste

        liked, ratings = self.liked(user_id)
        taste = user_taste(np.full(len(liked), user_id), liked, ratings, self.visual, threshold=0.0)
        query = self._ranking_users.get(user_id)
        if user_id not in taste:
            return self._ranking_index.search(query, n, exclude=seen)
        return self._rerank_query(query, taste.get(user_id), n, w, seen)

    def _because(self, user_id: int, rec_ids: np.ndarray, space) -> np.ndarray:
        """For each recommended movie, the highly rated movie of the user nearest to it (-1: none)."""
        return self._because_of(self.liked(user_id)[0], rec_ids, space)

    def known_users(self) -> np.ndarray:
        """The user ids ``recommend`` knows, sorted."""
        return np.empty(0, np.int64) if self._ranking_users is None else np.sort(self._ranking_users.ids)

    def pin_exact_route(self, route: str = "numpy") -> None:
        """`recommend_many` always searches by ``route`` ("numpy" or "faiss", see
        `index.MovieIndex.set_search_options`). The default "auto" picks the faster one by a
        timing at the first batch, which can differ from run to run under load, and the two agree
        on the hits but not on the last bit of the scores: a long export that resumes in another
        process pins the route so that its file is the same, byte for byte."""
        self._exact_route = route
        for index in (self._ranking_index, self._rating_index):
            if index is not None:
                index.set_search_options(exact_route=route)

    def recommend_many(self, user_ids, n: int = 10, by: str = "ranking") -> list[Hits]:
        """`recommend` at visual weight 0 for many users in one batched search (no "because");
        ``by="rating"`` ranks by predicted rating instead."""
        n = check_n(n)
        user_ids = np.asarray(user_ids, dtype=np.int64)
        if by not in ("ranking", "rating"):
            raise ValueError(f"by must be 'ranking' or 'rating', got {by!r}")
        if self._ranking_index is None:
            raise UnknownUserError(f"model {self.version} has no rating model")
        if by == "ranking":
            users, index = self._ranking_users, self._ranking_index
        else:
            from index import MovieIndex

            users = self.rating.scoring_users
            with self._lock:
                if self._rating_index is None:
                    self._rating_index = MovieIndex.build(self.rating.scoring_movies, normalize=False)
                    if self._exact_route is not None:
                        self._rating_index.set_search_options(exact_route=self._exact_route)
            index = self._rating_index
        missing = np.setdiff1d(user_ids, users.ids)
        if len(missing):
            raise UnknownUserError(f"user {int(missing[0])} is not known to model {self.version}")
        seen = [self.interactions.of(u) for u in user_ids] if self.interactions is not None else None
        return index.search_each(users.subset(user_ids).values, n, exclude=seen)

    def also_liked(self, movie_id, n: int = 10, n_users: int = ALSO_LIKED_FANS) -> Hits:
        """What the users who would rate ``movie_id`` highest like best (their mean ranking score),
        excluding it."""
        movie_id, n = self._require_movie(movie_id), check_n(n)
        if self.rating is None or movie_id not in self.rating.scoring_movies:
            raise UnknownMovieError(f"movie {movie_id} has no ratings in model {self.version}")
        fans = self._fans.search(self.rating.scoring_movies.get(movie_id), max(1, n_users))
        query = self._ranking_users.subset(fans.movie_ids).values.astype(np.float64).mean(axis=0)
        return self._ranking_index.search(query.astype(np.float32), n, exclude=np.array([movie_id]))

    # -- visitors: people the model has never seen (see posterec.visitor) -------------------
    def rating_scale(self) -> tuple[float, float]:
        """The dataset's rating scale (lo, hi)."""
        return tuple(self.rating.rating_range) if self.rating is not None else (1.0, 5.0)

    def _visitor(self, ratings, liked):
        from .visitor import visitor_input

        lo, hi = self.rating_scale()
        return visitor_input(ratings, liked, lambda m: m in self._info, (lo, hi),
                             min(LIKED_MIN_RATING, hi))

    def _fold_in(self):
        """The model's `text_model.fold_in.FoldIn`, built on first use."""
        with self._lock:
            if getattr(self, "_fold", None) is None:
                from text_model.fold_in import FoldIn

                self._fold = FoldIn.of(self.rating, self.ranking_model, self._ranking_index.vectors(),
                                       self.interactions)
            return self._fold

    def visitor_vector(self, ratings=None, liked=None) -> np.ndarray:
        """The visitor's ranking vector (fold-in; see `text_model.fold_in`), searchable like a
        known user's `_ranking_users` vector."""
        if self._ranking_index is None:
            raise ArtifactError(f"model {self.version} has no rating model to fold a visitor into")
        given = self._visitor(ratings, liked)
        fold = self._fold_in()
        keep = np.isin(given.movie_ids, fold.movies.ids)
        return fold.vector(given.movie_ids[keep], given.ratings[keep])

    def recommend_for(self, ratings=None, liked=None, n: int = 10, visual_weight=None) -> Hits:
        """Recommendations for a visitor the model has never seen, from a few ``ratings``
        ({movie_id: rating} or pairs) and/or ``liked`` movie ids, with no retraining.

        The rules of `recommend`: never a movie given; ``hits.because`` is a given liked movie
        behind each. With nothing given: the most popular movies (``because`` all -1).

        - Only ``liked`` movies (the poster wall): "people who liked X also liked Y"
          (`posterec.visitor.CoRatings`, item-item cosine of the training users' likes), the
          best-scoring movies of it re-ranked by ``(1-w) z(co-rating) + w z(poster taste)``
          (w = 1: by look alone among them); ``because`` the liked movie with the largest
          ``(1-w) share of the co-rating + w poster cosine``. The default weight is
          `DEFAULT_LIKED_WEIGHT`. Liked movies nobody in training liked (a movie just added)
          fall back to the fold-in below.
        - ``ratings`` (with or without likes): the visitor folded into the ranking model
          (`visitor_vector`) at visual weight 0, its top candidates re-ranked with the poster
          taste above 0; ``because`` the given liked movie nearest to each.
        """
        n = check_n(n)
        given = self._visitor(ratings, liked)
        if not len(given):
            return self._popular_hits(n)
        w = self._resolve_weight(visual_weight, self.default_recommend_weight)
        liked_ids = given.movie_ids[given.liked]
        if not len(liked_ids):  # only low ratings: explain by the best of them
            liked_ids = given.movie_ids[given.ratings >= given.ratings.max()]
        taste = self._visitor_taste(given)
        if self._ranking_index is None:  # a posters-only model: the poster taste alone
            if taste is None:
                return self._popular_hits(n, exclude=given.movie_ids)
            hits = self._visual_index.search(taste, n, exclude=given.movie_ids)
        else:
            if ratings is None or len(ratings) == 0:  # likes alone: the co-ratings of the liked movies
                w = self._resolve_weight(visual_weight, DEFAULT_LIKED_WEIGHT)
                hits = self._liked_hits(given.movie_ids, n, w, taste)
                if hits is not None:
                    return hits
            fold = self._fold_in()
            keep = np.isin(given.movie_ids, fold.movies.ids)
            query = fold.vector(given.movie_ids[keep], given.ratings[keep])
            if w == 0.0 or taste is None:
                hits = self._ranking_index.search(query, n, exclude=given.movie_ids)
            else:
                hits = self._rerank_query(query, taste, n, w, given.movie_ids)
        return replace(hits, because=self._because_of(liked_ids, hits.movie_ids, self.space(w)))

    def _co_ratings(self):
        """The training likes as a `posterec.visitor.CoRatings`, the popularity of its columns (for
        ties) and their unit posters (zeros without one), built on first use."""
        with self._lock:
            if getattr(self, "_co", None) is None:
                from .visitor import CoRatings

                co = CoRatings.of(self.interactions, np.array(sorted(self._info), np.int64),
                                  min(LIKED_MIN_RATING, self.rating_scale()[1]))
                popularity = np.array([self._popularity.get(int(m), 0) for m in co.movie_ids], np.float64)
                looks, has = None, np.zeros(len(co.movie_ids), bool)
                if self.has_posters:
                    has = np.isin(co.movie_ids, self.visual.ids)
                    looks = np.zeros((len(co.movie_ids), self.visual.dim), np.float32)
                    v = self.visual.subset(co.movie_ids[has]).values.astype(np.float32)
                    looks[has] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                self._co = co, popularity, looks, has
            return self._co

    def _liked_hits(self, liked: np.ndarray, n: int, w: float, taste) -> Hits | None:
        """`recommend_for` for a visitor who gave only likes (see there); None when no liked
        movie has co-ratings."""
        co, popularity, looks, has = self._co_ratings()
        part = co.contributions(liked)
        score = part.sum(axis=0)
        if not score.any():
            return None
        allowed = ~np.isin(co.movie_ids, liked)
        order = np.lexsort((co.movie_ids, -popularity, -score))
        order = order[allowed[order]]
        if w == 0.0 or taste is None or looks is None:
            cols, final = order[:n], score[order[:n]]
        else:
            pool = order[: max(RERANK_POOL, 20 * n)]
            blended = (1.0 - w) * _z(score[pool]) + w * _z(_cosines(looks[pool], has[pool], taste))
            pick = np.argsort(-blended, kind="stable")[:n]
            cols, final = pool[pick], blended[pick]
        share = part[:, cols] / np.maximum(part[:, cols].sum(axis=0, keepdims=True), 1e-12)
        why = (1.0 - w) * share
        if w > 0.0 and looks is not None and taste is not None:
            why = why + w * (looks[cols] @ looks[np.searchsorted(co.movie_ids, liked)].T).T
        because = np.where(why.max(axis=0) > 0, liked[np.argmax(why, axis=0)], -1)
        return Hits(co.movie_ids[cols], final.astype(np.float32), because.astype(np.int64))

    def _visitor_taste(self, given) -> np.ndarray | None:
        """The rating-weighted mean poster of the liked movies (`fusion.user_taste`), or None."""
        from fusion import user_taste

        if not self.has_posters:
            return None
        keep = given.liked
        taste = user_taste(np.zeros(int(keep.sum()), np.int64), given.movie_ids[keep], given.ratings[keep],
                           self.visual, threshold=0.0)
        return taste.values[0] if len(taste) else None

    def _rerank_query(self, query: np.ndarray, taste: np.ndarray, n: int, w: float, seen) -> Hits:
        """The ranking model's top candidates for ``query`` re-ranked by
        ``(1-w) z(ranking score) + w z(cosine of each poster to the poster taste)``."""
        k = min(len(self._ranking_index), max(RERANK_POOL, 20 * n))
        cand = self._ranking_index.search(query, k, exclude=seen)
        if not len(cand.movie_ids):
            return cand
        has = np.isin(cand.movie_ids, self.visual.ids)
        cos = np.zeros(len(cand.movie_ids), np.float64)
        if has.any():
            cos[has] = self.visual.subset(cand.movie_ids[has]).values @ taste
            cos[~has] = cos[has].mean()

        def z(x):
            x = np.asarray(x, np.float64)
            sd = x.std()
            return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

        blended = (1.0 - w) * z(cand.scores) + w * z(cos)
        order = np.argsort(-blended, kind="stable")[:n]
        return Hits(cand.movie_ids[order], blended[order].astype(np.float32))

    def _because_of(self, liked: np.ndarray, rec_ids: np.ndarray, space) -> np.ndarray:
        """For each recommended movie, the movie of ``liked`` nearest to it in ``space`` (-1: none)."""
        out = np.full(len(rec_ids), -1, np.int64)
        liked = np.array([m for m in liked if m in space], dtype=np.int64)
        present = np.array([k for k, m in enumerate(rec_ids) if m in space], dtype=np.int64)
        if not len(liked) or not len(present):
            return out
        a = space.vectors(rec_ids[present]).values
        b = space.vectors(liked).values
        out[present] = liked[np.argmax(a @ b.T, axis=1)]
        return out

    def _popular_hits(self, n: int, exclude=()) -> Hits:
        """The ``n`` most rated movies (posters first for a model without ratings), ``because`` -1."""
        skip = {int(m) for m in exclude}
        ids = sorted(self._info, key=lambda m: (-self._popularity.get(m, 0), not self._info[m]["has_poster"], m))
        ids = [m for m in ids if m not in skip][:n]
        scores = np.array([self._popularity.get(m, 0) for m in ids], np.float32)
        return Hits(np.asarray(ids, np.int64), scores, np.full(len(ids), -1, np.int64))

    def poster_wall(self, n: int = 24, seed: int = 0, exclude=()) -> list[dict]:
        """``n`` posters to start from: popular, spread across looks and genres (k-means of the
        poster embeddings and genres of the most popular posters, then a popular one from each
        cluster). ``seed`` 0 deals the most popular of each cluster, other seeds other walls;
        ``exclude``: movies not to show (already liked)."""
        from .visitor import PosterWall

        n = check_n(n)
        if not self.has_posters:
            return []
        with self._lock:
            if getattr(self, "_wall", None) is None:
                ids = np.array([m for m in self.visual.ids if self._info.get(int(m), {}).get("has_poster")],
                               np.int64)
                if len(ids):
                    self._wall = PosterWall.build(ids, self.visual.subset(ids).values,
                                                  [tuple(self._info[int(m)]["genres"]) for m in ids],
                                                  np.array([self._popularity.get(int(m), 0) for m in ids]))
                else:
                    self._wall = PosterWall(())
            wall = self._wall
        return [self.movie(m) for m in wall.deal(n, int(seed), exclude)]


def _cosines(looks: np.ndarray, has: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosines of the unit posters ``looks`` to the unit ``query``; a movie with no poster gets
    the mean of the others (neither pushed nor sunk by its look)."""
    out = (looks @ np.asarray(query, np.float32)).astype(np.float64)
    if has.any() and not has.all():
        out[~has] = out[has].mean()
    return out


def _z(x) -> np.ndarray:
    """``x`` centred and scaled to unit standard deviation (zeros when constant)."""
    x = np.asarray(x, np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _metadata(movies):
    """The `index.MovieMetadata` (genres, years) of a `catalog.MovieList`."""
    from index import MovieMetadata

    return MovieMetadata.from_mapping({m: (g, y) for m, _, y, g in movies.rows()})


def _poster_ids(home: Path, manifest: dict) -> set[int]:
    """Movies whose poster file is in the poster store (for ``has_poster`` and ``/posters``)."""
    folder = Path(home) / "posters" / (manifest.get("dataset") or "")
    if not folder.is_dir():
        return set()
    found = set()
    for name in os.listdir(folder):  # names, not Path objects: a query command pays for this
        stem, dot, suffix = name.rpartition(".")
        if dot and suffix in ("jpg", "png") and stem.isdigit():
            found.add(int(stem))
    return found


