"""``import_posters``: the offline path, ``<movie_id>.jpg|jpeg|png`` files from a folder.

Each file is checked like a download (`check_image`), copied atomically into the store and
recorded with source ``import``. A file whose sha256 is already the ``ok`` poster is skipped,
so a second run does nothing; an invalid file never replaces an ``ok`` poster.
"""
from __future__ import annotations

import re
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

    def line(self) -> str:
        c = self.counts
        text = (f"imported {c.get('ok', 0)}, invalid {c.get('invalid', 0)}, "
                f"unchanged {c.get('unchanged', 0)}, kept {c.get('kept', 0)}")
        if self.unknown:
            first = ", ".join(str(m) for m in self.unknown[:5])
            text += f"; skipped {len(self.unknown)} unknown movie ids ({first}{', ...' if len(self.unknown) > 5 else ''})"
        if self.ignored:
            text += f"; ignored {len(self.ignored)} other files"
        return text


def import_posters(store: PosterStore, folder: str | Path, known_ids=None,
                   limits: ImageLimits = ImageLimits(), progress: bool = True) -> ImportSummary:
    """Import every ``<movie_id>.jpg|jpeg|png`` in ``folder``; ``known_ids`` filters unknown ids."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (want one holding <movie_id>.jpg|png files)")
    known = None if known_ids is None else {int(m) for m in known_ids}
    summary = ImportSummary()
    files: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        m = POSTER_NAME.match(p.name)
        if not m or not p.is_file():
            summary.ignored.append(p.name)
            continue
        movie_id = int(m.group("id"))
        if known is not None and movie_id not in known:
            summary.unknown.append(movie_id)
            continue
        if movie_id in files:
            summary.ignored.append(p.name)  # 12.jpg and 12.png: the first (sorted) wins
            continue
        files[movie_id] = p
    summary.unknown.sort()
    records = store.records()
    store.remove_temp_files()
    from tqdm import tqdm

    with store.journal() as journal, tqdm(total=len(files), unit="poster", desc="import",
                                          disable=not progress) as bar:
        for movie_id, path in sorted(files.items()):
            rec = _import_one(store, movie_id, path, records.get(movie_id), limits)
            if rec is None:
                summary.counts["unchanged"] += 1
            elif rec.status != "ok" and _is_ok(store, records.get(movie_id)):
                summary.counts["kept"] += 1
            else:
                journal.append(rec)
                summary.counts[rec.status] += 1
            bar.update(1)
            bar.set_postfix({k: summary.counts.get(k, 0) for k in ("ok", "invalid", "unchanged")}, refresh=False)
    return summary


def _is_ok(store: PosterStore, rec: Record | None) -> bool:
    return rec is not None and rec.status == "ok" and store.path(rec.movie_id).exists()


def _import_one(store, movie_id: int, path: Path, old: Record | None, limits: ImageLimits) -> Record | None:
    def record(status: str, **kw) -> Record:
        return Record(movie_id=movie_id, source="import", status=status, url=str(path.resolve()),
                      fetched_at=now_utc(), **kw)

    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return record("invalid", bytes=size, error=f"file is {size} bytes, over the limit of {limits.max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        return record("failed", error=f"cannot read: {exc.strerror or exc}")
    try:
        image = check_image(data, limits)
    except InvalidImage as exc:
        return record("invalid", bytes=len(data), error=str(exc))
    if _is_ok(store, old) and old.sha256 == image.sha256:
        return None
    store.write_image(movie_id, image.data, image.ext)
    return record("ok", bytes=len(image.data), sha256=image.sha256)
