"""What `Recommender.recommend_for` and `Recommender.poster_wall` need besides the model: the
visitor's input checked and merged, and the poster wall's clusters (numpy only).

A visitor is who the model has never seen: a few ``ratings`` ({movie_id: rating}) and/or a
few ``liked`` movies (a liked movie counts as a rating at the top of the scale). The rules:

- every unknown movie id is listed in one `catalog.UnknownMovieError`;
- a rating off the dataset's scale (or not a number) is a ``ValueError`` listing each;
- a movie both rated and liked keeps its rating;
- an empty input is allowed: `recommend_for` answers with the most popular movies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from catalog import UnknownMovieError

MAX_GIVEN = 500          # movies one visitor may give (ratings and likes together)
WALL_POOL = 600          # most popular posters the wall is dealt from
WALL_CLUSTERS = 48       # k-means clusters of those posters (by look and genre)
WALL_PER_CLUSTER = 8     # a cluster's most popular members a wall may pick from
GENRE_WEIGHT = 0.6       # the genre block's share in the wall's clustering features


@dataclass(frozen=True)
class VisitorInput:
    movie_ids: np.ndarray   # int64, unique, in the order given
    ratings: np.ndarray     # float64, the given rating, or the top of the scale for a like
    liked: np.ndarray       # bool: a like, or a rating >= the "liked" threshold

    def __len__(self) -> int:
        return len(self.movie_ids)


def _as_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, str)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{what}: expected a movie id (a whole number), got {value!r}")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"{what}: expected a movie id (a whole number), got {value!r}")
        return int(value.strip())
    return int(value)


def visitor_input(ratings, liked, known, scale: tuple[float, float], liked_min: float) -> VisitorInput:
    """Check and merge a visitor's ``ratings`` (a mapping, or pairs) and ``liked`` ids.

    ``known(movie_id) -> bool`` says whether the catalogue has the movie; ``scale`` is (lo, hi).
    """
    lo, hi = scale
    pairs = list((ratings or {}).items()) if hasattr(ratings, "items") else list(ratings or [])
    ids, values, like = [], [], []
    bad_values = []
    seen: dict[int, int] = {}
    for k, pair in enumerate(pairs):
        try:
            movie, value = pair
        except (TypeError, ValueError):
            raise ValueError(f"ratings item {k + 1}: expected (movie_id, rating), got {pair!r}") from None
        movie = _as_id(movie, f"ratings item {k + 1}")
        try:
            r = float(value)
        except (TypeError, ValueError):
            r = math.nan
        if isinstance(value, bool) or not math.isfinite(r) or not lo <= r <= hi:
            bad_values.append(f"movie {movie}: {value!r}")
            continue
        if movie in seen:
            values[seen[movie]] = r
            like[seen[movie]] = r >= liked_min
            continue
        seen[movie] = len(ids)
        ids.append(movie)
        values.append(r)
        like.append(r >= liked_min)
    if bad_values:
        raise ValueError(f"ratings must be numbers from {lo:g} to {hi:g} (the dataset's scale); got "
                         f"{', '.join(bad_values[:20])}{' ...' if len(bad_values) > 20 else ''}")
    for k, movie in enumerate(list(liked or [])):
        movie = _as_id(movie, f"liked item {k + 1}")
        if movie in seen:
            like[seen[movie]] = True
            continue
        seen[movie] = len(ids)
        ids.append(movie)
        values.append(float(hi))
        like.append(True)
    if len(ids) > MAX_GIVEN:
        raise ValueError(f"a visitor may give at most {MAX_GIVEN} movies, got {len(ids)}")
    unknown = [m for m in ids if not known(m)]
    if unknown:
        shown = ", ".join(str(m) for m in unknown[:50]) + (" ..." if len(unknown) > 50 else "")
        raise UnknownMovieError(f"unknown movie id{'s' if len(unknown) > 1 else ''} {shown}: not in the catalogue")
    return VisitorInput(np.asarray(ids, np.int64), np.asarray(values, np.float64), np.asarray(like, bool))


# -- the poster wall ---------------------------------------------------------------------------------

def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Cluster labels of rows ``x`` (k-means++ start, Lloyd's iterations)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    k = int(min(k, n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres.append(x[pick])
        d2 = np.minimum(d2, ((x - x[pick]) ** 2).sum(axis=1))
    c = np.array(centres)
    labels = np.zeros(n, np.int64)
    for _ in range(iterations):
        dist = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None, :]
        new = dist.argmin(axis=1)
        if _ and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return labels


@dataclass(frozen=True)
class PosterWall:
    """Clusters of the most popular posters; `deal` picks a wall from them."""

    clusters: tuple[np.ndarray, ...]   # movie ids of each cluster, most popular first

    @classmethod
    def build(cls, movie_ids: np.ndarray, visual: np.ndarray, genres: list[tuple[str, ...]],
              popularity: np.ndarray) -> "PosterWall":
        order = np.lexsort((movie_ids, -popularity))[:WALL_POOL]
        ids, v = movie_ids[order], np.asarray(visual, np.float64)[order]
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        vocabulary = sorted({g for k in order for g in genres[k]})
        g = np.zeros((len(order), max(len(vocabulary), 1)))
        for r, k in enumerate(order):
            for name in genres[k]:
                g[r, vocabulary.index(name)] = 1.0
        g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        features = np.hstack([math.sqrt(1 - GENRE_WEIGHT) * v, math.sqrt(GENRE_WEIGHT) * g])
        labels = kmeans(features, WALL_CLUSTERS, seed=0) if len(ids) else np.zeros(0, np.int64)
        clusters = [ids[labels == j] for j in range(int(labels.max()) + 1 if len(labels) else 0)]
        clusters = [c for c in clusters if len(c)]
        clusters.sort(key=lambda c: -len(c))
        return cls(tuple(clusters))

    def deal(self, n: int, seed: int = 0, exclude=()) -> list[int]:
        """``n`` movie ids, one per cluster while clusters last (then again round them), each a
        popular member of its cluster; ``seed`` 0 is the most popular of each, other seeds draw."""
        exclude = {int(m) for m in exclude}
        rng = np.random.default_rng(seed)
        pools = [[int(m) for m in c if int(m) not in exclude] for c in self.clusters]
        pools = [p for p in pools if p]
        if seed:
            pools = [pools[k] for k in rng.permutation(len(pools))]
        out: list[int] = []
        while len(out) < n and any(pools):
            for pool in pools:
                if len(out) >= n:
                    break
                if not pool:
                    continue
                top = min(WALL_PER_CLUSTER, len(pool))
                k = 0 if not seed else int(rng.integers(top))
                out.append(pool.pop(k))
        return out


# -- "people who liked X also liked Y": the liked movies' co-ratings ---------------------------------

MAX_LIKERS = 1000        # likers of one movie sampled per query (a fixed random subset), for speed


@dataclass(frozen=True, eq=False)
class CoRatings:
    """Item-item cosine of *likes* (ratings >= the liked threshold) over the training users:

        sim(i, j) = likers(i and j) / sqrt(likers(i) * likers(j))

    The score of movie j for a visitor who liked movies L is ``sum over i in L of sim(i, j)``;
    each i's share says which liked movie a recommendation is "because" of. Chosen on a
    validation slice of training users (benchmarks/new_visitors.py ``--tune``; see
    benchmarks/README.md, New visitors). Nothing is precomputed beyond the two indexes: a query
    gathers the likes of (at most `MAX_LIKERS`, a fixed random subset of) the likers of each
    liked movie, scaled back to the full count, so its cost does not grow with the catalogue.
    """

    movie_ids: np.ndarray    # int64 (m,), sorted: the columns scored
    likers_of: np.ndarray    # int64 (m + 1,) pointers into ``likers``
    likers: np.ndarray       # int64 user rows who liked each movie, in a fixed random order
    likes: object            # scipy.sparse.csr_matrix (users, m): 1 where a user liked a movie
    n_likers: np.ndarray     # float64 (m,)
    max_likers: int = MAX_LIKERS

    @classmethod
    def of(cls, interactions, movie_ids, liked_min: float, max_likers: int = MAX_LIKERS,
           seed: int = 0) -> "CoRatings":
        import scipy.sparse as sp

        movie_ids = np.unique(np.asarray(movie_ids, np.int64))
        m = len(movie_ids)
        users = np.repeat(np.arange(len(interactions.user_ids)), interactions.user_counts())
        cols = np.searchsorted(movie_ids, interactions.movie_ids)
        ok = cols < m
        ok[ok] = movie_ids[cols[ok]] == interactions.movie_ids[ok]
        ok &= np.asarray(interactions.ratings, np.float64) >= liked_min
        users, cols = users[ok], cols[ok]
        likes = sp.csr_matrix((np.ones(len(cols), np.float32), (users, cols)),
                              shape=(len(interactions.user_ids), m))
        rank = np.random.default_rng(seed).permutation(len(interactions.user_ids))
        order = np.lexsort((rank[users], cols))
        counts = np.bincount(cols, minlength=m)
        return cls(movie_ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), users[order],
                   likes, counts.astype(np.float64), int(max_likers))

    def contributions(self, liked_ids) -> np.ndarray:
        """(len(liked_ids), m) float64: row t is ``sim(liked_ids[t], j)`` for every column j
        (0 for itself, and for a liked movie nobody else liked)."""
        import scipy.sparse as sp

        liked = np.asarray(liked_ids, np.int64)
        cols = np.searchsorted(self.movie_ids, liked).clip(max=max(len(self.movie_ids) - 1, 0))
        found = len(self.movie_ids) > 0
        rows, users, weights = [], [], []
        for t, (c, movie) in enumerate(zip(cols, liked)):
            if not found or self.movie_ids[c] != movie:
                continue
            lo, hi = self.likers_of[c], self.likers_of[c + 1]
            take = self.likers[lo: min(hi, lo + self.max_likers)]
            if not len(take):
                continue
            rows.append(np.full(len(take), t))
            users.append(take)
            # scaled back to all likers, then the cosine's sqrt(likers(i))
            weights.append(np.full(len(take), (hi - lo) / len(take) / np.sqrt(hi - lo)))
        out = np.zeros((len(liked), len(self.movie_ids)))
        if not rows:
            return out
        q = sp.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(users))),
                          shape=(len(liked), self.likes.shape[0]))
        out[:] = (q @ self.likes).toarray()
        out /= np.sqrt(np.maximum(self.n_likers, 1.0))
        for t, (c, movie) in enumerate(zip(cols, liked)):
            if found and self.movie_ids[c] == movie:
                out[t, c] = 0.0
        return out
