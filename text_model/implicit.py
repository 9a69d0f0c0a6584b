"""PureSVD of the who-rated-what matrix: the implicit part of recommend's ranking (numpy only).

Rating error alone ranks obscure movies with a few high ratings first, and loses to "most
popular" at finding what a user watches next. A truncated SVD of the binary user x movie matrix
(Cremonesi et al., 2010) models *which* movies a user rates; recommend ranks by
``puresvd(user, movie) + lam * predicted_rating``, an inner product of augmented vectors, with
``k`` and ``lam`` picked on the validation slice of the training data.
"""
from __future__ import annotations

import numpy as np


def pure_svd(user_rows: np.ndarray, movie_rows: np.ndarray, n_users: int, n_movies: int, k: int,
             seed: int = 0, power_iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(user factors U*S (n_users, k), movie factors V (n_movies, k)) of the binary matrix.

    Randomised SVD (Halko et al.) with sparse products, so it scales to large catalogues.
    """
    from scipy import sparse

    k = int(min(k, n_users, n_movies))
    r = sparse.csr_matrix((np.ones(len(user_rows), np.float32), (user_rows, movie_rows)), shape=(n_users, n_movies))
    r.data[:] = 1.0  # duplicates collapse to 1
    rng = np.random.default_rng(seed)
    q = r @ rng.standard_normal((n_movies, k + 10)).astype(np.float32)
    for _ in range(power_iterations):
        q, _ = np.linalg.qr(q)
        q, _ = np.linalg.qr(r.T @ q)
        q = r @ q
    q, _ = np.linalg.qr(q)
    b = (r.T @ q).T                                   # (k + 10, n_movies)
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    u = (q @ ub[:, :k]) * s[:k]
    return u.astype(np.float32), vt[:k].T.astype(np.float32)
