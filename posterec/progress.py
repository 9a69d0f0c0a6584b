"""`steps`: progress through the named steps of a long stage — a tqdm bar on a terminal, one line
per finished step on stderr where bars are off (a log file, ``--quiet``)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def steps(what: str, total: int) -> Iterator[Callable[[str], None]]:
    """``with steps("build-index", 4) as step: step("fusing"); ...``: each call starts a step."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=what, unit="step", leave=False, disable=None,
               bar_format="{desc}: {n_fmt}/{total_fmt} {postfix} [{elapsed}]")
    current: list = []  # [name, started] of the step under way

    def done() -> None:
        if current:
            bar.update(1)
            if bar.disable:  # no bar: one line per finished step
                name, started = current
                print(f"{what}: {name} ({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
            current.clear()

    def step(name: str) -> None:
        done()
        current.extend([name, time.perf_counter()])
        if not bar.disable:
            bar.set_postfix_str(name)

    try:
        yield step
        done()  # a step that raised is not reported as done
    finally:
        bar.close()
