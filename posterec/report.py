"""``posterec report``: one self-contained HTML page about the current model version.

Sections: this model (its split and metrics); this model beside the collaborative-filtering
families fitted in the same run on the same split (table and charts, see `posterec.comparison`);
rating error by user activity; hit rate by movie popularity; training curves; the ratings; the
poster map; look-alike contact sheets. Each section says what is missing instead of failing.
Plots are PNGs (`posterec.charts`) embedded as ``data:`` URIs; the page loads nothing else.
No TensorFlow for a model with a dot head (the default); Surprise (the ``report`` extra) for the
baselines.
"""
from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import charts
from .comparison import (
    TEXT_CNN,
    CompareConfig,
    Comparison,
    by_movie_popularity,
    by_user_activity,
    compare,
    held_out,
)


@dataclass
class Section:
    title: str
    id: str
    parts: list[str] = field(default_factory=list)

    def text(self, words: str) -> None:
        self.parts.append(f"<p>{_inline(words)}</p>")

    def missing(self, words: str) -> None:
        self.parts.append(f'<p class="missing">{_inline(words)}</p>')

    def image(self, data: bytes | None, caption: str) -> None:
        if data is None:
            return
        src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.parts.append(f'<figure><img src="{src}" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def table(self, rows: list[tuple], header: tuple, id: str | None = None, numeric_from: int = 1,
              numeric_to: int = 99) -> None:
        """Columns numeric_from..numeric_to-1 hold numbers (right-aligned; None shows as a dash)."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(
            f'<td class="num">{_inline(_fmt(v))}</td>'
            if numeric_from <= k < numeric_to and (_is_number(v) or v is None or isinstance(v, str))
            else f"<td>{_inline(_fmt(v))}</td>" for k, v in enumerate(r)) + "</tr>" for r in rows)
        attr = f' id="{html.escape(id)}"' if id else ""
        thead = f"<thead><tr>{head}</tr></thead>" if any(str(h) for h in header) else ""
        self.parts.append(f"<table{attr}>{thead}<tbody>{body}</tbody></table>")

    def html(self) -> str:
        return f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>{"".join(self.parts)}</section>'


def _inline(words: str) -> str:
    """Escaped text in which `backquoted` commands become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(words))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        return "—" if not np.isfinite(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{int(v):,}"
    return str(v)


def _flatten(obj, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif _is_number(obj) and np.isfinite(obj):
        out[prefix] = obj
    return out


# ---------------------------------------------------------------- this model


def model_section(version) -> Section:
    s = Section("This model", "model")
    tm = version.stage("train") if version is not None else {}
    if not tm:
        s.missing("No trained rating model in the current version: run `posterec train --split random-80-20` "
                  "(an evaluation model) or `posterec train` (a model for use).")
        return s
    split = tm.get("split") or {}
    purpose = "evaluation" if held_out(version) else "use"
    meaning = ("an evaluation model: trained on the split's training ratings, measured on the held-out ones"
               if purpose == "evaluation" else "a model for use: trained on every rating, none held out")
    rows = [("version", version.name), ("dataset", tm.get("dataset") or version.manifest.get("dataset")),
            ("purpose", f"{purpose} ({meaning})"),
            ("split", f"{split.get('name', '?')}, seed {split.get('seed', '?')}"),
            ("training ratings", split.get("train")), ("test ratings", split.get("test")),
            ("configuration", (tm.get("config") or {}).get("name")), ("epochs run", tm.get("epochs_run")),
            ("fit seconds", tm.get("fit_seconds"))]
    ranking = tm.get("ranking")
    if isinstance(ranking, dict) and ranking.get("name"):
        params = {k: v for k, v in (ranking.get("params") or {}).items() if _is_number(v)}
        rows.append(("ranking model", ranking["name"] + (f" ({', '.join(f'{k} {v:g}' for k, v in params.items())})"
                                                        if params else "")))
        if ranking.get("fallback"):
            rows.append(("ranking fallback", f"asked for {ranking.get('requested')}: {ranking['fallback']}"))
    s.table([r for r in rows if r[1] is not None], ("", ""), numeric_from=99)
    metrics = {k: v for k, v in _flatten(tm.get("metrics") or {}).items() if k != "fit_seconds"}
    if metrics:
        s.text("Its metrics, measured at training on its test ratings:")
        s.table(sorted(metrics.items()), ("metric", "value"), id="model-metrics")
    elif purpose == "use":
        s.text("No metrics: nothing was held out from this model.")
    return s


# ---------------------------------------------------------------- the comparison


def _seconds(s: float | None) -> str | None:
    return None if s is None else "< 0.01" if s < 0.005 else f"{s:.2f}"


def _split_words(c: Comparison) -> str:
    d = c.data
    dropped = (f"; {d.dropped:,} test ratings whose user or movie is not in the training ratings are left out"
               if d.dropped else "")
    return (f"{d.split}, seed {d.seed}: {len(d.train):,} training and {len(d.test):,} test ratings{dropped}")


def comparison_sections(c: Comparison, config: CompareConfig) -> list[Section]:
    s = Section("This model beside collaborative filtering", "comparison")
    n = config.n
    if c.data.source == "model":
        s.text(f"On this model's own split ({_split_words(c)}). Every other model below was fitted in this run "
               f"on the same training ratings and measured on the same test ratings.")
    else:
        what = "This home has no rating model" if not c.purpose else \
            "This model is a model for use: it was trained on every rating, so none are left to measure it on"
        s.text(f"{what}. The baselines below are fitted on the report's own held-out split of the dataset "
               f"({_split_words(c)}), the split that `posterec train --split {c.data.split} --seed {c.data.seed}` "
               f"makes.")
        s.text(f"To put the text-CNN beside them, train an evaluation model on that split and run the report "
               f"again: `posterec train --split {c.data.split} --seed {c.data.seed}` (then `posterec train` "
               f"again for a model to use).")
    for note in c.notes:
        s.missing(note)
    rows = [(r.name, r.family, r.rmse, r.mae, r.hr, r.ndcg, _seconds(r.fit_seconds), r.note) for r in c.results]
    s.table(rows, ("model", "family", "RMSE", "MAE", f"HR@{n}", f"NDCG@{n}", "fit (s)", "notes"),
            id="comparison-table", numeric_from=2, numeric_to=7)
    s.text(f"RMSE and MAE: error of the predicted rating on the test ratings (lower is better). HR@{n}: the share "
           f"of the {len(c.task.users):,} test users with a held-out rating of {config.liked:g} or more whose top "
           f"{n} (every movie of the training ratings they did not rate) holds one of those movies; NDCG@{n} "
           f"also rewards placing them near the top (higher is better). The text-CNN's fit time is its training's.")
    names = [r.name for r in c.results]
    s.image(charts.model_bars(names, {"RMSE": [r.rmse for r in c.results], "MAE": [r.mae for r in c.results]},
                              "error on the test ratings (lower is better)",
                              f"Rating error on {len(c.data.test):,} test ratings"),
            "RMSE and MAE of each model on the same test ratings")
    s.image(charts.model_bars(names, {f"HR@{n}": [r.hr for r in c.results],
                                      f"NDCG@{n}": [r.ndcg for r in c.results]},
                              "ranking quality (higher is better)",
                              f"Top-{n} ranking for {len(c.task.users):,} test users"),
            f"HR@{n} and NDCG@{n} of each ranker, most popular included")

    a = Section("Error by user activity", "activity")
    labels, sizes, per_model = by_user_activity(c, config.groups)
    if not per_model:
        a.missing("No model predicted the test ratings: nothing to break down.")
    else:
        a.text("Users grouped by how many training ratings they have (groups of about equal numbers of test "
               "ratings): the RMSE of each model within each group.")
        a.image(charts.group_lines(labels, per_model, "user's number of training ratings", "RMSE (lower is better)",
                                  "RMSE by user activity", sizes, "test ratings"),
                "RMSE for users with few and with many ratings")
        a.table([(m, *v) for m, v in per_model.items()], ("model", *labels), id="activity-table")

    p = Section("Hit rate by movie popularity", "popularity")
    labels, sizes, per_ranker = by_movie_popularity(c, config.groups)
    if not per_ranker or not len(c.task.pair_cols):
        p.missing("No ranking was measured: nothing to break down.")
    else:
        p.text(f"The held-out liked ratings grouped by their movie's number of training ratings: the share of "
               f"them whose movie is in that user's top {n}. Most popular finds only the head; a model that "
               f"finds less popular movies recommends more than the blockbusters.")
        p.image(charts.group_bars(labels, per_ranker, "movie's number of training ratings",
                                  f"HR@{n} (higher is better)", f"HR@{n} by movie popularity", sizes,
                                  "liked test ratings"),
                f"HR@{n} for rarely and often rated movies")
        p.table([(m, *v) for m, v in per_ranker.items()], ("ranker", *labels), id="popularity-table")
    return [s, a, p]


# ---------------------------------------------------------------- training curves


def _history(version) -> dict:
    tm = version.stage("train")
    history = tm.get("history")
    if isinstance(history, dict) and history:
        return history
    if version.has("text_model"):
        try:
            from text_model import RatingVectors

            return dict(RatingVectors.load(version).history or {})
        except Exception:  # noqa: BLE001  (an older or foreign model: fall back to the PNG)
            return {}
    return {}


def training_section(version) -> Section:
    s = Section("Training curves", "training")
    if version is None or not version.stage("train"):
        s.missing("No trained text model in the current version: run `posterec train`.")
        return s
    history = {k: [float(x) for x in v] for k, v in _history(version).items()
               if isinstance(v, list) and v and all(_is_number(x) for x in v)}
    names = {"rmse": "training", "val_rmse": "validation", "loss": "training", "val_loss": "validation"}
    shown = False
    for metric, ylabel, what in (("rmse", "RMSE", "RMSE"), ("loss", "loss (MSE + L2)", "loss")):
        series = {names[k]: history[k] for k in (metric, f"val_{metric}") if k in history}
        if series:
            s.image(charts.curves(series, ylabel, f"{what} per epoch"),
                    f"{what} on the training ratings and on the validation slice held out of them, per epoch")
            shown = True
    if not shown and version.has("training_curve"):
        s.image(version.file("training_curve").read_bytes(), "training curve (saved at training)")
    elif not shown:
        s.missing("No training history or training curve in this version.")
    return s


# ---------------------------------------------------------------- the data and the posters


def ratings_section(dataset) -> Section:
    s = Section("Ratings", "ratings")
    if dataset is None:
        s.missing("No dataset in this home: fetch one with `posterec download`.")
        return s
    r = dataset.ratings
    s.text(f"{dataset.name}: {len(r):,} ratings by {r['user_id'].nunique():,} users "
           f"of {r['movie_id'].nunique():,} movies.")
    values, counts = np.unique(r["rating"].to_numpy(dtype=np.float32), return_counts=True)
    s.image(charts.histogram_bars(values, counts, "rating", "number of ratings", "Rating distribution"),
            "how often each rating is given")
    per_user = r.groupby("user_id").size().to_numpy()
    s.image(charts.histogram(per_user, "ratings per user", "users (log scale)", "Ratings per user", log=True),
            "how many ratings each user gave")
    return s


def _visual(version):
    from .pipeline import visual_vectors

    return None if version is None else visual_vectors(version)


def embedding_map_section(visual, dataset) -> Section:
    s = Section("Poster embeddings (PCA)", "poster-map")
    if visual is None:
        s.missing("No poster embeddings in the current version: run `posterec embed`.")
        return s
    if len(visual) < 3:
        s.missing(f"Only {len(visual)} poster embeddings: too few to map.")
        return s
    x = visual.values.astype(np.float64)
    x = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    explained = (sv[:2] ** 2 / max((sv ** 2).sum(), 1e-12)).tolist()
    genre_of = {}
    if dataset is not None:
        for mid, genres in zip(dataset.movies["movie_id"], dataset.movies["genres"]):
            genre_of[int(mid)] = genres[0] if len(genres) else "(none)"
    labels = [genre_of.get(int(m), "(unknown)") for m in visual.ids]
    s.image(charts.poster_map(xy, labels, explained, f"{len(visual):,} posters, coloured by first genre"),
            "2-D PCA map of the poster embeddings")
    return s


def contact_sheet_section(visual, dataset, poster_path, n_queries: int = 3, n: int = 6) -> Section:
    s = Section("Look-alike contact sheets", "contact-sheets")
    if visual is None:
        s.missing("No poster embeddings: nothing to compare.")
        return s
    with_file = [int(m) for m in visual.ids if poster_path(int(m)) is not None]
    if len(with_file) < 2:
        s.missing("No poster files found in the poster store for the embedded movies.")
        return s
    from PIL import Image

    rows = {int(m): r for r, m in enumerate(visual.ids)}
    vals = visual.values / np.maximum(np.linalg.norm(visual.values, axis=1, keepdims=True), 1e-12)
    title = {}
    popular = with_file
    if dataset is not None:
        title = dict(zip(dataset.movies["movie_id"].astype(int), dataset.movies["title"]))
        counts = dataset.ratings["movie_id"].value_counts()
        popular = sorted(with_file, key=lambda m: -int(counts.get(m, 0)))
    queries = popular[:: max(1, len(popular) // n_queries)][:n_queries]
    have = set(with_file)
    for q in queries:
        scores = vals @ vals[rows[q]]
        order = [int(visual.ids[r]) for r in np.argsort(-scores) if int(visual.ids[r]) != q]
        hits = [m for m in order if m in have][:n]
        images = []
        for mid in [q] + hits:
            with Image.open(poster_path(mid)) as im:
                images.append(im.convert("RGB"))
        s.image(charts.contact_sheet(images, [str(title.get(m, m)) for m in [q] + hits],
                                     ["query"] + [f"cosine {scores[rows[m]]:.3f}" for m in hits]),
                f"posters nearest to {title.get(q, q)} (cosine of the poster embeddings)")
    return s


# ---------------------------------------------------------------- the page

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #e0a030;padding-bottom:.2rem;margin-top:2rem}
figure{margin:1rem 0} img{max-width:100%;height:auto} figcaption{color:#666;font-size:.85rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f3f3f3;padding:.05rem .3rem;border-radius:3px}
.missing{color:#a05000;background:#fff4e0;padding:.5rem .8rem;border-radius:4px}
.meta{color:#666}
"""


def build_report(home, dataset_name: str | None = None, config: CompareConfig | None = None) -> str:
    """The report for ``home`` as one HTML string."""
    from catalog import DatasetError, ModelStore, load_dataset

    config = config or CompareConfig()
    home = Path(home)
    store = ModelStore(home)
    version = store.open_current() if store.current() is not None else None
    manifest = version.manifest if version is not None else {}
    name = manifest.get("dataset") or dataset_name or "ml-100k"
    if dataset_name and dataset_name != name:
        raise DatasetError(f"the current model {version.name} is for {name}, not {dataset_name}: "
                           f"run `posterec report` without --dataset, or train a {dataset_name} model first")
    try:
        dataset = load_dataset(home, name)
    except DatasetError:
        dataset = None

    def poster_path(movie_id: int) -> Path | None:
        from posters import PosterStore

        p = PosterStore(home, name).path(movie_id)
        return p if p.exists() else None

    sections = [model_section(version)]
    if dataset is None:
        missing = Section("This model beside collaborative filtering", "comparison")
        missing.missing(f"No {name} ratings in this home: fetch them with `posterec download --dataset {name}`.")
        sections.append(missing)
    else:
        sections += comparison_sections(compare(version, dataset, config), config)
    visual = _visual(version)
    sections += [training_section(version), ratings_section(dataset), embedding_map_section(visual, dataset),
                 contact_sheet_section(visual, dataset, poster_path)]
    meta = (f"home {home} · dataset {name} · model version {version.name if version else '(none)'}"
            f"{' (' + str(manifest.get('purpose')) + ')' if manifest.get('purpose') else ''}"
            f" · made {time.strftime('%Y-%m-%d %H:%M')}")
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>posterec report</title>"
            f"<style>{STYLE}</style></head><body><h1>posterec report</h1>"
            f"<p class=meta>{html.escape(meta)}</p><nav><ul>{toc}</ul></nav>"
            f"{''.join(s.html() for s in sections)}</body></html>")


def write_report(home, out, dataset_name: str | None = None, config: CompareConfig | None = None) -> Path:
    """Write the report atomically to ``out`` and return its path."""
    out = Path(out)
    text = build_report(home, dataset_name, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["TEXT_CNN", "CompareConfig", "build_report", "write_report"]
