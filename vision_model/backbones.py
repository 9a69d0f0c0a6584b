"""Pretrained `keras.applications` backbones by name, and the embedding model built on one.

The table maps a name to its constructor and its ``preprocess_input`` (both in the same
``keras.applications`` module). The model takes float images in 0..255, applies the
backbone's own preprocessing, runs it with ``include_top=False, pooling="avg"`` and
L2-normalises the pooled features.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    name: str          # the keras.applications constructor, e.g. "MobileNetV2"
    module: str        # the keras.applications submodule holding it and preprocess_input
    has_alpha: bool = False

    def constructor(self):
        import keras

        return getattr(keras.applications, self.name)

    def preprocess(self):
        import keras

        return getattr(keras.applications, self.module).preprocess_input


def _key(name: str) -> str:
    """Names match whatever their case and underscores: MobileNetV2 = mobilenet_v2 = MOBILENETV2."""
    return str(name).lower().replace("_", "").replace("-", "")


BACKBONES: dict[str, BackboneSpec] = {_key(s.name): s for s in [
    BackboneSpec("MobileNetV2", "mobilenet_v2", has_alpha=True),
    BackboneSpec("MobileNet", "mobilenet", has_alpha=True),
    BackboneSpec("MobileNetV3Small", "mobilenet_v3", has_alpha=True),
    BackboneSpec("MobileNetV3Large", "mobilenet_v3", has_alpha=True),
    BackboneSpec("ResNet50", "resnet"),
    BackboneSpec("ResNet50V2", "resnet_v2"),
    BackboneSpec("EfficientNetB0", "efficientnet"),
    BackboneSpec("EfficientNetB1", "efficientnet"),
    BackboneSpec("EfficientNetV2B0", "efficientnet_v2"),
    BackboneSpec("DenseNet121", "densenet"),
    BackboneSpec("InceptionV3", "inception_v3"),
    BackboneSpec("Xception", "xception"),
    BackboneSpec("ConvNeXtTiny", "convnext"),
    BackboneSpec("VGG16", "vgg16"),
]}


def get_backbone(name: str) -> BackboneSpec:
    """The backbone called ``name`` (case- and underscore-insensitive); ValueError listing the known names."""
    spec = BACKBONES.get(_key(name))
    if spec is None:
        known = ", ".join(s.name for s in BACKBONES.values())
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}")
    return spec


def _keras_home() -> str:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME``, else ``~/.keras`` (documented behaviour
    of ``keras.utils.get_file``; no private API)."""
    import os

    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def build_backbone(config, weights: str | None | object = "config"):
    """The headless, average-pooled Keras backbone of ``config`` (a `VisionConfig`).

    ``weights`` overrides the config's (``None`` builds random weights, for tests).
    ``"imagenet"`` at an input size other than 224 takes Keras' 224 ImageNet file (the one
    ``$KERAS_HOME/models/`` holds) and runs it at that size: the backbones are fully
    convolutional, so the weights fit any size; Keras itself would look for (and download) a
    separate file trained at 160 or 192 for MobileNet/MobileNetV2.
    Raises ArtifactError when the weights cannot be found or do not fit the architecture.
    """
    from dataclasses import replace

    from catalog import ArtifactError

    from .config import IMAGENET_SIZE

    spec = get_backbone(config.backbone)
    weights = config.weights if weights == "config" else weights
    if weights == "imagenet" and config.image_size != IMAGENET_SIZE:
        trained = build_backbone(replace(config, image_size=IMAGENET_SIZE), "imagenet")
        model = build_backbone(config, None)
        model.set_weights(trained.get_weights())
        return model
    if weights not in (None, "imagenet"):
        path = Path(weights)
        if not path.is_file():
            raise ArtifactError(f"weights file {path} does not exist; pass the path of a "
                                f"{spec.name} no-top .h5 file, or --weights imagenet")
        weights = str(path)
    kwargs = dict(include_top=False, pooling="avg", weights=weights,
                  input_shape=(config.image_size, config.image_size, 3))
    if spec.has_alpha:
        kwargs["alpha"] = config.alpha
    if spec.name.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = True
    try:
        return spec.constructor()(**kwargs)
    except Exception as exc:
        text = " ".join(str(exc).split())
        if weights == "imagenet":
            raise ArtifactError(
                f"cannot load ImageNet weights for {spec.name} alpha={config.alpha:g} "
                f"size={config.image_size}: Keras looks in {_keras_home()}/models/ and otherwise "
                f"downloads them, which failed ({type(exc).__name__}: {text[:300]}). Go online once, "
                f"put the file in $KERAS_HOME/models/, or pass --weights PATH") from exc
        if weights is not None:
            raise ArtifactError(f"weights file {weights} does not fit {spec.name} "
                                f"alpha={config.alpha:g}: {type(exc).__name__}: {text[:300]}") from exc
        raise ValueError(f"cannot build {spec.name} with {kwargs}: {text[:300]}") from exc


def build_embedder(config, weights: str | None | object = "config"):
    """A Keras model: float images (batch, size, size, 3) in 0..255 -> L2-normalised vectors."""
    import keras

    backbone = build_backbone(config, weights)
    preprocess = get_backbone(config.backbone).preprocess()
    inputs = keras.Input((config.image_size, config.image_size, 3), dtype="float32", name="image")
    x = preprocess(inputs)
    x = backbone(x, training=False)
    x = keras.layers.UnitNormalization(axis=-1, name="l2_normalise")(x)
    return keras.Model(inputs, x, name=f"{config.backbone}_embedder")
