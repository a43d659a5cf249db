"""Rolling back what the agent wrote, on both CRMs, through the real clients and the sandbox."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun
from crm_agents.services import do_submit_call
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetOperation
from governance.rollback import do_rollback, preview_rollback
from integrations.crm.clients import build_client
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call


def _applied_set(world) -> ChangeSet:
    call, _ = do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    tasks.process_call.delay(call.pk)
    run = AgentRun.objects.get(call=call, workflow=world.workflow)
    change_set = ChangeSet.objects.get(run=run)
    assert set(change_set.proposals.values_list("status", flat=True)) == {ProposalStatus.APPLIED}
    return change_set


def _requests(world, kind: str) -> int:
    return SandboxRequest.objects.filter(account=world.account, kind=kind).count()


def _set_in_crm(world, field: str, value: str) -> None:
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    client.update("deal", world.deal.crm_id, {world.native(field): value})


def _by_field(change_set: ChangeSet, lines) -> dict:
    fields = dict(change_set.proposals.values_list("pk", "field"))
    return {fields[line.proposal_id]: line for line in lines}


def _proposal(change_set: ChangeSet, field: str) -> ChangeProposal:
    return change_set.proposals.get(field=field)


def test_it_previews_what_would_be_restored_without_asking_the_crm(world):
    change_set = _applied_set(world)
    reads, writes = _requests(world, "read"), _requests(world, "write")

    lines = _by_field(change_set, preview_rollback(change_set))

    assert float(lines["amount"].written) == 84000
    assert float(lines["amount"].restore) == 50000
    assert lines["close_date"].written == "2027-01-15"
    assert lines["close_date"].restore == "2026-12-31"
    assert lines["next_step"].restore is None
    assert all(line.possible for line in lines.values())
    assert lines["amount"].reason.startswith("will restore")
    assert (_requests(world, "read"), _requests(world, "write")) == (reads, writes)


def test_it_restores_the_previous_values_and_marks_the_proposals(world, ws_admin):
    change_set = _applied_set(world)

    lines = _by_field(change_set, do_rollback(change_set, actor=ws_admin))

    assert lines["amount"].possible, lines["amount"].reason
    assert lines["amount"].reason.startswith("restored")
    assert float(world.deal_value("amount")) == 50000
    assert world.deal_value("close_date") == "2026-12-31"
    amount = _proposal(change_set, "amount")
    assert amount.status == ProposalStatus.ROLLED_BACK
    assert amount.rolled_back_by == ws_admin
    assert amount.rolled_back_at is not None
    assert amount.status_reason.startswith(f"rolled back by {ws_admin.username} on ")
    # The next step was empty before: putting that back clears a value, which this policy
    # does not allow. The guard refuses it, and the agent's next step stays.
    assert not lines["next_step"].possible
    assert lines["next_step"].reason == (
        "refused by policy: the policy does not allow clearing values"
    )
    assert "MSA" in world.deal_value("next_step")
    assert _proposal(change_set, "next_step").status == ProposalStatus.APPLIED


def test_it_clears_a_field_that_was_empty_when_the_policy_allows_it(world, ws_admin):
    world.policy.allow_clear_values = True
    world.policy.save()
    change_set = _applied_set(world)

    lines = _by_field(change_set, do_rollback(change_set, actor=ws_admin))

    assert lines["next_step"].possible, lines["next_step"].reason
    assert world.deal_value("next_step") in (None, "")


def test_it_rolls_back_once_whatever_the_repeated_clicks(world, ws_admin):
    change_set = _applied_set(world)
    do_rollback(change_set, actor=ws_admin)
    writes = _requests(world, "write")

    again = _by_field(change_set, do_rollback(change_set, actor=ws_admin))

    assert _requests(world, "write") == writes
    assert not again["amount"].possible
    assert again["amount"].reason.startswith("already rolled back by")
    assert float(world.deal_value("amount")) == 50000


def test_it_leaves_a_newer_human_value_alone_and_restores_the_rest(world, ws_admin):
    change_set = _applied_set(world)
    _set_in_crm(world, "amount", "91000")  # a rep corrects the amount after the agent

    lines = _by_field(change_set, do_rollback(change_set, actor=ws_admin))

    assert not lines["amount"].possible
    assert lines["amount"].reason.startswith("conflict: the CRM now holds '91000")
    assert float(world.deal_value("amount")) == 91000
    assert _proposal(change_set, "amount").status == ProposalStatus.APPLIED
    assert lines["close_date"].possible
    assert world.deal_value("close_date") == "2026-12-31"


def test_it_rolls_back_a_single_field(world, ws_admin):
    change_set = _applied_set(world)
    amount = _proposal(change_set, "amount")

    lines = do_rollback(change_set, actor=ws_admin, proposal_ids=[amount.pk])

    assert [(line.field, line.possible) for line in lines] == [("amount", True)]
    assert float(world.deal_value("amount")) == 50000
    assert world.deal_value("close_date") == "2027-01-15"
    assert _proposal(change_set, "close_date").status == ProposalStatus.APPLIED


def test_it_refuses_a_rollback_after_30_days(world, ws_admin):
    change_set = _applied_set(world)
    change_set.proposals.update(applied_at=timezone.now() - timedelta(days=31))
    writes = _requests(world, "write")

    lines = do_rollback(change_set, actor=ws_admin)

    assert not any(line.possible for line in lines)
    assert "outside the rollback window" in lines[0].reason
    assert _requests(world, "write") == writes
    assert float(world.deal_value("amount")) == 84000


def test_it_refuses_to_roll_back_a_test_set(world, ws_admin):
    from crm_agents import pipeline
    from crm_agents.services import do_create_test_run

    call, _ = do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    run = do_create_test_run(world.workflow, call)
    pipeline.execute_run(run.pk)
    change_set = ChangeSet.objects.get(run=run)

    lines = do_rollback(change_set, actor=ws_admin)

    assert lines
    assert not any(line.possible for line in lines)
    assert all("TEST" in line.reason for line in lines)
    assert _requests(world, "write") == 0


def test_it_refuses_to_roll_back_a_created_record(world, ws_admin):
    change_set = _applied_set(world)
    ChangeSet.objects.filter(pk=change_set.pk).update(operation=SetOperation.CREATE)
    change_set.refresh_from_db()
    writes = _requests(world, "write")

    lines = do_rollback(change_set, actor=ws_admin)

    assert not any(line.possible for line in lines)
    assert "never does" in lines[0].reason
    assert _requests(world, "write") == writes


def test_it_audits_every_line(world, ws_admin):
    change_set = _applied_set(world)
    _set_in_crm(world, "amount", "91000")

    lines = _by_field(change_set, do_rollback(change_set, actor=ws_admin))

    events = {
        event.field: event
        for event in AuditEvent.objects.filter(workspace=world.workspace, action="change.rollback")
    }
    assert len(events) == len(lines) == 3
    assert events[world.native("close_date")].outcome == "ok"
    assert events[world.native("close_date")].before == "2027-01-15"
    assert events[world.native("close_date")].after == "2026-12-31"
    assert events[world.native("close_date")].actor_user == ws_admin
    assert events[world.native("close_date")].actor_kind == "user"
    assert events[world.native("amount")].outcome == "denied"
    assert events[world.native("amount")].reason == lines["amount"].reason
    assert events[world.native("next_step")].outcome == "denied"


def test_it_settles_a_rollback_that_died_after_writing(world, ws_admin):
    from governance import rollback

    change_set = _applied_set(world)
    amount = _proposal(change_set, "amount")
    # The rollback restored the amount and died before recording it.
    _set_in_crm(world, "amount", amount.current_value)
    old = timezone.now() - rollback.CLAIM_TIMEOUT - timedelta(minutes=1)
    change_set.proposals.filter(pk=amount.pk).update(
        status=ProposalStatus.ROLLING_BACK, claimed_at=old
    )
    assert "under way" in preview_rollback(change_set, [amount.pk])[0].reason
    writes = _requests(world, "write")

    lines = do_rollback(change_set, actor=ws_admin, proposal_ids=[amount.pk])

    assert not lines[0].possible
    assert lines[0].reason.startswith("already rolled back by")
    assert "confirmed after an interrupted rollback" in lines[0].reason
    assert _proposal(change_set, "amount").status == ProposalStatus.ROLLED_BACK
    assert _requests(world, "write") == writes
