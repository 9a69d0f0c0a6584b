"""The ml-25m-shape generator of benchmarks/: counts, layout, skew and planted taste, block by block."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from synthetic import GENRES, generate, generate_posters  # noqa: E402

from catalog import fetch_dataset, load_dataset  # noqa: E402


def test_generated_ratings_have_the_shape_the_skew_and_the_planted_taste(tmp_path):
    src = tmp_path / "src"
    counts = generate(src, 40_000, n_users=600, n_movies=2_000, seed=1, block=5_000)  # ~8 blocks
    ratings = pd.read_csv(src / "ratings.csv")
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert counts["n_ratings"] == len(ratings) and 0.99 * 40_000 <= len(ratings) <= 40_000
    assert counts["n_users"] == ratings["userId"].nunique() == 600
    assert not ratings.duplicated(["userId", "movieId"]).any()
    key = ratings["userId"].to_numpy() * 10_000 + ratings["movieId"].to_numpy()
    assert np.all(np.diff(key) > 0)  # sorted by user, then movie, across blocks
    assert set(np.unique(ratings["rating"])) <= {k / 2 for k in range(1, 11)}
    per_movie = np.sort(ratings["movieId"].value_counts().to_numpy())[::-1]
    per_user = np.sort(ratings["userId"].value_counts().to_numpy())[::-1]
    assert per_movie[:200].sum() > 0.25 * len(ratings)  # the top 10% of movies hold a quarter or more
    assert per_user[:60].sum() > 0.25 * len(ratings)   # and the top 10% of users
    movies = pd.read_csv(src / "movies.csv")
    assert len(movies) == 2_000 and set(movies["genres"]) <= set(GENRES)
    # planted taste: within a user, the genre they rate best stays their best on fresh ratings
    df = ratings.merge(movies, on="movieId")
    half = df["timestamp"] % 2 == 0
    a = df[half].groupby(["userId", "genres"])["rating"].mean().unstack()
    b = df[~half].groupby(["userId", "genres"])["rating"].mean().unstack()
    n = df.groupby(["userId", "genres"]).size().unstack().reindex_like(a)
    x, y, k = a.to_numpy().ravel(), b.reindex_like(a).to_numpy().ravel(), n.to_numpy().ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (k >= 10)
    assert ok.sum() > 100 and np.corrcoef(x[ok], y[ok])[0, 1] > 0.3
    # the same seed writes the same bytes
    again = generate(tmp_path / "again", 40_000, n_users=600, n_movies=2_000, seed=1, block=5_000)
    assert again == counts and (tmp_path / "again" / "ratings.csv").read_bytes() == (src / "ratings.csv").read_bytes()


def test_generated_data_imports_as_ml25m_and_posters_are_jpegs(tmp_path):
    src = tmp_path / "src"
    generate(src, 5_000, n_users=100, n_movies=80, seed=0)
    home = tmp_path / "home"
    fetch_dataset(home, "ml-25m", source=src)
    dataset = load_dataset(home, "ml-25m")
    assert len(dataset.ratings) == len(pd.read_csv(src / "ratings.csv"))
    assert generate_posters(tmp_path / "posters", [3, 1, 2]) == 3
    from PIL import Image

    sizes = {Image.open(tmp_path / "posters" / f"{i}.jpg").size for i in (1, 2, 3)}
    assert sizes == {(120, 180)}
    assert (tmp_path / "posters" / "1.jpg").read_bytes() != (tmp_path / "posters" / "2.jpg").read_bytes()
