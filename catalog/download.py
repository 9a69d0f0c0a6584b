"""Fetch a MovieLens release (or import a local copy) into ``<home>/data/<dataset>/``.

Nothing lands half-written: the zip is downloaded to a temporary file and checked against its
known checksum, extracted into a hidden staging folder, parsed in full (so a malformed file is
caught here, with its line), and only then renamed into place. A failure leaves nothing under
the home, not even an empty ``data/`` folder.

A zip is never trusted to be what its name says: before a byte is extracted, each member's
declared size and their total must fit the release's known size (``DatasetSpec.max_bytes``),
large members must not compress better than ``MAX_RATIO`` (text compresses 3-5x, zeros
1000x), and the disk must have room; extraction then streams with a hard cap on the bytes
written, whatever the headers claimed.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .datasets import DatasetSpec, get_spec
from .errors import DatasetError

if TYPE_CHECKING:  # pandas is imported only where a dataset is parsed
    from .loaders import Dataset

META = ".posterec-dataset.json"
CHUNK = 1 << 20
MAX_RATIO = 50            # uncompressed / compressed, checked on members over RATIO_FLOOR bytes
RATIO_FLOOR = 1 << 20
DISK_MARGIN = 64 << 20    # free space to leave on the home's disk after extracting


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    fetched: bool          # False when it was already there
    source: str


def data_dir(home: str | os.PathLike, name: str) -> Path:
    return Path(home) / "data" / name


def is_present(home, name: str) -> bool:
    spec = get_spec(name)
    target = data_dir(home, name)
    return (target / META).exists() and all((target / f).exists() for f in spec.required)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def dataset_checksum(home, name: str) -> str | None:
    """The sha256 of the dataset's files, recorded at import time."""
    meta = data_dir(home, name) / META
    if not meta.exists():
        return None
    return json.loads(meta.read_text()).get("sha256")


def _progress(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _download(url: str, dest: Path, checksum: tuple[str, str], timeout: float, max_bytes: int) -> None:
    algorithm, expected = checksum
    import requests  # here, not at import: a query command never downloads

    h = hashlib.new(algorithm)
    n = 0
    try:
        with requests.get(url, stream=True, timeout=(10, timeout)) as resp:
            if resp.status_code != 200:
                raise DatasetError(f"{url}: HTTP {resp.status_code}; check the dataset name or --base-url")
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(dest, "wb") as fh, _progress(total, dest.name.split(".part")[0]) as bar:
                for block in resp.iter_content(CHUNK):
                    n += len(block)
                    if n > max_bytes:
                        raise DatasetError(f"{url}: the download passed {max_bytes >> 20} MiB, more than the "
                                           f"whole release; refusing it")
                    fh.write(block)
                    h.update(block)
                    bar.update(len(block))
    except requests.RequestException as exc:
        raise DatasetError(f"{url}: download failed ({type(exc).__name__}: {exc}); try again, or use --source") from None
    actual = h.hexdigest()
    if actual != expected.lower():
        raise DatasetError(
            f"{url}: checksum mismatch, expected {algorithm} {expected}, got {actual}; "
            "the download is corrupt or the release changed (override with --checksum ALGO:HEX)"
        )


def _extract(archive: Path, staging: Path, spec: DatasetSpec) -> None:
    """Extract the dataset's files from ``archive`` into ``staging`` (flat), bombs refused."""
    wanted = set(spec.required) | set(spec.optional)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for info in zf.infolist():
                p = PurePosixPath(info.filename)
                if info.is_dir() or p.is_absolute() or ".." in p.parts:
                    continue
                if p.name in wanted and p.name not in members:
                    members[p.name] = info
            missing = [f for f in spec.required if f not in members]
            if missing:
                raise DatasetError(f"{archive.name}: does not contain {', '.join(missing)}")
            _check_sizes(archive, members, spec, staging)
            budget = spec.max_bytes
            for fname, info in members.items():
                with zf.open(info) as src, open(staging / fname, "wb") as dst:
                    budget -= _copy_capped(src, dst, min(budget, info.file_size), archive, fname)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise DatasetError(f"{archive.name}: corrupted zip ({exc})") from None


def _check_sizes(archive: Path, members: dict, spec: DatasetSpec, staging: Path) -> None:
    """Refuse, before extracting anything, what cannot be this release."""
    limit = spec.max_bytes
    total = 0
    for fname, info in members.items():
        size = info.file_size
        if size > limit:
            raise DatasetError(f"{archive.name}: {fname} would unpack to {size:,} bytes, more than the whole "
                               f"{spec.name} release ({limit >> 20} MiB); refusing it (not a {spec.name} zip?)")
        if size > RATIO_FLOOR and size > MAX_RATIO * max(info.compress_size, 1):
            raise DatasetError(f"{archive.name}: {fname} is compressed {size // max(info.compress_size, 1):,}:1 "
                               f"(real data compresses under {MAX_RATIO}:1); refusing a likely zip bomb")
        total += size
    if total > limit:
        raise DatasetError(f"{archive.name}: its {spec.name} files would unpack to {total:,} bytes, more than "
                           f"the release's {limit >> 20} MiB; refusing it")
    free = shutil.disk_usage(staging).free
    if total + DISK_MARGIN > free:
        raise DatasetError(f"{archive.name}: needs {total >> 20} MiB and {staging.parent} has {free >> 20} MiB "
                           f"free; free some space first")


def _copy_capped(src, dst, cap: int, archive: Path, fname: str) -> int:
    """Copy at most ``cap`` bytes; more (a header that lied) is a refusal."""
    n = 0
    while True:
        block = src.read(CHUNK)
        if not block:
            return n
        n += len(block)
        if n > cap:
            raise DatasetError(f"{archive.name}: {fname} unpacks to more than the {cap:,} bytes its header "
                               f"declares (or the release's size); refusing it")
        dst.write(block)


def _copy_dir(source: Path, staging: Path, spec: DatasetSpec) -> None:
    missing = [f for f in spec.required if not (source / f).exists()]
    if missing:
        raise DatasetError(
            f"{source / missing[0]}: missing; a {spec.name} folder needs {', '.join(spec.required)}"
        )
    present = [f for f in spec.required + spec.optional if (source / f).exists()]
    total = sum((source / f).stat().st_size for f in present)
    if total > spec.max_bytes:
        raise DatasetError(f"{source}: its {spec.name} files hold {total:,} bytes, more than the release's "
                           f"{spec.max_bytes >> 20} MiB; is this the right folder?")
    free = shutil.disk_usage(staging).free
    if total + DISK_MARGIN > free:
        raise DatasetError(f"{source}: needs {total >> 20} MiB and {staging.parent} has {free >> 20} MiB free; "
                           f"free some space first")
    for fname in spec.required + spec.optional:
        if (source / fname).exists():
            shutil.copyfile(source / fname, staging / fname)


def _install(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{secrets.token_hex(3)}")
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _made_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; the ones created, deepest first."""
    made = []
    p = path
    while not p.exists():
        made.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return made


def fetch_dataset(
    home: str | os.PathLike,
    name: str,
    *,
    source: str | os.PathLike | None = None,
    force: bool = False,
    base_url: str | None = None,
    checksum: tuple[str, str] | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download ``name`` (or import it from ``source``, a folder or zip) into the home."""
    spec = get_spec(name)
    target = data_dir(home, name)
    src = None if source is None else Path(source)
    if src is not None and not src.exists():
        raise DatasetError(f"{src}: no such file or folder (--source wants a {name} folder or zip)")
    if is_present(home, name) and not force:
        return FetchResult(name, target, False, "already present")
    made = _made_dirs(target.parent)
    token = secrets.token_hex(4)
    staging = target.with_name(f".staging-{name}-{token}")
    part = target.with_name(f".download-{name}-{token}.zip.part")
    try:
        staging.mkdir()
        if src is None:
            url = spec.url(base_url)
            _download(url, part, checksum or spec.checksum, timeout, spec.max_bytes)
            _extract(part, staging, spec)
            origin = url
        else:
            if src.is_dir():
                _copy_dir(src, staging, spec)
            else:
                if checksum is not None:
                    actual = file_digest(src, checksum[0])
                    if actual != checksum[1].lower():
                        raise DatasetError(f"{src}: checksum mismatch, expected {checksum[0]} {checksum[1]}, got {actual}")
                _extract(src, staging, spec)
            origin = str(src.resolve())
        # Parse everything now: a malformed file fails here, before anything is installed.
        from .loaders import load_dir

        load_dir(staging, spec.format, name)
        h = hashlib.sha256()
        for fname in sorted(spec.required):
            h.update(fname.encode())
            h.update(bytes.fromhex(file_digest(staging / fname)))
        (staging / META).write_text(json.dumps({
            "dataset": name, "source": origin, "sha256": h.hexdigest(),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }, indent=2) + "\n")
        _install(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        part.unlink(missing_ok=True)
        for d in made:  # what this call created, if still empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    finally:
        part.unlink(missing_ok=True)
    return FetchResult(name, target, True, origin)


@dataclass(frozen=True)
class Dependents:
    """Model versions made from one copy of a dataset."""

    versions: tuple[str, ...]
    current: str | None        # CURRENT's name when it is one of them

    def warning(self, name: str) -> str | None:
        if not self.versions:
            return None
        n = len(self.versions)
        cur = f", including CURRENT ({self.current})," if self.current else ""
        return (f"warning: {n} model version{'s' if n != 1 else ''}{cur} {'were' if n != 1 else 'was'} made "
                f"from the {name} copy "
                f"just replaced; retrain (`posterec train --dataset {name}`), or `download` the old copy back")


def _manifest_checksum(manifest: dict) -> tuple[str | None, str | None]:
    """(dataset, dataset_checksum) of a model manifest: top level, else inside a stage's entry."""
    if manifest.get("dataset_checksum"):
        return manifest.get("dataset"), manifest["dataset_checksum"]
    for value in manifest.values():
        if isinstance(value, dict) and value.get("dataset_checksum"):
            return value.get("dataset") or manifest.get("dataset"), value["dataset_checksum"]
    return manifest.get("dataset"), None


def dependent_versions(home: str | os.PathLike, name: str, checksum: str | None) -> Dependents:
    """The model versions under ``<home>/models`` made from ``name`` with dataset ``checksum``."""
    if checksum is None:
        return Dependents((), None)
    from .store import ModelStore
    from .version import MANIFEST

    store = ModelStore(home)
    found = []
    for version in store.versions():
        try:
            manifest = json.loads((store.root / version / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(manifest, dict):
            continue
        ds, digest = _manifest_checksum(manifest)
        if ds == name and digest == checksum:
            found.append(version)
    current = store.current_name()
    return Dependents(tuple(found), current if current in found else None)


def load_dataset(home: str | os.PathLike, name: str) -> Dataset:
    """Load a dataset previously fetched into the home (a `catalog.loaders.Dataset`: pandas frames)."""
    from .loaders import load_dir

    spec = get_spec(name)
    target = data_dir(home, name)
    if not target.exists():
        raise DatasetError(
            f"{target}: missing; fetch it with `posterec --home {home} download --dataset {name}` "
            f"(or add --source DIR_OR_ZIP for a local copy)"
        )
    return load_dir(target, spec.format, name)


def _movies_dir(home: str | os.PathLike, name: str) -> Path:
    target = data_dir(home, name)
    if not target.exists():
        raise DatasetError(
            f"{target}: missing; fetch it with `posterec --home {home} download --dataset {name}`"
        )
    return target


def load_movies(home: str | os.PathLike, name: str):
    """The movies frame of a dataset previously fetched into the home (no ratings: fast)."""
    from .loaders import load_movies_dir

    return load_movies_dir(_movies_dir(home, name), get_spec(name).format, name)


def read_movie_list(home: str | os.PathLike, name: str):
    """The movie list of a dataset previously fetched into the home as a `catalog.movies.MovieList`
    (ids, titles, years, genres): the standard library only, no pandas, for query commands."""
    from .movies import read_movies

    return read_movies(_movies_dir(home, name), get_spec(name).format, name)
