"""`Recommender`: the one facade that combines the stages for the CLI, the HTTP API and the page.

    rec = Recommender.load(home)                  # the CURRENT model version
    rec.similar(movie_id, n=10, visual_weight=0.25)
    rec.lookalike(movie_id, n=10)                 # by poster alone
    rec.recommend(user_id, n=10)                  # never a movie the user has rated
    rec.also_liked(movie_id, n=10)

Every query goes through a FAISS `index.MovieIndex`; nothing here imports TensorFlow.

Spaces, by visual weight ``w`` (0 = ratings only, 1 = posters only):
- ``similar``: cosine in the fused space of weight ``w`` (`fusion.fuse`): each block normalised and
  scaled by the square root of its weight, so the score is ``(1-w) cos_collab + w cos_visual``. A
  movie with only one block keeps it, renormalised, so a movie with no ratings is still found by
  its poster and one with no poster by its ratings. The model version's own index (built by
  ``build-index`` at its weight) is used as is; other weights are fused on first use and cached.
- ``recommend``: at ``w = 0`` (its default) the rating model's own ranking (an inner-product search
  over the ranking vectors, which encode predicted rating plus popularity); above 0 the model's top
  candidates re-ranked with the user's visual taste (see `Recommender.recommend`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from catalog import (ArtifactError, ModelStore, SeenItems, UnknownMovieError, UnknownUserError, Vectors,
                     load_dataset, load_movies)

COLLAB, VISUAL, USERS = "collab.npz", "visual.npz", "users.npz"
COLD = "collab_cold.npz"
RANKING_COLD = "ranking_cold.npz"
RANKING = ("ranking_users.npz", "ranking_movies.npz")
SCORING = ("scoring_users.npz", "scoring_movies.npz")
SEEN = "seen.npz"
from .commands.index import DEFAULT_VISUAL_WEIGHT  # noqa: E402  (similar's default)
MAX_N = 1000
LIKED_MIN_RATING = 4.0
RERANK_POOL = 200          # rating-model candidates a hybrid recommendation re-ranks
DEFAULT_RECOMMEND_WEIGHT = 0.0  # chosen from benchmarks/hybrid_quality.py (see benchmarks/README.md)


def _weight(visual_weight) -> float:
    w = float(visual_weight)
    if not 0.0 <= w <= 1.0 or not np.isfinite(w):
        raise ValueError(f"visual weight must be between 0 and 1, got {visual_weight}")
    return w


def _n(n) -> int:
    n = int(n)
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}, got {n}")
    return n


def _load_optional(folder: Path, name: str) -> Vectors | None:
    path = folder / name
    return Vectors.load(path) if path.exists() else None


class _Space:
    """A FAISS index with the vectors it holds, for O(1) membership and row lookups."""

    def __init__(self, index, vectors: Vectors):
        self.index, self._vectors = index, vectors

    def __contains__(self, movie_id) -> bool:
        return movie_id in self._vectors

    def search(self, *args, **kwargs):
        return self.index.search(*args, **kwargs)

    def vectors(self, ids) -> Vectors:
        return self._vectors.subset(ids)


class Recommender:
    """Queries over one model version. Thread-safe for reads; build with `Recommender.load`."""

    def __init__(self, home: Path, folder: Path, manifest: dict, movies, *, collab: Vectors | None,
                 visual: Vectors | None, users: Vectors | None, ranking: tuple[Vectors, Vectors] | None,
                 scoring: tuple[Vectors, Vectors] | None, seen, fused_index=None, fused_weight=None):
        from index import MovieIndex

        self.home = Path(home)
        self.folder = Path(folder)
        self.manifest = manifest
        self.version = folder.name
        self.dataset = manifest.get("dataset") or ""
        self.movies = movies.reset_index(drop=True)
        self._row = {int(m): r for r, m in enumerate(self.movies["movie_id"].to_numpy())}
        self.collab, self.visual, self.users = collab, visual, users
        self.ranking, self.scoring, self.seen = ranking, scoring, seen
        self.has_posters = visual is not None and len(visual) > 0
        fusion = manifest.get("fusion") or {}
        self.default_visual_weight = float((fusion.get("weights") or {}).get("visual", DEFAULT_VISUAL_WEIGHT)) \
            if self.has_posters else 0.0
        self.default_recommend_weight = DEFAULT_RECOMMEND_WEIGHT
        self._lock = threading.Lock()
        self._spaces: OrderedDict[float, object] = OrderedDict()
        if fused_index is not None and fused_weight is not None:
            self._spaces[round(float(fused_weight), 2)] = _Space(fused_index, fused_index.vectors())
        self._visual_index = MovieIndex.build(visual) if self.has_posters else None
        self._ranking_index = MovieIndex.build(ranking[1], normalize=False) if ranking is not None else None
        self._ratings = None
        self._popularity: dict[int, int] = {}
        if seen is not None and len(seen.movie_ids):
            ids, counts = np.unique(seen.movie_ids, return_counts=True)
            self._popularity = dict(zip(ids.tolist(), counts.tolist()))
        self._poster_dir = self.home / "posters" / self.dataset
        with_poster = set()
        if self._poster_dir.is_dir():
            with_poster = {int(p.stem) for p in self._poster_dir.iterdir()
                           if p.stem.isdigit() and p.suffix in (".jpg", ".png")}
        self._info = {
            int(m): {"movie_id": int(m), "title": str(t), "year": None if pd.isna(y) else int(y),
                     "genres": list(g), "has_poster": int(m) in with_poster}
            for m, t, y, g in zip(self.movies["movie_id"], self.movies["title"], self.movies["year"], self.movies["genres"])
        }

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, home) -> "Recommender":
        from index import MovieIndex

        home = Path(home)
        store = ModelStore(home)
        folder = store.require_current()
        manifest = store.read_manifest(folder)
        dataset = manifest.get("dataset")
        if not dataset:
            raise ArtifactError(f"{folder}: the manifest names no dataset; run `posterec train` first")
        from .commands.index import input_checksums

        fusion = manifest.get("fusion") or {}
        # fused.npz, index.faiss and collab_cold.npz built from older vectors (a later train or
        # embed) are stale: they are ignored and the spaces fused afresh
        fresh = bool(fusion.get("inputs")) and fusion.get("inputs") == input_checksums(folder)
        collab = _load_optional(folder, COLLAB)
        cold = _load_optional(folder, COLD) if fresh else None
        if collab is not None and cold is not None:
            keep = ~np.isin(cold.ids, collab.ids)
            collab = Vectors(np.concatenate([collab.ids, cold.ids[keep]]), np.vstack([collab.values, cold.values[keep]]))
        visual = _load_optional(folder, VISUAL)
        if collab is None and visual is None:
            raise ArtifactError(f"{folder}: no movie vectors; run `posterec train` (and `posterec embed`)")
        ranking = scoring = None
        if all((folder / f).exists() for f in RANKING):
            ranking = tuple(Vectors.load(folder / f) for f in RANKING)
            ranking_cold = _load_optional(folder, RANKING_COLD) if fresh else None
            if ranking_cold is not None:  # poster-only movies, estimated from poster + metadata
                keep = ~np.isin(ranking_cold.ids, ranking[1].ids)
                ranking = (ranking[0], Vectors(np.concatenate([ranking[1].ids, ranking_cold.ids[keep]]),
                                               np.vstack([ranking[1].values, ranking_cold.values[keep]])))
        if all((folder / f).exists() for f in SCORING):
            scoring = tuple(Vectors.load(folder / f) for f in SCORING)
            ranking = ranking or scoring
        seen = SeenItems.load(folder / SEEN) if (folder / SEEN).exists() else None
        fused_index = fused_weight = None
        if fresh and (folder / "index.faiss").exists() and visual is not None and collab is not None:
            weights = fusion.get("weights") or {}
            if "visual" in weights and "collaborative" in weights:
                fused_index = MovieIndex.load(folder)
                fused_weight = float(weights["visual"])
        return cls(home, folder, manifest, load_movies(home, dataset), collab=collab, visual=visual,
                   users=_load_optional(folder, USERS), ranking=ranking, scoring=scoring, seen=seen,
                   fused_index=fused_index, fused_weight=fused_weight)

    # -- catalogue -------------------------------------------------------------------------
    def _require_movie(self, movie_id) -> int:
        movie_id = int(movie_id)
        if movie_id not in self._row:
            raise UnknownMovieError(f"movie {movie_id} is not in the {self.dataset} catalogue")
        return movie_id

    def poster_path(self, movie_id) -> Path | None:
        for ext in ("jpg", "png"):
            p = self._poster_dir / f"{int(movie_id)}.{ext}"
            if p.exists():
                return p
        return None

    def movie(self, movie_id) -> dict:
        movie_id = self._require_movie(movie_id)
        return {**self._info[movie_id], "ratings": self._popularity.get(movie_id, 0)}

    def _described(self, ids, scores) -> list[dict]:
        out = []
        for m, s in zip(ids, scores):
            d = self.movie(int(m))
            d["score"] = float(s)
            out.append(d)
        return out

    def search_movies(self, q: str, n: int = 20) -> list[dict]:
        """Titles containing ``q`` (case-insensitive): prefix matches first, then the most rated."""
        q = (q or "").strip().lower()
        n = _n(n)
        if not q:
            return []
        titles = self.movies["title"].astype(str).str.lower()
        hit = titles.str.contains(q, regex=False).to_numpy()
        ids = self.movies["movie_id"].to_numpy()[hit]
        prefix = titles.to_numpy()[hit]
        order = sorted(range(len(ids)), key=lambda k: (not prefix[k].startswith(q), -self._popularity.get(int(ids[k]), 0), int(ids[k])))
        return [self.movie(int(ids[k])) for k in order[:n]]

    def popular_movies(self, n: int = 10) -> list[dict]:
        """The ``n`` most rated movies."""
        ids = sorted(self._popularity, key=lambda m: (-self._popularity[m], m))[: _n(n)]
        return [self.movie(m) for m in ids if m in self._row]

    def sample_users(self, n: int = 20) -> list[int]:
        """The ``n`` most active users (a stable, useful sample for the page)."""
        if self.seen is None:
            return []
        counts = np.diff(self.seen.indptr)
        order = np.lexsort((self.seen.user_ids, -counts))[: _n(n)]
        return [int(u) for u in self.seen.user_ids[order]]

    def counts(self) -> dict:
        return {"movies": len(self.movies), "users": 0 if self.seen is None else len(self.seen.user_ids),
                "rated_movies": 0 if self.collab is None else len(self.collab),
                "posters": 0 if self.visual is None else len(self.visual)}

    # -- spaces ----------------------------------------------------------------------------
    def _space(self, w: float):
        """The fused index of visual weight ``w`` (cached; a few at a time)."""
        from fusion import fuse
        from index import MovieIndex

        key = round(w, 2)
        with self._lock:
            if key in self._spaces:
                self._spaces.move_to_end(key)
                return self._spaces[key]
        blocks, weights = {}, {}
        if self.collab is not None:
            blocks["collaborative"], weights["collaborative"] = self.collab, 1.0 - key
        if self.visual is not None:
            blocks["visual"], weights["visual"] = self.visual, key
        fused = fuse(blocks, weights)
        space = _Space(MovieIndex.build(fused), fused)
        with self._lock:
            self._spaces[key] = space
            while len(self._spaces) > 4:
                self._spaces.popitem(last=False)
        return space

    def _resolve_weight(self, visual_weight) -> float:
        w = self.default_visual_weight if visual_weight is None else _weight(visual_weight)
        if not self.has_posters:
            return 0.0
        if self.collab is None:
            return 1.0
        return w

    # -- queries ---------------------------------------------------------------------------
    def similar(self, movie_id, n: int = 10, visual_weight=None) -> list[dict]:
        """Movies most like ``movie_id`` in the fused space of ``visual_weight``; never itself."""
        movie_id, n = self._require_movie(movie_id), _n(n)
        w = self._resolve_weight(visual_weight)
        space = self._space(w)
        if movie_id not in space:
            # no block of positive weight for this movie (e.g. no ratings at w=0): use what it has
            space = self._space(1.0 if self.visual is not None and movie_id in self.visual else 0.0)
            if movie_id not in space:
                raise UnknownMovieError(f"movie {movie_id} has neither ratings nor a poster in model {self.version}")
        hits = space.search(space.vectors([movie_id]).values[0], n, exclude=np.array([movie_id]))
        return self._described(hits.movie_ids, hits.scores)

    def lookalike(self, movie_id, n: int = 10) -> list[dict]:
        """Movies whose posters look most like ``movie_id``'s (cosine of poster embeddings)."""
        movie_id, n = self._require_movie(movie_id), _n(n)
        if self._visual_index is None:
            raise ArtifactError(f"model {self.version} has no poster embeddings; run `posterec embed`")
        if movie_id not in self.visual:
            raise UnknownMovieError(f"movie {movie_id} has no poster embedding in model {self.version}")
        hits = self._visual_index.search(self.visual.get(movie_id), n, exclude=np.array([movie_id]))
        return self._described(hits.movie_ids, hits.scores)

    def _seen_of(self, user_id: int) -> np.ndarray:
        if self.seen is not None and user_id in self.seen:
            return self.seen.of(user_id)
        return np.empty(0, np.int64)

    def _user_ratings(self):
        if self._ratings is None:
            self._ratings = load_dataset(self.home, self.dataset).ratings
        return self._ratings

    def liked(self, user_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The movies ``user_id`` rated highly (>= 4, else their own best), with the ratings."""
        r = self._user_ratings()
        mine = r[r["user_id"] == int(user_id)]
        if mine.empty:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        top = mine[mine["rating"] >= min(LIKED_MIN_RATING, float(mine["rating"].max()))]
        return top["movie_id"].to_numpy(np.int64), top["rating"].to_numpy(np.float32)

    def recommend(self, user_id, n: int = 10, visual_weight=None, because: bool = True,
                  hybrid: str = "rerank") -> list[dict]:
        """The ``n`` unseen movies best for ``user_id``; each with the liked movie nearest to it.

        ``visual_weight`` 0 is the rating model's own ranking. Above 0, ``hybrid="rerank"`` (the
        default) takes the model's top candidates and blends their standardised ranking score with
        the standardised cosine between each poster and the user's visual taste;
        ``hybrid="fused"`` searches the fused space with the fused user vector instead (measured
        worse: see benchmarks/README.md, "Hybrid quality").
        """
        user_id, n = int(user_id), _n(n)
        if self.ranking is None or user_id not in self.ranking[0]:
            raise UnknownUserError(f"user {user_id} is not known to model {self.version}")
        if hybrid not in ("rerank", "fused"):
            raise ValueError(f"hybrid must be 'rerank' or 'fused', got {hybrid!r}")
        w = self._resolve_weight(self.default_recommend_weight if visual_weight is None else visual_weight)
        seen = self._seen_of(user_id)
        space = self._space(w) if because else None
        if w == 0.0 or self.users is None:
            hits = self._ranking_index.search(self.ranking[0].get(user_id), n, exclude=seen)
            ids, scores = hits.movie_ids, hits.scores
        else:
            from fusion import user_queries, user_taste

            liked, ratings = self.liked(user_id)
            taste = user_taste(np.full(len(liked), user_id), liked, ratings, self.visual, threshold=0.0)
            if hybrid == "fused":
                query = user_queries(self.users.subset([user_id]), taste, {"collaborative": 1.0 - w, "visual": w})
                hits = self._space(w).search(query.values[0], n, exclude=seen)
                ids, scores = hits.movie_ids, hits.scores
            else:
                ids, scores = self._rerank(user_id, n, w, seen, taste)
        out = self._described(ids, scores)
        if because:
            self._add_because(user_id, out, space)
        return out

    def _rerank(self, user_id: int, n: int, w: float, seen, taste: Vectors):
        """Top rating-model candidates re-ranked by (1-w) z(ranking score) + w z(poster taste)."""
        k = min(len(self.ranking[1]), max(RERANK_POOL, 20 * n))
        cand = self._ranking_index.search(self.ranking[0].get(user_id), k, exclude=seen)
        if user_id not in taste or not len(cand.movie_ids):
            return cand.movie_ids[:n], cand.scores[:n]
        has = np.array([m in self.visual for m in cand.movie_ids])
        cos = np.zeros(len(cand.movie_ids), np.float64)
        if has.any():
            cos[has] = self.visual.subset(cand.movie_ids[has]).values @ taste.get(user_id)
            cos[~has] = cos[has].mean()  # no poster: neither pushed up nor down

        def z(x):
            x = np.asarray(x, np.float64)
            sd = x.std()
            return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

        blended = (1.0 - w) * z(cand.scores) + w * z(cos)
        order = np.argsort(-blended, kind="stable")[:n]
        return cand.movie_ids[order], blended[order].astype(np.float32)

    def _add_because(self, user_id: int, results: list[dict], space) -> None:
        """Each result gets the highly-rated movie of the user that is nearest to it."""
        liked, _ = self.liked(user_id)
        liked = np.array([m for m in liked if m in space], dtype=np.int64)
        for item in results:
            item["because"] = None
        if not len(liked) or not results:
            return
        rec_ids = np.array([r["movie_id"] for r in results], dtype=np.int64)
        present = [k for k, m in enumerate(rec_ids) if m in space]
        if not present:
            return
        a = space.vectors(rec_ids[present]).values
        b = space.vectors(liked).values
        nearest = liked[np.argmax(a @ b.T, axis=1)]
        for k, m in zip(present, nearest):
            results[k]["because"] = {"movie_id": int(m), "title": self.movie(int(m))["title"]}

    def also_liked(self, movie_id, n: int = 10, n_users: int = 50) -> list[dict]:
        """What the users who would rate ``movie_id`` highest like best, excluding it."""
        from text_model import also_liked

        movie_id, n = self._require_movie(movie_id), _n(n)
        if self.scoring is None or movie_id not in self.scoring[1]:
            raise UnknownMovieError(f"movie {movie_id} has no ratings in model {self.version}")
        hits = also_liked(self.scoring[0], self.scoring[1], movie_id, n, n_users, *self.ranking)
        return self._described(hits.movie_ids, hits.scores)


def rebuild(home, visual_weight: float | None = None) -> dict:
    """Rebuild the fused index into a new model version and switch CURRENT (the served one is
    untouched until the switch, and stays if the build fails)."""
    from .commands.index import DEFAULT_VISUAL_WEIGHT as default, build_index

    return build_index(ModelStore(home), visual_weight=visual_weight, default_visual_weight=default)
