"""Poster files -> square float images, as a parallel tf.data pipeline.

JPEGs are decoded with libjpeg's DCT scaling (``ratio`` 2, 4 or 8) when the poster is at least
that many times larger than needed, so big scans cost little; other formats go through
``decode_image``. Then the aspect policy ("pad" or "center-crop", see `VisionConfig`) makes
the square. A file that cannot be read or decoded is dropped from the stream; every element
carries its index, so the caller knows exactly which ones were dropped.
"""
from __future__ import annotations

import os

import tensorflow as tf

JPEG_MAGIC = b"\xff\xd8\xff"
_RATIOS = (1, 2, 4, 8)
# Decode at 1/r size when the side that sets the scale stays >= DCT_SLACK * size: at most ~10%
# upscaling afterwards. A ~300x445 poster then decodes at 150x223 for a 224 "pad" input, about
# half the decode work; the benchmark measures the effect on the vectors.
DCT_SLACK = 0.9


def _dct_ratio(shape: tf.Tensor, size: int, policy: str, slack: float) -> tf.Tensor:
    """Index into _RATIOS of the largest JPEG downscale that keeps the needed side big enough."""
    h, w = shape[0], shape[1]
    side = tf.cast(tf.maximum(h, w) if policy == "pad" else tf.minimum(h, w), tf.float32)
    fits = [tf.cast(side / r >= size * slack, tf.int32) for r in _RATIOS[1:]]
    return tf.add_n(fits)  # the ratios fit in order: 2 before 4 before 8


def decode(data: tf.Tensor, size: int, policy: str, slack: float = DCT_SLACK) -> tf.Tensor:
    """Encoded bytes -> uint8 (h, w, 3), reduced in the decoder when much larger than needed."""
    def jpeg():
        shape = tf.io.extract_jpeg_shape(data)
        branches = [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_FAST")
                    for r in _RATIOS]
        return tf.switch_case(_dct_ratio(shape, size, policy, slack), branches)

    def other():
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
        return tf.ensure_shape(img, [None, None, 3])

    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), JPEG_MAGIC)
    return tf.cond(is_jpeg, jpeg, other)


def fit(image: tf.Tensor, size: int, policy: str) -> tf.Tensor:
    """uint8 (h, w, 3) -> float32 (size, size, 3) in 0..255 by the aspect policy."""
    tf.debugging.assert_positive(tf.reduce_prod(tf.shape(image)[:2]), message="empty image")
    image = tf.cast(image, tf.float32)
    if policy == "pad":
        return tf.image.resize_with_pad(image, size, size)  # keeps aspect, black bars centred
    if policy == "center-crop":
        hw = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = size / tf.reduce_min(hw)
        new = tf.cast(tf.math.ceil(hw * scale), tf.int32)
        new = tf.maximum(new, size)
        image = tf.image.resize(image, new)
        return tf.image.resize_with_crop_or_pad(image, size, size)  # the middle square
    raise ValueError(f"policy must be 'pad' or 'center-crop', got {policy!r}")


def load(data: tf.Tensor, size: int, policy: str, slack: float = DCT_SLACK) -> tf.Tensor:
    """Encoded bytes -> float32 (size, size, 3) in 0..255."""
    return fit(decode(data, size, policy, slack), size, policy)


def poster_dataset(paths: list[str], size: int, policy: str, batch_size: int,
                   slack: float = DCT_SLACK) -> tf.data.Dataset:
    """Batches of ``(indices int64 (b,), images float32 (b, size, size, 3))`` for ``paths``.

    Files that cannot be read or decoded are left out; their index never appears.
    """
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64),
                                             tf.constant([str(p) for p in paths], tf.string)))

    def one(i, path):
        return i, load(tf.io.read_file(path), size, policy, slack)

    return _batched(ds.map(one, num_parallel_calls=os.cpu_count() or 1, deterministic=True), batch_size)


def encoded_dataset(blobs: list[bytes], size: int, policy: str, batch_size: int,
                    slack: float = DCT_SLACK) -> tf.data.Dataset:
    """`poster_dataset` for posters already read (encoded bytes, e.g. from an object store):
    the same decode and `fit`, so the same images. Undecodable ones are left out."""
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(blobs), dtype=tf.int64),
                                             tf.constant(list(blobs), tf.string)))

    def one(i, data):
        return i, load(data, size, policy, slack)

    return _batched(ds.map(one, num_parallel_calls=os.cpu_count() or 1, deterministic=True), batch_size)


def _batched(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    ds = ds.ignore_errors()  # a bad file is dropped here; its index is missing downstream
    ds = ds.batch(batch_size).prefetch(2)
    # Fixed parallelism instead of AUTOTUNE: same speed here, and an autotuned iterator can
    # block for seconds when it is destroyed (measured ~4 s at the end of a run).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
