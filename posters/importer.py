"""``import_posters``: the offline path, ``<movie_id>.jpg|jpeg|png`` files from a folder.

Each file is checked like a download (`check_image`), copied atomically into the store and
recorded with source ``import``. A file whose sha256 is already the ``ok`` poster is skipped,
so a second run does nothing; an invalid file never replaces an ``ok`` poster.

Only regular files directly inside DIR are read: a symlink (even to a good image), a device,
a FIFO or a folder named like a poster is refused without being opened, by name only (listed
in ``ImportSummary.refused``, never recorded in posters.csv). Files are opened with
``O_NOFOLLOW`` and checked again on the open descriptor, so a file swapped for a link in
between is refused too. Error texts describe a rejected file; they never quote its bytes.
The whole import holds the store's writer lock.
"""
from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from catalog import DatasetError

from .image import ImageLimits, InvalidImage, check_image
from .store import PosterStore, Record, now_utc

POSTER_NAME = re.compile(r"^(?P<id>\d+)\.(?P<ext>jpe?g|png)$", re.IGNORECASE)


@dataclass
class ImportSummary:
    counts: Counter = field(default_factory=Counter)   # ok, invalid, unchanged
    unknown: list[int] = field(default_factory=list)   # ids not in the dataset
    ignored: list[str] = field(default_factory=list)   # names not <movie_id>.jpg|jpeg|png
    refused: list[str] = field(default_factory=list)   # "NAME: why" for links and non-regular files

    def line(self) -> str:
        c = self.counts
        text = (f"imported {c.get('ok', 0)}, invalid {c.get('invalid', 0)}, "
                f"unchanged {c.get('unchanged', 0)}, kept {c.get('kept', 0)}")
        if self.unknown:
            first = ", ".join(str(m) for m in self.unknown[:5])
            text += f"; skipped {len(self.unknown)} unknown movie ids ({first}{', ...' if len(self.unknown) > 5 else ''})"
        if self.ignored:
            text += f"; ignored {len(self.ignored)} other files"
        if self.refused:
            first = "; ".join(self.refused[:3])
            text += f"; refused {len(self.refused)} ({first}{'; ...' if len(self.refused) > 3 else ''})"
        return text


def import_posters(store: PosterStore, folder: str | Path, known_ids=None,
                   limits: ImageLimits = ImageLimits(), progress: bool = True, *, wait: bool = True,
                   command: str = "import-posters", notify=None) -> ImportSummary:
    """Import every ``<movie_id>.jpg|jpeg|png`` in ``folder``; ``known_ids`` filters unknown ids."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (want one holding <movie_id>.jpg|png files)")
    folder = folder.resolve()
    known = None if known_ids is None else {int(m) for m in known_ids}
    summary = ImportSummary()
    files: dict[int, Path] = {}
    with os.scandir(folder) as it:
        listing = sorted(it, key=lambda d: d.name)
    for d in listing:
        m = POSTER_NAME.match(d.name)
        if not m:
            summary.ignored.append(d.name)
            continue
        why = _refusal(d)
        if why:
            summary.refused.append(f"{d.name}: {why}")
            continue
        movie_id = int(m.group("id"))
        if known is not None and movie_id not in known:
            summary.unknown.append(movie_id)
            continue
        if movie_id in files:
            summary.ignored.append(d.name)  # 12.jpg and 12.png: the first (sorted) wins
            continue
        files[movie_id] = folder / d.name
    summary.unknown.sort()
    from tqdm import tqdm

    with store.writer_lock(wait=wait, command=command, notify=notify):
        records = store.records()
        store.remove_temp_files()
        with store.journal() as journal, tqdm(total=len(files), unit="poster", desc="import",
                                              disable=not progress) as bar:
            for movie_id, path in sorted(files.items()):
                try:
                    rec = _import_one(store, movie_id, path, records.get(movie_id), limits)
                except _Refused as exc:
                    summary.refused.append(f"{path.name}: {exc}")
                    bar.update(1)
                    continue
                if rec is None:
                    summary.counts["unchanged"] += 1
                elif rec.status != "ok" and _is_ok(store, records.get(movie_id)):
                    summary.counts["kept"] += 1
                else:
                    journal.append(rec)
                    summary.counts[rec.status] += 1
                bar.update(1)
                bar.set_postfix({k: summary.counts.get(k, 0) for k in ("ok", "invalid", "unchanged")},
                                refresh=False)
    return summary


class _Refused(Exception):
    """A file that is not a regular file inside DIR (found so only once opened)."""


def _refusal(entry: os.DirEntry) -> str | None:
    """Why a listed name is refused without opening it, or None."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return f"cannot stat ({exc.strerror or type(exc).__name__})"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link (only regular files are imported)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _read_regular(path: Path, max_bytes: int) -> tuple[int, bytes | None]:
    """(size, bytes) of a regular file, opened without following links; bytes None when too big."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if os.path.islink(path):
            raise _Refused("a symbolic link (only regular files are imported)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Refused("not a regular file")
        if st.st_size > max_bytes:
            return st.st_size, None
        data = fh.read(max_bytes + 1)
    return len(data), (data if len(data) <= max_bytes else None)


def _is_ok(store: PosterStore, rec: Record | None) -> bool:
    return rec is not None and rec.status == "ok" and store.path(rec.movie_id).exists()


def _import_one(store, movie_id: int, path: Path, old: Record | None, limits: ImageLimits) -> Record | None:
    def record(status: str, **kw) -> Record:
        return Record(movie_id=movie_id, source="import", status=status, url=str(path),
                      fetched_at=now_utc(), **kw)

    try:
        size, data = _read_regular(path, limits.max_bytes)
    except _Refused:
        raise
    except OSError as exc:
        return record("failed", error=f"cannot read: {exc.strerror or type(exc).__name__}")
    if data is None:
        return record("invalid", bytes=size, error=f"file is {size} bytes, over the limit of {limits.max_bytes}")
    try:
        image = check_image(data, limits)
    except InvalidImage as exc:
        return record("invalid", bytes=len(data), error=str(exc))
    if _is_ok(store, old) and old.sha256 == image.sha256:
        return None
    store.write_image(movie_id, image.data, image.ext)
    return record("ok", bytes=len(image.data), sha256=image.sha256)
