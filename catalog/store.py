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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import ArtifactError

MANIFEST = "manifest.json"
FORMAT = 1


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


@dataclass
class VersionWriter:
    """A version being written: put files under ``path`` and edit ``manifest``."""

    path: Path
    manifest: dict = field(default_factory=dict)


class ModelStore:
    """The model versions under ``<home>/models``."""

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home)
        self.root = self.home / "models"

    # -- reading -------------------------------------------------------------------------
    def current_name(self) -> str | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        name = pointer.read_text().strip()
        return name or None

    def current(self) -> Path | None:
        name = self.current_name()
        return None if name is None else self.root / name

    def require_current(self) -> Path:
        path = self.current()
        if path is None:
            raise ArtifactError(
                f"no model under {self.root}: run `posterec --home {self.home} train --dataset D` first"
            )
        if not (path / MANIFEST).exists():
            raise ArtifactError(f"{path}: the current model version has no {MANIFEST}")
        return path

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    @staticmethod
    def read_manifest(version: Path) -> dict:
        path = Path(version) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing") from None
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path}: not valid JSON ({exc})") from None

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def new_version(self, base: Path | None | str = "current", activate: bool = True) -> Iterator[VersionWriter]:
        """Write a new version, starting from ``base`` (default: the current one, if any).

        On a clean exit the version is renamed into place and, with ``activate``, becomes
        ``CURRENT``. On an exception the staging folder is removed and nothing else changes.
        """
        if base == "current":
            base = self.current()
        self.root.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        staging = self.root / f".staging-{name}"
        staging.mkdir()
        manifest: dict = {}
        try:
            if base is not None:
                base = Path(base)
                for src in base.rglob("*"):
                    rel = src.relative_to(base)
                    dst = staging / rel
                    if src.is_dir():
                        dst.mkdir(parents=True, exist_ok=True)
                        continue
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(src, dst)
                    except OSError:
                        shutil.copy2(src, dst)
                manifest = self.read_manifest(base)
                (staging / MANIFEST).unlink(missing_ok=True)
            manifest = dict(manifest)
            manifest["parent"] = None if base is None else Path(base).name
            writer = VersionWriter(staging, manifest)
            yield writer
            writer.manifest.update(
                format=FORMAT, version=name, code_version=code_version(),
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            write_json_atomic(staging / MANIFEST, writer.manifest)
            final = self.root / name
            os.rename(staging, final)
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
