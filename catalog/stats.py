"""Summary statistics of a loaded dataset."""
from __future__ import annotations

from collections import Counter

import numpy as np

from .loaders import Dataset


def dataset_stats(ds: Dataset) -> dict:
    r = ds.ratings
    n_ratings, n_users, n_movies = len(r), len(ds.users), len(ds.movies)
    rated_users = int(r["user_id"].nunique())
    rated_movies = int(r["movie_id"].nunique())
    values, counts = np.unique(r["rating"].to_numpy(), return_counts=True)
    genre_counts = Counter(g for gs in ds.movies["genres"] for g in gs)
    years = ds.movies["year"].dropna()
    return {
        "dataset": ds.name,
        "ratings": n_ratings,
        "users": n_users,
        "movies": n_movies,
        "rated_users": rated_users,
        "rated_movies": rated_movies,
        "sparsity": 1.0 - n_ratings / float(rated_users * rated_movies) if n_ratings else 1.0,
        "mean_rating": float(r["rating"].mean()) if n_ratings else None,
        "rating_distribution": {f"{v:g}": int(c) for v, c in zip(values, counts)},
        "movies_per_genre": dict(sorted(genre_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "movies_with_year": int(len(years)),
        "year_range": [int(years.min()), int(years.max())] if len(years) else None,
        "has_demographics": ds.has_demographics,
    }


def format_stats(s: dict) -> str:
    lines = [
        f"dataset      {s['dataset']}",
        f"ratings      {s['ratings']:,}",
        f"users        {s['users']:,}",
        f"movies       {s['movies']:,}  ({s['rated_movies']:,} rated, {s['movies_with_year']:,} with a year)",
        f"sparsity     {s['sparsity']:.4f}",
        f"mean rating  {s['mean_rating']:.3f}" if s["mean_rating"] is not None else "mean rating  -",
        f"demographics {'yes' if s['has_demographics'] else 'no'}",
        "ratings by value:",
    ]
    total = max(s["ratings"], 1)
    for value, count in s["rating_distribution"].items():
        bar = "#" * int(round(40 * count / total))
        lines.append(f"  {value:>4}  {count:>10,}  {bar}")
    lines.append("movies per genre:")
    for genre, count in s["movies_per_genre"].items():
        lines.append(f"  {genre:<14} {count:>7,}")
    return "\n".join(lines)
