"""``add-movie``: a new movie with its poster, in a new model version, without retraining."""
from __future__ import annotations

from pathlib import Path

from ..output import emit_json


def register(sub) -> None:
    p = sub.add_parser("add-movie", help="add a new movie with its poster, without retraining",
                       description="Check the poster (like import-posters), embed it with the model's recorded "
                                   "backbone, place the movie through the cold-start maps and add it to the index, "
                                   "in a new model version switched atomically. similar, lookalike and recommend "
                                   "can return it at once.")
    p.add_argument("--title", required=True, help="the title, e.g. \"Arrival\"")
    p.add_argument("--year", type=int, help="the release year")
    p.add_argument("--genres", required=True, help="genres separated by |, e.g. \"Drama|Sci-Fi\"")
    p.add_argument("--poster", required=True, metavar="FILE", help="the poster image (JPEG or PNG)")
    p.add_argument("--movie-id", type=int, metavar="N", help="its id (default: one above the largest)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_add_movie)


def run_add_movie(args) -> int:
    from catalog import DatasetError

    from ..additions import add_movie

    path = Path(args.poster)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such poster file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    added = add_movie(args.home, args.title, args.year, args.genres, data, movie_id=args.movie_id)
    if args.json:
        emit_json(added)
    else:
        print(f"added movie {added['movie_id']} {added['title']!r} in model version {added['version']}")
    return 0
