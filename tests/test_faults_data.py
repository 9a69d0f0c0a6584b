"""Fault suite for `download`: zip bombs, content that parses but cannot be right, missing
sources, and replacing a copy that models were made from. Each refusal is one line and
leaves nothing under the home."""
from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

import catalog.datasets
import catalog.download
from catalog import DatasetError, dataset_checksum, fetch_dataset
from posterec.cli import main


def zip_of(path: Path, members: dict[str, bytes], top: str = "ml-100k") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{top}/{name}", data)
    return path


def real_members(src: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in src.iterdir()}


def assert_refused_cleanly(home: Path, exc: BaseException, *words: str) -> None:
    text = str(exc)
    assert "\n" not in text
    for w in words:
        assert w in text, text
    assert not (home / "data").exists(), list(home.rglob("*"))


# -- 5. zip bombs --------------------------------------------------------------------------------
def test_zip_bomb_is_refused_before_a_byte_is_written(tmp_path, ml100k_dir, monkeypatch):
    written = []
    real_copy = catalog.download._copy_capped
    monkeypatch.setattr(catalog.download, "_copy_capped", lambda *a: written.append(a) or real_copy(*a))
    members = real_members(ml100k_dir)
    members["u.data"] = b"\0" * (200 << 20)          # 200 MiB of zeros: ~200 KB compressed
    bomb = zip_of(tmp_path / "ml-100k.zip", members)
    assert bomb.stat().st_size < 1 << 20
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=bomb)
    assert_refused_cleanly(home, err.value, "u.data", "more than the whole ml-100k release")
    assert written == []
    assert not home.exists()


def test_highly_compressed_member_is_refused_by_its_ratio(tmp_path, ml100k_dir):
    members = real_members(ml100k_dir)
    members["u.item"] = b"0" * (20 << 20)            # under the size limit, but 1000:1
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=zip_of(tmp_path / "x.zip", members))
    assert_refused_cleanly(home, err.value, "u.item", "zip bomb")


def test_total_over_the_release_size_is_refused(tmp_path, ml100k_dir, monkeypatch):
    small = dataclasses.replace(catalog.datasets.DATASETS["ml-100k"], max_bytes=40_000)
    monkeypatch.setitem(catalog.datasets.DATASETS, "ml-100k", small)
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=zip_of(tmp_path / "x.zip", real_members(ml100k_dir)))
    assert_refused_cleanly(home, err.value, "more than the release")


def test_a_member_longer_than_its_header_declares_is_refused(tmp_path, ml100k_dir):
    """A header that understates a member's size: reading stops at the declared size and fails."""
    members = real_members(ml100k_dir)
    path = zip_of(tmp_path / "lie.zip", members)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("/u.data"))
    true = info.file_size
    lie = (true // 2).to_bytes(4, "little")
    # the size field sits at offset 22 of the local header and 24 of the central directory entry
    data[info.header_offset + 22:info.header_offset + 26] = lie
    pos = 0
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        if pos < 0:
            break
        name_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        if bytes(data[pos + 46:pos + 46 + name_len]).endswith(b"/u.data"):
            data[pos + 24:pos + 28] = lie
        pos += 4
    path.write_bytes(bytes(data))
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=path)
    assert_refused_cleanly(home, err.value)


def test_no_room_on_disk_is_refused(tmp_path, ml100k_dir, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(catalog.download.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=10 << 20))
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=zip_of(tmp_path / "x.zip", real_members(ml100k_dir)))
    assert_refused_cleanly(home, err.value, "free")


# -- 6. content that parses but is wrong -------------------------------------------------------
def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="latin-1").splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="latin-1")


def test_empty_u_data_is_refused(tmp_path, ml100k_dir):
    (ml100k_dir / "u.data").write_text("")
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=ml100k_dir)
    assert_refused_cleanly(home, err.value, "u.data line 1: no ratings")


def test_header_only_ratings_csv_is_refused(tmp_path, csv_dir):
    (csv_dir / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-latest-small", source=csv_dir)
    assert_refused_cleanly(home, err.value, "ratings.csv line 2: no ratings")


def test_duplicate_pairs_are_refused_with_both_lines(tmp_path, ml100k_dir):
    path = ml100k_dir / "u.data"
    lines = _lines(path)
    u, m, _r, t = lines[2].split("\t")
    lines.append(f"{u}\t{m}\t1\t{t}")
    _write(path, lines)
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-100k", source=ml100k_dir)
    assert_refused_cleanly(home, err.value, f"u.data line {len(lines)}: user {u} rated movie {m} again "
                                            f"(first on line 3)")


def test_duplicate_pairs_in_a_sorted_csv_are_refused(tmp_path, csv_dir):
    path = csv_dir / "ratings.csv"
    lines = path.read_text().splitlines()
    lines.insert(4, lines[3])
    path.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, "ml-latest-small", source=csv_dir)
    assert_refused_cleanly(home, err.value, "ratings.csv line 5:", "again (first on line 4)")


@pytest.mark.parametrize("dataset, fixture, value, ok", [
    ("ml-100k", "ml100k_dir", "3.5", False), ("ml-100k", "ml100k_dir", "0.01", False),
    ("ml-100k", "ml100k_dir", "0", False), ("ml-1m", "ml1m_dir", "4.5", False),
    ("ml-1m", "ml1m_dir", "6", False), ("ml-latest-small", "csv_dir", "3.5", True),
    ("ml-latest-small", "csv_dir", "3.25", False), ("ml-latest-small", "csv_dir", "0", False),
    ("ml-latest-small", "csv_dir", "0.5", True), ("ml-latest-small", "csv_dir", "nan", False),
])
def test_ratings_off_the_release_scale_are_refused(request, tmp_path, dataset, fixture, value, ok):
    root = request.getfixturevalue(fixture)
    fname, sep = {"ml-100k": ("u.data", "\t"), "ml-1m": ("ratings.dat", "::")}.get(dataset, ("ratings.csv", ","))
    path = root / fname
    lines = _lines(path)
    k = 6  # a data line (line 7; the csv's header is line 1)
    fields = lines[k].split(sep)
    fields[2] = value
    lines[k] = sep.join(fields)
    _write(path, lines)
    home = tmp_path / "home"
    if ok:
        fetch_dataset(home, dataset, source=root)
        return
    with pytest.raises(DatasetError) as err:
        fetch_dataset(home, dataset, source=root)
    if value == "nan":
        assert_refused_cleanly(home, err.value, f"{fname} line 7")
    else:
        assert_refused_cleanly(home, err.value, f"{fname} line 7: rating {float(value):g} is off {dataset}'s scale")


# -- issue 13: --source that does not exist; no folder left behind ----------------------------
def test_missing_source_is_an_error_even_when_present(tmp_path, planted_home, capsys):
    rc = main(["--home", str(planted_home), "download", "--dataset", "ml-100k", "--source",
               str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 1 and "nope: no such file or folder" in err and "already present" not in err


def test_failed_download_leaves_no_data_folder(tmp_path, ml100k_dir):
    (ml100k_dir / "u.user").write_text("not|a|user\n")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(DatasetError):
        fetch_dataset(home, "ml-100k", source=ml100k_dir)
    assert list(home.iterdir()) == []


# -- 7. download --force under trained models -----------------------------------------------------
def _version(home: Path, name: str, manifest: dict) -> None:
    d = home / "models" / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps(manifest))


def test_force_warns_when_models_depend_on_the_replaced_copy(tmp_path, planted_home, ml100k_dir, capsys):
    old = dataset_checksum(planted_home, "ml-100k")
    _version(planted_home, "v1", {"dataset": "ml-100k", "dataset_checksum": old})
    _version(planted_home, "v2", {"dataset": "ml-100k", "text_model": {"dataset": "ml-100k",
                                                                       "dataset_checksum": old}})
    _version(planted_home, "v3", {"dataset": "ml-100k", "dataset_checksum": "other"})
    _version(planted_home, "v4", {"dataset": "ml-1m", "dataset_checksum": old})
    (planted_home / "models" / "CURRENT").write_text("v2\n")
    # the same copy again: nothing changes, no warning
    assert main(["--home", str(planted_home), "download", "--source", str(ml100k_dir), "--force"]) == 0
    assert "warning" not in capsys.readouterr().err
    lines = _lines(ml100k_dir / "u.data")
    _write(ml100k_dir / "u.data", lines[:-1])
    assert main(["--home", str(planted_home), "download", "--source", str(ml100k_dir), "--force"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "warning: 2 model versions, including CURRENT (v2), were made from the ml-100k copy" in err[0]
    assert dataset_checksum(planted_home, "ml-100k") != old
