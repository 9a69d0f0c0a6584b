"""The on-disk poster store: ``<home>/posters/<dataset>/<movie_id>.jpg|png`` plus ``posters.csv``.

Crash safety:

- every image is written to a temporary file in the same folder, fsynced, then ``os.replace``d
  into ``<movie_id>.<ext>``; the name comes from the movie id, never from a server;
- outcomes are appended to ``posters.journal.csv`` one flushed line per record while a run
  goes; ``compact()`` folds the journal into ``posters.csv`` (temporary file + ``os.replace``)
  and only then deletes the journal. Reading replays ``posters.csv`` and then the journal, the
  last record of a movie winning, and drops a torn last line, so a crash or Ctrl-C at any
  moment leaves a consistent manifest.

Concurrency: every writer (``scrape-posters``, ``import-posters``, ``add-movie``) holds the
store's exclusive lock, ``with store.writer_lock(wait=True, command=...)``: an ``flock`` on
``.writer.lock`` in the store's folder, released by the kernel when the holder dies. The lock
file names the holder (pid, command, since when), so a second writer can say whom it waits for
(or, with ``wait=False``, raise `StoreBusy` naming it). The journal, compaction and the clean-up
of temporary files all take the lock (re-entrant within one thread), and temporary files carry
their writer's pid: only those of dead processes are ever removed.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from catalog import PosterecError

log = logging.getLogger(__name__)

MANIFEST = "posters.csv"
JOURNAL = "posters.journal.csv"
COLUMNS = ["movie_id", "source", "url", "status", "http_status", "bytes", "sha256", "fetched_at", "error"]
STATUSES = ("ok", "missing", "invalid", "failed")
EXTENSIONS = ("jpg", "png")
TEMP_PREFIX = ".tmp-"
LOCK = ".writer.lock"
_TEMP_PID = re.compile(r"^\.tmp-p(\d{1,10})-")
LEGACY_TEMP_AGE = 3600.0  # seconds: a temp file without a pid is stale after this


class StoreBusy(PosterecError):
    """Another process is writing to the poster store (and the caller chose not to wait)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _temp_pid(name: str) -> int | None:
    """The writer's pid in ``.tmp-p<pid>-...``; None for names without one (older versions)."""
    m = _TEMP_PID.match(name)
    return int(m.group(1)) if m else None


class _Held:
    """This process's hold on one store's lock: a thread re-entrant lock plus the flock'd file."""

    def __init__(self):
        self.rlock = threading.RLock()
        self.fh = None
        self.depth = 0


_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


def _default_command() -> str:
    argv = sys.argv or ["python"]
    words = [os.path.basename(argv[0])] + [a for a in argv[1:] if not a.startswith("-")][:1]
    return " ".join(words)[:120]


class PosterEntry(NamedTuple):
    """A poster on disk whose manifest status is ``ok``."""

    movie_id: int
    path: Path
    sha256: str


@dataclass(frozen=True)
class Record:
    """One row of ``posters.csv``: the latest outcome for one movie."""

    movie_id: int
    source: str
    status: str
    url: str = ""
    http_status: int | None = None
    bytes: int | None = None
    sha256: str = ""
    fetched_at: str = ""
    error: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"poster status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def row(self) -> list[str]:
        values = asdict(self)
        return [_one_line("" if values[c] is None else str(values[c])) for c in COLUMNS]

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "Record":
        def opt_int(text: str) -> int | None:
            return int(text) if text not in ("", None) else None

        return cls(movie_id=int(row["movie_id"]), source=row["source"], status=row["status"],
                   url=row.get("url", ""), http_status=opt_int(row.get("http_status", "")),
                   bytes=opt_int(row.get("bytes", "")), sha256=row.get("sha256", ""),
                   fetched_at=row.get("fetched_at", ""), error=row.get("error", ""))


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: str) -> str:
    """Journal lines must be single physical lines so a torn one can be recognised."""
    return " ".join(text.split()) if ("\n" in text or "\r" in text) else text


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PosterStore:
    """Posters of one dataset: ``PosterStore(home, dataset)``."""

    def __init__(self, home: str | os.PathLike, dataset: str):
        self.home = Path(home)
        self.dataset = dataset
        self.dir = self.home / "posters" / dataset
        self.manifest_path = self.dir / MANIFEST
        self.journal_path = self.dir / JOURNAL

    def __repr__(self) -> str:
        return f"PosterStore({str(self.home)!r}, {self.dataset!r})"

    # -- images ------------------------------------------------------------------------------
    def path(self, movie_id: int, ext: str | None = None) -> Path:
        """Where the poster of ``movie_id`` lives: the existing file, else ``<movie_id>.jpg``."""
        movie_id = int(movie_id)
        if ext is not None:
            if ext not in EXTENSIONS:
                raise ValueError(f"poster extension must be one of {', '.join(EXTENSIONS)}, got {ext!r}")
            return self.dir / f"{movie_id}.{ext}"
        for candidate in EXTENSIONS:
            p = self.dir / f"{movie_id}.{candidate}"
            if p.exists():
                return p
        return self.dir / f"{movie_id}.jpg"

    def write_image(self, movie_id: int, data: bytes, ext: str) -> Path:
        """Write ``data`` as ``<movie_id>.<ext>`` atomically; drop a copy in the other format."""
        target = self.path(movie_id, ext)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}p{os.getpid()}-{int(movie_id)}-", suffix=".part",
                                   dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for other in EXTENSIONS:
            if other != ext:
                self.path(movie_id, other).unlink(missing_ok=True)
        return target

    def remove_temp_files(self) -> int:
        """Delete temporary files left by killed writers (under the lock); returns how many.

        A file whose writer is alive is never touched; one without a pid in its name (an older
        version's) only once it is an hour old."""
        n = 0
        if not self.dir.exists():
            return n
        with self.writer_lock(wait=True):
            for p in self.dir.glob(f"{TEMP_PREFIX}*"):
                pid = _temp_pid(p.name)
                if pid is not None:
                    stale = pid != os.getpid() and not _pid_alive(pid)
                else:
                    try:
                        stale = time.time() - p.stat().st_mtime > LEGACY_TEMP_AGE
                    except FileNotFoundError:
                        continue
                if stale:
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    # -- the writers' lock -------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.dir / LOCK

    def lock_holder(self) -> dict | None:
        """What the lock file says about its holder: pid, command, since; None if unreadable."""
        try:
            text = self.lock_path.read_text(encoding="utf-8", errors="replace").strip()
            holder = json.loads(text) if text else None
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _holder_text(self) -> str:
        h = self.lock_holder()
        if not h:
            return "another process (it has not said which yet)"
        return f"pid {h.get('pid', '?')} ({h.get('command') or 'unknown command'}) since {h.get('since', '?')}"

    @contextmanager
    def writer_lock(self, wait: bool = True, command: str | None = None,
                    notify: Callable[[str], None] | None = None) -> Iterator["PosterStore"]:
        """Hold the store's exclusive writer lock for the block.

        ``wait=False`` raises `StoreBusy` naming the holder when another writer has it; with
        ``wait=True`` one line naming the holder goes to ``notify`` (default: a log warning),
        then the call blocks until the lock is free. Re-entrant within a thread."""
        self.dir.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.lock_path)
        with _HELD_LOCK:
            held = _HELD.setdefault(key, _Held())
        say = notify or (lambda line: log.warning("%s", line))
        if not held.rlock.acquire(blocking=False):
            if not wait:
                raise StoreBusy(self._busy_line(no_wait=True))
            say(self._busy_line(no_wait=False))
            held.rlock.acquire()
        try:
            if held.depth == 0:
                fh = open(self.lock_path, "a+", encoding="utf-8")
                try:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        if not wait:
                            raise StoreBusy(self._busy_line(no_wait=True)) from None
                        say(self._busy_line(no_wait=False))
                        fcntl.flock(fh, fcntl.LOCK_EX)
                    fh.seek(0)
                    fh.truncate()
                    fh.write(json.dumps({"pid": os.getpid(), "command": command or _default_command(),
                                         "since": now_utc()}) + "\n")
                    fh.flush()
                except BaseException:
                    fh.close()
                    raise
                held.fh = fh
            held.depth += 1
            try:
                yield self
            finally:
                held.depth -= 1
                if held.depth == 0:
                    fh, held.fh = held.fh, None
                    try:
                        fh.seek(0)
                        fh.truncate()
                        fh.flush()
                    except OSError:
                        pass
                    finally:
                        fcntl.flock(fh, fcntl.LOCK_UN)
                        fh.close()
        finally:
            held.rlock.release()

    def _busy_line(self, no_wait: bool) -> str:
        who = self._holder_text()
        if no_wait:
            return f"{self.dir}: another writer holds the poster store: {who}; wait for it, or run again without --no-wait"
        return f"{self.dir}: waiting for another writer to finish: {who}"

    # -- manifest ----------------------------------------------------------------------------
    def records(self) -> dict[int, Record]:
        """The latest record of every movie: ``posters.csv`` then the journal replayed on top."""
        records: dict[int, Record] = {}
        if self.manifest_path.exists():
            with open(self.manifest_path, newline="", encoding="utf-8") as fh:
                for i, row in enumerate(csv.DictReader(fh), start=2):
                    try:
                        rec = Record.from_row(row)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise ValueError(f"{self.manifest_path} line {i}: bad record ({exc}); "
                                         f"fix or delete that line") from None
                    records[rec.movie_id] = rec
        for rec in self._journal_records():
            records[rec.movie_id] = rec
        return records

    def _journal_records(self) -> list[Record]:
        if not self.journal_path.exists():
            return []
        text = self.journal_path.read_bytes().decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] != "":
            log.warning("%s: dropping a torn last line left by an interrupted run", self.journal_path.name)
        out = []
        for line in lines[:-1]:  # the part after the last newline is torn (or empty)
            if not line:
                continue
            try:
                (row,) = list(csv.reader([line]))
                rec = Record.from_row(dict(zip(COLUMNS, row)))
            except (ValueError, KeyError, TypeError):
                log.warning("%s: skipping an unreadable line", self.journal_path.name)
                continue
            out.append(rec)
        return out

    def entries(self) -> list[PosterEntry]:
        """Every ``ok`` poster that is on disk, by movie id."""
        out = []
        for movie_id, rec in sorted(self.records().items()):
            if rec.status != "ok":
                continue
            p = self.path(movie_id)
            if p.exists():
                out.append(PosterEntry(movie_id, p, rec.sha256))
        return out

    def journal(self) -> "Journal":
        """``with store.journal() as j: j.append(record)``; compacts into posters.csv on exit."""
        return Journal(self)

    def compact(self) -> None:
        """Fold the journal into ``posters.csv`` atomically, then delete the journal."""
        if not self.journal_path.exists():
            return
        with self.writer_lock(wait=True):
            self._compact()

    def _compact(self) -> None:
        if not self.journal_path.exists():
            return
        records = self.records()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for movie_id in sorted(records):
            writer.writerow(records[movie_id].row())
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}p{os.getpid()}-manifest-", suffix=".part", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(buf.getvalue())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.manifest_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)
        self.journal_path.unlink(missing_ok=True)


class Journal:
    """Append-only, line-per-record log of outcomes; thread-safe; compacts on close.

    Holds the store's writer lock from enter to exit (re-entrant: a caller that already holds
    it, as the scraper does, keeps it)."""

    def __init__(self, store: PosterStore):
        self.store = store
        self._lock = threading.Lock()
        self._fh = None
        self._writer = None

    def __enter__(self) -> "Journal":
        self._writer = self.store.writer_lock(wait=True)
        self._writer.__enter__()
        try:
            self.store.compact()  # fold what a killed run left behind
            self._fh = open(self.store.journal_path, "a", encoding="utf-8", newline="")
        except BaseException:
            self._writer.__exit__(*sys.exc_info())
            raise
        return self

    def append(self, record: Record) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(record.row())
        with self._lock:
            self._fh.write(buf.getvalue())
            self._fh.flush()

    def __exit__(self, *exc) -> None:
        with self._lock:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            finally:
                self._fh.close()
        try:
            self.store.compact()
        finally:
            self._writer.__exit__(*exc)

