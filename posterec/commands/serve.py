"""``serve`` (the HTTP API and web page) and ``report`` (an HTML page of plots)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and the web page of poster grids",
                       description="Serve the current model: the JSON API (OpenAPI schema at /docs) "
                                   "and the web page at /. POST /admin/rebuild is enabled only when "
                                   "$POSTEREC_ADMIN_TOKEN is set.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("report", help="write an HTML report with plots about the current model",
                       description="Rating distribution, training curves, accuracy against the "
                                   "baselines, a map of the poster embeddings and look-alike contact "
                                   "sheets, in one self-contained HTML file.")
    p.add_argument("--out", type=Path, default=Path("posterec-report.html"),
                   help="the HTML file to write (default: posterec-report.html)")
    p.add_argument("--dataset", default=None,
                   help="dataset to describe (default: the current model's dataset)")
    p.add_argument("--results", type=Path, default=None,
                   help="folder of benchmark *.jsonl results (default: the repo's benchmarks/results)")
    p.set_defaults(func=run_report)


def run_serve(args) -> int:
    import uvicorn

    from ..server import TOKEN_ENV, create_app

    app = create_app(args.home)
    rec = app.state.posterec.recommender
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    async def announce() -> None:  # print the URL once the socket is bound (port 0 resolved)
        import asyncio
        import os

        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        admin = "on" if os.environ.get(TOKEN_ENV) else f"off (set {TOKEN_ENV})"
        posters = "" if rec.has_posters else " (no posters: collaborative only)"
        print(f"posterec: serving {rec.dataset} model {rec.version}{posters} at http://{host}:{port}/ "
              f"(API docs at /docs; admin {admin}; Ctrl-C stops)", flush=True)

    import asyncio

    async def main() -> None:
        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    asyncio.run(main())
    return 0


def run_report(args) -> int:
    from ..report import DEFAULT_RESULTS, write_report

    out = write_report(args.home, args.out, args.dataset, args.results or DEFAULT_RESULTS)
    print(f"report written to {out}")
    return 0
