"""Where a movie's poster URL comes from: the TMDB API, or a plain ``movie_id,url`` CSV.

A source's ``resolve(movie_id, fetcher)`` returns the image URL or raises `FetchError`
(outcome ``missing`` when no poster exists). TMDB: ``GET {api}/movie/{tmdb_id}`` when the TMDB
id is known, else ``GET {api}/search/movie?query=TITLE&year=YEAR``; the poster is
``{image_url}/{size}{poster_path}``. A v3 key goes in the ``api_key`` query parameter, a v4
read-access token (a JWT) in ``Authorization: Bearer``.
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

from catalog import DatasetError, ScrapeError

from .fetcher import FetchError, Fetcher

DEFAULT_API_URL = "https://api.themoviedb.org/3"
DEFAULT_IMAGE_URL = "https://image.tmdb.org/t/p"
DEFAULT_SIZE = "w342"
API_MAX_BYTES = 2 * 1024 * 1024
_ARTICLE = re.compile(r"^(?P<rest>.*), (?P<art>The|A|An|Il|La|Le|Les|L'|Der|Die|Das|El|Los)$")
_ALT_TITLE = re.compile(r"\s*\([^)]*\)\s*$")


def search_title(title: str) -> str:
    """MovieLens' ``"Usual Suspects, The (a.k.a. X)"`` -> ``"The Usual Suspects"``."""
    title = _ALT_TITLE.sub("", title).strip() or title.strip()
    m = _ARTICLE.match(title)
    if m:
        art = m.group("art")
        title = f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('rest')}"
    return title


class UrlSource:
    """Posters listed in a CSV of ``movie_id,url`` (header optional)."""

    name = "urls"

    def __init__(self, urls: dict[int, str]):
        self.urls = dict(urls)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> "UrlSource":
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: no such URL list (want a CSV of movie_id,url)")
        urls: dict[int, str] = {}
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh), start=1):
                if not row or not "".join(row).strip():
                    continue
                if i == 1 and row[0].strip().lower() in ("movie_id", "movieid", "id"):
                    continue
                if len(row) < 2:
                    raise DatasetError(f"{path.name} line {i}: expected movie_id,url, got {len(row)} field")
                try:
                    movie_id = int(row[0])
                except ValueError:
                    raise DatasetError(f"{path.name} line {i}: movie_id must be a whole number, "
                                       f"got {row[0]!r}") from None
                url = row[1].strip()
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise DatasetError(f"{path.name} line {i}: URL must start with http:// or https://, "
                                       f"got {url[:80]!r}")
                urls[movie_id] = url
        return cls(urls)

    def movie_ids(self) -> list[int]:
        return sorted(self.urls)

    def resolve(self, movie_id: int, fetcher: Fetcher) -> str:
        url = self.urls.get(int(movie_id))
        if not url:
            raise FetchError(f"no URL listed for movie {movie_id}", "missing")
        return url


def read_tmdb_links(path: str | os.PathLike) -> dict[int, int]:
    """``links.csv`` (movieId,imdbId,tmdbId) or ``movie_id,tmdb_id`` -> {movie_id: tmdb_id}."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such links file (want MovieLens links.csv or movie_id,tmdb_id)")
    out: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        mid, tid = cols.get("movieid") or cols.get("movie_id"), cols.get("tmdbid") or cols.get("tmdb_id")
        if not mid or not tid:
            raise DatasetError(f"{path.name} line 1: need columns movieId,tmdbId (or movie_id,tmdb_id), "
                               f"got {', '.join(reader.fieldnames or [])}")
        for i, row in enumerate(reader, start=2):
            m, t = (row.get(mid) or "").strip(), (row.get(tid) or "").strip()
            if not t:
                continue
            try:
                out[int(m)] = int(float(t))
            except ValueError:
                raise DatasetError(f"{path.name} line {i}: ids must be whole numbers, got {m!r}, {t!r}") from None
    return out


def is_bearer_token(key: str) -> bool:
    """TMDB v4 read-access tokens are JWTs (``eyJ...``, three dot-separated parts)."""
    return key.startswith("eyJ") and key.count(".") == 2


class TmdbSource:
    name = "tmdb"

    def __init__(self, api_key: str, tmdb_ids: dict[int, int], titles: dict[int, tuple[str, int | None]],
                 api_url: str | None = None, image_url: str | None = None, size: str = DEFAULT_SIZE):
        if not api_key:
            raise ScrapeError("no TMDB API key: set TMDB_API_KEY (a v3 key or a v4 read-access token); "
                              "or use --source urls FILE, or import-posters DIR offline")
        self.api_key = api_key
        self.tmdb_ids = dict(tmdb_ids)
        self.titles = dict(titles)
        self.api_url = (api_url or os.environ.get("TMDB_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.image_url = (image_url or os.environ.get("TMDB_IMAGE_URL") or DEFAULT_IMAGE_URL).rstrip("/")
        self.size = size.strip("/")
        for what, url in (("API", self.api_url), ("image", self.image_url)):
            if urlsplit(url).scheme not in ("http", "https"):
                raise ScrapeError(f"TMDB {what} URL must be http(s), got {url!r}")

    @property
    def secrets(self) -> list[str]:
        return [self.api_key]

    def movie_ids(self) -> list[int]:
        return sorted(set(self.tmdb_ids) | set(self.titles))

    def _auth(self) -> tuple[dict, dict]:
        if is_bearer_token(self.api_key):
            return {}, {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        return {"api_key": self.api_key}, {"Accept": "application/json"}

    def _api(self, fetcher: Fetcher, path: str, params: dict | None = None) -> dict:
        auth_params, headers = self._auth()
        try:
            r = fetcher.get(f"{self.api_url}{path}", params={**(params or {}), **auth_params},
                            headers=headers, max_bytes=API_MAX_BYTES)
        except FetchError as exc:
            if exc.http_status == 401:
                raise ScrapeError("TMDB rejected the API key (HTTP 401): check TMDB_API_KEY") from None
            raise
        try:
            return json.loads(r.data)
        except ValueError:
            raise FetchError(f"TMDB API answered with non-JSON ({r.content_type or 'no content type'})",
                             "failed", r.status, r.url) from None

    def resolve(self, movie_id: int, fetcher: Fetcher) -> str:
        movie_id = int(movie_id)
        tmdb_id = self.tmdb_ids.get(movie_id)
        if tmdb_id is not None:
            try:
                movie = self._api(fetcher, f"/movie/{int(tmdb_id)}")
            except FetchError as exc:
                if exc.outcome == "missing":
                    exc.args = (f"TMDB has no movie {tmdb_id} ({exc})",)
                raise
            poster = movie.get("poster_path") if isinstance(movie, dict) else None
            if not poster:
                raise FetchError(f"TMDB movie {tmdb_id} has no poster", "missing", 200)
        else:
            if movie_id not in self.titles:
                raise FetchError(f"movie {movie_id} has neither a TMDB id nor a title", "missing")
            title, year = self.titles[movie_id]
            params = {"query": search_title(title), "include_adult": "false"}
            if year:
                params["year"] = str(int(year))
            found = self._api(fetcher, "/search/movie", params)
            results = found.get("results") if isinstance(found, dict) else None
            if not results:
                raise FetchError(f"no TMDB match for {params['query']!r} ({year or 'no year'})", "missing", 200)
            poster = next((r.get("poster_path") for r in results if isinstance(r, dict) and r.get("poster_path")), None)
            if not poster:
                raise FetchError(f"TMDB matches for {params['query']!r} have no poster", "missing", 200)
        if not isinstance(poster, str) or not poster.startswith("/") or ".." in poster:
            raise FetchError(f"TMDB gave an odd poster_path {str(poster)[:60]!r}", "invalid", 200)
        return f"{self.image_url}/{self.size}{quote(poster)}"
