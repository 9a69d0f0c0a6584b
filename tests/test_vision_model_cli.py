"""``posterec embed`` and ``posterec lookalike`` end to end on the planted home with generated
posters: comedies get near-identical 'sun' posters, horror films 'stripes' posters."""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from test_vision_model_embed import keras_home, poster_bytes  # noqa: F401 (keras_home: a fixture)

COMEDIES, HORRORS = list(range(1, 9)), list(range(31, 39))
CORRUPT = 40


def plant_posters(home, dataset="ml-100k"):
    """Posters per the store contract: <home>/posters/<dataset>/<id>.jpg plus posters.csv."""
    folder = home / "posters" / dataset
    folder.mkdir(parents=True)
    rows = []
    for m in COMEDIES + HORRORS + [CORRUPT]:
        data = poster_bytes("sun" if m in COMEDIES else "stripes", m)
        if m == CORRUPT:
            data = data[: len(data) // 3]  # truncated after the scrape checked it
        (folder / f"{m}.jpg").write_bytes(data)
        rows.append({"movie_id": m, "source": "test", "url": "", "status": "ok", "http_status": 200,
                     "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                     "fetched_at": "2026-01-01T00:00:00Z", "error": ""})
    with open(folder / "posters.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


EMBED = ["embed", "--alpha", "0.35", "--batch-size", "8", "--runtime", "keras"]


@pytest.mark.realdata
def test_embed_then_lookalike(planted_home, keras_home, capsys, tmp_path):  # noqa: F811
    pytest.importorskip("posters")
    from catalog import ModelStore
    from posterec.cli import main
    from posterec.pipeline import visual_vectors

    plant_posters(planted_home)
    home = ["--home", str(planted_home)]
    assert main(home + EMBED) == 0
    assert "17 posters: 14 embedded, 0 from cache, 2 duplicates of others by sha256, 1 unusable" in \
        capsys.readouterr().out  # the numbers add up
    store = ModelStore(planted_home)
    first = store.open_current()
    vision = first.stage("embed")
    assert (vision["backbone"], vision["alpha"], vision["weights"], vision["policy"]) == \
        ("MobileNetV2", 0.35, "imagenet", "pad")
    assert vision["dim"] == 1280 and vision["n"] == 16
    assert [f["movie_id"] for f in vision["failed"]] == [CORRUPT]
    with_poster = set(COMEDIES + HORRORS + [CORRUPT])
    assert vision["missing"] == [m for m in range(1, 67) if m not in with_poster]
    vectors = visual_vectors(first)
    assert sorted(vectors.movie_ids.tolist()) == sorted(COMEDIES + HORRORS)  # no zero-filled rows
    np.testing.assert_allclose(np.linalg.norm(vectors.values, axis=1), 1.0, atol=1e-5)

    capsys.readouterr()
    assert main(home + ["lookalike", "3", "-n", "5", "--json", "--grid", str(tmp_path / "sheet.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["movie_id"] == 3 and out["query"]["genres"] == ["Comedy"]
    ids = [r["movie_id"] for r in out["results"]]
    assert len(ids) == 5 and 3 not in ids
    assert set(ids) <= set(COMEDIES)  # the near-identical 'sun' posters
    assert all(set(r) >= {"movie_id", "title", "year", "genres", "score"} for r in out["results"])
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)
    from PIL import Image

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 300 and sheet.height > 200

    assert main(home + ["lookalike", "33", "-n", "3", "--json"]) == 0
    assert {r["movie_id"] for r in json.loads(capsys.readouterr().out)["results"]} <= set(HORRORS)

    # errors: one line, exit 1
    assert main(home + ["lookalike", "999"]) == 1
    assert "movie 999 is not in" in capsys.readouterr().err
    assert main(home + ["lookalike", "50"]) == 1  # in the catalogue, no poster
    assert "has no poster embedding: it has no poster" in capsys.readouterr().err
    assert main(home + ["lookalike", str(CORRUPT)]) == 1
    assert "could not be used" in capsys.readouterr().err

    # a second run embeds nothing (all cached) yet writes a new version; the old one stays
    assert main(home + EMBED) == 0
    assert "17 posters: 0 embedded, 16 from cache, 0 duplicates of others by sha256, 1 unusable" in \
        capsys.readouterr().out
    assert store.current_name() != first.name and first.arrays("visual")


def test_lookalike_and_embed_usage_errors(planted_home, capsys):
    pytest.importorskip("posters")
    from posterec.cli import main

    home = ["--home", str(planted_home)]
    assert main(home + ["lookalike", "3"]) == 1
    assert "no model under" in capsys.readouterr().err
    assert main(home + ["embed", "--backbone", "NotANet"]) == 1
    assert "unknown backbone 'NotANet'" in capsys.readouterr().err
    assert main(home + ["embed", "--alpha", "0.35"]) == 1  # no posters yet
    assert "no ok posters for ml-100k" in capsys.readouterr().err
