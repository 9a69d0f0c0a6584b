"""``download`` and ``stats``: the catalogue commands."""
from __future__ import annotations

import argparse
import sys

from catalog import DATASETS

from ..output import emit_json


def _checksum(text: str) -> tuple[str, str]:
    algo, sep, digest = text.partition(":")
    if not sep or algo not in ("md5", "sha1", "sha256") or not digest:
        raise argparse.ArgumentTypeError(f"expected ALGO:HEX with ALGO md5, sha1 or sha256, got {text!r}")
    return algo, digest.lower()


def dataset_argument(parser: argparse.ArgumentParser, default: str | None = "ml-100k") -> None:
    parser.add_argument("--dataset", choices=list(DATASETS), default=default,
                        help=f"MovieLens release (default: {default})" if default else "MovieLens release")


def register(sub) -> None:
    p = sub.add_parser("download", help="fetch a MovieLens release (or import a local copy)",
                       description="Fetch the official GroupLens zip, check its checksum and extract it "
                                   "atomically into <home>/data/<dataset>/. A second run does nothing.")
    dataset_argument(p)
    p.add_argument("--source", metavar="DIR_OR_ZIP", help="import a local folder or zip instead of downloading")
    p.add_argument("--force", action="store_true", help="fetch again even when present")
    p.add_argument("--base-url", help="where the zips live (default: GroupLens, or $POSTEREC_DATA_URL)")
    p.add_argument("--checksum", type=_checksum, metavar="ALGO:HEX", help="expected checksum of the zip, overriding the known one")
    p.add_argument("--timeout", type=float, default=60.0, help="read timeout in seconds (default: 60)")
    p.set_defaults(func=run_download)

    p = sub.add_parser("stats", help="counts, rating distribution, sparsity and genres of a dataset")
    dataset_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_stats)


def run_download(args) -> int:
    from catalog import dataset_checksum, fetch_dataset
    from catalog.download import dependent_versions

    before = dataset_checksum(args.home, args.dataset) if args.force else None
    result = fetch_dataset(args.home, args.dataset, source=args.source, force=args.force,
                           base_url=args.base_url, checksum=args.checksum, timeout=args.timeout)
    if result.fetched:
        print(f"{args.dataset}: installed into {result.path} (from {result.source})")
        if before is not None and dataset_checksum(args.home, args.dataset) != before:
            line = dependent_versions(args.home, args.dataset, before).warning(args.dataset)
            if line:
                print(line, file=sys.stderr)
    else:
        print(f"{args.dataset}: already present in {result.path} (use --force to fetch again)")
    return 0


def run_stats(args) -> int:
    from catalog import dataset_stats, format_stats, load_dataset

    stats = dataset_stats(load_dataset(args.home, args.dataset))
    if args.json:
        emit_json(stats)
    else:
        print(format_stats(stats))
    return 0
