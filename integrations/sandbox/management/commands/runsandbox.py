"""Serve the HubSpot, Salesforce and OpenAI emulators on their own port."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.sandbox.server import make_server
from integrations.sandbox.switch import require_enabled


class Command(BaseCommand):
    help = "Serve the sandbox CRMs and model on SANDBOX_URL's port (default 127.0.0.1:8100)."

    def add_arguments(self, parser) -> None:
        default = urlsplit(settings.SANDBOX_URL)
        parser.add_argument("--host", default=default.hostname or "127.0.0.1")
        parser.add_argument("--port", type=int, default=default.port or 8100)

    def handle(self, *args, host: str, port: int, **options) -> None:
        require_enabled("to serve the emulated CRMs and model")
        server = make_server(host, port)
        self.stdout.write(f"Sandbox CRMs and model at http://{host}:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
