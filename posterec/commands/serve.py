"""``serve`` (the HTTP API and web page) and ``report`` (an HTML page of plots)."""
from __future__ import annotations

from pathlib import Path

from ..output import number_between, port_argument, positive_int


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and the web page of poster grids",
                       description="Serve the current model: the JSON API (OpenAPI schema at /docs) "
                                   "and the web page at /. POST /admin/rebuild is enabled only when "
                                   "$POSTEREC_ADMIN_TOKEN is set.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=port_argument, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes on the one port (default: 1); they share the loaded model's "
                        "memory, and each follows a version another makes current")
    p.add_argument("--answer-cache-mb", type=number_between(0.0, 4096.0, float, "a size in MiB"), default=None,
                   metavar="MB", help="serialised answers of similar, lookalike and recommendations kept per "
                                      "loaded version and worker (default: 32; 0: none)")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("report", help="write an HTML report about the current model, beside baselines fitted in the run",
                       description="This model's split and metrics; KNNBaseline, SVD and SVD++ (Surprise, the "
                                   "'report' extra) and most popular fitted in the same run on the same split, "
                                   "as a table and charts; error by user activity, hit rate by movie popularity, "
                                   "training curves, the ratings, a map of the poster embeddings and look-alike "
                                   "contact sheets, in one self-contained HTML file. A model for use (split "
                                   "none) is not measured; the baselines then use a random-80-20 split.")
    p.add_argument("--out", type=Path, default=Path("posterec-report.html"),
                   help="the HTML file to write (default: posterec-report.html)")
    p.add_argument("--dataset", default=None,
                   help="dataset to describe when the home has no model (default: the current model's)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip fitting KNNBaseline, SVD and SVD++ (about 30 s on ml-100k)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the report's own split, for a model for use (default: 0)")
    p.set_defaults(func=run_report)


def _is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (127.0.0.0/8, ::1)."""
    import ipaddress
    import socket

    if not host:
        return False  # "" listens on every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def listen(host: str, port: int):
    """A socket bound to ``host:port``, or one line saying why not (a busy port: try --port)."""
    import errno
    import socket

    from catalog import PosterecError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise PosterecError(f"cannot listen on --host {host!r}: {exc.strerror}; give an address "
                            f"of this machine, e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PosterecError(f"port {port} on {host} is already in use (another posterec serve?); "
                                f"pick another with --port N, or --port 0 for a free one") from None
        if exc.errno == errno.EACCES:
            raise PosterecError(f"not allowed to listen on {host}:{port} (ports below 1024 need "
                                f"privileges); pick another with --port N") from None
        raise PosterecError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def network_warning(host: str, admin_on: bool) -> str | None:
    """What to tell the operator when ``host`` is reachable from other machines, else None."""
    from ..server import TOKEN_ENV

    if _is_loopback(host):
        return None
    admin = (f"they are on, guarded by ${TOKEN_ENV}: keep it secret" if admin_on
             else f"they are off until ${TOKEN_ENV} is set")
    return (f"posterec: warning: --host {host or '(all interfaces)'} makes the API reachable from "
            f"the network, without TLS. Every query and poster endpoint answers anyone who can "
            f"reach this port; only POST /admin/rebuild and GET /admin/rebuild need the token "
            f"({admin}). Use --host 127.0.0.1 to keep it on this machine.")


def run_serve(args) -> int:
    import asyncio
    import os
    import sys
    import tempfile

    import uvicorn

    from ..server import ANSWER_MB, TOKEN_ENV, create_app

    admin_on = bool(os.environ.get(TOKEN_ENV))
    workers = getattr(args, "workers", 1)
    answer_mb = ANSWER_MB if getattr(args, "answer_cache_mb", None) is None else args.answer_cache_mb
    sock = listen(args.host, args.port)  # before the model loads: a busy port fails at once
    shared = tempfile.TemporaryDirectory(prefix="posterec-serve-") if workers > 1 else None
    try:
        app = create_app(args.home, answer_mb=answer_mb, shared=None if shared is None else shared.name)
        rec = app.state.posterec.recommender
        warning = network_warning(args.host, admin_on)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        port = sock.getsockname()[1]

        def say_serving(pids=None) -> None:
            host = f"[{args.host}]" if ":" in args.host else args.host
            admin = "on" if admin_on else f"off (set {TOKEN_ENV})"
            posters = "" if rec.has_posters else " (no posters: collaborative only)"
            procs = f"; {len(pids)} workers" if pids else ""
            print(f"posterec: serving {rec.dataset} model {rec.version}{posters} at "
                  f"http://{host}:{port}/ (API docs at /docs; admin {admin}{procs}; Ctrl-C stops)", flush=True)

        if workers > 1:
            from ..workers import serve_workers

            return serve_workers(app, sock, workers, started=say_serving)
        config = uvicorn.Config(app, log_level="warning", server_header=False)
        server = uvicorn.Server(config)

        async def announce() -> None:  # print the URL once uvicorn is accepting connections
            while not server.started:
                await asyncio.sleep(0.05)
            say_serving()

        async def main() -> None:
            task = asyncio.create_task(announce())
            await server.serve(sockets=[sock])
            task.cancel()

        asyncio.run(main())
    finally:
        sock.close()
        if shared is not None:
            shared.cleanup()
    return 0


def run_report(args) -> int:
    from ..comparison import CompareConfig
    from ..report import write_report

    out = write_report(args.home, args.out, args.dataset, CompareConfig(baselines=args.baselines, seed=args.seed))
    print(f"report written to {out}")
    return 0
