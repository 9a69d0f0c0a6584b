"""A contact sheet PNG: the query poster, then its look-alikes, each captioned."""
from __future__ import annotations

import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

THUMB_W, THUMB_H = 150, 222
CAPTION_H = 48
PAD = 8


@dataclass(frozen=True)
class Tile:
    path: str | os.PathLike | None   # the poster file (None or unreadable: a grey box)
    caption: str


def _thumb(path):
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            return ImageOps.contain(img.convert("RGB"), (THUMB_W, THUMB_H))
    except Exception:
        return Image.new("RGB", (THUMB_W, THUMB_H), (128, 128, 128))


def draw_contact_sheet(query: Tile, tiles: list[Tile], path: str | os.PathLike, columns: int = 6) -> Path:
    """Write the sheet to ``path`` (PNG, atomically): the query first, framed in red."""
    from PIL import Image, ImageDraw, ImageFont

    cells = [query, *tiles]
    cols = max(1, min(columns, len(cells)))
    rows = -(-len(cells) // cols)
    cell_w, cell_h = THUMB_W + 2 * PAD, THUMB_H + CAPTION_H + 2 * PAD
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, tile in enumerate(cells):
        x0, y0 = (k % cols) * cell_w + PAD, (k // cols) * cell_h + PAD
        thumb = _thumb(tile.path) if tile.path is not None else _thumb(None)
        sheet.paste(thumb, (x0 + (THUMB_W - thumb.width) // 2, y0 + (THUMB_H - thumb.height) // 2))
        if k == 0:
            draw.rectangle([x0 - 3, y0 - 3, x0 + THUMB_W + 2, y0 + THUMB_H + 2], outline=(200, 0, 0), width=3)
        lines = textwrap.wrap(tile.caption, 24)[:3]
        draw.multiline_text((x0, y0 + THUMB_H + 4), "\n".join(lines), fill="black", font=font, spacing=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
