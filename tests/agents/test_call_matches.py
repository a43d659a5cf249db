"""One match per call, CRM and object type: the call's runs share it, each matched record is
read once, parallel workers make one match, and a stale read is read again. On both CRMs,
through the real clients and the sandbox."""

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from audit.models import AuditEvent
from crm_agents import call_matches, pipeline, services, tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, CallMatch, FieldRule, RunStatus, Workflow
from governance.models import ObjectScope
from governance.review_models import ChangeSet
from integrations.crm.clients import build_client
from integrations.crm.profiles import PROFILES
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call

CRM_KINDS = ("read", "search")  # metadata, auth and writes apart
CONTACT_OBJECTS = ("contacts", "Contact")


def _deal_workflow(world, key: str, field: str, instruction: str) -> Workflow:
    workflow = Workflow.objects.create(
        workspace=world.workspace, provider=world.provider, key=key, name=f"Deal {key}"
    )
    FieldRule.objects.create(
        workspace=world.workspace, workflow=workflow, field=field, instruction=instruction
    )
    return workflow


def _contact_workflow(world) -> Workflow:
    world.policy.contact_scope = ObjectScope.READ_WRITE
    world.policy.save()
    workflow = Workflow.objects.create(
        workspace=world.workspace,
        provider=world.provider,
        key="titles",
        name="Contact titles",
        object_type="contact",
    )
    FieldRule.objects.create(
        workspace=world.workspace,
        workflow=workflow,
        field="title",
        instruction="The attendee's job title",
    )
    return workflow


def _submit(world):
    call, _ = services.do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    return call


def _runs(call) -> list[AgentRun]:
    return list(AgentRun.objects.filter(call=call, is_test=False).order_by("pk"))


def _reads(world, since=None) -> list[SandboxRequest]:
    requests = SandboxRequest.objects.filter(account=world.account, kind__in=CRM_KINDS)
    if since is not None:
        requests = requests.filter(started_at__gt=since)
    return list(requests)


def _contact_lookups(requests: list[SandboxRequest]) -> int:
    return sum(1 for r in requests if r.object_name in CONTACT_OBJECTS)


def _match_step(run: AgentRun) -> dict:
    return next(d for d in run.decisions if d.get("step") == "match")


def test_a_deal_and_a_contact_workflow_match_each_object_once(world):
    _contact_workflow(world)
    call = _submit(world)
    mark = timezone.now()

    tasks.process_call.delay(call.pk)

    runs = _runs(call)
    assert {run.status for run in runs} <= {RunStatus.APPLIED, RunStatus.NO_CHANGES}, [
        run.status_reason for run in runs
    ]
    matches = CallMatch.objects.filter(call=call)
    assert sorted(matches.values_list("object_type", flat=True)) == ["contact", "deal"]
    (computing,) = {match.matched_by_run_id for match in matches}  # both by one run
    reused = next(run for run in runs if run.pk != computing)
    assert reused.crm_requests == 0
    assert "reused the call's match" in _match_step(reused)["shared"]
    assert _match_step(next(run for run in runs if run.pk == computing))["computed_here"]
    assert _contact_lookups(_reads(world, mark)) == 1  # the attendees' contacts, once
    # Match + read for the deal; the contact costs nothing more (the apply's reads apart).
    assert sum(run.crm_requests for run in runs) <= 4
    contact = next(run for run in runs if run.workflow.object_type == "contact")
    title = PROFILES[world.provider].native_field("contact", "title")
    assert title in contact.current_values  # read with the contact search, for this run
    assert AuditEvent.objects.filter(action="match.computed").count() == 2


def test_two_deal_workflows_on_one_call_make_one_match(world):
    world.workflow.rules.filter(field="next_step").delete()
    _deal_workflow(world, "next", "next_step", "The concrete next step both sides agreed on")
    call = _submit(world)
    mark = timezone.now()

    tasks.process_call.delay(call.pk)

    first, second = _runs(call)
    assert {first.status, second.status} == {RunStatus.APPLIED}
    match = CallMatch.objects.get(call=call)
    assert match.object_type == "deal"
    assert match.winner_id == world.deal.crm_id
    # Read with the union of both workflows' fields (and the deal's stage).
    for field in ("amount", "close_date", "next_step", "stage"):
        assert world.native(field) in match.records[world.deal.crm_id]["properties"]
    later = second if match.matched_by_run_id == first.pk else first
    assert later.crm_requests == 0, later.decisions
    assert "reused the call's match" in _match_step(later)["shared"]
    assert later.candidates == first.candidates == second.candidates
    assert _contact_lookups(_reads(world, mark)) == 1
    assert first.crm_requests + second.crm_requests <= 4


def test_a_stale_stored_read_is_read_again(world, settings):
    _deal_workflow(world, "next", "next_step", "The concrete next step both sides agreed on")
    world.workflow.rules.filter(field="next_step").delete()
    call = _submit(world)  # queued, not sent: each run is run by hand below
    first, second = _runs(call)
    pipeline.execute_run(first.pk)
    match = CallMatch.objects.get(call=call)
    old = timezone.now() - timedelta(seconds=settings.CALL_MATCH_FRESH_SECONDS + 60)
    match.records[world.deal.crm_id]["read_at"] = old.isoformat()
    match.save(update_fields=["records"])
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    client.update("deal", world.deal.crm_id, {world.native("next_step"): "Call back in May"})

    pipeline.execute_run(second.pk)

    second.refresh_from_db()
    assert second.status == RunStatus.APPLIED, second.status_reason
    assert second.crm_requests == 1  # the record alone, not the whole match
    assert second.current_values[world.native("next_step")]["value"] == "Call back in May"
    read_again = next(d for d in second.decisions if d.get("step") == "read_again")
    assert "old" in read_again["why"]
    assert AuditEvent.objects.filter(action="match.read_again").count() == 1
    match.refresh_from_db()  # the stored values follow the new read
    read_at = datetime.fromisoformat(match.records[world.deal.crm_id]["read_at"])
    assert timezone.now() - read_at < timedelta(seconds=60)


def test_a_run_that_failed_mid_match_strands_no_other(world, monkeypatch):
    _deal_workflow(world, "next", "next_step", "The concrete next step both sides agreed on")
    call = _submit(world)
    first, second = _runs(call)
    real = call_matches.Matcher.match_many
    failures = []

    def broken_once(self, view, reads):
        if not failures:
            failures.append(1)
            raise RuntimeError("worker bug")
        return real(self, view, reads)

    monkeypatch.setattr(call_matches.Matcher, "match_many", broken_once)
    with pytest.raises(RuntimeError):
        pipeline.execute_run(first.pk)
    assert CallMatch.objects.get(call=call).lease_owner == ""  # released

    pipeline.execute_run(second.pk)

    second.refresh_from_db()
    assert second.status == RunStatus.APPLIED, second.status_reason
    assert CallMatch.objects.get(call=call).matched_by_run_id == second.pk


def test_a_claim_left_by_a_dead_worker_is_taken_over_after_its_lease(world):
    call = _submit(world)
    (run,) = _runs(call)
    CallMatch.objects.create(
        workspace=world.workspace,
        call=call,
        provider=world.provider,
        object_type="deal",
        lease_owner="run 0 dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    pipeline.execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert CallMatch.objects.get(call=call).matched_by_run_id == run.pk
    assert AuditEvent.objects.filter(action="match.taken_over").count() == 1


def test_a_run_waits_for_a_live_claim_then_goes_back_to_the_queue(world, settings):
    settings.CALL_MATCH_WAIT_SECONDS = 0
    call = _submit(world)
    (run,) = _runs(call)
    CallMatch.objects.create(
        workspace=world.workspace,
        call=call,
        provider=world.provider,
        object_type="deal",
        lease_owner="run 0 busy",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    with pytest.raises(pipeline.RetryLater):
        pipeline.execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert "waiting for the call's match" in run.status_reason
    assert not CallMatch.objects.get(call=call).matched_at


@pytest.mark.skipif(
    "sqlite" in db_connection.vendor,
    reason="needs concurrent writers: the SQLite test database serialises them (PostgreSQL "
    "covers this)",
)
def test_two_runs_in_parallel_make_one_match(world):
    world.workflow.rules.filter(field="next_step").delete()
    _deal_workflow(world, "next", "next_step", "The concrete next step both sides agreed on")
    call = _submit(world)
    runs = _runs(call)
    mark = timezone.now()
    barrier = threading.Barrier(len(runs))
    errors = []

    def worker(run_id: int) -> None:
        barrier.wait()
        try:
            pipeline.execute_run(run_id)
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker, args=(run.pk,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert CallMatch.objects.filter(call=call).count() == 1
    assert AuditEvent.objects.filter(action="match.computed").count() == 1
    assert {run.status for run in _runs(call)} == {RunStatus.APPLIED}
    assert sorted(run.crm_requests for run in _runs(call))[0] == 0
    assert _contact_lookups(_reads(world, mark)) == 1


def test_runs_continued_by_a_choice_use_the_stored_read(world, ws_admin):
    from tests.agents.test_record_choice import _twin

    twin = _twin(world)
    world.workflow.rules.filter(field="next_step").delete()
    _deal_workflow(world, "next", "next_step", "The concrete next step both sides agreed on")
    call = _submit(world)
    tasks.process_call.delay(call.pk)
    question = ChangeSet.objects.get(run__call=call)
    mark = timezone.now()

    services.do_choose_record(question, twin.crm_id, actor=ws_admin)

    runs = _runs(call)
    assert {run.status for run in runs} == {RunStatus.APPLIED}, [r.status_reason for r in runs]
    assert {run.record_id for run in runs} == {twin.crm_id}
    assert [run.crm_requests for run in runs] == [0, 0]  # the match read the twin already
    assert _contact_lookups(_reads(world, mark)) == 0
    assert CallMatch.objects.filter(call=call).count() == 1


def test_a_test_run_matches_apart_from_the_call(world):
    call = _submit(world)
    run = services.do_create_test_run(world.workflow, call)

    pipeline.execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.DRY_RUN, run.status_reason
    assert run.crm_requests > 0
    assert not CallMatch.objects.filter(call=call).exists()


def test_a_run_taken_over_mid_match_takes_its_own_claim_back(world):
    call = _submit(world)
    (run,) = _runs(call)
    CallMatch.objects.create(
        workspace=world.workspace,
        call=call,
        provider=world.provider,
        object_type="deal",
        lease_owner=f"run {run.pk} an-earlier-attempt",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    pipeline.execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert CallMatch.objects.get(call=call).matched_by_run_id == run.pk
