"""A small stand-in for `posterec.recommender.Recommender`, over generated data with a known answer.

Movies 1..n/2 are comedies with yellow posters, the rest horror with dark red posters; every
seventh movie has no poster. Even users like comedies, odd users horror. So `similar(a comedy)`
returns comedies, `lookalike(a comedy)` returns yellow posters and `recommend(even user)` returns
unseen comedies with a "because" pointing at a comedy the user liked.

`make_fake_home(home)` writes the catalogue, posters and a version file; `FakeRecommender.load`
reads them back; `fake_rebuild(home)` writes the next version (slowly, like the real one);
`fake_version(home)` names the one on disk.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from catalog import ArtifactError, Hits, UnknownMovieError, UnknownUserError, hits_from, top_n

DATASET = "fake-planted"
COLOURS = {"Comedy": (236, 200, 40), "Horror": (110, 12, 20)}


def _fake_dir(home: Path) -> Path:
    return Path(home) / "fake"


def make_fake_home(home, n_movies: int = 40, n_users: int = 20, posters: bool = True,
                   seed: int = 0) -> Path:
    """Write a fake home (catalogue json, version file, PNG/JPEG posters) and return it."""
    from PIL import Image, ImageDraw

    home = Path(home)
    fake = _fake_dir(home)
    fake.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    movies = []
    half = n_movies // 2
    for mid in range(1, n_movies + 1):
        genre = "Comedy" if mid <= half else "Horror"
        word = "Laugh" if genre == "Comedy" else "Scream"
        movies.append({"movie_id": mid, "title": f"{word} Story {mid}", "year": 1970 + mid % 40,
                       "genres": [genre], "has_poster": posters and mid % 7 != 0})
    (fake / "catalog.json").write_text(json.dumps({"movies": movies, "n_users": n_users,
                                                   "seed": seed}))
    (fake / "VERSION").write_text("fake-v1")
    if posters:
        pdir = home / "posters" / DATASET
        pdir.mkdir(parents=True, exist_ok=True)
        for m in movies:
            if not m["has_poster"]:
                continue
            base = np.array(COLOURS[m["genres"][0]], dtype=float)
            colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 18, 3), 0, 255))
            img = Image.new("RGB", (120, 180), colour)
            draw = ImageDraw.Draw(img)
            draw.rectangle([10, 120, 110, 170], fill=(20, 20, 20))
            draw.text((16, 135), f"#{m['movie_id']}", fill=(250, 250, 250))
            # Odd ids as JPEG, even as PNG, so content types can be checked.
            if m["movie_id"] % 2:
                img.save(pdir / f"{m['movie_id']}.jpg", "JPEG", quality=85)
            else:
                img.save(pdir / f"{m['movie_id']}.png", "PNG")
    return home


def fake_rebuild(home, visual_weight: float | None = None, delay: float = 0.3) -> None:
    """Write the next fake version after `delay` seconds; fails if `fake/FAIL_REBUILD` exists."""
    fake = _fake_dir(home)
    time.sleep(delay)
    if (fake / "FAIL_REBUILD").exists():
        raise ArtifactError("fake rebuild failed on purpose (fake/FAIL_REBUILD exists)")
    current = (fake / "VERSION").read_text().strip()
    number = int(current.rsplit("v", 1)[1]) + 1
    tmp = fake / "VERSION.tmp"
    tmp.write_text(f"fake-v{number}")
    os.replace(tmp, fake / "VERSION")
    if visual_weight is not None:
        (fake / "VISUAL_WEIGHT").write_text(str(visual_weight))


def fake_version(home) -> str | None:
    """The fake version on disk (what `posterec.server.AppState` watches for a fake home)."""
    try:
        return (_fake_dir(home) / "VERSION").read_text().strip() or None
    except FileNotFoundError:
        return None


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class FakeRecommender:
    """Implements `posterec.protocol.RecommenderLike` (exactly that), over `make_fake_home` data.

    ``fake/STALE`` (one artifact name a line), when present, is reported by `health` as stale.
    """

    def __init__(self, home: Path, movies: list[dict], n_users: int, version: str, seed: int,
                 default_visual_weight: float = 0.5):
        self.home = Path(home)
        self.version = version
        self.dataset = DATASET
        self._movies = movies
        self._by_id = {m["movie_id"]: m for m in movies}
        self._ids = np.array([m["movie_id"] for m in movies], dtype=np.int64)
        self._row = {int(mid): r for r, mid in enumerate(self._ids)}
        self.has_posters = any(m["has_poster"] for m in movies)
        self.default_visual_weight = default_visual_weight
        rng = np.random.default_rng(seed + 1)
        comedy = np.array([m["genres"][0] == "Comedy" for m in movies])
        centre = np.where(comedy[:, None], 1.0, -1.0) * np.ones((len(movies), 1))
        self._collab = _unit(np.hstack([centre, rng.normal(0, 0.4, (len(movies), 15))]))
        self._visual = _unit(np.hstack([centre * 0.8, rng.normal(0, 0.2, (len(movies), 7))]))
        self._comedy = comedy
        self._users = list(range(1, n_users + 1))
        self._seen = {u: set(self._ids[rng.random(len(movies)) < 0.5].tolist()) for u in self._users}
        self._ratings = np.array([sum(mid in s for s in self._seen.values()) for mid in self._ids])
        stale = _fake_dir(home) / "STALE"
        self._stale = stale.read_text().split() if stale.exists() else []

    @classmethod
    def load(cls, home) -> "FakeRecommender":
        fake = _fake_dir(home)
        path = fake / "catalog.json"
        if not path.exists():
            raise ArtifactError(f"{path}: missing; make it with make_fake_home()")
        data = json.loads(path.read_text())
        weight_file = fake / "VISUAL_WEIGHT"
        weight = float(weight_file.read_text()) if weight_file.exists() else 0.5
        return cls(home, data["movies"], data["n_users"], (fake / "VERSION").read_text().strip(),
                   data["seed"], weight)

    # ------------------------------------------------------------ the catalogue

    def movie(self, movie_id: int) -> dict:
        try:
            m = self._by_id[movie_id]
        except KeyError:
            raise UnknownMovieError(f"movie {movie_id} is not in dataset {DATASET}") from None
        return {**m, "ratings": int(self._ratings[self._row[movie_id]])}

    def describe(self, hits: Hits) -> list[dict]:
        out = []
        for i, (mid, score) in enumerate(zip(hits.movie_ids.tolist(), hits.scores.tolist())):
            item = {**self.movie(mid), "score": float(score)}
            if hits.because is not None:
                b = int(hits.because[i])
                item["because"] = None if b == -1 else {"movie_id": b, "title": self._by_id[b]["title"]}
            out.append(item)
        return out

    def search_movies(self, q: str, n: int = 20) -> list[dict]:
        q = q.strip().lower()
        return [self.movie(m["movie_id"]) for m in self._movies if q in m["title"].lower()][:n]

    def popular_movies(self, n: int = 10) -> list[dict]:
        order = np.lexsort((self._ids, -self._ratings))[:n]
        return [self.movie(int(self._ids[r])) for r in order]

    def sample_users(self, n: int = 20) -> list[int]:
        return self._users[:n]

    def counts(self) -> dict[str, int]:
        return {"movies": len(self._movies), "users": len(self._users),
                "posters": sum(m["has_poster"] for m in self._movies)}

    def poster_path(self, movie_id: int) -> Path | None:
        m = self._by_id.get(movie_id)
        if not m or not m["has_poster"]:
            return None
        for ext in ("jpg", "png"):
            p = self.home / "posters" / DATASET / f"{movie_id}.{ext}"
            if p.exists():
                return p
        return None

    def health(self) -> dict[str, list[str]]:
        return {"missing_optional": [] if self.has_posters else ["visual"], "stale": list(self._stale)}

    # ------------------------------------------------------------ queries

    def _top(self, scores: np.ndarray, n: int, exclude: set[int]) -> Hits:
        mask = np.isin(self._ids, np.fromiter(exclude, np.int64, len(exclude)))
        cols, vals = top_n(scores, n, exclude=mask)
        return hits_from(self._ids, cols, vals)

    def similar(self, movie_id: int, n: int = 10, visual_weight: float | None = None) -> Hits:
        self.movie(movie_id)
        w = self.default_visual_weight if visual_weight is None else visual_weight
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"visual_weight must be in [0, 1], got {w}")
        r = self._row[movie_id]
        scores = (1 - w) * (self._collab @ self._collab[r]) + w * (self._visual @ self._visual[r])
        return self._top(scores, n, {movie_id})

    def lookalike(self, movie_id: int, n: int = 10) -> Hits:
        m = self.movie(movie_id)
        if not self.has_posters:
            raise ArtifactError("this model has no poster embeddings; run `posterec embed`")
        if not m["has_poster"]:
            raise UnknownMovieError(f"movie {movie_id} has no poster")
        scores = self._visual @ self._visual[self._row[movie_id]]
        no_poster = {mm["movie_id"] for mm in self._movies if not mm["has_poster"]}
        return self._top(scores, n, {movie_id} | no_poster)

    def recommend(self, user_id: int, n: int = 10, visual_weight: float | None = None) -> Hits:
        if user_id not in self._seen:
            raise UnknownUserError(f"user {user_id} is not in dataset {DATASET}")
        likes_comedy = user_id % 2 == 0
        liked = [mid for mid in sorted(self._seen[user_id])
                 if self._comedy[self._row[mid]] == likes_comedy]
        taste = np.where(self._comedy == likes_comedy, 1.0, 0.0) + 0.01 * self._collab[:, 1]
        hits = self._top(taste, n, self._seen[user_id])
        because = np.full(len(hits.movie_ids), -1, np.int64)
        if liked:
            liked_rows = [self._row[b] for b in liked]
            for i, mid in enumerate(hits.movie_ids.tolist()):
                sims = self._collab[liked_rows] @ self._collab[self._row[mid]]
                because[i] = liked[int(np.argmax(sims))]
        return Hits(hits.movie_ids, hits.scores, because)

    def also_liked(self, movie_id: int, n: int = 10) -> Hits:
        self.movie(movie_id)
        fans = [u for u, s in self._seen.items() if movie_id in s]
        scores = np.array([sum(mid in self._seen[u] for u in fans) for mid in self._ids], float)
        return self._top(scores, n, {movie_id})

    def recommend_for(self, ratings=None, liked=None, n: int = 10, visual_weight: float | None = None) -> Hits:
        ratings = {int(k): float(v) for k, v in dict(ratings or {}).items()}
        liked = [int(m) for m in (liked or [])]
        unknown = [m for m in [*ratings, *liked] if m not in self._by_id]
        if unknown:
            raise UnknownMovieError(f"unknown movie ids {', '.join(map(str, unknown))}: not in the catalogue")
        bad = [f"movie {m}: {r}" for m, r in ratings.items() if not 1.0 <= r <= 5.0]
        if bad:
            raise ValueError(f"ratings must be numbers from 1 to 5 (the dataset's scale); got {', '.join(bad)}")
        given = {**{m: 5.0 for m in liked}, **ratings}
        if not given:
            order = np.lexsort((self._ids, -self._ratings))[:n]
            return Hits(self._ids[order], self._ratings[order].astype(np.float32), np.full(len(order), -1, np.int64))
        w = self.default_visual_weight if visual_weight is None else visual_weight
        rows = [self._row[m] for m in given]
        weights = np.array([r - 3.0 for r in given.values()])
        space = (1 - w) * self._collab @ self._collab[rows].T + w * self._visual @ self._visual[rows].T
        hits = self._top(space @ weights, n, set(given))
        fans = [m for m, r in given.items() if r >= 4.0] or list(given)
        fan_rows = [self._row[m] for m in fans]
        because = np.array([fans[int(np.argmax(self._collab[fan_rows] @ self._collab[self._row[m]]))]
                            for m in hits.movie_ids.tolist()], np.int64)
        return Hits(hits.movie_ids, hits.scores, because)

    def poster_wall(self, n: int = 24, seed: int = 0, exclude=()) -> list[dict]:
        skip = {int(m) for m in exclude}
        ids = [m["movie_id"] for m in self._movies if m["has_poster"] and m["movie_id"] not in skip]
        rng = np.random.default_rng(seed)
        if seed:
            ids = [ids[k] for k in rng.permutation(len(ids))]
        comedies = [m for m in ids if self._comedy[self._row[m]]]
        horror = [m for m in ids if not self._comedy[self._row[m]]]
        mixed = [m for pair in zip(comedies, horror) for m in pair] + comedies[len(horror):] + horror[len(comedies):]
        return [self.movie(m) for m in mixed[:n]]
