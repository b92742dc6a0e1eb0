"""The local web page: Python's `http.server`, bound to 127.0.0.1, one user.

Why the standard library and not a web framework: the page is one user on one machine
asking for one event at a time, over six fixed routes; a threaded `http.server` does
that with no new dependency and nothing to configure. The only asset not written here is
plotly.js, served from the ``plotly`` Python package (no CDN, no internet).

Routes (nothing else answers; no request can name a file):

    GET  /                  the page
    GET  /static/<name>     app.js, style.css, plotly.min.js (a fixed list)
    GET  /api/state         counts, classes, model, where to start (resume)
    GET  /api/item/<slot>   the event at a place in the queue: views, points, probabilities
    POST /api/label         {"slot": n, "label": "proton"}: save, answer the next place

Events are named only by their place in the queue the session built from the files given
on the command line, so the page cannot read any other file. A bad event or request
answers ``{"error": "..."}`` (shown on the page) and prints the same line in the terminal.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from attpc_classify.label.session import Session
from data_prep.errors import InputError

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _plotly_js() -> Path:
    path = Path(str(resources.files("plotly"))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise InputError("the plotly package lacks package_data/plotly.min.js", path=path)
    return path


def static_files() -> dict[str, Path]:
    """Every static file the page may load: name -> path (a fixed list)."""
    here = Path(str(resources.files("attpc_classify.label"))) / "static"
    return {
        "index.html": here / "index.html",
        "app.js": here / "app.js",
        "style.css": here / "style.css",
        "plotly.min.js": _plotly_js(),
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_server(session: Session, port: int = 0, *, log=None) -> ThreadingHTTPServer:
    """An HTTP server for ``session`` on 127.0.0.1:``port`` (0: a free one), not started.

    ``log`` is called with each error line (default: print to stderr).
    """
    files = static_files()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))

    class Handler(BaseHTTPRequestHandler):
        server_version = "attpc-label"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: errors only
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: dict, status: int = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _error(self, message: str, status: int) -> None:
            say(f"error: {message}")
            self._json({"error": message}, status)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/":
                    name = "index.html"
                elif path.startswith("/static/"):
                    name = path[len("/static/") :]
                elif path == "/favicon.ico":  # browsers ask unprompted: no error line
                    return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
                elif path == "/api/state":
                    return self._json(session.state())
                elif path.startswith("/api/item/"):
                    slot = _int(path[len("/api/item/") :])
                    return self._json(session.item(slot))
                else:
                    return self._error(f"no such page: {path}", HTTPStatus.NOT_FOUND)
                if name not in files:  # a fixed list: no path is ever joined
                    return self._error(f"refused: {path}", HTTPStatus.FORBIDDEN)
                body = files[name].read_bytes()
                self._send(HTTPStatus.OK, body, _TYPES[Path(name).suffix] + "; charset=utf-8")
            except InputError as err:
                self._error(str(err), HTTPStatus.BAD_REQUEST)

        def do_POST(self) -> None:
            if self.path != "/api/label":
                return self._error(f"no such action: {self.path}", HTTPStatus.NOT_FOUND)
            try:
                size = int(self.headers.get("Content-Length", "0"))
                if not 0 < size < 10_000:
                    raise InputError("label request must be a small JSON object")
                try:
                    body = json.loads(self.rfile.read(size))
                    slot, label = _int(body["slot"]), str(body["label"])
                except (ValueError, KeyError, TypeError):
                    raise InputError('label request must be {"slot": n, "label": name}') from None
                self._json(session.label(slot, label))
            except InputError as err:
                self._error(str(err), HTTPStatus.BAD_REQUEST)
            except OSError as err:  # the labels file could not be written
                self._error(f"{session.store.path}: cannot save labels: {err}", 500)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def _int(text: object) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise InputError(f"not a place in the queue: {text!r}") from None


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="label-server", daemon=True)
    thread.start()
    return thread


def url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
