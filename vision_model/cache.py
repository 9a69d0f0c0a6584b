"""Embedding cache: one .npz per backbone config key, rows keyed by poster sha256.

``<home>/cache/embeddings/<config key>.npz`` holds ``sha256`` (unicode, (n,)) and ``values``
(float32, (n, dim)). Written atomically (temporary file, then rename); read without pickles.
A poster whose bytes changed has a new sha256, so it is embedded again.

Crash safety: while a run goes, finished batches are saved as small checkpoint files
``<config key>.part-<pid>-<n>.npz`` (`add`), each written atomically, so Ctrl-C or kill -9 loses
at most the batches since the last checkpoint. Reading merges the main file and every
checkpoint; `put` folds them all into the main file, under an ``flock`` so two runs never drop
each other's rows, and deletes only the checkpoints it folded in. A file that cannot be read
(truncated, not an npz, wrong shapes) is discarded with a warning and its posters are embedded
again: a broken cache is only a cache.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from catalog.arrays import save_npz

log = logging.getLogger(__name__)

STALE_TEMP = 600.0  # seconds: a leftover temporary file of save_npz older than this is removed


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike, config_key: str):
        self.root = Path(root)
        self.key = config_key
        self.path = self.root / f"{config_key}.npz"
        self._rows: dict[str, np.ndarray] | None = None
        self._n_parts = 0

    # -- files ---------------------------------------------------------------------------
    def part_paths(self) -> list[Path]:
        """Checkpoint files on disk, oldest first."""
        if not self.root.exists():
            return []
        return sorted(self.root.glob(f"{self.key}.part-*.npz"), key=lambda p: (_mtime(p), p.name))

    def _read(self, path: Path) -> dict[str, np.ndarray] | None:
        """Rows of one cache file; None (after a warning, the file removed) when it is unreadable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                shas, values = data["sha256"], data["values"]
            if shas.ndim != 1 or values.ndim != 2 or len(shas) != len(values) or shas.dtype.kind != "U" \
                    or values.dtype.kind != "f":
                raise ValueError(f"arrays of shapes {shas.shape} and {values.shape}")
            values = values.astype(np.float32)
            if not np.isfinite(values).all():
                raise ValueError("non-finite values")
        except FileNotFoundError:
            return {}
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("embedding cache %s is unreadable (%s: %s); discarding it, its posters will be "
                        "embedded again", path, type(exc).__name__, " ".join(str(exc).split())[:200])
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return {str(s): v for s, v in zip(shas, values)}

    def _read_all(self) -> tuple[dict[str, np.ndarray], list[Path]]:
        rows = self._read(self.path) or {}
        parts = []
        for p in self.part_paths():
            got = self._read(p)
            if got is None:
                continue
            rows.update(got)
            parts.append(p)
        return rows, parts

    def _load(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows, parts = self._read_all()
            self._n_parts = len(parts)
        return self._rows

    @contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.key}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- the API -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._load())

    def get(self, sha256s) -> dict[str, np.ndarray]:
        """The cached vectors among ``sha256s``."""
        rows = self._load()
        return {s: rows[s] for s in sha256s if s in rows}

    def add(self, vectors: dict[str, np.ndarray]) -> None:
        """Save ``vectors`` now as a checkpoint file (cheap: only these rows are written)."""
        if not vectors:
            return
        rows = self._load()
        shas = np.array(sorted(vectors), dtype="U64")
        values = np.stack([np.asarray(vectors[s], np.float32) for s in shas])
        self._n_parts += 1
        save_npz(self.root / f"{self.key}.part-{os.getpid()}-{time.time_ns()}.npz", sha256=shas, values=values)
        rows.update({s: v for s, v in zip(shas.tolist(), values)})

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Add ``vectors`` and fold every checkpoint into the main file, atomically."""
        rows = self._load()
        rows.update({s: np.asarray(v, np.float32) for s, v in vectors.items()})
        if not vectors and not self.part_paths():
            return
        with self._locked():
            on_disk, parts = self._read_all()  # what other runs saved meanwhile
            merged = {**on_disk, **rows}
            dims = {v.shape for v in merged.values()}
            if len(dims) > 1:
                want = next(iter(rows.values())).shape if rows else max(dims)
                log.warning("embedding cache %s: dropping %d rows of another shape", self.path,
                            sum(1 for v in merged.values() if v.shape != want))
                merged = {s: v for s, v in merged.items() if v.shape == want}
            shas = np.array(sorted(merged), dtype="U64")
            values = (np.stack([merged[s] for s in shas]).astype(np.float32) if len(shas)
                      else np.zeros((0, 0), np.float32))
            save_npz(self.path, sha256=shas, values=values)
            for p in parts:
                p.unlink(missing_ok=True)
            self._remove_stale_temps()
        self._rows = merged
        self._n_parts = 0

    def _remove_stale_temps(self) -> None:
        now = time.time()
        for p in self.root.glob(f".{self.key}.*.tmp"):
            if now - _mtime(p) > STALE_TEMP:
                p.unlink(missing_ok=True)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
