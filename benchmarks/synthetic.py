"""Generated MovieLens data in the ml-25m CSV layout, with planted taste, written in bounded memory.

    from synthetic import generate, generate_posters
    counts = generate(root, n_ratings, n_users=None, n_movies=None, seed=0)   # ratings.csv, movies.csv
    generate_posters(folder, movie_ids, seed=0)                                 # <movie_id>.jpg (Pillow)

The taste is planted: every user has a preference per genre, every movie a genre and a quality,
every user a bias; a rating is ``3.4 + 0.8 * taste[user, genre] + bias + quality + noise`` in half
stars, so a model that learns anything ranks a user's favourite genres first. Movie popularity
is a power law over a random permutation of the movie ids, user activity log-normal: the skew
of MovieLens (a few blockbusters and a few heavy raters hold most ratings).

Written in blocks of users (``ratings.csv`` sorted by user then movie, as MovieLens ships it):
each block draws its users' ratings at once (numpy, no Python loop per row), deduplicates them
and appends them to the CSV, so memory follows the block, not the dataset (about 100 bytes per
rating of a block: 25M ratings in ~150 MB of working memory). Without ``n_users``/``n_movies``
the shape of `benchmarks/train_scaling.py` is kept: 81 ratings per user and 162 per movie.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
WORDS = ["night", "love", "return", "city", "last", "dark", "man", "star", "game", "world", "secret", "story",
         "blood", "summer", "king", "road", "fire", "house", "dream", "river", "war", "girl", "time", "ghost"]
PER_USER, PER_MOVIE = 81, 162
ML25M = {"n_ratings": 25_000_095, "n_users": 162_541, "n_movies": 62_423}  # the shape of MovieLens 25M
BLOCK_RATINGS = 1_000_000  # ratings drawn per block of users


def shape(n_ratings: int, n_users: int | None = None, n_movies: int | None = None) -> tuple[int, int]:
    """(users, movies) for ``n_ratings``: those given, else 81 ratings per user and 162 per movie."""
    return (int(n_users) if n_users else max(50, n_ratings // PER_USER),
            int(n_movies) if n_movies else max(30, n_ratings // PER_MOVIE))


def generate(root: Path, n_ratings: int, n_users: int | None = None, n_movies: int | None = None,
             seed: int = 0, block: int = BLOCK_RATINGS) -> dict:
    """Write ``ratings.csv`` and ``movies.csv`` (ml-25m layout) with planted taste into ``root``.

    Returns the counts written: ``n_ratings`` (at MovieLens densities within a fraction of a
    percent of the one asked: a user's draws that repeat a movie are drawn again a few times,
    then dropped; a user rates at most half the movies), ``n_users``
    and ``n_movies`` (those with at least one rating).
    """
    rng = np.random.default_rng(seed)
    n_users, n_movies = shape(n_ratings, n_users, n_movies)
    genre = rng.integers(len(GENRES), size=n_movies)
    quality = rng.normal(0, 0.5, n_movies).astype(np.float32)
    taste = rng.normal(0, 1.0, (n_users, len(GENRES))).astype(np.float32)
    user_bias = rng.normal(0, 0.4, n_users).astype(np.float32)
    popularity = 1.0 / (np.arange(n_movies) + 10.0) ** 0.9
    popularity = popularity[rng.permutation(n_movies)]
    cdf = np.cumsum(popularity / popularity.sum())
    activity = rng.lognormal(0, 1.0, n_users) + 0.2
    # ratings per user: a multinomial over activity, each at least 1, at most half the movies
    per_user = rng.multinomial(n_ratings - n_users, activity / activity.sum()) + 1
    per_user = np.minimum(per_user, max(1, n_movies // 2))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written, rated = 0, np.zeros(n_movies, bool)
    ends = np.searchsorted(np.cumsum(per_user), np.arange(block, int(per_user.sum()) + block, block), "right")
    bounds = np.unique(np.concatenate([[0], np.minimum(ends, n_users), [n_users]]))
    with open(root / "ratings.csv", "w") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            users, movies = _draw_block(rng, np.arange(lo, hi), per_user[lo:hi], cdf)
            raw = (3.4 + 0.8 * taste[users, genre[movies]] + user_bias[users] + quality[movies]
                   + rng.normal(0, 0.6, len(users)).astype(np.float32))
            stars = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
            stamps = 1_000_000_000 + rng.integers(0, 300_000_000, len(users))
            _write_rows(fh, users + 1, movies + 1, stars, stamps)
            written += len(users)
            rated[movies] = True
    titles = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))).title() + f" {i} ({1950 + i % 70})"
              for i in range(n_movies)]
    import csv

    with open(root / "movies.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        w.writerows(zip(range(1, n_movies + 1), titles, (GENRES[g] for g in genre)))
    return {"n_ratings": int(written), "n_users": int((per_user > 0).sum()), "n_movies": int(rated.sum())}


def _draw_block(rng, users: np.ndarray, counts: np.ndarray, cdf: np.ndarray, rounds: int = 6):
    """(user rows, movie rows), sorted by user then movie: ``counts[i]`` distinct movies for
    ``users[i]``, drawn by popularity (inverse CDF); repeats are drawn again up to ``rounds`` times."""
    n_movies = len(cdf)
    keys = np.zeros(0, np.int64)
    need = counts.astype(np.int64)
    for _ in range(rounds):
        u = np.repeat(users, need)
        m = np.minimum(np.searchsorted(cdf, rng.random(len(u))), n_movies - 1)
        keys = np.sort(np.concatenate([keys, u * n_movies + m]))
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # sort-unique: faster than np.unique's hash
        have = np.bincount(keys // n_movies - users[0], minlength=len(users))
        need = np.maximum(counts - have, 0)
        if not need.any():
            break
    return keys // n_movies, keys % n_movies


def _write_rows(fh, users, movies, stars, stamps) -> None:
    """Append one block of CSV rows (pandas' C writer: no Python loop per row)."""
    import pandas as pd

    half = np.round(np.asarray(stars) * 2).astype(np.int64) - 1  # 0.5 .. 5.0 -> 0 .. 9
    text = np.array([f"{(k + 1) / 2:.1f}" for k in range(10)], dtype=object)[half]  # float_format is per row
    pd.DataFrame({"u": users, "m": movies, "r": text, "t": stamps}).to_csv(fh, header=False, index=False)


def generate_posters(folder: Path, movie_ids, seed: int = 0, size: tuple[int, int] = (120, 180)) -> int:
    """Write one JPEG poster per movie id into ``folder`` (``<movie_id>.jpg``, Pillow): a coloured
    background, a few shapes and the id as text, so every poster differs. Returns how many."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for movie_id in movie_ids:
        colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(4)]
        img = Image.new("RGB", size, colours[0])
        draw = ImageDraw.Draw(img)
        for c in colours[1:]:
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            draw.rectangle([x0, y0, x0 + int(rng.integers(10, w)), y0 + int(rng.integers(10, h))], fill=c)
        draw.text((8, h - 20), str(int(movie_id)), fill=(255, 255, 255))
        img.save(folder / f"{int(movie_id)}.jpg", quality=85)
    return len(movie_ids)
