"""Chat on both CRMs through the real clients: a rep's own connection and record access,
the admin override, memory of "it", hostile tool calls, and what a rep is told."""

import pytest

from audit.models import AuditEvent
from crm_agents.chat.memory import current
from crm_agents.chat_models import ChatMessage
from governance.models import ChatReview
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus
from tests.agents.chat_world import RILEY_DEAL, make_chat_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chat(world):
    return make_chat_world(world)


def test_it_finds_a_deal_and_resolves_it_for_the_next_message(chat):
    session = chat.session()

    found = chat.say(session, "find the Riley Freight deal")

    assert [item["id"] for item in found.activity["found"]] == [chat.own_deal.crm_id]
    assert RILEY_DEAL in found.content
    session.refresh_from_db()
    assert current(session).id == chat.own_deal.crm_id

    reply = chat.say(session, "set its close date to 2027-01-15")

    (proposed,) = reply.activity["proposed"]
    assert proposed["id"] == chat.own_deal.crm_id
    assert proposed["value"] == "2027-01-15"
    change_set = ChangeSet.objects.get(pk=proposed["change_set"])
    assert change_set.chat_session == session
    assert change_set.requested_by == chat.rep
    assert change_set.record_id == chat.own_deal.crm_id
    proposal = change_set.proposals.get()
    assert proposal.status == ProposalStatus.PENDING  # the default chat policy reviews
    assert proposal.current_value == "2026-12-15"
    assert "set its close date to 2027-01-15" in proposal.evidence
    assert proposed["url"].endswith(f"/governance/changeset/{change_set.pk}/change/")
    assert chat.written() == {}

