"""``build-index``, ``export-neighbours`` and ``export-recommendations``: the fused index and batch lists."""
from __future__ import annotations

import argparse
import csv
import os
import secrets
from pathlib import Path

from ..output import emit_json, positive_int

DEFAULT_VISUAL_WEIGHT = 0.25  # for similar; chosen in benchmarks/README.md "Hybrid quality"
BLOCK_FILES = {"collaborative": "collab.npz", "visual": "visual.npz", "fused": "fused.npz"}
BATCH = 256
COLD_FILE = "collab_cold.npz"  # estimated collaborative vectors of poster-only movies
RANKING_COLD_FILE = "ranking_cold.npz"  # their estimated ranking vectors, so recommend can find them


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser("build-index", help="fuse collaborative + visual vectors and build the FAISS index",
                       description="Fuse the current model version's collab.npz and/or visual.npz (either may be "
                                   "missing) into fused.npz, index it, and write both into a NEW model version that "
                                   "becomes CURRENT only when everything succeeded.")
    p.add_argument("--visual-weight", type=_weight, default=None, metavar="W",
                   help=f"weight of the poster block, 0 = ratings only, 1 = posters only "
                        f"(default: {DEFAULT_VISUAL_WEIGHT}; with --add: the current index's weight)")
    p.add_argument("--kind", choices=["flat", "hnsw", "ivf"], default="flat",
                   help="flat = exact cosine (default); hnsw/ivf = approximate, for very large catalogues")
    p.add_argument("--add", action="store_true",
                   help="only add movies not yet in the current index (no full rebuild)")
    p.add_argument("--no-cold-start", action="store_true",
                   help="do not estimate collaborative vectors for poster-only movies")
    p.add_argument("--json", action="store_true", help="print the fusion/index manifest entries as JSON")
    p.set_defaults(func=run_build_index)

    p = sub.add_parser("export-neighbours", help="write the N nearest movies of every movie to a CSV",
                       description="Columns movie_id,rank,neighbour_id,score (cosine); a movie is never its own "
                                   "neighbour. Written atomically.")
    p.add_argument("--kind", choices=list(BLOCK_FILES), default="fused", help="which vectors (default: fused)")
    p.add_argument("-n", type=positive_int, default=10, help="neighbours per movie (default: 10)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    p.set_defaults(func=run_export_neighbours)

    p = sub.add_parser("export-recommendations", help="write the top N unseen movies of every user to a CSV",
                       description="Columns user_id,rank,movie_id,score (predicted rating, from scoring_users.npz "
                                   "and scoring_movies.npz); movies in seen.npz are excluded. Written atomically.")
    p.add_argument("-n", type=positive_int, default=10, help="movies per user (default: 10)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    p.set_defaults(func=run_export_recommendations)


# -- build-index ---------------------------------------------------------------------------
def run_build_index(args) -> int:
    from catalog import ModelStore

    result = build_index(ModelStore(args.home), visual_weight=args.visual_weight, kind=args.kind,
                         add=args.add, cold_start=not args.no_cold_start,
                         default_visual_weight=DEFAULT_VISUAL_WEIGHT)
    if args.json:
        emit_json(result)
    else:
        fusion, index = result["fusion"], result["index"]
        used = ", ".join(f"{b} ({v['count']} x {v['dim']}, weight {fusion['weights'][b]:.2f})"
                         for b, v in fusion["blocks"].items())
        print(f"used: {used}")
        for name in fusion.get("missing_blocks", []):
            print(f"not found: {BLOCK_FILES[name]} (no {name} vectors in this model version)")
        if fusion.get("cold_start", {}).get("estimated"):
            print(f"cold start: estimated collaborative vectors for {fusion['cold_start']['estimated']} poster-only movies")
        action = f"added {result['added']} movies to" if args.add else "built"
        print(f"{action} a {index['kind']} index of {index['count']} x {index['dim']} -> version {result['version']} (CURRENT)")
    return 0


def _load_blocks(version: Path) -> dict:
    from catalog import Vectors

    return {name: Vectors.load(version / BLOCK_FILES[name])
            for name in ("collaborative", "visual") if (version / BLOCK_FILES[name]).exists()}


def _movies_of(home: Path, manifest: dict):
    """The model's movie list (for genres/years), or None when it is not available."""
    from catalog import PosterecError, load_movies

    name = manifest.get("dataset")
    if not name:
        return None
    try:
        return load_movies(home, name)
    except PosterecError:
        return None


def input_checksums(version: Path) -> dict:
    """sha256 of the vector files an index is built from, so a stale index can be recognised."""
    from catalog.download import file_digest

    return {f: file_digest(version / f) for f in (BLOCK_FILES["collaborative"], BLOCK_FILES["visual"])
            if (version / f).exists()}


def _cold_start(blocks: dict, movies) -> tuple[dict, dict]:
    """Estimate collaborative vectors of poster-only movies (visual + genre one-hot + year bins ->
    collab), ridge alpha chosen by 5-fold validation on the movies that have both blocks."""
    import numpy as np

    from catalog import Vectors
    from fusion import genre_vectors, stack_features, year_vectors

    collab, visual = blocks["collaborative"], blocks["visual"]
    poster_only = np.setdiff1d(visual.ids, collab.ids)
    info = {"estimated": 0, "features": ["visual"]}
    if len(poster_only) == 0 or len(np.intersect1d(visual.ids, collab.ids)) < 2:
        return blocks, info
    features = visual
    if movies is not None:
        ids = movies["movie_id"].to_numpy()
        genres = {int(m): tuple(g) for m, g in zip(ids, movies["genres"])}
        vocabulary = sorted({g for gs in genres.values() for g in gs})
        extra, names = [genre_vectors(genres, vocabulary)], ["genres"]
        if "year" in movies:
            extra.append(year_vectors({int(m): (None if y != y else float(y))
                                       for m, y in zip(ids, movies["year"].astype("float64"))}))
            names.append("year")
        with_metadata = stack_features(visual, *extra)
        if len(np.setdiff1d(poster_only, with_metadata.ids)) == 0:
            features, info["features"] = with_metadata, ["visual", *names]
    estimate, mapping = _map_into(features, collab, poster_only)
    merged = Vectors(np.concatenate([collab.ids, estimate.ids]), np.vstack([collab.values, estimate.values]))
    info.update(estimated=int(len(poster_only)), fit_on=mapping.n_fit, alpha=mapping.alpha)
    info["_features"] = features  # for the ranking-space estimate; dropped before the manifest
    return dict(blocks, collaborative=merged), info


def _map_into(features, targets, ids, users=None):
    """Ridge-map ``features`` into ``targets``' space (alpha by 5-fold validation) for ``ids``."""
    from fusion import ColdStartMap, select_alpha

    try:
        alpha, _ = select_alpha(features, targets, users)
    except ValueError:  # too few movies with both for 5-fold validation
        alpha = 1.0
    mapping = ColdStartMap(alpha=alpha).fit(features, targets)
    return mapping.predict(features.subset(ids)), mapping


def _ranking_cold(version: Path, features, poster_only):
    """Ranking vectors (what ``recommend`` searches) estimated for poster-only movies, so they can
    be recommended; None when the version has no ranking vectors."""
    from catalog import Vectors

    movies_file, users_file = version / "ranking_movies.npz", version / "ranking_users.npz"
    if features is None or not len(poster_only) or not movies_file.exists() or not users_file.exists():
        return None
    estimate, _ = _map_into(features, Vectors.load(movies_file), poster_only, Vectors.load(users_file))
    return estimate


def build_index(store, visual_weight: float | None = None, kind: str = "flat", add: bool = False,
                cold_start: bool = True, default_visual_weight: float = DEFAULT_VISUAL_WEIGHT) -> dict:
    """Fuse the current version's blocks, index them and write a new CURRENT version.

    Any error (missing inputs, a dimension mismatch, a crash midway) leaves CURRENT as it was.
    Returns the manifest entries plus ``version`` and ``added``.
    """
    import numpy as np

    from catalog import ArtifactError, Vectors
    from fusion import fuse, fusion_summary
    from index import MovieIndex, MovieMetadata

    current = store.require_current()
    manifest = store.read_manifest(current)
    blocks = _load_blocks(current)
    if not blocks:
        raise ArtifactError(f"{current}: neither collab.npz nor visual.npz is there; run `posterec train` "
                            f"and/or `posterec embed` first")
    vision_dim = (manifest.get("vision") or {}).get("dim")
    if "visual" in blocks and vision_dim is not None and int(vision_dim) != blocks["visual"].dim:
        raise ArtifactError(f"{current / 'visual.npz'}: dimension {blocks['visual'].dim} but the manifest's "
                            f"vision.dim is {vision_dim}; re-run `posterec embed`")
    previous = manifest.get("fusion") or {}
    if add and visual_weight is None and previous.get("weights"):
        weights = dict(previous["weights"])
    else:
        w = default_visual_weight if visual_weight is None else visual_weight
        weights = {"collaborative": 1.0 - w, "visual": w}
    movies = _movies_of(store.home, manifest)
    cold = {"estimated": 0}
    original_collab = blocks.get("collaborative")
    if cold_start and {"collaborative", "visual"} <= set(blocks) and weights.get("collaborative", 0) > 0:
        blocks, cold = _cold_start(blocks, movies)
    features = cold.pop("_features", None)
    fused = fuse(blocks, {b: weights.get(b, 0.0) for b in blocks})
    summary = fusion_summary(blocks, {b: weights.get(b, 0.0) for b in blocks}, fused)
    summary.update(missing_blocks=[b for b in ("collaborative", "visual") if b not in blocks], cold_start=cold,
                   inputs=input_checksums(current))
    metadata = MovieMetadata.from_movies(movies) if movies is not None else None
    added = len(fused)
    if add:
        if not (current / "index.faiss").exists():
            raise ArtifactError(f"{current}: no index.faiss to add to; run `posterec build-index` without --add")
        index = MovieIndex.load(current)
        if index.dim != fused.dim:
            raise ArtifactError(f"{current / 'index.faiss'}: dimension {index.dim} but the fused vectors now have "
                                f"{fused.dim}; run `posterec build-index` without --add to rebuild")
        old_weights = previous.get("weights")
        if old_weights and any(abs(old_weights.get(b, 0.0) - summary["weights"].get(b, 0.0)) > 1e-9 for b in blocks):
            raise ArtifactError(f"the index was built with weights {old_weights}, not {summary['weights']}; "
                                f"--add cannot change weights: run `posterec build-index` without --add")
        new_ids = np.setdiff1d(fused.ids, index.movie_ids)
        index.add(fused.subset(new_ids))
        index.metadata = metadata or index.metadata
        stored = index.vectors()
        fused = Vectors(stored.ids, stored.values)
        summary.update(count=len(fused), added=int(len(new_ids)))
        added = int(len(new_ids))
    else:
        index = MovieIndex.build(fused, kind=kind, normalize=True, metadata=metadata)
    with store.new_version() as writer:
        cold_file, ranking_file = writer.path / COLD_FILE, writer.path / RANKING_COLD_FILE
        for stale in (cold_file, ranking_file):
            stale.unlink(missing_ok=True)
        if cold.get("estimated") and original_collab is not None:
            estimated = np.setdiff1d(blocks["collaborative"].ids, original_collab.ids)
            blocks["collaborative"].subset(estimated).save(cold_file)
            ranking = _ranking_cold(current, features, estimated)
            if ranking is not None:
                ranking.save(ranking_file)
                summary["cold_start"]["ranking_estimated"] = len(ranking)
        fused.save(writer.path / BLOCK_FILES["fused"])
        index_manifest = index.save(writer.path)
        writer.manifest["fusion"] = summary
        writer.manifest["index"] = index_manifest
    return {"fusion": summary, "index": index_manifest, "version": store.current_name(), "added": added}


# -- exports ---------------------------------------------------------------------------------
class _AtomicCsv:
    """A CSV written to a temporary file next to ``path`` and renamed over it on success."""

    def __init__(self, path: Path, header: list[str]):
        self.path = Path(path)
        self.header = header

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        self.fh = open(self.tmp, "w", newline="")
        writer = csv.writer(self.fh)
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

    from catalog import ModelStore, Vectors
    from index import MovieIndex

    version = ModelStore(args.home).require_current()
    vectors = Vectors.load(version / BLOCK_FILES[args.kind])
    index = MovieIndex.build(vectors, kind="flat", normalize=True)
    with _AtomicCsv(args.out, ["movie_id", "rank", "neighbour_id", "score"]) as writer:
        for start in tqdm(range(0, len(vectors), BATCH), desc=f"{args.kind} neighbours", unit="batch"):
            ids = vectors.ids[start:start + BATCH]
            hits = index.search_each(vectors.values[start:start + BATCH], args.n, exclude=[np.array([i]) for i in ids])
            writer.writerows(_rows(hits, ids))
    print(f"wrote {args.out}: {args.n} {args.kind} neighbours for each of {len(vectors)} movies")
    return 0


def run_export_recommendations(args) -> int:
    from tqdm import tqdm

    from catalog import ArtifactError, ModelStore, Vectors
    from catalog import SeenItems
    from index import MovieIndex

    version = ModelStore(args.home).require_current()
    users = Vectors.load(version / "scoring_users.npz")
    movies = Vectors.load(version / "scoring_movies.npz")
    if users.dim != movies.dim:
        raise ArtifactError(f"{version}: scoring_users.npz has dimension {users.dim} but scoring_movies.npz "
                            f"{movies.dim}; retrain with `posterec train`")
    seen = SeenItems.load(version / "seen.npz")
    index = MovieIndex.build(movies, kind="flat", normalize=False)
    with _AtomicCsv(args.out, ["user_id", "rank", "movie_id", "score"]) as writer:
        for start in tqdm(range(0, len(users), BATCH), desc="recommendations", unit="batch"):
            ids = users.ids[start:start + BATCH]
            hits = index.search_each(users.values[start:start + BATCH], args.n, exclude=[seen.of(u) for u in ids])
            writer.writerows(_rows(hits, ids))
    print(f"wrote {args.out}: top {args.n} unseen movies for each of {len(users)} users")
    return 0
