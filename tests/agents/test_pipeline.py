"""The pipeline end to end on both CRMs, through the real clients and the sandbox."""

import threading
from datetime import timedelta

import pytest
from django.db import connection as db_connection

from audit.models import AuditEvent
from crm_agents import pipeline, tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, RunStatus
from crm_agents.services import do_submit_call
from governance import apply, owed, review
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.clients import build_client
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call


def _process(world, **overrides) -> AgentRun:
    call, _ = do_submit_call(world.workspace, CallIn.model_validate(pricing_call(**overrides)))
    tasks.process_call.delay(call.pk)
    return AgentRun.objects.get(call=call, workflow=world.workflow)


def _writes(world) -> list[dict]:
    return list(
        SandboxRequest.objects.filter(account=world.account, kind="write")
        .exclude(written={})
        .values_list("written", flat=True)
    )


def _set_in_crm(world, field: str, value: str) -> None:
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    client.update("deal", world.deal.crm_id, {world.native(field): value})


def test_it_updates_the_deal_from_a_pricing_call(world):
    run = _process(world)

    assert run.status == RunStatus.APPLIED, run.status_reason
    assert run.record_id == world.deal.crm_id
    assert run.candidates[0]["reasons"][0] == "an open deal of the attendees' company"
    assert run.match_reason == "the only candidate: Acme Logistics - Fleet platform"
    assert float(world.deal_value("amount")) == 84000
    assert world.deal_value("close_date") == "2027-01-15"
    assert "MSA" in world.deal_value("next_step")
    proposals = {p.field: p for p in ChangeProposal.objects.filter(change_set__run=run)}
    assert proposals["amount"].evidence.startswith("We looked at the proposal with finance")
    assert proposals["amount"].evidence_start == 12.5
    assert proposals["amount"].current_value in ("50000", "50000.0")
    assert {p.status for p in proposals.values()} == {ProposalStatus.APPLIED}
    assert run.prompt_hash
    assert "TRANSCRIPT" in run.prompt
    assert "84,000" in run.raw_answer
    # Match and read in at most 4 requests (stage metadata included, cold), the three
    # fields in one write.
    assert run.crm_requests <= 4
    assert len(_writes(world)) == 1
    change_set = ChangeSet.objects.get(run=run)
    assert change_set.applied_at == max(p.applied_at for p in proposals.values())


def test_it_makes_no_second_run_for_a_resubmitted_call(world):
    first = _process(world)
    again, created = do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    tasks.process_call.delay(again.pk)

    assert created is False
    assert again.pk == first.call_id
    assert AgentRun.objects.filter(call=again).count() == 1
    assert len(_writes(world)) == 1


def test_it_applies_a_proposal_once_whatever_the_duplicate_tasks(world):
    run = _process(world)
    change_set = ChangeSet.objects.get(run=run)
    for _ in range(3):
        tasks.apply_change_set.delay(change_set.pk)
        pipeline.execute_run(run.pk)  # a duplicate run task finds the run finished

    assert len(_writes(world)) == 1


def test_it_leaves_a_newer_human_value_alone_and_writes_the_rest(world):
    world.policy.review_default = "review"
    world.policy.review_overrides = {}
    world.policy.save()
    run = _process(world)
    assert run.status == RunStatus.PENDING_REVIEW
    _set_in_crm(world, "amount", "91000")  # a rep types a newer amount

    review.do_approve_change_set(ChangeSet.objects.get(run=run), actor=None)

    proposals = {p.field: p for p in ChangeProposal.objects.filter(change_set__run=run)}
    assert proposals["amount"].status == ProposalStatus.CONFLICT
    assert float(proposals["amount"].crm_value_after) == 91000
    assert proposals["close_date"].status == ProposalStatus.APPLIED
    assert float(world.deal_value("amount")) == 91000
    assert world.deal_value("close_date") == "2027-01-15"
    run.refresh_from_db()
    assert run.status == RunStatus.CONFLICT
    # The CRM held back the first write (a newer amount): nothing failed, and the rest
    # was written after one more read.
    outcomes = list(
        AuditEvent.objects.filter(action__startswith="crm.write")
        .order_by("sequence")
        .values_list("action", "outcome")
    )
    assert ("crm.write", "failed") not in outcomes
    assert outcomes[0] == ("crm.write.held_back", "denied")
    assert ("crm.write", "ok") in outcomes


def test_it_settles_a_claim_left_by_a_dead_worker(world):
    world.policy.review_default = "review"
    world.policy.review_overrides = {}
    world.policy.save()
    run = _process(world)
    change_set = ChangeSet.objects.get(run=run)
    old = owed.lease_cutoff() - timedelta(minutes=1)
    # The worker wrote the amount and died before recording it; the close date never went.
    _set_in_crm(world, "amount", "84000")
    change_set.proposals.filter(field="amount").update(
        status=ProposalStatus.APPLYING, claimed_at=old
    )
    change_set.proposals.filter(field="close_date").update(
        status=ProposalStatus.APPLYING, claimed_at=old
    )
    writes_before = len(_writes(world))

    apply.apply_change_set(change_set.pk)

    proposals = {p.field: p for p in change_set.proposals.all()}
    assert proposals["amount"].status == ProposalStatus.APPLIED
    assert "confirmed by reading the CRM after an interrupted apply" in (
        proposals["amount"].status_reason
    )
    assert proposals["close_date"].status == ProposalStatus.APPLIED
    assert len(_writes(world)) == writes_before + 1  # the close date only
    assert world.deal_value("close_date") == "2027-01-15"


def test_it_supersedes_an_older_pending_proposal_for_the_same_field(world):
    world.policy.review_default = "review"
    world.policy.review_overrides = {}
    world.policy.save()
    older = _process(world, external_id="mtg-older", started_at="2026-11-20T15:00:00Z")
    newer = _process(world, external_id="mtg-newer", started_at="2026-11-22T15:00:00Z")

    old_amount = ChangeProposal.objects.get(change_set__run=older, field="amount")
    new_amount = ChangeProposal.objects.get(change_set__run=newer, field="amount")
    assert old_amount.status == ProposalStatus.SUPERSEDED
    assert old_amount.superseded_by_id == new_amount.pk
    assert new_amount.status == ProposalStatus.PENDING
    # Every field of the older call was proposed again by the newer one: its set says so,
    # and so does its run (it proposed; nothing "had nothing to change").
    older.refresh_from_db()
    assert ChangeSet.objects.get(run=older).status == SetStatus.SUPERSEDED
    assert older.status == RunStatus.SUPERSEDED


def test_it_records_a_test_run_and_writes_nothing(world):
    from crm_agents.services import do_create_test_run

    call, _ = do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    run = do_create_test_run(world.workflow, call)
    pipeline.execute_run(run.pk)
    run.refresh_from_db()

    assert run.status == RunStatus.DRY_RUN
    change_set = ChangeSet.objects.get(run=run)
    assert change_set.is_test
    assert change_set.status == SetStatus.DRY_RUN
    assert set(change_set.proposals.values_list("status", flat=True)) == {ProposalStatus.DRY_RUN}
    assert _writes(world) == []


def test_it_fails_a_run_with_a_reason_when_the_crm_is_not_connected(world):
    world.connection.delete()
    run = _process(world)

    assert run.status == RunStatus.FAILED
    assert "is not connected for the workspace" in run.status_reason


def test_it_retries_a_run_after_a_transient_error(world, monkeypatch):
    from integrations.crm import errors

    calls = []
    real = pipeline.execute_run

    def flaky(run_id, **kwargs):
        calls.append(run_id)
        if len(calls) == 1:
            raise pipeline.RetryLater(errors.RateLimited("slow down", retry_after=7), 7)
        return real(run_id, **kwargs)

    monkeypatch.setattr(pipeline, "execute_run", flaky)
    monkeypatch.setattr(tasks, "EAGER_RETRY_WAIT_CAP", 0)
    run = _process(world)

    assert len(calls) == 2
    assert run.status == RunStatus.APPLIED


@pytest.mark.skipif(
    "sqlite" in db_connection.vendor,
    reason="needs concurrent writers: the SQLite test database serialises them (PostgreSQL "
    "covers this)",
)
def test_it_writes_once_when_workers_apply_the_same_set_at_once(world):
    world.policy.review_default = "review"
    world.policy.review_overrides = {}
    world.policy.save()
    run = _process(world)
    change_set = ChangeSet.objects.get(run=run)
    change_set.proposals.filter(status=ProposalStatus.PENDING).update(
        status=ProposalStatus.APPROVED
    )
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            apply.apply_change_set(change_set.pk)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(_writes(world)) == 1
    assert set(change_set.proposals.values_list("status", flat=True)) == {ProposalStatus.APPLIED}


def test_it_asks_a_human_to_choose_between_equal_deals_and_remembers(world, ws_admin):
    from crm_agents.services import do_choose_record
    from integrations.sandbox import seed
    from integrations.sandbox.models import SandboxRecord

    company = SandboxRecord.objects.get(
        account=world.account, object_name__in=["companies", "Account"]
    )
    jane = SandboxRecord.objects.get(account=world.account, object_name__in=["contacts", "Contact"])
    # Jane is a contact on both deals of her company: the numbers cannot tell them apart.
    twin = seed.add_record(
        world.account,
        "deal",
        {
            "name": "Acme Logistics - Analytics",
            "amount": 20_000,
            "close_date": "2026-12-31",
            "stage": {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}[world.provider],
        },
        owner=world.deal.owner,
        associations=[company, jane],
    )
    run = _process(world)

    assert run.status == RunStatus.AMBIGUOUS, run.status_reason
    assert {c["id"] for c in run.candidates} == {world.deal.crm_id, twin.crm_id}
    needs_choice = ChangeSet.objects.get(run=run)
    assert needs_choice.status == SetStatus.NEEDS_CHOICE
    assert _writes(world) == []

    do_choose_record(needs_choice, twin.crm_id, actor=ws_admin)

    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert run.record_id == twin.crm_id
    later = _process(world, external_id="mtg-later")
    assert later.record_id == twin.crm_id
    assert later.status == RunStatus.NO_CHANGES  # the same values were already written
    assert any("chose this deal" in reason for reason in later.candidates[0]["reasons"])
