"""Failed authentication is throttled per client: per IP address, and per presented key or
token prefix (so guesses at one credential from many addresses are counted together).

A counter per window lives in Django's cache. Once a client reaches the limit
(``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth_failure"]``, e.g. ``"10/min"``), every
request it makes with credentials gets 429 with ``Retry-After`` until the window ends —
right ones too, or a guesser would learn which guess was right.

With ``REDIS_URL`` set the cache is Redis, shared by every web process. If it cannot be
reached, requests are let through (and logged) rather than the whole API refused.
"""

import logging
import time

from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

log = logging.getLogger(__name__)

RATE_NAME = "auth_failure"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _rate() -> tuple[int, int]:
    """(failures allowed, window seconds) from settings."""
    count, period = api_settings.DEFAULT_THROTTLE_RATES[RATE_NAME].split("/")
    return int(count), _PERIODS[period.strip()[0]]


class AuthFailureThrottle:
    """The failure counters of one request: its client address and, if given, a prefix."""

    def __init__(self, request: Request, prefix: str = "") -> None:
        self.limit, self.period = _rate()
        window = int(time.time() // self.period)
        ident = BaseThrottle().get_ident(request) or "unknown"
        self.keys = [f"api-auth-failures:ip:{ident}:{window}"]
        if prefix:
            self.keys.append(f"api-auth-failures:prefix:{prefix}:{window}")

    def check(self) -> None:
        """Raise Throttled (429) if this client already failed too often in this window."""
        try:
            counts = cache.get_many(self.keys)
        except RedisError as exc:
            log.warning("failed authentications not checked: the cache is unreachable (%s)", exc)
            return
        if any(count >= self.limit for count in counts.values()):
            wait = self.period - int(time.time()) % self.period
            raise Throttled(
                wait=wait,
                detail="Too many failed authentication attempts from this client.",
            )

    def record(self) -> None:
        try:
            for key in self.keys:
                cache.add(key, 0, timeout=self.period)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, timeout=self.period)
        except RedisError as exc:
            log.warning("a failed authentication not counted: the cache is unreachable (%s)", exc)
