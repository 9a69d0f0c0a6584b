"""The three on-disk formats load into one form, and malformed input names file and line."""
from __future__ import annotations

import numpy as np
import pytest

from catalog import DatasetError, load_dir, split_title
from conftest import shared_path


@pytest.mark.parametrize("fixture,fmt", [("ml100k_dir", "ml100k"), ("ml1m_dir", "ml1m"), ("csv_dir", "csv")])
def test_formats_load_the_same_planted_data(request, planted_data, fixture, fmt):
    ratings, movies, users = planted_data
    ds = load_dir(request.getfixturevalue(fixture), fmt, "x")
    assert len(ds.ratings) == len(ratings)
    assert str(ds.ratings["user_id"].dtype) == "int32"
    assert str(ds.ratings["movie_id"].dtype) == "int32"
    assert str(ds.ratings["rating"].dtype) == "float32"
    # the planted structure survives parsing: even users love comedies (movies 1-30)
    r = ds.ratings
    comedy = r["movie_id"] <= 30
    even = r["user_id"] % 2 == 0
    assert r.loc[comedy & even, "rating"].min() >= 4
    assert r.loc[comedy & ~even, "rating"].max() <= 2
    assert len(ds.movies) == len(movies)
    m = ds.movies.set_index("movie_id")
    assert m.loc[31, "genres"] == ("Horror",)
    assert int(m.loc[31, "year"]) == movies[30][2]
    assert m.loc[31, "title"] == movies[30][1]
    if fmt == "csv":
        assert not ds.has_demographics
        assert list(ds.users.columns) == ["user_id"]
        assert m.loc[5, "title"].endswith(", The")  # quoted comma survived
        assert int(m.loc[5, "tmdb_id"]) == 5005
        assert m["tmdb_id"].isna().sum() == sum(1 for mid, *_ in movies if mid % 7 == 0)
    else:
        assert ds.has_demographics
        assert len(ds.users) == len(users)
        assert set(ds.users["gender"].astype(str)) <= {"M", "F"}


def test_split_title():
    assert split_title("Toy Story (1995)") == ("Toy Story", 1995)
    assert split_title("American President, The (1995) ") == ("American President, The", 1995)
    assert split_title("Babylon 5") == ("Babylon 5", None)
    assert split_title("Fawlty Towers (1975-1979)") == ("Fawlty Towers", 1975)


def _rewrite_line(path, lineno, new):
    lines = path.read_text(encoding="latin-1").splitlines()
    lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")


@pytest.mark.parametrize("fixture,fmt,fname,line,message", [
    ("ml100k_dir", "ml100k", "u.data", "12\t7\t3", "u.data line 5: expected 4 fields separated by a tab, got 3"),
    ("ml100k_dir", "ml100k", "u.data", "12\t7\tgood\t881250949", "u.data line 5: rating 'good' is not a number"),
    ("ml100k_dir", "ml100k", "u.data", "12,7,3,881250949", "u.data line 5: expected 4 fields separated by a tab, got 1"),
    ("ml1m_dir", "ml1m", "ratings.dat", "12::7::3", "ratings.dat line 5: expected 4 fields separated by '::', got 3"),
    ("ml1m_dir", "ml1m", "ratings.dat", "12::7::x::881250949", "ratings.dat line 5: rating 'x' is not a number"),
    ("ml1m_dir", "ml1m", "ratings.dat", "12\t7\t3\t881250949", "ratings.dat line 5: expected 4 fields separated by '::', got 1"),
    ("ml1m_dir", "ml1m", "movies.dat", "7::Broken (1990)", "movies.dat line 5: expected 3 fields separated by '::', got 2"),
    ("ml100k_dir", "ml100k", "u.user", "7|33|M|writer", "u.user line 5: expected 5 fields separated by '|', got 4"),
    ("csv_dir", "csv", "ratings.csv", "12,7,9.5,881250949", "ratings.csv line 5: rating 9.5 is off x's scale (steps of 0.5 from 0.5 to 5)"),
    ("csv_dir", "csv", "ratings.csv", "12,7", "ratings.csv line 5: expected 4 fields separated by ',', got 2"),
])
def test_malformed_line_names_file_and_line(request, fixture, fmt, fname, line, message):
    root = request.getfixturevalue(fixture)
    _rewrite_line(root / fname, 5, line)
    with pytest.raises(DatasetError) as err:
        load_dir(root, fmt, "x")
    assert message in str(err.value)


def test_missing_file_names_file_and_fix(ml1m_dir):
    (ml1m_dir / "ratings.dat").unlink()
    with pytest.raises(DatasetError, match=r"ratings.dat: missing; fetch it with `posterec download --dataset x`"):
        load_dir(ml1m_dir, "ml1m", "x")


def test_rating_of_unknown_movie_is_an_error(ml100k_dir):
    with open(ml100k_dir / "u.data", "a") as fh:
        fh.write("1\t9999\t4\t881250949\n")
    with pytest.raises(DatasetError, match="not in the movie list .first: 9999"):
        load_dir(ml100k_dir, "ml100k", "x")


@pytest.mark.realdata
def test_real_ml100k():
    root = shared_path("data", "ml-100k")
    ds = load_dir(root, "ml100k", "ml-100k")
    assert (len(ds.ratings), len(ds.users), len(ds.movies)) == (100_000, 943, 1682)
    toy = ds.movie(1)
    assert (toy["title"], int(toy["year"])) == ("Toy Story", 1995)
    assert toy["genres"] == ("Animation", "Children's", "Comedy")
    assert ds.movies["year"].notna().sum() >= 1680
    assert set(np.unique(ds.ratings["rating"])) == {1, 2, 3, 4, 5}


@pytest.mark.realdata
def test_real_ml1m_movies_and_users_parse():
    root = shared_path("data", "ml-1m")
    from catalog.loaders import load_ml1m
    with pytest.raises(DatasetError, match="ratings.dat: missing"):
        load_ml1m(root)


@pytest.mark.parametrize("fixture,fname,sep,header", [
    ("ml100k_dir", "u.data", "\t", False), ("ml1m_dir", "ratings.dat", "::", False), ("csv_dir", "ratings.csv", ",", True),
])
def test_ratings_read_in_parts_equal_one_part(request, fixture, fname, sep, header):
    from catalog.loaders import read_ratings

    path = request.getfixturevalue(fixture) / fname
    enc = "utf-8" if header else "latin-1"
    whole = read_ratings(path, sep, enc, header)
    parts = read_ratings(path, sep, enc, header, part_bytes=997)  # many parts, cut mid-line
    assert len(parts) == len(whole) > 1000
    for col in whole.columns:
        np.testing.assert_array_equal(parts[col].to_numpy(), whole[col].to_numpy())
        assert parts[col].dtype == whole[col].dtype
    # a bad line in a later part is still found and named
    lines = path.read_text(encoding=enc).splitlines()
    lines[-3] = sep.join(["5", "6", "oops", "881250949"])
    path.write_text("\n".join(lines) + "\n", encoding=enc)
    with pytest.raises(DatasetError, match=f"{fname} line {len(lines) - 2}: rating 'oops' is not a number"):
        read_ratings(path, sep, enc, header, part_bytes=997)
