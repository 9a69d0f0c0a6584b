"""A model version built by the real stages on the planted fixture: its files are the schema's, each
listed with sha256 and inputs; a missing, truncated, foreign or random file is one error line."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from catalog import SCHEMA, ModelStore
from posterec.cli import main
from test_vision_model_cli import EMBED, plant_posters
from test_vision_model_embed import keras_home  # noqa: F401 (a fixture)

pytest.importorskip("keras")
pytestmark = pytest.mark.realdata  # embeds with the real MobileNetV2 weights in ../shared

QUERIES = [["similar", "3"], ["recommend", "4"], ["also-liked", "3"], ["lookalike", "3"]]


@pytest.fixture(scope="module")
def built(tmp_path_factory, keras_home):  # noqa: F811
    import text_model.config as config
    from catalog import fetch_dataset
    from movielens_fixture import planted, write_ml100k
    from text_model_helpers import TINY

    root = tmp_path_factory.mktemp("built")
    home = root / "home"
    fetch_dataset(home, "ml-100k", source=write_ml100k(root / "src", planted()))
    plant_posters(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(config.CONFIGS, "best", TINY)
        assert main(["--home", str(home), "train", "--dataset", "ml-100k", "--progress", "0", "--epochs", "2"]) == 0
        assert main(["--home", str(home), *EMBED]) == 0
        assert main(["--home", str(home), "build-index", "--visual-weight", "0.5"]) == 0
    return home


def test_the_files_on_disk_are_the_schemas_and_all_listed(built):
    version = ModelStore(built).open_current()
    on_disk = sorted(p.name for p in version.path.iterdir() if p.name != "manifest.json")
    by_file = {a.file: a for a in SCHEMA.values()}
    assert on_disk == sorted(version.files) and set(on_disk) <= set(by_file)
    assert set(on_disk) >= {SCHEMA[k].file for k in ("text_model", "keras_model", "ranking", "interactions",
                                                     "visual", "index")}
    for name, record in version.files.items():
        assert len(record["sha256"]) == 64 and record["bytes"] == (version.path / name).stat().st_size
        assert record["stage"] == by_file[name].stage
    index_inputs = version.files[SCHEMA["index"].file]["inputs"]
    assert index_inputs["text_model"] == version.files[SCHEMA["text_model"].file]["sha256"]
    assert index_inputs["visual"] == version.files[SCHEMA["visual"].file]["sha256"]
    assert version.manifest["purpose"] == "use" and version.stage("train")["split"]["name"] == "none"


def test_info_lists_every_artifact(built, capsys):
    assert main(["--home", str(built), "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["artifacts"]) == set(SCHEMA)
    assert info["damaged"] == [] and "test_pairs" in info["absent"]
    assert all(a["state"] == "ok" for k, a in info["artifacts"].items() if k not in info["absent"])


def test_train_after_build_index_carries_no_old_index(built, tmp_path):
    import shutil

    import text_model.config as config
    from text_model_helpers import TINY

    home = tmp_path / "home"
    shutil.copytree(built, home, symlinks=True)
    before = ModelStore(home).open_current()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(config.CONFIGS, "best", TINY)
        assert main(["--home", str(home), "train", "--dataset", "ml-100k", "--progress", "0", "--epochs", "1",
                     "--seed", "1"]) == 0
    after = ModelStore(home).open_current()
    assert after.files[SCHEMA["text_model"].file]["sha256"] != before.files[SCHEMA["text_model"].file]["sha256"]
    assert not after.has("index") and not after.has("cold_start") and after.has("visual")
    assert not (after.path / SCHEMA["index"].file).exists()
    assert main(["--home", str(home), "similar", "3", "-n", "3"]) == 0  # fused afresh from the new vectors


def _damaged_copy(built, tmp_path, file, how):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(built, home, symlinks=True)
    folder = ModelStore(home).current()
    path = folder / file
    data = path.read_bytes()
    path.unlink()  # never write through a hard link into another version
    if how == "truncate":
        path.write_bytes(data[: max(1, len(data) // 2)])
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "list":
        path.write_text(json.dumps([1, 2, 3]))
    return home


REQUIRED = ["text_model", "keras_model", "ranking", "interactions", "visual", "index"]


@pytest.mark.parametrize("how", ["delete", "truncate", "random"])
@pytest.mark.parametrize("key", REQUIRED)
def test_a_damaged_file_is_one_error_line_naming_it(built, tmp_path, capsys, key, how):
    file = SCHEMA[key].file
    home = _damaged_copy(built, tmp_path, file, how)
    queries = [["predict", "--pairs", str(_pairs(tmp_path)), "--out", str(tmp_path / "p.csv")]] \
        if key == "keras_model" else QUERIES
    for argv in queries:
        capsys.readouterr()
        assert main(["--home", str(home), *argv]) == 1, argv
        out, err = capsys.readouterr()
        assert out == "", argv  # no answer
        lines = err.strip().splitlines()
        assert len(lines) == 1 and file in lines[0] and "posterec" in lines[0], (argv, err)
        assert f"`posterec --home {home} {SCHEMA[key].stage}`" in lines[0] or key == "keras_model", err


def _pairs(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("user_id,movie_id\n2,1\n")
    return p


def test_a_manifest_that_is_a_json_list_is_one_error_line(built, tmp_path, capsys):
    home = _damaged_copy(built, tmp_path, "manifest.json", "list")
    for argv in QUERIES + [["info"], ["build-index"]]:
        capsys.readouterr()
        assert main(["--home", str(home), *argv]) == 1
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and "manifest.json" in err and "JSON object" in err


def test_a_model_made_from_another_copy_of_the_dataset_says_so(built, tmp_path, capsys):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(built, home, symlinks=True)
    other = tmp_path / "other"
    shutil.copytree(home / "data" / "ml-100k", other)
    lines = (other / "u.data").read_text().splitlines()
    (other / "u.data").write_text("\n".join(lines[:-1]) + "\n")  # another copy: one rating fewer
    (other / ".posterec-dataset.json").unlink(missing_ok=True)
    assert main(["--home", str(home), "download", "--dataset", "ml-100k", "--force", "--source", str(other)]) == 0
    assert "model versions" in capsys.readouterr().err  # download --force warned
    assert main(["--home", str(home), "similar", "3"]) == 1
    err = capsys.readouterr().err
    assert "another copy of ml-100k" in err and "retrain" in err and len(err.strip().splitlines()) == 1
    assert os.path.exists(home / "models" / "CURRENT")
