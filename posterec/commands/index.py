"""``build-index``, ``export-neighbours`` and ``export-recommendations``: the fused index and batch lists."""
from __future__ import annotations

import csv
import os
import secrets
from pathlib import Path

from ..output import count, emit_json, weight_argument
from ..pipeline import DEFAULT_VISUAL_WEIGHT

BATCH = 256
CHUNK_USERS = 8192  # users per checkpointed chunk of export-recommendations
EXPORT_KINDS = ("fused", "collaborative", "visual")


def register(sub) -> None:
    p = sub.add_parser("build-index", help="fuse collaborative + visual vectors and build the FAISS index",
                       description="Fuse the current model version's rating-model movie vectors and/or poster embeddings "
                                   "(either may be missing), index them, and write the index into a NEW model version that "
                                   "becomes CURRENT only when everything succeeded.")
    p.add_argument("--visual-weight", type=weight_argument, default=None, metavar="W",
                   help=f"weight of the poster block, 0 = ratings only, 1 = posters only "
                        f"(default: {DEFAULT_VISUAL_WEIGHT}; with --add: the current index's weight)")
    p.add_argument("--kind", choices=["auto", "flat", "hnsw", "ivf", "ivfpq"], default="auto",
                   help="auto (default) = exact flat up to 32M values (movies x dims: every MovieLens set to ml-1m), "
                        "HNSW up to 250,000 movies, IVF-PQ with exact re-ranking above (index.auto_kind); "
                        "flat = exact cosine; hnsw/ivf = approximate; ivfpq = compressed codes searched in memory, "
                        "their best 8 x n candidates re-ranked exactly from the full vectors the file also keeps "
                        "(bytes per vector printed; a server maps the file, so those stay in the page cache)")
    p.add_argument("--add", action="store_true",
                   help="only add movies not yet in the current index (no full rebuild)")
    p.add_argument("--no-cold-start", action="store_true",
                   help="do not estimate collaborative vectors for poster-only movies")
    p.add_argument("--json", action="store_true", help="print the fusion/index manifest entries as JSON")
    p.set_defaults(func=run_build_index)

    p = sub.add_parser("export-neighbours", help="write the N nearest movies of every movie to a CSV",
                       description="Columns movie_id,rank,neighbour_id,score (cosine); a movie is never its own "
                                   "neighbour. Written atomically.")
    p.add_argument("--kind", choices=EXPORT_KINDS, default="fused", help="which vectors (default: fused)")
    p.add_argument("-n", type=count, default=10, help="neighbours per movie (default: 10)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    p.set_defaults(func=run_export_neighbours)

    p = sub.add_parser("export-recommendations", help="write the top N unseen movies of every user to a CSV",
                       description="Columns user_id,rank,movie_id,score. Ranked exactly as `recommend` ranks "
                                   "(the ranking model), or by predicted rating with --by rating; movies the user "
                                   "rated in training are excluded. Written in checkpointed chunks of "
                                   f"{CHUNK_USERS} users: an interrupted run, rerun with the same model and "
                                   "settings, continues after the last complete chunk; the file appears "
                                   "atomically at the end.")
    p.add_argument("-n", type=count, default=10, help="movies per user (default: 10)")
    p.add_argument("--by", choices=("ranking", "rating"), default="ranking",
                   help="ranking (default: as `recommend`) or rating (predicted rating)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    p.set_defaults(func=run_export_recommendations)


# -- build-index ---------------------------------------------------------------------------
def run_build_index(args) -> int:
    from ..pipeline import build_index

    result = build_index(args.home, visual_weight=args.visual_weight, kind=args.kind, add=args.add,
                         cold_start=not args.no_cold_start)
    if args.json:
        emit_json(result)
        return 0
    fusion, index = result["fusion"], result["index"]
    used = ", ".join(f"{b} ({v['count']} x {v['dim']}, weight {fusion['weights'][b]:.2f})"
                     for b, v in fusion["blocks"].items())
    print(f"used: {used}")
    for name in result.get("missing_blocks", []):
        print(f"not found: {name} vectors (run `posterec {'train' if name == 'collaborative' else 'embed'}` to add them)")
    if result["cold_start"].get("estimated"):
        print(f"cold start: estimated vectors for {result['cold_start']['estimated']} poster-only movies")
    action = f"added {result['added']} movies to" if args.add else "built"
    per = f"{index.get('bytes_per_vector', '?')} bytes per vector"
    scanned = index.get("searched_bytes_per_vector")
    if scanned is not None and scanned != index.get("bytes_per_vector"):
        per += f", {scanned} of them scanned per search, the rest read for the re-ranked candidates only"
    print(f"{action} a {index['kind']} index of {index['count']} x {index['dim']} ({per}) "
          f"-> version {result['version']} (CURRENT)")
    return 0


# -- exports ---------------------------------------------------------------------------------
class _AtomicCsv:
    """A CSV written to a temporary file next to ``path`` and renamed over it on success
    (``header`` None: no header row)."""

    def __init__(self, path: Path, header: list[str] | None):
        self.path = Path(path)
        self.header = header

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        self.fh = open(self.tmp, "w", newline="")
        writer = csv.writer(self.fh)
        if self.header is not None:
            writer.writerow(self.header)
        return writer

    def __exit__(self, exc_type, exc, tb):
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def _rows(hits_list, owners):
    for owner, hits in zip(owners, hits_list):
        for rank, (movie_id, score) in enumerate(zip(hits.movie_ids, hits.scores), start=1):
            yield int(owner), rank, int(movie_id), f"{float(score):.6g}"


def run_export_neighbours(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..recommender import Recommender

    rec = Recommender.load(args.home)
    if args.kind == "fused":
        space = rec.space(rec.default_visual_weight if rec.has_posters else 0.0)
    elif args.kind in rec.blocks:
        space = rec.space(1.0 if args.kind == "visual" else 0.0)
    else:
        from catalog import ArtifactError

        raise ArtifactError(f"model {rec.version} has no {args.kind} vectors; run "
                            f"`posterec {'embed' if args.kind == 'visual' else 'train'}` first")
    vectors = space.vectors()
    with _AtomicCsv(args.out, ["movie_id", "rank", "neighbour_id", "score"]) as writer:
        for start in tqdm(range(0, len(vectors), BATCH), desc=f"{args.kind} neighbours", unit="batch"):
            ids = vectors.ids[start:start + BATCH]
            hits = space.search_each(vectors.values[start:start + BATCH], args.n, exclude=[np.array([i]) for i in ids])
            writer.writerows(_rows(hits, ids))
    print(f"wrote {args.out}: {args.n} {args.kind} neighbours for each of {len(vectors)} movies")
    return 0


def run_export_recommendations(args) -> int:
    from tqdm import tqdm

    from ..recommender import Recommender

    rec = Recommender.load(args.home)
    rec.pin_exact_route("numpy")  # the same scores, bit for bit, in every process that writes a chunk
    users = rec.known_users()
    parts = _Checkpoints(args.out, {"version": rec.version, "n": args.n, "by": args.by, "users": len(users),
                                    "chunk_users": CHUNK_USERS})
    header = ["user_id", "rank", "movie_id", "score"]
    starts = range(0, len(users), CHUNK_USERS)
    done = parts.resume(len(starts))
    if done:
        print(f"resuming {args.out}: {done} of {len(starts)} chunks of {CHUNK_USERS} users already written")
    with tqdm(total=len(users), initial=min(done * CHUNK_USERS, len(users)), desc="recommendations",
              unit="user") as bar:
        for k, start in enumerate(starts):
            if k < done:
                continue
            chunk = users[start:start + CHUNK_USERS]
            with parts.chunk(k) as writer:
                for s in range(0, len(chunk), BATCH):
                    ids = chunk[s:s + BATCH]
                    writer.writerows(_rows(rec.recommend_many(ids, args.n, by=args.by), ids))
                    bar.update(len(ids))
    parts.join(len(starts), header)
    print(f"wrote {args.out}: top {args.n} unseen movies for each of {len(users)} users (by {args.by})")
    return 0


class _Checkpoints:
    """Chunks of a long export, each written atomically into ``.<name>.parts/`` beside ``path``,
    joined into ``path`` (atomically) at the end; a rerun with the same ``key`` (model version,
    settings) continues after the last complete chunk, another key starts again."""

    def __init__(self, path: Path, key: dict):
        self.path = Path(path)
        self.dir = self.path.with_name(f".{self.path.name}.parts")
        self.key = key

    def _part(self, k: int) -> Path:
        return self.dir / f"part-{k:06d}.csv"

    def resume(self, n_chunks: int) -> int:
        """How many leading chunks are complete (0 after clearing another run's chunks)."""
        import json
        import shutil

        meta = self.dir / "key.json"
        if self.dir.exists():
            try:
                same = json.loads(meta.read_text()) == self.key
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            tmp = meta.with_name(f".key.{secrets.token_hex(4)}.tmp")
            tmp.write_text(json.dumps(self.key))
            os.replace(tmp, meta)
        done = 0
        while done < n_chunks and self._part(done).exists():
            done += 1
        return done

    def chunk(self, k: int) -> _AtomicCsv:
        return _AtomicCsv(self._part(k), None)

    def join(self, n_chunks: int, header: list[str]) -> None:
        import shutil

        out = _AtomicCsv(self.path, header)
        with out:  # the header, then each chunk's text as it is
            out.fh.flush()
            for k in range(n_chunks):
                with open(self._part(k), newline="") as part:
                    shutil.copyfileobj(part, out.fh, 1 << 20)
        shutil.rmtree(self.dir, ignore_errors=True)
