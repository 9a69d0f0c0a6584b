"""Where a training step's cost goes as the data grows: the `best` network's median step at two
data shapes, for several pooling settings, side by side in one process.

    python benchmarks/train_step_probe.py [--sizes 0.1,3.25] [--variants JSON]

Ids only (no CSV, no vocabulary): users and movies drawn with ml-25m-like skew (81 ratings per
user and 162 per movie on average, power-law popularity, log-normal activity) at each size, the
network built by `text_model.network.build_model` with `SparseAdam`, 60 steps of batch 1,024 through
`fit`; the median of steps 11-60 is reported with the ratio of the largest size to the smallest.
Each variant is a JSON object of `TextModelConfig` overrides. Also printed: the neighbours a
sampled-pooling step gathers (both sides, mean over 20 batches), which saturates at
2 x batch x implicit_samples however large the data.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

DEFAULT_VARIANTS = ('[{"implicit_pooling": "sampled"}, {"implicit_pooling": "sampled", "implicit_samples": 1},'
                    ' {"implicit_dim": 0}]')


def ids(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    nu, nm = max(50, n // 81), max(30, n // 162)
    popularity = 1.0 / (np.arange(nm) + 10.0) ** 0.9
    activity = rng.lognormal(0, 1.0, nu) + 0.2
    users = rng.choice(nu, size=n, p=activity / activity.sum()).astype(np.int32)
    movies = rng.choice(nm, size=n, p=popularity / popularity.sum()).astype(np.int32)
    return nu, nm, users, movies, rng.uniform(1, 5, n).astype(np.float32)


def gathered(n: int, samples: int, batch: int = 1024, batches: int = 20) -> float:
    """Mean neighbours a sampled step gathers, both sides: min(history, samples) per distinct row."""
    nu, nm, u, m, _ = ids(n)
    cu, cm = np.bincount(u, minlength=nu), np.bincount(m, minlength=nm)
    rng = np.random.default_rng(1)
    total = []
    for _ in range(batches):
        b = rng.integers(0, n, batch)
        total.append(np.minimum(cu[np.unique(u[b])], samples).sum() + np.minimum(cm[np.unique(m[b])], samples).sum())
    return float(np.mean(total))


def median_step(n: int, overrides: dict, steps: int = 60) -> float:
    import keras
    import tensorflow as tf

    from text_model.config import CONFIGS
    from text_model.layers import SparseAdam
    from text_model.network import build_model

    nu, nm, u, m, y = ids(n)
    config = CONFIGS["best"].with_overrides(**overrides)
    words = nm + 30  # a rare word per title, as real titles have
    sizes = dict(users=nu, movies=nm, genders=3, ages=8, occupations=22, genres=19, words=words)
    rng = np.random.default_rng(1)
    movie_table = np.concatenate([rng.integers(1, 19, (nm, 1)), np.zeros((nm, 2)), rng.integers(1, words, (nm, 6)),
                                  np.zeros((nm, 4))], 1).astype(np.int32)
    user_table = np.stack([rng.integers(0, 3, nu), rng.integers(0, 8, nu), rng.integers(0, 22, nu)], 1).astype(np.int32)
    keras.utils.set_random_seed(0)
    model = build_model(config, sizes, 3, 10, user_table, movie_table, 3.5, (u, m))
    model.compile(optimizer=SparseAdam(6e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    data = tf.data.Dataset.from_tensor_slices(({"user": u, "movie": m}, y)).shuffle(200_000, seed=0).batch(1024).repeat()
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
    return 1e3 * float(np.median(times[10:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="0.1,3.25", help="millions of ratings (default: 0.1,3.25)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="JSON list of config overrides")
    args = p.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]
    print(json.dumps({"cores": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]}))
    for s in sizes:
        print(f"{s}M ratings: a sampled step gathers {gathered(int(s * 1e6), 128):,.0f} neighbours at 128 per row")
    for v in json.loads(args.variants):
        row = [median_step(int(s * 1e6), v) for s in sizes]
        cells = " ".join(f"{s}M {t:.1f} ms" for s, t in zip(sizes, row))
        print(f"{json.dumps(v)}: {cells}, ratio {row[-1] / row[0]:.2f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
