"""Saving and loading a `MovieIndex`: ``index.faiss`` plus a small ``index.json`` manifest.

Both files are written atomically (a temporary file, then ``os.replace``), ``index.faiss``
first. ``index.json`` records dim, count, metric, kind, normalize, the build config, the size
and sha256 of ``index.faiss`` and the sha256 of the indexed ids; `load_index` checks all of
them and raises `catalog.ArtifactError` with the fix on any mismatch.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

import faiss
import numpy as np

from catalog import ArtifactError

from .filters import MovieMetadata
from .movie_index import IndexConfig, MovieIndex

INDEX_FILE = "index.faiss"
MANIFEST_FILE = "index.json"
METADATA_FILE = "index_metadata.json"
FORMAT = 1
REBUILD = "rebuild it with `posterec build-index`"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # never writes into an existing (possibly hard-linked) file
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ids_checksum(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def save_index(index: MovieIndex, directory) -> dict:
    """Write ``index.faiss`` and ``index.json`` (and metadata, if any) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = faiss.serialize_index(index._index).tobytes()
    manifest = dict(index.describe(), format=FORMAT, file=INDEX_FILE, file_bytes=len(data),
                    file_sha256=hashlib.sha256(data).hexdigest(), ids_sha256=ids_checksum(index._ids),
                    metadata=index.metadata is not None)
    _write_atomic(directory / INDEX_FILE, data)
    if index.metadata is not None:
        _write_atomic(directory / METADATA_FILE, json.dumps(index.metadata.to_json()).encode())
    _write_atomic(directory / MANIFEST_FILE, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def read_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; {REBUILD}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}); {REBUILD}") from None
    need = ("dim", "count", "kind", "normalize", "file_bytes", "file_sha256", "ids_sha256", "config")
    missing = [k for k in need if k not in manifest]
    if missing:
        raise ArtifactError(f"{path}: lacks {', '.join(missing)}; {REBUILD}")
    return manifest


def load_index(directory, dim: int | None = None) -> MovieIndex:
    """Load and verify an index; ``dim``, if given, is the dimension the caller's queries have."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if dim is not None and int(manifest["dim"]) != int(dim):
        raise ArtifactError(f"{directory / INDEX_FILE}: index has dimension {manifest['dim']} but the "
                            f"queries have {dim}; {REBUILD}")
    path = directory / INDEX_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; {REBUILD}") from None
    if len(data) != manifest["file_bytes"]:
        raise ArtifactError(f"{path}: {len(data)} bytes but the manifest says {manifest['file_bytes']} "
                            f"(truncated or replaced); {REBUILD}")
    if hashlib.sha256(data).hexdigest() != manifest["file_sha256"]:
        raise ArtifactError(f"{path}: sha256 differs from {MANIFEST_FILE} (corrupted); {REBUILD}")
    try:
        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        index = faiss.downcast_index(raw)
        if not isinstance(index, faiss.IndexIDMap2):
            raise TypeError(f"expected an IndexIDMap2, got {type(index).__name__}")
        raw.this.disown()  # the downcast proxy now owns the C++ object
        index.this.own(True)
    except (RuntimeError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a readable FAISS index ({' '.join(str(exc).split())[:200]}); {REBUILD}") from None
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if index.d != manifest["dim"] or index.ntotal != manifest["count"] or ids_checksum(ids) != manifest["ids_sha256"]:
        raise ArtifactError(f"{path}: holds {index.ntotal} x {index.d} but the manifest says "
                            f"{manifest['count']} x {manifest['dim']} (or other ids); {REBUILD}")
    metadata = None
    if manifest.get("metadata"):
        try:
            metadata = MovieMetadata.from_json(json.loads((directory / METADATA_FILE).read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{directory / METADATA_FILE}: unreadable ({exc}); {REBUILD}") from None
    config = IndexConfig(**manifest["config"])
    return MovieIndex(index, config, ids, metadata)
