"""Checking that downloaded or imported bytes are a sane poster image.

Policy: JPEG and PNG bytes are kept exactly as received (``.jpg`` / ``.png``, sha256 of the
original bytes); WebP is decoded and re-encoded losslessly as PNG (the store holds only jpg|png);
every other format is ``invalid``. An image is accepted only if Pillow identifies it, its header
dimensions lie within ``min_side..max_side`` (checked before decoding, so a decompression bomb
is never decoded), ``verify()`` passes and a fresh ``load()`` decodes every pixel. JPEGs must also
end with the EOI marker, which catches truncation that Pillow would otherwise pad silently.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

KEEP_AS_IS = {"JPEG": "jpg", "PNG": "png"}
REENCODE_AS_PNG = {"WEBP"}


@dataclass(frozen=True)
class ImageLimits:
    """Sanity limits for a poster."""

    min_side: int = 32
    max_side: int = 6000
    max_bytes: int = 10 * 1024 * 1024

    def __post_init__(self):
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"need 1 <= min_side <= max_side, got {self.min_side}..{self.max_side}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")


class InvalidImage(ValueError):
    """The bytes are not a decodable, sane poster; the message says why."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes          # the bytes to store
    ext: str             # "jpg" or "png"
    width: int
    height: int
    sha256: str


def _describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "HTML/XML text, not an image"
    if head.startswith((b"{", b"[")):
        return "JSON text, not an image"
    if head[:1].isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256]):
        return "plain text, not an image"
    return "unrecognised binary data, not a JPEG, PNG or WebP image"  # never quote the bytes


def check_image(data: bytes, limits: ImageLimits = ImageLimits()) -> CheckedImage:
    """Return the image to store, or raise `InvalidImage` with the reason."""
    if not data:
        raise InvalidImage("empty body")
    if len(data) > limits.max_bytes:
        raise InvalidImage(f"image is {len(data)} bytes, over the limit of {limits.max_bytes}")
    fmt = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format, im.size
                _check_size(width, height, limits)
                if fmt not in KEEP_AS_IS and fmt not in REENCODE_AS_PNG:
                    raise InvalidImage(f"unsupported image format {fmt} (want JPEG, PNG or WebP)")
                im.verify()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if fmt in REENCODE_AS_PNG:
                    out = io.BytesIO()
                    im.save(out, format="PNG")
                    data = out.getvalue()
        except InvalidImage:
            raise
        except UnidentifiedImageError:
            raise InvalidImage(_describe(data)) from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise InvalidImage(f"{fmt or 'image'} does not decode: "
                               f"{' '.join(str(exc).split())}") from None
    if fmt == "JPEG" and not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        raise InvalidImage("JPEG is truncated (no end-of-image marker)")
    ext = KEEP_AS_IS.get(fmt, "png")
    return CheckedImage(data=data, ext=ext, width=width, height=height,
                        sha256=hashlib.sha256(data).hexdigest())


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if min(width, height) < limits.min_side:
        raise InvalidImage(f"image is {width}x{height}, smaller than {limits.min_side} px on a side")
    if max(width, height) > limits.max_side:
        raise InvalidImage(f"image is {width}x{height}, larger than {limits.max_side} px on a side")
