"""A local fake of the TMDB API and image CDN for the scraper tests and benchmark.

``FakeTmdb()`` serves on 127.0.0.1 (a free port) from a ThreadingHTTPServer:

- ``/3/movie/<tmdb_id>``: ``{"id":..,"poster_path":..}`` from ``movies`` (404 when absent);
  ``/3/search/movie?query=Q&year=Y``: results from ``search[(Q, Y)]``, else one result whose
  poster is ``/s/<quoted query>.jpg``; every ``/3`` request needs ``api_key=KEY`` or
  ``Authorization: Bearer KEY`` (else 401);
- ``/t/p/<size>/<name>``: the replies scripted in ``routes[path]`` (a list of `Reply`, the n-th
  hit gets the n-th, the last repeating), else a fresh real JPEG made with Pillow.

``Reply(trickle=1.0)`` sends its body 64 bytes a second (a slow-drip server).
``hits`` counts requests per path, ``requests`` lists (path, query); ``delay`` adds latency to every reply.
"""
from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from PIL import Image


def jpeg_bytes(width: int = 60, height: int = 90, color=(200, 30, 30), noise: bool = False) -> bytes:
    if noise:
        import numpy as np

        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        im = Image.fromarray(pixels, "RGB")
    else:
        im = Image.new("RGB", (width, height), color)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png_bytes(width: int = 60, height: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 10)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "image/jpeg"
    trickle: float = 0.0        # > 0: send the body 64 bytes at a time, this many seconds apart


class FakeTmdb:
    def __init__(self, key: str = "k3y-s3cr3t-0123456789", delay: float = 0.0):
        self.key = key
        self.delay = delay
        self.movies: dict[int, str | None] = {}
        self.search: dict[tuple[str, str], list[dict]] = {}
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter = Counter()
        self.times: list[float] = []          # monotonic arrival time of each request
        self.requests: list[tuple[str, str]] = []   # (path, query string)
        self._lock = threading.Lock()
        self.default_image = jpeg_bytes()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()  # no Nagle: headers and body go out without a delayed-ACK stall
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                try:
                    fake._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = f"{self.base}/3"
        self.image_url = f"{self.base}/t/p"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeTmdb":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def image_path(self, name: str, size: str = "w342") -> str:
        return f"/t/p/{size}/{name}"

    def route(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return f"{self.base}{path}"

    # ---------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)
        with self._lock:
            n = self.hits[path]
            self.hits[path] += 1
            self.requests.append((path, parts.query))
            self.times.append(time.monotonic())
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/3/"):
            return self._api(h, path, query)
        replies = self.routes.get(path)
        if replies:
            reply = replies[min(n, len(replies) - 1)]
        elif path.startswith("/t/p/"):
            reply = Reply(body=self.default_image)
        else:
            reply = Reply(404, b"not found", content_type="text/plain")
        self._send(h, reply)

    def _api(self, h, path, query) -> None:
        auth = h.headers.get("Authorization", "")
        if query.get("api_key", [""])[0] != self.key and auth != f"Bearer {self.key}":
            return self._json(h, 401, {"status_code": 7, "status_message": "Invalid API key"})
        if path in self.routes:  # scripted API replies (e.g. 500 then 200)
            replies = self.routes[path]
            reply = replies[min(self.hits[path] - 1, len(replies) - 1)]
            if reply.status != 200:
                return self._send(h, reply)
        if path.startswith("/3/movie/"):
            tmdb_id = int(path.rsplit("/", 1)[1])
            if tmdb_id not in self.movies:
                return self._json(h, 404, {"status_code": 34, "status_message": "not found"})
            return self._json(h, 200, {"id": tmdb_id, "poster_path": self.movies[tmdb_id]})
        if path == "/3/search/movie":
            q, year = query.get("query", [""])[0], query.get("year", [""])[0]
            if (q, year) in self.search:
                results = self.search[(q, year)]
            else:
                results = [{"id": 1, "title": q, "poster_path": f"/s/{quote(q.replace(' ', '_'))}.jpg"}]
            return self._json(h, 200, {"page": 1, "results": results, "total_results": len(results)})
        return self._json(h, 404, {"status_code": 34})

    def _json(self, h, status: int, obj) -> None:
        self._send(h, Reply(status, json.dumps(obj).encode(), content_type="application/json"))

    def _send(self, h, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        h.send_response(reply.status)
        h.send_header("Content-Type", reply.content_type)
        h.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        if reply.trickle > 0:
            for i in range(0, len(reply.body), 64):
                h.wfile.write(reply.body[i:i + 64])
                h.wfile.flush()
                time.sleep(reply.trickle)
            return
        h.wfile.write(reply.body)
