"""vision_model: backbones by name, the decode pipeline, the embedding cache, bad images.

Real ImageNet weights come from ../shared through a temporary KERAS_HOME (Keras' own
offline path); downloads are switched off, so a missing file fails instead of fetching.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from conftest import shared_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from catalog import ArtifactError  # noqa: E402
from vision_model import VisionConfig, get_backbone  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


class Entry(NamedTuple):  # the shape of posters.PosterEntry
    movie_id: int
    path: Path
    sha256: str


def poster_bytes(kind: str, seed: int, size=(120, 180), fmt="JPEG") -> bytes:
    """A generated poster: 'sun' = yellow field with a red disc, 'stripes' = black with white bars.
    ``seed`` moves the shapes a little, so posters of one kind are near-identical."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "sun":
        img = Image.new("RGB", size, (250, 220, 40))
        d = ImageDraw.Draw(img)
        cx, cy, r = w // 2 + rng.integers(-8, 9), h // 2 + rng.integers(-8, 9), 30 + rng.integers(0, 8)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(220, 30, 30))
    elif kind == "stripes":
        img = Image.new("RGB", size, (10, 10, 10))
        d = ImageDraw.Draw(img)
        off = int(rng.integers(0, 10))
        for x in range(off, w, 20):
            d.rectangle([x, 0, x + 7, h], fill=(240, 240, 240))
    else:
        raise ValueError(kind)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=92)
    return buf.getvalue()


def write_entry(folder: Path, movie_id: int, data: bytes, ext: str = "jpg") -> Entry:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{movie_id}.{ext}"
    path.write_bytes(data)
    return Entry(movie_id, path, hashlib.sha256(data).hexdigest())


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory):
    """A KERAS_HOME whose models/ links to ../shared's weights; downloads raise."""
    src = shared_path("keras", "models")
    home = tmp_path_factory.mktemp("keras-home")
    (home / "models").mkdir()
    for f in src.iterdir():
        (home / "models" / f.name).symlink_to(f)
    import urllib.error

    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    def no_download(url, *a, **k):
        raise urllib.error.URLError(f"downloads are switched off in tests ({url})")

    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_HOME", str(home))
    mp.setattr(keras_config, "_KERAS_DIR", str(home))  # Keras reads $KERAS_HOME once, at import
    mp.setattr(file_utils, "urlretrieve", no_download)
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def config035(keras_home) -> VisionConfig:
    return VisionConfig(backbone="MobileNetV2", alpha=0.35, weights="imagenet", batch_size=8)


@pytest.fixture(scope="session")
def embedder035(config035):
    from vision_model import PosterEmbedder

    return PosterEmbedder(config035, runtime="keras")


# -- config and backbones ------------------------------------------------------------------
def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown backbone 'NotANet'.*MobileNetV2.*ResNet50.*EfficientNetB0"):
        VisionConfig(backbone="NotANet")
    assert get_backbone("mobilenetv2").name == "MobileNetV2"
    with pytest.raises(ValueError, match="policy"):
        VisionConfig(policy="stretch")
    with pytest.raises(ValueError, match="no width multiplier"):
        VisionConfig(backbone="ResNet50", alpha=0.5)
    with pytest.raises(ValueError, match="unknown vision config keys"):
        VisionConfig.from_dict({"backbone": "MobileNetV2", "colour": "red"})


def test_cache_key_changes_with_what_changes_vectors(tmp_path):
    a = VisionConfig(alpha=0.35)
    assert a.cache_key() == VisionConfig(alpha=0.35, batch_size=99).cache_key()
    assert a.cache_key() != VisionConfig(alpha=0.5).cache_key()
    assert a.cache_key() != VisionConfig(alpha=0.35, policy="center-crop").cache_key()
    w1, w2 = tmp_path / "a.h5", tmp_path / "b.h5"
    w1.write_bytes(b"one")
    w2.write_bytes(b"two")
    assert VisionConfig(weights=str(w1)).cache_key() != VisionConfig(weights=str(w2)).cache_key()


@pytest.mark.parametrize("name, dim", [("ResNet50", 2048), ("EfficientNetB0", 1280)])
def test_other_backbones_build_by_name(name, dim):
    from vision_model import build_embedder

    model = build_embedder(VisionConfig(backbone=name, image_size=32), weights=None)
    out = np.asarray(model(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")))
    assert out.shape == (2, dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    from vision_model import build_embedder

    with pytest.raises(ArtifactError, match="does not exist"):
        build_embedder(VisionConfig(weights=str(tmp_path / "nope.h5")))


def test_missing_imagenet_weights_fail_without_downloading(keras_home):
    from vision_model import build_embedder

    # alpha 0.75 is not in ../shared: Keras tries to download, which tests forbid
    with pytest.raises(ArtifactError, match=r"cannot load ImageNet weights for MobileNetV2 alpha=0.75.*KERAS_HOME"):
        build_embedder(VisionConfig(alpha=0.75))


@pytest.mark.realdata
def test_alpha_one_weights_by_path():
    from vision_model import build_embedder

    path = shared_path("weights", "mobilenet_v2_1.0_224_imagenet_coral_tf2ptq_dequant_no_top.h5")
    model = build_embedder(VisionConfig(weights=str(path)))
    assert model.output_shape == (None, 1280)


# -- the image pipeline --------------------------------------------------------------------
def tall_png() -> bytes:
    """60x180: red top third, green middle, blue bottom."""
    from PIL import Image

    img = Image.new("RGB", (60, 180))
    for k, c in enumerate(("red", "green", "blue")):
        img.paste(COLOURS[c], (0, 60 * k, 60, 60 * (k + 1)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_pad_keeps_the_whole_tall_poster_and_crop_keeps_the_middle():
    import tensorflow as tf

    from vision_model.images import load

    data = tf.constant(tall_png())
    pad = load(data, 90, "pad").numpy()
    crop = load(data, 90, "center-crop").numpy()
    assert pad.shape == crop.shape == (90, 90, 3)
    # pad: the poster is 30 px wide in the middle, black bars either side, all three bands kept
    np.testing.assert_allclose(pad[:, :25], 0)
    np.testing.assert_allclose(pad[:, -25:], 0)
    np.testing.assert_allclose(pad[5, 45], COLOURS["red"], atol=2)
    np.testing.assert_allclose(pad[45, 45], COLOURS["green"], atol=2)
    np.testing.assert_allclose(pad[85, 45], COLOURS["blue"], atol=2)
    # center-crop: the middle square of the poster is all green
    np.testing.assert_allclose(crop.reshape(-1, 3).mean(0), COLOURS["green"], atol=2)
    np.testing.assert_allclose(crop[3, 3], COLOURS["green"], atol=2)  # (the edge rows blend in the
    # neighbouring bands through bilinear resizing)
    np.testing.assert_allclose(crop[-4, -4], COLOURS["green"], atol=2)
    assert abs(float(pad[:, 30:60].reshape(-1, 3)[:, 0].max()) - COLOURS["red"][0]) < 3  # red is in there


def test_big_jpeg_is_decoded_at_reduced_size():
    import tensorflow as tf

    from vision_model.images import decode

    data = tf.constant(poster_bytes("sun", 0, size=(840, 1260)))
    assert decode(data, 224, "pad").shape == (315, 210, 3)          # ratio 4: 1260/4 >= 224 > 1260/8
    assert decode(data, 224, "center-crop").shape == (315, 210, 3)  # 840/4 = 210 >= 0.9 * 224
    assert decode(data, 224, "pad", slack=1.0).shape == (315, 210, 3)
    assert decode(data, 224, "center-crop", slack=1.0).shape == (630, 420, 3)  # 210 < 224: ratio 2


# -- embedding -----------------------------------------------------------------------------
@pytest.mark.realdata
def test_embeddings_are_unit_length_and_deterministic(tmp_path, embedder035):
    a = write_entry(tmp_path / "p", 1, poster_bytes("sun", 1))
    b = write_entry(tmp_path / "q", 1, poster_bytes("sun", 1))  # same bytes, other file
    c = write_entry(tmp_path / "p", 2, poster_bytes("stripes", 2), ext="png")
    idx, values, errors = embedder035.embed_files([a.path, b.path, c.path], progress=False)
    assert errors == {} and idx.tolist() == [0, 1, 2]
    assert values.shape == (3, 1280) and values.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(values[0], values[1], atol=1e-6)
    _, again, _ = embedder035.embed_files([a.path], progress=False)
    np.testing.assert_allclose(again[0], values[0], atol=1e-5)
    assert float(values[0] @ values[2]) < 0.95  # a different poster is a different vector


@pytest.mark.realdata
def test_cache_embeds_only_new_posters(tmp_path, config035, embedder035):
    from vision_model import embed_posters

    folder, cache = tmp_path / "posters", tmp_path / "cache"
    first = [write_entry(folder, m, poster_bytes("sun" if m % 2 else "stripes", m)) for m in range(1, 7)]
    calls = []
    original = embedder035.embed_files

    def spy(paths, **kw):
        calls.append(len(paths))
        return original(paths, **kw)

    embedder035.embed_files = spy
    try:
        r1 = embed_posters(first, config035, cache_dir=cache, embedder=embedder035, progress=False)
        added = [write_entry(folder, m, poster_bytes("sun", m)) for m in range(7, 10)]
        r2 = embed_posters(first + added, config035, cache_dir=cache, embedder=embedder035, progress=False)
        r3 = embed_posters(first + added, config035, cache_dir=cache, embedder=embedder035, progress=False)
    finally:
        del embedder035.embed_files
    assert calls == [6, 3]  # the third run is all cache: no model call at all
    assert (r1.n_embedded, r1.n_cached) == (6, 0)
    assert (r2.n_embedded, r2.n_cached) == (3, 6)
    assert (r3.n_embedded, r3.n_cached) == (0, 9)
    assert r2.vectors.movie_ids.tolist() == list(range(1, 10))
    np.testing.assert_allclose(r2.vectors.values[:6], r1.vectors.values, atol=1e-6)
    np.testing.assert_array_equal(r3.vectors.values, r2.vectors.values)
    assert list(cache.glob("*.npz")) and not list(cache.glob("*.pkl"))


@pytest.mark.realdata
def test_corrupt_images_are_skipped_and_reported(tmp_path, config035, embedder035):
    from vision_model import embed_posters

    folder = tmp_path / "posters"
    good = [write_entry(folder, m, poster_bytes("sun", m)) for m in (1, 2, 3)]
    truncated = write_entry(folder, 4, poster_bytes("stripes", 4)[:300])
    html = write_entry(folder, 5, b"<html><body>Not found</body></html>")
    gone = Entry(6, folder / "6.jpg", "0" * 64)
    result = embed_posters([good[0], truncated, good[1], html, gone, good[2]], config035,
                           embedder=embedder035, progress=False)
    assert result.vectors.movie_ids.tolist() == [1, 2, 3]
    assert [f.movie_id for f in result.failed] == [4, 5, 6]
    reasons = {f.movie_id: f.error for f in result.failed}
    assert "corrupt" in reasons[4] or "truncated" in reasons[4]
    assert "not an image" in reasons[5]
    assert "cannot read" in reasons[6]


@pytest.mark.realdata
def test_tflite_runtime_matches_keras(tmp_path, config035, embedder035):
    from vision_model import PosterEmbedder

    images = np.random.default_rng(3).uniform(0, 255, (5, 224, 224, 3)).astype(np.float32)
    fast = PosterEmbedder(config035, model=embedder035.model, runtime="tflite")
    a, b = fast.embed_images(images), embedder035.embed_images(images)
    assert a.shape == b.shape == (5, 1280)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.999


# -- the cache under faults (a tiny random CNN: no ../shared needed) --------------------------
TINY = VisionConfig(image_size=32, batch_size=4)


def tiny_model(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255.0),
                             keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.UnitNormalization()])


@pytest.fixture(scope="module")
def tiny_embedder():
    from vision_model import PosterEmbedder

    return PosterEmbedder(TINY, model=tiny_model(), runtime="keras")


def tiny_posters(folder: Path, n: int) -> list[Entry]:
    return [write_entry(folder, m, poster_bytes("sun" if m % 2 else "stripes", m, size=(40 + m, 60)))
            for m in range(1, n + 1)]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-shapes"])
def test_corrupt_cache_file_is_discarded_and_recomputed(tmp_path, tiny_embedder, caplog, damage):
    from catalog.arrays import save_npz
    from vision_model import embed_posters
    from vision_model.cache import EmbeddingCache

    entries, cache_dir = tiny_posters(tmp_path / "p", 6), tmp_path / "cache"
    first = embed_posters(entries, TINY, cache_dir=cache_dir, embedder=tiny_embedder, progress=False)
    path = EmbeddingCache(cache_dir, TINY.cache_key()).path
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip at all")
    else:
        save_npz(path, sha256=np.array([e.sha256 for e in entries]), values=np.zeros((2, 8), np.float32))
    with caplog.at_level("WARNING"):
        again = embed_posters(entries, TINY, cache_dir=cache_dir, embedder=tiny_embedder, progress=False)
    assert "unreadable" in caplog.text and "embedded again" in caplog.text
    assert (again.n_embedded, again.n_cached) == (6, 0)
    np.testing.assert_allclose(again.vectors.values, first.vectors.values, atol=1e-6)
    third = embed_posters(entries, TINY, cache_dir=cache_dir, embedder=tiny_embedder, progress=False)
    assert (third.n_embedded, third.n_cached) == (0, 6)  # the file was rewritten whole


def test_ctrl_c_during_embed_keeps_the_finished_batches(tmp_path, tiny_embedder):
    from vision_model import embed_posters

    entries, cache_dir = tiny_posters(tmp_path / "p", 14), tmp_path / "cache"
    calls = {"n": 0}
    real = tiny_embedder._run

    def interrupt_third(images):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(images)

    tiny_embedder._run = interrupt_third
    try:
        with pytest.raises(KeyboardInterrupt):
            embed_posters(entries, TINY, cache_dir=cache_dir, embedder=tiny_embedder, progress=False,
                          checkpoint_every=3600)  # only the interrupt saves
    finally:
        del tiny_embedder._run
    rerun = embed_posters(entries, TINY, cache_dir=cache_dir, embedder=tiny_embedder, progress=False)
    assert (rerun.n_cached, rerun.n_embedded) == (8, 6)  # two batches of 4 survived
    fresh = embed_posters(entries, TINY, embedder=tiny_embedder, progress=False)
    np.testing.assert_allclose(rerun.vectors.values, fresh.vectors.values, atol=1e-6)
    assert not list(cache_dir.glob("*.part-*"))  # folded into the main file


def test_checkpoints_are_merged_and_two_runs_keep_each_others_rows(tmp_path):
    from vision_model.cache import EmbeddingCache

    a, b = EmbeddingCache(tmp_path, "k"), EmbeddingCache(tmp_path, "k")
    def v(x):
        return np.full(4, x, np.float32)

    assert len(a) == 0 and len(b) == 0
    a.add({"s1": v(1)})
    b.add({"s2": v(2)})
    a.put({"s3": v(3)})
    b.put({"s4": v(4)})  # b loaded before a's put: it must not drop s1/s3
    c = EmbeddingCache(tmp_path, "k")
    assert sorted(c.get({"s1", "s2", "s3", "s4"})) == ["s1", "s2", "s3", "s4"]
    assert not c.part_paths()


def test_tflite_runs_on_litert_where_it_is_installed():
    pytest.importorskip("ai_edge_litert")
    from vision_model.embedder import _interpreter_class

    assert _interpreter_class().__module__.startswith("ai_edge_litert")
