"""Embedding on a Ray cluster: Ray Data batch inference with one model per worker.

`RayEmbedder` has `PosterEmbedder`'s ``embed_files`` and ``dim``, so `embed_posters` runs it in
place of the local embedder and keeps everything else: the sha256-keyed cache, the checkpoints,
the failure bookkeeping. What runs on the workers is `PosterEmbedder` itself (the same decode,
`images.encoded_dataset`, and the same forward pass); only the reading of the bytes moves there.

- The driver builds the model once and, for the TFLite runtime, ships its flatbuffer to the
  workers (``ray.put``): every worker runs the very model the local path would, int8 calibration
  included, and a worker needs no weights file. ``runtime="keras"`` builds the model on each
  worker from the config, so the workers need the weights: ``KERAS_HOME`` (and ``PYTHONPATH``)
  of the driver are passed to them in the job's ``runtime_env``.
- Posters are read by the workers from a URL each: a path on a shared file system (NFS), or a
  ``file://``, ``s3://``, ``gs://``, ``hdfs://``... URI that pyarrow's file systems open (fsspec
  for other schemes). A worker checks each file's sha256 against the poster store's, so a stale
  copy in an object store is reported, never cached under the new poster's key.

Needs the optional extra ``posterec[cluster]`` (``ray[data]``); imported only when used.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from .config import VisionConfig

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
# Environment variables a worker must share with the driver to build the same model offline.
FORWARDED_ENV = ("KERAS_HOME", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")
BATCHES_PER_TASK = 4  # model batches in one Ray Data batch (fewer, larger transfers)


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide the Ray engine runs.

    ``address``: a running cluster (``ray://head:10001`` or ``auto``); None uses ``$RAY_ADDRESS``,
    else starts a local instance of ``num_cpus`` CPUs (all of them when None) for this run.
    ``workers``: model replicas (Ray actors), each with ``cpus_per_worker`` CPUs and as many
    TFLite threads.
    """

    address: str | None = None
    workers: int = 1
    cpus_per_worker: int = 1
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "cpus_per_worker"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.num_cpus is not None and int(self.num_cpus) < 1:
            raise ValueError(f"num_cpus must be at least 1, got {self.num_cpus}")

    def to_dict(self) -> dict:
        return {"address": self.address, "workers": self.workers, "cpus_per_worker": self.cpus_per_worker,
                "num_cpus": self.num_cpus}


def import_ray():
    """``ray`` and ``ray.data``, or an error that names the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        from catalog import PosterecError

        raise PosterecError(f"--engine ray needs Ray Data ({exc}): pip install 'posterec[cluster]'") from None
    return ray


def poster_url(path, local_root, url_root: str | None) -> str:
    """Where workers read the poster at ``path`` (under the store's ``local_root``): the same file
    name under ``url_root`` (a shared folder or an object-store URI), or ``path`` itself (absolute)
    when ``url_root`` is None."""
    from pathlib import Path

    path = Path(path).resolve()
    if url_root is None:
        return str(path)
    try:
        rel = path.relative_to(Path(local_root).resolve())
    except ValueError:
        raise ValueError(f"poster {path} is not under the poster store {local_root}") from None
    if "://" not in url_root:
        return str(Path(url_root).expanduser().resolve() / rel)
    return url_root.rstrip("/") + "/" + rel.as_posix()


_FILESYSTEMS: dict = {}


def read_url(url: str) -> bytes:
    """The bytes at ``url``: a local path, or a URI of a pyarrow file system (s3, gs, hdfs, file,
    ...); fsspec opens the schemes pyarrow does not know."""
    if "://" not in url:
        with open(url, "rb") as fh:
            return fh.read()
    import pyarrow as pa
    import pyarrow.fs as pafs

    scheme, netloc = urlsplit(url)[:2]
    fs = _FILESYSTEMS.get((scheme, netloc))
    try:
        if fs is None:
            fs, path = pafs.FileSystem.from_uri(url)
            if scheme in ("file", "s3", "gs", "gcs"):  # paths of these are the URI's own: reuse the client
                _FILESYSTEMS[(scheme, netloc)] = fs
        else:
            path = (netloc + urlsplit(url).path) if scheme != "file" else urlsplit(url).path
        with fs.open_input_stream(path) as fh:
            return fh.read()
    except pa.ArrowInvalid as exc:
        if "Unrecognized filesystem" not in str(exc):
            raise
    import fsspec

    with fsspec.open(url, "rb") as fh:
        return fh.read()


class EmbedBatch:
    """The Ray Data callable class: one `PosterEmbedder` per worker, built once; each batch of
    ``(index, url, sha256)`` rows becomes ``(index, vector, error)`` rows (error "" when embedded)."""

    def __init__(self, config: dict, runtime: str, tflite_ref=None, threads: int = 1):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from .embedder import PosterEmbedder

        self.config = VisionConfig.from_dict(config)
        if tflite_ref is not None:  # the flatbuffer holds the weights: no Keras model, no weights file
            import ray

            self.embedder = PosterEmbedder(self.config, runtime="tflite", threads=threads,
                                           tflite=ray.get(tflite_ref))
        else:
            self.embedder = PosterEmbedder(self.config, runtime=runtime, threads=threads)

    def __call__(self, batch: dict) -> dict:
        from .embedder import describe_bytes

        index = np.asarray(batch["index"], np.int64)
        errors = [""] * len(index)
        blobs, rows = [], []
        for k, (url, sha) in enumerate(zip(batch["url"], batch["sha256"])):
            try:
                data = read_url(str(url))
            except Exception as exc:  # noqa: BLE001 - one bad poster is recorded, the run goes on
                errors[k] = f"cannot read {url} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                continue
            got = hashlib.sha256(data).hexdigest()
            if sha and got != sha:
                errors[k] = (f"{url} has sha256 {got[:12]}..., not the poster store's {str(sha)[:12]}...: "
                             f"the copy the workers read is not the poster that was scraped; copy it again")
                continue
            blobs.append(data)
            rows.append(k)
        vectors = np.zeros((len(index), self.embedder.dim), np.float32)
        done, values = self.embedder.embed_encoded(blobs)
        vectors[[rows[i] for i in done]] = values
        for i in sorted(set(range(len(blobs))) - set(done.tolist())):
            errors[rows[i]] = describe_bytes(blobs[i])
        return {"index": index, "vector": vectors, "error": np.array(errors, dtype=object)}


class RayEmbedder:
    """Embeds poster URLs on Ray (see the module's doc); a drop-in ``embedder`` for `embed_posters`.

    ``sha256`` maps a URL to the sha256 its bytes must have (the poster store's); URLs not in it
    are not checked. ``cache_dir`` is where the driver keeps the converted TFLite model, as the
    local path does.
    """

    def __init__(self, config: VisionConfig, engine: RayConfig = RayConfig(), runtime: str = "tflite",
                 cache_dir=None, sha256: dict[str, str] | None = None):
        from .embedder import RUNTIMES

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.config, self.engine, self.runtime = config, engine, runtime
        self.cache_dir = cache_dir
        self.sha256 = dict(sha256 or {})
        self.dim = 0
        self.n_images = 0

    def _init(self, ray) -> bool:
        """Connect to the cluster (or start a local one); True when this call started it."""
        if ray.is_initialized():
            return False
        env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        kwargs = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": False}
        address = self.engine.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=self.engine.num_cpus, **kwargs)
        return True

    def _model_ref(self, ray, paths):
        """The TFLite flatbuffer, built here once (calibrated on the first posters for int8, as the
        local path does), in the object store; None for the Keras runtime."""
        if self.runtime != "tflite":
            return None
        from .embedder import PosterEmbedder

        local = [p for p in paths if "://" not in p]
        embedder = PosterEmbedder(self.config, runtime="tflite", cache_dir=self.cache_dir, threads=1)
        if embedder.needs_calibration:
            if not local:
                raise ValueError("an int8 model is calibrated on the first posters, read here: give "
                                 "the driver the posters on a path it can read, or convert the model "
                                 "once with --engine local")
            embedder.prepare(local)
        self.dim = embedder.dim
        return ray.put(embedder.tflite_content)

    def embed_files(self, paths, progress: bool = True, desc: str = "embedding posters", on_batch=None):
        """Like `PosterEmbedder.embed_files`, on Ray: ``(indices, values, errors)``."""
        from tqdm.auto import tqdm

        paths = [str(p) for p in paths]
        if not paths:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32), {}
        ray = import_ray()
        started = self._init(ray)
        try:
            ref = self._model_ref(ray, paths)
            rows = [{"index": i, "url": p, "sha256": self.sha256.get(p, "")} for i, p in enumerate(paths)]
            # one block is one task: BATCHES_PER_TASK model batches, and at least one per worker
            per_task = self.config.batch_size * BATCHES_PER_TASK
            blocks = min(len(rows), max(self.engine.workers, -(-len(rows) // per_task)))
            ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                EmbedBatch, batch_size=None, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.engine.workers),
                num_cpus=self.engine.cpus_per_worker,
                fn_constructor_kwargs={"config": self.config.to_dict(), "runtime": self.runtime,
                                       "tflite_ref": ref, "threads": self.engine.cpus_per_worker})
            indices, values, errors = [], [], {}
            with tqdm(total=len(paths), desc=f"{desc} (ray)", unit="img", disable=not progress) as bar:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    ok = batch["error"] == ""
                    for i, why in zip(batch["index"][~ok], batch["error"][~ok]):
                        errors[int(i)] = str(why)
                    idx = np.asarray(batch["index"][ok], np.int64)
                    vals = np.asarray(batch["vector"][ok], np.float32)
                    self.dim = int(np.asarray(batch["vector"]).shape[1])
                    if len(idx):
                        indices.append(idx)
                        values.append(vals)
                        if on_batch is not None:
                            on_batch(idx, vals)
                    bar.update(len(batch["index"]))
        finally:
            if started:
                ray.shutdown()
        idx = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        vals = np.concatenate(values) if values else np.zeros((0, self.dim), np.float32)
        order = np.argsort(idx, kind="stable")
        self.n_images += len(idx)
        return idx[order], vals[order], dict(sorted(errors.items()))
