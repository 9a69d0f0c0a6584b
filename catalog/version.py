"""`ModelVersion`: one model version and the schema of the files it may hold.

A version lives in ``<home>/models/<name>/``; ``manifest.json`` lists every file in it with its
sha256, its size, the stage that wrote it and the inputs it was made from. The schema below is
the only place that spells an artifact's file name: stages ask for artifacts by key.

Rules:
- A file listed in the manifest must be there, whole and unchanged; otherwise reading it raises
  `ArtifactError` naming the file and the command that remakes it. Answers never silently change.
- Writing an artifact into a new version drops the artifacts that depend on it (a new ``train``
  never carries an index built from the old vectors).
- ``optional`` artifacts are ones a complete version may lack by design (no posters, no held-out
  test pairs); `ModelVersion.report` lists which are absent, for ``posterec info`` and ``/health``.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ArtifactError

MANIFEST = "manifest.json"
FORMAT = 2


@dataclass(frozen=True)
class Artifact:
    key: str
    file: str
    stage: str                        # the command that writes it
    what: str                         # for messages and ``posterec info``
    depends_on: tuple[str, ...] = ()  # artifact keys it was computed from
    optional: bool = True             # a complete version may lack it


def _a(key, file, stage, what, depends_on=(), optional=True) -> tuple[str, Artifact]:
    return key, Artifact(key, file, stage, what, tuple(depends_on), optional)


SCHEMA: dict[str, Artifact] = dict([
    # written by `posterec train`
    _a("text_model", "text_model.npz", "train", "rating model: tower vectors, biases, vocabulary, config"),
    _a("keras_model", "text_model.keras", "train", "rating network (for predict)"),
    _a("ranking", "ranking.npz", "train", "ranking model: PureSVD factors and the blend with the rating model"),
    _a("interactions", "interactions.npz", "train", "the training ratings: who rated what, and how"),
    _a("test_pairs", "test.npz", "train", "held-out test ratings (evaluation models)"),
    _a("training_curve", "training_curve.png", "train", "training curve"),
    # written by `posterec embed`
    _a("visual", "visual.npz", "embed", "poster embeddings"),
    # written by `posterec build-index`
    _a("cold_start", "cold_start.npz", "build-index", "estimated vectors of movies with a poster but no ratings",
       depends_on=("text_model", "ranking", "visual")),
    _a("index", "index.faiss", "build-index", "FAISS index of the fused vectors",
       depends_on=("text_model", "visual", "cold_start")),
    # written by `posterec add-movie` (issue 12): movies added since train, merged into the catalogue
    _a("added_movies", "added_movies.npz", "add-movie", "movies added without retraining: id, title, year, genres"),
])
STAGE_ORDER = ("train", "embed", "build-index")


def artifact(key: str) -> Artifact:
    try:
        return SCHEMA[key]
    except KeyError:
        raise KeyError(f"unknown artifact {key!r}; known: {', '.join(SCHEMA)}") from None


def dependents(key: str) -> list[str]:
    """Artifacts computed, directly or not, from ``key``."""
    out: list[str] = []
    frontier = [key]
    while frontier:
        k = frontier.pop()
        for a in SCHEMA.values():
            if k in a.depends_on and a.key not in out:
                out.append(a.key)
                frontier.append(a.key)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remake_hint(a: Artifact, home: Path | None = None) -> str:
    where = f" --home {home}" if home is not None else ""
    return f"remake it with `posterec{where} {a.stage}`"


def read_manifest(folder: Path) -> dict:
    """The manifest of ``folder`` as a dict; `ArtifactError` for a missing, unreadable or foreign one."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; this is not a complete model version") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got a JSON {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ArtifactError(f"{path}: model format {data.get('format')!r}, this posterec reads format {FORMAT}; "
                            f"retrain with `posterec train`")
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise ArtifactError(f"{path}: its 'files' entry is not an object of file records")
    return data


class ModelVersion:
    """One written (hence immutable) version: its manifest, and verified access to its files."""

    def __init__(self, folder: Path, manifest: dict, home: Path | None = None):
        self.path = Path(folder)
        self.name = self.path.name
        self.manifest = manifest
        self.home = home
        self._verified: set[str] = set()

    @classmethod
    def open(cls, folder, home=None) -> "ModelVersion":
        folder = Path(folder)
        return cls(folder, read_manifest(folder), None if home is None else Path(home))

    # -- what is here --------------------------------------------------------------------
    @property
    def files(self) -> dict:
        return self.manifest["files"]

    def has(self, key: str) -> bool:
        """Whether the manifest lists the artifact (its stage ran and made it)."""
        return artifact(key).file in self.files

    def stage(self, name: str) -> dict:
        """A stage's manifest entry (config, metrics...), {} when that stage never ran."""
        entry = (self.manifest.get("stages") or {}).get(name) or {}
        return entry if isinstance(entry, dict) else {}

    # -- reading -------------------------------------------------------------------------
    def file(self, key: str, verify: bool = True) -> Path:
        """The path of a listed artifact, checked against its size and sha256."""
        a = artifact(key)
        path = self.path / a.file
        record = self.files.get(a.file)
        if record is None:
            raise ArtifactError(f"{path}: not in model version {self.name}; {remake_hint(a, self.home)}")
        if key in self._verified or not verify:
            return path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing ({a.what}); {remake_hint(a, self.home)}") from None
        if size != record.get("bytes"):
            raise ArtifactError(f"{path}: {size} bytes, the manifest says {record.get('bytes')} (truncated or "
                                f"replaced); {remake_hint(a, self.home)}")
        if file_sha256(path) != record.get("sha256"):
            raise ArtifactError(f"{path}: its sha256 differs from the manifest's (corrupted or replaced); "
                                f"{remake_hint(a, self.home)}")
        self._verified.add(key)
        return path

    def arrays(self, key: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The named arrays of an ``.npz`` artifact (no pickles); `ArtifactError` naming the file."""
        path = self.file(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                names = tuple(data.files) if names is None else names
                return {k: data[k] for k in names}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ArtifactError(f"{path}: not a valid {artifact(key).what} file ({' '.join(str(exc).split())}); "
                                f"{remake_hint(artifact(key), self.home)}") from None

    def invalid(self, a: Artifact, why: str) -> ArtifactError:
        """An `ArtifactError` for a listed file whose content makes no sense (for stage loaders)."""
        return ArtifactError(f"{self.path / a.file}: {why}; {remake_hint(a, self.home)}")

    # -- reporting -----------------------------------------------------------------------
    def report(self, verify: bool = True) -> dict:
        """Every schema artifact: present, missing (listed but gone or damaged) or absent (never made)."""
        out = {}
        for a in SCHEMA.values():
            record = self.files.get(a.file)
            entry = {"file": a.file, "stage": a.stage, "what": a.what, "optional": a.optional}
            if record is None:
                entry["state"] = "absent"
            else:
                entry.update(bytes=record.get("bytes"), sha256=record.get("sha256"), inputs=record.get("inputs", {}))
                try:
                    self.file(a.key, verify=verify)
                    entry["state"] = "ok"
                except ArtifactError as exc:
                    entry["state"], entry["error"] = "damaged", str(exc)
            out[a.key] = entry
        return out


class VersionWriter:
    """A version being written in a staging folder; see `catalog.store.ModelStore.new_version`."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        manifest.setdefault("files", {})
        manifest.setdefault("stages", {})

    @property
    def files(self) -> dict:
        return self.manifest["files"]

    def has(self, key: str) -> bool:
        return artifact(key).file in self.files

    def sha256(self, key: str) -> str | None:
        record = self.files.get(artifact(key).file)
        return None if record is None else record["sha256"]

    def drop(self, key: str) -> None:
        """Remove an artifact (and everything computed from it) from this version."""
        for k in [key, *dependents(key)]:
            a = SCHEMA[k]
            self.files.pop(a.file, None)
            (self.path / a.file).unlink(missing_ok=True)

    def start_stage(self, stage: str) -> None:
        """A stage about to write its artifacts: drop every artifact that stage wrote into the parent
        version (and what was made from them), so nothing of an earlier run of it is carried over."""
        for a in SCHEMA.values():
            if a.stage == stage and self.has(a.key):
                self.drop(a.key)
        self.manifest["stages"].pop(stage, None)

    def write(self, key: str, write: Callable[[Path], None], inputs: dict | None = None) -> Path:
        """Write an artifact: ``write(tmp_path)`` fills a temporary file (same suffix), which is then
        renamed into place and recorded with its sha256, size and ``inputs``. The artifacts that
        depend on it are dropped. ``inputs`` defaults to the sha256 of the artifacts it depends on."""
        a = artifact(key)
        for k in dependents(key):
            self.drop(k)
        final = self.path / a.file
        tmp = self.path / f".tmp-{secrets.token_hex(4)}-{a.file}"
        try:
            write(tmp)
            if not tmp.exists():
                raise ArtifactError(f"{a.file}: the writer produced no file")
            os.replace(tmp, final)  # a new inode: never writes through a hard link into the parent
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if inputs is None:
            inputs = {d: self.sha256(d) for d in a.depends_on if self.has(d)}
        self.files[a.file] = {"sha256": file_sha256(final), "bytes": final.stat().st_size, "stage": a.stage,
                              "inputs": inputs}
        return final

    def write_arrays(self, key: str, inputs: dict | None = None, **arrays) -> Path:
        """Write an ``.npz`` artifact of named arrays."""
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return self.write(key, save, inputs)

    def set_stage(self, name: str, entry: dict) -> None:
        self.manifest["stages"][name] = entry


def json_array(obj) -> np.ndarray:
    """A JSON document as a 0-d unicode array, so settings travel inside an ``.npz`` without pickles."""
    return np.array(json.dumps(obj, sort_keys=True, default=str))


def from_json_array(value: np.ndarray):
    return json.loads(str(value[()]))
