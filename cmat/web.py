"""Serving a WSGI app on this machine (the dashboard, the metrics endpoint): the standard
library's wsgiref, one thread a connection (so a client that connects and sends nothing stalls
no one), a real listen backlog, quiet logs, and only local pages answered.

A page on any web site the user visits can make the browser send requests to 127.0.0.1, and
with DNS rebinding (a name of the attacker's that resolves to 127.0.0.1) read the answers:
every project path and what it cost. So a request is answered only when its `Host` header is
a loopback name or the `--host` the server was started with (docs/security.md).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

IDLE_TIMEOUT_SECONDS = 10.0  # a connection that sends nothing is closed after this
LISTEN_BACKLOG = 1024  # connections the kernel queues while every thread is busy
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request, client_address) -> None:
        """A client that went away or sent nothing before the time-out is no error worth a
        traceback on the user's terminal; anything else is."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (TimeoutError, ConnectionError)) or (
                isinstance(error, OSError) and error.errno in (errno.EPIPE, errno.ECONNRESET)):
            return
        super().handle_error(request, client_address)


class QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_SECONDS

    def log_message(self, *args) -> None:
        pass  # a page polling every few seconds would flood the terminal


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8080` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def local_only(app: Callable, host: str) -> Callable:
    """`app`, answering only requests addressed to this machine by name (see the module
    docstring); anything else gets 421 and not a byte of the app's answer."""
    allowed = {*LOOPBACK_NAMES, host_name(host)}

    def guarded(environ, start_response):
        if host_name(environ.get("HTTP_HOST") or "") not in allowed:
            body = b'{"error": "this server answers only requests to this machine by name"}'
            start_response("421 Misdirected Request", [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return guarded


def serve(app: Callable, host: str, port: int, announce: Callable[[int], str],
          ready: Callable[[str], None] | None = None) -> None:
    """Serve `app` until interrupted; print `announce(port)` once listening (port 0 picks a
    free one), and hand the URL to `ready` (to open a browser, say). A port in use is a
    UsageError that says so."""
    from cmat.errors import UsageError

    try:
        server = make_server(host, port, local_only(app, host), ThreadingWSGIServer,
                             handler_class=QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use",
                             "pick another with --port, or --port 0 for any free one") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with server:
        print(announce(server.server_port), flush=True)
        if ready is not None:
            ready(f"http://{host}:{server.server_port}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
