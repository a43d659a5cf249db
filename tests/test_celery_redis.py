"""A real Celery worker takes a task from a real Redis broker and runs it.

Both sides run as separate processes configured only through REDIS_URL, exactly as in
production, so this also proves the settings wiring (REDIS_URL set -> not eager).
"""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A database number of its own, so the test never touches a developer's queues.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = pytest.mark.redis


def _redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def worker_env(tmp_path):
    if not _redis_reachable():
        pytest.skip(f"Redis is unreachable at {REDIS_URL} (set TEST_REDIS_URL to point elsewhere)")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        REDIS_URL=REDIS_URL,
        SECRET_KEY="test-only",
        DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


@pytest.fixture
def worker(worker_env):
    queue = f"test-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
            "-n",
            f"{queue}@%h",
        ],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield queue
    process.terminate()
    output, _ = process.communicate(timeout=30)
    print(output)  # shown by pytest only when the test fails


def test_a_task_sent_through_redis_runs_on_a_worker(worker, worker_env):
    client = (
        "import json, django; django.setup()\n"
        "from config.celery import app, ping\n"
        "assert not app.conf.task_always_eager, 'REDIS_URL must switch off eager mode'\n"
        f"result = ping.apply_async(queue={worker!r})\n"
        "print(json.dumps({'value': result.get(timeout=60), 'state': result.state}))\n"
    )

    sent = subprocess.run(
        [sys.executable, "-c", client],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().splitlines()[-1] == (
        '{"value": {"pong": "ok", "database": "sqlite"}, "state": "SUCCESS"}'
    )


def test_runs_applies_and_the_reconciler_travel_on_queues_of_their_own(worker_env):
    # A backlog of runs never delays an approved change: the apply worker reads its own list.
    client = (
        "import json, os, django; django.setup()\n"
        "import redis\n"
        "from crm_agents import tasks\n"
        "queues = ('runs', 'apply', 'reconcile')\n"
        "broker = redis.Redis.from_url(os.environ['REDIS_URL'])\n"
        "broker.delete(*queues)\n"
        "for _ in range(3):\n"
        "    tasks.run_workflow.delay(0)\n"
        "tasks.apply_change_set.delay(0)\n"
        "tasks.reconcile.delay()\n"
        "print(json.dumps({queue: broker.llen(queue) for queue in queues}))\n"
        "broker.delete(*queues)\n"
    )

    sent = subprocess.run(
        [sys.executable, "-c", client],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().splitlines()[-1] == '{"runs": 3, "apply": 1, "reconcile": 1}'
