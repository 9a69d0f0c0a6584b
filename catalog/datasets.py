"""The MovieLens releases the project knows: where they live, their checksums and format."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import DatasetError

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
BASE_URL_ENV = "POSTEREC_DATA_URL"


MiB = 1 << 20
WHOLE_STARS = (1.0, 5.0, 1.0)   # (lowest, highest, step) of a rating
HALF_STARS = (0.5, 5.0, 0.5)


@dataclass(frozen=True)
class DatasetSpec:
    """A release. ``max_bytes`` bounds what its files may take once extracted (the official
    release's size with room to grow), so a zip bomb named like it is refused before any byte
    is written; ``rating_scale`` is (lowest, highest, step) of its ratings."""

    name: str
    format: str                 # "ml100k", "ml1m" or "csv"
    checksum: tuple[str, str]   # (hash algorithm, hex digest) of the official zip
    required: tuple[str, ...]   # files that must be present once extracted
    optional: tuple[str, ...] = ()
    max_bytes: int = 64 * MiB
    rating_scale: tuple[float, float, float] = HALF_STARS

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"

    def url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return base.rstrip("/") + "/" + self.archive


_CSV_REQUIRED = ("ratings.csv", "movies.csv")
_CSV_OPTIONAL = ("links.csv", "tags.csv", "README.txt")

# Checksums are GroupLens' published ones (the .md5 files beside each zip); ml-latest-small
# changes when GroupLens refreshes it, so a mismatch there says so and names --checksum.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("ml-100k", "ml100k", ("md5", "0e33842e24a9c977be4e0107933c0723"),
                    ("u.data", "u.item", "u.user"),
                    ("u.genre", "u.occupation", "u.info", "README",
                     *(f"u{i}.{p}" for i in range(1, 6) for p in ("base", "test")),
                     "ua.base", "ua.test", "ub.base", "ub.test"),
                    max_bytes=64 * MiB, rating_scale=WHOLE_STARS),             # 16 MB extracted
        DatasetSpec("ml-1m", "ml1m", ("md5", "c4d9eecfca2ab87c1945afe126590906"),
                    ("ratings.dat", "movies.dat", "users.dat"), ("README",),
                    max_bytes=128 * MiB, rating_scale=WHOLE_STARS),            # 25 MB
        DatasetSpec("ml-latest-small", "csv",
                    ("sha256", "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
                    _CSV_REQUIRED, _CSV_OPTIONAL, max_bytes=64 * MiB),         # 3.3 MB
        DatasetSpec("ml-25m", "csv", ("md5", "6b51fb2759a8657d3bfcbfc42b592ada"),
                    _CSV_REQUIRED, _CSV_OPTIONAL + ("genome-scores.csv", "genome-tags.csv"),
                    max_bytes=3072 * MiB),                                     # 1.2 GB
        DatasetSpec("ml-32m", "csv", ("md5", "d472be332d4daa821edc399621853b57"),
                    _CSV_REQUIRED, _CSV_OPTIONAL + ("checksums.txt",),
                    max_bytes=3072 * MiB),                                     # 0.95 GB
    )
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)}"
        ) from None
