"""HTTP GETs for the scraper: one shared `requests.Session`, rate limit, retries, redirects, limits.

- every request (redirect hops and retries included) first takes a slot from the shared
  `RateLimiter`; a 429 pauses every worker for its ``Retry-After``;
- 5xx, timeouts and connection resets are retried with exponential backoff and full jitter;
- connect and read timeouts are separate (the read timeout is per socket read); on top, each
  download (one attempt: headers and body) has a hard deadline, ``total_timeout``, and after
  ``min_rate_grace`` seconds must average at least ``min_rate`` bytes/s. The body is read with
  ``read1`` (one socket read at a time), so a server trickling a few bytes a second is cut off
  within about a second of either limit; such a download is ``failed`` and not retried;
- bodies are streamed and abandoned as soon as they pass ``max_bytes``;
- redirects are followed by hand: only http(s), at most ``max_redirects``, and the
  Authorization header is dropped when the host changes;
- every message this module produces passes through `Redactor`, so the API key never reaches a
  log, an error or the manifest.
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .limiter import RateLimiter

log = logging.getLogger(__name__)

REDIRECTS = (301, 302, 303, 307, 308)
_KEY_PARAM = re.compile(r"(?i)((?:api_key|apikey|access_token|token)=)[^&\s'\"]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class FetchConfig:
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0      # deadline of one download (headers and body), against slow drips
    min_rate: float = 1024.0         # bytes/s a download must average once min_rate_grace has passed
    min_rate_grace: float = 10.0     # seconds
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    retries: int = 4                 # further attempts after the first
    backoff: float = 0.5             # seconds; doubles each attempt, full jitter
    backoff_max: float = 30.0
    max_retry_after: float = 600.0   # cap on a server's Retry-After
    user_agent: str = "posterec/0.1 (poster scraper; +https://github.com/)"

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive seconds, got {getattr(self, name)}")
        if not (self.min_rate >= 0 and self.min_rate_grace >= 0):
            raise ValueError("min_rate and min_rate_grace must be >= 0")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must be >= 0")


class FetchError(Exception):
    """A request that ended without a usable response; ``outcome`` is the manifest status."""

    def __init__(self, message: str, outcome: str = "failed", http_status: int | None = None,
                 url: str = ""):
        super().__init__(message)
        self.outcome = outcome
        self.http_status = http_status
        self.url = url


class _Retryable(Exception):
    def __init__(self, message: str, http_status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    status: int
    data: bytes
    url: str               # final URL, redacted
    content_type: str


class Redactor:
    """Replaces secrets (and any ``api_key=...``/Bearer value) in text with ``***``."""

    def __init__(self, secrets=()):
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        text = str(text)
        for s in self.secrets:
            text = text.replace(s, "***")
        return _BEARER.sub(r"\1***", _KEY_PARAM.sub(r"\1***", text))


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), ()
        return True


def parse_retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return default


class Fetcher:
    """``Fetcher(config, limiter, pool_size, secrets)``; ``get(url, ...)`` -> `Response`."""

    def __init__(self, config: FetchConfig, limiter: RateLimiter, pool_size: int = 10, secrets=()):
        self.config = config
        self.limiter = limiter
        self.redact = Redactor(secrets)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = config.user_agent
        self._filter = _RedactingFilter(self.redact)
        self._loggers = [logging.getLogger(n) for n in ("urllib3", "urllib3.connectionpool", "requests")]
        for lg in self._loggers:
            lg.addFilter(self._filter)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def close(self) -> None:
        for lg in self._loggers:
            lg.removeFilter(self._filter)
        self.session.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    def get(self, url: str, params: dict | None = None, headers: dict | None = None,
            max_bytes: int | None = None) -> Response:
        """GET with retries; raises `FetchError` (outcome missing/invalid/failed) or `Cancelled`."""
        attempt = 0
        while True:
            try:
                return self._follow(url, params, headers, max_bytes or self.config.max_bytes)
            except _Retryable as exc:
                attempt += 1
                if attempt > self.config.retries:
                    raise FetchError(f"{exc} (gave up after {attempt} attempts)", "failed",
                                     exc.http_status, self.redact(url)) from None
                if exc.retry_after is None:
                    cap = min(self.config.backoff_max, self.config.backoff * 2 ** (attempt - 1))
                    with self._rng_lock:
                        delay = self._rng.uniform(cap / 2, cap)
                    log.info("retrying %s in %.2fs: %s", self.redact(url), delay, exc)
                    self.limiter.sleep(delay)
                # after a 429 the limiter itself holds everyone until Retry-After has passed

    def _follow(self, url, params, headers, max_bytes) -> Response:
        headers = dict(headers or {})
        current, host = url, urlsplit(url).hostname
        for _hop in range(self.config.max_redirects + 1):
            self.limiter.acquire()
            started = time.monotonic()
            cfg = self.config
            try:
                r = self.session.get(current, params=params, headers=headers, stream=True,
                                     allow_redirects=False,
                                     timeout=(min(cfg.connect_timeout, cfg.total_timeout),
                                              min(cfg.read_timeout, cfg.total_timeout)))
            except requests.Timeout as exc:
                raise _Retryable(f"timed out ({type(exc).__name__})") from None
            except requests.ConnectionError as exc:
                raise _Retryable(f"connection error: {self.redact(_short(exc))}") from None
            except requests.RequestException as exc:  # invalid URL and such: not worth retrying
                raise FetchError(f"bad request: {self.redact(_short(exc))}", "failed", None,
                                 self.redact(current)) from None
            with r:
                status = r.status_code
                if status in REDIRECTS:
                    target = urljoin(r.url, r.headers.get("Location", ""))
                    scheme = urlsplit(target).scheme.lower()
                    if not r.headers.get("Location"):
                        raise FetchError(f"HTTP {status} redirect without a Location", "failed", status,
                                         self.redact(current))
                    if scheme not in ("http", "https"):
                        raise FetchError(f"refused redirect to a {scheme or 'schemeless'} URL", "invalid",
                                         status, self.redact(current))
                    if urlsplit(target).hostname != host:
                        headers.pop("Authorization", None)
                    current, params = target, None
                    continue
                if status == 429:
                    wait = min(parse_retry_after(r.headers.get("Retry-After"), self.config.backoff),
                               self.config.max_retry_after)
                    log.info("HTTP 429 from %s: pausing all workers %.2fs", urlsplit(current).hostname, wait)
                    self.limiter.pause(wait)
                    raise _Retryable("HTTP 429 Too Many Requests", 429, retry_after=wait)
                if status >= 500:
                    raise _Retryable(f"HTTP {status}", status)
                if status >= 400 or status not in range(200, 300):
                    outcome = "missing" if status in (404, 410) else "failed"
                    raise FetchError(f"HTTP {status}", outcome, status, self.redact(current))
                data = self._read(r, max_bytes, current, started)
                return Response(status, data, self.redact(r.url), r.headers.get("Content-Type", ""))
        raise FetchError(f"too many redirects (more than {self.config.max_redirects})", "failed",
                         None, self.redact(url))

    def _read(self, r: requests.Response, max_bytes: int, url: str, started: float) -> bytes:
        declared = r.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"response is {declared} bytes, over the limit of {max_bytes}", "invalid",
                             r.status_code, self.redact(url))
        cfg = self.config
        deadline = started + cfg.total_timeout
        chunks, n = [], 0
        try:
            for chunk in _chunks(r, 64 * 1024):
                n += len(chunk)
                if n > max_bytes:
                    raise FetchError(f"response passed the limit of {max_bytes} bytes", "invalid",
                                     r.status_code, self.redact(url))
                chunks.append(chunk)
                now = time.monotonic()
                if now > deadline:
                    raise FetchError(f"download passed its {cfg.total_timeout:g}s deadline after {n} bytes "
                                     f"(raise --download-timeout for a slow server)", "failed",
                                     r.status_code, self.redact(url))
                elapsed = now - started
                if cfg.min_rate and elapsed > cfg.min_rate_grace and n / elapsed < cfg.min_rate:
                    raise FetchError(f"download too slow: {n} bytes in {elapsed:.0f}s, under "
                                     f"{cfg.min_rate:g} bytes/s", "failed", r.status_code, self.redact(url))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout,
                urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"connection broke while reading: {self.redact(_short(exc))}") from None
        return b"".join(chunks)


def _chunks(r: requests.Response, size: int):
    """The body as it arrives: one socket read per chunk (urllib3's ``read1``), so a chunk never
    waits for ``size`` bytes from a server that trickles."""
    raw = r.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2
        yield from r.iter_content(size)
        return
    while True:
        chunk = read1(size, decode_content=True)
        if not chunk:
            return
        yield chunk


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
