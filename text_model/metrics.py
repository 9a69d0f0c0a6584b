"""Accuracy and ranking metrics (numpy only): RMSE/MAE, HR@N, NDCG@N, catalogue coverage."""
from __future__ import annotations

import numpy as np

from catalog import top_n as _top_n


def rmse(truth, pred) -> float:
    d = np.asarray(truth, np.float64) - np.asarray(pred, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(truth, pred) -> float:
    return float(np.mean(np.abs(np.asarray(truth, np.float64) - np.asarray(pred, np.float64))))


def top_n(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """Column positions of the ``n`` best scores per row, best first, never an excluded cell
    (-1 pads a row with fewer allowed cells); `catalog.top_n` ranks."""
    cols, _ = _top_n(scores, n, exclude)
    return cols


def hit_rate_ndcg(top: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """HR@N and NDCG@N when each row has exactly one relevant column ``target[row]``."""
    match = top == np.asarray(target).reshape(-1, 1)
    hit = match.any(axis=1)
    rank = np.argmax(match, axis=1)
    gains = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(hit.mean()), float(gains.mean())


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-N list."""
    return float(len(np.unique(top[top >= 0])) / max(n_items, 1))


def ranking_report(top: np.ndarray, target: np.ndarray, n_items: int, n: int = 10) -> dict:
    """HR@N, NDCG@N and coverage@N of top-N lists (column positions, one row per user)."""
    hr, ndcg = hit_rate_ndcg(top, target)
    return {f"hr_at_{n}": hr, f"ndcg_at_{n}": ndcg, f"coverage_at_{n}": coverage(top, n_items)}
