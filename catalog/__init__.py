"""The data layer every stage shares: MovieLens download/parse/split, `Vectors`, `Hits`, model versions."""
from .datasets import DATASETS, DatasetSpec, get_spec
from .download import dataset_checksum, fetch_dataset, is_present, load_dataset, load_movies
from .errors import (ArtifactError, DatasetError, PosterecError, ScrapeError, UnknownMovieError,
                     UnknownUserError)
from .loaders import Dataset, detect_format, load_dir, read_links, merge_links, split_title
from .hits import Hits, hits_from, top_n
from .interactions import Interactions
from .splits import SPLITS, Split, make_split
from .stats import dataset_stats, format_stats
from .store import ModelStore
from .version import SCHEMA, Artifact, ModelVersion, VersionWriter
from .vectors import Vectors

__all__ = [
    "DATASETS", "DatasetSpec", "get_spec", "dataset_checksum", "fetch_dataset", "is_present",
    "load_dataset", "load_movies", "ArtifactError", "DatasetError", "PosterecError", "ScrapeError",
    "UnknownMovieError", "UnknownUserError", "Dataset", "detect_format", "load_dir", "read_links",
    "merge_links", "split_title", "SPLITS", "Split", "make_split", "dataset_stats", "format_stats",
    "ModelStore", "VersionWriter", "ModelVersion", "SCHEMA", "Artifact", "Vectors", "Interactions",
    "Hits", "hits_from", "top_n",
]
