"""benchmarks/lookalike_quality.py's measures on hand-made genres with a known answer: a fixed
list of many-genre movies wins the old micro precision but not the split lift, every
query-independent list scores split lift 1, and franchise stems group sequels and remakes."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
lq = pytest.importorskip("lookalike_quality")


def truth_of(genres: dict[int, set], titles: dict[int, str] | None = None):
    from pathlib import Path as P

    titles = titles or {m: f"Movie no{m}a (1999)" for m in genres}
    entries = [lq.Entry(m, P(f"{m}.jpg"), str(m)) for m in sorted(genres)]
    return lq.Truth.of(lq.Dataset("t", entries, {m: frozenset(g) for m, g in genres.items()}, titles))


def planted():
    """60 single-genre movies in 6 genres (10 each) plus 12 movies tagged with all six."""
    names = ["A", "B", "C", "D", "E", "F"]
    genres = {m: {names[m % 6]} for m in range(60)}
    genres.update({m: set(names) for m in range(60, 72)})
    return genres


def test_fixed_list_wins_micro_but_split_lift_pins_it_at_one():
    truth = truth_of(planted())
    w = lq.resamples(len(truth), b=20)
    fixed = lq.summarise(lq.score_lists(lq.most_tagged_list(truth), truth), w)
    oracle = lq.summarise(lq.score_lists(lq.genre_oracle(truth), truth), w)
    assert fixed["micro"] == pytest.approx(1.0)            # every all-genre movie "shares a genre"
    assert fixed["macro"] == pytest.approx(1.0)            # and is tagged with every genre
    assert fixed["macro_split"] == pytest.approx(1.0)      # but splits its one vote over six genres
    assert oracle["macro_split"] > 3 * fixed["macro_split"]
    rng = np.random.default_rng(1)
    for _ in range(3):  # any query-independent list, however chosen
        some = rng.choice(len(truth), lq.K + 1, replace=False)
        lists = np.array([[j for j in some if j != i][:lq.K] for i in range(len(truth))])
        assert lq.summarise(lq.score_lists(lists, truth), w)["macro_split"] == pytest.approx(1.0, abs=0.12)


def test_vectors_are_scored_through_the_movie_index():
    from catalog import Vectors

    truth = truth_of(planted())
    onehot = truth.onehot.astype(np.float32)
    vectors = Vectors(truth.ids, onehot + 0.01 * np.random.default_rng(0).standard_normal(onehot.shape))
    nb = lq.neighbours_by_index(vectors, truth)
    assert (nb != np.arange(len(truth))[:, None]).all()    # never itself
    single = np.flatnonzero(truth.onehot.sum(1) == 1)
    same = truth.onehot[nb[single]] & truth.onehot[single][:, None, :]
    assert same.any(2).all()                               # genre vectors find their own genre


@pytest.mark.parametrize("title, stem", [
    ("Toy Story 2 (1999)", "toy story"), ("Toy Story (1995)", "toy story"),
    ("Godfather: Part II, The (1974)", "godfather"), ("Godfather, The (1972)", "godfather"),
    ("Star Wars: Episode V - The Empire Strikes Back (1980)", "star wars"),
    ("Friday the 13th Part VII: The New Blood (1988)", "friday the 13th"),
    ("Rocky III (1982)", "rocky"), ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
                                    "city of lost children"),
])
def test_title_stems(title, stem):
    assert lq.title_stem(title) == stem


def test_franchise_hit_rate_counts_a_sibling_in_the_top_ten():
    genres = {m: {"A"} for m in range(30)}
    titles = {m: f"Film no{m}a (1990)" for m in range(30)}
    titles.update({0: "Jaws (1975)", 1: "Jaws 2 (1978)", 2: "Sabrina (1954)", 3: "Sabrina (1995)",
                   4: "Dup (1997)", 5: "Dup (1997)"})  # the same title twice is one film, not a sibling
    truth = truth_of(genres, titles)
    assert [len(s) for s in truth.siblings[:6]] == [1, 1, 1, 1, 0, 0]
    lists = np.array([[j for j in range(29, -1, -1) if j != i][:lq.K] for i in range(30)])
    lists[0, 0], lists[2, 0] = 1, 3  # Jaws finds Jaws 2, Sabrina 1954 finds 1995; the others miss
    assert lq.score_lists(lists, truth).summary()["franchise"][0] == pytest.approx(0.5)
