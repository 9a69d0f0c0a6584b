"""A run whose stderr is not a terminal prints no progress-bar carriage returns and no TensorFlow
banner; `-v` lets the banner through."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from posterec.quiet import BANNER, _pump

pytest.importorskip("keras")


def _run(home, *argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = os.getcwd()
    return subprocess.run([sys.executable, "-m", "posterec", "--home", str(home), *argv], env=env,
                          capture_output=True)


def test_a_non_tty_train_prints_no_bars_and_no_banner(planted_home, tmp_path):
    posters = tmp_path / "posters"
    posters.mkdir()
    from test_vision_model_embed import poster_bytes

    for m in range(1, 6):
        (posters / f"{m}.jpg").write_bytes(poster_bytes("sun", m))
    for argv in (["import-posters", str(posters), "--dataset", "ml-100k"],
                 ["train", "--dataset", "ml-100k", "--epochs", "1"]):
        proc = _run(planted_home, *argv)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout + proc.stderr
        assert b"\r" not in out, argv
        assert b"absl::InitializeLog" not in out and b"oneDNN" not in out, out.decode()[:500]
    assert b"model version" in proc.stdout


def test_the_filter_drops_only_banner_lines(tmp_path):
    banner = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              b"I0000 00:00:1796120551.093708    5577 port.cc:153] oneDNN custom operations are on.\n"
              b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n")
    kept = b"posterec: error: something a person must see\nimport:  50%|#####     | 1/2\r"
    read_end, write_end = os.pipe()
    out = tmp_path / "out"
    with open(out, "wb") as target:
        os.write(write_end, banner + kept)
        os.close(write_end)
        _pump(read_end, target.fileno())
    assert out.read_bytes() == kept
    assert all(BANNER.match(line) for line in banner.splitlines())
