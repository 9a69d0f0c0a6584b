"""The on-disk poster store: ``<home>/posters/<dataset>/<movie_id>.jpg|png`` plus ``posters.csv``.

Crash safety:

- every image is written to a temporary file in the same folder, fsynced, then ``os.replace``d
  into ``<movie_id>.<ext>``; the name comes from the movie id, never from a server;
- outcomes are appended to ``posters.journal.csv`` one flushed line per record while a run
  goes; ``compact()`` folds the journal into ``posters.csv`` (temporary file + ``os.replace``)
  and only then deletes the journal. Reading replays ``posters.csv`` and then the journal, the
  last record of a movie winning, and drops a torn last line, so a crash or Ctrl-C at any
  moment leaves a consistent manifest.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

MANIFEST = "posters.csv"
JOURNAL = "posters.journal.csv"
COLUMNS = ["movie_id", "source", "url", "status", "http_status", "bytes", "sha256", "fetched_at", "error"]
STATUSES = ("ok", "missing", "invalid", "failed")
EXTENSIONS = ("jpg", "png")
TEMP_PREFIX = ".tmp-"


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
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{int(movie_id)}-", suffix=".part", dir=self.dir)
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
        """Delete temporary files left by a killed run; returns how many."""
        n = 0
        if self.dir.exists():
            for p in self.dir.glob(f"{TEMP_PREFIX}*"):
                p.unlink(missing_ok=True)
                n += 1
        return n

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
        records = self.records()
        self.dir.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for movie_id in sorted(records):
            writer.writerow(records[movie_id].row())
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}manifest-", suffix=".part", dir=self.dir)
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
    """Append-only, line-per-record log of outcomes; thread-safe; compacts on close."""

    def __init__(self, store: PosterStore):
        self.store = store
        self._lock = threading.Lock()
        self._fh = None

    def __enter__(self) -> "Journal":
        self.store.dir.mkdir(parents=True, exist_ok=True)
        self.store.compact()  # fold what a killed run left behind
        self._fh = open(self.store.journal_path, "a", encoding="utf-8", newline="")
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
        self.store.compact()

