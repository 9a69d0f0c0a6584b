"""``scrape_posters``: fetch many posters concurrently into a `PosterStore`, resumably.

Which movies are fetched: those with no manifest record, those whose last outcome was
``failed``, and ``ok`` ones whose file has gone; ``--retry-all`` fetches every movie again.
``missing`` and ``invalid`` are final until then. A new ``failed``/``missing``/``invalid``
outcome never replaces a poster that is ``ok`` on disk (it is counted as ``kept``).

Each outcome is journaled as it completes, so Ctrl-C (or a crash) loses at most the requests in
flight. On Ctrl-C no new work starts, waiting workers are cancelled, requests already on the
wire finish (bounded by the timeouts), and the manifest is compacted before returning.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from dataclasses import dataclass, field

from catalog import ScrapeError

from .fetcher import FetchConfig, FetchError, Fetcher
from .image import ImageLimits, InvalidImage, check_image
from .limiter import Cancelled, RateLimiter
from .store import PosterStore, Record, now_utc

log = logging.getLogger(__name__)

COUNTED = ("ok", "missing", "invalid", "failed", "kept")
TICK = 1.0  # seconds between progress-bar refreshes while no download finishes


@dataclass
class ScrapeSummary:
    todo: int = 0                       # movies this run set out to fetch
    skipped: int = 0                    # already final in the manifest
    counts: Counter = field(default_factory=Counter)
    interrupted: bool = False

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        parts = ", ".join(f"{k} {self.counts.get(k, 0)}" for k in COUNTED if k != "kept" or self.counts.get(k))
        tail = f"; interrupted after {self.done} of {self.todo}" if self.interrupted else ""
        return f"{self.done} fetched ({parts}); {self.skipped} already done{tail}"


def select_todo(store: PosterStore, movie_ids, retry_all: bool = False) -> tuple[list[int], int]:
    """The movies a run should fetch, in the given order, and how many it skips."""
    records = store.records()
    todo, skipped = [], 0
    for movie_id in dict.fromkeys(int(m) for m in movie_ids):
        rec = records.get(movie_id)
        if retry_all or rec is None or rec.status == "failed" or (
                rec.status == "ok" and not store.path(movie_id).exists()):
            todo.append(movie_id)
        else:
            skipped += 1
    return todo, skipped


def fetch_one(movie_id: int, source, fetcher: Fetcher, store: PosterStore, limits: ImageLimits) -> Record:
    """Resolve, download, check and store one poster; the outcome as a manifest record."""
    try:
        return _fetch_one(movie_id, source, fetcher, store, limits)
    except (Cancelled, ScrapeError):
        raise
    except Exception as exc:  # one bad poster is recorded and skipped; the run goes on
        log.debug("movie %s: unexpected %s", movie_id, type(exc).__name__, exc_info=False)
        return Record(movie_id=movie_id, source=source.name, status="failed", fetched_at=now_utc(),
                      error=fetcher.redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}"))


def _fetch_one(movie_id: int, source, fetcher: Fetcher, store: PosterStore, limits: ImageLimits) -> Record:
    url, http_status = "", None

    def record(status: str, error: str = "", **kw) -> Record:
        return Record(movie_id=movie_id, source=source.name, status=status, url=url,
                      http_status=http_status, fetched_at=now_utc(), error=fetcher.redact(error), **kw)

    try:
        raw_url = source.resolve(movie_id, fetcher)
        url = fetcher.redact(raw_url)
        response = fetcher.get(raw_url, max_bytes=limits.max_bytes)
    except FetchError as exc:
        http_status = exc.http_status
        url = exc.url or url
        return record(exc.outcome, str(exc))
    http_status, url = response.status, response.url
    try:
        image = check_image(response.data, limits)
    except InvalidImage as exc:
        ctype = f" (Content-Type {response.content_type})" if response.content_type else ""
        return record("invalid", f"{exc}{ctype}", bytes=len(response.data))
    store.write_image(movie_id, image.data, image.ext)
    return record("ok", bytes=len(image.data), sha256=image.sha256)


def scrape_posters(store: PosterStore, source, movie_ids, *, workers: int = 8, rate: float | None = 20.0,
                   limit: int | None = None, retry_all: bool = False, config: FetchConfig = FetchConfig(),
                   limits: ImageLimits = ImageLimits(), progress: bool = True,
                   on_record=None, wait: bool = True, command: str = "scrape-posters",
                   notify=None) -> ScrapeSummary:
    """Fetch the posters of ``movie_ids`` from ``source`` into ``store``; see the module doc.

    ``on_record(record)`` is called in the main thread after each outcome is journaled.
    Returns a `ScrapeSummary` (``interrupted`` after Ctrl-C); raises `ScrapeError` when the
    whole run cannot go on (e.g. the API key is rejected), after saving what was done.
    The whole run holds the store's writer lock (``wait``/``command``/``notify`` as in
    `PosterStore.writer_lock`; `StoreBusy` when ``wait=False`` and another writer has it), so a
    second run waits, then fetches only what the first left.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with store.writer_lock(wait=wait, command=command, notify=notify):
        return _scrape(store, source, movie_ids, workers, rate, limit, retry_all, config, limits,
                       progress, on_record)


def _scrape(store, source, movie_ids, workers, rate, limit, retry_all, config, limits, progress,
            on_record) -> ScrapeSummary:
    todo, skipped = select_todo(store, movie_ids, retry_all)
    if limit is not None:
        todo = todo[:limit]
    summary = ScrapeSummary(todo=len(todo), skipped=skipped)
    if not todo:
        return summary
    previous = store.records()
    store.remove_temp_files()
    stop = threading.Event()
    limiter = RateLimiter(rate, stop=stop)
    fetcher = Fetcher(config, limiter, pool_size=workers, secrets=getattr(source, "secrets", ()))
    bar = _progress(len(todo), source.name, progress)
    pending: set = set()
    fatal: BaseException | None = None
    try:
        with store.journal() as journal, ThreadPoolExecutor(workers, thread_name_prefix="poster") as pool:
            queue = iter(todo)
            try:
                while True:
                    while len(pending) < workers * 2 and not stop.is_set():
                        movie_id = next(queue, None)
                        if movie_id is None:
                            break
                        pending.add(pool.submit(fetch_one, movie_id, source, fetcher, store, limits))
                    if not pending:
                        break
                    done, pending = wait_any(pending, timeout=TICK, return_when=FIRST_COMPLETED)
                    if not done:
                        bar.refresh()  # the elapsed time moves even while every worker waits
                    for fut in done:
                        _take(fut, journal, previous, store, summary, bar, on_record)
            except KeyboardInterrupt:
                summary.interrupted = True
                stop.set()
                _drain(pending, journal, previous, store, summary, bar)
            except ScrapeError as exc:
                fatal = exc
                stop.set()
                _drain(pending, journal, previous, store, summary, bar)
            except BaseException:
                stop.set()
                _drain(pending, journal, previous, store, summary, bar)
                raise
    finally:
        bar.close()
        fetcher.close()
    if fatal is not None:
        raise fatal
    return summary


def _take(fut, journal, previous, store, summary, bar, on_record) -> None:
    """Journal one finished future (the main thread only)."""
    try:
        rec = fut.result()
    except Cancelled:
        return
    old = previous.get(rec.movie_id)
    if rec.status != "ok" and old is not None and old.status == "ok" and store.path(rec.movie_id).exists():
        summary.counts["kept"] += 1
    else:
        journal.append(rec)
        summary.counts[rec.status] += 1
    bar.update(1)
    bar.set_postfix({k: summary.counts.get(k, 0) for k in ("ok", "missing", "invalid", "failed")},
                    refresh=False)
    if on_record is not None:
        on_record(rec)


def _drain(pending, journal, previous, store, summary, bar) -> None:
    """After stop: cancel what has not started, journal what finishes anyway."""
    for fut in pending:
        fut.cancel()
    for fut in pending:
        if fut.cancelled():
            continue
        try:
            fut.exception()  # waits; in-flight requests end within their timeouts
            _take(fut, journal, previous, store, summary, bar, None)
        except (Cancelled, ScrapeError, KeyboardInterrupt):
            continue
        except Exception as exc:  # pragma: no cover - fetch_one turns errors into records
            log.warning("a worker failed while stopping: %s", exc)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="poster", desc=f"posters ({desc})", disable=not enabled, leave=True)
