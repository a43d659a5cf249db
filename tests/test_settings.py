"""config/settings.py fails at start, naming the variable, on any malformed value."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent

BASE_ENV = {"SECRET_KEY": "test-only", "DJANGO_SETTINGS_MODULE": "config.settings"}


def _start(**overrides: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with exactly these variables."""
    env = {key: value for key, value in os.environ.items() if key not in _OURS}
    env.update(BASE_ENV)
    env.update(overrides)
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


_OURS = {
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "LOG_LEVEL",
    "ALLOWED_HOSTS",
    "CELERY_TASK_TIME_LIMIT",
    "CELERY_TASK_SOFT_TIME_LIMIT",
    "DB_CONN_MAX_AGE",
    "SANDBOX_ENABLED",
    "STATIC_ROOT",
}


def test_defaults_are_sqlite_and_eager_tasks():
    result = _start()

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True"]


def test_database_url_selects_postgresql_and_redis_url_selects_a_broker():
    result = _start(
        DATABASE_URL="postgres://u@127.0.0.1:5432/db", REDIS_URL="redis://127.0.0.1:6379/0"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "False"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DATABASE_URL", "postgres//localhost/db", "DATABASE_URL is not a valid URL"),
        ("DATABASE_URL", "mysql://localhost/db", "DATABASE_URL is not a valid URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL is not a valid URL"),
        ("DB_CONN_MAX_AGE", "ten", "DB_CONN_MAX_AGE='ten' is not an integer"),
        ("CELERY_TASK_TIME_LIMIT", "-5", "CELERY_TASK_TIME_LIMIT='-5' must be at least 1"),
        ("CELERY_TASK_TIME_LIMIT", "100", "CELERY_TASK_TIME_LIMIT must be greater than"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is not one of"),
        ("SANDBOX_ENABLED", "perhaps", "SANDBOX_ENABLED='perhaps' is not a boolean"),
    ],
)
def test_a_malformed_value_stops_the_start_naming_the_variable(variable, value, message):
    result = _start(**{variable: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_secret_key_is_required_when_debug_is_off():
    result = _start(SECRET_KEY="")

    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_mode_runs_without_a_secret_key():
    result = _start(SECRET_KEY="", DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_sqlite_is_tuned_for_several_processes():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("this run uses PostgreSQL")
    options = settings.DATABASES["default"]["OPTIONS"]

    assert "journal_mode=WAL" in options["init_command"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5


def test_celery_acknowledges_late_and_prefetches_one():
    from config.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit
    assert "config.ping" in app.tasks
