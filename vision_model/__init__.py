"""vision_model stage: a pretrained `keras.applications` CNN turns posters into L2-normalised
vectors (`visual.npz`), with an embedding cache keyed by poster sha256 and backbone config.

``VisionConfig`` picks the backbone; ``embed_posters(entries, config, cache_dir)`` embeds; look-alikes
are a cosine search over the vectors (``index.MovieIndex``, combined in ``posterec``). Imports only
``catalog`` of ours.
TensorFlow is imported only when something that needs it is used.
"""
from .backbones import BACKBONES, BackboneSpec, get_backbone
from .config import POLICIES, VisionConfig
from .contact_sheet import Tile, draw_contact_sheet

_LAZY = {  # these import TensorFlow
    "PosterEmbedder": "embedder", "EmbedResult": "embedder", "FailedPoster": "embedder",
    "embed_posters": "embedder", "describe_failure": "embedder",
    "build_backbone": "backbones", "build_embedder": "backbones", "poster_dataset": "images",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKBONES", "BackboneSpec", "get_backbone", "POLICIES", "VisionConfig", "Tile",
           "draw_contact_sheet", *_LAZY]
