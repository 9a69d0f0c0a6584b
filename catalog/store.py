"""Versioned model directories: ``<home>/models/<version>/`` plus ``CURRENT``.

A version, once written, never changes. A stage that adds an artifact writes a *new* version:
it starts from the current one (files are hard-linked, so this is cheap), adds or replaces its
own files in a hidden staging folder, and only then renames the folder into place and points
``CURRENT`` at it with ``os.replace``. A stage that fails midway leaves the served version as
it was and no half-written version behind.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ArtifactError

from .version import FORMAT, MANIFEST, ModelVersion, VersionWriter, read_manifest

LOCK = ".lock"


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("posterec")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed), held for the block."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ModelStore:
    """The model versions under ``<home>/models``."""

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home)
        self.root = self.home / "models"

    # -- reading -------------------------------------------------------------------------
    def current_name(self) -> str | None:
        pointer = self.root / "CURRENT"
        try:
            name = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def current(self) -> Path | None:
        name = self.current_name()
        return None if name is None else self.root / name

    def require_current(self) -> Path:
        return self.open_current().path

    def open_current(self) -> ModelVersion:
        """The CURRENT version, its manifest checked; `ArtifactError` when there is none."""
        path = self.current()
        if path is None:
            raise ArtifactError(
                f"no model under {self.root}: run `posterec --home {self.home} train --dataset D` first"
            )
        if not path.is_dir():
            raise ArtifactError(f"{self.root / 'CURRENT'} names {path.name}, which is not there; "
                                f"retrain with `posterec train`")
        return ModelVersion(path, read_manifest(path), self.home)

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    @staticmethod
    def read_manifest(version: Path) -> dict:
        return read_manifest(Path(version))

    # -- writing -------------------------------------------------------------------------
    def remove_stale_staging(self) -> list[str]:
        """Remove staging folders left by killed processes (their owner's pid is gone). Under the
        store's lock, so a live writer's folder is never touched."""
        removed = []
        if not self.root.exists():
            return removed
        with _locked(self.root / LOCK):
            for p in self.root.glob(".staging-*"):
                try:
                    pid = int(p.name.rsplit("-pid", 1)[1])
                except (IndexError, ValueError):
                    pid = None
                if pid is None or (pid != os.getpid() and not _pid_alive(pid)):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p.name)
        return removed

    @contextmanager
    def new_version(self, base: Path | None | str = "current", activate: bool = True) -> Iterator[VersionWriter]:
        """Write a new version, starting from ``base`` (default: the current one, if any).

        The base's listed files are hard-linked in (cheap) with its manifest; the block writes or
        drops artifacts through the `VersionWriter`. On a clean exit the version is renamed into
        place and, with ``activate``, becomes ``CURRENT``. On an exception the staging folder is
        removed and nothing else changes; one left by a killed process is removed by the next run.
        """
        self.remove_stale_staging()
        if base == "current":
            base = self.current()
        self.root.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        staging = self.root / f".staging-{name}-pid{os.getpid()}"
        staging.mkdir()
        try:
            manifest: dict = {"files": {}, "stages": {}}
            if base is not None:
                parent = ModelVersion(Path(base), read_manifest(Path(base)), self.home)
                manifest = json.loads(json.dumps(parent.manifest))
                for file in parent.files:
                    src = parent.path / file
                    try:
                        os.link(src, staging / file)
                    except FileNotFoundError:
                        raise ArtifactError(f"{src}: missing from model version {parent.name}; "
                                            f"rebuild it from scratch") from None
                    except OSError:
                        shutil.copy2(src, staging / file)
            manifest["parent"] = None if base is None else Path(base).name
            writer = VersionWriter(staging, manifest)
            yield writer
            writer.manifest.update(
                format=FORMAT, version=name, code_version=code_version(),
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            write_json_atomic(staging / MANIFEST, writer.manifest)
            os.rename(staging, self.root / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if activate:
            self.activate(name)

    def activate(self, name: str) -> None:
        if not (self.root / name / MANIFEST).exists():
            raise ArtifactError(f"{self.root / name}: not a complete model version")
        tmp = self.root / f".CURRENT.{secrets.token_hex(4)}.tmp"
        tmp.write_text(name + "\n")
        os.replace(tmp, self.root / "CURRENT")
