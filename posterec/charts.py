"""The report's charts: one chart per figure, labelled axes, value labels that fit (matplotlib, Agg).

Every function returns PNG bytes. Layout is matplotlib's constrained layout, with legends placed
outside the axes, so nothing overlaps and no label is cut.
"""
from __future__ import annotations

import io
import math

import numpy as np

COLOURS = ["#4a78b0", "#e0a030", "#5a9e6f", "#b0504a", "#8a6bb0", "#7a7a7a", "#3aa3a3"]
DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(w: float = 7.5, h: float = 3.8):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(w, h), layout="constrained")
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _plt().close(fig)
    return buf.getvalue()



def _frame(ax, title: str, xlabel: str | None = None, ylabel: str | None = None, grid: str = "both") -> None:
    """Every chart's labels, title and light grid (on ``grid``: "x", "y" or "both")."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis=grid, alpha=0.3)

def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating)) and math.isfinite(float(v))


def model_bars(models: list[str], series: dict[str, list[float | None]], xlabel: str, title: str) -> bytes | None:
    """Horizontal grouped bars: one row per model, one bar per measure, each bar labelled with its value.

    Models with no value in any series are left out; None when nothing is left."""
    keep = [k for k, _ in enumerate(models) if any(_finite(v[k]) for v in series.values())]
    if not keep:
        return None
    names = [models[k] for k in keep]
    n_series = len(series)
    height = 0.8 / n_series
    fig, ax = figure(7.5, 0.9 + 0.42 * len(names) * max(n_series, 1.5))
    y = np.arange(len(names))
    top = 0.0
    for s, (label, values) in enumerate(series.items()):
        vals = [float(values[k]) if _finite(values[k]) else np.nan for k in keep]
        offset = (s - (n_series - 1) / 2) * height
        bars = ax.barh(y + offset, np.nan_to_num(vals), height=height * 0.92, color=COLOURS[s % len(COLOURS)],
                       label=label)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in vals], padding=3, fontsize=8)
        top = max(top, np.nanmax(vals) if not np.all(np.isnan(vals)) else 0.0)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18 if top > 0 else 1)
    _frame(ax, title, xlabel=xlabel, grid="x")
    if n_series > 1:
        fig.legend(loc="outside lower center", ncols=n_series, fontsize=8, frameon=False)
    return png(fig)


def group_lines(groups: list[str], series: dict[str, list[float]], xlabel: str, ylabel: str, title: str,
                sizes: list[int] | None = None, size_unit: str = "") -> bytes | None:
    """One line with markers per model across ordered groups; the y axis fits the values (not from 0),
    so small differences between models show. The legend sits outside, below."""
    series = {k: v for k, v in series.items() if any(_finite(x) for x in v)}
    if not series or not groups:
        return None
    fig, ax = figure(8.0, 4.4)
    x = np.arange(len(groups))
    markers = "osD^vP*"
    for s, (label, values) in enumerate(series.items()):
        vals = np.array([float(v) if _finite(v) else np.nan for v in values])
        ax.plot(x, vals, marker=markers[s % len(markers)], color=COLOURS[s % len(COLOURS)], label=label)
    ticks = groups if sizes is None else [f"{g}\n({n_:,} {size_unit})" for g, n_ in zip(groups, sizes)]
    ax.set_xticks(x, ticks)
    ax.set_xlim(-0.4, len(groups) - 0.6)
    ax.margins(y=0.12)
    _frame(ax, title, xlabel=xlabel, ylabel=ylabel)
    fig.legend(loc="outside lower center", ncols=min(len(series), 3), fontsize=8, frameon=False)
    return png(fig)


def group_bars(groups: list[str], series: dict[str, list[float]], xlabel: str, ylabel: str, title: str,
               sizes: list[int] | None = None, size_unit: str = "") -> bytes | None:
    """Vertical grouped bars: one cluster per group, one bar per model; the legend sits outside, below."""
    series = {k: v for k, v in series.items() if any(_finite(x) for x in v)}
    if not series or not groups:
        return None
    n = len(series)
    width = 0.8 / n
    fig, ax = figure(8.0, 4.4)
    x = np.arange(len(groups))
    top = 0.0
    for s, (label, values) in enumerate(series.items()):
        vals = np.array([float(v) if _finite(v) else np.nan for v in values])
        ax.bar(x + (s - (n - 1) / 2) * width, np.nan_to_num(vals), width=width * 0.92,
               color=COLOURS[s % len(COLOURS)], label=label)
        if not np.all(np.isnan(vals)):
            top = max(top, float(np.nanmax(vals)))
    ticks = groups if sizes is None else [f"{g}\n({n_:,} {size_unit})" for g, n_ in zip(groups, sizes)]
    ax.set_xticks(x, ticks)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    _frame(ax, title, xlabel=xlabel, ylabel=ylabel, grid="y")
    fig.legend(loc="outside lower center", ncols=min(n, 3), fontsize=8, frameon=False)
    return png(fig)


def curves(series: dict[str, list[float]], ylabel: str, title: str) -> bytes:
    """Lines over integer epochs (1, 2, ...), one per series."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = figure(7.0, 3.6)
    longest = 1
    for s, (label, values) in enumerate(series.items()):
        epochs = np.arange(1, len(values) + 1)
        longest = max(longest, len(values))
        ax.plot(epochs, values, marker="o", color=COLOURS[s % len(COLOURS)], label=label)
    if longest <= 20:
        ax.set_xticks(np.arange(1, longest + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, longest + 0.5)
    _frame(ax, title, xlabel="epoch", ylabel=ylabel)
    ax.legend(fontsize=8, loc="best")
    return png(fig)


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:,.0f}")


def histogram_bars(values, counts, xlabel: str, ylabel: str, title: str) -> bytes:
    fig, ax = figure(6.5, 3.4)
    values = np.asarray(values, np.float64)
    step = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
    ax.bar(values, counts, width=step * 0.7, color=COLOURS[1])
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.yaxis.set_major_formatter(_thousands())
    _frame(ax, title, xlabel=xlabel, ylabel=ylabel, grid="y")
    return png(fig)


def histogram(values, xlabel: str, ylabel: str, title: str, log: bool = False) -> bytes:
    fig, ax = figure(6.5, 3.4)
    ax.hist(values, bins=40, color=COLOURS[0])
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_thousands())
    _frame(ax, title, xlabel=xlabel, ylabel=ylabel, grid="y")
    return png(fig)


def poster_map(xy: np.ndarray, labels: list[str], explained: list[float], title: str) -> bytes:
    """A 2-D scatter coloured by label (the nine commonest; the rest grey), legend outside on the right."""
    plt = _plt()
    names, counts = np.unique(labels, return_counts=True)
    top = [n for _, n in sorted(zip(-counts, names))][:9]
    fig, ax = figure(8.0, 5.6)
    cmap = plt.get_cmap("tab10")
    labels = np.asarray(labels)
    other = ~np.isin(labels, top)
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=6, color="#bbbbbb", label="other")
    for i, name in enumerate(top):
        mask = labels == name
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, color=cmap(i), label=name)
    ax.set_xlabel(f"first principal component ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal component ({explained[1]:.0%})")
    ax.set_title(title, fontsize=11)
    fig.legend(loc="outside right center", fontsize=8, markerscale=2, frameon=False, title="first genre")
    return png(fig)


def contact_sheet(images: list, titles: list[str], scores: list[str]) -> bytes:
    """Posters side by side, each titled (wrapped to two lines) with its score."""
    import textwrap

    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.55 * n, 2.85), layout="constrained", squeeze=False)
    from PIL import ImageOps

    for ax, im, title, score in zip(axes[0], images, titles, scores):
        ax.imshow(ImageOps.pad(im, (200, 300), color=(255, 255, 255)))  # one size: the titles line up
        lines = textwrap.wrap(title, 18, max_lines=2, placeholder="…") or [" "]
        ax.set_title("\n".join([" "] * (2 - len(lines)) + lines + [score]), fontsize=7)
        ax.axis("off")
    return png(fig)
