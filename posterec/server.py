"""The HTTP API and the web page: ``create_app(home)`` returns a FastAPI app.

Queries read the current recommender (a `posterec.protocol.RecommenderLike`) through one
reference; ``POST /admin/rebuild`` builds a new model version in a background thread, loads it
and swaps that reference, so queries are answered throughout by the old model until the new one
is ready. A version another process made current (another worker's rebuild, ``posterec
build-index``) is noticed within about a second and swapped in the same way (`AppState`), so
every worker of ``serve --workers N`` (`posterec.workers`) follows it.

What a client may send, and what it gets back:
- unknown ids give 404 with a JSON ``{"detail": ...}``; bad parameters or a bad body 422; counts
  ``n`` are capped at `MAX_N`; no input gives a 5xx or a traceback in the log;
- ids and counts are plain decimal digits (``/posters/1_0`` is a 422, not poster 10);
- ``visual_weight`` is quantised to `WEIGHT_STEP` steps, so clients cycling weights reuse a few
  cached spaces instead of building one per request;
- query handlers compute in the threadpool: a slow query never holds up the event loop, so
  ``/health`` stays fast while others compute; similar, lookalike and recommendations keep the
  serialised answers of the loaded version (`Answers`, when ``answer_mb`` > 0) and send one
  already given straight from the event loop;
- the admin endpoints check the token before they read the body: without a valid token the
  answer is 404 (admin disabled) or 401/403, whatever was sent;
- ``HEAD`` is answered wherever ``GET`` is, and every response carries ``nosniff``, a
  Content-Security-Policy that allows only this server's own scripts, styles and images, and
  no framing.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import logging
import mimetypes
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from catalog import ArtifactError, Hits, UnknownMovieError, UnknownUserError

from .protocol import RecommenderLike, protocol_gaps

log = logging.getLogger(__name__)

MAX_N = 100
MAX_ID = 2**31 - 1
WEIGHT_STEP = 0.05
ANSWER_MB = 32.0  # serialised query answers `posterec serve` keeps per loaded version (`Answers`)
MAX_BODY = 4096  # bytes; the rebuild body is {"visual_weight": x}
VISITOR_BODY = 64 * 1024  # a visitor's likes and ratings (at most 500 movies)
ADMIN_MOVIE_BODY = 15 * 1024 * 1024  # a new movie with its poster (10 MB at most) in base64
TOKEN_ENV = "POSTEREC_ADMIN_TOKEN"
STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page (static/index.html, app.js, style.css) loads only its own files and talks only to this
# server; app.js sets styles through the CSSOM, which style-src does not govern.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's Swagger UI at /docs is the one page that needs more: an inline bootstrap script and
# its bundle from a CDN (so /docs, unlike the page, needs the network).
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]

# ---------------------------------------------------------------- strict parameters

_DIGITS = re.compile(r"0|[1-9][0-9]{0,9}")
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


def _strict_int(value: Any) -> Any:
    """Plain decimal digits only: Python's int() would also take '1_0', ' 7', '+7' and '007'."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError(f"expected a whole number in plain digits (no sign, spaces, "
                             f"underscores or leading zeros), got {value[:40]!r}")
        return int(value)
    return value


def _strict_float(value: Any) -> Any:
    """A plain decimal such as 0.25: no 'nan', 'inf', underscores, spaces or signs."""
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"expected a decimal number such as 0.25, got {value[:40]!r}")
        return float(value)
    return value


def quantise(visual_weight: float | None) -> float | None:
    """``visual_weight`` rounded to the nearest `WEIGHT_STEP` (None stays None)."""
    if visual_weight is None:
        return None
    return round(round(visual_weight / WEIGHT_STEP) * WEIGHT_STEP, 2)


MovieId = Annotated[int, BeforeValidator(_strict_int),
                    PathParam(ge=0, le=MAX_ID, description="the dataset's movie id")]
UserId = Annotated[int, BeforeValidator(_strict_int),
                   PathParam(ge=0, le=MAX_ID, description="the dataset's user id")]
Count = Annotated[int, BeforeValidator(_strict_int),
                  Query(ge=1, description=f"how many; values above {MAX_N} are capped to {MAX_N}")]
Weight = Annotated[float | None, BeforeValidator(_strict_float),
                   Query(ge=0.0, le=1.0, description="0 = collaborative only, 1 = posters only; "
                                                     f"rounded to steps of {WEIGHT_STEP}; "
                                                     "omitted = the model's default")]

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
    visual_weight: float | None = Field(None, description=f"the weight used, rounded to steps of "
                                                          f"{WEIGHT_STEP}; null means the model's default")
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
    default_visual_weight: float = Field(0.0, description="the poster weight similar uses when none is given")
    counts: dict[str, int] = {}
    missing_optional: list[str] = Field([], description="optional artifacts this model has not got, "
                                                        "by design (e.g. visual: no posters)")
    stale: list[str] = Field([], description="artifacts made from inputs that have changed since")
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
    model_config = ConfigDict(extra="forbid")

    visual_weight: float | None = Field(None, ge=0.0, le=1.0, strict=True, allow_inf_nan=False,
                                        description=f"rounded to steps of {WEIGHT_STEP}")


class Error(BaseModel):
    detail: str


class VisitorRequest(BaseModel):
    """What a visitor gives: liked movie ids and/or ratings keyed by movie id."""

    model_config = ConfigDict(extra="forbid")

    liked: list[Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]] = Field(
        [], max_length=500, description="movie ids the visitor likes")
    ratings: dict[Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,9})$")],
                  Annotated[float, Field(allow_inf_nan=False)]] = Field(
        {}, max_length=500, description='{"movie_id": rating} on the dataset\'s scale')
    n: int = Field(10, ge=1, strict=True, description=f"how many; above {MAX_N} capped to {MAX_N}")
    visual_weight: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                        description=f"rounded to steps of {WEIGHT_STEP}")


class NewMovieRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    year: int | None = Field(None, strict=True)
    genres: list[str] = Field(min_length=1, max_length=20)
    poster: str = Field(description="the poster image (JPEG or PNG), base64-encoded", min_length=1)
    movie_id: int | None = Field(None, ge=1, le=MAX_ID, strict=True)


class NewMovie(BaseModel):
    movie_id: int
    title: str
    year: int | None = None
    genres: list[str]
    version: str


class NewRatingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ratings: dict[Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,9})$")],
                  Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1, max_length=500)


class NewRatings(BaseModel):
    user_id: int
    added: int
    version: str


class VisitorResult(BaseModel):
    version: str
    basis: str = Field(description="visitor: folded in from what was given; popular: nothing was given, "
                                   "so the most popular movies")
    visual_weight: float | None = None
    results: list[Recommendation]


class WallResult(BaseModel):
    version: str
    seed: int
    results: list[Movie]


NOT_FOUND = {404: {"model": Error, "description": "unknown id"}}
REBUILD_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": RebuildRequest.model_json_schema()}}}}

# ---------------------------------------------------------------- state


class RebuildJob:
    """One background rebuild at a time; `start` returns False when one is running.

    With ``shared`` (a folder every worker process of one server sees) the status lives in a
    file there and a lock file keeps it to one rebuild across all the workers, so ``GET
    /admin/rebuild`` answers the same whichever worker it reaches."""

    def __init__(self, run: Callable[[float | None], str], shared: Path | None = None):
        self._run = run
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status = RebuildStatus(state="idle")
        self._file = None if shared is None else Path(shared) / "rebuild-status.json"
        self._lock_file = None if shared is None else Path(shared) / "rebuild.lock"
        self._held = None  # the open lock file while this process runs a rebuild

    @property
    def status(self) -> RebuildStatus:
        if self._file is not None:
            try:
                return RebuildStatus.model_validate_json(self._file.read_bytes())
            except (OSError, ValueError):
                pass  # never written yet (idle), or being replaced: ours is as good
        return self._status

    def _set(self, status: RebuildStatus) -> None:
        self._status = status
        if self._file is not None:
            tmp = self._file.with_name(f".{self._file.name}.{os.getpid()}.tmp")
            tmp.write_text(status.model_dump_json())
            os.replace(tmp, self._file)  # readers see the old status or the new, never half

    def _claim(self) -> bool:
        """Take the cross-worker lock (a no-op for one process); False when another holds it."""
        if self._lock_file is None:
            return True
        import fcntl

        fh = open(self._lock_file, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._held = fh
        return True

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing drops the flock
            self._held = None

    def start(self, visual_weight: float | None, version_before: str) -> bool:
        with self._lock:
            if self._status.state == "running" or not self._claim():
                return False
            self._set(RebuildStatus(state="running", started_at=time.time(),
                                    visual_weight=visual_weight, version_before=version_before))
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
            self._set(self._status.model_copy(update={**update, "finished_at": time.time()}))
            self._release()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class Answers:
    """Serialised answers of one loaded model version, by request (e.g. ``("similar", 1, 10,
    None)``), at most ``max_bytes`` of them, the oldest dropped first.

    A loaded version never changes, so neither does its answer to a query: a hit is served on the
    event loop without the threadpool hop, the search or the encoding. A new version comes with
    a new, empty `Answers` (`Serving.of`)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._bodies: dict[tuple, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        return self._bodies.get(key)  # one dict read: atomic, no lock

    def put(self, key: tuple, body: bytes) -> None:
        if len(body) * 16 > self.max_bytes:  # off (0), or one answer would crowd out the rest
            return
        with self._lock:
            if key in self._bodies:
                return
            while self._bodies and self._size + len(body) > self.max_bytes:
                self._size -= len(self._bodies.pop(next(iter(self._bodies))))
            self._bodies[key] = body
            self._size += len(body)

    def __len__(self) -> int:
        return len(self._bodies)


@dataclass(frozen=True)
class Serving:
    """A loaded recommender with what ``/health`` says about it, read once at load, and its answers."""

    recommender: RecommenderLike
    counts: dict[str, int]
    missing_optional: list[str]
    stale: list[str]
    answers: Answers

    @classmethod
    def of(cls, rec: object, answer_bytes: int = 0) -> "Serving":
        gaps = protocol_gaps(rec)
        if gaps:
            raise TypeError(f"{type(rec).__name__} is not a posterec.protocol.RecommenderLike: "
                            f"it lacks {', '.join(gaps)}")
        health = rec.health()
        return cls(rec, {str(k): int(v) for k, v in rec.counts().items()},
                   [str(x) for x in health.get("missing_optional", [])],
                   [str(x) for x in health.get("stale", [])], Answers(answer_bytes))


def current_version(home: Path) -> str | None:
    """The name in ``<home>/models/CURRENT`` (what `AppState` watches), or None."""
    from catalog import ModelStore

    return ModelStore(home).current_name()


class AppState:
    """Holds the recommender in use; swapping it is one reference assignment.

    Each read of `current` looks, at most every ``check_every`` seconds, at the version on disk
    (``watch(home)``, default: the name in ``models/CURRENT``); when another process (another
    worker's rebuild, ``posterec build-index``, ``add-movie``) has made a new one current, it is
    loaded in a background thread and swapped in, and requests are answered by the old one until
    then. So every worker of ``serve --workers N`` moves to the new version within about
    ``check_every`` seconds plus the load time.
    """

    def __init__(self, home: Path, loader: Callable, rebuilder: Callable, *, watch: Callable | None = None,
                 check_every: float = 1.0, answer_bytes: int = 0, shared: Path | None = None):
        self.home = home
        self.loader = loader
        self.rebuilder = rebuilder
        self.watch = watch or current_version
        self.check_every = float(check_every)
        self.answer_bytes = int(answer_bytes)
        self._loading = threading.Lock()  # one load at a time: a rebuild's, a reload's or the watcher's
        self._current = self._load()
        self._next_check = time.monotonic() + self.check_every
        self._failed: str | None = None  # a version on disk that would not load (not retried)
        self.started = time.time()
        self.rebuild = RebuildJob(self._rebuild, shared)

    def _load(self) -> Serving:
        return Serving.of(self.loader(self.home), self.answer_bytes)

    @property
    def current(self) -> Serving:
        if self.check_every >= 0:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self.check_every
                self._check()
        return self._current

    @property
    def recommender(self) -> RecommenderLike:
        return self.current.recommender

    def _changed(self) -> str | None:
        """The version on disk when it is not the one served (nor one that failed), else None."""
        try:
            on_disk = self.watch(self.home)
        except (OSError, ValueError):
            return None
        if on_disk is None or on_disk in (self._current.recommender.version, self._failed):
            return None
        return on_disk

    def _check(self) -> None:
        """Start loading the version on disk when it is not the one served (a few µs when it is)."""
        on_disk = self._changed()
        if on_disk is None or not self._loading.acquire(blocking=False):
            return  # current, or a load is under way: the next check sees what it gave
        threading.Thread(target=self._follow, args=(on_disk,), name="posterec-reload", daemon=True).start()

    def start_watching(self) -> threading.Event:
        """In the process that serves (each worker, at start-up): load the version on disk now if it
        is not the one served (a worker forked from an older load), then look every
        ``check_every`` s in a background thread, so that even a worker no request reaches keeps
        up. Returns the event that stops the thread."""
        stop = threading.Event()
        if self.check_every < 0:
            return stop
        on_disk = self._changed()
        if on_disk is not None:
            self._loading.acquire()
            self._follow(on_disk)

        def watch() -> None:
            while not stop.wait(self.check_every):
                on_disk = self._changed()
                if on_disk is not None and self._loading.acquire(blocking=False):
                    self._follow(on_disk)

        threading.Thread(target=watch, name="posterec-watch", daemon=True).start()
        return stop

    def _follow(self, on_disk: str) -> None:
        try:
            if self._current.recommender.version != on_disk:
                self._current = self._load()
                log.info("now serving model %s (made current by another process)", self._current.recommender.version)
        except Exception as exc:  # a broken version: keep serving the old one, say so once
            self._failed = on_disk
            log.warning("model %s is current on disk but did not load; still serving %s: %s",
                        on_disk, self._current.recommender.version, exc)
        finally:
            self._loading.release()

    def reload(self) -> None:
        """Load the version on disk now (after this process changed it)."""
        with self._loading:
            self._current = self._load()  # atomic: requests hold whichever reference they read

    def _rebuild(self, visual_weight: float | None) -> str:
        with self._loading:  # the watcher leaves the version this rebuild makes to it
            self.rebuilder(self.home, visual_weight=visual_weight)
            self._current = self._load()
        return self._current.recommender.version


def _default_loader(home):
    from .recommender import Recommender

    return Recommender.load(home)


def _default_rebuilder(home, visual_weight=None):
    from .pipeline import build_index

    return build_index(home, visual_weight=visual_weight)


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


def _described(rec: RecommenderLike, hits: Hits) -> list[dict[str, Any]]:
    return [_movie(m) for m in rec.describe(hits)]


class _Json(Response):
    media_type = "application/json"


def _encoded(model: type[BaseModel], data: dict[str, Any]) -> bytes:
    """``data`` validated against ``model`` and serialised, in pydantic's compiled core."""
    return model.model_validate(data).model_dump_json().encode()


def _reply(model: type[BaseModel], data: dict[str, Any]) -> Response:
    """Validate and serialise in pydantic's compiled core (FastAPI skips its own, slower pass
    when handed a Response); the route's ``response_model`` still documents the shape."""
    return _Json(_encoded(model, data))


def _kept(cur: "Serving", key: tuple, model: type[BaseModel], data: dict[str, Any]) -> bytes:
    """The answer ``data`` serialised (validated against ``model``) and kept in ``cur.answers``."""
    body = _encoded(model, data)
    cur.answers.put(key, body)
    return body


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


def _invalid(errors, prefix: tuple = ()) -> RequestValidationError:
    """A 422 with FastAPI's error shape (``loc``, ``msg``, ``type``), minus the echoed input,
    which may not even be JSON (NaN, bytes)."""
    return RequestValidationError([{"loc": (*prefix, *e.get("loc", ())), "msg": str(e.get("msg", "")),
                                    "type": str(e.get("type", "value_error"))} for e in errors])


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


async def _read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rebuild_weight(raw: bytes) -> float | None:
    """The ``visual_weight`` of a rebuild body: empty, ``null`` or ``{"visual_weight": 0..1}``."""
    if not raw.strip():
        return None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise _invalid([{"loc": (), "msg": f'expected a JSON object like {{"visual_weight": 0.5}}: '
                                           f'{reason}', "type": "json_invalid"}], ("body",)) from None
    if data is None:
        return None
    try:
        return quantise(RebuildRequest.model_validate(data).visual_weight)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_input=False, include_context=False), ("body",)) from None


def _visitor_body(raw: bytes) -> "VisitorRequest":
    """The visitor's JSON object (`VisitorRequest`); 422 naming what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise _invalid([{"loc": (), "msg": f'expected a JSON object like {{"liked": [1, 50], "ratings": '
                                           f'{{"181": 4.5}}}}: {reason}', "type": "json_invalid"}], ("body",)) from None
    try:
        return VisitorRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_input=False, include_context=False), ("body",)) from None


# ---------------------------------------------------------------- ASGI wrappers


def _head_as_get(app):
    """Answer HEAD wherever GET is: run the GET and send its headers without the body."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await app(scope, receive, send)
        finished = False

        async def headers_only(message):
            nonlocal finished
            if message["type"] != "http.response.body":
                return await send(message)
            if not finished and not message.get("more_body", False):
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await app({**scope, "method": "GET"}, receive, headers_only)

    return wrapped


def _secure_headers(app):
    """Add nosniff, the CSP and no-framing to every response, errors included."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        csp = (DOCS_CSP if scope.get("path") in DOCS_PATHS else PAGE_CSP).encode()

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in [*SECURITY_HEADERS, (b"content-security-policy", csp)]
                            if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, with_headers)

    return wrapped


class _App(FastAPI):
    def build_middleware_stack(self):
        # outside Starlette's ServerErrorMiddleware, so that even a 500 carries the headers
        return _head_as_get(_secure_headers(super().build_middleware_stack()))


# ---------------------------------------------------------------- the app


def create_app(home, loader: Callable | None = None, rebuilder: Callable | None = None, *,
               watch: Callable | None = None, check_every: float = 1.0, answer_mb: float = 0.0,
               shared: Path | None = None) -> FastAPI:
    """The API and page for the model in ``home``. ``loader(home)`` returns a `RecommenderLike`
    (default `posterec.recommender.Recommender.load`); ``rebuilder(home, visual_weight=)``
    writes a new current version (default `posterec.pipeline.build_index`).

    ``watch(home)`` names the version on disk (default: ``models/CURRENT``), looked at every
    ``check_every`` s (negative: never) to follow versions other processes make current;
    ``answer_mb``: how much of the query answers of the loaded version are kept serialised
    (`Answers`; 0, the default here: none; ``posterec serve`` keeps `ANSWER_MB`); ``shared``: a folder the worker processes of one server share, for
    the rebuild status (`RebuildJob`)."""
    state = AppState(Path(home), loader or _default_loader, rebuilder or _default_rebuilder, watch=watch,
                     check_every=check_every, answer_bytes=int(answer_mb * 2**20), shared=shared)
    @contextlib.asynccontextmanager
    async def lifespan(app):
        stop = state.start_watching()  # here, in the serving process: after a fork, not before
        try:
            yield
        finally:
            stop.set()

    app = _App(title="posterec", version="1", redoc_url=None, lifespan=lifespan,
               description="Movie recommendations from ratings and posters.")
    app.state.posterec = state

    @app.exception_handler(UnknownMovieError)
    @app.exception_handler(UnknownUserError)
    async def _unknown(request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(request: Request, exc: RequestValidationError):
        detail = [{"loc": [x if isinstance(x, (int, str)) else str(x) for x in e.get("loc", ())],
                   "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ArtifactError)
    async def _unavailable(request: Request, exc: ArtifactError):
        # the model on disk is broken, not the request: one line in the log, no traceback
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/health", response_model=Health, tags=["meta"])
    async def health():  # on the event loop on purpose: it only reads what Serving holds
        cur = state.current
        rec = cur.recommender
        return _reply(Health, {"status": "ok", "version": rec.version, "dataset": rec.dataset,
                               "has_posters": bool(rec.has_posters),
                               "default_visual_weight": float(rec.default_visual_weight), "counts": cur.counts,
                               "missing_optional": cur.missing_optional, "stale": cur.stale,
                               "uptime_s": round(time.time() - state.started, 3)})

    # The query handlers below are plain functions: FastAPI runs them in its threadpool.

    @app.get("/movies", response_model=SearchResult, tags=["movies"])
    def search_movies(q: Annotated[str, Query(max_length=200, description="part of a title")] = "",
                      n: Count = 20):
        rec = state.recommender
        found = rec.search_movies(q, n=min(n, MAX_N))
        return _reply(SearchResult, {"query": q, "version": rec.version,
                                     "results": [_movie(m) for m in found]})

    @app.get("/movies/{movie_id}", response_model=Movie, responses=NOT_FOUND, tags=["movies"])
    def get_movie(movie_id: MovieId):
        return _reply(Movie, _movie(state.recommender.movie(movie_id)))

    # similar, lookalike and recommendations: an answer of this version already given is sent as
    # it was, from the event loop; a new one is computed in the threadpool and kept (`Answers`).

    @app.get("/movies/{movie_id}/similar", response_model=SimilarResult, responses=NOT_FOUND,
             tags=["movies"])
    async def similar(movie_id: MovieId, n: Count = 10, visual_weight: Weight = None):
        cur, key = state.current, ("similar", movie_id, min(n, MAX_N), quantise(visual_weight))
        return _Json(cur.answers.get(key) or await run_in_threadpool(_similar, cur, key))

    def _similar(cur: Serving, key: tuple) -> bytes:
        _, movie_id, n, weight = key
        rec = cur.recommender
        movie = rec.movie(movie_id)
        hits = rec.similar(movie_id, n=n, visual_weight=weight)
        return _kept(cur, key, SimilarResult, {"movie": _movie(movie), "version": rec.version,
                                                "visual_weight": weight, "results": _described(rec, hits)})

    @app.get("/movies/{movie_id}/lookalike", response_model=SimilarResult, responses=NOT_FOUND,
             tags=["movies"])
    async def lookalike(movie_id: MovieId, n: Count = 10):
        cur, key = state.current, ("lookalike", movie_id, min(n, MAX_N))
        return _Json(cur.answers.get(key) or await run_in_threadpool(_lookalike, cur, key))

    def _lookalike(cur: Serving, key: tuple) -> bytes:
        _, movie_id, n = key
        rec = cur.recommender
        movie = rec.movie(movie_id)
        try:
            hits = rec.lookalike(movie_id, n=n)
        except ArtifactError as exc:  # a model without posters: no look-alikes to give
            raise HTTPException(404, str(exc)) from None
        return _kept(cur, key, SimilarResult, {"movie": _movie(movie), "version": rec.version,
                                                "visual_weight": 1.0, "results": _described(rec, hits)})

    @app.get("/users", response_model=UserSample, tags=["users"])
    def sample_users(n: Count = 20):
        users = state.recommender.sample_users(min(n, MAX_N))
        return _reply(UserSample, {"user_ids": [int(u) for u in users]})

    @app.get("/users/{user_id}/recommendations", response_model=RecommendResult,
             responses=NOT_FOUND, tags=["users"])
    async def recommend(user_id: UserId, n: Count = 10, visual_weight: Weight = None):
        cur, key = state.current, ("recommend", user_id, min(n, MAX_N), quantise(visual_weight))
        return _Json(cur.answers.get(key) or await run_in_threadpool(_recommend, cur, key))

    def _recommend(cur: Serving, key: tuple) -> bytes:
        _, user_id, n, weight = key
        rec = cur.recommender
        hits = rec.recommend(user_id, n=n, visual_weight=weight)
        return _kept(cur, key, RecommendResult, {"user_id": user_id, "version": rec.version,
                                                  "visual_weight": weight, "results": _described(rec, hits)})

    @app.post("/recommendations", response_model=VisitorResult, tags=["visitors"],
              responses={413: {"model": Error}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": VisitorRequest.model_json_schema()}}}})
    async def recommend_for(request: Request):
        body = _visitor_body(await _read_body(request, VISITOR_BODY))
        return await run_in_threadpool(_recommend_for, body)

    def _recommend_for(body: "VisitorRequest"):
        rec = state.recommender
        weight = quantise(body.visual_weight)
        ratings = {int(k): v for k, v in body.ratings.items()}
        try:
            hits = rec.recommend_for(ratings=ratings, liked=body.liked, n=min(body.n, MAX_N), visual_weight=weight)
        except UnknownMovieError as exc:  # a bad request, not a missing resource
            raise _invalid([{"loc": ("liked/ratings",), "msg": str(exc), "type": "unknown_movie"}], ("body",)) from None
        except ValueError as exc:
            raise _invalid([{"loc": ("ratings",), "msg": str(exc), "type": "value_error"}], ("body",)) from None
        basis = "visitor" if (body.liked or body.ratings) else "popular"
        return _reply(VisitorResult, {"version": rec.version, "basis": basis, "visual_weight": weight,
                                      "results": _described(rec, hits)})

    @app.get("/wall", response_model=WallResult, tags=["visitors"])
    def wall(n: Count = 24, seed: Annotated[int, BeforeValidator(_strict_int),
                                           Query(ge=0, le=MAX_ID, description="another seed, another wall")] = 0,
             exclude: Annotated[str, Query(max_length=4000, pattern=r"^[0-9,]*$",
                                           description="comma-separated movie ids not to show")] = ""):
        rec = state.recommender
        skip = [int(x) for x in exclude.split(",") if x]
        found = rec.poster_wall(min(n, MAX_N), seed=seed, exclude=skip)
        return _reply(WallResult, {"version": rec.version, "seed": seed, "results": [_movie(m) for m in found]})

    @app.get("/visitor", include_in_schema=False)
    def visitor_page():
        return FileResponse(STATIC_DIR / "visitor.html", media_type="text/html")

    @app.get("/posters/{movie_id}", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                                               **NOT_FOUND}, tags=["movies"])
    def poster(movie_id: MovieId):
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
              responses={**admin_responses, 409: {"model": Error}, 413: {"model": Error}},
              openapi_extra=REBUILD_BODY, tags=["admin"])
    async def start_rebuild(request: Request, authorization: Annotated[str | None, Header()] = None):
        _require_token(authorization)  # before the body is read: no token, no parsing
        weight = _rebuild_weight(await _read_body(request))
        if not state.rebuild.start(weight, state.recommender.version):
            raise HTTPException(409, "a rebuild is already running; see GET /admin/rebuild")
        return state.rebuild.status

    @app.get("/admin/rebuild", response_model=RebuildStatus, responses=admin_responses,
             tags=["admin"])
    def rebuild_status(authorization: Annotated[str | None, Header()] = None):
        _require_token(authorization)
        return state.rebuild.status

    def _json_body(raw: bytes, model: type[BaseModel]):
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _invalid([{"loc": (), "msg": f"expected a JSON object: {str(exc)[:120]}",
                             "type": "json_invalid"}], ("body",)) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc.errors(include_input=False, include_context=False), ("body",)) from None

    def _reload() -> None:
        state.reload()  # atomic, as after a rebuild

    @app.post("/admin/movies", response_model=NewMovie, status_code=201,
              responses={**admin_responses, 413: {"model": Error}, 422: {"model": Error}}, tags=["admin"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": NewMovieRequest.model_json_schema()}}}})
    async def add_movie(request: Request, authorization: Annotated[str | None, Header()] = None):
        _require_token(authorization)  # before the body is read
        body = _json_body(await _read_body(request, ADMIN_MOVIE_BODY), NewMovieRequest)
        import base64
        import binascii

        try:
            poster = base64.b64decode(body.poster, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid([{"loc": ("poster",), "msg": "the poster is not valid base64", "type": "value_error"}],
                           ("body",)) from None

        def work():
            from catalog import DatasetError

            from .additions import add_movie as add

            try:
                added = add(state.home, body.title, body.year, body.genres, poster, movie_id=body.movie_id)
            except (ValueError, DatasetError) as exc:
                raise _invalid([{"loc": (), "msg": str(exc), "type": "value_error"}], ("body",)) from None
            _reload()
            return _Json(NewMovie.model_validate(added).model_dump_json(), status_code=201)

        return await run_in_threadpool(work)

    @app.post("/users/{user_id}/ratings", response_model=NewRatings, status_code=201,
              responses={**admin_responses, 413: {"model": Error}, 422: {"model": Error}}, tags=["admin"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": NewRatingsRequest.model_json_schema()}}}})
    async def add_ratings(user_id: UserId, request: Request,
                          authorization: Annotated[str | None, Header()] = None):
        _require_token(authorization)
        body = _json_body(await _read_body(request, VISITOR_BODY), NewRatingsRequest)

        def work():
            from .additions import add_ratings as add

            try:
                done = add(state.home, user_id, {int(k): v for k, v in body.ratings.items()})
            except UnknownMovieError as exc:
                raise _invalid([{"loc": ("ratings",), "msg": str(exc), "type": "unknown_movie"}], ("body",)) from None
            except ValueError as exc:
                raise _invalid([{"loc": ("ratings",), "msg": str(exc), "type": "value_error"}], ("body",)) from None
            _reload()
            return _Json(NewRatings.model_validate(done).model_dump_json(), status_code=201)

        return await run_in_threadpool(work)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
