"""The Celery application.

Configuration comes from Django settings (the ``CELERY_`` names in config/settings.py):
Redis when ``REDIS_URL`` is set, otherwise eager in-process execution.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("crm_steward")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping", ignore_result=False)
def ping() -> dict[str, str]:
    """Round trip used by health checks and the worker smoke test."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"pong": "ok", "database": connection.vendor}
