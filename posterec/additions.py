"""What changes a model without retraining: a new movie (`add_movie`), new ratings of a known
user (`add_ratings`). Each writes one new model version, switched atomically; any error leaves
CURRENT (and the poster store) as they were.

New movies live in the ``added_movies`` artifact (JSON: id, title, year, genres of every movie
added since the last ``train``), which `pipeline.movies_of` merges into the dataset's catalogue.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import DatasetError, ModelStore, UnknownUserError, Vectors
from catalog.version import from_json_array, json_array

MAX_TITLE = 200
YEARS = (1870, 2100)
GENRE = re.compile(r"[A-Za-z0-9'&\- ]{1,40}")


@dataclass(frozen=True)
class NewMovie:
    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"movie_id": self.movie_id, "title": self.title, "year": self.year, "genres": list(self.genres)}


def added_movies(version) -> list[dict]:
    """The movies added to ``version`` since its ``train`` (``added_movies`` artifact), or []."""
    if not version.has("added_movies"):
        return []
    try:
        rows = from_json_array(version.arrays("added_movies", ("movies",))["movies"])
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "movie_id" in r for r in rows):
            raise ValueError("expected a list of movies")
        return rows
    except ValueError as exc:
        from catalog.version import artifact

        raise version.invalid(artifact("added_movies"), str(exc)) from None


def added_rows(version) -> list[tuple]:
    """The version's added movies as ``(movie_id, title, year, genres)`` rows (`catalog.MovieList`)."""
    return [(int(r["movie_id"]), str(r["title"]), None if r.get("year") is None else int(r["year"]),
             tuple(r.get("genres") or ())) for r in added_movies(version)]


def with_added(movies, version):
    """The catalogue frame ``movies`` plus the version's added movies."""
    import pandas as pd

    rows = added_movies(version)
    if not rows:
        return movies
    extra = pd.DataFrame({"movie_id": [int(r["movie_id"]) for r in rows], "title": [str(r["title"]) for r in rows],
                          "year": pd.array([r.get("year") for r in rows], dtype=movies["year"].dtype),
                          "genres": [tuple(r.get("genres") or ()) for r in rows]})
    extra["movie_id"] = extra["movie_id"].astype(movies["movie_id"].dtype)
    for col in movies.columns:
        if col not in extra:
            extra[col] = pd.array([None] * len(extra), dtype=movies[col].dtype)
    return pd.concat([movies, extra[movies.columns]], ignore_index=True)


def check_new_movie(movies, title, year, genres, movie_id=None) -> NewMovie:
    """The new movie's fields checked against the catalogue ``movies``; ValueError saying what is wrong."""
    title = " ".join(str(title or "").split())
    if not title or len(title) > MAX_TITLE:
        raise ValueError(f"title must be 1 to {MAX_TITLE} characters, got {len(title)}")
    if year is not None and year != "":
        try:
            year = int(year)
        except (TypeError, ValueError):
            raise ValueError(f"year must be a whole number such as 1999, got {year!r}") from None
        if not YEARS[0] <= year <= YEARS[1]:
            raise ValueError(f"year must be from {YEARS[0]} to {YEARS[1]}, got {year}")
    else:
        year = None
    if isinstance(genres, str):
        genres = [g for g in genres.split("|")]
    genres = tuple(" ".join(str(g).split()) for g in (genres or ()))
    bad = [g for g in genres if not GENRE.fullmatch(g)]
    if bad or not genres:
        raise ValueError(f"genres must be 1 or more names like \"Comedy|Drama\" (letters, digits, spaces), "
                         f"got {'|'.join(genres) or 'none'}")
    known = {int(m) for m in movies["movie_id"]}
    if movie_id is None:
        movie_id = max(known, default=0) + 1
    else:
        movie_id = int(movie_id)
        if movie_id < 1 or movie_id > 2**31 - 1:
            raise ValueError(f"movie id must be from 1 to {2**31 - 1}, got {movie_id}")
        if movie_id in known:
            raise ValueError(f"movie id {movie_id} is already in the catalogue; leave --movie-id out to get a new one")
    return NewMovie(movie_id, title, year, genres)


def default_embedder(version, home: Path):
    """``embed(path) -> vector`` with the version's recorded embed config (imports TensorFlow)."""
    from vision_model import VisionConfig
    from vision_model.embedder import PosterEmbedder

    entry = version.stage("embed")
    from dataclasses import fields

    names = {f.name for f in fields(VisionConfig)}
    config = VisionConfig.from_dict({k: v for k, v in entry.items() if k in names})
    embedder = PosterEmbedder(config, cache_dir=Path(home) / "cache" / "embeddings")

    def embed(path: Path) -> np.ndarray:
        idx, values, errors = embedder.embed_files([path], progress=False)
        if not len(idx):
            raise DatasetError(f"{path}: the poster could not be decoded ({errors.get(0, 'unknown error')})")
        return values[0]

    return embed


def add_movie(home, title, year, genres, poster: bytes, movie_id=None, embed=None) -> dict:
    """Add a movie with its poster to a new model version, with no retraining: the poster is
    checked (like ``import-posters``), embedded, placed through the cold-start ridge maps and
    added to the index. Returns the new movie and the version name."""
    from fusion import fuse
    from index import MovieIndex, MovieMetadata
    from posters import PosterStore
    from posters.image import ImageLimits, InvalidImage, check_image
    from posters.store import Record, now_utc

    from . import pipeline

    home = Path(home)
    store = ModelStore(home)
    current = store.open_current()
    dataset = current.manifest.get("dataset") or ""
    visual = pipeline.visual_vectors(current)
    if visual is None:
        raise DatasetError(f"model {current.name} has no poster embeddings; run `posterec embed` first")
    if not current.has("index"):
        raise DatasetError(f"model {current.name} has no index; run `posterec build-index` first")
    movies = pipeline.movies_of(home, current)
    movie = check_new_movie(movies, title, year, genres, movie_id)
    try:
        image = check_image(bytes(poster or b""), ImageLimits())
    except InvalidImage as exc:
        raise DatasetError(f"the poster is not usable: {exc}") from None
    posters = PosterStore(home, dataset)
    with posters.writer_lock(wait=True, command="add-movie"):
        path = posters.path(movie.movie_id, image.ext)
        if posters.path(movie.movie_id).exists():
            raise DatasetError(f"{posters.path(movie.movie_id)}: a poster for movie {movie.movie_id} is already "
                               f"in the store; pick another --movie-id")
        staged = posters.dir / f".add-{movie.movie_id}.{image.ext}"
        staged.write_bytes(image.data)
        try:
            vector = np.asarray((embed or default_embedder(current, home))(staged), np.float32).reshape(-1)
            if vector.shape != (visual.dim,) or not np.isfinite(vector).all():
                raise DatasetError(f"the poster embedding has shape {vector.shape}, the model's have ({visual.dim},)")
            version = _write_movie_version(store, current, movies, movie, vector, visual, fuse, MovieIndex,
                                           MovieMetadata, pipeline)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        staged.replace(path)
        with posters.journal() as journal:
            journal.append(Record(movie_id=movie.movie_id, source="add-movie", status="ok", url="",
                                  bytes=len(image.data), sha256=image.sha256, fetched_at=now_utc()))
    return {**movie.to_dict(), "version": version}


def _write_movie_version(store, current, movies, movie: NewMovie, vector, visual, fuse, MovieIndex,
                         MovieMetadata, pipeline) -> str:
    import pandas as pd

    row = pd.DataFrame({"movie_id": [movie.movie_id], "title": [movie.title],
                        "year": pd.array([movie.year], dtype=movies["year"].dtype), "genres": [movie.genres]})
    movies_plus = pd.concat([movies, row], ignore_index=True)
    visual_plus = Vectors(np.concatenate([visual.ids, [movie.movie_id]]), np.vstack([visual.values, vector[None]]))
    rating, ranking = pipeline.text_vectors(current)
    old_cold = pipeline.cold_start_vectors(current)
    cold = old_cold
    if rating is not None:
        estimated, _ = pipeline.estimate_cold_start(rating, ranking, visual_plus, movies_plus)
        if estimated is None:
            raise DatasetError("too few movies have both ratings and posters to place a new movie")
        new = [Vectors(np.array([movie.movie_id]), e.subset([movie.movie_id]).values) for e in estimated]
        cold = tuple(new) if old_cold is None else tuple(pipeline.stack(o, n) for o, n in zip(old_cold, new))
    entry = dict(current.stage("build-index"))
    w = float(entry.get("visual_weight", pipeline.DEFAULT_VISUAL_WEIGHT))
    metadata = MovieMetadata.from_movies(movies_plus)
    index = MovieIndex.load(current, entry.get("index") or {}, metadata=metadata)
    blocks = pipeline.fusion_blocks(rating, visual_plus, cold)
    one = {k: v.subset([movie.movie_id]) for k, v in blocks.items() if movie.movie_id in v}
    index.add(fuse(one, {k: v for k, v in pipeline.weights_for(blocks, w).items() if k in one}))
    embed_entry = dict(current.stage("embed"))
    added = [*added_movies(current), movie.to_dict()]
    with store.new_version() as writer:
        writer.write_arrays("visual", inputs={**(current.files.get("visual.npz", {}).get("inputs") or {}),
                                              "added": movie.movie_id},
                            movie_ids=visual_plus.ids, values=visual_plus.values)
        if cold is not None:
            writer.write_arrays("cold_start", movie_ids=cold[0].ids, collaborative=cold[0].values,
                                ranking=cold[1].values)
        entry["index"] = index.save(writer)
        entry["added"] = 1
        writer.set_stage("build-index", entry)
        writer.set_stage("embed", {**embed_entry, "n": len(visual_plus)})
        writer.write_arrays("added_movies", movies=json_array(added))
    return store.open_current().name


def add_ratings(home, user_id: int, ratings) -> dict:
    """Fold new ratings of a known user into a new version, with no retraining: their
    interactions gain (or update) the ratings, their rating-model vector and bias and their
    PureSVD factors are refitted by fold-in over all their ratings (`text_model.fold_in`), and
    their EASE row gains the movies (`text_model.ease.rows_with_ratings`); every
    other user and every movie keeps its vectors, so the index is carried over as it is."""
    from catalog import Interactions
    from index import MovieIndex, MovieMetadata
    from text_model.fold_in import FoldIn
    from text_model.ranking import ARTIFACT as RANKING, read_saved

    from . import pipeline
    from .visitor import visitor_input

    store = ModelStore(home)
    current = store.open_current()
    rating, ranking = pipeline.text_vectors(current)
    if rating is None or not current.has("interactions"):
        raise DatasetError(f"model {current.name} has no rating model; run `posterec train` first")
    interactions = Interactions.from_arrays(current.arrays("interactions"))
    user_id = int(user_id)
    if user_id not in interactions or user_id not in rating.scoring_users:
        raise UnknownUserError(f"user {user_id} is not known to model {current.name}")
    movies = pipeline.movies_of(home, current)
    catalogue = {int(m) for m in movies["movie_id"]}
    given = visitor_input(ratings, None, lambda m: m in catalogue, tuple(rating.rating_range), rating.rating_range[1])
    old_movies, old_ratings = interactions.ratings_of(user_id)
    merged = dict(zip(old_movies.tolist(), old_ratings.tolist()))
    merged.update(zip(given.movie_ids.tolist(), given.ratings.tolist()))
    users = np.repeat(interactions.user_ids, interactions.user_counts())
    keep = users != user_id
    new_inter = Interactions.from_pairs(np.concatenate([users[keep], np.full(len(merged), user_id)]),
                                        np.concatenate([interactions.movie_ids[keep], list(merged)]),
                                        np.concatenate([interactions.ratings[keep], list(merged.values())]))
    cold = pipeline.cold_start_vectors(current)
    ranked_movies = (ranking.ranking_movies if ranking is not None else rating.scoring_movies)
    fold = FoldIn.of(rating, ranking, pipeline.stack(ranked_movies, None if cold is None else cold[1]), interactions)
    ids = np.array(list(merged), np.int64)
    r = np.array(list(merged.values()), np.float64)
    inside = np.isin(ids, fold.movies.ids)
    vector = fold.vector(ids[inside], r[inside]).astype(np.float64)
    row = int(rating.user_rows([user_id])[0])
    user_vectors, user_bias = rating.user_vectors.copy(), rating.user_bias.copy()
    d = user_vectors.shape[1]
    if fold.scoring_width:  # the rating part unscaled by the blend's weight (which may be 0)
        m = fold.movies.values[fold.movies.rows_of(ids[inside])].astype(np.float64)
        part = fold.rating_part(m[:, : fold.scoring_width], r[inside])
        user_vectors[row] = part[:d]
        if rating.dot_head:
            user_bias[row] = part[d]
    from dataclasses import replace as _replace

    new_rating = _replace(rating, user_vectors=user_vectors, user_bias=user_bias)
    ranking_arrays = None
    if current.has(RANKING):
        name, params, arrays = read_saved(current)
        if "user_factors" in arrays:
            factors = arrays["user_factors"].copy()
            urow = int(np.searchsorted(arrays["user_ids"], user_id))
            factors[urow] = vector[fold.scoring_width:]
            arrays["user_factors"] = factors
        elif "row_indptr" in arrays:  # EASE: the user's training row gains the movies just rated
            from text_model.ease import rows_with_ratings

            arrays = rows_with_ratings(arrays, params, user_id, given.movie_ids)
        ranking_arrays = {"name": json_array(name), "params": json_array(params), **arrays}
    entry = dict(current.stage("build-index"))
    index = MovieIndex.load(current, entry.get("index") or {}, metadata=MovieMetadata.from_movies(movies)) \
        if current.has("index") else None
    with store.new_version() as writer:
        new_rating.save(writer)
        if ranking_arrays is not None:
            writer.write_arrays(RANKING, **ranking_arrays)
        writer.write_arrays("interactions", **new_inter.to_arrays())
        if cold is not None:  # movie vectors are unchanged: the estimates and the index carry over
            writer.write_arrays("cold_start", movie_ids=cold[0].ids, collaborative=cold[0].values,
                                ranking=cold[1].values)
        if index is not None:
            entry["index"] = index.save(writer)
            writer.set_stage("build-index", entry)
    return {"user_id": user_id, "added": int(len(given)), "version": store.open_current().name}
