"""State changes of the agent: calls in, runs created, choices remembered."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record_event
from crm_agents.calls import CallIn
from crm_agents.matching import attendees_key
from crm_agents.models import AgentRun, Call, CallSource, MatchChoice, RunStatus, Workflow
from governance import owed
from governance.models import Workspace
from governance.review_models import ChangeSet, SetStatus


def do_submit_call(
    workspace: Workspace, payload: CallIn, *, source: str = CallSource.API, actor=None
) -> tuple[Call, bool]:
    """Store a call once per external id, with the runs it owes, in one transaction: the
    work is recorded before anything is sent to a worker, so a broker that is down or
    loses the message loses nothing (the caller sends the runs, see ``start_runs``; the
    reconciler sends what was never taken). The second submission returns the first call
    and ``False``, and creates nothing (DESIGN.md invariant 4). A TEST call owes no runs:
    the workflow test makes its own."""
    existing = Call.objects.filter(workspace=workspace, external_id=payload.external_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            call = Call.objects.create(
                workspace=workspace,
                external_id=payload.external_id,
                source=source,
                **payload.as_model_fields(),
            )
            runs = [] if call.is_test else do_create_runs(call)
            if call.is_test:
                Call.objects.filter(pk=call.pk).update(runs_created_at=timezone.now())
            record_event(
                workspace,
                action="call.received",
                outcome="ok",
                actor_kind="user" if actor else "system",
                actor_user=actor,
                call_label=str(call)[:200],
                context={
                    "external_id": call.external_id,
                    "source": source,
                    "runs": [run.pk for run in runs],
                },
            )
    except IntegrityError:  # the same call, submitted concurrently
        return Call.objects.get(workspace=workspace, external_id=payload.external_id), False
    return call, True


def start_runs(call: Call) -> None:
    """Send the call's queued runs to the workers once the transaction commits; a broker
    that cannot take them is logged, and the reconciler sends them later."""
    from crm_agents import tasks

    for run_id in call.runs.filter(status=RunStatus.QUEUED, is_test=False).values_list(
        "pk", flat=True
    ):
        owed.send_on_commit(tasks.run_workflow, run_id)


def triggers(workflow: Workflow, call: Call, owner_teams: list[str] | None = None) -> str | None:
    """Why ``workflow`` does not run for ``call``, or None when it does."""
    if not workflow.enabled:
        return "the workflow is disabled"
    if workflow.paused:
        return "the workflow is paused"
    externals = [a for a in call.attendees if not a.get("internal")]
    if workflow.trigger_external_attendees and not externals:
        return "no external attendee"
    needle = workflow.trigger_title_contains.strip().lower()
    if needle and needle not in call.title.lower():
        return f"the title does not contain {workflow.trigger_title_contains!r}"
    if call.duration_s < workflow.trigger_min_duration_s:
        return f"shorter than {workflow.trigger_min_duration_s} s"
    if workflow.trigger_owner_team and workflow.trigger_owner_team not in (owner_teams or []):
        return f"the owner is not in team {workflow.trigger_owner_team}"
    return None


def owner_teams(call: Call, provider: str) -> list[str]:
    """The call owner's CRM teams, from the connections we know of (no CRM request)."""
    from integrations.models import Connection

    teams: list[str] = []
    for connection in Connection.objects.filter(
        workspace=call.workspace, provider=provider, crm_user_email__iexact=call.owner_email
    ):
        teams.extend(connection.crm_teams or [])
    return teams


def do_create_runs(call: Call) -> list[AgentRun]:
    """One run per workflow whose trigger matches; a second call of this creates none.
    The call then owes nothing more to be started (``runs_created_at``)."""
    runs = []
    for workflow in Workflow.objects.filter(workspace=call.workspace, enabled=True).order_by(
        "provider", "name", "pk"
    ):
        teams = owner_teams(call, workflow.provider) if workflow.trigger_owner_team else []
        if triggers(workflow, call, teams) is not None:
            continue
        run, _ = AgentRun.objects.get_or_create(
            call=call,
            workflow=workflow,
            is_test=False,
            defaults={
                "workspace": call.workspace,
                "workflow_label": workflow.name,
                "provider": workflow.provider,
                "due_at": timezone.now(),
            },
        )
        runs.append(run)
    if call.runs_created_at is None:
        call.runs_created_at = timezone.now()
        Call.objects.filter(pk=call.pk, runs_created_at__isnull=True).update(
            runs_created_at=call.runs_created_at
        )
    return runs


def do_create_test_run(workflow: Workflow, call: Call) -> AgentRun:
    """A TEST run: the whole pipeline on real reads, nothing ever written."""
    return AgentRun.objects.create(
        workspace=call.workspace,
        call=call,
        workflow=workflow,
        workflow_label=workflow.name,
        provider=workflow.provider,
        is_test=True,
        due_at=timezone.now(),
    )


@transaction.atomic
def do_rerun(run: AgentRun, *, actor) -> bool:
    """Run a failed run again, or send a queued one again (its message may be lost); True
    when it was queued, with its audit event. Finished runs are left alone."""
    run = AgentRun.objects.select_for_update().filter(pk=run.pk).first()
    if run is None or run.status not in (RunStatus.FAILED, RunStatus.QUEUED):
        return False
    before = run.status
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.QUEUED, error="", due_at=timezone.now(), waiting_since=None
    )
    record_event(
        run.workspace,
        action="run.rerun",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=run.provider,
        before={"status": before},
        after={"status": RunStatus.QUEUED},
        reason=(
            f"queued again after: {run.status_reason}"
            if before == RunStatus.FAILED
            else "sent to the workers again"
        )[:2000],
        workflow_label=run.workflow_label,
        call_label=str(run.call)[:200],
        run_label=f"run {run.pk}",
    )
    from crm_agents import tasks

    owed.send_on_commit(tasks.run_workflow, run.pk)
    return True


@transaction.atomic
def do_choose_record(change_set: ChangeSet, record_id: str, *, actor) -> AgentRun:
    """A human answers "which record?": remembered for the same company and attendees, and
    the run continues on that record."""
    change_set = ChangeSet.objects.select_for_update().get(pk=change_set.pk)
    run = change_set.run
    if change_set.status != SetStatus.NEEDS_CHOICE or run is None:
        raise ValueError("this change set is not waiting for a choice of record")
    ids = {candidate["id"] for candidate in run.candidates}
    if record_id not in ids:
        raise ValueError(f"{record_id} is not one of the candidate records")
    name = next(c["name"] for c in run.candidates if c["id"] == record_id)
    company = ",".join(sorted(_company_ids_of(run)))
    MatchChoice.objects.update_or_create(
        workspace=run.workspace,
        provider=run.provider,
        object_type=change_set.object_type,
        company_id=company,
        attendees_key=attendees_key(run.call.external_emails()),
        defaults={"record_id": record_id, "record_name": name, "chosen_by": actor},
    )
    change_set.status = SetStatus.SUPERSEDED
    change_set.decided_by = actor
    change_set.record_id, change_set.record_name = record_id, name
    change_set.save(update_fields=["status", "decided_by", "record_id", "record_name"])
    record_event(
        run.workspace,
        action="match.chosen",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=run.provider,
        object_type=change_set.object_type,
        record_id=record_id,
        reason=f"chose {name} among {len(ids)} candidates",
        workflow_label=run.workflow_label,
        call_label=str(run.call)[:200],
        run_label=f"run {run.pk}",
    )
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.QUEUED,
        record_id=record_id,
        record_name=name,
        due_at=timezone.now(),
        waiting_since=None,
    )
    from crm_agents import tasks

    owed.send_on_commit(tasks.run_workflow, run.pk)
    return run


def _company_ids_of(run: AgentRun) -> list[str]:
    for decision in run.decisions or []:
        if isinstance(decision, dict) and decision.get("step") == "match":
            return decision.get("company_ids", [])
    return []
