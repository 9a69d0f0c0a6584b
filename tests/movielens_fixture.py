"""Generated MovieLens-format data with a planted structure and a known answer.

Movies are Comedy or Horror (plus a few Dramas nobody is sure about). Even users rate comedies
4-5 and horror 1-2; odd users the reverse. Each user rates a random ~55% of the movies, so every
user has unseen movies of both kinds. Written in any of the three on-disk formats.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COMEDY_WORDS = ["Laugh", "Funny", "Giggle", "Party", "Wedding", "Prank", "Holiday", "Buddies"]
HORROR_WORDS = ["Blood", "Night", "Scream", "Grave", "Shadow", "Curse", "Haunting", "Fear"]


def planted(n_users: int = 60, n_comedy: int = 30, n_horror: int = 30, n_drama: int = 6,
            density: float = 0.55, seed: int = 7):
    """Return (ratings, movies, users) as plain lists of tuples."""
    rng = np.random.default_rng(seed)
    movies = []
    mid = 1
    for kind, n, words in (("Comedy", n_comedy, COMEDY_WORDS), ("Horror", n_horror, HORROR_WORDS),
                           ("Drama", n_drama, ["Quiet", "River"])):
        for k in range(n):
            w = rng.choice(words, size=2, replace=False)
            title = f"{w[0]} {w[1]} {k}"
            movies.append((mid, title, 1980 + (mid % 30), (kind,)))
            mid += 1
    users = []
    occupations = ["writer", "programmer", "artist", "student"]
    for u in range(1, n_users + 1):
        users.append((u, "M" if rng.random() < 0.5 else "F", int(rng.integers(18, 60)),
                      occupations[int(rng.integers(len(occupations)))], f"{10000 + u}"))
    ratings = []
    t0 = 880000000
    for u in range(1, n_users + 1):
        likes = "Comedy" if u % 2 == 0 else "Horror"
        for m, _title, _year, genres in movies:
            if rng.random() > density:
                continue
            if genres[0] == "Drama":
                r = int(rng.integers(2, 5))
            elif genres[0] == likes:
                r = int(rng.integers(4, 6))
            else:
                r = int(rng.integers(1, 3))
            ratings.append((u, m, r, t0 + int(rng.integers(0, 10_000_000))))
    return ratings, movies, users


def write_ml100k(root: Path, data=None) -> Path:
    ratings, movies, users = data or planted()
    root.mkdir(parents=True, exist_ok=True)
    from catalog.loaders import ML100K_GENRES

    with open(root / "u.data", "w", encoding="latin-1") as fh:
        for u, m, r, t in ratings:
            fh.write(f"{u}\t{m}\t{r}\t{t}\n")
    with open(root / "u.item", "w", encoding="latin-1") as fh:
        for m, title, year, genres in movies:
            flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
            fh.write(f"{m}|{title} ({year})|01-Jan-{year}||http://example.invalid/{m}|{flags}\n")
    with open(root / "u.user", "w", encoding="latin-1") as fh:
        for u, g, age, occ, z in users:
            fh.write(f"{u}|{age}|{g}|{occ}|{z}\n")
    with open(root / "u.genre", "w", encoding="latin-1") as fh:
        for i, g in enumerate(ML100K_GENRES):
            fh.write(f"{g}|{i}\n")
    return root


def write_ml1m(root: Path, data=None) -> Path:
    ratings, movies, users = data or planted()
    from catalog.loaders import ML1M_OCCUPATIONS

    root.mkdir(parents=True, exist_ok=True)
    occ = {"writer": 20, "programmer": 12, "artist": 2, "student": 4}
    with open(root / "ratings.dat", "w", encoding="latin-1") as fh:
        for u, m, r, t in ratings:
            fh.write(f"{u}::{m}::{r}::{t}\n")
    with open(root / "movies.dat", "w", encoding="latin-1") as fh:
        for m, title, year, genres in movies:
            fh.write(f"{m}::{title} ({year})::{'|'.join(genres)}\n")
    with open(root / "users.dat", "w", encoding="latin-1") as fh:
        for u, g, age, o, z in users:
            fh.write(f"{u}::{g}::{age}::{occ.get(o, 0)}::{z}\n")
    assert len(ML1M_OCCUPATIONS) == 21
    return root


def write_csv(root: Path, data=None) -> Path:
    ratings, movies, _users = data or planted()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "ratings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for u, m, r, t in ratings:
            w.writerow([u, m, f"{float(r):.1f}", t])
    with open(root / "movies.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        for m, title, year, genres in movies:
            # a comma inside the title exercises CSV quoting
            w.writerow([m, f"{title}, The ({year})" if m % 5 == 0 else f"{title} ({year})", "|".join(genres)])
    with open(root / "links.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "imdbId", "tmdbId"])
        for m, *_ in movies:
            w.writerow([m, f"{100000 + m:07d}", "" if m % 7 == 0 else 5000 + m])
    return root


WRITERS = {"ml100k": write_ml100k, "ml1m": write_ml1m, "csv": write_csv}
