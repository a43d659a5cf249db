"""Owed work: the rules every worker and the reconciler share (DESIGN.md invariant 9).

Work the product owes (a run to do, an approved change to write) is a state in the
database, recorded in the transaction that accepted it; a broker message only says "look
now". So sending one never fails a request: a broker that is down is logged and the
reconciler (crm_agents/reconcile.py) sends it later. A worker holds a claim for a lease;
after a transient CRM or model failure the item waits with a growing back-off, and after
CRM_OUTAGE_LIMIT_SECONDS of failures in a row it fails with its reason.
"""

import logging
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


def lease_expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.WORK_LEASE_SECONDS)


def lease_cutoff(now: datetime | None = None) -> datetime:
    """Claims taken before this have outlived their lease: their worker is gone."""
    return (now or timezone.now()) - timedelta(seconds=settings.WORK_LEASE_SECONDS)


def requeue_cutoff(now: datetime | None = None) -> datetime:
    """Owed work due before this, and still not done, has lost its message."""
    return (now or timezone.now()) - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)


def backoff(waiting_since: datetime | None, hint: float | None, now: datetime) -> float:
    """Seconds to wait before the next try: the CRM's Retry-After when it gave one,
    otherwise as long as the failures have lasted (so the wait doubles), between
    RETRY_BASE_SECONDS and RETRY_MAX_DELAY_SECONDS."""
    if hint is not None:
        return min(max(float(hint), 0.0), float(settings.RETRY_MAX_DELAY_SECONDS))
    failing_for = (now - waiting_since).total_seconds() if waiting_since else 0.0
    return float(
        min(max(failing_for, settings.RETRY_BASE_SECONDS), settings.RETRY_MAX_DELAY_SECONDS)
    )


def outage_over(waiting_since: datetime | None, now: datetime) -> bool:
    """True when failures in a row have lasted longer than CRM Steward keeps trying."""
    limit = timedelta(seconds=settings.CRM_OUTAGE_LIMIT_SECONDS)
    return waiting_since is not None and now - waiting_since >= limit


def waiting_reason(what: str, cause: object, due: datetime) -> str:
    return f"waiting for {what} ({cause}): next try at {due:%Y-%m-%d %H:%M:%S} UTC"


def gave_up_reason(what: str, cause: object, waiting_since: datetime) -> str:
    return (
        f"gave up: {what} kept failing since {waiting_since:%Y-%m-%d %H:%M} UTC "
        f"(the limit is {outage_limit()}); last error: {cause}"
    )


def outage_limit() -> str:
    """CRM_OUTAGE_LIMIT_SECONDS as a person reads it: ``24 h``, ``1.5 h``, ``10 min``, ``45 s``."""
    seconds = settings.CRM_OUTAGE_LIMIT_SECONDS
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def send(task, *args: object, countdown: float | None = None) -> bool:
    """Send ``task`` now; False (logged) when the broker cannot take it. The work is in the
    database already, so the reconciler will send it again."""
    try:
        if countdown is None:
            task.delay(*args)
        else:
            task.apply_async(args=args, countdown=countdown)
    except Exception as exc:  # kombu's OperationalError, redis and socket errors alike
        if current_app.conf.task_always_eager:
            raise  # in-process, the error is the task's own: the caller must see it
        logger.warning(
            "could not send %s%r to the broker (%s); the reconciler will send it",
            getattr(task, "name", task),
            args,
            exc,
        )
        return False
    return True


def send_on_commit(task, *args: object) -> None:
    """Send ``task`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(task, *args))
