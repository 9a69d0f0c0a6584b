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


class _OnImport:
    """A `sys.meta_path` finder that runs ``then(module)`` right after ``name`` is first imported."""

    def __init__(self, name: str, then):
        self.name, self.then, self.fired = name, then, False

    def find_spec(self, name, path=None, target=None):
        if name != self.name or self.fired:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # let the real finders find it
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real, then, finder = spec.loader, self.then, self

        class Loader:
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                finder.fired = True
                then(module)

        spec.loader = Loader()
        return spec


@contextmanager
def no_progress_bars(when: bool) -> Iterator[None]:
    """Turn every tqdm bar off for the block when ``when`` (restored afterwards).

    tqdm is not imported for this (0.1 s that a query command, which draws no bar, need not pay):
    when the block imports it, its bars are turned off as the import finishes."""
    if not when:
        yield
        return
    patched = []

    def bars_off(tqdm) -> None:
        original = tqdm.tqdm.__init__

        def init(self, *args, **kwargs):
            kwargs["disable"] = True
            original(self, *args, **kwargs)

        tqdm.tqdm.__init__ = init
        patched.append((tqdm.tqdm, original))

    hook = None
    if "tqdm" in sys.modules:
        bars_off(sys.modules["tqdm"])
    else:
        hook = _OnImport("tqdm", bars_off)
        sys.meta_path.insert(0, hook)
    try:
        yield
    finally:
        if hook is not None and hook in sys.meta_path:
            sys.meta_path.remove(hook)
        for cls, original in patched:
            cls.__init__ = original
