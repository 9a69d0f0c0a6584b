"""nearest_posters: hand-checkable 3-D vectors, never the query, brute-force agreement; contact sheet."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from catalog import UnknownMovieError, Vectors
from vision_model import Tile, draw_contact_sheet, nearest_posters


def test_nearest_by_cosine_never_the_query():
    v = Vectors(np.array([10, 20, 30, 40], np.int64),
                np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [-1, 0, 0]], np.float32))
    hits = nearest_posters(v, 10, n=3)
    assert hits.movie_ids.tolist() == [20, 30, 40]
    np.testing.assert_allclose(hits.scores, [0.9 / np.hypot(0.9, 0.1), 0.0, -1.0], atol=1e-6)
    assert nearest_posters(v, 10, n=50).movie_ids.tolist() == [20, 30, 40]  # at most n-1
    with pytest.raises(UnknownMovieError, match="movie 99 has no poster embedding"):
        nearest_posters(v, 99)


def test_matches_brute_force_on_random_vectors():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(200, 16)).astype(np.float32)
    v = Vectors(np.arange(1000, 1200), values)
    unit = values / np.linalg.norm(values, axis=1, keepdims=True)
    for q in (1000, 1057, 1199):
        sims = unit @ unit[q - 1000]
        sims[q - 1000] = -np.inf
        expect = np.argsort(-sims)[:7] + 1000
        assert nearest_posters(v, q, n=7).movie_ids.tolist() == expect.tolist()


def test_lookalike_search_does_not_load_tensorflow():
    import subprocess

    code = ("import sys, numpy as np; from catalog import Vectors; from vision_model import nearest_posters;"
            "nearest_posters(Vectors(np.arange(3), np.eye(3, dtype=np.float32)), 0, 2);"
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_contact_sheet(tmp_path):
    from PIL import Image

    poster = tmp_path / "1.jpg"
    Image.new("RGB", (60, 90), (200, 0, 0)).save(poster)
    out = draw_contact_sheet(Tile(poster, "query: A Film (1999)"),
                             [Tile(poster, "0.950 Another"), Tile(tmp_path / "absent.jpg", "0.5 Gone")],
                             tmp_path / "sheet.png")
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width >= 3 * 150
        assert sheet.getpixel((8 + 75, 8 + 111))[0] > 150  # the query thumbnail is there
