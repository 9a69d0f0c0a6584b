"""`PosterEmbedder` runs images through the backbone in fixed-shape batches;
`embed_posters` adds the cache and the bookkeeping (which posters failed, and why).

Finished batches reach the cache as the run goes (a checkpoint every ``checkpoint_every``
seconds, and whatever is pending when the run stops on Ctrl-C or an error), so a rerun after
an interruption, even kill -9, embeds only what was not finished."""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from catalog import Vectors

from .backbones import build_embedder
from .cache import EmbeddingCache
from .config import VisionConfig
from .images import poster_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedPoster:
    movie_id: int
    path: str
    error: str


@dataclass(frozen=True)
class EmbedResult:
    vectors: Vectors                     # L2-normalised, one row per embedded poster
    failed: list[FailedPoster] = field(default_factory=list)
    n_cached: int = 0                    # posters served from the cache
    n_embedded: int = 0                  # images run through the model in this call


def describe_failure(path: str | os.PathLike) -> str:
    """Why a poster file could not be used, in words (Pillow's view of it)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    return describe_bytes(data)


def describe_bytes(data: bytes) -> str:
    """Why a poster's encoded bytes could not be used, in words (Pillow's view of them)."""
    import io

    from PIL import Image, UnidentifiedImageError

    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.width < 1 or img.height < 1:
                return "image has no pixels"
    except UnidentifiedImageError:
        return "not an image (unrecognised data; its bytes are not quoted)"
    except Exception as exc:  # truncated / corrupt data
        return f"corrupt image ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return "the decoder rejected it"


RUNTIMES = ("tflite", "keras")


def _interpreter_class():
    """LiteRT's interpreter (package ``ai-edge-litert``, where it installs), else TensorFlow's
    deprecated ``tf.lite.Interpreter`` (silenced); ``--runtime keras`` needs neither."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        def legacy(**kwargs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its move-to-LiteRT notice
                return tf.lite.Interpreter(**kwargs)

        return legacy


CALIBRATION_IMAGES = 64  # posters an int8 model is calibrated on (its first ones)


def convert_tflite(infer, calibration: np.ndarray | None = None) -> bytes:
    """The fixed-shape ``infer`` as a TFLite flatbuffer: float32, or with ``calibration`` images
    (float (n, size, size, 3), n a multiple of the batch is not needed) int8 weights (per-channel)
    and int8 activations, calibrated on them; input and output stay float32."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()], infer)
    if calibration is not None:
        batch = int(infer.input_signature[0].shape[0])
        reps = [calibration[i:i + batch] for i in range(0, len(calibration), batch)]
        reps = [np.concatenate([r, np.repeat(r[-1:], batch - len(r), 0)]) if len(r) < batch else r for r in reps]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(r, np.float32)] for r in reps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


class _TFLiteRunner:
    """The same fixed-shape function converted to TFLite (float32 or int8, XNNPACK on CPU):
    ~2-3x faster than TensorFlow for these small CNNs; float gives the same vectors to float
    rounding (the benchmark checks cosine >= 0.99). The converted model is cached in ``cache_file``."""

    def __init__(self, infer, cache_file: Path | None, threads: int | None, calibration: np.ndarray | None = None,
                 content: bytes | None = None):
        if content is None and cache_file is not None and cache_file.exists():
            content = cache_file.read_bytes()
        if content is None:
            content = convert_tflite(infer, calibration)
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
                tmp.write_bytes(content)
                os.replace(tmp, cache_file)
        self.content = content
        self.interpreter = _interpreter_class()(model_content=content, num_threads=threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]["index"]
        out = self.interpreter.get_output_details()[0]
        self._out, self.dim = out["index"], int(out["shape"][-1])

    def __call__(self, images) -> np.ndarray:
        self.interpreter.set_tensor(self._in, np.ascontiguousarray(images, np.float32))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._out).copy()
        # an int8 model's output is dequantised; the L2 norm it had is only approximately 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)


class PosterEmbedder:
    """Images -> L2-normalised vectors through one fixed-shape inference function.

    ``runtime="tflite"`` (default) converts that function to TFLite once (cached under
    ``cache_dir`` when given); ``"keras"`` runs the compiled ``tf.function`` directly.
    With ``config.quantize == "int8"`` (TFLite only) the model is converted with int8 weights and
    activations, calibrated on ``calibration`` images, else on the first `CALIBRATION_IMAGES`
    images this embedder is given; with a ``cache_dir`` the calibrated model is cached, so later
    runs reuse it and give the same vectors.
    ``tflite`` (the `tflite_content` of another embedder of the same config) runs that
    flatbuffer instead of converting one, e.g. in a cluster worker: the same model everywhere.
    """

    def __init__(self, config: VisionConfig, model=None, runtime: str = "tflite",
                 cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                 calibration: np.ndarray | None = None, tflite: bytes | None = None):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if config.quantize != "none" and runtime != "tflite":
            raise ValueError(f"quantize={config.quantize!r} needs runtime 'tflite', got {runtime!r}")
        if tflite is not None and runtime != "tflite":
            raise ValueError(f"a TFLite model needs runtime 'tflite', got {runtime!r}")
        self.config = config
        self.n_images = 0  # images run through the model so far
        self.runtime = runtime
        self._threads = threads
        self._cache_file = None
        if tflite is not None:  # the flatbuffer holds the whole model: no Keras model is built
            self.model, self._fn = model, None
            self._infer = _TFLiteRunner(None, None, threads, content=bytes(tflite))
            self.dim = self._infer.dim
            return
        self.model = model if model is not None else build_embedder(config)
        self.dim = int(self.model.output_shape[-1])
        size, batch = config.image_size, config.batch_size
        spec = tf.TensorSpec((batch, size, size, 3), tf.float32)
        self._fn = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        if runtime == "tflite" and cache_dir is not None and model is None:
            self._cache_file = Path(cache_dir) / "tflite" / f"{config.cache_key()}-b{batch}.tflite"
        self._infer = None
        if runtime == "keras":
            self._infer = lambda x: self._fn(x).numpy()
        elif config.quantize == "none" or calibration is not None or \
                (self._cache_file is not None and self._cache_file.exists()):
            calib = None if config.quantize == "none" or calibration is None else np.asarray(calibration, np.float32)
            self._infer = _TFLiteRunner(self._fn, self._cache_file, threads, calib)

    @property
    def needs_calibration(self) -> bool:
        """True until an int8 model has its calibration images (the first ones it embeds)."""
        return self._infer is None

    def calibrate(self, images) -> None:
        """Convert the int8 model, calibrated on ``images`` (float (n, size, size, 3) in 0..255)."""
        if self._infer is None:
            calib = np.asarray(images, np.float32)[:CALIBRATION_IMAGES]
            self._infer = _TFLiteRunner(self._fn, self._cache_file, self._threads, calib)

    @property
    def tflite_content(self) -> bytes:
        """The TFLite flatbuffer this embedder runs (runtime tflite, calibrated)."""
        if self.runtime != "tflite":
            raise ValueError(f"runtime {self.runtime!r} has no TFLite model")
        if self._infer is None:
            raise ValueError("the int8 model is not calibrated yet: call prepare(paths) first")
        return self._infer.content

    def prepare(self, paths) -> None:
        """Calibrate an int8 model on the first `CALIBRATION_IMAGES` of ``paths`` if it needs it."""
        if not self.needs_calibration or not paths:
            return
        cfg = self.config
        first = poster_dataset([str(p) for p in paths[:CALIBRATION_IMAGES]], cfg.image_size, cfg.policy,
                               cfg.batch_size)
        images = [x.numpy() for _, x in first]
        if images:
            self.calibrate(np.concatenate(images))

    def _run(self, images: tf.Tensor) -> np.ndarray:
        n = int(images.shape[0])
        pad = self.config.batch_size - n
        if pad:  # keep the batch shape fixed so the compiled function is traced once
            images = tf.pad(images, [[0, pad], [0, 0], [0, 0], [0, 0]])
        if self._infer is None:  # int8 and nothing calibrated it yet: this batch does
            self.calibrate(np.asarray(images)[:n])
        self.n_images += n
        return self._infer(images)[:n]

    def embed_images(self, images) -> np.ndarray:
        """Float images (n, size, size, 3) in 0..255 -> float32 (n, dim)."""
        images = tf.convert_to_tensor(images, tf.float32)
        if self.needs_calibration and int(images.shape[0]):
            self.calibrate(images.numpy())
        b = self.config.batch_size
        out = [self._run(images[i:i + b]) for i in range(0, int(images.shape[0]), b)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_files(self, paths, progress: bool = True, desc: str = "embedding posters", on_batch=None):
        """Embed image files. Returns ``(indices int64 (k,), values float32 (k, dim), errors)``
        where ``errors`` maps the index of each unusable file to the reason.
        ``on_batch(indices, values)`` is called after each batch."""
        paths = [str(p) for p in paths]
        cfg = self.config
        self.prepare(paths)
        indices, values = [], []
        with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar:
            for idx, images in poster_dataset(paths, cfg.image_size, cfg.policy, cfg.batch_size):
                indices.append(idx.numpy())
                values.append(self._run(images))
                if on_batch is not None:
                    on_batch(indices[-1], values[-1])
                bar.update(len(indices[-1]))
            bar.update(len(paths) - bar.n)
        idx = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        vals = np.concatenate(values) if values else np.zeros((0, self.dim), np.float32)
        errors = {i: describe_failure(paths[i]) for i in sorted(set(range(len(paths))) - set(idx.tolist()))}
        return idx.astype(np.int64), vals.astype(np.float32), errors


    def embed_encoded(self, blobs) -> tuple[np.ndarray, np.ndarray]:
        """Encoded posters (bytes) -> ``(indices int64 (k,), values float32 (k, dim))`` of the
        decodable ones, through the same decode as `embed_files` (`images.encoded_dataset`)."""
        from .images import encoded_dataset

        cfg = self.config
        indices, values = [], []
        for idx, images in encoded_dataset(list(blobs), cfg.image_size, cfg.policy, cfg.batch_size):
            indices.append(idx.numpy())
            values.append(self._run(images))
        idx = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        vals = np.concatenate(values) if values else np.zeros((0, self.dim), np.float32)
        return idx.astype(np.int64), vals.astype(np.float32)


class _Checkpoint:
    """Collects finished batches and saves them into the cache every ``every`` seconds."""

    def __init__(self, cache: EmbeddingCache | None, shas: list[str], every: float):
        self.cache, self.shas, self.every = cache, shas, max(0.0, float(every))
        self.pending: dict[str, np.ndarray] = {}
        self.last = time.monotonic()

    def batch(self, indices, values) -> None:
        self.pending.update({self.shas[int(i)]: v for i, v in zip(indices, values)})
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.cache is None or not self.pending:
            return
        try:
            self.cache.add(self.pending)
        except OSError as exc:  # a full disk must not hide the real error
            log.warning("could not checkpoint %d embeddings: %s", len(self.pending), exc)
            return
        self.pending = {}
        self.last = time.monotonic()


def embed_posters(entries, config: VisionConfig, cache_dir: str | os.PathLike | None = None,
                  embedder: PosterEmbedder | None = None, progress: bool = True,
                  runtime: str = "tflite", checkpoint_every: float = 10.0) -> EmbedResult:
    """Embed posters given as objects with ``movie_id``, ``path`` and ``sha256``
    (e.g. `posters.PosterEntry`). The model is built only if some poster is not cached
    (``embedder`` overrides it). Posters whose (sha256, backbone config) is cached are not
    run again; identical files are embedded once. Unusable files are skipped and reported.
    With a cache, finished batches are checkpointed into it at least every
    ``checkpoint_every`` seconds (0: after every batch) and when the run is interrupted."""
    entries = list(entries)
    cache = EmbeddingCache(cache_dir, config.cache_key()) if cache_dir is not None else None
    known = cache.get({e.sha256 for e in entries}) if cache is not None else {}
    todo: dict[str, str] = {}
    for e in entries:
        if e.sha256 not in known and e.sha256 not in todo:
            todo[e.sha256] = str(e.path)
    errors: dict[str, str] = {}
    fresh: dict[str, np.ndarray] = {}
    n_embedded = 0
    if todo:
        embedder = embedder or PosterEmbedder(config, runtime=runtime, cache_dir=cache_dir)
        shas = list(todo)
        checkpoint = _Checkpoint(cache, shas, checkpoint_every)
        try:
            idx, values, bad = embedder.embed_files([todo[s] for s in shas], progress=progress,
                                                    on_batch=checkpoint.batch if cache is not None else None)
        except BaseException:
            checkpoint.flush()  # Ctrl-C, or an error: keep what was finished
            raise
        fresh = {shas[i]: v for i, v in zip(idx.tolist(), values)}
        errors = {shas[i]: reason for i, reason in bad.items()}
        n_embedded = len(idx)
        if cache is not None:
            cache.put(fresh)
    rows = {**known, **fresh}
    ok = sorted((int(e.movie_id), e.sha256) for e in entries if e.sha256 in rows)
    failed = [FailedPoster(int(e.movie_id), str(e.path), errors[e.sha256])
              for e in sorted(entries, key=lambda e: int(e.movie_id)) if e.sha256 in errors]
    for f in failed:
        log.warning("poster of movie %d skipped: %s (%s)", f.movie_id, f.error, f.path)
    dim = next(iter(rows.values())).shape[0] if rows else (embedder.dim if embedder else 0)
    values = np.stack([rows[s] for _, s in ok]) if ok else np.zeros((0, dim), np.float32)
    vectors = Vectors(np.array([m for m, _ in ok], np.int64), values)
    n_cached = sum(1 for e in entries if e.sha256 in known)
    return EmbedResult(vectors, failed, n_cached, n_embedded)
