"""Saving and loading a `MovieIndex` as the ``index`` artifact of a model version.

    entry = index.save(writer)                    # writer: catalog.VersionWriter; entry = describe()
    index = MovieIndex.load(version, entry, metadata)   # version: catalog.ModelVersion

The artifact is FAISS's own serialisation, nothing else. Its size and sha256 live in the
version's manifest (checked by `ModelVersion.file`); ``entry`` (dim, count, kind, metric,
normalize, config, ids_sha256) is what the caller stores in its stage entry. `load_index`
checks the deserialised index against it and raises `version.invalid(...)`, an `ArtifactError`
naming the file and the command that remakes it, for unreadable bytes or any mismatch. Genres
and years for filters are not stored: the caller passes them (they derive from the movies).

``load_index(..., mmap=True)`` maps the verified file instead of copying it into memory
(``faiss.read_index(path, IO_FLAG_MMAP_IFC | IO_FLAG_READ_ONLY)``). With faiss-cpu 1.15 that
maps the stored vectors of every kind: flat and HNSW storage, IVF and IVF-PQ inverted lists,
IVF-PQ's full vectors for refine (tests/test_index_scale.py checks it), and the ids (measured: a 50k x 1280 index read mapped kept 0.6 MB of anonymous memory beyond
the interpreter's, 250 MB read normally), so several processes serving one version share one
copy in the page cache. A mapped index is read-only: FAISS aborts the process on an add, so
`MovieIndex.add` refuses. If mapping fails the file is read normally and the reason is logged.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import faiss
import numpy as np

from catalog.version import artifact

from .filters import MovieMetadata
from .movie_index import IndexConfig, MovieIndex

ARTIFACT = "index"
ENTRY_KEYS = ("dim", "count", "kind", "normalize", "config", "ids_sha256")
_INNER = {"flat": faiss.IndexFlat, "hnsw": faiss.IndexHNSWFlat, "ivf": faiss.IndexIVFFlat, "ivfpq": faiss.IndexIVFPQ,
          "ivfpq+refine": faiss.IndexRefineFlat}
MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
log = logging.getLogger(__name__)


def ids_checksum(ids: np.ndarray) -> str:
    """sha256 of the ids, in index order, as little-endian int64."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def save_index(index: MovieIndex, writer, inputs: dict | None = None) -> dict:
    """Write ``index`` as the version's ``index`` artifact; returns its `describe()` entry."""
    data = faiss.serialize_index(index._index)

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data.tobytes())

    writer.write(ARTIFACT, fill, inputs)
    return index.describe()


def load_index(version, entry: dict, metadata: MovieMetadata | None = None, mmap: bool = False) -> MovieIndex:
    """The version's ``index`` artifact as a `MovieIndex`, checked against ``entry``; memory-mapped
    read-only when ``mmap`` (see the module doc)."""
    a = artifact(ARTIFACT)
    path = version.file(ARTIFACT)  # listed, and its size and sha256 match the manifest
    if not isinstance(entry, dict):
        raise version.invalid(a, f"its manifest entry is a {type(entry).__name__}, not an object")
    missing = [k for k in ENTRY_KEYS if k not in entry]
    if missing:
        raise version.invalid(a, f"its manifest entry lacks {', '.join(missing)}")
    try:
        fields = dict(entry["config"]) if isinstance(entry["config"], dict) else entry["config"]
        if isinstance(fields, dict) and fields.get("kind") == "ivfpq":
            fields.setdefault("refine", 0)  # written before refine existed: codes only
        config = IndexConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise version.invalid(a, f"its manifest entry has a bad config ({exc})") from None
    if config.kind != entry["kind"] or config.normalize != entry["normalize"]:
        raise version.invalid(a, f"its manifest entry says kind {entry['kind']!r}, normalize {entry['normalize']} "
                                 f"but its config says {config.kind!r}, {config.normalize}")
    index = _mapped(version, a, path) if mmap else None
    mapped = index is not None
    if index is None:
        index = _deserialise(version, a, path.read_bytes())
    inner = faiss.downcast_index(index.index)
    expected = config.kind + ("+refine" if config.kind == "ivfpq" and config.refine else "")
    base = faiss.downcast_index(inner.base_index) if isinstance(inner, faiss.IndexRefine) else None
    if not isinstance(inner, _INNER[expected]) or inner.metric_type != faiss.METRIC_INNER_PRODUCT \
            or (base is not None and not isinstance(base, faiss.IndexIVFPQ)):
        what = f"{type(base).__name__} with refine" if base is not None else type(inner).__name__
        raise version.invalid(a, f"holds a FAISS {what} (metric {inner.metric_type}), not the inner-product "
                                 f"{expected.replace('+', ' with ')} index its manifest entry describes")
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if int(index.d) != int(entry["dim"]) or int(index.ntotal) != int(entry["count"]):
        raise version.invalid(a, f"holds {index.ntotal} vectors of dimension {index.d} but its manifest entry "
                                 f"says {entry['count']} of dimension {entry['dim']}")
    if ids_checksum(ids) != entry["ids_sha256"]:
        raise version.invalid(a, "holds other ids than its manifest entry records (ids_sha256 differs)")
    return MovieIndex(index, config, ids, metadata, mapped=mapped)


def _mapped(version, a, path: Path):
    """The file read memory-mapped, or None (reason logged) when FAISS cannot map it; the normal
    read that follows then raises the `ArtifactError` if the bytes are bad."""
    try:
        raw = faiss.read_index(str(path), MMAP_FLAGS)
    except (RuntimeError, ValueError, MemoryError) as exc:
        log.warning("%s: cannot memory-map the index (%s); reading it into memory instead",
                    path, " ".join(str(exc).split())[:200])
        return None
    return _owned(version, a, raw)


def _deserialise(version, a, data: bytes):
    try:
        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise version.invalid(a, f"not a readable FAISS index ({' '.join(str(exc).split())[:200]})") from None
    return _owned(version, a, raw)


def _owned(version, a, raw):
    index = faiss.downcast_index(raw)
    if not isinstance(index, faiss.IndexIDMap2):
        raise version.invalid(a, f"a FAISS {type(index).__name__}, not the IndexIDMap2 posterec writes")
    raw.this.disown()  # the downcast proxy now owns the C++ object
    index.this.own(True)
    return index
