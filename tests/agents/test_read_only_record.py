"""A record the connection's Salesforce user may read but not edit (read-only sharing): the
pipeline reads it and proposes, and the write is a refusal with Salesforce's reason, never a
failure, a retry or a silent skip."""

import pytest

from audit.models import AuditEvent
from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun
from crm_agents.services import do_submit_call
from governance.review_models import ChangeProposal, ProposalStatus
from integrations.sandbox import seed
from integrations.sandbox.models import Access, SandboxRequest, SandboxUser
from tests.agents.conftest import pricing_call

READ_ONLY = "insufficient access rights on object id"


def _share_the_deal_read_only(world) -> None:
    """The deal belongs to someone else; the connection's user sees every opportunity
    (an org-wide Public Read Only default) and edits only its own."""
    owner = seed.add_user(world.account, "olga@seller.example")
    world.deal.owner = owner
    world.deal.values["OwnerId"] = owner.crm_user_id
    world.deal.save(update_fields=["owner", "values"])
    SandboxUser.objects.filter(account=world.account, email="ops@seller.example").update(
        access=Access.OWNED, read_access=Access.ALL
    )


@pytest.mark.parametrize("world", ["salesforce"], indirect=True)
def test_a_proposal_for_a_record_shared_read_only_is_denied_with_the_reason(world):
    _share_the_deal_read_only(world)

    call, _ = do_submit_call(world.workspace, CallIn.model_validate(pricing_call()))
    tasks.process_call.delay(call.pk)
    run = AgentRun.objects.get(call=call, workflow=world.workflow)

    proposals = list(ChangeProposal.objects.filter(change_set__run=run))
    assert run.record_id == world.deal.crm_id  # it was read and matched
    assert proposals
    assert {p.status for p in proposals} == {ProposalStatus.DENIED}
    assert {p.status_reason for p in proposals} == {READ_ONLY}
    refusals = AuditEvent.objects.filter(action="crm.write.denied", record_id=world.deal.crm_id)
    assert {event.context["code"] for event in refusals} == {"record_access"}
    assert {event.reason for event in refusals} == {READ_ONLY}
    # One refused write, no retry, and the deal is as it was.
    writes = SandboxRequest.objects.filter(account=world.account, kind="write")
    assert [(w.status, w.error_code) for w in writes] == [(400, "INSUFFICIENT_ACCESS_OR_READONLY")]
    assert float(world.deal_value("amount")) == 50000
