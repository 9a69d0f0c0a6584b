"""Arrays on disk: ``.npz`` files written atomically and read without pickles."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ArtifactError


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Write ``arrays`` to ``path`` via a temporary file and ``os.replace`` (never half-written,
    and never through a hard link into an older model version)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: str | os.PathLike, keys: tuple[str, ...], what: str, fix: str = "") -> dict:
    """The named arrays of an ``.npz`` (``allow_pickle=False``); `ArtifactError` naming ``what``."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: missing{'; ' + fix if fix else ''}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in keys}
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a valid {what} ({exc})") from None
