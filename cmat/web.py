"""Serving a WSGI app on this machine: the standard library's wsgiref, one thread a
connection (so a client that connects and sends nothing stalls no one), quiet logs."""

from __future__ import annotations

from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

IDLE_TIMEOUT_SECONDS = 10.0  # a connection that sends nothing is closed after this


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_SECONDS

    def log_message(self, *args) -> None:
        pass  # a page polling every few seconds would flood the terminal


def serve(app: Callable, host: str, port: int, announce: Callable[[int], str],
          ready: Callable[[str], None] | None = None) -> None:
    """Serve `app` until interrupted; print `announce(port)` once listening (port 0 picks a
    free one), and hand the URL to `ready` (to open a browser, say)."""
    with make_server(host, port, app, ThreadingWSGIServer, handler_class=QuietHandler) as server:
        print(announce(server.server_port), flush=True)
        if ready is not None:
            ready(f"http://{host}:{server.server_port}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
