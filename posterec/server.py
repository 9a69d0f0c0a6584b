"""The HTTP API and the web page: ``create_app(home)`` returns a FastAPI app.

Queries read the current `Recommender` through one reference; ``POST /admin/rebuild`` builds a
new model version in a background thread, loads it and swaps that reference, so queries are
answered throughout by the old model until the new one is ready. Unknown ids give 404 with a JSON
``{"detail": ...}``; bad parameters 422; counts ``n`` are capped at `MAX_N`.
"""
from __future__ import annotations

import hmac
import logging
import mimetypes
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from catalog import ArtifactError, UnknownMovieError, UnknownUserError

log = logging.getLogger(__name__)

MAX_N = 100
MAX_ID = 2**31 - 1
TOKEN_ENV = "POSTEREC_ADMIN_TOKEN"
STATIC_DIR = Path(__file__).resolve().parent / "static"

# ---------------------------------------------------------------- response models


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None = None
    genres: list[str] = []
    has_poster: bool = False
    poster_url: str | None = Field(None, description="/posters/{movie_id} when the movie has a poster")


class ScoredMovie(Movie):
    score: float


class Because(BaseModel):
    movie_id: int
    title: str


class Recommendation(ScoredMovie):
    because: Because | None = Field(None, description="the liked movie nearest to this one")


class SearchResult(BaseModel):
    query: str
    version: str
    results: list[Movie]


class SimilarResult(BaseModel):
    movie: Movie
    version: str
    visual_weight: float | None = Field(None, description="as asked; null means the model's default")
    results: list[ScoredMovie]


class RecommendResult(BaseModel):
    user_id: int
    version: str
    visual_weight: float | None = None
    results: list[Recommendation]


class UserSample(BaseModel):
    user_ids: list[int]


class Health(BaseModel):
    status: str
    version: str
    dataset: str
    has_posters: bool
    counts: dict[str, int] = {}
    uptime_s: float


class RebuildStatus(BaseModel):
    state: str = Field(description="idle, running, succeeded or failed")
    started_at: float | None = None
    finished_at: float | None = None
    visual_weight: float | None = None
    version_before: str | None = None
    version_after: str | None = None
    error: str | None = None


class RebuildRequest(BaseModel):
    visual_weight: float | None = Field(None, ge=0.0, le=1.0)


class Error(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Error, "description": "unknown id"}}

# ---------------------------------------------------------------- state


class RebuildJob:
    """One background rebuild at a time; `start` returns False when one is running."""

    def __init__(self, run: Callable[[float | None], str]):
        self._run = run
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.status = RebuildStatus(state="idle")

    def start(self, visual_weight: float | None, version_before: str) -> bool:
        with self._lock:
            if self.status.state == "running":
                return False
            self.status = RebuildStatus(state="running", started_at=time.time(),
                                        visual_weight=visual_weight, version_before=version_before)
            self._thread = threading.Thread(target=self._work, args=(visual_weight,),
                                            name="posterec-rebuild", daemon=True)
            self._thread.start()
            return True

    def _work(self, visual_weight: float | None) -> None:
        try:
            version = self._run(visual_weight)
            update = {"state": "succeeded", "version_after": version}
        except Exception as exc:  # reported through GET /admin/rebuild; the old model stays
            log.exception("rebuild failed")
            update = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self.status = self.status.model_copy(update={**update, "finished_at": time.time()})

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class AppState:
    """Holds the recommender in use; swapping it is one reference assignment."""

    def __init__(self, home: Path, loader: Callable, rebuilder: Callable):
        self.home = home
        self.loader = loader
        self.rebuilder = rebuilder
        self.recommender = loader(home)
        self.started = time.time()
        self.rebuild = RebuildJob(self._rebuild)

    def _rebuild(self, visual_weight: float | None) -> str:
        self.rebuilder(self.home, visual_weight=visual_weight)
        fresh = self.loader(self.home)
        self.recommender = fresh  # atomic: requests hold whichever reference they read
        return fresh.version


def _default_loader(home):
    from .recommender import Recommender

    return Recommender.load(home)


def _default_rebuilder(home, visual_weight=None):
    from .recommender import rebuild

    return rebuild(home, visual_weight=visual_weight)


# ---------------------------------------------------------------- helpers


def _movie(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    year = out.get("year")
    try:
        out["year"] = None if year is None or year != year else int(year)  # NaN/NA -> None
    except (TypeError, ValueError):
        out["year"] = None
    out["genres"] = list(out.get("genres") or [])
    out["has_poster"] = bool(out.get("has_poster"))
    out["poster_url"] = f"/posters/{int(out['movie_id'])}" if out["has_poster"] else None
    if "score" in out:
        out["score"] = float(out["score"])
    return out


class _Json(Response):
    media_type = "application/json"


def _reply(model: type[BaseModel], data: dict[str, Any]) -> Response:
    """Validate and serialise in pydantic's compiled core (FastAPI skips its own, slower pass
    when handed a Response); the route's ``response_model`` still documents the shape."""
    return _Json(model.model_validate(data).model_dump_json())


_MAGIC = [(b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif")]


def _content_type(path: Path) -> str:
    """The image type from the file's first bytes (the name can lie), else from its suffix."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _n(default: int):
    return Query(default, ge=1, description=f"how many; values above {MAX_N} are capped to {MAX_N}")


MovieId = PathParam(..., ge=0, le=MAX_ID, description="the dataset's movie id")
Weight = Query(None, ge=0.0, le=1.0, description="0 = collaborative only, 1 = posters only; "
                                                 "omitted = the model's default")

# ---------------------------------------------------------------- the app


def create_app(home, loader: Callable | None = None, rebuilder: Callable | None = None) -> FastAPI:
    """The API and page for the model in ``home``. ``loader(home)`` returns a Recommender
    (default `posterec.recommender.Recommender.load`); ``rebuilder(home, visual_weight=)``
    writes a new current version (default `posterec.recommender.rebuild`)."""
    state = AppState(Path(home), loader or _default_loader, rebuilder or _default_rebuilder)
    app = FastAPI(title="posterec", version="1",
                  description="Movie recommendations from ratings and posters.")
    app.state.posterec = state

    @app.exception_handler(UnknownMovieError)
    @app.exception_handler(UnknownUserError)
    async def _unknown(request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/health", response_model=Health, tags=["meta"])
    async def health():
        rec = state.recommender
        counts = rec.counts() if callable(getattr(rec, "counts", None)) else {}
        return _reply(Health, {"status": "ok", "version": rec.version, "dataset": rec.dataset,
                               "has_posters": bool(rec.has_posters), "counts": counts,
                               "uptime_s": round(time.time() - state.started, 3)})

    @app.get("/movies", response_model=SearchResult, tags=["movies"])
    async def search_movies(q: str = Query("", max_length=200, description="part of a title"),
                      n: int = _n(20)):
        rec = state.recommender
        hits = rec.search_movies(q, n=min(n, MAX_N))
        return _reply(SearchResult, {"query": q, "version": rec.version,
                                     "results": [_movie(m) for m in hits]})

    @app.get("/movies/{movie_id}", response_model=Movie, responses=NOT_FOUND, tags=["movies"])
    async def get_movie(movie_id: int = MovieId):
        return _reply(Movie, _movie(state.recommender.movie(movie_id)))

    @app.get("/movies/{movie_id}/similar", response_model=SimilarResult, responses=NOT_FOUND,
             tags=["movies"])
    async def similar(movie_id: int = MovieId, n: int = _n(10), visual_weight: float | None = Weight):
        rec = state.recommender
        movie = rec.movie(movie_id)
        hits = rec.similar(movie_id, n=min(n, MAX_N), visual_weight=visual_weight)
        return _reply(SimilarResult, {"movie": _movie(movie), "version": rec.version,
                                      "visual_weight": visual_weight,
                                      "results": [_movie(m) for m in hits]})

    @app.get("/movies/{movie_id}/lookalike", response_model=SimilarResult, responses=NOT_FOUND,
             tags=["movies"])
    async def lookalike(movie_id: int = MovieId, n: int = _n(10)):
        rec = state.recommender
        movie = rec.movie(movie_id)
        try:
            hits = rec.lookalike(movie_id, n=min(n, MAX_N))
        except ArtifactError as exc:  # a model without posters: no look-alikes to give
            raise HTTPException(404, str(exc)) from None
        return _reply(SimilarResult, {"movie": _movie(movie), "version": rec.version,
                                      "visual_weight": 1.0, "results": [_movie(m) for m in hits]})

    @app.get("/users", response_model=UserSample, tags=["users"])
    async def sample_users(n: int = _n(20)):
        users = state.recommender.sample_users(min(n, MAX_N))
        return _reply(UserSample, {"user_ids": [int(u) for u in users]})

    @app.get("/users/{user_id}/recommendations", response_model=RecommendResult,
             responses=NOT_FOUND, tags=["users"])
    async def recommend(user_id: int = PathParam(..., ge=0, le=MAX_ID), n: int = _n(10),
                  visual_weight: float | None = Weight):
        rec = state.recommender
        hits = rec.recommend(user_id, n=min(n, MAX_N), visual_weight=visual_weight)
        return _reply(RecommendResult, {"user_id": user_id, "version": rec.version,
                                        "visual_weight": visual_weight,
                                        "results": [_movie(m) for m in hits]})

    @app.get("/posters/{movie_id}", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                                               **NOT_FOUND}, tags=["movies"])
    async def poster(movie_id: int = MovieId):
        rec = state.recommender
        path = rec.poster_path(movie_id)
        if path is None or not Path(path).is_file():
            rec.movie(movie_id)  # unknown movie -> 404 saying so
            raise HTTPException(404, f"movie {movie_id} has no poster")
        return FileResponse(path, media_type=_content_type(Path(path)),
                            headers={"Cache-Control": "public, max-age=3600"})

    def _require_token(authorization: str | None) -> None:
        expected = os.environ.get(TOKEN_ENV, "")
        if not expected:
            raise HTTPException(404, f"admin endpoints are disabled; set {TOKEN_ENV} to enable them")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(401, "expected the header Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise HTTPException(403, "wrong admin token")

    admin_responses = {401: {"model": Error}, 403: {"model": Error}, 404: {"model": Error}}

    @app.post("/admin/rebuild", response_model=RebuildStatus, status_code=202,
              responses={**admin_responses, 409: {"model": Error}}, tags=["admin"])
    def start_rebuild(body: RebuildRequest | None = None,
                      authorization: str | None = Header(None)):
        _require_token(authorization)
        weight = body.visual_weight if body else None
        if not state.rebuild.start(weight, state.recommender.version):
            raise HTTPException(409, "a rebuild is already running; see GET /admin/rebuild")
        return state.rebuild.status

    @app.get("/admin/rebuild", response_model=RebuildStatus, responses=admin_responses,
             tags=["admin"])
    def rebuild_status(authorization: str | None = Header(None)):
        _require_token(authorization)
        return state.rebuild.status

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
