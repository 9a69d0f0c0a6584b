"""Fetch a MovieLens release (or import a local copy) into ``<home>/data/<dataset>/``.

Nothing lands half-written: the zip is downloaded to a temporary file and checked against its
known checksum, extracted into a hidden staging folder, parsed in full (so a malformed file is
caught here, with its line), and only then renamed into place.
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

import requests

from .datasets import DatasetSpec, get_spec
from .errors import DatasetError
from .loaders import Dataset, load_dir, load_movies_dir

META = ".posterec-dataset.json"
CHUNK = 1 << 20


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


def _download(url: str, dest: Path, checksum: tuple[str, str], timeout: float) -> None:
    algorithm, expected = checksum
    h = hashlib.new(algorithm)
    try:
        with requests.get(url, stream=True, timeout=(10, timeout)) as resp:
            if resp.status_code != 200:
                raise DatasetError(f"{url}: HTTP {resp.status_code}; check the dataset name or --base-url")
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(dest, "wb") as fh, _progress(total, dest.name.split(".part")[0]) as bar:
                for block in resp.iter_content(CHUNK):
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
    """Extract the dataset's files from ``archive`` into ``staging`` (flat)."""
    wanted = set(spec.required) | set(spec.optional)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DatasetError(f"{archive.name}: corrupted zip (bad CRC in {bad})")
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
            for fname, info in members.items():
                with zf.open(info) as src, open(staging / fname, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{archive.name}: corrupted zip ({exc})") from None


def _copy_dir(source: Path, staging: Path, spec: DatasetSpec) -> None:
    missing = [f for f in spec.required if not (source / f).exists()]
    if missing:
        raise DatasetError(
            f"{source / missing[0]}: missing; a {spec.name} folder needs {', '.join(spec.required)}"
        )
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
    if is_present(home, name) and not force:
        return FetchResult(name, target, False, "already present")
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = target.with_name(f".staging-{name}-{token}")
    part = target.with_name(f".download-{name}-{token}.zip.part")
    staging.mkdir()
    try:
        if source is None:
            url = spec.url(base_url)
            _download(url, part, checksum or spec.checksum, timeout)
            _extract(part, staging, spec)
            origin = url
        else:
            src = Path(source)
            if not src.exists():
                raise DatasetError(f"{src}: no such file or folder")
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
        raise
    finally:
        part.unlink(missing_ok=True)
    return FetchResult(name, target, True, origin)


def load_dataset(home: str | os.PathLike, name: str) -> Dataset:
    """Load a dataset previously fetched into the home."""
    spec = get_spec(name)
    target = data_dir(home, name)
    if not target.exists():
        raise DatasetError(
            f"{target}: missing; fetch it with `posterec --home {home} download --dataset {name}` "
            f"(or add --source DIR_OR_ZIP for a local copy)"
        )
    return load_dir(target, spec.format, name)


def load_movies(home: str | os.PathLike, name: str):
    """The movie list of a dataset previously fetched into the home (no ratings: fast)."""
    spec = get_spec(name)
    target = data_dir(home, name)
    if not target.exists():
        raise DatasetError(
            f"{target}: missing; fetch it with `posterec --home {home} download --dataset {name}`"
        )
    return load_movies_dir(target, spec.format, name)
