"""Requests a sandbox account has in flight, for Salesforce's concurrent request limit.

A Salesforce org refuses a request while too many of its long-running requests are still
being answered: 403 ``REQUEST_LIMIT_EXCEEDED`` with ``ConcurrentPerOrgLongTxn Limit
exceeded.``, which clears as soon as one of them ends (unlike the daily ``TotalRequests``
limit). Salesforce counts requests that have run for 20 seconds or more; the sandbox counts
every request in flight, which only matters under injected latency or a burst of parallel
work. The count lives in this process: the sandbox is served by one (threaded) process.
"""

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_counts: Counter[int] = Counter()


class AllTaken(Exception):
    """Every slot of the account is taken."""


@contextmanager
def slot(account_id: int, limit: int) -> Iterator[None]:
    """Hold one of the account's ``limit`` slots (0: no limit) while the body runs; raise
    AllTaken when there is none."""
    with _lock:
        if limit and _counts[account_id] >= limit:
            raise AllTaken
        _counts[account_id] += 1
    try:
        yield
    finally:
        with _lock:
            _counts[account_id] -= 1
            if not _counts[account_id]:
                del _counts[account_id]


def count(account_id: int) -> int:
    with _lock:
        return _counts[account_id]
