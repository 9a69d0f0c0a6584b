"""What the command line hides unless ``-v``: TensorFlow's start-up banners, and progress bars
where nobody watches them (``--quiet``, or stderr not a terminal: a line per stage instead).

TensorFlow writes its banners (absl's "All log messages before absl::InitializeLog()", oneDNN and
CPU-feature notices) from C++ straight to file descriptor 2, past any Python setting, so the
command line routes fd 2 through a filter that drops exactly those lines and passes everything
else on. Library users are not affected: only `posterec.cli.main` uses this.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

BANNER = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                    rb"[IW]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard|cuda_\w+|gpu_device)\.cc:\d+\]|"
                    rb"To enable the following instructions:|"
                    rb"E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\])")
PREFIXES = (b"WARNING: All log", b"I0", b"W0", b"E0", b"To enable")


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Route fd 2 through a thread that drops TensorFlow's banner lines (only when sys.stderr is
    the process's own stderr: under a test's capture nothing is redirected)."""
    if sys.stderr is not sys.__stderr__:
        yield
        return
    try:
        target = os.dup(2)
    except OSError:
        yield
        return
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_pump, args=(read_end, target), name="posterec-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(target, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=30)
        if not thread.is_alive():
            os.close(target)


def _pump(read_end: int, target: int) -> None:
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as src:
        while True:
            chunk = src.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not BANNER.match(line))
            if pending and not pending.startswith(PREFIXES):  # a progress bar's \r update: pass it on now
                out, pending = out + pending, b""
            if out:
                _write(target, out)
    if pending and not BANNER.match(pending):
        _write(target, pending)


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:  # the reader of our stderr went away: nothing more to tell it
        pass


@contextmanager
def no_progress_bars(when: bool) -> Iterator[None]:
    """Turn every tqdm bar off for the block when ``when`` (restored afterwards).

    When tqdm is not imported yet, it is not imported here (0.1 s a query command need not pay):
    $TQDM_DISABLE is set for the block instead, which tqdm reads when first imported, so a tqdm
    first imported inside the block keeps its bars off for the rest of the process."""
    if not when:
        yield
        return
    if "tqdm" not in sys.modules:
        before = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = before
        return
    import tqdm

    original = tqdm.tqdm.__init__

    def init(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    tqdm.tqdm.__init__ = init
    try:
        yield
    finally:
        tqdm.tqdm.__init__ = original
