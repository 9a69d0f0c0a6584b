"""Writing a trained `TextModel` into a new model version: the ``train`` stage's artifacts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog import SCHEMA, Interactions, dataset_checksum


def save_trained(writer, tm, dataset, split, metrics: dict, home) -> None:
    """Write ``tm`` and what it was trained on into ``writer`` (a `catalog.VersionWriter`).

    Artifacts: ``keras_model``, ``text_model``, ``ranking``, ``interactions`` (the *training*
    ratings only: a model knows only its training data), ``test_pairs`` (when the split held
    anything out) and ``training_curve``; then the ``train`` stage entry and the top-level
    ``dataset``, ``dataset_checksum`` and ``purpose`` of the manifest.
    """
    tm.save(writer)
    ranking = tm.ranking_model()
    ranking.save(writer)
    writer.write_arrays("interactions", **Interactions.from_ratings(split.train).to_arrays())
    if len(split.test):
        writer.write_arrays("test_pairs", user_ids=split.test["user_id"].to_numpy(np.int64),
                            movie_ids=split.test["movie_id"].to_numpy(np.int64),
                            ratings=split.test["rating"].to_numpy(np.float32))
    title = f"text_model ({tm.config.name}) on {dataset.name}"
    writer.write("training_curve", lambda tmp: plot_curve(tm.history, tmp, title))
    checksum = dataset_checksum(home, dataset.name)
    rv = tm.rating_vectors()
    writer.set_stage("train", {
        "config": tm.config.to_dict(), "dataset": dataset.name, "dataset_checksum": checksum,
        "split": split.describe(), "metrics": metrics, "epochs_run": len(tm.history.get("loss", [])),
        "fit_seconds": round(float(tm.fit_seconds), 2),
        "ranking": ranking_entry(tm.config, ranking, len(rv.user_ids), len(rv.movie_ids)),
        "rating_range": list(tm.rating_range), "vector_dim": tm.config.vector_dim,
        "n_users": len(rv.user_ids), "n_movies": len(rv.movie_ids),
    })
    writer.manifest["dataset"] = dataset.name
    writer.manifest["dataset_checksum"] = checksum
    writer.manifest["purpose"] = "evaluation" if len(split.test) else "use"


def ranking_entry(config, ranking, n_users: int, n_movies: int) -> dict:
    """The train stage's record of the ranking model: what it is, what the config asked for, where
    that default comes from and, when EASE was too large, why it fell back."""
    from .ranking import RANKING_CHOSEN_BY, ranking_fallback

    entry = {"name": ranking.name, "params": ranking.params, "requested": config.ranking_model,
             "default_chosen_by": RANKING_CHOSEN_BY}
    fallback = ranking_fallback(config, n_users, n_movies)
    if fallback:
        entry["fallback"] = fallback
    return entry


def load_test_pairs(version) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, movie ids, ratings) held out at training; empty when the version held none out."""
    if not version.has("test_pairs"):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a = version.arrays("test_pairs")
    try:
        out = (np.asarray(a["user_ids"], np.int64), np.asarray(a["movie_ids"], np.int64),
               np.asarray(a["ratings"], np.float32))
    except KeyError as exc:
        raise version.invalid(SCHEMA["test_pairs"], f"lacks the array {exc}") from None
    if not len(out[0]) == len(out[1]) == len(out[2]):
        raise version.invalid(SCHEMA["test_pairs"], "its arrays differ in length")
    return out


def plot_curve(history: dict, path: Path, title: str = "text_model") -> None:
    """The training curve (RMSE per epoch) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("rmse", "val_rmse"):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title(title)
    if any(history.get(k) for k in ("rmse", "val_rmse")):
        ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
