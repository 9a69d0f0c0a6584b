"""Will a training run fit in memory? An estimate from the dataset's counts, checked before fitting.

Nothing after the fit holds users x movies (see `text_model.scoring`), so the peak is the data,
the network with its optimiser state, the PureSVD factors and the TensorFlow runtime. The
per-rating constant was measured with ``benchmarks/scale.py`` (peak RSS of ``train`` against the
number of ratings) and rounded up. Methods that hold dense movies x movies matrices are refused
above a size by `check_dense_items`, with the method that scales instead. A run that cannot fit is refused with one line naming the
setting to change, instead of being killed by the kernel after the epochs.
"""
from __future__ import annotations

import os

from catalog import DatasetError

from .config import TextModelConfig
from .scoring import CHUNK_CELLS

GB = 1 << 30
RUNTIME = 0.9 * GB         # TensorFlow, Keras, pandas and the interpreter, before any data
# bytes per training rating that live at the peak: the ratings frame (20), int32 row columns and
# ratings (12) and their graph constants (12), the network's two neighbour CSRs (8), the
# Interactions of the fit and validation parts (12), and the transient copies of the ranking
# fit (PureSVD's sparse matrix, the grid's seen pairs) and of saving the version (~100).
# benchmarks/scale.py measured peak RSS 1.40 GB at 2.49M ratings (after the tf.data shuffle buffer,
# ~190 bytes a rating, was replaced by a per-epoch permutation); rounded up so that the estimate errs high
PER_RATING = 200
ENV = "POSTEREC_MEMORY_GB"  # overrides the available memory (GB) the check compares with


class MemoryBudgetError(DatasetError):
    """A training run whose estimated peak memory exceeds what the machine has."""


def estimate(n_ratings: int, n_users: int, n_movies: int, config: TextModelConfig) -> dict[str, float]:
    """Estimated peak bytes of ``train``, by part."""
    c = config
    hidden = sum(c.hidden_units)
    per_user = c.user_embedding_dim + c.implicit_dim + 1 + c.vector_dim
    per_movie = c.movie_embedding_dim + c.implicit_dim + 1 + c.vector_dim
    params = n_users * per_user + n_movies * per_movie + hidden * (hidden + c.vector_dim)
    k = max(c.ranking_factors, default=0)
    return {
        "runtime": RUNTIME,
        "ratings": float(PER_RATING * n_ratings),
        # weights, two Adam slots and a dense gradient per table; with weight averaging
        # (ema_epochs) the average and the raw weights' copy held over each epoch's end
        "network": float(4 * (6 if c.ema_epochs else 4) * params),
        # the randomised SVD's (rows x (k + 10)) blocks and QR temporaries, then the ranking vectors
        "ranking": float(4 * 5 * (n_users + n_movies) * (k + 10)) if k else 0.0,
        "vectors": float(4 * 3 * (n_users + n_movies) * (c.vector_dim + 4 + k)),
        "scoring": float(48 * CHUNK_CELLS),
    }


FIXES = {
    "ratings": "train on fewer ratings (a smaller dataset or split) or on a machine with more memory",
    "network": "lower user_embedding_dim, movie_embedding_dim, implicit_dim or vector_dim in the config",
    "ranking": "lower ranking_factors in the config (or set it to () to rank by predicted rating alone)",
    "vectors": "lower vector_dim or ranking_factors in the config",
    "runtime": "free memory on this machine",
    "scoring": "free memory on this machine",
}


def available() -> float:
    """Bytes the run may use: ``$POSTEREC_MEMORY_GB`` if set, else the kernel's MemAvailable."""
    if os.environ.get(ENV):
        try:
            return float(os.environ[ENV]) * GB
        except ValueError:
            raise ValueError(f"${ENV} must be a number of GB, got {os.environ[ENV]!r}") from None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")  # unknown: do not refuse


def check(n_ratings: int, n_users: int, n_movies: int, config: TextModelConfig, what: str = "train",
          budget: float | None = None) -> dict[str, float]:
    """The estimate, or `MemoryBudgetError` (one line, naming the setting to change) when over budget."""
    parts = estimate(n_ratings, n_users, n_movies, config)
    total = sum(parts.values())
    budget = available() if budget is None else float(budget)
    if total > budget:
        tunable = {k: v for k, v in parts.items() if k not in ("runtime", "scoring")}
        worst = max(tunable, key=tunable.get)
        raise MemoryBudgetError(
            f"{what}: needs about {total / GB:.1f} GB for {n_ratings:,} ratings, {n_users:,} users and "
            f"{n_movies:,} movies (config {config.name!r}; most of it {worst}: {parts[worst] / GB:.1f} GB), "
            f"but {budget / GB:.1f} GB are available; {FIXES[worst]} (or set ${ENV} if the estimate is wrong)")
    return parts


DENSE_ITEMS_LIMIT = 20_000  # movies above which a dense movies x movies matrix is refused


def check_dense_items(n_movies: int, what: str, alternative: str, copies: int = 3,
                      budget: float | None = None, limit: int = DENSE_ITEMS_LIMIT) -> float:
    """Refuse (`MemoryBudgetError`, one line) a method that holds dense movies x movies float32
    matrices (``copies`` of them: e.g. EASE's Gram matrix, its inverse and the weights; an
    item-item co-rating table) when the catalogue is above ``limit`` movies or the matrices do
    not fit the budget; returns their bytes otherwise. At ml-25m's 62,423 movies one such matrix
    is 15.6 GB and its inversion ~2.4e14 flops: name the method that scales instead."""
    need = float(copies) * 4.0 * float(n_movies) ** 2
    budget = available() if budget is None else float(budget)
    if n_movies > limit or need > budget:
        raise MemoryBudgetError(
            f"{what}: {n_movies:,} movies need {copies} dense {n_movies:,} x {n_movies:,} float32 matrices "
            f"({need / GB:.1f} GB, cubic time to invert; {budget / GB:.1f} GB available, and this method stops at "
            f"{limit:,} movies); {alternative}")
    return need

