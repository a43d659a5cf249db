"""The production process set: the Procfile's web line (gunicorn) serves the app and its
static files (whitenoise) with the sandbox switched off, and its workers consume every queue.

The site runs in real processes on a SQLite file of its own, configured only through the
environment, as an operator would run it.
"""

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "a-long-test-password-9"
# Variables a developer's shell may set that would change what these processes do.
_OURS = {"DEBUG", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "SANDBOX_ENABLED", "PORT"}


def _procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def _worker_queues() -> dict[str, set[str]]:
    """Each Celery worker line's process name and the queues it consumes (-Q)."""
    workers = {}
    for name, command in _procfile().items():
        args = shlex.split(command)
        if args[:4] == ["celery", "-A", "config", "worker"]:
            workers[name] = set(args[args.index("-Q") + 1].split(","))
    return workers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(tmp: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _OURS}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="test-only-production-key",
        DATABASE_URL=f"sqlite:///{tmp / 'site.sqlite3'}",
        STATIC_ROOT=str(tmp / "static"),
        ALLOWED_HOSTS="127.0.0.1",
        # Plain HTTP here, so the session cookie must not be HTTPS-only.
        SECURE_COOKIES="false",
    )
    env.update(overrides)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_until_up(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the web process exited:\n{process.communicate()[1]}")
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    pytest.fail(f"the web process did not answer at {url} within 30 s")


@contextlib.contextmanager
def _web(env: dict[str, str], *, workers: int, threads: int) -> Iterator[str]:
    """The Procfile's web line running with ``env``; its base URL."""
    port = _free_port()
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads)}
    process = subprocess.Popen(
        ["/bin/sh", "-c", _procfile()["web"]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the shell, gunicorn and its workers
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, f"{url}/healthz")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    """The Procfile's web process after the deploy steps (migrate, collectstatic), with a
    superuser; its base URL. SANDBOX_ENABLED is left unset: the Procfile decides."""
    tmp = tmp_path_factory.mktemp("site")
    env = _environment(tmp, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    for args in (
        ["migrate", "--no-input"],
        ["collectstatic", "--no-input"],
        ["createsuperuser", "--no-input", "--username", "root", "--email", "root@example.com"],
    ):
        result = _manage(env, *args)
        assert result.returncode == 0, result.stderr
    with _web(env, workers=1, threads=2) as url:
        yield url


@pytest.fixture
def superuser_session(site) -> requests.Session:
    session = requests.Session()
    session.get(f"{site}/admin/login/", timeout=10)
    response = session.post(
        f"{site}/admin/login/",
        data={
            "username": "root",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert "sessionid" in session.cookies
    return session


def test_it_serves_the_health_check_through_gunicorn(site):
    response = requests.get(f"{site}/healthz", timeout=10)

    assert response.status_code == 200
    assert response.headers["Server"].startswith("gunicorn")
    assert response.json()["checks"]["database"] == "ok"


def test_it_serves_collected_static_files_compressed_with_debug_off(site):
    response = requests.get(
        f"{site}/static/admin/css/base.css", headers={"Accept-Encoding": "gzip"}, timeout=10
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Content-Encoding"] == "gzip"
    assert "max-age" in response.headers["Cache-Control"]


def test_it_runs_the_web_process_without_the_sandbox_admin(superuser_session, site):
    index = superuser_session.get(f"{site}/admin/", timeout=10)

    assert index.status_code == 200
    assert "/admin/governance/" in index.text  # the product's own apps are there
    assert "/admin/sandbox/" not in index.text
    assert superuser_session.get(f"{site}/admin/sandbox/", timeout=10).status_code == 404
    page = f"{site}/admin/sandbox/sandboxaccount/"
    assert superuser_session.get(page, timeout=10).status_code == 404


@pytest.mark.parametrize(
    "command",
    [
        ["runsandbox", "--port", "0"],
        ["sandbox_seed", "--keep"],
        ["run_scenario", "tests/scenarios/match-domain-exact.json"],
        ["demo_agent"],
    ],
    ids=lambda command: command[0],
)
def test_nothing_serves_seeds_or_acts_on_the_sandbox_when_it_is_switched_off(tmp_path, command):
    env = _environment(tmp_path, SANDBOX_ENABLED="false")

    result = _manage(env, *command)

    assert result.returncode == 1
    assert "The sandbox is switched off (SANDBOX_ENABLED=false)" in result.stderr


def test_it_warns_when_a_switched_off_sandbox_is_still_the_crm_and_model(tmp_path):
    off = _environment(tmp_path, SANDBOX_ENABLED="false")
    real = dict(
        off,
        HUBSPOT_API_URL="https://api.hubapi.com",
        HUBSPOT_AUTHORIZE_URL="https://app.hubspot.com/oauth/authorize",
        SALESFORCE_LOGIN_URL="https://login.salesforce.com",
        MODEL_BASE_URL="https://api.openai.com/v1",
    )

    warned = _manage(off, "check")
    configured = _manage(real, "check")

    assert warned.returncode == 0, warned.stderr
    assert "sandbox.W001" in warned.stderr
    assert "HUBSPOT_API_URL, HUBSPOT_AUTHORIZE_URL, SALESFORCE_LOGIN_URL" in warned.stderr
    assert configured.returncode == 0, configured.stderr
    assert "sandbox.W001" not in configured.stderr


def test_the_procfile_names_the_production_processes():
    processes = _procfile()

    assert {"release", "web", "runs", "apply", "beat"} <= processes.keys()
    assert "manage.py migrate" in processes["release"]
    assert processes["web"].startswith("SANDBOX_ENABLED=${SANDBOX_ENABLED:-false} gunicorn ")
    assert shlex.split(processes["beat"])[:4] == ["celery", "-A", "config", "beat"]


def test_every_routed_queue_is_consumed_and_apply_never_waits_behind_runs(settings):
    workers = _worker_queues()
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    routed.add(settings.CELERY_TASK_DEFAULT_QUEUE)

    assert routed <= set().union(*workers.values())
    assert "runs" not in workers["apply"]
    assert "apply" not in workers["runs"]


@pytest.mark.parametrize(
    "limits",
    [{}, {"CELERY_TASK_SOFT_TIME_LIMIT": "3000", "CELERY_TASK_TIME_LIMIT": "3600"}],
    ids=["defaults", "raised-limits"],
)
def test_the_broker_redelivers_only_after_the_longest_task_could_have_run(tmp_path, limits):
    # In a fresh interpreter, as a worker reads it: the app's configuration, not settings.
    env = _environment(tmp_path, REDIS_URL="redis://127.0.0.1:6379/15", **limits)
    script = (
        "from config.celery import app; conf = app.conf;"
        " print(conf.broker_transport_options['visibility_timeout'], conf.task_time_limit)"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    visibility_timeout, time_limit = map(int, result.stdout.split())
    assert visibility_timeout > time_limit


def test_failed_authentications_are_counted_in_redis_across_web_processes(tmp_path):
    """With REDIS_URL set every web process counts failures in the one Redis cache, so the
    limit holds whichever gunicorn worker answers."""
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    store = redis.Redis.from_url(redis_url)
    try:
        store.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {redis_url} ({exc}); set TEST_REDIS_URL")
    env = _environment(tmp_path, REDIS_URL=redis_url)
    assert _manage(env, "migrate", "--no-input").returncode == 0
    counters = "crm-steward:*api-auth-failures:*"
    try:
        with _web(env, workers=3, threads=1) as url:
            for key in store.scan_iter(counters):
                store.delete(key)
            statuses = []
            for attempt in range(12):
                response = requests.get(
                    f"{url}/api/v1/calls/",
                    headers={"Authorization": f"Api-Key wrong-key-{attempt}"},
                    timeout=10,
                )
                statuses.append(response.status_code)
            counted = {key.decode(): int(store.get(key)) for key in store.scan_iter(counters)}
    finally:
        for key in store.scan_iter(counters):
            store.delete(key)

    assert statuses == [401] * 10 + [429] * 2
    by_address = [count for key, count in counted.items() if ":ip:" in key]
    assert by_address == [10]


@pytest.mark.parametrize(("behind", "scheme"), [("true", "https"), ("false", "http")])
def test_links_say_https_behind_a_tls_proxy_only_when_told_to_trust_it(tmp_path, behind, scheme):
    env = _environment(tmp_path, BEHIND_TLS_PROXY=behind)
    script = (
        "from django.test import RequestFactory;"
        " request = RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https',"
        " HTTP_HOST='127.0.0.1');"
        " print(request.build_absolute_uri('/api/v1/calls/'))"
    )

    result = _manage(env, "shell", "--no-imports", "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{scheme}://127.0.0.1/api/v1/calls/"
