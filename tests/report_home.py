"""A small home for report tests: the planted dataset, an evaluation model trained by the CLI
(``train --split random-80-20 --epochs 1``, in a subprocess so this process never imports
TensorFlow), and posters with embeddings (comedies yellow, horror dark red)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from movielens_fixture import planted, write_ml100k

ROOT = Path(__file__).resolve().parent.parent


def posterec(home: Path, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "posterec", "--home", str(home), *args], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"posterec {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def add_posters(home: Path, n: int = 60) -> None:
    """Posters and poster embeddings for movies 1..n, in a new version on top of the current one."""
    from PIL import Image

    from catalog import ModelStore

    ids = np.arange(1, n + 1, dtype=np.int64)  # comedies 1-30, horror 31-60
    rng = np.random.default_rng(0)
    centre = np.where(ids <= 30, 1.0, -1.0)[:, None]
    values = np.hstack([centre, rng.normal(0, 0.2, (n, 7))]).astype(np.float32)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    pdir = home / "posters" / "ml-100k"
    pdir.mkdir(parents=True, exist_ok=True)
    for mid in ids:
        colour = (230, 200, 40) if mid <= 30 else (110, 10, 20)
        Image.new("RGB", (40, 60), colour).save(pdir / f"{mid}.jpg")
    with ModelStore(home).new_version() as w:
        w.write_arrays("visual", movie_ids=ids, values=values)
        w.manifest.setdefault("dataset", "ml-100k")


def trained_home(root: Path, posters: bool = True) -> Path:
    src = write_ml100k(root / "src-ml-100k", planted())
    home = root / "home"
    posterec(home, "download", "--dataset", "ml-100k", "--source", str(src))
    posterec(home, "train", "--dataset", "ml-100k", "--split", "random-80-20", "--epochs", "1")
    if posters:
        add_posters(home)
    return home
