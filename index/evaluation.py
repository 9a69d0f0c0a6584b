"""Comparing top-N results up to ties, as FAISS's ``contrib/evaluation.py`` does.

`check_hits` is the one helper every index test and the benchmark use to compare a search
path against exact brute force (`BruteForce`).
"""
from __future__ import annotations

import numpy as np

from catalog import Hits


def check_hits(got: Hits | list[Hits], want: Hits | list[Hits], atol: float = 1e-5) -> None:
    """Raise AssertionError unless ``got`` equals ``want`` up to ties.

    Per query: the same number of hits, no id twice, best first, scores equal within ``atol``,
    and within every group of tied scores (consecutive reference scores closer than ``atol``)
    the same set of ids, except the last group, which ``n`` may cut anywhere.
    """
    got_list = [got] if isinstance(got, Hits) else list(got)
    want_list = [want] if isinstance(want, Hits) else list(want)
    if len(got_list) != len(want_list):
        raise AssertionError(f"{len(got_list)} result lists, expected {len(want_list)}")
    for q, (g, w) in enumerate(zip(got_list, want_list)):
        g_ids, g_s = np.asarray(g.movie_ids), np.asarray(g.scores, np.float64)
        w_ids, w_s = np.asarray(w.movie_ids), np.asarray(w.scores, np.float64)
        where = f"query {q}"
        if g_ids.shape != w_ids.shape:
            raise AssertionError(f"{where}: {g_ids.shape} hits, expected {w_ids.shape}")
        if len(np.unique(g_ids)) != len(g_ids):
            raise AssertionError(f"{where}: an id is returned twice: {g_ids.tolist()}")
        if len(g_s) and np.any(np.diff(g_s) > atol):
            raise AssertionError(f"{where}: scores are not best first: {g_s.tolist()}")
        if not np.allclose(g_s, w_s, atol=atol, rtol=0):
            bad = int(np.flatnonzero(~np.isclose(g_s, w_s, atol=atol, rtol=0))[0])
            raise AssertionError(f"{where}: score {bad} is {g_s[bad]}, expected {w_s[bad]}")
        breaks = np.flatnonzero(np.diff(w_s) < -atol) + 1
        groups = np.split(np.arange(len(w_s)), breaks)
        for pos in groups[:-1]:
            if set(g_ids[pos].tolist()) != set(w_ids[pos].tolist()):
                raise AssertionError(f"{where}: at ranks {pos[0]}-{pos[-1]} ids {sorted(g_ids[pos].tolist())}, "
                                     f"expected {sorted(w_ids[pos].tolist())}")
