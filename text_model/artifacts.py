"""Writing a trained `TextModel` into a new model version (the artifact contract)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catalog import ArtifactError, ModelStore, SeenItems, dataset_checksum
from catalog.arrays import save_npz

from .queries import (COLLAB, RANKING_MOVIES, RANKING_USERS, SCORING_MOVIES, SCORING_USERS, SEEN, USERS)

TEST_PAIRS = "test.npz"
CURVE = "training_curve.png"


def save_test_pairs(path: Path, test) -> None:
    save_npz(path, user_ids=test["user_id"].to_numpy(np.int64), movie_ids=test["movie_id"].to_numpy(np.int64),
             ratings=test["rating"].to_numpy(np.float32))


def load_test_pairs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not path.exists():
        raise ArtifactError(f"{path}: missing; retrain with `posterec train`")
    with np.load(path, allow_pickle=False) as d:
        return d["user_ids"], d["movie_ids"], d["ratings"]


def plot_curve(history: dict, path: Path, title: str = "text_model") -> None:
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
    ax.legend()
    ax.grid(alpha=0.3)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def write_version(home, dataset, split, tm, metrics: dict) -> Path:
    """A new model version holding ``tm``'s files; returns its folder (now CURRENT)."""
    store = ModelStore(home)
    with store.new_version() as w:
        folder = Path(w.path)
        tm.save(folder)
        users, movies = tm.vectors()
        movies.save(folder / COLLAB)
        users.save(folder / USERS)
        su, sm = tm.scoring_vectors()
        su.save(folder / SCORING_USERS)
        sm.save(folder / SCORING_MOVIES)
        ru, rm = tm.ranking_vectors()
        ru.save(folder / RANKING_USERS)
        rm.save(folder / RANKING_MOVIES)
        SeenItems.from_ratings(dataset.ratings).save(folder / SEEN)
        save_test_pairs(folder / TEST_PAIRS, split.test)
        plot_curve(tm.history, folder / CURVE, f"text_model ({tm.config.name}) on {dataset.name}")
        w.manifest["dataset"] = dataset.name
        w.manifest["text_model"] = {
            "config": tm.config.to_dict(), "dataset": dataset.name,
            "dataset_checksum": dataset_checksum(home, dataset.name), "split": split.describe(),
            "metrics": metrics, "epochs_run": len(tm.history.get("loss", [])),
            "fit_seconds": round(tm.fit_seconds, 2), "ranking_choice": tm.ranking_validation,
            "rating_range": list(tm.rating_range), "vector_dim": tm.config.vector_dim,
            "n_users": len(users), "n_movies": len(movies),
            "scoring": "dot(scoring_users, scoring_movies) == predicted rating (before clipping)"
                       if tm.config.head == "dot" else "fc head: scoring vectors are the plain towers",
            "ranking": "dot(ranking_users, ranking_movies) == PureSVD(k) score + rating_weight * predicted rating"
                       if tm.ranking_factors is not None else "ranking vectors == scoring vectors",
        }
    return store.require_current()
