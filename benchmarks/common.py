"""Shared bits of the benchmark scripts: machine description, result logging, the CLI in a subprocess."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    info = {"cpu": cpu, "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import pandas

        info["pandas"] = pandas.__version__
    except ImportError:
        pass
    return info


def median(xs) -> float:
    return float(statistics.median(xs))


def record(name: str, result: dict) -> Path:
    """Append one JSON line to benchmarks/results/<name>.jsonl."""
    RESULTS.mkdir(exist_ok=True)
    row = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **result}
    path = RESULTS / f"{name}.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")
    return path


def posterec_cli(home, *args: str) -> None:
    """``posterec --home HOME ARGS`` in a fresh process of this checkout, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-m", "posterec", "--home", str(home), *args], check=True, env=env)
