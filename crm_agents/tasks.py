"""Celery tasks: thin, idempotent, ids only.

process_call -> one run_workflow per matching workflow -> apply_change_set for what the
policy lets through without review (and later, for what reviewers approve). Each task
re-fetches its rows and re-checks their status, so a duplicate delivery does nothing, and
retries transient CRM or model errors with a back-off that honours Retry-After.
"""

import time

from celery import shared_task
from celery.exceptions import Retry

from crm_agents import pipeline, services
from crm_agents.models import Call
from governance import apply

MAX_RETRIES = 6
# Eager tasks (no Redis: the demo, scenarios) retry in the calling process; they wait at
# most this long between attempts so a Retry-After of minutes does not freeze a command.
EAGER_RETRY_WAIT_CAP = 2.0


@shared_task(name="crm_agents.process_call", ignore_result=True)
def process_call(call_id: int) -> None:
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        return
    for run in services.do_create_runs(call):
        run_workflow.delay(run.pk)


@shared_task(bind=True, name="crm_agents.run_workflow", ignore_result=True, max_retries=MAX_RETRIES)
def run_workflow(self, run_id: int) -> Retry | None:
    try:
        pipeline.execute_run(run_id)
    except pipeline.RetryLater as exc:
        return _retry(self, exc.cause, _countdown(exc.delay, self.request.retries))


@shared_task(
    bind=True, name="crm_agents.apply_change_set", ignore_result=True, max_retries=MAX_RETRIES
)
def apply_change_set(self, change_set_id: int) -> Retry | None:
    try:
        apply.apply_change_set(change_set_id)
    except apply.ApplyLater as exc:
        from integrations.throttle import retry_delay

        delay = retry_delay(exc.cause, self.request.retries)
        return _retry(self, exc.cause, _countdown(delay, self.request.retries))


def _retry(task, cause: Exception, countdown: float) -> Retry:
    if task.request.is_eager:
        # An eager task that returns its Retry is run again at once by Celery's apply();
        # honour the wait first (capped), since nothing else will.
        time.sleep(min(countdown, EAGER_RETRY_WAIT_CAP))
        return task.retry(countdown=countdown, exc=cause, throw=False)
    raise task.retry(countdown=countdown, exc=cause)


def _countdown(delay: float | None, retries: int) -> float:
    return delay if delay is not None else min(300.0, 2.0 ** (retries + 1))
