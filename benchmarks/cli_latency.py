"""Wall time of the query commands, as a person runs them, against ``python -c pass`` in the same run.

    python benchmarks/cli_latency.py --home HOME            # HOME: a posterec home with a model
    python benchmarks/cli_latency.py --home HOME --runs 21 --commands "similar 1" "info"
    python benchmarks/cli_latency.py --home HOME --compare-tree /path/to/old/checkout

Each round runs, in turn: ``python -c pass`` (the interpreter's floor), ``python -c "import
numpy, faiss"`` (the libraries a query needs), then each command as ``python -m posterec --home
HOME ...`` (stdout discarded), each in a fresh process; the order rotates each round so a burst
of load on a shared machine falls on all of them alike. Reported: the median and the lowest wall
time of each, the median minus the floor, and which heavy packages (pandas, TensorFlow, Keras,
pyarrow) each command imported (none is the point).

Bytecode: the modules are compiled once into a temporary ``PYTHONPYCACHEPREFIX`` before the
rounds, as an installed package would have them; ``--no-bytecode`` measures with
``PYTHONDONTWRITEBYTECODE=1`` instead (every run compiles this checkout's sources again).
Appends a JSON line to benchmarks/results/cli_latency.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import machine, median, record  # noqa: E402

HEAVY = ("pandas", "tensorflow", "keras", "pyarrow")
PROBE = ("import json, sys, posterec.cli\n"
         "rc = posterec.cli.main(sys.argv[1:])\n"
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))), file=sys.stderr)\n" % (HEAVY,))


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    # cwd: the tree on PYTHONPATH, since `python -m`/`-c` put the working directory first on sys.path
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=env["PYTHONPATH"])
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return took


def heavy_imports(home: Path, argv: list[str], env: dict) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, "--home", str(home.resolve()), *argv], capture_output=True,
                          text=True, env=env, check=True, cwd=env["PYTHONPATH"])
    return json.loads(proc.stderr.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, required=True, help="a posterec home with a current model")
    p.add_argument("--runs", type=int, default=15, help="rounds (default: 15)")
    p.add_argument("--commands", nargs="+", default=["similar 1", "lookalike 1", "recommend 1", "also-liked 1", "info"],
                   help='query commands, each one string (default: "similar 1" "lookalike 1" "recommend 1" '
                        '"also-liked 1" "info")')
    p.add_argument("--no-bytecode", action="store_true", help="measure with PYTHONDONTWRITEBYTECODE=1")
    p.add_argument("--compare-tree", type=Path, metavar="DIR",
                   help="another checkout (e.g. the code before a change): its first command joins the rounds")
    p.add_argument("--no-record", action="store_true", help="do not append to results/")
    args = p.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cache = None
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cache = tempfile.TemporaryDirectory(prefix="cli-latency-pyc-")
        env["PYTHONPYCACHEPREFIX"] = cache.name
    py = sys.executable
    variants = {"python -c pass": [py, "-c", "pass"],
                "python -c 'import numpy, faiss'": [py, "-c", "import numpy, faiss"]}
    for c in args.commands:
        variants[f"posterec {c}"] = [py, "-m", "posterec", "--home", str(args.home.resolve()), *shlex.split(c)]
    envs = {k: env for k in variants}
    if args.compare_tree is not None:
        k = f"posterec {args.commands[0]} [{args.compare_tree}]"
        variants[k] = [py, "-m", "posterec", "--home", str(args.home.resolve()), *shlex.split(args.commands[0])]
        envs[k] = {**env, "PYTHONPATH": str(args.compare_tree.resolve())}
    for k, cmd in variants.items():  # warm: bytecode compiled, files in the page cache
        timed(cmd, envs[k])
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.runs):
        for k in names[r % len(names):] + names[: r % len(names)]:
            times[k].append(timed(variants[k], envs[k]))
    heavy = {f"posterec {c}": heavy_imports(args.home, shlex.split(c), env) for c in args.commands}
    if args.compare_tree is not None:
        heavy[k] = heavy_imports(args.home, shlex.split(args.commands[0]), envs[k])
    if cache is not None:
        cache.cleanup()

    floor = median(times["python -c pass"])
    info = machine()
    print(f"machine: {info}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    print(f"home: {args.home}; {args.runs} rounds; bytecode {'off (compiled every run)' if args.no_bytecode else 'cached'}")
    print(f"{'command':40s} {'median s':>9s} {'min s':>7s} {'- floor':>8s}  heavy imports")
    rows = []
    for k in names:
        med = median(times[k])
        rows.append({"command": k, "median_s": round(med, 4), "min_s": round(min(times[k]), 4),
                     "over_floor_s": round(med - floor, 4), "heavy": heavy.get(k)})
        print(f"{k:40s} {med:9.3f} {min(times[k]):7.3f} {med - floor:8.3f}  {heavy.get(k, '')}")
    target = median(times[f"posterec {args.commands[0]}"])
    print(f"target: posterec {args.commands[0]} under 0.5 s: {target:.3f} s ({'met' if target < 0.5 else 'missed'})")
    if not args.no_record:
        path = record("cli_latency", {"home": str(args.home), "runs": args.runs, "bytecode": not args.no_bytecode,
                                      "loadavg_end": os.getloadavg(), "rows": rows})
        print(f"appended to {path}")


if __name__ == "__main__":
    main()
