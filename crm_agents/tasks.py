"""Celery tasks: thin, idempotent, ids only.

process_call -> one run_workflow per matching workflow -> apply_change_set for what the
policy lets through without review (and later, for what reviewers approve). Each task
re-fetches its rows and re-checks their status, so a duplicate delivery does nothing. The
work itself is owed in the database, not in the message (governance/owed.py): a task that
meets a transient CRM or model error leaves its item waiting with a back-off and retries
itself up to TASK_MAX_RETRIES times; after that, and whenever a message is lost, the
reconciler (crm_agents/reconcile.py, run by beat) sends the work again.
"""

import time

from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings

from crm_agents import pipeline, services
from crm_agents import reconcile as reconciler
from crm_agents.models import Call
from governance import apply, owed

# Eager tasks (no Redis: the demo, scenarios) retry in the calling process; they wait at
# most this long between attempts so a Retry-After of minutes does not freeze a command.
EAGER_RETRY_WAIT_CAP = 2.0


@shared_task(name="crm_agents.process_call", ignore_result=True)
def process_call(call_id: int) -> None:
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        return
    for run in services.do_create_runs(call):
        owed.send(run_workflow, run.pk)


@shared_task(bind=True, name="crm_agents.run_workflow", ignore_result=True, max_retries=None)
def run_workflow(self, run_id: int) -> Retry | None:
    try:
        pipeline.execute_run(run_id, owner=self.request.id or "")
    except pipeline.RetryLater as exc:
        if exc.gave_up:
            return None
        return _retry(self, exc.cause, exc.delay)
    return None


@shared_task(bind=True, name="crm_agents.apply_change_set", ignore_result=True, max_retries=None)
def apply_change_set(self, change_set_id: int) -> Retry | None:
    try:
        apply.apply_change_set(change_set_id, owner=self.request.id or "")
    except apply.ApplyLater as exc:
        return _retry(self, exc.cause, exc.delay)
    return None


@shared_task(name="crm_agents.reconcile", ignore_result=True)
def reconcile() -> None:
    reconciler.reconcile()


def _retry(task, cause: Exception, delay: float | None) -> Retry | None:
    """Retry within the task's budget; past it the item stays owed in the database (due
    at its back-off) and the reconciler sends it again."""
    if task.request.retries >= settings.TASK_MAX_RETRIES:
        return None
    countdown = min(delay if delay is not None else 0.0, settings.RETRY_TASK_COUNTDOWN_CAP)
    if task.request.is_eager:
        # An eager task that returns its Retry is run again at once by Celery's apply();
        # honour the wait first (capped), since nothing else will.
        time.sleep(min(countdown, EAGER_RETRY_WAIT_CAP))
        return task.retry(countdown=countdown, exc=cause, throw=False)
    try:
        raise task.retry(countdown=countdown, exc=cause)
    except Retry:
        raise
    except Exception:
        # The broker could not take the retry: the item is owed in the database and the
        # reconciler sends it again; the task itself ends here.
        return None
