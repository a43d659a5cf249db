"""State changes of the agent: calls in, runs created, choices remembered."""

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import record_event
from crm_agents import questions
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


class ChoiceError(ValueError):
    """A choice of record that cannot be taken; the message says why."""


@transaction.atomic
def do_choose_record(change_set: ChangeSet, record_id: str, *, actor) -> list[AgentRun]:
    """A human answers "which record?" once for the call (crm_agents/questions.py): the
    choice is remembered for the same company and attendees, the question is closed with
    the record chosen (with any other question of the call on the same CRM, object type and
    candidates), and every run waiting on it continues on that record. Returns those runs,
    the asking run first."""
    found = ChangeSet.objects.filter(pk=change_set.pk).values_list("run__call_id", flat=True)
    Call.objects.select_for_update().filter(pk__in=list(found)).first()  # questions.py's lock
    question = ChangeSet.objects.select_for_update().get(pk=change_set.pk)
    run = question.run
    if question.status == SetStatus.CHOSEN:
        raise ChoiceError(
            f"this question was already answered: {question.record_name or question.record_id} "
            "was chosen"
        )
    if question.status != SetStatus.NEEDS_CHOICE or run is None:
        raise ChoiceError(
            "this change set is not waiting for a choice of record "
            f"(it is {question.get_status_display().lower()})"
        )
    ids = questions.asked_among(question)
    if record_id not in ids:
        raise ChoiceError(f"{record_id} is not one of the candidate records")
    name = next(c.get("name") or record_id for c in run.candidates if str(c["id"]) == record_id)
    MatchChoice.objects.update_or_create(
        workspace=run.workspace,
        provider=run.provider,
        object_type=question.object_type,
        company_id=",".join(sorted(_company_ids_of(run))),
        attendees_key=attendees_key(run.call.external_emails()),
        defaults={"record_id": record_id, "record_name": name, "chosen_by": actor},
    )
    answered = [question]
    if not question.is_test:  # older questions the call asked twice (before one sufficed)
        answered += [
            other
            for other in questions.questions_of_call(
                run.call_id, question.provider, question.object_type
            )
            .filter(status=SetStatus.NEEDS_CHOICE)
            .exclude(pk=question.pk)
            .select_for_update(of=("self",))
            if questions.asked_among(other) == ids
        ]
    now = timezone.now()
    for one in answered:
        one.status, one.decided_by, one.decided_at = SetStatus.CHOSEN, actor, now
        one.record_id, one.record_name = record_id, name
        one.save(update_fields=["status", "decided_by", "decided_at", "record_id", "record_name"])
    runs = list(
        AgentRun.objects.select_for_update()
        .filter(
            Q(waits_on__in=answered) | Q(pk__in=[one.run_id for one in answered]),
            status=RunStatus.AMBIGUOUS,
        )
        .select_related("call")
        .order_by("pk")
    )
    runs.sort(key=lambda r: r.pk != run.pk)
    record_event(
        run.workspace,
        action="match.chosen",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=run.provider,
        object_type=question.object_type,
        record_id=record_id,
        reason=(
            f"chose {name} among {len(ids)} candidates: {len(runs)} workflow run(s) of the "
            "call continue on it"
        ),
        context={"questions": [one.pk for one in answered], "runs": [r.pk for r in runs]},
        workflow_label=run.workflow_label,
        call_label=str(run.call)[:200],
        run_label=f"run {run.pk}",
    )
    for waiting in runs:
        _continue_on(waiting, record_id, name, actor=actor, question=question)
    return runs


def _continue_on(run: AgentRun, record_id: str, name: str, *, actor, question) -> None:
    """Queue a run waiting on an answered question again, on the chosen record."""
    who = actor.get_username() if actor else "a reviewer"
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.QUEUED,
        status_reason=f"{who} chose {name} for this call: the run goes on with it",
        record_id=record_id,
        record_name=name,
        due_at=timezone.now(),
        waiting_since=None,
    )
    if run.pk != question.run_id:
        record_event(
            run.workspace,
            action="run.continued",
            outcome="ok",
            actor_kind="user",
            actor_user=actor,
            crm=run.provider,
            object_type=question.object_type,
            record_id=record_id,
            reason=f"{who} chose {name} for this call (change set {question.pk}): "
            "this workflow goes on with it",
            workflow_label=run.workflow_label,
            call_label=str(run.call)[:200],
            run_label=f"run {run.pk}",
        )
    from crm_agents import tasks

    owed.send_on_commit(tasks.run_workflow, run.pk)


def _company_ids_of(run: AgentRun) -> list[str]:
    for decision in run.decisions or []:
        if isinstance(decision, dict) and decision.get("step") == "match":
            return decision.get("company_ids", [])
    return []
