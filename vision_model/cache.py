"""Embedding cache: one .npz per backbone config key, rows keyed by poster sha256.

``<home>/cache/embeddings/<config key>.npz`` holds ``sha256`` (unicode, (n,)) and ``values``
(float32, (n, dim)). Written atomically (temporary file, then rename); read without pickles.
A poster whose bytes changed has a new sha256, so it is embedded again.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from catalog.arrays import save_npz

log = logging.getLogger(__name__)


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike, config_key: str):
        self.root = Path(root)
        self.path = self.root / f"{config_key}.npz"
        self._rows: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows = {}
            if self.path.exists():
                try:
                    with np.load(self.path, allow_pickle=False) as data:
                        shas, values = data["sha256"], data["values"].astype(np.float32)
                    self._rows = {str(s): v for s, v in zip(shas, values)}
                except (OSError, ValueError, KeyError) as exc:  # a broken cache is only a cache
                    log.warning("ignoring unreadable embedding cache %s (%s)", self.path, exc)
        return self._rows

    def __len__(self) -> int:
        return len(self._load())

    def get(self, sha256s) -> dict[str, np.ndarray]:
        """The cached vectors among ``sha256s``."""
        rows = self._load()
        return {s: rows[s] for s in sha256s if s in rows}

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Add vectors and rewrite the file atomically."""
        if not vectors:
            return
        rows = self._load()
        rows.update({s: np.asarray(v, np.float32) for s, v in vectors.items()})
        self.root.mkdir(parents=True, exist_ok=True)
        shas = np.array(sorted(rows), dtype="U64")
        values = np.stack([rows[s] for s in shas]).astype(np.float32)
        save_npz(self.path, sha256=shas, values=values)
