"""`RecommenderLike`: what the HTTP server needs of a recommender, and nothing more.

`posterec.recommender.Recommender` implements it, and so does the test double in
``tests/fake_recommender.py``; the server type-checks the object it is given against this
Protocol when it loads one, instead of probing it with ``getattr``.

Queries return `catalog.Hits` (ids and scores, best first; ``because`` for recommendations);
``describe`` joins titles and the rest of each movie's row at the edge.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from catalog import Hits


@runtime_checkable
class RecommenderLike(Protocol):
    """A loaded model version the server can query from several threads at once."""

    version: str
    dataset: str
    has_posters: bool
    default_visual_weight: float

    def movie(self, movie_id: int) -> dict[str, Any]:
        """``movie_id, title, year, genres, has_poster, ratings``; `catalog.UnknownMovieError`
        for an id the model does not know."""

    def describe(self, hits: Hits) -> list[dict[str, Any]]:
        """The `movie` dicts of ``hits.movie_ids``, best first, each with ``score``; when
        ``hits.because`` is not None each also has ``because``: ``{movie_id, title}`` or None."""

    def similar(self, movie_id: int, n: int = 10, visual_weight: float | None = None) -> Hits:
        """Movies near ``movie_id`` by ratings and posters (``visual_weight`` 0..1, None = default)."""

    def lookalike(self, movie_id: int, n: int = 10) -> Hits:
        """Movies whose posters look like ``movie_id``'s."""

    def recommend(self, user_id: int, n: int = 10, visual_weight: float | None = None) -> Hits:
        """Unseen movies for ``user_id``, with ``because``."""

    def recommend_for(self, ratings=None, liked=None, n: int = 10, visual_weight: float | None = None) -> Hits:
        """Movies for a visitor the model never saw, from ``ratings`` ({movie_id: rating}) and/or
        ``liked`` ids, with ``because``; never one given. `catalog.UnknownMovieError` lists unknown
        ids, ``ValueError`` ratings off the scale; nothing given: the most popular movies."""

    def poster_wall(self, n: int = 24, seed: int = 0, exclude=()) -> list[dict[str, Any]]:
        """``n`` popular posters spread across looks and genres (`movie` dicts); other seeds, other walls."""

    def also_liked(self, movie_id: int, n: int = 10) -> Hits:
        """Movies that the people who liked ``movie_id`` also liked."""

    def search_movies(self, q: str, n: int = 20) -> list[dict[str, Any]]:
        """Movies whose title contains ``q``."""

    def popular_movies(self, n: int = 10) -> list[dict[str, Any]]:
        """The most-rated movies."""

    def sample_users(self, n: int = 20) -> list[int]:
        """A few user ids to try."""

    def counts(self) -> dict[str, int]:
        """How many movies, users, posters... the model covers."""

    def poster_path(self, movie_id: int) -> Path | None:
        """The poster file of ``movie_id``, or None."""

    def health(self) -> dict[str, list[str]]:
        """``missing_optional``: optional artifacts absent by design (e.g. ``"visual"``);
        ``stale``: artifacts made from inputs that have changed since."""


def protocol_gaps(obj: object) -> list[str]:
    """The members of `RecommenderLike` that ``obj`` lacks (or has but cannot call)."""
    gaps = []
    for name in sorted(_members()):
        if not hasattr(obj, name):
            gaps.append(name)
        elif name in _methods() and not callable(getattr(obj, name)):
            gaps.append(f"{name} (not callable)")
    return gaps


def _members() -> set[str]:
    return set(RecommenderLike.__annotations__) | _methods()


def _methods() -> set[str]:
    return {k for k, v in vars(RecommenderLike).items() if callable(v) and not k.startswith("_")}
