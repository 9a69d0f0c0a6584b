"""``posterec report``: one self-contained HTML page of plots about the current model.

Each section reads what exists (the dataset, the current model version's manifest and files,
``benchmarks/results/*.jsonl``, the poster store) and says what is missing instead of failing.
Plots are matplotlib PNGs embedded as base64. No TensorFlow: only numpy, matplotlib and files.
"""
from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ACCURACY_WORDS = ("rmse", "mae", "precision", "recall", "ndcg", "hit", "map@", "auc", "accuracy",
                  "coverage", "mrr")
DEFAULT_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


@dataclass
class Section:
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, words: str) -> None:
        self.parts.append(f"<p>{html.escape(words)}</p>")

    def missing(self, words: str) -> None:
        self.parts.append(f'<p class="missing">{html.escape(words)}</p>')

    def figure(self, fig, caption: str = "") -> None:
        self.parts.append(_img(_png(fig), caption))

    def table(self, rows: list[tuple], header: tuple) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
                       for r in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _img(data: bytes, caption: str = "") -> str:
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{src}" alt="{html.escape(caption)}">{cap}</figure>'


def _figure(w: float = 7.0, h: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h), layout="constrained")


def _flatten(obj, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and np.isfinite(obj):
        out[prefix] = float(obj)
    return out


# ---------------------------------------------------------------- sections


def ratings_section(dataset) -> Section:
    s = Section("Ratings")
    if dataset is None:
        s.missing("No dataset in this home: fetch one with `posterec download`.")
        return s
    r = dataset.ratings
    s.text(f"{dataset.name}: {len(r):,} ratings by {r['user_id'].nunique():,} users "
           f"of {r['movie_id'].nunique():,} movies.")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    values, counts = np.unique(r["rating"].to_numpy(dtype=np.float32), return_counts=True)
    a.bar(values, counts, width=0.4 if len(values) > 5 else 0.7, color="#e0a030")
    a.set(title="rating distribution", xlabel="rating", ylabel="ratings")
    per_user = r.groupby("user_id").size().to_numpy()
    b.hist(per_user, bins=40, color="#4a78b0")
    b.set(title="ratings per user", xlabel="ratings", ylabel="users", yscale="log")
    s.figure(fig, "how ratings are spread")
    return s


def training_section(version) -> Section:
    s = Section("Training")
    tm = version.stage("train") if version is not None else {}
    if not tm:
        s.missing("No trained text model in the current version: run `posterec train`.")
        return s
    history = tm.get("history") or {}
    curves = {k: v for k, v in history.items() if isinstance(v, list) and v}
    if curves:
        fig, ax = _figure()
        for key, vals in sorted(curves.items()):
            ax.plot(range(1, len(vals) + 1), vals, marker="o", label=key)
        ax.set(xlabel="epoch", title="training curves")
        ax.legend()
        s.figure(fig, "loss and metrics per epoch")
    elif version.has("training_curve"):
        s.parts.append(_img(version.file("training_curve").read_bytes(), "training curves"))
    else:
        s.missing("No training history or training curve in this version.")
    metrics = _flatten(tm.get("metrics") or {})
    if metrics:
        s.table(sorted(metrics.items()), ("metric", "value"))
    extra = [(k, tm[k]) for k in ("dataset", "epochs_run", "fit_seconds", "vector_dim") if k in tm]
    if extra:
        s.table(extra, ("", ""))
    return s


def accuracy_section(results_dir: Path | None) -> Section:
    s = Section("Accuracy against baselines")
    files = sorted(Path(results_dir).glob("*.jsonl")) if results_dir and Path(results_dir).is_dir() else []
    rows = []
    for path in files:
        last = None
        for line in path.read_text(errors="replace").splitlines():
            try:
                last = json.loads(line)
            except json.JSONDecodeError:
                continue
        if not isinstance(last, dict):
            continue
        for key, value in _flatten(last).items():
            if any(w in key.lower() for w in ACCURACY_WORDS):
                rows.append((path.stem, key, value, str(last.get("when", ""))))
    if not rows:
        s.missing(f"Not measured: no accuracy numbers in {results_dir}/*.jsonl "
                  "(run the benchmarks in benchmarks/).")
        return s
    s.text("The latest line of each benchmark result file; lower is better for RMSE/MAE, "
           "higher for ranking metrics.")
    s.table(rows, ("benchmark", "measure", "value", "when"))
    by_metric: dict[str, list[tuple[str, float]]] = {}
    for bench, key, value, _ in rows:
        leaf = key.rsplit(".", 1)[-1].lower()
        by_metric.setdefault(leaf, []).append((f"{bench}:{key.rsplit('.', 1)[0]}", value))
    plotted = [(m, v) for m, v in by_metric.items() if 1 < len(v) <= 20][:4]
    if plotted:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(plotted), figsize=(4.2 * len(plotted), 3.4), squeeze=False,
                                 layout="constrained")
        for ax, (metric, vals) in zip(axes[0], plotted):
            ax.barh([lbl for lbl, _ in vals], [v for _, v in vals], color="#4a78b0")
            ax.set_title(metric)
        s.figure(fig, "each measure across the models that report it")
    return s


def _visual(version):
    from .pipeline import visual_vectors

    return None if version is None else visual_vectors(version)


def embedding_map_section(visual, dataset) -> Section:
    s = Section("Poster embeddings (PCA)")
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
    names, counts = np.unique(labels, return_counts=True)
    top = [n for _, n in sorted(zip(-counts, names))][:9]
    fig, ax = _figure(7.5, 5.5)
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    other = np.array([lbl not in top for lbl in labels])
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=6, color="#bbbbbb", label="other")
    for i, name in enumerate(top):
        mask = np.array([lbl == name for lbl in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, color=cmap(i), label=name)
    ax.set(xlabel=f"PC1 ({explained[0]:.0%})", ylabel=f"PC2 ({explained[1]:.0%})",
           title=f"{len(visual)} posters, coloured by first genre")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    s.figure(fig, "2-D PCA map of the poster embeddings")
    return s


def contact_sheet_section(visual, dataset, poster_path, n_queries: int = 3, n: int = 6) -> Section:
    s = Section("Look-alike contact sheets")
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
    if dataset is not None:
        title = dict(zip(dataset.movies["movie_id"].astype(int), dataset.movies["title"]))
    popular = with_file
    if dataset is not None:
        counts = dataset.ratings["movie_id"].value_counts()
        popular = sorted(with_file, key=lambda m: -int(counts.get(m, 0)))
    queries = popular[:: max(1, len(popular) // n_queries)][:n_queries]
    import matplotlib.pyplot as plt

    have = set(with_file)
    for q in queries:
        scores = vals @ vals[rows[q]]
        order = [int(visual.ids[r]) for r in np.argsort(-scores) if int(visual.ids[r]) != q]
        hits = [m for m in order if m in have][:n]
        fig, axes = plt.subplots(1, len(hits) + 1, figsize=(1.7 * (len(hits) + 1), 3.0))
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.82, wspace=0.08)
        for ax, mid in zip(axes, [q] + hits):
            with Image.open(poster_path(mid)) as im:
                ax.imshow(im.convert("RGB"))
            name = str(title.get(mid, mid))[:22]
            score = "query" if mid == q else f"{scores[rows[mid]]:.3f}"
            ax.set_title(f"{name}\n{score}", fontsize=7)
            ax.axis("off")
        s.figure(fig, f"posters nearest to {title.get(q, q)} (cosine)")
    return s


# ---------------------------------------------------------------- the page

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #e0a030;padding-bottom:.2rem;margin-top:2rem}
figure{margin:1rem 0} img{max-width:100%} figcaption{color:#666;font-size:.85rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
.missing{color:#a05000;background:#fff4e0;padding:.5rem .8rem;border-radius:4px}
.meta{color:#666}
"""


def build_report(home, dataset_name: str | None = None, results_dir=DEFAULT_RESULTS) -> str:
    """The report for ``home`` as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    from catalog import DatasetError, ModelStore, load_dataset

    home = Path(home)
    store = ModelStore(home)
    version = store.open_current() if store.current() is not None else None
    manifest = version.manifest if version is not None else {}
    name = dataset_name or manifest.get("dataset") or "ml-100k"
    try:
        dataset = load_dataset(home, name)
    except DatasetError:
        dataset = None

    def poster_path(movie_id: int) -> Path | None:
        from posters import PosterStore

        p = PosterStore(home, name).path(movie_id)
        return p if p.exists() else None

    visual = _visual(version)
    sections = [ratings_section(dataset), training_section(version),
                accuracy_section(results_dir), embedding_map_section(visual, dataset),
                contact_sheet_section(visual, dataset, poster_path)]
    meta = (f"home {home} · dataset {name} · model version "
            f"{version.name if version else '(none)'} · made {time.strftime('%Y-%m-%d %H:%M')}")
    body = "".join(f"<section><h2>{html.escape(s.title)}</h2>{''.join(s.parts)}</section>"
                   for s in sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>posterec report</title>"
            f"<style>{STYLE}</style></head><body><h1>posterec report</h1>"
            f"<p class=meta>{html.escape(meta)}</p>{body}</body></html>")


def write_report(home, out, dataset_name: str | None = None, results_dir=DEFAULT_RESULTS) -> Path:
    """Write the report atomically to ``out`` and return its path."""
    out = Path(out)
    text = build_report(home, dataset_name, results_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
