"""One choice of record per call: the call's workflows on the same CRM and object type wait
on one question, and one answer continues them all on the chosen record. On both CRMs,
through the real clients, the sandbox and the admin."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from crm_agents import pipeline, reconcile, services, tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, FieldRule, MatchChoice, RunStatus, Workflow
from governance.models import Role
from governance.review_models import ChangeSet, SetStatus
from integrations.crm.clients import build_client
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRecord, SandboxRequest
from tests.agents.conftest import STAGES, pricing_call
from tests.factories import AgentRunFactory, ChangeSetFactory, member_of

RULES = {
    "amount": "The annual contract value the buyer agreed to, in dollars",
    "close_date": "The date the buyer expects to sign",
    "next_step": "The concrete next step both sides agreed on",
}


def _twin(world) -> SandboxRecord:
    """A second open deal of Jane's company, Jane a contact on it: the numbers cannot tell
    it from the first, and the call names neither."""
    company = SandboxRecord.objects.get(
        account=world.account, object_name__in=["companies", "Account"]
    )
    jane = SandboxRecord.objects.get(account=world.account, object_name__in=["contacts", "Contact"])
    return seed.add_record(
        world.account,
        "deal",
        {
            "name": "Acme Logistics - Analytics",
            "amount": 20_000,
            "close_date": "2026-12-31",
            "stage": STAGES[world.provider],
        },
        owner=world.deal.owner,
        associations=[company, jane],
    )


def _workflow(world, key: str, field: str) -> Workflow:
    workflow = Workflow.objects.create(
        workspace=world.workspace, provider=world.provider, key=key, name=f"Deal {key}"
    )
    FieldRule.objects.create(
        workspace=world.workspace, workflow=workflow, field=field, instruction=RULES[field]
    )
    return workflow


def _one_field_per_workflow(world) -> list[Workflow]:
    """Three workflows on the deal, one field each (the world's own keeps the amount)."""
    world.workflow.rules.exclude(field="amount").delete()
    return [
        world.workflow,
        _workflow(world, "close", "close_date"),
        _workflow(world, "next", "next_step"),
    ]


def _submit(world, **overrides):
    call, _ = services.do_submit_call(
        world.workspace, CallIn.model_validate(pricing_call(title="Acme sync", **overrides))
    )
    return call


def _crm(world):
    return build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )


def _runs(call) -> list[AgentRun]:
    return list(AgentRun.objects.filter(call=call, is_test=False).order_by("pk"))


def _model_requests(world) -> int:
    return SandboxRequest.objects.filter(
        account=world.model_account, path__endswith="/chat/completions"
    ).count()


def _deal_writes(world) -> list[list[str]]:
    return list(
        SandboxRequest.objects.filter(account=world.account, kind="write")
        .exclude(written={})
        .values_list("record_ids", flat=True)
    )


def test_one_choice_settles_every_workflow_of_the_call(world, login):
    twin = _twin(world)
    workflows = _one_field_per_workflow(world)
    call = _submit(world)

    tasks.process_call.delay(call.pk)

    runs = _runs(call)
    assert [run.workflow for run in runs] == sorted(workflows, key=lambda w: w.name)
    assert {run.status for run in runs} == {RunStatus.AMBIGUOUS}
    question = ChangeSet.objects.get(run__call=call)  # one question, not one per workflow
    assert question.status == SetStatus.NEEDS_CHOICE
    asker, *waiting = sorted(runs, key=lambda run: run.pk != question.run_id)
    assert {run.waits_on_id for run in runs} == {question.pk}
    assert "once for every workflow of the call" in asker.status_reason
    for run in waiting:
        assert f"already asked for this call by {asker.workflow_label}" in run.status_reason
    assert _model_requests(world) <= 1  # one tie-break attempt, not one per workflow
    assert AuditEvent.objects.filter(action="match.waits_on_choice").count() == 2
    assert _deal_writes(world) == []

    reviewer = member_of(world.workspace, Role.REVOPS, username="robin@acme.example")
    response = login(reviewer).post(
        reverse("admin:governance_changeset_review", args=[question.pk]),
        {"action": "choose", "record_id": twin.crm_id},
        follow=True,
    )

    # Every workflow went on with the twin, and the reviewer landed on what it produced.
    runs = _runs(call)
    assert {run.status for run in runs} == {RunStatus.APPLIED}, [r.status_reason for r in runs]
    assert {run.record_id for run in runs} == {twin.crm_id}
    landed = response.redirect_chain[-1][0]
    resulting = ChangeSet.objects.exclude(pk=question.pk).filter(run__call=call)
    assert {one.record_id for one in resulting} == {twin.crm_id}
    first = resulting.get(run=asker)
    assert landed == reverse("admin:governance_changeset_change", args=[first.pk])
    assert first.status == SetStatus.APPLIED
    assert "Record chosen: Acme Logistics - Analytics, for 3 workflow(s)" in (
        response.content.decode()
    )
    question.refresh_from_db()
    assert (question.status, question.record_id) == (SetStatus.CHOSEN, twin.crm_id)
    assert question.decided_by == reviewer
    assert all(record_ids == [twin.crm_id] for record_ids in _deal_writes(world))
    assert float(world.deal_value("amount")) == 50_000  # the first deal was left alone
    # The question's page says what was chosen and links to every resulting set.
    page = login(reviewer).get(landed.replace(str(first.pk), str(question.pk))).content.decode()
    for one in resulting:
        assert reverse("admin:governance_changeset_change", args=[one.pk]) in page
    assert MatchChoice.objects.get(workspace=world.workspace).record_id == twin.crm_id


def test_a_run_arriving_after_the_question_is_open_joins_it(world):
    _twin(world)
    _workflow(world, "close", "close_date")
    call = _submit(world)  # its runs are queued, not sent: each is run by hand below
    first, second = _runs(call)

    pipeline.execute_run(first.pk)
    asked = _model_requests(world)
    pipeline.execute_run(second.pk)

    question = ChangeSet.objects.get(run__call=call)
    second.refresh_from_db()
    assert second.status == RunStatus.AMBIGUOUS
    assert second.waits_on == question
    assert not second.change_sets.exists()
    assert _model_requests(world) == asked  # no second tie-break while the question is open
    assert {c["id"] for c in second.candidates} == {c["id"] for c in question.run.candidates}


def test_a_run_arriving_after_the_choice_uses_it(world, ws_admin):
    twin = _twin(world)
    world.workflow.rules.filter(field="next_step").delete()  # the late workflow's field
    call = _submit(world)
    tasks.process_call.delay(call.pk)
    question = ChangeSet.objects.get(run__call=call, status=SetStatus.NEEDS_CHOICE)
    services.do_choose_record(question, twin.crm_id, actor=ws_admin)
    # The remembered choice ranks later calls' deals; this call's own answer needs none.
    MatchChoice.objects.all().delete()
    # A rep touches the first deal: the two are close again (the writes made the twin the
    # most recently active), so the match is ambiguous once more.
    _crm(world).update("deal", world.deal.crm_id, {world.native("amount"): "51000"})

    added = _workflow(world, "next", "next_step")  # after the answer
    (late,) = [run for run in services.do_create_runs(call) if run.workflow == added]
    pipeline.execute_run(late.pk)

    late.refresh_from_db()
    assert late.status == RunStatus.APPLIED, late.status_reason
    assert late.record_id == twin.crm_id
    assert f"was chosen by {ws_admin.get_username()} for this call" in late.match_reason
    assert not ChangeSet.objects.filter(run=late, status=SetStatus.NEEDS_CHOICE).exists()
    assert ChangeSet.objects.filter(run__call=call, status=SetStatus.NEEDS_CHOICE).count() == 0


# --- without a CRM ---------------------------------------------------------------------------
@pytest.fixture
def question(db, workspace):
    run = AgentRunFactory(
        workspace=workspace,
        call__runs_created_at=timezone.now(),
        status=RunStatus.AMBIGUOUS,
        candidates=[
            {"id": "501", "name": "Acme (EU)", "score": 0.7, "reasons": []},
            {"id": "502", "name": "Acme (US)", "score": 0.7, "reasons": []},
        ],
    )
    question = ChangeSetFactory(
        workspace=workspace, run=run, status=SetStatus.NEEDS_CHOICE, record_id="", record_name=""
    )
    AgentRun.objects.filter(pk=run.pk).update(waits_on=question)
    return question


def _waiting(question, **fields) -> AgentRun:
    fields = {"status": RunStatus.AMBIGUOUS, "waits_on": question, **fields}
    return AgentRunFactory(workspace=question.workspace, call=question.run.call, **fields)


def test_the_answer_continues_every_waiting_run_once(
    question, ws_admin, monkeypatch, django_capture_on_commit_callbacks
):
    other = _waiting(question)
    sent: list[int] = []
    monkeypatch.setattr(tasks.run_workflow, "delay", sent.append)

    with django_capture_on_commit_callbacks(execute=True):
        runs = services.do_choose_record(question, "502", actor=ws_admin)

    assert [run.pk for run in runs] == [question.run_id, other.pk]
    assert sorted(sent) == sorted([question.run_id, other.pk])
    for run in AgentRun.objects.filter(pk__in=sent):
        assert (run.status, run.record_id, run.record_name) == (
            RunStatus.QUEUED,
            "502",
            "Acme (US)",
        )
    event = AuditEvent.objects.get(action="match.chosen")
    assert event.context["runs"] == [question.run_id, other.pk]
    assert AuditEvent.objects.filter(action="run.continued", run_label=f"run {other.pk}").exists()


def test_the_answer_closes_an_older_duplicate_question_of_the_call(question, ws_admin, monkeypatch):
    monkeypatch.setattr(tasks.run_workflow, "delay", lambda run_id: None)
    older_run = _waiting(question, candidates=question.run.candidates, waits_on=None)
    older = ChangeSetFactory(
        workspace=question.workspace,
        run=older_run,
        status=SetStatus.NEEDS_CHOICE,
        record_id="",
        record_name="",
    )

    services.do_choose_record(question, "501", actor=ws_admin)

    older.refresh_from_db()
    older_run.refresh_from_db()
    assert (older.status, older.record_id) == (SetStatus.CHOSEN, "501")
    assert (older_run.status, older_run.record_id) == (RunStatus.QUEUED, "501")


def test_a_set_not_waiting_for_a_choice_is_refused_with_the_reason(question, ws_admin):
    pending = ChangeSetFactory(workspace=question.workspace)

    with pytest.raises(services.ChoiceError, match="not waiting for a choice of record"):
        services.do_choose_record(pending, "9001", actor=ws_admin)
    with pytest.raises(services.ChoiceError, match="not one of the candidate records"):
        services.do_choose_record(question, "999", actor=ws_admin)


def test_the_reconciler_continues_a_run_left_waiting_on_an_answered_question(
    question, ws_admin, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks.run_workflow, "delay", lambda run_id: None)
    services.do_choose_record(question, "502", actor=ws_admin)
    # It finished its wait just after the answer (or an older version answered).
    late = _waiting(question, finished_at=timezone.now())
    sent: list[int] = []
    monkeypatch.setattr(tasks.run_workflow, "delay", sent.append)
    later = timezone.now() + timedelta(hours=1)

    with django_capture_on_commit_callbacks(execute=True):
        done = reconcile.reconcile(later)
        again = reconcile.reconcile(later)

    assert done["runs_continued"] == 1
    assert "runs_continued" not in again  # queued with its record: never sent for ever
    assert sent.count(late.pk) == 1
    late.refresh_from_db()
    assert (late.status, late.record_id) == (RunStatus.QUEUED, "502")
    assert AuditEvent.objects.filter(action="reconcile.run_continued").count() == 1
