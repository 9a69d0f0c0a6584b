"""This model version beside the classic collaborative-filtering families, fitted in one run on one split.

`compare(version, dataset, config)` measures, on the same training and test ratings:

- similarity without regression: item-kNN with baseline (Surprise ``KNNBaseline``);
- latent factors by regression: Surprise ``SVD`` and ``SVDpp``;
- deep: this version's text-CNN (RMSE and MAE of its own predictions on its test pairs);
- ranking: HR@N and NDCG@N of the text-CNN's ranking model, its predicted rating alone, SVD,
  SVD++ and "most popular".

Which ratings: an *evaluation* model (trained on a split) is measured on its own test pairs, and
the baselines are fitted on its own training ratings (the version's ``interactions``). A model
*for use* (split ``none``) saw every rating, so it cannot be measured on held-out ratings: the
baselines are then fitted on the report's own split (`CompareConfig.split`, by default
``random-80-20`` with seed 0, the very split ``posterec train --split random-80-20`` makes) and
the text-CNN rows say how to make an evaluation model on it.

Test ratings count only when their user and their movie both appear in the training ratings, so
every model answers the same questions. Ranking: each test user with at least one held-out rating
of `CompareConfig.liked` or more ranks every movie of the training ratings that they did not rate
in training; the held-out liked movies are the relevant ones. HR@N is the share of those users with
a relevant movie in their top N; NDCG@N uses binary gains. Scores are ranked before any clipping to
the rating scale (clipping would tie every top movie at 5).

Surprise (scikit-surprise) is the ``report`` extra; without it the Surprise rows say so.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from catalog import top_n

SURPRISE_HINT = "pip install 'posterec[report]' (the scikit-surprise package)"
TEXT_CNN = "text-CNN (this model)"


@dataclass(frozen=True)
class CompareConfig:
    baselines: bool = True          # fit the Surprise models (False: text-CNN and most popular only)
    n: int = 10                     # the N of HR@N and NDCG@N
    liked: float = 4.0              # a held-out rating this high is a relevant movie for ranking
    split: str = "random-80-20"     # the report's own split, for a model put to use
    seed: int = 0
    knn_k: int = 40
    svd_factors: int = 100
    svd_epochs: int = 20
    svdpp_factors: int = 20
    svdpp_epochs: int = 20
    groups: int = 3                 # user-activity and movie-popularity groups (quantiles)

    def __post_init__(self) -> None:
        for name in ("n", "knn_k", "svd_factors", "svd_epochs", "svdpp_factors", "svdpp_epochs", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"report setting {name} must be a whole number of at least 1, got {value!r}")


@dataclass
class EvalData:
    """The training and test ratings every model is measured on (frames of user_id, movie_id, rating)."""

    split: str
    seed: int
    source: str                     # "model": the version's own split; "report": the report's split
    train: pd.DataFrame
    test: pd.DataFrame
    dropped: int                    # test ratings left out: their user or movie is not in training
    trained_on: int = 0             # test ratings left out: also among the training ratings


@dataclass
class Result:
    name: str
    family: str
    rmse: float | None = None
    mae: float | None = None
    hr: float | None = None
    ndcg: float | None = None
    fit_seconds: float | None = None
    note: str = ""
    predictions: np.ndarray | None = field(default=None, repr=False)   # on EvalData.test, in order
    top: np.ndarray | None = field(default=None, repr=False)           # (ranking users, n) columns


@dataclass
class RankingTask:
    users: np.ndarray               # int64 (u,): test users with a held-out liked movie
    movies: np.ndarray              # int64 (m,): the candidate movies (every movie in training), sorted
    seen: np.ndarray                # bool (u, m): rated in training, never a candidate
    pair_users: np.ndarray          # int64 (p,): rows into users, one per held-out liked rating
    pair_cols: np.ndarray           # int64 (p,): columns into movies (-1: movie not in training)


@dataclass
class Comparison:
    data: EvalData
    results: list[Result]
    task: RankingTask
    notes: list[str]
    purpose: str                    # "evaluation", "use" or "" (no model)

    def result(self, name: str) -> Result | None:
        return next((r for r in self.results if r.name == name), None)


# -- the ratings to measure on -----------------------------------------------------------------
def _frame(users, movies, ratings) -> pd.DataFrame:
    return pd.DataFrame({"user_id": np.asarray(users, np.int64), "movie_id": np.asarray(movies, np.int64),
                         "rating": np.asarray(ratings, np.float32)})


def _pair_keys(frame: pd.DataFrame) -> np.ndarray:
    return frame["user_id"].to_numpy(np.int64) << 32 | frame["movie_id"].to_numpy(np.int64)


def _known(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    return test["user_id"].isin(train["user_id"].unique()).to_numpy() & \
        test["movie_id"].isin(train["movie_id"].unique()).to_numpy()


def held_out(version) -> bool:
    """Whether ``version`` is an evaluation model with its test pairs. The manifest's ``purpose``
    decides: a model for use (split none) trained on top of an evaluation version may still list
    the parent's test pairs, which it trained on."""
    if version is None or not version.has("test_pairs"):
        return False
    purpose = version.manifest.get("purpose")
    split = version.stage("train").get("split") or {}
    return purpose == "evaluation" or (purpose is None and split.get("test", 1) != 0)


def evaluation_data(version, dataset, config: CompareConfig) -> EvalData:
    """The version's own split when it held ratings out, else the report's split of ``dataset``."""
    if held_out(version):
        from catalog import Interactions
        from text_model.artifacts import load_test_pairs

        split = version.stage("train").get("split") or {}
        test = _frame(*load_test_pairs(version))
        if version.has("interactions"):
            inter = Interactions.from_arrays(version.arrays("interactions"))
            train = _frame(np.repeat(inter.user_ids, inter.user_counts()), inter.movie_ids, inter.ratings)
        else:  # an older version: the dataset's ratings less the test pairs
            r = dataset.ratings
            kept = r[~np.isin(_pair_keys(r), _pair_keys(test))]
            train = _frame(kept["user_id"], kept["movie_id"], kept["rating"])
        name, seed, source = str(split.get("name", "?")), int(split.get("seed", 0)), "model"
    else:
        from catalog import make_split

        chosen = make_split(dataset.ratings, config.split, config.seed)
        train = _frame(chosen.train["user_id"], chosen.train["movie_id"], chosen.train["rating"])
        test = _frame(chosen.test["user_id"], chosen.test["movie_id"], chosen.test["rating"])
        name, seed, source = chosen.name, chosen.seed, "report"
    known = _known(train, test)
    overlap = np.isin(_pair_keys(test), _pair_keys(train))
    data = EvalData(name, seed, source, train, test[known & ~overlap].reset_index(drop=True),
                    int((~known).sum()), int((known & overlap).sum()))
    return data


def ranking_task(data: EvalData, liked: float) -> RankingTask:
    movies = np.unique(data.train["movie_id"].to_numpy(np.int64))
    good = data.test[data.test["rating"] >= liked]
    users = np.unique(good["user_id"].to_numpy(np.int64))
    seen = np.zeros((len(users), len(movies)), dtype=bool)
    tr_u = np.searchsorted(users, data.train["user_id"].to_numpy(np.int64))
    ok = (tr_u < len(users)) & (users[np.minimum(tr_u, len(users) - 1)] == data.train["user_id"].to_numpy())
    if len(users):
        seen[tr_u[ok], np.searchsorted(movies, data.train["movie_id"].to_numpy(np.int64)[ok])] = True
    pair_users = np.searchsorted(users, good["user_id"].to_numpy(np.int64))
    cols = np.searchsorted(movies, good["movie_id"].to_numpy(np.int64))
    cols = np.where((cols < len(movies)) & (movies[np.minimum(cols, len(movies) - 1)] == good["movie_id"].to_numpy()),
                    cols, -1)
    return RankingTask(users, movies, seen, pair_users.astype(np.int64), cols.astype(np.int64))


# -- metrics -----------------------------------------------------------------------------------
def rmse(y, p) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(p, np.float64)) ** 2)))


def mae(y, p) -> float:
    return float(np.mean(np.abs(np.asarray(y, np.float64) - np.asarray(p, np.float64))))


def rank(task: RankingTask, score_rows, n: int, chunk: int = 1024) -> np.ndarray:
    """Top-``n`` candidate columns per ranking user; ``score_rows(lo, hi)`` gives users lo..hi's scores."""
    out = np.full((len(task.users), n), -1, np.int64)
    for lo in range(0, len(task.users), chunk):
        hi = min(lo + chunk, len(task.users))
        out[lo:hi] = top_n(score_rows(lo, hi), n, task.seen[lo:hi])[0]
    return out


def pair_hits(task: RankingTask, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, rank) per held-out liked rating: whether its movie is in the user's top N, and where."""
    rows = top[task.pair_users]
    match = (rows == task.pair_cols[:, None]) & (task.pair_cols[:, None] >= 0)
    return match.any(axis=1), np.where(match.any(axis=1), match.argmax(axis=1), -1)


def hit_rate_ndcg(task: RankingTask, top: np.ndarray) -> tuple[float, float]:
    if not len(task.users):
        return float("nan"), float("nan")
    n = top.shape[1]
    hit, where = pair_hits(task, top)
    per_user_hit = np.bincount(task.pair_users[hit], minlength=len(task.users)) > 0
    dcg = np.bincount(task.pair_users[hit], weights=1.0 / np.log2(where[hit] + 2.0), minlength=len(task.users))
    relevant = np.bincount(task.pair_users, minlength=len(task.users))
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(n) + 2.0))])
    idcg = discounts[np.minimum(relevant, n)]
    return float(per_user_hit.mean()), float(np.mean(dcg / idcg))


def _measure(result: Result, data: EvalData, task: RankingTask, n: int, predictions=None, score_rows=None):
    if predictions is not None:
        result.predictions = np.asarray(predictions, np.float64)
        y = data.test["rating"].to_numpy()
        result.rmse, result.mae = rmse(y, result.predictions), mae(y, result.predictions)
    if score_rows is not None:
        result.top = rank(task, score_rows, n)
        result.hr, result.ndcg = hit_rate_ndcg(task, result.top)
    return result


# -- the models --------------------------------------------------------------------------------
def _rows_into(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` in the sorted ``ids``; -1 where absent."""
    ids = np.asarray(ids, np.int64)
    pos = np.searchsorted(ids, wanted)
    ok = (pos < len(ids)) & (ids[np.minimum(pos, max(len(ids) - 1, 0))] == wanted) if len(ids) else \
        np.zeros(len(wanted), bool)
    return np.where(ok, pos, -1)


def _vector_scores(task: RankingTask, users, movies):
    """``score_rows`` from two `catalog.Vectors` whose inner product is the score (-inf: unknown)."""
    order_u, order_m = np.argsort(users.ids), np.argsort(movies.ids)
    u = _rows_into(users.ids[order_u], task.users)
    m = _rows_into(movies.ids[order_m], task.movies)
    uv = np.zeros((len(task.users), users.dim), np.float32)
    uv[u >= 0] = users.values[order_u[u[u >= 0]]]
    mv = np.zeros((len(task.movies), movies.dim), np.float32)
    mv[m >= 0] = movies.values[order_m[m[m >= 0]]]

    def score_rows(lo, hi):
        s = (uv[lo:hi] @ mv.T).astype(np.float64)
        s[:, m < 0] = -np.inf
        s[u[lo:hi] < 0] = -np.inf
        return s
    return score_rows


def text_cnn(version, data: EvalData, task: RankingTask, config: CompareConfig) -> list[Result]:
    """The text-CNN rows: its rating error on the test pairs and its two rankings."""
    family = "deep"
    ranked_by = "ranking model"
    if version is None or not version.has("text_model"):
        note = "no rating model in this home: run `posterec train --split random-80-20`"
        return [Result(TEXT_CNN, family, note=note)]
    if data.source != "model":
        note = (f"not measured: this model was trained on every rating, these test ratings included; "
                f"`posterec train --split {data.split} --seed {data.seed}` makes an evaluation model on this split")
        return [Result(TEXT_CNN, family, note=note)]
    from .pipeline import text_vectors

    rating, ranking = text_vectors(version)
    fit = version.stage("train").get("fit_seconds")
    main = Result(TEXT_CNN, family, fit_seconds=None if fit is None else float(fit))
    users = data.test["user_id"].to_numpy(np.int64)
    movies = data.test["movie_id"].to_numpy(np.int64)
    known = (_rows_into(rating.user_ids, users) >= 0) & (_rows_into(rating.movie_ids, movies) >= 0)
    if not known.all():  # the model's vocabulary lacks some training ids: cannot answer those pairs
        main.note = f"{int((~known).sum())} test pairs unknown to the model were scored as the training mean"
    pred = np.full(len(users), float(data.train["rating"].mean()))
    try:
        pred[known] = rating.predict(users[known], movies[known])
    except ValueError:  # an fc head: only the network predicts
        from text_model import load_text_model

        pred[known] = load_text_model(version).predict(users[known], movies[known])
        main.note = (main.note + "; " if main.note else "") + "fc head: predicted by the network (TensorFlow)"
    if ranking is not None:
        ranked_by = f"ranking model {ranking.name}"
        _measure(main, data, task, config.n, pred, _vector_scores(task, ranking.ranking_users, ranking.ranking_movies))
    else:
        _measure(main, data, task, config.n, pred, _vector_scores(task, rating.scoring_users, rating.scoring_movies))
    main.note = "; ".join(x for x in (f"ranked by its {ranked_by}", main.note) if x)
    out = [main]
    if ranking is not None and rating.dot_head:
        alone = Result("text-CNN, predicted rating alone", family, note="ranked by the predicted rating")
        out.append(_measure(alone, data, task, config.n,
                            score_rows=_vector_scores(task, rating.scoring_users, rating.scoring_movies)))
    return out


def most_popular(data: EvalData, task: RankingTask, config: CompareConfig) -> Result:
    counts = data.train["movie_id"].value_counts()
    pop = counts.reindex(task.movies).fillna(0).to_numpy(np.float64)
    r = Result("most popular", "ranking baseline", note="movies by number of training ratings")
    start = time.perf_counter()
    _measure(r, data, task, config.n, score_rows=lambda lo, hi: np.broadcast_to(pop, (hi - lo, len(pop))))
    r.fit_seconds = round(time.perf_counter() - start, 2)
    return r


def surprise_available() -> bool:
    try:
        import surprise  # noqa: F401
    except ImportError:
        return False
    return True


def _factor_scores(task: RankingTask, algo, trainset, plus_plus: bool):
    """Unclipped SVD / SVD++ estimates over the candidates, from Surprise's learned arrays."""
    u_inner = _inner(trainset.to_inner_uid, task.users)
    m_inner = _inner(trainset.to_inner_iid, task.movies)
    pu = np.asarray(algo.pu, np.float64)
    if plus_plus:
        yj = np.asarray(algo.yj, np.float64)
        pu = pu.copy()
        for inner_u in range(trainset.n_users):
            items = [j for j, _ in trainset.ur[inner_u]]
            if items:
                pu[inner_u] += yj[items].sum(axis=0) / np.sqrt(len(items))
    qi, bu, bi = np.asarray(algo.qi, np.float64), np.asarray(algo.bu, np.float64), np.asarray(algo.bi, np.float64)
    mu = float(trainset.global_mean)

    def score_rows(lo, hi):
        us = u_inner[lo:hi]
        s = mu + bu[np.maximum(us, 0)][:, None] + bi[np.maximum(m_inner, 0)][None, :] + \
            pu[np.maximum(us, 0)] @ qi[np.maximum(m_inner, 0)].T
        s[:, m_inner < 0] = -np.inf
        s[us < 0] = -np.inf
        return s
    return score_rows


def _inner(to_inner, raw_ids) -> np.ndarray:
    out = np.full(len(raw_ids), -1, np.int64)
    for k, raw in enumerate(raw_ids):
        try:
            out[k] = to_inner(int(raw))
        except ValueError:
            pass
    return out


def surprise_models(data: EvalData, task: RankingTask, config: CompareConfig) -> list[Result]:
    """KNNBaseline, SVD and SVD++ fitted on the training ratings, measured on the test ratings."""
    from surprise import SVD, Dataset, KNNBaseline, Reader, SVDpp

    lo, hi = float(data.train["rating"].min()), float(data.train["rating"].max())
    trainset = Dataset.load_from_df(data.train[["user_id", "movie_id", "rating"]],
                                    Reader(rating_scale=(lo, hi))).build_full_trainset()
    pairs = list(zip(data.test["user_id"].tolist(), data.test["movie_id"].tolist(), data.test["rating"].tolist()))
    specs = [
        ("KNNBaseline (item-kNN)", "similarity: item-kNN with baselines",
         KNNBaseline(k=config.knn_k, sim_options={"name": "pearson_baseline", "user_based": False},
                     verbose=False), None, f"k={config.knn_k}, pearson-baseline similarity; not ranked"),
        ("SVD", "latent factors", SVD(n_factors=config.svd_factors, n_epochs=config.svd_epochs,
                                      random_state=config.seed), False,
         f"{config.svd_factors} factors, {config.svd_epochs} epochs"),
        ("SVD++", "latent factors", SVDpp(n_factors=config.svdpp_factors, n_epochs=config.svdpp_epochs,
                                          random_state=config.seed, cache_ratings=True), True,
         f"{config.svdpp_factors} factors, {config.svdpp_epochs} epochs"),
    ]
    out = []
    for name, family, algo, plus_plus, note in specs:
        start = time.perf_counter()
        algo.fit(trainset)
        seconds = time.perf_counter() - start
        pred = np.array([p.est for p in algo.test(pairs)], np.float64)
        r = Result(name, family, fit_seconds=round(seconds, 2), note=note)
        scores = None if plus_plus is None else _factor_scores(task, algo, trainset, plus_plus)
        out.append(_measure(r, data, task, config.n, pred, scores))
    return out


def compare(version, dataset, config: CompareConfig | None = None) -> Comparison:
    """Fit and measure every model of the comparison on one split (see the module docstring)."""
    config = config or CompareConfig()
    data = evaluation_data(version, dataset, config)
    task = ranking_task(data, config.liked)
    notes: list[str] = []
    results = text_cnn(version, data, task, config)
    if not config.baselines:
        notes.append("KNNBaseline, SVD and SVD++ were skipped (--no-baselines).")
    elif not surprise_available():
        notes.append(f"KNNBaseline, SVD and SVD++ are not measured: Surprise is not installed; {SURPRISE_HINT}.")
    else:
        results += surprise_models(data, task, config)
    results.append(most_popular(data, task, config))
    purpose = "" if version is None else ("evaluation" if held_out(version) else "use")
    if data.trained_on:
        notes.append(f"{data.trained_on:,} of this version's test pairs are also among its training ratings: "
                     f"they are left out, and the version should be retrained.")
    return Comparison(data, results, task, notes, purpose)


# -- breakdowns --------------------------------------------------------------------------------
def _edges(values: np.ndarray, groups: int) -> np.ndarray:
    """Integer cut points splitting ``values`` into about equal-sized groups (fewer when values repeat)."""
    qs = np.quantile(values, np.linspace(0, 1, groups + 1)[1:-1]) if len(values) else np.zeros(0)
    return np.unique(np.floor(qs).astype(np.int64))


def _group_labels(edges: np.ndarray, unit: str) -> list[str]:
    if not len(edges):
        return [f"all {unit}"]
    labels = [f"≤ {edges[0]}"]
    labels += [f"{a + 1}–{b}" for a, b in itertools.pairwise(edges)]
    labels.append(f"> {edges[-1]}")
    return [f"{x} {unit}" for x in labels]


def by_user_activity(comparison: Comparison, groups: int = 3) -> tuple[list[str], list[int], dict[str, list[float]]]:
    """RMSE per group of users by their number of training ratings: (labels, test ratings per group,
    {model: RMSE per group})."""
    data = comparison.data
    per_user = data.train["user_id"].value_counts()
    activity = per_user.reindex(data.test["user_id"]).to_numpy(np.int64)
    edges = _edges(activity, groups)
    group = np.searchsorted(edges, activity, side="left")
    labels = _group_labels(edges, "ratings")
    y = data.test["rating"].to_numpy(np.float64)
    sizes = [int((group == g).sum()) for g in range(len(labels))]
    out = {}
    for r in comparison.results:
        if r.predictions is not None:
            out[r.name] = [rmse(y[group == g], r.predictions[group == g]) if sizes[g] else float("nan")
                           for g in range(len(labels))]
    return labels, sizes, out


def by_movie_popularity(comparison: Comparison, groups: int = 3) -> tuple[list[str], list[int], dict[str, list[float]]]:
    """HR@N per held-out liked rating, by the movie's number of training ratings: (labels, ratings
    per group, {ranker: share of those ratings whose movie made the user's top N})."""
    task, data = comparison.task, comparison.data
    counts = data.train["movie_id"].value_counts()
    movie_ids = np.where(task.pair_cols >= 0, task.movies[np.maximum(task.pair_cols, 0)], -1)
    pop = counts.reindex(movie_ids).fillna(0).to_numpy(np.int64)
    edges = _edges(pop, groups)
    group = np.searchsorted(edges, pop, side="left")
    labels = _group_labels(edges, "ratings")
    sizes = [int((group == g).sum()) for g in range(len(labels))]
    out = {}
    for r in comparison.results:
        if r.top is not None:
            hit, _ = pair_hits(task, r.top)
            out[r.name] = [float(hit[group == g].mean()) if sizes[g] else float("nan") for g in range(len(labels))]
    return labels, sizes, out
