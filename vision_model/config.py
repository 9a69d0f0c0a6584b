"""`VisionConfig`: which backbone embeds the posters, and how images are fed to it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .backbones import get_backbone

POLICIES = ("pad", "center-crop")
QUANTIZE = ("none", "int8")
IMAGENET = "imagenet"
# Keras' ImageNet weight files for these backbones are the ones trained at 224x224. They are
# fully convolutional, so the same weights run at any input size; "imagenet" at another size
# means those 224 weights (see `backbones.build_backbone`), never a download of other files.
IMAGENET_SIZE = 224
DEFAULT_BACKBONE = "MobileNetV2"
DEFAULT_ALPHA = 0.35  # MobileNetV2's width with Keras' ImageNet weights when none is given


class DefaultAlpha(float):
    """A width that was defaulted, not chosen. ``dataclasses.replace(VisionConfig(), weights=F)``
    and a CLI flag whose default is ``VisionConfig().alpha`` hand it back; it is then resolved
    again for the new backbone and weights instead of being taken as a choice of 0.35."""
# Bump when a change to decoding/resizing/normalising changes the vectors: old cache entries
# then stop matching instead of being mixed with new ones.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class VisionConfig:
    """How posters become vectors.

    ``policy`` says how a poster's aspect ratio meets the square input:

    - ``"pad"`` (default): scale the whole poster to fit, centre it, pad the sides with black.
      Nothing is lost (title, faces and credits all count), and since nearly all posters share
      the ~2:3 one-sheet shape the bars are the same for every poster, so they do not separate
      posters; the price is ~1/3 of the input pixels spent on bars.
    - ``"center-crop"``: scale the short side to fit and cut the middle square. Full resolution
      for the centre, but the top and bottom sixth of a 2:3 poster (often the title and the
      billing block) are thrown away.

    ``quantize="int8"`` runs a TFLite model with per-channel int8 weights and int8 activations
    calibrated on the first posters embedded (TFLite runtime only; see `PosterEmbedder`).

    The default, MobileNetV2 alpha 0.35 at 224 in float, was chosen in benchmarks/embed_tradeoff.py:
    ~3x less CPU per poster than alpha 1.0 with look-alike quality within noise of it
    (benchmarks/README.md, "Poster embeddings"). Its ImageNet weights are Keras' own file,
    loaded from ``$KERAS_HOME/models/`` (offline once it is there).

    ``alpha=None`` (the default) resolves to 0.35 for MobileNetV2 with ``weights="imagenet"``
    and to Keras' own default 1.0 otherwise (another backbone, or a weights file, such as the
    alpha 1.0 file in ../shared/weights, which then loads without naming its width). The
    resolved value is a `DefaultAlpha`, resolved again when copied into a config with other
    weights or another backbone (``dataclasses.replace``, CLI defaults).
    """

    backbone: str = DEFAULT_BACKBONE
    alpha: float | None = None
    weights: str = IMAGENET
    image_size: int = 224
    batch_size: int = 32
    policy: str = "pad"
    quantize: str = "none"

    def __post_init__(self) -> None:
        spec = get_backbone(self.backbone)  # raises ValueError naming the known ones
        object.__setattr__(self, "backbone", spec.name)
        if self.alpha is None or isinstance(self.alpha, DefaultAlpha):
            object.__setattr__(self, "alpha", DefaultAlpha(DEFAULT_ALPHA if spec.name == DEFAULT_BACKBONE
                                                           and str(self.weights) == IMAGENET else 1.0))
        try:
            alpha = float(self.alpha)
        except (TypeError, ValueError):
            raise ValueError(f"alpha must be a number, got {self.alpha!r}") from None
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if not spec.has_alpha and alpha != 1.0:
            raise ValueError(f"backbone {spec.name} has no width multiplier: alpha must be 1.0, got {alpha}")
        if not isinstance(self.alpha, DefaultAlpha):
            object.__setattr__(self, "alpha", alpha)
        weights = str(self.weights)
        if not weights:
            raise ValueError("weights must be 'imagenet' or the path of a weights file")
        object.__setattr__(self, "weights", weights)
        if int(self.image_size) < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        object.__setattr__(self, "image_size", int(self.image_size))
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.quantize not in QUANTIZE:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "VisionConfig":
        """Build from a dict (e.g. a manifest), rejecting keys this config does not have."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vision config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return {**asdict(self), "alpha": float(self.alpha)}

    @property
    def uses_imagenet(self) -> bool:
        return self.weights == IMAGENET

    def weights_identity(self) -> str:
        """``imagenet``, or the sha256 of the weights file (so a changed file is a new key)."""
        if self.uses_imagenet:
            return IMAGENET if self.image_size == IMAGENET_SIZE else f"{IMAGENET}@{IMAGENET_SIZE}"
        path = Path(self.weights)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            from catalog import ArtifactError

            raise ArtifactError(f"weights file {path}: cannot read it ({exc.strerror or exc}); "
                                f"pass an existing .h5 file or --weights imagenet") from None
        return "sha256:" + digest.hexdigest()

    def cache_key(self) -> str:
        """The part of the embedding cache key that depends on the model: everything that
        changes the vectors (not the batch size)."""
        ident = {"backbone": self.backbone, "alpha": self.alpha, "weights": self.weights_identity(),
                 "image_size": self.image_size, "policy": self.policy, "pipeline": PIPELINE_VERSION}
        if self.quantize != "none":  # absent for float, so float keys made before the field stay valid
            ident["quantize"] = self.quantize
        text = json.dumps(ident, sort_keys=True)
        slug = f"{self.backbone}-a{self.alpha:g}-{self.image_size}-{self.policy}"
        slug += "" if self.quantize == "none" else f"-{self.quantize}"
        return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
