"""An agency's host for tests that make the provider call out: a real HTTP server on a free
loopback port, in a thread, answering with the handler a test gives it."""

from __future__ import annotations

import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that writes no access lines to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class LocalServer:
    """``handler`` served on 127.0.0.1 until ``close``; ``url`` is ``path`` on it."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], path: str) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
