"""fusion and index never import TensorFlow (queries must start fast)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_fusion_and_index_do_not_import_tensorflow():
    code = ("import sys, fusion, index, index.storage, index.brute_force, index.exact, index.evaluation, fusion.cold_start\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
