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
    from ..comparison import CompareConfig
    from ..report import write_report

    out = write_report(args.home, args.out, args.dataset, CompareConfig(baselines=args.baselines, seed=args.seed))
    print(f"report written to {out}")
    return 0
