"""Per-CRM-account rate limits shared by every worker, and how long a task waits to retry.

HubSpot counts requests per account in a rolling window (100 per 10 s on Free/Starter, and
search 5 per second); Salesforce only has a daily quota, so its per-second limit is our own
smoothing. Each limit is a sliding-window log: a slot is free when fewer than ``requests``
calls started in the last ``seconds``. With REDIS_URL the log is a sorted set updated by one
Lua script, so all workers and web processes share it and use Redis's clock; without Redis
it lives in this process. A caller that would wait longer than its timeout gets
``RateLimited`` instead, so a Celery task can give its worker back and retry later.
"""

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

from governance.models import CrmProvider
from integrations.crm import errors

# The CRM counts a request when it arrives, we count it when it leaves; the slack absorbs
# the difference in network and server delay between the first and the last of a window.
WINDOW_SLACK_SECONDS = 0.1
BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Limit:
    requests: int  # 0: no limit
    seconds: float  # the rolling window

    def __str__(self) -> str:
        return f"{self.requests} per {self.seconds:g} s"


def acquire(key: str, limit: Limit, *, timeout: float) -> None:
    """Take a slot in ``key``'s window, sleeping until one is free.

    Raises RateLimited (with the seconds until the next free slot) when that would take
    longer than ``timeout``, and Transient when REDIS_URL is set but Redis cannot be reached.
    """
    if limit.requests <= 0:
        return
    window = _windows()
    deadline = time.monotonic() + timeout
    while True:
        wait = window.try_take(key, limit)
        if wait <= 0:
            return
        if time.monotonic() + wait > deadline:
            raise errors.RateLimited(
                f"CRM Steward's own rate limit for {key} ({limit}) is used up; "
                f"the next slot frees in {wait:.2f} s.",
                retry_after=wait,
            )
        time.sleep(wait)


def throttle_crm_call(provider: str, crm_account_id: str, operation: str) -> None:
    """Wait for a slot in every limit one call to this CRM account counts against."""
    for kind, limit in crm_limits(provider, operation):
        acquire(
            f"{provider}:{crm_account_id}:{kind}", limit, timeout=settings.CRM_THROTTLE_MAX_WAIT
        )


def crm_limits(provider: str, operation: str) -> list[tuple[str, Limit]]:
    """The (kind, limit) pairs a call takes a slot in, tightest first."""
    slack = WINDOW_SLACK_SECONDS
    if provider == CrmProvider.HUBSPOT:
        limits = [("burst", Limit(settings.CRM_HUBSPOT_BURST, 10 + slack))]
        if operation == "search":
            # Public OAuth apps' searches are outside the burst, private apps' may not be
            # (the sandbox counts them): taking both slots is the safe reading.
            limits.insert(0, ("search", Limit(settings.CRM_HUBSPOT_SEARCH_PER_SECOND, 1 + slack)))
    else:
        limits = [("api", Limit(settings.CRM_SALESFORCE_PER_SECOND, 1 + slack))]
    return [(kind, limit) for kind, limit in limits if limit.requests > 0]


def retry_delay(exc: Exception, attempt: int) -> float | None:
    """Seconds before retrying after ``exc`` on retry number ``attempt`` (0 first), or None.

    The CRM's Retry-After wins; otherwise 2, 4, 8, ... seconds up to 5 minutes. There is no
    jitter: tasks retrying at the same moment against one account are spaced by the limiter.
    """
    if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
        return max(float(exc.retry_after), 0.0)
    if isinstance(exc, errors.RateLimited | errors.Transient):
        return min(BACKOFF_FIRST_SECONDS * 2 ** max(attempt, 0), BACKOFF_MAX_SECONDS)
    return None


class LocalWindows:
    """The sliding-window log in this process, for running without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, deque[float]] = {}

    def try_take(self, key: str, limit: Limit) -> float:
        """0 when a slot was taken, else the seconds until one frees."""
        with self._lock:
            now = time.monotonic()
            started = self._started.setdefault(key, deque())
            while started and started[0] <= now - limit.seconds:
                started.popleft()
            if len(started) < limit.requests:
                started.append(now)
                return 0.0
            return started[len(started) - limit.requests] + limit.seconds - now


# Scores are Redis server time in microseconds, so workers' clocks do not matter.
_TAKE_SLOT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local frees = redis.call('ZRANGE', KEYS[1], used - limit, used - limit, 'WITHSCORES')
return tonumber(frees[2]) + window - now
"""


class RedisWindows:
    """The sliding-window log in Redis, shared by every process using the same server."""

    PREFIX = "crm-steward:throttle:"

    def __init__(self, url: str) -> None:
        import redis

        self._url = url
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._take_slot = self._redis.register_script(_TAKE_SLOT)

    def try_take(self, key: str, limit: Limit) -> float:
        import redis

        try:
            wait_us = self._take_slot(
                keys=[self.PREFIX + key],
                args=[limit.requests, round(limit.seconds * 1_000_000), uuid.uuid4().hex],
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            where = _without_password(self._url)
            raise errors.Transient(
                f"The CRM rate limiter cannot reach Redis at REDIS_URL ({where}): {exc}. "
                "No CRM call is made without it; start Redis or fix REDIS_URL."
            ) from exc
        return int(wait_us) / 1_000_000


_local = LocalWindows()


def _windows() -> LocalWindows | RedisWindows:
    return _redis_windows(settings.REDIS_URL) if settings.REDIS_URL else _local


@lru_cache(maxsize=4)
def _redis_windows(url: str) -> RedisWindows:
    return RedisWindows(url)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
