"""The contact sheet of a query poster and its look-alikes (the search itself is `index`'s, tested there)."""
from __future__ import annotations

from vision_model import Tile, draw_contact_sheet


def test_contact_sheet(tmp_path):
    from PIL import Image

    poster = tmp_path / "1.jpg"
    Image.new("RGB", (60, 90), (200, 0, 0)).save(poster)
    out = draw_contact_sheet(Tile(poster, "query: A Film (1999)"),
                             [Tile(poster, "0.950 Another"), Tile(tmp_path / "absent.jpg", "0.5 Gone")],
                             tmp_path / "sheet.png")
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width >= 3 * 150
        assert sheet.getpixel((8 + 75, 8 + 111))[0] > 150  # the query thumbnail is there

