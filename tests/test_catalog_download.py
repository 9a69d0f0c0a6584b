"""The real download code against a local HTTP server: good zip, corrupt zip, bad checksum."""
from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from catalog import DatasetError, fetch_dataset, load_dataset
from posterec.cli import main


def make_zip(src: Path, top: str = "ml-100k") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"{top}/{f.name}")
    return buf.getvalue()


class Files:
    """What the fake server serves, by path, and how often each was asked for."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}


@pytest.fixture
def server():
    files = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            files.hits[self.path] = files.hits.get(self.path, 0) + 1
            body = files.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    files.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets/"
    yield files
    httpd.shutdown()
    httpd.server_close()


def leftovers(home: Path) -> list[str]:
    data = home / "data"
    return sorted(p.name for p in data.iterdir()) if data.exists() else []


def test_download_verifies_extracts_and_is_idempotent(server, ml100k_dir, tmp_path):
    body = make_zip(ml100k_dir)
    server.files["/datasets/ml-100k.zip"] = body
    digest = ("sha256", hashlib.sha256(body).hexdigest())
    home = tmp_path / "home"
    r = fetch_dataset(home, "ml-100k", base_url=server.url, checksum=digest)
    assert r.fetched
    assert load_dataset(home, "ml-100k").ratings.shape[0] > 1000
    assert leftovers(home) == ["ml-100k"]
    again = fetch_dataset(home, "ml-100k", base_url=server.url, checksum=digest)
    assert not again.fetched
    assert server.hits["/datasets/ml-100k.zip"] == 1
    fetch_dataset(home, "ml-100k", base_url=server.url, checksum=digest, force=True)
    assert server.hits["/datasets/ml-100k.zip"] == 2
    assert leftovers(home) == ["ml-100k"]


def test_checksum_mismatch_leaves_nothing(server, ml100k_dir, tmp_path):
    server.files["/datasets/ml-100k.zip"] = make_zip(ml100k_dir)
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match="checksum mismatch, expected md5 0e33842e"):
        fetch_dataset(home, "ml-100k", base_url=server.url)  # the official checksum
    assert leftovers(home) == []


def test_corrupted_zip_leaves_nothing(server, ml100k_dir, tmp_path):
    body = bytearray(make_zip(ml100k_dir))
    body[200:260] = b"\0" * 60  # inside the first member's compressed data
    server.files["/datasets/ml-100k.zip"] = bytes(body)
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match="corrupted zip"):
        fetch_dataset(home, "ml-100k", base_url=server.url,
                      checksum=("sha256", hashlib.sha256(bytes(body)).hexdigest()))
    assert leftovers(home) == []


def test_http_error_is_clear(server, tmp_path):
    with pytest.raises(DatasetError, match="HTTP 404"):
        fetch_dataset(tmp_path / "home", "ml-1m", base_url=server.url)
    assert leftovers(tmp_path / "home") == []


def test_failed_force_keeps_the_installed_copy(server, ml100k_dir, tmp_path):
    home = tmp_path / "home"
    fetch_dataset(home, "ml-100k", source=ml100k_dir)
    server.files["/datasets/ml-100k.zip"] = b"not a zip at all"
    with pytest.raises(DatasetError):
        fetch_dataset(home, "ml-100k", base_url=server.url, force=True,
                      checksum=("sha256", hashlib.sha256(b"not a zip at all").hexdigest()))
    assert leftovers(home) == ["ml-100k"]
    assert len(load_dataset(home, "ml-100k").ratings) > 1000


def test_import_from_zip_and_dir(ml1m_dir, csv_dir, tmp_path):
    home = tmp_path / "home"
    z = tmp_path / "ml-1m.zip"
    z.write_bytes(make_zip(ml1m_dir, "ml-1m"))
    fetch_dataset(home, "ml-1m", source=z)
    fetch_dataset(home, "ml-latest-small", source=csv_dir)
    assert not load_dataset(home, "ml-latest-small").has_demographics
    assert load_dataset(home, "ml-1m").has_demographics
    meta = json.loads((home / "data" / "ml-1m" / ".posterec-dataset.json").read_text())
    assert len(meta["sha256"]) == 64


# -- the CLI: one line, exit 1, nothing half-written ---------------------------------------
def _corrupt(root: Path, fname: str, line: str) -> None:
    lines = (root / fname).read_text(encoding="latin-1").splitlines()
    lines[9] = line
    (root / fname).write_text("\n".join(lines) + "\n", encoding="latin-1")


@pytest.mark.parametrize("case,expect", [
    ("truncated", "u.data line 10: expected 4 fields"),
    ("non-numeric", "u.data line 10: rating 'abc' is not a number"),
    ("separator", "u.data line 10: expected 4 fields separated by a tab, got 1"),
    ("missing", "u.user: missing"),
    ("corrupt-zip", "corrupted zip"),
])
def test_cli_errors_are_one_line_and_leave_nothing(case, expect, ml100k_dir, tmp_path, capsys):
    source = ml100k_dir
    if case == "truncated":
        _corrupt(ml100k_dir, "u.data", "196\t242\t3")
    elif case == "non-numeric":
        _corrupt(ml100k_dir, "u.data", "196\t242\tabc\t881250949")
    elif case == "separator":
        _corrupt(ml100k_dir, "u.data", "196;242;3;881250949")
    elif case == "missing":
        (ml100k_dir / "u.user").unlink()
    elif case == "corrupt-zip":
        body = bytearray(make_zip(ml100k_dir))
        body[200:260] = b"\0" * 60
        source = tmp_path / "ml-100k.zip"
        source.write_bytes(bytes(body))
    home = tmp_path / "home"
    rc = main(["--home", str(home), "download", "--dataset", "ml-100k", "--source", str(source)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert expect in err
    assert len(err.splitlines()) == 1
    assert leftovers(home) == []


def test_cli_stats_json(planted_home, planted_data, capsys):
    assert main(["--home", str(planted_home), "stats", "--dataset", "ml-100k", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    ratings, movies, users = planted_data
    assert (stats["ratings"], stats["users"], stats["movies"]) == (len(ratings), len(users), len(movies))
    assert stats["movies_per_genre"] == {"Comedy": 30, "Horror": 30, "Drama": 6}


def test_cli_missing_dataset_names_the_fix(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "stats", "--dataset", "ml-1m"]) == 1
    assert "posterec --home" in capsys.readouterr().err
    # usage errors exit 2
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(tmp_path), "stats", "--dataset", "ml-7"])
    assert exc.value.code == 2


def test_home_from_environment(monkeypatch, tmp_path, ml100k_dir, capsys):
    monkeypatch.setenv("POSTEREC_HOME", str(tmp_path / "envhome"))
    assert main(["download", "--dataset", "ml-100k", "--source", str(ml100k_dir)]) == 0
    assert (tmp_path / "envhome" / "data" / "ml-100k" / "u.data").exists()


@pytest.mark.realdata
def test_real_ml100k_through_the_cli(tmp_path, capsys):
    from conftest import shared_path

    src = shared_path("data", "ml-100k")
    home = tmp_path / "home"
    assert main(["--home", str(home), "download", "--dataset", "ml-100k", "--source", str(src)]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "stats", "--dataset", "ml-100k", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["ratings"], stats["users"], stats["movies"]) == (100_000, 943, 1682)
    assert stats["movies_with_year"] >= 1680
    assert stats["movies_per_genre"]["Drama"] == 725
