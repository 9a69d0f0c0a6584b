"""`steps`: progress through the named steps of a long stage — a tqdm bar on a terminal, one line
per step on stderr where bars are off (a log file, ``--quiet``)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def steps(what: str, total: int) -> Iterator[Callable[[str], None]]:
    """``with steps("build-index", 4) as step: step("fusing"); ...``: each call starts a step."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=what, unit="step", leave=False,
               bar_format="{desc}: {n_fmt}/{total_fmt} {postfix} [{elapsed}]")
    started = [0]
    t0 = time.perf_counter()

    def step(name: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] += 1
        if bar.disable:
            print(f"{what}: {name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        else:
            bar.set_postfix_str(name)

    try:
        yield step
        if started[0]:
            bar.update(1)
    finally:
        bar.close()
