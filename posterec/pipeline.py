"""The stages as library calls: `train`, `embed`, `build_index`, and what is `stale`.

Each stage reads the current model version, writes a new one through `catalog.ModelStore`
(atomically: a failure leaves CURRENT as it was) and returns the new `ModelVersion`. The CLI,
``POST /admin/rebuild``, ``demo`` and `Recommender` call these functions and nothing else; the
command modules only parse arguments and print.

This module combines stages (``text_model``, ``vision_model``, ``fusion``, ``index``), which is
why it lives in ``posterec``. Heavy imports (TensorFlow) happen inside `train` and `embed` only.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog import ArtifactError, ModelStore, ModelVersion, PosterecError, Vectors

DEFAULT_VISUAL_WEIGHT = 0.25  # similar's poster weight (see docs/guide.md, "Why it works and where it does not")
FUSED_BLOCKS = ("collaborative", "visual")
# what recommend ranks with after build-index: "vbpr" (fusion.vbpr, learned from ratings, posters and
# metadata) or "base" (the ranking model train fit). The default comes from the train config's
# `learned_ranking`, off by default: in benchmarks/README.md "Ranking quality" vbpr ranks below the
# puresvd+rating blend on both splits, tail items included.
RANKING_MODELS = ("vbpr", "base")
RANKING_CHOSEN_BY = "benchmarks/ranking_quality.py (benchmarks/README.md, Ranking quality): base beats vbpr"


# -- shared readers ------------------------------------------------------------------------------
def visual_vectors(version: ModelVersion) -> Vectors | None:
    if not version.has("visual"):
        return None
    data = version.arrays("visual", ("movie_ids", "values"))
    try:
        return Vectors(data["movie_ids"], data["values"])
    except ValueError as exc:
        raise version.invalid(version_artifact("visual"), str(exc)) from None


def cold_start_vectors(version: ModelVersion) -> tuple[Vectors, Vectors] | None:
    """(collaborative, ranking) vectors estimated for poster-only movies, or None."""
    if not version.has("cold_start"):
        return None
    d = version.arrays("cold_start", ("movie_ids", "collaborative", "ranking"))
    try:
        return Vectors(d["movie_ids"], d["collaborative"]), Vectors(d["movie_ids"], d["ranking"])
    except ValueError as exc:
        raise version.invalid(version_artifact("cold_start"), str(exc)) from None


def version_artifact(key: str):
    from catalog.version import artifact

    return artifact(key)


def stack(base: Vectors, extra: Vectors | None) -> Vectors:
    """``base`` plus the rows of ``extra`` whose ids it lacks."""
    if extra is None or len(extra) == 0:
        return base
    keep = ~np.isin(extra.ids, base.ids)
    return Vectors(np.concatenate([base.ids, extra.ids[keep]]), np.vstack([base.values, extra.values[keep]]))


def text_vectors(version: ModelVersion, learned: bool = True):
    """The rating model's vectors and the ranking model over them (numpy, no TensorFlow), or (None, None).

    The ranking model is the learned one (``vbpr``, fit by ``build-index``) when the version has it
    and ``learned``; otherwise the one ``train`` fit (``puresvd+rating``).
    """
    if not version.has("text_model"):
        return None, None
    from text_model import RatingVectors, RankingVectors
    from text_model.ranking import read_learned

    rating = RatingVectors.load(version)
    found = read_learned(version) if learned else None
    if found is not None:
        from fusion.vbpr import VisualBPR

        name, params, arrays = found
        try:
            users, movies = VisualBPR.from_arrays(arrays, params.get("config")).vectors()
        except (ValueError, TypeError) as exc:
            raise version.invalid(version_artifact("ranking"), f"not a valid {name} model ({exc})") from None
        return rating, RankingVectors(name, params, users, movies)
    ranking = RankingVectors.load(version, rating) if version.has("ranking") else None
    return rating, ranking


def train_config(version: ModelVersion):
    """The version's `TextModelConfig` (the default one when it recorded none readable)."""
    from text_model import TextModelConfig

    saved = version.stage("train").get("config")
    try:
        return TextModelConfig.from_dict(saved) if isinstance(saved, dict) else TextModelConfig()
    except (TypeError, ValueError):
        return TextModelConfig()


def _vbpr_config(version: ModelVersion):
    from fusion.vbpr import VBPRConfig

    return VBPRConfig(**train_config(version).vbpr_settings(), seed=0)


def learned_ranking_config(version: ModelVersion):
    """The `fusion.vbpr.VBPRConfig` of the version's train config, or None when it asks for none."""
    return _vbpr_config(version) if train_config(version).learned_ranking else None


def fit_learned_ranking(version: ModelVersion, rating, visual: Vectors | None, movies, config=None):
    """The learned visual-collaborative ranking model (`fusion.vbpr`) on the version's training
    ratings, its posters, genres and years; (model, manifest entry)."""
    from catalog import Interactions
    from fusion.vbpr import fit_vbpr, movie_features

    interactions = Interactions.from_arrays(version.arrays("interactions"))
    ids = movies["movie_id"].to_numpy()
    genres = {int(m): tuple(g) for m, g in zip(ids, movies["genres"])}
    years = {int(m): (None if y != y else float(y)) for m, y in zip(ids, movies["year"].astype("float64"))}
    catalogue = np.union1d(ids, interactions.movie_ids)
    features = movie_features(catalogue, visual, genres, years)
    model = fit_vbpr(interactions, features, config, user_ids=rating.user_ids)
    entry = {"name": model.name, "config": model.config.to_dict(), "features": {
        "posters": 0 if visual is None else len(visual), "dim": int(features.dim)},
        "validation": model.history.get("validation"), "fit_seconds": round(model.fit_seconds, 1)}
    return model, entry


def _check_dataset(home: Path, version: ModelVersion) -> str:
    """The dataset the model was made from, checked against the copy in the home (its checksum)."""
    from catalog import dataset_checksum

    name = version.manifest.get("dataset")
    if not name:
        raise ArtifactError(f"{version.path}: the manifest names no dataset; run `posterec train` first")
    want = version.manifest.get("dataset_checksum")
    if want:
        have = dataset_checksum(home, name)
        if have is not None and have != want:
            raise ArtifactError(f"model {version.name} was made from another copy of {name} than the one in "
                                f"{Path(home) / 'data' / name}; retrain with `posterec train --dataset {name}`, "
                                f"or `posterec download --dataset {name} --force --source` the old copy back")
    return name


def movies_of(home: Path, version: ModelVersion):
    """The model's catalogue (movies frame), checked against the dataset the model was made from."""
    from catalog import load_movies

    from .additions import with_added

    return with_added(load_movies(home, _check_dataset(home, version)), version)


def movie_list_of(home: Path, version: ModelVersion):
    """The model's catalogue as a `catalog.MovieList` (no pandas: what queries need), checked as
    `movies_of` checks it, with the version's added movies."""
    from catalog import read_movie_list

    from .additions import added_rows

    return read_movie_list(home, _check_dataset(home, version)).plus(added_rows(version))


# -- train ---------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    version: ModelVersion | None  # None on a multiworker task that is not the chief: it writes none
    metrics: dict = field(default_factory=dict)


# splits whose models pick their settings on each user's latest training rating unless told otherwise:
# a model for use (its next movie comes after the rest) and leave-last-out (the same shape)
LATEST_VALIDATION = ("none", "leave-last-out")


def train(home, dataset: str, split: str = "none", seed: int = 0, test_pairs=None, config: str = "best",
          epochs: int | None = None, verbose: int = 2, announce=print, strategy: str = "default",
          checkpoint_dir=None, validation: str | None = None) -> TrainResult:
    """Fit the rating and ranking models on ``split``'s training part and write a new version.

    ``validation`` (``random`` or ``latest``) is the validation slice of the training part that
    early stopping and the ranking model's settings are chosen on. Default: ``latest`` for
    `LATEST_VALIDATION` splits without ``test_pairs`` (when the ratings have timestamps), else the
    config's ``validation_slice``.

    ``split="none"`` trains on every rating (a model for use); any other split, or ``test_pairs``,
    makes an evaluation model (``purpose: evaluation`` in the manifest) that knows only its
    training ratings, its seen set included.

    ``strategy`` (`text_model.distribute.STRATEGIES`): ``multiworker`` trains the rating model on
    the cluster of ``$TF_CONFIG``, backing its state up under ``checkpoint_dir`` (default: under
    ``home/checkpoints``); the chief alone fits the ranking model and writes the version.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from catalog import load_dataset, make_split
    from text_model import get_config
    from text_model.artifacts import save_trained
    from text_model.distribute import checkpoint_root, make_distribution
    from text_model.evaluation import rating_metrics
    from text_model.trainer import fit_text_model

    home = Path(home)
    cfg = get_config(config).with_overrides(epochs=epochs, validation_slice=validation)
    if strategy == "multiworker" and checkpoint_dir is None:
        checkpoint_dir = checkpoint_root(home, {"dataset": dataset, "split": split, "seed": seed,
                                                "test_pairs": str(test_pairs), "config": cfg.to_dict()})
    dist = make_distribution(strategy, checkpoint_dir)  # before any other TensorFlow op
    data = load_dataset(home, dataset)
    if validation is None and split in LATEST_VALIDATION and test_pairs is None and "timestamp" in data.ratings:
        cfg = cfg.with_overrides(validation_slice="latest")
    chosen = make_split(data.ratings, split, seed, test_pairs=test_pairs)
    where = "" if dist.cluster is None else f" as {dist.cluster.task} of {dist.n_workers} workers"
    announce(f"training text_model ({cfg.name}) on {data.name}{where}: {len(chosen.train)} train / "
             f"{len(chosen.test)} test ratings ({chosen.name}, seed {chosen.seed})")
    tm = fit_text_model(data, chosen.train, cfg, seed=seed, verbose=verbose, distribution=dist)
    if dist.backup_dir is not None:
        with contextlib.suppress(OSError):
            dist.backup_dir.parent.rmdir()  # empty once every task's backup is gone
    if not dist.is_chief:
        return _worker_done(tm, dist, announce)
    metrics = {"fit_seconds": round(tm.fit_seconds, 2)}
    if len(chosen.test):
        known = np.isin(chosen.test["user_id"].to_numpy(), tm.vocab.user_ids) & \
            np.isin(chosen.test["movie_id"].to_numpy(), tm.vocab.movie_ids)
        test = chosen.test[known]
        if len(test):
            metrics.update(rating_metrics(tm, test["user_id"], test["movie_id"], test["rating"]))
    store = ModelStore(home)
    try:
        with store.new_version() as writer:
            if writer.manifest.get("dataset") not in (None, data.name):
                for key in ("visual", "cold_start", "index"):  # posters of another dataset
                    writer.drop(key)
                writer.manifest["stages"].pop("embed", None)
                writer.manifest["stages"].pop("build-index", None)
            writer.start_stage("train")
            save_trained(writer, tm, data, chosen, metrics, home)
            if dist.strategy is not None:
                writer.manifest["stages"]["train"]["strategy"] = {"name": dist.name, "workers": dist.n_workers}
    finally:
        dist.barrier()  # the other workers wait here for the version (or the chief's failure)
    return TrainResult(store.open_current(), metrics)


def _worker_done(tm, dist, announce) -> TrainResult:
    """A multiworker task that is not the chief: it saves the network as the chief does (saving
    reads the distributed variables, which may take part in collectives), into a temporary store
    that it then throws away, and waits for the chief. It writes no version."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"posterec-{dist.cluster.task}-") as tmp, \
            ModelStore(tmp).new_version(base=None) as writer:
        tm.save(writer)
    dist.barrier()
    announce(f"{dist.cluster.task}: trained; the chief writes the model version")
    return TrainResult(None, {"fit_seconds": round(tm.fit_seconds, 2)})


# -- embed ---------------------------------------------------------------------------------------
@dataclass
class EmbedSummary:
    version: ModelVersion
    result: object              # vision_model.EmbedResult
    n_catalogue: int
    missing: list[int]
    strangers: list[int]


def embed(home, dataset: str, config, runtime: str = "tflite", progress: bool = True,
          engine=None, posters_url: str | None = None) -> EmbedSummary:
    """Embed the poster store's usable posters of ``dataset`` into a new version's ``visual`` artifact.

    ``engine`` (a `vision_model.cluster.RayConfig`) runs the model on Ray instead of in this
    process; its workers read each poster under ``posters_url`` (a shared folder or an object-store
    URI holding the store's files; default: the store's own folder, which they must then see).
    The cache, the version and its manifest are the same either way."""
    from catalog import DatasetError, load_movies
    from posters import PosterStore
    from vision_model import embed_posters

    home = Path(home)
    models = ModelStore(home)
    current = models.open_current() if models.current() is not None else None
    # the catalogue includes the movies `add-movie` put in: their posters stay embedded
    movies = movies_of(home, current) if current is not None and current.manifest.get("dataset") == dataset \
        else load_movies(home, dataset)
    catalogue = {int(m) for m in movies["movie_id"]}
    store = PosterStore(home, dataset)
    entries = store.entries()
    strangers = sorted(e.movie_id for e in entries if e.movie_id not in catalogue)
    entries = [e for e in entries if e.movie_id in catalogue]
    if not entries:
        raise DatasetError(f"no ok posters for {dataset} in {store.dir}: run `posterec scrape-posters "
                           f"--dataset {dataset}` or `posterec import-posters DIR --dataset {dataset}` first")
    cache_dir = home / "cache" / "embeddings"
    if engine is None:
        result = embed_posters(entries, config, cache_dir=cache_dir, runtime=runtime)
    else:
        from vision_model.cluster import RayEmbedder, poster_url

        try:
            remote = [e._replace(path=poster_url(e.path, store.dir, posters_url)) for e in entries]
        except ValueError as exc:
            raise DatasetError(f"{exc}; --posters-url names the folder that holds {store.dir}'s files") from None
        embedder = RayEmbedder(config, engine, runtime=runtime, cache_dir=cache_dir,
                               sha256={str(e.path): e.sha256 for e in remote})
        result = embed_posters(remote, config, cache_dir=cache_dir, embedder=embedder, progress=progress)
    if len(result.vectors) == 0:
        raise DatasetError(f"none of the {len(entries)} posters of {dataset} could be decoded "
                           f"(first: movie {result.failed[0].movie_id}: {result.failed[0].error})")
    missing = sorted(catalogue - {e.movie_id for e in entries})
    with models.new_version() as writer:
        if writer.manifest.get("dataset") not in (None, dataset):
            raise DatasetError(f"the current model is for {writer.manifest['dataset']}, not {dataset}: "
                               f"train a {dataset} model first, or embed --dataset {writer.manifest['dataset']}")
        writer.start_stage("embed")
        writer.write_arrays("visual", inputs={"posters": posters_digest(entries), "config": config.cache_key()},
                            movie_ids=result.vectors.ids, values=result.vectors.values)
        writer.set_stage("embed", {
            **config.to_dict(), "dataset": dataset, "dim": result.vectors.dim, "n": len(result.vectors),
            "cache_key": config.cache_key(), "runtime": runtime, "n_catalogue": len(catalogue),
            "missing": missing, "failed": [{"movie_id": f.movie_id, "error": f.error} for f in result.failed],
            **({} if engine is None else {"engine": {"name": "ray", **engine.to_dict(), "posters_url": posters_url}}),
        })
        writer.manifest.setdefault("dataset", dataset)
    return EmbedSummary(models.open_current(), result, len(catalogue), missing, strangers)


def posters_digest(entries) -> str:
    """One checksum of the posters embedded (movie id and sha256 of each), to tell when they change."""
    import hashlib

    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.movie_id):
        h.update(f"{e.movie_id}:{e.sha256}\n".encode())
    return h.hexdigest()


# -- build-index ---------------------------------------------------------------------------------
def fusion_blocks(rating, visual: Vectors | None, cold: tuple[Vectors, Vectors] | None) -> dict[str, Vectors]:
    """The blocks fused into one space: the rating towers' movie vectors (with the cold-start
    estimates of poster-only movies) and the poster embeddings."""
    blocks = {}
    if rating is not None:
        blocks["collaborative"] = stack(rating.movies, None if cold is None else cold[0])
    if visual is not None:
        blocks["visual"] = visual
    return blocks


def weights_for(blocks: dict, visual_weight: float) -> dict[str, float]:
    return {b: (visual_weight if b == "visual" else 1.0 - visual_weight) for b in blocks}


def _cold_start_features(visual: Vectors, movies) -> tuple[Vectors, list[str]]:
    from fusion import genre_vectors, stack_features, year_vectors

    if movies is None:
        return visual, ["visual"]
    ids = movies["movie_id"].to_numpy()
    genres = {int(m): tuple(g) for m, g in zip(ids, movies["genres"])}
    vocabulary = sorted({g for gs in genres.values() for g in gs})
    extra, names = [genre_vectors(genres, vocabulary)], ["genres"]
    if "year" in movies:
        extra.append(year_vectors({int(m): (None if y != y else float(y))
                                   for m, y in zip(ids, movies["year"].astype("float64"))}))
        names.append("year")
    features = stack_features(visual, *extra)
    if len(np.setdiff1d(visual.ids, features.ids)):
        return visual, ["visual"]
    return features, ["visual", *names]


def estimate_cold_start(rating, ranking, visual: Vectors, movies) -> tuple[tuple[Vectors, Vectors] | None, dict]:
    """Collaborative and ranking vectors for the movies that have a poster but no ratings: ridge
    maps from poster + genres + year, fit on the movies that have both (alpha by 5-fold validation)."""
    from fusion import ColdStartMap, select_alpha

    poster_only = np.setdiff1d(visual.ids, rating.movies.ids)
    info: dict = {"estimated": 0}
    if not len(poster_only) or len(np.intersect1d(visual.ids, rating.movies.ids)) < 2:
        return None, info
    features, names = _cold_start_features(visual, movies)

    def mapped(targets: Vectors, users: Vectors | None):
        try:
            alpha, _ = select_alpha(features, targets, users)
        except ValueError:  # too few movies with both for 5-fold validation
            alpha = 1.0
        m = ColdStartMap(alpha=alpha).fit(features, targets)
        return m.predict(features.subset(poster_only)), m

    collab, cmap = mapped(rating.movies, None)
    ranked = (ranking.ranking_movies, ranking.ranking_users) if ranking is not None else \
        (rating.scoring_movies, rating.scoring_users)
    rank, _ = mapped(*ranked)
    info.update(estimated=int(len(poster_only)), features=names, fit_on=cmap.n_fit, alpha=cmap.alpha)
    return (collab, rank), info


def build_index(home, visual_weight: float | None = None, kind: str = "auto", add: bool = False,
                cold_start: bool = True, ranking_model: str | None = None) -> dict:
    from .progress import steps

    with steps("build-index", 5) as step:
        return _build_index(home, visual_weight, kind, add, cold_start, step, ranking_model)


def _build_index(home, visual_weight, kind, add, cold_start, step, ranking_model=None) -> dict:
    """Fuse the current version's blocks, index them and write a new CURRENT version.

    Any error (missing inputs, a dimension mismatch, a crash midway) leaves CURRENT as it was.
    Returns the stage's manifest entry plus ``version`` and ``added``.
    """
    from fusion import fuse, fusion_summary
    from index import MovieIndex, MovieMetadata

    home = Path(home)
    store = ModelStore(home)
    step("reading the current version")
    current = store.open_current()
    rating, ranking = text_vectors(current, learned=False)
    visual = visual_vectors(current)
    if rating is None and visual is None:
        raise ArtifactError(f"{current.path}: no rating model and no poster embeddings; run `posterec train` "
                            f"and/or `posterec embed` first")
    vbpr_config = learned_ranking_config(current) if rating is not None else None
    if ranking_model is None:
        ranking_model = "vbpr" if vbpr_config is not None else "base"
    if ranking_model not in RANKING_MODELS:
        raise ValueError(f"ranking model must be one of {', '.join(RANKING_MODELS)}, got {ranking_model!r}")
    previous = current.stage("build-index")
    if add and visual_weight is None and previous.get("visual_weight") is not None:
        w = float(previous["visual_weight"])
    else:
        w = DEFAULT_VISUAL_WEIGHT if visual_weight is None else float(visual_weight)
    movies = movies_of(home, current)
    cold, cold_info = None, {"estimated": 0}
    step("estimating poster-only movies")
    if cold_start and rating is not None and visual is not None and w < 1.0:
        cold, cold_info = estimate_cold_start(rating, ranking, visual, movies)
    learned = learned_info = None
    if ranking_model == "vbpr" and rating is not None and current.has("interactions"):
        learned, learned_info = fit_learned_ranking(current, rating, visual, movies,
                                                    vbpr_config or _vbpr_config(current))
        if cold is not None:  # poster-only movies: the learned model scores them itself
            cold = (cold[0], learned.vectors()[1].subset(cold[0].ids))
    step("fusing")
    blocks = fusion_blocks(rating, visual, cold)
    weights = weights_for(blocks, w)
    fused = fuse(blocks, weights)
    summary = fusion_summary(blocks, weights, fused)
    metadata = MovieMetadata.from_movies(movies)
    added = len(fused)
    step(f"indexing {len(fused)} movies")
    if add:
        base = _last_indexed(store, current)
        index = MovieIndex.load(base, base.stage("build-index").get("index") or {}, metadata=metadata)
        if index.dim != fused.dim:
            raise ArtifactError(f"the index of model {base.name} has dimension {index.dim} but the fused vectors "
                                f"now have {fused.dim}; run `posterec build-index` without --add to rebuild")
        built_at = float(base.stage("build-index").get("visual_weight", w))
        if abs(built_at - w) > 1e-9:
            raise ArtifactError(f"the index was built with visual weight {built_at}, not {w}; "
                                f"--add cannot change weights: run `posterec build-index` without --add")
        common = np.intersect1d(fused.ids, index.movie_ids)
        if len(index.changed(fused.subset(common))):  # against the index's own codes for a lossy kind
            raise ArtifactError(f"the vectors of movies already in the index of model {base.name} have changed "
                                f"since it was built; run `posterec build-index` without --add to rebuild")
        new_ids = np.setdiff1d(fused.ids, index.movie_ids)
        index.add(fused.subset(new_ids))
        added = int(len(new_ids))
    else:
        index = MovieIndex.build(fused, kind=kind, normalize=True, metadata=metadata)
    step("writing the new version")
    with store.new_version() as writer:
        writer.start_stage("build-index")
        from text_model.ranking import read_learned, save_learned

        if learned is not None:
            save_learned(writer, current, learned.name, {"config": learned.config.to_dict()}, learned.to_arrays())
        elif rating is not None and read_learned(current) is not None:
            save_learned(writer, current, None, {}, {})  # back to the base ranking model
        if cold is not None:
            writer.write_arrays("cold_start", movie_ids=cold[0].ids, collaborative=cold[0].values,
                                ranking=cold[1].values)
        entry = {"visual_weight": w, "fusion": summary, "cold_start": cold_info,
                 "ranking": learned_info or {"name": ranking.name if ranking is not None else "rating"},
                 "ranking_chosen_by": RANKING_CHOSEN_BY,
                 "missing_blocks": [b for b in FUSED_BLOCKS if b not in blocks], "added": added}
        entry["index"] = index.save(writer)
        writer.set_stage("build-index", entry)
    version = store.open_current()
    return {**entry, "version": version.name}


def _last_indexed(store: ModelStore, version: ModelVersion) -> ModelVersion:
    """The newest version, from ``version`` back through its parents, that has an index."""
    seen = set()
    while version is not None and version.name not in seen:
        if version.has("index"):
            return version
        seen.add(version.name)
        parent = version.manifest.get("parent")
        version = ModelVersion.open(store.root / parent, store.home) if parent and (store.root / parent).is_dir() else None
    raise ArtifactError("no earlier model version has an index to add to; run `posterec build-index` without --add")


# -- what is stale -------------------------------------------------------------------------------
def stale(home, dataset: str, poster_entries=None, vision_config=None) -> dict[str, str | None]:
    """For each stage, why it must run again (or None when current), from the manifest's recorded inputs."""
    from catalog import dataset_checksum

    store = ModelStore(home)
    out: dict[str, str | None] = {"train": None, "embed": None, "build-index": None}
    try:
        current = store.open_current()
    except PosterecError as exc:
        return {stage: str(exc) for stage in out}
    m = current.manifest
    if not current.has("text_model") or m.get("dataset") != dataset:
        out["train"] = f"no rating model for {dataset}"
    elif m.get("dataset_checksum") != dataset_checksum(home, dataset):
        out["train"] = f"the {dataset} copy changed since version {current.name} was trained"
    elif m.get("purpose") == "evaluation":
        out["train"] = "the current model is an evaluation model (trained on a split)"
    if poster_entries:
        record = current.files.get(version_artifact("visual").file) if current.has("visual") else None
        inputs = (record or {}).get("inputs", {})
        if record is None:
            out["embed"] = "no poster embeddings"
        elif inputs.get("posters") != posters_digest(poster_entries):
            out["embed"] = "the posters changed since they were embedded"
        elif vision_config is not None and inputs.get("config") != vision_config.cache_key():
            out["embed"] = "another backbone configuration was asked for"
    if out["train"] or out["embed"] or not current.has("index"):
        out["build-index"] = out["train"] or out["embed"] or "no index"
    return out
