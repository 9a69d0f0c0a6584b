"""Look-alike quality of poster embeddings, with measures a fixed list cannot win.

For every movie with a poster, its 10 look-alikes come from the production search path:
``index.MovieIndex.build(vectors).search_each(...)`` (exact cosine, itself excluded), the same
index `Recommender.lookalike` queries. Measures, each averaged as said:

- ``micro``: the share of the 10 sharing >= 1 genre with the query, over queries (the old
  number, kept for continuity; a fixed list of multi-genre movies wins it);
- ``macro``: genre precision@10 macro-averaged over the query's genres: for each genre g, the
  share of a g-query's 10 neighbours tagged g, averaged over the g-queries, then over genres
  (a fixed list scores ~0 on the genres it lacks);
- ``lift``: each query's ``micro`` over its own random expectation (the share of all other
  posters that share a genre with it), averaged over queries;
- ``franchise``: for queries whose series has another entry with a poster (sequels, remakes,
  the same title stem: "Toy Story" / "Toy Story 2", "Godfather, The" / "Godfather: Part II,
  The"), the share with a sibling among the 10.

Bootstrap standard errors (200 resamples of the queries) go with each number; differences to a
reference are paired (the same resamples). Baselines in the same run: random neighbours
(random vectors through the same index), the fixed list (the 10 posters sharing a genre with
the most others, the same for every query), genre-frequency sampling (10 neighbours drawn
without replacement, each movie weighted by how often its genres occur, ignoring the query),
a colour-histogram embedding (HSV 8x4x4, Hellinger; a cheap visual baseline) and the
genre-label oracle (Jaccard of genre sets; an upper reference, not a poster method).
Backbones: every one whose ImageNet weights are in ../shared (MobileNetV2 0.35/0.5 and MobileNet
0.25 through a temporary KERAS_HOME linked to ../shared/keras/models, MobileNetV2 1.0 by path),
plus the current `VisionConfig()` default.

    python benchmarks/lookalike_quality.py [--datasets ml-1m,ml-100k] [--limit N] [--cache DIR]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))
POSTERS = SHARED / "data" / "posters"
WEIGHTS_1 = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5"
K = 10
BOOTSTRAP = 200


class Entry(NamedTuple):  # the shape of posters.PosterEntry
    movie_id: int
    path: Path
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    entries: list[Entry]            # movies with a real poster and >= 1 genre, by movie id
    genres: dict[int, frozenset]
    titles: dict[int, str]


# -- data ------------------------------------------------------------------------------------
def _sha(path: Path, given: str = "") -> str:
    return given or hashlib.sha256(path.read_bytes()).hexdigest()


def read_ml1m(limit: int | None = None) -> Dataset:
    """ml-1m posters (placeholders excluded); titles and genres from movies.dat."""
    titles, genres = {}, {}
    with open(SHARED / "data" / "ml-1m" / "movies.dat", encoding="latin-1") as fh:
        for line in fh:
            m, title, gs = line.rstrip("\n").split("::")
            titles[int(m)], genres[int(m)] = title, frozenset(g for g in gs.split("|") if g)
    entries = []
    with open(POSTERS / "ml-1m.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            path = POSTERS / row["poster_file"] if row["poster_file"] else None
            m = int(row["movieId"])
            if path is None or not path.exists() or row["poster_is_placeholder"] == "1" or not genres.get(m):
                continue
            entries.append(Entry(m, path, _sha(path, row["poster_sha256"])))
    entries.sort(key=lambda e: e.movie_id)
    return Dataset("ml-1m", entries[:limit] if limit else entries, genres, titles)


def read_ml100k(limit: int | None = None) -> Dataset:
    """ml-100k posters keyed by item id; titles and genre flags from u.item ("unknown" dropped)."""
    folder = SHARED / "data" / "ml-100k"
    names = [line.split("|")[0] for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines() if line]
    titles, genres = {}, {}
    with open(folder / "u.item", encoding="latin-1") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("|")
            m = int(parts[0])
            titles[m] = parts[1]
            genres[m] = frozenset(n for n, flag in zip(names, parts[5:]) if flag == "1" and n != "unknown")
    entries = []
    with open(POSTERS / "ml-100k.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            m = int(row["item_id"])
            path = POSTERS / row["poster_file"] if row["poster_file"] else None
            if path is None or not path.exists() or not genres.get(m):
                continue
            entries.append(Entry(m, path, _sha(path)))
    entries.sort(key=lambda e: e.movie_id)
    return Dataset("ml-100k", entries[:limit] if limit else entries, genres, titles)


READERS = {"ml-1m": read_ml1m, "ml-100k": read_ml100k}
AVAILABLE = {"ml-1m": POSTERS / "ml-1m.csv", "ml-100k": POSTERS / "ml-100k.csv"}

# -- franchises ------------------------------------------------------------------------------
_ARTICLE_SUFFIX = re.compile(r",\s*(the|a|an|les|la|le|il|l'|el|das|der|die)\s*$")
_SEQUEL = re.compile(r"(\s+(part|chapter|episode)?\s*([0-9]+|i{1,3}|iv|vi{0,3}|ix|x|³|²))+$")


def title_stem(title: str) -> str:
    """The series part of a MovieLens title: no year, no alternative titles in brackets, no
    trailing article (", The"), no subtitle after ':' or ' - ', no trailing sequel number.
    ``"Godfather: Part II, The (1974)"`` -> ``"godfather"``; ``"Toy Story 2 (1999)"`` -> ``"toy story"``."""
    t = re.sub(r"\s*\(\d{4}\)\s*$", "", title.strip())
    t = re.sub(r"\s*\([^)]*\)", "", t).lower()
    t = _ARTICLE_SUFFIX.sub("", t)
    t = re.split(r":| - ", t)[0]
    t = _ARTICLE_SUFFIX.sub("", t.strip())
    t = _SEQUEL.sub("", t)
    t = re.sub(r"[^\w\s&']", " ", t)
    t = re.sub(r"^(the|a|an)\s+", "", " ".join(t.split()))
    return t


def franchise_siblings(ids: list[int], titles: dict[int, str]) -> list[np.ndarray]:
    """Per movie (in ``ids`` order), the positions of the other movies in ``ids`` with its stem."""
    by_stem: dict[str, list[int]] = {}
    for pos, m in enumerate(ids):
        stem = title_stem(titles[m])
        if stem:
            by_stem.setdefault(stem, []).append(pos)
    out = []
    for m in ids:  # the same title twice (ml-100k lists a few films twice) is one film, not a sibling
        group = by_stem.get(title_stem(titles[m]), [])
        out.append(np.array([p for p in group if titles[ids[p]] != titles[m]], np.int64))
    return out


# -- the measure -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    ids: np.ndarray                # int64 (q,) movie ids, one per query, the candidates too
    onehot: np.ndarray             # bool (q, G)
    genre_names: list[str]
    expected: np.ndarray           # (q,) share of the other posters sharing a genre with the query
    siblings: list[np.ndarray]     # positions of each query's franchise siblings
    groups: list[list[str]]        # franchise groups (titles), for the report

    @classmethod
    def of(cls, data: Dataset) -> "Truth":
        ids = [e.movie_id for e in data.entries]
        names = sorted({g for m in ids for g in data.genres[m]})
        onehot = np.array([[g in data.genres[m] for g in names] for m in ids], bool)
        f = onehot.astype(np.float32)
        share = (f @ f.T) > 0
        np.fill_diagonal(share, False)
        siblings = franchise_siblings(ids, data.titles)
        seen, groups = set(), []
        for pos, sib in enumerate(siblings):
            if len(sib) and pos not in seen:
                members = sorted([pos, *sib.tolist()])
                seen.update(members)
                groups.append([data.titles[ids[p]] for p in members])
        return cls(np.array(ids, np.int64), onehot, names, share.sum(1) / (len(ids) - 1), siblings, groups)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Scores:
    """Per-query parts of each measure, so bootstrap resamples can recombine them."""
    micro: np.ndarray        # (q,)
    genre_hits: np.ndarray   # (q, G) share of the 10 tagged g (0 where the query lacks g)
    genre_mass: np.ndarray   # (q, G) the same with each neighbour's 1 split over its genres
    member: np.ndarray       # (q, G) bool: the query has genre g
    lift: np.ndarray         # (q,)
    franchise: np.ndarray    # (q,) 1/0 for queries with siblings, nan otherwise

    def summary(self, weights: np.ndarray | None = None) -> dict:
        """The four measures; ``weights`` (b, q) resample counts give (b,) arrays instead."""
        if weights is None:
            weights = np.ones((1, len(self.micro)))
        w = np.atleast_2d(weights).astype(np.float64)
        n = w.sum(1)
        queries = np.maximum(w @ self.member, 1e-12)
        per_genre = (w @ (self.genre_hits * self.member)) / queries
        per_genre_mass = (w @ (self.genre_mass * self.member)) / queries
        present = self.member.sum(0) > 1
        eligible = ~np.isnan(self.franchise)
        fr = np.nan_to_num(self.franchise)
        return {"micro": (w @ self.micro) / n, "macro": per_genre[:, present].mean(1),
                "macro_split": per_genre_mass[:, present].mean(1) * present.sum(),
                "lift": (w @ self.lift) / n,
                "franchise": (w[:, eligible] @ fr[eligible]) / np.maximum(w[:, eligible].sum(1), 1e-12)}


MEASURES = ("micro", "macro", "macro_split", "lift", "franchise")


def score_lists(neighbours: np.ndarray, truth: Truth) -> Scores:
    """Scores of neighbour lists given as positions into ``truth.ids`` ((q, k), -1 = none)."""
    q, k = neighbours.shape
    valid = neighbours >= 0
    nb = np.where(valid, neighbours, 0)
    tagged = truth.onehot[nb] & valid[:, :, None]                    # (q, k, G)
    genre_hits = (tagged & truth.onehot[:, None, :]).sum(1) / K      # (q, G)
    n_genres = np.maximum(truth.onehot.sum(1), 1)[nb][:, :, None]     # (q, k, 1)
    genre_mass = ((tagged & truth.onehot[:, None, :]) / n_genres).sum(1) / K
    micro = (tagged & truth.onehot[:, None, :]).any(2).sum(1) / K
    lift = micro / np.maximum(truth.expected, 1e-12)
    franchise = np.full(q, np.nan)
    for i, sib in enumerate(truth.siblings):
        if len(sib):
            franchise[i] = float(np.isin(nb[i][valid[i]], sib).any())
    return Scores(micro, genre_hits, genre_mass, truth.onehot, lift, franchise)


def neighbours_by_index(vectors, truth: Truth, k: int = K) -> np.ndarray:
    """Each query's k look-alikes through the production index (exact cosine, itself excluded),
    as positions into ``truth.ids``; a query without a vector gets -1s."""
    from index import MovieIndex

    have = np.array([m in vectors for m in truth.ids.tolist()])
    ids = truth.ids[have]
    index = MovieIndex.build(vectors.subset(ids))
    hits = index.search_each(index.vectors(ids).values, n=k, exclude=ids.reshape(-1, 1))
    pos = {int(m): p for p, m in enumerate(truth.ids)}
    out = np.full((len(truth), k), -1, np.int64)
    for row, h in zip(np.flatnonzero(have), hits):
        got = [pos[int(m)] for m in h.movie_ids]
        out[row, :len(got)] = got
    return out


def score_vectors(vectors, truth: Truth) -> Scores:
    return score_lists(neighbours_by_index(vectors, truth), truth)


def resamples(n: int, b: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(b, n) bootstrap counts of the queries (fixed seed: every method shares them)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)


def summarise(scores: Scores, weights: np.ndarray, reference: Scores | None = None) -> dict:
    """Point values, bootstrap standard errors and, given a reference, the paired difference and its SE."""
    point = {k: float(v[0]) for k, v in scores.summary().items()}
    boot = scores.summary(weights)
    out = {**point, **{f"{k}_se": float(np.std(boot[k])) for k in MEASURES}}
    if reference is not None:
        ref_point, ref_boot = reference.summary(), reference.summary(weights)
        for k in MEASURES:
            out[f"{k}_diff"] = point[k] - float(ref_point[k][0])
            out[f"{k}_diff_se"] = float(np.std(boot[k] - ref_boot[k]))
    return out


# -- baselines -------------------------------------------------------------------------------
def random_vectors(truth: Truth, seed: int = 0):
    from catalog import Vectors

    rng = np.random.default_rng(seed)
    return Vectors(truth.ids, rng.standard_normal((len(truth), 64)).astype(np.float32))


def fixed_list(truth: Truth) -> np.ndarray:
    """The same 10 for everyone: the posters sharing a genre with the most others (itself skipped)."""
    f = truth.onehot.astype(np.float32)
    degree = ((f @ f.T) > 0).sum(0)
    popular = np.argsort(-degree, kind="stable")[:K + 1]
    return np.array([[j for j in popular if j != i][:K] for i in range(len(truth))], np.int64)


def most_tagged_list(truth: Truth) -> np.ndarray:
    """The same 10 for everyone: the posters with the most genre tags, the fixed list that
    maximises ``macro`` (a list's macro is the mean of its movies' tag counts over G)."""
    popular = np.argsort(-truth.onehot.sum(1), kind="stable")[:K + 1]
    return np.array([[j for j in popular if j != i][:K] for i in range(len(truth))], np.int64)


def genre_frequency_sample(truth: Truth, seed: int = 0) -> np.ndarray:
    """10 neighbours per query drawn without replacement, weight = sum of its genres' frequencies."""
    freq = truth.onehot.sum(0) / truth.onehot.sum()
    weight = truth.onehot @ freq
    rng = np.random.default_rng(seed)
    out = np.empty((len(truth), K), np.int64)
    for i in range(len(truth)):
        w = weight.copy()
        w[i] = 0
        out[i] = rng.choice(len(truth), K, replace=False, p=w / w.sum())
    return out


def genre_oracle(truth: Truth) -> np.ndarray:
    """Neighbours by Jaccard similarity of the genre sets (ties by position): an upper reference."""
    f = truth.onehot.astype(np.float32)
    inter = f @ f.T
    union = f.sum(1)[:, None] + f.sum(1)[None, :] - inter
    jac = inter / np.maximum(union, 1)
    np.fill_diagonal(jac, -1)
    return np.argsort(-jac, axis=1, kind="stable")[:, :K]


def colour_histograms(entries: list[Entry], bins=(8, 4, 4)):
    """HSV joint histogram of each poster (decoded small with PIL draft mode), square-rooted."""
    from PIL import Image

    from catalog import Vectors

    rows = []
    for e in entries:
        with Image.open(e.path) as img:
            img.draft("RGB", (80, 120))
            hsv = np.asarray(img.convert("RGB").resize((64, 96)).convert("HSV")).reshape(-1, 3)
        h, _ = np.histogramdd(hsv, bins=bins, range=[(0, 256)] * 3)
        rows.append(np.sqrt(h.ravel() / h.sum()))
    return Vectors(np.array([e.movie_id for e in entries], np.int64), np.array(rows, np.float32))


def baseline_scores(data: Dataset, truth: Truth) -> dict[str, Scores]:
    return {"random neighbours (random vectors)": score_vectors(random_vectors(truth), truth),
            "fixed list (10 most genre-connected)": score_lists(fixed_list(truth), truth),
            "fixed list (10 most-tagged)": score_lists(most_tagged_list(truth), truth),
            "genre-frequency sampling": score_lists(genre_frequency_sample(truth), truth),
            "colour histogram (HSV 8x4x4)": score_vectors(colour_histograms(data.entries), truth),
            "genre-label oracle (not a poster method)": score_lists(genre_oracle(truth), truth)}


# -- running ---------------------------------------------------------------------------------
def offline_keras_home() -> Path:
    """A temporary KERAS_HOME whose models/ links ../shared/keras/models/* (set before Keras loads)."""
    home = Path(tempfile.mkdtemp(prefix="keras-home-"))
    (home / "models").mkdir()
    for f in (SHARED / "keras" / "models").glob("*.h5"):
        (home / "models" / f.name).symlink_to(f)
    os.environ["KERAS_HOME"] = str(home)
    return home


def backbone_configs():
    """(label, VisionConfig) of every backbone with weights in ../shared, and today's default."""
    from vision_model import VisionConfig

    out = [("MobileNetV2 a0.35 224", VisionConfig(alpha=0.35, image_size=224)),
           ("MobileNetV2 a0.5 224", VisionConfig(alpha=0.5, image_size=224)),
           ("MobileNetV2 a1.0 224 (by path)", VisionConfig(alpha=1.0, image_size=224, weights=str(WEIGHTS_1))),
           ("MobileNet a0.25 224", VisionConfig(backbone="MobileNet", alpha=0.25, image_size=224))]
    default = VisionConfig()
    if all(c.cache_key() != default.cache_key() for _, c in out if c.uses_imagenet or Path(c.weights).exists()):
        out.append((f"default: {default.backbone} a{default.alpha:g} {default.image_size} {default.quantize}", default))
    return out


def print_table(title: str, rows: dict[str, dict], truth: Truth) -> None:
    n_fr = int(sum(len(s) > 0 for s in truth.siblings))
    print(f"\n{title}: {len(truth)} posters, {len(truth.genre_names)} genres, {n_fr} queries in "
          f"{len(truth.groups)} franchise groups; @{K}, bootstrap SE over {BOOTSTRAP} resamples")
    print(f"  {'neighbours':<42} {'micro':>7} {'macro':>13} {'split lift':>13} {'lift':>13} {'franchise':>13}")
    for label, r in rows.items():
        print(f"  {label:<42} {r['micro']:7.3f} {r['macro']:7.3f}±{r['macro_se']:.3f} "
              f"{r['macro_split']:7.3f}±{r['macro_split_se']:.3f} "
              f"{r['lift']:7.3f}±{r['lift_se']:.3f} {r['franchise']:7.3f}±{r['franchise_se']:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="ml-1m,ml-100k")
    ap.add_argument("--limit", type=int, help="use only the first N posters of each dataset")
    ap.add_argument("--cache", help="embedding cache folder (default: a temporary one)")
    ap.add_argument("--no-backbones", action="store_true", help="baselines only (no TensorFlow)")
    ap.add_argument("--show-groups", type=int, default=8, help="print this many franchise groups")
    args = ap.parse_args()
    names = [d for d in args.datasets.split(",") if d]
    missing = [str(AVAILABLE[d]) for d in names if not AVAILABLE[d].exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} absent")
        return 0
    offline_keras_home()
    from common import machine, record

    env = machine()
    print(f"CPU: {env['cpu']} x{env['cores']} (load avg {env['loadavg_1m']}); numpy {env['numpy']}")
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="embed-cache-"))
    for name in names:
        data = READERS[name](args.limit)
        truth = Truth.of(data)
        weights = resamples(len(truth))
        scores = baseline_scores(data, truth)
        if not args.no_backbones:
            from vision_model import embed_posters

            for label, config in backbone_configs():
                if not config.uses_imagenet and not Path(config.weights).exists():
                    print(f"  {label}: weights absent, skipped")
                    continue
                t = time.perf_counter()
                result = embed_posters(data.entries, config, cache_dir=cache, progress=False)
                print(f"  {name} {label}: {len(result.vectors)} vectors, {len(result.failed)} failed, "
                      f"{result.n_embedded} embedded in {time.perf_counter() - t:.0f} s", flush=True)
                scores[label] = score_vectors(result.vectors, truth)
        rows = {label: summarise(s, weights) for label, s in scores.items()}
        print_table(name, rows, truth)
        for group in truth.groups[:args.show_groups]:
            print(f"    franchise: {' | '.join(group)}")
        print(f"appended to {record('lookalike_quality', {**env, 'dataset': name, 'n_posters': len(truth), 'k': K, 'version': 2, 'n_franchise_queries': int(sum(len(s) > 0 for s in truth.siblings)), 'rows': rows}).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
