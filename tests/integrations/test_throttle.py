"""Per-CRM-account rate limits (integrations/throttle.py) and the retry delay for tasks.

The window property is checked on real timestamps: in every window of the limit's length,
counted from each grant, no more grants than the limit allows.
"""

import multiprocessing
import os
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest

from integrations import throttle
from integrations.connections import Purpose, resolve_connection
from integrations.crm import errors
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import ConnectionScope, CrmCall
from integrations.sandbox.models import SandboxRequest
from integrations.throttle import Limit, acquire, retry_delay

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# A grant is stamped when acquire returns, a little after Redis or the lock decided it.
STAMP_TOLERANCE = 0.03


def _grants_over_limit(stamps: list[float], limit: Limit) -> list[tuple[float, int]]:
    stamps = sorted(stamps)
    over = []
    for i, start in enumerate(stamps):
        inside = sum(1 for s in stamps[i:] if s < start + limit.seconds - STAMP_TOLERANCE)
        if inside > limit.requests:
            over.append((start, inside))
    return over


def _take(key: str, limit: Limit, count: int) -> list[float]:
    stamps = []
    for _ in range(count):
        acquire(key, limit, timeout=30)
        stamps.append(time.time())
    return stamps


def _take_in_threads(key: str, limit: Limit, threads: int, each: int) -> list[float]:
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = _take(key, limit, each)
        with lock:
            stamps.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return stamps


def _take_in_child(key: str, limit: Limit, count: int, results) -> None:
    results.put(_take(key, limit, count))


@pytest.fixture
def local_windows(settings, monkeypatch):
    settings.REDIS_URL = None
    monkeypatch.setattr(throttle, "_local", throttle.LocalWindows())


@pytest.fixture
def redis_windows(settings):
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 6379), timeout=2).close()
    except OSError:
        pytest.skip(f"Redis is unreachable at {REDIS_URL} (set TEST_REDIS_URL to point elsewhere)")
    settings.REDIS_URL = REDIS_URL


def _key(name: str) -> str:
    return f"test-{uuid.uuid4().hex}:{name}"


# In-process ---------------------------------------------------------------------------------
def test_it_keeps_every_window_under_the_limit_across_threads(local_windows):
    limit = Limit(4, 0.3)

    started = time.monotonic()
    stamps = _take_in_threads(_key("portal"), limit, threads=4, each=4)

    assert len(stamps) == 16
    assert _grants_over_limit(stamps, limit) == []
    # 16 grants at 4 per 0.3 s: three full windows must pass.
    assert time.monotonic() - started >= 0.9 - STAMP_TOLERANCE


def test_it_sleeps_for_a_slot_within_the_timeout(local_windows):
    key, limit = _key("portal"), Limit(1, 0.2)
    acquire(key, limit, timeout=1)

    started = time.monotonic()
    acquire(key, limit, timeout=1)

    assert 0.18 <= time.monotonic() - started < 0.5


def test_it_raises_rate_limited_when_the_wait_exceeds_the_timeout(local_windows):
    key, limit = _key("portal"), Limit(2, 5)
    acquire(key, limit, timeout=0)
    acquire(key, limit, timeout=0)

    started = time.monotonic()
    with pytest.raises(errors.RateLimited) as caught:
        acquire(key, limit, timeout=1)

    assert time.monotonic() - started < 0.1, "it must not sleep when it cannot succeed"
    assert 4.5 < caught.value.retry_after <= 5
    assert "own rate limit" in caught.value.message
    assert "(2 per 5 s)" in caught.value.message


def test_it_keeps_accounts_apart_in_process(local_windows):
    limit = Limit(1, 5)
    acquire(_key("portal-1"), limit, timeout=0)

    acquire(_key("portal-2"), limit, timeout=0)  # does not raise


def test_a_limit_of_zero_switches_it_off(local_windows):
    for _ in range(50):
        acquire(_key("portal"), Limit(0, 10), timeout=0)


# Redis ----------------------------------------------------------------------------------------
@pytest.mark.redis
def test_it_keeps_every_window_under_the_limit_across_processes(redis_windows):
    key, limit = _key("portal"), Limit(5, 0.5)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [
        context.Process(target=_take_in_child, args=(key, limit, 10, results)) for _ in range(2)
    ]

    for child in children:
        child.start()
    stamps = [stamp for _ in children for stamp in results.get(timeout=30)]
    for child in children:
        child.join(timeout=10)

    assert [child.exitcode for child in children] == [0, 0]
    assert len(stamps) == 20
    assert _grants_over_limit(stamps, limit) == []
    assert max(stamps) - min(stamps) >= 1.5 - STAMP_TOLERANCE  # 20 grants: 4 windows


@pytest.mark.redis
def test_it_keeps_every_window_under_the_limit_across_threads_in_redis(redis_windows):
    limit = Limit(4, 0.3)

    stamps = _take_in_threads(_key("portal"), limit, threads=4, each=4)

    assert len(stamps) == 16
    assert _grants_over_limit(stamps, limit) == []


@pytest.mark.redis
def test_it_keeps_accounts_apart_in_redis(redis_windows):
    prefix, limit = _key(""), Limit(2, 10)
    for _ in range(2):
        acquire(f"{prefix}portal-1", limit, timeout=0)

    for _ in range(2):
        acquire(f"{prefix}portal-2", limit, timeout=0)  # a window of its own
    with pytest.raises(errors.RateLimited) as caught:
        acquire(f"{prefix}portal-1", limit, timeout=0)

    assert 9 < caught.value.retry_after <= 10


def test_an_unreachable_redis_fails_loudly(settings):
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"

    with pytest.raises(errors.Transient) as caught:
        acquire(_key("portal"), Limit(5, 1), timeout=1)

    assert "cannot reach Redis at REDIS_URL (redis://:***@127.0.0.1:1/0)" in caught.value.message
    assert "hunter2" not in caught.value.message


# Retry delay ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "attempt", "delay"),
    [
        (errors.RateLimited("slow down", retry_after=7.5), 0, 7.5),
        (errors.RateLimited("slow down", retry_after=7.5), 4, 7.5),
        (errors.RateLimited("slow down"), 0, 2),
        (errors.RateLimited("slow down"), 3, 16),
        (errors.Transient("502"), 0, 2),
        (errors.Transient("502"), 1, 4),
        (errors.Transient("502"), 2, 8),
        (errors.Transient("502"), 7, 256),
        (errors.Transient("502"), 8, 300),
        (errors.Transient("502"), 30, 300),
        (errors.ValidationFailed("bad value"), 0, None),
        (errors.PermissionDenied("no scope"), 0, None),
        (errors.NotFound("gone"), 0, None),
        (errors.Conflict("changed"), 0, None),
        (errors.AuthExpired("revoked"), 0, None),
        (errors.CrmError("unknown"), 0, None),
        (ValueError("a bug"), 0, None),
    ],
)
def test_retry_delay(exc, attempt, delay):
    assert retry_delay(exc, attempt) == delay


# Through a real connection ---------------------------------------------------------------
def _searches(crm_setup, workspace, ws_admin, count: int) -> float:
    crm_setup.connect(workspace, ConnectionScope.WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    crm = resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW).client()
    started = time.monotonic()
    for _ in range(count):
        crm.search(SearchQuery(ObjectType.DEAL))
    return time.monotonic() - started


def test_it_spaces_a_connections_calls(crm_setup, crm_settings, workspace, ws_admin, local_windows):
    crm_settings.CRM_HUBSPOT_SEARCH_PER_SECOND = 2
    crm_settings.CRM_SALESFORCE_PER_SECOND = 2
    # The sandbox HubSpot would answer the third search in a second with 429.
    crm_setup.account.search_per_second = 2
    crm_setup.account.save(update_fields=["search_per_second"])

    elapsed = _searches(crm_setup, workspace, ws_admin, 3)

    assert 1 <= elapsed < 2.5
    assert list(CrmCall.objects.values_list("outcome", flat=True)) == ["ok"] * 3
    assert not SandboxRequest.objects.filter(status=429).exists()


@pytest.mark.parametrize("crm_setup", ["hubspot"], indirect=True)
def test_without_the_limit_the_sandbox_answers_429(
    crm_setup, crm_settings, workspace, ws_admin, local_windows
):
    crm_settings.CRM_HUBSPOT_SEARCH_PER_SECOND = 0
    crm_setup.account.search_per_second = 2
    crm_setup.account.save(update_fields=["search_per_second"])

    with pytest.raises(errors.RateLimited):
        _searches(crm_setup, workspace, ws_admin, 3)

    assert SandboxRequest.objects.filter(status=429).exists()
