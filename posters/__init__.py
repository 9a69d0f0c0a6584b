"""posters stage: the on-disk poster store, and a scraper (TMDB API or a URL list) that fills it.

``PosterStore(home, dataset).entries()`` lists every ``ok`` poster on disk; ``scrape_posters``
and ``import_posters`` fill the store. Imports only ``catalog`` of ours.
"""
from .fetcher import FetchConfig, FetchError, Fetcher, Redactor
from .image import CheckedImage, ImageLimits, InvalidImage, check_image
from .importer import ImportSummary, import_posters
from .limiter import Cancelled, RateLimiter
from .scraper import ScrapeSummary, fetch_one, scrape_posters, select_todo
from .sources import (DEFAULT_API_URL, DEFAULT_IMAGE_URL, DEFAULT_SIZE, TmdbSource, UrlSource,
                      read_tmdb_links, search_title)
from .store import COLUMNS, STATUSES, PosterEntry, PosterStore, Record, StoreBusy

__all__ = [
    "FetchConfig", "FetchError", "Fetcher", "Redactor", "CheckedImage", "ImageLimits", "InvalidImage",
    "check_image", "ImportSummary", "import_posters", "Cancelled", "RateLimiter", "ScrapeSummary",
    "fetch_one", "scrape_posters", "select_todo", "DEFAULT_API_URL", "DEFAULT_IMAGE_URL",
    "DEFAULT_SIZE", "TmdbSource", "UrlSource", "read_tmdb_links", "search_title", "COLUMNS",
    "STATUSES", "PosterEntry", "PosterStore", "Record", "StoreBusy",
]
