"""vision_model: the default backbone loads offline, ImageNet weights at smaller sizes, int8.

Real weights come from ../shared through the ``keras_home`` fixture (a temporary KERAS_HOME
whose models/ links ../shared/keras/models, downloads switched off): these tests skip without
../shared (set POSTEREC_SHARED=/work/shared in a worktree)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from test_vision_model_embed import keras_home, poster_bytes, write_entry  # noqa: F401 (keras_home: a fixture)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vision_model import VisionConfig  # noqa: E402


def test_quantize_is_checked_and_keys_float_and_int8_apart():
    with pytest.raises(ValueError, match=r"quantize must be one of none, int8, got 'int4'"):
        VisionConfig(quantize="int4")
    f, q = VisionConfig(), VisionConfig(quantize="int8")
    assert f.cache_key() != q.cache_key() and q.cache_key().split("-")[-2] == "int8"
    assert VisionConfig(image_size=160).cache_key() != VisionConfig(image_size=224).cache_key()


def test_float_cache_keys_made_before_quantize_existed_stay_valid():
    c = VisionConfig(alpha=1.0)
    old = {"backbone": "MobileNetV2", "alpha": 1.0, "weights": "imagenet", "image_size": 224,
           "policy": "pad", "pipeline": 1}
    digest = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert c.cache_key() == f"MobileNetV2-a1-224-pad-{digest}"


def test_int8_needs_the_tflite_runtime():
    from vision_model import PosterEmbedder, build_embedder

    config = VisionConfig(alpha=0.35, image_size=32, batch_size=2, quantize="int8")
    with pytest.raises(ValueError, match="quantize='int8' needs runtime 'tflite'"):
        PosterEmbedder(config, model=build_embedder(config, weights=None), runtime="keras")


@pytest.mark.realdata
def test_default_backbone_loads_offline_from_shared(keras_home):  # noqa: F811
    from vision_model import build_embedder

    config = VisionConfig()
    assert config.uses_imagenet  # the default needs no path: Keras' own file in $KERAS_HOME/models/
    model = build_embedder(config)
    assert model.output_shape == (None, 1280)
    x = np.random.default_rng(0).uniform(0, 255, (2, config.image_size, config.image_size, 3)).astype(np.float32)
    v = model.predict(x, verbose=0)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


@pytest.mark.realdata
def test_imagenet_at_a_smaller_size_runs_the_224_weights_offline(keras_home):  # noqa: F811
    from vision_model import build_backbone

    big = build_backbone(VisionConfig(alpha=0.35, image_size=224))
    small = build_backbone(VisionConfig(alpha=0.35, image_size=160))  # Keras alone would download a 160 file
    assert small.input_shape == (None, 160, 160, 3)
    for a, b in zip(big.get_weights(), small.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert VisionConfig(image_size=160).weights_identity() == "imagenet@224"


@pytest.mark.realdata
def test_int8_vectors_stay_close_to_float_on_generated_posters(tmp_path, keras_home):  # noqa: F811
    from vision_model import PosterEmbedder, build_embedder

    entries = [write_entry(tmp_path / "posters", m, poster_bytes("sun" if m % 2 else "stripes", m))
               for m in range(1, 25)]
    paths = [e.path for e in entries]
    base = VisionConfig(alpha=0.35, image_size=160, batch_size=8)
    model = build_embedder(base)
    _, fv, _ = PosterEmbedder(base, model=model).embed_files(paths, progress=False)
    cache = tmp_path / "cache"
    q = VisionConfig(alpha=0.35, image_size=160, batch_size=8, quantize="int8")
    embedder = PosterEmbedder(q, cache_dir=cache)
    assert embedder.needs_calibration
    _, qv, errors = embedder.embed_files(paths, progress=False)
    assert not errors and not embedder.needs_calibration
    cos = np.sum(fv * qv, axis=1)
    assert np.allclose(np.linalg.norm(qv, axis=1), 1.0, atol=1e-5)
    assert cos.min() >= 0.9 and cos.mean() >= 0.95, (cos.min(), cos.mean())
    # the calibrated model is cached: a new embedder reuses it and gives the same vectors
    again = PosterEmbedder(q, cache_dir=cache)
    assert not again.needs_calibration
    np.testing.assert_array_equal(again.embed_files(paths, progress=False)[1], qv)


def test_default_width_is_035_only_for_mobilenetv2_with_imagenet(tmp_path):
    assert (VisionConfig().backbone, VisionConfig().alpha, VisionConfig().weights) == ("MobileNetV2", 0.35, "imagenet")
    assert VisionConfig(backbone="ResNet50").alpha == 1.0            # no width multiplier: no error
    assert VisionConfig(weights=str(tmp_path / "w.h5")).alpha == 1.0  # a weights file: Keras' default width
    assert VisionConfig(alpha=0.5).alpha == 0.5
    assert VisionConfig.from_dict(VisionConfig().to_dict()) == VisionConfig()


def test_a_defaulted_width_follows_new_weights_and_backbones(tmp_path):
    from dataclasses import replace

    w = str(tmp_path / "w.h5")
    assert replace(VisionConfig(), weights=w).alpha == 1.0          # `posterec demo --weights FILE`
    assert replace(VisionConfig(), backbone="ResNet50").alpha == 1.0
    assert VisionConfig(alpha=VisionConfig().alpha, weights=w).alpha == 1.0  # a CLI flag's default
    assert replace(VisionConfig(alpha=0.35), weights=w).alpha == 0.35  # a chosen width stays
    assert type(VisionConfig().to_dict()["alpha"]) is float
    assert VisionConfig().cache_key() == VisionConfig(alpha=0.35).cache_key()


@pytest.mark.parametrize("name", ["MobileNetV2", "mobilenet_v2", "MOBILENETV2", "mobilenet-v2"])
def test_backbone_names_match_whatever_their_case_and_underscores(name):
    from vision_model import get_backbone

    assert get_backbone(name).name == "MobileNetV2"
