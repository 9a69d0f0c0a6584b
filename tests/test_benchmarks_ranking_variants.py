"""benchmarks/ranking_variants' tail helpers and ranking_quality's --variant-features names, on tiny data."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from ranking_quality import variant_features  # noqa: E402
from ranking_variants import _neighbour_signal  # noqa: E402

from catalog import Vectors  # noqa: E402


def test_a_tail_movie_takes_its_poster_neighbours_mean_and_one_without_a_poster_the_user_mean():
    catalogue = np.array([1, 2, 3, 4, 5])
    head = np.array([True, True, True, False, False])
    # movie 4 looks like 1 and 2; movie 5 has no poster
    posters = Vectors(np.array([1, 2, 3, 4]), np.array([[1, 0], [0.9, 0.1], [0, 1], [1, 0.05]], np.float32))
    base = np.array([[3.0, 1.0, -2.0, 0.0, 7.0]])
    got = _neighbour_signal(base, posters, catalogue, head, k=2)
    assert got[0, 3] == pytest.approx(2.0)                     # mean of movies 1 and 2
    assert got[0, 4] == pytest.approx(np.mean(got[0, :4]))     # no poster: the user's mean signal


def test_variant_feature_names_and_an_unknown_one():
    catalogue = np.arange(1, 7)
    visual = Vectors(catalogue, np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32))
    genres = {int(m): ("Comedy",) if m % 2 else ("Horror",) for m in catalogue}
    years = {int(m): 1990.0 + m for m in catalogue}
    feats = variant_features(["no-posters", "posters-pca3w", "poster-only-pca2"], catalogue, visual, genres, years)
    assert list(feats) == ["genres + year, no posters", "posters (PCA 3, whitened) + genres + year",
                           "posters (PCA 2)"]
    assert [has for _, has in feats.values()] == [False, True, True]
    assert feats["posters (PCA 2)"][0].dim == 3                 # two axes and the has-poster flag
    assert variant_features(["none"], catalogue, visual, genres, years) == {}
    with pytest.raises(SystemExit, match="unknown feature set 'posters-pcax'"):
        variant_features(["posters-pcax"], catalogue, visual, genres, years)
