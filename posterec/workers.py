"""``serve --workers N``: N uvicorn processes answering on one listening socket (pre-fork).

The parent loads the model once (``create_app``), starts listening, then forks the workers; each
runs its own event loop and threadpool on the inherited socket, and the kernel hands each new
connection to one of them. The model's arrays, the FAISS indexes and the imported libraries are
pages the workers share with the parent copy-on-write, so N workers cost far less than N times
the memory of one (measure it with PSS, ``/proc/PID/smaps_rollup``; RSS counts shared pages once
per process). A version loaded later (after a rebuild) is each worker's own.

The parent only supervises: a worker that dies is replaced (at most `MAX_RESTARTS` times a
minute); SIGINT or SIGTERM stops every worker gracefully. Every worker follows the version on
disk (`posterec.server.AppState`), so a rebuild through one of them reaches them all.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import Callable

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # a minute; past that the server stops instead of looping on a crash
BACKLOG = 2048  # as uvicorn


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker(app, sock: socket.socket, config: dict) -> int:
    """One worker's life: uvicorn on the inherited socket until told to stop."""
    import uvicorn

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # until uvicorn installs its own in serve(): a stop ends it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # one sent since the fork lands now
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", "server_header": False, **config}))
    asyncio.run(server.serve(sockets=[sock]))
    return 0


def _fork(app, sock: socket.socket, config: dict) -> int:
    # SIGINT and SIGTERM are held back across the fork: the child must not run the parent's
    # handler (which would swallow a stop meant for it) before it has its own
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        raise
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    else:  # the worker: never returns into the parent's code
        code = 1
        try:
            code = _worker(app, sock, config)
        except BaseException:  # noqa: BLE001 - reported, then the worker exits
            log.exception("worker %d failed", os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def tcp_socket(sock: socket.socket) -> socket.socket:
    """``sock``, or a socket on the same descriptor that says it is TCP: asyncio sets TCP_NODELAY
    only on the connections of a socket whose protocol is IPPROTO_TCP, and ``socket.socket()``
    leaves it 0; without TCP_NODELAY, Nagle and delayed ACKs hold each response ~40 ms."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM and sock.proto == 0:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=os.dup(sock.fileno()))
    return sock


def serve_workers(app, sock: socket.socket, workers: int, config: dict | None = None,
                  started: Callable[[list[int]], None] | None = None) -> int:
    """Serve ``app`` from ``workers`` forked processes on the bound socket ``sock`` until SIGINT
    or SIGTERM; ``started(pids)`` is called once they are forked (the socket already listens, so
    connections queue until a worker takes them). Returns 0, or 1 when workers kept dying."""
    config = dict(config or {})
    sock = tcp_socket(sock)
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    gc.collect()
    gc.freeze()  # the collector leaves the parent's objects alone, so their pages stay shared
    pids = {_fork(app, sock, config) for _ in range(workers)}
    if started is not None:
        started(sorted(pids))
    restarts: list[float] = []
    code = 0
    try:
        while pids and not stopping:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)  # polled: a blocking wait outlives SIGTERM
            except ChildProcessError:
                break
            if pid == 0 or pid not in pids:
                time.sleep(0.1)
                continue
            pids.discard(pid)
            if stopping:
                break
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > MAX_RESTARTS:
                print(f"posterec: workers keep dying ({len(restarts)} in a minute, the last with status "
                      f"{status}); stopping", file=sys.stderr, flush=True)
                code = 1
                break
            print(f"posterec: worker {pid} ended (status {status}); starting another", file=sys.stderr, flush=True)
            pids.add(_fork(app, sock, config))
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)  # uvicorn finishes the requests under way, then exits
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while pids and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
            else:
                pids.discard(pid)
        for pid in pids:  # still there after 30 s
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
