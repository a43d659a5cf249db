"""The reconciler: finishes or fails, with a reason, whatever owed work lost its way.

Celery beat runs it every RECONCILE_EVERY_SECONDS (`manage.py reconcile` runs it once, for
the embedded set-up). Work is owed in the database (governance/owed.py), so it can find:

- calls whose runs were never created (stored by an older version, or cut short);
- queued runs whose message was lost (an emptied queue, a broker that was down when they
  were accepted, a retry budget that ran out) or whose back-off is over;
- running runs whose worker died (the lease ran out): sent again, the claim takes over;
- runs left waiting on a question of record that was answered (one that finished after
  the answer, or answered by an older version): continued on the chosen record;
- approved proposals nothing is applying, and applying ones whose worker died (the apply
  step reads the CRM to settle those);
- rollbacks whose process died mid-write; sets and runs whose status was left behind.

Each item is handled with a conditional update, so two reconcilers at once do no harm, and
each is an audit event. Items failing for longer than CRM_OUTAGE_LIMIT_SECONDS fail with
their reason. A message sent twice is harmless: every task claims before it acts.
"""

import logging
from collections import Counter
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import record_event
from crm_agents import services
from crm_agents.models import AgentRun, Call, CallSource, RunStatus
from crm_agents.records import refresh_run_status, refresh_set_status, run_status_for
from governance import owed
from governance.models import Policy
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.errors import CrmError

logger = logging.getLogger(__name__)

# Items looked at per kind and pass, so one pass stays short whatever the backlog.
BATCH = 500


def reconcile(now: datetime | None = None) -> Counter:
    """One pass; what it did, by kind."""
    now = now or timezone.now()
    done: Counter = Counter()
    for step in (
        _calls_without_runs,
        _runs_past_their_lease,
        _runs_waiting_on_an_answer,
        _queued_runs,
        _applies_past_their_lease,
        _approved_proposals,
        _rollbacks_past_their_lease,
        _statuses_left_behind,
    ):
        try:
            step(now, done)
        except Exception:  # one kind failing must not stop the others; logged, not silent
            logger.exception("reconcile: %s failed", step.__name__)
            done["errors"] += 1
    done = +done  # only what happened
    if done:
        logger.info("reconcile: %s", dict(done))
    return done


def _audit(workspace, action: str, reason: str, outcome: str = "ok", **fields) -> None:
    record_event(
        workspace, action=action, outcome=outcome, actor_kind="system", reason=reason, **fields
    )


def _run_labels(run: AgentRun) -> dict[str, str]:
    return {
        "crm": run.provider,
        "workflow_label": run.workflow_label,
        "call_label": str(run.call)[:200],
        "run_label": f"run {run.pk}",
    }


def _due(now: datetime) -> Q:
    """Owed work due long enough ago that its message is lost (or its back-off is over
    and no message is coming)."""
    cutoff = owed.requeue_cutoff(now)
    return Q(due_at__lte=cutoff) | Q(due_at__isnull=True, created_at__lte=cutoff)


# --- calls ------------------------------------------------------------------------------
def _calls_without_runs(now: datetime, done: Counter) -> None:
    from crm_agents import tasks

    calls = (
        Call.objects.filter(runs_created_at__isnull=True, received_at__lte=owed.requeue_cutoff(now))
        .exclude(source=CallSource.TEST)
        .order_by("received_at")[:BATCH]
    )
    for call_id in calls.values_list("pk", flat=True):
        with transaction.atomic():
            call = Call.objects.select_for_update().filter(pk=call_id).first()
            if call is None or call.runs_created_at is not None:
                continue
            runs = services.do_create_runs(call)
            _audit(
                call.workspace,
                "reconcile.call_runs_created",
                f"the call's runs were never created: {len(runs)} run(s) created and queued",
                call_label=str(call)[:200],
                context={"call": call.pk, "runs": [run.pk for run in runs]},
            )
            for run in runs:
                owed.send_on_commit(tasks.run_workflow, run.pk)
        done["calls_without_runs"] += 1


# --- runs -------------------------------------------------------------------------------
def _runs_past_their_lease(now: datetime, done: Counter) -> None:
    """A running run whose lease ran out lost its worker: send it again; the claim takes
    it over and settles what the dead worker left (pipeline._claim)."""
    from crm_agents import tasks

    cutoff = owed.requeue_cutoff(now)
    stuck = (
        AgentRun.objects.filter(status=RunStatus.RUNNING)
        .filter(
            Q(lease_expires_at__lte=now)
            | Q(lease_expires_at__isnull=True, started_at__lte=owed.lease_cutoff(now))
        )
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=cutoff))
        .select_related("call", "workspace")[:BATCH]
    )
    for run in stuck:
        if not AgentRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, due_at=run.due_at
        ).update(due_at=now):
            continue
        _audit(
            run.workspace,
            "reconcile.run_resent",
            "its worker stopped mid-run (the lease ran out): sent again, to be taken over",
            context={"lease_owner": run.lease_owner},
            **_run_labels(run),
        )
        owed.send(tasks.run_workflow, run.pk)
        done["runs_taken_over"] += 1


def _runs_waiting_on_an_answer(now: datetime, done: Counter) -> None:
    """A run still waiting on a question a human already answered: the answer continues
    the runs waiting at that moment, and one that finished its wait just after it (or one
    an older version left) would wait for ever. It goes on with the chosen record; being
    queued with that record, it never waits again, so it is sent once."""
    from crm_agents import tasks

    stranded = (
        AgentRun.objects.filter(
            status=RunStatus.AMBIGUOUS, is_test=False, waits_on__status=SetStatus.CHOSEN
        )
        .filter(Q(finished_at__isnull=True) | Q(finished_at__lte=owed.requeue_cutoff(now)))
        .select_related("call", "workspace", "waits_on")[:BATCH]
    )
    for run in stranded:
        question = run.waits_on
        with transaction.atomic():
            if not AgentRun.objects.filter(pk=run.pk, status=RunStatus.AMBIGUOUS).update(
                status=RunStatus.QUEUED,
                status_reason=f"{question.record_name or question.record_id} was chosen for "
                "this call: the run goes on with it",
                record_id=question.record_id,
                record_name=question.record_name,
                due_at=now,
                waiting_since=None,
            ):
                continue
            _audit(
                run.workspace,
                "reconcile.run_continued",
                f"it waited on a question of record answered meanwhile (change set "
                f"{question.pk}): it goes on with {question.record_name or question.record_id}",
                object_type=question.object_type,
                record_id=question.record_id,
                **_run_labels(run),
            )
            owed.send_on_commit(tasks.run_workflow, run.pk)
        done["runs_continued"] += 1


def _queued_runs(now: datetime, done: Counter) -> None:
    from crm_agents import tasks

    queued = (
        AgentRun.objects.filter(status=RunStatus.QUEUED)
        .filter(_due(now))
        .select_related("call", "workspace")
        .order_by("created_at")[:BATCH]
    )
    for run in queued:
        if owed.outage_over(run.waiting_since, now):
            reason = owed.gave_up_reason(
                "the CRM or the model", run.status_reason, run.waiting_since
            )
            if AgentRun.objects.filter(
                pk=run.pk, status=RunStatus.QUEUED, due_at=run.due_at
            ).update(
                status=RunStatus.FAILED,
                status_reason=reason,
                error=reason,
                finished_at=now,
                due_at=None,
                waiting_since=None,
            ):
                _audit(run.workspace, "run.gave_up", reason, outcome="failed", **_run_labels(run))
                done["runs_given_up"] += 1
            continue
        if not AgentRun.objects.filter(
            pk=run.pk, status=RunStatus.QUEUED, due_at=run.due_at
        ).update(due_at=now):
            continue
        why = "its wait for the CRM is over" if run.waiting_since else "its message was lost"
        _audit(run.workspace, "reconcile.run_resent", f"{why}: sent again", **_run_labels(run))
        owed.send(tasks.run_workflow, run.pk)
        done["runs_resent"] += 1


# --- applies ----------------------------------------------------------------------------
def _proposal_fields(proposal: ChangeProposal) -> dict:
    return {
        **proposal.change_set.audit_labels(),
        "crm": proposal.change_set.provider,
        "object_type": proposal.change_set.object_type,
        "record_id": proposal.change_set.record_id,
        "field": proposal.native_field,
        "context": {"proposal": proposal.pk, "change_set": proposal.change_set_id},
    }


def _applies_past_their_lease(now: datetime, done: Counter) -> None:
    from crm_agents import tasks

    cutoff = owed.requeue_cutoff(now)
    stuck = (
        ChangeProposal.objects.filter(
            status=ProposalStatus.APPLYING, claimed_at__lte=owed.lease_cutoff(now)
        )
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=cutoff))
        .select_related("change_set", "workspace")[:BATCH]
    )
    sets = {}
    for proposal in stuck:
        if not ChangeProposal.objects.filter(
            pk=proposal.pk, status=ProposalStatus.APPLYING, due_at=proposal.due_at
        ).update(due_at=now):
            continue
        _audit(
            proposal.workspace,
            "reconcile.apply_resent",
            "its worker stopped mid-apply (the lease ran out): the apply step reads the CRM "
            "to settle it",
            **_proposal_fields(proposal),
        )
        sets[proposal.change_set_id] = True
    for change_set_id in sets:
        owed.send(tasks.apply_change_set, change_set_id)
    done["applies_taken_over"] += len(sets)


def _approved_proposals(now: datetime, done: Counter) -> None:
    from crm_agents import tasks

    paused = Policy.objects.filter(
        workspace=OuterRef("workspace"), provider=OuterRef("change_set__provider"), paused=True
    )
    approved = (
        ChangeProposal.objects.filter(status=ProposalStatus.APPROVED, change_set__is_test=False)
        .filter(_due(now))
        .exclude(Exists(paused))  # a pause holds them on purpose; resuming sends them
        .select_related("change_set", "workspace")
        .order_by("pk")[:BATCH]
    )
    sets: dict[int, ChangeSet] = {}
    for proposal in approved:
        if owed.outage_over(proposal.waiting_since, now):
            reason = owed.gave_up_reason("the CRM", proposal.status_reason, proposal.waiting_since)
            with transaction.atomic():
                if ChangeProposal.objects.filter(
                    pk=proposal.pk, status=ProposalStatus.APPROVED, due_at=proposal.due_at
                ).update(
                    status=ProposalStatus.FAILED,
                    status_reason=reason,
                    due_at=None,
                    waiting_since=None,
                    in_doubt_since=None,
                ):
                    _audit(
                        proposal.workspace,
                        "apply.gave_up",
                        reason,
                        outcome="failed",
                        **_proposal_fields(proposal),
                    )
                    done["applies_given_up"] += 1
            refresh_set_status(proposal.change_set)
            refresh_run_status(proposal.change_set.run_id)
            continue
        if not ChangeProposal.objects.filter(
            pk=proposal.pk, status=ProposalStatus.APPROVED, due_at=proposal.due_at
        ).update(due_at=now):
            continue
        why = (
            "its wait for the CRM is over"
            if proposal.waiting_since
            else "approved, and nothing was applying it (its message was lost)"
        )
        _audit(
            proposal.workspace,
            "reconcile.apply_resent",
            f"{why}: sent again",
            **_proposal_fields(proposal),
        )
        sets[proposal.change_set_id] = proposal.change_set
    for change_set_id in sets:
        owed.send(tasks.apply_change_set, change_set_id)
    done["applies_resent"] += len(sets)


def _rollbacks_past_their_lease(now: datetime, done: Counter) -> None:
    from governance import rollback

    ids = set(
        ChangeProposal.objects.filter(
            status=ProposalStatus.ROLLING_BACK, claimed_at__lte=now - rollback.CLAIM_TIMEOUT
        ).values_list("change_set_id", flat=True)[:BATCH]
    )
    for change_set in ChangeSet.objects.filter(pk__in=ids):
        try:
            done["rollbacks_settled"] += rollback.settle_stale_rollbacks(change_set)
        except CrmError as exc:  # the CRM is down: the next pass tries again
            logger.warning(
                "reconcile: rollback of change set %s not settled: %s", change_set.pk, exc
            )


def _statuses_left_behind(now: datetime, done: Counter) -> None:
    """A worker that died between settling proposals and recording the set's and the run's
    status left those behind: derive them again."""
    open_proposals = ChangeProposal.objects.filter(
        change_set=OuterRef("pk"),
        status__in=[ProposalStatus.APPROVED, ProposalStatus.APPLYING],
    )
    for change_set in (
        ChangeSet.objects.filter(
            status=SetStatus.APPROVED, created_at__lte=owed.requeue_cutoff(now)
        )
        .exclude(Exists(open_proposals))
        .select_related("workspace")[:BATCH]
    ):
        before = change_set.status
        refresh_set_status(change_set)
        refresh_run_status(change_set.run_id)
        _audit(
            change_set.workspace,
            "reconcile.status",
            f"the set's status was left at {before}: now {change_set.status}",
            crm=change_set.provider,
            object_type=change_set.object_type,
            record_id=change_set.record_id,
            **change_set.audit_labels(),
        )
        done["statuses_fixed"] += 1
    open_sets = ChangeSet.objects.filter(run=OuterRef("pk"), status=SetStatus.APPROVED)
    for run in (
        AgentRun.objects.filter(status=RunStatus.APPLYING, created_at__lte=owed.requeue_cutoff(now))
        .exclude(Exists(open_sets))
        .select_related("call", "workspace")[:BATCH]
    ):
        change_set = ChangeSet.objects.filter(run=run).order_by("-pk").first()
        if change_set is None:
            continue
        status, _ = run_status_for(change_set)
        if status == RunStatus.APPLYING:
            continue
        refresh_run_status(run.pk)
        _audit(
            run.workspace,
            "reconcile.status",
            f"the run's status was left at applying: now {status}",
            **_run_labels(run),
        )
        done["statuses_fixed"] += 1
