"""A static file server on 127.0.0.1 for the demo, the benchmarks and the tests.

Python's stock server has a listen backlog of 5, which times out under img2dataset's
many threads; this one queues 1024 connections and answers each on its own thread.
"""

from __future__ import annotations

import mimetypes
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """[start, end) for a `Range: bytes=a-b` header (whole file when absent)."""
    if not header or not header.startswith("bytes="):
        return 0, size
    first, _, last = header[6:].split(",")[0].partition("-")
    if first == "":
        return max(0, size - int(last)), size
    return min(int(first), size), min(size, int(last) + 1) if last else size


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


def copy_to_folder(files, folder: Path) -> Path:
    """`folder` (made) holding a copy of each file under its own name: a web root for
    LoopbackServer out of files that live in several places (the benches' photos)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / Path(f).name)
    return folder


class LoopbackServer:
    """Serves files under `root`; `routes` maps a path to a handler(request) for special responses."""

    def __init__(self, root: str | Path | None = None, routes: dict[str, Callable] | None = None):
        self.root = Path(root) if root else None
        self.routes = routes or {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                if path in outer.routes:
                    outer.routes[path](self)
                    return
                f = (outer.root / path.lstrip("/")).resolve() if outer.root else None
                if f is None or outer.root.resolve() not in f.parents or not f.is_file():
                    self.send_error(404)
                    return
                data = f.read_bytes()
                start, end = _byte_range(self.headers.get("Range"), len(data))
                # Range requests: video readers (FFmpeg) seek in files served over HTTP.
                self.send_response(206 if self.headers.get("Range") else 200)
                self.send_header("Content-Type", mimetypes.guess_type(f.name)[0] or "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                if self.headers.get("Range"):
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.send_header("Content-Length", str(end - start))
                self.end_headers()
                self.wfile.write(data[start:end])

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
