"""What every benchmark starts with: Django on a fresh database (SQLite in a temporary
folder unless DATABASE_URL names another), migrated, and the sandbox served from its own
process, as `runsandbox` serves it in production-like setups."""

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(prefix: str, *, eager: bool = False, quiet_http: bool = False) -> str:
    """Set Django up and migrate; the database URL. ``eager`` runs Celery tasks in this
    process (the figures are then the work's own, not a broker's); ``quiet_http`` drops the
    HTTP client's line per request, which would bury the figures."""
    workdir = tempfile.mkdtemp(prefix=f"{prefix}-")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if eager:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    if quiet_http:
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database_url


@contextlib.contextmanager
def served_sandbox(database_url: str) -> Iterator[str]:
    """The sandbox answering on a free loopback port while the block runs; its base URL."""
    import requests

    from integrations.sandbox.server import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runsandbox", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                requests.get(base + "/services/data/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
