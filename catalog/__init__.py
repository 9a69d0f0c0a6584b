"""The data layer every stage shares: MovieLens download/parse/split, `Vectors`, `Hits`, model versions.

The names that need pandas (dataset loading, splits, stats) or requests (download) are imported
on first use (PEP 562 ``__getattr__``), so ``from catalog import Hits`` and a query command start
without either.
"""
from importlib import import_module

from .datasets import DATASETS, DatasetSpec, get_spec
from .errors import (ArtifactError, DatasetError, PosterecError, ScrapeError, UnknownMovieError,
                     UnknownUserError)
from .hits import Hits, hits_from, top_n
from .interactions import Interactions
from .store import ModelStore
from .version import SCHEMA, Artifact, ModelVersion, VersionWriter
from .vectors import Vectors

# name -> the module of this package that defines it, imported when the name is first read
_LAZY = {
    **dict.fromkeys(("dataset_checksum", "fetch_dataset", "is_present", "load_dataset", "load_movies",
                     "read_movie_list"), "download"),
    **dict.fromkeys(("Dataset", "detect_format", "load_dir", "read_links", "merge_links", "split_title"),
                    "loaders"),
    **dict.fromkeys(("MovieList",), "movies"),
    **dict.fromkeys(("SPLITS", "Split", "make_split"), "splits"),
    **dict.fromkeys(("dataset_stats", "format_stats"), "stats"),
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later reads skip this hook
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DATASETS", "DatasetSpec", "get_spec", "dataset_checksum", "fetch_dataset", "is_present",
    "load_dataset", "load_movies", "ArtifactError", "DatasetError", "PosterecError", "ScrapeError",
    "UnknownMovieError", "UnknownUserError", "Dataset", "detect_format", "load_dir", "read_links",
    "merge_links", "split_title", "SPLITS", "Split", "make_split", "dataset_stats", "format_stats",
    "ModelStore", "VersionWriter", "ModelVersion", "SCHEMA", "Artifact", "Vectors", "Interactions",
    "Hits", "hits_from", "top_n", "read_movie_list", "MovieList",
]
