"""``scrape-posters`` and ``import-posters``: fill ``<home>/posters/<dataset>/``."""
from __future__ import annotations

import argparse
import os
import sys

from ..output import emit_json, positive_int
from .data import dataset_argument


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _rate(text: str) -> float | None:
    if text.strip().lower() in ("0", "none", "off", "unlimited"):
        return None
    return _positive_float(text)


def register(sub) -> None:
    p = sub.add_parser(
        "scrape-posters", help="fetch posters from TMDB or a URL list into the poster store",
        description="Fetch posters concurrently and politely into <home>/posters/<dataset>/, recording "
                    "every outcome in posters.csv. A second run fetches only movies not yet done and "
                    "those that failed; Ctrl-C stops cleanly. TMDB needs $TMDB_API_KEY.")
    dataset_argument(p)
    p.add_argument("--source", nargs="+", default=["tmdb"], metavar="tmdb|urls [FILE]",
                   help="'tmdb' (default) or 'urls FILE' with FILE a CSV of movie_id,url")
    p.add_argument("--urls", metavar="FILE", help="the movie_id,url CSV (same as --source urls FILE)")
    p.add_argument("--links", metavar="FILE",
                   help="MovieLens links.csv (movieId,tmdbId) or movie_id,tmdb_id; movies without a TMDB "
                        "id are searched by title and year")
    p.add_argument("--api-url", help="TMDB API base (default: $TMDB_API_URL or https://api.themoviedb.org/3)")
    p.add_argument("--image-url", help="TMDB image base (default: $TMDB_IMAGE_URL or https://image.tmdb.org/t/p)")
    p.add_argument("--size", default="w342", help="TMDB poster size (default: w342)")
    p.add_argument("--workers", type=positive_int, default=8, help="parallel downloads (default: 8)")
    p.add_argument("--rate", type=_rate, default=20.0,
                   help="requests per second over all workers; 0 = unlimited (default: 20)")
    p.add_argument("--limit", type=positive_int, help="fetch at most K posters this run")
    p.add_argument("--retry-all", action="store_true", help="fetch every movie again, not just new and failed")
    p.add_argument("--connect-timeout", type=_positive_float, default=5.0, help="seconds (default: 5)")
    p.add_argument("--read-timeout", type=_positive_float, default=20.0, help="seconds (default: 20)")
    p.add_argument("--download-timeout", type=_positive_float, default=60.0,
                   help="deadline in seconds for one poster's download, however the server trickles "
                        "(default: 60)")
    p.add_argument("--min-rate", type=float, default=1024.0, metavar="BYTES_PER_S",
                   help="a download slower than this on average after 10 s is given up (default: 1024; 0: off)")
    p.add_argument("--retries", type=int, default=4, help="retries on 5xx/429/timeouts (default: 4)")
    p.add_argument("--max-bytes", type=positive_int, default=10 * 1024 * 1024,
                   help="largest poster accepted, in bytes (default: 10 MiB)")
    _no_wait_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_scrape)

    p = sub.add_parser(
        "import-posters", help="import <movie_id>.jpg|png files from a folder into the poster store",
        description="Check each <movie_id>.jpg|jpeg|png in DIR like a download, copy it atomically into "
                    "<home>/posters/<dataset>/ and record it in posters.csv (source 'import'). Ids not in "
                    "the dataset (when it is downloaded) are reported and skipped.")
    p.add_argument("folder", metavar="DIR")
    dataset_argument(p)
    p.add_argument("--max-bytes", type=positive_int, default=10 * 1024 * 1024,
                   help="largest poster accepted, in bytes (default: 10 MiB)")
    _no_wait_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_import)


def _no_wait_argument(p) -> None:
    p.add_argument("--no-wait", action="store_true",
                   help="when another scrape/import is writing to the same poster store, exit 1 naming it "
                        "instead of waiting for it")


def _notify(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _known_ids(home, dataset: str):
    from catalog import is_present, load_dataset

    if not is_present(home, dataset):
        return None
    return set(int(m) for m in load_dataset(home, dataset).movies["movie_id"])


def _make_source(args):
    from catalog import load_dataset
    from posters import TmdbSource, UrlSource, read_tmdb_links

    from ..cli import UsageError

    kind, *rest = args.source
    if kind == "urls" or args.urls:
        files = rest or ([args.urls] if args.urls else [])
        if kind not in ("urls", "tmdb") or len(files) != 1 or (rest and args.urls):
            raise UsageError("give the URL list once: --source urls FILE (or --urls FILE)")
        return UrlSource.from_csv(files[0])
    if kind != "tmdb" or rest:
        raise UsageError(f"--source must be 'tmdb' or 'urls FILE', got {' '.join(args.source)!r}")
    movies = load_dataset(args.home, args.dataset).movies
    tmdb_ids = {int(m): int(t) for m, t in zip(movies["movie_id"], movies["tmdb_id"]) if not _is_na(t)}
    if args.links:
        known = set(int(m) for m in movies["movie_id"])
        tmdb_ids.update({m: t for m, t in read_tmdb_links(args.links).items() if m in known})
    titles = {int(m): (str(t), None if _is_na(y) else int(y))
              for m, t, y in zip(movies["movie_id"], movies["title"], movies["year"])}
    return TmdbSource(os.environ.get("TMDB_API_KEY", ""), tmdb_ids, titles, api_url=args.api_url,
                      image_url=args.image_url, size=args.size)


def _is_na(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def run_scrape(args) -> int:
    from posters import FetchConfig, ImageLimits, PosterStore, scrape_posters

    source = _make_source(args)
    movie_ids = source.movie_ids()
    if source.name == "urls":
        known = _known_ids(args.home, args.dataset)
        if known is not None:
            unknown = [m for m in movie_ids if m not in known]
            if unknown:
                print(f"skipping {len(unknown)} movie ids not in {args.dataset}: "
                      f"{', '.join(map(str, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}")
            movie_ids = [m for m in movie_ids if m in known]
    config = FetchConfig(connect_timeout=args.connect_timeout, read_timeout=args.read_timeout,
                         total_timeout=args.download_timeout, min_rate=max(0.0, args.min_rate),
                         retries=max(0, args.retries), max_bytes=args.max_bytes)
    store = PosterStore(args.home, args.dataset)
    summary = scrape_posters(store, source, movie_ids, workers=args.workers, rate=args.rate,
                             limit=args.limit, retry_all=args.retry_all, config=config,
                             limits=ImageLimits(max_bytes=args.max_bytes), wait=not args.no_wait,
                             command=f"posterec scrape-posters --dataset {args.dataset}", notify=_notify)
    if args.json:
        emit_json({"dataset": args.dataset, "source": source.name, "todo": summary.todo,
                   "skipped": summary.skipped, "counts": dict(summary.counts),
                   "interrupted": summary.interrupted, "posters": len(store.entries())})
    else:
        print(f"{args.dataset}: {summary.line()}; {len(store.entries())} posters in {store.dir}")
    return 130 if summary.interrupted else 0


def run_import(args) -> int:
    from posters import ImageLimits, PosterStore, import_posters

    store = PosterStore(args.home, args.dataset)
    known = _known_ids(args.home, args.dataset)
    summary = import_posters(store, args.folder, known_ids=known, limits=ImageLimits(max_bytes=args.max_bytes),
                             wait=not args.no_wait, command=f"posterec import-posters --dataset {args.dataset}",
                             notify=_notify)
    if args.json:
        emit_json({"dataset": args.dataset, "counts": dict(summary.counts), "unknown": summary.unknown,
                   "ignored": summary.ignored, "refused": summary.refused, "posters": len(store.entries())})
    else:
        note = "" if known is not None else f" (dataset {args.dataset} not downloaded: ids not checked)"
        print(f"{args.dataset}: {summary.line()}; {len(store.entries())} posters in {store.dir}{note}")
    return 0
