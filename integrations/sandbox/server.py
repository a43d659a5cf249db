"""Serving the sandbox on a port of its own.

The sandbox runs in a separate server (``manage.py runsandbox``) so that a CRM call made
while the web app serves a request never waits on the same worker. It shares the
project's settings and database but resolves URLs with integrations/sandbox/urls.py.
"""

import socket
import threading

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from django.http import HttpResponse

from integrations.sandbox.gateway import DROP_CONNECTION

SANDBOX_URLCONF = "integrations.sandbox.urls"
# Set while a handler thread answers a request whose connection the gateway drops.
_connection = threading.local()


class SandboxHandler(WSGIHandler):
    """Serves the emulators without the product's middleware.

    A CRM API has no sessions, CSRF or allowed-hosts list of ours; leaving the middleware
    out also keeps the emulators' latency their own.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response)

    def get_response(self, request: WSGIRequest) -> HttpResponse:
        request.urlconf = SANDBOX_URLCONF
        response = super().get_response(request)
        _connection.drop = bool(request.META.get(DROP_CONNECTION))
        return response


class SandboxRequestHandler(WSGIRequestHandler):
    def handle_one_request(self) -> None:
        _connection.drop = False
        super().handle_one_request()
        if _connection.drop:
            # The response promised more bytes than it sent; closing now is what makes the
            # client see a broken connection instead of waiting for the rest.
            self.close_connection = True


class QuietRequestHandler(SandboxRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # every request is in SandboxRequest already


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def make_server(
    host: str, port: int, *, quiet: bool = False, connections_override: dict | None = None
) -> ThreadedWSGIServer:
    handler = QuietRequestHandler if quiet else SandboxRequestHandler
    server = ThreadedWSGIServer(
        (host, port), handler, allow_reuse_address=True, connections_override=connections_override
    )
    server.set_app(SandboxHandler())
    return server


class SandboxServerThread(threading.Thread):
    """A sandbox server in a background thread (tests, scenario runs, benchmarks)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(daemon=True)
        self.host = host
        self.port = port or free_port(host)
        # An in-memory SQLite database (the test database) exists once per connection, so
        # the server's threads must share this thread's connection, as Django's own live
        # server does.
        self.shared = {
            conn.alias: conn
            for conn in connections.all()
            if conn.vendor == "sqlite" and conn.is_in_memory_db()
        }
        for conn in self.shared.values():
            conn.inc_thread_sharing()
        self.server = make_server(
            self.host, self.port, quiet=True, connections_override=self.shared
        )
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.join(timeout=10)
        for conn in self.shared.values():
            conn.dec_thread_sharing()
